#include "tokend/http/ratelimit.h"
#include "tokend/core/metrics.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define SEC 1000000ull
#define T0 (1000ull * SEC) /* an arbitrary start: the clock is injected */

static struct tok_ratelimit *rl;

static struct tok_slice k(const char *s)
{
    return tok_slice_str(s);
}

static void make(uint32_t rate, uint32_t burst)
{
    uint32_t m = rate * 1000; /* whole tokens per second in the tests, thousandths in the API */
    struct tok_rl_limit l[TOK_RL_CLASSES] = {{m, burst}, {m, burst}, {m, burst}};
    ck_assert_int_eq(tok_ratelimit_new(l, &rl), TOK_OK);
}

static void teardown(void)
{
    tok_ratelimit_free(&rl);
    ck_assert_ptr_null(rl);
}

static struct tok_rl_stats stats(enum tok_rl_class c)
{
    struct tok_rl_stats s;
    ck_assert_int_eq(tok_ratelimit_stats(rl, c, &s), TOK_OK);
    return s;
}

/* burst requests pass at once, the next is refused with the seconds until a token is back */
START_TEST(test_rl_burst_then_refused)
{
    make(2, 5);
    uint32_t ra = 0;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("key_a"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("key_a"), T0, &ra), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(ra, 1); /* 0.5 s at 2/s, rounded up to whole seconds */
    struct tok_rl_stats s = stats(TOK_RL_TOKENISE);
    ck_assert_uint_eq(s.allowed, 5);
    ck_assert_uint_eq(s.refused, 1);
    ck_assert_uint_eq(s.entries, 1);
    ck_assert_uint_eq(s.rate_milli, 2000);
    ck_assert_uint_eq(s.burst, 5);
}
END_TEST

/* the bucket refills at `rate`, never above `burst` */
START_TEST(test_rl_refill)
{
    make(2, 5);
    uint32_t ra = 0;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), T0, &ra), TOK_OK);
    /* 0.499 s: not yet one token */
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), T0 + 499000, &ra),
                     TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), T0 + SEC / 2, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), T0 + SEC / 2, &ra),
                     TOK_ERR_BOUNDS);
    /* an hour later: burst tokens, not 7,200 */
    uint64_t later = T0 + 3600 * SEC;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), later, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), later, &ra), TOK_ERR_BOUNDS);
}
END_TEST

/* keys and classes have buckets of their own */
START_TEST(test_rl_keys_and_classes_apart)
{
    make(1, 1);
    uint32_t ra = 0;
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("key_a"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("key_a"), T0, &ra), TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("key_b"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), T0, &ra), TOK_OK);
    /* a key that is a prefix of another is another key */
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("key_"), T0, &ra), TOK_OK);
    ck_assert_uint_eq(stats(TOK_RL_TOKENISE).entries, 3);
    ck_assert_uint_eq(stats(TOK_RL_CHARGE).entries, 1);
}
END_TEST

/* failed authentications: peek before, record after; peek takes nothing */
START_TEST(test_rl_peek_and_record)
{
    make(1, 3);
    uint32_t ra = 0;
    struct tok_slice ip = k("\x04\x7f\x00\x00\x01");
    for (int i = 0; i < 10; i++) /* an address with no bucket is not refused, nor made one */
        ck_assert_int_eq(tok_ratelimit_peek(rl, TOK_RL_AUTH_FAIL, ip, T0, &ra), TOK_OK);
    ck_assert_uint_eq(stats(TOK_RL_AUTH_FAIL).entries, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(tok_ratelimit_peek(rl, TOK_RL_AUTH_FAIL, ip, T0, &ra), TOK_OK);
        tok_ratelimit_record(rl, TOK_RL_AUTH_FAIL, ip, T0);
    }
    ck_assert_int_eq(tok_ratelimit_peek(rl, TOK_RL_AUTH_FAIL, ip, T0, &ra), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(ra, 1);
    /* recording more never refuses and never goes below empty: one second gives one back */
    for (int i = 0; i < 50; i++)
        tok_ratelimit_record(rl, TOK_RL_AUTH_FAIL, ip, T0);
    ck_assert_int_eq(tok_ratelimit_peek(rl, TOK_RL_AUTH_FAIL, ip, T0 + SEC, &ra), TOK_OK);
    struct tok_rl_stats s = stats(TOK_RL_AUTH_FAIL);
    ck_assert_uint_eq(s.recorded, 53);
    ck_assert_uint_eq(s.refused, 1);
    ck_assert_uint_eq(s.allowed, 0);
}
END_TEST

/* rate 0 turns a class off: nothing refused, no memory, no entries */
START_TEST(test_rl_off)
{
    struct tok_rl_limit l[TOK_RL_CLASSES] = {{0, 0}, {3000, 1}, {0, 7}};
    ck_assert_int_eq(tok_ratelimit_new(l, &rl), TOK_OK);
    uint32_t ra = 0;
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("key_a"), T0, &ra), TOK_OK);
    tok_ratelimit_record(rl, TOK_RL_AUTH_FAIL, k("x"), T0);
    ck_assert_int_eq(tok_ratelimit_peek(rl, TOK_RL_AUTH_FAIL, k("x"), T0, &ra), TOK_OK);
    ck_assert_uint_eq(stats(TOK_RL_TOKENISE).entries, 0);
    ck_assert_uint_eq(stats(TOK_RL_TOKENISE).rate_milli, 0);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("key_a"), T0, &ra), TOK_ERR_BOUNDS);
}
END_TEST

/* Retry-After is whole seconds, rounded up */
START_TEST(test_rl_retry_after_rounding)
{
    struct tok_rl_limit l[TOK_RL_CLASSES] = {{1000, 1}, {0, 0}, {0, 0}};
    ck_assert_int_eq(tok_ratelimit_new(l, &rl), TOK_OK);
    uint32_t ra = 0;
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0 + 1, &ra), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(ra, 1);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0 + SEC - 1, &ra),
                     TOK_ERR_BOUNDS);
    ck_assert_uint_eq(ra, 1);
}
END_TEST

/* rates below one per second: 0.1/s is a token every 10 s; 0.001/s (the smallest) every
 * 1,000 s */
START_TEST(test_rl_fractional_rates)
{
    struct tok_rl_limit l[TOK_RL_CLASSES] = {{100, 1}, {1, 1}, {0, 0}};
    ck_assert_int_eq(tok_ratelimit_new(l, &rl), TOK_OK);
    uint32_t ra = 0;
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0, &ra), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(ra, 10);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0 + 10 * SEC - 1, &ra),
                     TOK_ERR_BOUNDS);
    ck_assert_uint_eq(ra, 1);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0 + 10 * SEC, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("a"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, k("a"), T0, &ra), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(ra, 1000);
}
END_TEST

/* limits: burst 1, the maximum rate and burst, key lengths 0, 1, max, max + 1 */
START_TEST(test_rl_limits)
{
    struct tok_rl_limit l[TOK_RL_CLASSES] = {
        {TOK_RL_RATE_MILLI_MAX, TOK_RL_BURST_MAX}, {1000, 1}, {TOK_RL_RATE_MILLI_MAX, 1}};
    ck_assert_int_eq(tok_ratelimit_new(l, &rl), TOK_OK);
    uint32_t ra = 0;
    char key[TOK_RL_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, tok_slice_of(key, 0), T0, &ra),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, tok_slice_of(key, 1), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, tok_slice_of(key, TOK_RL_KEY_MAX), T0,
                                        &ra),
                     TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE,
                                        tok_slice_of(key, TOK_RL_KEY_MAX + 1), T0, &ra),
                     TOK_ERR_INPUT);
    /* burst 1: one, then refused */
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_CHARGE, tok_slice_of(key, 1), T0, &ra),
                     TOK_ERR_BOUNDS);
    /* the largest burst and rate: no overflow however long the bucket sat */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("big"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("big"), UINT64_MAX, &ra), TOK_OK);
    /* 1,000,000 per second: one token a microsecond */
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_AUTH_FAIL, k("ip"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_AUTH_FAIL, k("ip"), T0, &ra), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(ra, 1);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_AUTH_FAIL, k("ip"), T0 + 1, &ra), TOK_OK);
}
END_TEST

START_TEST(test_rl_bad_config)
{
    struct tok_rl_limit l[TOK_RL_CLASSES] = {{TOK_RL_RATE_MILLI_MAX + 1, 1}, {0, 0}, {0, 0}};
    ck_assert_int_eq(tok_ratelimit_new(l, &rl), TOK_ERR_INPUT);
    ck_assert_ptr_null(rl);
    struct tok_rl_limit l2[TOK_RL_CLASSES] = {{1000, TOK_RL_BURST_MAX + 1}, {0, 0}, {0, 0}};
    ck_assert_int_eq(tok_ratelimit_new(l2, &rl), TOK_ERR_INPUT);
    struct tok_rl_limit l3[TOK_RL_CLASSES] = {{0, 0}, {5000, 0}, {0, 0}}; /* limited, no burst */
    ck_assert_int_eq(tok_ratelimit_new(l3, &rl), TOK_ERR_INPUT);
    ck_assert_ptr_null(rl);
    struct tok_rl_stats s;
    make(1, 1);
    ck_assert_int_eq(tok_ratelimit_stats(rl, TOK_RL_CLASSES, &s), TOK_ERR_INTERNAL);
    uint32_t ra;
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_NONE, k("a"), T0, &ra), TOK_ERR_INTERNAL);
    ck_assert_str_eq(tok_ratelimit_class_name(TOK_RL_AUTH_FAIL), "auth_failure");
    ck_assert_str_eq(tok_ratelimit_class_name(TOK_RL_NONE), "?");
}
END_TEST

/* a clock that goes backwards gives nothing back and breaks nothing */
START_TEST(test_rl_clock_backwards)
{
    make(1, 2);
    uint32_t ra = 0;
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0, &ra), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0 - 10 * SEC, &ra),
                     TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_ratelimit_take(rl, TOK_RL_TOKENISE, k("a"), T0 + SEC, &ra), TOK_OK);
}
END_TEST

/*
 * An attacker with many keys (addresses) cannot grow the table, and cannot push a throttled
 * key out of it: the victims of eviction are the fullest buckets, never the empty one.
 */
START_TEST(test_rl_flood_bounded_and_throttled_kept)
{
    make(1, 5);
    uint32_t ra = 0;
    for (int i = 0; i < 5; i++)
        tok_ratelimit_record(rl, TOK_RL_AUTH_FAIL, k("attacker"), T0);
    ck_assert_int_eq(tok_ratelimit_peek(rl, TOK_RL_AUTH_FAIL, k("attacker"), T0, &ra),
                     TOK_ERR_BOUNDS);
    char key[32];
    for (unsigned i = 0; i < 20 * TOK_RL_SLOTS; i++) {
        snprintf(key, sizeof key, "bad-%u", i);
        tok_ratelimit_record(rl, TOK_RL_AUTH_FAIL, k(key), T0);
    }
    struct tok_rl_stats s = stats(TOK_RL_AUTH_FAIL);
    ck_assert_uint_le(s.entries, TOK_RL_SLOTS);
    ck_assert_uint_gt(s.evicted, 0);
    ck_assert_uint_eq(s.entries + s.evicted, 20 * TOK_RL_SLOTS + 1);
    ck_assert_int_eq(tok_ratelimit_peek(rl, TOK_RL_AUTH_FAIL, k("attacker"), T0, &ra),
                     TOK_ERR_BOUNDS);
}
END_TEST

/* client addresses: IPv4 by address, IPv4-mapped as IPv4, IPv6 by /64 */
START_TEST(test_rl_addr_key)
{
    uint8_t a[TOK_RL_ADDR_KEY_MAX], b[TOK_RL_ADDR_KEY_MAX];
    size_t al = 0, bl = 0;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(1234)};
    inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
    ck_assert_int_eq(tok_ratelimit_addr_key((struct sockaddr *)&v4, sizeof v4, a, &al), TOK_OK);
    ck_assert_uint_eq(al, 5);
    ck_assert_int_eq(memcmp(a, "\x04\xc0\x00\x02\x07", 5), 0);
    struct sockaddr_in6 m = {.sin6_family = AF_INET6, .sin6_port = htons(99)};
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &m.sin6_addr);
    ck_assert_int_eq(tok_ratelimit_addr_key((struct sockaddr *)&m, sizeof m, b, &bl), TOK_OK);
    ck_assert_uint_eq(bl, al);
    ck_assert_int_eq(memcmp(a, b, al), 0);
    struct sockaddr_in6 x = {.sin6_family = AF_INET6}, y = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8:1:2:aaaa::1", &x.sin6_addr);
    inet_pton(AF_INET6, "2001:db8:1:2:ffff:1:2:3", &y.sin6_addr);
    ck_assert_int_eq(tok_ratelimit_addr_key((struct sockaddr *)&x, sizeof x, a, &al), TOK_OK);
    ck_assert_int_eq(tok_ratelimit_addr_key((struct sockaddr *)&y, sizeof y, b, &bl), TOK_OK);
    ck_assert_uint_eq(al, 9);
    ck_assert_int_eq(memcmp(a, b, 9), 0); /* one /64, one bucket */
    inet_pton(AF_INET6, "2001:db8:1:3::1", &y.sin6_addr);
    ck_assert_int_eq(tok_ratelimit_addr_key((struct sockaddr *)&y, sizeof y, b, &bl), TOK_OK);
    ck_assert_int_ne(memcmp(a, b, 9), 0);
}
END_TEST

START_TEST(test_rl_addr_key_adversarial)
{
    uint8_t a[TOK_RL_ADDR_KEY_MAX];
    size_t al = 0;
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    struct sockaddr un = {.sa_family = AF_UNIX};
    ck_assert_int_eq(tok_ratelimit_addr_key((struct sockaddr *)&v4, sizeof v4 - 1, a, &al),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_ratelimit_addr_key((struct sockaddr *)&v6, sizeof v6 - 1, a, &al),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_ratelimit_addr_key(&un, sizeof un, a, &al), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_ratelimit_addr_key(&un, 0, a, &al), TOK_ERR_INPUT);
}
END_TEST

/* /metrics: refusals by limiter name, every limiter present (so rates divide), the rate */
START_TEST(test_rl_collect)
{
    make(1, 2);
    uint32_t ra = 0;
    int refused = 0;
    for (int i = 0; i < 5; i++)
        refused += tok_ratelimit_take(rl, TOK_RL_CHARGE, k("k1"), T0, &ra) == TOK_ERR_BOUNDS;
    ck_assert_int_eq(refused, 3);
    static char mem[8192];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem - 1);
    struct tok_metrics_out o = {&b, TOK_OK};
    tok_ratelimit_collect(rl, &o);
    ck_assert_int_eq(o.st, TOK_OK);
    mem[b.len] = '\0';
    ck_assert_ptr_nonnull(strstr(mem, "tokend_ratelimit_refused_total{limiter=\"charge\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(mem, "tokend_ratelimit_allowed_total{limiter=\"charge\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(mem, "tokend_ratelimit_refused_total{limiter=\"tokenise\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(mem, "tokend_ratelimit_refused_total{limiter=\"auth_failure\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(mem, "tokend_ratelimit_buckets{limiter=\"charge\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(mem, "tokend_ratelimit_rate{limiter=\"charge\"} 1\n"));
    ck_assert_ptr_null(strstr(mem, "k1")); /* keys never reach the output */
}
END_TEST

Suite *tok_ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    TCase *all[] = {core, limits, adv};
    for (size_t i = 0; i < 3; i++)
        tcase_add_checked_fixture(all[i], NULL, teardown);
    tcase_add_test(core, test_rl_burst_then_refused);
    tcase_add_test(core, test_rl_refill);
    tcase_add_test(core, test_rl_keys_and_classes_apart);
    tcase_add_test(core, test_rl_peek_and_record);
    tcase_add_test(core, test_rl_off);
    tcase_add_test(core, test_rl_addr_key);
    tcase_add_test(core, test_rl_collect);
    tcase_add_test(limits, test_rl_retry_after_rounding);
    tcase_add_test(limits, test_rl_limits);
    tcase_add_test(limits, test_rl_fractional_rates);
    tcase_add_test(limits, test_rl_bad_config);
    tcase_add_test(adv, test_rl_clock_backwards);
    tcase_add_test(adv, test_rl_flood_bounded_and_throttled_kept);
    tcase_add_test(adv, test_rl_addr_key_adversarial);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
