/*
 * events.h - the charge state machine every gateway event goes through, and
 * the transactional outbox of normalised events (issue #6).
 *
 * Forward only: pending -> requires_capture -> succeeded -> partially_refunded
 * -> refunded, each step may be skipped (events arrive out of order); disputed
 * from any of those; failed and canceled only before money moved. A charge
 * never moves backwards: an earlier event arriving late is recorded (in
 * ledger.gateway_events, outcome not_applied) but not applied. disputed,
 * failed, canceled and declined are final.
 */
#ifndef TOKEND_EVENTS_H
#define TOKEND_EVENTS_H

#include "tokend/core/common.h"
#include "tokend/store/db.h"

#define TOK_EVENT_ID_MAX 27   /* "evt_" + 22 base62 characters + NUL */
#define TOK_EVENT_TYPE_MAX 64
#define TOK_EVENT_DATA_MAX (64u * 1024u)

enum tok_charge_state {
    TOK_CH_PENDING = 0,
    TOK_CH_REQUIRES_CAPTURE,
    TOK_CH_SUCCEEDED,
    TOK_CH_PARTIALLY_REFUNDED,
    TOK_CH_REFUNDED,
    TOK_CH_DISPUTED,
    TOK_CH_FAILED,
    TOK_CH_CANCELED,
    TOK_CH_DECLINED,
    TOK_CH_REQUIRES_ACTION, /* waiting for the customer to authenticate (3-D Secure), before
                               pending's successors on the main line; last so that the
                               values stored or compared elsewhere keep theirs */
    TOK_CH_STATE_COUNT
};

/** The state named s ("partially_refunded"...). TOK_ERR_INPUT when unknown. */
TOK_MUST_CHECK tok_status tok_charge_state_parse(const char *s, enum tok_charge_state *out);

/** The ledger name of a state (static), "unknown" for an out-of-range value. */
const char *tok_charge_state_name(enum tok_charge_state s);

/** True when a charge in `from` may move to `to` (never when from == to). */
bool tok_charge_transition_ok(enum tok_charge_state from, enum tok_charge_state to);

/**
 * The outbound event type announcing that a charge entered `to`
 * ("charge.succeeded", "charge.refunded" for both refund states, "charge.disputed",
 * "charge.failed", "charge.canceled", "charge.updated" otherwise). Static.
 */
const char *tok_charge_event_type(enum tok_charge_state to);

/**
 * Inside a database job, with the tenant set: appends an event (evt_..., type,
 * data = object_json, a JSON object) to ledger.events and one pending delivery
 * for each enabled webhook endpoint of that tenant and mode, in the job's own
 * transaction, so the event exists if and only if the change it describes
 * commits. The delivery thread wakes at commit (NOTIFY).
 * TOK_ERR_INPUT: type not [a-z_]+(.[a-z_]+)+ or longer than TOK_EVENT_TYPE_MAX, empty
 * object; TOK_ERR_BOUNDS: object larger than TOK_EVENT_DATA_MAX; TOK_ERR_DB.
 * Where to call it for changes made outside webhooks: after each state change in
 * service/payments/charges.c finish_exec (see docs/webhooks.md).
 */
TOK_MUST_CHECK tok_status tok_events_emit(struct tok_db_conn *conn, const char *tenant_id,
                                          bool livemode, const char *type,
                                          struct tok_slice object_json);

#endif
