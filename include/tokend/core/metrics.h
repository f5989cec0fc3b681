/*
 * metrics.h - Prometheus text exposition (format 0.0.4) without a global registry.
 *
 * Each module keeps its own figures (relaxed atomics, written by the thread that owns them)
 * and offers a collector: a function that writes its families when /metrics is scraped.
 * tokend_main.c registers the collectors of the modules it started, so no layer reaches up
 * to find them, and a scrape only reads. Label values come from fixed tables (routes,
 * statuses, gateway names, outcomes), never from a request, so the series count is bounded
 * and nothing a caller sends can reach the output.
 */
#ifndef TOKEND_CORE_METRICS_H
#define TOKEND_CORE_METRICS_H

#include "tokend/core/common.h"

#include <stdatomic.h>

#define TOK_METRICS_COLLECTORS_MAX 32
#define TOK_METRICS_OUT_MAX (1024u * 1024u) /* a scrape's largest answer */

/** Latency buckets, seconds: Prometheus' default series, which operators' dashboards expect. */
#define TOK_HIST_BUCKETS 11
extern const double tok_hist_bounds[TOK_HIST_BUCKETS];

/** A histogram of durations. Zero it to start; updated with relaxed atomics. */
struct tok_hist {
    _Atomic uint64_t bucket[TOK_HIST_BUCKETS]; /* not cumulative: [i] counts bounds[i-1] < v <= bounds[i] */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

/** Records one duration in microseconds. */
void tok_hist_observe_us(struct tok_hist *h, uint64_t us);

/** Adds src into dst (summing per-thread histograms at scrape time). */
void tok_hist_add(struct tok_hist *dst, const struct tok_hist *src);

/** Where a collector writes; st keeps the first error, later writes do nothing. */
struct tok_metrics_out {
    struct tok_buf *buf;
    tok_status st;
};

/** "# HELP name help\n# TYPE name type\n"; type is counter, gauge or histogram. */
void tok_metrics_family(struct tok_metrics_out *o, const char *name, const char *type,
                        const char *help);

/**
 * One sample: name{labels} value. labels is the inside of the braces, already escaped
 * ("route=\"/v1/tokens\",status=\"201\""), or NULL/"" for none.
 */
void tok_metrics_u64(struct tok_metrics_out *o, const char *name, const char *labels,
                     uint64_t value);
void tok_metrics_double(struct tok_metrics_out *o, const char *name, const char *labels,
                        double value);

/** The _bucket (cumulative, le=...), _sum (seconds) and _count series of a histogram. */
void tok_metrics_hist(struct tok_metrics_out *o, const char *name, const char *labels,
                      const struct tok_hist *h);

typedef void (*tok_metrics_collect_fn)(void *ctx, struct tok_metrics_out *o);

struct tok_metrics_registry {
    struct {
        tok_metrics_collect_fn fn;
        void *ctx;
    } c[TOK_METRICS_COLLECTORS_MAX];
    unsigned n;
};

/** Adds a collector (before the scrape listener starts). TOK_ERR_BOUNDS when full. */
TOK_MUST_CHECK tok_status tok_metrics_register(struct tok_metrics_registry *reg,
                                               tok_metrics_collect_fn fn, void *ctx);

/** Runs every collector into out. TOK_ERR_BOUNDS when the output does not fit. */
TOK_MUST_CHECK tok_status tok_metrics_render(const struct tok_metrics_registry *reg,
                                             struct tok_buf *out);

#endif
