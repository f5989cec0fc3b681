/*
 * httpc.h - the outbound HTTPS client that gateway adapters use (issue #5).
 *
 * DESIGN (same shape as db.h): the event loops never call libcurl.
 *   - A loop fills a tok_httpc_request and submits it; the request goes onto a
 *     locked queue and the curl thread is woken with curl_multi_wakeup.
 *   - One curl thread drives ONE multi handle: every transfer runs concurrently
 *     on it and connections (HTTP/1.1 keep-alive or one HTTP/2 connection per
 *     gateway host) are reused across requests and tenants.
 *   - A finished request goes back to the loop that submitted it with
 *     h2o_multithread_send_message(reply_to); its `done` runs there.
 *
 * Transport policy, not configurable: HTTPS only (CURLOPT_PROTOCOLS_STR "https"),
 * TLS >= 1.2, peer and host name verification always on, no redirects, no
 * proxy, no content decoding, response bodies bounded (TOK_HTTPC_RESPONSE_MAX).
 * Configurable: the CA file (tests trust the simulator's certificate with it),
 * the connect timeout, the total timeout and the connections per host.
 *
 * Connections: HTTP/2 where the gateway offers it (ALPN; Stripe and Adyen do):
 * concurrent calls to one host share a connection, TOK_HTTPC_STREAMS at a time
 * (CURLOPT_PIPEWAIT: a new call waits for a connection being set up rather than
 * opening its own), so 1,000 calls in flight need ~10 connections. At most
 * max_connections per host: past that (HTTP/1.1: one call per connection) calls
 * queue inside libcurl until a connection is free. At most max_inflight calls
 * run at once over all hosts; later ones wait in tokend, in order (a transfer
 * costs libcurl ~30 KiB, a waiting call only its request).
 *
 * Secrets: request bodies (PANs at tokenisation), header values (API keys) and
 * response bodies (gateway references) live in secmem memory (secmem.h) owned by
 * the request and are wiped when the transfer ends (tok_httpc_request_free
 * wipes again). The body is handed to libcurl with CURLOPT_POSTFIELDS (by
 * pointer; libcurl still copies it into its request buffer over HTTP/1.1 and
 * through its upload buffer over HTTP/2, see below). Buffers we cannot wipe,
 * listed for SECURITY.md:
 *   - libcurl's copies of header lines and, over HTTP/1.1, of a small body
 *     (its request buffer), its upload buffer (the body, over HTTP/2), and the
 *     bytes it hands to OpenSSL;
 *   - OpenSSL's TLS record buffers (the plaintext of a record is encrypted in
 *     place; OpenSSL frees its buffers with OPENSSL_clear_free only for some
 *     of them);
 *   - the kernel's socket buffers (they hold ciphertext only).
 * Nothing here logs a URL's query, a header or a body.
 */
#ifndef TOKEND_HTTPC_H
#define TOKEND_HTTPC_H

#include "tokend/core/common.h"
#include "tokend/core/config.h" /* TOK_HTTPC_MAX_CONNECTIONS_*, TOK_HTTPC_MAX_INFLIGHT_* */

#include <h2o.h>
#include <h2o/multithread.h>

#define TOK_HTTPC_URL_MAX 512
/* largest request body: a gateway call's is < 1 kB (check_gateway_*: the largest we build) */
#define TOK_HTTPC_BODY_MAX 2048u
/**
 * Where a gateway adapter called from a loop thread sends its HTTP requests (httpc) and
 * gets its answers (reply_to: that thread's h2o_multithread_receiver_t).
 */
struct tok_gateway_stats;
struct tok_gateway_env {
    struct tok_httpc *httpc;
    void *reply_to;
    struct tok_gateway_stats *stats; /* gateway_metrics.h; NULL = calls not counted */
};

#define TOK_HTTPC_HEADERS_MAX 2048u             /* all extra header lines together */
#define TOK_HTTPC_RESPONSE_MAX (256u * 1024u)   /* a larger response is TOK_HTTPC_TOO_LARGE */
/* first response buffer (doubles as needed): body, headers and this fill one 8 KiB secmem
 * block with its 16-byte header */
#define TOK_HTTPC_RESPONSE_START (4096u - 16u)
/* libcurl's per-transfer receive buffer (default 16 KiB): gateway answers are 0.5-3 kB */
#define TOK_HTTPC_DOWNLOAD_BUFFER 4096L
#define TOK_HTTPC_STREAMS 100u /* streams at once per HTTP/2 connection (the server may lower it) */
#define TOK_HTTPC_WHY_MAX 256 /* libcurl's CURL_ERROR_SIZE: its error buffer */
#define TOK_HTTPC_CONNECT_TIMEOUT_DEFAULT_MS 2000u
#define TOK_HTTPC_TIMEOUT_DEFAULT_MS 15000u
#define TOK_HTTPC_TIMEOUT_MAX_MS 600000u

struct tok_httpc;
struct tok_httpc_request;

/** How a transfer ended. Only TOK_HTTPC_OK carries an HTTP status and body. */
enum tok_httpc_result {
    TOK_HTTPC_OK = 0,     /* a whole response arrived (any HTTP status) */
    TOK_HTTPC_TIMEOUT,    /* connect or total timeout */
    TOK_HTTPC_CONNECT,    /* name resolution, connection refused or reset, no answer */
    TOK_HTTPC_TLS,        /* handshake failed, certificate untrusted or for another name */
    TOK_HTTPC_TOO_LARGE,  /* the response exceeded TOK_HTTPC_RESPONSE_MAX */
    TOK_HTTPC_OTHER,      /* anything else (bad URL, refused protocol, out of memory) */
};

/** Runs on the loop thread that submitted the request, once. */
typedef void (*tok_httpc_done_fn)(struct tok_httpc_request *req);

struct tok_httpc_config {
    const char *ca_file;         /* PEM bundle to trust; NULL or "" = the system store */
    unsigned connect_timeout_ms; /* 0 = TOK_HTTPC_CONNECT_TIMEOUT_DEFAULT_MS */
    unsigned timeout_ms;         /* whole transfer; 0 = TOK_HTTPC_TIMEOUT_DEFAULT_MS */
    unsigned max_connections;    /* per host; 0 = TOK_HTTPC_MAX_CONNECTIONS_DEFAULT */
    unsigned max_inflight;       /* calls at once, all hosts; 0 = TOK_HTTPC_MAX_INFLIGHT_DEFAULT */
};

struct tok_httpc_request {
    h2o_multithread_message_t super; /* must be first: the reply queue links it */
    h2o_multithread_receiver_t *reply_to;
    tok_httpc_done_fn done;
    void *data; /* the caller's */
    /* request */
    bool post;                      /* POST (with body) or GET */
    bool del;                       /* DELETE (no body; wins over post) */
    char url[TOK_HTTPC_URL_MAX];    /* "https://host[:port]/path" */
    struct tok_buf body;            /* secret; wiped when the transfer ends */
    struct tok_buf headers;         /* secret: "Name: value" lines, each NUL-terminated */
    /* response (valid in done) */
    enum tok_httpc_result result;
    long status;                    /* HTTP status when result is TOK_HTTPC_OK */
    bool sent;                      /* the request was (at least partly) sent: a timeout or
                                       reset after this is ambiguous (the gateway may have
                                       acted on it) */
    struct tok_buf response;        /* secret; the body */
    char why[TOK_HTTPC_WHY_MAX];    /* libcurl's reason on failure (no secrets), for logs */
    /* internal to httpc.c */
    uint8_t *slab; /* one secmem block: body, headers, first response buffer */
    void *easy;
    void *slist;
    bool too_large;
    struct tok_httpc_request *next;
};

/**
 * Starts the curl thread (call before the loops start). TOK_ERR_INPUT: a
 * timeout outside 1..TOK_HTTPC_TIMEOUT_MAX_MS, max_connections above
 * TOK_HTTPC_MAX_CONNECTIONS_MAX, max_inflight above TOK_HTTPC_MAX_INFLIGHT_MAX or a CA
 * file that cannot be read;
 * TOK_ERR_NOMEM; TOK_ERR_INTERNAL when libcurl cannot start or lacks HTTPS.
 * *out owns the client: pair with tok_httpc_free.
 */
TOK_MUST_CHECK tok_status tok_httpc_new(const struct tok_httpc_config *cfg,
                                        struct tok_httpc **out);

/**
 * Stops the thread (transfers still running are abandoned: their `done` never
 * runs; call after the loops stopped), frees the client, sets *c = NULL.
 * NULL-safe.
 */
void tok_httpc_free(struct tok_httpc **c);

/**
 * An empty request with secret body, header and first response buffers
 * (TOK_HTTPC_BODY_MAX, TOK_HTTPC_HEADERS_MAX and TOK_HTTPC_RESPONSE_START bytes in one
 * secmem block: guarded, locked, recycled per thread without a system call). TOK_ERR_NOMEM.
 */
TOK_MUST_CHECK tok_status tok_httpc_request_new(struct tok_httpc_request **out);

/** Wipes every buffer of the request and releases it; sets *req = NULL. NULL-safe. */
void tok_httpc_request_free(struct tok_httpc_request **req);

/**
 * Sets the URL: base (e.g. "https://api.stripe.com", a trailing '/' is
 * dropped) followed by path (starting with '/'). TOK_ERR_INPUT: base is not
 * https:// or either part holds a control character, space or '#';
 * TOK_ERR_BOUNDS: too long.
 */
TOK_MUST_CHECK tok_status tok_httpc_request_url(struct tok_httpc_request *req, const char *base,
                                                const char *path);

/**
 * Adds a header line "name: value". TOK_ERR_INPUT: CR, LF or NUL in either,
 * ':' in name, empty name. TOK_ERR_BOUNDS: the header buffer is full.
 */
TOK_MUST_CHECK tok_status tok_httpc_request_header(struct tok_httpc_request *req,
                                                   const char *name, struct tok_slice value);

/**
 * Queues the request (takes ownership until `done` runs, when it is the
 * caller's again: free it with tok_httpc_request_free). Thread-safe, never
 * blocks on the network. reply_to, done and url must be set. When the
 * client is stopping the request completes with TOK_HTTPC_OTHER.
 */
void tok_httpc_submit(struct tok_httpc *c, struct tok_httpc_request *req);

/** The receiver callback loops register for their queue: runs each request's `done`. */
void tok_httpc_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/** Static name of a result ("timeout", "connect", "tls", ...), for logs. */
const char *tok_httpc_result_name(enum tok_httpc_result r);

/**
 * Classifies a libcurl result code (CURLcode as int) and whether the write
 * callback refused a too-large body. Exposed for unit tests.
 */
enum tok_httpc_result tok_httpc_classify(int curl_code, bool too_large);

#endif
