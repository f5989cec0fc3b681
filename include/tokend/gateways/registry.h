/*
 * registry.h - the adapters tokend has, by name. The interface (gateway.h) knows no
 * adapter; each adapter knows only the interface; this table sits above them all.
 */
#ifndef TOKEND_GATEWAYS_REGISTRY_H
#define TOKEND_GATEWAYS_REGISTRY_H

#include "tokend/gateways/gateway.h"

/**
 * The sandbox adapter, in-process. Behaviour by test card number (the numbers
 * Stripe documents for its test mode):
 *   4000 0000 0000 0119  processing error at tokenisation (-> 502 gateway_error)
 *   4000 0000 0000 0002  charges are declined: card_declined / generic_decline
 *   4000 0000 0000 9995  charges are declined: card_declined / insufficient_funds
 *   4000 0000 0000 0069  charges are declined: expired_card
 *   4000 0000 0000 0127  charges are declined: incorrect_cvc
 *   anything else     tokenises and charges
 */
const struct tok_gateway_ops *tok_gateway_sandbox(void);

/** The Stripe adapter (test_only = false). */
const struct tok_gateway_ops *tok_gateway_stripe(void);

/** The Adyen adapter (test_only = false). */
const struct tok_gateway_ops *tok_gateway_adyen(void);

/** The adapter of that name ("sandbox", "stripe", "adyen"), or NULL. */
const struct tok_gateway_ops *tok_gateway_find(struct tok_slice name);

#endif
