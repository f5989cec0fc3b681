/*
 * base62.c - fixed-width base62 (see base62.h). Encoding divides the whole
 * number by 62 once per output digit, for every digit, so the running time
 * depends only on the lengths: API key secrets go through here. The number is
 * held in 32-bit limbs (64-bit steps; a division by the constant 62 compiles
 * to a multiplication): a quarter of the steps of a byte at a time, which
 * showed as 3 % of the whole tokenise benchmark (ids, request ids, API keys).
 */
#include "tokend/core/base62.h"

#include <sodium.h>

/* Digit d (0..61) to its character without a table index (no cache-timing lookup). */
static uint8_t digit_char(uint32_t d)
{
    uint32_t lt10 = (d - 10u) >> 31;
    uint32_t lt36 = (d - 36u) >> 31;
    return (uint8_t)(d + '0' + (1u - lt10) * ('A' - '0' - 10) + (1u - lt36) * ('a' - 'A' - 26));
}

/* Character to digit; *ok is cleared (never set) for a byte outside the alphabet. */
static uint32_t char_digit(uint8_t c, uint32_t *ok)
{
    uint32_t v = c;
    uint32_t is_num = (v - '0') < 10u;
    uint32_t is_up = (v - 'A') < 26u;
    uint32_t is_lo = (v - 'a') < 26u;
    *ok &= is_num | is_up | is_lo;
    return is_num * (v - '0') + is_up * (v - 'A' + 10u) + is_lo * (v - 'a' + 36u);
}

bool tok_base62_is_alphabet(struct tok_slice s)
{
    uint32_t ok = 1;
    for (size_t i = 0; i < s.len; i++)
        (void)char_digit(s.ptr[i], &ok);
    return ok == 1;
}

size_t tok_base62_width(size_t nbytes)
{
    if (nbytes == 0 || nbytes > TOK_BASE62_MAX_BYTES)
        return 0;
    /* smallest w with 62^w >= 256^n, i.e. w >= 8n / log2(62). log2(62) = 5.95419... rounded
     * down to 5.9541 never gives too few digits, and is exact for every n up to the maximum */
    return (nbytes * 8u * 10000u + 59540u) / 59541u;
}

#define LIMBS ((TOK_BASE62_MAX_BYTES + 3u) / 4u)

/* Big-endian bytes into big-endian 32-bit limbs, right-aligned (zero padding in front). */
static size_t to_limbs(struct tok_slice bytes, uint32_t limbs[LIMBS])
{
    size_t nl = (bytes.len + 3u) / 4u, pad = nl * 4u - bytes.len;
    for (size_t k = 0; k < nl; k++)
        limbs[k] = 0;
    for (size_t i = 0; i < bytes.len; i++) {
        size_t pos = pad + i;
        limbs[pos / 4u] |= (uint32_t)bytes.ptr[i] << (8u * (3u - pos % 4u));
    }
    return nl;
}

tok_status tok_base62_encode(struct tok_slice bytes, size_t width, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(bytes.ptr != NULL && bytes.len > 0 && bytes.len <= TOK_BASE62_MAX_BYTES,
               TOK_ERR_INPUT);
    TOK_ENSURE(width > 0 && width <= TOK_BASE62_MAX_CHARS, TOK_ERR_INPUT);
    TOK_ENSURE(width <= (size_t)(out->cap - out->len), TOK_ERR_BOUNDS);

    uint32_t num[LIMBS];
    uint8_t digits[TOK_BASE62_MAX_CHARS];
    size_t nl = to_limbs(bytes, num);
    for (size_t w = width; w > 0; w--) {
        uint32_t rem = 0;
        for (size_t k = 0; k < nl; k++) {
            uint64_t acc = (uint64_t)rem << 32 | num[k];
            num[k] = (uint32_t)(acc / 62u);
            rem = (uint32_t)(acc % 62u);
        }
        digits[w - 1] = digit_char(rem);
    }
    /* whatever is left did not fit in width digits */
    int fits = sodium_is_zero((const unsigned char *)num, nl * sizeof num[0]);
    tok_status st = fits ? tok_buf_write(out, digits, width) : TOK_ERR_BOUNDS;
    sodium_memzero(num, sizeof num);
    sodium_memzero(digits, sizeof digits);
    return st;
}

tok_status tok_base62_decode(struct tok_slice text, uint8_t *out, size_t out_len)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(out_len > 0 && out_len <= TOK_BASE62_MAX_BYTES, TOK_ERR_INPUT);
    sodium_memzero(out, out_len);
    TOK_ENSURE(text.ptr != NULL && text.len > 0 && text.len <= TOK_BASE62_MAX_CHARS,
               TOK_ERR_INPUT);

    uint32_t num[LIMBS] = {0};
    size_t nl = (out_len + 3u) / 4u, pad = nl * 4u - out_len;
    uint32_t ok = 1;
    uint64_t overflow = 0;
    for (size_t i = 0; i < text.len; i++) {
        uint64_t carry = char_digit(text.ptr[i], &ok);
        for (size_t k = nl; k > 0; k--) {
            uint64_t acc = (uint64_t)num[k - 1] * 62u + carry;
            num[k - 1] = (uint32_t)acc;
            carry = acc >> 32;
        }
        overflow |= carry;
    }
    /* the padding in front of the first limb must stay zero too */
    overflow |= pad == 0 ? 0 : num[0] >> (8u * (4u - pad));
    for (size_t i = 0; i < out_len; i++) {
        size_t pos = pad + i;
        out[i] = (uint8_t)(num[pos / 4u] >> (8u * (3u - pos % 4u)));
    }
    sodium_memzero(num, sizeof num);
    if (ok != 1 || overflow != 0) {
        sodium_memzero(out, out_len);
        return ok != 1 ? TOK_ERR_INPUT : TOK_ERR_BOUNDS;
    }
    return TOK_OK;
}
