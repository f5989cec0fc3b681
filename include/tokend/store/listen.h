/*
 * listen.h - a thread with its own PostgreSQL connection that LISTENs on one channel and
 * hands every notification's payload to a callback (issue #15, finding 8: key revocations
 * reach every loop thread at once; sql/016 sends them).
 *
 * The store layer knows nothing of what a payload means: the caller's callbacks do (the
 * vault's principal caches, auth.h). If the connection drops, notifications sent meanwhile
 * are lost, so after every reconnection (and LISTEN again) `on_reset` runs: the caller
 * forgets whatever a missed notification could have changed. The thread retries every
 * TOK_LISTEN_RETRY_MS while the database is away and logs the loss and the return.
 */
#ifndef TOKEND_STORE_LISTEN_H
#define TOKEND_STORE_LISTEN_H

#include "tokend/core/common.h"

#define TOK_LISTEN_RETRY_MS 250
#define TOK_LISTEN_CHANNEL_MAX 63 /* PostgreSQL's identifier length */
/* the listener's application_name in pg_stat_activity (tests find its backend by it) */
#define TOK_LISTEN_APPLICATION_NAME "tokend_listen"

/** A notification's payload (NUL-terminated, borrowed for the call). Runs on the listener thread. */
typedef void (*tok_listen_notify_fn)(void *ctx, const char *payload);
/** The connection came back: notifications may have been missed. Runs on the listener thread. */
typedef void (*tok_listen_reset_fn)(void *ctx);

struct tok_listen_config {
    const char *conninfo; /* borrowed, copied into locked memory; secret */
    const char *channel;  /* [a-z_]{1,63} */
    tok_listen_notify_fn on_notify;
    tok_listen_reset_fn on_reset;
    void *ctx; /* passed to both; must outlive the listener */
};

struct tok_listener;

/**
 * Connects and LISTENs (blocking: call before the loops start), then starts the thread.
 * TOK_ERR_INPUT for a bad channel name, TOK_ERR_DB with a one-line reason (never the
 * conninfo) when the database refuses, TOK_ERR_NOMEM, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_listener_new(const struct tok_listen_config *cfg,
                                           struct tok_listener **out, char *why, size_t why_len);

/** Stops the thread, closes its connection and frees *l. NULL is ignored. */
void tok_listener_free(struct tok_listener **l);

#endif
