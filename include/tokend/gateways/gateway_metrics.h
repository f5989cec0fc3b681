/*
 * gateway_metrics.h - gateway calls counted and timed for /metrics (issue #19).
 *
 * Callers submit through tok_gateway_submit instead of ops->submit: when the call's
 * environment carries a tok_gateway_stats, the call is timed from submission to its `done`
 * and counted by adapter, operation and outcome. The adapters know nothing of it. Labels
 * come from fixed tables (the registry's adapter names, the operation and outcome enums),
 * never from a tenant or a gateway's answer.
 */
#ifndef TOKEND_GATEWAYS_GATEWAY_METRICS_H
#define TOKEND_GATEWAYS_GATEWAY_METRICS_H

#include "tokend/core/metrics.h"
#include "tokend/gateways/gateway.h"

#define TOK_GW_STATS_KINDS 4 /* sandbox, stripe, adyen, then "other" */
#define TOK_GW_STATS_OPS 6   /* enum tok_gateway_op */
#define TOK_GW_STATS_OUTCOMES 4 /* enum tok_gateway_outcome */

/** Shared by every loop thread: relaxed atomics. Zero it to start. */
struct tok_gateway_stats {
    _Atomic uint64_t calls[TOK_GW_STATS_KINDS][TOK_GW_STATS_OPS][TOK_GW_STATS_OUTCOMES];
    struct tok_hist latency[TOK_GW_STATS_KINDS][TOK_GW_STATS_OPS];
};

/**
 * Runs ops->submit(ops, call), timed and counted in call->env->stats when both are set.
 * The call's `done` still runs exactly once, on the same thread as without the meter.
 */
void tok_gateway_submit(const struct tok_gateway_ops *ops, struct tok_gateway_call *call);

/** Records one finished call (exposed for tests). */
void tok_gateway_stats_record(struct tok_gateway_stats *s, const struct tok_gateway_ops *ops,
                              enum tok_gateway_op op, enum tok_gateway_outcome outcome,
                              uint64_t us);

/**
 * The /metrics collector: tokend_gateway_calls_total{gateway,op,outcome} and
 * tokend_gateway_call_duration_seconds{gateway,op}, for every adapter and operation that
 * was called at least once. ctx is the struct tok_gateway_stats.
 */
void tok_gateway_collect(void *ctx, struct tok_metrics_out *o);

#endif
