/*
 * keyring.h - the only module that sees key bytes (STYLE.md section 1).
 *
 * Hierarchy (DESIGN.md, "Key hierarchy"; SECURITY.md, "Key rotation"):
 *   master key (KEK, 32 bytes, from a file; or an AES-256 key that stays in a PKCS#11
 *     token: the keyring reaches it only through a provider, master_key.h), one per
 *     master-key version; during a rotation tokend also holds the previous version's
 *     provider (tok_keyring_load_previous, a file) and a wrapped key opens under whichever
 *     of the two made it (the AEAD tag tells)
 *   sub-key root (32 bytes), the provider's: for a file, the first master key itself; a
 *     later version's key file (tokenctl keys new-master) carries it after its KEK (128 hex
 *     characters), so API-key hashes and reference look-ups, which cannot be recomputed,
 *     survive rotation; for PKCS#11, computed in the token from its key (master_key.h)
 *     -> sub-keys by crypto_kdf_derive_from_key, context "tokend__":
 *          id 1: API-key hashing key, id 2: audit MAC key, id 3: reference-lookup root
 *     -> per tenant, BLAKE2b(reference-lookup root, "tokend:v1:ref_lookup:" tenant_id):
 *          the tenant's reference-lookup key (the same for every key version)
 *     -> per tenant and version, two random 32-byte keys stored wrapped by the KEK:
 *          DEK  (seals gateway references and credentials)
 *          FPK  (fingerprints PANs; guarded like the KEK: with last 4 and BIN
 *                stored, a stolen FPK lets an attacker brute-force the PAN)
 *
 * Wrapped key format (TOK_KEYRING_WRAPPED_LEN = 72 bytes; the file provider's, the PKCS#11
 * one is in master_key.h):
 *   nonce (24) || XChaCha20-Poly1305-IETF(KEK, key (32)) || tag (16)
 *   associated data "tokend:v1:dek:<tenant_id>:<version>" (or ":fpk:"), so a wrapped
 *   key moved to another tenant, version or role does not open.
 *
 * Sealed value format (version 1), TOK_SEALED_OVERHEAD = 41 bytes plus the plaintext:
 *   0x01 || nonce (24) || XChaCha20-Poly1305-IETF(DEK, plaintext) || tag (16)
 *   associated data, where L(x) is x's length as 4 bytes big-endian followed by x:
 *     L("tokend:aead") || format byte || key version (4 bytes, big-endian) ||
 *     L(tenant_id) || L(table) || L(column) || L(row_id)
 *   The format byte is inside the associated data too, so it cannot be changed.
 *   The key version is not in the sealed value: store it beside it
 *   (tok_tenant_keys_version) and open with that version's keys.
 *
 * Key objects live in sodium_malloc memory (locked, guard pages, not dumped) and are
 * read-only after creation, so one object may be used from any number of threads.
 */
#ifndef TOKEND_KEYRING_H
#define TOKEND_KEYRING_H

#include "tokend/core/common.h"
#include "tokend/core/rand.h" /* tok_random_id, TOK_RANDOM_ID_* */

#define TOK_KEYRING_KEY_LEN 32      /* KEK, DEK, FPK and sub-keys */
#define TOK_KEYRING_WHY_MAX 512     /* longest message put in *why */
#define TOK_KEYRING_WRAPPED_LEN 72  /* nonce 24 + key 32 + tag 16 */
#define TOK_KEYRING_ID_MAX 128      /* tenant id, table, column, row id */
#define TOK_KEYRING_HASH_LEN 32     /* API-key hash, audit MAC, fingerprint */
#define TOK_KEYRING_HASH_IN_MAX 256 /* longest API key secret accepted for hashing */

#define TOK_SEALED_FORMAT_V1 0x01
#define TOK_SEALED_NONCE_LEN 24
#define TOK_SEALED_TAG_LEN 16
#define TOK_SEALED_OVERHEAD (1 + TOK_SEALED_NONCE_LEN + TOK_SEALED_TAG_LEN)
#define TOK_SEALED_PLAINTEXT_MAX 16384
#define TOK_SEALED_MAX (TOK_SEALED_PLAINTEXT_MAX + TOK_SEALED_OVERHEAD)

#define TOK_FINGERPRINT_LEN 32
#define TOK_FINGERPRINT_DIGITS_MIN 8 /* ISO/IEC 7812 allows 8..19 digit PANs */
#define TOK_FINGERPRINT_DIGITS_MAX 19


#define TOK_API_KEY_PREFIX_LEN 8 /* "sk_live_", "sk_test_", "pk_live_", "pk_test_" */
#define TOK_API_KEY_SECRET_BYTES 32
#define TOK_API_KEY_BODY_CHARS 43 /* base62 width of 32 bytes */
#define TOK_API_KEY_LEN (TOK_API_KEY_PREFIX_LEN + TOK_API_KEY_BODY_CHARS)
#define TOK_API_KEY_MAX TOK_API_KEY_LEN /* anything longer is refused before parsing */

struct tok_keyring;
struct tok_tenant_keys;

/** What a sealed value is bound to. All four fields: 1..TOK_KEYRING_ID_MAX bytes, borrowed. */
struct tok_aad {
    const char *tenant_id;
    const char *table;
    const char *column;
    const char *row_id;
};

/**
 * Loads the master key from path: the file must be a regular file with no group or other
 * permission bits, holding exactly 32 raw bytes or 64 hex characters (optionally followed
 * by one '\n'), and not all zeros. The read buffer is wiped before returning.
 * *out takes an owned keyring (free with tok_keyring_free). *why (may be NULL) gets a
 * message for the operator, never key bytes; it is static or thread-local, valid until the
 * next call on the same thread.
 * TOK_ERR_IO: missing or unreadable file. TOK_ERR_INPUT: not a regular file, mode too open,
 * wrong length or content. TOK_ERR_NOMEM (also when the key memory cannot be locked),
 * TOK_ERR_CRYPTO (sodium_init failed),
 * TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_keyring_load_file(const char *path, struct tok_keyring **out,
                                                const char **why);

/*
 * A master key file may also hold 128 hex characters (optionally '\n'): the KEK, then the
 * sub-key root it carries (written by tok_keyring_next_master). Never 64 raw bytes: that is
 * the length of a hex key with a typo, which must be refused, not read as two other keys.
 */

/**
 * Adds the previous master-key version from path (same file rules; it becomes a second file
 * provider) to kr, for the time of a master rotation: tok_keyring_add_previous (master_key.h,
 * which also takes a key in a PKCS#11 token) for a file. TOK_ERR_IO: missing or unreadable.
 * TOK_ERR_INPUT: bad file, the same KEK as the current one, or another sub-key root (not of
 * this key line). TOK_ERR_NOMEM, TOK_ERR_INTERNAL. *why as tok_keyring_load_file.
 */
TOK_MUST_CHECK tok_status tok_keyring_load_previous(struct tok_keyring *kr, const char *path,
                                                    const char **why);

/** Whether a and b carry the same sub-key root (constant time). false on NULL. */
bool tok_keyring_same_line(const struct tok_keyring *a, const struct tok_keyring *b);

/** Whether a and b have the same current KEK: two files' bytes compared in constant time;
 * when either is in a token (its bytes never leave it), a random key wrapped under a's that
 * opens under b's. false on NULL. */
bool tok_keyring_same_kek(const struct tok_keyring *a, const struct tok_keyring *b);

/** "file" or "pkcs11": where kr's current KEK is. "none" for NULL. */
const char *tok_keyring_kind(const struct tok_keyring *kr);

/** "file" or "pkcs11": where the previous version's KEK is during a master rotation; "none"
 * when kr holds none (or is NULL). */
const char *tok_keyring_previous_kind(const struct tok_keyring *kr);

/**
 * Appends the next master key file's content to hex_out (a secret buffer): a fresh random
 * KEK and kr's sub-key root, 128 hex characters and a newline.
 * TOK_ERR_BOUNDS: less than 130 bytes of room. TOK_ERR_NOMEM, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_keyring_next_master(const struct tok_keyring *kr,
                                                  struct tok_buf *hex_out);

/**
 * Re-wraps a tenant's DEK and FPK of (tenant_id, version) under to's current KEK and appends
 * them (TOK_KEYRING_WRAPPED_LEN bytes each) to dek_out and fpk_out. They are opened with from
 * (either of its KEKs) or, when a rotation stopped half-way already re-wrapped them, with to.
 * The keys never leave this module. Nothing is appended on failure.
 * TOK_ERR_CRYPTO: they open under neither. TOK_ERR_INPUT, TOK_ERR_BOUNDS, TOK_ERR_NOMEM.
 */
TOK_MUST_CHECK tok_status tok_keyring_rewrap(const struct tok_keyring *from,
                                             const struct tok_keyring *to, const char *tenant_id,
                                             uint32_t version, struct tok_slice wrapped_dek,
                                             struct tok_slice wrapped_fpk,
                                             struct tok_buf *dek_out, struct tok_buf *fpk_out);

/**
 * The next version of old's tenant keys: a fresh random DEK and, unless new_fpk, old's FPK
 * (fingerprints stay equal, so de-duplication keeps working); with new_fpk a fresh FPK too
 * (fingerprints of older tokens then match nothing new). Both wrapped by kr's KEK for
 * (old's tenant, version) and appended as tok_keyring_tenant_keys_new does.
 * TOK_ERR_INPUT: version not above old's. TOK_ERR_BOUNDS, TOK_ERR_NOMEM, TOK_ERR_CRYPTO.
 */
TOK_MUST_CHECK tok_status tok_keyring_tenant_keys_next(const struct tok_keyring *kr,
                                                       const struct tok_tenant_keys *old,
                                                       uint32_t version, bool new_fpk,
                                                       struct tok_buf *wrapped_dek_out,
                                                       struct tok_buf *wrapped_fpk_out);

/**
 * A keyring over a copy of key (borrowed; the caller wipes its own copy). For tests and
 * tools. TOK_ERR_NOMEM, TOK_ERR_CRYPTO, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_keyring_from_bytes(const uint8_t key[TOK_KEYRING_KEY_LEN],
                                                 struct tok_keyring **out);

/** Wipes and releases *kr, sets it to NULL. NULL or *kr == NULL does nothing. */
void tok_keyring_free(struct tok_keyring **kr);

/**
 * Keyed BLAKE2b-256 of an API key secret (the whole "sk_live_..." string) under the
 * API-key hashing sub-key: what the database stores and looks up.
 * TOK_ERR_INPUT: secret empty or longer than TOK_KEYRING_HASH_IN_MAX.
 */
TOK_MUST_CHECK tok_status tok_keyring_api_key_hash(const struct tok_keyring *kr,
                                                   struct tok_slice secret,
                                                   uint8_t out[TOK_KEYRING_HASH_LEN]);

/**
 * Keyed BLAKE2b-256 of msg under the audit sub-key (for the audit hash chain).
 * msg may be empty. TOK_ERR_INTERNAL on NULL arguments.
 */
TOK_MUST_CHECK tok_status tok_keyring_audit_mac(const struct tok_keyring *kr,
                                                struct tok_slice msg,
                                                uint8_t out[TOK_KEYRING_HASH_LEN]);

/**
 * Makes a new random DEK and FPK for (tenant_id, version) and appends each, wrapped by the
 * KEK (TOK_KEYRING_WRAPPED_LEN bytes), to wrapped_dek_out and wrapped_fpk_out. The keys
 * themselves are wiped: open the wrapped forms with tok_keyring_tenant_keys_open.
 * tenant_id: 1..TOK_KEYRING_ID_MAX printable ASCII bytes, no space or ':'. version >= 1.
 * Nothing is appended on failure.
 * TOK_ERR_INPUT: bad tenant id or version 0. TOK_ERR_BOUNDS: an output lacks room.
 */
TOK_MUST_CHECK tok_status tok_keyring_tenant_keys_new(const struct tok_keyring *kr,
                                                      const char *tenant_id, uint32_t version,
                                                      struct tok_buf *wrapped_dek_out,
                                                      struct tok_buf *wrapped_fpk_out);

/**
 * Unwraps a tenant's DEK and FPK into *out (owned; free with tok_tenant_keys_free). Each
 * object locks one page (sodium_malloc + mlock): a cache of them must fit RLIMIT_MEMLOCK.
 * TOK_ERR_INPUT: bad tenant id, version 0, or a wrapped key that is not
 * TOK_KEYRING_WRAPPED_LEN bytes. TOK_ERR_CRYPTO: a wrapped key does not open under this
 * KEK for this tenant, version and role. TOK_ERR_NOMEM (also when mlock fails),
 * TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_keyring_tenant_keys_open(const struct tok_keyring *kr,
                                                       const char *tenant_id, uint32_t version,
                                                       struct tok_slice wrapped_dek,
                                                       struct tok_slice wrapped_fpk,
                                                       struct tok_tenant_keys **out);

/** Wipes and releases *tk, sets it to NULL. NULL or *tk == NULL does nothing. */
void tok_tenant_keys_free(struct tok_tenant_keys **tk);

/** The key version tk was opened for (store it beside every sealed value). */
uint32_t tok_tenant_keys_version(const struct tok_tenant_keys *tk);

/**
 * Seals plaintext (0..TOK_SEALED_PLAINTEXT_MAX bytes) for the place described by aad and
 * appends the sealed value (format in the file comment, plaintext.len + TOK_SEALED_OVERHEAD
 * bytes) to out. Nothing is appended on failure.
 * TOK_ERR_INPUT: an aad field empty, NULL or too long; aad.tenant_id is not tk's tenant;
 * plaintext longer than TOK_SEALED_PLAINTEXT_MAX. TOK_ERR_BOUNDS: out lacks room.
 */
TOK_MUST_CHECK tok_status tok_tenant_keys_seal(const struct tok_tenant_keys *tk, struct tok_aad aad,
                                               struct tok_slice plaintext, struct tok_buf *out);

/**
 * Opens a sealed value and appends the plaintext to out (use a secret buffer: plaintexts
 * are gateway references and credentials). Nothing is appended on failure.
 * TOK_ERR_INPUT: sealed shorter than TOK_SEALED_OVERHEAD (0, 1, 24 and 40 bytes are all
 * refused here, before any cryptography), longer than TOK_SEALED_MAX, an unknown format
 * byte, or aad fields as tok_tenant_keys_seal. TOK_ERR_CRYPTO: the tag does not verify
 * (tampered, or sealed for another tenant, table, column, row, key or key version).
 * TOK_ERR_BOUNDS: out lacks room for the plaintext.
 */
TOK_MUST_CHECK tok_status tok_tenant_keys_open(const struct tok_tenant_keys *tk, struct tok_aad aad,
                                               struct tok_slice sealed, struct tok_buf *out);

/**
 * Keyed BLAKE2b-256 of the normalised PAN (ASCII digits only, TOK_FINGERPRINT_DIGITS_MIN..MAX
 * of them) under the tenant's FPK: equal within a tenant, unrelated across tenants.
 * Hex it with tok_hex_encode (encoding.h) for display.
 * TOK_ERR_INPUT: wrong length or a non-digit.
 */
TOK_MUST_CHECK tok_status tok_tenant_keys_fingerprint(const struct tok_tenant_keys *tk,
                                                      struct tok_slice digits,
                                                      uint8_t out[TOK_FINGERPRINT_LEN]);

/**
 * Keyed BLAKE2b-256 of a gateway's own reference (a payment-method id such as "pm_...")
 * under the tenant's reference-lookup key: what vault.gateway_refs.ref_lookup stores, so
 * a gateway event can find its token without unsealing references. Equal within a tenant
 * whatever the key version tk was opened for; unrelated across tenants.
 * TOK_ERR_INPUT: ref empty or longer than TOK_KEYRING_HASH_IN_MAX.
 */
TOK_MUST_CHECK tok_status tok_tenant_keys_ref_lookup(const struct tok_tenant_keys *tk,
                                                     struct tok_slice ref,
                                                     uint8_t out[TOK_KEYRING_HASH_LEN]);

/**
 * Generates an API key secret: "sk_" or "pk_" (publishable), "live_" or "test_", then 43
 * base62 characters of 256 random bits (TOK_API_KEY_LEN bytes in all, no NUL counted).
 * If secret_out->data is NULL, a secret buffer of TOK_API_KEY_LEN + 1 bytes is allocated
 * (owned by the caller: tok_buf_wipe); otherwise the key is appended to secret_out, which
 * should be a secret buffer. Nothing is appended on failure.
 * TOK_ERR_BOUNDS: secret_out lacks room. TOK_ERR_NOMEM.
 */
TOK_MUST_CHECK tok_status tok_api_key_generate(bool publishable, bool live,
                                               struct tok_buf *secret_out);

/**
 * Checks that key has exactly the shape tok_api_key_generate makes and reports its kind.
 * Outputs are set only on TOK_OK. TOK_ERR_INPUT: anything else (empty, longer than
 * TOK_API_KEY_MAX, unknown prefix, wrong length, a non-base62 byte, a value above 2^256).
 */
TOK_MUST_CHECK tok_status tok_api_key_parse_prefix(struct tok_slice key, bool *publishable,
                                                   bool *live);

/* ---- the audit key (issue #18) ------------------------------------------------------------
 *
 * A second 32-byte secret, from its own file (--audit-key-file), NOT derived from the master
 * key: the audit log must stay provable when the master key is rotated (a key derived from
 * it would change with every master version, and old blocks would need every old master key
 * to be checked) and when the master key moves into an HSM (its bytes are then never here
 * to derive from). Two keys come from it by crypto_kdf_derive_from_key, context "tokaudit":
 *   id 1: the block MAC key (keyed BLAKE2b-256 over each block, chained; see audit_seal.h)
 *   id 2: the seed of the Ed25519 key pair that signs checkpoints
 * The public key (tok_audit_key_public) is not secret: give it to whoever checks
 * checkpoints without holding the audit key.
 */
#define TOK_AUDIT_SIG_LEN 64 /* crypto_sign_BYTES */
#define TOK_AUDIT_PK_LEN 32  /* crypto_sign_PUBLICKEYBYTES */

struct tok_audit_key;

/**
 * Loads the audit key from path, with the same file rules as tok_keyring_load_file (*why
 * names "audit key ..."). *out is owned (tok_audit_key_free). TOK_ERR_IO, TOK_ERR_INPUT,
 * TOK_ERR_NOMEM, TOK_ERR_CRYPTO, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_audit_key_load_file(const char *path, struct tok_audit_key **out,
                                                  const char **why);

/** An audit key over a copy of key (borrowed). For tests. TOK_ERR_NOMEM, TOK_ERR_CRYPTO. */
TOK_MUST_CHECK tok_status tok_audit_key_from_bytes(const uint8_t key[TOK_KEYRING_KEY_LEN],
                                                   struct tok_audit_key **out);

/** Wipes and releases *ak, sets it to NULL. NULL does nothing. */
void tok_audit_key_free(struct tok_audit_key **ak);

/** Keyed BLAKE2b-256 of msg under the block MAC key. TOK_ERR_INTERNAL on NULL arguments. */
TOK_MUST_CHECK tok_status tok_audit_key_mac(const struct tok_audit_key *ak, struct tok_slice msg,
                                            uint8_t out[TOK_KEYRING_HASH_LEN]);

/** Ed25519 signature of msg (detached). TOK_ERR_CRYPTO, TOK_ERR_INTERNAL. */
TOK_MUST_CHECK tok_status tok_audit_key_sign(const struct tok_audit_key *ak, struct tok_slice msg,
                                             uint8_t sig[TOK_AUDIT_SIG_LEN]);

/** The checkpoint-signing public key. */
void tok_audit_key_public(const struct tok_audit_key *ak, uint8_t pk[TOK_AUDIT_PK_LEN]);

/** TOK_OK when sig is pk's Ed25519 signature of msg, else TOK_ERR_CRYPTO. */
TOK_MUST_CHECK tok_status tok_audit_signature_check(const uint8_t pk[TOK_AUDIT_PK_LEN],
                                                    struct tok_slice msg,
                                                    const uint8_t sig[TOK_AUDIT_SIG_LEN]);

/**
 * Turns core dumps off (RLIMIT_CORE 0) and makes the process non-dumpable
 * (PR_SET_DUMPABLE 0, which also blocks ptrace by other same-uid processes). Call at
 * startup, before loading keys. TOK_ERR_INTERNAL with *why (may be NULL) set when either
 * call fails.
 */
TOK_MUST_CHECK tok_status tok_harden_process(const char **why);

#endif
