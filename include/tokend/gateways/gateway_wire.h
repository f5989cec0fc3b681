/*
 * gateway_wire.h - what the remote adapters (Stripe, Adyen) put on the wire and how
 * they read the answer. Encoders and parsers are pure functions of a call and bytes,
 * so the unit suites test every mapping without a network; gateway.c runs the
 * exchange (tok_httpc) around them. docs/adapters.md describes each mapping.
 *
 * Outcome rules shared by both adapters (charges.c relies on them):
 *   OK           the gateway did it
 *   DECLINED     the card was refused (final: no failover)
 *   ERROR        the gateway or tokend failed in a way another gateway would not fix:
 *                processing_error, gateway_auth_failed (401/403), gateway_invalid_request
 *                (4xx), gateway_bad_response, gateway_tls_failed, gateway_not_configured
 *   UNAVAILABLE  try another gateway: gateway_timeout, gateway_unavailable (connect
 *                failure, reset, 5xx), rate_limited (429)
 * TLS failures (untrusted CA, certificate for another name, handshake refused) are ERROR,
 * not UNAVAILABLE: they mean a misconfiguration or an interception, which must surface
 * as an error rather than be routed around silently.
 */
#ifndef TOKEND_GATEWAY_WIRE_H
#define TOKEND_GATEWAY_WIRE_H

#include "tokend/core/common.h"
#include "tokend/gateways/gateway.h"
#include "tokend/http/httpc.h"

#define TOK_STRIPE_VERSION "2024-06-20"
#define TOK_STRIPE_IDEM_MAX 255
#define TOK_ADYEN_IDEM_MAX 64
#define TOK_ADYEN_REFERENCE_MAX 80
#define TOK_ADYEN_SHOPPER_MAX 64
#define TOK_ADYEN_ORIGIN_MAX 80 /* PaymentRequest.origin maxLength */
#define TOK_ADYEN_API "/v71"
#define TOK_ADYEN_TOKENISE_CURRENCY "EUR"
#define TOK_GATEWAY_PATH_MAX 160
#define TOK_GATEWAY_ID_MAX 64 /* a gateway object id we put in a path or a body */

/* Response parser limits: gateway objects are larger and deeper than our own requests. */
#define TOK_GATEWAY_JSON_DEPTH 32u
#define TOK_GATEWAY_JSON_NODES 8192u
#define TOK_GATEWAY_JSON_STRING 8192u
#define TOK_GATEWAY_JSON_MEMBERS 512u

/** Wire context kept between the request and its answer. */
struct tok_gateway_wire {
    char idem_key[TOK_STRIPE_IDEM_MAX + 1]; /* sent as Idempotency-Key */
    char shopper[TOK_ADYEN_SHOPPER_MAX];    /* Adyen shopperReference */
    char reference[TOK_ADYEN_REFERENCE_MAX + 1]; /* Adyen merchant reference */
};

/* ---- shared ---------------------------------------------------------------------------- */

/**
 * Fills w->idem_key from call->idempotency_key (or, when empty, a fresh random one,
 * written back into the call so a retry by the caller reuses it). Keys longer than max
 * are replaced by "tokend_h_" + hex of a BLAKE2b hash of the key (deterministic).
 * TOK_ERR_INPUT: the caller's key holds a byte outside printable ASCII.
 */
TOK_MUST_CHECK tok_status tok_gateway_wire_key(struct tok_gateway_call *call, size_t max,
                                               struct tok_gateway_wire *w);

/** Sets outcome and code (static string) and decline_code (copied if safe, else empty). */
void tok_gateway_set(struct tok_gateway_call *call, enum tok_gateway_outcome outcome,
                     const char *code, const char *decline);

/**
 * Copies a reference the gateway returned into call->ref. TOK_ERR_INPUT unless it is
 * 1..TOK_GATEWAY_REF_MAX-1 bytes of [A-Za-z0-9_|.-].
 */
TOK_MUST_CHECK tok_status tok_gateway_set_ref(struct tok_gateway_call *call, struct tok_slice ref);

/**
 * The gateway wants the customer (3-D Secure): outcome TOK_GW_ACTION, ref the payment's
 * reference, action_url the page to send the customer to (an absolute http(s) URL of printable
 * ASCII without quotes or angle brackets). TOK_ERR_INPUT when either is unacceptable (the call
 * is left as it was).
 */
TOK_MUST_CHECK tok_status tok_gateway_set_action(struct tok_gateway_call *call,
                                                 struct tok_slice ref, struct tok_slice url);

/** True when s is 1..TOK_GATEWAY_ID_MAX bytes of [A-Za-z0-9_-] (safe in a URL path or JSON). */
bool tok_gateway_id_ok(struct tok_slice s);

/** Outcome for a transfer that did not produce an HTTP response. */
void tok_gateway_transport_failed(struct tok_gateway_call *call, enum tok_httpc_result r);

/**
 * Outcome for statuses both gateways treat alike: 401/403 -> ERROR gateway_auth_failed,
 * 429 -> UNAVAILABLE rate_limited, 5xx -> UNAVAILABLE gateway_unavailable. Returns true
 * when status was one of those (outcome set), false otherwise (nothing set).
 */
bool tok_gateway_http_common(struct tok_gateway_call *call, long status);

/** Parses a response body with the gateway limits. NULL when it is not a JSON object. */
struct tok_json_doc *tok_gateway_json(struct tok_slice body);

/* ---- Stripe ---------------------------------------------------------------------------- */

/**
 * Appends the application/x-www-form-urlencoded form of (key, value) to body, with '&'
 * before it unless body is empty. Keys and values are percent-encoded (RFC 3986
 * unreserved characters stay as they are; '[' and ']' in keys are kept, as Stripe's
 * nested parameters are spelled). TOK_ERR_BOUNDS when it does not fit (body unchanged).
 */
TOK_MUST_CHECK tok_status tok_stripe_form_add(struct tok_buf *body, const char *key,
                                              struct tok_slice value);

/**
 * The amount Stripe expects for an ISO 4217 minor-unit amount: the same, except ISK,
 * which Stripe keeps as a two-decimal currency (x100). TOK_ERR_INPUT: unknown currency,
 * amount outside 0..TOK_AMOUNT_MAX.
 */
TOK_MUST_CHECK tok_status tok_stripe_amount(const char *currency, int64_t amount, int64_t *out);

/**
 * Builds the request for call->op: path (e.g. "/v1/payment_intents", into path) and the
 * form body (into body, a secret buffer: TOKENISE puts the PAN there).
 * TOK_ERR_INPUT: a missing or malformed input (card, reference, currency, amount).
 * TOK_ERR_BOUNDS: a buffer is too small.
 */
TOK_MUST_CHECK tok_status tok_stripe_encode(const struct tok_gateway_call *call,
                                            struct tok_buf *path, struct tok_buf *body);

/**
 * Splits a Stripe payment-method reference, "pm_...|cus_..." (since the Customer step) or a
 * bare "pm_..." (tokens stored before it), into its PaymentMethod and Customer ids (cus is
 * "" for a bare one). TOK_ERR_INPUT: a part is not a plain id.
 */
TOK_MUST_CHECK tok_status tok_stripe_split_ref(const char *pm_ref, char pm[TOK_GATEWAY_ID_MAX + 1],
                                               char cus[TOK_GATEWAY_ID_MAX + 1]);

/** Maps Stripe's answer (HTTP status and JSON body) onto the call's outputs. */
void tok_stripe_parse(struct tok_gateway_call *call, const struct tok_gateway_wire *w,
                      long status, struct tok_slice body);

/* ---- Adyen ----------------------------------------------------------------------------- */

/**
 * Builds the Checkout API v71 request for call->op: path and JSON body (secret buffer;
 * DETACH has none: DELETE /storedPaymentMethods/{id}?shopperReference=&merchantAccount=).
 * merchant_account is the account's. w must hold reference and, for TOKENISE, a fresh
 * shopper reference; for CHARGE the shopper reference is read from call->pm_ref
 * ("<storedPaymentMethodId>|<shopperReference>") into w->shopper.
 * TOK_ERR_INPUT / TOK_ERR_BOUNDS as tok_stripe_encode.
 */
TOK_MUST_CHECK tok_status tok_adyen_encode(const struct tok_gateway_call *call,
                                           const char *merchant_account,
                                           struct tok_gateway_wire *w, struct tok_buf *path,
                                           struct tok_buf *body);

/**
 * The amount Adyen expects for an ISO 4217 minor-unit amount: the same, except where
 * Adyen's currency table differs from ISO 4217 (CLP and ISK: two decimals, x100).
 * Writes the upper-case code into cur_upper[4]. TOK_ERR_INPUT: unknown currency or
 * amount outside 0..TOK_AMOUNT_MAX.
 */
TOK_MUST_CHECK tok_status tok_adyen_amount(const char *currency, int64_t amount, int64_t *out,
                                           char cur_upper[4]);

/** Maps Adyen's answer onto the call's outputs (TOKENISE: ref = "<id>|<w->shopper>"). */
void tok_adyen_parse(struct tok_gateway_call *call, const struct tok_gateway_wire *w,
                     long status, struct tok_slice body);

/**
 * Maps an Adyen refusal to tokend's code and decline code, by refusalReasonCode (its
 * decimal text) or, when that is unknown, by refusalReason. Never NULL.
 */
void tok_adyen_refusal(struct tok_slice reason_code, struct tok_slice reason, const char **code,
                       const char **decline);

/** Parser of one adapter's answers (tok_stripe_parse, tok_adyen_parse). */
typedef void (*tok_gateway_parse_fn)(struct tok_gateway_call *call,
                                     const struct tok_gateway_wire *w, long status,
                                     struct tok_slice body);

/**
 * Sends req (takes ownership) for call through call->env and, on the calling loop thread,
 * parses the answer with parse, frees req and runs call->done. w is copied.
 * Transport failures are logged (gateway name, failure class, libcurl's reason: never a
 * header or body).
 */
void tok_gateway_exchange(const struct tok_gateway_ops *ops, struct tok_gateway_call *call,
                          struct tok_httpc_request *req, const struct tok_gateway_wire *w,
                          tok_gateway_parse_fn parse);

/** Completes call at once with ERROR and code (for a bad configuration or input). */
void tok_gateway_fail_now(struct tok_gateway_call *call, const char *code);

/** Resets every output of call (outcome OK, no code, empty ref and decline, not captured). */
void tok_gateway_reset_outputs(struct tok_gateway_call *call);

#endif
