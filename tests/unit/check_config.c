/*
 * check_config.c - --access-log: the modes, sample:N at its limits, and what is refused.
 */
#include "tokend/core/config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static tok_status load_access(const char *v, struct tok_config *cfg)
{
    char why[TOK_CONFIG_WHY_MAX] = "";
    char a0[] = "tokend", a1[] = "--access-log", a2[64];
    snprintf(a2, sizeof a2, "%s", v);
    char *argv[] = {a0, a1, a2, NULL};
    tok_config_defaults(cfg);
    return tok_config_load(cfg, 3, argv, why, sizeof why);
}

START_TEST(test_access_modes)
{
    static struct tok_config cfg;
    tok_config_defaults(&cfg);
    ck_assert_int_eq(cfg.access_log, TOK_ACCESS_ALL);
    ck_assert_int_eq(load_access("errors", &cfg), TOK_OK);
    ck_assert_int_eq(cfg.access_log, TOK_ACCESS_ERRORS);
    ck_assert_int_eq(load_access("off", &cfg), TOK_OK);
    ck_assert_int_eq(cfg.access_log, TOK_ACCESS_OFF);
    ck_assert_int_eq(load_access("all", &cfg), TOK_OK);
    ck_assert_int_eq(cfg.access_log, TOK_ACCESS_ALL);
    ck_assert_int_eq(load_access("sample:100", &cfg), TOK_OK);
    ck_assert_int_eq(cfg.access_log, TOK_ACCESS_SAMPLE);
    ck_assert_uint_eq(cfg.access_log_sample, 100);
}
END_TEST

START_TEST(test_access_limits)
{
    static struct tok_config cfg;
    ck_assert_int_eq(load_access("sample:0", &cfg), TOK_ERR_INPUT);
    ck_assert_int_eq(load_access("sample:1", &cfg), TOK_OK); /* one in one: every answer */
    ck_assert_int_eq(cfg.access_log, TOK_ACCESS_ALL);
    ck_assert_int_eq(load_access("sample:1000000", &cfg), TOK_OK);
    ck_assert_uint_eq(cfg.access_log_sample, TOK_ACCESS_SAMPLE_MAX);
    ck_assert_int_eq(load_access("sample:1000001", &cfg), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_access_adversarial)
{
    static struct tok_config cfg;
    const char *bad[] = {"", "ALL", "sample", "sample:", "sample:-5", "sample:+5", "sample:5x",
                         "sample: 5", "sample:99999999999999999999", "errors ", "none"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(load_access(bad[i], &cfg) == TOK_ERR_INPUT, "accepted '%s'", bad[i]);
}
END_TEST

Suite *tok_config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *c = tcase_create("core"), *l = tcase_create("limits"), *a = tcase_create("adversarial");
    tcase_add_test(c, test_access_modes);
    tcase_add_test(l, test_access_limits);
    tcase_add_test(a, test_access_adversarial);
    suite_add_tcase(s, c);
    suite_add_tcase(s, l);
    suite_add_tcase(s, a);
    return s;
}
