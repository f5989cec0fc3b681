/*
 * audit_chain.h - the audit chainer: hash-chains the audit log in blocks off
 * the request path (issue #9, sql/011).
 *
 * Requests insert audit rows unchained; this thread, with its own connection,
 * calls audit.chain_pending() every interval (and again at once while a pass
 * comes back full), which appends one block covering the rows that are final
 * (no transaction can add a row below them any more). No request waits for the
 * chain and no commit queues behind a chain lock. A last pass, which waits a
 * little for transactions in flight, runs when tokend stops. If the database
 * is away it retries at the next interval.
 */
#ifndef TOKEND_AUDIT_CHAIN_H
#define TOKEND_AUDIT_CHAIN_H

#include "tokend/core/common.h"

#include <libpq-fe.h>

struct tok_audit_chainer;

/**
 * Runs on the chainer's thread and connection after each pass that chained rows (and after
 * the first pass, to take a backlog), e.g. to seal the new blocks (vault/audit_seal.h).
 * Returns true when it left work for the next pass. ctx is borrowed for the chainer's life.
 */
struct tok_audit_chain_hook {
    bool (*after_pass)(void *ctx, PGconn *pg);
    void *ctx;
};

/**
 * Connects (blocking: call before the loops start) and starts the thread.
 * conninfo is copied; hook (may be NULL) is copied. TOK_ERR_DB with a one-line reason
 * (never the conninfo).
 */
TOK_MUST_CHECK tok_status tok_audit_chainer_new(const char *conninfo, unsigned interval_ms,
                                                const struct tok_audit_chain_hook *hook,
                                                struct tok_audit_chainer **out, char *why,
                                                size_t why_len);

struct tok_metrics_out;
/**
 * The /metrics collector (metrics.h), ctx the chainer: passes by result, rows chained, the
 * times of the last pass and the last block, and the rows not yet chained (audit lag).
 */
void tok_audit_chain_collect(void *ctx, struct tok_metrics_out *o);

/** Runs a last pass, stops the thread, closes its connection and frees *c. NULL is ignored. */
void tok_audit_chainer_free(struct tok_audit_chainer **c);

#endif
