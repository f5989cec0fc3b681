/*
 * gateway.h - the adapter interface every payment gateway implements.
 *
 * An adapter receives card data once, at tokenisation, and answers with its
 * own payment-method reference; later calls (charges, issue #5) use only
 * that reference. Calls complete through a callback so that adapters that
 * talk to a remote gateway can run asynchronously; the sandbox adapter
 * completes at once, in-process.
 */
#ifndef TOKEND_GATEWAY_H
#define TOKEND_GATEWAY_H

#include "tokend/core/common.h"

#define TOK_GATEWAY_REF_MAX 128
#define TOK_GATEWAY_NAME_MAX 32

/** Card data lent to an adapter for the duration of one call (secret, borrowed). */
struct tok_card_data {
    struct tok_slice pan; /* normalised digits */
    struct tok_slice cvc; /* may be empty */
    int exp_month, exp_year;
    struct tok_slice name; /* may be empty */
};

enum tok_gateway_outcome {
    TOK_GW_OK = 0,
    TOK_GW_DECLINED,    /* the gateway refused the card: final, no failover */
    TOK_GW_ERROR,       /* the gateway failed to process (processing_error) */
    TOK_GW_UNAVAILABLE, /* timeout, 5xx, connection failure: another gateway may be tried */
    TOK_GW_ACTION,      /* CHARGE, COMPLETE: the issuer wants the customer to authenticate
                           (3-D Secure): ref is the gateway's payment, action_url the page the
                           customer is sent to; COMPLETE decides it once they are back */
};

enum tok_gateway_op {
    TOK_GW_TOKENISE, /* card -> payment-method reference */
    TOK_GW_CHARGE,   /* payment-method reference + amount -> charge reference */
    TOK_GW_CAPTURE,  /* charge reference + amount */
    TOK_GW_VOID,     /* charge reference */
    TOK_GW_REFUND,   /* charge reference + amount -> refund reference */
    TOK_GW_DETACH,   /* payment-method reference: the gateway forgets the stored card
                        (redaction: Stripe detaches the PaymentMethod, Adyen deletes the
                        stored payment method) */
    TOK_GW_COMPLETE, /* charge reference (+ return_data): the outcome of a payment that
                        waited for the customer (Stripe retrieves the PaymentIntent; Adyen
                        sends the redirectResult to /payments/details) */
};

#define TOK_CURRENCY_LEN 3
#define TOK_GATEWAY_IDEM_MAX 96
#define TOK_GATEWAY_CODE_MAX 48
#define TOK_GATEWAY_URL_MAX 1024 /* return_url and action_url */
#define TOK_GATEWAY_RETURN_DATA_MAX 4096 /* Adyen's redirectResult */

/* the customer's browser (EMV 3-D Secure 2 browser fields): kept small, so that a charge's
 * request, return_url included, fits the gateway request buffer (TOK_HTTPC_BODY_MAX) */
#define TOK_BROWSER_UA_MAX 512
#define TOK_BROWSER_ACCEPT_MAX 256
#define TOK_BROWSER_LANGUAGE_MAX 35 /* a BCP 47 tag (RFC 5646 4.4.1: 35 is enough) */
#define TOK_BROWSER_IP_MAX 45       /* the longest text form of an IPv6 address */
/* return_url + user_agent + accept_header, each counted as JSON writes it ('"' and '\\' take
 * two bytes): at most this, the largest charge request fits (check_gateway_adyen) */
#define TOK_GATEWAY_CUSTOMER_TEXT_MAX 800

/**
 * The browser of a customer present at a charge, as 3-D Secure 2 needs it described (Adyen
 * browserInfo, shopperIP). Not secret. Validated by the caller: printable ASCII strings,
 * color_depth one of 1 4 8 15 16 24 30 32 48, screens 1..999999, time_zone_offset
 * -840..720 (minutes, as the browser's getTimezoneOffset gives it).
 */
struct tok_browser_info {
    char user_agent[TOK_BROWSER_UA_MAX + 1];
    char accept_header[TOK_BROWSER_ACCEPT_MAX + 1];
    char language[TOK_BROWSER_LANGUAGE_MAX + 1];
    int color_depth, screen_height, screen_width, time_zone_offset;
    bool java_enabled;
    char ip_address[TOK_BROWSER_IP_MAX + 1]; /* "" when not given */
};

struct tok_gateway_call;
typedef void (*tok_gateway_done_fn)(struct tok_gateway_call *call);
struct tok_httpc;

/**
 * A tenant's account at one gateway, as configured with `tokenctl gateway add`.
 * Secrets (api_key) live in sodium_malloc'd memory owned by the principal cache.
 */
struct tok_gateway_account {
    char id[48];                        /* "gw_..." ("sandbox" for the implicit sandbox) */
    const struct tok_gateway_ops *ops;  /* the adapter for its kind */
    int priority;                       /* lower first */
    char base_url[256];                 /* "https://api.stripe.com", or the simulator's */
    char *api_key;                      /* secret: Stripe secret key / Adyen X-API-Key */
    char merchant_account[128];         /* Adyen merchantAccount */
};

struct tok_gateway_env; /* httpc.h */
struct tok_gateway_stats; /* gateway_metrics.h */

/**
 * One call to an adapter. The caller owns it and keeps every input valid until
 * `done` runs (at once for the sandbox, later for remote gateways).
 */
struct tok_gateway_call {
    enum tok_gateway_op op;
    bool livemode;
    const struct tok_gateway_account *account; /* NULL for the implicit sandbox */
    const struct tok_gateway_env *env;
    /* inputs */
    const struct tok_card_data *card; /* TOKENISE */
    const char *pm_ref;               /* CHARGE: the payment-method reference (secret) */
    const char *charge_ref;           /* CAPTURE, VOID, REFUND */
    int64_t amount;                   /* minor units */
    char currency[TOK_CURRENCY_LEN + 1];
    bool capture;                               /* CHARGE: capture at once */
    bool off_session; /* CHARGE: merchant-initiated, no customer present to authenticate
                         (Stripe off_session=true; Adyen ContAuth + UnscheduledCardOnFile).
                         false: the customer is present (Stripe setup_future_usage;
                         Adyen Ecommerce + CardOnFile) */
    const char *return_url;  /* CHARGE with the customer present: where the gateway sends the
                                customer back after authenticating (NULL: nowhere, so an
                                authentication demand is a decline) */
    const struct tok_browser_info *browser; /* CHARGE with the customer present: the browser
                                               (NULL when the app described none; Stripe
                                               ignores it) */
    const char *return_data; /* COMPLETE: Adyen's redirectResult (NULL for Stripe) */
    char idempotency_key[TOK_GATEWAY_IDEM_MAX]; /* sent as the gateway's own key */
    /* outputs */
    enum tok_gateway_outcome outcome;
    const char *code; /* stable tokend code when not OK: "processing_error", "card_declined"... */
    char decline_code[TOK_GATEWAY_CODE_MAX];
    char ref[TOK_GATEWAY_REF_MAX]; /* the new reference (payment method, charge or refund) */
    bool captured;                 /* CHARGE: the gateway captured the amount */
    char action_url[TOK_GATEWAY_URL_MAX]; /* ACTION: where to send the customer */
    tok_gateway_done_fn done;
    void *data; /* the caller's */
    /* the adapter's own, for operations that take more than one request (Stripe's
     * TOKENISE: PaymentMethod, then Customer); callers leave them zeroed */
    unsigned step;
    tok_gateway_done_fn step_done;
    char step_ref[TOK_GATEWAY_REF_MAX];
    /* the meter's own (gateway_metrics.h: tok_gateway_submit); callers leave them zeroed */
    struct tok_gateway_stats *meter_stats;
    const struct tok_gateway_ops *meter_ops;
    uint64_t meter_t0_us;
    tok_gateway_done_fn meter_done;
};

struct tok_gateway_ops {
    const char *name; /* "sandbox", "stripe", "adyen" */
    bool test_only;   /* may only serve test-mode keys */
    /** Performs call->op; fills the outputs, then calls call->done exactly once. */
    void (*submit)(const struct tok_gateway_ops *self, struct tok_gateway_call *call);
};

#endif
