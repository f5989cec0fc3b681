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

#include "tokend/common.h"

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
};

struct tok_gateway_call;
typedef void (*tok_gateway_done_fn)(struct tok_gateway_call *call);

/** One call to an adapter; the caller owns it and keeps card valid until done runs. */
struct tok_gateway_call {
    const struct tok_card_data *card;
    bool livemode;
    enum tok_gateway_outcome outcome;
    const char *code; /* stable tokend code when not OK: "processing_error", "card_declined"... */
    char ref[TOK_GATEWAY_REF_MAX]; /* the gateway's payment-method reference when OK */
    tok_gateway_done_fn done;
    void *data; /* the caller's */
};

struct tok_gateway_ops {
    const char *name; /* "sandbox", "stripe", "adyen" */
    bool test_only;   /* may only serve test-mode keys */
    /** Tokenises call->card; fills outcome, code and ref, then calls call->done. */
    void (*tokenise)(const struct tok_gateway_ops *self, struct tok_gateway_call *call);
};

/**
 * The sandbox adapter. Behaviour by test card number (the same numbers
 * Stripe documents for its test mode):
 *   4000000000000119  processing error at tokenisation (-> 502 gateway_error)
 *   4000000000000002  tokenises; a charge on it is declined (card_declined)
 *   anything else      tokenises
 */
const struct tok_gateway_ops *tok_gateway_sandbox(void);

/** The adapter of that name, or NULL. */
const struct tok_gateway_ops *tok_gateway_find(struct tok_slice name);

#endif
