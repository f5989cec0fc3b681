/*
 * events.c - the charge state machine and the transactional outbox.
 */
#include "tokend/events/events.h"
#include "tokend/vault/keyring.h"

#include <stdlib.h>
#include <string.h>

static const char *const state_names[TOK_CH_STATE_COUNT] = {
    "pending", "requires_capture", "succeeded", "partially_refunded", "refunded",
    "disputed", "failed", "canceled", "declined", "requires_action",
};

tok_status tok_charge_state_parse(const char *s, enum tok_charge_state *out)
{
    TOK_ENSURE(s != NULL && out != NULL, TOK_ERR_INTERNAL);
    for (int i = 0; i < TOK_CH_STATE_COUNT; i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum tok_charge_state)i;
            return TOK_OK;
        }
    }
    return TOK_ERR_INPUT;
}

const char *tok_charge_state_name(enum tok_charge_state s)
{
    if ((int)s < 0 || s >= TOK_CH_STATE_COUNT)
        return "unknown";
    return state_names[s];
}

/* The main line, in the only order a charge may walk it (steps may be skipped). */
static int rank(enum tok_charge_state s)
{
    switch (s) {
    case TOK_CH_PENDING: return 0;
    case TOK_CH_REQUIRES_ACTION: return 1;
    case TOK_CH_REQUIRES_CAPTURE: return 2;
    case TOK_CH_SUCCEEDED: return 3;
    case TOK_CH_PARTIALLY_REFUNDED: return 4;
    case TOK_CH_REFUNDED: return 5;
    default: return -1; /* off the main line: final */
    }
}

bool tok_charge_transition_ok(enum tok_charge_state from, enum tok_charge_state to)
{
    int rf = rank(from), rt = rank(to);
    if (rf < 0 || (int)to < 0 || to >= TOK_CH_STATE_COUNT || from == to)
        return false;
    if (rt >= 0)
        return rt > rf;
    switch (to) {
    case TOK_CH_DISPUTED:
        return true; /* any state on the main line can be disputed */
    case TOK_CH_FAILED:
    case TOK_CH_CANCELED:
        return rf <= 2; /* only before money moved */
    default:
        return false; /* declined is decided by tokend's own charge call, never by an event */
    }
}

const char *tok_charge_event_type(enum tok_charge_state to)
{
    switch (to) {
    case TOK_CH_SUCCEEDED: return "charge.succeeded";
    case TOK_CH_PARTIALLY_REFUNDED:
    case TOK_CH_REFUNDED: return "charge.refunded";
    case TOK_CH_DISPUTED: return "charge.disputed";
    case TOK_CH_FAILED: return "charge.failed";
    case TOK_CH_CANCELED: return "charge.canceled";
    default: return "charge.updated";
    }
}

static bool type_ok(const char *t)
{
    size_t n = strlen(t);
    if (n < 3 || n > TOK_EVENT_TYPE_MAX)
        return false;
    bool dot = false, prev_dot = true;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '.') {
            if (prev_dot)
                return false;
            dot = true;
            prev_dot = true;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || c == '_'))
            return false;
        prev_dot = false;
    }
    return dot && !prev_dot;
}

static const struct tok_sql emit_sql = {
    "events_emit",
    "WITH ev AS (INSERT INTO ledger.events (tenant_id, id, livemode, type, data) "
    "VALUES ($1, $2, $3::boolean, $4, $5::jsonb) RETURNING tenant_id, id, livemode) "
    "INSERT INTO ledger.deliveries (tenant_id, id, event_id, endpoint_id) "
    "SELECT ev.tenant_id, 'dlv_' || substr(encode(sha256(convert_to(ev.id || ':' || e.id, 'UTF8')), 'hex'), 1, 22), "
    "ev.id, e.id FROM ev JOIN ledger.webhook_endpoints e ON e.tenant_id = ev.tenant_id "
    "AND e.livemode = ev.livemode AND e.disabled_at IS NULL",
    5};

tok_status tok_events_emit(struct tok_db_conn *conn, const char *tenant_id, bool livemode,
                           const char *type, struct tok_slice object_json)
{
    TOK_ENSURE(conn != NULL && tenant_id != NULL && type != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(type_ok(type), TOK_ERR_INPUT);
    TOK_ENSURE(object_json.ptr != NULL && object_json.len >= 2, TOK_ERR_INPUT);
    TOK_ENSURE(object_json.len <= TOK_EVENT_DATA_MAX, TOK_ERR_BOUNDS);
    uint8_t idmem[TOK_EVENT_ID_MAX];
    struct tok_buf idb;
    tok_buf_init(&idb, idmem, sizeof idmem);
    const char *id = NULL;
    TOK_GUARD(tok_random_id("evt_", &idb));
    TOK_GUARD(tok_buf_cstr(&idb, &id));
    /* text parameters travel NUL-terminated */
    struct tok_buf data = {0};
    TOK_GUARD(tok_buf_alloc(&data, (uint32_t)object_json.len + 1, false));
    const char *dj = NULL;
    tok_status st = tok_buf_write(&data, object_json.ptr, object_json.len);
    if (st == TOK_OK)
        st = tok_buf_cstr(&data, &dj);
    PGresult *res = NULL;
    if (st == TOK_OK) {
        const char *v[5] = {tenant_id, id, livemode ? "t" : "f", type, dj};
        st = tok_db_exec(conn, &emit_sql, v, NULL, NULL, &res);
    }
    PQclear(res);
    tok_buf_wipe(&data);
    return st;
}
