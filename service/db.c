/*
 * db.c - database threads with group commit. See db.h for the design.
 */
#include "tokend/db.h"
#include "tokend/log.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECONNECT_INTERVAL_MS 250

struct tok_db_conn {
    struct tok_db *db;
    PGconn *pg;
    uint64_t last_connect_ms;
    const struct tok_sql *prepared[TOK_DB_PREPARED_MAX];
    unsigned nprepared;
    pthread_t tid;
};

struct tok_db {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct tok_db_job *head, *tail;
    unsigned queued;
    bool stopping;
    unsigned batch_max;
    unsigned batch_window_us;
    unsigned nconns;
    char *conninfo; /* sodium_malloc'd copy */
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
    /* connect_timeout first: a value in the caller's conninfo overrides it */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"2", "tokend", conninfo, NULL};
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

static bool ensure_connected(struct tok_db_conn *c)
{
    if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK)
        return true;
    uint64_t now = now_ms();
    if (now - c->last_connect_ms < RECONNECT_INTERVAL_MS)
        return false;
    c->last_connect_ms = now;
    c->nprepared = 0;
    if (c->pg != NULL) {
        PQreset(c->pg);
        if (PQstatus(c->pg) == CONNECTION_OK) {
            tok_log_info("%s: database connection re-established", __func__);
            return true;
        }
        return false;
    }
    char why[TOK_DB_WHY_MAX];
    return tok_db_connect(c->db->conninfo, &c->pg, why, sizeof why) == TOK_OK;
}

tok_status tok_db_command(struct tok_db_conn *c, const char *sql)
{
    PGresult *r = PQexec(c->pg, sql);
    tok_status st = PQresultStatus(r) == PGRES_COMMAND_OK ? TOK_OK : TOK_ERR_DB;
    if (st != TOK_OK)
        tok_log_warn("%s: '%s' failed: sqlstate %s", __func__, sql,
                     r != NULL && PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL
                         ? PQresultErrorField(r, PG_DIAG_SQLSTATE)
                         : "none");
    PQclear(r);
    return st;
}

static tok_status ensure_prepared(struct tok_db_conn *c, const struct tok_sql *sql)
{
    for (unsigned i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == sql)
            return TOK_OK;
    TOK_ENSURE(c->nprepared < TOK_DB_PREPARED_MAX, TOK_ERR_BOUNDS);
    PGresult *r = PQprepare(c->pg, sql->name, sql->text, sql->nparams, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        tok_log_err("%s: cannot prepare %s: %s", __func__, sql->name,
                    PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL
                        ? PQresultErrorField(r, PG_DIAG_SQLSTATE)
                        : "no sqlstate");
    PQclear(r);
    TOK_ENSURE(ok, TOK_ERR_DB);
    c->prepared[c->nprepared++] = sql;
    return TOK_OK;
}

tok_status tok_db_exec(struct tok_db_conn *c, const struct tok_sql *sql, const char *const *values,
                       const int *lengths, const int *formats, PGresult **out)
{
    TOK_ENSURE(c != NULL && sql != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    TOK_GUARD(ensure_prepared(c, sql));
    PGresult *r = PQexecPrepared(c->pg, sql->name, sql->nparams, values, lengths, formats, 0);
    ExecStatusType es = PQresultStatus(r);
    if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
        *out = r;
        return TOK_OK;
    }
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    tok_status st = state != NULL && strcmp(state, "23505") == 0 ? TOK_ERR_CONFLICT : TOK_ERR_DB;
    if (st == TOK_ERR_DB)
        tok_log_warn("%s: %s failed: sqlstate %s", __func__, sql->name, state ? state : "none");
    PQclear(r);
    return st;
}

tok_status tok_db_set_tenant(struct tok_db_conn *c, const char *tenant_id)
{
    static const struct tok_sql set_tenant = {
        "set_tenant", "SELECT set_config('tokend.tenant_id', $1, true)", 1};
    PGresult *r = NULL;
    const char *vals[1] = {tenant_id};
    TOK_GUARD(tok_db_exec(c, &set_tenant, vals, NULL, NULL, &r));
    PQclear(r);
    return TOK_OK;
}

/* Takes up to batch_max jobs; blocks until at least one is queued or we stop. */
static struct tok_db_job *take_batch(struct tok_db *db, unsigned *count)
{
    pthread_mutex_lock(&db->mu);
    while (db->head == NULL && !db->stopping)
        pthread_cond_wait(&db->cv, &db->mu);
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

static bool broken(struct tok_db_conn *c)
{
    return PQstatus(c->pg) != CONNECTION_OK;
}

static void run_batch(struct tok_db_conn *c, struct tok_db_job *jobs, unsigned n)
{
    if (!ensure_connected(c) || tok_db_command(c, "BEGIN") != TOK_OK) {
        fail_all(jobs, TOK_ERR_DB);
        return;
    }
    if (n == 1) {
        jobs->status = jobs->exec(jobs, c);
        const char *end = jobs->status == TOK_OK ? "COMMIT" : "ROLLBACK";
        if (tok_db_command(c, end) != TOK_OK && jobs->status == TOK_OK)
            jobs->status = TOK_ERR_DB;
        return;
    }
    for (struct tok_db_job *j = jobs; j != NULL; j = j->next) {
        if (tok_db_command(c, "SAVEPOINT job") != TOK_OK) {
            fail_all(j, TOK_ERR_DB);
            break;
        }
        j->status = j->exec(j, c);
        const char *end = j->status == TOK_OK ? "RELEASE SAVEPOINT job" : "ROLLBACK TO SAVEPOINT job";
        if (tok_db_command(c, end) != TOK_OK || broken(c)) {
            fail_all(jobs, TOK_ERR_DB);
            break;
        }
    }
    if (tok_db_command(c, "COMMIT") != TOK_OK) {
        for (struct tok_db_job *j = jobs; j != NULL; j = j->next)
            if (j->status == TOK_OK)
                j->status = TOK_ERR_DB;
    }
}

static void *db_thread(void *arg)
{
    struct tok_db_conn *c = arg;
    for (;;) {
        unsigned n = 0;
        struct tok_db_job *jobs = take_batch(c->db, &n);
        if (jobs == NULL)
            break; /* stopping and drained */
        run_batch(c, jobs, n);
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
    db->batch_window_us = cfg->batch_window_us;
    tok_status st = TOK_OK;
    for (unsigned i = 0; i < cfg->threads && st == TOK_OK; i++) {
        db->conns[i].db = db;
        st = tok_db_connect(db->conninfo, &db->conns[i].pg, why, why_len);
        if (st == TOK_OK)
            db->nconns++;
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
    for (unsigned i = 0; i < db->nconns; i++)
        PQfinish(db->conns[i].pg);
    sodium_free(db->conninfo);
    pthread_cond_destroy(&db->cv);
    pthread_mutex_destroy(&db->mu);
    free(db);
    *pdb = NULL;
}
