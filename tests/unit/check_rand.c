#include "tokend/core/rand.h"

#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define DRAWS 20000u

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* Ids drawn across many refills never repeat, and bytes are spread evenly. */
START_TEST(test_rand_public_distinct_and_spread)
{
    static unsigned char ids[DRAWS][16];
    unsigned long counts[256] = {0};
    for (unsigned i = 0; i < DRAWS; i++) {
        tok_rand_public(ids[i], sizeof ids[i]);
        for (size_t k = 0; k < sizeof ids[i]; k++)
            counts[ids[i][k]]++;
    }
    qsort(ids, DRAWS, sizeof ids[0], cmp16);
    for (unsigned i = 1; i < DRAWS; i++)
        ck_assert_msg(memcmp(ids[i], ids[i - 1], 16) != 0, "two draws are equal");
    /* 320,000 bytes: 1,250 expected per value; a chi-square of 255 degrees of freedom above
     * 400 has a probability far below one in a million */
    double chi = 0;
    for (unsigned v = 0; v < 256; v++) {
        double d = (double)counts[v] - DRAWS * 16.0 / 256.0;
        chi += d * d / (DRAWS * 16.0 / 256.0);
    }
    ck_assert_msg(chi < 400.0, "chi-square %.1f", chi);
}
END_TEST

/* Draws of every size up to the pool, mixed, cross refills without repeating bytes: two
 * consecutive 24-byte nonces never share a 24-byte window. */
START_TEST(test_rand_public_sizes_and_refills)
{
    unsigned char a[TOK_RAND_POOLED_MAX + 1], b[TOK_RAND_POOLED_MAX + 1];
    for (unsigned round = 0; round < 200; round++) {
        size_t n = 1 + round % (TOK_RAND_POOLED_MAX + 1); /* 65 bytes goes around the pool */
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        tok_rand_public(a, n);
        tok_rand_public(b, n);
        if (n >= 8)
            ck_assert_msg(memcmp(a, b, n) != 0, "two draws of %zu bytes are equal", n);
        if (n >= 16) /* all-zero 16 bytes would mean an unfilled or wiped pool was served */
            ck_assert(!sodium_is_zero(a, n) && !sodium_is_zero(b, n));
    }
}
END_TEST

Suite *tok_rand_suite(void)
{
    Suite *s = suite_create("rand");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_rand_public_distinct_and_spread);
    tcase_add_test(core, test_rand_public_sizes_and_refills);
    suite_add_tcase(s, core);
    return s;
}
