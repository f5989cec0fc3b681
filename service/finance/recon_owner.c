/*
 * recon_owner.c - the owner lock and the reaper of orphaned reconciliation runs (see
 * recon_owner.h and sql/018_recon_owner.sql).
 */
#include "tokend/finance/recon_owner.h"
#include "tokend/core/log.h"
#include "tokend/core/secmem.h"
#include "tokend/store/db.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WARN_EVERY_MS 30000u /* a database that stays away is logged this often */

struct tok_recon_owner {
    char *conninfo; /* secmem: may hold a password */
    PGconn *pg;     /* holds the owner lock while it is up */
    bool locked;    /* the lock is held on pg */
    char key[TOK_RECON_OWNER_TEXT_MAX];
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    uint64_t last_warn_ms;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void warn_now_and_then(struct tok_recon_owner *o, const char *what)
{
    uint64_t now = mono_ms();
    if (o->last_warn_ms != 0 && now - o->last_warn_ms < WARN_EVERY_MS)
        return;
    o->last_warn_ms = now;
    tok_log_warn("reconciliation owner: %s", what);
}

/* One statement with one text parameter and a one-value answer; false when it failed. */
static bool query1(PGconn *pg, const char *sql, const char *param, char *out, size_t cap)
{
    const char *v[1] = {param};
    PGresult *r = PQexecParams(pg, sql, 1, NULL, v, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1;
    if (ok)
        snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return ok;
}

/* Session-level: held until the connection ends, whatever transactions do. */
static bool try_lock(struct tok_recon_owner *o)
{
    char t[8] = "";
    o->locked = query1(o->pg, "SELECT pg_try_advisory_lock($1::bigint)", o->key, t, sizeof t) &&
                t[0] == 't';
    return o->locked;
}

/* A random key in 1..2^63-1 (libsodium), as text. */
static void new_key(struct tok_recon_owner *o)
{
    uint64_t k = 0;
    while (k == 0) {
        randombytes_buf(&k, sizeof k);
        k &= INT64_MAX;
    }
    snprintf(o->key, sizeof o->key, "%llu", (unsigned long long)k);
}

/* The connection is up and holds the lock, or false (logged now and then). */
static bool ensure_locked(struct tok_recon_owner *o)
{
    if (o->pg != NULL && PQstatus(o->pg) == CONNECTION_OK && o->locked)
        return true;
    o->locked = false;
    if (o->pg == NULL || PQstatus(o->pg) != CONNECTION_OK) {
        if (o->pg != NULL)
            PQreset(o->pg);
        if (o->pg == NULL || PQstatus(o->pg) != CONNECTION_OK) {
            warn_now_and_then(o, "cannot reach the database; runs started meanwhile may be "
                                 "failed by another tokend");
            return false;
        }
        tok_log_warn("reconciliation owner: reconnected; taking the owner lock again");
    }
    /* the key was free when our session died; a reaper's try-lock holds it for a moment */
    if (!try_lock(o)) {
        warn_now_and_then(o, "the owner lock is busy; trying again at the next pass");
        return false;
    }
    return true;
}

/* Fails the runs of owners that are gone. */
static void reap(struct tok_recon_owner *o)
{
    char n[24] = "";
    if (!query1(o->pg, "SELECT ledger.reap_reconciliation_runs($1::bigint)", o->key, n,
                sizeof n)) {
        warn_now_and_then(o, "the reaper's pass failed (is the schema current?)");
        return;
    }
    long k = strtol(n, NULL, 10);
    if (k <= 0)
        return;
    tok_log_warn("reconciliation owner: %ld run(s) of a tokend process that is gone marked "
                 "failed (interrupted by restart)",
                 k);
}

/* Checking the connection is also what notices a lost lock: a pass is one round trip. */
static void *owner_main(void *arg)
{
    struct tok_recon_owner *o = arg;
    pthread_mutex_lock(&o->mu);
    while (!o->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += TOK_RECON_REAP_INTERVAL_MS / 1000u;
        dl.tv_nsec += (long)(TOK_RECON_REAP_INTERVAL_MS % 1000u) * 1000000L;
        dl.tv_sec += dl.tv_nsec / 1000000000L;
        dl.tv_nsec %= 1000000000L;
        while (!o->stop && pthread_cond_timedwait(&o->cv, &o->mu, &dl) == 0)
            ;
        if (o->stop)
            break;
        pthread_mutex_unlock(&o->mu);
        if (ensure_locked(o))
            reap(o);
        pthread_mutex_lock(&o->mu);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

static void owner_release(struct tok_recon_owner *o)
{
    PQfinish(o->pg);
    tok_secmem_free(o->conninfo);
    free(o);
}

tok_status tok_recon_owner_new(const char *conninfo, struct tok_recon_owner **out, char *why,
                               size_t why_len)
{
    TOK_ENSURE(conninfo != NULL && out != NULL && why != NULL && why_len > 0, TOK_ERR_INTERNAL);
    struct tok_recon_owner *o = calloc(1, sizeof *o);
    TOK_ENSURE(o != NULL, TOK_ERR_NOMEM);
    size_t n = strlen(conninfo) + 1;
    o->conninfo = tok_secmem_alloc(n);
    if (o->conninfo == NULL) {
        free(o);
        return TOK_ERR_NOMEM;
    }
    tok_copy(o->conninfo, conninfo, n);
    tok_status st = tok_db_connect(o->conninfo, &o->pg, why, why_len);
    if (st != TOK_OK) {
        owner_release(o);
        return st;
    }
    /* a random key that a live process holds is refused by the try: take another */
    for (int i = 0; i < TOK_RECON_OWNER_TRIES && !o->locked; i++) {
        new_key(o);
        if (!try_lock(o) && PQstatus(o->pg) != CONNECTION_OK)
            break;
    }
    if (!o->locked) {
        snprintf(why, why_len, "cannot take a reconciliation owner lock");
        owner_release(o);
        return TOK_ERR_DB;
    }
    reap(o); /* before the loops answer anyone: a restart fails its predecessor's runs */
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    if (pthread_create(&o->tid, NULL, owner_main, o) != 0) {
        snprintf(why, why_len, "cannot start the reconciliation owner thread");
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        owner_release(o);
        return TOK_ERR_INTERNAL;
    }
    *out = o;
    return TOK_OK;
}

const char *tok_recon_owner_key(const struct tok_recon_owner *o)
{
    return o->key;
}

void tok_recon_owner_free(struct tok_recon_owner **po)
{
    if (po == NULL || *po == NULL)
        return;
    struct tok_recon_owner *o = *po;
    pthread_mutex_lock(&o->mu);
    o->stop = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->tid, NULL);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    owner_release(o);
    *po = NULL;
}
