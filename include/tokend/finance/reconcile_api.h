/*
 * reconcile_api.h - settlement matching over HTTP (reports:read):
 *
 *   POST /v1/reconciliations?gateway=stripe|adyen   body = the settlement CSV
 *        -> 202 {"id": "rec_...", "object": "reconciliation", "status": "running"}
 *   GET  /v1/reconciliations/{id}                   -> status and the summary
 *   GET  /v1/reconciliations/{id}/exceptions?format=csv -> every unmatched line (streamed,
 *        TOK_RECON_API_PAGE rows a job, by seq)
 *
 * The body is bounded by --body-limit (h2o buffers whole request bodies and
 * its limit is global); larger reports go through `tokenctl reconcile`,
 * which streams the file.
 *
 * A run is a ledger.reconciliation_runs row (status running -> succeeded or
 * failed). The matching runs on a thread of its own (at most
 * TOK_RECON_API_RUNS_MAX at once), which feeds the engine (reconcile.h) in
 * TOK_RECON_API_CHUNK-byte pieces. Each of the engine's database needs is
 * one short job on the service pool, awaited by that thread: a lookup of at
 * most TOK_RECON_BATCH references, a page of TOK_RECON_API_PAGE ledger rows
 * for "missing in report", an insert of at most TOK_RECON_API_EXC_BATCH
 * exceptions, the final update. So a run never holds a database thread, a
 * transaction or a group-commit batch for longer than one such job, and the
 * event loops never wait for it. The references seen are kept in memory
 * (bounded by the body limit).
 */
#ifndef TOKEND_RECONCILE_API_H
#define TOKEND_RECONCILE_API_H

#include "tokend/core/common.h"
#include "tokend/http/http.h"
#include "tokend/finance/reconcile.h"

#define TOK_RECON_API_RUNS_MAX 4
#define TOK_RECON_API_CHUNK (64u * 1024u)
#define TOK_RECON_API_PAGE 1000
#define TOK_RECON_API_EXC_BATCH 500
#define TOK_RECON_API_MALFORMED_LISTED 100 /* malformed lines listed in the summary */
#define TOK_RECON_API_SUMMARY_MAX (64u * 1024u)

/** One malformed line, as the summary lists it. */
struct tok_recon_api_malformed {
    uint64_t line;
    const char *reason; /* static text from the engine */
};

/**
 * Writes the summary JSON: lines, matched, missing_in_ledger,
 * missing_in_report, amount_mismatches, currency_mismatches, malformed,
 * malformed_lines [{line, reason}] (the first n given), period {from, to}
 * (RFC 3339 or null), currencies [{currency, matched, matched_amount,
 * charges, refunds, fees, net}] (minor units).
 */
TOK_MUST_CHECK tok_status tok_recon_api_summary_json(const struct tok_recon_summary *s,
                                                     const struct tok_recon_api_malformed *mal,
                                                     size_t nmal, struct tok_buf *b);

/** POST /v1/reconciliations (reports:read). */
void tok_recon_api_create(struct tok_req *r);
/** GET /v1/reconciliations/{id} (reports:read). */
void tok_recon_api_get(struct tok_req *r);
/** GET /v1/reconciliations/{id}/exceptions?format=csv (reports:read). */
void tok_recon_api_exceptions(struct tok_req *r);

#endif
