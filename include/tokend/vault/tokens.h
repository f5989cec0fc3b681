/*
 * tokens.h - POST /v1/tokens, GET /v1/tokens/{id}, DELETE /v1/tokens/{id}.
 *
 * The card arrives once, is validated, handed to the tenant's gateway(s),
 * and wiped; what is stored is irreversible (see SECURITY.md).
 */
#ifndef TOKEND_TOKENS_H
#define TOKEND_TOKENS_H

#include "tokend/http/http.h"

#define TOK_METADATA_KEYS_MAX 20
#define TOK_METADATA_KEY_MAX 40
#define TOK_METADATA_VALUE_MAX 500
#define TOK_TOKEN_JSON_MAX (32u * 1024u)
#define TOK_PAN_SHAPED_TRIES 4

/**
 * POST /v1/tokens: tokens:write, or a publishable key's tokens:create. A publishable key
 * cannot de-duplicate (422 deduplicate_not_allowed) and gets the public view of the new
 * token (no fingerprint, bin, metadata, gateways); a secret key's de-duplication hits are
 * bounded by the app's dedup guard (dedup_guard.h: 429 dedup_limit_exceeded).
 */
void tok_tokens_create(struct tok_req *r);
/** GET /v1/tokens/{id}: tokens:read. */
void tok_tokens_get(struct tok_req *r);
/** DELETE /v1/tokens/{id}: tokens:write (never a publishable key). */
void tok_tokens_redact(struct tok_req *r);

/**
 * Parses an RFC 3339 timestamp ("2030-01-02T03:04:05Z", fractions and
 * offsets allowed) into seconds since the epoch. TOK_ERR_INPUT otherwise.
 */
TOK_MUST_CHECK tok_status tok_rfc3339_parse(struct tok_slice s, int64_t *out);

/** True when s holds a run of 12-19 digits (spaces/dashes allowed) that passes Luhn. */
bool tok_contains_pan(struct tok_slice s);

#endif
