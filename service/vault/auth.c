/*
 * auth.c - API-key authentication, scopes, origins, the per-thread principal
 * cache and the audit helpers every refusal and action goes through.
 */
#include "tokend/vault/auth.h"
#include "tokend/core/encoding.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"
#include "tokend/http/app.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROBE 8
#define PENDING_MAX 256 /* look-ups in flight per loop that later requests may wait on */

struct auth_call;

struct tok_auth_cache {
    struct tok_principal *slots[TOK_AUTH_CACHE_SLOTS];
    /* Single flight: the key look-ups in flight on this loop, one per key hash. A request
     * whose key is being looked up already waits for that look-up instead of starting its
     * own, so a burst of requests with a cold key costs one query and one key unwrap, not
     * one each (at tokend's start, 1,000 concurrent requests held 1,000 unwrapped copies). */
    struct auth_call *pending;
    unsigned npending;
};

static const struct {
    const char *name;
    uint32_t bit;
} scope_names[] = {
    {"tokens:write", TOK_SCOPE_TOKENS_WRITE}, {"tokens:read", TOK_SCOPE_TOKENS_READ},
    {"charges:write", TOK_SCOPE_CHARGES_WRITE}, {"reports:read", TOK_SCOPE_REPORTS_READ},
    {"admin", TOK_SCOPE_ADMIN}, {"tokens:create", TOK_SCOPE_TOKENS_CREATE},
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t tok_scope_parse(struct tok_slice name)
{
    for (size_t i = 0; i < TOK_ARRAY_LEN(scope_names); i++)
        if (tok_slice_eq(name, scope_names[i].name))
            return scope_names[i].bit;
    return 0;
}

static void principal_unref(struct tok_principal *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    tok_accounts_wipe(p->accounts, p->naccounts);
    tok_tenant_keys_free(&p->keys);
    free(p);
}

/* A request that found its key's look-up already in flight on its loop. */
struct auth_waiter {
    struct tok_call watch; /* tok_http_watch: watch.r is NULL once the request is gone */
    struct auth_waiter *next;
    bool lookup_only;
    uint32_t scope;
    tok_authed_fn next_fn;
};

struct auth_call {
    struct tok_call call; /* first */
    bool lookup_only; /* tok_auth_lookup_publishable: no scope or origin check here */
    uint32_t scope;
    tok_authed_fn next;
    uint8_t hash[32];
    bool found;
    struct tok_principal *p; /* filled on the DB thread, keys unwrapped on the loop */
    uint32_t key_version;
    uint8_t dek[TOK_KEYRING_WRAPPED_LEN], fpk[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf dek_buf, fpk_buf;
    struct tok_accounts_raw accounts; /* sealed; opened on the loop with the tenant keys */
    struct tok_auth_cache *cache;     /* while in its pending list, else NULL */
    struct auth_call *pending_next;
    struct auth_waiter *waiters;
    bool settled;
};

static struct auth_call *pending_find(struct tok_auth_cache *c, const uint8_t hash[32])
{
    for (struct auth_call *a = c->pending; a != NULL; a = a->pending_next)
        if (sodium_memcmp(a->hash, hash, 32) == 0)
            return a;
    return NULL;
}

static void pending_add(struct tok_auth_cache *c, struct auth_call *a)
{
    if (c->npending >= PENDING_MAX)
        return; /* it runs alone: nobody waits on it */
    a->cache = c;
    a->pending_next = c->pending;
    c->pending = a;
    c->npending++;
}

static void pending_remove(struct auth_call *a)
{
    struct tok_auth_cache *c = a->cache;
    if (c == NULL)
        return;
    for (struct auth_call **pp = &c->pending; *pp != NULL; pp = &(*pp)->pending_next) {
        if (*pp == a) {
            *pp = a->pending_next;
            c->npending--;
            break;
        }
    }
    a->cache = NULL;
    a->pending_next = NULL;
}

/* The loop is going away: calls still in flight must not reach its freed cache. */
static void pending_detach_all(struct tok_auth_cache *c)
{
    while (c->pending != NULL)
        pending_remove(c->pending);
}

tok_status tok_auth_cache_new(struct tok_auth_cache **out)
{
    *out = calloc(1, sizeof **out);
    return *out != NULL ? TOK_OK : TOK_ERR_NOMEM;
}

void tok_auth_cache_free(struct tok_auth_cache **c)
{
    if (c == NULL || *c == NULL)
        return;
    for (size_t i = 0; i < TOK_AUTH_CACHE_SLOTS; i++)
        principal_unref((*c)->slots[i]);
    pending_detach_all(*c);
    free(*c);
    *c = NULL;
}

static size_t slot_of(const uint8_t hash[32])
{
    return ((size_t)hash[0] | (size_t)hash[1] << 8) % TOK_AUTH_CACHE_SLOTS;
}

static struct tok_principal *cache_get(struct tok_auth_cache *c, const uint8_t hash[32])
{
    size_t s = slot_of(hash);
    uint64_t now = now_ms();
    for (size_t i = 0; i < PROBE; i++) {
        struct tok_principal *p = c->slots[(s + i) % TOK_AUTH_CACHE_SLOTS];
        if (p != NULL && sodium_memcmp(p->hash, hash, 32) == 0)
            return now - p->loaded_ms < TOK_AUTH_CACHE_TTL_MS ? p : NULL;
    }
    return NULL;
}

/* Takes the caller's reference. Replaces the same key or the oldest entry in the window. */
static void cache_put(struct tok_auth_cache *c, struct tok_principal *np)
{
    size_t s = slot_of(np->hash), victim = s;
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < PROBE; i++) {
        size_t k = (s + i) % TOK_AUTH_CACHE_SLOTS;
        struct tok_principal *p = c->slots[k];
        if (p == NULL || sodium_memcmp(p->hash, np->hash, 32) == 0) {
            victim = k;
            break;
        }
        if (p->loaded_ms < oldest) {
            oldest = p->loaded_ms;
            victim = k;
        }
    }
    principal_unref(c->slots[victim]);
    c->slots[victim] = np;
}

/* ---- audit ----------------------------------------------------------------- */

static const struct tok_sql audit_sql = {
    "audit_insert",
    "INSERT INTO audit.events (tenant_id, actor, action, object, request_id) "
    "VALUES ($1, $2, $3, $4, $5)",
    5};

tok_status tok_audit_insert(struct tok_db_conn *conn, const char *tenant_id, const char *actor,
                            const char *action, const char *object, const char *request_id)
{
    const char *vals[5] = {tenant_id, actor, action, object, request_id};
    /* no rows to read: checked with the job's next statement or at its end */
    return tok_db_exec_deferred(conn, &audit_sql, vals, NULL, NULL);
}

struct audit_job {
    struct tok_db_job job; /* first */
    char tenant_id[TOK_ID_MAX], actor[TOK_ID_MAX], action[48], object[TOK_ID_MAX],
        request_id[TOK_REQUEST_ID_LEN + 1];
};

static tok_status audit_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct audit_job *a = (struct audit_job *)job;
    if (a->tenant_id[0] != '\0')
        TOK_GUARD(tok_db_set_tenant(conn, a->tenant_id));
    return tok_audit_insert(conn, a->tenant_id[0] ? a->tenant_id : NULL, a->actor, a->action,
                            a->object[0] ? a->object : NULL, a->request_id);
}

static void audit_done(struct tok_db_job *job)
{
    if (job->status != TOK_OK)
        tok_log_err("%s: audit event lost (%s)", __func__, tok_status_name(job->status));
    free(job);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src == NULL ? 0 : strnlen(src, cap - 1);
    tok_copy(dst, src == NULL ? "" : src, n);
    dst[n] = '\0';
}

void tok_audit_async(struct tok_req *r, const char *tenant_id, const char *actor,
                     const char *action, const char *object)
{
    struct audit_job *a = calloc(1, sizeof *a);
    if (a == NULL) {
        tok_log_err("%s: %s: out of memory, audit event lost", __func__, r->id);
        return;
    }
    copy_str(a->tenant_id, sizeof a->tenant_id, tenant_id);
    copy_str(a->actor, sizeof a->actor, actor != NULL ? actor : "anonymous");
    copy_str(a->action, sizeof a->action, action);
    copy_str(a->object, sizeof a->object, object);
    copy_str(a->request_id, sizeof a->request_id, r->id);
    a->job.exec = audit_exec;
    a->job.done = audit_done;
    a->job.reply_to = &r->worker->db_replies;
    tok_db_submit(r->app->db, &a->job);
}

/* ---- authentication ----------------------------------------------------------------- */

static const struct tok_sql authenticate_sql = {
    "authenticate",
    "SELECT key_id, tenant_id, publishable, livemode, array_to_string(scopes, ' '), "
    "array_to_string(origins, ' '), revoked, bin_mode, cvc_optional, key_version, "
    "encode(wrapped_dek, 'hex'), encode(wrapped_fpk, 'hex') FROM vault.authenticate($1)",
    1};

static void on_principal_dispose(void *p)
{
    struct tok_principal **slot = p;
    principal_unref(*slot);
}

static void refuse(struct tok_req *r, int status, const char *code, const char *detail,
                   const struct tok_principal *p)
{
    tok_audit_async(r, p != NULL ? p->tenant_id : NULL, p != NULL ? p->key_id : NULL,
                    status == 401 ? "auth.refused" : "auth.forbidden", r->route);
    tok_log_info("%s: %s: %d %s", __func__, r->id, status, code);
    if (status == 401)
        tok_http_header(r, "www-authenticate", "Bearer realm=\"tokend\"");
    tok_http_problem(r, status, code, detail, NULL);
}

bool tok_auth_origin_allowed(const struct tok_principal *p, struct tok_slice origin)
{
    for (unsigned i = 0; i < p->norigins; i++)
        if (tok_slice_eq(origin, p->origins[i]))
            return true;
    return false;
}

/* Origin is tokend's own: the request comes from a page tokend served, i.e. the card element
 * (docs/elements.md). A browser sets Origin itself, so no other site's page can claim this. */
static bool is_self_origin(const struct tok_req *r, struct tok_slice origin)
{
    const h2o_req_t *req = r->req;
    if (req->scheme == NULL)
        return false;
    size_t sl = req->scheme->name.len;
    if (origin.len != sl + 3 + req->authority.len)
        return false;
    return tok_slice_eq(tok_slice_of(origin.ptr, sl), req->scheme->name.base) &&
           tok_slice_eq(tok_slice_of(origin.ptr + sl, 3), "://") &&
           h2o_memis(origin.ptr + sl + 3, req->authority.len, req->authority.base,
                     req->authority.len);
}

static void attach(struct tok_req *r, struct tok_principal *p, tok_authed_fn next)
{
    struct tok_principal **ref =
        h2o_mem_alloc_shared(&r->req->pool, sizeof *ref, on_principal_dispose);
    *ref = p;
    p->refs++;
    r->principal = p;
    next(r);
}

static void authorise(struct tok_req *r, struct tok_principal *p, uint32_t scope, tok_authed_fn next)
{
    if (p->revoked) {
        refuse(r, 401, "unauthenticated", "the API key was revoked", p);
        return;
    }
    struct tok_slice origin;
    bool browser = tok_http_req_header(r, "origin", &origin);
    if (p->publishable) {
        /* The element page posts same-origin; the merchant origin it was rendered (and framed)
         * for comes in a header, checked against the key like any Origin. */
        bool element = browser && is_self_origin(r, origin);
        if (element && !tok_http_req_header(r, TOK_AUTH_PARENT_ORIGIN_HEADER, &origin))
            browser = false;
        if (!browser || !tok_auth_origin_allowed(p, origin)) {
            refuse(r, 403, "origin_not_allowed",
                   "this publishable key may only be used from its allowed origins", p);
            return;
        }
        uint8_t omem[TOK_AUTH_ORIGIN_MAX + 1];
        struct tok_buf ob;
        const char *ostr = NULL;
        tok_buf_init(&ob, omem, sizeof omem);
        if (!element && tok_buf_write(&ob, origin.ptr, origin.len) == TOK_OK &&
            tok_buf_cstr(&ob, &ostr) == TOK_OK) {
            tok_http_header(r, "access-control-allow-origin", ostr);
            tok_http_header(r, "vary", "Origin");
        }
    } else if (browser) {
        refuse(r, 403, "secret_key_in_browser",
               "a secret key must never be used from a browser; use a publishable key", p);
        return;
    }
    if ((p->scopes & scope) == 0) {
        refuse(r, 403, "forbidden", "the API key lacks the scope this route needs", p);
        return;
    }
    attach(r, p, next);
}

/* The element page's key lookup: the key must be a live publishable one; origins are the
 * caller's to check. */
static void lookup_done(struct tok_req *r, struct tok_principal *p, tok_authed_fn next)
{
    if (p->revoked || !p->publishable) {
        refuse(r, 401, "unauthenticated", "unknown or revoked publishable key", p);
        return;
    }
    attach(r, p, next);
}

static void split_words(const char *s, void (*each)(struct tok_principal *, struct tok_slice),
                        struct tok_principal *p)
{
    size_t i = 0, n = strlen(s);
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != ' ')
            j++;
        if (j > i)
            each(p, tok_slice_of(s + i, j - i));
        i = j + 1;
    }
}

static void add_scope(struct tok_principal *p, struct tok_slice w)
{
    p->scopes |= tok_scope_parse(w);
}

static void add_origin(struct tok_principal *p, struct tok_slice w)
{
    if (p->norigins >= TOK_AUTH_ORIGINS_MAX || w.len >= TOK_AUTH_ORIGIN_MAX)
        return;
    tok_copy(p->origins[p->norigins], w.ptr, w.len);
    p->origins[p->norigins][w.len] = '\0';
    p->norigins++;
}

static tok_status auth_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct auth_call *a = (struct auth_call *)job;
    const char *vals[1] = {(const char *)a->hash};
    const int lens[1] = {32}, fmts[1] = {1};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &authenticate_sql, vals, lens, fmts, &res));
    tok_status st = TOK_OK;
    if (PQntuples(res) == 1) {
        struct tok_principal *p = calloc(1, sizeof *p);
        if (p == NULL) {
            PQclear(res);
            return TOK_ERR_NOMEM;
        }
        copy_str(p->key_id, sizeof p->key_id, PQgetvalue(res, 0, 0));
        copy_str(p->tenant_id, sizeof p->tenant_id, PQgetvalue(res, 0, 1));
        p->publishable = PQgetvalue(res, 0, 2)[0] == 't';
        p->livemode = PQgetvalue(res, 0, 3)[0] == 't';
        split_words(PQgetvalue(res, 0, 4), add_scope, p);
        /* A publishable key may create tokens and nothing else, whatever its row says (a
         * database not yet migrated by sql/015 still lists tokens:write for it). */
        if (p->publishable)
            p->scopes = p->scopes != 0 ? TOK_SCOPE_TOKENS_CREATE : 0;
        split_words(PQgetvalue(res, 0, 5), add_origin, p);
        p->revoked = PQgetvalue(res, 0, 6)[0] == 't';
        p->bin_mode = (uint8_t)strtoul(PQgetvalue(res, 0, 7), NULL, 10);
        p->cvc_optional = PQgetvalue(res, 0, 8)[0] == 't';
        a->key_version = (uint32_t)strtoul(PQgetvalue(res, 0, 9), NULL, 10);
        tok_buf_init(&a->dek_buf, a->dek, sizeof a->dek);
        tok_buf_init(&a->fpk_buf, a->fpk, sizeof a->fpk);
        if (tok_hex_decode(tok_slice_str(PQgetvalue(res, 0, 10)), &a->dek_buf) != TOK_OK ||
            tok_hex_decode(tok_slice_str(PQgetvalue(res, 0, 11)), &a->fpk_buf) != TOK_OK)
            st = TOK_ERR_DB;
        tok_copy(p->hash, a->hash, 32);
        a->p = p;
        a->found = true;
    }
    PQclear(res);
    if (st == TOK_OK && a->found) {
        st = tok_db_set_tenant(conn, a->p->tenant_id);
        if (st == TOK_OK)
            st = tok_accounts_fetch(conn, a->p->tenant_id, a->p->livemode, &a->accounts);
    }
    return st;
}

enum auth_outcome { AUTH_OK, AUTH_UNKNOWN, AUTH_DB_DOWN, AUTH_KEYS_BAD };

/*
 * Ends a look-up on its loop, once, whether its own request is still there (r) or not:
 * takes it out of the pending list, unwraps the tenant keys and caches the principal.
 */
static enum auth_outcome settle(struct auth_call *a, const struct tok_req *r,
                                struct tok_principal **out)
{
    const char *rid = r != NULL ? r->id : "-";
    a->settled = true;
    pending_remove(a);
    *out = NULL;
    if (a->call.job.status != TOK_OK) {
        tok_log_warn("auth: %s: key lookup failed (%s)", rid, tok_status_name(a->call.job.status));
        return AUTH_DB_DOWN;
    }
    if (!a->found)
        return AUTH_UNKNOWN;
    struct tok_principal *p = a->p;
    struct tok_worker *w = a->call.worker;
    if (tok_keyring_tenant_keys_open(w->app->keyring, p->tenant_id, a->key_version,
                                     tok_buf_slice(&a->dek_buf), tok_buf_slice(&a->fpk_buf),
                                     &p->keys) != TOK_OK) {
        tok_log_err("auth: %s: cannot unwrap the keys of tenant %s (wrong master key?)", rid,
                    p->tenant_id);
        return AUTH_KEYS_BAD;
    }
    if (tok_accounts_open(p->keys, p->tenant_id, &a->accounts, p->accounts, &p->naccounts) != TOK_OK)
        p->naccounts = 0;
    a->p = NULL;
    p->refs = 1;
    p->loaded_ms = now_ms();
    cache_put(w->auth_cache, p);
    *out = p;
    return AUTH_OK;
}

static void respond(struct tok_req *r, enum auth_outcome o, struct tok_principal *p,
                    bool lookup_only, uint32_t scope, tok_authed_fn next)
{
    switch (o) {
    case AUTH_DB_DOWN:
        tok_http_problem(r, 503, "database_unavailable", "cannot check the API key right now", NULL);
        return;
    case AUTH_UNKNOWN:
        refuse(r, 401, "unauthenticated", "unknown API key", NULL);
        return;
    case AUTH_KEYS_BAD:
        tok_http_problem(r, 500, "internal_error", "the tenant's keys cannot be opened", NULL);
        return;
    case AUTH_OK:
        if (lookup_only)
            lookup_done(r, p, next);
        else
            authorise(r, p, scope, next);
        return;
    }
}

/* The requests that waited on this look-up get its outcome (the cache holds p meanwhile). */
static void serve_waiters(struct auth_call *a, enum auth_outcome o, struct tok_principal *p)
{
    struct auth_waiter *w = a->waiters;
    a->waiters = NULL;
    while (w != NULL) {
        struct auth_waiter *next = w->next;
        struct tok_req *r = tok_http_unwatch(&w->watch);
        if (r != NULL)
            respond(r, o, p, w->lookup_only, w->scope, w->next_fn);
        free(w);
        w = next;
    }
}

static void auth_result(struct tok_call *call, struct tok_req *r)
{
    struct auth_call *a = (struct auth_call *)call;
    struct tok_principal *p = NULL;
    enum auth_outcome o = settle(a, r, &p);
    respond(r, o, p, a->lookup_only, a->scope, a->next);
    serve_waiters(a, o, p);
}

static void auth_release(struct tok_call *call)
{
    struct auth_call *a = (struct auth_call *)call;
    if (!a->settled) { /* its own request went away: the waiters still get the outcome */
        struct tok_principal *p = NULL;
        enum auth_outcome o = settle(a, NULL, &p);
        serve_waiters(a, o, p);
    }
    free(a->p);
    sodium_memzero(a, sizeof *a);
    free(a);
}

static void lookup(struct tok_req *r, struct tok_slice key, uint32_t scope, tok_authed_fn next,
                   bool lookup_only);

void tok_auth_require(struct tok_req *r, uint32_t scope, tok_authed_fn next)
{
    struct tok_slice h;
    if (!tok_http_req_header(r, "authorization", &h)) {
        refuse(r, 401, "unauthenticated", "send an API key: Authorization: Bearer <key>", NULL);
        return;
    }
    static const char bearer[] = "bearer ";
    size_t bl = sizeof bearer - 1;
    bool ok = h.len > bl;
    for (size_t i = 0; ok && i < bl; i++) {
        uint8_t c = h.ptr[i];
        ok = (c | 0x20) == (uint8_t)bearer[i] || (c == ' ' && bearer[i] == ' ');
    }
    struct tok_slice key = ok ? tok_slice_of(h.ptr + bl, h.len - bl) : tok_slice_of("", 0);
    bool publishable = false, live = false;
    if (!ok || tok_api_key_parse_prefix(key, &publishable, &live) != TOK_OK) {
        refuse(r, 401, "unauthenticated", "malformed API key", NULL);
        return;
    }
    lookup(r, key, scope, next, false);
}

void tok_auth_lookup_publishable(struct tok_req *r, struct tok_slice key, tok_authed_fn next)
{
    bool publishable = false, live = false;
    if (tok_api_key_parse_prefix(key, &publishable, &live) != TOK_OK || !publishable) {
        refuse(r, 401, "unauthenticated", "send a publishable key (pk_...); never a secret key",
               NULL);
        return;
    }
    lookup(r, key, 0, next, true);
}

static void lookup(struct tok_req *r, struct tok_slice key, uint32_t scope, tok_authed_fn next,
                   bool lookup_only)
{
    uint8_t hash[32];
    if (tok_keyring_api_key_hash(r->app->keyring, key, hash) != TOK_OK) {
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return;
    }
    struct tok_principal *p = cache_get(r->worker->auth_cache, hash);
    if (p != NULL && lookup_only) {
        lookup_done(r, p, next);
        return;
    }
    if (p != NULL) {
        authorise(r, p, scope, next);
        return;
    }
    struct tok_auth_cache *cache = r->worker->auth_cache;
    struct auth_call *inflight = pending_find(cache, hash);
    if (inflight != NULL) {
        struct auth_waiter *w = calloc(1, sizeof *w);
        if (w == NULL) {
            tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
            return;
        }
        w->lookup_only = lookup_only;
        w->scope = scope;
        w->next_fn = next;
        tok_http_watch(r, &w->watch);
        w->next = inflight->waiters;
        inflight->waiters = w;
        return;
    }
    struct auth_call *a = calloc(1, sizeof *a);
    if (a == NULL) {
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    tok_copy(a->hash, hash, sizeof hash);
    pending_add(cache, a);
    a->lookup_only = lookup_only;
    a->scope = scope;
    a->next = next;
    a->call.job.exec = auth_exec;
    a->call.on_result = auth_result;
    a->call.release = auth_release;
    tok_http_call(r, &a->call);
}
