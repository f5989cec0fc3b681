/*
 * check_metrics.c - the exposition format byte for byte: families, samples, histogram
 * buckets (cumulative, +Inf = count, sum in seconds), collectors in order, and a full
 * output buffer reported instead of a cut line.
 */
#include "tokend/core/metrics.h"
#include "tokend/gateways/gateway_metrics.h"
#include "tokend/gateways/registry.h"

#include <check.h>
#include <stdlib.h>
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

static char *render_gateways(struct tok_gateway_stats *s)
{
    static char mem[16384];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem - 1);
    struct tok_metrics_out o = {&b, TOK_OK};
    tok_gateway_collect(s, &o);
    ck_assert_int_eq(o.st, TOK_OK);
    mem[b.len] = '\0';
    return mem;
}

START_TEST(test_gateway_calls)
{
    struct tok_gateway_stats *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    char *out = render_gateways(s);
    /* nothing called yet: the families, no samples */
    ck_assert_ptr_null(strstr(out, "tokend_gateway_calls_total{"));
    tok_gateway_stats_record(s, tok_gateway_stripe(), TOK_GW_CHARGE, TOK_GW_DECLINED, 120000);
    tok_gateway_stats_record(s, tok_gateway_stripe(), TOK_GW_CHARGE, TOK_GW_OK, 80000);
    tok_gateway_stats_record(s, tok_gateway_adyen(), TOK_GW_TOKENISE, TOK_GW_UNAVAILABLE, 15000000);
    out = render_gateways(s);
    ck_assert_ptr_nonnull(strstr(out, "tokend_gateway_calls_total{gateway=\"stripe\",op=\"charge\","
                                      "outcome=\"declined\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "tokend_gateway_calls_total{gateway=\"stripe\",op=\"charge\","
                                      "outcome=\"ok\"} 1\n"));
    /* an operation that was called shows its zero outcomes too, so rates divide */
    ck_assert_ptr_nonnull(strstr(out, "tokend_gateway_calls_total{gateway=\"stripe\",op=\"charge\","
                                      "outcome=\"error\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(out, "tokend_gateway_calls_total{gateway=\"adyen\",op=\"tokenise\","
                                      "outcome=\"unavailable\"} 1\n"));
    ck_assert_ptr_null(strstr(out, "gateway=\"sandbox\""));
    ck_assert_ptr_nonnull(strstr(out, "tokend_gateway_call_duration_seconds_bucket{gateway=\"stripe\","
                                      "op=\"charge\",le=\"0.1\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "tokend_gateway_call_duration_seconds_count{gateway=\"adyen\","
                                      "op=\"tokenise\"} 1\n"));
    free(s);
}
END_TEST

START_TEST(test_gateway_adversarial)
{
    struct tok_gateway_stats *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    static const struct tok_gateway_ops stranger = {"stranger", false, NULL};
    /* an adapter the registry does not know is "other"; an outcome out of range is an
     * error; an operation out of range and a NULL table are ignored */
    tok_gateway_stats_record(s, &stranger, TOK_GW_VOID, (enum tok_gateway_outcome)9, 1);
    tok_gateway_stats_record(s, tok_gateway_sandbox(), (enum tok_gateway_op)42, TOK_GW_OK, 1);
    tok_gateway_stats_record(NULL, tok_gateway_sandbox(), TOK_GW_CHARGE, TOK_GW_OK, 1);
    char *out = render_gateways(s);
    ck_assert_ptr_nonnull(strstr(out, "tokend_gateway_calls_total{gateway=\"other\",op=\"void\","
                                      "outcome=\"error\"} 1\n"));
    ck_assert_ptr_null(strstr(out, "gateway=\"sandbox\""));
    free(s);
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
    TCase *g = tcase_create("gateways");
    tcase_add_test(g, test_gateway_calls);
    suite_add_tcase(s, g);
    TCase *a = tcase_create("adversarial");
    tcase_add_test(a, test_gateway_adversarial);
    suite_add_tcase(s, a);
    return s;
}
