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

void tok_tokens_create(struct tok_req *r);
void tok_tokens_get(struct tok_req *r);
void tok_tokens_redact(struct tok_req *r);

/**
 * Parses an RFC 3339 timestamp ("2030-01-02T03:04:05Z", fractions and
 * offsets allowed) into seconds since the epoch. TOK_ERR_INPUT otherwise.
 */
TOK_MUST_CHECK tok_status tok_rfc3339_parse(struct tok_slice s, int64_t *out);

/** True when s holds a run of 12-19 digits (spaces/dashes allowed) that passes Luhn. */
bool tok_contains_pan(struct tok_slice s);

#endif
