/*
 * accounts.c - gateway accounts: sealed in vault.gateways, open only in
 * locked memory of the principal cache.
 */
#include "tokend/vault/accounts.h"
#include "tokend/gateways/registry.h"
#include "tokend/core/json.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const struct tok_sql accounts_sql = {
    "gateway_accounts",
    "SELECT id, kind, priority, base_url, credentials_sealed, key_version FROM vault.gateways "
    "WHERE tenant_id = $1 AND livemode = $2 AND removed_at IS NULL ORDER BY priority, id LIMIT 4",
    2};

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    tok_copy(dst, src, n);
    dst[n] = '\0';
}

tok_status tok_accounts_fetch(struct tok_db_conn *conn, const char *tenant_id, bool livemode,
                              struct tok_accounts_raw *out)
{
    const char *v[2] = {tenant_id, livemode ? "t" : "f"};
    PGresult *res = NULL;
    out->n = 0;
    TOK_GUARD(tok_db_exec(conn, &accounts_sql, v, NULL, NULL, &res));
    for (int i = 0; i < PQntuples(res) && out->n < TOK_ACCOUNTS_MAX; i++) {
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 4), &len);
        if (raw == NULL || len > TOK_ACCOUNT_SEALED_MAX) {
            PQfreemem(raw);
            continue;
        }
        struct tok_account_row *row = &out->rows[out->n++];
        copy_field(row->id, sizeof row->id, PQgetvalue(res, i, 0));
        copy_field(row->kind, sizeof row->kind, PQgetvalue(res, i, 1));
        row->priority = (int)strtol(PQgetvalue(res, i, 2), NULL, 10);
        copy_field(row->base_url, sizeof row->base_url, PQgetvalue(res, i, 3));
        row->key_version = (uint32_t)strtoul(PQgetvalue(res, i, 5), NULL, 10);
        tok_copy(row->sealed, raw, len);
        row->sealed_len = len;
        PQfreemem(raw);
    }
    PQclear(res);
    return TOK_OK;
}

static tok_status copy_secret(const struct tok_json_node *root, const char *key, char **out)
{
    struct tok_slice v;
    const struct tok_json_node *n = tok_json_get(root, key);
    *out = NULL;
    if (n == NULL)
        return TOK_OK;
    TOK_GUARD(tok_json_string(n, &v));
    *out = sodium_malloc(v.len + 1);
    TOK_ENSURE(*out != NULL, TOK_ERR_NOMEM);
    tok_copy(*out, v.ptr, v.len);
    (*out)[v.len] = '\0';
    return TOK_OK;
}

static tok_status open_one(const struct tok_tenant_keys *tk, const char *tenant_id,
                           const struct tok_account_row *row,
                           struct tok_gateway_account *a)
{
    memset(a, 0, sizeof *a);
    a->ops = tok_gateway_find(tok_slice_str(row->kind));
    TOK_ENSURE(a->ops != NULL, TOK_ERR_NOTFOUND);
    TOK_ENSURE(row->key_version == tok_tenant_keys_version(tk), TOK_ERR_CRYPTO);
    copy_field(a->id, sizeof a->id, row->id);
    copy_field(a->base_url, sizeof a->base_url, row->base_url);
    a->priority = row->priority;
    struct tok_buf plain = {0};
    TOK_GUARD(tok_buf_alloc(&plain, (uint32_t)row->sealed_len, true));
    struct tok_aad aad = {tenant_id, "vault.gateways", "credentials_sealed", row->id};
    tok_status st = tok_tenant_keys_open(tk, aad, tok_slice_of(row->sealed, row->sealed_len), &plain);
    struct tok_json_doc *doc = NULL;
    struct tok_json_error err;
    struct tok_json_limits lim = tok_json_limits_default();
    if (st == TOK_OK)
        st = tok_json_parse(tok_buf_slice(&plain), &lim, &doc, &err);
    tok_buf_wipe(&plain);
    if (st == TOK_OK) {
        const struct tok_json_node *root = tok_json_root(doc);
        char *merchant = NULL;
        st = copy_secret(root, "api_key", &a->api_key);
        if (st == TOK_OK)
            st = copy_secret(root, "merchant_account", &merchant);
        if (st == TOK_OK && merchant != NULL)
            copy_field(a->merchant_account, sizeof a->merchant_account, merchant);
        if (merchant != NULL)
            sodium_free(merchant);
    }
    tok_json_doc_free(&doc);
    if (st != TOK_OK)
        tok_accounts_wipe(a, 1);
    return st;
}

tok_status tok_accounts_open(const struct tok_tenant_keys *tk, const struct tok_tenant_keys *prev,
                             const char *tenant_id, const struct tok_accounts_raw *raw,
                             struct tok_gateway_account *out, unsigned *n)
{
    *n = 0;
    for (unsigned i = 0; i < raw->n && i < TOK_ACCOUNTS_MAX; i++) {
        /* a data-key rotation re-seals accounts at its start: either version may be read */
        const struct tok_tenant_keys *k = tk;
        if (prev != NULL && raw->rows[i].key_version == tok_tenant_keys_version(prev))
            k = prev;
        tok_status st = open_one(k, tenant_id, &raw->rows[i], &out[*n]);
        if (st != TOK_OK) {
            tok_log_err("%s: gateway account %s of tenant %s cannot be used (%s)", __func__,
                        raw->rows[i].id, tenant_id, tok_status_name(st));
            continue;
        }
        (*n)++;
    }
    return TOK_OK;
}

void tok_accounts_wipe(struct tok_gateway_account *a, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (a[i].api_key != NULL)
            sodium_free(a[i].api_key);
        a[i].api_key = NULL;
    }
}
