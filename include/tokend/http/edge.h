/*
 * edge.h - connections from accept to close (issue #15, findings 4 and 5).
 *
 * h2o 2.2.5 counts no connections, keeps an HTTP/2 connection open for as long
 * as the peer sends a PING now and then, spins in its accept callback when the
 * process is out of file descriptors, and has no defence against HTTP/2 rapid
 * reset (CVE-2023-44487: its fix, upstream commit 94fbc54b6, was never
 * backported to 2.2.x, nor by Debian). This module adds them around h2o, one
 * instance per event loop, without patching it:
 *   - a cap on the loop's open connections: past it a new connection is
 *     accepted and closed at once (the peer sees a clean close, not a hang);
 *   - accept4() failing with EMFILE/ENFILE/ENOBUFS/ENOMEM pauses the listener
 *     for TOK_EDGE_ACCEPT_PAUSE_MS instead of polling it again at once;
 *   - a deadline from accept to the first complete request (TLS handshake,
 *     h2c preface, SETTINGS...; extended once by the idle period while a
 *     request's body is still arriving), and an idle deadline while no
 *     request is in flight that PINGs do not reset;
 *   - request start is deferred to the end of the loop turn, after every
 *     frame already read: a stream reset in the same read never runs its
 *     handler; each HTTP/2 request or stream that ends without a response
 *     spends one unit of the connection's reset budget, each answered one
 *     earns one back (capped), as upstream h2o does; at zero the connection
 *     is cut;
 *   - freed memory is given back to the kernel (malloc_trim) after
 *     connections close.
 * A connection is cut with shutdown(2) on its descriptor, never by closing
 * the h2o socket under h2o's feet: h2o sees the end of the stream on its next
 * read and tears down its own objects.
 */
#ifndef TOKEND_HTTP_EDGE_H
#define TOKEND_HTTP_EDGE_H

#include "tokend/core/common.h"

#include <h2o.h>

#define TOK_EDGE_LISTENERS_MAX 2
#define TOK_EDGE_ACCEPT_PAUSE_MS 100 /* listener pause after accept4() ran out of resources */
#define TOK_EDGE_SWEEP_MS 1000       /* HTTP/2 stream accounting and memory trimming */
#define TOK_EDGE_TRIM_AFTER 64       /* closed connections between two malloc_trim(0) */
#define TOK_EDGE_FD_RESERVE 128      /* descriptors kept out of the connection cap */
#define TOK_EDGE_H1_ARRIVING 64      /* buffered HTTP/1 bytes that show a request under way */

struct tok_edge;
struct tok_edge_req;

struct tok_edge_limits {
    unsigned max_conns;    /* open connections on this loop */
    unsigned handshake_ms; /* accept -> first complete request */
    unsigned idle_ms;      /* no request in flight */
    unsigned reset_budget; /* HTTP/2 requests a connection may cancel beyond those it completes */
};

/** Counters of one loop (a copy: readable from any thread, e.g. /metrics). */
struct tok_edge_stats {
    uint64_t open;
    uint64_t accepted;
    uint64_t refused;         /* past max_conns: closed at once */
    uint64_t accept_paused;   /* accept4() out of descriptors or memory */
    uint64_t handshake_cut;   /* no complete request within handshake_ms */
    uint64_t idle_cut;        /* idle_ms with no request in flight */
    uint64_t reset_cut;       /* reset budget spent */
    uint64_t cancelled;       /* requests that ended without a response */
};

/** Creates the edge of one loop; call on the loop's thread after h2o_context_init. */
TOK_MUST_CHECK tok_status tok_edge_new(h2o_context_t *ctx, const struct tok_edge_limits *lim,
                                       struct tok_edge **out);

/**
 * Starts accepting on listener (borrowed; lives as long as the loop) with actx
 * (borrowed). TOK_ERR_BOUNDS past TOK_EDGE_LISTENERS_MAX.
 */
TOK_MUST_CHECK tok_status tok_edge_listen(struct tok_edge *e, h2o_socket_t *listener,
                                          h2o_accept_ctx_t *actx);

/** Copies the loop's counters. */
void tok_edge_get_stats(const struct tok_edge *e, struct tok_edge_stats *out);

/**
 * Registers a request with its connection: counts it, stops the connection's
 * handshake and idle clocks until the request ends. Call first thing for
 * every request. The handle lives in req's pool (never NULL).
 */
struct tok_edge_req *tok_edge_req_start(h2o_req_t *req);

/**
 * Runs fn(arg) at the end of this loop turn, once every frame already read
 * has been parsed, unless the request ends first (then fn never runs).
 */
void tok_edge_req_defer(struct tok_edge_req *er, void (*fn)(void *arg), void *arg);

/** True when the request's connection is being cut (reset budget spent, deadline passed). */
bool tok_edge_req_doomed(const struct tok_edge_req *er);

/**
 * Zeroes what the request's connection no longer needs of its socket input
 * buffer: the bytes already parsed (an HTTP/2 DATA frame's copy of a card)
 * and the free space after the unparsed ones. Never touches unparsed bytes.
 * Call outside h2o's parser (from a deferred callback or a later event).
 */
void tok_edge_req_wipe_input(const struct tok_edge_req *er);

#endif
