/*
 * fuzz_encoding.c - hex, base64 and HMAC-SHA256 (service/core/encoding.c): they decode
 * gateway webhook signatures and keys.
 *
 * Properties:
 *   - decoders are canonical: text that decodes encodes back to itself (hex compared
 *     without case, base64 exactly, since non-zero trailing bits and missing padding are
 *     refused), and a decoder that fails writes nothing;
 *   - encoders round trip: decode(encode(x)) == x, at the lengths tok_base64_encoded_len
 *     promises;
 *   - tok_hmac_sha256 equals libsodium's HMAC-SHA256 for a key and message split from the
 *     input, and tok_hmac_sha256_verify accepts exactly that MAC.
 */
#include "fuzz.h"

#include "tokend/core/encoding.h"

#include <ctype.h>
#include <sodium.h>

#define CAP (4u * TOK_ENCODING_IN_MAX + 16u)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

static uint8_t m1[CAP], m2[CAP];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_slice in = tok_slice_of(data, size);
    struct tok_buf a, b;
    tok_buf_init(&a, m1, CAP);
    tok_buf_init(&b, m2, CAP);

    /* hex: decode, then encode back */
    tok_status st = tok_hex_decode(in, &a);
    if (st == TOK_OK) {
        FUZZ_ASSERT(size % 2 == 0 && a.len == size / 2);
        FUZZ_ASSERT(tok_hex_encode(tok_buf_slice(&a), &b) == TOK_OK && b.len == size);
        for (size_t i = 0; i < size; i++)
            FUZZ_ASSERT(b.data[i] == tolower(data[i]));
    } else {
        FUZZ_ASSERT(st == TOK_ERR_INPUT && a.len == 0);
    }
    /* no room: nothing written */
    if (size >= 4) {
        uint8_t one[1];
        struct tok_buf tiny;
        tok_buf_init(&tiny, one, 1);
        st = tok_hex_decode(in, &tiny);
        FUZZ_ASSERT(st != TOK_OK && tiny.len == 0);
        st = tok_base64_decode(in, &tiny);
        FUZZ_ASSERT(st == TOK_OK ? tiny.len == 1 : tiny.len == 0);
    }

    /* base64: decode, then encode back */
    tok_buf_reset(&a);
    tok_buf_reset(&b);
    st = tok_base64_decode(in, &a);
    if (st == TOK_OK) {
        FUZZ_ASSERT(tok_base64_encoded_len(a.len) == size);
        FUZZ_ASSERT(tok_base64_encode(tok_buf_slice(&a), &b) == TOK_OK);
        FUZZ_ASSERT(b.len == size && memcmp(b.data, data, size) == 0);
    } else {
        FUZZ_ASSERT(st == TOK_ERR_INPUT && a.len == 0);
    }

    /* encoders: round trip of the raw input */
    if (size <= TOK_ENCODING_IN_MAX) {
        tok_buf_reset(&a);
        tok_buf_reset(&b);
        FUZZ_ASSERT(tok_hex_encode(in, &a) == TOK_OK && a.len == 2 * size);
        FUZZ_ASSERT(tok_hex_decode(tok_buf_slice(&a), &b) == TOK_OK);
        FUZZ_ASSERT(b.len == size && (size == 0 || memcmp(b.data, data, size) == 0));
        tok_buf_reset(&a);
        tok_buf_reset(&b);
        FUZZ_ASSERT(tok_base64_encode(in, &a) == TOK_OK && a.len == tok_base64_encoded_len(size));
        FUZZ_ASSERT(tok_base64_decode(tok_buf_slice(&a), &b) == TOK_OK);
        FUZZ_ASSERT(b.len == size && (size == 0 || memcmp(b.data, data, size) == 0));
    }

    /* HMAC: the first byte says how long the key is */
    if (size >= 1) {
        size_t klen = data[0] % 2 == 0 ? data[0] : (size_t)data[0] * 5; /* up to 1275 */
        if (klen > size - 1)
            klen = size - 1;
        struct tok_slice key = tok_slice_of(data + 1, klen);
        struct tok_slice msg = tok_slice_of(data + 1 + klen, size - 1 - klen);
        uint8_t mac[TOK_HMAC_SHA256_LEN], ref[crypto_auth_hmacsha256_BYTES];
        st = tok_hmac_sha256(key, msg, mac);
        if (klen > TOK_HMAC_KEY_MAX) {
            FUZZ_ASSERT(st == TOK_ERR_INPUT);
        } else {
            FUZZ_ASSERT(st == TOK_OK);
            crypto_auth_hmacsha256_state hs;
            crypto_auth_hmacsha256_init(&hs, key.ptr, key.len);
            crypto_auth_hmacsha256_update(&hs, msg.ptr, msg.len);
            crypto_auth_hmacsha256_final(&hs, ref);
            FUZZ_ASSERT(memcmp(mac, ref, sizeof mac) == 0);
            FUZZ_ASSERT(tok_hmac_sha256_verify(key, msg, tok_slice_of(mac, sizeof mac)) == TOK_OK);
            mac[data[0] % sizeof mac] ^= 1;
            FUZZ_ASSERT(tok_hmac_sha256_verify(key, msg, tok_slice_of(mac, sizeof mac)) ==
                        TOK_ERR_CRYPTO);
            FUZZ_ASSERT(tok_hmac_sha256_verify(key, msg, tok_slice_of(mac, sizeof mac - 1)) ==
                        TOK_ERR_CRYPTO);
        }
    }
    return 0;
}
