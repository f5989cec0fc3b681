/*
 * listen.c - the LISTEN thread. See listen.h.
 */
#include "tokend/store/listen.h"
#include "tokend/store/db.h"
#include "tokend/core/log.h"
#include "tokend/core/secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WARN_EVERY_MS 10000 /* a database that stays away is logged this often */

struct tok_listener {
    char *conninfo; /* secmem: may hold a password */
    char channel[TOK_LISTEN_CHANNEL_MAX + 1];
    tok_listen_notify_fn on_notify;
    tok_listen_reset_fn on_reset;
    void *ctx;
    PGconn *pg;
    pthread_t tid;
    int wake[2]; /* a pipe: tok_listener_free writes a byte to stop the thread */
    uint64_t notifications, resets, last_warn_ms;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The FATAL of a terminated backend and other notices go to the JSON log, first line only. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    size_t n = strcspn(message, "\n");
    tok_log_warn("listener: postgresql: %.*s", (int)(n > 200 ? 200 : n), message);
}

static bool channel_ok(const char *c)
{
    size_t n = c == NULL ? 0 : strlen(c);
    if (n == 0 || n > TOK_LISTEN_CHANNEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((c[i] >= 'a' && c[i] <= 'z') || c[i] == '_'))
            return false;
    return true;
}

static tok_status command(PGconn *pg, const char *sql, char *why, size_t why_len)
{
    PGresult *r = PQexec(pg, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(why, why_len, "%.*s", (int)strcspn(PQerrorMessage(pg), "\n"), PQerrorMessage(pg));
    PQclear(r);
    return ok ? TOK_OK : TOK_ERR_DB;
}

/* Connects and subscribes. The channel is checked to be [a-z_]+, so it needs no quoting. */
static tok_status subscribe(struct tok_listener *l, char *why, size_t why_len)
{
    PGconn *pg = NULL;
    TOK_GUARD(tok_db_connect(l->conninfo, &pg, why, why_len));
    PQsetNoticeProcessor(pg, on_notice, NULL);
    char sql[TOK_LISTEN_CHANNEL_MAX + 16];
    snprintf(sql, sizeof sql, "LISTEN %s", l->channel);
    if (command(pg, "SET application_name = '" TOK_LISTEN_APPLICATION_NAME "'", why, why_len) !=
            TOK_OK ||
        command(pg, sql, why, why_len) != TOK_OK) {
        PQfinish(pg);
        return TOK_ERR_DB;
    }
    l->pg = pg;
    return TOK_OK;
}

/* Waits up to ms for the stop byte; true when it came. */
static bool stop_requested(struct tok_listener *l, int ms)
{
    struct pollfd pf = {l->wake[0], POLLIN, 0};
    return poll(&pf, 1, ms) > 0;
}

static void drop(struct tok_listener *l)
{
    PQfinish(l->pg);
    l->pg = NULL;
    tok_log_warn("listener: lost its database connection: key changes are not heard until it "
                 "is back (then every cache is reset)");
}

static void deliver(struct tok_listener *l)
{
    PGnotify *n;
    while ((n = PQnotifies(l->pg)) != NULL) {
        l->notifications++;
        l->on_notify(l->ctx, n->extra != NULL ? n->extra : "");
        PQfreemem(n);
    }
}

static void *listener_main(void *arg)
{
    struct tok_listener *l = arg;
    for (;;) {
        if (l->pg == NULL) {
            if (stop_requested(l, TOK_LISTEN_RETRY_MS))
                break;
            char why[TOK_DB_WHY_MAX];
            if (subscribe(l, why, sizeof why) != TOK_OK) {
                uint64_t now = mono_ms();
                if (l->last_warn_ms == 0 || now - l->last_warn_ms >= WARN_EVERY_MS) {
                    l->last_warn_ms = now;
                    tok_log_warn("listener: cannot reconnect (%s); retrying every %d ms", why,
                                 TOK_LISTEN_RETRY_MS);
                }
                continue;
            }
            l->last_warn_ms = 0;
            l->resets++;
            l->on_reset(l->ctx); /* after LISTEN: a change from now on is heard */
            tok_log_info("listener: reconnected and listening on %s again; caches reset",
                         l->channel);
            continue;
        }
        struct pollfd pf[2] = {{PQsocket(l->pg), POLLIN, 0}, {l->wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            tok_log_err("listener: poll: %s", strerror(errno));
            drop(l);
            continue;
        }
        if (pf[1].revents != 0)
            break;
        if (pf[0].revents == 0)
            continue;
        if (PQconsumeInput(l->pg) != 1 || PQstatus(l->pg) != CONNECTION_OK) {
            deliver(l); /* whatever arrived before the end */
            drop(l);
            continue;
        }
        deliver(l);
    }
    return NULL;
}

tok_status tok_listener_new(const struct tok_listen_config *cfg, struct tok_listener **out,
                            char *why, size_t why_len)
{
    TOK_ENSURE(cfg != NULL && out != NULL && cfg->conninfo != NULL && cfg->on_notify != NULL &&
                   cfg->on_reset != NULL,
               TOK_ERR_INTERNAL);
    if (!channel_ok(cfg->channel)) {
        snprintf(why, why_len, "bad LISTEN channel name");
        return TOK_ERR_INPUT;
    }
    struct tok_listener *l = calloc(1, sizeof *l);
    TOK_ENSURE(l != NULL, TOK_ERR_NOMEM);
    l->wake[0] = l->wake[1] = -1;
    size_t n = strlen(cfg->conninfo) + 1;
    l->conninfo = tok_secmem_alloc(n);
    if (l->conninfo == NULL) {
        free(l);
        return TOK_ERR_NOMEM;
    }
    tok_copy(l->conninfo, cfg->conninfo, n);
    snprintf(l->channel, sizeof l->channel, "%s", cfg->channel);
    l->on_notify = cfg->on_notify;
    l->on_reset = cfg->on_reset;
    l->ctx = cfg->ctx;
    tok_status st = TOK_OK;
    if (pipe2(l->wake, O_CLOEXEC) != 0) {
        snprintf(why, why_len, "pipe: %s", strerror(errno));
        st = TOK_ERR_INTERNAL;
    }
    if (st == TOK_OK)
        st = subscribe(l, why, why_len);
    if (st == TOK_OK && pthread_create(&l->tid, NULL, listener_main, l) != 0) {
        snprintf(why, why_len, "cannot start the listener thread");
        st = TOK_ERR_INTERNAL;
    }
    if (st != TOK_OK) {
        PQfinish(l->pg);
        if (l->wake[0] >= 0) {
            close(l->wake[0]);
            close(l->wake[1]);
        }
        tok_secmem_free(l->conninfo);
        free(l);
        return st;
    }
    *out = l;
    return TOK_OK;
}

void tok_listener_free(struct tok_listener **pl)
{
    if (pl == NULL || *pl == NULL)
        return;
    struct tok_listener *l = *pl;
    ssize_t w;
    do
        w = write(l->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(l->tid, NULL);
    tok_log_info("listener: %llu notifications, %llu resets on %s",
                 (unsigned long long)l->notifications, (unsigned long long)l->resets, l->channel);
    PQfinish(l->pg);
    close(l->wake[0]);
    close(l->wake[1]);
    tok_secmem_free(l->conninfo);
    free(l);
    *pl = NULL;
}
