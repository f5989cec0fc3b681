/*
 * http.c - responses, problem details, the error-page filter and the access
 * log. Every response tokend sends, including the ones h2o generates itself
 * (request too large, bad framing, timeouts), leaves as problem+json with an
 * X-Request-Id, and every request writes exactly one access-log line.
 */
#include "tokend/http/http.h"
#include "tokend/core/rand.h"
#include "tokend/core/json.h"
#include "tokend/core/log.h"
#include "tokend/http/app.h"
#include "tokend/http/edge.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#define PROBLEM_BODY_MAX 1024
#define ACCESS_LINE_MAX 2048
#define LOGGED_PATH_MAX 256

static const char problem_type_prefix[] = "https://tokend.dev/problems/";

const char *tok_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

const char *tok_http_code_for_status(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 411: return "length_required";
    case 413: return "body_too_large";
    case 414: return "uri_too_long";
    case 417: return "expectation_failed";
    case 431: return "headers_too_large";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal_error" : "bad_request";
    }
}

void tok_http_assign_id(struct tok_req *r)
{
    /* 100 bits of libsodium randomness, base32 (lower-case, no padding) */
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t raw[20];
    tok_rand_public(raw, sizeof raw);
    tok_copy(r->id, "req_", 4);
    for (size_t i = 0; i < 20; i++)
        r->id[4 + i] = alphabet[raw[i] & 31];
    r->id[TOK_REQUEST_ID_LEN] = '\0';
    tok_http_header(r, "x-request-id", r->id);
}

void tok_http_header(struct tok_req *r, const char *name, const char *value)
{
    h2o_req_t *req = r->req;
    size_t nlen = strlen(name), vlen = strlen(value);
    h2o_iovec_t n = h2o_strdup(&req->pool, name, nlen);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, vlen);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

bool tok_http_req_header(const struct tok_req *r, const char *name, struct tok_slice *out)
{
    ssize_t i = h2o_find_header_by_str(&r->req->headers, name, strlen(name), -1);
    if (i < 0)
        return false;
    out->ptr = (const uint8_t *)r->req->headers.entries[i].value.base;
    out->len = r->req->headers.entries[i].value.len;
    return true;
}

void tok_http_send(struct tok_req *r, int status, const char *content_type, struct tok_slice body)
{
    h2o_req_t *req = r->req;
    req->res.status = status;
    req->res.reason = tok_http_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, (const char *)body.ptr, body.len);
}

void tok_http_json(struct tok_req *r, int status, struct tok_slice body)
{
    tok_http_send(r, status, "application/json", body);
}

tok_status tok_http_problem_body(struct tok_buf *b, int status, const char *code,
                                 const char *detail, const char *param, const char *request_id,
                                 const char *decline)
{
    struct tok_json_writer w;
    tok_jw_init(&w, b);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "type");
    uint8_t tmem[128];
    struct tok_buf t;
    tok_buf_init(&t, tmem, sizeof tmem);
    TOK_GUARD(tok_buf_puts(&t, problem_type_prefix));
    TOK_GUARD(tok_buf_puts(&t, code));
    tok_jw_strn(&w, tok_buf_slice(&t));
    tok_jw_kstr(&w, "title", tok_http_reason(status));
    tok_jw_kint(&w, "status", status);
    tok_jw_kstr(&w, "code", code);
    if (detail != NULL) {
        tok_jw_kstr(&w, "detail", detail);
    }
    if (param != NULL) {
        tok_jw_kstr(&w, "param", param);
    }
    if (decline != NULL) {
        tok_jw_kstr(&w, "decline_code", decline);
    }
    if (request_id != NULL && request_id[0] != '\0') {
        tok_jw_kstr(&w, "request_id", request_id);
    }
    tok_jw_obj_end(&w);
    return w.st;
}

void tok_http_problem_decline(struct tok_req *r, int status, const char *code, const char *detail,
                              const char *param, const char *decline)
{
    uint8_t mem[PROBLEM_BODY_MAX];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    if (tok_http_problem_body(&b, status, code, detail, param, r->id, decline) != TOK_OK) {
        tok_buf_reset(&b);
        if (tok_http_problem_body(&b, status, code, NULL, NULL, r->id, NULL) != TOK_OK)
            b.len = 0;
    }
    tok_http_send(r, status, "application/problem+json", tok_buf_slice(&b));
}

bool tok_req_cancelled(const struct tok_req *r)
{
    return r == NULL || tok_edge_req_doomed(r->edge);
}

void tok_http_problem(struct tok_req *r, int status, const char *code, const char *detail,
                      const char *param)
{
    tok_http_problem_decline(r, status, code, detail, param, NULL);
}

void tok_http_problem_db(struct tok_req *r, const struct tok_db_job *job, const char *detail)
{
    if (job != NULL && job->commit_unknown) {
        tok_http_problem(r, 503, "commit_outcome_unknown",
                         "the database connection broke while the change was being committed: "
                         "it may or may not be stored; retry with the same Idempotency-Key",
                         NULL);
        return;
    }
    tok_http_problem(r, 503, "database_unavailable", detail, NULL);
}

/* ---- the database call guard ------------------------------------------------
 * The guard lives in the request pool; h2o disposes it when the request ends.
 * Both sides run on the request's loop thread, so no lock is needed. */

struct tok_call_guard {
    struct tok_call *call;
};

static void on_guard_dispose(void *p)
{
    struct tok_call_guard *g = p;
    if (g->call != NULL) {
        atomic_store(&g->call->job.abandoned, true); /* db.h: a cancellable job is skipped */
        g->call->r = NULL;
        g->call->guard = NULL;
    }
}

static void on_call_done(struct tok_db_job *job)
{
    struct tok_call *call = (struct tok_call *)job;
    if (call->guard != NULL)
        call->guard->call = NULL;
    if (call->r != NULL)
        call->on_result(call, call->r);
    call->release(call);
}

void tok_http_watch(struct tok_req *r, struct tok_call *call)
{
    struct tok_call_guard *g = h2o_mem_alloc_shared(&r->req->pool, sizeof *g, on_guard_dispose);
    g->call = call;
    call->r = r;
    call->guard = g;
    call->worker = r->worker;
}

struct tok_req *tok_http_unwatch(struct tok_call *call)
{
    if (call->guard != NULL)
        call->guard->call = NULL;
    call->guard = NULL;
    struct tok_req *r = call->r;
    call->r = NULL;
    return r;
}

static void call_submit(struct tok_req *r, struct tok_call *call, bool cancellable)
{
    tok_http_watch(r, call);
    call->job.cancellable = cancellable;
    call->job.reply_to = &r->worker->db_replies;
    call->job.done = on_call_done;
    tok_db_submit(r->app->db, &call->job);
}

void tok_http_call(struct tok_req *r, struct tok_call *call)
{
    call_submit(r, call, false);
}

void tok_http_call_cancellable(struct tok_req *r, struct tok_call *call)
{
    call_submit(r, call, true);
}

void tok_http_call_detached(struct tok_call *call)
{
    struct tok_worker *w = call->worker;
    call->r = NULL;
    call->guard = NULL;
    call->job.cancellable = false; /* its outcome must be recorded whoever waits */
    call->job.reply_to = &w->db_replies;
    call->job.done = on_call_done;
    tok_db_submit(w->app->db, &call->job);
}

/* ---- the error-page filter ---------------------------------------------------- */

struct problem_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    bool sent;
};

static void problem_do_send(h2o_ostream_t *self_, h2o_req_t *req, h2o_iovec_t *bufs, size_t n,
                            h2o_send_state_t state)
{
    struct problem_ostream *self = (struct problem_ostream *)self_;
    (void)bufs;
    (void)n;
    if (h2o_send_state_is_in_progress(state)) {
        h2o_ostream_send_next(&self->super, req, NULL, 0, state);
        return;
    }
    if (self->sent) {
        h2o_ostream_send_next(&self->super, req, NULL, 0, state);
        return;
    }
    self->sent = true;
    h2o_ostream_send_next(&self->super, req, &self->body, 1, state);
}

static bool is_problem(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    return i >= 0 && h2o_memis(req->res.headers.entries[i].value.base,
                               req->res.headers.entries[i].value.len,
                               H2O_STRLIT("application/problem+json"));
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (req->res.status < 400 || is_problem(req)) {
        h2o_setup_next_ostream(req, slot);
        return;
    }
    /* an error page h2o made itself: replace it with problem+json */
    struct tok_req tr;
    memset(&tr, 0, sizeof tr);
    tr.req = req;
    if (h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1) < 0)
        tok_http_assign_id(&tr);
    uint8_t mem[PROBLEM_BODY_MAX];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    if (tok_http_problem_body(&b, req->res.status, tok_http_code_for_status(req->res.status), NULL, NULL,
                     tr.id, NULL) != TOK_OK) {
        h2o_setup_next_ostream(req, slot);
        return;
    }
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ct >= 0)
        req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/problem+json"));
    else
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/problem+json"));
    struct problem_ostream *os =
        (struct problem_ostream *)h2o_add_ostream(req, sizeof *os, slot);
    os->super.do_send = problem_do_send;
    os->body = h2o_strdup(&req->pool, (const char *)b.data, b.len);
    os->sent = false;
    req->res.content_length = os->body.len;
    h2o_setup_next_ostream(req, &os->super.next);
}

/* ---- the access log ------------------------------------------------------------ */

/* Path without the query, with identifier segments (prefix_xxx) replaced by
 * "{id}", so logs never carry token ids or anything a caller put in a URL. */
static void logged_path(h2o_req_t *req, struct tok_buf *out)
{
    size_t len = req->path.len;
    if (req->query_at != SIZE_MAX && req->query_at < len)
        len = req->query_at;
    const char *p = req->path.base;
    size_t i = 0;
    while (i < len) {
        if (p[i] == '/') {
            if (tok_buf_putc(out, '/') != TOK_OK)
                return;
            i++;
            continue;
        }
        size_t j = i;
        bool has_us = false, plain = true;
        while (j < len && p[j] != '/') {
            char c = p[j];
            if (c == '_')
                has_us = true;
            else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                plain = false;
            j++;
        }
        bool is_id = has_us || !plain || j - i > 32;
        if (!is_id && j - i > 0 && p[i] >= '0' && p[i] <= '9')
            is_id = true;
        tok_status st = is_id ? tok_buf_puts(out, "{id}") : tok_buf_write(out, p + i, j - i);
        if (st != TOK_OK)
            return;
        i = j;
    }
}

struct access_logger {
    h2o_logger_t super;
    enum tok_access_log mode;
    unsigned every;          /* TOK_ACCESS_SAMPLE: one ordinary answer in this many */
    _Atomic uint64_t seen;   /* ordinary answers so far (every loop thread adds) */
};

/* Answers an operator always wants: the server failed, or someone failed to authenticate or
 * was refused a scope (the trail of a key being guessed or misused). 429s are not: each
 * refusal writes its own warning line (vault/auth.c), and tokend_ratelimit_refused_total
 * counts them. */
static bool always_logged(int status)
{
    return status >= 500 || status == 401 || status == 403;
}

static bool access_wanted(struct access_logger *l, int status)
{
    switch (l->mode) {
    case TOK_ACCESS_ALL:
        return true;
    case TOK_ACCESS_OFF:
        return false;
    case TOK_ACCESS_ERRORS:
        return always_logged(status);
    case TOK_ACCESS_SAMPLE:
        if (always_logged(status))
            return true;
        return atomic_fetch_add_explicit(&l->seen, 1, memory_order_relaxed) % l->every == 0;
    default:
        return true;
    }
}

static void on_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    struct access_logger *al = (struct access_logger *)self;
    if (!access_wanted(al, req->res.status))
        return;
    uint8_t mem[ACCESS_LINE_MAX], pmem[LOGGED_PATH_MAX], tsmem[40];
    struct tok_buf b, pb, tsb;
    tok_buf_init(&b, mem, sizeof mem);
    tok_buf_init(&pb, pmem, sizeof pmem);
    tok_buf_init(&tsb, tsmem, sizeof tsmem);
    logged_path(req, &pb);

    struct timeval now;
    gettimeofday(&now, NULL);
    const struct timeval *start = &req->timestamps.request_begin_at;
    double ms = (double)(now.tv_sec - start->tv_sec) * 1e3 +
                (double)(now.tv_usec - start->tv_usec) / 1e3;
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    if (tok_buf_printf(&tsb, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       (long)(now.tv_usec / 1000)) != TOK_OK)
        return;

    ssize_t ri = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1);
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "ts");
    tok_jw_strn(&w, tok_buf_slice(&tsb));
    tok_jw_kstr(&w, "level", "info");
    tok_jw_kstr(&w, "msg", "request");
    tok_jw_key(&w, "request_id");
    if (ri >= 0)
        tok_jw_strn(&w, tok_slice_of(req->res.headers.entries[ri].value.base,
                                     req->res.headers.entries[ri].value.len));
    else
        tok_jw_null(&w);
    tok_jw_key(&w, "method");
    tok_jw_strn(&w, tok_slice_of(req->method.base, req->method.len < 16 ? req->method.len : 16));
    tok_jw_key(&w, "path");
    tok_jw_strn(&w, tok_buf_slice(&pb));
    tok_jw_kint(&w, "status", req->res.status);
    tok_jw_kstr(&w, "http", req->version >= 0x200 ? "2" : req->version == 0x101 ? "1.1" : "1.0");
    tok_jw_kbool(&w, "tls", req->input.scheme == &H2O_URL_SCHEME_HTTPS);
    tok_jw_kint(&w, "duration_ms", (int64_t)(ms * 1000.0) / 1000);
    tok_jw_kint(&w, "bytes_sent", (int64_t)req->bytes_sent);
    if (al->mode == TOK_ACCESS_SAMPLE && !always_logged(req->res.status))
        tok_jw_kint(&w, "sampled", (int64_t)al->every); /* this line stands for that many */
    tok_jw_obj_end(&w);
    if (w.st == TOK_OK)
        tok_log_json_line(tok_buf_slice(&b));
}

void tok_http_register_filters(h2o_pathconf_t *pathconf, enum tok_access_log mode,
                               unsigned sample_every)
{
    h2o_filter_t *f = h2o_create_filter(pathconf, sizeof *f);
    f->on_setup_ostream = on_setup_ostream;
    struct access_logger *l = (struct access_logger *)h2o_create_logger(pathconf, sizeof *l);
    l->super.log_access = on_log_access;
    l->mode = mode;
    l->every = sample_every > 0 ? sample_every : 1;
    atomic_init(&l->seen, 0);
}
