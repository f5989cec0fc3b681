/*
 * app.h - what every request handler reaches: the process's shared state (struct tok_app)
 * and the event-loop thread that runs the request (struct tok_worker). server.c builds and
 * runs them; handlers in every layer above http only read them, so they live here, not in
 * server.h (the top of the tree).
 */
#ifndef TOKEND_HTTP_APP_H
#define TOKEND_HTTP_APP_H

#include "tokend/core/common.h"
#include "tokend/core/config.h"
#include "tokend/core/metrics.h"
#include "tokend/http/httpc.h"
#include "tokend/store/db.h"

#include <h2o.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <semaphore.h>

struct tok_keyring;
struct tok_dedup_guard;

/* Requests by route and status (server.c's on_req); per worker, summed at scrape time. */
#define TOK_STATS_ROUTES_MAX 64 /* routes.c's table; one more slot for "unmatched" */
#define TOK_STATS_STATUSES 24   /* the statuses tokend answers, then "other" (server.c) */
struct tok_req_stats {
    _Atomic uint64_t requests[TOK_STATS_ROUTES_MAX + 1][TOK_STATS_STATUSES];
    struct tok_hist latency[TOK_STATS_ROUTES_MAX + 1];
};
struct tok_ratelimit;
struct tok_auth_epochs;
struct tok_edge;
struct tok_recon_owner;
struct tok_gateway_stats;

/** Everything shared by all threads; read-only once the loops run. */
struct tok_app {
    const struct tok_config *cfg;
    struct tok_db *db;
    struct tok_db *reporting_db; /* tokend_reporting's pool (lists, exports); NULL = off */
    struct tok_keyring *keyring;
    struct tok_dedup_guard *dedup_guard; /* secret keys' de-duplication budget (vault) */
    struct tok_httpc *httpc; /* gateway HTTPS client (httpc.h), shared by every loop */
    struct tok_ratelimit *ratelimit;     /* ratelimit.h, shared by every loop; NULL = none */
    struct tok_auth_epochs *auth_epochs; /* vault/auth.h: key changes; NULL = TTL only */
    const struct tok_recon_owner *recon_owner; /* finance/recon_owner.h: whose runs these are */
    h2o_globalconf_t h2o;
    SSL_CTX *ssl_ctx;
    struct tok_worker *workers;
    unsigned nworkers;
    unsigned max_conns;          /* the connection cap after the descriptor limit */
    unsigned max_conns_per_loop; /* its share for each loop (edge.h) */
    sem_t ready; /* posted by each loop thread once its h2o objects exist */
    struct tok_metrics_registry metrics; /* what /metrics reports (tokend_main.c fills it) */
    struct tok_gateway_stats *gateway_stats; /* gateway_metrics.h; NULL = not counted */
};

/** One event-loop thread. */
struct tok_worker {
    h2o_context_t ctx; /* first: handlers reach the worker from req->conn->ctx */
    struct tok_app *app;
    unsigned index;
    pthread_t tid;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t db_replies;
    h2o_multithread_receiver_t control;
    h2o_multithread_receiver_t httpc_replies; /* finished gateway HTTP requests */
    h2o_accept_ctx_t accept_h2c, accept_tls;
    int listen_fd[2]; /* bound on the main thread, wrapped by the loop (-1: off) */
    h2o_socket_t *listeners[2];
    struct tok_edge *edge; /* connection caps and deadlines of this loop (edge.h) */
    struct tok_auth_cache *auth_cache;
    struct tok_req_stats *stats; /* this loop's requests (written only by this thread) */
    struct tok_gateway_env gw_env; /* what remote adapters called from this loop use */
    volatile bool stop;
};

/** The worker that owns a request (its h2o context is the worker's first member). */
static inline struct tok_worker *tok_server_worker(h2o_req_t *req)
{
    return (struct tok_worker *)req->conn->ctx;
}

#endif
