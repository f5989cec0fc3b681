/*
 * reports.h - finance reads: GET /v1/charges and GET /v1/refunds (filtered,
 * keyset-paginated lists), and what exports.c shares with them: the query
 * parameters, the SQL over the reporting.* views and the submission of jobs
 * to the reporting pool (tokend_reporting, which can read nothing but those
 * views, so no code path here can reach a ciphertext or a fingerprint).
 *
 * Order is (created_at, id), which is total and stable: a cursor is the id
 * of the last row seen, and the next page starts strictly after that row's
 * (created_at, id), so rows inserted meanwhile never shift a page.
 */
#ifndef TOKEND_REPORTS_H
#define TOKEND_REPORTS_H

#include "tokend/core/common.h"
#include "tokend/http/http.h"

#define TOK_REPORT_LIMIT_DEFAULT 100
#define TOK_REPORT_LIMIT_MAX 1000
#define TOK_REPORT_PARAM_MAX 200
#define TOK_REPORT_TS_MAX 40 /* a timestamptz as PostgreSQL prints it */

enum tok_report_kind { TOK_REPORT_CHARGES, TOK_REPORT_REFUNDS, TOK_REPORT_EVENTS };

#define TOK_REPORT_TYPE_MAX 100 /* an event type, as ledger.events allows */

enum tok_report_format { TOK_REPORT_JSON, TOK_REPORT_CSV, TOK_REPORT_NDJSON };

/** What a list or export asks for; strings are "" when the filter is off. */
struct tok_report_query {
    enum tok_report_kind kind;
    enum tok_report_format format;
    char created_from[TOK_REPORT_TS_MAX]; /* "@<epoch seconds>" text for SQL, or "" */
    char created_to[TOK_REPORT_TS_MAX];
    char status[32];
    char gateway[64];
    char invoice_ref[TOK_REPORT_PARAM_MAX + 1];
    char currency[4];
    char type[TOK_REPORT_TYPE_MAX + 1]; /* events only: "charge.succeeded"... */
    char starting_after[64];
    unsigned limit;
};

/**
 * Parses a query string (after '?', not decoded) for a list (export = false:
 * created_from, created_to, status, gateway, invoice_ref, currency, limit,
 * starting_after; for events: created_from, created_to, type, limit,
 * starting_after) or an export (export = true: from, to, format and the
 * same filters, no limit or cursor). TOK_ERR_INPUT with *bad_param set to the
 * offending parameter's name (static text) and *why to a reason.
 */
TOK_MUST_CHECK tok_status tok_reports_parse_query(struct tok_slice query, enum tok_report_kind kind,
                                                  bool export, struct tok_report_query *q,
                                                  const char **bad_param, const char **why);

/**
 * Runs the page query on a reporting connection: rows strictly after
 * (after_ts, after_id) ("" for both = from the start), at most `limit`.
 * Columns: see the *_COLUMNS in reports.c; the last two are the raw
 * created_at (for the next cursor) and the id. *out is the caller's to PQclear.
 */
TOK_MUST_CHECK tok_status tok_reports_page(struct tok_db_conn *conn, const char *tenant_id,
                                           bool livemode, const struct tok_report_query *q,
                                           const char *after_ts, const char *after_id,
                                           unsigned limit, PGresult **out);

/** Appends row i of a tok_reports_page result as a JSON object. */
TOK_MUST_CHECK tok_status tok_reports_row_json(enum tok_report_kind kind, PGresult *res, int i,
                                               struct tok_buf *b);

/** Appends the CSV header record for kind. */
TOK_MUST_CHECK tok_status tok_reports_csv_header(enum tok_report_kind kind, struct tok_buf *b);

/** Appends row i as a CSV record (amounts in minor units, currency in its own column). */
TOK_MUST_CHECK tok_status tok_reports_row_csv(enum tok_report_kind kind, PGresult *res, int i,
                                              struct tok_buf *b);

/** Index of the raw created_at column (the cursor) in a page result. */
int tok_reports_cursor_column(enum tok_report_kind kind);

/**
 * Queues call on the reporting pool (like tok_http_call for the main one).
 * The caller checked r->app->reporting_db != NULL.
 */
void tok_reports_call(struct tok_req *r, struct tok_call *call);

/** GET /v1/charges (reports:read or charges:write). */
void tok_reports_list_charges(struct tok_req *r);
/** GET /v1/refunds (reports:read or charges:write). */
void tok_reports_list_refunds(struct tok_req *r);
/**
 * GET /v1/events (reports:read or charges:write) over reporting.events:
 * created_from, created_to, type, limit, starting_after (an evt_ id).
 * Rows: {id, object: "event", livemode, type, data, created_at}.
 */
void tok_reports_list_events(struct tok_req *r);

#endif
