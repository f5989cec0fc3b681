/*
 * auth.h - API keys: `Authorization: Bearer <key>` to a principal (tenant,
 * scopes, mode), checked without a database round trip on the hot path.
 *
 * Each event-loop thread keeps its own cache of principals (no lock shared
 * between threads), keyed by the keyed hash of the secret. A miss is one call
 * of vault.authenticate() on a database thread.
 *
 * Revocation (issue #15, finding 8): a change to a key row makes PostgreSQL
 * notify channel TOK_AUTH_NOTIFY_CHANNEL with the key's id (sql/016); a
 * listener thread (store/listen.h) hands it to tok_auth_on_key_notify, which
 * bumps a generation counter shared by every loop (struct tok_auth_epochs).
 * A cached principal loaded before the bump is stale on its next use, on every
 * thread at once, with no message to the loops. When the listener's
 * connection comes back after a drop, a notification may have been missed:
 * tok_auth_on_listen_reset makes every cached principal stale. The TTL
 * (--auth-cache-ttl-ms, default 3 s) is only the backstop for a notification
 * lost without the connection dropping.
 */
#ifndef TOKEND_AUTH_H
#define TOKEND_AUTH_H

#include "tokend/core/common.h"
#include "tokend/vault/accounts.h"
#include "tokend/http/http.h"
#include "tokend/http/ratelimit.h"

#define TOK_AUTH_CACHE_TTL_MS 3000 /* when the app has no configuration (cfg->auth_cache_ttl_ms) */
#define TOK_AUTH_EPOCH_SLOTS 256   /* generation counters, one per hash bucket of key ids */
#define TOK_AUTH_NOTIFY_CHANNEL "tokend_keys"
#define TOK_AUTH_CACHE_SLOTS 512
#define TOK_AUTH_ORIGINS_MAX 8
#define TOK_AUTH_ORIGIN_MAX 256
#define TOK_ID_MAX 48

enum tok_scope {
    TOK_SCOPE_TOKENS_WRITE = 1u << 0,
    TOK_SCOPE_TOKENS_READ = 1u << 1,
    TOK_SCOPE_CHARGES_WRITE = 1u << 2,
    TOK_SCOPE_REPORTS_READ = 1u << 3,
    TOK_SCOPE_ADMIN = 1u << 4,
    /*
     * POST /v1/tokens and nothing else: the one scope of a publishable key, which sits in
     * web pages (issue #15). tokens:write also redacts; a page's script must not.
     */
    TOK_SCOPE_TOKENS_CREATE = 1u << 5,
};

struct tok_tenant_keys;

/** Who is calling. Owned by the cache; a request holds a reference until it ends. */
struct tok_principal {
    unsigned refs;
    uint64_t loaded_ms;
    uint64_t epoch; /* tok_auth_epochs' generation read before the key was looked up */
    uint8_t hash[32];
    char key_id[TOK_ID_MAX];
    char tenant_id[TOK_ID_MAX];
    uint32_t scopes;
    bool publishable;
    bool livemode;
    bool revoked;
    uint8_t bin_mode;
    bool cvc_optional;
    char origins[TOK_AUTH_ORIGINS_MAX][TOK_AUTH_ORIGIN_MAX];
    unsigned norigins;
    struct tok_tenant_keys *keys; /* the tenant's active keys, unwrapped, locked memory */
    struct tok_tenant_keys *keys_prev; /* the 'previous' version during a data-key rotation
                                        * (sql/019), else NULL: rows not yet re-sealed */
    struct tok_gateway_account accounts[TOK_ACCOUNTS_MAX]; /* this mode's gateways, by priority */
    unsigned naccounts;
};

/**
 * The principal's keys of key version `version` (active or previous), borrowed from p; NULL
 * when it holds neither (a row of a version retired since, or of a rotation it has not seen).
 */
const struct tok_tenant_keys *tok_principal_keys(const struct tok_principal *p, uint32_t version);

struct tok_auth_cache;

/** A cache for one loop thread. TOK_ERR_NOMEM. */
TOK_MUST_CHECK tok_status tok_auth_cache_new(struct tok_auth_cache **out);
void tok_auth_cache_free(struct tok_auth_cache **c);

/** Parses "tokens:write" etc. into a scope bit; 0 when unknown. */
uint32_t tok_scope_parse(struct tok_slice name);

/** Continuation run once the request is authenticated and authorised. */
typedef void (*tok_authed_fn)(struct tok_req *r);

/**
 * Authenticates r and checks it holds `scope`, then runs next(r) (at once
 * on a cache hit, later on a miss). On failure it answers 401
 * `unauthenticated`, 403 `forbidden` / `origin_not_allowed` /
 * `secret_key_in_browser` itself, and records the refusal in the audit log.
 * r->principal is set before next runs.
 */
void tok_auth_require(struct tok_req *r, uint32_t scope, tok_authed_fn next);

/**
 * tok_auth_require, then one token of class `cls` from the key's bucket (ratelimit.h):
 * secret keys have a bucket per key, publishable keys one per key and client address (a
 * publishable key is public: one client must not spend every other checkout's budget). When
 * the bucket is empty it answers 429 `rate_limited` with Retry-After (whole seconds) and
 * logs the refusal (class, key id, never the secret). TOK_RL_NONE limits nothing.
 */
void tok_auth_require_limited(struct tok_req *r, uint32_t scope, enum tok_rl_class cls,
                              tok_authed_fn next);

/*
 * Failed authentications (every 401 of this module) are counted per client address in the
 * TOK_RL_AUTH_FAIL class. Once an address has spent its budget, its requests get 429
 * `rate_limited` before any key look-up, unless their key is cached as valid on the loop: a
 * legitimate client behind the same address keeps working, and an attacker's unknown keys
 * cost neither a database query nor an audit row.
 */

/** Generation counters shared by every loop thread (see the top of this file). */
struct tok_auth_epochs;

/** TOK_ERR_NOMEM. */
TOK_MUST_CHECK tok_status tok_auth_epochs_new(struct tok_auth_epochs **out);
void tok_auth_epochs_free(struct tok_auth_epochs **e);

/**
 * A key row changed (payload: its id; "*": any key): principals of that key cached before
 * now are stale on every thread. Thread-safe; `epochs` is a struct tok_auth_epochs (void *
 * so it fits store/listen.h's callback). Ignores a payload that is no key id.
 */
void tok_auth_on_key_notify(void *epochs, const char *payload);

/** Every cached principal is stale (the listener reconnected). Thread-safe. */
void tok_auth_on_listen_reset(void *epochs);

/** Notifications and flushes seen so far, for logs and metrics. */
void tok_auth_epochs_stats(const struct tok_auth_epochs *e, uint64_t *keys_changed,
                           uint64_t *flushes);

/**
 * The header the card element (elements.h) sends with its same-origin POST /v1/tokens: the
 * merchant origin the page was rendered for. Honoured only when Origin is tokend's own, and
 * checked against the key's origins like an Origin header (docs/elements.md).
 */
#define TOK_AUTH_PARENT_ORIGIN_HEADER "tokend-parent-origin"

/**
 * Looks up a publishable key that arrives outside an Authorization header (the element
 * page's ?key=) and runs next(r) with r->principal set when it exists and is not revoked.
 * Answers 401 `unauthenticated` itself for a malformed, unknown, revoked or secret key (a
 * secret key is refused before any lookup), 503 when the database cannot answer. Checks no
 * scope and no origin: the caller does, with tok_auth_origin_allowed. `key` is borrowed.
 */
void tok_auth_lookup_publishable(struct tok_req *r, struct tok_slice key, tok_authed_fn next);

/** True when origin equals one of p's allowed origins (stored normalised, compared exactly). */
bool tok_auth_origin_allowed(const struct tok_principal *p, struct tok_slice origin);

/**
 * Appends an audit event (fire and forget, group-committed like everything
 * else). tenant_id, actor, object may be NULL. Copies its arguments.
 */
void tok_audit_async(struct tok_req *r, const char *tenant_id, const char *actor,
                     const char *action, const char *object);

/** The audit insert for use inside a database job (same transaction as the change). */
TOK_MUST_CHECK tok_status tok_audit_insert(struct tok_db_conn *conn, const char *tenant_id,
                                           const char *actor, const char *action,
                                           const char *object, const char *request_id);

#endif
