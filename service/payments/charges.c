/*
 * charges.c - charges, captures, voids and refunds.
 *
 * Each operation is two database jobs around one gateway call:
 *   begin  (DB thread): idempotency claim, read and lock what the call needs,
 *          write the pending row (for refunds: reserve the amount);
 *   gateway (loop thread, asynchronous adapters);
 *   finish (DB thread): final state, attempts, audit, the stored response.
 * The money rules live in SQL (CHECKs and conditional UPDATEs), so they hold
 * under any concurrency.
 *
 * Customer authentication (3-D Secure, issue #16): a charge made with the customer present
 * (off_session false) and a return_url may be answered 202 requires_action with
 * next_action {type redirect_to_url, url}: the app sends the customer there, the gateway
 * sends them back to return_url, and the app calls POST /v1/charges/{id}/complete (with
 * Adyen's redirect_result), which asks the gateway for the outcome; a gateway webhook may
 * decide it first. 202, not 201: the charge exists but its outcome is not known yet, and a
 * client that reads 201 as "decided" must not take it for one.
 */
#include "tokend/payments/charges.h"
#include "tokend/vault/auth.h"
#include "tokend/core/base62.h"
#include "tokend/core/currency.h"
#include "tokend/events/events.h"
#include "tokend/gateways/gateway.h"
#include "tokend/gateways/gateway_metrics.h"
#include "tokend/gateways/registry.h"
#include "tokend/vault/idempotency.h"
#include "tokend/core/json.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"
#include "tokend/http/app.h"
#include "tokend/vault/tokens.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 8192
#define SEALED_MAX (TOK_GATEWAY_REF_MAX + TOK_SEALED_OVERHEAD)

enum op { OP_CHARGE, OP_CAPTURE, OP_VOID, OP_REFUND, OP_GET_CHARGE, OP_GET_REFUND, OP_COMPLETE };

/* why the begin job refused, decided in SQL, answered on the loop */
enum refusal {
    R_NONE = 0,
    R_TOKEN_NOT_FOUND,
    R_TOKEN_REDACTED,
    R_TOKEN_EXPIRED,
    R_NO_GATEWAY,
    R_CHARGE_NOT_FOUND,
    R_BAD_STATE,
    R_AMOUNT_TOO_LARGE,
    R_REFUND_NOT_FOUND,
};

struct gw_ref {
    char gateway[TOK_GATEWAY_NAME_MAX];
    uint8_t sealed[SEALED_MAX];
    int sealed_len;
    uint32_t key_version;
};

struct attempt {
    char gateway[TOK_GATEWAY_NAME_MAX];
    const char *outcome;
    char code[TOK_GATEWAY_CODE_MAX];
    char ref[TOK_GATEWAY_REF_MAX];
};

struct charge_call {
    struct tok_call call; /* first */
    enum op op;
    bool finish_phase;
    bool keep; /* the object is reused by the next job: skip one release */
    enum refusal refusal;
    char tenant_id[TOK_ID_MAX], actor[TOK_ID_MAX], request_id[TOK_REQUEST_ID_LEN + 1];
    bool livemode;
    struct tok_idem idem;
    /* request */
    char id[TOK_ID_MAX];        /* charge id (or refund id for refunds) */
    char charge_id[TOK_ID_MAX]; /* refunds: the charge */
    char token_id[TOK_ID_MAX];
    int64_t amount; /* 0 = the default (full) */
    char currency[4];
    bool capture;
    bool off_session; /* merchant-initiated: no customer present (the default) */
    char description[TOK_DESCRIPTION_MAX + 1];
    char invoice_ref[TOK_INVOICE_REF_MAX + 1];
    char only_gateway[TOK_GATEWAY_NAME_MAX];
    char return_url[TOK_GATEWAY_URL_MAX];                /* CHARGE: where 3-D Secure returns */
    struct tok_browser_info browser;                     /* CHARGE: the customer's browser */
    bool has_browser;                                    /* browser was given */
    char redirect_result[TOK_GATEWAY_RETURN_DATA_MAX];   /* COMPLETE: Adyen's redirectResult */
    char action_url[TOK_GATEWAY_URL_MAX];                /* the charge's next_action */
    bool decided;      /* COMPLETE: the charge was no longer waiting; answered as it is */
    bool manual;       /* COMPLETE: capture_method manual */
    /* begin results */
    struct gw_ref refs[TOK_CHARGE_GATEWAYS_MAX];
    int nrefs, cur;
    char gateway[TOK_GATEWAY_NAME_MAX];
    char gateway_ref[TOK_GATEWAY_REF_MAX];
    char state[24];
    /* gateway */
    struct tok_gateway_call gw;
    char pm_ref[TOK_GATEWAY_REF_MAX + 1]; /* secret while it exists */
    struct attempt attempts[TOK_CHARGE_GATEWAYS_MAX];
    int nattempts;
    /* result */
    char new_status[24];
    int64_t result_amount;
    int http_status;
    struct tok_buf body;
    bool found;
};

/* ---- SQL -------------------------------------------------------------------- */

#define CHARGE_COLUMNS                                                                              \
    "c.id, c.livemode, c.token_id, c.amount, c.currency, c.capture_method, c.status, "            \
    "c.captured_amount, c.refunded_amount, coalesce(c.gateway, ''), coalesce(c.gateway_ref, ''), " \
    "coalesce(c.failure_code, ''), coalesce(c.decline_code, ''), coalesce(c.description, ''), "   \
    "coalesce(c.invoice_ref, ''), "                                                                \
    "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                 \
    "coalesce((SELECT string_agg(a.gateway || ':' || a.outcome || ':' || coalesce(a.code, ''), ' ' " \
    "ORDER BY a.attempt) FROM ledger.charge_attempts a WHERE a.tenant_id = c.tenant_id "          \
    "AND a.charge_id = c.id), ''), coalesce(c.next_action_url, '')"

static const struct tok_sql charge_select_sql = {
    "charge_select",
    "SELECT " CHARGE_COLUMNS " FROM ledger.charges c WHERE c.tenant_id = $1 AND c.id = $2 AND c.livemode = $3",
    3};

#define REFUND_COLUMNS                                                                              \
    "r.id, r.livemode, r.charge_id, r.amount, r.currency, r.status, coalesce(r.gateway, ''), "     \
    "coalesce(r.gateway_ref, ''), coalesce(r.failure_code, ''), "                                  \
    "to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const struct tok_sql refund_select_sql = {
    "refund_select",
    "SELECT " REFUND_COLUMNS " FROM ledger.refunds r WHERE r.tenant_id = $1 AND r.id = $2 AND r.livemode = $3",
    3};

static const struct tok_sql token_state_sql = {
    "charge_token_state",
    "SELECT redacted_at IS NOT NULL, coalesce(expires_at <= now(), false) FROM vault.tokens "
    "WHERE tenant_id = $1 AND id = $2 AND livemode = $3",
    3};

static const struct tok_sql token_refs_sql = {
    "charge_token_refs",
    "SELECT r.gateway, r.ref_sealed, r.key_version FROM vault.gateway_refs r "
    "LEFT JOIN vault.gateways g ON g.tenant_id = r.tenant_id AND g.id = r.gateway "
    "WHERE r.tenant_id = $1 AND r.token_id = $2 AND r.status = 'active' AND r.ref_sealed IS NOT NULL "
    "AND (r.gateway = 'sandbox' OR (g.id IS NOT NULL AND g.removed_at IS NULL)) "
    "AND ($3 = '' OR r.gateway = $3 OR g.kind = $3) "
    "ORDER BY coalesce(g.priority, 1000), r.gateway LIMIT 4",
    3};

static const struct tok_sql charge_insert_sql = {
    "charge_insert",
    "INSERT INTO ledger.charges (tenant_id, id, livemode, token_id, amount, currency, capture_method, "
    "status, description, invoice_ref, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', "
    "nullif($8, ''), nullif($9, ''), $10)",
    10};

static const struct tok_sql charge_finish_sql = {
    "charge_finish",
    "UPDATE ledger.charges SET status = $4, captured_amount = $5, gateway = nullif($6, ''), "
    "gateway_ref = nullif($7, ''), failure_code = nullif($8, ''), decline_code = nullif($9, ''), "
    "next_action_url = nullif($10, ''), updated_at = now() "
    "WHERE tenant_id = $1 AND id = $2 AND livemode = $3",
    10};

/* the charge waiting for its customer, locked while its outcome is asked for */
static const struct tok_sql charge_lock_action_sql = {
    "charge_lock_action",
    "SELECT status, amount, coalesce(gateway, ''), coalesce(gateway_ref, ''), currency, "
    "capture_method = 'manual' FROM ledger.charges WHERE tenant_id = $1 AND id = $2 "
    "AND livemode = $3 FOR UPDATE",
    3};

/* a waiting charge decided by COMPLETE; a webhook may have decided it first (no row) */
static const struct tok_sql charge_decide_sql = {
    "charge_decide",
    "UPDATE ledger.charges SET status = $4, captured_amount = $5, failure_code = nullif($6, ''), "
    "decline_code = nullif($7, ''), next_action_url = NULL, updated_at = now() "
    "WHERE tenant_id = $1 AND id = $2 AND livemode = $3 AND status = 'requires_action' "
    "RETURNING 1",
    7};

static const struct tok_sql attempt_insert_sql = {
    "charge_attempt_insert",
    "INSERT INTO ledger.charge_attempts (tenant_id, charge_id, attempt, gateway, outcome, code, gateway_ref) "
    "VALUES ($1, $2, $3, $4, $5, nullif($6, ''), nullif($7, ''))",
    7};

static const struct tok_sql charge_lock_sql = {
    "charge_lock",
    "SELECT status, amount, coalesce(gateway, ''), coalesce(gateway_ref, ''), currency "
    "FROM ledger.charges WHERE tenant_id = $1 AND id = $2 AND livemode = $3 FOR UPDATE",
    3};

static const struct tok_sql charge_transition_sql = {
    "charge_transition",
    "UPDATE ledger.charges SET status = $5, captured_amount = $6, updated_at = now() "
    "WHERE tenant_id = $1 AND id = $2 AND livemode = $3 AND status = $4 RETURNING 1",
    6};

/* The refund ceiling: the row lock serialises concurrent refunds, the CHECK
 * (refunded_amount <= captured_amount) backs the arithmetic done in C. */
static const struct tok_sql refund_lock_sql = {
    "refund_lock",
    "SELECT status, captured_amount - refunded_amount, currency, coalesce(gateway, ''), "
    "coalesce(gateway_ref, '') FROM ledger.charges WHERE tenant_id = $1 AND id = $2 AND livemode = $3 "
    "FOR UPDATE",
    3};

static const struct tok_sql refund_reserve_sql = {
    "refund_reserve",
    "UPDATE ledger.charges SET refunded_amount = refunded_amount + $4, updated_at = now() "
    "WHERE tenant_id = $1 AND id = $2 AND livemode = $3",
    4};

static const struct tok_sql refund_insert_sql = {
    "refund_insert",
    "INSERT INTO ledger.refunds (tenant_id, id, livemode, charge_id, amount, currency, status, gateway, created_by) "
    "VALUES ($1, $2, $3, $4, $5, $6, 'pending', nullif($7, ''), $8)",
    8};

static const struct tok_sql refund_finish_sql = {
    "refund_finish",
    "UPDATE ledger.refunds SET status = $4, gateway_ref = nullif($5, ''), failure_code = nullif($6, ''), "
    "updated_at = now() WHERE tenant_id = $1 AND id = $2 AND livemode = $3",
    6};

static const struct tok_sql refund_settle_sql = {
    "refund_settle",
    "UPDATE ledger.charges SET refunded_amount = refunded_amount - CASE WHEN $4 THEN 0 ELSE $5::bigint END, "
    "status = CASE WHEN NOT $4 THEN status WHEN refunded_amount = captured_amount THEN 'refunded' "
    "ELSE 'partially_refunded' END, updated_at = now() "
    "WHERE tenant_id = $1 AND id = $2 AND livemode = $3",
    5};

static const struct tok_sql idem_release_sql = {
    "idem_release", "DELETE FROM ledger.idempotency WHERE tenant_id = $1 AND livemode = $2 AND key = $3", 3};

/* ---- helpers ------------------------------------------------------------------ */

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    tok_copy(dst, src, n);
    dst[n] = '\0';
}

static void call_release(struct tok_call *call)
{
    struct charge_call *c = (struct charge_call *)call;
    if (c->keep) {
        c->keep = false;
        return;
    }
    tok_idem_wipe(&c->idem);
    tok_buf_wipe(&c->body);
    sodium_memzero(c, sizeof *c);
    free(c);
}

static struct charge_call *call_new(struct tok_req *r, enum op op)
{
    struct charge_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (tok_buf_alloc(&c->body, BODY_MAX, false) != TOK_OK) {
        free(c);
        return NULL;
    }
    c->op = op;
    c->livemode = r->principal->livemode;
    copy_field(c->tenant_id, sizeof c->tenant_id, r->principal->tenant_id);
    copy_field(c->actor, sizeof c->actor, r->principal->key_id);
    copy_field(c->request_id, sizeof c->request_id, r->id);
    c->call.release = call_release;
    return c;
}

static const char *live_str(const struct charge_call *c)
{
    return c->livemode ? "t" : "f";
}

static bool id_ok(struct tok_slice id, const char *prefix)
{
    size_t pl = strlen(prefix);
    return id.len == pl + TOK_RANDOM_ID_CHARS && memcmp(id.ptr, prefix, pl) == 0 &&
           tok_base62_is_alphabet(tok_slice_of(id.ptr + pl, id.len - pl));
}

static void write_words(struct tok_json_writer *w, const char *agg)
{
    /* "gateway:outcome:code gateway:outcome:code" -> [{gateway,outcome,code}] */
    tok_jw_arr_begin(w);
    while (*agg != '\0') {
        size_t n = strcspn(agg, " ");
        const char *c1 = memchr(agg, ':', n);
        const char *c2 = c1 != NULL ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - agg)) : NULL;
        if (c2 != NULL) {
            tok_jw_obj_begin(w);
            tok_jw_key(w, "gateway");
            tok_jw_strn(w, tok_slice_of(agg, (size_t)(c1 - agg)));
            tok_jw_key(w, "outcome");
            tok_jw_strn(w, tok_slice_of(c1 + 1, (size_t)(c2 - c1 - 1)));
            tok_jw_key(w, "code");
            size_t cl = n - (size_t)(c2 + 1 - agg);
            if (cl > 0)
                tok_jw_strn(w, tok_slice_of(c2 + 1, cl));
            else
                tok_jw_null(w);
            tok_jw_obj_end(w);
        }
        agg += n;
        while (*agg == ' ')
            agg++;
    }
    tok_jw_arr_end(w);
}

static void str_or_null(struct tok_json_writer *w, const char *key, const char *v)
{
    tok_jw_kstr(w, key, v != NULL && v[0] != '\0' ? v : NULL);
}

/* Charge object from a charge_select row. */
static tok_status charge_json(PGresult *res, struct tok_buf *b)
{
    struct tok_json_writer w;
    tok_buf_reset(b);
    tok_jw_init(&w, b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "id", PQgetvalue(res, 0, 0));
    tok_jw_kstr(&w, "object", "charge");
    tok_jw_kbool(&w, "livemode", PQgetvalue(res, 0, 1)[0] == 't');
    tok_jw_kstr(&w, "token", PQgetvalue(res, 0, 2));
    tok_jw_kint(&w, "amount", strtoll(PQgetvalue(res, 0, 3), NULL, 10));
    tok_jw_kstr(&w, "currency", PQgetvalue(res, 0, 4));
    tok_jw_kstr(&w, "capture_method", PQgetvalue(res, 0, 5));
    tok_jw_kstr(&w, "status", PQgetvalue(res, 0, 6));
    tok_jw_kint(&w, "amount_captured", strtoll(PQgetvalue(res, 0, 7), NULL, 10));
    tok_jw_kint(&w, "amount_refunded", strtoll(PQgetvalue(res, 0, 8), NULL, 10));
    str_or_null(&w, "gateway", PQgetvalue(res, 0, 9));
    str_or_null(&w, "gateway_reference", PQgetvalue(res, 0, 10));
    str_or_null(&w, "failure_code", PQgetvalue(res, 0, 11));
    str_or_null(&w, "decline_code", PQgetvalue(res, 0, 12));
    str_or_null(&w, "description", PQgetvalue(res, 0, 13));
    str_or_null(&w, "invoice_ref", PQgetvalue(res, 0, 14));
    tok_jw_kstr(&w, "created_at", PQgetvalue(res, 0, 15));
    tok_jw_key(&w, "attempts");
    write_words(&w, PQgetvalue(res, 0, 16));
    tok_jw_key(&w, "next_action");
    if (PQgetvalue(res, 0, 17)[0] != '\0') {
        tok_jw_obj_begin(&w);
        tok_jw_kstr(&w, "type", "redirect_to_url");
        tok_jw_kstr(&w, "url", PQgetvalue(res, 0, 17));
        tok_jw_obj_end(&w);
    } else {
        tok_jw_null(&w);
    }
    tok_jw_obj_end(&w);
    return tok_jw_finish(&w);
}

static tok_status refund_json(PGresult *res, struct tok_buf *b)
{
    struct tok_json_writer w;
    tok_buf_reset(b);
    tok_jw_init(&w, b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "id", PQgetvalue(res, 0, 0));
    tok_jw_kstr(&w, "object", "refund");
    tok_jw_kbool(&w, "livemode", PQgetvalue(res, 0, 1)[0] == 't');
    tok_jw_kstr(&w, "charge", PQgetvalue(res, 0, 2));
    tok_jw_kint(&w, "amount", strtoll(PQgetvalue(res, 0, 3), NULL, 10));
    tok_jw_kstr(&w, "currency", PQgetvalue(res, 0, 4));
    tok_jw_kstr(&w, "status", PQgetvalue(res, 0, 5));
    str_or_null(&w, "gateway", PQgetvalue(res, 0, 6));
    str_or_null(&w, "gateway_reference", PQgetvalue(res, 0, 7));
    str_or_null(&w, "failure_code", PQgetvalue(res, 0, 8));
    tok_jw_kstr(&w, "created_at", PQgetvalue(res, 0, 9));
    tok_jw_obj_end(&w);
    return tok_jw_finish(&w);
}

/* Reads the object back into c->body (inside the job, after the change). */
static tok_status load_object(struct tok_db_conn *conn, struct charge_call *c, bool refund)
{
    const char *v[3] = {c->tenant_id, c->id, live_str(c)};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, refund ? &refund_select_sql : &charge_select_sql, v, NULL, NULL, &res));
    tok_status st = TOK_OK;
    c->found = PQntuples(res) == 1;
    if (c->found)
        st = refund ? refund_json(res, &c->body) : charge_json(res, &c->body);
    PQclear(res);
    return st;
}

static tok_status release_idem(struct tok_db_conn *conn, struct charge_call *c)
{
    if (!c->idem.present)
        return TOK_OK;
    const char *v[3] = {c->tenant_id, live_str(c), c->idem.key};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &idem_release_sql, v, NULL, NULL, &res));
    PQclear(res);
    return TOK_OK;
}

static tok_status exec1(struct tok_db_conn *conn, const struct tok_sql *sql, const char *const *v,
                        const int *l, const int *f)
{
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, sql, v, l, f, &res));
    PQclear(res);
    return TOK_OK;
}

/* ---- begin (DB thread) ------------------------------------------------------------ */

static tok_status begin_charge(struct tok_db_conn *conn, struct charge_call *c)
{
    const char *v[3] = {c->tenant_id, c->token_id, live_str(c)};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &token_state_sql, v, NULL, NULL, &res));
    if (PQntuples(res) != 1)
        c->refusal = R_TOKEN_NOT_FOUND;
    else if (PQgetvalue(res, 0, 0)[0] == 't')
        c->refusal = R_TOKEN_REDACTED;
    else if (PQgetvalue(res, 0, 1)[0] == 't')
        c->refusal = R_TOKEN_EXPIRED;
    PQclear(res);
    if (c->refusal != R_NONE)
        return release_idem(conn, c);
    const char *rv[3] = {c->tenant_id, c->token_id, c->only_gateway};
    const int rf[3] = {0, 0, 0};
    PGresult *refs = NULL;
    TOK_GUARD(tok_db_exec(conn, &token_refs_sql, rv, NULL, rf, &refs));
    /* bytea comes back as text hex (\x...) */
    for (int i = 0; i < PQntuples(refs) && c->nrefs < TOK_CHARGE_GATEWAYS_MAX; i++) {
        struct gw_ref *g = &c->refs[c->nrefs];
        size_t n = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(refs, i, 1), &n);
        if (raw == NULL || n > sizeof g->sealed) {
            PQfreemem(raw);
            continue;
        }
        tok_copy(g->sealed, raw, n);
        g->sealed_len = (int)n;
        PQfreemem(raw);
        copy_field(g->gateway, sizeof g->gateway, PQgetvalue(refs, i, 0));
        g->key_version = (uint32_t)strtoul(PQgetvalue(refs, i, 2), NULL, 10);
        c->nrefs++;
    }
    PQclear(refs);
    if (c->nrefs == 0) {
        c->refusal = R_NO_GATEWAY;
        return release_idem(conn, c);
    }
    char amount[24];
    snprintf(amount, sizeof amount, "%lld", (long long)c->amount);
    const char *iv[10] = {c->tenant_id, c->id, live_str(c), c->token_id, amount, c->currency,
                          c->capture ? "automatic" : "manual", c->description, c->invoice_ref, c->actor};
    return exec1(conn, &charge_insert_sql, iv, NULL, NULL);
}

static tok_status begin_capture_void(struct tok_db_conn *conn, struct charge_call *c)
{
    const char *v[3] = {c->tenant_id, c->id, live_str(c)};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &charge_lock_sql, v, NULL, NULL, &res));
    if (PQntuples(res) != 1) {
        c->refusal = R_CHARGE_NOT_FOUND;
    } else {
        copy_field(c->state, sizeof c->state, PQgetvalue(res, 0, 0));
        int64_t total = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        copy_field(c->gateway, sizeof c->gateway, PQgetvalue(res, 0, 2));
        copy_field(c->gateway_ref, sizeof c->gateway_ref, PQgetvalue(res, 0, 3));
        copy_field(c->currency, sizeof c->currency, PQgetvalue(res, 0, 4));
        if (strcmp(c->state, "requires_capture") != 0)
            c->refusal = R_BAD_STATE;
        else if (c->amount > total)
            c->refusal = R_AMOUNT_TOO_LARGE;
        if (c->amount == 0)
            c->amount = total;
    }
    PQclear(res);
    return c->refusal != R_NONE ? release_idem(conn, c) : TOK_OK;
}

static tok_status begin_complete(struct tok_db_conn *conn, struct charge_call *c)
{
    const char *v[3] = {c->tenant_id, c->id, live_str(c)};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &charge_lock_action_sql, v, NULL, NULL, &res));
    if (PQntuples(res) != 1) {
        c->refusal = R_CHARGE_NOT_FOUND;
    } else {
        c->decided = strcmp(PQgetvalue(res, 0, 0), "requires_action") != 0;
        c->amount = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        copy_field(c->gateway, sizeof c->gateway, PQgetvalue(res, 0, 2));
        copy_field(c->gateway_ref, sizeof c->gateway_ref, PQgetvalue(res, 0, 3));
        copy_field(c->currency, sizeof c->currency, PQgetvalue(res, 0, 4));
        c->manual = PQgetvalue(res, 0, 5)[0] == 't';
    }
    PQclear(res);
    if (c->refusal != R_NONE)
        return release_idem(conn, c);
    if (!c->decided)
        return TOK_OK;
    /* already decided (by an earlier complete or a webhook): the charge as it is */
    TOK_GUARD(load_object(conn, c, false));
    return release_idem(conn, c);
}

static tok_status begin_refund(struct tok_db_conn *conn, struct charge_call *c)
{
    const char *v[3] = {c->tenant_id, c->charge_id, live_str(c)};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &refund_lock_sql, v, NULL, NULL, &res));
    if (PQntuples(res) != 1) {
        c->refusal = R_CHARGE_NOT_FOUND;
    } else {
        const char *status = PQgetvalue(res, 0, 0);
        int64_t remaining = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        copy_field(c->currency, sizeof c->currency, PQgetvalue(res, 0, 2));
        copy_field(c->gateway, sizeof c->gateway, PQgetvalue(res, 0, 3));
        copy_field(c->gateway_ref, sizeof c->gateway_ref, PQgetvalue(res, 0, 4));
        if (strcmp(status, "succeeded") != 0 && strcmp(status, "partially_refunded") != 0)
            c->refusal = R_BAD_STATE;
        else if (c->amount == 0 && remaining > 0)
            c->amount = remaining;
        if (c->refusal == R_NONE && (c->amount <= 0 || c->amount > remaining))
            c->refusal = remaining == 0 ? R_BAD_STATE : R_AMOUNT_TOO_LARGE;
    }
    PQclear(res);
    if (c->refusal != R_NONE)
        return release_idem(conn, c);
    char amount[24];
    snprintf(amount, sizeof amount, "%lld", (long long)c->amount);
    const char *rv[4] = {c->tenant_id, c->charge_id, live_str(c), amount};
    TOK_GUARD(exec1(conn, &refund_reserve_sql, rv, NULL, NULL));
    const char *iv[8] = {c->tenant_id, c->id, live_str(c), c->charge_id, amount, c->currency,
                         c->gateway, c->actor};
    return exec1(conn, &refund_insert_sql, iv, NULL, NULL);
}

static tok_status begin_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct charge_call *c = (struct charge_call *)job;
    TOK_GUARD(tok_db_set_tenant(conn, c->tenant_id));
    if (c->op == OP_GET_CHARGE || c->op == OP_GET_REFUND) {
        TOK_GUARD(load_object(conn, c, c->op == OP_GET_REFUND));
        if (!c->found)
            return TOK_OK;
        return tok_audit_insert(conn, c->tenant_id, c->actor,
                                c->op == OP_GET_REFUND ? "refund.read" : "charge.read", c->id,
                                c->request_id);
    }
    TOK_GUARD(tok_idem_begin(conn, c->tenant_id, c->livemode, &c->idem));
    if (c->idem.state != TOK_IDEM_NEW)
        return TOK_OK;
    switch (c->op) {
    case OP_CHARGE:
        return begin_charge(conn, c);
    case OP_CAPTURE:
    case OP_VOID:
        return begin_capture_void(conn, c);
    case OP_REFUND:
        return begin_refund(conn, c);
    case OP_COMPLETE:
        return begin_complete(conn, c);
    default:
        return TOK_ERR_INTERNAL;
    }
}

/* ---- finish (DB thread) ------------------------------------------------------------- */

/* The event the app hears about this change; NULL when nothing changed. */
static const char *event_type(const struct charge_call *c)
{
    bool ok = c->gw.outcome == TOK_GW_OK;
    switch (c->op) {
    case OP_CHARGE:
        if (strcmp(c->new_status, "succeeded") == 0)
            return "charge.succeeded";
        if (strcmp(c->new_status, "requires_capture") == 0)
            return "charge.authorized";
        if (strcmp(c->new_status, "requires_action") == 0)
            return "charge.requires_action";
        return strcmp(c->new_status, "declined") == 0 ? "charge.declined" : "charge.failed";
    case OP_COMPLETE:
        if (c->gw.outcome != TOK_GW_OK && c->gw.outcome != TOK_GW_DECLINED)
            return NULL;
        if (strcmp(c->new_status, "succeeded") == 0)
            return "charge.succeeded";
        return strcmp(c->new_status, "requires_capture") == 0 ? "charge.authorized"
                                                               : "charge.declined";
    case OP_CAPTURE:
        return ok ? "charge.captured" : NULL;
    case OP_VOID:
        return ok ? "charge.canceled" : NULL;
    case OP_REFUND:
        return ok ? "charge.refunded" : "refund.failed";
    default:
        return NULL;
    }
}

static tok_status finish_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct charge_call *c = (struct charge_call *)job;
    TOK_GUARD(tok_db_set_tenant(conn, c->tenant_id));
    char amount[24];
    snprintf(amount, sizeof amount, "%lld", (long long)c->result_amount);
    const char *action = "charge.updated";
    bool refund = c->op == OP_REFUND;
    if (c->op == OP_CHARGE) {
        const struct attempt *last = c->nattempts > 0 ? &c->attempts[c->nattempts - 1] : NULL;
        bool ok = last != NULL && strcmp(last->outcome, "succeeded") == 0;
        bool waits = last != NULL && strcmp(last->outcome, "requires_action") == 0;
        const char *v[10] = {c->tenant_id, c->id, live_str(c), c->new_status, amount,
                             last != NULL ? last->gateway : "", ok || waits ? last->ref : "",
                             !ok && !waits && last != NULL ? last->code : "",
                             c->gw.decline_code, waits ? c->action_url : ""};
        TOK_GUARD(exec1(conn, &charge_finish_sql, v, NULL, NULL));
        for (int i = 0; i < c->nattempts; i++) {
            char n[16];
            snprintf(n, sizeof n, "%d", i + 1);
            const char *av[7] = {c->tenant_id, c->id, n, c->attempts[i].gateway, c->attempts[i].outcome,
                                 c->attempts[i].code, c->attempts[i].ref};
            TOK_GUARD(exec1(conn, &attempt_insert_sql, av, NULL, NULL));
        }
        action = ok      ? "charge.succeeded"
                 : waits ? "charge.requires_action"
                 : strcmp(c->new_status, "declined") == 0 ? "charge.declined"
                                                          : "charge.failed";
    } else if (c->op == OP_COMPLETE) {
        bool decided = c->gw.outcome == TOK_GW_OK || c->gw.outcome == TOK_GW_DECLINED;
        if (decided) {
            bool paid = c->gw.outcome == TOK_GW_OK;
            const char *code = c->gw.code != NULL ? c->gw.code : "card_declined";
            const char *v[7] = {c->tenant_id, c->id, live_str(c), c->new_status, amount,
                                paid ? "" : code, paid ? "" : c->gw.decline_code};
            PGresult *res = NULL;
            TOK_GUARD(tok_db_exec(conn, &charge_decide_sql, v, NULL, NULL, &res));
            if (PQntuples(res) != 1)
                c->gw.outcome = TOK_GW_ACTION; /* a webhook decided it meanwhile: no event */
            PQclear(res);
        }
        action = !decided ? (c->gw.outcome == TOK_GW_ACTION ? "charge.requires_action"
                                                            : "charge.gateway_failed")
                 : c->gw.outcome == TOK_GW_OK ? "charge.succeeded"
                                              : "charge.declined";
    } else if (c->op == OP_CAPTURE || c->op == OP_VOID) {
        if (c->gw.outcome == TOK_GW_OK) {
            const char *v[6] = {c->tenant_id, c->id, live_str(c), "requires_capture", c->new_status,
                                c->op == OP_CAPTURE ? amount : "0"};
            TOK_GUARD(exec1(conn, &charge_transition_sql, v, NULL, NULL));
        }
        action = c->gw.outcome != TOK_GW_OK ? "charge.gateway_failed"
                 : c->op == OP_CAPTURE      ? "charge.captured"
                                            : "charge.voided";
    } else if (refund) {
        bool ok = c->gw.outcome == TOK_GW_OK;
        const char *v[6] = {c->tenant_id, c->id, live_str(c), ok ? "succeeded" : "failed",
                            ok ? c->gw.ref : "", ok ? "" : (c->gw.code != NULL ? c->gw.code : "gateway_error")};
        TOK_GUARD(exec1(conn, &refund_finish_sql, v, NULL, NULL));
        char amt[24];
        snprintf(amt, sizeof amt, "%lld", (long long)c->amount);
        const char *sv[5] = {c->tenant_id, c->charge_id, live_str(c), ok ? "t" : "f", amt};
        TOK_GUARD(exec1(conn, &refund_settle_sql, sv, NULL, NULL));
        action = ok ? "refund.succeeded" : "refund.failed";
    }
    TOK_GUARD(tok_audit_insert(conn, c->tenant_id, c->actor, action, c->id, c->request_id));
    TOK_GUARD(load_object(conn, c, refund));
    TOK_ENSURE(c->found, TOK_ERR_INTERNAL);
    /* the outbox row commits with the change it reports (webhooks to the app) */
    const char *event = event_type(c);
    if (event != NULL)
        TOK_GUARD(tok_events_emit(conn, c->tenant_id, c->livemode, event, tok_buf_slice(&c->body)));
    return tok_idem_finish(conn, c->tenant_id, c->livemode, &c->idem, c->http_status,
                           tok_buf_slice(&c->body));
}

static void finish_result(struct tok_call *call, struct tok_req *r)
{
    struct charge_call *c = (struct charge_call *)call;
    if (call->job.status != TOK_OK) {
        tok_log_err("%s: %s: recording %s failed (%s); the gateway outcome was %d", __func__, r->id,
                    c->id, tok_status_name(call->job.status), (int)c->gw.outcome);
        tok_http_problem_db(r, &call->job,
                            "the outcome could not be recorded; retry with the same Idempotency-Key");
        return;
    }
    tok_http_json(r, c->http_status, tok_buf_slice(&c->body));
}

static void submit_finish(struct tok_req *r, struct charge_call *c)
{
    sodium_memzero(c->pm_ref, sizeof c->pm_ref);
    c->finish_phase = true;
    c->call.job.exec = finish_exec;
    c->call.on_result = finish_result;
    if (r != NULL)
        tok_http_call(r, &c->call);
    else
        tok_http_call_detached(&c->call); /* the client left; the outcome is still recorded */
}

/* ---- the gateway step (loop thread) ----------------------------------------------------- */

static void start_attempt(struct tok_req *r, struct charge_call *c);

static void set_code(char *dst, size_t cap, const char *code)
{
    copy_field(dst, cap, code != NULL ? code : "");
}

static void on_gateway_done(struct tok_gateway_call *gw)
{
    struct charge_call *c = gw->data;
    struct tok_req *r = tok_http_unwatch(&c->call);
    sodium_memzero(c->pm_ref, sizeof c->pm_ref);
    if (c->op == OP_CHARGE) {
        struct attempt *a = &c->attempts[c->nattempts++];
        copy_field(a->gateway, sizeof a->gateway, c->refs[c->cur].gateway);
        a->outcome = gw->outcome == TOK_GW_OK         ? "succeeded"
                     : gw->outcome == TOK_GW_DECLINED ? "declined"
                     : gw->outcome == TOK_GW_ACTION   ? "requires_action"
                     : gw->outcome == TOK_GW_ERROR    ? "error"
                                                      : "unavailable";
        set_code(a->code, sizeof a->code, gw->outcome == TOK_GW_ACTION ? NULL : gw->code);
        copy_field(a->ref, sizeof a->ref,
                   gw->outcome == TOK_GW_OK || gw->outcome == TOK_GW_ACTION ? gw->ref : "");
        if (gw->outcome == TOK_GW_UNAVAILABLE && c->cur + 1 < c->nrefs && r != NULL) {
            tok_log_warn("%s: %s: gateway %s unavailable (%s), failing over", __func__, r->id,
                         a->gateway, a->code);
            c->cur++;
            start_attempt(r, c);
            return;
        }
        c->http_status = 201;
        if (gw->outcome == TOK_GW_ACTION) {
            c->http_status = 202;
            copy_field(c->new_status, sizeof c->new_status, "requires_action");
            copy_field(c->action_url, sizeof c->action_url, gw->action_url);
            c->result_amount = 0;
        } else if (gw->outcome == TOK_GW_OK) {
            copy_field(c->new_status, sizeof c->new_status, gw->captured ? "succeeded" : "requires_capture");
            c->result_amount = gw->captured ? c->amount : 0;
        } else {
            copy_field(c->new_status, sizeof c->new_status,
                       gw->outcome == TOK_GW_DECLINED ? "declined" : "failed");
            c->result_amount = 0;
        }
    } else if (c->op == OP_REFUND) {
        c->http_status = gw->outcome == TOK_GW_OK ? 201 : 502;
    } else if (c->op == OP_COMPLETE) {
        /* decided (paid or refused) or still waiting: 200; the gateway failed to say: 502 */
        c->http_status = gw->outcome == TOK_GW_ERROR || gw->outcome == TOK_GW_UNAVAILABLE ? 502
                                                                                       : 200;
        copy_field(c->new_status, sizeof c->new_status,
                   gw->outcome == TOK_GW_OK ? (gw->captured ? "succeeded" : "requires_capture")
                                            : "declined");
        c->result_amount = gw->outcome == TOK_GW_OK && gw->captured ? c->amount : 0;
    } else {
        c->http_status = gw->outcome == TOK_GW_OK ? 200 : 502;
        copy_field(c->new_status, sizeof c->new_status, c->op == OP_CAPTURE ? "succeeded" : "canceled");
        c->result_amount = c->amount;
    }
    submit_finish(r, c);
}

/* The adapter and account for a gateway id: one of the principal's accounts,
 * or the implicit sandbox (test mode only). */
static bool gateway_for(struct tok_req *r, struct charge_call *c, const char *id,
                        const struct tok_gateway_ops **ops, const struct tok_gateway_account **account)
{
    const struct tok_principal *p = r->principal;
    for (unsigned i = 0; i < p->naccounts; i++) {
        if (strcmp(p->accounts[i].id, id) == 0) {
            *ops = p->accounts[i].ops;
            *account = &p->accounts[i];
            return true;
        }
    }
    if (strcmp(id, "sandbox") == 0 && !c->livemode) {
        *ops = tok_gateway_sandbox();
        *account = NULL;
        return true;
    }
    return false;
}

static void fail_attempt(struct tok_req *r, struct charge_call *c, const char *code)
{
    c->gw.outcome = TOK_GW_UNAVAILABLE;
    c->gw.code = code;
    tok_http_watch(r, &c->call);
    on_gateway_done(&c->gw);
}

static void start_attempt(struct tok_req *r, struct charge_call *c)
{
    struct gw_ref *g = &c->refs[c->cur];
    const struct tok_gateway_ops *ops = NULL;
    const struct tok_gateway_account *account = NULL;
    memset(&c->gw, 0, sizeof c->gw);
    c->gw.data = c;
    c->gw.done = on_gateway_done;
    if (!gateway_for(r, c, g->gateway, &ops, &account)) {
        fail_attempt(r, c, "gateway_not_configured");
        return;
    }
    /* during a data-key rotation a reference is under the active or the previous version */
    const struct tok_tenant_keys *keys = tok_principal_keys(r->principal, g->key_version);
    if (keys == NULL) {
        tok_log_err("%s: %s: reference sealed under key version %u, active is %u", __func__, r->id,
                    g->key_version, tok_tenant_keys_version(r->principal->keys));
        fail_attempt(r, c, "key_version_unavailable");
        return;
    }
    char row_id[TOK_ID_MAX + TOK_GATEWAY_NAME_MAX + 2];
    snprintf(row_id, sizeof row_id, "%s:%s", c->token_id, g->gateway);
    struct tok_aad aad = {c->tenant_id, "vault.gateway_refs", "ref_sealed", row_id};
    struct tok_buf pm;
    tok_buf_init(&pm, c->pm_ref, sizeof c->pm_ref - 1);
    if (tok_tenant_keys_open(keys, aad, tok_slice_of(g->sealed, (size_t)g->sealed_len), &pm) != TOK_OK) {
        tok_log_err("%s: %s: the %s reference of %s does not open", __func__, r->id, g->gateway, c->token_id);
        fail_attempt(r, c, "reference_unreadable");
        return;
    }
    c->pm_ref[pm.len] = '\0';
    c->gw.op = TOK_GW_CHARGE;
    c->gw.livemode = c->livemode;
    c->gw.account = account;
    c->gw.env = &r->worker->gw_env;
    c->gw.pm_ref = c->pm_ref;
    c->gw.amount = c->amount;
    copy_field(c->gw.currency, sizeof c->gw.currency, c->currency);
    c->gw.capture = c->capture;
    c->gw.off_session = c->off_session;
    c->gw.return_url = !c->off_session && c->return_url[0] != '\0' ? c->return_url : NULL;
    c->gw.browser = !c->off_session && c->has_browser ? &c->browser : NULL;
    snprintf(c->gw.idempotency_key, sizeof c->gw.idempotency_key, "tokend_%s_%s", c->id, g->gateway);
    tok_http_watch(r, &c->call);
    tok_gateway_submit(ops, &c->gw);
}

static void start_followup(struct tok_req *r, struct charge_call *c)
{
    const struct tok_gateway_ops *ops = NULL;
    const struct tok_gateway_account *account = NULL;
    memset(&c->gw, 0, sizeof c->gw);
    c->gw.data = c;
    c->gw.done = on_gateway_done;
    if (!gateway_for(r, c, c->gateway, &ops, &account)) {
        c->gw.outcome = TOK_GW_ERROR;
        c->gw.code = "gateway_not_configured";
        tok_http_watch(r, &c->call);
        on_gateway_done(&c->gw);
        return;
    }
    c->gw.op = c->op == OP_CAPTURE    ? TOK_GW_CAPTURE
               : c->op == OP_VOID     ? TOK_GW_VOID
               : c->op == OP_COMPLETE ? TOK_GW_COMPLETE
                                      : TOK_GW_REFUND;
    c->gw.capture = !c->manual;
    c->gw.return_data = c->redirect_result[0] != '\0' ? c->redirect_result : NULL;
    c->gw.livemode = c->livemode;
    c->gw.account = account;
    c->gw.env = &r->worker->gw_env;
    c->gw.charge_ref = c->gateway_ref;
    c->gw.amount = c->amount;
    copy_field(c->gw.currency, sizeof c->gw.currency, c->currency);
    snprintf(c->gw.idempotency_key, sizeof c->gw.idempotency_key, "tokend_%s_%s", c->id,
             c->op == OP_CAPTURE    ? "capture"
             : c->op == OP_VOID     ? "void"
             : c->op == OP_COMPLETE ? "complete"
                                    : "refund");
    tok_http_watch(r, &c->call);
    tok_gateway_submit(ops, &c->gw);
}

static void begin_result(struct tok_call *call, struct tok_req *r)
{
    struct charge_call *c = (struct charge_call *)call;
    if (call->job.status != TOK_OK) {
        tok_log_err("%s: %s: %s failed (%s)", __func__, r->id, c->id, tok_status_name(call->job.status));
        tok_http_problem_db(r, &call->job, NULL);
        return;
    }
    if (c->op == OP_GET_CHARGE || c->op == OP_GET_REFUND) {
        if (!c->found) {
            bool refund = c->op == OP_GET_REFUND;
            tok_http_problem(r, 404, refund ? "refund_not_found" : "charge_not_found",
                             refund ? "no such refund" : "no such charge", "id");
            return;
        }
        tok_http_json(r, 200, tok_buf_slice(&c->body));
        return;
    }
    if (c->idem.state != TOK_IDEM_NEW) {
        tok_idem_respond(r, &c->idem);
        return;
    }
    bool refund = c->op == OP_REFUND;
    switch (c->refusal) {
    case R_NONE:
        break;
    case R_TOKEN_NOT_FOUND:
        tok_http_problem(r, 404, "token_not_found", "no such token", "token");
        return;
    case R_TOKEN_REDACTED:
        tok_http_problem(r, 422, "token_redacted", "the token was redacted", "token");
        return;
    case R_TOKEN_EXPIRED:
        tok_http_problem(r, 422, "token_expired", "the token has expired", "token");
        return;
    case R_NO_GATEWAY:
        tok_http_problem(r, 422, "no_gateway", "the token has no usable gateway reference",
                         c->only_gateway[0] ? "gateway" : "token");
        return;
    case R_CHARGE_NOT_FOUND:
        tok_http_problem(r, 404, "charge_not_found", "no such charge", refund ? "charge" : "id");
        return;
    case R_BAD_STATE:
        tok_http_problem(r, 409, refund ? "charge_not_refundable" : "charge_not_capturable",
                         refund ? "the charge has nothing left to refund"
                                : "only a charge in requires_capture can be captured or voided",
                         NULL);
        return;
    case R_AMOUNT_TOO_LARGE:
        tok_http_problem(r, 422, refund ? "amount_exceeds_refundable" : "amount_exceeds_capturable",
                         "the amount is larger than what remains", "amount");
        return;
    default:
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return;
    }
    if (c->op == OP_COMPLETE && c->decided) {
        tok_http_json(r, 200, tok_buf_slice(&c->body));
        return;
    }
    c->keep = true; /* on_call_done releases once; this object lives on */
    if (c->op == OP_CHARGE)
        start_attempt(r, c);
    else
        start_followup(r, c);
}

static void submit_begin(struct tok_req *r, struct charge_call *c)
{
    c->call.job.exec = begin_exec;
    c->call.on_result = begin_result;
    tok_http_call_cancellable(r, &c->call); /* a reset stream starts no charge */
}

/* ---- request parsing (loop thread) ----------------------------------------------------- */

struct field_error {
    const char *code, *param, *detail;
};

#define FAIL(fe, c, p, d)                                                                          \
    do {                                                                                           \
        (fe)->code = (c);                                                                          \
        (fe)->param = (p);                                                                         \
        (fe)->detail = (d);                                                                        \
        return TOK_ERR_INPUT;                                                                      \
    } while (0)

static tok_status get_id(const struct tok_json_node *root, const char *field, const char *prefix,
                         bool required, char *out, size_t cap, struct field_error *fe)
{
    const struct tok_json_node *n = tok_json_get(root, field);
    struct tok_slice v;
    if (n == NULL) {
        if (required)
            FAIL(fe, "missing_field", field, "this field is required");
        return TOK_OK;
    }
    if (tok_json_string(n, &v) != TOK_OK)
        FAIL(fe, "invalid_type", field, "must be a string");
    if (!id_ok(v, prefix) || v.len >= cap)
        FAIL(fe, "invalid_id", field, "not an identifier of the right kind");
    tok_copy(out, v.ptr, v.len);
    out[v.len] = '\0';
    return TOK_OK;
}

static tok_status get_amount(const struct tok_json_node *root, bool required, int64_t *out,
                             struct field_error *fe)
{
    const struct tok_json_node *n = tok_json_get(root, "amount");
    if (n == NULL) {
        if (required)
            FAIL(fe, "missing_field", "amount", "amount is required (integer, minor units)");
        return TOK_OK;
    }
    if (tok_json_int64(n, out) != TOK_OK)
        FAIL(fe, "invalid_type", "amount", "amount must be an integer in minor units");
    if (*out < 1 || *out > TOK_AMOUNT_MAX)
        FAIL(fe, "invalid_amount", "amount", "amount must be from 1 to 99999999 minor units");
    return TOK_OK;
}

static tok_status get_text(const struct tok_json_node *root, const char *field, char *out,
                           size_t max, struct field_error *fe)
{
    const struct tok_json_node *n = tok_json_get(root, field);
    struct tok_slice v;
    if (n == NULL || tok_json_type(n) == TOK_JSON_NULL)
        return TOK_OK;
    if (tok_json_string(n, &v) != TOK_OK)
        FAIL(fe, "invalid_type", field, "must be a string");
    if (v.len > max)
        FAIL(fe, "too_long", field, "the text is too long");
    /* what PostgreSQL's text can hold (no NUL), checked before the gateway is called */
    if (!tok_json_text_storable(v))
        FAIL(fe, "invalid_text", field, "the text must be UTF-8 without NUL (\\u0000)");
    tok_copy(out, v.ptr, v.len);
    out[v.len] = '\0';
    return TOK_OK;
}

static const char *const charge_fields[] = {"token", "amount", "currency", "capture",
                                            "description", "invoice_ref", "gateway",
                                            "off_session", "return_url", "browser"};
static const char *const complete_fields[] = {"redirect_result"};

/* An absolute http(s) URL of printable ASCII, no quotes or angle brackets, at most max. */
static tok_status get_url(const struct tok_json_node *root, const char *field, char *out,
                          size_t max, struct field_error *fe)
{
    const struct tok_json_node *n = tok_json_get(root, field);
    struct tok_slice v;
    if (n == NULL || tok_json_type(n) == TOK_JSON_NULL)
        return TOK_OK;
    if (tok_json_string(n, &v) != TOK_OK)
        FAIL(fe, "invalid_type", field, "must be a string");
    bool https = v.len > 8 && strncmp((const char *)v.ptr, "https://", 8) == 0;
    bool http = v.len > 7 && strncmp((const char *)v.ptr, "http://", 7) == 0;
    if (v.len > max || !(https || http))
        FAIL(fe, "invalid_return_url", field, "an absolute http(s) URL of at most 1023 bytes");
    for (size_t i = 0; i < v.len; i++)
        if (v.ptr[i] <= 0x20 || v.ptr[i] >= 0x7f || v.ptr[i] == '"' || v.ptr[i] == '<' ||
            v.ptr[i] == '>')
            FAIL(fe, "invalid_return_url", field,
                 "the URL must be printable ASCII (percent-encode the rest)");
    if (tok_contains_pan(v))
        FAIL(fe, "text_contains_pan", field, "a URL must not hold card numbers");
    tok_copy(out, v.ptr, v.len);
    out[v.len] = '\0';
    return TOK_OK;
}

/*
 * browser: the customer's browser, as 3-D Secure 2 describes it (EMV 3DS browser fields;
 * Adyen's browserInfo requires all eight; docs/adapters.md). Strings as browsers send them in
 * HTTP (printable ASCII), numbers in the ranges browsers report.
 */
static const char *const browser_fields[] = {
    "user_agent",   "accept_header",    "language",     "color_depth", "screen_height",
    "screen_width", "time_zone_offset", "java_enabled", "ip_address"};

/* JSON-escaped length: '"' and '\\' take two bytes (check_gateway_adyen's budget) */
static size_t escaped_len(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += (*s == '"' || *s == '\\') ? 2 : 1;
    return n;
}

static tok_status browser_text(const struct tok_json_node *b, const char *key, const char *param,
                               bool tag, char *out, size_t max, struct field_error *fe)
{
    const struct tok_json_node *n = tok_json_get(b, key);
    struct tok_slice v;
    if (n == NULL && strcmp(key, "ip_address") == 0)
        return TOK_OK;
    if (n == NULL)
        FAIL(fe, "missing_field", param, "browser needs user_agent, accept_header, language, "
                                         "color_depth, screen_height, screen_width, "
                                         "time_zone_offset and java_enabled");
    if (tok_json_string(n, &v) != TOK_OK)
        FAIL(fe, "invalid_type", param, "must be a string");
    if (v.len == 0)
        FAIL(fe, "invalid_browser", param, "must not be empty");
    if (v.len > max)
        FAIL(fe, "too_long", param, "the text is too long");
    for (size_t i = 0; i < v.len; i++) {
        uint8_t ch = v.ptr[i];
        bool ok = tag ? ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                         (ch >= '0' && ch <= '9') || ch == '-')
                      : ch >= 0x20 && ch < 0x7f;
        if (!ok)
            FAIL(fe, "invalid_browser", param,
                 tag ? "a BCP 47 language tag (letters, digits, '-')"
                     : "printable ASCII, as the browser sends it in HTTP");
    }
    if (tok_contains_pan(v))
        FAIL(fe, "text_contains_pan", param, "browser fields must not hold card numbers");
    tok_copy(out, v.ptr, v.len);
    out[v.len] = '\0';
    return TOK_OK;
}

static tok_status browser_int(const struct tok_json_node *b, const char *key, const char *param,
                              int64_t lo, int64_t hi, int *out, struct field_error *fe)
{
    const struct tok_json_node *n = tok_json_get(b, key);
    int64_t v = 0;
    if (n == NULL)
        FAIL(fe, "missing_field", param, "browser needs user_agent, accept_header, language, "
                                         "color_depth, screen_height, screen_width, "
                                         "time_zone_offset and java_enabled");
    if (tok_json_int64(n, &v) != TOK_OK)
        FAIL(fe, "invalid_type", param, "must be an integer");
    if (v < lo || v > hi)
        FAIL(fe, "invalid_browser", param, "out of the range browsers report");
    *out = (int)v;
    return TOK_OK;
}

static tok_status get_browser(const struct tok_json_node *root, struct charge_call *c,
                              struct field_error *fe)
{
    const struct tok_json_node *b = tok_json_get(root, "browser");
    struct tok_slice unknown;
    if (b == NULL || tok_json_type(b) == TOK_JSON_NULL)
        return TOK_OK;
    if (tok_json_type(b) != TOK_JSON_OBJECT)
        FAIL(fe, "invalid_type", "browser", "browser must be an object");
    if (tok_json_check_keys(b, browser_fields, TOK_ARRAY_LEN(browser_fields), &unknown) != TOK_OK)
        FAIL(fe, "unknown_field", "browser", "browser has a field tokend does not take");
    struct tok_browser_info *bi = &c->browser;
    TOK_GUARD(browser_text(b, "user_agent", "browser.user_agent", false, bi->user_agent,
                           TOK_BROWSER_UA_MAX, fe));
    TOK_GUARD(browser_text(b, "accept_header", "browser.accept_header", false, bi->accept_header,
                           TOK_BROWSER_ACCEPT_MAX, fe));
    TOK_GUARD(browser_text(b, "language", "browser.language", true, bi->language,
                           TOK_BROWSER_LANGUAGE_MAX, fe));
    TOK_GUARD(browser_int(b, "color_depth", "browser.color_depth", 1, 48, &bi->color_depth, fe));
    static const int depths[] = {1, 4, 8, 15, 16, 24, 30, 32, 48};
    bool depth_ok = false;
    for (size_t i = 0; i < TOK_ARRAY_LEN(depths); i++)
        depth_ok = depth_ok || bi->color_depth == depths[i];
    if (!depth_ok)
        FAIL(fe, "invalid_browser", "browser.color_depth",
             "screen.colorDepth: 1, 4, 8, 15, 16, 24, 30, 32 or 48");
    TOK_GUARD(browser_int(b, "screen_height", "browser.screen_height", 1, 999999,
                          &bi->screen_height, fe));
    TOK_GUARD(browser_int(b, "screen_width", "browser.screen_width", 1, 999999,
                          &bi->screen_width, fe));
    /* Date.getTimezoneOffset(): UTC-12 .. UTC+14 */
    TOK_GUARD(browser_int(b, "time_zone_offset", "browser.time_zone_offset", -840, 720,
                          &bi->time_zone_offset, fe));
    const struct tok_json_node *jn = tok_json_get(b, "java_enabled");
    if (jn == NULL)
        FAIL(fe, "missing_field", "browser.java_enabled", "java_enabled is required (boolean)");
    if (tok_json_bool(jn, &bi->java_enabled) != TOK_OK)
        FAIL(fe, "invalid_type", "browser.java_enabled", "must be true or false");
    TOK_GUARD(browser_text(b, "ip_address", "browser.ip_address", false, bi->ip_address,
                           TOK_BROWSER_IP_MAX, fe));
    uint8_t addr[16];
    if (bi->ip_address[0] != '\0' && inet_pton(AF_INET, bi->ip_address, addr) != 1 &&
        inet_pton(AF_INET6, bi->ip_address, addr) != 1)
        FAIL(fe, "invalid_browser", "browser.ip_address", "an IPv4 or IPv6 address");
    c->has_browser = true;
    return TOK_OK;
}

static const char *const capture_fields[] = {"amount"};
static const char *const refund_fields[] = {"charge", "amount"};

static tok_status parse_body(struct tok_req *r, struct charge_call *c, struct field_error *fe)
{
    h2o_req_t *req = r->req;
    struct tok_json_doc *doc = NULL;
    struct tok_json_error jerr;
    if (req->entity.len == 0 && (c->op == OP_CAPTURE || c->op == OP_VOID || c->op == OP_COMPLETE))
        return TOK_OK; /* no body: the defaults */
    struct tok_json_limits lim = tok_json_limits_default();
    lim.max_body = r->app->cfg->body_limit;
    if (tok_json_parse(tok_slice_of(req->entity.base, req->entity.len), &lim, &doc, &jerr) != TOK_OK) {
        fe->code = jerr.code != NULL ? jerr.code : "malformed_json";
        fe->param = NULL;
        fe->detail = NULL;
        return TOK_ERR_BOUNDS; /* 400 */
    }
    const struct tok_json_node *root = tok_json_root(doc);
    tok_status st = TOK_OK;
    struct tok_slice unknown;
    const char *const *allowed = c->op == OP_CHARGE     ? charge_fields
                                 : c->op == OP_REFUND   ? refund_fields
                                 : c->op == OP_COMPLETE ? complete_fields
                                                        : capture_fields;
    size_t nallowed = c->op == OP_CHARGE     ? TOK_ARRAY_LEN(charge_fields)
                      : c->op == OP_REFUND   ? TOK_ARRAY_LEN(refund_fields)
                      : c->op == OP_COMPLETE ? TOK_ARRAY_LEN(complete_fields)
                      : c->op == OP_VOID     ? 0
                                             : TOK_ARRAY_LEN(capture_fields);
    if (tok_json_type(root) != TOK_JSON_OBJECT) {
        fe->code = "invalid_type", fe->param = "body", fe->detail = "the body must be a JSON object";
        st = TOK_ERR_INPUT;
    } else if (tok_json_check_keys(root, allowed, nallowed, &unknown) != TOK_OK) {
        fe->code = "unknown_field", fe->param = NULL, fe->detail = "the body has a field this route does not take";
        st = TOK_ERR_INPUT;
    } else if (c->op == OP_CHARGE) {
        st = get_id(root, "token", "tok_", true, c->token_id, sizeof c->token_id, fe);
        if (st == TOK_OK)
            st = get_amount(root, true, &c->amount, fe);
        const struct tok_json_node *n = tok_json_get(root, "currency");
        struct tok_slice cur;
        if (st == TOK_OK && n == NULL)
            fe->code = "missing_field", fe->param = "currency", fe->detail = "currency is required", st = TOK_ERR_INPUT;
        else if (st == TOK_OK && (tok_json_string(n, &cur) != TOK_OK || tok_currency_normalise(cur, c->currency) != TOK_OK))
            fe->code = "invalid_currency", fe->param = "currency", fe->detail = "an ISO 4217 code tokend supports", st = TOK_ERR_INPUT;
        c->capture = true;
        n = tok_json_get(root, "capture");
        if (st == TOK_OK && n != NULL && tok_json_bool(n, &c->capture) != TOK_OK)
            fe->code = "invalid_type", fe->param = "capture", fe->detail = "capture must be true or false", st = TOK_ERR_INPUT;
        c->off_session = true; /* tokend charged stored cards merchant-initiated before it asked */
        n = tok_json_get(root, "off_session");
        if (st == TOK_OK && n != NULL && tok_json_bool(n, &c->off_session) != TOK_OK)
            fe->code = "invalid_type", fe->param = "off_session", fe->detail = "off_session must be true or false", st = TOK_ERR_INPUT;
        if (st == TOK_OK)
            st = get_text(root, "description", c->description, TOK_DESCRIPTION_MAX, fe);
        if (st == TOK_OK)
            st = get_text(root, "invoice_ref", c->invoice_ref, TOK_INVOICE_REF_MAX, fe);
        if (st == TOK_OK)
            st = get_text(root, "gateway", c->only_gateway, sizeof c->only_gateway - 1, fe);
        if (st == TOK_OK)
            st = get_url(root, "return_url", c->return_url, sizeof c->return_url - 1, fe);
        if (st == TOK_OK)
            st = get_browser(root, c, fe);
        if (st == TOK_OK && c->has_browser && c->off_session)
            fe->code = "browser_requires_customer", fe->param = "browser",
            fe->detail = "browser describes a customer present: give it with off_session false",
            st = TOK_ERR_INPUT;
        if (st == TOK_OK && c->has_browser &&
            escaped_len(c->return_url) + escaped_len(c->browser.user_agent) +
                    escaped_len(c->browser.accept_header) > TOK_GATEWAY_CUSTOMER_TEXT_MAX)
            fe->code = "too_long", fe->param = "browser",
            fe->detail = "return_url, browser.user_agent and browser.accept_header together "
                         "are too long for the gateway request",
            st = TOK_ERR_INPUT;
        if (st == TOK_OK && (tok_contains_pan(tok_slice_str(c->description)) || tok_contains_pan(tok_slice_str(c->invoice_ref))))
            fe->code = "text_contains_pan", fe->param = "description", fe->detail = "free text must not hold card numbers", st = TOK_ERR_INPUT;
    } else if (c->op == OP_REFUND) {
        st = get_id(root, "charge", "ch_", true, c->charge_id, sizeof c->charge_id, fe);
        if (st == TOK_OK)
            st = get_amount(root, false, &c->amount, fe);
    } else if (c->op == OP_CAPTURE) {
        st = get_amount(root, false, &c->amount, fe);
    } else if (c->op == OP_COMPLETE) {
        const struct tok_json_node *n = tok_json_get(root, "redirect_result");
        struct tok_slice v;
        if (n != NULL && tok_json_type(n) != TOK_JSON_NULL) {
            bool ok = tok_json_string(n, &v) == TOK_OK && v.len >= 1 &&
                      v.len < sizeof c->redirect_result;
            for (size_t i = 0; ok && i < v.len; i++)
                ok = v.ptr[i] > 0x20 && v.ptr[i] < 0x7f;
            if (!ok)
                fe->code = "invalid_redirect_result", fe->param = "redirect_result",
                fe->detail = "the redirectResult the gateway appended to return_url, as given",
                st = TOK_ERR_INPUT;
            else
                tok_copy(c->redirect_result, v.ptr, v.len), c->redirect_result[v.len] = '\0';
        }
    }
    tok_json_doc_free(&doc);
    return st;
}

/* ---- handlers -------------------------------------------------------------------------- */

static void start_post(struct tok_req *r, enum op op)
{
    struct charge_call *c = call_new(r, op);
    if (c == NULL) {
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    if (op == OP_CAPTURE || op == OP_VOID || op == OP_COMPLETE) {
        if (!id_ok(r->params[0], "ch_")) {
            tok_http_problem(r, 404, "charge_not_found", "no such charge", "id");
            call_release(&c->call);
            return;
        }
        tok_copy(c->id, r->params[0].ptr, r->params[0].len);
    } else {
        struct tok_buf ib;
        tok_buf_init(&ib, c->id, sizeof c->id - 1);
        if (tok_random_id(op == OP_CHARGE ? "ch_" : "re_", &ib) != TOK_OK) {
            tok_http_problem(r, 500, "internal_error", NULL, NULL);
            call_release(&c->call);
            return;
        }
    }
    struct field_error fe = {0};
    tok_status st = parse_body(r, c, &fe);
    if (st != TOK_OK) {
        tok_http_problem(r, st == TOK_ERR_BOUNDS ? 400 : 422, fe.code, fe.detail, fe.param);
        call_release(&c->call);
        return;
    }
    if (tok_idem_from_request(r, &c->idem) != TOK_OK) {
        tok_http_problem(r, 400, "invalid_idempotency_key",
                         "Idempotency-Key must be 1 to 255 printable ASCII characters", NULL);
        call_release(&c->call);
        return;
    }
    submit_begin(r, c);
}

static void start_get(struct tok_req *r, enum op op)
{
    const char *prefix = op == OP_GET_CHARGE ? "ch_" : "re_";
    if (!id_ok(r->params[0], prefix)) {
        tok_http_problem(r, 404, op == OP_GET_CHARGE ? "charge_not_found" : "refund_not_found",
                         "no such object", "id");
        return;
    }
    struct charge_call *c = call_new(r, op);
    if (c == NULL) {
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    tok_copy(c->id, r->params[0].ptr, r->params[0].len);
    submit_begin(r, c);
}

static void charge_authed(struct tok_req *r) { start_post(r, OP_CHARGE); }
static void capture_authed(struct tok_req *r) { start_post(r, OP_CAPTURE); }
static void void_authed(struct tok_req *r) { start_post(r, OP_VOID); }
static void refund_authed(struct tok_req *r) { start_post(r, OP_REFUND); }
static void complete_authed(struct tok_req *r) { start_post(r, OP_COMPLETE); }
static void get_charge_authed(struct tok_req *r) { start_get(r, OP_GET_CHARGE); }
static void get_refund_authed(struct tok_req *r) { start_get(r, OP_GET_REFUND); }

void tok_charges_create(struct tok_req *r) { tok_auth_require_limited(r, TOK_SCOPE_CHARGES_WRITE, TOK_RL_CHARGE, charge_authed); }
void tok_charges_capture(struct tok_req *r) { tok_auth_require_limited(r, TOK_SCOPE_CHARGES_WRITE, TOK_RL_CHARGE, capture_authed); }
void tok_charges_void(struct tok_req *r) { tok_auth_require_limited(r, TOK_SCOPE_CHARGES_WRITE, TOK_RL_CHARGE, void_authed); }
void tok_charges_complete(struct tok_req *r) { tok_auth_require_limited(r, TOK_SCOPE_CHARGES_WRITE, TOK_RL_CHARGE, complete_authed); }
void tok_refunds_create(struct tok_req *r) { tok_auth_require_limited(r, TOK_SCOPE_CHARGES_WRITE, TOK_RL_CHARGE, refund_authed); }
void tok_charges_get(struct tok_req *r) { tok_auth_require(r, TOK_SCOPE_CHARGES_WRITE | TOK_SCOPE_REPORTS_READ, get_charge_authed); }
void tok_refunds_get(struct tok_req *r) { tok_auth_require(r, TOK_SCOPE_CHARGES_WRITE | TOK_SCOPE_REPORTS_READ, get_refund_authed); }
