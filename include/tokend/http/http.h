/*
 * http.h - what handlers use to answer: problem+json errors (RFC 9457) with
 * a stable `code`, JSON responses, request ids, and database calls that
 * survive the client going away.
 */
#ifndef TOKEND_HTTP_H
#define TOKEND_HTTP_H

#include "tokend/core/common.h"
#include "tokend/core/config.h"
#include "tokend/store/db.h"

#include <h2o.h>

#define TOK_REQUEST_ID_LEN 24 /* "req_" + 20 base32 characters */
#define TOK_PATH_PARAMS_MAX 4

struct tok_app;
struct tok_worker;
struct tok_principal;
struct tok_edge_req;

/** Per-request state, allocated from the request's pool (holds no secret). */
struct tok_req {
    h2o_req_t *req;
    struct tok_worker *worker;
    struct tok_app *app;
    char id[TOK_REQUEST_ID_LEN + 1];
    const char *route; /* the matched pattern, for logs and metrics */
    struct tok_slice params[TOK_PATH_PARAMS_MAX];
    size_t nparams;
    struct tok_principal *principal; /* set by tok_auth_require; a counted reference */
    struct tok_edge_req *edge;       /* the request's connection (edge.h) */
};

/**
 * True when the request's connection is being cut (HTTP/2 reset budget spent,
 * a deadline passed): a handler must start no gateway call and store nothing
 * more for it. A request whose stream was reset is gone altogether: its
 * tok_call's r is NULL (tok_http_unwatch) and its cancellable jobs are dropped.
 */
bool tok_req_cancelled(const struct tok_req *r);

/**
 * A database call made on behalf of a request. Embed it first in the handler's
 * own struct. `on_result` runs on the request's loop thread only if the
 * request still exists; `release` always runs last and must free (and wipe)
 * the whole struct.
 */
struct tok_call {
    struct tok_db_job job; /* first */
    struct tok_req *r;     /* NULL once the request is gone */
    struct tok_call_guard *guard;
    struct tok_worker *worker; /* the loop thread that owns the call */
    void (*on_result)(struct tok_call *call, struct tok_req *r);
    void (*release)(struct tok_call *call);
};

/** Sends a problem+json error: {type,title,status,detail,code,request_id[,param]}. */
void tok_http_problem(struct tok_req *r, int status, const char *code, const char *detail,
                      const char *param);

/**
 * 503 for a database job that failed: `commit_outcome_unknown` when the connection broke
 * after its COMMIT was sent (job->commit_unknown: the change may or may not be stored; a
 * retry with the same Idempotency-Key is safe), else `database_unavailable` with detail
 * (borrowed, may be NULL).
 */
void tok_http_problem_db(struct tok_req *r, const struct tok_db_job *job, const char *detail);

/**
 * tok_http_problem with a "decline_code" member (a card the gateway refused: 402
 * card_declined). decline may be NULL (no member), borrowed.
 */
void tok_http_problem_decline(struct tok_req *r, int status, const char *code, const char *detail,
                              const char *param, const char *decline);

/**
 * Writes the body tok_http_problem_decline sends into b (for a response that is also stored:
 * an Idempotency-Key replay). request_id and decline may be NULL. TOK_ERR_BOUNDS when it does
 * not fit.
 */
TOK_MUST_CHECK tok_status tok_http_problem_body(struct tok_buf *b, int status, const char *code,
                                                const char *detail, const char *param,
                                                const char *request_id, const char *decline);

/** Sends a JSON body (copied into the request pool) with the given status. */
void tok_http_json(struct tok_req *r, int status, struct tok_slice body);

/** Sends a body with a content type (copied). */
void tok_http_send(struct tok_req *r, int status, const char *content_type, struct tok_slice body);

/** Adds a response header (name and value copied into the pool). */
void tok_http_header(struct tok_req *r, const char *name, const char *value);

/** The value of a request header (lower-case name), or false when absent. */
bool tok_http_req_header(const struct tok_req *r, const char *name, struct tok_slice *out);

/** Queues `call` on the database; takes ownership of it. */
void tok_http_call(struct tok_req *r, struct tok_call *call);

/**
 * As tok_http_call, for a job done only to answer r (db.h: cancellable): if
 * the request ends (its stream reset) before a database thread starts the
 * job, the job is skipped; on_result is not run, release is.
 */
void tok_http_call_cancellable(struct tok_req *r, struct tok_call *call);

/**
 * Links call to r for an asynchronous step that is not a database job (a
 * gateway call): if the request ends meanwhile, call->r becomes NULL.
 */
void tok_http_watch(struct tok_req *r, struct tok_call *call);

/** Ends tok_http_watch: the request if it still exists, else NULL. */
struct tok_req *tok_http_unwatch(struct tok_call *call);

/**
 * Queues call with no request to answer (the client went away but the outcome
 * must still be recorded): on_result is not run, release is. Needs
 * call->worker (set by tok_http_watch or tok_http_call).
 */
void tok_http_call_detached(struct tok_call *call);

/** The reason phrase of a status code ("Not Found"). */
const char *tok_http_reason(int status);

/** The problem code h2o-level errors get, by status ("body_too_large" for 413). */
const char *tok_http_code_for_status(int status);

/**
 * Registers tokend's per-request machinery on a path: the filter that turns
 * h2o's own error pages (413, 400, 408...) into problem+json, and the access
 * logger (one JSON line per request, never a body), which writes what `mode`
 * (--access-log) asks: every answer, one ordinary answer in sample_every (each
 * such line carries "sampled": N) plus every 5xx, 401 and 403, those alone, or nothing.
 */
void tok_http_register_filters(h2o_pathconf_t *pathconf, enum tok_access_log mode,
                               unsigned sample_every);

/** Fills r->id with a fresh request id and sets the X-Request-Id response header. */
void tok_http_assign_id(struct tok_req *r);

#endif
