/*
 * audit_chain.c - the audit chainer thread. See audit_chain.h and sql/011.
 */
#include "tokend/store/audit_chain.h"
#include "tokend/store/db.h"
#include "tokend/core/log.h"
#include "tokend/core/metrics.h"
#include "tokend/core/secmem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASS_MAX 5000       /* rows per pass (one block): one short transaction */
#define FINAL_WAIT_MS 2000  /* at stop: how long the last pass waits for transactions in flight */
#define WARN_EVERY_MS 10000 /* a database that stays away is logged this often */

struct tok_audit_chainer {
    char *conninfo; /* secmem: may hold a password */
    unsigned interval_ms;
    PGconn *pg;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct tok_audit_chain_hook hook;
    bool hook_due; /* the hook has work: after a pass that chained rows, or at start */
    uint64_t passes, rows, last_warn_ms;
    /* written by the chainer's thread, read by /metrics' thread */
    struct {
        _Atomic uint64_t ok, failed, rows;
        _Atomic uint64_t last_ok_ms;    /* unix ms of the last pass that answered */
        _Atomic uint64_t last_block_ms; /* unix ms of the last pass that chained rows */
        _Atomic int64_t unchained;      /* audit ids issued above the chained ones; -1 unknown */
    } stats;
};

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The audit ids issued (the sequence; rolled-back inserts take one too) above the highest
 * chained one: what the next passes have to chain. USAGE on the sequence suffices. */
static void note_unchained(struct tok_audit_chainer *c, long long high)
{
    if (high <= 0) /* another pass held the chain state: it knows, we do not */
        return;
    PGresult *r = PQexec(c->pg, "SELECT pg_sequence_last_value('audit.events_id_seq')");
    int64_t left = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        long long last = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        left = last > high ? (int64_t)(last - high) : 0;
    }
    PQclear(r);
    atomic_store_explicit(&c->stats.unchained, left, memory_order_relaxed);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void warn_once_in_a_while(struct tok_audit_chainer *c, const char *what)
{
    uint64_t now = mono_ms();
    if (c->last_warn_ms != 0 && now - c->last_warn_ms < WARN_EVERY_MS)
        return;
    c->last_warn_ms = now;
    tok_log_warn("audit chainer: %s; new audit rows wait unchained until it succeeds", what);
}

/*
 * One pass (sql/011): the number of rows chained, or -1 when the database did not answer.
 * wait_ms = 0: one block of the rows that are final; > 0: every row committed so far.
 */
static long pass(struct tok_audit_chainer *c, unsigned wait_ms)
{
    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        char why[TOK_DB_WHY_MAX];
        if (c->pg != NULL)
            PQreset(c->pg);
        else if (tok_db_connect(c->conninfo, &c->pg, why, sizeof why) != TOK_OK)
            c->pg = NULL;
        if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
            warn_once_in_a_while(c, "cannot connect to the database");
            atomic_fetch_add_explicit(&c->stats.failed, 1, memory_order_relaxed);
            return -1;
        }
    }
    static const char sql[] = "SELECT chained, high FROM audit.chain_pending($1, $2)";
    char max[16], wait[16];
    snprintf(max, sizeof max, "%d", PASS_MAX);
    snprintf(wait, sizeof wait, "%u", wait_ms);
    const char *v[2] = {max, wait};
    PGresult *r = PQexecParams(c->pg, sql, 2, NULL, v, NULL, NULL, 0);
    long n = -1;
    long long high = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        high = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    } else {
        warn_once_in_a_while(c, "a chaining pass failed");
    }
    PQclear(r);
    if (n < 0) {
        atomic_fetch_add_explicit(&c->stats.failed, 1, memory_order_relaxed);
    } else {
        uint64_t now = unix_ms();
        atomic_fetch_add_explicit(&c->stats.ok, 1, memory_order_relaxed);
        atomic_store_explicit(&c->stats.last_ok_ms, now, memory_order_relaxed);
        if (n > 0) {
            atomic_fetch_add_explicit(&c->stats.rows, (uint64_t)n, memory_order_relaxed);
            atomic_store_explicit(&c->stats.last_block_ms, now, memory_order_relaxed);
        }
        note_unchained(c, high);
    }
    if (n > 0) {
        c->passes++;
        c->rows += (uint64_t)n;
    }
    if (n > 0)
        c->hook_due = true;
    if (n >= 0 && c->hook_due && c->hook.after_pass != NULL)
        c->hook_due = c->hook.after_pass(c->hook.ctx, c->pg);
    return n;
}

static void *chainer_main(void *arg)
{
    struct tok_audit_chainer *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        pthread_mutex_unlock(&c->mu);
        long n = pass(c, 0);
        pthread_mutex_lock(&c->mu);
        if (n == PASS_MAX || c->stop)
            continue; /* a backlog: the next pass at once */
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += (long)(c->interval_ms % 1000u) * 1000000L;
        dl.tv_sec += c->interval_ms / 1000u + dl.tv_nsec / 1000000000L;
        dl.tv_nsec %= 1000000000L;
        while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &dl) == 0)
            ;
    }
    pthread_mutex_unlock(&c->mu);
    /* the loops have stopped: chain what they wrote last */
    (void)pass(c, FINAL_WAIT_MS);
    return NULL;
}

tok_status tok_audit_chainer_new(const char *conninfo, unsigned interval_ms,
                                 const struct tok_audit_chain_hook *hook,
                                 struct tok_audit_chainer **out, char *why, size_t why_len)
{
    TOK_ENSURE(conninfo != NULL && out != NULL && interval_ms > 0, TOK_ERR_INTERNAL);
    struct tok_audit_chainer *c = calloc(1, sizeof *c);
    TOK_ENSURE(c != NULL, TOK_ERR_NOMEM);
    size_t n = strlen(conninfo) + 1;
    c->conninfo = tok_secmem_alloc(n);
    if (c->conninfo == NULL) {
        free(c);
        return TOK_ERR_NOMEM;
    }
    memcpy(c->conninfo, conninfo, n);
    c->interval_ms = interval_ms;
    if (hook != NULL)
        c->hook = *hook;
    c->hook_due = true;
    atomic_init(&c->stats.unchained, -1);
    tok_status st = tok_db_connect(c->conninfo, &c->pg, why, why_len);
    if (st == TOK_OK) {
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        if (pthread_create(&c->tid, NULL, chainer_main, c) != 0) {
            snprintf(why, why_len, "cannot start the audit chainer thread");
            pthread_cond_destroy(&c->cv);
            pthread_mutex_destroy(&c->mu);
            st = TOK_ERR_INTERNAL;
        }
    }
    if (st != TOK_OK) {
        PQfinish(c->pg);
        tok_secmem_free(c->conninfo);
        free(c);
        return st;
    }
    *out = c;
    return TOK_OK;
}

void tok_audit_chainer_free(struct tok_audit_chainer **pc)
{
    if (pc == NULL || *pc == NULL)
        return;
    struct tok_audit_chainer *c = *pc;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->tid, NULL);
    tok_log_info("audit chainer: %llu rows chained in %llu passes", (unsigned long long)c->rows,
                 (unsigned long long)c->passes);
    PQfinish(c->pg);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    tok_secmem_free(c->conninfo);
    free(c);
    *pc = NULL;
}

void tok_audit_chain_collect(void *ctx, struct tok_metrics_out *o)
{
    struct tok_audit_chainer *c = ctx;
    tok_metrics_family(o, "tokend_audit_chain_passes_total", "counter",
                       "Audit chaining passes by result (failed: the database did not answer; "
                       "new audit rows wait unchained)");
    tok_metrics_u64(o, "tokend_audit_chain_passes_total", "result=\"ok\"",
                    atomic_load_explicit(&c->stats.ok, memory_order_relaxed));
    tok_metrics_u64(o, "tokend_audit_chain_passes_total", "result=\"failed\"",
                    atomic_load_explicit(&c->stats.failed, memory_order_relaxed));
    tok_metrics_family(o, "tokend_audit_chain_rows_total", "counter",
                       "Audit rows this process hash-chained into blocks");
    tok_metrics_u64(o, "tokend_audit_chain_rows_total", NULL,
                    atomic_load_explicit(&c->stats.rows, memory_order_relaxed));
    tok_metrics_family(o, "tokend_audit_chain_last_pass_timestamp_seconds", "gauge",
                       "Unix time of the last chaining pass that answered (0: none yet)");
    tok_metrics_double(o, "tokend_audit_chain_last_pass_timestamp_seconds", NULL,
                       (double)atomic_load_explicit(&c->stats.last_ok_ms, memory_order_relaxed) /
                           1000.0);
    tok_metrics_family(o, "tokend_audit_chain_last_block_timestamp_seconds", "gauge",
                       "Unix time this process last chained rows into a block (0: none yet)");
    tok_metrics_double(o, "tokend_audit_chain_last_block_timestamp_seconds", NULL,
                       (double)atomic_load_explicit(&c->stats.last_block_ms,
                                                    memory_order_relaxed) / 1000.0);
    int64_t left = atomic_load_explicit(&c->stats.unchained, memory_order_relaxed);
    if (left < 0)
        return; /* not known yet: no sample rather than a false 0 */
    tok_metrics_family(o, "tokend_audit_unchained_rows", "gauge",
                       "Audit ids issued above the last chained row at the last pass: rows not "
                       "yet in a block (an insert rolled back after taking an id counts until "
                       "the next block)");
    tok_metrics_u64(o, "tokend_audit_unchained_rows", NULL, (uint64_t)left);
}
