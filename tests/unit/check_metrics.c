/*
 * check_metrics.c - the exposition format byte for byte: families, samples, histogram
 * buckets (cumulative, +Inf = count, sum in seconds), collectors in order, and a full
 * output buffer reported instead of a cut line.
 */
#include "tokend/core/metrics.h"

#include <check.h>
#include <string.h>

static void collect_two(void *ctx, struct tok_metrics_out *o)
{
    const unsigned *n = ctx;
    tok_metrics_family(o, "t_total", "counter", "Things");
    tok_metrics_u64(o, "t_total", "k=\"a\"", *n);
    tok_metrics_u64(o, "t_total", NULL, 7);
}

static void collect_gauge(void *ctx, struct tok_metrics_out *o)
{
    (void)ctx;
    tok_metrics_family(o, "g", "gauge", "A gauge");
    tok_metrics_double(o, "g", "", 0.5);
}

START_TEST(test_render)
{
    struct tok_metrics_registry reg;
    memset(&reg, 0, sizeof reg);
    unsigned n = 3;
    ck_assert_int_eq(tok_metrics_register(&reg, collect_two, &n), TOK_OK);
    ck_assert_int_eq(tok_metrics_register(&reg, collect_gauge, NULL), TOK_OK);
    char mem[512];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_metrics_render(&reg, &b), TOK_OK);
    ck_assert_int_eq(tok_buf_putc(&b, '\0'), TOK_OK);
    ck_assert_str_eq(mem, "# HELP t_total Things\n# TYPE t_total counter\nt_total{k=\"a\"} 3\n"
                          "t_total 7\n# HELP g A gauge\n# TYPE g gauge\ng 0.5\n");
}
END_TEST

START_TEST(test_histogram)
{
    struct tok_hist h;
    memset(&h, 0, sizeof h);
    tok_hist_observe_us(&h, 1000);     /* 0.001 s: first bucket */
    tok_hist_observe_us(&h, 5000);     /* 0.005 s: on the bound, still the first */
    tok_hist_observe_us(&h, 200000);   /* 0.2 s: le=0.25 */
    tok_hist_observe_us(&h, 60000000); /* 60 s: above every bound, +Inf only */
    struct tok_hist sum;
    memset(&sum, 0, sizeof sum);
    tok_hist_add(&sum, &h);
    tok_hist_add(&sum, &h);
    char mem[2048];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    struct tok_metrics_out o = {&b, TOK_OK};
    tok_metrics_hist(&o, "d_seconds", "r=\"x\"", &sum);
    ck_assert_int_eq(o.st, TOK_OK);
    ck_assert_int_eq(tok_buf_putc(&b, '\0'), TOK_OK);
    ck_assert_ptr_nonnull(strstr(mem, "d_seconds_bucket{r=\"x\",le=\"0.005\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(mem, "d_seconds_bucket{r=\"x\",le=\"0.1\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(mem, "d_seconds_bucket{r=\"x\",le=\"0.25\"} 6\n"));
    ck_assert_ptr_nonnull(strstr(mem, "d_seconds_bucket{r=\"x\",le=\"10\"} 6\n"));
    ck_assert_ptr_nonnull(strstr(mem, "d_seconds_bucket{r=\"x\",le=\"+Inf\"} 8\n"));
    ck_assert_ptr_nonnull(strstr(mem, "d_seconds_sum{r=\"x\"} 120.41200000000001\n"));
    ck_assert_ptr_nonnull(strstr(mem, "d_seconds_count{r=\"x\"} 8\n"));
}
END_TEST

START_TEST(test_limits)
{
    struct tok_metrics_registry reg;
    memset(&reg, 0, sizeof reg);
    unsigned n = 1;
    for (unsigned i = 0; i < TOK_METRICS_COLLECTORS_MAX; i++)
        ck_assert_int_eq(tok_metrics_register(&reg, collect_two, &n), TOK_OK);
    ck_assert_int_eq(tok_metrics_register(&reg, collect_two, &n), TOK_ERR_BOUNDS);
    char mem[40];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_metrics_render(&reg, &b), TOK_ERR_BOUNDS);
    ck_assert_uint_le(b.len, sizeof mem);
}
END_TEST

Suite *tok_metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *c = tcase_create("core");
    tcase_add_test(c, test_render);
    tcase_add_test(c, test_histogram);
    suite_add_tcase(s, c);
    TCase *l = tcase_create("limits");
    tcase_add_test(l, test_limits);
    suite_add_tcase(s, l);
    return s;
}
