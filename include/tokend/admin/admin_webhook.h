/*
 * admin_webhook.h - tokenctl's webhook commands (issue #6).
 */
#ifndef TOKEND_ADMIN_WEBHOOK_H
#define TOKEND_ADMIN_WEBHOOK_H

#include "tokend/admin/admin.h"

/**
 * `webhook add --tenant T --url URL [--live|--test]`: stores an endpoint with a new
 * signing secret sealed under the tenant's data key and prints the secret (once) on
 * stdout; the endpoint id goes to stderr. http:// is accepted only for loopback hosts
 * (tests; tokend delivers there only with --webhook-allow-http-loopback).
 * `webhook list [--tenant T]`: endpoints, never secrets.
 * `webhook replay EVENT`: every delivery of the event goes back to pending, due now,
 * with a fresh 3-day deadline (endpoints added since get one too).
 * `webhook disable|enable --tenant T ENDPOINT`: sets or clears disabled_at (audited).
 * A disabled endpoint gets no delivery and no new event; its pending deliveries wait
 * (their deadline keeps running) and are tried again once it is enabled.
 * TOK_ERR_INPUT: bad command line or URL. TOK_ERR_NOTFOUND: no such tenant, event or
 * endpoint.
 * TOK_ERR_IO, TOK_ERR_DB, TOK_ERR_CRYPTO, TOK_ERR_NOMEM, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_admin_webhook(const struct tok_admin *a, int argc, char **argv);

#endif
