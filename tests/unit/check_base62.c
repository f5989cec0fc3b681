#include "tokend/core/base62.h"

#include <check.h>
#include <string.h>

static void expect_encode(const uint8_t *bytes, size_t n, size_t width, const char *want)
{
    uint8_t mem[TOK_BASE62_MAX_CHARS + 1];
    struct tok_buf b;
    const char *s = NULL;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(bytes, n), width, &b), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&b, &s), TOK_OK);
    ck_assert_str_eq(s, want);

    uint8_t back[TOK_BASE62_MAX_BYTES];
    ck_assert_int_eq(tok_base62_decode(tok_slice_str(want), back, n), TOK_OK);
    ck_assert_mem_eq(back, bytes, n);
}

START_TEST(test_base62_known_vectors)
{
    uint8_t zero[16] = {0};
    uint8_t one[16] = {0};
    one[15] = 1;
    uint8_t ff16[16], ff32[32], seq[16];
    memset(ff16, 0xff, sizeof ff16);
    memset(ff32, 0xff, sizeof ff32);
    for (size_t i = 0; i < sizeof seq; i++)
        seq[i] = (uint8_t)i;
    expect_encode(zero, 16, 22, "0000000000000000000000");
    expect_encode(one, 16, 22, "0000000000000000000001");
    expect_encode(ff16, 16, 22, "7n42DGM5Tflk9n8mt7Fhc7");
    expect_encode(ff32, 32, 43, "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1");
    expect_encode(seq, 16, 22, "000SYW7RiJxkEgOGusQGwp");
    expect_encode((const uint8_t *)"Hello, world!", 13, 18, "1wJfrzvdbthTq5ANZB");
    uint8_t b255 = 0xff, b61 = 61, b62 = 62;
    expect_encode(&b255, 1, 2, "47");
    expect_encode(&b61, 1, 1, "z");
    expect_encode(&b62, 1, 2, "10");
}
END_TEST

START_TEST(test_base62_width)
{
    ck_assert_uint_eq(tok_base62_width(1), 2);
    ck_assert_uint_eq(tok_base62_width(16), 22);
    ck_assert_uint_eq(tok_base62_width(32), 43);
    ck_assert_uint_eq(tok_base62_width(64), 86);
    ck_assert_uint_eq(tok_base62_width(0), 0);
    ck_assert_uint_eq(tok_base62_width(65), 0);
}
END_TEST

START_TEST(test_base62_limits)
{
    uint8_t mem[TOK_BASE62_MAX_CHARS + 4];
    struct tok_buf b;
    uint8_t big[TOK_BASE62_MAX_BYTES + 1];
    memset(big, 0xff, sizeof big);
    tok_buf_init(&b, mem, sizeof mem);
    /* 0 bytes, max bytes, max + 1 */
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(big, 0), 2, &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(big, TOK_BASE62_MAX_BYTES), 86, &b), TOK_OK);
    ck_assert_uint_eq(b.len, 86);
    tok_buf_reset(&b);
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(big, TOK_BASE62_MAX_BYTES + 1), 86, &b),
                     TOK_ERR_INPUT);
    /* width 0 and max + 1 */
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(big, 1), 0, &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(big, 1), TOK_BASE62_MAX_CHARS + 1, &b),
                     TOK_ERR_INPUT);
    /* value needs more digits than given: 0xff needs 2 */
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(big, 1), 1, &b), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    /* output room: exact fit and one short */
    uint8_t small[22];
    tok_buf_init(&b, small, 21);
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(big, 16), 22, &b), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    tok_buf_init(&b, small, 22);
    ck_assert_int_eq(tok_base62_encode(tok_slice_of(big, 16), 22, &b), TOK_OK);
}
END_TEST

START_TEST(test_base62_decode_rejects)
{
    uint8_t out[16];
    ck_assert_int_eq(tok_base62_decode(tok_slice_str(""), out, 16), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base62_decode(tok_slice_str("abc-def"), out, 16), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base62_decode(tok_slice_str("abc def"), out, 16), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base62_decode(tok_slice_of("ab\0c", 4), out, 16), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_base62_decode(tok_slice_str("\xc3\xa9"), out, 16), TOK_ERR_INPUT);
    /* 2^128 does not fit in 16 bytes: one above the 22-digit maximum */
    ck_assert_int_eq(tok_base62_decode(tok_slice_str("7n42DGM5Tflk9n8mt7Fhc8"), out, 16),
                     TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_base62_decode(tok_slice_str("zzzzzzzzzzzzzzzzzzzzzz"), out, 16),
                     TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_base62_decode(tok_slice_str("1"), out, 0), TOK_ERR_INPUT);
    char longtext[TOK_BASE62_MAX_CHARS + 2];
    memset(longtext, '0', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    ck_assert_int_eq(tok_base62_decode(tok_slice_str(longtext), out, 16), TOK_ERR_INPUT);
    /* leading zeros beyond the width are fine: the value is what counts */
    longtext[TOK_BASE62_MAX_CHARS] = '\0';
    ck_assert_int_eq(tok_base62_decode(tok_slice_str(longtext), out, 16), TOK_OK);
}
END_TEST

/* The byte-at-a-time long division the limb code replaced: the model it must agree with. */
static void ref_encode(const uint8_t *bytes, size_t n, size_t width, char *out)
{
    uint8_t num[TOK_BASE62_MAX_BYTES];
    static const char alpha[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    memcpy(num, bytes, n);
    for (size_t w = width; w > 0; w--) {
        unsigned rem = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned acc = (rem << 8) | num[i];
            num[i] = (uint8_t)(acc / 62u);
            rem = acc % 62u;
        }
        out[w - 1] = alpha[rem];
    }
    out[width] = '\0';
}

START_TEST(test_base62_every_length_matches_the_model)
{
    uint8_t bytes[TOK_BASE62_MAX_BYTES], back[TOK_BASE62_MAX_BYTES];
    char want[TOK_BASE62_MAX_CHARS + 1], got[TOK_BASE62_MAX_CHARS + 1];
    uint32_t x = 2463534242u; /* xorshift: the same bytes every run */
    for (size_t n = 1; n <= TOK_BASE62_MAX_BYTES; n++) {
        for (int round = 0; round < 8; round++) {
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bytes[i] = round == 0 ? 0xFF : round == 1 ? 0 : (uint8_t)x; /* extremes too */
            }
            size_t width = tok_base62_width(n);
            ref_encode(bytes, n, width, want);
            struct tok_buf b;
            tok_buf_init(&b, got, sizeof got);
            ck_assert_int_eq(tok_base62_encode(tok_slice_of(bytes, n), width, &b), TOK_OK);
            got[b.len] = '\0';
            ck_assert_str_eq(got, want);
            ck_assert_int_eq(tok_base62_decode(tok_slice_str(got), back, n), TOK_OK);
            ck_assert_mem_eq(back, bytes, n);
        }
        /* one more than the largest n-byte value: refused, whatever the padding of its limbs */
        memset(bytes, 0xFF, n);
        size_t width = tok_base62_width(n);
        ref_encode(bytes, n, width, want);
        size_t i = width; /* add one to the base62 text */
        while (i > 0 && want[i - 1] == 'z')
            want[--i] = '0';
        if (i > 0) {
            want[i - 1] = want[i - 1] == '9' ? 'A' : want[i - 1] == 'Z' ? 'a' : (char)(want[i - 1] + 1);
            ck_assert_int_eq(tok_base62_decode(tok_slice_str(want), back, n), TOK_ERR_BOUNDS);
        }
    }
}
END_TEST

START_TEST(test_base62_alphabet)
{
    ck_assert(tok_base62_is_alphabet(tok_slice_str("09AZaz")));
    ck_assert(tok_base62_is_alphabet(tok_slice_str("")));
    ck_assert(!tok_base62_is_alphabet(tok_slice_str("a_b")));
    ck_assert(!tok_base62_is_alphabet(tok_slice_str("/")));
    ck_assert(!tok_base62_is_alphabet(tok_slice_str(":")));
    ck_assert(!tok_base62_is_alphabet(tok_slice_str("@")));
    ck_assert(!tok_base62_is_alphabet(tok_slice_str("[")));
    ck_assert(!tok_base62_is_alphabet(tok_slice_str("`")));
    ck_assert(!tok_base62_is_alphabet(tok_slice_str("{")));
}
END_TEST

Suite *tok_base62_suite(void)
{
    Suite *s = suite_create("base62");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *adversarial = tcase_create("adversarial");
    tcase_add_test(core, test_base62_known_vectors);
    tcase_add_test(core, test_base62_width);
    tcase_add_test(core, test_base62_every_length_matches_the_model);
    tcase_add_test(limits, test_base62_limits);
    tcase_add_test(adversarial, test_base62_decode_rejects);
    tcase_add_test(adversarial, test_base62_alphabet);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adversarial);
    return s;
}
