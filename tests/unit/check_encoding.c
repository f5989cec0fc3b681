#include "tokend/core/encoding.h"

#include <check.h>
#include <string.h>

static void hex_of(const uint8_t *p, size_t n, char *out, size_t out_cap)
{
    struct tok_buf b;
    const char *s = NULL;
    tok_buf_init(&b, out, (uint32_t)out_cap);
    ck_assert_int_eq(tok_hex_encode(tok_slice_of(p, n), &b), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&b, &s), TOK_OK);
}

/* RFC 4231 section 4.2 and 4.3 */
START_TEST(test_hmac_rfc4231_cases_1_2)
{
    uint8_t key1[20];
    uint8_t mac[TOK_HMAC_SHA256_LEN];
    char hex[65];
    memset(key1, 0x0b, sizeof key1);
    ck_assert_int_eq(tok_hmac_sha256(tok_slice_of(key1, sizeof key1), tok_slice_str("Hi There"),
                                     mac),
                     TOK_OK);
    hex_of(mac, sizeof mac, hex, sizeof hex);
    ck_assert_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    ck_assert_int_eq(tok_hmac_sha256(tok_slice_str("Jefe"),
                                     tok_slice_str("what do ya want for nothing?"), mac),
                     TOK_OK);
    hex_of(mac, sizeof mac, hex, sizeof hex);
    ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

/* RFC 4231 section 4.7: a 131-byte key is hashed first */
START_TEST(test_hmac_rfc4231_case_6_long_key)
{
    uint8_t key[131];
    uint8_t mac[TOK_HMAC_SHA256_LEN];
    char hex[65];
    memset(key, 0xaa, sizeof key);
    ck_assert_int_eq(tok_hmac_sha256(tok_slice_of(key, sizeof key),
                                     tok_slice_str("Test Using Larger Than Block-Size Key - "
                                                   "Hash Key First"),
                                     mac),
                     TOK_OK);
    hex_of(mac, sizeof mac, hex, sizeof hex);
    ck_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}
END_TEST

START_TEST(test_hmac_verify)
{
    uint8_t mac[TOK_HMAC_SHA256_LEN];
    struct tok_slice key = tok_slice_str("Jefe");
    struct tok_slice msg = tok_slice_str("what do ya want for nothing?");
    ck_assert_int_eq(tok_hmac_sha256(key, msg, mac), TOK_OK);
    ck_assert_int_eq(tok_hmac_sha256_verify(key, msg, tok_slice_of(mac, sizeof mac)), TOK_OK);
    mac[31] ^= 1;
    ck_assert_int_eq(tok_hmac_sha256_verify(key, msg, tok_slice_of(mac, sizeof mac)),
                     TOK_ERR_CRYPTO);
    mac[31] ^= 1;
    ck_assert_int_eq(tok_hmac_sha256_verify(key, msg, tok_slice_of(mac, 31)), TOK_ERR_CRYPTO);
    ck_assert_int_eq(tok_hmac_sha256_verify(key, msg, tok_slice_of(mac, 0)), TOK_ERR_CRYPTO);
    ck_assert_int_eq(tok_hmac_sha256_verify(key, tok_slice_str("other"),
                                            tok_slice_of(mac, sizeof mac)),
                     TOK_ERR_CRYPTO);
}
END_TEST

START_TEST(test_hmac_key_limits)
{
    static uint8_t key[TOK_HMAC_KEY_MAX + 1];
    uint8_t mac[TOK_HMAC_SHA256_LEN];
    ck_assert_int_eq(tok_hmac_sha256(tok_slice_of(key, 0), tok_slice_of(key, 0), mac), TOK_OK);
    ck_assert_int_eq(tok_hmac_sha256(tok_slice_of(key, 1), tok_slice_of(key, 0), mac), TOK_OK);
    ck_assert_int_eq(tok_hmac_sha256(tok_slice_of(key, TOK_HMAC_KEY_MAX), tok_slice_of(key, 3),
                                     mac),
                     TOK_OK);
    ck_assert_int_eq(tok_hmac_sha256(tok_slice_of(key, TOK_HMAC_KEY_MAX + 1),
                                     tok_slice_of(key, 3), mac),
                     TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_hex_round_trip)
{
    uint8_t all[256];
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (uint8_t)i;
    static uint8_t hex_mem[512];
    static uint8_t back_mem[256];
    struct tok_buf hex, back;
    tok_buf_init(&hex, hex_mem, sizeof hex_mem);
    tok_buf_init(&back, back_mem, sizeof back_mem);
    ck_assert_int_eq(tok_hex_encode(tok_slice_of(all, sizeof all), &hex), TOK_OK);
    ck_assert_uint_eq(hex.len, 512);
    ck_assert_mem_eq(hex_mem, "000102030405060708090a0b0c0d0e0f", 32);
    ck_assert_mem_eq(hex_mem + 480, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", 32);
    ck_assert_int_eq(tok_hex_decode(tok_buf_slice(&hex), &back), TOK_OK);
    ck_assert_uint_eq(back.len, 256);
    ck_assert_mem_eq(back_mem, all, sizeof all);

    /* upper case decodes too */
    tok_buf_reset(&back);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("DEADbeef"), &back), TOK_OK);
    ck_assert_mem_eq(back_mem, "\xde\xad\xbe\xef", 4);
    /* empty in, empty out */
    tok_buf_reset(&back);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str(""), &back), TOK_OK);
    ck_assert_int_eq(tok_hex_encode(tok_slice_of(all, 0), &hex), TOK_OK);
    ck_assert_uint_eq(back.len, 0);
}
END_TEST

START_TEST(test_hex_bounds)
{
    uint8_t mem[8];
    struct tok_buf b;
    tok_buf_init(&b, mem, 8);
    /* 4 bytes fit exactly in 8 characters, 5 do not; nothing is written on failure */
    ck_assert_int_eq(tok_hex_encode(tok_slice_of("abcde", 5), &b), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(tok_hex_encode(tok_slice_of("abcd", 4), &b), TOK_OK);
    ck_assert_uint_eq(b.len, 8);
    ck_assert_int_eq(tok_hex_encode(tok_slice_of("a", 1), &b), TOK_ERR_BOUNDS);

    tok_buf_init(&b, mem, 2);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("000102"), &b), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("0001"), &b), TOK_OK);
}
END_TEST

START_TEST(test_hex_malformed)
{
    uint8_t mem[8];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("abc"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("0g"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("0:"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("0/"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("@0"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("G0"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_hex_decode(tok_slice_str(" 0"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_hex_decode(tok_slice_of("0\0", 2), &b), TOK_ERR_INPUT);
    /* malformed wins over too long */
    ck_assert_int_eq(tok_hex_decode(tok_slice_str("zz00000000000000000000"), &b), TOK_ERR_INPUT);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_base64_vectors_and_round_trip)
{
    /* RFC 4648 section 10 */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        uint8_t mem[16], back_mem[16];
        struct tok_buf b, back;
        const char *s = NULL;
        tok_buf_init(&b, mem, sizeof mem);
        tok_buf_init(&back, back_mem, sizeof back_mem);
        ck_assert_int_eq(tok_base64_encode(tok_slice_str(plain[i]), &b), TOK_OK);
        ck_assert_uint_eq(b.len, tok_base64_encoded_len(strlen(plain[i])));
        ck_assert_int_eq(tok_buf_cstr(&b, &s), TOK_OK);
        ck_assert_str_eq(s, enc[i]);
        ck_assert_int_eq(tok_base64_decode(tok_slice_str(enc[i]), &back), TOK_OK);
        ck_assert_uint_eq(back.len, strlen(plain[i]));
        ck_assert_mem_eq(back_mem, plain[i], back.len);
    }

    /* longer than one 48-byte chunk, every byte value */
    static uint8_t all[1000];
    static uint8_t mem[1400], back_mem[1000];
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (uint8_t)(i * 7);
    struct tok_buf b, back;
    tok_buf_init(&b, mem, sizeof mem);
    tok_buf_init(&back, back_mem, sizeof back_mem);
    ck_assert_int_eq(tok_base64_encode(tok_slice_of(all, sizeof all), &b), TOK_OK);
    ck_assert_uint_eq(b.len, 1336);
    ck_assert_int_eq(tok_base64_decode(tok_buf_slice(&b), &back), TOK_OK);
    ck_assert_uint_eq(back.len, sizeof all);
    ck_assert_mem_eq(back_mem, all, sizeof all);
}
END_TEST

START_TEST(test_base64_bounds)
{
    uint8_t mem[8];
    struct tok_buf b;
    tok_buf_init(&b, mem, 7);
    ck_assert_int_eq(tok_base64_encode(tok_slice_str("foobar"), &b), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    tok_buf_init(&b, mem, 8);
    ck_assert_int_eq(tok_base64_encode(tok_slice_str("foobar"), &b), TOK_OK);

    tok_buf_init(&b, mem, 5);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9vYmFy"), &b), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    tok_buf_init(&b, mem, 4);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9vYg=="), &b), TOK_OK);
    ck_assert_uint_eq(b.len, 4);
}
END_TEST

START_TEST(test_base64_malformed)
{
    uint8_t mem[16];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9v*mFy"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9v YmF"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm=v"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zh=="), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("===="), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9v-_8="), &b), TOK_ERR_INPUT);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

/* Found by tests/fuzz/fuzz_encoding.c (corpus/encoding/crash-base64-high-bytes): libsodium
 * 1.0.18 read bytes 0x80..0xff as '/', so "Zm9\xff" decoded like "Zm9/" and an Adyen
 * hmacSignature could be spelt with any of them (e.g. a UTF-8 "\u00e9" for "//"). */
START_TEST(test_base64_high_bytes)
{
    uint8_t mem[16];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9/"), &b), TOK_OK);
    tok_buf_reset(&b);
    for (unsigned c = 0x80; c <= 0xff; c++) {
        uint8_t text[4] = {'Z', 'm', '9', (uint8_t)c};
        ck_assert_int_eq(tok_base64_decode(tok_slice_of(text, 4), &b), TOK_ERR_INPUT);
        uint8_t first[8] = {(uint8_t)c, 'm', '9', 'v', 'Y', 'g', '=', '='};
        ck_assert_int_eq(tok_base64_decode(tok_slice_of(first, 8), &b), TOK_ERR_INPUT);
    }
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9vYmFy\xc3\xa9"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base64_decode(tok_slice_str("Zm9vYm\xc3\xa9"), &b), TOK_ERR_INPUT);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_encoding_input_max)
{
    static uint8_t in[TOK_ENCODING_IN_MAX + 1];
    struct tok_buf b;
    ck_assert_int_eq(tok_buf_alloc(&b, 2 * TOK_ENCODING_IN_MAX + 8, false), TOK_OK);
    ck_assert_int_eq(tok_hex_encode(tok_slice_of(in, TOK_ENCODING_IN_MAX), &b), TOK_OK);
    tok_buf_reset(&b);
    ck_assert_int_eq(tok_hex_encode(tok_slice_of(in, TOK_ENCODING_IN_MAX + 1), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base64_encode(tok_slice_of(in, TOK_ENCODING_IN_MAX + 1), &b),
                     TOK_ERR_INPUT);
    memset(in, '0', sizeof in);
    ck_assert_int_eq(tok_hex_decode(tok_slice_of(in, TOK_ENCODING_IN_MAX), &b), TOK_OK);
    tok_buf_reset(&b);
    ck_assert_int_eq(tok_hex_decode(tok_slice_of(in, TOK_ENCODING_IN_MAX + 2), &b), TOK_ERR_INPUT);
    tok_buf_wipe(&b);
}
END_TEST

Suite *tok_encoding_suite(void)
{
    Suite *s = suite_create("encoding");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *adversarial = tcase_create("adversarial");
    tcase_add_test(core, test_hmac_rfc4231_cases_1_2);
    tcase_add_test(core, test_hmac_rfc4231_case_6_long_key);
    tcase_add_test(core, test_hmac_verify);
    tcase_add_test(core, test_hex_round_trip);
    tcase_add_test(core, test_base64_vectors_and_round_trip);
    tcase_add_test(limits, test_hmac_key_limits);
    tcase_add_test(limits, test_hex_bounds);
    tcase_add_test(limits, test_base64_bounds);
    tcase_add_test(limits, test_encoding_input_max);
    tcase_add_test(adversarial, test_hex_malformed);
    tcase_add_test(adversarial, test_base64_malformed);
    tcase_add_test(adversarial, test_base64_high_bytes);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adversarial);
    return s;
}
