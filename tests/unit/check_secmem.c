#include "tokend/core/secmem.h"

#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

START_TEST(test_secmem_zeroed_every_size)
{
    static const size_t sizes[] = {1, 100, 496, 497, 4000, 65520, 65521, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *p = tok_secmem_alloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert(all_zero(p, sizes[i]));
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        memset(p, 0xA5, sizes[i]); /* every byte writable */
        tok_secmem_free(p);
    }
    tok_secmem_free(NULL);
}
END_TEST

/* A released block is wiped and reused by the next request of its class on this thread. */
START_TEST(test_secmem_reuse_is_wiped)
{
    uint8_t *p = tok_secmem_alloc(300);
    ck_assert_ptr_nonnull(p);
    memset(p, 0xA5, 300);
    memcpy(p, "4242424242424242", 16);
    unsigned before = tok_secmem_cached();
    tok_secmem_free(p);
    ck_assert_uint_eq(tok_secmem_cached(), before + 1);
    uint8_t *q = tok_secmem_alloc(400); /* same class */
    ck_assert_ptr_eq(q, p);
    ck_assert(all_zero(q, 400));
    ck_assert_uint_eq(tok_secmem_cached(), before);
    tok_secmem_free(q);
}
END_TEST

/* The cache keeps a bounded number of blocks; the rest go back to the system. */
START_TEST(test_secmem_cache_bounded)
{
    enum { N = 300 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = tok_secmem_alloc(60000);
        ck_assert_ptr_nonnull(blocks[i]);
    }
    unsigned before = tok_secmem_cached();
    for (int i = 0; i < N; i++)
        tok_secmem_free(blocks[i]);
    unsigned kept = tok_secmem_cached() - before;
    ck_assert_uint_gt(kept, 0);
    ck_assert_uint_le(kept, 64);
}
END_TEST

static void *free_elsewhere(void *arg)
{
    tok_secmem_free(arg); /* joins this thread's cache, given back when the thread ends */
    return tok_secmem_cached() == 1 ? arg : NULL;
}

START_TEST(test_secmem_free_on_another_thread)
{
    void *p = tok_secmem_alloc(1000);
    ck_assert_ptr_nonnull(p);
    pthread_t t;
    void *ret = NULL;
    ck_assert_int_eq(pthread_create(&t, NULL, free_elsewhere, p), 0);
    ck_assert_int_eq(pthread_join(t, &ret), 0);
    ck_assert_ptr_eq(ret, p);
}
END_TEST

Suite *tok_secmem_suite(void)
{
    Suite *s = suite_create("secmem");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_secmem_zeroed_every_size);
    tcase_add_test(core, test_secmem_reuse_is_wiped);
    tcase_add_test(core, test_secmem_cache_bounded);
    tcase_add_test(core, test_secmem_free_on_another_thread);
    suite_add_tcase(s, core);
    return s;
}
