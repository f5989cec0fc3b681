/*
 * rotation.c - tokend's start-up check of its master key files against the wrapped tenant
 * keys in the database (rotation.h).
 */
#include "tokend/vault/rotation.h"
#include "tokend/store/db.h"
#include "tokend/vault/keyring.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

tok_status tok_rotation_probe_master(const char *conninfo, const struct tok_keyring *kr,
                                     char *why, size_t why_len)
{
    TOK_ENSURE(conninfo != NULL && kr != NULL && why != NULL && why_len > 0, TOK_ERR_INTERNAL);
    why[0] = '\0';
    PGconn *pg = NULL;
    TOK_GUARD(tok_db_connect(conninfo, &pg, why, why_len));
    PGresult *r = PQexecParams(pg,
                               "SELECT master_version, tenant_id, version, wrapped_dek, "
                               "wrapped_fpk FROM vault.master_key_probe()",
                               0, NULL, NULL, NULL, NULL, 1);
    tok_status st = TOK_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, why_len, "cannot read the wrapped tenant keys (is the schema migrated?)");
        st = TOK_ERR_DB;
    }
    /* rows come ordered by master version: a version fails when none of its rows opens */
    uint32_t cur = 0, failed = 0;
    bool cur_opened = true;
    for (int i = 0; st == TOK_OK && i < PQntuples(r); i++) {
        if (PQgetlength(r, i, 0) != 4 || PQgetlength(r, i, 2) != 4) {
            st = TOK_ERR_DB;
            snprintf(why, why_len, "unexpected answer from vault.master_key_probe");
            break;
        }
        const uint8_t *m = (const uint8_t *)PQgetvalue(r, i, 0);
        const uint8_t *k = (const uint8_t *)PQgetvalue(r, i, 2);
        uint32_t mv = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
        uint32_t v = (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 | k[3];
        if (mv != cur) {
            if (!cur_opened && failed == 0)
                failed = cur;
            cur = mv;
            cur_opened = false;
        }
        if (cur_opened)
            continue;
        struct tok_tenant_keys *tk = NULL;
        tok_status o = tok_keyring_tenant_keys_open(
            kr, PQgetvalue(r, i, 1), v,
            tok_slice_of(PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3)),
            tok_slice_of(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4)), &tk);
        tok_tenant_keys_free(&tk);
        if (o == TOK_OK) {
            cur_opened = true;
        } else if (o != TOK_ERR_CRYPTO && o != TOK_ERR_INPUT) {
            snprintf(why, why_len, "cannot open the tenant keys of master key version %u (%s)",
                     mv, tok_status_name(o));
            st = o;
        }
    }
    if (st == TOK_OK && !cur_opened && failed == 0)
        failed = cur;
    if (st == TOK_OK && failed != 0) {
        snprintf(why, why_len,
                 "it does not open the tenant keys wrapped under master key version %u "
                 "(give that version's file: --master-key-file, or --master-key-previous "
                 "while a rotation runs)",
                 failed);
        st = TOK_ERR_CRYPTO;
    }
    PQclear(r);
    PQfinish(pg);
    return st;
}
