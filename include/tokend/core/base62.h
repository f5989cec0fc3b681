/*
 * base62.h - fixed-width base62 for identifiers and API keys.
 *
 * Alphabet "0-9A-Za-z" (the GMP order, so '0' is the zero digit and a
 * left-padded value still sorts like the number). A value is the big-endian
 * unsigned integer held in the bytes. The digit loops never depend on the
 * value (no early exit on leading zeros, no table lookup), because the same
 * code encodes API key secrets.
 */
#ifndef TOKEND_BASE62_H
#define TOKEND_BASE62_H

#include "tokend/core/common.h"

#define TOK_BASE62_MAX_BYTES 64 /* largest value, in bytes */
#define TOK_BASE62_MAX_CHARS 88 /* largest width; 64 bytes need 86 digits */

/**
 * Smallest number of digits that holds any nbytes-byte value (16 -> 22, 32 -> 43).
 * Returns 0 when nbytes is 0 or above TOK_BASE62_MAX_BYTES.
 */
size_t tok_base62_width(size_t nbytes);

/**
 * Appends the value in `bytes` to out as exactly `width` digits, left-padded with '0'.
 * Nothing is written on failure.
 * TOK_ERR_INPUT: bytes empty or longer than TOK_BASE62_MAX_BYTES, width 0 or above
 * TOK_BASE62_MAX_CHARS. TOK_ERR_BOUNDS: the value needs more than width digits, or out
 * has fewer than width bytes free.
 */
TOK_MUST_CHECK tok_status tok_base62_encode(struct tok_slice bytes, size_t width,
                                            struct tok_buf *out);

/**
 * Decodes digits into exactly out_len big-endian bytes at out (caller memory, out_len
 * bytes). On failure out is zeroed.
 * TOK_ERR_INPUT: text empty, longer than TOK_BASE62_MAX_CHARS, or holds a byte outside
 * the alphabet; out_len 0 or above TOK_BASE62_MAX_BYTES. TOK_ERR_BOUNDS: the value does
 * not fit in out_len bytes.
 */
TOK_MUST_CHECK tok_status tok_base62_decode(struct tok_slice text, uint8_t *out, size_t out_len);

/** True when every byte of s is in the base62 alphabet (an empty slice is true). */
bool tok_base62_is_alphabet(struct tok_slice s);

#endif
