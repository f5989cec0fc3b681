/*
 * idempotency.c - Idempotency-Key records in ledger.idempotency.
 */
#include "tokend/vault/idempotency.h"
#include "tokend/vault/keyring.h"
#include "tokend/http/app.h"
#include "tokend/core/encoding.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct tok_sql idem_claim_sql = {
    "idem_claim",
    "INSERT INTO ledger.idempotency AS i (tenant_id, livemode, key, request_hash, state) "
    "VALUES ($1, $2, $3, $4, 'in_flight') "
    "ON CONFLICT (tenant_id, livemode, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
    "state = 'in_flight', status = NULL, response = NULL, created_at = now(), "
    "expires_at = now() + interval '24 hours' "
    "WHERE i.expires_at <= now() OR (i.state = 'in_flight' AND i.created_at < now() - make_interval(secs => $5)) "
    "RETURNING 1",
    5};

static const struct tok_sql idem_read_sql = {
    "idem_read",
    "SELECT request_hash = $4, state, coalesce(status, 0), coalesce(response, '') "
    "FROM ledger.idempotency WHERE tenant_id = $1 AND livemode = $2 AND key = $3",
    4};

static const struct tok_sql idem_finish_sql = {
    "idem_finish",
    "UPDATE ledger.idempotency SET state = 'done', status = $4, response = $5 "
    "WHERE tenant_id = $1 AND livemode = $2 AND key = $3",
    5};

static tok_status read_key(struct tok_req *r, struct tok_idem *out)
{
    memset(out, 0, sizeof *out);
    struct tok_slice k;
    if (!tok_http_req_header(r, "idempotency-key", &k))
        return TOK_OK;
    TOK_ENSURE(k.len >= 1 && k.len <= TOK_IDEM_KEY_MAX, TOK_ERR_INPUT);
    for (size_t i = 0; i < k.len; i++)
        TOK_ENSURE(k.ptr[i] >= 0x21 && k.ptr[i] <= 0x7e, TOK_ERR_INPUT);
    tok_copy(out->key, k.ptr, k.len);
    out->key[k.len] = '\0';
    out->present = true;
    return TOK_OK;
}

tok_status tok_idem_from_request(struct tok_req *r, struct tok_idem *out)
{
    TOK_GUARD(read_key(r, out));
    if (!out->present)
        return TOK_OK;

    /* keyed: a body may be guessable, its hash must not be checkable offline */
    h2o_req_t *req = r->req;
    crypto_generichash_state st;
    uint8_t key[32];
    static const char ctx[] = "tokend idempotency request hash";
    TOK_GUARD(tok_keyring_api_key_hash(r->app->keyring, tok_slice_of(ctx, sizeof ctx - 1), key));
    crypto_generichash_init(&st, key, sizeof key, sizeof out->hash);
    crypto_generichash_update(&st, (const uint8_t *)req->method.base, req->method.len);
    crypto_generichash_update(&st, (const uint8_t *)"\n", 1);
    crypto_generichash_update(&st, (const uint8_t *)req->path.base, req->path.len);
    crypto_generichash_update(&st, (const uint8_t *)"\n", 1);
    if (req->entity.base != NULL)
        crypto_generichash_update(&st, (const uint8_t *)req->entity.base, req->entity.len);
    crypto_generichash_final(&st, out->hash, sizeof out->hash);
    sodium_memzero(key, sizeof key);
    return TOK_OK;
}

static const struct tok_sql idem_release_sql = {
    "idem_release_key",
    "DELETE FROM ledger.idempotency WHERE tenant_id = $1 AND livemode = $2 AND key = $3", 3};

tok_status tok_idem_key_scoped(struct tok_req *r, const char *scope, struct tok_idem *out)
{
    TOK_GUARD(read_key(r, out));
    if (!out->present)
        return TOK_OK;
    static const char ctx[] = "tokend idempotency key scope";
    uint8_t key[32], h[32];
    TOK_GUARD(tok_keyring_api_key_hash(r->app->keyring, tok_slice_of(ctx, sizeof ctx - 1), key));
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof key, sizeof h);
    crypto_generichash_update(&st, (const uint8_t *)scope, strlen(scope));
    crypto_generichash_update(&st, (const uint8_t *)"\n", 1);
    crypto_generichash_update(&st, (const uint8_t *)out->key, strlen(out->key));
    crypto_generichash_final(&st, h, sizeof h);
    sodium_memzero(key, sizeof key);
    struct tok_buf b;
    tok_buf_init(&b, out->key, sizeof out->key - 1);
    tok_status s = tok_buf_puts(&b, "t:");
    if (s == TOK_OK)
        s = tok_hex_encode(tok_slice_of(h, sizeof h), &b);
    out->key[s == TOK_OK ? b.len : 0] = '\0';
    return s;
}

tok_status tok_idem_hash_parts(struct tok_req *r, const struct tok_slice *parts, size_t nparts,
                               struct tok_idem *idem)
{
    if (!idem->present)
        return TOK_OK;
    static const char ctx[] = "tokend idempotency request hash";
    uint8_t key[32];
    TOK_GUARD(tok_keyring_api_key_hash(r->app->keyring, tok_slice_of(ctx, sizeof ctx - 1), key));
    h2o_req_t *req = r->req;
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof key, sizeof idem->hash);
    sodium_memzero(key, sizeof key);
    crypto_generichash_update(&st, (const uint8_t *)req->method.base, req->method.len);
    crypto_generichash_update(&st, (const uint8_t *)"\n", 1);
    crypto_generichash_update(&st, (const uint8_t *)req->path.base, req->path.len);
    for (size_t i = 0; i < nparts; i++) {
        uint8_t len[8];
        uint64_t n = parts[i].len;
        for (int k = 0; k < 8; k++)
            len[k] = (uint8_t)(n >> (8 * k));
        crypto_generichash_update(&st, len, sizeof len);
        if (parts[i].len > 0)
            crypto_generichash_update(&st, parts[i].ptr, parts[i].len);
    }
    crypto_generichash_final(&st, idem->hash, sizeof idem->hash);
    sodium_memzero(&st, sizeof st); /* it held the cardholder name */
    return TOK_OK;
}

tok_status tok_idem_release(struct tok_db_conn *conn, const char *tenant_id, bool livemode,
                            const struct tok_idem *idem)
{
    if (!idem->present)
        return TOK_OK;
    const char *v[3] = {tenant_id, livemode ? "t" : "f", idem->key};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &idem_release_sql, v, NULL, NULL, &res));
    PQclear(res);
    return TOK_OK;
}

tok_status tok_idem_begin(struct tok_db_conn *conn, const char *tenant_id, bool livemode,
                          struct tok_idem *idem)
{
    if (!idem->present) {
        idem->state = TOK_IDEM_NEW;
        return TOK_OK;
    }
    char stale[16];
    snprintf(stale, sizeof stale, "%d", TOK_IDEM_STALE_SECONDS);
    const char *v[5] = {tenant_id, livemode ? "t" : "f", idem->key, (const char *)idem->hash, stale};
    const int l[5] = {0, 0, 0, 32, 0}, f[5] = {0, 0, 0, 1, 0};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &idem_claim_sql, v, l, f, &res));
    bool claimed = PQntuples(res) == 1;
    PQclear(res);
    if (claimed) {
        idem->state = TOK_IDEM_NEW;
        return TOK_OK;
    }
    TOK_GUARD(tok_db_exec(conn, &idem_read_sql, v, l, f, &res));
    tok_status st = TOK_OK;
    if (PQntuples(res) != 1) {
        st = TOK_ERR_DB;
    } else if (PQgetvalue(res, 0, 0)[0] != 't') {
        idem->state = TOK_IDEM_MISMATCH;
    } else if (strcmp(PQgetvalue(res, 0, 1), "done") != 0) {
        idem->state = TOK_IDEM_IN_FLIGHT;
    } else {
        idem->state = TOK_IDEM_REPLAY;
        idem->status = (int)strtol(PQgetvalue(res, 0, 2), NULL, 10);
        idem->response = strdup(PQgetvalue(res, 0, 3));
        if (idem->response == NULL)
            st = TOK_ERR_NOMEM;
    }
    PQclear(res);
    return st;
}

tok_status tok_idem_finish(struct tok_db_conn *conn, const char *tenant_id, bool livemode,
                           const struct tok_idem *idem, int status, struct tok_slice body)
{
    if (!idem->present)
        return TOK_OK;
    char s[8];
    snprintf(s, sizeof s, "%d", status);
    /* a text parameter is read up to its NUL, whatever length is given */
    struct tok_buf text = {0};
    const char *body_s = NULL;
    TOK_GUARD(tok_buf_alloc(&text, (uint32_t)body.len + 1, false));
    tok_status st = tok_buf_write(&text, body.ptr, body.len);
    if (st == TOK_OK)
        st = tok_buf_cstr(&text, &body_s);
    PGresult *res = NULL;
    if (st == TOK_OK) {
        const char *v[5] = {tenant_id, livemode ? "t" : "f", idem->key, s, body_s};
        st = tok_db_exec(conn, &idem_finish_sql, v, NULL, NULL, &res);
    }
    PQclear(res);
    tok_buf_wipe(&text);
    return st;
}

void tok_idem_respond(struct tok_req *r, const struct tok_idem *idem)
{
    switch (idem->state) {
    case TOK_IDEM_REPLAY:
        tok_http_header(r, "idempotent-replayed", "true");
        tok_http_send(r, idem->status, idem->status >= 400 ? "application/problem+json" : "application/json",
                      tok_slice_str(idem->response != NULL ? idem->response : ""));
        return;
    case TOK_IDEM_MISMATCH:
        tok_http_problem(r, 422, "idempotency_key_reused",
                         "this Idempotency-Key was used with a different request", NULL);
        return;
    case TOK_IDEM_IN_FLIGHT:
        tok_http_problem(r, 409, "idempotency_in_flight",
                         "a request with this Idempotency-Key is still being processed", NULL);
        return;
    default:
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return;
    }
}

void tok_idem_wipe(struct tok_idem *idem)
{
    free(idem->response);
    idem->response = NULL;
}
