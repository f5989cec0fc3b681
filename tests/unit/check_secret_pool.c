/*
 * check_secret_pool.c - blocks of sodium_malloc'd chunks: a block comes back zeroed,
 * blocks do not overlap, a new chunk when one is used up, and NULL is safe everywhere.
 */
#include "tokend/secret_pool.h"

#include <check.h>
#include <string.h>

START_TEST(test_reuse_is_wiped)
{
    struct tok_secret_pool *p = NULL;
    ck_assert_int_eq(tok_secret_pool_new(264, 4, &p), TOK_OK);
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

START_TEST(test_chunks_and_null)
{
    struct tok_secret_pool *p = NULL;
    ck_assert_int_eq(tok_secret_pool_new(30, 2, &p), TOK_OK);
    /* three blocks: two chunks of two; distinct, aligned, zeroed */
    uint8_t *a = tok_secret_pool_take(p);
    uint8_t *b = tok_secret_pool_take(p);
    uint8_t *c = tok_secret_pool_take(p);
    ck_assert(a != NULL && b != NULL && c != NULL && a != b && b != c && a != c);
    ck_assert_uint_eq((uintptr_t)a % sizeof(void *), 0);
    ck_assert_uint_eq((uintptr_t)b % sizeof(void *), 0);
    memset(a, 1, 30);
    memset(b, 2, 30);
    memset(c, 3, 30);
    for (size_t i = 0; i < 30; i++)
        ck_assert_int_eq(a[i], 1); /* b did not overlap a */
    tok_secret_pool_give(p, b);
    uint8_t *d = tok_secret_pool_take(p);
    ck_assert_ptr_eq(d, b);
    for (size_t i = 0; i < 30; i++)
        ck_assert_int_eq(d[i], 0);
    tok_secret_pool_give(p, a);
    tok_secret_pool_give(p, c);
    tok_secret_pool_give(p, d);
    tok_secret_pool_free(&p); /* blocks still out are freed with their chunk too */
    ck_assert_int_eq(tok_secret_pool_new(0, 1, &p), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_secret_pool_new(8, 0, &p), TOK_ERR_INPUT);
    ck_assert_ptr_null(tok_secret_pool_take(NULL));
    tok_secret_pool_give(NULL, NULL);
}
END_TEST

Suite *tok_secret_pool_suite(void)
{
    Suite *s = suite_create("secret_pool");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_reuse_is_wiped);
    tcase_add_test(core, test_chunks_and_null);
    suite_add_tcase(s, core);
    return s;
}
