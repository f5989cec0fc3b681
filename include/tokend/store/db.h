/*
 * db.h - PostgreSQL access for the event loops, without ever blocking them.
 *
 * DESIGN DECISION (issue #3): dedicated database threads, not libpq's async
 * API inside the h2o loops.
 *   - An event-loop thread never calls libpq. A handler fills a tok_db_job and
 *     submits it; a database thread runs it on its own connection and hands
 *     the job back to the loop that owns the request through h2o's
 *     multithread queue (h2o_multithread_send_message), where `done` runs.
 *   - Each database thread takes every job waiting (up to db_batch_max) and
 *     runs them in ONE transaction, each job inside its own SAVEPOINT: this is
 *     group commit. Many concurrent requests cost one fsync, and a job that
 *     fails rolls back to its savepoint without failing its neighbours.
 *   - Why not async libpq on the loop: group commit needs jobs from every
 *     loop thread in one transaction, which a per-loop connection cannot
 *     give; and a blocking bug in an async state machine stalls every request
 *     of a loop, while here it stalls one database thread.
 *   - Round trips (issue #9): a batch runs in libpq's pipeline mode. BEGIN,
 *     SAVEPOINT, RELEASE, set_tenant and tok_db_exec_deferred statements are
 *     sent without waiting; the next tok_db_exec (or the end of the job)
 *     syncs them with its own statement, so a job costs one round trip per
 *     result it actually needs.
 *   - Multi-row jobs (issue #9): jobs that declare a tok_db_group run
 *     together as one set of multi-row statements, with a fallback to one
 *     by one when that fails (see struct tok_db_group).
 *   - Row-level security: each job sets its tenant with set_config(...,
 *     true) inside its savepoint, so tenants never leak across jobs.
 *   - The job outlives the request: if the client goes away while the job is
 *     in flight, `done` still runs (with the request gone) and frees it.
 *   - Following the primary (issue #17): a thread whose connection broke
 *     reconnects by itself (libpq's multi-host conninfo with
 *     target_session_attrs=read-write finds the new primary after a
 *     failover). A connection the server closed while idle is found before a
 *     batch is sent on it; a batch that fails because the connection broke
 *     before its COMMIT could have run is sent again, once, on a new
 *     connection, for every job whose exec had not yet been given a row
 *     (its exec runs again from the start, so it must not have kept
 *     anything); the other jobs fail (TOK_ERR_DB: nothing was committed).
 *     When the connection broke after COMMIT was sent and before its answer,
 *     nobody can tell whether the batch committed: its jobs fail with
 *     commit_unknown set, which the handlers answer 503
 *     commit_outcome_unknown (tok_http_problem_db).
 */
#ifndef TOKEND_DB_H
#define TOKEND_DB_H

#include "tokend/core/common.h"

#include <h2o.h>
#include <h2o/multithread.h>
#include <libpq-fe.h>
#include <stdatomic.h>

#define TOK_DB_WHY_MAX 256
#define TOK_DB_PREPARED_MAX 128

struct tok_db;
struct tok_db_conn;
struct tok_db_job;

/** Runs on a database thread, inside the batch transaction and the job's savepoint. */
typedef tok_status (*tok_db_exec_cb)(struct tok_db_job *job, struct tok_db_conn *conn);
/** Runs on the submitting loop thread once the batch committed (or failed). */
typedef void (*tok_db_done_cb)(struct tok_db_job *job);

/**
 * Jobs of one kind that a database thread may run together (issue #9): the
 * jobs of a batch with the same group and the same group_key (the tenant, as
 * row-level security is set per statement) run as ONE call of `exec`, inside
 * one savepoint, so a batch of tokenisations costs a few multi-row
 * statements instead of a few statements per token. `exec` sets every job's
 * status. If it returns an error, everything it did is rolled back and each
 * job runs again on its own through its `exec`, in its own savepoint: one bad
 * row never fails its neighbours.
 */
struct tok_db_group {
    const char *name;
    tok_status (*exec)(struct tok_db_job *const *jobs, unsigned n, struct tok_db_conn *conn);
};

struct tok_db_job {
    h2o_multithread_message_t super; /* must be first: the queue links jobs through it */
    h2o_multithread_receiver_t *reply_to;
    tok_db_exec_cb exec;
    tok_db_done_cb done;
    tok_status status; /* exec's result, or TOK_ERR_DB when the commit failed */
    const struct tok_db_group *group; /* optional: may run together with its kind */
    const char *group_key;            /* with group: jobs run together only if equal */
    /* optional: a job whose only purpose is its requester's answer (a token
     * insert for a request the client cancelled) sets cancellable; whoever
     * learns that nobody waits for it any more sets abandoned (any thread);
     * a database thread that has not started it yet then skips it: exec is
     * not called, status is TOK_ERR_NOTFOUND, done still runs (issue #15, 5) */
    bool cancellable;
    atomic_bool abandoned;
    /* set with status TOK_ERR_DB when COMMIT was sent and the connection broke before its
     * answer: the job's work may or may not have been committed (db.h, top) */
    bool commit_unknown;
    bool delivered;                   /* internal: exec was given a row in this attempt */
    bool retried;                     /* internal: already sent again on a new connection */
    uint64_t queued_us;               /* internal: when it was submitted */
    struct tok_db_job *next; /* internal: batch list */
};

struct tok_db_config {
    const char *conninfo; /* borrowed; secret */
    unsigned threads;
    unsigned batch_max;
    unsigned batch_window_us;
    const char *name; /* the pool's label in /metrics ("primary", "reporting"); NULL: "primary" */
};

/** A prepared statement: a stable name, its SQL text and its parameter count. */
struct tok_sql {
    const char *name;
    const char *text;
    int nparams;
};

/**
 * Connects every database thread (blocking: call before the loops start) and
 * starts them. On failure writes a one-line reason (never the conninfo) into
 * why and returns TOK_ERR_DB.
 */
TOK_MUST_CHECK tok_status tok_db_open(const struct tok_db_config *cfg, struct tok_db **out,
                                      char *why, size_t why_len);

/** Stops the threads after the jobs already queued, closes connections, frees *db. */
void tok_db_close(struct tok_db **db);

/**
 * Queues a job (takes ownership until `done` runs). Thread-safe; never blocks
 * on the database. job->exec, done and reply_to must be set.
 */
void tok_db_submit(struct tok_db *db, struct tok_db_job *job);

/** The receiver callback loops register for their queue: runs each job's `done`. */
void tok_db_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/**
 * Runs a prepared statement (prepared once per connection on first use).
 * values are text parameters (NULL = SQL NULL), except where formats[i] is 1:
 * then values[i] is lengths[i] bytes in the type's binary format (pgarr.h
 * writes arrays). lengths and formats may be NULL: all text. On success *out holds a
 * PGresult the caller PQclear()s. TOK_ERR_DB on any error; a unique
 * violation (SQLSTATE 23505) is TOK_ERR_CONFLICT so callers can tell it apart.
 */
TOK_MUST_CHECK tok_status tok_db_exec(struct tok_db_conn *conn, const struct tok_sql *sql,
                                      const char *const *values, const int *lengths,
                                      const int *formats, PGresult **out);

/**
 * Queues a prepared statement whose rows nobody needs (an INSERT whose
 * success is all that matters). It is sent now and checked at the job's next
 * tok_db_exec or at the end of the job: if it fails, that call (or the job)
 * fails as tok_db_exec would have. Parameters are copied before it returns.
 */
TOK_MUST_CHECK tok_status tok_db_exec_deferred(struct tok_db_conn *conn, const struct tok_sql *sql,
                                               const char *const *values, const int *lengths,
                                               const int *formats);

/** Runs SQL without parameters or results, as part of the current job. */
TOK_MUST_CHECK tok_status tok_db_command(struct tok_db_conn *conn, const char *sql);

/**
 * Sets the tenant for row-level security until the end of the job. Deferred
 * like tok_db_exec_deferred: a failure shows at the job's next statement.
 */
TOK_MUST_CHECK tok_status tok_db_set_tenant(struct tok_db_conn *conn, const char *tenant_id);

/** Connects once, synchronously, for tools (tokenctl). why as above. */
TOK_MUST_CHECK tok_status tok_db_connect(const char *conninfo, PGconn **out, char *why,
                                         size_t why_len);

/** The metrics collector of pools (core/metrics.h); ctx: a NULL-terminated struct tok_db *[]. */
struct tok_metrics_out;
void tok_db_collect(void *ctx, struct tok_metrics_out *o);

#endif
