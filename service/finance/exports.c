/*
 * exports.c - streamed CSV / NDJSON exports (see exports.h).
 *
 * Lifetime: the export state is heap memory shared by the loop (generator
 * callbacks) and, while a chunk job is in flight, one database thread. A
 * guard in the request pool tells it when the request is gone; whichever
 * comes last - the request's end or the in-flight job's return - frees it.
 * The chunk buffer h2o is writing is never touched until h2o asks for more
 * (proceed), so one buffer is enough.
 */
#include "tokend/finance/exports.h"
#include "tokend/vault/auth.h"
#include "tokend/core/log.h"
#include "tokend/finance/reports.h"
#include "tokend/http/app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct export {
    struct tok_db_job job; /* first: the chunk job */
    h2o_generator_t gen;
    h2o_req_t *req; /* NULL once the request is gone */
    struct tok_worker *worker;
    struct tok_db *db;
    struct tok_report_query q;
    char tenant_id[TOK_ID_MAX];
    char request_id[TOK_REQUEST_ID_LEN + 1];
    bool livemode;
    bool header_done, last, in_flight;
    char after_ts[TOK_REPORT_TS_MAX];
    char after_id[64];
    uint64_t rows;
    struct tok_buf out;
};

struct export_guard {
    struct export *ex;
};

static void export_free(struct export *ex)
{
    tok_buf_wipe(&ex->out);
    free(ex);
}

static tok_status chunk_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct export *ex = (struct export *)job;
    tok_buf_reset(&ex->out);
    if (!ex->header_done && ex->q.format == TOK_REPORT_CSV)
        TOK_GUARD(tok_reports_csv_header(ex->q.kind, &ex->out));
    ex->header_done = true;
    PGresult *res = NULL;
    TOK_GUARD(tok_reports_page(conn, ex->tenant_id, ex->livemode, &ex->q, ex->after_ts,
                               ex->after_id, TOK_EXPORT_CHUNK_ROWS, &res));
    int n = PQntuples(res);
    tok_status st = TOK_OK;
    for (int i = 0; i < n && st == TOK_OK; i++) {
        if (ex->q.format == TOK_REPORT_CSV) {
            st = tok_reports_row_csv(ex->q.kind, res, i, &ex->out);
        } else {
            st = tok_reports_row_json(ex->q.kind, res, i, &ex->out);
            if (st == TOK_OK)
                st = tok_buf_putc(&ex->out, '\n');
        }
    }
    if (st == TOK_OK && n > 0) {
        int cc = tok_reports_cursor_column(ex->q.kind);
        snprintf(ex->after_ts, sizeof ex->after_ts, "%s", PQgetvalue(res, n - 1, cc));
        snprintf(ex->after_id, sizeof ex->after_id, "%s", PQgetvalue(res, n - 1, 0));
    }
    ex->rows += (uint64_t)n;
    ex->last = n < TOK_EXPORT_CHUNK_ROWS;
    PQclear(res);
    return st;
}

static void chunk_done(struct tok_db_job *job);

static void submit_chunk(struct export *ex)
{
    ex->in_flight = true;
    ex->job.exec = chunk_exec;
    ex->job.done = chunk_done;
    ex->job.reply_to = &ex->worker->db_replies;
    tok_db_submit(ex->db, &ex->job);
}

static void chunk_done(struct tok_db_job *job)
{
    struct export *ex = (struct export *)job;
    ex->in_flight = false;
    if (ex->req == NULL) {
        export_free(ex);
        return;
    }
    if (ex->job.status != TOK_OK) {
        /* headers are gone already: all we can do is cut the stream (RST_STREAM / no last chunk) */
        tok_log_err("%s: %s: export stopped after %llu rows: %s", __func__, ex->request_id,
                    (unsigned long long)ex->rows, tok_status_name(ex->job.status));
        h2o_send(ex->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    h2o_iovec_t buf = h2o_iovec_init(ex->out.data, ex->out.len);
    if (ex->last)
        tok_log_info("%s: %s: export done, %llu rows", __func__, ex->request_id,
                     (unsigned long long)ex->rows);
    h2o_send(ex->req, &buf, 1, ex->last ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    struct export *ex = H2O_STRUCT_FROM_MEMBER(struct export, gen, gen);
    if (!ex->last && !ex->in_flight)
        submit_chunk(ex);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)gen;
    (void)req;
    /* the guard's dispose (same request, right after) does the freeing */
}

static void on_guard_dispose(void *p)
{
    struct export_guard *g = p;
    struct export *ex = g->ex;
    ex->req = NULL;
    if (!ex->in_flight)
        export_free(ex);
}

static struct tok_slice query_of(const struct tok_req *r)
{
    h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len)
        return tok_slice_of("", 0);
    return tok_slice_of(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

static void export_authed(struct tok_req *r, enum tok_report_kind kind)
{
    struct tok_report_query q;
    const char *bad = NULL, *why = NULL;
    if (tok_reports_parse_query(query_of(r), kind, true, &q, &bad, &why) != TOK_OK) {
        tok_http_problem(r, 422, "invalid_parameter", why, bad);
        return;
    }
    if (r->app->reporting_db == NULL) {
        tok_http_problem(r, 503, "reporting_unavailable",
                         "exports need --reporting-db (the tokend_reporting role)", NULL);
        return;
    }
    struct export *ex = calloc(1, sizeof *ex);
    if (ex == NULL || tok_buf_alloc(&ex->out, TOK_EXPORT_CHUNK_MAX, false) != TOK_OK) {
        free(ex);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    ex->q = q;
    ex->req = r->req;
    ex->worker = r->worker;
    ex->db = r->app->reporting_db;
    ex->livemode = r->principal->livemode;
    snprintf(ex->tenant_id, sizeof ex->tenant_id, "%s", r->principal->tenant_id);
    snprintf(ex->request_id, sizeof ex->request_id, "%s", r->id);
    ex->gen.proceed = on_proceed;
    ex->gen.stop = on_stop;
    struct export_guard *g =
        h2o_mem_alloc_shared(&r->req->pool, sizeof *g, on_guard_dispose);
    g->ex = ex;

    h2o_req_t *req = r->req;
    bool csv = q.format == TOK_REPORT_CSV;
    const char *name = kind == TOK_REPORT_CHARGES   ? "charges"
                       : kind == TOK_REPORT_REFUNDS ? "refunds"
                                                    : "events";
    char disp[96];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.%s\"", name, csv ? "csv" : "ndjson");
    req->res.status = 200;
    req->res.reason = "OK";
    const char *ct = csv ? "text/csv; charset=utf-8; header=present" : "application/x-ndjson";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, strlen(ct));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    tok_http_header(r, "content-disposition", disp);
    h2o_start_response(req, &ex->gen);
    submit_chunk(ex);
}

static void charges_authed(struct tok_req *r)
{
    export_authed(r, TOK_REPORT_CHARGES);
}

static void refunds_authed(struct tok_req *r)
{
    export_authed(r, TOK_REPORT_REFUNDS);
}

static void events_authed(struct tok_req *r)
{
    export_authed(r, TOK_REPORT_EVENTS);
}

void tok_exports_events(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ | TOK_SCOPE_CHARGES_WRITE, events_authed);
}

void tok_exports_charges(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ | TOK_SCOPE_CHARGES_WRITE, charges_authed);
}

void tok_exports_refunds(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ | TOK_SCOPE_CHARGES_WRITE, refunds_authed);
}
