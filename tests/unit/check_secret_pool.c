/*
 * check_secret_pool.c - wiped sodium_malloc blocks kept for reuse: a block comes back
 * zeroed, the pool keeps no more than asked, and NULL is safe everywhere.
 */
#include "tokend/secret_pool.h"

#include <check.h>
#include <string.h>

START_TEST(test_reuse_is_wiped)
{
    struct tok_secret_pool *p = NULL;
    ck_assert_int_eq(tok_secret_pool_new(264, 2, &p), TOK_OK);
    uint8_t *a = tok_secret_pool_take(p);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < 264; i++)
        ck_assert_int_eq(a[i], 0);
    memset(a, '4', 264); /* a PAN's worth of bytes, and more */
    tok_secret_pool_give(p, a);
    uint8_t *b = tok_secret_pool_take(p);
    ck_assert_ptr_eq(b, a);
    for (size_t i = 0; i < 264; i++)
        ck_assert_int_eq(b[i], 0);
    tok_secret_pool_give(p, b);
    tok_secret_pool_free(&p);
    ck_assert_ptr_null(p);
    tok_secret_pool_free(&p);
}
END_TEST

START_TEST(test_keeps_at_most_keep)
{
    struct tok_secret_pool *p = NULL;
    ck_assert_int_eq(tok_secret_pool_new(32, 1, &p), TOK_OK);
    void *a = tok_secret_pool_take(p), *b = tok_secret_pool_take(p);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    tok_secret_pool_give(p, a);
    tok_secret_pool_give(p, b); /* the pool is full: b is freed */
    void *c = tok_secret_pool_take(p);
    ck_assert_ptr_eq(c, a);
    tok_secret_pool_give(p, c);
    tok_secret_pool_free(&p);
    ck_assert_int_eq(tok_secret_pool_new(0, 1, &p), TOK_ERR_INPUT);
    ck_assert_ptr_null(tok_secret_pool_take(NULL));
    tok_secret_pool_give(NULL, NULL);
}
END_TEST

Suite *tok_secret_pool_suite(void)
{
    Suite *s = suite_create("secret_pool");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_reuse_is_wiped);
    tcase_add_test(core, test_keeps_at_most_keep);
    suite_add_tcase(s, core);
    return s;
}
