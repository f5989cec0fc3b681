/*
 * auth.c - API-key authentication, scopes, origins, the per-thread principal
 * cache and the audit helpers every refusal and action goes through.
 */
#include "tokend/vault/auth.h"
#include "tokend/core/encoding.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"
#include "tokend/http/app.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
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

/*
 * Key changes (see auth.h). `seq` counts changes; a bucket of key ids remembers the seq of its
 * last change, `flushed` the seq of the last flush of everything. A principal records seq
 * before its key is looked up, so a change committed after that look-up's snapshot always
 * has a larger seq, whatever the order in which threads see things.
 */
struct tok_auth_epochs {
    _Atomic uint64_t seq;
    _Atomic uint64_t flushed;
    _Atomic uint64_t bucket[TOK_AUTH_EPOCH_SLOTS];
    _Atomic uint64_t keys_changed, flushes;
};

tok_status tok_auth_epochs_new(struct tok_auth_epochs **out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    *out = calloc(1, sizeof **out);
    return *out != NULL ? TOK_OK : TOK_ERR_NOMEM;
}

void tok_auth_epochs_free(struct tok_auth_epochs **e)
{
    if (e == NULL || *e == NULL)
        return;
    free(*e);
    *e = NULL;
}

static size_t epoch_bucket(const char *key_id)
{
    uint32_t h = 2166136261u; /* FNV-1a: key ids are ours, nobody picks them to collide */
    for (const char *c = key_id; *c != '\0'; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return h % TOK_AUTH_EPOCH_SLOTS;
}

static uint64_t epoch_now(const struct tok_auth_epochs *e)
{
    return e == NULL ? 0 : atomic_load(&((struct tok_auth_epochs *)(uintptr_t)e)->seq);
}

/* counters only go up, whichever of two concurrent changes stores last */
static void store_max(_Atomic uint64_t *v, uint64_t n)
{
    uint64_t cur = atomic_load(v);
    while (cur < n && !atomic_compare_exchange_weak(v, &cur, n))
        ;
}

void tok_auth_on_key_notify(void *epochs, const char *payload)
{
    struct tok_auth_epochs *e = epochs;
    if (e == NULL || payload == NULL)
        return;
    if (strcmp(payload, "*") == 0) {
        tok_auth_on_listen_reset(e);
        return;
    }
    size_t n = strnlen(payload, TOK_ID_MAX);
    if (n == 0 || n >= TOK_ID_MAX)
        return;
    uint64_t s = atomic_fetch_add(&e->seq, 1) + 1;
    store_max(&e->bucket[epoch_bucket(payload)], s);
    atomic_fetch_add_explicit(&e->keys_changed, 1, memory_order_relaxed);
}

void tok_auth_on_listen_reset(void *epochs)
{
    struct tok_auth_epochs *e = epochs;
    if (e == NULL)
        return;
    uint64_t s = atomic_fetch_add(&e->seq, 1) + 1;
    store_max(&e->flushed, s);
    atomic_fetch_add_explicit(&e->flushes, 1, memory_order_relaxed);
}

void tok_auth_epochs_stats(const struct tok_auth_epochs *e, uint64_t *keys_changed,
                           uint64_t *flushes)
{
    struct tok_auth_epochs *m = (struct tok_auth_epochs *)(uintptr_t)e;
    *keys_changed = m == NULL ? 0 : atomic_load(&m->keys_changed);
    *flushes = m == NULL ? 0 : atomic_load(&m->flushes);
}

/* No change to p's key and no flush since p was looked up. */
static bool epoch_fresh(const struct tok_app *app, const struct tok_principal *p)
{
    struct tok_auth_epochs *e = app->auth_epochs;
    if (e == NULL)
        return true;
    return atomic_load(&e->flushed) <= p->epoch &&
           atomic_load(&e->bucket[epoch_bucket(p->key_id)]) <= p->epoch;
}

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
    tok_tenant_keys_free(&p->keys_prev);
    free(p);
}

const struct tok_tenant_keys *tok_principal_keys(const struct tok_principal *p, uint32_t version)
{
    if (p == NULL)
        return NULL;
    if (p->keys != NULL && tok_tenant_keys_version(p->keys) == version)
        return p->keys;
    if (p->keys_prev != NULL && tok_tenant_keys_version(p->keys_prev) == version)
        return p->keys_prev;
    return NULL;
}

/* A request that found its key's look-up already in flight on its loop. */
struct auth_waiter {
    struct tok_call watch; /* tok_http_watch: watch.r is NULL once the request is gone */
    struct auth_waiter *next;
    bool lookup_only;
    uint32_t scope;
    enum tok_rl_class cls;
    tok_authed_fn next_fn;
};

struct auth_call {
    struct tok_call call; /* first */
    bool lookup_only; /* tok_auth_lookup_publishable: no scope or origin check here */
    uint32_t scope;
    enum tok_rl_class cls;
    tok_authed_fn next;
    uint64_t epoch; /* tok_auth_epochs' seq when the look-up started */
    uint8_t hash[32];
    bool found;
    struct tok_principal *p; /* filled on the DB thread, keys unwrapped on the loop */
    uint32_t key_version;
    uint8_t dek[TOK_KEYRING_WRAPPED_LEN], fpk[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf dek_buf, fpk_buf;
    uint32_t prev_version; /* 0: no previous version (sql/019) */
    uint8_t prev_dek[TOK_KEYRING_WRAPPED_LEN], prev_fpk[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf prev_dek_buf, prev_fpk_buf;
    struct tok_accounts_raw accounts; /* sealed; opened on the loop with the tenant keys */
    struct tok_auth_cache *cache;     /* while in its pending list, else NULL */
    struct auth_call *pending_next;
    struct auth_waiter *waiters;
    bool settled;
};

/* A look-up of this key started before a key change may answer with the key as it was:
 * a request that arrives after the change does not wait on it. */
static struct auth_call *pending_find(struct tok_auth_cache *c, const uint8_t hash[32],
                                      uint64_t epoch)
{
    for (struct auth_call *a = c->pending; a != NULL; a = a->pending_next)
        if (sodium_memcmp(a->hash, hash, 32) == 0 && a->epoch == epoch)
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

static struct tok_principal *cache_get(struct tok_auth_cache *c, const struct tok_app *app,
                                       const uint8_t hash[32])
{
    size_t s = slot_of(hash);
    uint64_t now = now_ms();
    uint64_t ttl = app->cfg != NULL ? app->cfg->auth_cache_ttl_ms : TOK_AUTH_CACHE_TTL_MS;
    for (size_t i = 0; i < PROBE; i++) {
        struct tok_principal *p = c->slots[(s + i) % TOK_AUTH_CACHE_SLOTS];
        if (p != NULL && sodium_memcmp(p->hash, hash, 32) == 0)
            return now - p->loaded_ms < ttl && epoch_fresh(app, p) ? p : NULL;
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

/* The version a data-key rotation is moving rows away from (sql/019): rows not yet re-sealed
 * open with it. Read with the tenant set, after the accounts, which may already be sealed
 * under the new version. */
static const struct tok_sql previous_keys_sql = {
    "previous_keys",
    "SELECT version, encode(wrapped_dek, 'hex'), encode(wrapped_fpk, 'hex') "
    "FROM vault.tenant_keys WHERE tenant_id = $1 AND state = 'previous' "
    "ORDER BY version DESC LIMIT 1",
    1};

static tok_status fetch_previous(struct tok_db_conn *conn, struct auth_call *a)
{
    const char *vals[1] = {a->p->tenant_id};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &previous_keys_sql, vals, NULL, NULL, &res));
    tok_status st = TOK_OK;
    if (PQntuples(res) == 1) {
        a->prev_version = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
        tok_buf_init(&a->prev_dek_buf, a->prev_dek, sizeof a->prev_dek);
        tok_buf_init(&a->prev_fpk_buf, a->prev_fpk, sizeof a->prev_fpk);
        if (tok_hex_decode(tok_slice_str(PQgetvalue(res, 0, 1)), &a->prev_dek_buf) != TOK_OK ||
            tok_hex_decode(tok_slice_str(PQgetvalue(res, 0, 2)), &a->prev_fpk_buf) != TOK_OK)
            st = TOK_ERR_DB;
    }
    PQclear(res);
    return st;
}

static void on_principal_dispose(void *p)
{
    struct tok_principal **slot = p;
    principal_unref(*slot);
}

/* ---- rate limits (ratelimit.h) ------------------------------------------------------ */

/* The client's bucket key for failed authentications: its address (IPv6: its /64). */
static bool client_key(const struct tok_req *r, uint8_t out[TOK_RL_ADDR_KEY_MAX], size_t *len)
{
    h2o_conn_t *conn = r->req->conn;
    struct sockaddr_storage ss;
    if (conn == NULL || conn->callbacks->get_peername == NULL)
        return false;
    socklen_t n = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    return n > 0 && tok_ratelimit_addr_key((struct sockaddr *)&ss, n, out, len) == TOK_OK;
}

/* The client's address for a log line ("-" when unknown); not a secret. */
static void client_text(const struct tok_req *r, char *out, size_t cap)
{
    h2o_conn_t *conn = r->req->conn;
    struct sockaddr_storage ss;
    socklen_t n = 0;
    if (conn != NULL && conn->callbacks->get_peername != NULL)
        n = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    const void *a = NULL;
    if (n > 0 && ss.ss_family == AF_INET)
        a = &((struct sockaddr_in *)&ss)->sin_addr;
    else if (n > 0 && ss.ss_family == AF_INET6)
        a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    if (a == NULL || inet_ntop(ss.ss_family, a, out, (socklen_t)cap) == NULL)
        snprintf(out, cap, "-");
}

static void too_many(struct tok_req *r, enum tok_rl_class cls, uint32_t retry_s,
                     const struct tok_principal *p)
{
    static const char *const details[TOK_RL_CLASSES] = {
        [TOK_RL_TOKENISE] = "too many tokenisations with this API key; retry after Retry-After "
                            "seconds",
        [TOK_RL_CHARGE] = "too many charge requests with this API key; retry after Retry-After "
                          "seconds",
        [TOK_RL_AUTH_FAIL] = "too many failed authentications from this address; retry after "
                             "Retry-After seconds",
    };
    char ra[16], addr[INET6_ADDRSTRLEN];
    snprintf(ra, sizeof ra, "%u", retry_s);
    client_text(r, addr, sizeof addr);
    /* the key's id, never its secret; the address is the client's */
    tok_log_warn("%s: %s: 429 rate_limited: class %s, key %s, client %s, route %s, retry after "
                 "%u s",
                 __func__, r->id, tok_ratelimit_class_name(cls), p != NULL ? p->key_id : "-",
                 addr, r->route != NULL ? r->route : "-", retry_s);
    tok_http_header(r, "retry-after", ra);
    tok_http_problem(r, 429, "rate_limited", (unsigned)cls < TOK_RL_CLASSES ? details[cls] : NULL,
                     NULL);
}

/* True when r's address has spent its failed-authentication budget: r was answered 429. */
static bool auth_throttled(struct tok_req *r)
{
    uint8_t k[TOK_RL_ADDR_KEY_MAX];
    size_t kl = 0;
    uint32_t retry_s = 0;
    if (r->app->ratelimit == NULL || !client_key(r, k, &kl))
        return false;
    if (tok_ratelimit_peek(r->app->ratelimit, TOK_RL_AUTH_FAIL, tok_slice_of(k, kl),
                           tok_ratelimit_now_us(), &retry_s) != TOK_ERR_BOUNDS)
        return false;
    too_many(r, TOK_RL_AUTH_FAIL, retry_s, NULL);
    return true;
}

static void record_auth_failure(struct tok_req *r)
{
    uint8_t k[TOK_RL_ADDR_KEY_MAX];
    size_t kl = 0;
    if (r->app->ratelimit != NULL && client_key(r, k, &kl))
        tok_ratelimit_record(r->app->ratelimit, TOK_RL_AUTH_FAIL, tok_slice_of(k, kl),
                             tok_ratelimit_now_us());
}

/* One token of class cls for p (and, for a publishable key, the client's address); false
 * when r was answered 429. */
static bool take_token(struct tok_req *r, const struct tok_principal *p, enum tok_rl_class cls)
{
    if (cls == TOK_RL_NONE || r->app->ratelimit == NULL)
        return true;
    uint8_t k[TOK_RL_KEY_MAX];
    struct tok_buf kb;
    tok_buf_init(&kb, k, sizeof k);
    uint8_t a[TOK_RL_ADDR_KEY_MAX];
    size_t al = 0;
    if (tok_buf_write(&kb, p->key_id, strnlen(p->key_id, sizeof p->key_id)) != TOK_OK ||
        (p->publishable && client_key(r, a, &al) && tok_buf_write(&kb, a, al) != TOK_OK))
        return true; /* cannot happen: ids are short; never refuse for our own bug */
    uint32_t retry_s = 0;
    if (tok_ratelimit_take(r->app->ratelimit, cls, tok_buf_slice(&kb), tok_ratelimit_now_us(),
                           &retry_s) != TOK_ERR_BOUNDS)
        return true;
    too_many(r, cls, retry_s, p);
    return false;
}

static void refuse(struct tok_req *r, int status, const char *code, const char *detail,
                   const struct tok_principal *p)
{
    if (status == 401)
        record_auth_failure(r);
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

static void authorise(struct tok_req *r, struct tok_principal *p, uint32_t scope,
                      enum tok_rl_class cls, tok_authed_fn next)
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
    if (!take_token(r, p, cls))
        return;
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
        if (st == TOK_OK)
            st = fetch_previous(conn, a);
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
    if (a->prev_version != 0 && a->prev_version != a->key_version &&
        tok_keyring_tenant_keys_open(w->app->keyring, p->tenant_id, a->prev_version,
                                     tok_buf_slice(&a->prev_dek_buf),
                                     tok_buf_slice(&a->prev_fpk_buf), &p->keys_prev) != TOK_OK) {
        tok_log_err("auth: %s: cannot unwrap the previous keys of tenant %s (wrong master key?)",
                    rid, p->tenant_id);
        tok_tenant_keys_free(&p->keys); /* auth_release frees p itself, not what it holds */
        return AUTH_KEYS_BAD;
    }
    if (tok_accounts_open(p->keys, p->keys_prev, p->tenant_id, &a->accounts, p->accounts,
                          &p->naccounts) != TOK_OK)
        p->naccounts = 0;
    a->p = NULL;
    p->refs = 1;
    p->loaded_ms = now_ms();
    p->epoch = a->epoch;
    cache_put(w->auth_cache, p);
    *out = p;
    return AUTH_OK;
}

static void respond(struct tok_req *r, enum auth_outcome o, struct tok_principal *p,
                    bool lookup_only, uint32_t scope, enum tok_rl_class cls, tok_authed_fn next)
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
            authorise(r, p, scope, cls, next);
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
            respond(r, o, p, w->lookup_only, w->scope, w->cls, w->next_fn);
        free(w);
        w = next;
    }
}

static void auth_result(struct tok_call *call, struct tok_req *r)
{
    struct auth_call *a = (struct auth_call *)call;
    struct tok_principal *p = NULL;
    enum auth_outcome o = settle(a, r, &p);
    respond(r, o, p, a->lookup_only, a->scope, a->cls, a->next);
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

static void lookup(struct tok_req *r, struct tok_slice key, uint32_t scope,
                   enum tok_rl_class cls, tok_authed_fn next, bool lookup_only);

void tok_auth_require(struct tok_req *r, uint32_t scope, tok_authed_fn next)
{
    tok_auth_require_limited(r, scope, TOK_RL_NONE, next);
}

void tok_auth_require_limited(struct tok_req *r, uint32_t scope, enum tok_rl_class cls,
                              tok_authed_fn next)
{
    struct tok_slice h;
    if (!tok_http_req_header(r, "authorization", &h)) {
        if (auth_throttled(r))
            return;
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
        if (!auth_throttled(r))
            refuse(r, 401, "unauthenticated", "malformed API key", NULL);
        return;
    }
    lookup(r, key, scope, cls, next, false);
}

void tok_auth_lookup_publishable(struct tok_req *r, struct tok_slice key, tok_authed_fn next)
{
    bool publishable = false, live = false;
    if (tok_api_key_parse_prefix(key, &publishable, &live) != TOK_OK || !publishable) {
        if (!auth_throttled(r))
            refuse(r, 401, "unauthenticated",
                   "send a publishable key (pk_...); never a secret key", NULL);
        return;
    }
    lookup(r, key, 0, TOK_RL_NONE, next, true);
}

static void lookup(struct tok_req *r, struct tok_slice key, uint32_t scope,
                   enum tok_rl_class cls, tok_authed_fn next, bool lookup_only)
{
    uint8_t hash[32];
    if (tok_keyring_api_key_hash(r->app->keyring, key, hash) != TOK_OK) {
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return;
    }
    struct tok_principal *p = cache_get(r->worker->auth_cache, r->app, hash);
    /* a key known good goes on; anything else from an address that spent its budget of
     * failures stops here, before a database query or an audit row */
    if ((p == NULL || p->revoked) && auth_throttled(r))
        return;
    if (p != NULL && lookup_only) {
        lookup_done(r, p, next);
        return;
    }
    if (p != NULL) {
        authorise(r, p, scope, cls, next);
        return;
    }
    struct tok_auth_cache *cache = r->worker->auth_cache;
    uint64_t epoch = epoch_now(r->app->auth_epochs);
    struct auth_call *inflight = pending_find(cache, hash, epoch);
    if (inflight != NULL) {
        struct auth_waiter *w = calloc(1, sizeof *w);
        if (w == NULL) {
            tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
            return;
        }
        w->lookup_only = lookup_only;
        w->scope = scope;
        w->cls = cls;
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
    a->cls = cls;
    a->epoch = epoch;
    a->next = next;
    a->call.job.exec = auth_exec;
    a->call.on_result = auth_result;
    a->call.release = auth_release;
    tok_http_call(r, &a->call);
}
