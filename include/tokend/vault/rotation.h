/*
 * rotation.h - what tokend needs of key rotation (issue #18; SECURITY.md, "Key rotation").
 * The rotations themselves are tokenctl's (admin/admin_rotate.c); tokend only holds the
 * keys of two versions at a time (keyring.h, auth.h) and checks its master key files at
 * start.
 */
#ifndef TOKEND_ROTATION_H
#define TOKEND_ROTATION_H

#include "tokend/core/common.h"

struct tok_keyring;

#define TOK_ROTATION_WHY_MAX 256

/**
 * Opens wrapped key pairs of every master-key version the database still uses (up to 50 of
 * each, vault.master_key_probe, sql/019) with kr, on a short connection of its own, until
 * one of each version opens: a master key file that is wrong, or a missing
 * --master-key-previous while a master rotation is half done, is refused before tokend
 * serves. One tenant wrapped by another key does not stop the others' service. why (why_len bytes) gets one line naming the
 * version that does not open; never key bytes.
 * TOK_ERR_CRYPTO: a version does not open. TOK_ERR_DB: no connection or no answer.
 */
TOK_MUST_CHECK tok_status tok_rotation_probe_master(const char *conninfo,
                                                    const struct tok_keyring *kr, char *why,
                                                    size_t why_len);

#endif
