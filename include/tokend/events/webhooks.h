/*
 * webhooks.h - gateway webhooks in, signed events out (issue #6, docs/webhooks.md).
 *
 * Inbound, POST /v1/webhooks/{gateway}/{endpoint_id} (endpoint_id: the gw_...
 * account of vault.gateways; no API key):
 *   - one database job: vault.gateway_for_webhook() finds the account and the
 *     tenant keys its credentials were sealed with; the secret is unsealed and
 *     the signature verified (constant time) before anything is parsed or
 *     written; then, with the tenant set, each event is recorded once in
 *     ledger.gateway_events (its primary key de-duplicates), matched to a charge by
 *     gateway_ref, applied through the forward-only state machine of events.h,
 *     and announced in the outbox - all in the job's transaction.
 *   - stripe: Stripe-Signature "t=...,v1=..." (several v1 while a secret rotates),
 *     HMAC-SHA256(webhook_secret, "{t}.{raw body}"), tolerance 300 s.
 *     sandbox: the same scheme in Tokend-Signature (tokend's own).
 *     adyen: per notification item, base64 HMAC-SHA256(hex-decoded hmac_key,
 *     "psp:original:merchantAccount:merchantReference:value:currency:eventCode:success")
 *     in additionalData.hmacSignature; answered "[accepted]".
 *
 * Outbound: a dedicated delivery thread (never an event-loop thread) with its own
 * connection and its own libcurl multi handle takes due outbox rows
 * (ledger.deliveries_claim), POSTs each event signed with Tokend-Signature, and
 * records every attempt; retries back off exponentially with jitter until the
 * row's 3-day deadline, then it fails.
 */
#ifndef TOKEND_WEBHOOKS_H
#define TOKEND_WEBHOOKS_H

#include "tokend/core/common.h"
#include "tokend/events/events.h"
#include "tokend/http/http.h"

#define TOK_WEBHOOK_TOLERANCE_S 300     /* Stripe's default tolerance, also ours */
#define TOK_WEBHOOK_SIG_HEADER_MAX 4096 /* longest signature header examined */
#define TOK_WEBHOOK_SIGS_MAX 8          /* v1 entries examined in one header */
#define TOK_WEBHOOK_SIG_OUT_MAX 96      /* "t=<20 digits>,v1=<64 hex>" + NUL */
#define TOK_WEBHOOK_BODY_MAX (256u * 1024u)
#define TOK_WEBHOOK_SECRET_MAX 512
#define TOK_WEBHOOK_URL_MAX 500
#define TOK_WEBHOOK_ID_MAX 256          /* gateway event ids and references */
#define TOK_WEBHOOK_TYPE_MAX 100
#define TOK_WEBHOOK_ITEMS_MAX 32        /* Adyen notification items per request */
#define TOK_WEBHOOK_ENDPOINT_SECRET_PREFIX "whsec_"

/** Why a signature header was refused; each has its problem code. */
enum tok_webhook_verdict {
    TOK_WH_OK = 0,
    TOK_WH_MISSING,   /* no header, or no t= or no v1= in it: signature_missing */
    TOK_WH_MISMATCH,  /* malformed, or no v1 matches: signature_invalid */
    TOK_WH_STALE,     /* signed, but t is further than the tolerance from now:
                         timestamp_out_of_tolerance */
};

/** The problem code of a verdict ("signature_invalid"...); NULL for TOK_WH_OK. */
const char *tok_webhook_verdict_code(enum tok_webhook_verdict v);

/**
 * Verifies a "t=...,v1=...[,v1=...]" header (Stripe's scheme, which tokend's
 * Tokend-Signature follows): some v1 must equal hex HMAC-SHA256(secret, "{t}.{body}")
 * (compared in constant time, every v1 examined), then |now - t| <= tolerance_s.
 * Other schemes (v0=...) are ignored. header.ptr == NULL means no header.
 * *out gets the verdict; TOK_OK unless an argument is bad (TOK_ERR_INTERNAL) or the
 * secret is empty or too long (TOK_ERR_INPUT).
 */
TOK_MUST_CHECK tok_status tok_webhook_sig_verify(struct tok_slice header, struct tok_slice body,
                                                 struct tok_slice secret, int64_t now,
                                                 int64_t tolerance_s,
                                                 enum tok_webhook_verdict *out);

/**
 * Appends the header value "t=<t>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>" to out
 * (no NUL). TOK_ERR_INPUT: empty secret; TOK_ERR_BOUNDS: out lacks room.
 */
TOK_MUST_CHECK tok_status tok_webhook_sig_header(struct tok_slice secret, int64_t t,
                                                 struct tok_slice body, struct tok_buf *out);

/** The fields of one Adyen NotificationRequestItem that its HMAC covers (borrowed). */
struct tok_adyen_item {
    struct tok_slice psp_reference, original_reference, merchant_account, merchant_reference;
    struct tok_slice value, currency, event_code, success;
    struct tok_slice hmac_signature; /* additionalData.hmacSignature (base64) */
};

/**
 * Appends Adyen's signing string (the eight fields joined by ':', absent ones
 * empty) to out. TOK_ERR_BOUNDS when it does not fit.
 */
TOK_MUST_CHECK tok_status tok_webhook_adyen_payload(const struct tok_adyen_item *it,
                                                    struct tok_buf *out);

/**
 * Verifies an item's hmacSignature with the hex HMAC key (as Adyen's Customer
 * Area shows it). *ok false on a mismatch, a missing or malformed signature.
 * TOK_ERR_INPUT: the key is not hex or is empty.
 */
TOK_MUST_CHECK tok_status tok_webhook_adyen_verify(const struct tok_adyen_item *it,
                                                   struct tok_slice hex_key, bool *ok);

/** What an inbound event asks of its charge. */
enum tok_gw_action {
    TOK_GWA_IGNORE = 0,     /* recorded, never applied (a type tokend does not act on) */
    TOK_GWA_AUTHORISED,     /* Adyen AUTHORISATION: requires_capture or succeeded by capture method */
    TOK_GWA_REQUIRES_CAPTURE,
    TOK_GWA_SUCCEEDED,
    TOK_GWA_REFUND_TOTAL,   /* amount_refunded is the charge's cumulative refunded amount */
    TOK_GWA_REFUND_DELTA,   /* amount_refunded is this one refund (Adyen REFUND) */
    TOK_GWA_DISPUTED,
    TOK_GWA_FAILED,
    TOK_GWA_CANCELED,
    TOK_GWA_CARD_UPDATED,   /* a card updater changed the stored card (not a charge event) */
    TOK_GWA_REFUND_FAILED,  /* a refund reported succeeded failed later (refund_ref names it;
                             * Stripe charge.refund.updated with status failed, refund.failed;
                             * Adyen REFUND_FAILED): its amount goes back to the charge */
    TOK_GWA_LAST = TOK_GWA_REFUND_FAILED, /* keep it the last one (the fuzz targets' bound) */
};

#define TOK_WEBHOOK_FAILURE_MAX 48

#define TOK_CARD_UPDATE_BRAND_MAX 16

/**
 * What a card-updater event says of the card: the only card fields tokend keeps.
 * A field the event lacks, or sends in a shape tokend does not accept, is left
 * empty (-1, ""), so a full card number sent as "last4" never reaches memory here.
 */
struct tok_card_update {
    int exp_month, exp_year;             /* -1 when absent or not an integer */
    char last4[5];                       /* exactly 4 digits, or "" */
    char brand[TOK_CARD_UPDATE_BRAND_MAX]; /* a brand tokend knows ("visa"...), or "" */
};

/** One inbound event, normalised; only these fields are ever stored. */
struct tok_gw_event {
    char id[TOK_WEBHOOK_ID_MAX];         /* the gateway's event id (de-duplication key) */
    char type[TOK_WEBHOOK_TYPE_MAX + 1]; /* the gateway's event type */
    char ref[TOK_WEBHOOK_ID_MAX];        /* the charge's gateway_ref */
    char refund_ref[TOK_WEBHOOK_ID_MAX]; /* Adyen REFUND: the refund's own pspReference; a
                                          * failed refund's re_... or pspReference */
    char failure[TOK_WEBHOOK_FAILURE_MAX]; /* TOK_GWA_REFUND_FAILED: why ("" when not said) */
    enum tok_gw_action action;
    int64_t amount_captured; /* -1 when the event does not say */
    int64_t amount_refunded; /* -1 when the event does not say */
    struct tok_adyen_item adyen; /* adyen only: borrowed from the parsed body */
    struct tok_card_update card; /* TOK_GWA_CARD_UPDATED only */
};

/**
 * Parses a Stripe event (or a sandbox event, which has the same shape: id, type,
 * data.object) into *out. Stripe types acted on: payment_intent.amount_capturable_updated,
 * payment_intent.succeeded, payment_intent.payment_failed, payment_intent.canceled,
 * charge.succeeded, charge.captured, charge.failed, charge.refunded,
 * charge.dispute.created; sandbox: charge.requires_capture, charge.succeeded,
 * charge.refunded, charge.disputed, charge.failed, charge.canceled. Others are
 * TOK_GWA_IGNORE. The charge reference is data.object.payment_intent when present,
 * else data.object.id (sandbox: data.object.gateway_reference; disputes: charge).
 * Card updaters (TOK_GWA_CARD_UPDATED): Stripe payment_method.updated and
 * payment_method.automatically_updated (ref: the PaymentMethod's data.object.id; card:
 * data.object.card.{exp_month, exp_year, last4, brand}); sandbox payment_method.updated
 * (data.object.{gateway_reference, exp_month, exp_year, last4[, brand]}).
 * TOK_ERR_INPUT: not an event object, or id/type/reference missing or too long.
 */
TOK_MUST_CHECK tok_status tok_webhook_parse_stripe(struct tok_slice body, bool sandbox,
                                                   struct tok_gw_event *out);

/**
 * Parses an Adyen notification into up to max items (*n set). The slices in
 * out[i].adyen borrow from *doc, which the caller frees with tok_json_doc_free.
 * TOK_ERR_INPUT: not a notification, an item without pspReference or eventCode;
 * TOK_ERR_BOUNDS: more than max items.
 */
struct tok_json_doc;
TOK_MUST_CHECK tok_status tok_webhook_parse_adyen(struct tok_slice body, struct tok_json_doc **doc,
                                                  struct tok_gw_event *out, size_t max, size_t *n);

/**
 * True when a card update may be applied: exp_month 1..12, a four-digit exp_year
 * that passes tok_card_expiry_check against now (not expired, at most
 * TOK_EXPIRY_YEARS_MAX ahead), last4 present. Pure: the caller reads the clock.
 */
bool tok_webhook_card_update_ok(const struct tok_card_update *u, int now_month, int now_year);

/** A charge as the state machine sees it. */
struct tok_charge_view {
    enum tok_charge_state state;
    int64_t amount, captured, refunded;
    bool manual_capture;
    bool refund_known; /* REFUND_DELTA: this refund is already in the ledger (made by tokend) */
};

/** What applying an event would do. */
struct tok_charge_change {
    bool apply;
    enum tok_charge_state to;
    int64_t captured, refunded; /* never below the charge's, never above its amount */
};

/** The single state machine: decides what event e does to charge c. */
void tok_webhook_decide(const struct tok_charge_view *c, const struct tok_gw_event *e,
                        struct tok_charge_change *out);

/**
 * Checks an endpoint URL: https://host[:port][/path] with no space, control
 * character, '@' or '#', at most TOK_WEBHOOK_URL_MAX bytes. With allow_http_loopback
 * (tests only) also http://127.0.0.1, http://localhost and http://[::1] (any port,
 * any path). TOK_ERR_INPUT otherwise.
 */
TOK_MUST_CHECK tok_status tok_webhook_url_check(struct tok_slice url, bool allow_http_loopback);

/** Handlers: POST /v1/webhooks/{gateway}/{endpoint_id} (no API key). */
void tok_webhooks_inbound(struct tok_req *r);
/** POST /v1/webhook-endpoints {"url"} (admin scope): 201 with the secret, shown once. */
void tok_webhooks_endpoint_create(struct tok_req *r);
/** GET /v1/events/{id}/deliveries (reports:read or admin): every delivery and attempt. */
void tok_webhooks_deliveries_list(struct tok_req *r);
/** GET /v1/webhook-endpoints (admin): the tenant's endpoints of the key's mode, never a secret. */
void tok_webhooks_endpoints_list(struct tok_req *r);
/**
 * DELETE /v1/webhook-endpoints/{id} (admin): disables the endpoint (audited); nothing more
 * is delivered to it and its pending deliveries wait until `tokenctl webhook enable`.
 * 404 endpoint_not_found for an unknown id, another tenant's or another mode's.
 */
void tok_webhooks_endpoint_disable(struct tok_req *r);

/* ---- the delivery thread (webhooks_deliver.c) ---------------------------------- */

struct tok_keyring;
struct tok_webhook_deliverer;

struct tok_webhook_deliver_config {
    const char *conninfo;     /* borrowed; copied into locked memory */
    bool allow_http_loopback; /* tests only: deliver to http://127.0.0.1 etc. */
    unsigned retry_base_ms;   /* first retry delay (before jitter); 0 = 10000 */
    unsigned retry_cap_s;     /* longest delay between tries; 0 = 6 hours */
    unsigned poll_ms;         /* how often due retries are looked for; 0 = 500 */
    unsigned timeout_ms;      /* one POST; 0 = 10000 */
};

/**
 * Starts the delivery thread (call before the loops start; kr is borrowed and must
 * outlive the thread). TOK_ERR_NOMEM, TOK_ERR_INTERNAL (libcurl, thread); why gets
 * a one-line reason. The thread connects on its own and reconnects when needed.
 */
TOK_MUST_CHECK tok_status tok_webhook_deliverer_new(const struct tok_webhook_deliver_config *cfg,
                                                    const struct tok_keyring *kr,
                                                    struct tok_webhook_deliverer **out,
                                                    char *why, size_t why_len);

struct tok_metrics_out;
/**
 * The /metrics collector (metrics.h) of the delivery thread, ctx the deliverer: attempts by
 * outcome, retries scheduled, deliveries given up, the last claim's size and how long new
 * events waited for their first try. Counted by this process since it started.
 */
void tok_webhook_collect(void *ctx, struct tok_metrics_out *o);

/** Stops the thread (a POST in flight is abandoned: its row is retried after its lease), frees. */
void tok_webhook_deliverer_free(struct tok_webhook_deliverer **d);

/** Delay before the next try after `attempt` failed ones: base*2^(attempt-1), capped, times [0.5, 1). */
double tok_webhook_backoff_s(unsigned attempt, unsigned base_ms, unsigned cap_s);

#endif
