/*
 * server.c - h2o configuration, TLS, listeners and the event-loop threads.
 */
#include "tokend/server.h"
#include "tokend/vault/auth.h"
#include "tokend/http/edge.h"
#include "tokend/http/httpc.h"
#include "tokend/core/log.h"
#include "tokend/routes.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* TLS 1.2 suites: ECDHE with AEAD only (TLS 1.3 suites are OpenSSL's, all AEAD). */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

#define LISTEN_BACKLOG 1024
#define H2_MAX_CONCURRENT 256
#define HTTP1_REQ_TIMEOUT_MS 10000 /* h2o's: an HTTP/1 request's head and body, and keep-alive */
#define PATH_LIMIT 8192            /* request target bytes; more is 414 */

struct app_handler {
    h2o_handler_t super;
    struct tok_app *app;
};

struct control_msg {
    h2o_multithread_message_t super;
};

/* ---- request metrics -------------------------------------------------------------------- */

/* The statuses tokend answers, each its own series; anything else is "other". 0 is a
 * request whose stream ended before an answer (a reset, a closed connection). */
static const int stat_codes[] = {0,   200, 201, 204, 304, 400, 401, 402, 403, 404, 405,
                                 409, 413, 415, 422, 429, 431, 500, 502, 503, 504};
#define STAT_CODES_USED ((unsigned)TOK_ARRAY_LEN(stat_codes)) /* the next slot is "other" */
_Static_assert(TOK_ARRAY_LEN(stat_codes) < TOK_STATS_STATUSES, "one slot for other");

static unsigned status_slot(int status)
{
    for (unsigned i = 0; i < STAT_CODES_USED; i++)
        if (stat_codes[i] == status)
            return i;
    return STAT_CODES_USED;
}

static unsigned route_count(void)
{
    unsigned n = 0;
    for (const struct tok_route *rt = tok_routes_table(); rt->method != NULL; rt++)
        n++;
    return n;
}

/* Lives in the request's pool: its dispose runs when h2o frees the request (after the
 * answer, or when the stream was reset), with the request still readable. */
struct req_mark {
    h2o_req_t *req;
    struct tok_req_stats *stats;
    unsigned route; /* index in routes.c's table; TOK_STATS_ROUTES_MAX: none matched */
};

static void on_req_done(void *p)
{
    struct req_mark *m = p;
    const struct timeval *start = &m->req->timestamps.request_begin_at;
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t us = ((int64_t)now.tv_sec - start->tv_sec) * 1000000 + (now.tv_usec - start->tv_usec);
    unsigned route = m->route <= TOK_STATS_ROUTES_MAX ? m->route : TOK_STATS_ROUTES_MAX;
    atomic_fetch_add_explicit(&m->stats->requests[route][status_slot(m->req->res.status)], 1,
                              memory_order_relaxed);
    tok_hist_observe_us(&m->stats->latency[route], us > 0 ? (uint64_t)us : 0);
}

/* The edges of every loop (edge.h), summed: what --max-connections is measured against. */
static void collect_connections(const struct tok_app *app, struct tok_metrics_out *o)
{
    struct tok_edge_stats sum;
    memset(&sum, 0, sizeof sum);
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct tok_edge_stats s;
        if (app->workers[i].edge == NULL)
            continue;
        tok_edge_get_stats(app->workers[i].edge, &s);
        sum.open += s.open;
        sum.accepted += s.accepted;
        sum.refused += s.refused;
        sum.accept_paused += s.accept_paused;
        sum.handshake_cut += s.handshake_cut;
        sum.idle_cut += s.idle_cut;
        sum.reset_cut += s.reset_cut;
    }
    tok_metrics_family(o, "tokend_http_connections_open", "gauge",
                       "Client connections open now (both API listeners)");
    tok_metrics_u64(o, "tokend_http_connections_open", NULL, sum.open);
    tok_metrics_family(o, "tokend_http_connections_max", "gauge",
                       "The connection cap (--max-connections, bounded by the descriptor limit, "
                       "split evenly between the loops)");
    tok_metrics_u64(o, "tokend_http_connections_max", NULL,
                    (uint64_t)app->max_conns_per_loop * app->nworkers);
    tok_metrics_family(o, "tokend_http_connections_accepted_total", "counter",
                       "Client connections accepted under the cap");
    tok_metrics_u64(o, "tokend_http_connections_accepted_total", NULL, sum.accepted);
    tok_metrics_family(o, "tokend_http_connections_refused_total", "counter",
                       "Client connections closed at once: their loop was at its cap");
    tok_metrics_u64(o, "tokend_http_connections_refused_total", NULL, sum.refused);
    tok_metrics_family(o, "tokend_http_accept_paused_total", "counter",
                       "Times a listener paused: accept(2) ran out of descriptors or memory");
    tok_metrics_u64(o, "tokend_http_accept_paused_total", NULL, sum.accept_paused);
    tok_metrics_family(o, "tokend_http_connections_cut_total", "counter",
                       "Connections tokend closed, by reason (handshake: no complete request in "
                       "time; idle; h2_reset: HTTP/2 reset budget spent)");
    tok_metrics_u64(o, "tokend_http_connections_cut_total", "reason=\"handshake\"",
                    sum.handshake_cut);
    tok_metrics_u64(o, "tokend_http_connections_cut_total", "reason=\"idle\"", sum.idle_cut);
    tok_metrics_u64(o, "tokend_http_connections_cut_total", "reason=\"h2_reset\"", sum.reset_cut);
}

void tok_server_collect(void *ctx, struct tok_metrics_out *o)
{
    const struct tok_app *app = ctx;
    const struct tok_route *routes = tok_routes_table();
    unsigned nroutes = route_count();
    char lab[256];
    tok_metrics_family(o, "tokend_http_requests_total", "counter",
                       "Requests answered, by route pattern, method and status (0: the client "
                       "went away first; route unmatched: no route)");
    for (unsigned r = 0; r <= nroutes; r++) {
        unsigned slot = r < nroutes ? r : TOK_STATS_ROUTES_MAX;
        for (unsigned k = 0; k <= STAT_CODES_USED; k++) {
            uint64_t n = 0;
            for (unsigned i = 0; i < app->nworkers; i++)
                if (app->workers[i].stats != NULL)
                    n += atomic_load_explicit(&app->workers[i].stats->requests[slot][k],
                                              memory_order_relaxed);
            if (n == 0)
                continue;
            char code[8];
            if (k < STAT_CODES_USED)
                snprintf(code, sizeof code, "%d", stat_codes[k]);
            else
                snprintf(code, sizeof code, "other");
            snprintf(lab, sizeof lab, "route=\"%s\",method=\"%s\",status=\"%s\"",
                     r < nroutes ? routes[r].pattern : "unmatched",
                     r < nroutes ? routes[r].method : "any", code);
            tok_metrics_u64(o, "tokend_http_requests_total", lab, n);
        }
    }
    tok_metrics_family(o, "tokend_http_request_duration_seconds", "histogram",
                       "From the request's first byte to the end of its answer, by route");
    for (unsigned r = 0; r <= nroutes; r++) {
        unsigned slot = r < nroutes ? r : TOK_STATS_ROUTES_MAX;
        struct tok_hist h;
        memset(&h, 0, sizeof h);
        for (unsigned i = 0; i < app->nworkers; i++)
            if (app->workers[i].stats != NULL)
                tok_hist_add(&h, &app->workers[i].stats->latency[slot]);
        if (atomic_load_explicit(&h.count, memory_order_relaxed) == 0)
            continue;
        snprintf(lab, sizeof lab, "route=\"%s\",method=\"%s\"",
                 r < nroutes ? routes[r].pattern : "unmatched", r < nroutes ? routes[r].method : "any");
        tok_metrics_hist(o, "tokend_http_request_duration_seconds", lab, &h);
    }
    collect_connections(app, o);
}

struct route_run {
    struct tok_req *r;
    const struct tok_route *rt;
};

/* The route's work, one loop turn after its request arrived (edge.h): a stream
 * reset in the same read never gets here. */
static void run_route(void *arg)
{
    struct route_run *rr = arg;
    if (tok_req_cancelled(rr->r)) {
        tok_http_problem(rr->r, 503, "connection_closing", "this connection is being closed", NULL);
        return;
    }
    if (rr->r->req->entity.len > 0)
        tok_edge_req_wipe_input(rr->r->edge); /* the copies h2o no longer needs (edge.h) */
    rr->rt->fn(rr->r);
}

/* h2o 2.2.5 takes up to ~400 KB of headers, in any number over HTTP/2: the
 * limit is ours, answered as problem+json (RFC 6585's 431). */
static bool headers_too_large(const h2o_req_t *req, unsigned limit)
{
    if (req->headers.size > TOK_HEADERS_MAX)
        return true;
    size_t n = 0;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return n > limit;
}

static int on_req(h2o_handler_t *self_, h2o_req_t *req)
{
    struct app_handler *self = (struct app_handler *)self_;
    struct tok_req *r = h2o_mem_alloc_pool(&req->pool, sizeof *r);
    memset(r, 0, sizeof *r);
    r->req = req;
    r->app = self->app;
    r->worker = tok_server_worker(req);
    r->edge = tok_edge_req_start(req);
    tok_http_assign_id(r);
    struct req_mark *mark = h2o_mem_alloc_shared(&req->pool, sizeof *mark, on_req_done);
    mark->req = req;
    mark->stats = r->worker->stats;
    mark->route = TOK_STATS_ROUTES_MAX;
    if (req->path.len > PATH_LIMIT) {
        tok_http_problem(r, 414, "uri_too_long", "the request target is too long", NULL);
        return 0;
    }
    if (headers_too_large(req, r->app->cfg->header_limit)) {
        tok_http_problem(r, 431, "headers_too_large", "the request headers are too large", NULL);
        return 0;
    }

    size_t plen = req->path.len;
    if (req->query_at != SIZE_MAX && req->query_at < plen)
        plen = req->query_at;
    const struct tok_route *rt = NULL;
    char allow[TOK_ALLOW_MAX];
    tok_status st = tok_routes_match(tok_slice_of(req->method.base, req->method.len),
                                     tok_slice_of(req->path.base, plen), r, &rt, allow);
    if (st == TOK_ERR_NOTFOUND) {
        tok_http_problem(r, 404, "not_found", "no such route", NULL);
        return 0;
    }
    if (st == TOK_ERR_INPUT) {
        tok_http_header(r, "allow", allow);
        tok_http_problem(r, 405, "method_not_allowed", "this route does not take that method",
                         NULL);
        return 0;
    }
    if (st != TOK_OK) {
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return 0;
    }
    r->route = rt->pattern;
    mark->route = (unsigned)(rt - tok_routes_table());
    struct route_run *rr = h2o_mem_alloc_pool(&req->pool, sizeof *rr);
    rr->r = r;
    rr->rt = rt;
    tok_edge_req_defer(r->edge, run_route, rr);
    return 0;
}

static tok_status setup_tls(struct tok_app *app, char *why, size_t why_len)
{
    const struct tok_config *cfg = app->cfg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(why, why_len, "cannot create the TLS context");
        return TOK_ERR_INTERNAL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* CLEANSE_PLAINTEXT: OpenSSL decrypts records in place; without it a request
     * body (a card) stays in its read buffer after SSL_read (issue #15, finding 9).
     * RELEASE_BUFFERS: an idle connection holds no record buffers. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET |
                                 SSL_OP_CLEANSE_PLAINTEXT);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        snprintf(why, why_len, "the TLS cipher list was refused by OpenSSL");
        SSL_CTX_free(ctx);
        return TOK_ERR_INTERNAL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(why, why_len, "cannot load the TLS certificate '%.200s'", cfg->tls_cert);
        SSL_CTX_free(ctx);
        return TOK_ERR_INPUT;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(why, why_len, "cannot load the TLS key '%.200s' (or it does not match the certificate)",
                 cfg->tls_key);
        SSL_CTX_free(ctx);
        return TOK_ERR_INPUT;
    }
    ERR_clear_error();
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    app->ssl_ctx = ctx;
    return TOK_OK;
}

static tok_status bind_listener(const char *addr_s, int *out_fd, char *why, size_t why_len)
{
    struct sockaddr_storage ss;
    unsigned len = sizeof ss;
    if (tok_config_parse_addr(addr_s, (struct sockaddr *)&ss, &len) != TOK_OK) {
        snprintf(why, why_len, "bad listen address '%.64s'", addr_s);
        return TOK_ERR_INPUT;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, why_len, "socket(): %s", strerror(errno));
        return TOK_ERR_IO;
    }
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(why, why_len, "cannot listen on %.64s: %s", addr_s, strerror(errno));
        close(fd);
        return TOK_ERR_IO;
    }
    *out_fd = fd;
    return TOK_OK;
}

static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct tok_worker *w = H2O_STRUCT_FROM_MEMBER(struct tok_worker, control, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        free(m);
    }
    w->stop = true;
}

/* Main thread: what can fail is done here, before any loop runs (bound sockets,
 * caches), so start-up errors are one line and exit code 2. */
static tok_status prepare_worker(struct tok_app *app, struct tok_worker *w, char *why, size_t why_len)
{
    const struct tok_config *cfg = app->cfg;
    w->app = app;
    w->listen_fd[0] = w->listen_fd[1] = -1;
    w->stats = calloc(1, sizeof *w->stats);
    if (w->stats == NULL || tok_auth_cache_new(&w->auth_cache) != TOK_OK) {
        snprintf(why, why_len, "out of memory");
        return TOK_ERR_NOMEM;
    }
    const char *addrs[2] = {cfg->listen_h2c, cfg->listen_tls};
    for (int i = 0; i < 2; i++)
        if (addrs[i][0] != '\0')
            TOK_GUARD(bind_listener(addrs[i], &w->listen_fd[i], why, why_len));
    return TOK_OK;
}

/* The loop's own thread: h2o keeps per-thread buffer pools, so every h2o object
 * of a loop (the loop, its context, its queue, its sockets) is made here. */
static void setup_loop(struct tok_worker *w)
{
    struct tok_app *app = w->app;
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, loop, &app->h2o);
    w->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(w->queue, &w->db_replies, tok_db_on_replies);
    h2o_multithread_register_receiver(w->queue, &w->control, on_control);
    h2o_multithread_register_receiver(w->queue, &w->httpc_replies, tok_httpc_on_replies);
    w->gw_env.httpc = app->httpc;
    w->gw_env.reply_to = &w->httpc_replies;
    w->gw_env.stats = app->gateway_stats;

    const struct tok_config *cfg = app->cfg;
    struct tok_edge_limits lim = {app->max_conns_per_loop, cfg->handshake_timeout_ms,
                                  cfg->idle_timeout_ms, cfg->h2_reset_budget};
    if (tok_edge_new(&w->ctx, &lim, &w->edge) != TOK_OK)
        abort(); /* out of memory while starting: nothing is served yet */
    h2o_accept_ctx_t *actx[2] = {&w->accept_h2c, &w->accept_tls};
    for (int i = 0; i < 2; i++) {
        actx[i]->ctx = &w->ctx;
        actx[i]->hosts = app->h2o.hosts;
        actx[i]->ssl_ctx = i == 1 ? app->ssl_ctx : NULL;
        if (w->listen_fd[i] < 0)
            continue;
        w->listeners[i] = h2o_evloop_socket_create(loop, w->listen_fd[i], H2O_SOCKET_FLAG_DONT_READ);
        if (tok_edge_listen(w->edge, w->listeners[i], actx[i]) != TOK_OK)
            abort(); /* two listeners, TOK_EDGE_LISTENERS_MAX of them: a bug */
    }
}

/* The connection cap, shared out between the loops, kept under the
 * descriptor limit (raised to its hard maximum first) so that accept4()
 * failing with EMFILE stays a last resort. */
static tok_status connection_cap(struct tok_app *app, char *why, size_t why_len)
{
    const struct tok_config *cfg = app->cfg;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(why, why_len, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return TOK_ERR_IO;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t cap = cfg->max_connections;
    uint64_t fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    uint64_t reserve = TOK_EDGE_FD_RESERVE + 4u * cfg->threads + 2u * cfg->db_threads +
                       cfg->gateway_max_connections;
    if (fds <= reserve + cfg->threads) {
        snprintf(why, why_len, "the file descriptor limit (%llu) is too low: raise ulimit -n",
                 (unsigned long long)fds);
        return TOK_ERR_INPUT;
    }
    if (cap > fds - reserve) {
        tok_log_warn("%s: --max-connections %llu lowered to %llu (file descriptor limit %llu)",
                     __func__, (unsigned long long)cap, (unsigned long long)(fds - reserve),
                     (unsigned long long)fds);
        cap = fds - reserve;
    }
    app->max_conns = (unsigned)cap;
    app->max_conns_per_loop = (unsigned)((cap + cfg->threads - 1) / cfg->threads);
    return TOK_OK;
}

tok_status tok_server_init(struct tok_app *app, char *why, size_t why_len)
{
    const struct tok_config *cfg = app->cfg;
    signal(SIGPIPE, SIG_IGN);
    h2o_config_init(&app->h2o);
    app->h2o.server_name = h2o_iovec_init(H2O_STRLIT("tokend"));
    /* h2o buffers whole bodies: cap them at our limit (see README: HTTP/2 gets RST_STREAM) */
    app->h2o.max_request_entity_size = cfg->body_limit;
    app->h2o.handshake_timeout = cfg->handshake_timeout_ms;
    app->h2o.http1.req_timeout = HTTP1_REQ_TIMEOUT_MS;
    app->h2o.http2.idle_timeout = cfg->idle_timeout_ms;
    /* h2o moves a socket buffer past 32 MiB into a file in /tmp: a body
     * (a card) must never reach a disk; our bodies are capped far below */
    h2o_socket_buffer_mmap_settings.threshold = SIZE_MAX;
    TOK_GUARD(connection_cap(app, why, why_len));
    app->h2o.http2.max_concurrent_requests_per_connection = H2_MAX_CONCURRENT;
    h2o_hostconf_t *host = h2o_config_register_host(&app->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct app_handler *h = (struct app_handler *)h2o_create_handler(path, sizeof *h);
    h->super.on_req = on_req;
    h->app = app;
    tok_http_register_filters(path, cfg->access_log, cfg->access_log_sample);
    tok_http_register_filters(&host->fallback_path, cfg->access_log, cfg->access_log_sample);

    if (cfg->listen_tls[0] != '\0')
        TOK_GUARD(setup_tls(app, why, why_len));

    if (route_count() > TOK_STATS_ROUTES_MAX) {
        snprintf(why, why_len, "the route table outgrew TOK_STATS_ROUTES_MAX");
        return TOK_ERR_INTERNAL;
    }
    app->nworkers = cfg->threads;
    app->workers = calloc(app->nworkers, sizeof *app->workers);
    TOK_ENSURE(app->workers != NULL, TOK_ERR_NOMEM);
    for (unsigned i = 0; i < app->nworkers; i++) {
        app->workers[i].index = i;
        TOK_GUARD(prepare_worker(app, &app->workers[i], why, why_len));
    }
    return TOK_OK;
}

static void *loop_main(void *arg)
{
    struct tok_worker *w = arg;
    setup_loop(w);
    sem_post(&w->app->ready);
    while (!w->stop)
        h2o_evloop_run(w->ctx.loop, INT32_MAX);
    return NULL;
}

tok_status tok_server_run(struct tok_app *app)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sem_init(&app->ready, 0, 0);
    for (unsigned i = 0; i < app->nworkers; i++) {
        if (pthread_create(&app->workers[i].tid, NULL, loop_main, &app->workers[i]) != 0) {
            tok_log_err("%s: cannot start event-loop thread %u", __func__, i);
            return TOK_ERR_INTERNAL;
        }
    }
    /* control messages need each loop's queue: wait until every loop is set up */
    for (unsigned i = 0; i < app->nworkers; i++)
        while (sem_wait(&app->ready) != 0)
            ;
    tok_log_info("%s: tokend %s serving h2c on %s, TLS on %s, %u loop threads, up to %u "
                 "connections", __func__,
                 TOKEND_VERSION, app->cfg->listen_h2c[0] ? app->cfg->listen_h2c : "(off)",
                 app->cfg->listen_tls[0] ? app->cfg->listen_tls : "(off)", app->nworkers,
                 app->max_conns);
    int sig = 0;
    sigwait(&set, &sig);
    tok_log_info("%s: signal %d, stopping", __func__, sig);
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct control_msg *m = calloc(1, sizeof *m);
        if (m != NULL)
            h2o_multithread_send_message(&app->workers[i].control, &m->super);
    }
    for (unsigned i = 0; i < app->nworkers; i++)
        pthread_join(app->workers[i].tid, NULL);
    return TOK_OK;
}
