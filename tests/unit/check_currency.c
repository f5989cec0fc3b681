#include "tokend/core/currency.h"

#include <check.h>

START_TEST(test_exponents)
{
    ck_assert_int_eq(tok_currency_exponent(tok_slice_str("usd")), 2);
    ck_assert_int_eq(tok_currency_exponent(tok_slice_str("USD")), 2);
    ck_assert_int_eq(tok_currency_exponent(tok_slice_str("jpy")), 0);
    ck_assert_int_eq(tok_currency_exponent(tok_slice_str("kwd")), 3);
    char out[4];
    ck_assert_int_eq(tok_currency_normalise(tok_slice_str("EuR"), out), TOK_OK);
    ck_assert_str_eq(out, "eur");
}
END_TEST

START_TEST(test_limits)
{
    char out[4];
    ck_assert_int_eq(tok_currency_exponent(tok_slice_str("")), -1);
    ck_assert_int_eq(tok_currency_exponent(tok_slice_str("us")), -1);
    ck_assert_int_eq(tok_currency_exponent(tok_slice_str("usdd")), -1);
    ck_assert_int_eq(tok_currency_normalise(tok_slice_str("usdd"), out), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_adversarial)
{
    char out[4];
    ck_assert_int_eq(tok_currency_exponent(tok_slice_str("xxx")), -1);
    ck_assert_int_eq(tok_currency_exponent(tok_slice_of("u\0d", 3)), -1);
    ck_assert_int_eq(tok_currency_normalise(tok_slice_str("u$d"), out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_currency_normalise(tok_slice_str("\xc3\xa9u"), out), TOK_ERR_INPUT);
}
END_TEST

Suite *tok_currency_suite(void)
{
    Suite *s = suite_create("currency");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_test(core, test_exponents);
    tcase_add_test(limits, test_limits);
    tcase_add_test(adv, test_adversarial);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
