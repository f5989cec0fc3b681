/*
 * gwsim.c - payment-gateway simulator for tests (issue #5). It is the reference the real
 * Stripe and Adyen adapters are tested against, so it speaks their real wire formats, with
 * injected latency and faults. Test tooling: never point it at, or give it, real card data.
 *
 * Wire formats follow these public documents (read through the project's search tool):
 *   Stripe (API v1, form-encoded requests, JSON responses)
 *     docs.stripe.com/api/errors ............ error object {type, code, decline_code, message,
 *                                              param, charge, payment_intent, doc_url}; HTTP
 *                                              400/401/402/404/409/429/5xx meanings
 *     docs.stripe.com/error-codes ........... card_declined, expired_card, incorrect_cvc,
 *                                              processing_error, incorrect_number, invalid_cvc,
 *                                              invalid_expiry_*, parameter_missing,
 *                                              parameter_unknown, parameter_invalid_integer,
 *                                              resource_missing, rate_limit, amount_too_small,
 *                                              amount_too_large, payment_intent_unexpected_state,
 *                                              charge_already_refunded, invalid_charge_amount
 *     docs.stripe.com/testing, /declines/codes  test cards: 4242424242424242 succeeds,
 *                                              4000000000000002 generic_decline, ...9995
 *                                              insufficient_funds, ...0069 expired_card, ...0127
 *                                              incorrect_cvc, ...0119 processing_error,
 *                                              4242424242424241 incorrect_number; pm_card_* ids
 *     docs.stripe.com/idempotency ........... status and body of the first request are saved
 *                                              once the endpoint runs (not for validation
 *                                              errors), parameters are compared, keys <= 255
 *     docs.stripe.com/api/payment_methods/create, /api/payment_intents/{create,confirm,
 *                                              capture,cancel}, /api/refunds/create: objects
 *     docs.stripe.com/currencies ............ minor units; zero-decimal list; three-decimal
 *                                              currencies need the last digit 0; ISK amounts
 *                                              divisible by 100 (support.stripe.com ISK note)
 *     docs.stripe.com/rate-limits, changelog 2015-09-08: 429 for rate limiting
 *   Adyen (Checkout API v71, JSON)
 *     docs.adyen.com/api-explorer/Checkout/71 . /payments, /payments/{paymentPspReference}/
 *                                              captures|cancels|refunds (201, status
 *                                              "received"), /storedPaymentMethods
 *     docs.adyen.com/development-resources/testing/result-codes: holderName values and
 *                                              additionalData.RequestedTestAcquirerResponseCode
 *                                              trigger resultCode/refusalReason in test
 *     docs.adyen.com/development-resources/refusal-reasons: refusalReasonCode table
 *     docs.adyen.com/development-resources/error-codes: {status, errorCode, message,
 *                                              errorType, pspReference}; 000, 100, 101, 103
 *     docs.adyen.com/development-resources/api-idempotency: Idempotency-Key <= 64 chars,
 *                                              first response returned, key echoed
 *     docs.adyen.com/online-payments/tokenization: storePaymentMethod, shopperReference,
 *                                              recurringProcessingModel, storedPaymentMethodId
 *   3-D Secure (issue #16; docs/gwsim.md lists the cards and where each is documented)
 *     docs.stripe.com/testing#regulatory-cards  3184 and 3220 always authenticate, 3155 unless
 *                                              set up; off_session -> 402 authentication_required
 *     docs.stripe.com/api/payment_intents/object next_action {type redirect_to_url,
 *                                              redirect_to_url {url, return_url}}
 *     docs.adyen.com/development-resources/testing/3d-secure-2-authentication: the 3DS2 cards
 *     docs.adyen.com/online-payments/3d-secure/redirect-3ds2, CheckoutService-v71.json:
 *                                              RedirectShopper + action {type redirect, url,
 *                                              method GET}, then /payments/details
 *                                              {details {redirectResult}}
 *   The simulated issuer page (/__gwsim/acs/{id}) stands in for both gateways' ACS.
 * Where those documents leave a behaviour open, docs/gwsim.md says what the simulator does.
 *
 * Card data: a card number is read once, turned into an outcome class, brand, last 4 and a
 * keyed fingerprint, and wiped. No object keeps a PAN or CVC; no log line carries one.
 */
#include "tokend/core/base62.h"
#include "tokend/vault/card.h"
#include "tokend/core/common.h"
#include "tokend/core/config.h"
#include "tokend/core/currency.h"
#include "tokend/core/encoding.h"
#include "tokend/core/json.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"
#include "gwsim_record.h"
#include "gwsim_webhooks.h"

#include <errno.h>
#include <getopt.h>
#include <h2o.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GW_BODY_MAX (64u * 1024u)       /* request bodies (h2o refuses larger with 413) */
#define GW_OUT_MAX (64u * 1024u)        /* one response body */
#define GW_SCRATCH_MAX (2u * GW_BODY_MAX) /* decoded form parameters (secret) */
#define GW_PARAMS_MAX 96
#define GW_PARAM_KEY_MAX 128
#define GW_ID_MAX 64
#define GW_FP_LEN 16
#define GW_BUCKETS (1u << 18)
#define GW_OBJECTS_DEFAULT 200000u
#define GW_STRIPE_IDEM_MAX 255
#define GW_ADYEN_IDEM_MAX 64
#define GW_META_KEYS_MAX 50
#define GW_META_KEY_MAX 40
#define GW_META_VALUE_MAX 500
#define GW_TEXT_MAX 1000 /* description, references */
#define GW_LATENCY_MAX_MS 600000u
#define GW_TIMERS_MAX 64
#define GW_KEY_MAX 256
#define GW_PORTS 65536
#define GW_STRIPE_VERSION "2024-06-20"
#define GW_AMOUNT_MAX 99999999LL
#define GW_H2_STREAMS 100 /* h2o 2.2's SETTINGS_MAX_CONCURRENT_STREAMS */

/* ---- configuration, counters, context ------------------------------------------------- */

struct gw_cfg {
    const char *listen;
    const char *tls_cert, *tls_key;
    bool plain;
    bool http1_only;
    uint32_t latency_ms;
    double rate500, rate429;
    const char *ready_file;
    uint32_t max_objects;
    const char *record_dir;
    bool adyen_force_native; /* --adyen-native-3ds always: native 3DS2 even when not asked */
};

struct gw_stats {
    uint64_t requests;
    uint64_t r_pm_create, r_pm_get, r_pi_create, r_pi_get, r_pi_confirm, r_pi_capture,
        r_pi_cancel, r_refund_create, r_refund_get, r_adyen_payments, r_adyen_stored,
        r_adyen_captures, r_adyen_cancels, r_adyen_refunds, r_control, r_unknown;
    uint64_t payment_methods, payment_intents, charges, declines, captures, cancels, refunds;
    uint64_t adyen_payments, adyen_authorised, adyen_refused, adyen_tokens, adyen_captures,
        adyen_cancels, adyen_refunds;
    uint64_t replays, idem_conflicts, idem_mismatch_replays;
    uint64_t r_customer_create, r_pm_attach, r_pm_detach, r_adyen_stored_delete;
    uint64_t customers, pm_attached, pm_detached, reuse_refusals, adyen_tokens_disabled,
        adyen_contauth_refusals;
    uint64_t auth_failures, full_refusals;
    uint64_t r_acs, r_adyen_details, actions, auth_completed, auth_failed, auth_required_declines;
    uint64_t disputes, refund_failures, r_webhooks;
    /* Adyen 3-D Secure 2: the flow each /payments asked for, native actions answered,
     * payments refused for want of browserInfo */
    uint64_t adyen_3ds_native_asked, adyen_3ds_redirect_asked, adyen_3ds_unasked,
        adyen_native_actions, adyen_browser_refusals;
    uint64_t f500, f429, ftimeout, freset, flatency;
    uint64_t connections, requests_h1, requests_h2;
};

enum gw_kind { K_PM = 1, K_PI, K_CH, K_RE, K_AP, K_AT, K_CU };

/* What a test card makes the gateway do; decided when the card is first seen. */
enum gw_outcome {
    OUT_OK = 0,
    OUT_GENERIC,
    OUT_FUNDS,
    OUT_EXPIRED,
    OUT_CVC,
    OUT_PROCESSING,
    OUT_LOST,
    OUT_STOLEN,
    OUT_FRAUD,
    OUT_VELOCITY,
    OUT_3DS_ALWAYS, /* Stripe 4000002760003184, 4000000000003220: authenticates every payment */
    OUT_3DS_SETUP,  /* Stripe 4000002500003155: authenticates unless set up for off-session */
    OUT_3DS_ADYEN,  /* Adyen's 3-D Secure 2 test cards: a challenge at Adyen, none at Stripe */
    OUT_DISPUTE,    /* Stripe 4000000000000259, Adyen holderName "Chargeback": succeeds, then
                     * disputed (a webhook: charge.dispute.created, NOTIFICATION_OF_CHARGEBACK) */
    OUT_ATTACH_DECLINE, /* Stripe 4000000000000341: stores (attaches), every charge declined */
    OUT_3DS_DECLINE,    /* Stripe 4000008400001629: 3-D Secure, authenticated, then declined */
    OUT_REFUND_FAIL,    /* Stripe 4000000000005126: succeeds; a refund succeeds, then fails */
};

enum pi_status {
    PI_REQ_PM,
    PI_REQ_CONFIRM,
    PI_REQ_CAPTURE,
    PI_SUCCEEDED,
    PI_CANCELED,
    PI_REQ_ACTION,
};

enum ap_status { AP_AUTHORISED = 1, AP_REFUSED, AP_CANCELLED, AP_REDIRECT, AP_NATIVE };

enum re_status { RE_SUCCEEDED = 0, RE_FAILED };

struct adyen_result {
    const char *holder; /* the holderName that triggers it in test */
    int code;           /* refusalReasonCode / RequestedTestAcquirerResponseCode */
    const char *result; /* resultCode */
    const char *reason; /* refusalReason (NULL when Authorised) */
};

struct gw_obj {
    struct gw_obj *next;
    enum gw_kind kind;
    char id[GW_ID_MAX];
    int64_t created;
    /* K_PM, K_AT: what the card decides (never the card number itself) */
    enum gw_outcome outcome;
    enum tok_card_brand brand;
    char last4[5];
    char fingerprint[GW_FP_LEN + 1];
    int exp_month, exp_year;
    /* K_PI, K_RE, K_AP */
    int64_t amount, capturable, received, refunded;
    char currency[4];
    int status;
    bool manual;
    char ref1[GW_ID_MAX]; /* PI: payment method; RE, CH: payment intent */
    char ref2[GW_ID_MAX]; /* PI: latest charge; RE: charge */
    char *text1;          /* PI: description; AP: merchant reference; AT: shopperReference */
    char *meta;           /* PI, RE: metadata as a JSON object */
    char err_code[48], err_decline[32], err_msg[192];
    int64_t canceled_at;
    char reason[32]; /* PI: cancellation_reason; RE: reason */
    const struct adyen_result *ares;
    /* K_PM: confirmed once without a Customer, or detached: Stripe refuses it from then on.
     * K_AT: disabled (DELETE /storedPaymentMethods/{id}) */
    bool consumed;
    char customer[GW_ID_MAX]; /* K_PM: the Customer it is attached to; K_PI: customer */
    bool manual_sfu;          /* K_PI: setup_future_usage was given */
    bool sfu_on_session;      /* K_PI: ... and it was on_session */
    bool off_session;         /* K_PI: off_session=true */
    /* customer authentication (3-D Secure): K_PI in requires_action, K_AP in RedirectShopper */
    char *return_url;         /* where the simulated ACS sends the customer back */
    char *action_url;         /* the simulated ACS page */
    char redirect_result[GW_ID_MAX]; /* K_AP: the redirectResult given back once, for details */
    int auth;                 /* 0 none, 1 waiting, 2 authenticated, 3 failed */
    bool setup_done;          /* K_PM: authenticated with setup_future_usage=off_session */
};

struct gw_idem {
    struct gw_idem *next;
    char key[GW_STRIPE_IDEM_MAX + 3]; /* "s:" or "a:" + the client's key */
    uint8_t mac[TOK_HMAC_SHA256_LEN];
    int status;
    uint32_t len;
    char *body;
};

struct gw_timer {
    uint64_t ms;
    h2o_timeout_t t;
};

struct gw {
    struct gw_cfg cfg;
    struct tok_buf stripe_key, adyen_key; /* secret */
    char merchant[GW_KEY_MAX];
    uint8_t mac_key[32]; /* fingerprints and idempotency parameter hashes */
    struct gw_stats st;
    struct gw_obj **objs;
    struct gw_idem **idem;
    uint32_t nobjects;
    struct tok_buf scratch; /* secret: decoded parameters of the current request */
    struct tok_buf out;     /* the current response body */
    h2o_globalconf_t h2o;
    h2o_context_t ctx;
    SSL_CTX *ssl;
    int listen_fd;
    h2o_accept_ctx_t actx;
    int port_fd[GW_PORTS]; /* peer port -> fd, to reset a connection on request */
    struct gw_timer timers[GW_TIMERS_MAX];
    size_t ntimers;
    struct gw_recorder rec; /* --record */
    struct gw_wh wh;        /* webhooks sent after the fact (gwsim_webhooks.h) */
};

struct gw_handler {
    h2o_handler_t super;
    struct gw *g;
};

/* ---- outcomes by test card ------------------------------------------------------------- */

static const struct {
    const char *pan;
    enum gw_outcome out;
} test_cards[] = {
    {"4000000000000002", OUT_GENERIC},   {"4000000000009995", OUT_FUNDS},
    {"4000000000000069", OUT_EXPIRED},   {"4000000000000127", OUT_CVC},
    {"4000000000000119", OUT_PROCESSING},
    /* docs.stripe.com/testing#declined-payments: lost, stolen, fraudulent, velocity */
    {"4000000000009987", OUT_LOST},      {"4000000000009979", OUT_STOLEN},
    {"4100000000000019", OUT_FRAUD},     {"4000000000006975", OUT_VELOCITY},
    /* docs.stripe.com/testing#regulatory-cards (3-D Secure), #disputes */
    {"4000002760003184", OUT_3DS_ALWAYS}, {"4000000000003220", OUT_3DS_ALWAYS},
    {"4000002500003155", OUT_3DS_SETUP},  {"4000000000000259", OUT_DISPUTE},
    /* docs.stripe.com/testing#declined-payments (decline after attaching), #regulatory-cards
     * (3-D Secure required, then declined), #refunds (asynchronous refund failure) */
    {"4000000000000341", OUT_ATTACH_DECLINE}, {"4000008400001629", OUT_3DS_DECLINE},
    {"4000000000005126", OUT_REFUND_FAIL},
    /* docs.adyen.com/development-resources/testing/3d-secure-2-authentication: enrolled in
     * 3-D Secure 2 (and the Checkout v71 document's 3-D Secure redirect example card) */
    {"371449635398431", OUT_3DS_ADYEN},  {"4871049999999910", OUT_3DS_ADYEN},
    {"4035501428146300", OUT_3DS_ADYEN}, {"4360000001000005", OUT_3DS_ADYEN},
    {"30569309025904", OUT_3DS_ADYEN},   {"6011111111111117", OUT_3DS_ADYEN},
    {"3566111111111113", OUT_3DS_ADYEN}, {"5454545454545454", OUT_3DS_ADYEN},
    {"2222400010000008", OUT_3DS_ADYEN}, {"4212345678901237", OUT_3DS_ADYEN},
};

/* Stripe's documented test PaymentMethod ids (docs.stripe.com/testing). */
static const struct {
    const char *id;
    enum gw_outcome out;
    const char *last4;
} stripe_test_pms[] = {
    {"pm_card_visa", OUT_OK, "4242"},
    {"pm_card_chargeDeclined", OUT_GENERIC, "0002"},
    {"pm_card_chargeDeclinedInsufficientFunds", OUT_FUNDS, "9995"},
    {"pm_card_chargeDeclinedExpiredCard", OUT_EXPIRED, "0069"},
    {"pm_card_chargeDeclinedIncorrectCvc", OUT_CVC, "0127"},
    {"pm_card_chargeDeclinedProcessingError", OUT_PROCESSING, "0119"},
    {"pm_card_chargeDeclinedLostCard", OUT_LOST, "9987"},
    {"pm_card_chargeDeclinedStolenCard", OUT_STOLEN, "9979"},
    {"pm_card_chargeDeclinedFraudulent", OUT_FRAUD, "0019"},
    {"pm_card_chargeDeclinedVelocityLimitExceeded", OUT_VELOCITY, "6975"},
};

static const struct {
    const char *code, *decline, *message;
} stripe_declines[] = {
    [OUT_OK] = {NULL, NULL, NULL},
    [OUT_GENERIC] = {"card_declined", "generic_decline", "Your card was declined."},
    [OUT_FUNDS] = {"card_declined", "insufficient_funds", "Your card has insufficient funds."},
    [OUT_EXPIRED] = {"expired_card", "expired_card", "Your card has expired."},
    [OUT_CVC] = {"incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."},
    [OUT_LOST] = {"card_declined", "lost_card", "Your card was declined."},
    [OUT_STOLEN] = {"card_declined", "stolen_card", "Your card was declined."},
    [OUT_FRAUD] = {"card_declined", "fraudulent", "Your card was declined."},
    [OUT_VELOCITY] = {"card_declined", "card_velocity_exceeded",
                      "Your card was declined for making repeated attempts too frequently or "
                      "exceeding its amount limit."},
    [OUT_PROCESSING] = {"processing_error", "processing_error",
                        "An error occurred while processing your card. Try again in a little "
                        "bit."},
    [OUT_3DS_ALWAYS] = {NULL, NULL, NULL},
    [OUT_3DS_SETUP] = {NULL, NULL, NULL},
    [OUT_3DS_ADYEN] = {NULL, NULL, NULL},
    [OUT_DISPUTE] = {NULL, NULL, NULL},
    [OUT_ATTACH_DECLINE] = {"card_declined", "generic_decline", "Your card was declined."},
    [OUT_3DS_DECLINE] = {"card_declined", "generic_decline", "Your card was declined."},
    [OUT_REFUND_FAIL] = {NULL, NULL, NULL},
};

/* Whether a card's payments are authorised (after authentication, for the 3-D Secure ones). */
static bool outcome_ok(enum gw_outcome o)
{
    return o == OUT_OK || o == OUT_3DS_ALWAYS || o == OUT_3DS_SETUP || o == OUT_3DS_ADYEN ||
           o == OUT_DISPUTE || o == OUT_REFUND_FAIL;
}

static const struct adyen_result adyen_results[] = {
    {"UNKNOWN", 0, "Error", "Unknown"},
    {"APPROVED", 1, "Authorised", NULL},
    {"DECLINED", 2, "Refused", "Refused"},
    {"REFERRAL", 3, "Refused", "Referral"},
    {"ERROR", 4, "Error", "Acquirer Error"},
    {"BLOCK_CARD", 5, "Refused", "Blocked Card"},
    {"CARD_EXPIRED", 6, "Refused", "Expired Card"},
    {"INVALID_AMOUNT", 7, "Refused", "Invalid Amount"},
    {"INVALID_CARD_NUMBER", 8, "Refused", "Invalid Card Number"},
    {"ISSUER_UNAVAILABLE", 9, "Refused", "Issuer Unavailable"},
    {"NOT_SUPPORTED", 10, "Refused", "Not supported"},
    {"NOT_3D_AUTHENTICATED", 11, "Refused", "3D Not Authenticated"},
    {"NOT_ENOUGH_BALANCE", 12, "Refused", "Not enough balance"},
    {"ACQUIRER_FRAUD", 14, "Refused", "Acquirer Fraud"},
    {"CANCELLED", 15, "Refused", "Cancelled"},
    {"SHOPPER_CANCELLED", 16, "Refused", "Shopper Cancelled"},
    {"FRAUD", 20, "Refused", "FRAUD"},
    {"CVC_DECLINED", 24, "Refused", "CVC Declined"},
    {"WITHDRAWAL_COUNT_EXCEEDED", 29, "Refused", "Withdrawal count exceeded"},
};

static const struct adyen_result *adyen_by_holder(const char *holder)
{
    for (size_t i = 0; i < TOK_ARRAY_LEN(adyen_results); i++)
        if (strcmp(adyen_results[i].holder, holder) == 0)
            return &adyen_results[i];
    return NULL;
}

static const struct adyen_result *adyen_by_code(int64_t code)
{
    for (size_t i = 0; i < TOK_ARRAY_LEN(adyen_results); i++)
        if (adyen_results[i].code == code)
            return &adyen_results[i];
    return NULL;
}

static const struct adyen_result *adyen_by_outcome(enum gw_outcome o)
{
    static const char *const names[] = {
        [OUT_OK] = "APPROVED",          [OUT_GENERIC] = "DECLINED",
        [OUT_FUNDS] = "NOT_ENOUGH_BALANCE", [OUT_EXPIRED] = "CARD_EXPIRED",
        [OUT_CVC] = "CVC_DECLINED",     [OUT_PROCESSING] = "ERROR",
        [OUT_LOST] = "BLOCK_CARD",      [OUT_STOLEN] = "BLOCK_CARD",
        [OUT_FRAUD] = "FRAUD",          [OUT_VELOCITY] = "WITHDRAWAL_COUNT_EXCEEDED",
        [OUT_3DS_ALWAYS] = "APPROVED",  [OUT_3DS_SETUP] = "APPROVED",
        [OUT_3DS_ADYEN] = "APPROVED",   [OUT_DISPUTE] = "APPROVED",
        [OUT_ATTACH_DECLINE] = "DECLINED", [OUT_3DS_DECLINE] = "APPROVED",
        [OUT_REFUND_FAIL] = "APPROVED",
    };
    return adyen_by_holder(names[o]);
}

static enum gw_outcome outcome_of(struct tok_slice digits)
{
    for (size_t i = 0; i < TOK_ARRAY_LEN(test_cards); i++)
        if (tok_slice_eq(digits, test_cards[i].pan))
            return test_cards[i].out;
    return OUT_OK;
}

static const char *adyen_brand(enum tok_card_brand b)
{
    switch (b) {
    case TOK_BRAND_VISA:
        return "visa";
    case TOK_BRAND_MASTERCARD:
        return "mc";
    case TOK_BRAND_AMEX:
        return "amex";
    case TOK_BRAND_DISCOVER:
        return "discover";
    case TOK_BRAND_JCB:
        return "jcb";
    case TOK_BRAND_DINERS:
        return "diners";
    case TOK_BRAND_UNIONPAY:
        return "cup";
    case TOK_BRAND_MAESTRO:
        return "maestro";
    default:
        return "unknown";
    }
}

static const char *stripe_brand(enum tok_card_brand b)
{
    switch (b) {
    case TOK_BRAND_VISA:
    case TOK_BRAND_MASTERCARD:
    case TOK_BRAND_AMEX:
    case TOK_BRAND_DISCOVER:
    case TOK_BRAND_JCB:
    case TOK_BRAND_DINERS:
    case TOK_BRAND_UNIONPAY:
        return tok_card_brand_name(b);
    default:
        return "unknown";
    }
}

static const char *pi_status_name(int s)
{
    switch (s) {
    case PI_REQ_PM:
        return "requires_payment_method";
    case PI_REQ_CONFIRM:
        return "requires_confirmation";
    case PI_REQ_CAPTURE:
        return "requires_capture";
    case PI_SUCCEEDED:
        return "succeeded";
    case PI_CANCELED:
        return "canceled";
    case PI_REQ_ACTION:
        return "requires_action";
    default:
        return "unknown";
    }
}

/* ---- small helpers ----------------------------------------------------------------------- */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static char *dup_slice(struct tok_slice s)
{
    char *p = malloc(s.len + 1);
    if (p == NULL)
        return NULL;
    tok_copy(p, s.ptr, s.len);
    p[s.len] = '\0';
    return p;
}

/* Copies s into a fixed array of cap bytes as a C string; TOK_ERR_BOUNDS when it does not fit. */
static tok_status put_cstr(char *dst, size_t cap, struct tok_slice s)
{
    TOK_ENSURE(s.len < cap, TOK_ERR_BOUNDS);
    tok_copy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    return TOK_OK;
}

static bool parse_i64(struct tok_slice s, int64_t *out)
{
    if (s.len == 0 || s.len > 18)
        return false;
    size_t i = 0;
    bool neg = false;
    if (s.ptr[0] == '-') {
        neg = true;
        i = 1;
        if (s.len == 1)
            return false;
    }
    int64_t v = 0;
    for (; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

/* 1..max bytes of printable ASCII: safe to echo in a header or a message. */
static bool printable(struct tok_slice s, size_t max)
{
    if (s.len == 0 || s.len > max)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] < 0x20 || s.ptr[i] > 0x7e)
            return false;
    return true;
}

static bool slice_is(struct tok_slice s, const char *lit)
{
    return tok_slice_eq(s, lit);
}

static bool slice_prefix(struct tok_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len >= n && memcmp(s.ptr, lit, n) == 0;
}

/* "pi_" + 22 base62 characters from tok_random_id, as a C string in out[GW_ID_MAX]. */
static tok_status new_id(const char *prefix, char out[GW_ID_MAX])
{
    struct tok_buf b;
    tok_buf_init(&b, out, GW_ID_MAX - 1);
    TOK_GUARD(tok_random_id(prefix, &b));
    out[b.len] = '\0';
    return TOK_OK;
}

/* Adyen's 16-character references (pspReference, storedPaymentMethodId). */
static void new_psp(char out[17])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int i = 0; i < 16; i++)
        out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    out[16] = '\0';
}

static bool header_get(h2o_req_t *req, const char *name, struct tok_slice *out)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return false;
    *out = tok_slice_of(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    return true;
}

/* ---- object store ------------------------------------------------------------------------ */

static uint32_t hash_str(struct tok_slice s)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < s.len; i++) {
        h ^= s.ptr[i];
        h *= 16777619u;
    }
    return h & (GW_BUCKETS - 1);
}

static struct gw_obj *obj_find(struct gw *g, struct tok_slice id, enum gw_kind kind)
{
    for (struct gw_obj *o = g->objs[hash_str(id)]; o != NULL; o = o->next)
        if (o->kind == kind && tok_slice_eq(id, o->id))
            return o;
    return NULL;
}

/* A new zeroed object with a fresh id; NULL when the store is full (-> 503) or on ENOMEM. */
static struct gw_obj *obj_new(struct gw *g, enum gw_kind kind, const char *prefix)
{
    if (g->nobjects >= g->cfg.max_objects)
        return NULL;
    struct gw_obj *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->kind = kind;
    o->created = now_s();
    tok_status st;
    if (prefix != NULL) {
        st = new_id(prefix, o->id);
    } else {
        new_psp(o->id);
        st = TOK_OK;
    }
    if (st != TOK_OK) {
        free(o);
        return NULL;
    }
    uint32_t h = hash_str(tok_slice_str(o->id));
    o->next = g->objs[h];
    g->objs[h] = o;
    g->nobjects++;
    return o;
}

static struct gw_idem *idem_find(struct gw *g, struct tok_slice key)
{
    for (struct gw_idem *r = g->idem[hash_str(key)]; r != NULL; r = r->next)
        if (tok_slice_eq(key, r->key))
            return r;
    return NULL;
}

static void idem_save(struct gw *g, struct tok_slice key, const uint8_t mac[32], int status,
                      struct tok_slice body)
{
    if (g->nobjects >= g->cfg.max_objects || key.len >= sizeof ((struct gw_idem *)0)->key)
        return;
    struct gw_idem *r = calloc(1, sizeof *r);
    if (r == NULL)
        return;
    r->body = dup_slice(body);
    if (r->body == NULL) {
        free(r);
        return;
    }
    if (put_cstr(r->key, sizeof r->key, key) != TOK_OK) {
        free(r->body);
        free(r);
        return;
    }
    tok_copy(r->mac, mac, sizeof r->mac);
    r->status = status;
    r->len = (uint32_t)body.len;
    uint32_t h = hash_str(key);
    r->next = g->idem[h];
    g->idem[h] = r;
    g->nobjects++;
}

static void store_clear(struct gw *g)
{
    for (uint32_t i = 0; i < GW_BUCKETS; i++) {
        for (struct gw_obj *o = g->objs[i], *n; o != NULL; o = n) {
            n = o->next;
            free(o->text1);
            free(o->meta);
            free(o->return_url);
            free(o->action_url);
            sodium_memzero(o, sizeof *o);
            free(o);
        }
        g->objs[i] = NULL;
        for (struct gw_idem *r = g->idem[i], *n; r != NULL; r = n) {
            n = r->next;
            free(r->body);
            free(r);
        }
        g->idem[i] = NULL;
    }
    g->nobjects = 0;
}

/* ---- the response being built ------------------------------------------------------------ */

enum gw_api { API_NONE, API_STRIPE, API_ADYEN, API_CONTROL };

struct gw_fault {
    bool f500, f429, timeout, reset, after;
    uint32_t latency;
};

struct gw_call {
    struct gw *g;
    h2o_req_t *req;
    enum gw_api api;
    const char *route;
    int status;
    const char *code; /* for the log line */
    bool replayed;
    bool saveable; /* a Stripe/Adyen idempotent result worth saving */
    struct tok_slice idem_key;
    char request_id[GW_ID_MAX];
    struct gw_fault fault;
};

static void resp_reset(struct gw_call *c)
{
    c->g->out.len = 0;
}

/* ---- Stripe ------------------------------------------------------------------------------ */

struct gw_param {
    struct tok_slice k, v;
};

struct gw_form {
    size_t n;
    struct gw_param p[GW_PARAMS_MAX];
};

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded: '+' is a space, %XX a byte. Decoded into the arena. */
static tok_status form_decode(struct tok_slice s, struct tok_buf *arena, struct tok_slice *out)
{
    uint32_t start = arena->len;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            TOK_ENSURE(s.len - i >= 3, TOK_ERR_INPUT);
            int hi = hexval(s.ptr[i + 1]), lo = hexval(s.ptr[i + 2]);
            TOK_ENSURE(hi >= 0 && lo >= 0, TOK_ERR_INPUT);
            c = (uint8_t)(hi * 16 + lo);
            i += 2;
        }
        TOK_GUARD(tok_buf_putc(arena, c));
    }
    *out = tok_slice_of(arena->data + start, arena->len - start);
    return TOK_OK;
}

static tok_status form_parse(struct tok_slice body, struct tok_buf *arena, struct gw_form *f)
{
    size_t i = 0;
    while (i < body.len) {
        size_t j = i;
        while (j < body.len && body.ptr[j] != '&')
            j++;
        if (j > i) {
            struct tok_slice pair = tok_slice_of(body.ptr + i, j - i);
            size_t eq = 0;
            while (eq < pair.len && pair.ptr[eq] != '=')
                eq++;
            TOK_ENSURE(f->n < GW_PARAMS_MAX, TOK_ERR_BOUNDS);
            struct gw_param *p = &f->p[f->n];
            TOK_GUARD(form_decode(tok_slice_of(pair.ptr, eq), arena, &p->k));
            struct tok_slice raw = tok_slice_of(pair.ptr + eq, 0);
            if (eq < pair.len)
                raw = tok_slice_of(pair.ptr + eq + 1, pair.len - eq - 1);
            TOK_GUARD(form_decode(raw, arena, &p->v));
            TOK_ENSURE(p->k.len > 0 && p->k.len <= GW_PARAM_KEY_MAX, TOK_ERR_INPUT);
            f->n++;
        }
        i = j + 1;
    }
    return TOK_OK;
}

/* The last value sent for key (Stripe keeps the last of repeated scalars). */
static bool form_get(const struct gw_form *f, const char *key, struct tok_slice *out)
{
    bool found = false;
    for (size_t i = 0; i < f->n; i++)
        if (tok_slice_eq(f->p[i].k, key)) {
            *out = f->p[i].v;
            found = true;
        }
    return found;
}

/*
 * The first parameter not allowed here, or NULL. allowed entries ending in '[' are prefixes
 * ("metadata[" allows "metadata[order]"); "expand[" is always allowed (and ignored).
 */
static const struct gw_param *form_unknown(const struct gw_form *f, const char *const allowed[],
                                           size_t n)
{
    for (size_t i = 0; i < f->n; i++) {
        struct tok_slice k = f->p[i].k;
        bool ok = slice_prefix(k, "expand[");
        for (size_t j = 0; j < n && !ok; j++) {
            size_t al = strlen(allowed[j]);
            ok = allowed[j][al - 1] == '[' ? slice_prefix(k, allowed[j]) && k.len > al
                                           : tok_slice_eq(k, allowed[j]);
        }
        if (!ok)
            return &f->p[i];
    }
    return NULL;
}

static void stripe_error_obj(struct gw_call *c, struct tok_json_writer *w, const char *type,
                             const char *code, const char *decline, const char *param,
                             const char *message)
{
    tok_jw_key(w, "error");
    tok_jw_obj_begin(w);
    if (code != NULL) {
        tok_jw_kstr(w, "code", code);
    }
    if (decline != NULL) {
        tok_jw_kstr(w, "decline_code", decline);
    }
    if (code != NULL) {
        char url[128];
        snprintf(url, sizeof url, "https://stripe.com/docs/error-codes/%s", code);
        for (char *p = url + 36; *p != '\0'; p++)
            if (*p == '_')
                *p = '-';
        tok_jw_kstr(w, "doc_url", url);
    }
    tok_jw_kstr(w, "message", message);
    if (param != NULL) {
        tok_jw_kstr(w, "param", param);
    }
    tok_jw_key(w, "request_log_url");
    char log_url[128];
    snprintf(log_url, sizeof log_url, "https://dashboard.stripe.com/test/logs/%s", c->request_id);
    tok_jw_str(w, log_url);
    tok_jw_kstr(w, "type", type);
}

static void stripe_error(struct gw_call *c, int status, const char *type, const char *code,
                         const char *param, const char *message)
{
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &c->g->out);
    tok_jw_obj_begin(&w);
    stripe_error_obj(c, &w, type, code, NULL, param, message);
    tok_jw_obj_end(&w);
    tok_jw_obj_end(&w);
    c->status = status;
    c->code = code != NULL ? code : type;
}

static void stripe_missing(struct gw_call *c, const char *param)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Missing required param: %s.", param);
    stripe_error(c, 400, "invalid_request_error", "parameter_missing", param, msg);
}

static void stripe_no_such(struct gw_call *c, int status, const char *what, struct tok_slice id,
                           const char *param)
{
    char msg[200];
    snprintf(msg, sizeof msg, "No such %s: '%.*s'", what, (int)(id.len > 64 ? 64 : id.len),
             (const char *)id.ptr);
    /* the id came from the client: escape by writing it through the JSON writer */
    stripe_error(c, status, "invalid_request_error", "resource_missing", param, msg);
}

static void stripe_full(struct gw_call *c)
{
    c->g->st.full_refusals++;
    stripe_error(c, 503, "api_error", NULL, NULL,
                 "gwsim: the object store is full (see --max-objects); POST /__gwsim/reset");
}

/*
 * Members of Stripe's objects that gwsim has no behaviour for, present so that its objects
 * carry every field of Stripe's published fixtures (tests/contracts/stripe/fixtures3.json;
 * t_45_contracts.sh compares the key sets): null, or the value Stripe gives an object made
 * the way gwsim's are.
 */
static void write_nulls(struct tok_json_writer *w, const char *const keys[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tok_jw_key(w, keys[i]);
        tok_jw_null(w);
    }
}

/* PaymentMethod.card: display_brand (Stripe's display names), networks, 3DS support */
static void write_pm_card_more(struct tok_json_writer *w, const struct gw_obj *pm)
{
    const char *brand = stripe_brand(pm->brand);
    static const struct {
        const char *brand, *display;
    } names[] = {{"amex", "american_express"}, {"diners", "diners_club"},
                 {"unionpay", "union_pay"}, {"unknown", "other"}};
    const char *display = brand;
    for (size_t i = 0; i < TOK_ARRAY_LEN(names); i++)
        if (strcmp(brand, names[i].brand) == 0)
            display = names[i].display;
    tok_jw_kstr(w, "display_brand", display);
    tok_jw_key(w, "generated_from");
    tok_jw_null(w);
    tok_jw_key(w, "networks");
    tok_jw_obj_begin(w);
    tok_jw_key(w, "available");
    tok_jw_arr_begin(w);
    tok_jw_str(w, brand);
    tok_jw_arr_end(w);
    tok_jw_key(w, "preferred");
    tok_jw_null(w);
    tok_jw_obj_end(w);
    tok_jw_key(w, "regulated_status");
    tok_jw_null(w);
    tok_jw_key(w, "three_d_secure_usage");
    tok_jw_obj_begin(w);
    tok_jw_kbool(w, "supported", true);
    tok_jw_obj_end(w);
    tok_jw_key(w, "wallet");
    tok_jw_null(w);
}

/* PaymentIntent: the fixture's members gwsim does not model (Connect, shipping, wallets...) */
static void write_pi_more(struct tok_json_writer *w, const struct gw_obj *pi)
{
    static const char *const nulls[] = {
        "application", "application_fee_amount", "automatic_payment_methods",
        "customer_account", "excluded_payment_method_types", "managed_payments",
        "on_behalf_of", "payment_method_configuration_details", "processing", "receipt_email",
        "review", "shipping", "source", "statement_descriptor", "statement_descriptor_suffix",
        "transfer_data", "transfer_group"};
    write_nulls(w, nulls, TOK_ARRAY_LEN(nulls));
    tok_jw_key(w, "amount_details");
    tok_jw_obj_begin(w);
    tok_jw_key(w, "tip");
    tok_jw_obj_begin(w);
    tok_jw_obj_end(w);
    tok_jw_obj_end(w);
    char secret[GW_ID_MAX + 16];
    snprintf(secret, sizeof secret, "%s_secret_gwsim", pi->id);
    tok_jw_kstr(w, "client_secret", secret);
    /* next_action: write_pi, which models requires_action (3-D Secure) */
    tok_jw_key(w, "payment_method_options");
    tok_jw_obj_begin(w);
    tok_jw_key(w, "card");
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "request_three_d_secure", "automatic");
    tok_jw_obj_end(w);
    tok_jw_obj_end(w);
    tok_jw_kstr(w, "setup_future_usage",
                !pi->manual_sfu ? NULL : pi->sfu_on_session ? "on_session" : "off_session");
}

static void write_pm(struct tok_json_writer *w, const struct gw_obj *pm)
{
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "id", pm->id);
    tok_jw_kstr(w, "object", "payment_method");
    tok_jw_key(w, "billing_details");
    tok_jw_obj_begin(w);
    tok_jw_key(w, "address");
    tok_jw_null(w);
    tok_jw_key(w, "email");
    tok_jw_null(w);
    tok_jw_kstr(w, "name", pm->text1);
    tok_jw_key(w, "phone");
    tok_jw_null(w);
    tok_jw_key(w, "tax_id");
    tok_jw_null(w);
    tok_jw_obj_end(w);
    tok_jw_key(w, "card");
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "brand", stripe_brand(pm->brand));
    tok_jw_key(w, "checks");
    tok_jw_obj_begin(w);
    tok_jw_key(w, "address_line1_check");
    tok_jw_null(w);
    tok_jw_key(w, "address_postal_code_check");
    tok_jw_null(w);
    tok_jw_kstr(w, "cvc_check", "unchecked");
    tok_jw_obj_end(w);
    tok_jw_kstr(w, "country", "US");
    write_pm_card_more(w, pm);
    tok_jw_kint(w, "exp_month", pm->exp_month);
    tok_jw_kint(w, "exp_year", pm->exp_year);
    tok_jw_kstr(w, "fingerprint", pm->fingerprint);
    tok_jw_kstr(w, "funding", "credit");
    tok_jw_kstr(w, "last4", pm->last4);
    tok_jw_obj_end(w);
    tok_jw_kstr(w, "allow_redisplay", "unspecified");
    tok_jw_kint(w, "created", pm->created);
    tok_jw_kstr(w, "customer", pm->customer[0] != '\0' ? pm->customer : NULL);
    tok_jw_key(w, "customer_account");
    tok_jw_null(w);
    tok_jw_kbool(w, "livemode", false);
    tok_jw_key(w, "metadata");
    tok_jw_obj_begin(w);
    tok_jw_obj_end(w);
    tok_jw_kstr(w, "type", "card");
    tok_jw_obj_end(w);
}

static void write_meta(struct tok_json_writer *w, const char *meta)
{
    if (meta != NULL) {
        tok_jw_raw(w, tok_slice_str(meta));
        return;
    }
    tok_jw_obj_begin(w);
    tok_jw_obj_end(w);
}

static void write_pi(struct tok_json_writer *w, const struct gw_obj *pi)
{
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "id", pi->id);
    tok_jw_kstr(w, "object", "payment_intent");
    tok_jw_kint(w, "amount", pi->amount);
    tok_jw_kint(w, "amount_capturable", pi->capturable);
    tok_jw_kint(w, "amount_received", pi->received);
    tok_jw_key(w, "canceled_at");
    if (pi->canceled_at != 0)
        tok_jw_int(w, pi->canceled_at);
    else
        tok_jw_null(w);
    tok_jw_kstr(w, "cancellation_reason", pi->reason[0] != '\0' ? pi->reason : NULL);
    tok_jw_kstr(w, "capture_method", pi->manual ? "manual" : "automatic");
    tok_jw_kstr(w, "confirmation_method", "automatic");
    tok_jw_kint(w, "created", pi->created);
    tok_jw_kstr(w, "currency", pi->currency);
    tok_jw_kstr(w, "customer", pi->customer[0] != '\0' ? pi->customer : NULL);
    tok_jw_kstr(w, "description", pi->text1);
    tok_jw_key(w, "last_payment_error");
    if (pi->err_code[0] != '\0') {
        tok_jw_obj_begin(w);
        tok_jw_kstr(w, "code", pi->err_code);
        tok_jw_kstr(w, "decline_code", pi->err_decline);
        tok_jw_kstr(w, "message", pi->err_msg);
        tok_jw_kstr(w, "type", "card_error");
        tok_jw_obj_end(w);
    } else {
        tok_jw_null(w);
    }
    tok_jw_kstr(w, "latest_charge", pi->ref2[0] != '\0' ? pi->ref2 : NULL);
    tok_jw_kbool(w, "livemode", false);
    tok_jw_key(w, "metadata");
    write_meta(w, pi->meta);
    /* docs.stripe.com/api/payment_intents/object#payment_intent_object-next_action: with a
     * return_url the customer is sent to the issuer's page (redirect_to_url); without one
     * only Stripe.js could handle it (use_stripe_sdk) */
    tok_jw_key(w, "next_action");
    if (pi->status == PI_REQ_ACTION && pi->return_url != NULL) {
        tok_jw_obj_begin(w);
        tok_jw_key(w, "redirect_to_url");
        tok_jw_obj_begin(w);
        tok_jw_kstr(w, "return_url", pi->return_url);
        tok_jw_kstr(w, "url", pi->action_url);
        tok_jw_obj_end(w);
        tok_jw_kstr(w, "type", "redirect_to_url");
        tok_jw_obj_end(w);
    } else if (pi->status == PI_REQ_ACTION) {
        tok_jw_obj_begin(w);
        tok_jw_kstr(w, "type", "use_stripe_sdk");
        tok_jw_key(w, "use_stripe_sdk");
        tok_jw_obj_begin(w);
        tok_jw_kstr(w, "type", "three_d_secure_redirect");
        tok_jw_kstr(w, "stripe_js", pi->action_url);
        tok_jw_obj_end(w);
        tok_jw_obj_end(w);
    } else {
        tok_jw_null(w);
    }
    tok_jw_kstr(w, "payment_method", pi->ref1[0] != '\0' ? pi->ref1 : NULL);
    tok_jw_key(w, "payment_method_types");
    tok_jw_arr_begin(w);
    tok_jw_str(w, "card");
    tok_jw_arr_end(w);
    tok_jw_kstr(w, "status", pi_status_name(pi->status));
    write_pi_more(w, pi);
    tok_jw_obj_end(w);
}

static void write_refund(struct tok_json_writer *w, const struct gw_obj *re)
{
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "id", re->id);
    tok_jw_kstr(w, "object", "refund");
    tok_jw_kint(w, "amount", re->amount);
    tok_jw_key(w, "balance_transaction");
    tok_jw_null(w);
    tok_jw_kstr(w, "charge", re->ref2);
    tok_jw_kint(w, "created", re->created);
    tok_jw_kstr(w, "currency", re->currency);
    static const char *const nulls[] = {"customer", "customer_account", "payment_method",
                                        "receipt_number", "source_transfer_reversal",
                                        "transfer_reversal"};
    write_nulls(w, nulls, TOK_ARRAY_LEN(nulls));
    tok_jw_key(w, "destination_details");
    tok_jw_obj_begin(w);
    tok_jw_key(w, "card");
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "type", "refund");
    tok_jw_obj_end(w);
    tok_jw_kstr(w, "type", "card");
    tok_jw_obj_end(w);
    tok_jw_key(w, "metadata");
    write_meta(w, re->meta);
    tok_jw_kstr(w, "payment_intent", re->ref1);
    tok_jw_kstr(w, "reason", re->reason[0] != '\0' ? re->reason : NULL);
    tok_jw_kstr(w, "status", re->status == RE_FAILED ? "failed" : "succeeded");
    if (re->status == RE_FAILED) {
        /* Stripe adds these when a refund fails (docs.stripe.com/api/refunds/object) */
        tok_jw_kstr(w, "failure_balance_transaction", re->text1);
        tok_jw_kstr(w, "failure_reason", "expired_or_canceled_card");
    }
    tok_jw_obj_end(w);
}

static void write_customer(struct tok_json_writer *w, const struct gw_obj *cu)
{
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "id", cu->id);
    tok_jw_kstr(w, "object", "customer");
    tok_jw_key(w, "address");
    tok_jw_null(w);
    tok_jw_kint(w, "balance", 0);
    tok_jw_kint(w, "created", cu->created);
    tok_jw_key(w, "currency");
    tok_jw_null(w);
    tok_jw_key(w, "default_source");
    tok_jw_null(w);
    tok_jw_kbool(w, "delinquent", false);
    tok_jw_kstr(w, "description", cu->text1);
    tok_jw_key(w, "discount");
    tok_jw_null(w);
    tok_jw_key(w, "email");
    tok_jw_null(w);
    tok_jw_kstr(w, "invoice_prefix", "GWSIM");
    tok_jw_key(w, "invoice_settings");
    tok_jw_obj_begin(w);
    tok_jw_key(w, "custom_fields");
    tok_jw_null(w);
    tok_jw_key(w, "default_payment_method");
    tok_jw_null(w);
    tok_jw_key(w, "footer");
    tok_jw_null(w);
    tok_jw_key(w, "rendering_options");
    tok_jw_null(w);
    tok_jw_obj_end(w);
    tok_jw_kbool(w, "livemode", false);
    tok_jw_key(w, "metadata");
    write_meta(w, cu->meta);
    tok_jw_key(w, "name");
    tok_jw_null(w);
    tok_jw_kint(w, "next_invoice_sequence", 1);
    tok_jw_key(w, "phone");
    tok_jw_null(w);
    tok_jw_key(w, "preferred_locales");
    tok_jw_arr_begin(w);
    tok_jw_arr_end(w);
    tok_jw_key(w, "shipping");
    tok_jw_null(w);
    tok_jw_kstr(w, "tax_exempt", "none");
    tok_jw_key(w, "test_clock");
    tok_jw_null(w);
    tok_jw_obj_end(w);
}

enum stripe_obj_kind { SO_PM, SO_PI, SO_RE, SO_CU };

static void stripe_ok(struct gw_call *c, enum stripe_obj_kind kind, const struct gw_obj *o)
{
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &c->g->out);
    if (kind == SO_PM)
        write_pm(&w, o);
    else if (kind == SO_PI)
        write_pi(&w, o);
    else if (kind == SO_CU)
        write_customer(&w, o);
    else
        write_refund(&w, o);
    c->status = w.st == TOK_OK ? 200 : 500;
    c->code = "ok";
}

/* Reads metadata[...] parameters into a JSON object (malloc'd; NULL when none). */
static bool stripe_metadata(struct gw_call *c, const struct gw_form *f, char **out)
{
    char mem[GW_META_KEYS_MAX * (GW_META_KEY_MAX + GW_META_VALUE_MAX + 8) * 2];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        struct tok_slice k = f->p[i].k;
        if (!slice_prefix(k, "metadata[") || k.ptr[k.len - 1] != ']')
            continue;
        struct tok_slice name = tok_slice_of(k.ptr + 9, k.len - 10);
        char kbuf[GW_META_KEY_MAX + 1];
        if (name.len == 0 || put_cstr(kbuf, sizeof kbuf, name) != TOK_OK ||
            memchr(name.ptr, '\0', name.len) != NULL) {
            stripe_error(c, 400, "invalid_request_error", NULL, "metadata",
                         "Metadata keys must be 1 to 40 characters long.");
            return false;
        }
        if (f->p[i].v.len > GW_META_VALUE_MAX) {
            stripe_error(c, 400, "invalid_request_error", NULL, "metadata",
                         "Metadata values can have up to 500 characters.");
            return false;
        }
        if (++n > GW_META_KEYS_MAX) {
            stripe_error(c, 400, "invalid_request_error", NULL, "metadata",
                         "Metadata can have up to 50 keys.");
            return false;
        }
        tok_jw_key(&w, kbuf);
        tok_jw_strn(&w, f->p[i].v);
    }
    tok_jw_obj_end(&w);
    *out = NULL;
    if (n == 0)
        return true;
    if (tok_jw_finish(&w) != TOK_OK || (*out = dup_slice(tok_buf_slice(&b))) == NULL) {
        stripe_error(c, 500, "api_error", NULL, NULL, "gwsim: out of memory");
        return false;
    }
    return true;
}

static bool stripe_check_params(struct gw_call *c, const struct gw_form *f,
                                const char *const allowed[], size_t n)
{
    const struct gw_param *bad = form_unknown(f, allowed, n);
    if (bad == NULL)
        return true;
    char msg[200];
    if (tok_json_key_echoable(bad->k))
        snprintf(msg, sizeof msg, "Received unknown parameter: %.*s", (int)bad->k.len,
                 (const char *)bad->k.ptr);
    else
        snprintf(msg, sizeof msg, "Received unknown parameter.");
    stripe_error(c, 400, "invalid_request_error", "parameter_unknown", NULL, msg);
    return false;
}

/* An integer parameter; false (with the error set) when present but not an integer. */
static bool stripe_int(struct gw_call *c, const struct gw_form *f, const char *key, bool *present,
                       int64_t *out)
{
    struct tok_slice v;
    *present = form_get(f, key, &v);
    if (!*present)
        return true;
    if (parse_i64(v, out))
        return true;
    stripe_error(c, 400, "invalid_request_error", "parameter_invalid_integer", key,
                 "Invalid integer.");
    return false;
}

static void stripe_pm_create(struct gw_call *c, const struct gw_form *f)
{
    static const char *const allowed[] = {"type", "card[number]", "card[exp_month]",
                                          "card[exp_year]", "card[cvc]", "billing_details[name]",
                                          "billing_details[email]", "metadata["};
    if (!stripe_check_params(c, f, allowed, TOK_ARRAY_LEN(allowed)))
        return;
    struct tok_slice type, number, cvc, name;
    if (!form_get(f, "type", &type))
        return stripe_missing(c, "type");
    if (!slice_is(type, "card"))
        return stripe_error(c, 400, "invalid_request_error", NULL, "type",
                            "gwsim only simulates type=card.");
    if (!form_get(f, "card[number]", &number))
        return stripe_missing(c, "card[number]");
    int64_t m = 0, y = 0;
    bool hm, hy;
    if (!stripe_int(c, f, "card[exp_month]", &hm, &m) ||
        !stripe_int(c, f, "card[exp_year]", &hy, &y))
        return;
    if (!hm)
        return stripe_missing(c, "card[exp_month]");
    if (!hy)
        return stripe_missing(c, "card[exp_year]");

    uint8_t dmem[TOK_PAN_MAX + 1];
    struct tok_buf digits;
    tok_buf_init(&digits, dmem, sizeof dmem);
    const char *code = NULL;
    enum tok_card_brand brand = TOK_BRAND_UNKNOWN;
    if (tok_card_normalise(number, &digits, &code) != TOK_OK) {
        sodium_memzero(dmem, sizeof dmem);
        return stripe_error(c, 402, "card_error", "invalid_number", "card[number]",
                            "Your card number is not a valid credit card number.");
    }
    if (!tok_card_luhn_ok(tok_buf_slice(&digits))) {
        sodium_memzero(dmem, sizeof dmem);
        return stripe_error(c, 402, "card_error", "incorrect_number", "card[number]",
                            "Your card number is incorrect.");
    }
    brand = tok_card_brand_of(tok_buf_slice(&digits));
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (m < 1 || m > 12 || tok_card_expiry_check((int)m, (int)(y > 9999 ? 0 : y), tm.tm_mon + 1,
                                                 tm.tm_year + 1900, &code) != TOK_OK) {
        sodium_memzero(dmem, sizeof dmem);
        bool month = m < 1 || m > 12 || (code != NULL && strcmp(code, "invalid_expiry_month") == 0);
        return stripe_error(c, 402, "card_error",
                            month ? "invalid_expiry_month" : "invalid_expiry_year",
                            month ? "card[exp_month]" : "card[exp_year]",
                            month ? "Your card's expiration month is invalid."
                                  : "Your card's expiration year is invalid.");
    }
    if (form_get(f, "card[cvc]", &cvc) && tok_card_cvc_check(brand, cvc, &code) != TOK_OK) {
        sodium_memzero(dmem, sizeof dmem);
        return stripe_error(c, 402, "card_error", "invalid_cvc", "card[cvc]",
                            "Your card's security code is invalid.");
    }
    struct gw_obj *pm = obj_new(c->g, K_PM, "pm_");
    if (pm == NULL) {
        sodium_memzero(dmem, sizeof dmem);
        return stripe_full(c);
    }
    pm->outcome = outcome_of(tok_buf_slice(&digits));
    pm->brand = brand;
    pm->exp_month = (int)m;
    pm->exp_year = (int)(y < 100 ? 2000 + y : y);
    tok_copy(pm->last4, digits.data + digits.len - 4, 4);
    /* Stripe's fingerprint: the same card gives the same value within one account */
    uint8_t mac[TOK_HMAC_SHA256_LEN];
    struct tok_buf fp;
    tok_buf_init(&fp, pm->fingerprint, GW_FP_LEN);
    if (tok_hmac_sha256(tok_slice_of(c->g->mac_key, sizeof c->g->mac_key),
                        tok_buf_slice(&digits), mac) != TOK_OK ||
        tok_base62_encode(tok_slice_of(mac, 11), GW_FP_LEN, &fp) != TOK_OK)
        tok_copy(pm->fingerprint, "0000000000000000", GW_FP_LEN);
    sodium_memzero(dmem, sizeof dmem);
    if (form_get(f, "billing_details[name]", &name) && name.len <= GW_TEXT_MAX)
        pm->text1 = dup_slice(name);
    c->g->st.payment_methods++;
    stripe_ok(c, SO_PM, pm);
    c->saveable = true;
}

/* Resolves a payment_method parameter: a stored pm_ or one of Stripe's pm_card_* test ids. */
static struct gw_obj *stripe_pm_lookup(struct gw *g, struct tok_slice id)
{
    struct gw_obj *pm = obj_find(g, id, K_PM);
    if (pm != NULL)
        return pm;
    for (size_t i = 0; i < TOK_ARRAY_LEN(stripe_test_pms); i++) {
        if (!tok_slice_eq(id, stripe_test_pms[i].id))
            continue;
        pm = obj_new(g, K_PM, NULL);
        if (pm == NULL)
            return NULL;
        /* re-key the object under the test id so later lookups find it */
        struct gw_obj **slot = &g->objs[hash_str(tok_slice_str(pm->id))];
        *slot = pm->next;
        snprintf(pm->id, sizeof pm->id, "%s", stripe_test_pms[i].id);
        uint32_t h = hash_str(tok_slice_str(pm->id));
        pm->next = g->objs[h];
        g->objs[h] = pm;
        pm->outcome = stripe_test_pms[i].out;
        pm->brand = TOK_BRAND_VISA;
        snprintf(pm->last4, sizeof pm->last4, "%s", stripe_test_pms[i].last4);
        snprintf(pm->fingerprint, sizeof pm->fingerprint, "gwsimtest%07zu", i);
        pm->exp_month = 12;
        pm->exp_year = 2034;
        return pm;
    }
    return NULL;
}

/*
 * Whether Stripe would let pm pay for a PaymentIntent of customer cu (NULL: none given):
 * a consumed PaymentMethod never again, an attached one only with its own Customer
 * (docs.stripe.com/payments/payment-methods: reuse needs a Customer). Sets the error.
 */
static bool stripe_pm_usable(struct gw_call *c, const struct gw_obj *pm, const struct gw_obj *cu)
{
    if (pm->consumed) {
        c->g->st.reuse_refusals++;
        stripe_error(c, 400, "invalid_request_error", "payment_method_unexpected_state",
                     "payment_method",
                     "The provided PaymentMethod was previously used with a PaymentIntent "
                     "without Customer attachment, shared with a connected account without "
                     "Customer attachment, or was detached from a Customer. It may not be used "
                     "again. To use a PaymentMethod multiple times, you must attach it to a "
                     "Customer first.");
        return false;
    }
    if (pm->customer[0] != '\0' && (cu == NULL || strcmp(pm->customer, cu->id) != 0)) {
        stripe_error(c, 400, "invalid_request_error", NULL,
                     cu == NULL ? "customer" : "payment_method",
                     cu == NULL ? "The provided PaymentMethod is attached to a Customer; pass "
                                  "that Customer's id in the customer parameter."
                                : "The provided PaymentMethod belongs to another Customer.");
        return false;
    }
    return true;
}

/* The simulated issuer page (ACS) of a payment waiting for the customer: this server, as the
 * client reached it. NULL when it does not fit. */
static char *acs_url(const struct gw_call *c, const char *id)
{
    h2o_iovec_t a = c->req->authority;
    char url[512];
    int n = snprintf(url, sizeof url, "%s://%.*s/__gwsim/acs/%s",
                     c->g->cfg.plain ? "http" : "https", (int)a.len, a.base, id);
    if (n <= 0 || (size_t)n >= sizeof url)
        return NULL;
    return strdup(url);
}

/* The issuer wants the customer: the PaymentIntent waits in requires_action. */
static void stripe_require_action(struct gw_call *c, struct gw_obj *pi)
{
    pi->status = PI_REQ_ACTION;
    pi->auth = 1;
    free(pi->action_url);
    pi->action_url = acs_url(c, pi->id);
    if (pi->action_url == NULL)
        return stripe_full(c);
    c->g->st.actions++;
    stripe_ok(c, SO_PI, pi);
    c->saveable = true;
}

/* ---- webhooks sent after the fact (gwsim_webhooks.h sends them) -------------------------- */

static void write_amount(struct tok_json_writer *w, int64_t value, const char *cur);

/* A Stripe event around data.object (written by obj) and, when prev, previous_attributes. */
static void stripe_event(struct gw *g, const char *type,
                         void (*obj)(struct tok_json_writer *, const struct gw_obj *),
                         const struct gw_obj *o, void (*prev)(struct tok_json_writer *))
{
    char evt[GW_ID_MAX];
    struct tok_buf b = {0};
    if (new_id("evt_", evt) != TOK_OK || tok_buf_alloc(&b, GW_WH_BODY_MAX, false) != TOK_OK)
        return;
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "id", evt);
    tok_jw_kstr(&w, "object", "event");
    tok_jw_kstr(&w, "api_version", GW_STRIPE_VERSION);
    tok_jw_kint(&w, "created", now_s());
    tok_jw_key(&w, "data");
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "object");
    obj(&w, o);
    if (prev != NULL) {
        tok_jw_key(&w, "previous_attributes");
        prev(&w);
    }
    tok_jw_obj_end(&w);
    tok_jw_kbool(&w, "livemode", false);
    tok_jw_kint(&w, "pending_webhooks", 1);
    tok_jw_key(&w, "request");
    tok_jw_obj_begin(&w);
    static const char *const nulls[] = {"id", "idempotency_key"};
    write_nulls(&w, nulls, TOK_ARRAY_LEN(nulls));
    tok_jw_obj_end(&w);
    tok_jw_kstr(&w, "type", type);
    tok_jw_obj_end(&w);
    if (tok_jw_finish(&w) == TOK_OK)
        (void)gw_wh_queue(&g->wh, GW_WH_STRIPE, evt, type, b.data, b.len);
    tok_buf_wipe(&b);
}

/* A Dispute (docs.stripe.com/api/disputes/object; the members of Stripe's fixture): o is the
 * PaymentIntent, disputed in full as fraudulent, waiting for the merchant's evidence. */
static void write_dispute(struct tok_json_writer *w, const struct gw_obj *pi)
{
    char dp[GW_ID_MAX];
    if (new_id("dp_", dp) != TOK_OK)
        snprintf(dp, sizeof dp, "dp_0");
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "id", dp);
    tok_jw_kstr(w, "object", "dispute");
    tok_jw_kint(w, "amount", pi->received);
    tok_jw_key(w, "balance_transactions");
    tok_jw_arr_begin(w);
    tok_jw_arr_end(w);
    tok_jw_kstr(w, "charge", pi->ref2);
    tok_jw_kint(w, "created", now_s());
    tok_jw_kstr(w, "currency", pi->currency);
    static const char *const evidence[] = {
        "access_activity_log", "billing_address", "cancellation_policy",
        "cancellation_policy_disclosure", "cancellation_rebuttal", "customer_communication",
        "customer_email_address", "customer_name", "customer_purchase_ip", "customer_signature",
        "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id",
        "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
        "refund_refusal_explanation", "service_date", "service_documentation",
        "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
        "shipping_tracking_number", "uncategorized_file", "uncategorized_text"};
    tok_jw_key(w, "evidence");
    tok_jw_obj_begin(w);
    write_nulls(w, evidence, TOK_ARRAY_LEN(evidence));
    tok_jw_key(w, "enhanced_evidence");
    tok_jw_obj_begin(w);
    tok_jw_obj_end(w);
    tok_jw_obj_end(w);
    tok_jw_key(w, "evidence_details");
    tok_jw_obj_begin(w);
    tok_jw_kint(w, "due_by", now_s() + 21 * 86400);
    tok_jw_kbool(w, "has_evidence", false);
    tok_jw_kbool(w, "past_due", false);
    tok_jw_kint(w, "submission_count", 0);
    tok_jw_key(w, "enhanced_eligibility");
    tok_jw_obj_begin(w);
    tok_jw_obj_end(w);
    tok_jw_obj_end(w);
    tok_jw_key(w, "enhanced_eligibility_types");
    tok_jw_arr_begin(w);
    tok_jw_arr_end(w);
    tok_jw_kbool(w, "is_charge_refundable", false);
    tok_jw_kbool(w, "livemode", false);
    tok_jw_key(w, "metadata");
    tok_jw_obj_begin(w);
    tok_jw_obj_end(w);
    tok_jw_kstr(w, "payment_intent", pi->id);
    tok_jw_key(w, "payment_method_details");
    tok_jw_obj_begin(w);
    tok_jw_key(w, "card");
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "brand", "visa");
    tok_jw_kstr(w, "case_type", "chargeback");
    tok_jw_kstr(w, "network_reason_code", "10.4");
    tok_jw_obj_end(w);
    tok_jw_kstr(w, "type", "card");
    tok_jw_obj_end(w);
    tok_jw_kstr(w, "reason", "fraudulent");
    tok_jw_kstr(w, "status", "needs_response");
    tok_jw_obj_end(w);
}

/* docs.stripe.com/testing#disputes: 0259's payment succeeds, then is disputed as fraudulent. */
static void stripe_after_paid(struct gw *g, struct gw_obj *pi)
{
    if (pi->outcome == OUT_DISPUTE && pi->received > 0) {
        stripe_event(g, "charge.dispute.created", write_dispute, pi, NULL);
        g->st.disputes++;
    }
}

static void refund_prev(struct tok_json_writer *w)
{
    tok_jw_obj_begin(w);
    static const char *const nulls[] = {"failure_balance_transaction", "failure_reason"};
    write_nulls(w, nulls, TOK_ARRAY_LEN(nulls));
    tok_jw_kstr(w, "status", "succeeded");
    tok_jw_obj_end(w);
}

/* An Adyen notification of one item, signed with the configured HMAC key. */
static void adyen_notify(struct gw *g, const char *event_code, const char *psp,
                         const char *original, const char *mref, int64_t value, const char *cur,
                         const char *reason, const char *reason_code)
{
    if (!gw_wh_configured(&g->wh, GW_WH_ADYEN)) {
        (void)gw_wh_queue(&g->wh, GW_WH_ADYEN, "-", event_code, NULL, 0); /* counted */
        return;
    }
    char val[24], sig[64];
    snprintf(val, sizeof val, "%lld", (long long)value);
    const char *const fields[8] = {psp, original, g->merchant, mref, val, cur, event_code, "true"};
    if (!gw_wh_adyen_hmac(&g->wh, fields, sig, sizeof sig))
        return;
    struct tok_buf b = {0};
    if (tok_buf_alloc(&b, GW_WH_BODY_MAX, false) != TOK_OK)
        return;
    char date[40];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "live", "false");
    tok_jw_key(&w, "notificationItems");
    tok_jw_arr_begin(&w);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "NotificationRequestItem");
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "additionalData");
    tok_jw_obj_begin(&w);
    if (reason_code != NULL) {
        /* docs.adyen.com/risk-management/understanding-disputes/dispute-notifications */
        tok_jw_kstr(&w, "chargebackReasonCode", reason_code);
        tok_jw_kstr(&w, "chargebackSchemeCode", "visa");
        tok_jw_kstr(&w, "disputeStatus", "Undefended");
    }
    tok_jw_kstr(&w, "hmacSignature", sig);
    tok_jw_obj_end(&w);
    write_amount(&w, value, cur);
    tok_jw_kstr(&w, "eventCode", event_code);
    tok_jw_kstr(&w, "eventDate", date);
    tok_jw_kstr(&w, "merchantAccountCode", g->merchant);
    tok_jw_kstr(&w, "merchantReference", mref);
    tok_jw_kstr(&w, "originalReference", original);
    tok_jw_kstr(&w, "paymentMethod", "visa");
    tok_jw_kstr(&w, "pspReference", psp);
    tok_jw_kstr(&w, "reason", reason);
    tok_jw_kstr(&w, "success", "true");
    tok_jw_obj_end(&w);
    tok_jw_obj_end(&w);
    tok_jw_arr_end(&w);
    tok_jw_obj_end(&w);
    char id[96];
    snprintf(id, sizeof id, "%s:%s", event_code, psp);
    if (tok_jw_finish(&w) == TOK_OK)
        (void)gw_wh_queue(&g->wh, GW_WH_ADYEN, id, event_code, b.data, b.len);
    tok_buf_wipe(&b);
}

/* Adyen's chargeback trigger (holderName "Chargeback[:reason]", and Stripe's 0259, which gwsim
 * plays the same at both): once the payment is captured, a NOTIFICATION_OF_CHARGEBACK. */
static void adyen_after_captured(struct gw *g, struct gw_obj *ap)
{
    if (ap->outcome != OUT_DISPUTE || ap->received == 0)
        return;
    char psp[17];
    new_psp(psp);
    adyen_notify(g, "NOTIFICATION_OF_CHARGEBACK", psp, ap->id, ap->text1 != NULL ? ap->text1 : "",
                 ap->received, ap->currency, "Other Fraud-Card Absent Environment",
                 ap->reason[0] != '\0' ? ap->reason : "10.4");
    g->st.disputes++;
}

/* Confirms pi with its payment method: the card's outcome decides. Sets the response. */
static void stripe_confirm(struct gw_call *c, struct gw_obj *pi, struct gw_obj *pm)
{
    struct gw *g = c->g;
    /* docs.stripe.com/testing#regulatory-cards: 3184 and 3220 authenticate every payment,
     * 3155 unless it was set up (authenticated with setup_future_usage=off_session); with
     * off_session=true nobody can, and Stripe declines with authentication_required */
    bool needs_auth = pm->outcome == OUT_3DS_ALWAYS || pm->outcome == OUT_3DS_DECLINE ||
                      (pm->outcome == OUT_3DS_SETUP && !pm->setup_done);
    pi->outcome = pm->outcome;
    if (needs_auth && !pi->off_session) {
        if (pm->customer[0] == '\0' && strncmp(pm->id, "pm_card_", 8) != 0)
            pm->consumed = true;
        return stripe_require_action(c, pi);
    }
    struct gw_obj *ch = obj_new(g, K_CH, "ch_");
    if (ch == NULL)
        return stripe_full(c);
    /* a PaymentMethod without a Customer is good for one use (a pm_card_* test id stands
     * for a fresh PaymentMethod each time); with setup_future_usage and a customer, a
     * successful payment attaches it */
    if (pm->customer[0] == '\0' && pi->customer[0] != '\0' && pi->manual_sfu &&
        outcome_ok(pm->outcome) && !needs_auth) {
        snprintf(pm->customer, sizeof pm->customer, "%s", pi->customer);
        g->st.pm_attached++;
    }
    if (pm->customer[0] == '\0' && strncmp(pm->id, "pm_card_", 8) != 0)
        pm->consumed = true;
    snprintf(ch->ref1, sizeof ch->ref1, "%s", pi->id);
    snprintf(pi->ref2, sizeof pi->ref2, "%s", ch->id);
    if (outcome_ok(pm->outcome) && !needs_auth) {
        pi->err_code[0] = pi->err_decline[0] = pi->err_msg[0] = '\0';
        if (pi->manual) {
            pi->status = PI_REQ_CAPTURE;
            pi->capturable = pi->amount;
        } else {
            pi->status = PI_SUCCEEDED;
            pi->received = pi->amount;
        }
        g->st.charges++;
        stripe_ok(c, SO_PI, pi);
        c->saveable = true;
        stripe_after_paid(g, pi);
        return;
    }
    pi->status = PI_REQ_PM;
    if (needs_auth) {
        g->st.auth_required_declines++;
        snprintf(pi->err_code, sizeof pi->err_code, "authentication_required");
        snprintf(pi->err_decline, sizeof pi->err_decline, "authentication_required");
        snprintf(pi->err_msg, sizeof pi->err_msg,
                 "Your card was declined. This transaction requires authentication.");
    } else {
        snprintf(pi->err_code, sizeof pi->err_code, "%s", stripe_declines[pm->outcome].code);
        snprintf(pi->err_decline, sizeof pi->err_decline, "%s",
                 stripe_declines[pm->outcome].decline);
        snprintf(pi->err_msg, sizeof pi->err_msg, "%s", stripe_declines[pm->outcome].message);
    }
    g->st.declines++;
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &g->out);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "error");
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "charge", ch->id);
    tok_jw_kstr(&w, "code", pi->err_code);
    tok_jw_kstr(&w, "decline_code", pi->err_decline);
    char url[128];
    snprintf(url, sizeof url, "https://stripe.com/docs/error-codes/%s", pi->err_code);
    for (char *p = url + 36; *p != '\0'; p++)
        if (*p == '_')
            *p = '-';
    tok_jw_kstr(&w, "doc_url", url);
    tok_jw_kstr(&w, "message", pi->err_msg);
    tok_jw_key(&w, "payment_intent");
    write_pi(&w, pi);
    tok_jw_key(&w, "payment_method");
    write_pm(&w, pm);
    tok_jw_kstr(&w, "type", "card_error");
    tok_jw_obj_end(&w);
    tok_jw_obj_end(&w);
    c->status = w.st == TOK_OK ? 402 : 500;
    c->code = pi->err_decline;
    c->saveable = true;
}

/* Validates amount and currency as Stripe does (docs.stripe.com/currencies). */
static bool stripe_amount(struct gw_call *c, const char *param, int64_t amount, const char *cur)
{
    if (amount < 1)
        return stripe_error(c, 400, "invalid_request_error", "amount_too_small", param,
                            "This value must be greater than or equal to 1."),
               false;
    if (amount > GW_AMOUNT_MAX)
        return stripe_error(c, 400, "invalid_request_error", "amount_too_large", param,
                            "Amount must be no more than 99999999 in the currency's minor unit."),
               false;
    int e = tok_currency_exponent(tok_slice_str(cur));
    if (e == 3 && amount % 10 != 0)
        return stripe_error(c, 400, "invalid_request_error", "invalid_charge_amount", param,
                            "Three-decimal currencies need amounts rounded to the nearest ten: "
                            "the last digit must be 0."),
               false;
    if (strcmp(cur, "isk") == 0 && amount % 100 != 0)
        return stripe_error(c, 400, "invalid_request_error",
                            "invalid_charge_amount_no_decimal_compatible", param,
                            "Invalid amount. Currency ISK has become effectively zero-decimal "
                            "and charged amounts must be evenly divisible by 100."),
               false;
    return true;
}

static bool stripe_currency(struct gw_call *c, const struct gw_form *f, char out[4])
{
    struct tok_slice cur;
    if (!form_get(f, "currency", &cur))
        return stripe_missing(c, "currency"), false;
    if (tok_currency_normalise(cur, out) != TOK_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "Invalid currency: %.*s. gwsim supports the ISO 4217 codes "
                 "tokend knows.", cur.len <= 8 && tok_json_key_echoable(cur) ? (int)cur.len : 0,
                 (const char *)cur.ptr);
        return stripe_error(c, 400, "invalid_request_error", NULL, "currency", msg), false;
    }
    return true;
}

static void stripe_pi_create(struct gw_call *c, const struct gw_form *f)
{
    static const char *const allowed[] = {
        "amount", "currency", "payment_method", "confirm", "capture_method", "description",
        "metadata[", "payment_method_types[", "automatic_payment_methods[", "off_session",
        "statement_descriptor", "statement_descriptor_suffix", "receipt_email",
        "error_on_requires_action", "return_url", "customer", "setup_future_usage"};
    if (!stripe_check_params(c, f, allowed, TOK_ARRAY_LEN(allowed)))
        return;
    int64_t amount = 0;
    bool has_amount;
    if (!stripe_int(c, f, "amount", &has_amount, &amount))
        return;
    if (!has_amount)
        return stripe_missing(c, "amount");
    char cur[4];
    if (!stripe_currency(c, f, cur) || !stripe_amount(c, "amount", amount, cur))
        return;
    bool confirm = false, manual = false;
    struct tok_slice v;
    if (form_get(f, "confirm", &v)) {
        if (!slice_is(v, "true") && !slice_is(v, "false"))
            return stripe_error(c, 400, "invalid_request_error", NULL, "confirm",
                                "Invalid boolean: must be true or false.");
        confirm = slice_is(v, "true");
    }
    if (form_get(f, "capture_method", &v)) {
        if (!slice_is(v, "automatic") && !slice_is(v, "manual") &&
            !slice_is(v, "automatic_async"))
            return stripe_error(c, 400, "invalid_request_error", NULL, "capture_method",
                                "Invalid capture_method: must be one of automatic, "
                                "automatic_async, or manual");
        manual = slice_is(v, "manual");
    }
    struct tok_slice desc = {0}, pm_id = {0};
    bool has_desc = form_get(f, "description", &desc);
    if (has_desc && desc.len > GW_TEXT_MAX)
        return stripe_error(c, 400, "invalid_request_error", NULL, "description",
                            "Invalid string: must be at most 1000 characters");
    bool has_pm = form_get(f, "payment_method", &pm_id);
    struct gw_obj *pm = NULL;
    if (has_pm) {
        pm = stripe_pm_lookup(c->g, pm_id);
        if (pm == NULL)
            return stripe_no_such(c, 400, "PaymentMethod", pm_id, "payment_method");
    }
    if (confirm && pm == NULL)
        return stripe_missing(c, "payment_method");
    struct tok_slice cus_id = {0};
    const struct gw_obj *cu = NULL;
    if (form_get(f, "customer", &cus_id) && (cu = obj_find(c->g, cus_id, K_CU)) == NULL)
        return stripe_no_such(c, 400, "customer", cus_id, "customer");
    bool off_session = false, sfu = false, sfu_on = false;
    if (form_get(f, "off_session", &v)) {
        if (!slice_is(v, "true") && !slice_is(v, "false"))
            return stripe_error(c, 400, "invalid_request_error", NULL, "off_session",
                                "Invalid boolean: must be true or false.");
        off_session = slice_is(v, "true");
        if (!confirm)
            return stripe_error(c, 400, "invalid_request_error", NULL, "off_session",
                                "You may only specify `off_session` when `confirm=true`.");
    }
    if (form_get(f, "setup_future_usage", &v)) {
        if (!slice_is(v, "on_session") && !slice_is(v, "off_session"))
            return stripe_error(c, 400, "invalid_request_error", NULL, "setup_future_usage",
                                "Invalid setup_future_usage: must be one of on_session or "
                                "off_session");
        sfu = true;
        sfu_on = slice_is(v, "on_session");
    }
    if (pm != NULL && confirm && !stripe_pm_usable(c, pm, cu))
        return;
    char *meta = NULL;
    if (!stripe_metadata(c, f, &meta))
        return;
    struct gw_obj *pi = obj_new(c->g, K_PI, "pi_");
    if (pi == NULL) {
        free(meta);
        return stripe_full(c);
    }
    pi->amount = amount;
    snprintf(pi->currency, sizeof pi->currency, "%s", cur);
    pi->manual = manual;
    pi->meta = meta;
    pi->text1 = has_desc ? dup_slice(desc) : NULL;
    pi->status = pm != NULL ? PI_REQ_CONFIRM : PI_REQ_PM;
    if (pm != NULL)
        snprintf(pi->ref1, sizeof pi->ref1, "%s", pm->id);
    if (cu != NULL)
        snprintf(pi->customer, sizeof pi->customer, "%s", cu->id);
    pi->manual_sfu = sfu;
    pi->sfu_on_session = sfu_on;
    pi->off_session = off_session;
    if (form_get(f, "return_url", &v))
        pi->return_url = dup_slice(v);
    c->g->st.payment_intents++;
    if (confirm)
        return stripe_confirm(c, pi, pm);
    stripe_ok(c, SO_PI, pi);
    c->saveable = true;
}

static void stripe_pi_confirm(struct gw_call *c, struct gw_obj *pi, const struct gw_form *f)
{
    static const char *const allowed[] = {"payment_method", "off_session", "return_url",
                                          "error_on_requires_action", "receipt_email"};
    if (!stripe_check_params(c, f, allowed, TOK_ARRAY_LEN(allowed)))
        return;
    if (pi->status != PI_REQ_PM && pi->status != PI_REQ_CONFIRM) {
        char msg[240];
        snprintf(msg, sizeof msg, "This PaymentIntent's status is %s, but it must be "
                 "requires_payment_method or requires_confirmation to be confirmed.",
                 pi_status_name(pi->status));
        return stripe_error(c, 400, "invalid_request_error", "payment_intent_unexpected_state",
                            NULL, msg);
    }
    struct tok_slice pm_id;
    if (form_get(f, "payment_method", &pm_id)) {
        const struct gw_obj *pm = stripe_pm_lookup(c->g, pm_id);
        if (pm == NULL)
            return stripe_no_such(c, 400, "PaymentMethod", pm_id, "payment_method");
        snprintf(pi->ref1, sizeof pi->ref1, "%s", pm->id);
    }
    struct gw_obj *pm = obj_find(c->g, tok_slice_str(pi->ref1), K_PM);
    if (pm == NULL)
        return stripe_missing(c, "payment_method");
    const struct gw_obj *cu =
        pi->customer[0] != '\0' ? obj_find(c->g, tok_slice_str(pi->customer), K_CU) : NULL;
    if (!stripe_pm_usable(c, pm, cu))
        return;
    struct tok_slice v;
    if (form_get(f, "return_url", &v)) {
        free(pi->return_url);
        pi->return_url = dup_slice(v);
    }
    if (form_get(f, "off_session", &v))
        pi->off_session = slice_is(v, "true");
    stripe_confirm(c, pi, pm);
}

static void stripe_pi_capture(struct gw_call *c, struct gw_obj *pi, const struct gw_form *f)
{
    static const char *const allowed[] = {"amount_to_capture", "metadata[", "final_capture"};
    if (!stripe_check_params(c, f, allowed, TOK_ARRAY_LEN(allowed)))
        return;
    int64_t atc = 0;
    bool has_atc;
    if (!stripe_int(c, f, "amount_to_capture", &has_atc, &atc))
        return;
    if (pi->status != PI_REQ_CAPTURE) {
        char msg[240];
        snprintf(msg, sizeof msg, "This PaymentIntent could not be captured because it has a "
                 "status of %s. Only a PaymentIntent with one of the following statuses may be "
                 "captured: requires_capture.", pi_status_name(pi->status));
        return stripe_error(c, 400, "invalid_request_error", "payment_intent_unexpected_state",
                            NULL, msg);
    }
    if (!has_atc)
        atc = pi->capturable;
    if (atc < 1)
        return stripe_error(c, 400, "invalid_request_error", "amount_too_small",
                            "amount_to_capture", "This value must be greater than or equal to 1.");
    if (atc > pi->capturable)
        return stripe_error(c, 400, "invalid_request_error", "amount_too_large",
                            "amount_to_capture",
                            "The amount to capture must be less than or equal to the "
                            "PaymentIntent's amount_capturable.");
    char *meta = NULL;
    if (!stripe_metadata(c, f, &meta))
        return;
    if (meta != NULL) {
        free(pi->meta);
        pi->meta = meta;
    }
    pi->received = atc;
    pi->capturable = 0;
    pi->status = PI_SUCCEEDED;
    c->g->st.captures++;
    stripe_ok(c, SO_PI, pi);
    c->saveable = true;
    stripe_after_paid(c->g, pi);
}

static void stripe_pi_cancel(struct gw_call *c, struct gw_obj *pi, const struct gw_form *f)
{
    static const char *const allowed[] = {"cancellation_reason"};
    if (!stripe_check_params(c, f, allowed, TOK_ARRAY_LEN(allowed)))
        return;
    struct tok_slice why = {0};
    if (form_get(f, "cancellation_reason", &why) && !slice_is(why, "duplicate") &&
        !slice_is(why, "fraudulent") && !slice_is(why, "requested_by_customer") &&
        !slice_is(why, "abandoned"))
        return stripe_error(c, 400, "invalid_request_error", NULL, "cancellation_reason",
                            "Invalid cancellation_reason: must be one of duplicate, fraudulent, "
                            "requested_by_customer, or abandoned");
    if (pi->status == PI_SUCCEEDED || pi->status == PI_CANCELED) {
        char msg[280];
        snprintf(msg, sizeof msg, "You cannot cancel this PaymentIntent because it has a status "
                 "of %s. Only a PaymentIntent with one of the following statuses may be "
                 "canceled: requires_payment_method, requires_capture, requires_confirmation, "
                 "requires_action, processing.", pi_status_name(pi->status));
        return stripe_error(c, 400, "invalid_request_error", "payment_intent_unexpected_state",
                            NULL, msg);
    }
    pi->status = PI_CANCELED;
    pi->capturable = 0;
    pi->canceled_at = now_s();
    if (why.len > 0 && why.len < sizeof pi->reason)
        (void)put_cstr(pi->reason, sizeof pi->reason, why);
    c->g->st.cancels++;
    stripe_ok(c, SO_PI, pi);
    c->saveable = true;
}

static void stripe_refund_create(struct gw_call *c, const struct gw_form *f)
{
    static const char *const allowed[] = {"payment_intent", "charge", "amount", "reason",
                                          "metadata["};
    if (!stripe_check_params(c, f, allowed, TOK_ARRAY_LEN(allowed)))
        return;
    struct tok_slice id;
    struct gw_obj *pi = NULL;
    if (form_get(f, "payment_intent", &id)) {
        pi = obj_find(c->g, id, K_PI);
        if (pi == NULL)
            return stripe_no_such(c, 400, "payment_intent", id, "payment_intent");
    } else if (form_get(f, "charge", &id)) {
        const struct gw_obj *ch = obj_find(c->g, id, K_CH);
        if (ch == NULL)
            return stripe_no_such(c, 400, "charge", id, "charge");
        pi = obj_find(c->g, tok_slice_str(ch->ref1), K_PI);
        if (pi == NULL)
            return stripe_no_such(c, 400, "charge", id, "charge");
    } else {
        return stripe_missing(c, "payment_intent");
    }
    int64_t amount = 0;
    bool has_amount;
    if (!stripe_int(c, f, "amount", &has_amount, &amount))
        return;
    struct tok_slice why = {0};
    if (form_get(f, "reason", &why) && !slice_is(why, "duplicate") &&
        !slice_is(why, "fraudulent") && !slice_is(why, "requested_by_customer"))
        return stripe_error(c, 400, "invalid_request_error", NULL, "reason",
                            "Invalid reason: must be one of duplicate, fraudulent, or "
                            "requested_by_customer");
    if (pi->status != PI_SUCCEEDED || pi->received == 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "This PaymentIntent does not have a successful charge to "
                 "refund (status %s).", pi_status_name(pi->status));
        return stripe_error(c, 400, "invalid_request_error", "payment_intent_unexpected_state",
                            "payment_intent", msg);
    }
    int64_t left = pi->received - pi->refunded;
    if (left <= 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "Charge %s has already been refunded.", pi->ref2);
        return stripe_error(c, 400, "invalid_request_error", "charge_already_refunded", NULL,
                            msg);
    }
    if (!has_amount)
        amount = left;
    if (amount < 1)
        return stripe_error(c, 400, "invalid_request_error", "parameter_invalid_integer",
                            "amount", "Invalid positive integer");
    if (amount > left) {
        char msg[200];
        snprintf(msg, sizeof msg, "Refund amount (%lld) is greater than unrefunded amount on "
                 "charge (%lld)", (long long)amount, (long long)left);
        return stripe_error(c, 400, "invalid_request_error", "amount_too_large", "amount", msg);
    }
    char *meta = NULL;
    if (!stripe_metadata(c, f, &meta))
        return;
    struct gw_obj *re = obj_new(c->g, K_RE, "re_");
    if (re == NULL) {
        free(meta);
        return stripe_full(c);
    }
    re->amount = amount;
    re->meta = meta;
    snprintf(re->currency, sizeof re->currency, "%s", pi->currency);
    snprintf(re->ref1, sizeof re->ref1, "%s", pi->id);
    snprintf(re->ref2, sizeof re->ref2, "%s", pi->ref2);
    if (why.len > 0 && why.len < sizeof re->reason)
        (void)put_cstr(re->reason, sizeof re->reason, why);
    pi->refunded += amount;
    c->g->st.refunds++;
    stripe_ok(c, SO_RE, re);
    c->saveable = true;
    /* docs.stripe.com/testing#refunds: 5126's refund is succeeded at first, then fails:
     * charge.refund.updated with the Refund failed; the amount is back on the charge */
    if (pi->outcome == OUT_REFUND_FAIL) {
        char txn[GW_ID_MAX];
        if (new_id("txn_", txn) == TOK_OK && (re->text1 = strdup(txn)) != NULL) {
            re->status = RE_FAILED;
            pi->refunded -= amount;
            c->g->st.refund_failures++;
            stripe_event(c->g, "charge.refund.updated", write_refund, re, refund_prev);
        }
    }
}

/* Authorization: Bearer <key>, or Basic base64("<key>:") as curl -u sends it. */
static void stripe_attach_to(struct gw_call *c, struct gw_obj *pm, const struct gw_obj *cu)
{
    if (pm->consumed)
        return (void)stripe_pm_usable(c, pm, NULL);
    if (pm->customer[0] != '\0' && strcmp(pm->customer, cu->id) != 0)
        return stripe_error(c, 400, "invalid_request_error", NULL, "payment_method",
                            "The payment method you provided has already been attached to a "
                            "customer.");
    if (pm->customer[0] == '\0')
        c->g->st.pm_attached++;
    snprintf(pm->customer, sizeof pm->customer, "%s", cu->id);
}

static void stripe_customer_create(struct gw_call *c, const struct gw_form *f)
{
    static const char *const allowed[] = {"payment_method", "description", "email", "name",
                                          "metadata[", "invoice_settings["};
    if (!stripe_check_params(c, f, allowed, TOK_ARRAY_LEN(allowed)))
        return;
    struct tok_slice pm_id, desc;
    struct gw_obj *pm = NULL;
    if (form_get(f, "payment_method", &pm_id)) {
        pm = stripe_pm_lookup(c->g, pm_id);
        if (pm == NULL)
            return stripe_no_such(c, 400, "PaymentMethod", pm_id, "payment_method");
        if (pm->consumed || pm->customer[0] != '\0')
            return stripe_attach_to(c, pm, &(struct gw_obj){.id = ""});
    }
    bool has_desc = form_get(f, "description", &desc);
    if (has_desc && desc.len > GW_TEXT_MAX)
        return stripe_error(c, 400, "invalid_request_error", NULL, "description",
                            "Invalid string: must be at most 1000 characters");
    char *meta = NULL;
    if (!stripe_metadata(c, f, &meta))
        return;
    struct gw_obj *cu = obj_new(c->g, K_CU, "cus_");
    if (cu == NULL) {
        free(meta);
        return stripe_full(c);
    }
    cu->meta = meta;
    cu->text1 = has_desc ? dup_slice(desc) : NULL;
    c->g->st.customers++;
    if (pm != NULL)
        stripe_attach_to(c, pm, cu);
    stripe_ok(c, SO_CU, cu);
    c->saveable = true;
}

static void stripe_pm_attach(struct gw_call *c, struct gw_obj *pm, const struct gw_form *f)
{
    static const char *const allowed[] = {"customer"};
    if (!stripe_check_params(c, f, allowed, TOK_ARRAY_LEN(allowed)))
        return;
    struct tok_slice cus_id;
    if (!form_get(f, "customer", &cus_id))
        return stripe_missing(c, "customer");
    const struct gw_obj *cu = obj_find(c->g, cus_id, K_CU);
    if (cu == NULL)
        return stripe_no_such(c, 400, "customer", cus_id, "customer");
    stripe_attach_to(c, pm, cu);
    if (c->status != 0)
        return;
    stripe_ok(c, SO_PM, pm);
    c->saveable = true;
}

static void stripe_pm_detach(struct gw_call *c, struct gw_obj *pm, const struct gw_form *f)
{
    if (!stripe_check_params(c, f, NULL, 0))
        return;
    if (pm->customer[0] == '\0')
        return stripe_error(c, 400, "invalid_request_error", NULL, NULL,
                            "The payment method you provided is not attached to a customer so "
                            "detachment is impossible.");
    pm->customer[0] = '\0';
    pm->consumed = true; /* a detached PaymentMethod cannot be used again */
    c->g->st.pm_detached++;
    stripe_ok(c, SO_PM, pm);
    c->saveable = true;
}

static bool stripe_auth(struct gw_call *c)
{
    struct tok_slice h;
    struct tok_slice want = tok_buf_slice(&c->g->stripe_key);
    if (!header_get(c->req, "authorization", &h)) {
        c->g->st.auth_failures++;
        stripe_error(c, 401, "invalid_request_error", NULL, NULL,
                     "You did not provide an API key. You need to provide your API key in the "
                     "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                     "YOUR_SECRET_KEY').");
        return false;
    }
    struct tok_slice got = {0};
    uint8_t dec[GW_KEY_MAX + 4];
    struct tok_buf d;
    tok_buf_init(&d, dec, sizeof dec);
    if (slice_prefix(h, "Bearer ")) {
        got = tok_slice_of(h.ptr + 7, h.len - 7);
    } else if (slice_prefix(h, "Basic ") &&
               tok_base64_decode(tok_slice_of(h.ptr + 6, h.len - 6), &d) == TOK_OK &&
               d.len > 0 && dec[d.len - 1] == ':') {
        got = tok_slice_of(dec, d.len - 1);
    }
    bool ok = got.len > 0 && tok_slice_eq_ct(got, want);
    if (!ok) {
        c->g->st.auth_failures++;
        char msg[160];
        if (got.len >= 8)
            snprintf(msg, sizeof msg, "Invalid API Key provided: %.8s****%.4s",
                     (const char *)got.ptr, (const char *)got.ptr + got.len - 4);
        else
            snprintf(msg, sizeof msg, "Invalid API Key provided.");
        for (char *p = msg; *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                *p = '?';
        stripe_error(c, 401, "invalid_request_error", NULL, NULL, msg);
    }
    sodium_memzero(dec, sizeof dec);
    return ok;
}

static void stripe_dispatch(struct gw_call *c, struct tok_slice method, struct tok_slice path,
                            struct tok_slice body)
{
    struct gw *g = c->g;
    struct gw_form f;
    f.n = 0;
    tok_buf_reset(&g->scratch);
    size_t q = c->req->query_at;
    struct tok_slice query = {0};
    if (q != SIZE_MAX && q + 1 < c->req->path.len)
        query = tok_slice_of(c->req->path.base + q + 1, c->req->path.len - q - 1);
    if (form_parse(query, &g->scratch, &f) != TOK_OK ||
        form_parse(body, &g->scratch, &f) != TOK_OK)
        return stripe_error(c, 400, "invalid_request_error", NULL, NULL,
                            "Invalid request: the body could not be decoded as "
                            "application/x-www-form-urlencoded.");
    bool post = slice_is(method, "POST"), get = slice_is(method, "GET");
    struct tok_slice rest;
    if (post && slice_is(path, "/v1/payment_methods")) {
        c->route = "stripe.payment_methods.create";
        g->st.r_pm_create++;
        return stripe_pm_create(c, &f);
    }
    if (post && slice_is(path, "/v1/payment_intents")) {
        c->route = "stripe.payment_intents.create";
        g->st.r_pi_create++;
        return stripe_pi_create(c, &f);
    }
    if (post && slice_is(path, "/v1/customers")) {
        c->route = "stripe.customers.create";
        g->st.r_customer_create++;
        return stripe_customer_create(c, &f);
    }
    if (get && slice_prefix(path, "/v1/customers/")) {
        c->route = "stripe.customers.get";
        struct tok_slice id = tok_slice_of(path.ptr + 14, path.len - 14);
        const struct gw_obj *cu = obj_find(g, id, K_CU);
        if (cu == NULL)
            return stripe_no_such(c, 404, "customer", id, "id");
        return stripe_ok(c, SO_CU, cu);
    }
    if (post && slice_prefix(path, "/v1/payment_methods/")) {
        rest = tok_slice_of(path.ptr + 20, path.len - 20);
        size_t slash = 0;
        while (slash < rest.len && rest.ptr[slash] != '/')
            slash++;
        struct tok_slice id = tok_slice_of(rest.ptr, slash);
        struct tok_slice verb = tok_slice_of(rest.ptr + slash, rest.len - slash);
        bool attach = slice_is(verb, "/attach");
        if (!attach && !slice_is(verb, "/detach"))
            goto unknown;
        c->route = attach ? "stripe.payment_methods.attach" : "stripe.payment_methods.detach";
        if (attach)
            g->st.r_pm_attach++;
        else
            g->st.r_pm_detach++;
        struct gw_obj *pm = stripe_pm_lookup(g, id);
        if (pm == NULL)
            return stripe_no_such(c, 404, "PaymentMethod", id, "payment_method");
        return attach ? stripe_pm_attach(c, pm, &f) : stripe_pm_detach(c, pm, &f);
    }
    if (post && slice_is(path, "/v1/refunds")) {
        c->route = "stripe.refunds.create";
        g->st.r_refund_create++;
        return stripe_refund_create(c, &f);
    }
    if (slice_prefix(path, "/v1/payment_intents/")) {
        rest = tok_slice_of(path.ptr + 20, path.len - 20);
        size_t slash = 0;
        while (slash < rest.len && rest.ptr[slash] != '/')
            slash++;
        struct tok_slice id = tok_slice_of(rest.ptr, slash);
        struct tok_slice verb = tok_slice_of(rest.ptr + slash, rest.len - slash);
        struct gw_obj *pi = obj_find(g, id, K_PI);
        if (get && verb.len == 0) {
            c->route = "stripe.payment_intents.get";
            g->st.r_pi_get++;
        } else if (post && slice_is(verb, "/capture")) {
            c->route = "stripe.payment_intents.capture";
            g->st.r_pi_capture++;
        } else if (post && slice_is(verb, "/cancel")) {
            c->route = "stripe.payment_intents.cancel";
            g->st.r_pi_cancel++;
        } else if (post && slice_is(verb, "/confirm")) {
            c->route = "stripe.payment_intents.confirm";
            g->st.r_pi_confirm++;
        } else {
            goto unknown;
        }
        if (pi == NULL)
            return stripe_no_such(c, 404, "payment_intent", id, "intent");
        if (get)
            return stripe_ok(c, SO_PI, pi);
        if (slice_is(verb, "/capture"))
            return stripe_pi_capture(c, pi, &f);
        if (slice_is(verb, "/cancel"))
            return stripe_pi_cancel(c, pi, &f);
        return stripe_pi_confirm(c, pi, &f);
    }
    if (get && slice_prefix(path, "/v1/payment_methods/")) {
        c->route = "stripe.payment_methods.get";
        g->st.r_pm_get++;
        struct tok_slice id = tok_slice_of(path.ptr + 20, path.len - 20);
        const struct gw_obj *pm = stripe_pm_lookup(g, id);
        if (pm == NULL)
            return stripe_no_such(c, 404, "PaymentMethod", id, "payment_method");
        return stripe_ok(c, SO_PM, pm);
    }
    if (get && slice_prefix(path, "/v1/refunds/")) {
        c->route = "stripe.refunds.get";
        g->st.r_refund_get++;
        struct tok_slice id = tok_slice_of(path.ptr + 12, path.len - 12);
        const struct gw_obj *re = obj_find(g, id, K_RE);
        if (re == NULL)
            return stripe_no_such(c, 404, "refund", id, "id");
        return stripe_ok(c, SO_RE, re);
    }
unknown:
    c->route = "stripe.unknown";
    g->st.r_unknown++;
    char msg[200];
    snprintf(msg, sizeof msg, "Unrecognized request URL (%.*s: %.*s).", (int)method.len,
             (const char *)method.ptr, (int)(path.len > 100 ? 100 : path.len),
             (const char *)path.ptr);
    for (char *p = msg; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    stripe_error(c, 404, "invalid_request_error", NULL, NULL, msg);
}

/* ---- Adyen ------------------------------------------------------------------------------- */

static void adyen_error(struct gw_call *c, int status, const char *code, const char *type,
                        const char *message)
{
    resp_reset(c);
    char psp[17];
    new_psp(psp);
    struct tok_json_writer w;
    tok_jw_init(&w, &c->g->out);
    tok_jw_obj_begin(&w);
    tok_jw_kint(&w, "status", status);
    tok_jw_kstr(&w, "errorCode", code);
    tok_jw_kstr(&w, "message", message);
    tok_jw_kstr(&w, "errorType", type);
    tok_jw_kstr(&w, "pspReference", psp);
    tok_jw_obj_end(&w);
    c->status = status;
    c->code = code;
}

static void adyen_full(struct gw_call *c)
{
    c->g->st.full_refusals++;
    adyen_error(c, 503, "000", "internal",
                "gwsim: the object store is full (see --max-objects); POST /__gwsim/reset");
}

static void adyen_required(struct gw_call *c, const char *code, const char *kind,
                           const char *field)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Required %s '%s' is not provided.", kind, field);
    adyen_error(c, 422, code, "validation", msg);
}

/* A string member as a C string in out[cap]; false when absent, not a string or too long. */
static bool json_cstr(const struct tok_json_node *obj, const char *key, char *out, size_t cap)
{
    struct tok_slice s;
    const struct tok_json_node *n = tok_json_get(obj, key);
    if (n == NULL || tok_json_string(n, &s) != TOK_OK || s.len == 0 ||
        memchr(s.ptr, '\0', s.len) != NULL)
        return false;
    return put_cstr(out, cap, s) == TOK_OK;
}

static bool adyen_merchant(struct gw_call *c, const struct tok_json_node *root)
{
    char m[GW_KEY_MAX];
    if (!json_cstr(root, "merchantAccount", m, sizeof m)) {
        adyen_required(c, "000", "field", "merchantAccount");
        return false;
    }
    if (strcmp(m, c->g->merchant) != 0) {
        adyen_error(c, 403, "901", "security", "Invalid Merchant Account");
        return false;
    }
    return true;
}

/* amount {value, currency}: value in minor units, currency an upper-case ISO 4217 code. */
static bool adyen_amount(struct gw_call *c, const struct tok_json_node *root, bool allow_zero,
                         int64_t *value, char cur_upper[4])
{
    const struct tok_json_node *a = tok_json_get(root, "amount");
    if (a == NULL || tok_json_type(a) != TOK_JSON_OBJECT) {
        adyen_required(c, "100", "object", "amount");
        return false;
    }
    const struct tok_json_node *v = tok_json_get(a, "value");
    if (v == NULL || tok_json_int64(v, value) != TOK_OK || *value < (allow_zero ? 0 : 1) ||
        *value > GW_AMOUNT_MAX * 100) {
        adyen_error(c, 422, "137", "validation", "Invalid amount specified");
        return false;
    }
    char cur[8], lc[4];
    if (!json_cstr(a, "currency", cur, sizeof cur) || strlen(cur) != 3 ||
        cur[0] < 'A' || cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' || cur[2] < 'A' ||
        cur[2] > 'Z' || tok_currency_normalise(tok_slice_str(cur), lc) != TOK_OK) {
        adyen_error(c, 422, "138", "validation", "Unsupported currency specified");
        return false;
    }
    tok_copy(cur_upper, cur, 3); /* exactly three letters, checked above */
    cur_upper[3] = '\0';
    return true;
}

static void write_amount(struct tok_json_writer *w, int64_t value, const char *cur)
{
    tok_jw_key(w, "amount");
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "currency", cur);
    tok_jw_kint(w, "value", value);
    tok_jw_obj_end(w);
}

static bool one_of(const char *s, const char *const set[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

/*
 * Reads paymentMethod's raw card fields into a card summary. Fills *holder_res when the
 * holderName is one of Adyen's test values. Returns false with the response set on errors.
 * PCI: the digits live in dmem (stack, wiped before return), nothing else keeps them.
 */
static bool adyen_card(struct gw_call *c, const struct tok_json_node *pmn, struct gw_obj *card,
                       const struct adyen_result **holder_res, bool *expired)
{
    struct tok_slice number, cvc;
    const struct tok_json_node *nn = tok_json_get(pmn, "number");
    if (nn == NULL || tok_json_string(nn, &number) != TOK_OK) {
        adyen_required(c, "000", "field", "paymentMethod.number");
        return false;
    }
    uint8_t dmem[TOK_PAN_MAX + 1];
    struct tok_buf digits;
    tok_buf_init(&digits, dmem, sizeof dmem);
    const char *code = NULL;
    if (tok_card_normalise(number, &digits, &code) != TOK_OK ||
        !tok_card_luhn_ok(tok_buf_slice(&digits))) {
        sodium_memzero(dmem, sizeof dmem);
        adyen_error(c, 422, "101", "validation", "Invalid card number");
        return false;
    }
    card->outcome = outcome_of(tok_buf_slice(&digits));
    card->brand = tok_card_brand_of(tok_buf_slice(&digits));
    tok_copy(card->last4, digits.data + digits.len - 4, 4);
    card->last4[4] = '\0';
    sodium_memzero(dmem, sizeof dmem);

    char ms[8], ys[8];
    int64_t m = 0, y = 0;
    if (!json_cstr(pmn, "expiryMonth", ms, sizeof ms) ||
        !json_cstr(pmn, "expiryYear", ys, sizeof ys) ||
        !parse_i64(tok_slice_str(ms), &m) || !parse_i64(tok_slice_str(ys), &y) || m < 1 ||
        m > 12 || y < 2000 || y > 9999) {
        adyen_error(c, 422, "129", "validation", "Expiry Date Invalid");
        return false;
    }
    card->exp_month = (int)m;
    card->exp_year = (int)y;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    *expired = y < tm.tm_year + 1900 || (y == tm.tm_year + 1900 && m < tm.tm_mon + 1);
    const struct tok_json_node *cn = tok_json_get(pmn, "cvc");
    if (cn != NULL && (tok_json_string(cn, &cvc) != TOK_OK ||
                       tok_card_cvc_check(card->brand, cvc, &code) != TOK_OK)) {
        adyen_error(c, 422, "103", "validation", "CVC is not the right length");
        return false;
    }
    char holder[96];
    *holder_res = NULL;
    if (json_cstr(pmn, "holderName", holder, sizeof holder)) {
        *holder_res = adyen_by_holder(holder);
        /* docs.adyen.com/risk-management/disputes-api/test-applicable-dispute-reasons:
         * holderName "Chargeback" or "Chargeback:{reason_code}" (any case) -> a chargeback
         * once the payment is captured */
        if (strncasecmp(holder, "chargeback", 10) == 0 &&
            (holder[10] == '\0' || (holder[10] == ':' && strlen(holder + 11) > 0 &&
                                     strlen(holder + 11) < sizeof card->reason))) {
            if (card->outcome == OUT_OK)
                card->outcome = OUT_DISPUTE;
            if (holder[10] == ':')
                snprintf(card->reason, sizeof card->reason, "%.*s",
                         (int)(sizeof card->reason - 1), holder + 11);
        }
    }
    return true;
}

/*
 * 3-D Secure 2 on a /payments request: authenticationData.threeDSRequestData.nativeThreeDS
 * ("preferred": native, "disabled": redirect; Checkout v71 ThreeDSRequestData) into *native,
 * and whether a browserInfo came with all that BrowserInfo requires (for web payments "the
 * full object is required", PaymentRequest.browserInfo). False with the answer set when
 * either is malformed.
 */
static bool adyen_3ds2_request(struct gw_call *c, const struct tok_json_node *root, bool *native,
                               bool *browser)
{
    struct gw *g = c->g;
    *native = g->cfg.adyen_force_native;
    *browser = false;
    const struct tok_json_node *ad = tok_json_get(root, "authenticationData");
    const struct tok_json_node *rd = ad != NULL ? tok_json_get(ad, "threeDSRequestData") : NULL;
    const struct tok_json_node *nn = rd != NULL ? tok_json_get(rd, "nativeThreeDS") : NULL;
    char v[16];
    if ((ad != NULL && tok_json_type(ad) != TOK_JSON_OBJECT) ||
        (rd != NULL && tok_json_type(rd) != TOK_JSON_OBJECT) ||
        (nn != NULL && (!json_cstr(rd, "nativeThreeDS", v, sizeof v) ||
                        (strcmp(v, "preferred") != 0 && strcmp(v, "disabled") != 0)))) {
        adyen_error(c, 422, "000", "validation",
                    "Invalid authenticationData.threeDSRequestData.nativeThreeDS.");
        return false;
    }
    if (nn == NULL)
        g->st.adyen_3ds_unasked++;
    else if (strcmp(v, "preferred") == 0)
        g->st.adyen_3ds_native_asked++, *native = true;
    else
        g->st.adyen_3ds_redirect_asked++;
    const struct tok_json_node *bi = tok_json_get(root, "browserInfo");
    if (bi == NULL)
        return true;
    static const char *const strs[] = {"acceptHeader", "language", "userAgent"};
    static const char *const ints[] = {"colorDepth", "screenHeight", "screenWidth",
                                       "timeZoneOffset"};
    char field[64];
    for (size_t i = 0; i < TOK_ARRAY_LEN(strs); i++) {
        struct tok_slice sv;
        const struct tok_json_node *n = tok_json_get(bi, strs[i]);
        if (n == NULL || tok_json_string(n, &sv) != TOK_OK) {
            snprintf(field, sizeof field, "browserInfo.%s", strs[i]);
            adyen_required(c, "000", "field", field);
            return false;
        }
    }
    for (size_t i = 0; i < TOK_ARRAY_LEN(ints); i++) {
        int64_t iv;
        const struct tok_json_node *n = tok_json_get(bi, ints[i]);
        if (n == NULL || tok_json_int64(n, &iv) != TOK_OK || iv < INT32_MIN || iv > INT32_MAX) {
            snprintf(field, sizeof field, "browserInfo.%s", ints[i]);
            adyen_required(c, "000", "field", field);
            return false;
        }
    }
    bool java;
    const struct tok_json_node *jn = tok_json_get(bi, "javaEnabled");
    if (jn == NULL || tok_json_bool(jn, &java) != TOK_OK) {
        adyen_required(c, "000", "field", "browserInfo.javaEnabled");
        return false;
    }
    *browser = true;
    return true;
}

/*
 * Native 3-D Secure 2 (docs.adyen.com/online-payments/3d-secure/native-3ds2): resultCode
 * IdentifyShopper and an action {type threeDS2, subtype fingerprint, token, paymentData} for
 * Adyen's 3DS2 Component in the shopper's browser. gwsim plays no further step of it (the
 * fingerprint, the challenge): the payment stays waiting, as one Adyen never hears from again.
 */
static void adyen_native_action(struct gw_call *c, struct gw_obj *ap, const char *ref)
{
    struct gw *g = c->g;
    char tmem[256], token[384], pdata[96];
    snprintf(tmem, sizeof tmem,
             "{\"threeDSMessageVersion\":\"2.2.0\",\"threeDSServerTransID\":\"gwsim-%s\","
             "\"threeDSMethodNotificationURL\":\"\",\"threeDSMethodUrl\":\"\"}",
             ap->id);
    sodium_bin2base64(token, sizeof token, (const unsigned char *)tmem, strlen(tmem),
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(pdata, sizeof pdata, "Ab02b4c0!gwsim!%s", ap->id);
    ap->status = AP_NATIVE;
    g->st.adyen_payments++;
    g->st.adyen_native_actions++;
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &g->out);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "additionalData");
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "cardSummary", ap->last4);
    tok_jw_kstr(&w, "threeds2.cardEnrolled", "true");
    tok_jw_kstr(&w, "paymentMethod", adyen_brand(ap->brand));
    tok_jw_kstr(&w, "merchantReference", ref);
    tok_jw_obj_end(&w);
    tok_jw_kstr(&w, "pspReference", ap->id);
    tok_jw_kstr(&w, "resultCode", "IdentifyShopper");
    tok_jw_key(&w, "action");
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "paymentData", pdata);
    tok_jw_kstr(&w, "paymentMethodType", "scheme");
    tok_jw_kstr(&w, "subtype", "fingerprint");
    tok_jw_kstr(&w, "token", token);
    tok_jw_kstr(&w, "type", "threeDS2");
    tok_jw_obj_end(&w);
    tok_jw_obj_end(&w);
    c->status = w.st == TOK_OK ? 200 : 500;
    c->code = "IdentifyShopper";
    c->saveable = true;
}

/* refusal 38 (docs.adyen.com/development-resources/refusal-reasons): what Adyen answers a
 * 3DS2 payment it cannot authenticate for want of browserInfo; not a holderName trigger */
static const struct adyen_result adyen_auth_required = {"", 38, "Refused",
                                                        "Authentication required"};

static void adyen_payments(struct gw_call *c, const struct tok_json_node *root)
{
    struct gw *g = c->g;
    if (!adyen_merchant(c, root))
        return;
    int64_t value = 0;
    char cur[4];
    if (!adyen_amount(c, root, true, &value, cur))
        return;
    char ref[GW_TEXT_MAX + 1];
    if (!json_cstr(root, "reference", ref, sizeof ref) || strlen(ref) > 80)
        return adyen_error(c, 422, "130", "validation",
                           "Required field 'reference' is not provided.");
    const struct tok_json_node *pmn = tok_json_get(root, "paymentMethod");
    if (pmn == NULL || tok_json_type(pmn) != TOK_JSON_OBJECT)
        return adyen_required(c, "100", "object", "paymentMethod");
    char type[32];
    if (!json_cstr(pmn, "type", type, sizeof type) || strcmp(type, "scheme") != 0)
        return adyen_error(c, 422, "905", "configuration", "Payment details are not supported");
    char shopper[GW_TEXT_MAX + 1] = "", rpm[32] = "", inter[32] = "";
    bool has_shopper = json_cstr(root, "shopperReference", shopper, sizeof shopper);
    if (has_shopper && (strlen(shopper) < 3 || strlen(shopper) > 256))
        return adyen_error(c, 422, "000", "validation",
                           "shopperReference must be 3 to 256 characters.");
    static const char *const rpms[] = {"CardOnFile", "Subscription", "UnscheduledCardOnFile"};
    static const char *const inters[] = {"Ecommerce", "ContAuth", "Moto", "POS"};
    if (json_cstr(root, "recurringProcessingModel", rpm, sizeof rpm) &&
        !one_of(rpm, rpms, TOK_ARRAY_LEN(rpms)))
        return adyen_error(c, 422, "000", "validation", "Invalid recurringProcessingModel.");
    if (json_cstr(root, "shopperInteraction", inter, sizeof inter) &&
        !one_of(inter, inters, TOK_ARRAY_LEN(inters)))
        return adyen_error(c, 422, "000", "validation", "Invalid shopperInteraction.");
    bool store = false;
    const struct tok_json_node *sn = tok_json_get(root, "storePaymentMethod");
    if (sn != NULL && tok_json_bool(sn, &store) != TOK_OK)
        return adyen_error(c, 422, "000", "validation", "storePaymentMethod must be a boolean.");
    int64_t delay = -1;
    const struct tok_json_node *dn = tok_json_get(root, "captureDelayHours");
    if (dn != NULL && (tok_json_int64(dn, &delay) != TOK_OK || delay < 0 || delay > 168))
        return adyen_error(c, 422, "000", "validation", "Invalid captureDelayHours.");
    bool native = false, browser = false;
    if (!adyen_3ds2_request(c, root, &native, &browser))
        return;

    /* the card: raw fields or a stored token */
    struct gw_obj card;
    memset(&card, 0, sizeof card);
    const struct adyen_result *res = NULL;
    bool expired = false;
    char stored_id[GW_ID_MAX];
    const struct gw_obj *token = NULL;
    if (json_cstr(pmn, "storedPaymentMethodId", stored_id, sizeof stored_id)) {
        if (!has_shopper)
            return adyen_error(c, 422, "000", "validation",
                               "Recurring payments require a shopperReference");
        token = obj_find(g, tok_slice_str(stored_id), K_AT);
        if (token == NULL || token->consumed || token->text1 == NULL ||
            strcmp(token->text1, shopper) != 0)
            return adyen_error(c, 422, "800", "validation", "Contract not found");
        card = *token;
        card.next = NULL;
        card.text1 = NULL;
    } else {
        /* a merchant-initiated payment refers to details stored earlier: without them there
         * is no shopper to enter a card and no earlier consent to point to */
        if (strcmp(inter, "ContAuth") == 0) {
            g->st.adyen_contauth_refusals++;
            return adyen_error(c, 422, "000", "validation",
                               "shopperInteraction ContAuth requires a stored payment method "
                               "(paymentMethod.storedPaymentMethodId).");
        }
        if (!adyen_card(c, pmn, &card, &res, &expired))
            return;
        if (store && !has_shopper)
            return adyen_error(c, 422, "000", "validation",
                               "Recurring payments require a shopperReference");
    }
    const struct tok_json_node *ad = tok_json_get(root, "additionalData");
    const struct tok_json_node *rc = ad != NULL ? tok_json_get(ad, "RequestedTestAcquirerResponseCode")
                                                : NULL;
    if (rc != NULL) {
        int64_t code = -1;
        struct tok_slice s;
        if (tok_json_int64(rc, &code) != TOK_OK && tok_json_string(rc, &s) == TOK_OK)
            (void)parse_i64(s, &code);
        const struct adyen_result *r = adyen_by_code(code);
        if (r != NULL)
            res = r;
    }
    if (res == NULL && expired)
        res = adyen_by_holder("CARD_EXPIRED");
    if (res == NULL)
        res = adyen_by_outcome(card.outcome);
    /* 0341 stores (the zero-value authorisation is approved) and declines every payment */
    if (card.outcome == OUT_ATTACH_DECLINE && value == 0 && rc == NULL)
        res = adyen_by_holder("APPROVED");
    /*
     * 3-D Secure (docs.adyen.com/online-payments/3d-secure/redirect-3ds2): a payment of a card
     * enrolled in it, with the shopper present, is answered RedirectShopper and an action the
     * shopper's browser follows to the issuer; the zero-value authorisation that stores a card
     * is not challenged here. A merchant-initiated payment (ContAuth) is out of scope for
     * strong customer authentication, except for Stripe's "always authenticate" cards, which
     * gwsim refuses as the issuer would (11, 3D Not Authenticated): the off-session decline
     * tests need one at Adyen too. Without returnUrl there is nowhere to send the shopper back.
     */
    char return_url[1024] = "";
    bool has_return = json_cstr(root, "returnUrl", return_url, sizeof return_url);
    bool enrolled = card.outcome == OUT_3DS_ALWAYS || card.outcome == OUT_3DS_SETUP ||
                    card.outcome == OUT_3DS_ADYEN || card.outcome == OUT_3DS_DECLINE;
    bool challenge = false;
    if (enrolled && value > 0 && strcmp(res->result, "Authorised") == 0) {
        /* the shopper present: 3DS2 needs the browser described (browserInfo), else Adyen
         * cannot authenticate and refuses (hyperswitch PR 5153: "failing with Authentication
         * required" until browser_info was sent) */
        if (strcmp(inter, "ContAuth") != 0 && has_return && !browser) {
            res = &adyen_auth_required;
            g->st.adyen_browser_refusals++;
        } else if (strcmp(inter, "ContAuth") != 0 && has_return)
            challenge = true;
        else if (strcmp(inter, "ContAuth") != 0 || card.outcome == OUT_3DS_ALWAYS ||
                 card.outcome == OUT_3DS_DECLINE)
            res = adyen_by_holder("NOT_3D_AUTHENTICATED");
        if (!challenge && strcmp(res->result, "Authorised") != 0)
            g->st.auth_required_declines++;
    }

    struct gw_obj *ap = obj_new(g, K_AP, NULL);
    if (ap == NULL)
        return adyen_full(c);
    if (challenge) {
        ap->amount = value;
        snprintf(ap->currency, sizeof ap->currency, "%s", cur);
        ap->text1 = strdup(ref);
        ap->status = AP_REDIRECT;
        ap->manual = delay != 0;
        ap->auth = 1;
        ap->outcome = card.outcome;
        ap->brand = card.brand;
        snprintf(ap->last4, sizeof ap->last4, "%s", card.last4);
        if (native) {
            if (ap->text1 == NULL)
                return adyen_full(c);
            ap->auth = 0; /* no issuer page: the challenge would run in the shopper's browser */
            return adyen_native_action(c, ap, ref);
        }
        ap->return_url = strdup(return_url);
        ap->action_url = acs_url(c, ap->id);
        if (ap->return_url == NULL || ap->action_url == NULL || ap->text1 == NULL)
            return adyen_full(c);
        g->st.adyen_payments++;
        g->st.actions++;
        resp_reset(c);
        struct tok_json_writer w;
        tok_jw_init(&w, &g->out);
        tok_jw_obj_begin(&w);
        tok_jw_key(&w, "additionalData");
        tok_jw_obj_begin(&w);
        tok_jw_kstr(&w, "cardSummary", card.last4);
        tok_jw_kstr(&w, "threeds2.cardEnrolled", "true");
        tok_jw_kstr(&w, "paymentMethod", adyen_brand(card.brand));
        tok_jw_kstr(&w, "merchantReference", ref);
        tok_jw_obj_end(&w);
        tok_jw_kstr(&w, "pspReference", ap->id);
        tok_jw_kstr(&w, "resultCode", "RedirectShopper");
        tok_jw_key(&w, "action");
        tok_jw_obj_begin(&w);
        tok_jw_kstr(&w, "paymentMethodType", "scheme");
        tok_jw_kstr(&w, "url", ap->action_url);
        tok_jw_kstr(&w, "method", "GET");
        tok_jw_kstr(&w, "type", "redirect");
        tok_jw_obj_end(&w);
        tok_jw_obj_end(&w);
        c->status = w.st == TOK_OK ? 200 : 500;
        c->code = "RedirectShopper";
        c->saveable = true;
        return;
    }
    ap->amount = value;
    snprintf(ap->currency, sizeof ap->currency, "%s", cur);
    ap->text1 = strdup(ref);
    ap->ares = res;
    ap->outcome = card.outcome;
    snprintf(ap->reason, sizeof ap->reason, "%s", card.reason);
    bool authorised = strcmp(res->result, "Authorised") == 0;
    ap->status = authorised ? AP_AUTHORISED : AP_REFUSED;
    ap->manual = delay != 0;
    if (authorised && !ap->manual)
        ap->received = value;
    g->st.adyen_payments++;
    if (authorised) {
        g->st.adyen_authorised++;
        g->st.charges++;
    } else {
        g->st.adyen_refused++;
    }
    struct gw_obj *newtok = NULL;
    if (authorised && store && token == NULL) {
        newtok = obj_new(g, K_AT, NULL);
        if (newtok == NULL)
            return adyen_full(c);
        newtok->outcome = card.outcome;
        newtok->brand = card.brand;
        snprintf(newtok->last4, sizeof newtok->last4, "%s", card.last4);
        newtok->exp_month = card.exp_month;
        newtok->exp_year = card.exp_year;
        newtok->text1 = strdup(shopper);
        snprintf(newtok->reason, sizeof newtok->reason, "%s", card.reason);
        g->st.adyen_tokens++;
    }

    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &g->out);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "additionalData");
    tok_jw_obj_begin(&w);
    char summary[32];
    snprintf(summary, sizeof summary, "%d/%d", card.exp_month, card.exp_year);
    tok_jw_kstr(&w, "cardSummary", card.last4);
    tok_jw_kstr(&w, "expiryDate", summary);
    tok_jw_kstr(&w, "paymentMethod", adyen_brand(card.brand));
    if (newtok != NULL) {
        tok_jw_kstr(&w, "recurring.recurringDetailReference", newtok->id);
        tok_jw_kstr(&w, "recurring.shopperReference", shopper);
        tok_jw_kstr(&w, "tokenization.shopperReference", shopper);
        tok_jw_kstr(&w, "tokenization.store.operationType", "created");
        tok_jw_kstr(&w, "tokenization.storedPaymentMethodId", newtok->id);
    }
    tok_jw_obj_end(&w);
    tok_jw_kstr(&w, "pspReference", ap->id);
    tok_jw_kstr(&w, "resultCode", res->result);
    if (!authorised) {
        char rcode[16];
        snprintf(rcode, sizeof rcode, "%d", res->code);
        tok_jw_kstr(&w, "refusalReason", res->reason);
        tok_jw_kstr(&w, "refusalReasonCode", rcode);
    }
    write_amount(&w, value, cur);
    tok_jw_kstr(&w, "merchantReference", ref);
    tok_jw_key(&w, "paymentMethod");
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "brand", adyen_brand(card.brand));
    tok_jw_kstr(&w, "type", "scheme");
    tok_jw_obj_end(&w);
    tok_jw_obj_end(&w);
    c->status = w.st == TOK_OK ? 200 : 500;
    c->code = res->result;
    c->saveable = true;
    if (authorised && !ap->manual)
        adyen_after_captured(g, ap);
}

static void adyen_stored(struct gw_call *c, const struct tok_json_node *root)
{
    struct gw *g = c->g;
    if (!adyen_merchant(c, root))
        return;
    char shopper[GW_TEXT_MAX + 1], rpm[32];
    if (!json_cstr(root, "shopperReference", shopper, sizeof shopper))
        return adyen_required(c, "000", "field", "shopperReference");
    if (strlen(shopper) < 3 || strlen(shopper) > 256)
        return adyen_error(c, 422, "000", "validation",
                           "shopperReference must be 3 to 256 characters.");
    static const char *const rpms[] = {"CardOnFile", "Subscription", "UnscheduledCardOnFile"};
    if (!json_cstr(root, "recurringProcessingModel", rpm, sizeof rpm))
        return adyen_required(c, "000", "field", "recurringProcessingModel");
    if (!one_of(rpm, rpms, TOK_ARRAY_LEN(rpms)))
        return adyen_error(c, 422, "000", "validation", "Invalid recurringProcessingModel.");
    const struct tok_json_node *pmn = tok_json_get(root, "paymentMethod");
    if (pmn == NULL || tok_json_type(pmn) != TOK_JSON_OBJECT)
        return adyen_required(c, "100", "object", "paymentMethod");
    char type[32];
    if (!json_cstr(pmn, "type", type, sizeof type) || strcmp(type, "scheme") != 0)
        return adyen_error(c, 422, "905", "configuration", "Payment details are not supported");
    struct gw_obj card;
    memset(&card, 0, sizeof card);
    const struct adyen_result *res = NULL;
    bool expired = false;
    if (!adyen_card(c, pmn, &card, &res, &expired))
        return;
    if (expired)
        return adyen_error(c, 422, "129", "validation", "Expiry Date Invalid");
    struct gw_obj *t = obj_new(g, K_AT, NULL);
    if (t == NULL)
        return adyen_full(c);
    t->outcome = card.outcome;
    t->brand = card.brand;
    snprintf(t->last4, sizeof t->last4, "%s", card.last4);
    t->exp_month = card.exp_month;
    t->exp_year = card.exp_year;
    t->text1 = strdup(shopper);
    g->st.adyen_tokens++;
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &g->out);
    tok_jw_obj_begin(&w);
    char mm[4], yy[8];
    snprintf(mm, sizeof mm, "%02d", t->exp_month);
    snprintf(yy, sizeof yy, "%d", t->exp_year);
    tok_jw_kstr(&w, "brand", adyen_brand(t->brand));
    tok_jw_kstr(&w, "expiryMonth", mm);
    tok_jw_kstr(&w, "expiryYear", yy);
    tok_jw_kstr(&w, "id", t->id);
    tok_jw_kstr(&w, "lastFour", t->last4);
    tok_jw_kstr(&w, "shopperReference", shopper);
    tok_jw_key(&w, "supportedRecurringProcessingModels");
    tok_jw_arr_begin(&w);
    tok_jw_str(&w, rpm);
    tok_jw_arr_end(&w);
    tok_jw_kstr(&w, "type", "scheme");
    tok_jw_obj_end(&w);
    c->status = w.st == TOK_OK ? 201 : 500;
    c->code = "created";
    c->saveable = true;
}

/* DELETE /storedPaymentMethods/{id}?shopperReference=&merchantAccount= -> 204 */
static void adyen_stored_delete(struct gw_call *c, struct tok_slice id)
{
    struct gw *g = c->g;
    struct gw_form f;
    f.n = 0;
    tok_buf_reset(&g->scratch);
    size_t q = c->req->query_at;
    struct tok_slice query = {0};
    if (q != SIZE_MAX && q + 1 < c->req->path.len)
        query = tok_slice_of(c->req->path.base + q + 1, c->req->path.len - q - 1);
    struct tok_slice shopper, merchant;
    if (form_parse(query, &g->scratch, &f) != TOK_OK)
        return adyen_error(c, 400, "000", "validation", "Unable to parse the query.");
    if (!form_get(&f, "merchantAccount", &merchant))
        return adyen_required(c, "000", "field", "merchantAccount");
    if (!tok_slice_eq(merchant, g->merchant))
        return adyen_error(c, 403, "901", "security", "Invalid Merchant Account");
    if (!form_get(&f, "shopperReference", &shopper))
        return adyen_required(c, "000", "field", "shopperReference");
    struct gw_obj *t = obj_find(g, id, K_AT);
    if (t == NULL || t->consumed || t->text1 == NULL || !tok_slice_eq(shopper, t->text1))
        return adyen_error(c, 422, "800", "validation", "Contract not found");
    t->consumed = true; /* "The token can no longer be used with payment requests." */
    g->st.adyen_tokens_disabled++;
    resp_reset(c);
    c->status = 204;
    c->code = "deleted";
}

enum adyen_mod { MOD_CAPTURE, MOD_CANCEL, MOD_REFUND };

static void adyen_modify(struct gw_call *c, enum adyen_mod mod, struct tok_slice psp,
                         const struct tok_json_node *root)
{
    struct gw *g = c->g;
    if (!adyen_merchant(c, root))
        return;
    int64_t value = 0;
    char cur[4] = "";
    if (mod != MOD_CANCEL && !adyen_amount(c, root, false, &value, cur))
        return;
    char ref[GW_TEXT_MAX + 1] = "";
    bool has_ref = json_cstr(root, "reference", ref, sizeof ref);
    if (has_ref && strlen(ref) > 80)
        return adyen_error(c, 422, "000", "validation", "reference is longer than 80 characters.");
    struct gw_obj *ap = obj_find(g, psp, K_AP);
    if (ap == NULL || ap->status == AP_REFUSED || ap->status == AP_REDIRECT ||
        ap->status == AP_NATIVE)
        return adyen_error(c, 422, "167", "validation",
                           "Original pspReference required for this operation");
    if (mod != MOD_CANCEL && strcmp(cur, ap->currency) != 0)
        return adyen_error(c, 422, "000", "validation",
                           "The currency does not match the original payment's.");
    /*
     * Adyen answers "received" and reports a failed modification later by webhook; gwsim
     * refuses at once instead, so an adapter bug shows up in the test that caused it.
     */
    if (ap->status == AP_CANCELLED)
        return adyen_error(c, 422, "000", "validation",
                           "gwsim: the payment was cancelled; no further modification.");
    bool after = false; /* a notification follows */
    switch (mod) {
    case MOD_CAPTURE:
        if (!ap->manual || value > ap->amount - ap->received)
            return adyen_error(c, 422, "137", "validation", "Invalid amount specified");
        ap->received += value;
        g->st.adyen_captures++;
        after = true;
        break;
    case MOD_CANCEL:
        if (ap->received > 0)
            return adyen_error(c, 422, "000", "validation",
                               "gwsim: a captured payment cannot be cancelled; refund it.");
        ap->status = AP_CANCELLED;
        g->st.adyen_cancels++;
        break;
    case MOD_REFUND:
        if (value > ap->received - ap->refunded)
            return adyen_error(c, 422, "137", "validation", "Invalid amount specified");
        ap->refunded += value;
        g->st.adyen_refunds++;
        g->st.refunds++;
        after = ap->outcome == OUT_REFUND_FAIL;
        break;
    default:
        return adyen_error(c, 500, "000", "internal", "gwsim: bad modification");
    }
    char mpsp[17];
    new_psp(mpsp);
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &g->out);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "merchantAccount", g->merchant);
    tok_jw_kstr(&w, "paymentPspReference", ap->id);
    tok_jw_kstr(&w, "pspReference", mpsp);
    if (has_ref) {
        tok_jw_kstr(&w, "reference", ref);
    }
    tok_jw_kstr(&w, "status", "received");
    if (mod != MOD_CANCEL)
        write_amount(&w, value, cur);
    tok_jw_obj_end(&w);
    c->status = w.st == TOK_OK ? 201 : 500;
    c->code = "received";
    c->saveable = true;
    if (after && mod == MOD_CAPTURE) {
        adyen_after_captured(g, ap);
    } else if (after) {
        /* gwsim's refund failure (5126, as at Stripe): Adyen's REFUND_FAILED for the refund,
         * the amount back on the payment (docs.adyen.com/online-payments/refund#refund-failed) */
        ap->refunded -= value;
        g->st.refund_failures++;
        adyen_notify(g, "REFUND_FAILED", mpsp, ap->id, has_ref ? ref : "", value, cur,
                     "Refund failed", NULL);
    }
}

static void control_plain(struct gw_call *c, int status, const char *key, const char *value);

/* An authorised or refused payment's answer (/payments/details after the shopper returned). */
static void adyen_result(struct gw_call *c, const struct gw_obj *ap)
{
    struct gw *g = c->g;
    bool authorised = ap->status == AP_AUTHORISED;
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &g->out);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "additionalData");
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "cardSummary", ap->last4);
    tok_jw_kstr(&w, "paymentMethod", adyen_brand(ap->brand));
    tok_jw_kstr(&w, "threeds2.cardEnrolled", "true");
    tok_jw_obj_end(&w);
    tok_jw_kstr(&w, "pspReference", ap->id);
    tok_jw_kstr(&w, "resultCode", authorised ? "Authorised" : "Refused");
    if (!authorised) {
        const struct adyen_result *r = ap->ares != NULL ? ap->ares
                                                        : adyen_by_holder("NOT_3D_AUTHENTICATED");
        char rcode[16];
        snprintf(rcode, sizeof rcode, "%d", r->code);
        tok_jw_kstr(&w, "refusalReason", r->reason);
        tok_jw_kstr(&w, "refusalReasonCode", rcode);
    }
    write_amount(&w, ap->amount, ap->currency);
    tok_jw_kstr(&w, "merchantReference", ap->text1);
    tok_jw_key(&w, "paymentMethod");
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "brand", adyen_brand(ap->brand));
    tok_jw_kstr(&w, "type", "scheme");
    tok_jw_obj_end(&w);
    tok_jw_obj_end(&w);
    c->status = w.st == TOK_OK ? 200 : 500;
    c->code = authorised ? "Authorised" : "Refused";
    c->saveable = true;
}

/*
 * POST /v71/payments/details {"details": {"redirectResult": "..."}}: the redirectResult the
 * ACS appended to returnUrl names the payment (its pspReference, a '.', a secret); the answer
 * is the payment's result, the same each time it is asked.
 */
static void adyen_details(struct gw_call *c, const struct tok_json_node *root)
{
    const struct tok_json_node *d = tok_json_get(root, "details");
    char rr[GW_ID_MAX * 2];
    if (d == NULL || tok_json_type(d) != TOK_JSON_OBJECT)
        return adyen_required(c, "000", "object", "details");
    if (!json_cstr(d, "redirectResult", rr, sizeof rr))
        return adyen_error(c, 422, "000", "validation",
                           "Required field 'details.redirectResult' is not provided.");
    const char *dot = strchr(rr, '.');
    struct gw_obj *ap = dot != NULL ? obj_find(c->g, tok_slice_of(rr, (size_t)(dot - rr)), K_AP)
                                    : NULL;
    if (ap == NULL || ap->redirect_result[0] == '\0' ||
        strlen(ap->redirect_result) != strlen(rr) ||
        sodium_memcmp(ap->redirect_result, rr, strlen(rr)) != 0)
        return adyen_error(c, 422, "000", "validation", "Invalid payload provided");
    adyen_result(c, ap);
}

static void acs_page(struct gw_call *c, const char *id)
{
    char html[1024];
    int n = snprintf(html, sizeof html,
                     "<!doctype html><html><head><title>gwsim 3-D Secure</title></head><body>"
                     "<h1>gwsim: simulated issuer authentication</h1>"
                     "<p>Payment %s is waiting for the cardholder.</p>"
                     "<p><a id=\"complete\" href=\"/__gwsim/acs/%s/complete\">Complete "
                     "authentication</a></p>"
                     "<p><a id=\"fail\" href=\"/__gwsim/acs/%s/fail\">Fail authentication"
                     "</a></p></body></html>",
                     id, id, id);
    resp_reset(c);
    if (n > 0 && (size_t)n < sizeof html && tok_buf_write(&c->g->out, html, (size_t)n) == TOK_OK)
        c->status = 200;
    else
        c->status = 500;
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/html; charset=utf-8"));
}

/* Sends the customer back: a 302 to return_url with what the gateway appends to it. */
static void acs_back(struct gw_call *c, const char *return_url, const char *query)
{
    char loc[1600];
    int n = snprintf(loc, sizeof loc, "%s%s%s", return_url, strchr(return_url, '?') ? "&" : "?",
                     query);
    if (n <= 0 || (size_t)n >= sizeof loc) {
        c->status = 500;
        return;
    }
    h2o_iovec_t v = h2o_strdup(&c->req->pool, loc, (size_t)n);
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_LOCATION, NULL, v.base, v.len);
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain"));
    resp_reset(c);
    c->status = 302;
}

/*
 * The simulated issuer (ACS): GET /__gwsim/acs/{id} is the page the customer is sent to;
 * /complete or /fail is the customer's answer, after which the payment is decided and the
 * customer sent back to the return URL as the gateway does: Stripe appends payment_intent,
 * payment_intent_client_secret and redirect_status (docs.stripe.com/payments/3d-secure/
 * authentication-flow#handle-redirect); Adyen appends redirectResult, which the merchant
 * passes to /payments/details (docs.adyen.com/online-payments/3d-secure/redirect-3ds2).
 */
static void acs_dispatch(struct gw_call *c, struct tok_slice method, struct tok_slice path)
{
    struct gw *g = c->g;
    g->st.r_acs++;
    c->route = "gwsim.acs";
    struct tok_slice rest = tok_slice_of(path.ptr + 13, path.len - 13);
    size_t slash = 0;
    while (slash < rest.len && rest.ptr[slash] != '/')
        slash++;
    struct tok_slice id = tok_slice_of(rest.ptr, slash), verb = tok_slice_of(rest.ptr + slash,
                                                                              rest.len - slash);
    struct gw_obj *o = obj_find(g, id, K_PI);
    if (o == NULL)
        o = obj_find(g, id, K_AP);
    if (!slice_is(method, "GET") || o == NULL || o->auth == 0)
        return control_plain(c, 404, "error", "no payment is waiting for authentication here");
    if (verb.len == 0)
        return acs_page(c, o->id);
    bool ok = slice_is(verb, "/complete");
    if (!ok && !slice_is(verb, "/fail"))
        return control_plain(c, 404, "error", "no such ACS step");
    if (o->auth != 1) /* already answered: the customer is sent back again, nothing changes */
        ok = o->auth == 2;
    else if (o->kind == K_PI) {
        struct gw_obj *pm = obj_find(g, tok_slice_str(o->ref1), K_PM);
        o->auth = ok ? 2 : 3;
        if (ok && o->outcome == OUT_3DS_DECLINE) {
            /* authenticated, then declined by the issuer (docs.stripe.com/testing, 1629) */
            o->status = PI_REQ_PM;
            snprintf(o->err_code, sizeof o->err_code, "%s", stripe_declines[o->outcome].code);
            snprintf(o->err_decline, sizeof o->err_decline, "%s",
                     stripe_declines[o->outcome].decline);
            snprintf(o->err_msg, sizeof o->err_msg, "%s", stripe_declines[o->outcome].message);
            g->st.auth_completed++;
            g->st.declines++;
            ok = false;
        } else if (ok) {
            if (o->manual) {
                o->status = PI_REQ_CAPTURE;
                o->capturable = o->amount;
            } else {
                o->status = PI_SUCCEEDED;
                o->received = o->amount;
            }
            g->st.charges++;
            g->st.auth_completed++;
            if (pm != NULL && o->manual_sfu) {
                pm->setup_done = true;
                if (pm->customer[0] == '\0' && o->customer[0] != '\0') {
                    snprintf(pm->customer, sizeof pm->customer, "%s", o->customer);
                    g->st.pm_attached++;
                }
            }
        } else {
            o->status = PI_REQ_PM;
            snprintf(o->err_code, sizeof o->err_code, "payment_intent_authentication_failure");
            o->err_decline[0] = '\0';
            snprintf(o->err_msg, sizeof o->err_msg,
                     "The provided PaymentMethod has failed authentication. You can provide "
                     "payment_method_data or a new PaymentMethod to attempt to fulfill this "
                     "PaymentIntent again.");
            g->st.auth_failed++;
        }
    } else {
        o->auth = ok ? 2 : 3;
        o->status = ok ? AP_AUTHORISED : AP_REFUSED;
        if (ok && o->outcome == OUT_3DS_DECLINE) {
            o->status = AP_REFUSED;
            o->ares = adyen_by_holder("DECLINED");
            g->st.adyen_refused++;
            g->st.auth_completed++;
        } else if (ok) {
            if (!o->manual)
                o->received = o->amount;
            g->st.adyen_authorised++;
            g->st.charges++;
            g->st.auth_completed++;
        } else {
            g->st.adyen_refused++;
            g->st.auth_failed++;
        }
        char secret[GW_ID_MAX];
        if (new_id("", secret) != TOK_OK)
            return control_plain(c, 500, "error", "no randomness");
        snprintf(o->redirect_result, sizeof o->redirect_result, "%.16s.%.22s", o->id, secret);
    }
    if (o->return_url == NULL)
        return control_plain(c, 200, "status", ok ? "authenticated" : "failed");
    char q[256];
    if (o->kind == K_PI)
        snprintf(q, sizeof q, "payment_intent=%s&payment_intent_client_secret=%s_secret_gwsim"
                 "&redirect_status=%s", o->id, o->id,
                 o->status == PI_SUCCEEDED || o->status == PI_REQ_CAPTURE ? "succeeded"
                                                                           : "failed");
    else
        snprintf(q, sizeof q, "redirectResult=%s", o->redirect_result);
    acs_back(c, o->return_url, q);
}

static bool adyen_auth(struct gw_call *c)
{
    struct tok_slice h;
    if (header_get(c->req, "x-api-key", &h) && h.len > 0 &&
        tok_slice_eq_ct(h, tok_buf_slice(&c->g->adyen_key)))
        return true;
    c->g->st.auth_failures++;
    adyen_error(c, 401, "000", "security", "HTTP Status Response - Unauthorized");
    return false;
}

static void adyen_dispatch(struct gw_call *c, struct tok_slice method, struct tok_slice path,
                           struct tok_slice body)
{
    struct gw *g = c->g;
    enum { R_NONE, R_PAY, R_STORE, R_MOD, R_DETAILS } r = R_NONE;
    enum adyen_mod mod = MOD_CAPTURE;
    struct tok_slice psp = {0};
    if (slice_is(method, "POST")) {
        if (slice_is(path, "/v71/payments")) {
            r = R_PAY;
            c->route = "adyen.payments";
            g->st.r_adyen_payments++;
        } else if (slice_is(path, "/v71/payments/details")) {
            r = R_DETAILS;
            c->route = "adyen.payments.details";
            g->st.r_adyen_details++;
        } else if (slice_is(path, "/v71/storedPaymentMethods")) {
            r = R_STORE;
            c->route = "adyen.storedPaymentMethods";
            g->st.r_adyen_stored++;
        } else if (slice_prefix(path, "/v71/payments/")) {
            struct tok_slice rest = tok_slice_of(path.ptr + 14, path.len - 14);
            size_t slash = 0;
            while (slash < rest.len && rest.ptr[slash] != '/')
                slash++;
            psp = tok_slice_of(rest.ptr, slash);
            struct tok_slice verb = tok_slice_of(rest.ptr + slash, rest.len - slash);
            r = R_MOD;
            if (slice_is(verb, "/captures")) {
                mod = MOD_CAPTURE;
                c->route = "adyen.captures";
                g->st.r_adyen_captures++;
            } else if (slice_is(verb, "/cancels")) {
                mod = MOD_CANCEL;
                c->route = "adyen.cancels";
                g->st.r_adyen_cancels++;
            } else if (slice_is(verb, "/refunds")) {
                mod = MOD_REFUND;
                c->route = "adyen.refunds";
                g->st.r_adyen_refunds++;
            } else {
                r = R_NONE;
            }
        }
    }
    if (slice_is(method, "DELETE") && slice_prefix(path, "/v71/storedPaymentMethods/")) {
        c->route = "adyen.storedPaymentMethods.delete";
        g->st.r_adyen_stored_delete++;
        return adyen_stored_delete(c, tok_slice_of(path.ptr + 26, path.len - 26));
    }
    if (r == R_NONE) {
        c->route = "adyen.unknown";
        g->st.r_unknown++;
        return adyen_error(c, 404, "000", "validation", "Not Found");
    }
    struct tok_json_doc *doc = NULL;
    struct tok_json_error jerr;
    if (tok_json_parse(body, NULL, &doc, &jerr) != TOK_OK ||
        tok_json_type(tok_json_root(doc)) != TOK_JSON_OBJECT) {
        tok_json_doc_free(&doc);
        return adyen_error(c, 400, "000", "validation", "Unable to parse message.");
    }
    const struct tok_json_node *root = tok_json_root(doc);
    if (r == R_PAY)
        adyen_payments(c, root);
    else if (r == R_DETAILS)
        adyen_details(c, root);
    else if (r == R_STORE)
        adyen_stored(c, root);
    else
        adyen_modify(c, mod, psp, root);
    tok_json_doc_free(&doc);
}

/* ---- control endpoints ------------------------------------------------------------------- */

static void control_stats(struct gw_call *c)
{
    const struct gw_stats *s = &c->g->st;
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &c->g->out);
#define KV(name, v)                                                                                \
    do {                                                                                           \
        tok_jw_key(&w, name);                                                                      \
        tok_jw_int(&w, (int64_t)(v));                                                              \
    } while (0)
    tok_jw_obj_begin(&w);
    KV("requests_total", s->requests);
    tok_jw_key(&w, "requests");
    tok_jw_obj_begin(&w);
    KV("stripe.payment_methods.create", s->r_pm_create);
    KV("stripe.payment_methods.get", s->r_pm_get);
    KV("stripe.payment_intents.create", s->r_pi_create);
    KV("stripe.payment_intents.get", s->r_pi_get);
    KV("stripe.payment_intents.confirm", s->r_pi_confirm);
    KV("stripe.payment_intents.capture", s->r_pi_capture);
    KV("stripe.payment_intents.cancel", s->r_pi_cancel);
    KV("stripe.refunds.create", s->r_refund_create);
    KV("stripe.refunds.get", s->r_refund_get);
    KV("adyen.payments", s->r_adyen_payments);
    KV("adyen.storedPaymentMethods", s->r_adyen_stored);
    KV("adyen.captures", s->r_adyen_captures);
    KV("adyen.cancels", s->r_adyen_cancels);
    KV("adyen.refunds", s->r_adyen_refunds);
    KV("adyen.storedPaymentMethods.delete", s->r_adyen_stored_delete);
    KV("stripe.customers.create", s->r_customer_create);
    KV("stripe.payment_methods.attach", s->r_pm_attach);
    KV("stripe.payment_methods.detach", s->r_pm_detach);
    KV("control", s->r_control);
    KV("adyen.payments.details", s->r_adyen_details);
    KV("gwsim.acs", s->r_acs);
    KV("gwsim.webhooks", s->r_webhooks);
    KV("unknown", s->r_unknown);
    tok_jw_obj_end(&w);
    KV("payment_intents_created", s->payment_intents);
    KV("charges", s->charges);
    KV("refunds", s->refunds);
    KV("idempotent_replays", s->replays);
    tok_jw_key(&w, "stripe");
    tok_jw_obj_begin(&w);
    KV("payment_methods", s->payment_methods);
    KV("payment_intents", s->payment_intents);
    KV("declines", s->declines);
    KV("captures", s->captures);
    KV("cancels", s->cancels);
    KV("refunds", s->refunds - s->adyen_refunds);
    KV("customers", s->customers);
    KV("payment_methods_attached", s->pm_attached);
    KV("payment_methods_detached", s->pm_detached);
    KV("reuse_refusals", s->reuse_refusals);
    tok_jw_obj_end(&w);
    tok_jw_key(&w, "adyen");
    tok_jw_obj_begin(&w);
    KV("payments", s->adyen_payments);
    KV("authorised", s->adyen_authorised);
    KV("refused", s->adyen_refused);
    KV("stored_payment_methods", s->adyen_tokens);
    KV("stored_payment_methods_disabled", s->adyen_tokens_disabled);
    KV("contauth_refusals", s->adyen_contauth_refusals);
    KV("captures", s->adyen_captures);
    KV("cancels", s->adyen_cancels);
    KV("refunds", s->adyen_refunds);
    tok_jw_obj_end(&w);
    tok_jw_key(&w, "authentication");
    tok_jw_obj_begin(&w);
    KV("actions", s->actions);
    KV("completed", s->auth_completed);
    KV("failed", s->auth_failed);
    KV("required_declines", s->auth_required_declines);
    tok_jw_obj_end(&w);
    KV("disputes", s->disputes);
    KV("refund_failures", s->refund_failures);
    struct gw_wh *wh = &c->g->wh;
    pthread_mutex_lock(&wh->mu);
    tok_jw_key(&w, "webhooks");
    tok_jw_obj_begin(&w);
    KV("queued", wh->queued);
    KV("delivered", wh->delivered);
    KV("failed_tries", wh->failed_tries);
    KV("given_up", wh->given_up);
    KV("dropped", wh->dropped);
    KV("unconfigured", wh->unconfigured);
    KV("resent", wh->resent);
    tok_jw_obj_end(&w);
    pthread_mutex_unlock(&wh->mu);
    tok_jw_key(&w, "adyen_3ds2");
    tok_jw_obj_begin(&w);
    KV("native_asked", s->adyen_3ds_native_asked);
    KV("redirect_asked", s->adyen_3ds_redirect_asked);
    KV("unasked", s->adyen_3ds_unasked);
    KV("native_actions", s->adyen_native_actions);
    KV("browser_info_refusals", s->adyen_browser_refusals);
    tok_jw_obj_end(&w);
    KV("idempotency_conflicts", s->idem_conflicts);
    KV("idempotency_mismatched_replays", s->idem_mismatch_replays);
    KV("auth_failures", s->auth_failures);
    KV("store_full_refusals", s->full_refusals);
    tok_jw_key(&w, "faults");
    tok_jw_obj_begin(&w);
    KV("500", s->f500);
    KV("429", s->f429);
    KV("timeout", s->ftimeout);
    KV("reset", s->freset);
    KV("latency", s->flatency);
    tok_jw_obj_end(&w);
    KV("connections_accepted", s->connections);
    tok_jw_key(&w, "requests_by_version");
    tok_jw_obj_begin(&w);
    KV("http1", s->requests_h1);
    KV("http2", s->requests_h2);
    tok_jw_obj_end(&w);
    KV("objects", c->g->nobjects);
    KV("objects_max", c->g->cfg.max_objects);
    tok_jw_obj_end(&w);
#undef KV
    c->status = w.st == TOK_OK ? 200 : 500;
    c->code = "ok";
}

static void control_plain(struct gw_call *c, int status, const char *key, const char *value)
{
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &c->g->out);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, key, value);
    tok_jw_obj_end(&w);
    c->status = status;
    c->code = value;
}

/* POST /__gwsim/webhooks {"stripe": {"url", "secret"}, "adyen": {"url", "hmac_key"},
 * "delay_ms"}: where the events go (loopback http only), GET: the events kept. */
static void control_webhooks_set(struct gw_call *c)
{
    h2o_req_t *req = c->req;
    struct tok_slice body = tok_slice_of(req->entity.base, req->entity.base ? req->entity.len : 0);
    struct tok_json_doc *doc = NULL;
    if (tok_json_parse(body, NULL, &doc, NULL) != TOK_OK)
        return control_plain(c, 400, "error", "the body is not JSON");
    const struct tok_json_node *root = tok_json_root(doc);
    static const char *const apis[2] = {"stripe", "adyen"};
    static const char *const keys[2] = {"secret", "hmac_key"};
    const char *bad = NULL;
    int64_t delay = -1;
    const struct tok_json_node *dn = tok_json_get(root, "delay_ms");
    if (dn != NULL && (tok_json_int64(dn, &delay) != TOK_OK || delay < 0 || delay > 60000))
        bad = "delay_ms: 0..60000";
    for (int i = 0; i < 2 && bad == NULL; i++) {
        const struct tok_json_node *e = tok_json_get(root, apis[i]);
        if (e == NULL)
            continue;
        char url[GW_WH_PATH_MAX + 64];
        struct tok_slice secret;
        const struct tok_json_node *sn = tok_json_get(e, keys[i]);
        if (!json_cstr(e, "url", url, sizeof url) || sn == NULL ||
            tok_json_string(sn, &secret) != TOK_OK ||
            !gw_wh_set(&c->g->wh, (enum gw_wh_api)i, url, secret))
            bad = i == 0 ? "stripe: {url: http://127.0.0.1|localhost|[::1]:PORT/..., secret}"
                         : "adyen: {url: http://127.0.0.1|localhost|[::1]:PORT/..., "
                           "hmac_key (hex)}";
    }
    if (bad == NULL && delay >= 0) {
        pthread_mutex_lock(&c->g->wh.mu);
        c->g->wh.delay_ms = (uint32_t)delay;
        pthread_mutex_unlock(&c->g->wh.mu);
    }
    tok_json_doc_free(&doc);
    if (bad != NULL)
        return control_plain(c, 400, "error", bad);
    control_plain(c, 200, "status", "configured");
}

static void control_webhooks_list(struct gw_call *c)
{
    struct gw_wh *wh = &c->g->wh;
    resp_reset(c);
    struct tok_json_writer w;
    tok_jw_init(&w, &c->g->out);
    pthread_mutex_lock(&wh->mu);
    tok_jw_obj_begin(&w);
    tok_jw_kbool(&w, "stripe", wh->ep[GW_WH_STRIPE].set);
    tok_jw_kbool(&w, "adyen", wh->ep[GW_WH_ADYEN].set);
    tok_jw_kint(&w, "delay_ms", wh->delay_ms);
    tok_jw_key(&w, "events");
    tok_jw_arr_begin(&w);
    for (uint64_t seq = 1; seq <= wh->seq; seq++) {
        for (size_t i = 0; i < GW_WH_EVENTS_MAX; i++) {
            const struct gw_wh_event *e = &wh->ev[i];
            if (!e->used || e->seq != seq)
                continue;
            tok_jw_obj_begin(&w);
            tok_jw_kstr(&w, "id", e->id);
            tok_jw_kstr(&w, "gateway", e->api == GW_WH_STRIPE ? "stripe" : "adyen");
            tok_jw_kstr(&w, "type", e->type);
            tok_jw_kint(&w, "tries", e->tries);
            tok_jw_kint(&w, "last_status", e->last_status);
            tok_jw_kbool(&w, "delivered", e->delivered);
            tok_jw_kbool(&w, "given_up", e->given_up);
            tok_jw_obj_end(&w);
        }
    }
    tok_jw_arr_end(&w);
    tok_jw_obj_end(&w);
    pthread_mutex_unlock(&wh->mu);
    c->status = w.st == TOK_OK ? 200 : 500;
    c->code = "webhooks";
}

static void control_dispatch(struct gw_call *c, struct tok_slice method, struct tok_slice path)
{
    c->g->st.r_control++;
    if (slice_is(method, "GET") && slice_is(path, "/__gwsim/stats")) {
        c->route = "gwsim.stats";
        return control_stats(c);
    }
    if (slice_is(method, "POST") && slice_is(path, "/__gwsim/reset")) {
        c->route = "gwsim.reset";
        store_clear(c->g);
        memset(&c->g->st, 0, sizeof c->g->st);
        return control_plain(c, 200, "status", "reset");
    }
    if (slice_is(path, "/__gwsim/webhooks")) {
        c->g->st.r_webhooks++;
        c->route = "gwsim.webhooks";
        if (slice_is(method, "POST"))
            return control_webhooks_set(c);
        if (slice_is(method, "GET"))
            return control_webhooks_list(c);
    }
    /* POST /__gwsim/webhooks/{id}/resend: the gateway delivers the same event again */
    if (slice_is(method, "POST") && slice_prefix(path, "/__gwsim/webhooks/") &&
        path.len > 18 + 7 && memcmp(path.ptr + path.len - 7, "/resend", 7) == 0) {
        c->g->st.r_webhooks++;
        c->route = "gwsim.webhooks.resend";
        struct tok_slice id = tok_slice_of(path.ptr + 18, path.len - 18 - 7);
        if (!gw_wh_resend(&c->g->wh, id))
            return control_plain(c, 404, "error", "no such event");
        return control_plain(c, 200, "status", "resending");
    }
    c->route = "gwsim.unknown";
    control_plain(c, 404, "error", "no such gwsim endpoint");
}

/* ---- faults, latency, sending ------------------------------------------------------------ */

/* X-Gwsim-Fault: comma-separated 500, 429, timeout, reset, timeout-after, reset-after, latency=MS */
static bool fault_parse(struct tok_slice h, struct gw_fault *f)
{
    size_t i = 0;
    while (i < h.len) {
        size_t j = i;
        while (j < h.len && h.ptr[j] != ',')
            j++;
        struct tok_slice t = tok_slice_of(h.ptr + i, j - i);
        while (t.len > 0 && t.ptr[0] == ' ')
            t = tok_slice_of(t.ptr + 1, t.len - 1);
        while (t.len > 0 && t.ptr[t.len - 1] == ' ')
            t.len--;
        int64_t ms = 0;
        if (slice_is(t, "500"))
            f->f500 = true;
        else if (slice_is(t, "429"))
            f->f429 = true;
        else if (slice_is(t, "timeout"))
            f->timeout = true;
        else if (slice_is(t, "reset"))
            f->reset = true;
        else if (slice_is(t, "timeout-after"))
            f->timeout = f->after = true;
        else if (slice_is(t, "reset-after"))
            f->reset = f->after = true;
        else if (slice_prefix(t, "latency=") &&
                 parse_i64(tok_slice_of(t.ptr + 8, t.len - 8), &ms) && ms >= 0 &&
                 ms <= GW_LATENCY_MAX_MS)
            f->latency = (uint32_t)ms;
        else if (t.len > 0)
            return false;
        i = j + 1;
    }
    return true;
}

static bool draw(double p)
{
    if (p <= 0)
        return false;
    if (p >= 1)
        return true;
    return randombytes_uniform(1000000u) < (uint32_t)(p * 1000000.0);
}

static h2o_timeout_t *timer_for(struct gw *g, uint64_t ms)
{
    for (size_t i = 0; i < g->ntimers; i++)
        if (g->timers[i].ms == ms)
            return &g->timers[i].t;
    if (g->ntimers < GW_TIMERS_MAX) {
        struct gw_timer *t = &g->timers[g->ntimers++];
        t->ms = ms;
        h2o_timeout_init(g->ctx.loop, &t->t, ms);
        return &t->t;
    }
    /* out of distinct timers: the closest shorter one (never longer than asked) */
    size_t best = 0;
    for (size_t i = 1; i < g->ntimers; i++)
        if (g->timers[i].ms <= ms && g->timers[i].ms > g->timers[best].ms)
            best = i;
    return &g->timers[best].t;
}

/*
 * Closes the connection under a request without an answer: linger 0 and shutdown, so the
 * client sees the connection end; h2o then fails its write and frees the connection.
 */
static void conn_reset(struct gw *g, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    uint16_t port = 0;
    if (len > 0 && ss.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (len > 0 && ss.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    int fd = g->port_fd[port];
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 || plen != len ||
        memcmp(&peer, &ss, len) != 0) {
        tok_log_warn("%s: cannot find the connection to reset", __func__);
        return;
    }
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    (void)shutdown(fd, SHUT_RDWR);
}

struct gw_delayed {
    h2o_timeout_entry_t ent;
    h2o_req_t *req;
    struct gw *g;
    int status;
    h2o_iovec_t body;
    bool reset;
};

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Unknown";
    }
}

static void send_now(struct gw *g, h2o_req_t *req, int status, h2o_iovec_t body, bool reset)
{
    if (reset)
        conn_reset(g, req);
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
}

static void on_delayed(h2o_timeout_entry_t *ent)
{
    struct gw_delayed *d = H2O_STRUCT_FROM_MEMBER(struct gw_delayed, ent, ent);
    send_now(d->g, d->req, d->status, d->body, d->reset);
}

static void on_delayed_dispose(void *p)
{
    struct gw_delayed *d = p;
    if (h2o_timeout_is_linked(&d->ent))
        h2o_timeout_unlink(&d->ent);
}

static void respond(struct gw *g, h2o_req_t *req, int status, h2o_iovec_t body, uint32_t delay,
                    bool reset)
{
    if (delay == 0)
        return send_now(g, req, status, body, reset);
    struct gw_delayed *d = h2o_mem_alloc_shared(&req->pool, sizeof *d, on_delayed_dispose);
    memset(d, 0, sizeof *d);
    d->ent.cb = on_delayed;
    d->req = req;
    d->g = g;
    d->status = status;
    d->body = body;
    d->reset = reset;
    h2o_timeout_link(g->ctx.loop, timer_for(g, delay), &d->ent);
}

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    /* h2o keeps the pointers: both strings go into the request's pool */
    h2o_iovec_t n = h2o_strdup(&req->pool, name, SIZE_MAX);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

static void fault_response(struct gw_call *c, int status)
{
    if (status == 500) {
        c->g->st.f500++;
        if (c->api == API_STRIPE)
            stripe_error(c, 500, "api_error", NULL, NULL, "An unknown error occurred");
        else if (c->api == API_ADYEN)
            adyen_error(c, 500, "000", "internal", "Internal error");
        else
            control_plain(c, 500, "error", "injected fault");
        return;
    }
    c->g->st.f429++;
    if (c->api == API_STRIPE)
        stripe_error(c, 429, "invalid_request_error", "rate_limit", NULL,
                     "Too many requests hit the API too quickly. We recommend an exponential "
                     "backoff of your requests.");
    else if (c->api == API_ADYEN)
        adyen_error(c, 429, "000", "validation", "Too Many Requests");
    else
        control_plain(c, 429, "error", "injected fault");
}

/* ---- the request ------------------------------------------------------------------------- */

static void log_request(const struct gw_call *c, struct tok_slice method, const char *fault,
                        uint32_t delay)
{
    tok_log_info("gwsim: %.*s %s -> %d %s%s fault=%s latency_ms=%u", (int)method.len,
                 (const char *)method.ptr, c->route, c->status, c->code != NULL ? c->code : "-",
                 c->replayed ? " (idempotent replay)" : "", fault, delay);
}

/* Request bodies may hold card data: once read, nothing needs them, so they are wiped. */
static void wipe_body(h2o_req_t *req)
{
    if (req->entity.base != NULL && req->entity.len > 0)
        sodium_memzero(req->entity.base, req->entity.len);
}

/* --record: the exchange as answered (an answer withheld by timeout-after is not one) */
static void record(const struct gw_call *c, struct tok_slice method, struct tok_slice path,
                   struct tok_slice body)
{
    if (c->g->rec.dir == NULL || (c->fault.after && c->fault.timeout))
        return;
    h2o_req_t *req = c->req;
    struct gw_rec_exchange x = {
        .api = c->api == API_STRIPE ? "stripe" : "adyen",
        .route = c->route,
        .method = method,
        .path = path,
        .status = c->status,
        .replayed = c->replayed,
        .resp_ctype = c->api == API_ADYEN ? "application/json;charset=UTF-8" : "application/json",
        .resp_body = tok_buf_slice(&c->g->out),
        .req_body = body,
    };
    if (req->query_at != SIZE_MAX && req->query_at < req->path.len)
        x.query = tok_slice_of(req->path.base + req->query_at + 1,
                               req->path.len - req->query_at - 1);
    (void)header_get(req, "content-type", &x.req_ctype);
    (void)header_get(req, "idempotency-key", &x.idem_key);
    (void)header_get(req, "stripe-version", &x.stripe_version);
    gw_record(&c->g->rec, &x);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = ((struct gw_handler *)self)->g;
    struct gw_call c;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.req = req;
    c.route = "unknown";
    g->st.requests++;
    if (req->version >= 0x200)
        g->st.requests_h2++;
    else
        g->st.requests_h1++;
    struct tok_slice method = tok_slice_of(req->method.base, req->method.len);
    size_t plen = req->path.len;
    if (req->query_at != SIZE_MAX && req->query_at < plen)
        plen = req->query_at;
    struct tok_slice path = tok_slice_of(req->path.base, plen);
    struct tok_slice body = tok_slice_of(req->entity.base, req->entity.base ? req->entity.len : 0);
    c.api = slice_prefix(path, "/v1/")       ? API_STRIPE
            : slice_prefix(path, "/v71/")    ? API_ADYEN
            : slice_prefix(path, "/__gwsim/") ? API_CONTROL
                                             : API_NONE;
    if (new_id("req_", c.request_id) != TOK_OK)
        snprintf(c.request_id, sizeof c.request_id, "req_0");

    /* faults: the header first, then the configured random rates (gateway routes only) */
    struct tok_slice fh;
    const char *fault_name = "-";
    if (header_get(req, "x-gwsim-fault", &fh) && !fault_parse(fh, &c.fault)) {
        control_plain(&c, 400, "error", "bad X-Gwsim-Fault (500, 429, timeout, reset, "
                      "timeout-after, reset-after, latency=MS)");
        wipe_body(req);
        log_request(&c, method, "bad", 0);
        respond(g, req, c.status, h2o_strdup(&req->pool, (const char *)g->out.data, g->out.len),
                0, false);
        return 0;
    }
    if ((c.api == API_STRIPE || c.api == API_ADYEN) && !c.fault.f500 && !c.fault.f429 &&
        !c.fault.timeout && !c.fault.reset) {
        c.fault.f500 = draw(g->cfg.rate500);
        if (!c.fault.f500)
            c.fault.f429 = draw(g->cfg.rate429);
    }
    uint32_t delay = c.fault.latency;
    if (c.fault.latency > 0)
        g->st.flatency++;
    if (c.api == API_STRIPE || c.api == API_ADYEN)
        delay += g->cfg.latency_ms;

    if ((c.fault.timeout || c.fault.reset) && !c.fault.after) {
        c.status = 0;
        c.code = c.fault.timeout ? "no answer" : "connection reset";
        fault_name = c.fault.timeout ? "timeout" : "reset";
        if (c.fault.timeout)
            g->st.ftimeout++;
        else
            g->st.freset++;
        wipe_body(req);
        log_request(&c, method, fault_name, delay);
        if (c.fault.reset)
            respond(g, req, 500, h2o_iovec_init(H2O_STRLIT("")), delay, true);
        return 0; /* timeout: the request stays unanswered until the client gives up */
    }

    if (c.api == API_STRIPE || c.api == API_ADYEN) {
        struct tok_slice v;
        if (c.api == API_STRIPE) {
            add_header(req, "request-id", c.request_id);
            char ver[64] = GW_STRIPE_VERSION;
            if (header_get(req, "stripe-version", &v) && printable(v, sizeof ver - 1))
                (void)put_cstr(ver, sizeof ver, v);
            add_header(req, "stripe-version", ver);
        }
        if (header_get(req, "idempotency-key", &v) && printable(v, GW_STRIPE_IDEM_MAX)) {
            char key[GW_STRIPE_IDEM_MAX + 1];
            if (put_cstr(key, sizeof key, v) == TOK_OK)
                add_header(req, "idempotency-key", key);
        }
    }
    if (c.api == API_CONTROL && slice_prefix(path, "/__gwsim/acs/") && !c.fault.f500 &&
        !c.fault.f429) {
        acs_dispatch(&c, method, path); /* sets its own content type */
        goto send;
    }
    if (c.api == API_ADYEN)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json;charset=UTF-8"));
    else
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));

    if (c.fault.f500 || c.fault.f429) {
        fault_response(&c, c.fault.f500 ? 500 : 429);
        fault_name = c.fault.f500 ? "500" : "429";
        goto send;
    }

    if (c.api == API_CONTROL) {
        control_dispatch(&c, method, path);
        goto send;
    }
    if (c.api == API_NONE) {
        g->st.r_unknown++;
        control_plain(&c, 404, "error", "not a Stripe (/v1/), Adyen (/v71/) or /__gwsim/ path");
        goto send;
    }
    if (c.api == API_STRIPE ? !stripe_auth(&c) : !adyen_auth(&c))
        goto send;

    /* idempotency: same key and same request -> the saved answer; Stripe refuses a mismatch */
    uint8_t mac[TOK_HMAC_SHA256_LEN] = {0};
    char keybuf[GW_STRIPE_IDEM_MAX + 3];
    struct tok_slice ik = {0};
    bool has_key = slice_is(method, "POST") && header_get(req, "idempotency-key", &ik) && ik.len > 0;
    if (has_key) {
        size_t max = c.api == API_STRIPE ? GW_STRIPE_IDEM_MAX : GW_ADYEN_IDEM_MAX;
        if (ik.len > max) {
            if (c.api == API_STRIPE)
                stripe_error(&c, 400, "invalid_request_error", NULL, NULL,
                             "Idempotency-Key must be at most 255 characters long.");
            else
                adyen_error(&c, 422, "000", "validation",
                            "Idempotency-Key must be at most 64 characters long.");
            goto send;
        }
        struct tok_buf kb;
        tok_buf_init(&kb, keybuf, sizeof keybuf);
        if (tok_buf_puts(&kb, c.api == API_STRIPE ? "s:" : "a:") != TOK_OK ||
            tok_buf_write(&kb, ik.ptr, ik.len) != TOK_OK)
            goto send;
        c.idem_key = tok_buf_slice(&kb);
        crypto_auth_hmacsha256_state hs;
        crypto_auth_hmacsha256_init(&hs, g->mac_key, sizeof g->mac_key);
        crypto_auth_hmacsha256_update(&hs, path.ptr, path.len);
        crypto_auth_hmacsha256_update(&hs, (const uint8_t *)"\n", 1);
        crypto_auth_hmacsha256_update(&hs, body.ptr, body.len);
        crypto_auth_hmacsha256_final(&hs, mac);
        const struct gw_idem *rec = idem_find(g, c.idem_key);
        if (rec != NULL) {
            bool same = sodium_memcmp(rec->mac, mac, sizeof mac) == 0;
            if (!same && c.api == API_STRIPE) {
                g->st.idem_conflicts++;
                char msg[400];
                snprintf(msg, sizeof msg, "Keys for idempotent requests can only be used with the "
                         "same parameters they were first used with. Try using a key other than "
                         "'%.*s' if you meant to execute a different request.",
                         printable(ik, 64) ? (int)ik.len : 0, (const char *)ik.ptr);
                stripe_error(&c, 400, "idempotency_error", NULL, NULL, msg);
                c.route = "stripe.idempotency_conflict";
                goto send;
            }
            if (!same) {
                g->st.idem_mismatch_replays++;
                tok_log_warn("%s: Adyen Idempotency-Key reused with a different request; "
                             "replaying the first answer as Adyen does", __func__);
            }
            g->st.replays++;
            c.replayed = true;
            c.status = rec->status;
            c.code = "replay";
            c.route = c.api == API_STRIPE ? "stripe.replay" : "adyen.replay";
            resp_reset(&c);
            if (tok_buf_write(&g->out, rec->body, rec->len) != TOK_OK)
                c.status = 500;
            if (c.api == API_STRIPE)
                add_header(req, "idempotent-replayed", "true");
            goto send;
        }
    }

    if (c.api == API_STRIPE)
        stripe_dispatch(&c, method, path, body);
    else
        adyen_dispatch(&c, method, path, body);
    tok_buf_reset(&g->scratch);

    /* Stripe saves once the endpoint ran (2xx and card errors), Adyen its accepted answers */
    if (has_key && c.saveable && c.status < 500)
        idem_save(g, c.idem_key, mac, c.status, tok_buf_slice(&g->out));

send:
    if (c.api == API_STRIPE || c.api == API_ADYEN)
        record(&c, method, path, body);
    wipe_body(req);
    log_request(&c, method, fault_name, delay);
    h2o_iovec_t out = h2o_strdup(&req->pool, (const char *)g->out.data, g->out.len);
    resp_reset(&c);
    if (c.fault.after && c.fault.timeout) {
        g->st.ftimeout++;
        tok_log_info("gwsim: %s answered but the answer is withheld (timeout-after)", c.route);
        return 0;
    }
    if (c.fault.after && c.fault.reset) {
        g->st.freset++;
        tok_log_info("gwsim: %s answered but the connection is reset (reset-after)", c.route);
    }
    respond(g, req, c.status, out, delay, c.fault.after && c.fault.reset);
    return 0;
}

/* ---- listener, TLS, main ----------------------------------------------------------------- */

/* Accepts by hand (not h2o_evloop_socket_accept) to learn each connection's fd for "reset". */
static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct gw *g = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(g->listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        int on = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        uint16_t port = 0;
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        g->port_fd[port] = fd;
        g->st.connections++;
        h2o_socket_t *sock =
            h2o_evloop_socket_create(g->ctx.loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
        h2o_accept(&g->actx, sock);
    }
}

static void die(const char *why)
{
    fprintf(stderr, "gwsim: %s\n", why);
    exit(2);
}

/* what a gateway serving both offers (h2o_http2_alpn_protocols lacks "http/1.1") */
static const h2o_iovec_t alpn_h2_h1[] = {{H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};
static const h2o_iovec_t alpn_h1[] = {{H2O_STRLIT("http/1.1")}, {NULL, 0}};

static SSL_CTX *tls_setup(const char *cert, const char *key, bool http1_only)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        die("cannot create the TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        die("cannot load the TLS certificate or key");
    ERR_clear_error();
    /*
     * Stripe's and Adyen's API hosts offer h2 and http/1.1: a client that multiplexes gets
     * HTTP/2 here too. --http1-only offers http/1.1 alone (the gateway of an old SDK's tests).
     */
    h2o_ssl_register_alpn_protocols(ctx, http1_only ? alpn_h1 : alpn_h2_h1);
    return ctx;
}

static int listen_on(const char *addr_s)
{
    struct sockaddr_storage ss;
    unsigned len = sizeof ss;
    if (tok_config_parse_addr(addr_s, (struct sockaddr *)&ss, &len) != TOK_OK)
        die("bad --listen address (HOST:PORT)");
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 1024) != 0) {
        fprintf(stderr, "gwsim: cannot listen on %s: %s\n", addr_s, strerror(errno));
        exit(2);
    }
    return fd;
}

static void write_ready(const char *file)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", file) >= (int)sizeof tmp)
        die("--ready-file path too long");
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fputs("ready\n", f) < 0 || fclose(f) != 0 || rename(tmp, file) != 0)
        die("cannot write --ready-file");
}

static volatile sig_atomic_t stopping;

/* The process-lifetime objects, kept reachable so that LeakSanitizer (make asan) does not
 * report what exit hands back anyway. */
static struct { /* volatile: stores never read would otherwise be optimised away */
    struct gw *volatile g;
    h2o_evloop_t *volatile loop;
    h2o_socket_t *volatile listener;
} lifetime;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static double parse_rate(const char *s, const char *flag)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
        fprintf(stderr, "gwsim: %s takes a probability 0..1\n", flag);
        exit(2);
    }
    return v;
}

static uint32_t parse_u32(const char *s, const char *flag, uint32_t max)
{
    int64_t v = 0;
    if (!parse_i64(tok_slice_str(s), &v) || v < 0 || v > max) {
        fprintf(stderr, "gwsim: %s takes an integer 0..%u\n", flag, max);
        exit(2);
    }
    return (uint32_t)v;
}

static void set_secret(struct tok_buf *b, const char *s, const char *flag)
{
    size_t n = strlen(s);
    if (n == 0 || n >= GW_KEY_MAX) {
        fprintf(stderr, "gwsim: %s must be 1..%d characters\n", flag, GW_KEY_MAX - 1);
        exit(2);
    }
    tok_buf_reset(b);
    if (tok_buf_write(b, s, n) != TOK_OK)
        die("key too long");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: gwsim --listen HOST:PORT (--tls-cert F --tls-key F | --plain) [--http1-only]\n"
            "             [--latency-ms N] [--stripe-key sk_test_...] [--adyen-key KEY]\n"
            "             [--adyen-merchant NAME] [--fault-rate-500 P] [--fault-rate-429 P]\n"
            "             [--ready-file F] [--max-objects N] [--log-level debug|info|warn|error]\n"
            "             [--record DIR] [--adyen-native-3ds always]\n"
            "See docs/gwsim.md.\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct rlimit nocore = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &nocore);
    (void)prctl(PR_SET_DUMPABLE, 0);
    if (sodium_init() < 0)
        die("sodium_init failed");
    struct gw *g = lifetime.g = calloc(1, sizeof *g);
    if (g == NULL)
        die("out of memory");
    g->cfg.max_objects = GW_OBJECTS_DEFAULT;
    g->objs = calloc(GW_BUCKETS, sizeof *g->objs);
    g->idem = calloc(GW_BUCKETS, sizeof *g->idem);
    if (g->objs == NULL || g->idem == NULL ||
        tok_buf_alloc(&g->stripe_key, GW_KEY_MAX, true) != TOK_OK ||
        tok_buf_alloc(&g->adyen_key, GW_KEY_MAX, true) != TOK_OK ||
        tok_buf_alloc(&g->scratch, GW_SCRATCH_MAX, true) != TOK_OK ||
        tok_buf_alloc(&g->out, GW_OUT_MAX, false) != TOK_OK)
        die("out of memory");
    randombytes_buf(g->mac_key, sizeof g->mac_key);
    set_secret(&g->stripe_key, "sk_test_gwsim", "--stripe-key");
    set_secret(&g->adyen_key, "gwsim_adyen_key", "--adyen-key");
    snprintf(g->merchant, sizeof g->merchant, "GwsimMerchantECOM");
    for (size_t i = 0; i < GW_PORTS; i++)
        g->port_fd[i] = -1;
    gw_wh_init(&g->wh);

    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},       {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},      {"plain", no_argument, NULL, 'p'},
        {"latency-ms", required_argument, NULL, 'L'},   {"stripe-key", required_argument, NULL, 's'},
        {"adyen-key", required_argument, NULL, 'a'},    {"adyen-merchant", required_argument, NULL, 'm'},
        {"fault-rate-500", required_argument, NULL, '5'}, {"fault-rate-429", required_argument, NULL, '4'},
        {"ready-file", required_argument, NULL, 'r'},   {"max-objects", required_argument, NULL, 'o'},
        {"log-level", required_argument, NULL, 'v'},    {"help", no_argument, NULL, 'h'},
        {"http1-only", no_argument, NULL, '1'},
        {"record", required_argument, NULL, 'R'},
        {"adyen-native-3ds", required_argument, NULL, 'N'},
        {NULL, 0, NULL, 0}};
    int opt;
    enum tok_log_level level;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            g->cfg.listen = optarg;
            break;
        case 'c':
            g->cfg.tls_cert = optarg;
            break;
        case 'k':
            g->cfg.tls_key = optarg;
            break;
        case 'p':
            g->cfg.plain = true;
            break;
        case '1':
            g->cfg.http1_only = true;
            break;
        case 'L':
            g->cfg.latency_ms = parse_u32(optarg, "--latency-ms", GW_LATENCY_MAX_MS);
            break;
        case 's':
            set_secret(&g->stripe_key, optarg, "--stripe-key");
            break;
        case 'a':
            set_secret(&g->adyen_key, optarg, "--adyen-key");
            break;
        case 'm':
            if (strlen(optarg) == 0 || strlen(optarg) >= sizeof g->merchant)
                die("--adyen-merchant must be 1..255 characters");
            snprintf(g->merchant, sizeof g->merchant, "%s", optarg);
            break;
        case '5':
            g->cfg.rate500 = parse_rate(optarg, "--fault-rate-500");
            break;
        case '4':
            g->cfg.rate429 = parse_rate(optarg, "--fault-rate-429");
            break;
        case 'r':
            g->cfg.ready_file = optarg;
            break;
        case 'R':
            g->cfg.record_dir = optarg;
            break;
        case 'N':
            if (strcmp(optarg, "always") != 0)
                die("--adyen-native-3ds: always");
            g->cfg.adyen_force_native = true;
            break;
        case 'o':
            g->cfg.max_objects = parse_u32(optarg, "--max-objects", 10000000u);
            break;
        case 'v':
            if (tok_log_parse_level(optarg, &level) != TOK_OK)
                die("--log-level: debug, info, warn or error");
            tok_log_set_level(level);
            break;
        default:
            usage();
        }
    }
    if (optind != argc || g->cfg.listen == NULL)
        usage();
    if (!g->cfg.plain && (g->cfg.tls_cert == NULL || g->cfg.tls_key == NULL))
        die("TLS needs --tls-cert and --tls-key (or pass --plain for cleartext)");
    if (g->cfg.record_dir != NULL && gw_record_init(&g->rec, g->cfg.record_dir) != TOK_OK)
        die("--record: out of memory");

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: the loop's epoll_wait returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    h2o_config_init(&g->h2o);
    g->h2o.server_name = h2o_iovec_init(H2O_STRLIT("gwsim"));
    g->h2o.max_request_entity_size = GW_BODY_MAX;
    g->h2o.http1.req_timeout = 30000;
    h2o_hostconf_t *host =
        h2o_config_register_host(&g->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct gw_handler *h = (struct gw_handler *)h2o_create_handler(pathconf, sizeof *h);
    h->super.on_req = on_req;
    h->g = g;
    /*
     * h2o announces SETTINGS_MAX_CONCURRENT_STREAMS 100; handle as many at once, or streams
     * past h2o's internal limit would queue behind the delayed ones and add their latency.
     */
    g->h2o.http2.max_concurrent_requests_per_connection = GW_H2_STREAMS;
    g->h2o.http1.upgrade_to_http2 = g->cfg.http1_only ? 0 : 1;
    g->ssl = g->cfg.plain ? NULL : tls_setup(g->cfg.tls_cert, g->cfg.tls_key, g->cfg.http1_only);

    h2o_evloop_t *loop = lifetime.loop = h2o_evloop_create();
    h2o_context_init(&g->ctx, loop, &g->h2o);
    g->actx.ctx = &g->ctx;
    g->actx.hosts = g->h2o.hosts;
    g->actx.ssl_ctx = g->ssl;
    g->listen_fd = listen_on(g->cfg.listen);
    h2o_socket_t *lsock = lifetime.listener =
        h2o_evloop_socket_create(loop, g->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    lsock->data = g;
    h2o_socket_read_start(lsock, on_accept);

    tok_log_info("gwsim: listening on %s (%s), latency %u ms, fault rates 500=%.3f 429=%.3f, "
                 "max %u objects", g->cfg.listen, g->cfg.plain ? "cleartext HTTP/1.1"
                 : g->cfg.http1_only ? "TLS, ALPN http/1.1" : "TLS, ALPN h2 and http/1.1",
                 g->cfg.latency_ms, g->cfg.rate500, g->cfg.rate429, g->cfg.max_objects);
    if (g->cfg.ready_file != NULL)
        write_ready(g->cfg.ready_file);
    while (!stopping)
        h2o_evloop_run(loop, 1000);
    tok_log_info("gwsim: stopping");
    gw_wh_stop(&g->wh);
    store_clear(g);
    tok_buf_wipe(&g->stripe_key);
    tok_buf_wipe(&g->adyen_key);
    tok_buf_wipe(&g->scratch);
    tok_buf_wipe(&g->out);
    gw_record_wipe(&g->rec);
    sodium_memzero(g->mac_key, sizeof g->mac_key);
    return 0;
}
