/*
 * edge.c - connection caps, deadlines, accept back-off and the HTTP/2 reset
 * budget around h2o 2.2.5. See edge.h for what and why.
 */
#include "tokend/http/edge.h"
#include "tokend/core/log.h"

#include <errno.h>
#include <h2o/http2.h>
#include <h2o/http2_scheduler.h>
#include <malloc.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * The head of h2o 2.2.5's h2o_http2_conn_t, field for field
 * (h2o/http2_internal.h, which cannot be included: it needs klib's khash.h,
 * which Debian's libh2o-evloop-dev does not ship). Only read, and only after
 * h2_view() has checked that the object is what it claims (its context is
 * ours and its socket points back at it). The library version is pinned by
 * Debian 12 (2.2.5+dfsg2); a new h2o means checking this against its header.
 */
struct h2_num_streams {
    uint32_t open, half_closed, send_body;
};
struct h2_conn_view {
    h2o_conn_t super;
    h2o_socket_t *sock;
    h2o_http2_settings_t peer_settings;
    void *streams;
    struct {
        uint32_t max_open, max_processed;
    } pull_stream_ids;
    struct {
        uint32_t max_open;
    } push_stream_ids;
    struct {
        struct h2_num_streams priority, pull, push;
    } num_streams;
    h2o_http2_scheduler_node_t scheduler;
    enum { H2_OPEN, H2_HALF_CLOSED, H2_IS_CLOSING } state;
    h2o_linklist_t _conns;
};

struct edge_listener {
    struct tok_edge *e;
    h2o_socket_t *sock;
    h2o_accept_ctx_t *actx;
    h2o_timeout_entry_t resume; /* linked while paused after EMFILE */
};

struct tok_edge {
    h2o_context_t *ctx;
    struct tok_edge_limits lim;
    h2o_timeout_t handshake_timeout, idle_timeout, pause_timeout, sweep_timeout;
    h2o_timeout_entry_t sweep;
    struct edge_listener listeners[TOK_EDGE_LISTENERS_MAX];
    unsigned nlisteners;
    unsigned closed_since_trim;
    /* written by the loop's thread only, read by /metrics' thread: relaxed atomics */
    struct {
        _Atomic uint64_t open, accepted, refused, accept_paused, handshake_cut, idle_cut,
            reset_cut, cancelled;
    } stats;
};

static void bump(_Atomic uint64_t *v)
{
    atomic_fetch_add_explicit(v, 1, memory_order_relaxed);
}

static uint64_t peek(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* One accepted connection: hung on the socket's on_close, which h2o leaves to
 * the application for server sockets and fires after every request of the
 * connection has been disposed, so it outlives them all. */
struct edge_conn {
    struct tok_edge *e;
    h2o_socket_t *sock;
    h2o_timeout_entry_t deadline; /* handshake, then idle while nothing is in flight */
    uint32_t inflight;
    uint64_t started, answered, cancelled; /* requests that reached the handler */
    uint64_t seen_bad, seen_good;          /* HTTP/2 accounting already charged */
    int64_t budget;
    bool had_request;
    bool extended; /* the first-request deadline was extended once for an upload */
    bool doomed;
};

struct tok_edge_req {
    h2o_timeout_entry_t run; /* the deferred start */
    struct edge_conn *c;     /* NULL: not a tracked connection */
    h2o_req_t *req;
    void (*fn)(void *arg);
    void *arg;
};

static void on_conn_close(void *p);
static void wipe_recycled_input(void);

static void cut(struct edge_conn *c, _Atomic uint64_t *counter, const char *why)
{
    if (c->doomed)
        return;
    c->doomed = true;
    bump(counter);
    h2o_timeout_unlink(&c->deadline);
    tok_log_debug("%s: closing a connection: %s", __func__, why);
    /* h2o sees the end of the stream on its next read and closes its own objects */
    (void)shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
}

static const struct h2_conn_view *h2_view(const struct tok_edge *e, const void *conn);

/*
 * At the first-request deadline: is a request arriving? h2o hands a request
 * over only once its whole body is in, so a large upload can outlast the
 * deadline. An HTTP/2 stream still receiving, or an HTTP/1 request with more
 * than a preface fragment buffered (h2o's own 10 s request timeout bounds it),
 * earns one idle period more; a partial preface, a handshake or SETTINGS and
 * PINGs alone do not.
 */
static bool request_arriving(const struct edge_conn *c)
{
    const h2o_conn_t *hc = c->sock->data; /* accept data while in the TLS handshake */
    if (hc == NULL || hc->ctx != c->e->ctx)
        return false;
    const struct h2_conn_view *h2 = h2_view(c->e, hc);
    if (h2 != NULL)
        return h2->num_streams.pull.open > 0;
    return c->sock->input != NULL && c->sock->input->size >= TOK_EDGE_H1_ARRIVING;
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    struct edge_conn *c = H2O_STRUCT_FROM_MEMBER(struct edge_conn, deadline, entry);
    if (c->had_request) {
        cut(c, &c->e->stats.idle_cut, "idle");
        return;
    }
    if (!c->extended && request_arriving(c)) {
        c->extended = true;
        h2o_timeout_link(c->e->ctx->loop, &c->e->idle_timeout, &c->deadline);
        return;
    }
    cut(c, &c->e->stats.handshake_cut, "no complete request in time");
}

/*
 * HTTP/2 streams the peer opened that ended without an answer: those that
 * reached the handler and were disposed unanswered, plus those that never
 * reached it (reset while their headers or body were arriving). h2o counts
 * neither; the highest stream id it saw and its open-stream gauge give the
 * second. The total only grows, so a transient over-count (a stream answered
 * but not yet disposed) is charged at most once.
 */
static void account_h2(struct edge_conn *c, const struct h2_conn_view *h2)
{
    if (c->doomed || h2->state >= H2_IS_CLOSING)
        return; /* a closing connection disposes every stream: not the peer's doing */
    uint64_t opened = ((uint64_t)h2->pull_stream_ids.max_open + 1) / 2;
    uint64_t in_handler = c->started - c->answered - c->cancelled;
    uint64_t waiting = h2->num_streams.pull.open > in_handler ? h2->num_streams.pull.open - in_handler : 0;
    uint64_t never_started = opened > c->started + waiting ? opened - c->started - waiting : 0;
    uint64_t bad = never_started + c->cancelled;
    if (bad < c->seen_bad)
        bad = c->seen_bad;
    int64_t cap = (int64_t)c->e->lim.reset_budget;
    c->budget += (int64_t)(c->answered - c->seen_good);
    if (c->budget > cap)
        c->budget = cap;
    c->budget -= (int64_t)(bad - c->seen_bad);
    c->seen_good = c->answered;
    c->seen_bad = bad;
    if (c->budget <= 0)
        cut(c, &c->e->stats.reset_cut, "HTTP/2 reset budget spent (CVE-2023-44487)");
}

static struct edge_conn *conn_of_sock(h2o_socket_t *sock)
{
    if (sock == NULL || sock->on_close.cb != on_conn_close)
        return NULL;
    return sock->on_close.data;
}

/* conn as an HTTP/2 connection of this loop, or NULL when it is not one. */
static const struct h2_conn_view *h2_view(const struct tok_edge *e, const void *conn)
{
    const struct h2_conn_view *h2 = conn;
    if (h2 == NULL || h2->super.ctx != e->ctx || h2->sock == NULL || h2->sock->data != conn)
        return NULL;
    return h2;
}

static void on_sweep(h2o_timeout_entry_t *entry)
{
    struct tok_edge *e = H2O_STRUCT_FROM_MEMBER(struct tok_edge, sweep, entry);
    /* h2o's own list of this loop's HTTP/2 connections: streams reset before
     * they reached a handler are seen only here */
    h2o_linklist_t *head = &e->ctx->http2._conns;
    for (h2o_linklist_t *n = head->next; n != head; n = n->next) {
        const struct h2_conn_view *h2 =
            h2_view(e, (const char *)n - offsetof(struct h2_conn_view, _conns));
        struct edge_conn *c = h2 != NULL ? conn_of_sock(h2->sock) : NULL;
        if (c != NULL)
            account_h2(c, h2);
    }
    wipe_recycled_input(); /* bodies of streams that never reached a handler */
    if (e->closed_since_trim >= TOK_EDGE_TRIM_AFTER ||
        (e->closed_since_trim > 0 && peek(&e->stats.open) == 0)) {
        /* glibc keeps freed connection buffers; a burst of connections would
         * otherwise leave the process at its peak size for good */
        e->closed_since_trim = 0;
        malloc_trim(0);
    }
    h2o_timeout_link(e->ctx->loop, &e->sweep_timeout, &e->sweep);
}

static void on_conn_close(void *p)
{
    struct edge_conn *c = p;
    struct tok_edge *e = c->e;
    h2o_timeout_unlink(&c->deadline);
    atomic_fetch_sub_explicit(&e->stats.open, 1, memory_order_relaxed);
    e->closed_since_trim++;
    free(c);
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void on_resume(h2o_timeout_entry_t *entry)
{
    struct edge_listener *l = H2O_STRUCT_FROM_MEMBER(struct edge_listener, resume, entry);
    h2o_socket_read_start(l->sock, on_accept);
}

static void refuse(struct tok_edge *e, h2o_socket_t *sock)
{
    /* not yet given to h2o: ours to close; the peer sees a clean end at once */
    bump(&e->stats.refused);
    h2o_socket_close(sock);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    struct edge_listener *l = listener->data;
    struct tok_edge *e = l->e;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the connection stays in the backlog and epoll reports the
                 * listener again at once: stop reading it for a while instead */
                bump(&e->stats.accept_paused);
                uint64_t paused = peek(&e->stats.accept_paused);
                h2o_socket_read_stop(listener);
                if (!h2o_timeout_is_linked(&l->resume))
                    h2o_timeout_link(e->ctx->loop, &e->pause_timeout, &l->resume);
                if ((paused & (paused - 1)) == 0)
                    tok_log_warn("%s: accept: %s; pausing the listener (%llu times so far)", __func__,
                                 strerror(errno), (unsigned long long)paused);
            }
            return;
        }
        if (peek(&e->stats.open) >= e->lim.max_conns) {
            refuse(e, sock);
            continue;
        }
        struct edge_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            refuse(e, sock);
            continue;
        }
        c->e = e;
        c->sock = sock;
        c->budget = (int64_t)e->lim.reset_budget;
        c->deadline.cb = on_deadline;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        bump(&e->stats.open);
        bump(&e->stats.accepted);
        h2o_timeout_link(e->ctx->loop, &e->handshake_timeout, &c->deadline);
        h2o_accept(l->actx, sock);
    }
}

tok_status tok_edge_new(h2o_context_t *ctx, const struct tok_edge_limits *lim, struct tok_edge **out)
{
    TOK_ENSURE(ctx != NULL && lim != NULL && out != NULL, TOK_ERR_INTERNAL);
    struct tok_edge *e = calloc(1, sizeof *e);
    TOK_ENSURE(e != NULL, TOK_ERR_NOMEM);
    e->ctx = ctx;
    e->lim = *lim;
    h2o_timeout_init(ctx->loop, &e->handshake_timeout, lim->handshake_ms);
    h2o_timeout_init(ctx->loop, &e->idle_timeout, lim->idle_ms);
    h2o_timeout_init(ctx->loop, &e->pause_timeout, TOK_EDGE_ACCEPT_PAUSE_MS);
    h2o_timeout_init(ctx->loop, &e->sweep_timeout, TOK_EDGE_SWEEP_MS);
    e->sweep.cb = on_sweep;
    h2o_timeout_link(ctx->loop, &e->sweep_timeout, &e->sweep);
    *out = e;
    return TOK_OK;
}

tok_status tok_edge_listen(struct tok_edge *e, h2o_socket_t *listener, h2o_accept_ctx_t *actx)
{
    TOK_ENSURE(e != NULL && listener != NULL && actx != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(e->nlisteners < TOK_EDGE_LISTENERS_MAX, TOK_ERR_BOUNDS);
    struct edge_listener *l = &e->listeners[e->nlisteners++];
    l->e = e;
    l->sock = listener;
    l->actx = actx;
    l->resume.cb = on_resume;
    listener->data = l;
    h2o_socket_read_start(listener, on_accept);
    return TOK_OK;
}

void tok_edge_get_stats(const struct tok_edge *e, struct tok_edge_stats *out)
{
    out->open = peek(&e->stats.open);
    out->accepted = peek(&e->stats.accepted);
    out->refused = peek(&e->stats.refused);
    out->accept_paused = peek(&e->stats.accept_paused);
    out->handshake_cut = peek(&e->stats.handshake_cut);
    out->idle_cut = peek(&e->stats.idle_cut);
    out->reset_cut = peek(&e->stats.reset_cut);
    out->cancelled = peek(&e->stats.cancelled);
}

/* Runs when the request is disposed (answered, reset, or its connection closed). */
static void on_req_dispose(void *p)
{
    struct tok_edge_req *er = p;
    h2o_timeout_unlink(&er->run); /* the entry's memory goes with the pool */
    struct edge_conn *c = er->c;
    if (c == NULL)
        return;
    h2o_req_t *req = er->req;
    if (req->res.status != 0) {
        c->answered++;
    } else {
        c->cancelled++;
        bump(&c->e->stats.cancelled);
    }
    if (c->inflight > 0 && --c->inflight == 0 && !c->doomed)
        h2o_timeout_link(c->e->ctx->loop, &c->e->idle_timeout, &c->deadline);
    const struct h2_conn_view *h2 = req->version >= 0x200 ? h2_view(c->e, req->conn) : NULL;
    if (h2 != NULL && h2->sock == c->sock)
        account_h2(c, h2);
}

struct tok_edge_req *tok_edge_req_start(h2o_req_t *req)
{
    struct tok_edge_req *er = h2o_mem_alloc_shared(&req->pool, sizeof *er, on_req_dispose);
    memset(er, 0, sizeof *er);
    er->req = req;
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL
                             ? req->conn->callbacks->get_socket(req->conn)
                             : NULL;
    struct edge_conn *c = conn_of_sock(sock);
    if (c == NULL)
        return er;
    er->c = c;
    c->had_request = true;
    c->started++;
    c->inflight++;
    h2o_timeout_unlink(&c->deadline);
    return er;
}

static void on_run(h2o_timeout_entry_t *entry)
{
    struct tok_edge_req *er = H2O_STRUCT_FROM_MEMBER(struct tok_edge_req, run, entry);
    er->fn(er->arg);
}

void tok_edge_req_defer(struct tok_edge_req *er, void (*fn)(void *arg), void *arg)
{
    er->fn = fn;
    er->arg = arg;
    er->run.cb = on_run;
    /* the zero timeout fires after this turn's socket callbacks: every RST_STREAM
     * read together with this request's HEADERS has been seen by then */
    h2o_timeout_link(er->req->conn->ctx->loop, &er->req->conn->ctx->zero_timeout, &er->run);
}

bool tok_edge_req_doomed(const struct tok_edge_req *er)
{
    return er != NULL && er->c != NULL && er->c->doomed;
}

/*
 * h2o keeps up to 16 freed socket buffers per thread for reuse, unwiped: a
 * fully parsed read (an HTTP/2 DATA frame with a card, in plaintext even on
 * TLS) goes there as soon as h2o has copied it out. Zero them, keeping only
 * each chunk's link. Loop thread only (the list is thread-local).
 */
static void wipe_recycled_input(void)
{
    h2o_buffer_prototype_t *proto = &h2o_socket_buffer_prototype;
    size_t size = offsetof(h2o_buffer_t, _buf) + proto->_initial_buf.capacity;
    size_t link = sizeof(struct st_h2o_mem_recycle_chunk_t *);
    if (size <= link)
        return;
    size_t n = 0;
    for (struct st_h2o_mem_recycle_chunk_t **ch = (struct st_h2o_mem_recycle_chunk_t **)proto->allocator._link;
         ch != NULL && n < proto->allocator.cnt; ch = (struct st_h2o_mem_recycle_chunk_t **)*ch, n++)
        sodium_memzero((char *)ch + link, size - link);
}

void tok_edge_req_wipe_input(const struct tok_edge_req *er)
{
    wipe_recycled_input();
    if (er == NULL || er->c == NULL)
        return;
    h2o_buffer_t *b = er->c->sock->input;
    if (b == NULL || b->bytes == NULL || b->_fd != -1)
        return; /* the prototype (empty), or a file-backed buffer */
    char *end = b->_buf + b->capacity;
    char *live = b->bytes, *live_end = b->bytes + b->size;
    if (live < b->_buf || live_end > end)
        return;
    sodium_memzero(b->_buf, (size_t)(live - b->_buf));
    sodium_memzero(live_end, (size_t)(end - live_end));
}
