/*
 * master_key.h - master key providers: where the KEK lives and how tenant keys are wrapped
 * under it (issue #18). The keyring (keyring.h) holds one provider and uses only the
 * operations below; it never asks for the KEK's bytes.
 *
 *   file    the KEK is 32 bytes read from a file into locked memory (keyring.c); wrapping
 *           is XChaCha20-Poly1305 in this process (format in keyring.h)
 *   pkcs11  the KEK is a non-extractable AES-256 secret key object in a PKCS#11 token
 *           (master_key_pkcs11.c); wrapping is CKM_AES_GCM inside the token, so the KEK's
 *           bytes never enter this process
 *
 * Both make TOK_KEYRING_WRAPPED_LEN-byte wrapped keys bound to the same associated data
 * (tenant, version, role), so callers cannot tell which provider they use. A key wrapped by
 * one provider does not open under another: moving from a file to a token is a master key
 * rotation (SECURITY.md).
 *
 * PKCS#11 wrapped key format (72 bytes, the same length as the file provider's):
 *   IV (12, random from libsodium) || reserved (12 zero bytes, checked on unwrap) ||
 *   AES-256-GCM ciphertext of the key (32) || tag (16)
 *
 * The keyring's own sub-keys (API-key hashing, reference lookups; keyring.h) come from a
 * 32-byte root the provider gives, the same for every master key version of a key line (so
 * a rotation keeps API-key hashes valid): the file provider's root is the KEK itself, or the
 * root the file carries after it (keys new-master --out). A token key carries its line's
 * root when it was made by `keys new-master --pkcs11` from an earlier key (a file or another
 * token key): the root, wrapped by the new key like a tenant key (the format above, AD
 * "tokend:v1:subkey-root:obj"), is a private, unmodifiable CKO_DATA object in the same token
 * with the key's label and CKA_APPLICATION "tokend:v1:subkey-root"; the token unwraps it at
 * start. A token key that carries none (the first of its line, `keys hsm-init`) has the
 * root NIST SP 800-108 counter-mode KDF with CKM_AES_CMAC as PRF gives, computed by the
 * token:
 *   root = CMAC(K, 00000001 || "tokend:v1:subkey-root" || 00 || 00000100) ||
 *          CMAC(K, 00000002 || "tokend:v1:subkey-root" || 00 || 00000100)
 * Either way the root (not the KEK) is in this process's locked memory, as it always was:
 * the sub-keys are used here, per request.
 *
 * Two providers may share a module and a token (a token -> token rotation): the module is
 * initialised once per process and a second login to the same token must bring the same
 * PIN (master_key_pkcs11.c).
 */
#ifndef TOKEND_MASTER_KEY_H
#define TOKEND_MASTER_KEY_H

#include "tokend/vault/keyring.h"

#define TOK_PKCS11_URI_MAX 1024 /* longest --master-key-pkcs11 accepted */
#define TOK_PKCS11_PIN_MAX 128  /* longest PIN read from a PIN file */
#define TOK_PKCS11_GCM_IV_LEN 12
#define TOK_PKCS11_RESERVED_LEN 12

struct tok_master_key;

/** A provider's operations. Each may be called from any thread (the provider serialises). */
struct tok_master_key_ops {
    const char *kind; /* "file", "pkcs11" */
    /* appends TOK_KEYRING_WRAPPED_LEN bytes to out (room checked by the caller), or nothing */
    tok_status (*wrap)(struct tok_master_key *mk, struct tok_slice ad,
                       const uint8_t key[TOK_KEYRING_KEY_LEN], struct tok_buf *out);
    /* key is wiped on failure; TOK_ERR_CRYPTO when wrapped does not open for ad */
    tok_status (*unwrap)(struct tok_master_key *mk, struct tok_slice ad, struct tok_slice wrapped,
                         uint8_t key[TOK_KEYRING_KEY_LEN]);
    tok_status (*sub_root)(struct tok_master_key *mk, uint8_t root[TOK_KEYRING_KEY_LEN]);
    void (*free)(struct tok_master_key *mk);
};

/** The first member of every provider's own struct. */
struct tok_master_key {
    const struct tok_master_key_ops *ops;
};

/** Where the master key comes from: exactly one of file and pkcs11_uri (borrowed strings). */
struct tok_master_key_config {
    const char *file;       /* --master-key-file */
    const char *pkcs11_uri; /* --master-key-pkcs11, RFC 7512 */
    const char *pin_file;   /* --master-key-pin-file (or pin-source=file:... in the URI) */
};

/**
 * Opens the provider cfg names. *out is owned (tok_master_key_free). *why (may be NULL) gets
 * one line for the operator (never a PIN or key bytes), static or thread-local.
 * TOK_ERR_INPUT: neither or both of file and pkcs11_uri, a bad URI or PIN file, a key object
 * of the wrong kind. TOK_ERR_IO: a missing file. TOK_ERR_NOTFOUND: no such token or object.
 * TOK_ERR_CRYPTO: the module cannot be loaded or initialised, the login is refused (wrong
 * PIN), the token cannot wrap. TOK_ERR_NOMEM, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_master_key_open(const struct tok_master_key_config *cfg,
                                              struct tok_master_key **out, const char **why);

/** The file provider over the key in path (rules of tok_keyring_load_file). */
TOK_MUST_CHECK tok_status tok_master_key_file_open(const char *path, struct tok_master_key **out,
                                                   const char **why);

/** The file provider over a copy of key (borrowed). For tests and tools. */
TOK_MUST_CHECK tok_status tok_master_key_from_bytes(const uint8_t key[TOK_KEYRING_KEY_LEN],
                                                    struct tok_master_key **out);

/**
 * The PKCS#11 provider: loads the module (module-path in the URI, else p11-kit's proxy),
 * finds the token by label, logs in with the PIN from pin_file (or the URI's
 * pin-source=file:...; never pin-value), finds the secret key object by label (and id= when
 * given) and checks it is AES-256, CKA_SENSITIVE and not CKA_EXTRACTABLE; then wraps and
 * unwraps a random key once to prove the token does CKM_AES_GCM with it. Errors as
 * tok_master_key_open.
 */
TOK_MUST_CHECK tok_status tok_master_key_pkcs11_open(const char *uri, const char *pin_file,
                                                     struct tok_master_key **out,
                                                     const char **why);

/**
 * `tokenctl keys hsm-init`: generates the master key in the token the URI names
 * (CKM_AES_KEY_GEN, 32 bytes, CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE,
 * usable to encrypt, decrypt and sign (CMAC) only, labelled by object= and with id= when
 * given). With root (borrowed, 32 bytes; NULL: none) the key carries that sub-key root
 * (the data object above; the key is destroyed again if it cannot be stored).
 * TOK_ERR_CONFLICT: a key or root object with that label exists. Other errors as
 * tok_master_key_pkcs11_open.
 */
TOK_MUST_CHECK tok_status tok_master_key_pkcs11_create(const char *uri, const char *pin_file,
                                                       const uint8_t *root, const char **why);

/** "file" or "pkcs11". */
const char *tok_master_key_kind(const struct tok_master_key *mk);

/** Releases *mk (a file KEK is wiped; a token session is closed), sets it NULL. NULL-safe. */
void tok_master_key_free(struct tok_master_key **mk);

/**
 * A keyring over mk, whose ownership it takes (on failure too: *mk is NULL on return).
 * TOK_ERR_CRYPTO: the provider cannot give the sub-key root. TOK_ERR_NOMEM, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_keyring_new(struct tok_master_key **mk, struct tok_keyring **out);

/**
 * tok_master_key_open then tok_keyring_new: what tokend and tokenctl call. Errors as
 * tok_master_key_open.
 */
TOK_MUST_CHECK tok_status tok_keyring_load(const struct tok_master_key_config *cfg,
                                           struct tok_keyring **out, const char **why);

/**
 * `tokenctl keys retire-master --destroy-pkcs11 URI`: destroys the secret key the URI names
 * (exactly one) and its sub-key root object. The caller first makes sure no wrapped key in
 * use opens under it. TOK_ERR_NOTFOUND: no such key. Other errors as
 * tok_master_key_pkcs11_open.
 */
TOK_MUST_CHECK tok_status tok_master_key_pkcs11_destroy(const char *uri, const char *pin_file,
                                                        const char **why);

/**
 * The PIN file for a second key in a token (uri, borrowed like the result): pin_file when
 * given, else none when the URI has its own pin-source, else fallback (the first key's PIN
 * file: a key in the same token, whose one user PIN both share). Empty strings count as not
 * given; the result may be NULL.
 */
const char *tok_master_key_previous_pin(const char *uri, const char *pin_file,
                                        const char *fallback);

/**
 * Adds the previous master-key version cfg names (a file, or a key in a PKCS#11 token) to kr
 * for the time of a master rotation: wrapped keys then open under either KEK; new ones are
 * wrapped by the current KEK only. *why as tok_master_key_open ("previous master key ..." for
 * a file). TOK_ERR_INPUT: neither or both of file and pkcs11_uri, a bad file or URI, the same
 * KEK as the current one (compared by a trial wrap when either is in a token), another
 * sub-key root (not of this key line), one loaded already. Other errors as
 * tok_master_key_open.
 */
TOK_MUST_CHECK tok_status tok_keyring_add_previous(struct tok_keyring *kr,
                                                   const struct tok_master_key_config *cfg,
                                                   const char **why);

/**
 * `tokenctl keys new-master --pkcs11 URI`: the next master key made in the token the URI
 * names (tok_master_key_pkcs11_create), carrying kr's sub-key root, so moving from a file
 * to a token, or to another key in a token, keeps API-key hashes and reference look-ups.
 * Errors as tok_master_key_pkcs11_create.
 */
TOK_MUST_CHECK tok_status tok_keyring_next_master_pkcs11(const struct tok_keyring *kr,
                                                         const char *uri, const char *pin_file,
                                                         const char **why);

#endif
