/*
 * rand.h - random bytes for values that are published: ids and nonces.
 *
 * libsodium's randombytes_buf is one getrandom() system call per call; a
 * tokenisation needed four (request id, token id, the sealing nonce, the
 * sandbox reference), 7 % of tokend's CPU in the issue #9 profile. Each thread
 * keeps a pool that one randombytes_buf call fills, and hands it out in order;
 * a byte handed out is wiped from the pool at once. The bytes are libsodium's
 * all the same. Secrets (keys, API key secrets) do not come from here: they
 * call randombytes_buf directly and never sit in a pool.
 */
#ifndef TOKEND_RAND_H
#define TOKEND_RAND_H

#include "tokend/core/common.h"

#include <stddef.h>

#define TOK_RAND_POOL 1024u     /* bytes per thread, refilled by one randombytes_buf */
#define TOK_RAND_POOLED_MAX 64u /* larger requests go to randombytes_buf directly */

/** Fills out with n random bytes for a public value (an id, a nonce). */
void tok_rand_public(void *out, size_t n);

#define TOK_RANDOM_ID_BYTES 16 /* 128 bits */
#define TOK_RANDOM_ID_CHARS 22 /* base62 width of 16 bytes */
#define TOK_RANDOM_ID_PREFIX_MAX 16
#define TOK_RANDOM_ID_MAX (TOK_RANDOM_ID_PREFIX_MAX + TOK_RANDOM_ID_CHARS)

/**
 * Appends prefix followed by 22 base62 characters of 128 random bits ("tok_" ->
 * "tok_4Xq..."). prefix: 0..TOK_RANDOM_ID_PREFIX_MAX bytes of [a-z0-9_]. No NUL is
 * written. TOK_ERR_INPUT: bad prefix. TOK_ERR_BOUNDS: out lacks room.
 */
TOK_MUST_CHECK tok_status tok_random_id(const char *prefix, struct tok_buf *out);

#endif
