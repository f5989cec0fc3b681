/*
 * webhooks.c - the webhook routes: inbound gateway events, outbound endpoint
 * creation and the delivery log of an event. Formats and the state machine's
 * decision live in webhooks_sig.c; the outbox in events.c.
 */
#include "tokend/events/webhooks.h"
#include "tokend/vault/auth.h"
#include "tokend/core/base62.h"
#include "tokend/core/json.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"
#include "tokend/http/app.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CRED_MAX 4096
#define OUT_MAX (64u * 1024u)

enum kind { K_SANDBOX, K_STRIPE, K_ADYEN };
static const char *const kind_names[] = {"sandbox", "stripe", "adyen"};

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    tok_copy(dst, src, n);
    dst[n] = '\0';
}

static int int_field(const char *s)
{
    return (int)strtol(s, NULL, 10);
}

static bool id_ok(struct tok_slice id, const char *prefix)
{
    size_t pl = strlen(prefix);
    return id.len == pl + TOK_RANDOM_ID_CHARS && memcmp(id.ptr, prefix, pl) == 0 &&
           tok_base62_is_alphabet(tok_slice_of(id.ptr + pl, id.len - pl));
}

/* ---- inbound ------------------------------------------------------------------------ */

struct hook_call {
    struct tok_call call; /* first */
    enum kind kind;
    char gw_id[TOK_ID_MAX];
    struct tok_buf body; /* the raw body, copied; wiped on release */
    struct tok_buf sig;  /* the signature header, copied */
    bool has_sig;
    int64_t now;
    const struct tok_keyring *kr;
    char request_id[TOK_REQUEST_ID_LEN + 1];
    /* results */
    int status;
    const char *code;
    const char *detail;
    unsigned nevents, ndup, napplied;
};

static const struct tok_sql lookup_sql = {
    "webhook_gateway_lookup",
    "SELECT tenant_id, kind, livemode, credentials_sealed, key_version, wrapped_dek, wrapped_fpk "
    "FROM vault.gateway_for_webhook($1)",
    1};

static const struct tok_sql charge_find_sql = {
    "webhook_charge_find",
    "SELECT c.id, c.status, c.amount, c.captured_amount, c.refunded_amount, "
    "c.capture_method = 'manual', ($4 <> '' AND EXISTS (SELECT 1 FROM ledger.refunds r WHERE "
    "r.tenant_id = c.tenant_id AND r.charge_id = c.id AND r.gateway_ref = $4)) "
    "FROM ledger.charges c WHERE c.tenant_id = $1 AND c.gateway_ref = $2 AND c.livemode = $3::boolean "
    "ORDER BY c.created_at LIMIT 1 FOR UPDATE OF c",
    4};

static const struct tok_sql event_record_sql = {
    "webhook_event_record",
    "INSERT INTO ledger.gateway_events (tenant_id, gateway_id, gateway_event_id, gateway, livemode, "
    "type, gateway_ref, charge_id, applied, outcome, from_status, to_status, token_id, payload) "
    "VALUES ($1, $2, $3, $4, $5::boolean, $6, nullif($7, ''), nullif($8, ''), $9::boolean, $10, "
    "nullif($11, ''), nullif($12, ''), nullif($17, ''), jsonb_strip_nulls(jsonb_build_object("
    "'action', $13::text, 'amount_captured', nullif($14, '')::bigint, "
    "'amount_refunded', nullif($15, '')::bigint, 'refund_reference', nullif($16, ''), "
    "'exp_month', nullif($18, '')::integer, 'exp_year', nullif($19, '')::integer, "
    "'last4', nullif($20, ''), 'brand', nullif($21, '')))) ON CONFLICT DO NOTHING RETURNING 1",
    21};

static const struct tok_sql charge_apply_sql = {
    "webhook_charge_apply",
    "UPDATE ledger.charges c SET status = $4, captured_amount = $5::bigint, "
    "refunded_amount = $6::bigint, next_action_url = NULL, updated_at = now() "
    "WHERE c.tenant_id = $1 AND c.id = $2 "
    "AND c.livemode = $3::boolean RETURNING ledger.charge_object(c)::text",
    6};

/* The token whose reference at this gateway account hashes to $3 (sql/009). */
static const struct tok_sql token_find_sql = {
    "webhook_token_find",
    "SELECT t.id, t.exp_month, t.exp_year, t.last4, t.brand FROM vault.gateway_refs r "
    "JOIN vault.tokens t ON t.tenant_id = r.tenant_id AND t.id = r.token_id "
    "WHERE r.tenant_id = $1 AND r.gateway = $2 AND r.ref_lookup = $3 AND r.status = 'active' "
    "AND t.livemode = $4::boolean AND t.redacted_at IS NULL "
    "ORDER BY t.created_at LIMIT 1 FOR UPDATE OF t",
    4};

static const struct tok_sql token_card_apply_sql = {
    "webhook_token_card_apply",
    "UPDATE vault.tokens t SET exp_month = $3::smallint, exp_year = $4::smallint, last4 = $5, "
    "brand = coalesce(nullif($6, ''), t.brand) WHERE t.tenant_id = $1 AND t.id = $2 "
    "RETURNING vault.token_object(t)::text",
    6};

static const char *const action_names[] = {"ignore", "authorised", "requires_capture", "succeeded",
                                           "refund_total", "refund_delta", "disputed", "failed",
                                           "canceled", "card_updated", "refund_failed"};

/* A failed refund: the refund the gateway names, if tokend recorded it succeeded. */
static const struct tok_sql refund_failed_find_sql = {
    "webhook_refund_failed_find",
    "SELECT r.id, r.status FROM ledger.refunds r WHERE r.tenant_id = $1 AND r.charge_id = $2 "
    "AND r.gateway_ref = $3 AND r.livemode = $4::boolean FOR UPDATE",
    4};

/* ... then marked failed and its amount given back to the charge, once: only a refund still
 * 'succeeded' changes, so a second event for it (a replay under another id, or the other of
 * Stripe's two event types) finds nothing to do. A charge that was refunded in full or in part
 * goes back to partially_refunded or succeeded; a disputed one keeps its status. */
static const struct tok_sql refund_failed_apply_sql = {
    "webhook_refund_failed_apply",
    "WITH r AS (UPDATE ledger.refunds SET status = 'failed', failure_code = $4, updated_at = now() "
    "WHERE tenant_id = $1 AND id = $2 AND livemode = $3::boolean AND status = 'succeeded' "
    "RETURNING *) "
    "UPDATE ledger.charges c SET refunded_amount = c.refunded_amount - r.amount, "
    "status = CASE WHEN c.status NOT IN ('refunded', 'partially_refunded') THEN c.status "
    "WHEN c.refunded_amount = r.amount THEN 'succeeded' ELSE 'partially_refunded' END, "
    "updated_at = now() FROM r WHERE c.tenant_id = $1 AND c.id = r.charge_id "
    "AND c.livemode = $3::boolean RETURNING ledger.charge_object(c)::text, "
    "jsonb_build_object('id', r.id, 'object', 'refund', 'livemode', r.livemode, "
    "'charge', r.charge_id, "
    "'amount', r.amount, 'currency', r.currency, 'status', 'failed', 'gateway', r.gateway, "
    "'gateway_reference', r.gateway_ref, 'failure_code', $4::text, 'created_at', "
    "to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))::text, c.status",
    4};

/* What an event did, as ledger.gateway_events records it. */
struct verdict {
    const char *outcome; /* applied, not_applied, unmatched, ignored */
    bool apply;
    char charge_id[TOK_ID_MAX], token_id[TOK_ID_MAX], from[24];
    const char *to;
    bool card_ok; /* the card fields passed validation: the only ones ever recorded */
};

/* Records the event once; *fresh is false for a redelivery, which then changes nothing. */
static tok_status record_event(struct tok_db_conn *conn, struct hook_call *h, const char *tenant,
                               bool live, const struct tok_gw_event *e, const struct verdict *v,
                               bool *fresh)
{
    char cap[24] = "", ref[24] = "", month[8] = "", year[8] = "";
    if (e->amount_captured >= 0)
        snprintf(cap, sizeof cap, "%lld", (long long)e->amount_captured);
    if (e->amount_refunded >= 0)
        snprintf(ref, sizeof ref, "%lld", (long long)e->amount_refunded);
    if (v->card_ok) {
        snprintf(month, sizeof month, "%d", e->card.exp_month);
        snprintf(year, sizeof year, "%d", e->card.exp_year);
    }
    const char *rv[21] = {tenant, h->gw_id, e->id, kind_names[h->kind], live ? "t" : "f", e->type,
                          e->ref, v->charge_id, v->apply ? "t" : "f", v->outcome, v->from,
                          v->to != NULL ? v->to : "", action_names[e->action], cap, ref,
                          e->refund_ref, v->token_id, month, year,
                          v->card_ok ? e->card.last4 : "", v->card_ok ? e->card.brand : ""};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &event_record_sql, rv, NULL, NULL, &res));
    *fresh = PQntuples(res) == 1;
    PQclear(res);
    h->nevents++;
    if (!*fresh)
        h->ndup++;
    return TOK_OK;
}

static tok_status apply_charge(struct tok_db_conn *conn, struct hook_call *h, const char *tenant,
                               bool live, const struct tok_gw_event *e)
{
    const char *lv = live ? "t" : "f";
    const char *fv[4] = {tenant, e->ref, lv, e->refund_ref};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &charge_find_sql, fv, NULL, NULL, &res));
    bool found = PQntuples(res) == 1 && e->ref[0] != '\0';
    struct verdict v = {0};
    struct tok_charge_view view = {0};
    struct tok_charge_change ch = {0};
    if (found) {
        copy_field(v.charge_id, sizeof v.charge_id, PQgetvalue(res, 0, 0));
        copy_field(v.from, sizeof v.from, PQgetvalue(res, 0, 1));
        if (tok_charge_state_parse(v.from, &view.state) != TOK_OK)
            view.state = TOK_CH_DECLINED; /* unknown: treat as final */
        view.amount = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        view.captured = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
        view.refunded = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        view.manual_capture = PQgetvalue(res, 0, 5)[0] == 't';
        view.refund_known = PQgetvalue(res, 0, 6)[0] == 't';
        tok_webhook_decide(&view, e, &ch);
    }
    PQclear(res);
    res = NULL;
    v.apply = ch.apply;
    v.outcome = e->action == TOK_GWA_IGNORE ? "ignored"
                : !found                   ? "unmatched"
                : ch.apply                 ? "applied"
                                           : "not_applied";
    v.to = ch.apply ? tok_charge_state_name(ch.to) : "";
    bool fresh = false;
    TOK_GUARD(record_event(conn, h, tenant, live, e, &v, &fresh));
    if (!fresh || !ch.apply)
        return TOK_OK;
    char capn[24], refn[24];
    snprintf(capn, sizeof capn, "%lld", (long long)ch.captured);
    snprintf(refn, sizeof refn, "%lld", (long long)ch.refunded);
    const char *av[6] = {tenant, v.charge_id, lv, v.to, capn, refn};
    TOK_GUARD(tok_db_exec(conn, &charge_apply_sql, av, NULL, NULL, &res));
    tok_status st = TOK_ERR_INTERNAL;
    if (PQntuples(res) == 1)
        st = tok_events_emit(conn, tenant, live, tok_charge_event_type(ch.to),
                             tok_slice_of(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)));
    PQclear(res);
    if (st == TOK_OK) {
        /* every state change is audited; the actor is the gateway account that reported it */
        char action[48];
        snprintf(action, sizeof action, "charge.%s", v.to);
        st = tok_audit_insert(conn, tenant, h->gw_id, action, v.charge_id, h->request_id);
    }
    if (st == TOK_OK)
        h->napplied++;
    return st;
}

/* A card updater changed a stored card: new expiry, last 4 (and brand when named) on the
 * token the gateway's reference belongs to, announced as token.updated. */
static tok_status apply_card(struct tok_db_conn *conn, struct hook_call *h,
                             const struct tok_tenant_keys *tk, const char *tenant, bool live,
                             const struct tok_gw_event *e)
{
    struct tm now;
    time_t t = (time_t)h->now;
    TOK_ENSURE(gmtime_r(&t, &now) != NULL, TOK_ERR_INTERNAL);
    struct verdict v = {.outcome = "unmatched", .to = ""};
    v.card_ok = tok_webhook_card_update_ok(&e->card, now.tm_mon + 1, now.tm_year + 1900);
    uint8_t lookup[TOK_KEYRING_HASH_LEN];
    TOK_GUARD(tok_tenant_keys_ref_lookup(tk, tok_slice_str(e->ref), lookup));
    const char *fv[4] = {tenant, h->gw_id, (const char *)lookup, live ? "t" : "f"};
    const int fl[4] = {0, 0, sizeof lookup, 0}, ff[4] = {0, 0, 1, 0};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &token_find_sql, fv, fl, ff, &res));
    if (PQntuples(res) == 1) {
        copy_field(v.token_id, sizeof v.token_id, PQgetvalue(res, 0, 0));
        /* an update that changes nothing announces nothing */
        bool same = int_field(PQgetvalue(res, 0, 1)) == e->card.exp_month &&
                    int_field(PQgetvalue(res, 0, 2)) == e->card.exp_year &&
                    strcmp(PQgetvalue(res, 0, 3), e->card.last4) == 0 &&
                    (e->card.brand[0] == '\0' || strcmp(PQgetvalue(res, 0, 4), e->card.brand) == 0);
        v.apply = v.card_ok && !same;
        v.outcome = v.apply ? "applied" : "not_applied";
    }
    PQclear(res);
    res = NULL;
    bool fresh = false;
    TOK_GUARD(record_event(conn, h, tenant, live, e, &v, &fresh));
    if (!fresh || !v.apply)
        return TOK_OK;
    char month[8], year[8];
    snprintf(month, sizeof month, "%d", e->card.exp_month);
    snprintf(year, sizeof year, "%d", e->card.exp_year);
    const char *av[6] = {tenant, v.token_id, month, year, e->card.last4, e->card.brand};
    TOK_GUARD(tok_db_exec(conn, &token_card_apply_sql, av, NULL, NULL, &res));
    tok_status st = TOK_ERR_INTERNAL;
    if (PQntuples(res) == 1)
        st = tok_events_emit(conn, tenant, live, "token.updated",
                             tok_slice_of(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)));
    PQclear(res);
    if (st == TOK_OK)
        st = tok_audit_insert(conn, tenant, h->gw_id, "token.updated", v.token_id, h->request_id);
    if (st == TOK_OK)
        h->napplied++;
    return st;
}

/* A gateway's failure code, kept only when it is a plain code ([a-z0-9_]). */
static const char *failure_code_of(const struct tok_gw_event *e)
{
    size_t n = strlen(e->failure);
    bool plain = n > 0;
    for (size_t i = 0; i < n && plain; i++) {
        char ch = e->failure[i];
        plain = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
    }
    return plain ? e->failure : "refund_failed";
}

/* A refund that failed after it was reported succeeded: recorded failed, its amount back on the
 * charge, refund.failed (the refund) and charge.updated (the charge) relayed; exactly once
 * (the event id is recorded once, and only a refund still 'succeeded' changes). */
static tok_status apply_refund_failed(struct tok_db_conn *conn, struct hook_call *h,
                                      const char *tenant, bool live, const struct tok_gw_event *e)
{
    const char *lv = live ? "t" : "f";
    const char *fv[4] = {tenant, e->ref, lv, ""};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &charge_find_sql, fv, NULL, NULL, &res));
    struct verdict v = {.outcome = "unmatched", .to = ""};
    bool found = PQntuples(res) == 1 && e->ref[0] != '\0' && e->refund_ref[0] != '\0';
    char status[24] = "";
    if (found) {
        copy_field(v.charge_id, sizeof v.charge_id, PQgetvalue(res, 0, 0));
        copy_field(v.from, sizeof v.from, PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    res = NULL;
    char refund_id[TOK_ID_MAX] = "";
    if (found) {
        const char *rv[4] = {tenant, v.charge_id, e->refund_ref, lv};
        TOK_GUARD(tok_db_exec(conn, &refund_failed_find_sql, rv, NULL, NULL, &res));
        found = PQntuples(res) == 1;
        if (found) {
            copy_field(refund_id, sizeof refund_id, PQgetvalue(res, 0, 0));
            copy_field(status, sizeof status, PQgetvalue(res, 0, 1));
        }
        PQclear(res);
        res = NULL;
    }
    v.apply = found && strcmp(status, "succeeded") == 0;
    v.outcome = !found ? "unmatched" : v.apply ? "applied" : "not_applied";
    bool fresh = false;
    TOK_GUARD(record_event(conn, h, tenant, live, e, &v, &fresh));
    if (!fresh || !v.apply)
        return TOK_OK;
    const char *av[4] = {tenant, refund_id, lv, failure_code_of(e)};
    TOK_GUARD(tok_db_exec(conn, &refund_failed_apply_sql, av, NULL, NULL, &res));
    tok_status st = TOK_OK;
    if (PQntuples(res) == 1) {
        st = tok_events_emit(conn, tenant, live, "refund.failed",
                             tok_slice_of(PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1)));
        if (st == TOK_OK)
            st = tok_events_emit(conn, tenant, live, "charge.updated",
                                 tok_slice_of(PQgetvalue(res, 0, 0),
                                              (size_t)PQgetlength(res, 0, 0)));
        if (st == TOK_OK)
            st = tok_audit_insert(conn, tenant, h->gw_id, "refund.failed", refund_id,
                                  h->request_id);
        if (st == TOK_OK)
            h->napplied++;
    }
    PQclear(res);
    return st;
}

static tok_status apply_one(struct tok_db_conn *conn, struct hook_call *h,
                            const struct tok_tenant_keys *tk, const char *tenant, bool live,
                            const struct tok_gw_event *e)
{
    if (e->action == TOK_GWA_CARD_UPDATED)
        return apply_card(conn, h, tk, tenant, live, e);
    if (e->action == TOK_GWA_REFUND_FAILED)
        return apply_refund_failed(conn, h, tenant, live, e);
    return apply_charge(conn, h, tenant, live, e);
}

static void refuse(struct hook_call *h, int status, const char *code, const char *detail)
{
    h->status = status;
    h->code = code;
    h->detail = detail;
}

/* Unseals the account's credentials and copies the one secret this kind uses; *tk takes
 * the tenant keys (the caller frees them). */
static tok_status secret_of(struct hook_call *h, PGresult *res, struct tok_buf *secret,
                            struct tok_tenant_keys **tk)
{
    const char *tenant = PQgetvalue(res, 0, 0);
    uint32_t version = (uint32_t)strtoul(PQgetvalue(res, 0, 4), NULL, 10);
    size_t slen = 0, dlen = 0, flen = 0;
    unsigned char *sealed = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 3), &slen);
    unsigned char *dek = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 5), &dlen);
    unsigned char *fpk = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 6), &flen);
    struct tok_buf plain = {0};
    struct tok_json_doc *doc = NULL;
    tok_status st = sealed != NULL && dek != NULL && fpk != NULL && slen <= CRED_MAX ? TOK_OK
                                                                                      : TOK_ERR_INPUT;
    if (st == TOK_OK)
        st = tok_keyring_tenant_keys_open(h->kr, tenant, version, tok_slice_of(dek, dlen),
                                          tok_slice_of(fpk, flen), tk);
    if (st == TOK_OK)
        st = tok_buf_alloc(&plain, (uint32_t)slen + 1, true);
    if (st == TOK_OK) {
        struct tok_aad aad = {tenant, "vault.gateways", "credentials_sealed", h->gw_id};
        st = tok_tenant_keys_open(*tk, aad, tok_slice_of(sealed, slen), &plain);
    }
    if (st == TOK_OK)
        st = tok_json_parse(tok_buf_slice(&plain), NULL, &doc, NULL);
    struct tok_slice v = {NULL, 0};
    if (st == TOK_OK) {
        const char *field = h->kind == K_ADYEN ? "hmac_key" : "webhook_secret";
        const struct tok_json_node *n = tok_json_get(tok_json_root(doc), field);
        st = n == NULL ? TOK_ERR_NOTFOUND : tok_json_string(n, &v);
    }
    if (st == TOK_OK && (v.len == 0 || v.len > TOK_WEBHOOK_SECRET_MAX * 2))
        st = TOK_ERR_INPUT;
    if (st == TOK_OK)
        st = tok_buf_alloc(secret, (uint32_t)v.len + 1, true);
    if (st == TOK_OK)
        st = tok_buf_write(secret, v.ptr, v.len);
    tok_json_doc_free(&doc);
    tok_buf_wipe(&plain);
    PQfreemem(sealed);
    PQfreemem(dek);
    PQfreemem(fpk);
    return st;
}

static tok_status hook_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct hook_call *h = (struct hook_call *)job;
    const char *v[1] = {h->gw_id};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &lookup_sql, v, NULL, NULL, &res));
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 1), kind_names[h->kind]) != 0) {
        PQclear(res);
        refuse(h, 400, "endpoint_not_found", "no such webhook endpoint");
        return TOK_OK;
    }
    char tenant[TOK_ID_MAX];
    copy_field(tenant, sizeof tenant, PQgetvalue(res, 0, 0));
    bool live = PQgetvalue(res, 0, 2)[0] == 't';
    struct tok_buf secret = {0};
    struct tok_tenant_keys *tk = NULL;
    tok_status st = secret_of(h, res, &secret, &tk);
    PQclear(res);
    if (st != TOK_OK) {
        tok_buf_wipe(&secret);
        tok_tenant_keys_free(&tk);
        tok_log_warn("%s: gateway account %s has no usable webhook secret (%s)", __func__, h->gw_id,
                     tok_status_name(st));
        refuse(h, 401, "signature_invalid", "the signature cannot be verified for this endpoint");
        return TOK_OK;
    }
    struct tok_slice body = tok_buf_slice(&h->body);
    struct tok_gw_event *events = calloc(TOK_WEBHOOK_ITEMS_MAX, sizeof *events);
    struct tok_json_doc *doc = NULL;
    size_t n = 0;
    if (events == NULL) {
        tok_buf_wipe(&secret);
        tok_tenant_keys_free(&tk);
        return TOK_ERR_NOMEM;
    }
    if (h->kind != K_ADYEN) {
        enum tok_webhook_verdict vd = TOK_WH_MISMATCH;
        struct tok_slice hdr = h->has_sig ? tok_buf_slice(&h->sig) : tok_slice_of(NULL, 0);
        st = tok_webhook_sig_verify(hdr, body, tok_buf_slice(&secret), h->now,
                                    TOK_WEBHOOK_TOLERANCE_S, &vd);
        if (st == TOK_OK && vd != TOK_WH_OK)
            refuse(h, 401, tok_webhook_verdict_code(vd), "the webhook signature was refused");
        else if (st == TOK_OK && tok_webhook_parse_stripe(body, h->kind == K_SANDBOX, &events[0]) != TOK_OK)
            refuse(h, 400, "invalid_payload", "the event is not an event object tokend understands");
        else if (st == TOK_OK)
            n = 1;
    } else {
        /* Adyen signs inside the body: parse it (without acting on anything) to find
         * every item's signature; all must verify before any is applied */
        tok_status ps = tok_webhook_parse_adyen(body, &doc, events, TOK_WEBHOOK_ITEMS_MAX, &n);
        if (ps != TOK_OK) {
            n = 0;
            refuse(h, 401, "signature_missing", "not a signed Adyen notification");
        }
        for (size_t i = 0; i < n && h->status == 0; i++) {
            bool ok = false;
            if (events[i].adyen.hmac_signature.len == 0) {
                refuse(h, 401, "signature_missing", "a notification item has no hmacSignature");
                break;
            }
            st = tok_webhook_adyen_verify(&events[i].adyen, tok_buf_slice(&secret), &ok);
            if (st != TOK_OK || !ok) {
                st = TOK_OK;
                refuse(h, 401, "signature_invalid", "the webhook signature was refused");
            }
        }
        if (h->status != 0)
            n = 0;
    }
    tok_buf_wipe(&secret);
    if (st == TOK_OK && h->status == 0 && n > 0) {
        st = tok_db_set_tenant(conn, tenant);
        for (size_t i = 0; i < n && st == TOK_OK; i++)
            st = apply_one(conn, h, tk, tenant, live, &events[i]);
    }
    tok_tenant_keys_free(&tk);
    tok_json_doc_free(&doc);
    free(events);
    if (st == TOK_OK && h->status == 0)
        h->status = 200;
    return st;
}

static void hook_result(struct tok_call *call, struct tok_req *r)
{
    struct hook_call *h = (struct hook_call *)call;
    if (call->job.status != TOK_OK) {
        tok_log_err("%s: %s: webhook for %s not recorded (%s)", __func__, r->id, h->gw_id,
                    tok_status_name(call->job.status));
        tok_http_problem_db(r, &call->job, "the event was not recorded; send it again");
        return;
    }
    if (h->status != 200) {
        tok_log_info("%s: %s: %s webhook refused: %s", __func__, r->id, kind_names[h->kind], h->code);
        tok_http_problem(r, h->status, h->code, h->detail, NULL);
        return;
    }
    if (h->kind == K_ADYEN) {
        tok_http_send(r, 200, "text/plain", tok_slice_str("[accepted]"));
        return;
    }
    char out[128];
    int len = snprintf(out, sizeof out, "{\"received\":true,\"duplicate\":%s,\"applied\":%s}",
                       h->ndup > 0 ? "true" : "false", h->napplied > 0 ? "true" : "false");
    tok_http_json(r, 200, tok_slice_of(out, len > 0 ? (size_t)len : 0));
}

static void hook_release(struct tok_call *call)
{
    struct hook_call *h = (struct hook_call *)call;
    tok_buf_wipe(&h->body);
    tok_buf_wipe(&h->sig);
    sodium_memzero(h, sizeof *h);
    free(h);
}

void tok_webhooks_inbound(struct tok_req *r)
{
    struct tok_slice g = r->params[0], id = r->params[1];
    int kind = -1;
    for (int i = 0; i < 3; i++)
        if (tok_slice_eq(g, kind_names[i]))
            kind = i;
    if (kind < 0 || r->nparams != 2 || !id_ok(id, "gw_")) {
        tok_http_problem(r, 400, "endpoint_not_found", "no such webhook endpoint", NULL);
        return;
    }
    h2o_req_t *req = r->req;
    if (req->entity.len == 0 || req->entity.len > TOK_WEBHOOK_BODY_MAX) {
        tok_http_problem(r, 400, "invalid_payload", "the body is empty or too large", NULL);
        return;
    }
    struct hook_call *h = calloc(1, sizeof *h);
    if (h == NULL) {
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    h->call.release = hook_release;
    h->call.on_result = hook_result;
    h->call.job.exec = hook_exec;
    h->kind = (enum kind)kind;
    h->kr = r->app->keyring;
    tok_copy(h->request_id, r->id, sizeof h->request_id);
    h->now = (int64_t)time(NULL);
    tok_copy(h->gw_id, id.ptr, id.len);
    struct tok_slice sig;
    const char *hname = kind == K_STRIPE ? "stripe-signature" : "tokend-signature";
    bool ok = tok_buf_alloc(&h->body, (uint32_t)req->entity.len, true) == TOK_OK &&
              tok_buf_write(&h->body, req->entity.base, req->entity.len) == TOK_OK;
    if (ok && kind != K_ADYEN && tok_http_req_header(r, hname, &sig) &&
        sig.len <= TOK_WEBHOOK_SIG_HEADER_MAX) {
        h->has_sig = true;
        ok = tok_buf_alloc(&h->sig, (uint32_t)sig.len + 1, false) == TOK_OK &&
             tok_buf_write(&h->sig, sig.ptr, sig.len) == TOK_OK;
    } else if (ok && kind != K_ADYEN && tok_http_req_header(r, hname, &sig)) {
        h->has_sig = true; /* too long: kept empty, so it is refused as invalid */
        ok = tok_buf_alloc(&h->sig, 1, false) == TOK_OK && tok_buf_putc(&h->sig, 'x') == TOK_OK;
    }
    if (!ok) {
        hook_release(&h->call);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    tok_http_call(r, &h->call);
}

/* ---- POST /v1/webhook-endpoints -------------------------------------------------------- */

struct endpoint_call {
    struct tok_call call; /* first */
    char tenant_id[TOK_ID_MAX], actor[TOK_ID_MAX], request_id[TOK_REQUEST_ID_LEN + 1];
    bool livemode;
    char id[TOK_RANDOM_ID_MAX + 1];
    char url[TOK_WEBHOOK_URL_MAX + 1];
    struct tok_buf secret; /* secret */
    struct tok_buf sealed;
    uint32_t key_version;
    char created[32];
};

static const struct tok_sql endpoint_insert_sql = {
    "webhook_endpoint_insert",
    "INSERT INTO ledger.webhook_endpoints (tenant_id, id, livemode, url, secret_sealed, key_version) "
    "VALUES ($1, $2, $3::boolean, $4, $5, $6::integer) "
    "RETURNING to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    6};

static tok_status endpoint_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct endpoint_call *e = (struct endpoint_call *)job;
    TOK_GUARD(tok_db_set_tenant(conn, e->tenant_id));
    char ver[16];
    snprintf(ver, sizeof ver, "%u", e->key_version);
    const char *v[6] = {e->tenant_id, e->id, e->livemode ? "t" : "f", e->url,
                        (const char *)e->sealed.data, ver};
    const int lens[6] = {0, 0, 0, 0, (int)e->sealed.len, 0};
    const int fmts[6] = {0, 0, 0, 0, 1, 0};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &endpoint_insert_sql, v, lens, fmts, &res));
    if (PQntuples(res) == 1)
        copy_field(e->created, sizeof e->created, PQgetvalue(res, 0, 0));
    PQclear(res);
    return tok_audit_insert(conn, e->tenant_id, e->actor, "webhook_endpoint.created", e->id,
                            e->request_id);
}

static void endpoint_result(struct tok_call *call, struct tok_req *r)
{
    struct endpoint_call *e = (struct endpoint_call *)call;
    if (call->job.status != TOK_OK) {
        tok_log_err("%s: %s: endpoint not stored (%s)", __func__, r->id,
                    tok_status_name(call->job.status));
        tok_http_problem_db(r, &call->job, NULL);
        return;
    }
    uint8_t mem[2048];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "id", e->id);
    tok_jw_kstr(&w, "object", "webhook_endpoint");
    tok_jw_kbool(&w, "livemode", e->livemode);
    tok_jw_kstr(&w, "url", e->url);
    tok_jw_kbool(&w, "disabled", false);
    tok_jw_key(&w, "secret");
    tok_jw_strn(&w, tok_buf_slice(&e->secret));
    tok_jw_kstr(&w, "created_at", e->created);
    tok_jw_obj_end(&w);
    if (tok_jw_finish(&w) != TOK_OK) {
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return;
    }
    tok_http_json(r, 201, tok_buf_slice(&b));
    sodium_memzero(mem, sizeof mem);
}

static void endpoint_release(struct tok_call *call)
{
    struct endpoint_call *e = (struct endpoint_call *)call;
    tok_buf_wipe(&e->secret);
    tok_buf_wipe(&e->sealed);
    sodium_memzero(e, sizeof *e);
    free(e);
}

/* "whsec_" and 256 random bits in base62 (two 128-bit ids). */
static tok_status new_secret(struct tok_buf *out)
{
    TOK_GUARD(tok_random_id(TOK_WEBHOOK_ENDPOINT_SECRET_PREFIX, out));
    return tok_random_id("", out);
}

static void endpoint_authed(struct tok_req *r)
{
    const struct tok_principal *p = r->principal;
    h2o_req_t *req = r->req;
    struct tok_json_doc *doc = NULL;
    struct tok_json_error jerr;
    if (tok_json_parse(tok_slice_of(req->entity.base, req->entity.len), NULL, &doc, &jerr) != TOK_OK) {
        tok_http_problem(r, 400, jerr.code != NULL ? jerr.code : "malformed_json", NULL, NULL);
        return;
    }
    static const char *const fields[] = {"url"};
    struct tok_slice url = {NULL, 0};
    const struct tok_json_node *root = tok_json_root(doc);
    bool ok = tok_json_type(root) == TOK_JSON_OBJECT &&
              tok_json_check_keys(root, fields, 1, NULL) == TOK_OK &&
              tok_json_string(tok_json_get(root, "url"), &url) == TOK_OK &&
              tok_webhook_url_check(url, r->app->cfg->webhook_allow_http_loopback) == TOK_OK;
    if (!ok) {
        tok_json_doc_free(&doc);
        tok_http_problem(r, 422, "invalid_url",
                         "url must be https://host[:port][/path] (no credentials, no fragment)", "url");
        return;
    }
    struct endpoint_call *e = calloc(1, sizeof *e);
    if (e == NULL) {
        tok_json_doc_free(&doc);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    e->call.release = endpoint_release;
    e->call.on_result = endpoint_result;
    e->call.job.exec = endpoint_exec;
    e->livemode = p->livemode;
    copy_field(e->tenant_id, sizeof e->tenant_id, p->tenant_id);
    copy_field(e->actor, sizeof e->actor, p->key_id);
    copy_field(e->request_id, sizeof e->request_id, r->id);
    tok_copy(e->url, url.ptr, url.len);
    tok_json_doc_free(&doc);
    struct tok_buf idb;
    tok_buf_init(&idb, e->id, sizeof e->id - 1);
    tok_status st = tok_random_id("we_", &idb);
    if (st == TOK_OK)
        st = tok_buf_alloc(&e->secret, 64, true);
    if (st == TOK_OK)
        st = new_secret(&e->secret);
    if (st == TOK_OK)
        st = tok_buf_alloc(&e->sealed, 64 + TOK_SEALED_OVERHEAD, false);
    if (st == TOK_OK && p->keys == NULL)
        st = TOK_ERR_INTERNAL;
    if (st == TOK_OK) {
        struct tok_aad aad = {e->tenant_id, "ledger.webhook_endpoints", "secret_sealed", e->id};
        st = tok_tenant_keys_seal(p->keys, aad, tok_buf_slice(&e->secret), &e->sealed);
        e->key_version = tok_tenant_keys_version(p->keys);
    }
    if (st != TOK_OK) {
        endpoint_release(&e->call);
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return;
    }
    tok_http_call(r, &e->call);
}

void tok_webhooks_endpoint_create(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_ADMIN, endpoint_authed);
}

/* ---- reads and the disabling of endpoints: one row of JSON ----------------------------- */

/* One database job that answers with the JSON text of its query's single row; no row
 * means not found. Parameters: $1 tenant, $2 livemode, $3 the id from the path (if any). */
struct json_call {
    struct tok_call call; /* first */
    const struct tok_sql *sql;
    const char *audit_action; /* audited when a row comes back; NULL: a read */
    const char *missing_code, *missing_detail;
    char tenant_id[TOK_ID_MAX], actor[TOK_ID_MAX], request_id[TOK_REQUEST_ID_LEN + 1];
    bool livemode;
    char id[TOK_ID_MAX];
    bool found;
    struct tok_buf out;
};

#define TS_JSON(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define ENDPOINT_JSON(e)                                                                           \
    "jsonb_build_object('id', " e ".id, 'object', 'webhook_endpoint', 'livemode', " e ".livemode, " \
    "'url', " e ".url, 'disabled', " e ".disabled_at IS NOT NULL, 'disabled_at', "                 \
    TS_JSON(e ".disabled_at") ", 'created_at', " TS_JSON(e ".created_at") ")"

static const struct tok_sql deliveries_sql = {
    "webhook_deliveries_list",
    "SELECT jsonb_build_object('object', 'list', 'data', coalesce((SELECT jsonb_agg(jsonb_build_object("
    "'id', d.id, 'object', 'delivery', 'event', d.event_id, 'endpoint', d.endpoint_id, 'url', e.url, "
    "'status', d.status, 'attempts', d.attempts, 'last_status', d.last_status, 'last_error', d.last_error, "
    "'next_attempt_at', CASE WHEN d.status = 'pending' THEN " TS_JSON("d.next_attempt_at") " END, "
    "'delivered_at', " TS_JSON("d.delivered_at") ", "
    "'attempt_log', coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, "
    "'http_status', a.http_status, 'error', a.error, 'duration_ms', a.duration_ms, 'at', "
    "to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) ORDER BY a.attempt) "
    "FROM ledger.delivery_attempts a WHERE a.tenant_id = d.tenant_id AND a.delivery_id = d.id), '[]'::jsonb)"
    ") ORDER BY d.created_at, d.id) FROM ledger.deliveries d JOIN ledger.webhook_endpoints e "
    "ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id WHERE d.tenant_id = $1 AND d.event_id = $3), "
    "'[]'::jsonb))::text "
    "WHERE EXISTS (SELECT 1 FROM ledger.events WHERE tenant_id = $1 AND livemode = $2::boolean AND id = $3)",
    3};

static const struct tok_sql endpoints_list_sql = {
    "webhook_endpoints_list",
    "SELECT jsonb_build_object('object', 'list', 'data', coalesce(jsonb_agg(" ENDPOINT_JSON("e")
    " ORDER BY e.created_at, e.id), '[]'::jsonb))::text FROM ledger.webhook_endpoints e "
    "WHERE e.tenant_id = $1 AND e.livemode = $2::boolean",
    2};

/* Disabling keeps the endpoint and its pending deliveries: they wait, unclaimed
 * (ledger.deliveries_claim skips disabled endpoints), until tokenctl enables it again. */
static const struct tok_sql endpoint_disable_sql = {
    "webhook_endpoint_disable",
    "UPDATE ledger.webhook_endpoints e SET disabled_at = coalesce(e.disabled_at, now()) "
    "WHERE e.tenant_id = $1 AND e.livemode = $2::boolean AND e.id = $3 RETURNING " ENDPOINT_JSON("e")
    "::text",
    3};

static tok_status json_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct json_call *j = (struct json_call *)job;
    TOK_GUARD(tok_db_set_tenant(conn, j->tenant_id));
    const char *v[3] = {j->tenant_id, j->livemode ? "t" : "f", j->id};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, j->sql, v, NULL, NULL, &res));
    tok_status st = TOK_OK;
    j->found = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    if (j->found)
        st = tok_buf_write(&j->out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
    if (st == TOK_OK && j->found && j->audit_action != NULL)
        st = tok_audit_insert(conn, j->tenant_id, j->actor, j->audit_action, j->id, j->request_id);
    return st;
}

static void json_result(struct tok_call *call, struct tok_req *r)
{
    struct json_call *j = (struct json_call *)call;
    if (call->job.status != TOK_OK) {
        tok_log_err("%s: %s: %s failed (%s)", __func__, r->id, j->sql->name,
                    tok_status_name(call->job.status));
        tok_http_problem_db(r, &call->job, NULL);
        return;
    }
    if (!j->found) {
        tok_http_problem(r, 404, j->missing_code, j->missing_detail, "id");
        return;
    }
    tok_http_json(r, 200, tok_buf_slice(&j->out));
}

static void json_release(struct tok_call *call)
{
    struct json_call *j = (struct json_call *)call;
    tok_buf_wipe(&j->out);
    free(j);
}

/* Runs sql for the authenticated tenant; id_prefix: the path's {id} must be such an id
 * (NULL: the route has none). */
static void json_call_run(struct tok_req *r, const struct tok_sql *sql, const char *id_prefix,
                          const char *audit_action, const char *missing_code,
                          const char *missing_detail)
{
    if (id_prefix != NULL && !id_ok(r->params[0], id_prefix)) {
        tok_http_problem(r, 404, missing_code, missing_detail, "id");
        return;
    }
    struct json_call *j = calloc(1, sizeof *j);
    if (j == NULL || tok_buf_alloc(&j->out, OUT_MAX, false) != TOK_OK) {
        free(j);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    j->call.release = json_release;
    j->call.on_result = json_result;
    j->call.job.exec = json_exec;
    j->sql = sql;
    j->audit_action = audit_action;
    j->missing_code = missing_code;
    j->missing_detail = missing_detail;
    j->livemode = r->principal->livemode;
    copy_field(j->tenant_id, sizeof j->tenant_id, r->principal->tenant_id);
    copy_field(j->actor, sizeof j->actor, r->principal->key_id);
    copy_field(j->request_id, sizeof j->request_id, r->id);
    if (id_prefix != NULL)
        tok_copy(j->id, r->params[0].ptr, r->params[0].len);
    tok_http_call(r, &j->call);
}

static void deliveries_authed(struct tok_req *r)
{
    json_call_run(r, &deliveries_sql, "evt_", NULL, "event_not_found", "no such event");
}

void tok_webhooks_deliveries_list(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_REPORTS_READ | TOK_SCOPE_ADMIN, deliveries_authed);
}

static void endpoints_list_authed(struct tok_req *r)
{
    json_call_run(r, &endpoints_list_sql, NULL, NULL, "internal_error", NULL);
}

void tok_webhooks_endpoints_list(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_ADMIN, endpoints_list_authed);
}

static void endpoint_disable_authed(struct tok_req *r)
{
    json_call_run(r, &endpoint_disable_sql, "we_", "webhook_endpoint.disabled",
                  "endpoint_not_found", "no such webhook endpoint");
}

void tok_webhooks_endpoint_disable(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_ADMIN, endpoint_disable_authed);
}
