/*
 * auth.h - API keys: `Authorization: Bearer <key>` to a principal (tenant,
 * scopes, mode), checked without a database round trip on the hot path.
 *
 * Each event-loop thread keeps its own cache of principals (no lock shared
 * between threads), keyed by the keyed hash of the secret and refreshed
 * after TOK_AUTH_CACHE_TTL_MS, so a revoked key stops working within that
 * time. A miss is one call of vault.authenticate() on a database thread.
 */
#ifndef TOKEND_AUTH_H
#define TOKEND_AUTH_H

#include "tokend/core/common.h"
#include "tokend/vault/accounts.h"
#include "tokend/http/http.h"

#define TOK_AUTH_CACHE_TTL_MS 3000
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
    struct tok_gateway_account accounts[TOK_ACCOUNTS_MAX]; /* this mode's gateways, by priority */
    unsigned naccounts;
};

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
