/*
 * metrics.c - Prometheus text format: families, samples, histograms, the collector list.
 */
#include "tokend/core/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

const double tok_hist_bounds[TOK_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1.0,  2.5,   5.0,  10.0};

void tok_hist_observe_us(struct tok_hist *h, uint64_t us)
{
    double s = (double)us / 1e6;
    for (size_t i = 0; i < TOK_HIST_BUCKETS; i++) {
        if (s <= tok_hist_bounds[i]) {
            atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
            break;
        }
    }
    /* above the last bound: only count (the +Inf bucket is the count) */
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

void tok_hist_add(struct tok_hist *dst, const struct tok_hist *src)
{
    for (size_t i = 0; i < TOK_HIST_BUCKETS; i++)
        atomic_fetch_add_explicit(&dst->bucket[i],
                                  atomic_load_explicit(&src->bucket[i], memory_order_relaxed),
                                  memory_order_relaxed);
    atomic_fetch_add_explicit(&dst->count, atomic_load_explicit(&src->count, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&dst->sum_us,
                              atomic_load_explicit(&src->sum_us, memory_order_relaxed),
                              memory_order_relaxed);
}

static void put(struct tok_metrics_out *o, tok_status st)
{
    if (o->st == TOK_OK)
        o->st = st;
}

void tok_metrics_family(struct tok_metrics_out *o, const char *name, const char *type,
                        const char *help)
{
    if (o->st == TOK_OK)
        put(o, tok_buf_printf(o->buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type));
}

static void sample_head(struct tok_metrics_out *o, const char *name, const char *labels)
{
    if (o->st != TOK_OK)
        return;
    if (labels != NULL && labels[0] != '\0')
        put(o, tok_buf_printf(o->buf, "%s{%s} ", name, labels));
    else
        put(o, tok_buf_printf(o->buf, "%s ", name));
}

void tok_metrics_u64(struct tok_metrics_out *o, const char *name, const char *labels,
                     uint64_t value)
{
    sample_head(o, name, labels);
    if (o->st == TOK_OK)
        put(o, tok_buf_printf(o->buf, "%" PRIu64 "\n", value));
}

void tok_metrics_double(struct tok_metrics_out *o, const char *name, const char *labels,
                        double value)
{
    sample_head(o, name, labels);
    if (o->st != TOK_OK)
        return;
    if (isnan(value))
        put(o, tok_buf_puts(o->buf, "NaN\n"));
    else if (isinf(value))
        put(o, tok_buf_puts(o->buf, value > 0 ? "+Inf\n" : "-Inf\n"));
    else
        put(o, tok_buf_printf(o->buf, "%.17g\n", value));
}

void tok_metrics_hist(struct tok_metrics_out *o, const char *name, const char *labels,
                      const struct tok_hist *h)
{
    char series[160], lab[512];
    const char *sep = (labels != NULL && labels[0] != '\0') ? "," : "";
    const char *pre = (labels != NULL) ? labels : "";
    uint64_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    uint64_t cum = 0;
    snprintf(series, sizeof series, "%s_bucket", name);
    for (size_t i = 0; i < TOK_HIST_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        /* a reader racing writers may see a bucket before the count: keep it monotonic */
        if (cum > count)
            count = cum;
        snprintf(lab, sizeof lab, "%s%sle=\"%g\"", pre, sep, tok_hist_bounds[i]);
        tok_metrics_u64(o, series, lab, cum);
    }
    snprintf(lab, sizeof lab, "%s%sle=\"+Inf\"", pre, sep);
    tok_metrics_u64(o, series, lab, count);
    snprintf(series, sizeof series, "%s_sum", name);
    tok_metrics_double(o, series, labels,
                       (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    snprintf(series, sizeof series, "%s_count", name);
    tok_metrics_u64(o, series, labels, count);
}

tok_status tok_metrics_register(struct tok_metrics_registry *reg, tok_metrics_collect_fn fn,
                                void *ctx)
{
    TOK_ENSURE(reg != NULL && fn != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(reg->n < TOK_METRICS_COLLECTORS_MAX, TOK_ERR_BOUNDS);
    reg->c[reg->n].fn = fn;
    reg->c[reg->n].ctx = ctx;
    reg->n++;
    return TOK_OK;
}

tok_status tok_metrics_render(const struct tok_metrics_registry *reg, struct tok_buf *out)
{
    TOK_ENSURE(reg != NULL && out != NULL, TOK_ERR_INTERNAL);
    struct tok_metrics_out o = {out, TOK_OK};
    for (unsigned i = 0; i < reg->n && o.st == TOK_OK; i++)
        reg->c[i].fn(reg->c[i].ctx, &o);
    return o.st;
}
