/*
 * idempotency.h - the Idempotency-Key contract of every POST that moves money, and of
 * POST /v1/tokens (scoped to the API key, hashed without the CVC: tok_idem_key_scoped).
 *
 * The same key with the same request replays the first response (status and
 * body) for 24 hours; with another request it is refused (422
 * idempotency_key_reused); while the first is still running a duplicate gets
 * 409 idempotency_in_flight. The record is written (in_flight) in the same
 * transaction that starts the work and committed before any gateway call,
 * so two concurrent duplicates can never both reach a gateway.
 */
#ifndef TOKEND_IDEMPOTENCY_H
#define TOKEND_IDEMPOTENCY_H

#include "tokend/core/common.h"
#include "tokend/store/db.h"
#include "tokend/http/http.h"

#define TOK_IDEM_KEY_MAX 255
#define TOK_IDEM_STALE_SECONDS 300 /* an in_flight record older than this was abandoned */

enum tok_idem_state { TOK_IDEM_NONE = 0, TOK_IDEM_NEW, TOK_IDEM_REPLAY, TOK_IDEM_MISMATCH, TOK_IDEM_IN_FLIGHT };

struct tok_idem {
    bool present;
    char key[TOK_IDEM_KEY_MAX + 1];
    uint8_t hash[32];
    enum tok_idem_state state;
    int status;     /* REPLAY: the stored status */
    char *response; /* REPLAY: the stored body (malloc'd; tok_idem_wipe frees it) */
};

/**
 * Reads Idempotency-Key and hashes (keyed) the method, path and body. No
 * header: present = false, TOK_OK. TOK_ERR_INPUT when the key is empty, longer
 * than 255 bytes or not printable ASCII.
 */
TOK_MUST_CHECK tok_status tok_idem_from_request(struct tok_req *r, struct tok_idem *out);

/**
 * POST /v1/tokens' form (issue #16): reads Idempotency-Key as tok_idem_from_request does
 * (TOK_ERR_INPUT for the same malformed keys), scoped to one API key: the stored key is
 * "t:" and a keyed hash of scope (the key's id) and the client's key, so no other API key
 * of the tenant, a publishable one above all, ever reaches this record. The request hash
 * is left for tok_idem_hash_parts: the body holds the CVC, which must not be kept in any
 * form, hashed included (PCI DSS 3.3.1.2).
 */
TOK_MUST_CHECK tok_status tok_idem_key_scoped(struct tok_req *r, const char *scope,
                                              struct tok_idem *out);

/**
 * Sets idem->hash to a keyed hash of the method, the path and parts (each
 * length-prefixed): the caller's canonical, CVC-free form of its request. Borrowed parts;
 * the hash state is wiped. Does nothing when idem->present is false.
 */
TOK_MUST_CHECK tok_status tok_idem_hash_parts(struct tok_req *r, const struct tok_slice *parts,
                                              size_t nparts, struct tok_idem *idem);

/** In a job: forgets the key (the request stored nothing a retry must see). */
TOK_MUST_CHECK tok_status tok_idem_release(struct tok_db_conn *conn, const char *tenant_id,
                                           bool livemode, const struct tok_idem *idem);

/** In a job (tenant set): claims the key or reads what it holds; sets idem->state. */
TOK_MUST_CHECK tok_status tok_idem_begin(struct tok_db_conn *conn, const char *tenant_id,
                                         bool livemode, struct tok_idem *idem);

/** In a job: stores the final response for replays. No-op when the key was absent. */
TOK_MUST_CHECK tok_status tok_idem_finish(struct tok_db_conn *conn, const char *tenant_id,
                                          bool livemode, const struct tok_idem *idem, int status,
                                          struct tok_slice body);

/** Answers a request whose key was not NEW (replay, mismatch or in flight). */
void tok_idem_respond(struct tok_req *r, const struct tok_idem *idem);

void tok_idem_wipe(struct tok_idem *idem);

#endif
