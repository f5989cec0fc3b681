/*
 * reconcile_api.c - POST /v1/reconciliations and its reads (see reconcile_api.h).
 *
 * Threads: the POST handler (loop thread) inserts the run row through the
 * service pool, then hands the body to a run thread. The run thread owns the
 * matcher; each database need is one job on the service pool that it submits
 * and waits for (job_run). A job's exec (database thread) only copies rows
 * into the run's arrays; the run thread gives them to the matcher once the
 * job is back, so the matcher and its exception sink only ever run on the run
 * thread. The job's `done` runs on the loop that took the request (its
 * db_replies receiver) and just wakes the run thread.
 */
#include "tokend/finance/reconcile_api.h"
#include "tokend/finance/recon_owner.h"
#include "tokend/vault/auth.h"
#include "tokend/core/base62.h"
#include "tokend/core/csv.h"
#include "tokend/core/json.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"
#include "tokend/http/app.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define EXC_JSON_MAX (TOK_RECON_API_EXC_BATCH * 1024u)
#define RUN_ID_LEN (4 + TOK_RANDOM_ID_CHARS)
#define EXC_CHUNK_MAX (TOK_RECON_API_PAGE * 1024u) /* a page of rows of at most ~700 bytes */

static atomic_uint runs_active;

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    tok_copy(dst, src, n);
    dst[n] = '\0';
}

/* ---- SQL ------------------------------------------------------------------------------ */

static const struct tok_sql run_insert_sql = {
    "recon_run_insert",
    "INSERT INTO ledger.reconciliation_runs (tenant_id, id, livemode, gateway, status, created_by, "
    "owner) VALUES ($1, $2, $3::boolean, $4, 'running', $5, $6::bigint)",
    6};

static const struct tok_sql run_finish_sql = {
    "recon_run_finish",
    "UPDATE ledger.reconciliation_runs SET status = $3, result = $4::jsonb, "
    "period_from = CASE WHEN $5::bigint = 0 THEN NULL ELSE to_timestamp($5::bigint) END, "
    "period_to = CASE WHEN $6::bigint = 0 THEN NULL ELSE to_timestamp($6::bigint) END, "
    "finished_at = now() WHERE tenant_id = $1 AND id = $2 AND status = 'running'",
    6};

static const struct tok_sql run_get_sql = {
    "recon_run_get",
    "SELECT id, livemode, gateway, status, coalesce(result::text, ''), "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') "
    "FROM ledger.reconciliation_runs WHERE tenant_id = $1 AND id = $2 AND livemode = $3::boolean",
    3};

static const struct tok_sql lookup_sql = {
    "recon_lookup",
    "SELECT c.gateway_ref, c.id, c.currency, c.captured_amount, false FROM ledger.charges c "
    "WHERE c.tenant_id = $1 AND c.livemode = $2::boolean AND c.gateway_ref = ANY($3::text[]) "
    "UNION ALL "
    "SELECT r.gateway_ref, r.id, r.currency, r.amount, true FROM ledger.refunds r "
    "WHERE r.tenant_id = $1 AND r.livemode = $2::boolean AND r.gateway_ref = ANY($3::text[])",
    3};

/* Settled rows of the period at this gateway kind, one keyset page at a time (by id). */
static const struct tok_sql missing_charges_sql = {
    "recon_missing_charges",
    "SELECT c.gateway_ref, c.id, c.currency, c.captured_amount, false FROM ledger.charges c "
    "WHERE c.tenant_id = $1 AND c.livemode = $2::boolean AND c.created_at >= to_timestamp($3::bigint) "
    "AND c.created_at < to_timestamp($4::bigint + 1) AND c.gateway_ref IS NOT NULL "
    "AND c.status IN ('succeeded', 'partially_refunded', 'refunded', 'disputed') "
    "AND (c.gateway = $5 OR c.gateway IN (SELECT g.id FROM vault.gateways g "
    "     WHERE g.tenant_id = $1 AND g.kind = $5)) "
    "AND c.id > $6 ORDER BY c.id LIMIT $7::int",
    7};

static const struct tok_sql missing_refunds_sql = {
    "recon_missing_refunds",
    "SELECT r.gateway_ref, r.id, r.currency, r.amount, true FROM ledger.refunds r "
    "WHERE r.tenant_id = $1 AND r.livemode = $2::boolean AND r.created_at >= to_timestamp($3::bigint) "
    "AND r.created_at < to_timestamp($4::bigint + 1) AND r.gateway_ref IS NOT NULL "
    "AND r.status = 'succeeded' "
    "AND (r.gateway = $5 OR r.gateway IN (SELECT g.id FROM vault.gateways g "
    "     WHERE g.tenant_id = $1 AND g.kind = $5)) "
    "AND r.id > $6 ORDER BY r.id LIMIT $7::int",
    7};

static const struct tok_sql exc_insert_sql = {
    "recon_exc_insert",
    "INSERT INTO ledger.reconciliation_exceptions (tenant_id, run_id, seq, kind, line, reference, "
    "object_id, report_amount, ledger_amount, report_currency, ledger_currency, reason) "
    "SELECT $1, $2, x.seq, x.kind, x.line, x.reference, x.object_id, x.report_amount, "
    "x.ledger_amount, x.report_currency, x.ledger_currency, x.reason "
    "FROM jsonb_to_recordset($3::jsonb) AS x(seq integer, kind text, line integer, reference text, "
    "object_id text, report_amount bigint, ledger_amount bigint, report_currency text, "
    "ledger_currency text, reason text)",
    3};

static const struct tok_sql exc_page_sql = {
    "recon_exc_page",
    "SELECT kind, coalesce(line::text, ''), coalesce(reference, ''), coalesce(object_id, ''), "
    "coalesce(report_amount::text, ''), coalesce(ledger_amount::text, ''), "
    "coalesce(report_currency, ''), coalesce(ledger_currency, ''), coalesce(reason, ''), seq "
    "FROM ledger.reconciliation_exceptions WHERE tenant_id = $1 AND run_id = $2 AND seq > $3::integer "
    "ORDER BY seq LIMIT $4::int",
    4};

/* ---- the summary ------------------------------------------------------------------------ */

static void jw_time(struct tok_json_writer *w, int64_t t)
{
    if (t == 0) {
        tok_jw_null(w);
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    char s[32];
    if (gmtime_r(&tt, &tm) == NULL || strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        tok_jw_null(w);
        return;
    }
    tok_jw_str(w, s);
}

static void jw_count(struct tok_json_writer *w, const char *key, uint64_t v)
{
    tok_jw_kint(w, key, (int64_t)v);
}

tok_status tok_recon_api_summary_json(const struct tok_recon_summary *s,
                                      const struct tok_recon_api_malformed *mal, size_t nmal,
                                      struct tok_buf *b)
{
    TOK_ENSURE(s != NULL && b != NULL && (mal != NULL || nmal == 0), TOK_ERR_INTERNAL);
    struct tok_json_writer w;
    tok_jw_init(&w, b);
    tok_jw_obj_begin(&w);
    jw_count(&w, "lines", s->lines);
    jw_count(&w, "matched", s->matched);
    jw_count(&w, "missing_in_ledger", s->missing_in_ledger);
    jw_count(&w, "missing_in_report", s->missing_in_report);
    jw_count(&w, "amount_mismatches", s->amount_mismatches);
    jw_count(&w, "currency_mismatches", s->currency_mismatches);
    jw_count(&w, "malformed", s->malformed);
    tok_jw_key(&w, "malformed_lines");
    tok_jw_arr_begin(&w);
    for (size_t i = 0; i < nmal; i++) {
        tok_jw_obj_begin(&w);
        jw_count(&w, "line", mal[i].line);
        tok_jw_kstr(&w, "reason", mal[i].reason != NULL ? mal[i].reason : "");
        tok_jw_obj_end(&w);
    }
    tok_jw_arr_end(&w);
    tok_jw_key(&w, "period");
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "from");
    jw_time(&w, s->period_from);
    tok_jw_key(&w, "to");
    jw_time(&w, s->period_to);
    tok_jw_obj_end(&w);
    tok_jw_key(&w, "currencies");
    tok_jw_arr_begin(&w);
    for (size_t i = 0; i < s->ncurrencies && i < TOK_RECON_CURRENCIES_MAX; i++) {
        const struct tok_recon_currency_totals *t = &s->currencies[i];
        char cur[sizeof t->currency];
        copy_str(cur, sizeof cur, t->currency);
        tok_jw_obj_begin(&w);
        tok_jw_kstr(&w, "currency", cur);
        jw_count(&w, "matched", t->matched);
        tok_jw_kint(&w, "matched_amount", t->matched_amount);
        tok_jw_kint(&w, "charges", t->charges);
        tok_jw_kint(&w, "refunds", t->refunds);
        tok_jw_kint(&w, "fees", t->fees);
        tok_jw_kint(&w, "net", t->net);
        tok_jw_obj_end(&w);
    }
    tok_jw_arr_end(&w);
    tok_jw_obj_end(&w);
    return tok_jw_finish(&w);
}

/* ---- the references seen (an open-addressing set of strings) ----------------------------- */

struct refset {
    char **slots;
    size_t cap, n;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static bool refset_has(const struct refset *rs, const char *ref)
{
    if (rs->cap == 0)
        return false;
    for (size_t i = (size_t)(fnv1a(ref) & (rs->cap - 1));; i = (i + 1) & (rs->cap - 1)) {
        if (rs->slots[i] == NULL)
            return false;
        if (strcmp(rs->slots[i], ref) == 0)
            return true;
    }
}

static void refset_place(char **slots, size_t cap, char *s)
{
    size_t i = (size_t)(fnv1a(s) & (cap - 1));
    while (slots[i] != NULL)
        i = (i + 1) & (cap - 1);
    slots[i] = s;
}

static tok_status refset_add(struct refset *rs, const char *ref)
{
    if (refset_has(rs, ref))
        return TOK_OK;
    if ((rs->n + 1) * 2 > rs->cap) {
        size_t cap = rs->cap == 0 ? 1024 : rs->cap * 2;
        char **slots = calloc(cap, sizeof *slots);
        TOK_ENSURE(slots != NULL, TOK_ERR_NOMEM);
        for (size_t i = 0; i < rs->cap; i++)
            if (rs->slots[i] != NULL)
                refset_place(slots, cap, rs->slots[i]);
        free(rs->slots);
        rs->slots = slots;
        rs->cap = cap;
    }
    size_t len = strnlen(ref, TOK_RECON_REF_MAX);
    char *s = malloc(len + 1);
    TOK_ENSURE(s != NULL, TOK_ERR_NOMEM);
    tok_copy(s, ref, len);
    s[len] = '\0';
    refset_place(rs->slots, rs->cap, s);
    rs->n++;
    return TOK_OK;
}

static void refset_free(struct refset *rs)
{
    for (size_t i = 0; i < rs->cap; i++)
        free(rs->slots[i]);
    free(rs->slots);
    memset(rs, 0, sizeof *rs);
}

/* ---- a run -------------------------------------------------------------------------------- */

struct run {
    struct tok_db_job job; /* first: the one job in flight */
    struct tok_db *db;
    struct tok_worker *worker;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool job_back;
    /* what the run is */
    char tenant_id[TOK_ID_MAX];
    char id[RUN_ID_LEN + 1];
    char actor[TOK_ID_MAX];
    char owner[TOK_RECON_OWNER_TEXT_MAX]; /* this process's owner key (recon_owner.h) */
    char gateway[8];
    enum tok_recon_gateway gw;
    bool livemode;
    uint8_t *body;
    size_t body_len;
    struct tok_recon *rc;
    /* a job's parameters and rows */
    char *array;
    const struct tok_sql *sql;
    char p_from[24], p_to[24], p_after[TOK_RECON_ID_MAX];
    struct tok_recon_ledger_row *rows;
    size_t nrows, rows_cap;
    struct refset seen;
    /* exceptions waiting to be written */
    struct tok_buf exc;
    size_t nexc;
    uint64_t seq;
    struct tok_recon_api_malformed mal[TOK_RECON_API_MALFORMED_LISTED];
    size_t nmal;
    /* the end */
    const char *final_status;
    struct tok_buf result;
    int64_t period_from, period_to;
};

static void run_free(struct run *run)
{
    if (run == NULL)
        return;
    tok_recon_free(&run->rc);
    free(run->body);
    free(run->array);
    free(run->rows);
    refset_free(&run->seen);
    tok_buf_wipe(&run->exc);
    tok_buf_wipe(&run->result);
    pthread_mutex_destroy(&run->mu);
    pthread_cond_destroy(&run->cv);
    free(run);
}

static void job_done(struct tok_db_job *job)
{
    struct run *run = (struct run *)job;
    pthread_mutex_lock(&run->mu);
    run->job_back = true;
    pthread_cond_signal(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Submits one job on the service pool and waits for it (run thread). */
static tok_status job_run(struct run *run, tok_db_exec_cb exec)
{
    memset(&run->job, 0, sizeof run->job);
    run->job.exec = exec;
    run->job.done = job_done;
    run->job.reply_to = &run->worker->db_replies;
    run->job_back = false;
    tok_db_submit(run->db, &run->job);
    pthread_mutex_lock(&run->mu);
    while (!run->job_back)
        pthread_cond_wait(&run->cv, &run->mu);
    pthread_mutex_unlock(&run->mu);
    return run->job.status;
}

/* Copies the (ref, id, currency, amount, refund) rows of res into run->rows (database thread). */
static tok_status take_rows(struct run *run, PGresult *res)
{
    int n = PQntuples(res);
    run->nrows = 0;
    if ((size_t)n > run->rows_cap) {
        struct tok_recon_ledger_row *rows = realloc(run->rows, (size_t)n * sizeof *rows);
        TOK_ENSURE(rows != NULL, TOK_ERR_NOMEM);
        run->rows = rows;
        run->rows_cap = (size_t)n;
    }
    for (int i = 0; i < n; i++) {
        struct tok_recon_ledger_row *row = &run->rows[i];
        memset(row, 0, sizeof *row);
        copy_str(row->ref, sizeof row->ref, PQgetvalue(res, i, 0));
        copy_str(row->object_id, sizeof row->object_id, PQgetvalue(res, i, 1));
        copy_str(row->currency, sizeof row->currency, PQgetvalue(res, i, 2));
        row->amount = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        row->refund = PQgetvalue(res, i, 4)[0] == 't';
    }
    run->nrows = (size_t)n;
    return TOK_OK;
}

static tok_status lookup_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct run *run = (struct run *)job;
    const char *v[3] = {run->tenant_id, run->livemode ? "t" : "f", run->array};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_set_tenant(conn, run->tenant_id));
    TOK_GUARD(tok_db_exec(conn, &lookup_sql, v, NULL, NULL, &res));
    tok_status st = take_rows(run, res);
    PQclear(res);
    return st;
}

static tok_status missing_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct run *run = (struct run *)job;
    char lim[16];
    snprintf(lim, sizeof lim, "%u", TOK_RECON_API_PAGE);
    const char *v[7] = {run->tenant_id, run->livemode ? "t" : "f", run->p_from, run->p_to,
                        run->gateway, run->p_after, lim};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_set_tenant(conn, run->tenant_id));
    TOK_GUARD(tok_db_exec(conn, run->sql, v, NULL, NULL, &res));
    tok_status st = take_rows(run, res);
    PQclear(res);
    return st;
}

static tok_status exc_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct run *run = (struct run *)job;
    const char *json = NULL;
    TOK_GUARD(tok_buf_cstr(&run->exc, &json));
    const char *v[3] = {run->tenant_id, run->id, json};
    TOK_GUARD(tok_db_set_tenant(conn, run->tenant_id));
    return tok_db_exec_deferred(conn, &exc_insert_sql, v, NULL, NULL);
}

static tok_status finish_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct run *run = (struct run *)job;
    const char *json = NULL;
    TOK_GUARD(tok_buf_cstr(&run->result, &json));
    char f[24], t[24];
    snprintf(f, sizeof f, "%lld", (long long)run->period_from);
    snprintf(t, sizeof t, "%lld", (long long)run->period_to);
    const char *v[6] = {run->tenant_id, run->id, run->final_status, json, f, t};
    TOK_GUARD(tok_db_set_tenant(conn, run->tenant_id));
    return tok_db_exec_deferred(conn, &run_finish_sql, v, NULL, NULL);
}

/* ---- the matcher's ops (run thread) --------------------------------------------------------- */

static tok_status op_lookup(void *ctx, struct tok_recon *rc, const char *const *refs, size_t n)
{
    struct run *run = ctx;
    TOK_GUARD(tok_recon_refs_text(refs, n, run->array));
    TOK_GUARD(job_run(run, lookup_exec));
    for (size_t i = 0; i < run->nrows; i++)
        TOK_GUARD(tok_recon_add_ledger_row(rc, &run->rows[i]));
    return TOK_OK;
}

static tok_status op_seen(void *ctx, const char *const *refs, size_t n)
{
    struct run *run = ctx;
    for (size_t i = 0; i < n; i++)
        TOK_GUARD(refset_add(&run->seen, refs[i]));
    return TOK_OK;
}

static tok_status op_missing(void *ctx, struct tok_recon *rc, int64_t from, int64_t to)
{
    struct run *run = ctx;
    snprintf(run->p_from, sizeof run->p_from, "%lld", (long long)from);
    snprintf(run->p_to, sizeof run->p_to, "%lld", (long long)to);
    const struct tok_sql *sqls[2] = {&missing_charges_sql, &missing_refunds_sql};
    for (size_t k = 0; k < 2; k++) {
        run->sql = sqls[k];
        run->p_after[0] = '\0';
        for (;;) {
            TOK_GUARD(job_run(run, missing_exec));
            for (size_t i = 0; i < run->nrows; i++)
                if (!refset_has(&run->seen, run->rows[i].ref))
                    TOK_GUARD(tok_recon_add_missing(rc, &run->rows[i]));
            if (run->nrows < TOK_RECON_API_PAGE)
                break;
            copy_str(run->p_after, sizeof run->p_after, run->rows[run->nrows - 1].object_id);
        }
    }
    return TOK_OK;
}

static tok_status exc_flush(struct run *run)
{
    if (run->nexc == 0)
        return TOK_OK;
    TOK_GUARD(tok_buf_putc(&run->exc, ']'));
    TOK_GUARD(job_run(run, exc_exec));
    tok_buf_reset(&run->exc);
    run->nexc = 0;
    return TOK_OK;
}

static void jw_text(struct tok_json_writer *w, const char *key, const char *v)
{
    tok_jw_key(w, key);
    if (v != NULL && v[0] != '\0')
        tok_jw_str(w, v);
    else
        tok_jw_null(w);
}

static tok_status op_exception(void *ctx, const struct tok_recon_exception *e)
{
    struct run *run = ctx;
    if (e->kind == TOK_RECON_MALFORMED && run->nmal < TOK_RECON_API_MALFORMED_LISTED) {
        run->mal[run->nmal].line = e->line;
        run->mal[run->nmal].reason = e->reason; /* static text */
        run->nmal++;
    }
    if (run->exc.len + 2048 > run->exc.cap)
        TOK_GUARD(exc_flush(run));
    TOK_GUARD(tok_buf_putc(&run->exc, run->nexc == 0 ? '[' : ','));
    bool has_report = e->kind != TOK_RECON_MISSING_IN_REPORT && e->kind != TOK_RECON_MALFORMED;
    struct tok_json_writer w;
    tok_jw_init(&w, &run->exc);
    tok_jw_obj_begin(&w);
    tok_jw_kint(&w, "seq", (int64_t)++run->seq);
    tok_jw_kstr(&w, "kind", tok_recon_kind_name(e->kind));
    tok_jw_key(&w, "line");
    if (e->line > 0)
        tok_jw_int(&w, (int64_t)e->line);
    else
        tok_jw_null(&w);
    jw_text(&w, "reference", e->ref);
    jw_text(&w, "object_id", e->object_id);
    tok_jw_key(&w, "report_amount");
    if (has_report)
        tok_jw_int(&w, e->report_amount);
    else
        tok_jw_null(&w);
    tok_jw_key(&w, "ledger_amount");
    if (e->object_id != NULL)
        tok_jw_int(&w, e->ledger_amount);
    else
        tok_jw_null(&w);
    jw_text(&w, "report_currency", e->report_currency);
    jw_text(&w, "ledger_currency", e->ledger_currency);
    jw_text(&w, "reason", e->reason);
    tok_jw_obj_end(&w);
    TOK_GUARD(tok_jw_finish(&w));
    run->nexc++;
    if (run->nexc >= TOK_RECON_API_EXC_BATCH)
        TOK_GUARD(exc_flush(run));
    return TOK_OK;
}

/* ---- the run thread --------------------------------------------------------------------------- */

static tok_status run_match(struct run *run)
{
    struct tok_recon_ops ops = {op_lookup, op_seen, op_missing, op_exception, NULL, run, 0};
    TOK_GUARD(tok_recon_new(run->gw, &ops, &run->rc));
    for (size_t off = 0; off < run->body_len; off += TOK_RECON_API_CHUNK) {
        size_t n = run->body_len - off < TOK_RECON_API_CHUNK ? run->body_len - off
                                                             : TOK_RECON_API_CHUNK;
        TOK_GUARD(tok_recon_feed(run->rc, run->body + off, n));
    }
    /* the body is no longer needed: give it back before the long tail */
    free(run->body);
    run->body = NULL;
    TOK_GUARD(tok_recon_finish(run->rc));
    return exc_flush(run);
}

static void *run_main(void *p)
{
    struct run *run = p;
    tok_status st = run_match(run);
    tok_buf_reset(&run->result);
    if (st == TOK_OK) {
        const struct tok_recon_summary *s = tok_recon_summary(run->rc);
        run->period_from = s->period_from;
        run->period_to = s->period_to;
        st = tok_recon_api_summary_json(s, run->mal, run->nmal, &run->result);
        run->final_status = "succeeded";
    }
    if (st != TOK_OK) {
        const char *why = run->rc != NULL ? tok_recon_header_error(run->rc) : NULL;
        tok_log_err("%s: reconciliation %s failed: %s%s%s", __func__, run->id, tok_status_name(st),
                    why != NULL ? ": " : "", why != NULL ? why : "");
        tok_buf_reset(&run->result);
        struct tok_json_writer w;
        tok_jw_init(&w, &run->result);
        tok_jw_obj_begin(&w);
        tok_jw_kstr(&w, "error", why != NULL ? why : tok_status_name(st));
        tok_jw_obj_end(&w);
        if (tok_jw_finish(&w) != TOK_OK) {
            tok_buf_reset(&run->result);
            if (tok_buf_puts(&run->result, "{}") != TOK_OK)
                tok_log_err("%s: reconciliation %s: no room for the error", __func__, run->id);
        }
        run->final_status = "failed";
        run->period_from = run->period_to = 0;
    }
    if (job_run(run, finish_exec) != TOK_OK)
        tok_log_err("%s: reconciliation %s: the result could not be recorded", __func__, run->id);
    else
        tok_log_info("%s: reconciliation %s %s", __func__, run->id, run->final_status);
    run_free(run);
    atomic_fetch_sub(&runs_active, 1);
    return NULL;
}

/* ---- POST /v1/reconciliations ------------------------------------------------------------------ */

struct create_call {
    struct tok_call call; /* first */
    struct run *run;      /* handed to the thread once the row exists */
};

static void create_release(struct tok_call *call)
{
    struct create_call *c = (struct create_call *)call;
    if (c->run != NULL) {
        run_free(c->run);
        atomic_fetch_sub(&runs_active, 1);
    }
    free(c);
}

static tok_status create_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct create_call *c = (struct create_call *)job;
    struct run *run = c->run;
    const char *v[6] = {run->tenant_id, run->id, run->livemode ? "t" : "f", run->gateway,
                        run->actor, run->owner};
    TOK_GUARD(tok_db_set_tenant(conn, run->tenant_id));
    return tok_db_exec_deferred(conn, &run_insert_sql, v, NULL, NULL);
}

static void create_result(struct tok_call *call, struct tok_req *r)
{
    struct create_call *c = (struct create_call *)call;
    if (c->call.job.status != TOK_OK) {
        tok_log_err("%s: %s: run insert failed: %s", __func__, r->id,
                    tok_status_name(c->call.job.status));
        tok_http_problem(r, 503, "unavailable", "the database did not answer", NULL);
        return;
    }
    struct run *run = c->run;
    pthread_t tid;
    pthread_attr_t attr;
    bool started = pthread_attr_init(&attr) == 0;
    if (started) {
        (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&tid, &attr, run_main, run) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        tok_log_err("%s: %s: cannot start the run thread", __func__, r->id);
        tok_http_problem(r, 503, "unavailable", "cannot start the reconciliation", NULL);
        return; /* the row stays 'running'; release frees the run */
    }
    c->run = NULL; /* the thread's now */
    uint8_t mem[256];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "id", run->id);
    tok_jw_kstr(&w, "object", "reconciliation");
    tok_jw_kstr(&w, "gateway", run->gateway);
    tok_jw_kstr(&w, "status", "running");
    tok_jw_obj_end(&w);
    if (tok_jw_finish(&w) != TOK_OK) {
        tok_http_problem(r, 500, "internal", "response too large", NULL);
        return;
    }
    tok_http_json(r, 202, tok_buf_slice(&b));
}

static struct tok_slice query_of(const struct tok_req *r)
{
    h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len)
        return tok_slice_of("", 0);
    return tok_slice_of(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

/* The value of name in a query string (undecoded; only simple tokens are accepted). */
static bool query_param(struct tok_slice q, const char *name, struct tok_slice *out)
{
    size_t nl = strlen(name), i = 0;
    while (i < q.len) {
        size_t j = i;
        while (j < q.len && q.ptr[j] != '&')
            j++;
        if (j - i > nl && memcmp(q.ptr + i, name, nl) == 0 && q.ptr[i + nl] == '=') {
            *out = tok_slice_of(q.ptr + i + nl + 1, j - i - nl - 1);
            return true;
        }
        i = j + 1;
    }
    return false;
}

/* Only the names given may appear, once each. */
static bool query_only(struct tok_slice q, const char *const *names)
{
    uint32_t seen = 0;
    size_t i = 0;
    while (i < q.len) {
        size_t j = i, eq = i;
        while (j < q.len && q.ptr[j] != '&')
            j++;
        while (eq < j && q.ptr[eq] != '=')
            eq++;
        if (j > i) {
            bool known = false;
            for (size_t k = 0; names[k] != NULL && k < 32; k++) {
                if (strlen(names[k]) == eq - i && memcmp(q.ptr + i, names[k], eq - i) == 0) {
                    if (seen & (1u << k))
                        return false;
                    seen |= 1u << k;
                    known = true;
                }
            }
            if (!known)
                return false;
        }
        i = j + 1;
    }
    return true;
}

static void create_authed(struct tok_req *r)
{
    h2o_req_t *req = r->req;
    struct tok_slice q = query_of(r), gv;
    static const char *const allowed[] = {"gateway", NULL};
    char gw[8] = "";
    if (!query_only(q, allowed) || !query_param(q, "gateway", &gv) || gv.len == 0 ||
        gv.len >= sizeof gw) {
        tok_http_problem(r, 422, "invalid_parameter", "gateway=stripe or gateway=adyen", "gateway");
        return;
    }
    tok_copy(gw, gv.ptr, gv.len);
    gw[gv.len] = '\0';
    enum tok_recon_gateway g;
    if (tok_recon_gateway_parse(gw, &g) != TOK_OK) {
        tok_http_problem(r, 422, "invalid_parameter", "gateway=stripe or gateway=adyen", "gateway");
        return;
    }
    struct tok_slice ct;
    if (tok_http_req_header(r, "content-type", &ct) &&
        !(ct.len >= 8 && strncasecmp((const char *)ct.ptr, "text/csv", 8) == 0)) {
        tok_http_problem(r, 415, "unsupported_media_type",
                         "send the settlement report as text/csv", NULL);
        return;
    }
    if (req->entity.len == 0) {
        tok_http_problem(r, 422, "invalid_request", "the settlement report is empty", NULL);
        return;
    }
    if (atomic_fetch_add(&runs_active, 1) >= TOK_RECON_API_RUNS_MAX) {
        atomic_fetch_sub(&runs_active, 1);
        tok_http_header(r, "retry-after", "5");
        tok_http_problem(r, 429, "too_many_reconciliations",
                         "too many reconciliations are running; try again shortly", NULL);
        return;
    }
    struct create_call *c = calloc(1, sizeof *c);
    struct run *run = calloc(1, sizeof *run);
    bool ok = c != NULL && run != NULL;
    if (run != NULL) {
        pthread_mutex_init(&run->mu, NULL);
        pthread_cond_init(&run->cv, NULL);
        run->body = malloc(req->entity.len);
        run->array = malloc(TOK_RECON_REFS_TEXT_MAX);
        ok = ok && run->body != NULL && run->array != NULL &&
             tok_buf_alloc(&run->exc, EXC_JSON_MAX, false) == TOK_OK &&
             tok_buf_alloc(&run->result, TOK_RECON_API_SUMMARY_MAX, false) == TOK_OK;
    }
    uint8_t idmem[TOK_RANDOM_ID_MAX + 1];
    struct tok_buf idb;
    tok_buf_init(&idb, idmem, sizeof idmem);
    const char *id = NULL;
    ok = ok && tok_random_id("rec_", &idb) == TOK_OK && tok_buf_cstr(&idb, &id) == TOK_OK;
    if (!ok) {
        run_free(run);
        free(c);
        atomic_fetch_sub(&runs_active, 1);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    tok_copy(run->body, req->entity.base, req->entity.len);
    run->body_len = req->entity.len;
    run->db = r->app->db;
    run->worker = r->worker;
    run->gw = g;
    copy_str(run->gateway, sizeof run->gateway, gw);
    copy_str(run->id, sizeof run->id, id);
    copy_str(run->tenant_id, sizeof run->tenant_id, r->principal->tenant_id);
    copy_str(run->actor, sizeof run->actor, r->principal->key_id);
    copy_str(run->owner, sizeof run->owner, tok_recon_owner_key(r->app->recon_owner));
    run->livemode = r->principal->livemode;
    c->run = run;
    c->call.job.exec = create_exec;
    c->call.on_result = create_result;
    c->call.release = create_release;
    tok_http_call(r, &c->call);
}

void tok_recon_api_create(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ, create_authed);
}

/* ---- GET /v1/reconciliations/{id} and .../exceptions --------------------------------------------- */

struct get_call {
    struct tok_call call; /* first */
    char tenant_id[TOK_ID_MAX];
    char id[RUN_ID_LEN + 1];
    bool livemode;
    bool exceptions;
    bool found, running;
    struct tok_buf body;
};

static void get_release(struct tok_call *call)
{
    struct get_call *c = (struct get_call *)call;
    tok_buf_wipe(&c->body);
    free(c);
}

static tok_status get_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct get_call *c = (struct get_call *)job;
    const char *v[3] = {c->tenant_id, c->id, c->livemode ? "t" : "f"};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_set_tenant(conn, c->tenant_id));
    TOK_GUARD(tok_db_exec(conn, &run_get_sql, v, NULL, NULL, &res));
    c->found = PQntuples(res) == 1;
    if (!c->found) {
        PQclear(res);
        return TOK_OK;
    }
    c->running = strcmp(PQgetvalue(res, 0, 3), "running") == 0;
    if (c->exceptions) {
        PQclear(res);
        return TOK_OK; /* the rows are streamed (exc_stream) */
    }
    struct tok_json_writer w;
    tok_jw_init(&w, &c->body);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "id", PQgetvalue(res, 0, 0));
    tok_jw_kstr(&w, "object", "reconciliation");
    tok_jw_kbool(&w, "livemode", PQgetvalue(res, 0, 1)[0] == 't');
    tok_jw_kstr(&w, "gateway", PQgetvalue(res, 0, 2));
    tok_jw_kstr(&w, "status", PQgetvalue(res, 0, 3));
    tok_jw_kstr(&w, "created_at", PQgetvalue(res, 0, 5));
    jw_text(&w, "finished_at", PQgetvalue(res, 0, 6));
    const char *result = PQgetvalue(res, 0, 4);
    bool failed = strcmp(PQgetvalue(res, 0, 3), "failed") == 0;
    tok_jw_key(&w, failed ? "error" : "summary");
    if (result[0] != '\0')
        tok_jw_raw(&w, tok_slice_of(result, (size_t)PQgetlength(res, 0, 4)));
    else
        tok_jw_null(&w);
    tok_jw_obj_end(&w);
    PQclear(res);
    return tok_jw_finish(&w);
}

/* ---- the exceptions CSV, streamed -----------------------------------------------------------------
 * Like exports.c: each time h2o has written the previous chunk (proceed), one
 * service-pool job reads the next TOK_RECON_API_PAGE exceptions after the
 * last seq sent. The state is shared by the loop and, while a job is in
 * flight, a database thread; whichever ends last (request or job) frees it. */

struct exc_stream {
    struct tok_db_job job; /* first */
    h2o_generator_t gen;
    h2o_req_t *req; /* NULL once the request is gone */
    struct tok_worker *worker;
    struct tok_db *db;
    char tenant_id[TOK_ID_MAX];
    char id[RUN_ID_LEN + 1];
    char request_id[TOK_REQUEST_ID_LEN + 1];
    char after_seq[16];
    bool header_done, last, in_flight;
    uint64_t rows;
    struct tok_buf out;
};

struct exc_stream_guard {
    struct exc_stream *xs;
};

static void exc_stream_free(struct exc_stream *xs)
{
    tok_buf_wipe(&xs->out);
    free(xs);
}

static tok_status exc_chunk_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct exc_stream *xs = (struct exc_stream *)job;
    static const char *const cols[] = {"kind", "line", "reference", "object_id", "report_amount",
        "ledger_amount", "report_currency", "ledger_currency", "reason"};
    tok_buf_reset(&xs->out);
    if (!xs->header_done) {
        for (size_t i = 0; i < TOK_ARRAY_LEN(cols); i++)
            TOK_GUARD(tok_csv_put_text(&xs->out, tok_slice_str(cols[i]), i == 0));
        TOK_GUARD(tok_csv_end(&xs->out));
        xs->header_done = true;
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%u", TOK_RECON_API_PAGE);
    const char *v[4] = {xs->tenant_id, xs->id, xs->after_seq, lim};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_set_tenant(conn, xs->tenant_id));
    TOK_GUARD(tok_db_exec(conn, &exc_page_sql, v, NULL, NULL, &res));
    int n = PQntuples(res);
    tok_status st = TOK_OK;
    for (int i = 0; i < n && st == TOK_OK; i++) {
        for (int k = 0; k < (int)TOK_ARRAY_LEN(cols) && st == TOK_OK; k++) {
            /* line and the two amounts are numbers; the rest (the report's reference
             * above all) is text from the gateway's file, neutralised (csv.h) */
            struct tok_slice cell =
                tok_slice_of(PQgetvalue(res, i, k), (size_t)PQgetlength(res, i, k));
            bool number = k == 1 || k == 4 || k == 5;
            st = number ? tok_csv_put_number(&xs->out, cell, k == 0)
                        : tok_csv_put_text(&xs->out, cell, k == 0);
        }
        if (st == TOK_OK)
            st = tok_csv_end(&xs->out);
    }
    if (st == TOK_OK && n > 0)
        copy_str(xs->after_seq, sizeof xs->after_seq, PQgetvalue(res, n - 1, 9));
    xs->rows += (uint64_t)n;
    xs->last = n < (int)TOK_RECON_API_PAGE;
    PQclear(res);
    return st;
}

static void exc_chunk_done(struct tok_db_job *job);

static void exc_submit(struct exc_stream *xs)
{
    xs->in_flight = true;
    memset(&xs->job, 0, sizeof xs->job);
    xs->job.exec = exc_chunk_exec;
    xs->job.done = exc_chunk_done;
    xs->job.reply_to = &xs->worker->db_replies;
    tok_db_submit(xs->db, &xs->job);
}

static void exc_chunk_done(struct tok_db_job *job)
{
    struct exc_stream *xs = (struct exc_stream *)job;
    xs->in_flight = false;
    if (xs->req == NULL) {
        exc_stream_free(xs);
        return;
    }
    if (xs->job.status != TOK_OK) {
        tok_log_err("%s: %s: exceptions stopped after %llu rows: %s", __func__, xs->request_id,
                    (unsigned long long)xs->rows, tok_status_name(xs->job.status));
        h2o_send(xs->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    h2o_iovec_t buf = h2o_iovec_init(xs->out.data, xs->out.len);
    h2o_send(xs->req, &buf, 1, xs->last ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void exc_on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    struct exc_stream *xs = H2O_STRUCT_FROM_MEMBER(struct exc_stream, gen, gen);
    if (!xs->last && !xs->in_flight)
        exc_submit(xs);
}

static void exc_on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)gen;
    (void)req; /* the guard's dispose frees */
}

static void exc_on_guard_dispose(void *p)
{
    struct exc_stream_guard *g = p;
    struct exc_stream *xs = g->xs;
    xs->req = NULL;
    if (!xs->in_flight)
        exc_stream_free(xs);
}

static void exc_stream_start(struct tok_req *r, const struct get_call *c)
{
    struct exc_stream *xs = calloc(1, sizeof *xs);
    if (xs == NULL || tok_buf_alloc(&xs->out, EXC_CHUNK_MAX, false) != TOK_OK) {
        free(xs);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    xs->req = r->req;
    xs->worker = r->worker;
    xs->db = r->app->db;
    copy_str(xs->tenant_id, sizeof xs->tenant_id, c->tenant_id);
    copy_str(xs->id, sizeof xs->id, c->id);
    copy_str(xs->request_id, sizeof xs->request_id, r->id);
    copy_str(xs->after_seq, sizeof xs->after_seq, "0");
    xs->gen.proceed = exc_on_proceed;
    xs->gen.stop = exc_on_stop;
    struct exc_stream_guard *g =
        h2o_mem_alloc_shared(&r->req->pool, sizeof *g, exc_on_guard_dispose);
    g->xs = xs;
    char disp[96];
    struct tok_buf db;
    tok_buf_init(&db, disp, sizeof disp);
    if (tok_buf_puts(&db, "attachment; filename=\"") == TOK_OK && tok_buf_puts(&db, c->id) == TOK_OK &&
        tok_buf_puts(&db, "-exceptions.csv\"") == TOK_OK) {
        const char *d = NULL;
        if (tok_buf_cstr(&db, &d) == TOK_OK)
            tok_http_header(r, "content-disposition", d);
    }
    h2o_req_t *req = r->req;
    req->res.status = 200;
    req->res.reason = "OK";
    static const char ct[] = "text/csv; charset=utf-8; header=present";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, sizeof ct - 1);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_start_response(req, &xs->gen);
    exc_submit(xs);
}

static void get_result(struct tok_call *call, struct tok_req *r)
{
    struct get_call *c = (struct get_call *)call;
    if (c->call.job.status != TOK_OK) {
        tok_log_err("%s: %s: read failed: %s", __func__, r->id, tok_status_name(c->call.job.status));
        tok_http_problem(r, 503, "unavailable", "the database did not answer", NULL);
        return;
    }
    if (!c->found) {
        tok_http_problem(r, 404, "not_found", "no such reconciliation", NULL);
        return;
    }
    if (!c->exceptions) {
        tok_http_json(r, 200, tok_buf_slice(&c->body));
        return;
    }
    if (c->running) {
        tok_http_problem(r, 409, "reconciliation_running",
                         "the reconciliation is still running; poll GET /v1/reconciliations/{id}",
                         NULL);
        return;
    }
    exc_stream_start(r, c);
}

static bool run_id_ok(struct tok_slice id)
{
    return id.len == RUN_ID_LEN && memcmp(id.ptr, "rec_", 4) == 0 &&
           tok_base62_is_alphabet(tok_slice_of(id.ptr + 4, id.len - 4));
}

static void get_common(struct tok_req *r, bool exceptions)
{
    if (r->nparams < 1 || !run_id_ok(r->params[0])) {
        tok_http_problem(r, 404, "not_found", "no such reconciliation", NULL);
        return;
    }
    if (exceptions) {
        struct tok_slice q = query_of(r), fv;
        static const char *const allowed[] = {"format", NULL};
        if (!query_only(q, allowed) ||
            (query_param(q, "format", &fv) && !tok_slice_eq(fv, "csv"))) {
            tok_http_problem(r, 422, "invalid_parameter", "format=csv", "format");
            return;
        }
    }
    struct get_call *c = calloc(1, sizeof *c);
    if (c == NULL ||
        tok_buf_alloc(&c->body, TOK_RECON_API_SUMMARY_MAX + 1024, false) != TOK_OK) {
        free(c);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    tok_copy(c->id, r->params[0].ptr, RUN_ID_LEN);
    c->id[RUN_ID_LEN] = '\0';
    copy_str(c->tenant_id, sizeof c->tenant_id, r->principal->tenant_id);
    c->livemode = r->principal->livemode;
    c->exceptions = exceptions;
    c->call.job.exec = get_exec;
    c->call.on_result = get_result;
    c->call.release = get_release;
    tok_http_call(r, &c->call);
}

static void get_authed(struct tok_req *r)
{
    get_common(r, false);
}

static void exceptions_authed(struct tok_req *r)
{
    get_common(r, true);
}

void tok_recon_api_get(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ, get_authed);
}

void tok_recon_api_exceptions(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ, exceptions_authed);
}
