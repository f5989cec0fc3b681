/*
 * recon_owner.h - this process's claim on the reconciliation runs it starts, and the reaper
 * of runs whose process is gone (issue #15, finding 12; sql/018_recon_owner.sql).
 *
 * A run is done by a thread of the process that took the POST; if that process dies (kill -9,
 * OOM, a host restart) nothing finishes it, and before this it stayed 'running' for ever. Each
 * tokend process therefore picks a random 63-bit owner key at start-up and holds
 * pg_advisory_lock(key) on a connection of its own for its whole life; every run it starts
 * records the key. PostgreSQL releases a session's advisory locks when the session ends, which
 * it does when the process dies, so a run whose owner key is not locked has no one working on
 * it. ledger.reap_reconciliation_runs() fails exactly those runs ("interrupted by restart",
 * audited); a run of a live process, this one or another sharing the database, is never
 * touched. No heartbeat, no clock, no timeout to tune.
 *
 * The reaper runs once before the event loops start (so a restarted tokend has failed its
 * predecessor's runs before it answers a request) and then every TOK_RECON_REAP_INTERVAL_MS on
 * a thread of its own (so when one of several processes dies and is not restarted, the others
 * fail its runs). The same thread keeps the connection: when PostgreSQL restarts, the lock goes
 * with the session, and the thread reconnects and takes the same key again.
 */
#ifndef TOKEND_RECON_OWNER_H
#define TOKEND_RECON_OWNER_H

#include "tokend/core/common.h"

#define TOK_RECON_REAP_INTERVAL_MS 5000u
#define TOK_RECON_OWNER_TRIES 8 /* random keys tried at start-up if one is taken */
#define TOK_RECON_OWNER_TEXT_MAX 24 /* the key in decimal, with its NUL */

struct tok_recon_owner;

/**
 * Connects (blocking: call before the loops start), takes a fresh owner key's lock, fails the
 * runs of owners that are gone (a failure there is logged, not fatal: the thread retries) and
 * starts the thread. conninfo is copied into locked memory. TOK_ERR_DB with a one-line reason
 * in why (never the conninfo) when the database cannot be reached or no key can be locked;
 * TOK_ERR_NOMEM; TOK_ERR_INTERNAL when the thread cannot start.
 */
TOK_MUST_CHECK tok_status tok_recon_owner_new(const char *conninfo, struct tok_recon_owner **out,
                                              char *why, size_t why_len);

/** The owner key as decimal text, for the run's `owner` column. Valid until _free. */
const char *tok_recon_owner_key(const struct tok_recon_owner *o);

/**
 * Stops the thread and closes the connection, which releases the lock: the process's runs
 * still 'running' then belong to no one. Sets *o to NULL; NULL is ignored.
 */
void tok_recon_owner_free(struct tok_recon_owner **o);

#endif
