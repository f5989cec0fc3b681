/*
 * gateway_metrics.c - gateway calls timed and counted (gateway_metrics.h).
 */
#include "tokend/gateways/gateway_metrics.h"
#include "tokend/gateways/registry.h"
#include "tokend/http/httpc.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const op_names[TOK_GW_STATS_OPS] = {
    [TOK_GW_TOKENISE] = "tokenise", [TOK_GW_CHARGE] = "charge", [TOK_GW_CAPTURE] = "capture",
    [TOK_GW_VOID] = "void",         [TOK_GW_REFUND] = "refund", [TOK_GW_DETACH] = "detach",
};
static const char *const outcome_names[TOK_GW_STATS_OUTCOMES] = {
    [TOK_GW_OK] = "ok",
    [TOK_GW_DECLINED] = "declined",
    [TOK_GW_ERROR] = "error",
    [TOK_GW_UNAVAILABLE] = "unavailable",
};

/* The registry's adapters, in a fixed order; anything else is the last slot, "other". */
static unsigned kind_of(const struct tok_gateway_ops *ops)
{
    const struct tok_gateway_ops *all[TOK_GW_STATS_KINDS - 1] = {
        tok_gateway_sandbox(), tok_gateway_stripe(), tok_gateway_adyen()};
    for (unsigned i = 0; i < TOK_ARRAY_LEN(all); i++)
        if (all[i] == ops)
            return i;
    return TOK_GW_STATS_KINDS - 1;
}

static const char *kind_name(unsigned k)
{
    const struct tok_gateway_ops *all[TOK_GW_STATS_KINDS - 1] = {
        tok_gateway_sandbox(), tok_gateway_stripe(), tok_gateway_adyen()};
    return k < TOK_ARRAY_LEN(all) ? all[k]->name : "other";
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void tok_gateway_stats_record(struct tok_gateway_stats *s, const struct tok_gateway_ops *ops,
                              enum tok_gateway_op op, enum tok_gateway_outcome outcome,
                              uint64_t us)
{
    if (s == NULL || (unsigned)op >= TOK_GW_STATS_OPS)
        return;
    unsigned k = kind_of(ops);
    unsigned oc = (unsigned)outcome < TOK_GW_STATS_OUTCOMES ? (unsigned)outcome : TOK_GW_ERROR;
    atomic_fetch_add_explicit(&s->calls[k][op][oc], 1, memory_order_relaxed);
    tok_hist_observe_us(&s->latency[k][op], us);
}

static void on_metered_done(struct tok_gateway_call *call)
{
    uint64_t now = mono_us();
    tok_gateway_stats_record(call->meter_stats, call->meter_ops, call->op, call->outcome,
                             now > call->meter_t0_us ? now - call->meter_t0_us : 0);
    call->done = call->meter_done;
    call->meter_done = NULL;
    call->done(call); /* may free call: nothing of it is read after */
}

void tok_gateway_submit(const struct tok_gateway_ops *ops, struct tok_gateway_call *call)
{
    struct tok_gateway_stats *s = call->env != NULL ? call->env->stats : NULL;
    if (s != NULL && call->done != NULL) {
        call->meter_stats = s;
        call->meter_ops = ops;
        call->meter_t0_us = mono_us();
        call->meter_done = call->done;
        call->done = on_metered_done;
    }
    ops->submit(ops, call);
}

void tok_gateway_collect(void *ctx, struct tok_metrics_out *o)
{
    const struct tok_gateway_stats *s = ctx;
    char lab[160];
    tok_metrics_family(o, "tokend_gateway_calls_total", "counter",
                       "Calls to payment gateways by adapter, operation and outcome (declined: "
                       "the card was refused; error: the gateway failed to process; "
                       "unavailable: timeout, 5xx or no connection)");
    for (unsigned k = 0; k < TOK_GW_STATS_KINDS; k++)
        for (unsigned op = 0; op < TOK_GW_STATS_OPS; op++) {
            if (atomic_load_explicit(&s->latency[k][op].count, memory_order_relaxed) == 0)
                continue;
            for (unsigned oc = 0; oc < TOK_GW_STATS_OUTCOMES; oc++) {
                snprintf(lab, sizeof lab, "gateway=\"%s\",op=\"%s\",outcome=\"%s\"", kind_name(k),
                         op_names[op], outcome_names[oc]);
                tok_metrics_u64(o, "tokend_gateway_calls_total", lab,
                                atomic_load_explicit(&s->calls[k][op][oc], memory_order_relaxed));
            }
        }
    tok_metrics_family(o, "tokend_gateway_call_duration_seconds", "histogram",
                       "From a call's submission to its answer, by adapter and operation");
    for (unsigned k = 0; k < TOK_GW_STATS_KINDS; k++)
        for (unsigned op = 0; op < TOK_GW_STATS_OPS; op++) {
            if (atomic_load_explicit(&s->latency[k][op].count, memory_order_relaxed) == 0)
                continue;
            snprintf(lab, sizeof lab, "gateway=\"%s\",op=\"%s\"", kind_name(k), op_names[op]);
            tok_metrics_hist(o, "tokend_gateway_call_duration_seconds", lab, &s->latency[k][op]);
        }
}
