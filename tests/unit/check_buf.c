#include "tokend/core/common.h"

#include <check.h>
#include <string.h>

START_TEST(test_buf_write_and_read)
{
    uint8_t mem[8];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_buf_write(&b, "abc", 3), TOK_OK);
    ck_assert_int_eq(tok_buf_putc(&b, 'd'), TOK_OK);
    ck_assert_uint_eq(b.len, 4);
    struct tok_cursor c;
    tok_cursor_init(&c, &b);
    char out[4];
    ck_assert_int_eq(tok_cursor_read(&c, out, 4), TOK_OK);
    ck_assert_int_eq(memcmp(out, "abcd", 4), 0);
    ck_assert_uint_eq(tok_cursor_remaining(&c), 0);
}
END_TEST

START_TEST(test_buf_cstr)
{
    uint8_t mem[4];
    struct tok_buf b;
    const char *s = NULL;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_buf_puts(&b, "abc"), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&b, &s), TOK_OK);
    ck_assert_str_eq(s, "abc");
    ck_assert_int_eq(tok_buf_putc(&b, 'x'), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&b, &s), TOK_ERR_BOUNDS);
}
END_TEST

START_TEST(test_buf_limits_exact_fit)
{
    uint8_t mem[4];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_buf_write(&b, "", 0), TOK_OK);
    ck_assert_int_eq(tok_buf_write(&b, "abcd", 4), TOK_OK);
    ck_assert_int_eq(tok_buf_write(&b, "e", 1), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 4);
}
END_TEST

START_TEST(test_buf_write_at_inside_only)
{
    uint8_t mem[8];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_buf_write(&b, "abcd", 4), TOK_OK);
    ck_assert_int_eq(tok_buf_write_at(&b, 0, "X", 1), TOK_OK);
    ck_assert_int_eq(tok_buf_write_at(&b, 2, "YZ", 2), TOK_OK); /* ends exactly at len */
    ck_assert_int_eq(tok_buf_write_at(&b, 4, "", 0), TOK_OK);
    ck_assert_mem_eq(mem, "XbYZ", 4);
    ck_assert_uint_eq(b.len, 4);
    /* past len (though inside cap), straddling len, and an offset past len: refused */
    ck_assert_int_eq(tok_buf_write_at(&b, 3, "PQ", 2), TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_buf_write_at(&b, 5, "", 0), TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_buf_write_at(&b, UINT32_MAX, "P", 1), TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_buf_write_at(&b, 1, "P", SIZE_MAX), TOK_ERR_BOUNDS);
    ck_assert_mem_eq(mem, "XbYZ", 4);
    ck_assert_uint_eq(b.len, 4);
}
END_TEST

START_TEST(test_buf_printf_truncation_is_error)
{
    uint8_t mem[6];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_buf_printf(&b, "%d", 12345), TOK_OK);
    ck_assert_uint_eq(b.len, 5);
    ck_assert_int_eq(tok_buf_printf(&b, "%d", 1), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 5);
}
END_TEST

START_TEST(test_cursor_overread)
{
    uint8_t mem[4];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_buf_write(&b, "ab", 2), TOK_OK);
    struct tok_cursor c;
    tok_cursor_init(&c, &b);
    char out[3];
    ck_assert_int_eq(tok_cursor_read(&c, out, 3), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(c.pos, 0);
}
END_TEST

START_TEST(test_buf_secret_alloc_wipe)
{
    struct tok_buf b;
    ck_assert_int_eq(tok_buf_alloc(&b, 32, true), TOK_OK);
    ck_assert_int_eq(tok_buf_write(&b, "secret", 6), TOK_OK);
    tok_buf_wipe(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
    tok_buf_wipe(&b); /* idempotent */
}
END_TEST

/* A borrowed buffer is wiped whole: bytes past a reset len may still hold a secret. */
START_TEST(test_buf_borrowed_wipe_whole)
{
    uint8_t mem[16];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_buf_write(&b, "4242424242424242", 16), TOK_OK);
    b.len = 4;
    tok_buf_wipe(&b);
    for (size_t i = 0; i < sizeof mem; i++)
        ck_assert_uint_eq(mem[i], 0);
}
END_TEST

START_TEST(test_slice_eq_ct)
{
    ck_assert(tok_slice_eq_ct(tok_slice_str("abc"), tok_slice_str("abc")));
    ck_assert(!tok_slice_eq_ct(tok_slice_str("abc"), tok_slice_str("abd")));
    ck_assert(!tok_slice_eq_ct(tok_slice_str("abc"), tok_slice_str("ab")));
    ck_assert(tok_slice_eq_ct(tok_slice_str(""), tok_slice_str("")));
}
END_TEST

Suite *tok_buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_test(core, test_buf_write_and_read);
    tcase_add_test(core, test_buf_cstr);
    tcase_add_test(core, test_buf_secret_alloc_wipe);
    tcase_add_test(core, test_buf_borrowed_wipe_whole);
    tcase_add_test(core, test_slice_eq_ct);
    tcase_add_test(limits, test_buf_limits_exact_fit);
    tcase_add_test(limits, test_buf_printf_truncation_is_error);
    tcase_add_test(limits, test_buf_write_at_inside_only);
    tcase_add_test(adv, test_cursor_overread);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
