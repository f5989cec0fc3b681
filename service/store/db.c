/*
 * db.c - database threads with group commit. See db.h for the design.
 */
#include "tokend/store/db.h"
#include "tokend/core/metrics.h"
#include "tokend/core/log.h"

#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECONNECT_INTERVAL_MS 250
#define IDLE_CHECK_MS 1000 /* an idle thread looks at its connection this often */

/*
 * Round trips. A database thread runs its whole batch in libpq's pipeline
 * mode: statements whose result nobody waits for (BEGIN, SAVEPOINT, RELEASE,
 * ROLLBACK TO, set_tenant, tok_db_exec_deferred) are sent at once but not
 * synced; the next statement whose result a job needs (tok_db_exec), or the
 * end of the job or batch, sends one Sync and reads them all. A tokenisation
 * thus costs three round trips instead of seven, and a job's RELEASE travels
 * with the next job's first statement.
 *
 * Blame: an item is either the batch's (BEGIN, SAVEPOINT, RELEASE, ROLLBACK
 * TO, COMMIT: if one fails the batch is broken, every job fails and the
 * transaction is rolled back) or the current job's (set_tenant, deferred and
 * prepared statements: if one fails, the job fails and rolls back to its
 * savepoint, its neighbours are untouched).
 */
#define PENDING_MAX 32

struct pending {
    const struct tok_sql *prepare; /* a Parse for this statement: forget it on failure */
    bool batch;                    /* the batch's item, not the job's */
    bool keep;                     /* the caller wants this result */
    bool commit;                   /* the batch's COMMIT */
};

struct tok_db_conn {
    struct tok_db *db;
    PGconn *pg;
    uint64_t last_connect_ms;
    const struct tok_sql *prepared[TOK_DB_PREPARED_MAX];
    unsigned nprepared;
    pthread_t tid;
    bool in_pipeline;
    bool batch_failed; /* a batch item failed or the connection broke */
    bool commit_unknown; /* COMMIT was sent and its answer never came */
    bool doomed;         /* the server said it is closing this connection (a FATAL notice) */
    struct tok_db_job *cur; /* the job whose exec runs alone now (not a group), or NULL */
    unsigned npending;
    unsigned job_pending; /* items of the current job not synced yet */
    struct pending pending[PENDING_MAX];
    struct tok_db_job **order; /* batch_max entries: the batch as an array */
    struct tok_db_job **group; /* batch_max entries: the jobs of one group run */
    uint64_t batches, jobs, grouped; /* statistics, for the log at close */
    uint64_t wait_us, run_us, run_max_us;
    _Atomic bool connected; /* for /metrics: the thread's connection works */
};

struct tok_db {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct tok_db_job *head, *tail;
    unsigned queued;
    bool stopping;
    unsigned batch_max;
    unsigned batch_window_us;
    unsigned nconns;   /* connected */
    unsigned nthreads; /* conns[] entries */
    char *conninfo; /* sodium_malloc'd copy */
    char name[16];  /* metrics label */
    struct {
        _Atomic uint64_t jobs, batches, failed, unavailable, retried;
        struct tok_hist wait; /* each job, queued to taken */
        struct tok_hist txn;  /* each batch's transaction */
    } stats;
    struct tok_db_conn conns[];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void first_line(const char *msg, char *why, size_t why_len)
{
    size_t n = strcspn(msg, "\n");
    snprintf(why, why_len, "%.*s", (int)n, msg);
}

tok_status tok_db_connect(const char *conninfo, PGconn **out, char *why, size_t why_len)
{
    /* defaults first: a value in the caller's conninfo overrides them. Keepalives find a
     * primary that vanished without closing its connections (a host or network failure),
     * which would otherwise leave a database thread waiting for good. */
    const char *keys[] = {"connect_timeout", "application_name", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "dbname", NULL};
    const char *vals[] = {"2", "tokend", "10", "3", "3", conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    TOK_ENSURE(pg != NULL, TOK_ERR_NOMEM);
    if (PQstatus(pg) != CONNECTION_OK) {
        first_line(PQerrorMessage(pg), why, why_len);
        PQfinish(pg);
        return TOK_ERR_DB;
    }
    *out = pg;
    return TOK_OK;
}

/*
 * Server notices and asynchronous errors (a FATAL when PostgreSQL restarts,
 * a WARNING) go to the JSON log, first line only (DETAIL lines may carry
 * values), instead of libpq's default of printing them to stderr.
 */
static void on_notice(void *arg, const PGresult *res)
{
    struct tok_db_conn *c = arg;
    const char *message = PQresultErrorMessage(res);
    size_t n = strcspn(message, "\n");
    tok_log_warn("postgresql: %.*s", (int)(n > 200 ? 200 : n), message);
    /* an error that arrives while the connection is idle comes here: a FATAL one is the
     * server closing it (pg_terminate_backend, a shutdown, a failover); the close follows */
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (c != NULL && sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        c->doomed = true;
}

static void set_notices(struct tok_db_conn *c)
{
    if (c->pg != NULL)
        PQsetNoticeReceiver(c->pg, on_notice, c);
}

/*
 * Whether the idle connection still works. A server that closed it (pg_terminate_backend,
 * a restart, a failover) has sent its FATAL and its FIN already: reading them here finds
 * that out before a batch is sent on it, so the batch goes to a new connection instead.
 */
static bool conn_alive(struct tok_db_conn *c)
{
    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK || c->doomed)
        return false;
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
    if (poll(&p, 1, 0) > 0 && PQconsumeInput(c->pg) != 1)
        return false;
    return PQstatus(c->pg) == CONNECTION_OK && !c->doomed;
}

/*
 * A working connection, reconnecting if needed: at most once per RECONNECT_INTERVAL_MS
 * unless now is set (a batch to send again). A new connection goes through the whole
 * conninfo again, so a multi-host one with target_session_attrs=read-write lands on
 * whichever host is the primary now.
 */
static bool ensure_connected(struct tok_db_conn *c, bool now)
{
    if (conn_alive(c))
        return true;
    uint64_t t = now_ms();
    if (!now && t - c->last_connect_ms < RECONNECT_INTERVAL_MS)
        return false;
    c->last_connect_ms = t;
    c->nprepared = 0;
    c->doomed = false;
    PQfinish(c->pg);
    c->pg = NULL;
    char why[TOK_DB_WHY_MAX];
    bool up = tok_db_connect(c->db->conninfo, &c->pg, why, sizeof why) == TOK_OK;
    atomic_store_explicit(&c->connected, up, memory_order_relaxed);
    if (!up)
        return false;
    set_notices(c);
    tok_log_info("%s: database connection (re-)established", __func__);
    return true;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *sqlstate_of(const PGresult *r)
{
    const char *s = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s != NULL ? s : "none";
}

/*
 * COMMIT's result is an error: did the server refuse it (an ERROR: rolled back) or did the
 * connection end under it (libpq's own error, without SQLSTATE, or a FATAL: the server may
 * have committed before it went away)?
 */
static bool commit_unanswered(const PGresult *r)
{
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (PQresultErrorField(r, PG_DIAG_SQLSTATE) == NULL || sev == NULL)
        return true;
    return strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0;
}

static void forget_prepared(struct tok_db_conn *c, const struct tok_sql *sql)
{
    for (unsigned i = 0; i < c->nprepared; i++) {
        if (c->prepared[i] == sql) {
            c->prepared[i] = c->prepared[--c->nprepared];
            return;
        }
    }
}

/* Records an item just sent; a full queue is synced first by the callers. */
static void pending_add(struct tok_db_conn *c, bool batch, bool keep, const struct tok_sql *prepare)
{
    struct pending *p = &c->pending[c->npending++];
    p->prepare = prepare;
    p->batch = batch;
    p->keep = keep;
    p->commit = false;
    if (!batch)
        c->job_pending++;
}

/*
 * Sends one Sync and reads the result of every item sent since the last one.
 * Returns the first failure of a job item (TOK_ERR_CONFLICT for a unique
 * violation), TOK_ERR_DB if a batch item failed; *kept gets the result of
 * the item marked keep when it succeeded.
 */
static tok_status sync_pending(struct tok_db_conn *c, PGresult **kept)
{
    tok_status st = TOK_OK;
    unsigned n = c->npending;
    c->npending = 0;
    c->job_pending = 0;
    if (n == 0)
        return TOK_OK;
    if (PQpipelineSync(c->pg) != 1) {
        c->batch_failed = true;
        return TOK_ERR_DB;
    }
    bool lost = false;
    bool refused = false; /* the server answered an item of this sync with an error */
    for (unsigned i = 0; i < n; i++) {
        const struct pending *p = &c->pending[i];
        PGresult *r = lost ? NULL : PQgetResult(c->pg);
        if (r == NULL) {
            lost = true; /* the connection broke: nothing more will come */
            c->batch_failed = true;
            /* after an error the server skips to the Sync: then COMMIT did not run */
            if (p->commit && !refused)
                c->commit_unknown = true;
            if (p->prepare != NULL)
                forget_prepared(c, p->prepare);
            if (st == TOK_OK)
                st = TOK_ERR_DB;
            continue;
        }
        ExecStatusType es = PQresultStatus(r);
        bool ok = es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK;
        if (!ok && p->commit && !refused && commit_unanswered(r))
            c->commit_unknown = true;
        if (!ok && PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL)
            refused = true;
        if (!ok) {
            const char *state = sqlstate_of(r);
            tok_status err =
                strcmp(state, "23505") == 0 && !p->batch ? TOK_ERR_CONFLICT : TOK_ERR_DB;
            if (es != PGRES_PIPELINE_ABORTED && err == TOK_ERR_DB)
                tok_log_warn("%s: %s failed: sqlstate %s", __func__,
                             p->batch ? "a transaction statement" : "a statement", state);
            if (p->batch)
                c->batch_failed = true;
            else if (st == TOK_OK && es != PGRES_PIPELINE_ABORTED)
                st = err;
            if (p->prepare != NULL)
                forget_prepared(c, p->prepare);
        }
        if (ok && p->keep && kept != NULL)
            *kept = r;
        else
            PQclear(r);
        while ((r = PQgetResult(c->pg)) != NULL) /* the end of this item's results */
            PQclear(r);
    }
    if (!lost) {
        PGresult *r = PQgetResult(c->pg);
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            c->batch_failed = true;
        PQclear(r);
    }
    if (PQstatus(c->pg) != CONNECTION_OK)
        c->batch_failed = true;
    if (c->batch_failed && st == TOK_OK)
        st = TOK_ERR_DB;
    return st;
}

/* Queues a statement without parameters (BEGIN, SAVEPOINT ...), as the batch's item; false
 * when it could not be sent. */
static bool send_batch_command(struct tok_db_conn *c, const char *sql)
{
    if (c->npending >= PENDING_MAX)
        (void)sync_pending(c, NULL);
    if (PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
        c->batch_failed = true;
        return false;
    }
    pending_add(c, true, false, NULL);
    return true;
}

tok_status tok_db_command(struct tok_db_conn *c, const char *sql)
{
    TOK_ENSURE(c != NULL && sql != NULL && c->in_pipeline, TOK_ERR_INTERNAL);
    if (c->npending >= PENDING_MAX)
        TOK_GUARD(sync_pending(c, NULL));
    TOK_ENSURE(PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0) == 1, TOK_ERR_DB);
    pending_add(c, false, false, NULL);
    return sync_pending(c, NULL);
}

/* Queues the statement (and its Parse on first use on this connection). */
static tok_status send_prepared(struct tok_db_conn *c, const struct tok_sql *sql,
                                const char *const *values, const int *lengths, const int *formats,
                                bool keep)
{
    TOK_ENSURE(c->in_pipeline, TOK_ERR_INTERNAL);
    if (c->npending + 2 > PENDING_MAX)
        TOK_GUARD(sync_pending(c, NULL));
    bool known = false;
    for (unsigned i = 0; i < c->nprepared && !known; i++)
        known = c->prepared[i] == sql;
    if (!known) {
        TOK_ENSURE(c->nprepared < TOK_DB_PREPARED_MAX, TOK_ERR_BOUNDS);
        TOK_ENSURE(PQsendPrepare(c->pg, sql->name, sql->text, sql->nparams, NULL) == 1, TOK_ERR_DB);
        c->prepared[c->nprepared++] = sql;
        pending_add(c, false, false, sql);
    }
    TOK_ENSURE(PQsendQueryPrepared(c->pg, sql->name, sql->nparams, values, lengths, formats, 0) == 1,
               TOK_ERR_DB);
    pending_add(c, false, keep, NULL);
    return TOK_OK;
}

tok_status tok_db_exec(struct tok_db_conn *c, const struct tok_sql *sql, const char *const *values,
                       const int *lengths, const int *formats, PGresult **out)
{
    TOK_ENSURE(c != NULL && sql != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    tok_status st = send_prepared(c, sql, values, lengths, formats, true);
    PGresult *r = NULL;
    tok_status sst = sync_pending(c, &r);
    if (st == TOK_OK)
        st = sst;
    if (st != TOK_OK || r == NULL) {
        PQclear(r);
        return st != TOK_OK ? st : TOK_ERR_DB;
    }
    if (c->cur != NULL)
        c->cur->delivered = true; /* its exec may now keep what it read: no resending it */
    *out = r;
    return TOK_OK;
}

tok_status tok_db_exec_deferred(struct tok_db_conn *c, const struct tok_sql *sql,
                                const char *const *values, const int *lengths, const int *formats)
{
    TOK_ENSURE(c != NULL && sql != NULL, TOK_ERR_INTERNAL);
    return send_prepared(c, sql, values, lengths, formats, false);
}

tok_status tok_db_set_tenant(struct tok_db_conn *c, const char *tenant_id)
{
    static const struct tok_sql set_tenant = {
        "set_tenant", "SELECT set_config('tokend.tenant_id', $1, true)", 1};
    const char *vals[1] = {tenant_id};
    return tok_db_exec_deferred(c, &set_tenant, vals, NULL, NULL);
}

/*
 * Takes up to batch_max jobs; blocks until at least one is queued or we stop, or, when
 * idle_ms is not 0, until that long passed without a job (then returns NULL, *stop false).
 */
static struct tok_db_job *take_batch(struct tok_db *db, unsigned *count, unsigned idle_ms,
                                     bool *stop)
{
    pthread_mutex_lock(&db->mu);
    if (idle_ms > 0 && db->head == NULL && !db->stopping) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += (long)idle_ms * 1000000L;
        dl.tv_sec += dl.tv_nsec / 1000000000L;
        dl.tv_nsec %= 1000000000L;
        while (db->head == NULL && !db->stopping &&
               pthread_cond_timedwait(&db->cv, &db->mu, &dl) == 0)
            ;
    }
    while (idle_ms == 0 && db->head == NULL && !db->stopping)
        pthread_cond_wait(&db->cv, &db->mu);
    *stop = db->stopping && db->head == NULL;
    if (db->head != NULL && db->batch_window_us > 0 && db->queued < db->batch_max && !db->stopping) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += (long)db->batch_window_us * 1000L;
        dl.tv_sec += dl.tv_nsec / 1000000000L;
        dl.tv_nsec %= 1000000000L;
        while (db->queued < db->batch_max && !db->stopping &&
               pthread_cond_timedwait(&db->cv, &db->mu, &dl) == 0)
            ;
    }
    struct tok_db_job *first = db->head, *last = NULL;
    unsigned n = 0;
    for (struct tok_db_job *j = db->head; j != NULL && n < db->batch_max; j = j->next) {
        last = j;
        n++;
    }
    if (last != NULL) {
        db->head = last->next;
        if (db->head == NULL)
            db->tail = NULL;
        last->next = NULL;
        db->queued -= n;
    }
    pthread_mutex_unlock(&db->mu);
    *count = n;
    return first;
}

static void fail_all(struct tok_db_job *jobs, tok_status st)
{
    for (struct tok_db_job *j = jobs; j != NULL; j = j->next)
        j->status = st;
}

static void reply_all(struct tok_db_job *jobs)
{
    while (jobs != NULL) {
        struct tok_db_job *next = jobs->next; /* the loop may free the job once sent */
        jobs->next = NULL;
        h2o_multithread_send_message(jobs->reply_to, &jobs->super);
        jobs = next;
    }
}

/* Runs one job: its own items that nobody synced yet are synced before its end is decided. */
static tok_status run_job(struct tok_db_conn *c, struct tok_db_job *j)
{
    tok_status st = j->exec(j, c);
    if (c->job_pending > 0) {
        tok_status sst = sync_pending(c, NULL);
        if (st == TOK_OK)
            st = sst;
    }
    return st;
}

/* Runs one job inside its own savepoint; its end travels with the next statement. */
static void run_one(struct tok_db_conn *c, struct tok_db_job *j)
{
    send_batch_command(c, "SAVEPOINT job");
    c->cur = j;
    j->status = run_job(c, j);
    c->cur = NULL;
    send_batch_command(c, j->status == TOK_OK ? "RELEASE SAVEPOINT job" : "ROLLBACK TO SAVEPOINT job");
}

/* Runs jobs of one group together; if that fails, rolls it back and runs them one by one. */
static void run_group(struct tok_db_conn *c, struct tok_db_job *const *jobs, unsigned n)
{
    send_batch_command(c, "SAVEPOINT job");
    tok_status st = jobs[0]->group->exec(jobs, n, c);
    if (c->job_pending > 0) {
        tok_status sst = sync_pending(c, NULL);
        if (st == TOK_OK)
            st = sst;
    }
    if (st == TOK_OK) {
        send_batch_command(c, "RELEASE SAVEPOINT job");
        c->grouped += n;
        return;
    }
    send_batch_command(c, "ROLLBACK TO SAVEPOINT job");
    for (unsigned i = 0; i < n && !c->batch_failed; i++)
        run_one(c, jobs[i]);
}

static bool same_group(const struct tok_db_job *a, const struct tok_db_job *b)
{
    return a->group == b->group && strcmp(a->group_key != NULL ? a->group_key : "",
                                          b->group_key != NULL ? b->group_key : "") == 0;
}

/*
 * Jobs in list order; a job of a group takes every later job of the same group
 * and key with it. Running them out of arrival order is sound: none of them
 * has been answered yet, so any order is one the clients could have seen.
 */
static void run_jobs(struct tok_db_conn *c, struct tok_db_job *jobs, unsigned n)
{
    unsigned k = 0;
    for (struct tok_db_job *j = jobs; j != NULL && k < n; j = j->next)
        c->order[k++] = j;
    for (unsigned i = 0; i < k && !c->batch_failed; i++) {
        struct tok_db_job *j = c->order[i];
        if (j == NULL)
            continue;
        c->order[i] = NULL;
        if (j->group == NULL) {
            run_one(c, j);
            continue;
        }
        unsigned g = 0;
        c->group[g++] = j;
        for (unsigned m = i + 1; m < k; m++) {
            if (c->order[m] != NULL && same_group(j, c->order[m])) {
                c->group[g++] = c->order[m];
                c->order[m] = NULL;
            }
        }
        if (g == 1)
            run_one(c, j);
        else
            run_group(c, c->group, g);
    }
}

/* Takes out the jobs nobody waits for any more (db.h: cancellable): they get
 * TOK_ERR_NOTFOUND without running and are answered with the rest. */
static struct tok_db_job *drop_abandoned(struct tok_db_job *jobs, unsigned *n,
                                         struct tok_db_job **dropped)
{
    struct tok_db_job *keep = NULL, **kt = &keep, *drop = NULL, **dt = &drop;
    while (jobs != NULL) {
        struct tok_db_job *next = jobs->next;
        jobs->next = NULL;
        if (jobs->cancellable && atomic_load(&jobs->abandoned)) {
            jobs->status = TOK_ERR_NOTFOUND;
            *dt = jobs;
            dt = &jobs->next;
            (*n)--;
        } else {
            *kt = jobs;
            kt = &jobs->next;
        }
        jobs = next;
    }
    *dropped = drop;
    return keep;
}

/* Queues COMMIT, marked so that sync_pending can tell an unanswered one. */
static void send_commit(struct tok_db_conn *c)
{
    /* not sent (the connection broke): then it did not run */
    if (send_batch_command(c, "COMMIT"))
        c->pending[c->npending - 1].commit = true;
}

/*
 * One try of a batch on a working connection: BEGIN, the jobs, COMMIT. Returns true when
 * the connection broke before COMMIT could have run (nothing was committed); the jobs
 * then hold TOK_ERR_DB. When it broke after COMMIT was sent, the jobs hold TOK_ERR_DB
 * with commit_unknown set.
 */
static bool try_batch(struct tok_db_conn *c, struct tok_db_job *jobs, unsigned n)
{
    if (PQenterPipelineMode(c->pg) != 1) {
        fail_all(jobs, TOK_ERR_DB);
        return true;
    }
    for (struct tok_db_job *j = jobs; j != NULL; j = j->next)
        j->delivered = false;
    c->in_pipeline = true;
    c->batch_failed = false;
    c->commit_unknown = false;
    c->npending = c->job_pending = 0;
    c->batches++;
    c->jobs += n;
    send_batch_command(c, "BEGIN");
    if (n == 1) {
        /* one job: no savepoint, its failure is the transaction's */
        c->cur = jobs;
        jobs->status = run_job(c, jobs);
        c->cur = NULL;
        if (jobs->status == TOK_OK)
            send_commit(c);
        else
            send_batch_command(c, "ROLLBACK");
        (void)sync_pending(c, NULL);
        if (c->batch_failed && jobs->status == TOK_OK)
            jobs->status = TOK_ERR_DB;
    } else {
        run_jobs(c, jobs, n);
        if (!c->batch_failed) {
            send_commit(c);
            (void)sync_pending(c, NULL);
        }
        if (c->batch_failed) {
            /* a transaction statement failed or the connection broke */
            (void)sync_pending(c, NULL);
            if (PQstatus(c->pg) == CONNECTION_OK) {
                send_batch_command(c, "ROLLBACK");
                (void)sync_pending(c, NULL);
            }
            fail_all(jobs, TOK_ERR_DB);
        }
    }
    c->in_pipeline = false;
    bool broken = PQexitPipelineMode(c->pg) != 1 || PQstatus(c->pg) != CONNECTION_OK;
    if (broken) {
        /* a connection left mid-pipeline is not reusable: start over */
        tok_log_warn("%s: dropping the database connection%s", __func__,
                     c->commit_unknown ? " (a COMMIT went unanswered)" : "");
        PQfinish(c->pg);
        c->pg = NULL;
        c->nprepared = 0;
    }
    if (c->commit_unknown) {
        for (struct tok_db_job *j = jobs; j != NULL; j = j->next) {
            j->status = TOK_ERR_DB;
            j->commit_unknown = true;
        }
        return false;
    }
    if (!(broken && c->batch_failed))
        return false;
    fail_all(jobs, TOK_ERR_DB);
    return true;
}

/*
 * Runs a batch; when the connection broke before COMMIT could have run, sends the jobs
 * whose exec had not been given a row yet once more on a new connection (db.h, top). *jobs
 * may be reordered; n is unchanged.
 */
static void run_batch(struct tok_db_conn *c, struct tok_db_job **jobs, unsigned n)
{
    if (!ensure_connected(c, false)) {
        fail_all(*jobs, TOK_ERR_DB);
        return;
    }
    if (!try_batch(c, *jobs, n))
        return;
    struct tok_db_job *again = NULL, **at = &again, *rest = NULL, **rt = &rest;
    unsigned m = 0;
    for (struct tok_db_job *j = *jobs, *next; j != NULL; j = next) {
        next = j->next;
        j->next = NULL;
        if (!j->delivered && !j->retried) {
            j->retried = true;
            *at = j;
            at = &j->next;
            m++;
        } else {
            *rt = j;
            rt = &j->next;
        }
    }
    if (m > 0 && ensure_connected(c, true)) {
        atomic_fetch_add_explicit(&c->db->stats.retried, m, memory_order_relaxed);
        (void)try_batch(c, again, m);
    } else {
        fail_all(again, TOK_ERR_DB);
    }
    *at = rest; /* answered together: the resent ones, then the others */
    *jobs = again;
}

static void account(struct tok_db_conn *c, const struct tok_db_job *jobs, unsigned n, uint64_t run)
{
    uint64_t failed = 0;
    for (const struct tok_db_job *j = jobs; j != NULL; j = j->next)
        failed += j->status == TOK_ERR_DB;
    bool up = c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK;
    atomic_store_explicit(&c->connected, up, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->db->stats.jobs, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->db->stats.failed, failed, memory_order_relaxed);
    if (!up && failed == n)
        atomic_fetch_add_explicit(&c->db->stats.unavailable, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->db->stats.batches, 1, memory_order_relaxed);
    tok_hist_observe_us(&c->db->stats.txn, run);
}

/* Each family once, with a sample per pool: the exposition format wants a family's
 * samples together under one HELP/TYPE. */
void tok_db_collect(void *ctx, struct tok_metrics_out *o)
{
    struct tok_db *const *pools = ctx;
    char lab[48];
    tok_metrics_family(o, "tokend_db_queue_depth", "gauge", "Jobs waiting for a database thread");
    for (size_t i = 0; pools[i] != NULL; i++) {
        struct tok_db *db = pools[i];
        pthread_mutex_lock(&db->mu);
        unsigned queued = db->queued;
        pthread_mutex_unlock(&db->mu);
        snprintf(lab, sizeof lab, "pool=\"%s\"", db->name);
        tok_metrics_u64(o, "tokend_db_queue_depth", lab, queued);
    }
    tok_metrics_family(o, "tokend_db_connections_up", "gauge",
                       "Database threads whose connection worked at their last batch");
    for (size_t i = 0; pools[i] != NULL; i++) {
        unsigned up = 0;
        for (unsigned k = 0; k < pools[i]->nconns; k++)
            up += atomic_load_explicit(&pools[i]->conns[k].connected, memory_order_relaxed);
        snprintf(lab, sizeof lab, "pool=\"%s\"", pools[i]->name);
        tok_metrics_u64(o, "tokend_db_connections_up", lab, up);
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"tokend_db_jobs_total", "Jobs run (a request's statements, or a background task's)",
         offsetof(struct tok_db, stats.jobs)},
        {"tokend_db_batches_total",
         "Transactions run; jobs_total / batches_total is the mean group-commit batch size",
         offsetof(struct tok_db, stats.batches)},
        {"tokend_db_job_errors_total", "Jobs that failed in PostgreSQL or on the connection",
         offsetof(struct tok_db, stats.failed)},
        {"tokend_db_unavailable_total", "Batches failed whole: no working connection",
         offsetof(struct tok_db, stats.unavailable)},
        {"tokend_db_jobs_resent_total",
         "Jobs sent again on a new connection after theirs broke before COMMIT",
         offsetof(struct tok_db, stats.retried)},
    };
    for (size_t c = 0; c < TOK_ARRAY_LEN(counters); c++) {
        tok_metrics_family(o, counters[c].name, "counter", counters[c].help);
        for (size_t i = 0; pools[i] != NULL; i++) {
            const _Atomic uint64_t *v =
                (const _Atomic uint64_t *)((const char *)pools[i] + counters[c].off);
            snprintf(lab, sizeof lab, "pool=\"%s\"", pools[i]->name);
            tok_metrics_u64(o, counters[c].name, lab,
                            atomic_load_explicit(v, memory_order_relaxed));
        }
    }
    tok_metrics_family(o, "tokend_db_queue_wait_seconds", "histogram",
                       "Each job's wait from submission until a database thread takes it");
    for (size_t i = 0; pools[i] != NULL; i++) {
        snprintf(lab, sizeof lab, "pool=\"%s\"", pools[i]->name);
        tok_metrics_hist(o, "tokend_db_queue_wait_seconds", lab, &pools[i]->stats.wait);
    }
    tok_metrics_family(o, "tokend_db_transaction_seconds", "histogram",
                       "Each batch's transaction, BEGIN to COMMIT's answer");
    for (size_t i = 0; pools[i] != NULL; i++) {
        snprintf(lab, sizeof lab, "pool=\"%s\"", pools[i]->name);
        tok_metrics_hist(o, "tokend_db_transaction_seconds", lab, &pools[i]->stats.txn);
    }
}

static void *db_thread(void *arg)
{
    struct tok_db_conn *c = arg;
    for (;;) {
        unsigned n = 0;
        bool stop = false;
        /* without a connection, wake up to reconnect even when no job comes */
        bool up = atomic_load_explicit(&c->connected, memory_order_relaxed);
        struct tok_db_job *jobs =
            take_batch(c->db, &n, up ? IDLE_CHECK_MS : RECONNECT_INTERVAL_MS, &stop);
        if (stop)
            break; /* stopping and drained */
        if (jobs == NULL) {
            (void)ensure_connected(c, false);
            continue;
        }
        uint64_t t0 = now_us();
        for (const struct tok_db_job *j = jobs; j != NULL; j = j->next) {
            c->wait_us += t0 - j->queued_us;
            tok_hist_observe_us(&c->db->stats.wait, t0 - j->queued_us);
        }
        struct tok_db_job *dropped = NULL;
        jobs = drop_abandoned(jobs, &n, &dropped);
        reply_all(dropped);
        if (jobs == NULL)
            continue;
        run_batch(c, &jobs, n);
        uint64_t run = now_us() - t0;
        account(c, jobs, n, run);
        c->run_us += run;
        if (run > c->run_max_us)
            c->run_max_us = run;
        reply_all(jobs);
    }
    return NULL;
}

tok_status tok_db_open(const struct tok_db_config *cfg, struct tok_db **out, char *why,
                       size_t why_len)
{
    TOK_ENSURE(cfg != NULL && out != NULL && cfg->conninfo != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(cfg->threads >= 1 && cfg->threads <= 64 && cfg->batch_max >= 1, TOK_ERR_INTERNAL);
    struct tok_db *db = calloc(1, sizeof *db + cfg->threads * sizeof(struct tok_db_conn));
    TOK_ENSURE(db != NULL, TOK_ERR_NOMEM);
    size_t clen = strlen(cfg->conninfo) + 1;
    db->conninfo = sodium_malloc(clen);
    if (db->conninfo == NULL) {
        free(db);
        return TOK_ERR_NOMEM;
    }
    tok_copy(db->conninfo, cfg->conninfo, clen);
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->cv, NULL);
    db->batch_max = cfg->batch_max;
    db->nthreads = cfg->threads;
    db->batch_window_us = cfg->batch_window_us;
    snprintf(db->name, sizeof db->name, "%s", cfg->name != NULL ? cfg->name : "primary");
    tok_status st = TOK_OK;
    for (unsigned i = 0; i < cfg->threads && st == TOK_OK; i++) {
        db->conns[i].db = db;
        db->conns[i].order = calloc(cfg->batch_max, sizeof(struct tok_db_job *));
        db->conns[i].group = calloc(cfg->batch_max, sizeof(struct tok_db_job *));
        if (db->conns[i].order == NULL || db->conns[i].group == NULL) {
            free(db->conns[i].order);
            free(db->conns[i].group);
            db->conns[i].order = db->conns[i].group = NULL;
            snprintf(why, why_len, "out of memory");
            st = TOK_ERR_NOMEM;
            break;
        }
        st = tok_db_connect(db->conninfo, &db->conns[i].pg, why, why_len);
        if (st == TOK_OK) {
            set_notices(&db->conns[i]);
            atomic_store_explicit(&db->conns[i].connected, true, memory_order_relaxed);
            db->nconns++;
        }
    }
    for (unsigned i = 0; i < db->nconns && st == TOK_OK; i++) {
        if (pthread_create(&db->conns[i].tid, NULL, db_thread, &db->conns[i]) != 0) {
            snprintf(why, why_len, "cannot start database thread");
            st = TOK_ERR_INTERNAL;
        }
    }
    if (st != TOK_OK) {
        /* no thread has started unless all connected; join those that did */
        tok_db_close(&db);
        return st;
    }
    *out = db;
    return TOK_OK;
}

void tok_db_submit(struct tok_db *db, struct tok_db_job *job)
{
    memset(&job->super, 0, sizeof job->super);
    job->next = NULL;
    atomic_store(&job->abandoned, false);
    job->commit_unknown = job->delivered = job->retried = false; /* a job may be submitted again */
    job->queued_us = now_us();
    pthread_mutex_lock(&db->mu);
    if (db->tail != NULL)
        db->tail->next = job;
    else
        db->head = job;
    db->tail = job;
    db->queued++;
    bool wake_all = db->queued >= db->batch_max;
    pthread_mutex_unlock(&db->mu);
    if (wake_all)
        pthread_cond_broadcast(&db->cv);
    else
        pthread_cond_signal(&db->cv);
}

void tok_db_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct tok_db_job *job = (struct tok_db_job *)m;
        job->done(job);
    }
}

void tok_db_close(struct tok_db **pdb)
{
    if (pdb == NULL || *pdb == NULL)
        return;
    struct tok_db *db = *pdb;
    pthread_mutex_lock(&db->mu);
    db->stopping = true;
    pthread_mutex_unlock(&db->mu);
    pthread_cond_broadcast(&db->cv);
    for (unsigned i = 0; i < db->nconns; i++) {
        if (db->conns[i].tid != 0)
            pthread_join(db->conns[i].tid, NULL);
    }
    for (unsigned i = 0; i < db->nconns; i++) {
        const struct tok_db_conn *c = &db->conns[i];
        if (c->batches > 0)
            tok_log_info("%s: database thread %u: %llu jobs (%llu run grouped) in %llu "
                         "transactions; mean wait in queue %llu us, mean transaction %llu us, "
                         "longest %llu us",
                         __func__, i, (unsigned long long)c->jobs, (unsigned long long)c->grouped,
                         (unsigned long long)c->batches, (unsigned long long)(c->wait_us / c->jobs),
                         (unsigned long long)(c->run_us / c->batches),
                         (unsigned long long)c->run_max_us);
        PQfinish(db->conns[i].pg);
    }
    for (unsigned i = 0; i < db->nthreads; i++) {
        free(db->conns[i].order);
        free(db->conns[i].group);
    }
    sodium_free(db->conninfo);
    pthread_cond_destroy(&db->cv);
    pthread_mutex_destroy(&db->mu);
    free(db);
    *pdb = NULL;
}
