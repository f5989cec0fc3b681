/*
 * check_dedup_guard.c - the per-key budget of de-duplication hits (issue #15).
 */
#include "tokend/vault/dedup_guard.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static struct tok_dedup_guard *g;

static void setup(void)
{
    ck_assert_int_eq(tok_dedup_guard_new(3, 60, &g), TOK_OK);
}

static void teardown(void)
{
    tok_dedup_guard_free(&g);
    ck_assert_ptr_null(g);
}

/* Reserves for key at now; returns whether it was allowed. */
static bool reserve(const char *key, uint64_t now, uint32_t *retry, bool *first)
{
    bool allowed = false, f = false;
    uint32_t ra = 0;
    ck_assert_int_eq(tok_dedup_guard_reserve(g, key, now, &allowed, &ra, &f), TOK_OK);
    if (retry != NULL)
        *retry = ra;
    if (first != NULL)
        *first = f;
    return allowed;
}

START_TEST(test_hits_counted_misses_given_back)
{
    for (int i = 0; i < 10; i++) { /* misses cost nothing */
        ck_assert(reserve("key_a", 100, NULL, NULL));
        tok_dedup_guard_settle(g, "key_a", 100, false);
    }
    ck_assert_uint_eq(tok_dedup_guard_hits(g, "key_a", 100), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(reserve("key_a", 100, NULL, NULL));
        tok_dedup_guard_settle(g, "key_a", 100, true);
    }
    ck_assert_uint_eq(tok_dedup_guard_hits(g, "key_a", 100), 3);
    struct tok_dedup_stats st;
    tok_dedup_guard_stats(g, &st);
    ck_assert_uint_eq(st.lookups, 13);
    ck_assert_uint_eq(st.hits, 3);
    ck_assert_uint_eq(st.refused, 0);
}
END_TEST

START_TEST(test_limit_refuses_until_window_ends)
{
    for (int i = 0; i < 3; i++) {
        ck_assert(reserve("key_a", 1000, NULL, NULL));
        tok_dedup_guard_settle(g, "key_a", 1000, true);
    }
    uint32_t retry = 0;
    bool first = false;
    ck_assert(!reserve("key_a", 1010, &retry, &first));
    ck_assert_uint_eq(retry, 50);
    ck_assert(first);
    ck_assert(!reserve("key_a", 1059, &retry, &first));
    ck_assert_uint_eq(retry, 1);
    ck_assert(!first); /* logged once a window */
    ck_assert(reserve("key_b", 1059, NULL, NULL)); /* other keys are not affected */
    ck_assert(reserve("key_a", 1060, NULL, NULL));         /* a new window */
    struct tok_dedup_stats st;
    tok_dedup_guard_stats(g, &st);
    ck_assert_uint_eq(st.refused, 2);
}
END_TEST

START_TEST(test_open_reservations_count)
{
    /* three lookups in flight use the budget: a fourth is refused before its lookup */
    for (int i = 0; i < 3; i++)
        ck_assert(reserve("key_a", 5, NULL, NULL));
    ck_assert(!reserve("key_a", 5, NULL, NULL));
    tok_dedup_guard_settle(g, "key_a", 5, false);
    ck_assert(reserve("key_a", 5, NULL, NULL));
    /* a reservation outliving its window is still settled without underflow */
    tok_dedup_guard_settle(g, "key_a", 500, true);
    ck_assert_uint_eq(tok_dedup_guard_hits(g, "key_a", 500), 1);
}
END_TEST

START_TEST(test_limits_one_hit)
{
    struct tok_dedup_guard *one = NULL;
    ck_assert_int_eq(tok_dedup_guard_new(1, 1, &one), TOK_OK);
    bool allowed = false, first = false;
    uint32_t ra = 0;
    ck_assert_int_eq(tok_dedup_guard_reserve(one, "k", 0, &allowed, &ra, &first), TOK_OK);
    ck_assert(allowed);
    tok_dedup_guard_settle(one, "k", 0, true);
    ck_assert_int_eq(tok_dedup_guard_reserve(one, "k", 0, &allowed, &ra, &first), TOK_OK);
    ck_assert(!allowed);
    ck_assert_uint_eq(ra, 1);
    ck_assert_int_eq(tok_dedup_guard_reserve(one, "k", 1, &allowed, &ra, &first), TOK_OK);
    ck_assert(allowed);
    tok_dedup_guard_free(&one);
    tok_dedup_guard_free(&one); /* NULL: nothing */
    ck_assert_int_eq(tok_dedup_guard_new(0, 60, &one), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_dedup_guard_new(1, 0, &one), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_table_full_fails_closed_then_reuses)
{
    char key[32];
    for (int i = 0; i < TOK_DEDUP_GUARD_KEYS; i++) {
        snprintf(key, sizeof key, "key_%d", i);
        ck_assert(reserve(key, 10, NULL, NULL));
        tok_dedup_guard_settle(g, key, 10, true);
    }
    bool first = false;
    ck_assert(!reserve("key_new", 20, NULL, &first)); /* every slot is a live window */
    ck_assert(first);
    ck_assert(reserve("key_new", 70, NULL, NULL)); /* windows ended: a slot is taken over */
    ck_assert(reserve("key_5", 70, NULL, NULL));   /* and the others get a slot too */
}
END_TEST

START_TEST(test_adversarial_keys)
{
    bool allowed = true, first = false;
    uint32_t ra = 0;
    char longkey[TOK_DEDUP_GUARD_KEY_MAX + 8];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    ck_assert_int_eq(tok_dedup_guard_reserve(g, longkey, 0, &allowed, &ra, &first), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_dedup_guard_reserve(g, "", 0, &allowed, &ra, &first), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_dedup_guard_reserve(g, NULL, 0, &allowed, &ra, &first), TOK_ERR_INPUT);
    tok_dedup_guard_settle(g, "never_reserved", 0, true); /* ignored */
    ck_assert_uint_eq(tok_dedup_guard_hits(g, "never_reserved", 0), 0);
    tok_dedup_guard_settle(NULL, "k", 0, true);
    ck_assert_uint_eq(tok_dedup_guard_hits(NULL, "k", 0), 0);
}
END_TEST

Suite *tok_dedup_guard_suite(void)
{
    Suite *s = suite_create("dedup_guard");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_add_checked_fixture(adv, setup, teardown);
    tcase_add_test(core, test_hits_counted_misses_given_back);
    tcase_add_test(core, test_limit_refuses_until_window_ends);
    tcase_add_test(core, test_open_reservations_count);
    tcase_add_test(limits, test_limits_one_hit);
    tcase_add_test(limits, test_table_full_fails_closed_then_reuses);
    tcase_add_test(adv, test_adversarial_keys);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
