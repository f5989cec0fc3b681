/*
 * metrics_server.h - the /metrics listener: its own socket and thread, HTTP/1.1, one
 * connection at a time, GET /metrics only. Kept off the API's listeners and event loops so
 * a scrape never waits behind client traffic and an API client never reaches it; it holds no
 * secret and reads only the collectors' figures. Off unless --metrics-listen is given.
 */
#ifndef TOKEND_HTTP_METRICS_SERVER_H
#define TOKEND_HTTP_METRICS_SERVER_H

#include "tokend/core/common.h"
#include "tokend/core/metrics.h"

#define TOK_METRICS_REQUEST_MAX 4096u /* a scrape's request head */
#define TOK_METRICS_IO_TIMEOUT_MS 2000

struct tok_metrics_server;

/**
 * Binds addr ("127.0.0.1:9464", "[::1]:9464") and starts the thread. reg must outlive the
 * server. Writes a one-line reason into why: TOK_ERR_INPUT (address), TOK_ERR_IO (socket),
 * TOK_ERR_NOMEM.
 */
TOK_MUST_CHECK tok_status tok_metrics_server_start(const char *addr,
                                                   const struct tok_metrics_registry *reg,
                                                   struct tok_metrics_server **out, char *why,
                                                   size_t why_len);

/** Stops the thread, closes the socket, frees; *s becomes NULL. Safe on NULL. */
void tok_metrics_server_stop(struct tok_metrics_server **s);

#endif
