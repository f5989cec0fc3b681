/*
 * encoding.c - hex, base64, HMAC-SHA256 (see encoding.h). Hex digits are
 * mapped with arithmetic rather than a table or branches, because the same
 * helpers handle MACs and fingerprints compared by other parties.
 */
#include "tokend/core/encoding.h"

#include <sodium.h>

tok_status tok_hmac_sha256(struct tok_slice key, struct tok_slice msg,
                           uint8_t out[TOK_HMAC_SHA256_LEN])
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(key.ptr != NULL || key.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(msg.ptr != NULL || msg.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(key.len <= TOK_HMAC_KEY_MAX, TOK_ERR_INPUT);

    static const uint8_t empty[1] = {0};
    crypto_auth_hmacsha256_state st;
    tok_status rc = TOK_OK;
    if (crypto_auth_hmacsha256_init(&st, key.len > 0 ? key.ptr : empty, key.len) != 0 ||
        crypto_auth_hmacsha256_update(&st, msg.len > 0 ? msg.ptr : empty, msg.len) != 0 ||
        crypto_auth_hmacsha256_final(&st, out) != 0)
        rc = TOK_ERR_CRYPTO;
    /* the state holds the padded key: wipe it on every path */
    sodium_memzero(&st, sizeof st);
    if (rc != TOK_OK)
        sodium_memzero(out, TOK_HMAC_SHA256_LEN);
    return rc;
}

tok_status tok_hmac_sha256_verify(struct tok_slice key, struct tok_slice msg, struct tok_slice mac)
{
    TOK_ENSURE(mac.ptr != NULL || mac.len == 0, TOK_ERR_INTERNAL);
    uint8_t want[TOK_HMAC_SHA256_LEN];
    TOK_GUARD(tok_hmac_sha256(key, msg, want));
    bool same = mac.len == TOK_HMAC_SHA256_LEN &&
                sodium_memcmp(want, mac.ptr, TOK_HMAC_SHA256_LEN) == 0;
    sodium_memzero(want, sizeof want);
    return same ? TOK_OK : TOK_ERR_CRYPTO;
}

/* Nibble 0..15 to '0'..'9','a'..'f' without branches. */
static uint8_t hex_char(uint32_t n)
{
    return (uint8_t)(n + '0' + (((9u - n) >> 8) & 39u));
}

tok_status tok_hex_encode(struct tok_slice in, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(in.ptr != NULL || in.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(in.len <= TOK_ENCODING_IN_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(in.len <= (size_t)(out->cap - out->len) / 2, TOK_ERR_BOUNDS);
    for (size_t i = 0; i < in.len; i++) {
        uint8_t pair[2] = {hex_char(in.ptr[i] >> 4), hex_char(in.ptr[i] & 0x0fu)};
        TOK_GUARD(tok_buf_write(out, pair, sizeof pair));
    }
    return TOK_OK;
}

/* Hex character to nibble (libsodium's hex2bin arithmetic); *ok cleared on a non-hex byte. */
static uint8_t hex_nibble(uint8_t c, uint8_t *ok)
{
    uint8_t c_num = c ^ 48u;
    uint8_t c_num0 = (uint8_t)((c_num - 10u) >> 8);
    uint8_t c_alpha = (uint8_t)((c & ~32u) - 55u);
    uint8_t c_alpha0 = (uint8_t)(((c_alpha - 10u) ^ (c_alpha - 16u)) >> 8);
    *ok &= (uint8_t)((c_num0 | c_alpha0) != 0);
    return (uint8_t)((c_num0 & c_num) | (c_alpha0 & c_alpha));
}

tok_status tok_hex_decode(struct tok_slice in, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(in.ptr != NULL || in.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(in.len <= TOK_ENCODING_IN_MAX && in.len % 2 == 0, TOK_ERR_INPUT);
    uint8_t ok = 1;
    for (size_t i = 0; i < in.len; i++)
        (void)hex_nibble(in.ptr[i], &ok);
    TOK_ENSURE(ok == 1, TOK_ERR_INPUT);
    TOK_ENSURE(in.len / 2 <= (size_t)(out->cap - out->len), TOK_ERR_BOUNDS);
    for (size_t i = 0; i < in.len; i += 2) {
        uint8_t byte = (uint8_t)(hex_nibble(in.ptr[i], &ok) << 4 | hex_nibble(in.ptr[i + 1], &ok));
        TOK_GUARD(tok_buf_putc(out, byte));
    }
    return TOK_OK;
}

size_t tok_base64_encoded_len(size_t n)
{
    return (n / 3u + (n % 3u != 0)) * 4u;
}

/* RFC 4648 section 4 alphabet, without the pad character. */
static bool b64_alphabet(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* 48 input bytes make 64 characters with no padding, so chunks join into one text. */
#define B64_CHUNK_IN 48u

tok_status tok_base64_encode(struct tok_slice in, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(in.ptr != NULL || in.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(in.len <= TOK_ENCODING_IN_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(tok_base64_encoded_len(in.len) <= (size_t)(out->cap - out->len), TOK_ERR_BOUNDS);

    /* sodium_bin2base64 NUL-terminates: encode through a chunk that has room for it */
    char chunk[sodium_base64_ENCODED_LEN(B64_CHUNK_IN, sodium_base64_VARIANT_ORIGINAL)];
    tok_status st = TOK_OK;
    for (size_t off = 0; off < in.len && st == TOK_OK; off += B64_CHUNK_IN) {
        size_t n = in.len - off < B64_CHUNK_IN ? in.len - off : B64_CHUNK_IN;
        sodium_bin2base64(chunk, sizeof chunk, in.ptr + off, n, sodium_base64_VARIANT_ORIGINAL);
        st = tok_buf_write(out, chunk, tok_base64_encoded_len(n));
    }
    sodium_memzero(chunk, sizeof chunk);
    return st;
}

tok_status tok_base64_decode(struct tok_slice in, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(in.ptr != NULL || in.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(in.len <= TOK_ENCODING_IN_MAX && in.len % 4 == 0, TOK_ERR_INPUT);
    if (in.len == 0)
        return TOK_OK;
    size_t pad = (size_t)(in.ptr[in.len - 1] == '=') + (size_t)(in.ptr[in.len - 2] == '=');
    size_t room = out->cap - out->len;
    TOK_ENSURE(in.len / 4u * 3u - pad <= room, TOK_ERR_BOUNDS);
    /* libsodium 1.0.18 (Debian 12) decodes every byte from 0x80 up as '/', so a signature
     * would have many spellings (found by tests/fuzz/fuzz_encoding.c): check the alphabet
     * here; the padding and the trailing bits are left to the library */
    for (size_t i = 0; i < in.len - pad; i++)
        TOK_ENSURE(b64_alphabet(in.ptr[i]), TOK_ERR_INPUT);
    size_t n = 0;
    /* the library writes straight into the free space, bounded by room */
    int rc = sodium_base642bin(out->data + out->len, room, (const char *)in.ptr, in.len, NULL,
                               &n, NULL, sodium_base64_VARIANT_ORIGINAL);
    if (rc != 0) {
        sodium_memzero(out->data + out->len, room);
        return TOK_ERR_INPUT;
    }
    TOK_ENSURE(n <= room, TOK_ERR_INTERNAL);
    out->len += (uint32_t)n;
    return TOK_OK;
}
