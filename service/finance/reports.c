/*
 * reports.c - GET /v1/charges, GET /v1/refunds and the pieces exports.c
 * shares: query parsing, the page SQL over reporting.* and the row writers.
 */
#include "tokend/finance/reports.h"
#include "tokend/vault/auth.h"
#include "tokend/core/base62.h"
#include "tokend/core/csv.h"
#include "tokend/core/currency.h"
#include "tokend/core/json.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"
#include "tokend/http/app.h"
#include "tokend/vault/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* Bounded copy of a C string that was already checked to fit (truncates otherwise). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    tok_copy(dst, src, n);
    dst[n] = '\0';
}

#define LIST_BODY_MAX (2u * 1024u * 1024u) /* 1000 rows of at most ~2 KB each */
#define QUERY_MAX 4096

/* ---- SQL ------------------------------------------------------------------------
 * Unset filters are '' (or +-infinity for times), so each statement has one
 * plan shape; (created_at, id) > (...) with the (tenant_id, livemode,
 * created_at, id) index makes every page an index range scan, whatever its
 * depth. */

#define TS_OUT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define PAGE_WHERE                                                                                  \
    " WHERE v.livemode = $1 AND v.created_at >= $2::timestamptz AND v.created_at < $3::timestamptz " \
    "AND ($4 = '' OR v.status = $4) AND ($5 = '' OR v.gateway = $5) "                              \
    "AND ($6 = '' OR v.invoice_ref = $6) AND ($7 = '' OR v.currency = $7) "                        \
    "AND (v.created_at, v.id) > ($8::timestamptz, $9) ORDER BY v.created_at, v.id LIMIT $10"

static const struct tok_sql charges_page_sql = {
    "report_charges_page",
    "SELECT v.id, v.livemode, v.amount, v.captured_amount, v.refunded_amount, v.currency, v.status, "
    "coalesce(v.gateway, ''), coalesce(v.gateway_ref, ''), coalesce(v.invoice_ref, ''), "
    TS_OUT("v.created_at") ", v.created_at::text FROM reporting.charges v" PAGE_WHERE,
    10};
#define CHARGE_CURSOR_COL 11

static const struct tok_sql refunds_page_sql = {
    "report_refunds_page",
    "SELECT v.id, v.livemode, v.charge_id, v.amount, v.currency, v.status, coalesce(v.gateway, ''), "
    "coalesce(v.gateway_ref, ''), coalesce(v.invoice_ref, ''), " TS_OUT("v.created_at")
    ", v.created_at::text FROM reporting.refunds v" PAGE_WHERE,
    10};
#define REFUND_CURSOR_COL 10

static const struct tok_sql events_page_sql = {
    "report_events_page",
    "SELECT v.id, v.livemode, v.type, v.data::text, " TS_OUT("v.created_at")
    ", v.created_at::text FROM reporting.events v WHERE v.livemode = $1 "
    "AND v.created_at >= $2::timestamptz AND v.created_at < $3::timestamptz "
    "AND ($4 = '' OR v.type = $4) AND (v.created_at, v.id) > ($5::timestamptz, $6) "
    "ORDER BY v.created_at, v.id LIMIT $7",
    7};
#define EVENT_CURSOR_COL 5

static const struct tok_sql charge_cursor_sql = {
    "report_charge_cursor",
    "SELECT created_at::text FROM reporting.charges WHERE id = $1 AND livemode = $2", 2};
static const struct tok_sql refund_cursor_sql = {
    "report_refund_cursor",
    "SELECT created_at::text FROM reporting.refunds WHERE id = $1 AND livemode = $2", 2};
static const struct tok_sql event_cursor_sql = {
    "report_event_cursor",
    "SELECT created_at::text FROM reporting.events WHERE id = $1 AND livemode = $2", 2};

static const struct tok_sql *cursor_sql(enum tok_report_kind kind)
{
    return kind == TOK_REPORT_CHARGES ? &charge_cursor_sql
           : kind == TOK_REPORT_REFUNDS ? &refund_cursor_sql
                                        : &event_cursor_sql;
}

int tok_reports_cursor_column(enum tok_report_kind kind)
{
    return kind == TOK_REPORT_CHARGES   ? CHARGE_CURSOR_COL
           : kind == TOK_REPORT_REFUNDS ? REFUND_CURSOR_COL
                                        : EVENT_CURSOR_COL;
}

tok_status tok_reports_page(struct tok_db_conn *conn, const char *tenant_id, bool livemode,
                            const struct tok_report_query *q, const char *after_ts,
                            const char *after_id, unsigned limit, PGresult **out)
{
    TOK_ENSURE(conn != NULL && q != NULL && out != NULL, TOK_ERR_INTERNAL);
    char lim[16];
    snprintf(lim, sizeof lim, "%u", limit);
    const char *v[10] = {
        livemode ? "t" : "f",
        q->created_from[0] ? q->created_from : "-infinity",
        q->created_to[0] ? q->created_to : "infinity",
        q->status,
        q->gateway,
        q->invoice_ref,
        q->currency,
        after_ts != NULL && after_ts[0] ? after_ts : "-infinity",
        after_id != NULL ? after_id : "",
        lim,
    };
    TOK_GUARD(tok_db_set_tenant(conn, tenant_id));
    if (q->kind == TOK_REPORT_EVENTS) {
        const char *ev[7] = {v[0], v[1], v[2], q->type, v[7], v[8], lim};
        return tok_db_exec(conn, &events_page_sql, ev, NULL, NULL, out);
    }
    return tok_db_exec(conn, q->kind == TOK_REPORT_CHARGES ? &charges_page_sql : &refunds_page_sql,
                       v, NULL, NULL, out);
}

/* ---- rows -------------------------------------------------------------------------- */

static int64_t int_at(PGresult *res, int i, int col)
{
    return strtoll(PQgetvalue(res, i, col), NULL, 10);
}

static void str_or_null(struct tok_json_writer *w, const char *key, const char *v)
{
    tok_jw_kstr(w, key, v[0] != '\0' ? v : NULL);
}

tok_status tok_reports_row_json(enum tok_report_kind kind, PGresult *res, int i, struct tok_buf *b)
{
    struct tok_json_writer w;
    tok_jw_init(&w, b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "id", PQgetvalue(res, i, 0));
    if (kind == TOK_REPORT_EVENTS) {
        tok_jw_kstr(&w, "object", "event");
        tok_jw_kbool(&w, "livemode", PQgetvalue(res, i, 1)[0] == 't');
        tok_jw_kstr(&w, "type", PQgetvalue(res, i, 2));
        tok_jw_key(&w, "data"); /* jsonb as PostgreSQL prints it: valid JSON */
        tok_jw_raw(&w, tok_slice_of(PQgetvalue(res, i, 3), (size_t)PQgetlength(res, i, 3)));
        tok_jw_kstr(&w, "created_at", PQgetvalue(res, i, 4));
        tok_jw_obj_end(&w);
        return tok_jw_finish(&w);
    }
    tok_jw_kstr(&w, "object", kind == TOK_REPORT_CHARGES ? "charge" : "refund");
    tok_jw_kbool(&w, "livemode", PQgetvalue(res, i, 1)[0] == 't');
    if (kind == TOK_REPORT_CHARGES) {
        tok_jw_kint(&w, "amount", int_at(res, i, 2));
        tok_jw_kint(&w, "amount_captured", int_at(res, i, 3));
        tok_jw_kint(&w, "amount_refunded", int_at(res, i, 4));
        tok_jw_kstr(&w, "currency", PQgetvalue(res, i, 5));
        tok_jw_kstr(&w, "status", PQgetvalue(res, i, 6));
        str_or_null(&w, "gateway", PQgetvalue(res, i, 7));
        str_or_null(&w, "gateway_reference", PQgetvalue(res, i, 8));
        str_or_null(&w, "invoice_ref", PQgetvalue(res, i, 9));
        tok_jw_kstr(&w, "created_at", PQgetvalue(res, i, 10));
    } else {
        tok_jw_kstr(&w, "charge", PQgetvalue(res, i, 2));
        tok_jw_kint(&w, "amount", int_at(res, i, 3));
        tok_jw_kstr(&w, "currency", PQgetvalue(res, i, 4));
        tok_jw_kstr(&w, "status", PQgetvalue(res, i, 5));
        str_or_null(&w, "gateway", PQgetvalue(res, i, 6));
        str_or_null(&w, "gateway_reference", PQgetvalue(res, i, 7));
        str_or_null(&w, "invoice_ref", PQgetvalue(res, i, 8));
        tok_jw_kstr(&w, "created_at", PQgetvalue(res, i, 9));
    }
    tok_jw_obj_end(&w);
    return tok_jw_finish(&w);
}

static const char *const charge_csv_cols[] = {"id", "livemode", "amount", "amount_captured",
    "amount_refunded", "currency", "status", "gateway", "gateway_reference", "invoice_ref",
    "created_at"};
static const char *const refund_csv_cols[] = {"id", "livemode", "charge", "amount", "currency",
    "status", "gateway", "gateway_reference", "invoice_ref", "created_at"};
static const char *const event_csv_cols[] = {"id", "livemode", "type", "data", "created_at"};

/* The numeric columns tokend computes (amounts in minor units): written as numbers, so
 * a spreadsheet sums them; every other column is text and neutralised (csv.h). */
static bool csv_numeric(enum tok_report_kind kind, int col)
{
    switch (kind) {
    case TOK_REPORT_CHARGES: return col >= 2 && col <= 4;
    case TOK_REPORT_REFUNDS: return col == 3;
    default: return false;
    }
}

static const char *const *csv_cols(enum tok_report_kind kind, size_t *n)
{
    switch (kind) {
    case TOK_REPORT_CHARGES: *n = TOK_ARRAY_LEN(charge_csv_cols); return charge_csv_cols;
    case TOK_REPORT_REFUNDS: *n = TOK_ARRAY_LEN(refund_csv_cols); return refund_csv_cols;
    default: *n = TOK_ARRAY_LEN(event_csv_cols); return event_csv_cols;
    }
}

tok_status tok_reports_csv_header(enum tok_report_kind kind, struct tok_buf *b)
{
    size_t n = 0;
    const char *const *cols = csv_cols(kind, &n);
    for (size_t i = 0; i < n; i++)
        TOK_GUARD(tok_csv_put_text(b, tok_slice_str(cols[i]), i == 0));
    return tok_csv_end(b);
}

tok_status tok_reports_row_csv(enum tok_report_kind kind, PGresult *res, int i, struct tok_buf *b)
{
    /* the page columns are in CSV order; livemode prints as true/false */
    size_t ncols = 0;
    (void)csv_cols(kind, &ncols);
    int n = (int)ncols;
    for (int c = 0; c < n; c++) {
        struct tok_slice v = tok_slice_of(PQgetvalue(res, i, c), (size_t)PQgetlength(res, i, c));
        if (c == 1)
            v = tok_slice_str(v.len > 0 && v.ptr[0] == 't' ? "true" : "false");
        TOK_GUARD(csv_numeric(kind, c) ? tok_csv_put_number(b, v, c == 0)
                                        : tok_csv_put_text(b, v, c == 0));
    }
    return tok_csv_end(b);
}

/* ---- query parameters --------------------------------------------------------------- */

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s ('+' is a space) into out, NUL-terminated. */
static tok_status url_decode(struct tok_slice s, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '%') {
            TOK_ENSURE(i + 2 < s.len, TOK_ERR_INPUT);
            int h = hexval(s.ptr[i + 1]), l = hexval(s.ptr[i + 2]);
            TOK_ENSURE(h >= 0 && l >= 0, TOK_ERR_INPUT);
            c = (uint8_t)(h * 16 + l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        TOK_ENSURE(c >= 0x20 && c != 0x7f, TOK_ERR_INPUT); /* no control bytes, no NUL */
        TOK_ENSURE(n + 1 < cap, TOK_ERR_BOUNDS);
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return TOK_OK;
}

static bool in_list(const char *v, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(v, *list) == 0)
            return true;
    return false;
}

static const char *const charge_statuses[] = {"pending", "requires_action", "requires_capture",
    "succeeded", "partially_refunded", "refunded", "disputed", "failed", "declined", "canceled",
    NULL};
static const char *const refund_statuses[] = {"pending", "succeeded", "failed", NULL};

static tok_status time_param(const char *v, char *out, size_t cap)
{
    int64_t t = 0;
    TOK_GUARD(tok_rfc3339_parse(tok_slice_str(v), &t));
    time_t tt = (time_t)t;
    struct tm tm;
    TOK_ENSURE(gmtime_r(&tt, &tm) != NULL, TOK_ERR_INPUT);
    int n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    TOK_ENSURE(n > 0 && (size_t)n < cap, TOK_ERR_INPUT);
    return TOK_OK;
}

static bool token_ok(const char *v, size_t max)
{
    size_t n = strlen(v);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* An event type as ledger.events allows it: [a-z_]+(.[a-z_]+)+ */
static bool event_type_ok(const char *v)
{
    size_t n = strlen(v);
    bool dot = false, prev_dot = true;
    if (n == 0 || n > TOK_REPORT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '.') {
            if (prev_dot)
                return false;
            dot = prev_dot = true;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || c == '_'))
            return false;
        prev_dot = false;
    }
    return dot && !prev_dot;
}

/* One name=value pair. */
static tok_status apply_param(struct tok_report_query *q, bool export, const char *name,
                              const char *v, const char **bad, const char **why)
{
#define REFUSE(p, w)                                                                                \
    do {                                                                                           \
        *bad = (p);                                                                                \
        *why = (w);                                                                                \
        return TOK_ERR_INPUT;                                                                      \
    } while (0)
    if (strcmp(name, "created_from") == 0 || (export && strcmp(name, "from") == 0)) {
        if (time_param(v, q->created_from, sizeof q->created_from) != TOK_OK)
            REFUSE(export && name[0] == 'f' ? "from" : "created_from", "not an RFC 3339 time");
        return TOK_OK;
    }
    if (strcmp(name, "created_to") == 0 || (export && strcmp(name, "to") == 0)) {
        if (time_param(v, q->created_to, sizeof q->created_to) != TOK_OK)
            REFUSE(export && name[0] == 't' ? "to" : "created_to", "not an RFC 3339 time");
        return TOK_OK;
    }
    if (q->kind == TOK_REPORT_EVENTS && strcmp(name, "type") == 0) {
        if (!event_type_ok(v))
            REFUSE("type", "not an event type (charge.succeeded, ...)");
        copy_str(q->type, sizeof q->type, v);
        return TOK_OK;
    }
    bool ledger_filter = strcmp(name, "status") == 0 || strcmp(name, "gateway") == 0 ||
                         strcmp(name, "invoice_ref") == 0 || strcmp(name, "currency") == 0;
    if (q->kind == TOK_REPORT_EVENTS && ledger_filter)
        REFUSE(strcmp(name, "status") == 0        ? "status"
               : strcmp(name, "gateway") == 0     ? "gateway"
               : strcmp(name, "invoice_ref") == 0 ? "invoice_ref"
                                                  : "currency",
               "not a filter of events");
    if (strcmp(name, "status") == 0) {
        if (!in_list(v, q->kind == TOK_REPORT_CHARGES ? charge_statuses : refund_statuses))
            REFUSE("status", "unknown status");
        copy_str(q->status, sizeof q->status, v);
        return TOK_OK;
    }
    if (strcmp(name, "gateway") == 0) {
        if (!token_ok(v, sizeof q->gateway - 1))
            REFUSE("gateway", "not a gateway name or id");
        copy_str(q->gateway, sizeof q->gateway, v);
        return TOK_OK;
    }
    if (strcmp(name, "invoice_ref") == 0) {
        if (v[0] == '\0' || strlen(v) > TOK_REPORT_PARAM_MAX)
            REFUSE("invoice_ref", "1 to 200 characters");
        copy_str(q->invoice_ref, sizeof q->invoice_ref, v);
        return TOK_OK;
    }
    if (strcmp(name, "currency") == 0) {
        if (tok_currency_normalise(tok_slice_str(v), q->currency) != TOK_OK)
            REFUSE("currency", "not a currency tokend knows");
        return TOK_OK;
    }
    if (!export && strcmp(name, "limit") == 0) {
        char *end = NULL;
        unsigned long n = strtoul(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || strlen(v) > 4 || n < 1 ||
            n > TOK_REPORT_LIMIT_MAX)
            REFUSE("limit", "a whole number from 1 to 1000");
        q->limit = (unsigned)n;
        return TOK_OK;
    }
    if (!export && strcmp(name, "starting_after") == 0) {
        const char *prefix = q->kind == TOK_REPORT_CHARGES   ? "ch_"
                             : q->kind == TOK_REPORT_REFUNDS ? "re_"
                                                             : "evt_";
        size_t pl = strlen(prefix), n = strlen(v);
        if (n != pl + TOK_RANDOM_ID_CHARS || strncmp(v, prefix, pl) != 0 ||
            !tok_base62_is_alphabet(tok_slice_str(v + pl)))
            REFUSE("starting_after", "not an id of this list");
        copy_str(q->starting_after, sizeof q->starting_after, v);
        return TOK_OK;
    }
    if (export && strcmp(name, "format") == 0) {
        if (strcmp(v, "csv") == 0)
            q->format = TOK_REPORT_CSV;
        else if (strcmp(v, "ndjson") == 0)
            q->format = TOK_REPORT_NDJSON;
        else
            REFUSE("format", "csv or ndjson");
        return TOK_OK;
    }
    *bad = "query";
    *why = "unknown query parameter";
    return TOK_ERR_INPUT;
#undef REFUSE
}

tok_status tok_reports_parse_query(struct tok_slice query, enum tok_report_kind kind, bool export,
                                   struct tok_report_query *q, const char **bad_param,
                                   const char **why)
{
    TOK_ENSURE(q != NULL && bad_param != NULL && why != NULL, TOK_ERR_INTERNAL);
    memset(q, 0, sizeof *q);
    q->kind = kind;
    q->format = export ? TOK_REPORT_CSV : TOK_REPORT_JSON;
    q->limit = TOK_REPORT_LIMIT_DEFAULT;
    *bad_param = "query";
    *why = "query string too long";
    TOK_ENSURE(query.len <= QUERY_MAX, TOK_ERR_INPUT);
    uint32_t seen = 0;
    static const char *const names[] = {"created_from", "created_to", "from", "to", "status",
        "gateway", "invoice_ref", "currency", "limit", "starting_after", "format", "type", NULL};
    size_t i = 0;
    while (i < query.len) {
        size_t j = i;
        while (j < query.len && query.ptr[j] != '&')
            j++;
        struct tok_slice pair = tok_slice_of(query.ptr + i, j - i);
        i = j + 1;
        if (pair.len == 0)
            continue;
        size_t eq = 0;
        while (eq < pair.len && pair.ptr[eq] != '=')
            eq++;
        char name[32], value[TOK_REPORT_PARAM_MAX * 3 + 1];
        *why = "malformed query parameter";
        if (url_decode(tok_slice_of(pair.ptr, eq), name, sizeof name) != TOK_OK)
            return TOK_ERR_INPUT;
        *bad_param = "query";
        for (size_t k = 0; names[k] != NULL; k++)
            if (strcmp(name, names[k]) == 0)
                *bad_param = names[k];
        struct tok_slice vs = eq < pair.len ? tok_slice_of(pair.ptr + eq + 1, pair.len - eq - 1)
                                            : tok_slice_of("", 0);
        if (url_decode(vs, value, sizeof value) != TOK_OK)
            return TOK_ERR_INPUT;
        for (size_t k = 0; names[k] != NULL; k++) {
            if (strcmp(name, names[k]) != 0)
                continue;
            *why = "given twice";
            TOK_ENSURE((seen & (1u << k)) == 0, TOK_ERR_INPUT);
            seen |= 1u << k;
        }
        TOK_GUARD(apply_param(q, export, name, value, bad_param, why));
    }
    *bad_param = NULL;
    *why = NULL;
    return TOK_OK;
}

/* ---- the reporting pool --------------------------------------------------------------- */

static void on_report_done(struct tok_db_job *job)
{
    struct tok_call *call = (struct tok_call *)job;
    struct tok_req *r = tok_http_unwatch(call);
    if (r != NULL)
        call->on_result(call, r);
    call->release(call);
}

void tok_reports_call(struct tok_req *r, struct tok_call *call)
{
    tok_http_watch(r, call);
    call->job.reply_to = &r->worker->db_replies;
    call->job.done = on_report_done;
    tok_db_submit(r->app->reporting_db, &call->job);
}

/* ---- GET /v1/charges, GET /v1/refunds ------------------------------------------------- */

struct list_call {
    struct tok_call call; /* first */
    struct tok_report_query q;
    char tenant_id[TOK_ID_MAX];
    bool livemode;
    bool bad_cursor;
    struct tok_buf body;
};

static void list_release(struct tok_call *call)
{
    struct list_call *c = (struct list_call *)call;
    tok_buf_wipe(&c->body);
    free(c);
}

static tok_status list_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct list_call *c = (struct list_call *)job;
    enum tok_report_kind kind = c->q.kind;
    char after_ts[TOK_REPORT_TS_MAX] = "";
    PGresult *res = NULL;
    TOK_GUARD(tok_db_set_tenant(conn, c->tenant_id));
    if (c->q.starting_after[0] != '\0') {
        const char *v[2] = {c->q.starting_after, c->livemode ? "t" : "f"};
        TOK_GUARD(tok_db_exec(conn, cursor_sql(kind), v, NULL, NULL, &res));
        c->bad_cursor = PQntuples(res) != 1;
        if (!c->bad_cursor)
            copy_str(after_ts, sizeof after_ts, PQgetvalue(res, 0, 0));
        PQclear(res);
        if (c->bad_cursor)
            return TOK_OK;
    }
    TOK_GUARD(tok_reports_page(conn, c->tenant_id, c->livemode, &c->q, after_ts,
                               c->q.starting_after, c->q.limit + 1, &res));
    int n = PQntuples(res);
    bool has_more = n > (int)c->q.limit;
    if (has_more)
        n = (int)c->q.limit;
    tok_status st = tok_buf_puts(&c->body, "{\"object\":\"list\",\"url\":\"");
    if (st == TOK_OK)
        st = tok_buf_puts(&c->body, kind == TOK_REPORT_CHARGES   ? "/v1/charges"
                                    : kind == TOK_REPORT_REFUNDS ? "/v1/refunds"
                                                                 : "/v1/events");
    if (st == TOK_OK)
        st = tok_buf_puts(&c->body, "\",\"data\":[");
    for (int i = 0; i < n && st == TOK_OK; i++) {
        if (i > 0)
            st = tok_buf_putc(&c->body, ',');
        if (st == TOK_OK)
            st = tok_reports_row_json(kind, res, i, &c->body);
    }
    PQclear(res);
    TOK_GUARD(st);
    return tok_buf_puts(&c->body, has_more ? "],\"has_more\":true}" : "],\"has_more\":false}");
}

static void list_result(struct tok_call *call, struct tok_req *r)
{
    struct list_call *c = (struct list_call *)call;
    if (c->call.job.status != TOK_OK) {
        tok_log_err("%s: %s: list failed: %s", __func__, r->id,
                    tok_status_name(c->call.job.status));
        tok_http_problem(r, 503, "reporting_unavailable", "the reporting database did not answer",
                         NULL);
        return;
    }
    if (c->bad_cursor) {
        tok_http_problem(r, 422, "invalid_parameter", "no such object to start after",
                         "starting_after");
        return;
    }
    tok_http_json(r, 200, tok_buf_slice(&c->body));
}

static struct tok_slice query_of(const struct tok_req *r)
{
    h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len)
        return tok_slice_of("", 0);
    return tok_slice_of(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

static void list_authed(struct tok_req *r, enum tok_report_kind kind)
{
    struct list_call *c = calloc(1, sizeof *c);
    if (c == NULL || tok_buf_alloc(&c->body, LIST_BODY_MAX, false) != TOK_OK) {
        free(c);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    const char *bad = NULL, *why = NULL;
    if (tok_reports_parse_query(query_of(r), kind, false, &c->q, &bad, &why) != TOK_OK) {
        list_release(&c->call);
        tok_http_problem(r, 422, "invalid_parameter", why, bad);
        return;
    }
    if (r->app->reporting_db == NULL) {
        list_release(&c->call);
        tok_http_problem(r, 503, "reporting_unavailable",
                         "reports need --reporting-db (the tokend_reporting role)", NULL);
        return;
    }
    copy_str(c->tenant_id, sizeof c->tenant_id, r->principal->tenant_id);
    c->livemode = r->principal->livemode;
    c->call.job.exec = list_exec;
    c->call.on_result = list_result;
    c->call.release = list_release;
    tok_reports_call(r, &c->call);
}

static void charges_authed(struct tok_req *r)
{
    list_authed(r, TOK_REPORT_CHARGES);
}

static void refunds_authed(struct tok_req *r)
{
    list_authed(r, TOK_REPORT_REFUNDS);
}

static void events_authed(struct tok_req *r)
{
    list_authed(r, TOK_REPORT_EVENTS);
}

void tok_reports_list_events(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ | TOK_SCOPE_CHARGES_WRITE, events_authed);
}

void tok_reports_list_charges(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ | TOK_SCOPE_CHARGES_WRITE, charges_authed);
}

void tok_reports_list_refunds(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ | TOK_SCOPE_CHARGES_WRITE, refunds_authed);
}
