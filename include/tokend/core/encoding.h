/*
 * encoding.h - hex, base64 and HMAC-SHA256 for formats other parties define
 * (gateway webhook signatures, fingerprints in JSON). All output goes into
 * bounded tok_bufs; nothing is written when a call fails.
 */
#ifndef TOKEND_ENCODING_H
#define TOKEND_ENCODING_H

#include "tokend/core/common.h"

#define TOK_HMAC_SHA256_LEN 32
#define TOK_HMAC_KEY_MAX 1024     /* gateway webhook secrets are far shorter */
#define TOK_ENCODING_IN_MAX 65536 /* largest input to any encoder or decoder here */

/**
 * HMAC-SHA256 (RFC 2104) of msg under a key of any length up to TOK_HMAC_KEY_MAX
 * (longer than 64 bytes is hashed first, as the RFC says). key and msg are borrowed.
 * TOK_ERR_INPUT: key longer than TOK_HMAC_KEY_MAX. TOK_ERR_INTERNAL: out is NULL.
 */
TOK_MUST_CHECK tok_status tok_hmac_sha256(struct tok_slice key, struct tok_slice msg,
                                          uint8_t out[TOK_HMAC_SHA256_LEN]);

/**
 * Recomputes HMAC-SHA256(key, msg) and compares it with `mac` in constant time.
 * TOK_OK on a match; TOK_ERR_CRYPTO on a mismatch or when mac is not 32 bytes;
 * TOK_ERR_INPUT as tok_hmac_sha256.
 */
TOK_MUST_CHECK tok_status tok_hmac_sha256_verify(struct tok_slice key, struct tok_slice msg,
                                                 struct tok_slice mac);

/**
 * Appends lowercase hex of in (2 * in.len characters, no NUL) to out.
 * TOK_ERR_INPUT: in longer than TOK_ENCODING_IN_MAX. TOK_ERR_BOUNDS: out lacks room.
 */
TOK_MUST_CHECK tok_status tok_hex_encode(struct tok_slice in, struct tok_buf *out);

/**
 * Appends the bytes that hex text `in` (either case, no separators) stands for.
 * TOK_ERR_INPUT: odd length, a non-hex byte, or longer than TOK_ENCODING_IN_MAX (checked
 * before room). TOK_ERR_BOUNDS: out lacks room for in.len / 2 bytes.
 */
TOK_MUST_CHECK tok_status tok_hex_decode(struct tok_slice in, struct tok_buf *out);

/** Length of the base64 (original alphabet, padded) text for n bytes: 4 * ceil(n / 3). */
size_t tok_base64_encoded_len(size_t n);

/**
 * Appends base64 of in (RFC 4648 section 4 alphabet, '=' padding, no NUL) to out.
 * TOK_ERR_INPUT: in longer than TOK_ENCODING_IN_MAX. TOK_ERR_BOUNDS: out lacks room for
 * tok_base64_encoded_len(in.len) bytes.
 */
TOK_MUST_CHECK tok_status tok_base64_encode(struct tok_slice in, struct tok_buf *out);

/**
 * Appends the bytes that padded base64 text `in` (original alphabet, no whitespace)
 * stands for. TOK_ERR_INPUT: malformed text (length not a multiple of 4, a byte outside
 * the alphabet, bad padding, non-zero trailing bits) or longer than TOK_ENCODING_IN_MAX.
 * TOK_ERR_BOUNDS: out lacks room for the bytes the length and padding promise (checked
 * before the characters are).
 */
TOK_MUST_CHECK tok_status tok_base64_decode(struct tok_slice in, struct tok_buf *out);

#endif
