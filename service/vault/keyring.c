/*
 * keyring.c - master key, tenant keys, sealing, fingerprints, random ids and
 * API key secrets (formats in keyring.h). Every key byte lives in
 * sodium_malloc memory that is locked and then made read-only; stack copies
 * of random material are wiped in the function that made them.
 */
#include "tokend/vault/keyring.h"
#include "tokend/vault/master_key.h"
#include "tokend/core/rand.h"

#include "tokend/core/base62.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define KDF_CONTEXT "tokend__"
#define KDF_ID_API_KEY_HASH 1
#define KDF_ID_AUDIT_MAC 2
#define KDF_ID_REF_LOOKUP 3
#define REF_LOOKUP_LABEL "tokend:v1:ref_lookup:"

#define WRAP_AD_MAX (32 + TOK_KEYRING_ID_MAX)
#define SEAL_AD_LABEL "tokend:aead"
#define SEAL_AD_MAX (4 + sizeof SEAL_AD_LABEL + 1 + 4 + 4 * (4 + TOK_KEYRING_ID_MAX))

struct tok_keyring {
    struct tok_master_key *mk;      /* owned: the current KEK's provider (master_key.h) */
    struct tok_master_key *mk_prev; /* owned: the previous version's, during a master rotation
                                     * (tok_keyring_load_previous); NULL when none */
    uint8_t root[TOK_KEYRING_KEY_LEN]; /* what the sub-keys derive from (the provider's) */
    uint8_t api_hash_key[TOK_KEYRING_KEY_LEN];
    uint8_t audit_key[TOK_KEYRING_KEY_LEN];
    uint8_t ref_lookup_root[TOK_KEYRING_KEY_LEN];
};

struct tok_tenant_keys {
    uint32_t version;
    uint32_t tenant_len;
    uint8_t dek[TOK_KEYRING_KEY_LEN];
    uint8_t fpk[TOK_KEYRING_KEY_LEN];
    uint8_t ref_lookup[TOK_KEYRING_KEY_LEN];
    char tenant_id[TOK_KEYRING_ID_MAX + 1];
};

/* ---- master key: the file provider (master_key.h) ---------------------------------------- */

static _Thread_local char why_mem[TOK_KEYRING_WHY_MAX];

/* The KEK's bytes, in locked memory made read-only once filled. */
struct file_master_key {
    struct tok_master_key base;
    uint8_t kek[TOK_KEYRING_KEY_LEN];
    uint8_t root[TOK_KEYRING_KEY_LEN]; /* the sub-key root: the KEK, or the one the file carries */
};

/* nonce (24) || XChaCha20-Poly1305-IETF(KEK, key) || tag (16), format in keyring.h */
static tok_status file_wrap(struct tok_master_key *mk, struct tok_slice ad,
                            const uint8_t key[TOK_KEYRING_KEY_LEN], struct tok_buf *out)
{
    const struct file_master_key *f = (const struct file_master_key *)mk;
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    randombytes_buf(nonce, sizeof nonce);
    uint32_t start = out->len;
    TOK_GUARD(tok_buf_write(out, nonce, sizeof nonce));
    unsigned long long clen = 0;
    /* the library writes into the space the caller reserved (key + tag) */
    int rc = crypto_aead_xchacha20poly1305_ietf_encrypt(out->data + out->len, &clen, key,
                                                        TOK_KEYRING_KEY_LEN, ad.ptr, ad.len,
                                                        NULL, nonce, f->kek);
    if (rc != 0 || clen != TOK_KEYRING_WRAPPED_LEN - sizeof nonce) {
        out->len = start;
        return TOK_ERR_CRYPTO;
    }
    out->len += (uint32_t)clen;
    return TOK_OK;
}

static tok_status file_unwrap(struct tok_master_key *mk, struct tok_slice ad,
                              struct tok_slice wrapped, uint8_t key[TOK_KEYRING_KEY_LEN])
{
    const struct file_master_key *f = (const struct file_master_key *)mk;
    const size_t nlen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    unsigned long long mlen = 0;
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(key, &mlen, NULL, wrapped.ptr + nlen,
                                                        wrapped.len - nlen, ad.ptr, ad.len,
                                                        wrapped.ptr, f->kek);
    if (rc != 0 || mlen != TOK_KEYRING_KEY_LEN) {
        sodium_memzero(key, TOK_KEYRING_KEY_LEN);
        return TOK_ERR_CRYPTO;
    }
    return TOK_OK;
}

/* The sub-keys come from the root the file carries after its KEK, else from the KEK itself,
 * as they did before there were providers and rotations (keyring.h). */
static tok_status file_sub_root(struct tok_master_key *mk, uint8_t root[TOK_KEYRING_KEY_LEN])
{
    tok_copy(root, ((const struct file_master_key *)mk)->root, TOK_KEYRING_KEY_LEN);
    return TOK_OK;
}

static void file_free(struct tok_master_key *mk)
{
    (void)sodium_mprotect_readwrite(mk);
    sodium_memzero(mk, sizeof(struct file_master_key));
    sodium_free(mk);
}

static const struct tok_master_key_ops file_ops = {"file", file_wrap, file_unwrap, file_sub_root,
                                                   file_free};

static tok_status file_alloc(struct file_master_key **out)
{
    struct file_master_key *f = sodium_malloc(sizeof *f);
    TOK_ENSURE(f != NULL, TOK_ERR_NOMEM);
    /* sodium_malloc locks on a best-effort basis; a KEK that can be swapped out is refused */
    if (sodium_mlock(f, sizeof *f) != 0) {
        sodium_free(f);
        return TOK_ERR_NOMEM;
    }
    sodium_memzero(f, sizeof *f);
    f->base.ops = &file_ops;
    *out = f;
    return TOK_OK;
}

static tok_status file_finish(struct file_master_key *f, struct tok_master_key **out)
{
    if (sodium_mprotect_readonly(f) != 0) {
        file_free(&f->base);
        return TOK_ERR_INTERNAL;
    }
    *out = &f->base;
    return TOK_OK;
}

const char *tok_master_key_kind(const struct tok_master_key *mk)
{
    return mk == NULL ? "none" : mk->ops->kind;
}

void tok_master_key_free(struct tok_master_key **mk)
{
    if (mk == NULL || *mk == NULL)
        return;
    (*mk)->ops->free(*mk);
    *mk = NULL;
}

tok_status tok_master_key_from_bytes(const uint8_t key[TOK_KEYRING_KEY_LEN],
                                     struct tok_master_key **out)
{
    TOK_ENSURE(key != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    TOK_ENSURE(sodium_init() >= 0, TOK_ERR_CRYPTO);
    struct file_master_key *f = NULL;
    TOK_GUARD(file_alloc(&f));
    tok_copy(f->kek, key, TOK_KEYRING_KEY_LEN);
    tok_copy(f->root, key, TOK_KEYRING_KEY_LEN);
    return file_finish(f, out);
}

/* Whether a and b are file providers with the same KEK (constant time); same_kek compares
 * a token's KEK, whose bytes never leave it, by a trial wrap. */
static bool file_same_kek(const struct tok_master_key *a, const struct tok_master_key *b)
{
    if (a == NULL || b == NULL || a->ops != &file_ops || b->ops != &file_ops)
        return false;
    const struct file_master_key *fa = (const struct file_master_key *)a;
    const struct file_master_key *fb = (const struct file_master_key *)b;
    return sodium_memcmp(fa->kek, fb->kek, TOK_KEYRING_KEY_LEN) == 0;
}

/* Derives the sub-keys from the provider's root (kept in kr->root, which tells key lines
 * apart: tok_keyring_same_line) and makes the keyring read-only. */
static tok_status keyring_finish(struct tok_keyring *kr)
{
    tok_status st = kr->mk->ops->sub_root(kr->mk, kr->root);
    if (st == TOK_OK &&
        (crypto_kdf_derive_from_key(kr->api_hash_key, sizeof kr->api_hash_key,
                                    KDF_ID_API_KEY_HASH, KDF_CONTEXT, kr->root) != 0 ||
         crypto_kdf_derive_from_key(kr->audit_key, sizeof kr->audit_key, KDF_ID_AUDIT_MAC,
                                    KDF_CONTEXT, kr->root) != 0 ||
         crypto_kdf_derive_from_key(kr->ref_lookup_root, sizeof kr->ref_lookup_root,
                                    KDF_ID_REF_LOOKUP, KDF_CONTEXT, kr->root) != 0))
        st = TOK_ERR_CRYPTO;
    TOK_GUARD(st);
    TOK_ENSURE(sodium_mprotect_readonly(kr) == 0, TOK_ERR_INTERNAL);
    return TOK_OK;
}

void tok_keyring_free(struct tok_keyring **kr)
{
    if (kr == NULL || *kr == NULL)
        return;
    (void)sodium_mprotect_readwrite(*kr);
    tok_master_key_free(&(*kr)->mk);
    tok_master_key_free(&(*kr)->mk_prev);
    sodium_memzero(*kr, sizeof **kr);
    sodium_free(*kr);
    *kr = NULL;
}

tok_status tok_keyring_new(struct tok_master_key **mk, struct tok_keyring **out)
{
    TOK_ENSURE(mk != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    TOK_ENSURE(*mk != NULL, TOK_ERR_INTERNAL);
    if (sodium_init() < 0) {
        tok_master_key_free(mk);
        return TOK_ERR_CRYPTO;
    }
    struct tok_keyring *kr = sodium_malloc(sizeof *kr);
    /* the sub-keys are as secret as the KEK: refused if they cannot be locked */
    if (kr != NULL && sodium_mlock(kr, sizeof *kr) != 0) {
        sodium_free(kr);
        kr = NULL;
    }
    if (kr == NULL) {
        tok_master_key_free(mk);
        return TOK_ERR_NOMEM;
    }
    sodium_memzero(kr, sizeof *kr);
    kr->mk = *mk;
    *mk = NULL;
    tok_status st = keyring_finish(kr);
    if (st != TOK_OK) {
        tok_keyring_free(&kr);
        return st;
    }
    *out = kr;
    return TOK_OK;
}

tok_status tok_keyring_from_bytes(const uint8_t key[TOK_KEYRING_KEY_LEN], struct tok_keyring **out)
{
    TOK_ENSURE(key != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    struct tok_master_key *mk = NULL;
    TOK_GUARD(tok_master_key_from_bytes(key, &mk));
    return tok_keyring_new(&mk, out);
}

/* Reads at most raw->cap bytes; a file that fills raw is longer than any valid key file. */
static tok_status read_all(int fd, struct tok_buf *raw)
{
    while (raw->len < raw->cap) {
        ssize_t n = read(fd, raw->data + raw->len, raw->cap - raw->len);
        if (n < 0 && errno == EINTR)
            continue;
        TOK_ENSURE(n >= 0, TOK_ERR_IO);
        if (n == 0)
            return TOK_OK;
        raw->len += (uint32_t)n;
    }
    return TOK_OK;
}

/* Fills key (bin bytes) from exactly 2 * bin hex characters, optionally followed by '\n'. */
static bool parse_hex_key(const struct tok_buf *raw, uint8_t *key, size_t bin)
{
    size_t hex_len = 2 * bin, bin_len = 0;
    if (raw->len != hex_len && !(raw->len == hex_len + 1 && raw->data[hex_len] == '\n'))
        return false;
    const char *end = NULL;
    const char *hex = (const char *)raw->data;
    int rc = sodium_hex2bin(key, bin, hex, hex_len, NULL, &bin_len, &end);
    if (rc != 0 || bin_len != bin || end != hex + hex_len) {
        sodium_memzero(key, bin);
        return false;
    }
    return true;
}

/*
 * Fills key from 32 raw bytes or n * 64 hex characters with an optional trailing newline
 * (n = 1, or 2 when a master key file carries its sub-key root after the KEK, keyring.h);
 * *n_out says which. Two keys only in hex: 64 raw bytes would also be the length of a hex
 * key with a typo, which must be refused, not read as two other keys.
 */
static tok_status parse_key_file(const struct tok_buf *raw, uint8_t *key, size_t n_max,
                                 size_t *n_out)
{
    for (size_t n = 1; n <= n_max; n++) {
        if (parse_hex_key(raw, key, n * TOK_KEYRING_KEY_LEN)) {
            *n_out = n;
            return TOK_OK;
        }
    }
    if (raw->len == TOK_KEYRING_KEY_LEN) {
        tok_copy(key, raw->data, TOK_KEYRING_KEY_LEN);
        *n_out = 1;
        return TOK_OK;
    }
    return TOK_ERR_INPUT;
}

/* "<what> <msg>" in thread-local memory (what names the key: "master key", "audit key"). */
static const char *why_of(const char *what, const char *msg, const char *path)
{
    struct tok_buf b;
    const char *s = NULL;
    tok_buf_init(&b, why_mem, sizeof why_mem);
    tok_status st = path != NULL ? tok_buf_printf(&b, "%s %s: %s", what, msg, path)
                                 : tok_buf_printf(&b, "%s %s", what, msg);
    if (st != TOK_OK || tok_buf_cstr(&b, &s) != TOK_OK)
        return msg;
    return s;
}

/*
 * Reads a key file (a regular file, mode 0600 or tighter, n_max * 32 raw bytes or n_max * 64
 * hex characters at most, not all zeros) into key (room for n_max keys); *n says how many
 * keys it held. The read buffer is wiped. what names it in *why.
 */
static tok_status read_key_file_n(const char *path, const char *what, uint8_t *key, size_t n_max,
                                  size_t *n, const char **why)
{
    struct tok_buf raw = {0};
    tok_status st = TOK_OK;
    /* O_NONBLOCK: a FIFO planted at the path must not hang startup; fstat refuses it below */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        bool missing = errno == ENOENT || errno == ENOTDIR;
        *why = why_of(what, missing ? "file not found" : "file cannot be opened", path);
        return TOK_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        *why = why_of(what, "file cannot be examined (fstat)", NULL);
        st = TOK_ERR_IO;
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        *why = why_of(what, "file is not a regular file", NULL);
        st = TOK_ERR_INPUT;
        goto fail;
    }
    if ((sb.st_mode & 077) != 0) {
        *why = why_of(what, "file is readable by group or others (chmod 600)", NULL);
        st = TOK_ERR_INPUT;
        goto fail;
    }
    const char *shape = n_max > 1 ? "file must hold 32 raw bytes or 64 (or 128) hex characters"
                                  : "file must hold 32 raw bytes or 64 hex characters";
    if (sb.st_size > (off_t)(n_max * 2 * TOK_KEYRING_KEY_LEN + 1)) {
        *why = why_of(what, shape, NULL);
        st = TOK_ERR_INPUT;
        goto fail;
    }
    st = tok_buf_alloc(&raw, (uint32_t)(n_max * 2 * TOK_KEYRING_KEY_LEN + 2), true);
    if (st != TOK_OK) {
        *why = why_of("out of memory reading the", what, NULL);
        goto fail;
    }
    st = read_all(fd, &raw);
    if (st != TOK_OK) {
        *why = why_of(what, "file cannot be read", NULL);
        goto fail;
    }
    st = parse_key_file(&raw, key, n_max, n);
    if (st != TOK_OK) {
        *why = why_of(what, shape, NULL);
        goto fail;
    }
    /* an all-zero key is a placeholder (head -c 32 /dev/zero), not a secret */
    for (size_t i = 0; i < *n && st == TOK_OK; i++) {
        if (sodium_is_zero(key + i * TOK_KEYRING_KEY_LEN, TOK_KEYRING_KEY_LEN)) {
            *why = why_of(what, "is all zeros", NULL);
            st = TOK_ERR_INPUT;
        }
    }
fail:
    if (st != TOK_OK)
        sodium_memzero(key, n_max * TOK_KEYRING_KEY_LEN);
    tok_buf_wipe(&raw);
    (void)close(fd);
    return st;
}

/* A key file of exactly one 32-byte key. */
static tok_status read_key_file(const char *path, const char *what,
                                uint8_t key[TOK_KEYRING_KEY_LEN], const char **why)
{
    size_t n = 0;
    return read_key_file_n(path, what, key, 1, &n, why);
}

/*
 * A master key file into kek and root: the KEK alone (the root is the KEK, as every key
 * before rotation existed) or the KEK followed by the root it carries (keyring.h).
 */
static tok_status read_master_file(const char *path, const char *what,
                                   uint8_t kek[TOK_KEYRING_KEY_LEN],
                                   uint8_t root[TOK_KEYRING_KEY_LEN], const char **why)
{
    uint8_t *both = sodium_malloc(2 * TOK_KEYRING_KEY_LEN);
    if (both == NULL) {
        *why = why_of("out of memory reading the", what, NULL);
        return TOK_ERR_NOMEM;
    }
    size_t n = 0;
    tok_status st = read_key_file_n(path, what, both, 2, &n, why);
    if (st == TOK_OK) {
        tok_copy(kek, both, TOK_KEYRING_KEY_LEN);
        tok_copy(root, n == 2 ? both + TOK_KEYRING_KEY_LEN : both, TOK_KEYRING_KEY_LEN);
    }
    sodium_free(both); /* zeroes before releasing */
    return st;
}

/* The file provider over the master key file at path; what names it in *why. */
static tok_status file_open(const char *path, const char *what, struct tok_master_key **out,
                            const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    *why = NULL;
    TOK_ENSURE(path != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    if (sodium_init() < 0) {
        *why = "libsodium failed to initialise";
        return TOK_ERR_CRYPTO;
    }
    struct file_master_key *f = NULL;
    tok_status st = file_alloc(&f);
    if (st != TOK_OK) {
        *why = "cannot allocate locked memory for the master key (RLIMIT_MEMLOCK)";
        return st;
    }
    st = read_master_file(path, what, f->kek, f->root, why);
    if (st != TOK_OK) {
        file_free(&f->base);
        return st;
    }
    st = file_finish(f, out);
    if (st != TOK_OK)
        *why = "cannot protect the master key memory";
    return st;
}

tok_status tok_master_key_file_open(const char *path, struct tok_master_key **out,
                                   const char **why)
{
    return file_open(path, "master key", out, why);
}

tok_status tok_master_key_open(const struct tok_master_key_config *cfg,
                               struct tok_master_key **out, const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    *why = NULL;
    TOK_ENSURE(cfg != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    bool file = cfg->file != NULL && cfg->file[0] != '\0';
    bool p11 = cfg->pkcs11_uri != NULL && cfg->pkcs11_uri[0] != '\0';
    if (file == p11) {
        *why = file ? "give --master-key-file or --master-key-pkcs11, not both"
                    : "no master key: set --master-key-file or --master-key-pkcs11";
        return TOK_ERR_INPUT;
    }
    if (!p11 && cfg->pin_file != NULL && cfg->pin_file[0] != '\0') {
        *why = "--master-key-pin-file is for --master-key-pkcs11";
        return TOK_ERR_INPUT;
    }
    if (file)
        return tok_master_key_file_open(cfg->file, out, why);
    return tok_master_key_pkcs11_open(cfg->pkcs11_uri, cfg->pin_file, out, why);
}

tok_status tok_keyring_load(const struct tok_master_key_config *cfg, struct tok_keyring **out,
                            const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    struct tok_master_key *mk = NULL;
    TOK_GUARD(tok_master_key_open(cfg, &mk, why));
    tok_status st = tok_keyring_new(&mk, out);
    if (st != TOK_OK)
        *why = st == TOK_ERR_NOMEM
                   ? "cannot allocate locked memory for the master sub-keys (RLIMIT_MEMLOCK)"
                   : "cannot derive or protect the master sub-keys";
    return st;
}

tok_status tok_keyring_load_file(const char *path, struct tok_keyring **out, const char **why)
{
    struct tok_master_key_config cfg = {path, NULL, NULL};
    TOK_ENSURE(path != NULL, TOK_ERR_INTERNAL);
    return tok_keyring_load(&cfg, out, why);
}

/*
 * Whether a and b are the same KEK. Two files: their bytes compared in constant time. A
 * token's KEK never leaves it, so otherwise a random key is wrapped under a and must not
 * open under b: AES-GCM and XChaCha20-Poly1305 tags verify under the key that made them
 * only, and a file and a token never wrap alike.
 */
static bool same_kek(struct tok_master_key *a, struct tok_master_key *b)
{
    if (a == NULL || b == NULL)
        return false;
    if (a->ops == &file_ops && b->ops == &file_ops)
        return file_same_kek(a, b);
    uint8_t *k = sodium_malloc(2 * TOK_KEYRING_KEY_LEN);
    if (k == NULL)
        return false;
    uint8_t wrapped_mem[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf wrapped;
    tok_buf_init(&wrapped, wrapped_mem, sizeof wrapped_mem);
    struct tok_slice ad = tok_slice_str("tokend:v1:same-key-test");
    randombytes_buf(k, TOK_KEYRING_KEY_LEN);
    bool same = a->ops->wrap(a, ad, k, &wrapped) == TOK_OK &&
                b->ops->unwrap(b, ad, tok_buf_slice(&wrapped), k + TOK_KEYRING_KEY_LEN) == TOK_OK &&
                sodium_memcmp(k, k + TOK_KEYRING_KEY_LEN, TOK_KEYRING_KEY_LEN) == 0;
    sodium_free(k);
    return same;
}

tok_status tok_keyring_add_previous(struct tok_keyring *kr, const struct tok_master_key_config *cfg,
                                    const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    *why = NULL;
    TOK_ENSURE(kr != NULL && cfg != NULL, TOK_ERR_INTERNAL);
    bool file = cfg->file != NULL && cfg->file[0] != '\0';
    bool p11 = cfg->pkcs11_uri != NULL && cfg->pkcs11_uri[0] != '\0';
    if (file == p11) {
        *why = file ? "give --master-key-previous or --master-key-previous-pkcs11, not both"
                    : "no previous master key given";
        return TOK_ERR_INPUT;
    }
    const char *name = file ? cfg->file : cfg->pkcs11_uri;
    struct tok_master_key *prev = NULL;
    tok_status st = file ? file_open(cfg->file, "previous master key", &prev, why)
                         : tok_master_key_pkcs11_open(cfg->pkcs11_uri, cfg->pin_file, &prev, why);
    TOK_GUARD(st);
    uint8_t *root = sodium_malloc(TOK_KEYRING_KEY_LEN);
    if (root == NULL) {
        tok_master_key_free(&prev);
        *why = "cannot allocate locked memory for the previous master key (RLIMIT_MEMLOCK)";
        return TOK_ERR_NOMEM;
    }
    st = prev->ops->sub_root(prev, root);
    if (st != TOK_OK)
        *why = why_of("previous master key", "cannot give its sub-key root", name);
    /* every master key version carries the same root: API-key hashes and reference look-ups
     * must not change with a rotation */
    if (st == TOK_OK && sodium_memcmp(root, kr->root, TOK_KEYRING_KEY_LEN) != 0) {
        *why = why_of("previous master key", "is not of this key line (its sub-key root differs)",
                      name);
        st = TOK_ERR_INPUT;
    }
    sodium_free(root); /* zeroes before releasing */
    if (st == TOK_OK && same_kek(prev, kr->mk)) {
        *why = why_of("previous master key", "is the current master key", name);
        st = TOK_ERR_INPUT;
    }
    if (st == TOK_OK && kr->mk_prev != NULL) {
        *why = "a previous master key is loaded already";
        st = TOK_ERR_INPUT;
    }
    if (st == TOK_OK) {
        TOK_ENSURE(sodium_mprotect_readwrite(kr) == 0, TOK_ERR_INTERNAL);
        kr->mk_prev = prev;
        prev = NULL;
        if (sodium_mprotect_readonly(kr) != 0)
            st = TOK_ERR_INTERNAL;
    }
    tok_master_key_free(&prev);
    return st;
}

tok_status tok_keyring_load_previous(struct tok_keyring *kr, const char *path, const char **why)
{
    TOK_ENSURE(path != NULL, TOK_ERR_INTERNAL);
    struct tok_master_key_config cfg = {path, NULL, NULL};
    return tok_keyring_add_previous(kr, &cfg, why);
}

const char *tok_keyring_kind(const struct tok_keyring *kr)
{
    return kr == NULL ? "none" : tok_master_key_kind(kr->mk);
}

const char *tok_keyring_previous_kind(const struct tok_keyring *kr)
{
    return kr == NULL ? "none" : tok_master_key_kind(kr->mk_prev);
}

tok_status tok_keyring_next_master_pkcs11(const struct tok_keyring *kr, const char *uri,
                                          const char *pin_file, const char **why)
{
    TOK_ENSURE(kr != NULL && uri != NULL, TOK_ERR_INTERNAL);
    return tok_master_key_pkcs11_create(uri, pin_file, kr->root, why);
}

bool tok_keyring_same_line(const struct tok_keyring *a, const struct tok_keyring *b)
{
    return a != NULL && b != NULL && sodium_memcmp(a->root, b->root, TOK_KEYRING_KEY_LEN) == 0;
}

bool tok_keyring_same_kek(const struct tok_keyring *a, const struct tok_keyring *b)
{
    return a != NULL && b != NULL && same_kek(a->mk, b->mk);
}

tok_status tok_keyring_next_master(const struct tok_keyring *kr, struct tok_buf *hex_out)
{
    TOK_ENSURE(kr != NULL && hex_out != NULL && hex_out->len <= hex_out->cap, TOK_ERR_INTERNAL);
    const size_t hex_len = 4 * TOK_KEYRING_KEY_LEN;
    TOK_ENSURE(hex_out->cap - hex_out->len >= hex_len + 2, TOK_ERR_BOUNDS);
    uint8_t *both = sodium_malloc(2 * TOK_KEYRING_KEY_LEN);
    TOK_ENSURE(both != NULL, TOK_ERR_NOMEM);
    randombytes_buf(both, TOK_KEYRING_KEY_LEN);
    tok_copy(both + TOK_KEYRING_KEY_LEN, kr->root, TOK_KEYRING_KEY_LEN);
    /* the library writes hex_len characters and a NUL into the room checked above */
    char *dst = (char *)hex_out->data + hex_out->len;
    sodium_bin2hex(dst, hex_len + 1, both, 2 * TOK_KEYRING_KEY_LEN);
    sodium_free(both); /* zeroes before releasing */
    hex_out->len += (uint32_t)hex_len;
    return tok_buf_putc(hex_out, '\n');
}

/* ---- keyed hashes on the master sub-keys ------------------------------------------------- */

static tok_status keyed_hash(const uint8_t key[TOK_KEYRING_KEY_LEN], struct tok_slice msg,
                             uint8_t out[TOK_KEYRING_HASH_LEN])
{
    static const uint8_t empty[1] = {0};
    int rc = crypto_generichash(out, TOK_KEYRING_HASH_LEN, msg.len > 0 ? msg.ptr : empty, msg.len,
                                key, TOK_KEYRING_KEY_LEN);
    return rc == 0 ? TOK_OK : TOK_ERR_CRYPTO;
}

tok_status tok_keyring_api_key_hash(const struct tok_keyring *kr, struct tok_slice secret,
                                    uint8_t out[TOK_KEYRING_HASH_LEN])
{
    TOK_ENSURE(kr != NULL && out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(secret.ptr != NULL && secret.len > 0, TOK_ERR_INPUT);
    TOK_ENSURE(secret.len <= TOK_KEYRING_HASH_IN_MAX, TOK_ERR_INPUT);
    return keyed_hash(kr->api_hash_key, secret, out);
}

tok_status tok_keyring_audit_mac(const struct tok_keyring *kr, struct tok_slice msg,
                                 uint8_t out[TOK_KEYRING_HASH_LEN])
{
    TOK_ENSURE(kr != NULL && out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(msg.ptr != NULL || msg.len == 0, TOK_ERR_INTERNAL);
    return keyed_hash(kr->audit_key, msg, out);
}

/* ---- the audit key ------------------------------------------------------------------------ */

#define AUDIT_KDF_CONTEXT "tokaudit"
#define AUDIT_KDF_ID_MAC 1
#define AUDIT_KDF_ID_SIGN 2

struct tok_audit_key {
    uint8_t mac_key[TOK_KEYRING_KEY_LEN];
    uint8_t sign_sk[crypto_sign_SECRETKEYBYTES];
    uint8_t sign_pk[crypto_sign_PUBLICKEYBYTES];
};

/* Derives the MAC key and the signing key pair from root and makes ak read-only. */
static tok_status audit_key_finish(struct tok_audit_key *ak, const uint8_t root[TOK_KEYRING_KEY_LEN])
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    int rc = crypto_kdf_derive_from_key(ak->mac_key, sizeof ak->mac_key, AUDIT_KDF_ID_MAC,
                                        AUDIT_KDF_CONTEXT, root);
    if (rc == 0)
        rc = crypto_kdf_derive_from_key(seed, sizeof seed, AUDIT_KDF_ID_SIGN, AUDIT_KDF_CONTEXT,
                                        root);
    if (rc == 0)
        rc = crypto_sign_seed_keypair(ak->sign_pk, ak->sign_sk, seed);
    sodium_memzero(seed, sizeof seed);
    TOK_ENSURE(rc == 0, TOK_ERR_CRYPTO);
    TOK_ENSURE(sodium_mprotect_readonly(ak) == 0, TOK_ERR_INTERNAL);
    return TOK_OK;
}

static tok_status audit_key_alloc(struct tok_audit_key **out)
{
    struct tok_audit_key *ak = sodium_malloc(sizeof *ak);
    TOK_ENSURE(ak != NULL, TOK_ERR_NOMEM);
    if (sodium_mlock(ak, sizeof *ak) != 0) {
        sodium_free(ak);
        return TOK_ERR_NOMEM;
    }
    sodium_memzero(ak, sizeof *ak);
    *out = ak;
    return TOK_OK;
}

void tok_audit_key_free(struct tok_audit_key **ak)
{
    if (ak == NULL || *ak == NULL)
        return;
    (void)sodium_mprotect_readwrite(*ak);
    sodium_memzero(*ak, sizeof **ak);
    sodium_free(*ak);
    *ak = NULL;
}

tok_status tok_audit_key_from_bytes(const uint8_t key[TOK_KEYRING_KEY_LEN],
                                    struct tok_audit_key **out)
{
    TOK_ENSURE(key != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    TOK_ENSURE(sodium_init() >= 0, TOK_ERR_CRYPTO);
    struct tok_audit_key *ak = NULL;
    TOK_GUARD(audit_key_alloc(&ak));
    tok_status st = audit_key_finish(ak, key);
    if (st != TOK_OK) {
        tok_audit_key_free(&ak);
        return st;
    }
    *out = ak;
    return TOK_OK;
}

tok_status tok_audit_key_load_file(const char *path, struct tok_audit_key **out, const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    *why = NULL;
    TOK_ENSURE(path != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    if (sodium_init() < 0) {
        *why = "libsodium failed to initialise";
        return TOK_ERR_CRYPTO;
    }
    uint8_t *root = sodium_malloc(TOK_KEYRING_KEY_LEN);
    TOK_ENSURE(root != NULL, TOK_ERR_NOMEM);
    tok_status st = read_key_file(path, "audit key", root, why);
    if (st == TOK_OK) {
        st = tok_audit_key_from_bytes(root, out);
        if (st != TOK_OK)
            *why = "cannot derive or protect the audit sub-keys (RLIMIT_MEMLOCK?)";
    }
    sodium_free(root); /* zeroes before releasing */
    return st;
}

tok_status tok_audit_key_mac(const struct tok_audit_key *ak, struct tok_slice msg,
                             uint8_t out[TOK_KEYRING_HASH_LEN])
{
    TOK_ENSURE(ak != NULL && out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(msg.ptr != NULL || msg.len == 0, TOK_ERR_INTERNAL);
    return keyed_hash(ak->mac_key, msg, out);
}

tok_status tok_audit_key_sign(const struct tok_audit_key *ak, struct tok_slice msg,
                              uint8_t sig[TOK_AUDIT_SIG_LEN])
{
    TOK_ENSURE(ak != NULL && sig != NULL && (msg.ptr != NULL || msg.len == 0), TOK_ERR_INTERNAL);
    static const uint8_t empty[1] = {0};
    int rc = crypto_sign_detached(sig, NULL, msg.len > 0 ? msg.ptr : empty, msg.len, ak->sign_sk);
    return rc == 0 ? TOK_OK : TOK_ERR_CRYPTO;
}

void tok_audit_key_public(const struct tok_audit_key *ak, uint8_t pk[TOK_AUDIT_PK_LEN])
{
    tok_copy(pk, ak->sign_pk, TOK_AUDIT_PK_LEN);
}

tok_status tok_audit_signature_check(const uint8_t pk[TOK_AUDIT_PK_LEN], struct tok_slice msg,
                                     const uint8_t sig[TOK_AUDIT_SIG_LEN])
{
    TOK_ENSURE(pk != NULL && sig != NULL && (msg.ptr != NULL || msg.len == 0), TOK_ERR_INTERNAL);
    static const uint8_t empty[1] = {0};
    int rc = crypto_sign_verify_detached(sig, msg.len > 0 ? msg.ptr : empty, msg.len, pk);
    return rc == 0 ? TOK_OK : TOK_ERR_CRYPTO;
}

/* ---- tenant keys: wrap and unwrap -------------------------------------------------------- */

/* Tenant ids appear inside ':'-separated associated data: printable, no space, no ':'. */
static tok_status check_tenant_id(const char *tenant_id, size_t *len)
{
    TOK_ENSURE(tenant_id != NULL, TOK_ERR_INPUT);
    size_t n = strnlen(tenant_id, TOK_KEYRING_ID_MAX + 1);
    TOK_ENSURE(n >= 1 && n <= TOK_KEYRING_ID_MAX, TOK_ERR_INPUT);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)tenant_id[i];
        TOK_ENSURE(c > 0x20 && c < 0x7f && c != ':', TOK_ERR_INPUT);
    }
    *len = n;
    return TOK_OK;
}

static tok_status wrap_ad(struct tok_buf *ad, const char *role, const char *tenant_id,
                          uint32_t version)
{
    return tok_buf_printf(ad, "tokend:v1:%s:%s:%" PRIu32, role, tenant_id, version);
}

/* Appends the key wrapped by the KEK's provider; room was checked by the caller. */
static tok_status wrap_key(const struct tok_keyring *kr, const char *role, const char *tenant_id,
                           uint32_t version, const uint8_t key[TOK_KEYRING_KEY_LEN],
                           struct tok_buf *out)
{
    uint8_t ad_mem[WRAP_AD_MAX];
    struct tok_buf ad;
    tok_buf_init(&ad, ad_mem, sizeof ad_mem);
    TOK_GUARD(wrap_ad(&ad, role, tenant_id, version));
    TOK_ENSURE(out->cap - out->len >= TOK_KEYRING_WRAPPED_LEN, TOK_ERR_BOUNDS);
    return kr->mk->ops->wrap(kr->mk, tok_buf_slice(&ad), key, out);
}

static tok_status unwrap_key(const struct tok_keyring *kr, const char *role, const char *tenant_id,
                             uint32_t version, struct tok_slice wrapped,
                             uint8_t key[TOK_KEYRING_KEY_LEN])
{
    TOK_ENSURE(wrapped.ptr != NULL && wrapped.len == TOK_KEYRING_WRAPPED_LEN, TOK_ERR_INPUT);
    uint8_t ad_mem[WRAP_AD_MAX];
    struct tok_buf ad;
    tok_buf_init(&ad, ad_mem, sizeof ad_mem);
    TOK_GUARD(wrap_ad(&ad, role, tenant_id, version));
    tok_status st = kr->mk->ops->unwrap(kr->mk, tok_buf_slice(&ad), wrapped, key);
    /* during a master rotation a key is wrapped by the new KEK or by the previous one; the
     * tag tells which, so no version needs to travel with the wrapped key */
    if (st == TOK_ERR_CRYPTO && kr->mk_prev != NULL)
        st = kr->mk_prev->ops->unwrap(kr->mk_prev, tok_buf_slice(&ad), wrapped, key);
    return st;
}

/* Wraps the DEK and FPK in keys (2 x TOK_KEYRING_KEY_LEN) under kr into the two buffers; when
 * the second fails, the first is wiped and taken back, so either both are written or neither. */
static tok_status wrap_pair(const struct tok_keyring *kr, const char *tenant_id, uint32_t version,
                            const uint8_t *keys, struct tok_buf *dek_out, struct tok_buf *fpk_out)
{
    uint32_t dek_start = dek_out->len;
    TOK_GUARD(wrap_key(kr, "dek", tenant_id, version, keys, dek_out));
    tok_status st = wrap_key(kr, "fpk", tenant_id, version, keys + TOK_KEYRING_KEY_LEN, fpk_out);
    if (st != TOK_OK) {
        sodium_memzero(dek_out->data + dek_start, TOK_KEYRING_WRAPPED_LEN);
        dek_out->len = dek_start;
    }
    return st;
}

tok_status tok_keyring_tenant_keys_new(const struct tok_keyring *kr, const char *tenant_id,
                                       uint32_t version, struct tok_buf *wrapped_dek_out,
                                       struct tok_buf *wrapped_fpk_out)
{
    TOK_ENSURE(kr != NULL && wrapped_dek_out != NULL && wrapped_fpk_out != NULL,
               TOK_ERR_INTERNAL);
    TOK_ENSURE(wrapped_dek_out != wrapped_fpk_out, TOK_ERR_INTERNAL);
    TOK_ENSURE(wrapped_dek_out->len <= wrapped_dek_out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(wrapped_fpk_out->len <= wrapped_fpk_out->cap, TOK_ERR_INTERNAL);
    size_t tlen = 0;
    TOK_GUARD(check_tenant_id(tenant_id, &tlen));
    TOK_ENSURE(version >= 1, TOK_ERR_INPUT);
    TOK_ENSURE(wrapped_dek_out->cap - wrapped_dek_out->len >= TOK_KEYRING_WRAPPED_LEN,
               TOK_ERR_BOUNDS);
    TOK_ENSURE(wrapped_fpk_out->cap - wrapped_fpk_out->len >= TOK_KEYRING_WRAPPED_LEN,
               TOK_ERR_BOUNDS);

    uint8_t *keys = sodium_malloc(2 * TOK_KEYRING_KEY_LEN);
    TOK_ENSURE(keys != NULL, TOK_ERR_NOMEM);
    randombytes_buf(keys, 2 * TOK_KEYRING_KEY_LEN);
    tok_status st = wrap_pair(kr, tenant_id, version, keys, wrapped_dek_out, wrapped_fpk_out);
    sodium_free(keys); /* zeroes before releasing */
    return st;
}

tok_status tok_keyring_rewrap(const struct tok_keyring *from, const struct tok_keyring *to,
                              const char *tenant_id, uint32_t version, struct tok_slice wrapped_dek,
                              struct tok_slice wrapped_fpk, struct tok_buf *dek_out,
                              struct tok_buf *fpk_out)
{
    TOK_ENSURE(from != NULL && to != NULL && dek_out != NULL && fpk_out != NULL,
               TOK_ERR_INTERNAL);
    TOK_ENSURE(dek_out != fpk_out && dek_out->len <= dek_out->cap && fpk_out->len <= fpk_out->cap,
               TOK_ERR_INTERNAL);
    size_t tlen = 0;
    TOK_GUARD(check_tenant_id(tenant_id, &tlen));
    TOK_ENSURE(version >= 1, TOK_ERR_INPUT);
    TOK_ENSURE(dek_out->cap - dek_out->len >= TOK_KEYRING_WRAPPED_LEN, TOK_ERR_BOUNDS);
    TOK_ENSURE(fpk_out->cap - fpk_out->len >= TOK_KEYRING_WRAPPED_LEN, TOK_ERR_BOUNDS);
    uint8_t *keys = sodium_malloc(2 * TOK_KEYRING_KEY_LEN);
    TOK_ENSURE(keys != NULL, TOK_ERR_NOMEM);
    /* a rotation that stopped half-way left some keys wrapped by `to` already */
    tok_status st = unwrap_key(from, "dek", tenant_id, version, wrapped_dek, keys);
    if (st != TOK_OK)
        st = unwrap_key(to, "dek", tenant_id, version, wrapped_dek, keys);
    if (st == TOK_OK) {
        st = unwrap_key(from, "fpk", tenant_id, version, wrapped_fpk, keys + TOK_KEYRING_KEY_LEN);
        if (st != TOK_OK)
            st = unwrap_key(to, "fpk", tenant_id, version, wrapped_fpk,
                            keys + TOK_KEYRING_KEY_LEN);
    }
    if (st == TOK_OK)
        st = wrap_pair(to, tenant_id, version, keys, dek_out, fpk_out);
    sodium_free(keys); /* zeroes before releasing */
    return st;
}

tok_status tok_keyring_tenant_keys_next(const struct tok_keyring *kr,
                                        const struct tok_tenant_keys *old, uint32_t version,
                                        bool new_fpk, struct tok_buf *wrapped_dek_out,
                                        struct tok_buf *wrapped_fpk_out)
{
    TOK_ENSURE(kr != NULL && old != NULL && wrapped_dek_out != NULL && wrapped_fpk_out != NULL,
               TOK_ERR_INTERNAL);
    TOK_ENSURE(wrapped_dek_out != wrapped_fpk_out, TOK_ERR_INTERNAL);
    TOK_ENSURE(wrapped_dek_out->len <= wrapped_dek_out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(wrapped_fpk_out->len <= wrapped_fpk_out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(version > old->version, TOK_ERR_INPUT);
    TOK_ENSURE(wrapped_dek_out->cap - wrapped_dek_out->len >= TOK_KEYRING_WRAPPED_LEN,
               TOK_ERR_BOUNDS);
    TOK_ENSURE(wrapped_fpk_out->cap - wrapped_fpk_out->len >= TOK_KEYRING_WRAPPED_LEN,
               TOK_ERR_BOUNDS);
    uint8_t *keys = sodium_malloc(2 * TOK_KEYRING_KEY_LEN);
    TOK_ENSURE(keys != NULL, TOK_ERR_NOMEM);
    randombytes_buf(keys, 2 * TOK_KEYRING_KEY_LEN);
    /* the same FPK under the new version keeps fingerprints, and so de-duplication, working */
    if (!new_fpk)
        tok_copy(keys + TOK_KEYRING_KEY_LEN, old->fpk, TOK_KEYRING_KEY_LEN);
    tok_status st =
        wrap_pair(kr, old->tenant_id, version, keys, wrapped_dek_out, wrapped_fpk_out);
    sodium_free(keys); /* zeroes before releasing */
    return st;
}

void tok_tenant_keys_free(struct tok_tenant_keys **tk)
{
    if (tk == NULL || *tk == NULL)
        return;
    (void)sodium_mprotect_readwrite(*tk);
    sodium_memzero(*tk, sizeof **tk);
    sodium_free(*tk);
    *tk = NULL;
}

/* The tenant's lookup key comes from the master key and the tenant id, not from a
 * key version: references stored under an older version still match after a rotation. */
static tok_status ref_lookup_key(const struct tok_keyring *kr, const char *tenant_id, size_t tlen,
                                 uint8_t out[TOK_KEYRING_KEY_LEN])
{
    crypto_generichash_state st;
    int rc = crypto_generichash_init(&st, kr->ref_lookup_root, sizeof kr->ref_lookup_root,
                                     TOK_KEYRING_KEY_LEN);
    if (rc == 0)
        rc = crypto_generichash_update(&st, (const uint8_t *)REF_LOOKUP_LABEL,
                                       sizeof REF_LOOKUP_LABEL - 1);
    if (rc == 0)
        rc = crypto_generichash_update(&st, (const uint8_t *)tenant_id, tlen);
    if (rc == 0)
        rc = crypto_generichash_final(&st, out, TOK_KEYRING_KEY_LEN);
    sodium_memzero(&st, sizeof st);
    return rc == 0 ? TOK_OK : TOK_ERR_CRYPTO;
}

tok_status tok_keyring_tenant_keys_open(const struct tok_keyring *kr, const char *tenant_id,
                                        uint32_t version, struct tok_slice wrapped_dek,
                                        struct tok_slice wrapped_fpk, struct tok_tenant_keys **out)
{
    TOK_ENSURE(kr != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    size_t tlen = 0;
    TOK_GUARD(check_tenant_id(tenant_id, &tlen));
    TOK_ENSURE(version >= 1, TOK_ERR_INPUT);
    TOK_ENSURE(wrapped_dek.len == TOK_KEYRING_WRAPPED_LEN, TOK_ERR_INPUT);
    TOK_ENSURE(wrapped_fpk.len == TOK_KEYRING_WRAPPED_LEN, TOK_ERR_INPUT);

    struct tok_tenant_keys *tk = sodium_malloc(sizeof *tk);
    TOK_ENSURE(tk != NULL, TOK_ERR_NOMEM);
    if (sodium_mlock(tk, sizeof *tk) != 0) {
        sodium_free(tk);
        return TOK_ERR_NOMEM;
    }
    sodium_memzero(tk, sizeof *tk);
    tk->version = version;
    tk->tenant_len = (uint32_t)tlen;
    tok_copy(tk->tenant_id, tenant_id, tlen);
    tok_status st = unwrap_key(kr, "dek", tenant_id, version, wrapped_dek, tk->dek);
    if (st == TOK_OK)
        st = unwrap_key(kr, "fpk", tenant_id, version, wrapped_fpk, tk->fpk);
    if (st == TOK_OK)
        st = ref_lookup_key(kr, tenant_id, tlen, tk->ref_lookup);
    if (st == TOK_OK && sodium_mprotect_readonly(tk) != 0)
        st = TOK_ERR_INTERNAL;
    if (st != TOK_OK) {
        tok_tenant_keys_free(&tk);
        return st;
    }
    *out = tk;
    return TOK_OK;
}

uint32_t tok_tenant_keys_version(const struct tok_tenant_keys *tk)
{
    return tk == NULL ? 0 : tk->version;
}

/* ---- sealing ----------------------------------------------------------------------------- */

static tok_status put_u32(struct tok_buf *b, uint32_t v)
{
    uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return tok_buf_write(b, be, sizeof be);
}

/* Length-prefixed, so no two different field lists serialise to the same bytes. */
static tok_status put_field(struct tok_buf *b, const char *f)
{
    TOK_ENSURE(f != NULL, TOK_ERR_INPUT);
    size_t n = strnlen(f, TOK_KEYRING_ID_MAX + 1);
    TOK_ENSURE(n >= 1 && n <= TOK_KEYRING_ID_MAX, TOK_ERR_INPUT);
    TOK_GUARD(put_u32(b, (uint32_t)n));
    return tok_buf_write(b, f, n);
}

static tok_status seal_ad(const struct tok_tenant_keys *tk, struct tok_aad aad, struct tok_buf *ad)
{
    TOK_ENSURE(aad.tenant_id != NULL, TOK_ERR_INPUT);
    size_t tlen = strnlen(aad.tenant_id, TOK_KEYRING_ID_MAX + 1);
    /* keys of one tenant never seal or open another tenant's values: a caller bug */
    TOK_ENSURE(tlen == tk->tenant_len && tok_slice_eq(tok_slice_of(aad.tenant_id, tlen),
                                                      tk->tenant_id),
               TOK_ERR_INPUT);
    TOK_GUARD(put_field(ad, SEAL_AD_LABEL));
    TOK_GUARD(tok_buf_putc(ad, TOK_SEALED_FORMAT_V1));
    TOK_GUARD(put_u32(ad, tk->version));
    TOK_GUARD(put_field(ad, aad.tenant_id));
    TOK_GUARD(put_field(ad, aad.table));
    TOK_GUARD(put_field(ad, aad.column));
    return put_field(ad, aad.row_id);
}

tok_status tok_tenant_keys_seal(const struct tok_tenant_keys *tk, struct tok_aad aad,
                                struct tok_slice plaintext, struct tok_buf *out)
{
    TOK_ENSURE(tk != NULL && out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(plaintext.ptr != NULL || plaintext.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(plaintext.len <= TOK_SEALED_PLAINTEXT_MAX, TOK_ERR_INPUT);
    uint8_t ad_mem[SEAL_AD_MAX];
    struct tok_buf ad;
    tok_buf_init(&ad, ad_mem, sizeof ad_mem);
    TOK_GUARD(seal_ad(tk, aad, &ad));
    TOK_ENSURE(plaintext.len + TOK_SEALED_OVERHEAD <= (size_t)(out->cap - out->len),
               TOK_ERR_BOUNDS);

    static const uint8_t empty[1] = {0};
    uint8_t nonce[TOK_SEALED_NONCE_LEN];
    tok_rand_public(nonce, sizeof nonce);
    uint32_t start = out->len;
    TOK_GUARD(tok_buf_putc(out, TOK_SEALED_FORMAT_V1));
    TOK_GUARD(tok_buf_write(out, nonce, sizeof nonce));
    unsigned long long clen = 0;
    /* the library writes ciphertext and tag into the space checked above */
    int rc = crypto_aead_xchacha20poly1305_ietf_encrypt(
        out->data + out->len, &clen, plaintext.len > 0 ? plaintext.ptr : empty, plaintext.len,
        ad.data, ad.len, NULL, nonce, tk->dek);
    if (rc != 0 || clen != plaintext.len + TOK_SEALED_TAG_LEN) {
        sodium_memzero(out->data + start, out->cap - start);
        out->len = start;
        return TOK_ERR_CRYPTO;
    }
    out->len += (uint32_t)clen;
    return TOK_OK;
}

tok_status tok_tenant_keys_open(const struct tok_tenant_keys *tk, struct tok_aad aad,
                                struct tok_slice sealed, struct tok_buf *out)
{
    TOK_ENSURE(tk != NULL && out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(sealed.ptr != NULL || sealed.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(sealed.len >= TOK_SEALED_OVERHEAD && sealed.len <= TOK_SEALED_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(sealed.ptr[0] == TOK_SEALED_FORMAT_V1, TOK_ERR_INPUT);
    uint8_t ad_mem[SEAL_AD_MAX];
    struct tok_buf ad;
    tok_buf_init(&ad, ad_mem, sizeof ad_mem);
    TOK_GUARD(seal_ad(tk, aad, &ad));
    size_t plen = sealed.len - TOK_SEALED_OVERHEAD;
    TOK_ENSURE(plen <= (size_t)(out->cap - out->len), TOK_ERR_BOUNDS);

    /* an empty plaintext still needs a valid pointer for the library */
    uint8_t scratch[1];
    uint8_t *dst = plen > 0 ? out->data + out->len : scratch;
    const uint8_t *nonce = sealed.ptr + 1;
    const uint8_t *ct = nonce + TOK_SEALED_NONCE_LEN;
    unsigned long long mlen = 0;
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(dst, &mlen, NULL, ct,
                                                        sealed.len - 1 - TOK_SEALED_NONCE_LEN,
                                                        ad.data, ad.len, nonce, tk->dek);
    if (rc != 0 || mlen != plen) {
        sodium_memzero(dst, plen > 0 ? plen : sizeof scratch);
        return TOK_ERR_CRYPTO;
    }
    out->len += (uint32_t)plen;
    return TOK_OK;
}

tok_status tok_tenant_keys_fingerprint(const struct tok_tenant_keys *tk, struct tok_slice digits,
                                       uint8_t out[TOK_FINGERPRINT_LEN])
{
    TOK_ENSURE(tk != NULL && out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(digits.ptr != NULL, TOK_ERR_INPUT);
    TOK_ENSURE(digits.len >= TOK_FINGERPRINT_DIGITS_MIN && digits.len <= TOK_FINGERPRINT_DIGITS_MAX,
               TOK_ERR_INPUT);
    uint32_t bad = 0;
    for (size_t i = 0; i < digits.len; i++)
        bad |= (uint32_t)((uint32_t)(digits.ptr[i] - '0') > 9u);
    TOK_ENSURE(bad == 0, TOK_ERR_INPUT);
    int rc = crypto_generichash(out, TOK_FINGERPRINT_LEN, digits.ptr, digits.len, tk->fpk,
                                sizeof tk->fpk);
    return rc == 0 ? TOK_OK : TOK_ERR_CRYPTO;
}

tok_status tok_tenant_keys_ref_lookup(const struct tok_tenant_keys *tk, struct tok_slice ref,
                                      uint8_t out[TOK_KEYRING_HASH_LEN])
{
    TOK_ENSURE(tk != NULL && out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(ref.ptr != NULL && ref.len > 0 && ref.len <= TOK_KEYRING_HASH_IN_MAX, TOK_ERR_INPUT);
    int rc = crypto_generichash(out, TOK_KEYRING_HASH_LEN, ref.ptr, ref.len, tk->ref_lookup,
                                sizeof tk->ref_lookup);
    return rc == 0 ? TOK_OK : TOK_ERR_CRYPTO;
}

/* ---- identifiers and API key secrets ------------------------------------------------------ */

static const char *const api_key_prefixes[2][2] = {
    /* [publishable][live] */
    {"sk_test_", "sk_live_"},
    {"pk_test_", "pk_live_"},
};

tok_status tok_api_key_generate(bool publishable, bool live, struct tok_buf *secret_out)
{
    TOK_ENSURE(secret_out != NULL, TOK_ERR_INTERNAL);
    bool allocated = false;
    if (secret_out->data == NULL) {
        TOK_GUARD(tok_buf_alloc(secret_out, TOK_API_KEY_LEN + 1, true));
        allocated = true;
    }
    TOK_ENSURE(secret_out->len <= secret_out->cap, TOK_ERR_INTERNAL);
    if ((size_t)(secret_out->cap - secret_out->len) < TOK_API_KEY_LEN) {
        if (allocated)
            tok_buf_wipe(secret_out);
        return TOK_ERR_BOUNDS;
    }

    uint8_t rnd[TOK_API_KEY_SECRET_BYTES];
    randombytes_buf(rnd, sizeof rnd);
    uint32_t start = secret_out->len;
    tok_status st = tok_buf_puts(secret_out, api_key_prefixes[publishable][live]);
    if (st == TOK_OK)
        st = tok_base62_encode(tok_slice_of(rnd, sizeof rnd), TOK_API_KEY_BODY_CHARS, secret_out);
    sodium_memzero(rnd, sizeof rnd);
    if (st != TOK_OK) {
        sodium_memzero(secret_out->data + start, secret_out->cap - start);
        secret_out->len = start;
        if (allocated)
            tok_buf_wipe(secret_out);
    }
    return st;
}

tok_status tok_api_key_parse_prefix(struct tok_slice key, bool *publishable, bool *live)
{
    TOK_ENSURE(publishable != NULL && live != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(key.ptr != NULL && key.len > 0 && key.len <= TOK_API_KEY_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(key.len == TOK_API_KEY_LEN, TOK_ERR_INPUT);
    struct tok_slice prefix = tok_slice_of(key.ptr, TOK_API_KEY_PREFIX_LEN);
    int kind = -1;
    for (int i = 0; i < 4; i++) {
        if (tok_slice_eq(prefix, api_key_prefixes[i >> 1][i & 1]))
            kind = i;
    }
    TOK_ENSURE(kind >= 0, TOK_ERR_INPUT);

    /* the body must be a value generate could have made: base62 and below 2^256 */
    uint8_t value[TOK_API_KEY_SECRET_BYTES];
    struct tok_slice body = tok_slice_of(key.ptr + TOK_API_KEY_PREFIX_LEN, TOK_API_KEY_BODY_CHARS);
    tok_status st = tok_base62_decode(body, value, sizeof value);
    sodium_memzero(value, sizeof value);
    TOK_ENSURE(st == TOK_OK, TOK_ERR_INPUT);
    *publishable = (kind >> 1) != 0;
    *live = (kind & 1) != 0;
    return TOK_OK;
}

/* ---- process hardening -------------------------------------------------------------------- */

tok_status tok_harden_process(const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    *why = NULL;
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) {
        *why = "setrlimit(RLIMIT_CORE, 0) failed: core dumps could expose keys";
        return TOK_ERR_INTERNAL;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        *why = "prctl(PR_SET_DUMPABLE, 0) failed: the process could be dumped or traced";
        return TOK_ERR_INTERNAL;
    }
    return TOK_OK;
}
