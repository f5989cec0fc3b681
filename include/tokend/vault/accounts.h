/*
 * accounts.h - a tenant's gateway accounts (vault.gateways), read on a
 * database thread and opened (credentials unsealed into locked memory) on
 * the loop thread that caches the principal.
 */
#ifndef TOKEND_ACCOUNTS_H
#define TOKEND_ACCOUNTS_H

#include "tokend/core/common.h"
#include "tokend/store/db.h"
#include "tokend/gateways/gateway.h"

#define TOK_ACCOUNTS_MAX 4
#define TOK_ACCOUNT_SEALED_MAX 4096

struct tok_tenant_keys;

/** One sealed row as read from the database (no secret in the clear). */
struct tok_account_row {
    char id[48];
    char kind[16];
    int priority;
    char base_url[256];
    uint32_t key_version;
    uint8_t sealed[TOK_ACCOUNT_SEALED_MAX];
    size_t sealed_len;
};

struct tok_accounts_raw {
    unsigned n;
    struct tok_account_row rows[TOK_ACCOUNTS_MAX];
};

/** In a job with the tenant set: the active accounts of that mode, by priority. */
TOK_MUST_CHECK tok_status tok_accounts_fetch(struct tok_db_conn *conn, const char *tenant_id,
                                             bool livemode, struct tok_accounts_raw *out);

/**
 * Unseals each row's credentials with the tenant's keys of the row's version (tk, the active
 * ones, or prev, the previous version during a rotation; prev may be NULL) into out[] (api_key
 * in sodium_malloc'd memory). Rows that cannot be opened or whose kind has no adapter are
 * skipped. *n gets the count.
 */
TOK_MUST_CHECK tok_status tok_accounts_open(const struct tok_tenant_keys *tk,
                                            const struct tok_tenant_keys *prev,
                                            const char *tenant_id,
                                            const struct tok_accounts_raw *raw,
                                            struct tok_gateway_account *out, unsigned *n);

/** Wipes and frees the secrets of n accounts. */
void tok_accounts_wipe(struct tok_gateway_account *a, unsigned n);

#endif
