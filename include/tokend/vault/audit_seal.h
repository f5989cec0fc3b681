/*
 * audit_seal.h - the audit log proves itself (issue #18, sql/017): block MACs under the
 * audit key and signed checkpoints written outside PostgreSQL.
 *
 * The chain of sql/011 is plain SHA-256 kept in the database it protects, so a superuser
 * can rewrite rows and recompute it. Two things close that:
 *
 *   Block MAC (stored in audit.blocks.mac): keyed BLAKE2b-256 under the audit MAC key,
 *     mac(n) = MAC("tokend:v1:audit-block" || be64 block || be64 first_id || be64 last_id
 *                  || hash(n) || mac(n-1)),  mac(0) = 32 zero bytes.
 *     hash(n) covers the block's row digests and the previous hash, so the MAC covers
 *     every row up to block n. Without the key nobody can make a MAC that verifies.
 *
 *   Checkpoint: one text line per sealed block, appended to a file (or standard output)
 *   that the operator ships off the database host:
 *     tokend-audit-checkpoint v1 block=N ids=A-B hash=<64 hex> mac=<64 hex>
 *       time=YYYY-MM-DDTHH:MM:SSZ pk=<64 hex> sig=<128 hex>
 *   (one line; sig is Ed25519 over every byte before " sig="). Anyone holding the public
 *   key checks the signature and compares hash with the chain recomputed from the rows.
 *
 * The reader and the writer of the line are both here.
 */
#ifndef TOKEND_AUDIT_SEAL_H
#define TOKEND_AUDIT_SEAL_H

#include "tokend/core/common.h"
#include "tokend/vault/keyring.h"

#include <libpq-fe.h>

#define TOK_AUDIT_CP_LINE_MAX 512 /* a checkpoint line is ~420 bytes */
#define TOK_AUDIT_SEAL_BATCH 500  /* blocks sealed per transaction */
#define TOK_AUDIT_SEAL_WHY_MAX 256

/** One checkpoint, as signed. */
struct tok_audit_checkpoint {
    int64_t block, first_id, last_id;
    uint8_t hash[TOK_KEYRING_HASH_LEN];
    uint8_t mac[TOK_KEYRING_HASH_LEN];
    int64_t time; /* seconds since the epoch, UTC */
    uint8_t pk[TOK_AUDIT_PK_LEN];
};

/**
 * mac(n) of a block (file comment). hash and prev_mac are 32 bytes each (borrowed).
 * TOK_ERR_INPUT: a slice of another length. TOK_ERR_INTERNAL, TOK_ERR_CRYPTO.
 */
TOK_MUST_CHECK tok_status tok_audit_block_mac(const struct tok_audit_key *ak, int64_t block,
                                              int64_t first_id, int64_t last_id,
                                              struct tok_slice hash, struct tok_slice prev_mac,
                                              uint8_t out[TOK_KEYRING_HASH_LEN]);

/**
 * Appends cp's signed line (with '\n') to out; cp->pk is ignored (ak's public key is
 * written). TOK_ERR_BOUNDS: out lacks room (TOK_AUDIT_CP_LINE_MAX is enough).
 */
TOK_MUST_CHECK tok_status tok_audit_checkpoint_format(const struct tok_audit_key *ak,
                                                      const struct tok_audit_checkpoint *cp,
                                                      struct tok_buf *out);

/**
 * Parses one line (without or with its '\n') into *cp and checks its signature against the
 * public key the line names. TOK_ERR_INPUT: not a checkpoint line of this shape.
 * TOK_ERR_CRYPTO: the signature does not verify.
 */
TOK_MUST_CHECK tok_status tok_audit_checkpoint_parse(struct tok_slice line,
                                                     struct tok_audit_checkpoint *cp);

struct tok_audit_sealer;

/**
 * A sealer over ak (borrowed: outlives the sealer) writing checkpoints to path, opened
 * O_APPEND (created mode 0640), or to standard output when path is "-". path NULL or ""
 * seals without checkpoints. TOK_ERR_IO with *why set. TOK_ERR_NOMEM.
 */
TOK_MUST_CHECK tok_status tok_audit_sealer_new(const struct tok_audit_key *ak, const char *path,
                                               struct tok_audit_sealer **out, char *why,
                                               size_t why_len);

/**
 * Seals up to TOK_AUDIT_SEAL_BATCH of the oldest unsealed blocks on pg (one transaction,
 * under an advisory lock so two sealers never write the same block's checkpoint twice; if
 * another holds it, does nothing), then appends and fsyncs their checkpoint lines.
 * *sealed (may be NULL) gets how many. TOK_ERR_DB, TOK_ERR_IO (checkpoint sink), TOK_ERR_CRYPTO.
 */
TOK_MUST_CHECK tok_status tok_audit_sealer_pass(struct tok_audit_sealer *s, PGconn *pg,
                                                int *sealed);

struct tok_metrics_out;
/**
 * The /metrics collector (metrics.h), ctx the sealer: blocks sealed and sealing passes that
 * failed (a failure leaves blocks unsealed: `tokenctl audit verify` reports them).
 */
void tok_audit_sealer_collect(void *ctx, struct tok_metrics_out *o);

/** Closes the sink (unless stdout) and frees *s. NULL is ignored. */
void tok_audit_sealer_free(struct tok_audit_sealer **s);

#endif
