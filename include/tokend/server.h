/*
 * server.h - the process: one h2o event loop per thread, each with its own
 * SO_REUSEPORT listeners (so the kernel spreads connections and no lock is
 * shared on the accept path), plus the database threads of db.h.
 */
#ifndef TOKEND_SERVER_H
#define TOKEND_SERVER_H

#include "tokend/core/common.h"
#include "tokend/http/app.h"

/**
 * Builds the h2o configuration, the TLS context (TLS >= 1.2, AEAD ciphers,
 * ALPN h2 then http/1.1) and binds the listeners. Writes a one-line reason
 * into why on failure (TOK_ERR_INPUT for configuration, TOK_ERR_IO for
 * sockets and files).
 */
TOK_MUST_CHECK tok_status tok_server_init(struct tok_app *app, char *why, size_t why_len);

/** The metrics collector of the requests every loop answered (core/metrics.h); ctx: the app. */
void tok_server_collect(void *ctx, struct tok_metrics_out *o);

/** Starts the loop threads, waits for SIGINT/SIGTERM, stops them, returns. */
TOK_MUST_CHECK tok_status tok_server_run(struct tok_app *app);

#endif
