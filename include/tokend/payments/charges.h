/*
 * charges.h - charges and refunds against the gateway references a token
 * holds: POST /v1/charges, GET /v1/charges/{id}, POST /v1/charges/{id}/capture,
 * POST /v1/charges/{id}/void, POST /v1/refunds, GET /v1/refunds/{id}.
 *
 * A charge goes to the token's gateways in order; when one is unavailable
 * (timeout, 5xx, connection failure - never a decline) the next is tried,
 * and every attempt is recorded. Every POST honours Idempotency-Key, and the
 * gateway call carries a key derived from the charge (or refund) id, so a
 * retry never charges twice.
 */
#ifndef TOKEND_CHARGES_H
#define TOKEND_CHARGES_H

#include "tokend/http/http.h"

#define TOK_DESCRIPTION_MAX 500
#define TOK_INVOICE_REF_MAX 200
#define TOK_CHARGE_GATEWAYS_MAX 4

void tok_charges_create(struct tok_req *r);
void tok_charges_get(struct tok_req *r);
void tok_charges_capture(struct tok_req *r);
void tok_charges_void(struct tok_req *r);
/**
 * POST /v1/charges/{id}/complete: the outcome of a charge waiting in requires_action, asked of
 * its gateway once the customer is back from authenticating (body: {"redirect_result"} for
 * Adyen, nothing for Stripe). 200 with the charge, decided or still waiting; a charge already
 * decided (by an earlier call or a webhook) is answered as it is, with no gateway call.
 */
void tok_charges_complete(struct tok_req *r);
void tok_refunds_create(struct tok_req *r);
void tok_refunds_get(struct tok_req *r);

#endif
