/*
 * master_key_pkcs11.c - the PKCS#11 master key provider (master_key.h): the KEK is a
 * non-extractable AES-256 key in a token, and every wrap, unwrap and sub-key derivation is
 * one call into the token. The module is loaded with dlopen and used through its function
 * list (PKCS#11 v2.40, p11-kit's header), so nothing is linked in and tokend needs no
 * PKCS#11 library unless --master-key-pkcs11 is given.
 *
 * This file never holds the KEK: only the tenant keys on their way in and out of the token
 * (in buffers the keyring owns, or on this stack and wiped) and the PIN (locked memory,
 * wiped once C_Login has it).
 */
#include "tokend/vault/master_key.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TOK_PKCS11_PROXY
#define TOK_PKCS11_PROXY "p11-kit-proxy.so" /* the Makefile gives pkg-config's full path */
#endif

#define P11_SCHEME "pkcs11:"
#define P11_TOKEN_LABEL_LEN 32 /* CK_TOKEN_INFO.label, blank-padded */
#define P11_OBJECT_MAX 128
#define P11_ID_MAX 64
#define P11_PATH_MAX 1024
#define P11_SLOTS_MAX 256
#define P11_WHY_MAX 512
#define P11_TAG_LEN 16
#define P11_CMAC_LEN 16
#define P11_SUBKEY_LABEL "tokend:v1:subkey-root"
#define P11_SELF_TEST_AD "tokend:v1:self-test"
#define P11_ROOT_APP "tokend:v1:subkey-root"    /* CKA_APPLICATION of the root's data object */
#define P11_ROOT_AD "tokend:v1:subkey-root:obj" /* its GCM associated data */
#define P11_MODULES_MAX 8
#define P11_LOGINS_MAX 8

/* What an RFC 7512 URI names, decoded. No secret here: pin-value is refused. */
struct p11_uri {
    char token[P11_TOKEN_LABEL_LEN + 1];
    char object[P11_OBJECT_MAX + 1];
    uint8_t id[P11_ID_MAX];
    size_t id_len;
    bool has_token, has_object, has_id, has_type;
    char module[P11_PATH_MAX];
    char pin_file[P11_PATH_MAX];
};

struct p11 {
    struct tok_master_key base;
    pthread_mutex_t lock; /* one session: PKCS#11 allows one operation at a time in it */
    bool lock_ready;
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    bool registered; /* counted in the module registry below */
    bool has_session;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE key;
    bool has_root; /* the key carries its line's sub-key root (master_key.h), wrapped by it */
    uint8_t root_wrapped[TOK_KEYRING_WRAPPED_LEN];
};

/*
 * The module registry. C_Initialize, C_Finalize and the login state are per process and
 * per token, not per session (PKCS#11 v2.40, sections 5.4 and 5.6), and during a master
 * rotation two providers may share a module and even a token. So the module is initialised
 * by its first provider and finalised after its last, and a second login to a token this
 * process is logged in to already (CKR_USER_ALREADY_LOGGED_IN, which the token answers
 * without looking at the PIN) is checked against a keyed hash of the PIN that logged in,
 * so a wrong PIN is refused there too. Process-wide state, like the module's own; guarded.
 */
struct p11_login {
    CK_SLOT_ID slot;
    uint8_t pin_mac[crypto_generichash_BYTES];
};

static struct {
    pthread_mutex_t lock;
    bool keyed;
    uint8_t key[crypto_generichash_KEYBYTES]; /* random, for the PIN hashes */
    struct {
        CK_FUNCTION_LIST_PTR f;
        unsigned users;
        bool we_init; /* we called C_Initialize, so the last user calls C_Finalize */
        unsigned n_logins;
        struct p11_login logins[P11_LOGINS_MAX];
    } mods[P11_MODULES_MAX];
} registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local char why_mem[P11_WHY_MAX];

static const char *why_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line in thread-local memory (a failed format keeps the format string itself). */
static const char *why_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why_mem, sizeof why_mem, fmt, ap);
    va_end(ap);
    return n < 0 ? fmt : why_mem;
}

static const char *rv_name(CK_RV rv)
{
    static _Thread_local char hex[32];
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
    case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
    case CKR_KEY_TYPE_INCONSISTENT: return "CKR_KEY_TYPE_INCONSISTENT";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_OPERATION_ACTIVE: return "CKR_OPERATION_ACTIVE";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
    case CKR_PIN_EXPIRED: return "CKR_PIN_EXPIRED";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_NOT_RECOGNIZED: return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_TOKEN_WRITE_PROTECTED: return "CKR_TOKEN_WRITE_PROTECTED";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_CRYPTOKI_ALREADY_INITIALIZED: return "CKR_CRYPTOKI_ALREADY_INITIALIZED";
    default:
        snprintf(hex, sizeof hex, "CKR 0x%lx", (unsigned long)rv);
        return hex;
    }
}

/* ---- RFC 7512 URIs ----------------------------------------------------------------------- */

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes v[0..n) into out (cap bytes, NUL-terminated when text). A text value may
 * not hold a NUL byte. */
static tok_status pct_decode(const char *v, size_t n, uint8_t *out, size_t cap, size_t *len,
                             bool text)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)v[i];
        if (c == '%') {
            TOK_ENSURE(i + 2 < n, TOK_ERR_INPUT);
            int hi = hex_val(v[i + 1]), lo = hex_val(v[i + 2]);
            TOK_ENSURE(hi >= 0 && lo >= 0, TOK_ERR_INPUT);
            c = hi * 16 + lo;
            i += 2;
        }
        TOK_ENSURE(!text || c != 0, TOK_ERR_INPUT);
        TOK_ENSURE(o < cap - (text ? 1 : 0), TOK_ERR_INPUT);
        out[o++] = (uint8_t)c;
    }
    if (text)
        out[o] = 0;
    *len = o;
    return TOK_OK;
}

static bool name_is(const char *a, size_t alen, const char *name)
{
    return alen == strlen(name) && strncmp(a, name, alen) == 0;
}

/* One "name=value" of the path (query false) or the query (query true). */
static tok_status uri_attr(struct p11_uri *u, const char *a, size_t n, bool query,
                           const char **why)
{
    const char *eq = memchr(a, '=', n);
    if (eq == NULL) {
        *why = why_fmt("PKCS#11 URI: '%.*s' is not name=value", (int)(n > 64 ? 64 : n), a);
        return TOK_ERR_INPUT;
    }
    size_t nlen = (size_t)(eq - a);
    const char *v = eq + 1;
    size_t vlen = n - nlen - 1;
    size_t len = 0;
    bool dup = false;
    tok_status st = TOK_OK;
    char type[16];
    if (!query && name_is(a, nlen, "token")) {
        dup = u->has_token;
        u->has_token = true;
        st = pct_decode(v, vlen, (uint8_t *)u->token, sizeof u->token, &len, true);
    } else if (!query && name_is(a, nlen, "object")) {
        dup = u->has_object;
        u->has_object = true;
        st = pct_decode(v, vlen, (uint8_t *)u->object, sizeof u->object, &len, true);
    } else if (!query && name_is(a, nlen, "id")) {
        dup = u->has_id;
        u->has_id = true;
        st = pct_decode(v, vlen, u->id, sizeof u->id, &u->id_len, false);
        len = u->id_len;
    } else if (!query && name_is(a, nlen, "type")) {
        dup = u->has_type;
        u->has_type = true;
        st = pct_decode(v, vlen, (uint8_t *)type, sizeof type, &len, true);
        if (st == TOK_OK && strcmp(type, "secret-key") != 0) {
            *why = "PKCS#11 URI: the master key is type=secret-key";
            return TOK_ERR_INPUT;
        }
    } else if (query && name_is(a, nlen, "module-path")) {
        dup = u->module[0] != '\0';
        st = pct_decode(v, vlen, (uint8_t *)u->module, sizeof u->module, &len, true);
    } else if (query && name_is(a, nlen, "pin-source")) {
        dup = u->pin_file[0] != '\0';
        st = pct_decode(v, vlen, (uint8_t *)u->pin_file, sizeof u->pin_file, &len, true);
    } else if (query && name_is(a, nlen, "pin-value")) {
        *why = "PKCS#11 URI: pin-value is refused (it shows in ps and logs): put the PIN in a "
               "file (pin-source=file:... or --master-key-pin-file)";
        return TOK_ERR_INPUT;
    } else {
        *why = why_fmt("PKCS#11 URI: attribute '%.*s' is not supported (token, object, id, type;"
                       " ?module-path, pin-source)",
                       (int)(nlen > 32 ? 32 : nlen), a);
        return TOK_ERR_INPUT;
    }
    if (dup) {
        *why = why_fmt("PKCS#11 URI: '%.*s' appears twice", (int)(nlen > 32 ? 32 : nlen), a);
        return TOK_ERR_INPUT;
    }
    if (st != TOK_OK || len == 0) {
        *why = why_fmt("PKCS#11 URI: bad or empty value for '%.*s'", (int)(nlen > 32 ? 32 : nlen),
                       a);
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

/* pkcs11:token=...;object=...[;id=...][;type=secret-key][?module-path=...&pin-source=...] */
static tok_status uri_parse(const char *uri, struct p11_uri *u, const char **why)
{
    memset(u, 0, sizeof *u);
    size_t n = strnlen(uri, TOK_PKCS11_URI_MAX + 1);
    /* the scheme is case-insensitive (RFC 3986 section 3.1) */
    if (n > TOK_PKCS11_URI_MAX || strncasecmp(uri, P11_SCHEME, sizeof P11_SCHEME - 1) != 0) {
        *why = "not a PKCS#11 URI (pkcs11:token=...;object=...)";
        return TOK_ERR_INPUT;
    }
    const char *p = uri + sizeof P11_SCHEME - 1, *end = uri + n;
    const char *q = memchr(p, '?', (size_t)(end - p));
    const char *path_end = q != NULL ? q : end;
    while (p < path_end) {
        const char *sep = memchr(p, ';', (size_t)(path_end - p));
        const char *e = sep != NULL ? sep : path_end;
        if (e > p)
            TOK_GUARD(uri_attr(u, p, (size_t)(e - p), false, why));
        p = e + 1;
    }
    for (p = q != NULL ? q + 1 : end; p < end;) {
        const char *sep = memchr(p, '&', (size_t)(end - p));
        const char *e = sep != NULL ? sep : end;
        if (e > p)
            TOK_GUARD(uri_attr(u, p, (size_t)(e - p), true, why));
        p = e + 1;
    }
    if (!u->has_token || !u->has_object) {
        *why = "PKCS#11 URI: give both token= and object= (the labels of the token and the key)";
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

/* ---- the PIN ----------------------------------------------------------------------------- */

/* pin-source is "file:PATH", "file://PATH" or a plain absolute path (RFC 7512 section 2.3). */
static const char *pin_path(const char *source)
{
    if (strncmp(source, "file://", 7) == 0)
        return source + 7;
    if (strncmp(source, "file:", 5) == 0)
        return source + 5;
    return source;
}

/* Reads the PIN file into pin (locked memory of TOK_PKCS11_PIN_MAX + 2 bytes): a regular
 * file, mode 0600 or tighter, 1..TOK_PKCS11_PIN_MAX bytes and one optional '\n'. */
static tok_status read_pin(const char *path, uint8_t *pin, size_t *pin_len, const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        *why = why_fmt("PKCS#11 PIN file %s: %s", errno == ENOENT ? "not found" : "cannot be opened",
                       path);
        return TOK_ERR_IO;
    }
    struct stat sb;
    tok_status st = TOK_OK;
    size_t n = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        *why = why_fmt("PKCS#11 PIN file is not a regular file: %s", path);
        st = TOK_ERR_INPUT;
    } else if ((sb.st_mode & 077) != 0) {
        *why = why_fmt("PKCS#11 PIN file is readable by group or others (chmod 600): %s", path);
        st = TOK_ERR_INPUT;
    }
    while (st == TOK_OK && n < TOK_PKCS11_PIN_MAX + 2) {
        ssize_t r = read(fd, pin + n, TOK_PKCS11_PIN_MAX + 2 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *why = why_fmt("PKCS#11 PIN file cannot be read: %s", path);
            st = TOK_ERR_IO;
        }
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    (void)close(fd);
    if (st == TOK_OK && n > 0 && pin[n - 1] == '\n')
        n--;
    if (st == TOK_OK && (n == 0 || n > TOK_PKCS11_PIN_MAX)) {
        *why = why_fmt("PKCS#11 PIN file must hold 1 to %d bytes: %s", TOK_PKCS11_PIN_MAX, path);
        st = TOK_ERR_INPUT;
    }
    *pin_len = st == TOK_OK ? n : 0;
    return st;
}

/* ---- sessions ---------------------------------------------------------------------------- */

/* The registry's entry for f, or -1. Called with registry.lock held. */
static int module_find(CK_FUNCTION_LIST_PTR f)
{
    for (int i = 0; i < P11_MODULES_MAX; i++)
        if (registry.mods[i].users > 0 && registry.mods[i].f == f)
            return i;
    return -1;
}

/* One user less of the module; the last one finalises it if we initialised it. */
static void module_release(struct p11 *p)
{
    if (!p->registered)
        return;
    p->registered = false;
    pthread_mutex_lock(&registry.lock);
    int m = module_find(p->f);
    if (m >= 0 && --registry.mods[m].users == 0) {
        if (registry.mods[m].we_init)
            (void)p->f->C_Finalize(NULL);
        sodium_memzero(&registry.mods[m], sizeof registry.mods[m]);
    }
    pthread_mutex_unlock(&registry.lock);
}

static void p11_close(struct p11 *p)
{
    if (p->has_session)
        (void)p->f->C_CloseSession(p->session);
    p->has_session = false;
    module_release(p);
    if (p->dl != NULL)
        (void)dlclose(p->dl);
    p->dl = NULL;
    if (p->lock_ready)
        pthread_mutex_destroy(&p->lock);
    p->lock_ready = false;
}

static tok_status load_module(struct p11 *p, const char *module, const char **why)
{
    (void)dlerror();
    p->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        const char *e = dlerror();
        *why = why_fmt("PKCS#11 module cannot be loaded: %.300s", e != NULL ? e : module);
        return TOK_ERR_CRYPTO;
    }
    CK_C_GetFunctionList get = NULL;
    void *sym = dlsym(p->dl, "C_GetFunctionList");
    /* POSIX dlsym: a function pointer comes back as void * */
    tok_copy(&get, &sym, sizeof get);
    CK_RV rv = get != NULL ? get(&p->f) : CKR_FUNCTION_FAILED;
    if (rv != CKR_OK || p->f == NULL) {
        *why = why_fmt("PKCS#11 module %s has no function list (%s)", module, rv_name(rv));
        return TOK_ERR_CRYPTO;
    }
    pthread_mutex_lock(&registry.lock);
    int m = module_find(p->f);
    if (m >= 0) {
        registry.mods[m].users++;
        p->registered = true;
        pthread_mutex_unlock(&registry.lock);
        return TOK_OK;
    }
    for (int i = 0; i < P11_MODULES_MAX && m < 0; i++)
        if (registry.mods[i].users == 0)
            m = i;
    if (m < 0) {
        pthread_mutex_unlock(&registry.lock);
        *why = "too many PKCS#11 modules in one process";
        return TOK_ERR_INTERNAL;
    }
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    rv = p->f->C_Initialize(&args);
    if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        registry.mods[m].f = p->f;
        registry.mods[m].users = 1;
        registry.mods[m].we_init = rv == CKR_OK;
        registry.mods[m].n_logins = 0;
        p->registered = true;
    }
    pthread_mutex_unlock(&registry.lock);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        *why = why_fmt("PKCS#11 module %s failed to initialise (%s)", module, rv_name(rv));
        return TOK_ERR_CRYPTO;
    }
    return TOK_OK;
}

/*
 * Records (logged_in) or checks (already) the PIN that logged this process in to the token
 * in slot: false when a second provider brings another PIN than the one that logged in
 * (module registry above). A token not logged in by us is not checked.
 */
static bool login_pin(struct p11 *p, CK_SLOT_ID slot, const uint8_t *pin, size_t pin_len,
                      bool logged_in)
{
    uint8_t mac[crypto_generichash_BYTES];
    bool ok = true;
    pthread_mutex_lock(&registry.lock);
    if (!registry.keyed) {
        randombytes_buf(registry.key, sizeof registry.key);
        registry.keyed = true;
    }
    (void)crypto_generichash(mac, sizeof mac, pin, pin_len, registry.key, sizeof registry.key);
    int m = module_find(p->f);
    struct p11_login *l = NULL;
    for (unsigned i = 0; m >= 0 && i < registry.mods[m].n_logins; i++)
        if (registry.mods[m].logins[i].slot == slot)
            l = &registry.mods[m].logins[i];
    if (m >= 0 && l == NULL && registry.mods[m].n_logins < P11_LOGINS_MAX && logged_in) {
        l = &registry.mods[m].logins[registry.mods[m].n_logins++];
        l->slot = slot;
    }
    if (l != NULL && logged_in)
        tok_copy(l->pin_mac, mac, sizeof mac);
    else if (l != NULL)
        ok = sodium_memcmp(l->pin_mac, mac, sizeof mac) == 0;
    pthread_mutex_unlock(&registry.lock);
    sodium_memzero(mac, sizeof mac);
    return ok;
}

static bool label_is(const CK_UTF8CHAR label[P11_TOKEN_LABEL_LEN], const char *want)
{
    size_t n = P11_TOKEN_LABEL_LEN;
    while (n > 0 && (label[n - 1] == ' ' || label[n - 1] == '\0'))
        n--;
    return n == strlen(want) && memcmp(label, want, n) == 0;
}

static tok_status find_slot(struct p11 *p, const struct p11_uri *u, const char *module,
                            CK_SLOT_ID *slot, const char **why)
{
    CK_SLOT_ID slots[P11_SLOTS_MAX];
    CK_ULONG n = P11_SLOTS_MAX;
    CK_RV rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK) {
        *why = why_fmt("PKCS#11 module %s cannot list its tokens (%s)", module, rv_name(rv));
        return TOK_ERR_CRYPTO;
    }
    int found = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (p->f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && label_is(ti.label, u->token)) {
            *slot = slots[i];
            found++;
        }
    }
    if (found == 0) {
        *why = why_fmt("PKCS#11 token '%s' not found (module %s)", u->token, module);
        return TOK_ERR_NOTFOUND;
    }
    if (found > 1) {
        *why = why_fmt("PKCS#11 token label '%s' is on %d tokens: relabel one", u->token, found);
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

/* Loads the module, opens a session on the token and logs in. */
static tok_status p11_connect(struct p11 *p, const struct p11_uri *u, const char *pin_file,
                              bool rw, const char **why)
{
    if (pin_file != NULL && pin_file[0] != '\0' && u->pin_file[0] != '\0') {
        *why = "give the PIN file once: --master-key-pin-file or pin-source in the URI";
        return TOK_ERR_INPUT;
    }
    const char *pin_src = u->pin_file[0] != '\0' ? pin_path(u->pin_file) : pin_file;
    if (pin_src == NULL || pin_src[0] == '\0') {
        *why = "no PKCS#11 PIN: set --master-key-pin-file or pin-source=file:... in the URI";
        return TOK_ERR_INPUT;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        *why = "cannot create a mutex";
        return TOK_ERR_INTERNAL;
    }
    p->lock_ready = true;
    uint8_t *pin = sodium_malloc(TOK_PKCS11_PIN_MAX + 2);
    if (pin == NULL) {
        *why = "out of memory for the PKCS#11 PIN";
        return TOK_ERR_NOMEM;
    }
    size_t pin_len = 0;
    const char *module = u->module[0] != '\0' ? u->module : TOK_PKCS11_PROXY;
    CK_SLOT_ID slot = 0;
    tok_status st = read_pin(pin_src, pin, &pin_len, why);
    if (st == TOK_OK)
        st = load_module(p, module, why);
    if (st == TOK_OK)
        st = find_slot(p, u, module, &slot, why);
    CK_RV rv = CKR_OK;
    if (st == TOK_OK) {
        CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
        rv = p->f->C_OpenSession(slot, flags, NULL, NULL, &p->session);
        if (rv != CKR_OK) {
            *why = why_fmt("PKCS#11 token '%s': cannot open a session (%s)", u->token,
                           rv_name(rv));
            st = TOK_ERR_CRYPTO;
        }
        p->has_session = rv == CKR_OK;
    }
    if (st == TOK_OK) {
        rv = p->f->C_Login(p->session, CKU_USER, pin, pin_len);
        if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE) {
            *why = why_fmt("PKCS#11 login to token '%s' refused: wrong PIN (%s)", u->token,
                           rv_name(rv));
            st = TOK_ERR_CRYPTO;
        } else if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
            *why = why_fmt("PKCS#11 login to token '%s' failed (%s)", u->token, rv_name(rv));
            st = TOK_ERR_CRYPTO;
        } else if (!login_pin(p, slot, pin, pin_len, rv == CKR_OK)) {
            *why = why_fmt("PKCS#11 login to token '%s' refused: wrong PIN (not the one this "
                           "process logged in with)",
                           u->token);
            st = TOK_ERR_CRYPTO;
        }
    }
    sodium_free(pin); /* zeroes before releasing */
    return st;
}

/* The secret keys labelled u->object (and u->id): *count of them, the first in *key. */
static tok_status find_key(struct p11 *p, const struct p11_uri *u, CK_OBJECT_HANDLE *key,
                           CK_ULONG *count, const char **why)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)u->object, strlen(u->object)},
        {CKA_ID, (void *)u->id, u->id_len},
    };
    CK_OBJECT_HANDLE found[2];
    *count = 0;
    CK_RV rv = p->f->C_FindObjectsInit(p->session, tmpl, u->has_id ? 3 : 2);
    if (rv == CKR_OK) {
        rv = p->f->C_FindObjects(p->session, found, 2, count);
        CK_RV frv = p->f->C_FindObjectsFinal(p->session);
        if (rv == CKR_OK)
            rv = frv;
    }
    if (rv != CKR_OK) {
        *why = why_fmt("PKCS#11 token '%s': cannot search for keys (%s)", u->token, rv_name(rv));
        return TOK_ERR_CRYPTO;
    }
    if (*count > 0)
        *key = found[0];
    return TOK_OK;
}

/* The data objects holding the sub-key root of the key labelled u->object: *count of them
 * (up to 2), the first in *obj. */
static tok_status find_root(struct p11 *p, const struct p11_uri *u, CK_OBJECT_HANDLE *obj,
                            CK_ULONG *count, const char **why)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)u->object, strlen(u->object)},
        {CKA_APPLICATION, (void *)P11_ROOT_APP, sizeof P11_ROOT_APP - 1},
    };
    CK_OBJECT_HANDLE found[2];
    *count = 0;
    CK_RV rv = p->f->C_FindObjectsInit(p->session, tmpl, TOK_ARRAY_LEN(tmpl));
    if (rv == CKR_OK) {
        rv = p->f->C_FindObjects(p->session, found, 2, count);
        CK_RV frv = p->f->C_FindObjectsFinal(p->session);
        if (rv == CKR_OK)
            rv = frv;
    }
    if (rv != CKR_OK) {
        *why = why_fmt("PKCS#11 token '%s': cannot search for data objects (%s)", u->token,
                       rv_name(rv));
        return TOK_ERR_CRYPTO;
    }
    if (*count > 0)
        *obj = found[0];
    return TOK_OK;
}

/* Reads the wrapped sub-key root the key carries, when it carries one (master_key.h). */
static tok_status read_root(struct p11 *p, const struct p11_uri *u, const char **why)
{
    CK_OBJECT_HANDLE obj = 0;
    CK_ULONG count = 0;
    TOK_GUARD(find_root(p, u, &obj, &count, why));
    if (count == 0)
        return TOK_OK;
    if (count > 1) {
        *why = why_fmt("PKCS#11 token '%s' has several sub-key root objects '%s'", u->token,
                       u->object);
        return TOK_ERR_INPUT;
    }
    CK_ATTRIBUTE a = {CKA_VALUE, p->root_wrapped, sizeof p->root_wrapped};
    CK_RV rv = p->f->C_GetAttributeValue(p->session, obj, &a, 1);
    if (rv != CKR_OK || a.ulValueLen != sizeof p->root_wrapped) {
        *why = why_fmt("PKCS#11 token '%s': the sub-key root object '%s' cannot be read or is "
                       "not %d bytes (%s)",
                       u->token, u->object, TOK_KEYRING_WRAPPED_LEN, rv_name(rv));
        return TOK_ERR_INPUT;
    }
    p->has_root = true;
    return TOK_OK;
}

/* ---- operations in the token ------------------------------------------------------------- */

static CK_RV gcm_wrap(struct p11 *p, struct tok_slice ad, const uint8_t key[TOK_KEYRING_KEY_LEN],
                      struct tok_buf *out)
{
    static const uint8_t reserved[TOK_PKCS11_RESERVED_LEN] = {0};
    uint8_t iv[TOK_PKCS11_GCM_IV_LEN];
    uint8_t ct[TOK_KEYRING_KEY_LEN + P11_TAG_LEN];
    randombytes_buf(iv, sizeof iv);
    CK_GCM_PARAMS gp = {iv, sizeof iv, 8 * sizeof iv, (CK_BYTE_PTR)ad.ptr, ad.len,
                        8 * P11_TAG_LEN};
    CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof gp};
    CK_ULONG clen = sizeof ct;
    pthread_mutex_lock(&p->lock);
    CK_RV rv = p->f->C_EncryptInit(p->session, &m, p->key);
    if (rv == CKR_OK)
        rv = p->f->C_Encrypt(p->session, (CK_BYTE_PTR)key, TOK_KEYRING_KEY_LEN, ct, &clen);
    pthread_mutex_unlock(&p->lock);
    if (rv == CKR_OK && clen != sizeof ct)
        rv = CKR_FUNCTION_FAILED;
    uint32_t start = out->len;
    if (rv == CKR_OK && (tok_buf_write(out, iv, sizeof iv) != TOK_OK ||
                         tok_buf_write(out, reserved, sizeof reserved) != TOK_OK ||
                         tok_buf_write(out, ct, sizeof ct) != TOK_OK)) {
        out->len = start;
        rv = CKR_FUNCTION_FAILED;
    }
    return rv;
}

static CK_RV gcm_unwrap(struct p11 *p, struct tok_slice ad, struct tok_slice wrapped,
                        uint8_t key[TOK_KEYRING_KEY_LEN])
{
    const size_t head = TOK_PKCS11_GCM_IV_LEN + TOK_PKCS11_RESERVED_LEN;
    if (wrapped.len != TOK_KEYRING_WRAPPED_LEN ||
        !sodium_is_zero(wrapped.ptr + TOK_PKCS11_GCM_IV_LEN, TOK_PKCS11_RESERVED_LEN))
        return CKR_ENCRYPTED_DATA_INVALID;
    /* room for the ciphertext and tag: some tokens want it before they strip the tag */
    uint8_t pt[TOK_KEYRING_KEY_LEN + P11_TAG_LEN];
    CK_GCM_PARAMS gp = {(CK_BYTE_PTR)wrapped.ptr, TOK_PKCS11_GCM_IV_LEN, 8 * TOK_PKCS11_GCM_IV_LEN,
                        (CK_BYTE_PTR)ad.ptr, ad.len, 8 * P11_TAG_LEN};
    CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof gp};
    CK_ULONG plen = sizeof pt;
    pthread_mutex_lock(&p->lock);
    CK_RV rv = p->f->C_DecryptInit(p->session, &m, p->key);
    if (rv == CKR_OK)
        rv = p->f->C_Decrypt(p->session, (CK_BYTE_PTR)wrapped.ptr + head, wrapped.len - head, pt,
                             &plen);
    pthread_mutex_unlock(&p->lock);
    if (rv == CKR_OK && plen != TOK_KEYRING_KEY_LEN)
        rv = CKR_ENCRYPTED_DATA_INVALID;
    if (rv == CKR_OK)
        tok_copy(key, pt, TOK_KEYRING_KEY_LEN);
    else
        sodium_memzero(key, TOK_KEYRING_KEY_LEN);
    sodium_memzero(pt, sizeof pt);
    return rv;
}

/* NIST SP 800-108 counter mode, PRF = CMAC in the token (master_key.h). */
static CK_RV cmac_root(struct p11 *p, uint8_t root[TOK_KEYRING_KEY_LEN])
{
    uint8_t msg[4 + sizeof P11_SUBKEY_LABEL + 4];
    const size_t llen = sizeof P11_SUBKEY_LABEL - 1;
    memset(msg, 0, sizeof msg);
    tok_copy(msg + 4, P11_SUBKEY_LABEL, llen); /* then the 0x00 separator */
    msg[4 + llen + 1 + 2] = 0x01;             /* L = 256 bits, 4 bytes big-endian */
    CK_MECHANISM m = {CKM_AES_CMAC, NULL, 0};
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&p->lock);
    for (uint8_t i = 1; rv == CKR_OK && i <= TOK_KEYRING_KEY_LEN / P11_CMAC_LEN; i++) {
        msg[3] = i;
        CK_ULONG olen = P11_CMAC_LEN;
        rv = p->f->C_SignInit(p->session, &m, p->key);
        if (rv == CKR_OK)
            rv = p->f->C_Sign(p->session, msg, sizeof msg, root + (i - 1) * P11_CMAC_LEN, &olen);
        if (rv == CKR_OK && olen != P11_CMAC_LEN)
            rv = CKR_FUNCTION_FAILED;
    }
    pthread_mutex_unlock(&p->lock);
    if (rv != CKR_OK)
        sodium_memzero(root, TOK_KEYRING_KEY_LEN);
    return rv;
}

static tok_status p11_wrap(struct tok_master_key *mk, struct tok_slice ad,
                           const uint8_t key[TOK_KEYRING_KEY_LEN], struct tok_buf *out)
{
    return gcm_wrap((struct p11 *)mk, ad, key, out) == CKR_OK ? TOK_OK : TOK_ERR_CRYPTO;
}

static tok_status p11_unwrap(struct tok_master_key *mk, struct tok_slice ad,
                             struct tok_slice wrapped, uint8_t key[TOK_KEYRING_KEY_LEN])
{
    return gcm_unwrap((struct p11 *)mk, ad, wrapped, key) == CKR_OK ? TOK_OK : TOK_ERR_CRYPTO;
}

/* The root the key carries (made by keys new-master --pkcs11 from an earlier key of the
 * line, so API-key hashes survive the move), else the one derived from the key itself. */
static tok_status p11_sub_root(struct tok_master_key *mk, uint8_t root[TOK_KEYRING_KEY_LEN])
{
    struct p11 *p = (struct p11 *)mk;
    CK_RV rv = p->has_root ? gcm_unwrap(p, tok_slice_str(P11_ROOT_AD),
                                        tok_slice_of(p->root_wrapped, sizeof p->root_wrapped),
                                        root)
                           : cmac_root(p, root);
    return rv == CKR_OK ? TOK_OK : TOK_ERR_CRYPTO;
}

static void p11_free(struct tok_master_key *mk)
{
    struct p11 *p = (struct p11 *)mk;
    p11_close(p);
    free(p);
}

static const struct tok_master_key_ops p11_ops = {"pkcs11", p11_wrap, p11_unwrap, p11_sub_root,
                                                  p11_free};

/* ---- opening ----------------------------------------------------------------------------- */

/* The key must be an AES-256 key the token will never hand out. */
static tok_status check_key(struct p11 *p, const struct p11_uri *u, const char **why)
{
    CK_KEY_TYPE type = 0;
    CK_ULONG len = 0;
    CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
    CK_ATTRIBUTE a[] = {
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VALUE_LEN, &len, sizeof len},
        {CKA_SENSITIVE, &sensitive, sizeof sensitive},
        {CKA_EXTRACTABLE, &extractable, sizeof extractable},
    };
    CK_RV rv = p->f->C_GetAttributeValue(p->session, p->key, a, TOK_ARRAY_LEN(a));
    if (rv != CKR_OK) {
        *why = why_fmt("PKCS#11 key '%s': cannot read its attributes (%s)", u->object,
                       rv_name(rv));
        return TOK_ERR_CRYPTO;
    }
    if (type != CKK_AES || len != TOK_KEYRING_KEY_LEN) {
        *why = why_fmt("PKCS#11 key '%s' is not an AES-256 key", u->object);
        return TOK_ERR_INPUT;
    }
    if (extractable != CK_FALSE || sensitive != CK_TRUE) {
        *why = why_fmt("PKCS#11 key '%s' can leave the token (CKA_EXTRACTABLE true or "
                       "CKA_SENSITIVE false): make a new one with tokenctl keys hsm-init",
                       u->object);
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

/* Wraps and unwraps a random key and derives the sub-key root once: a token that cannot do
 * either is refused now, with its reason, rather than at the first tenant. */
static tok_status self_test(struct p11 *p, const struct p11_uri *u, const char **why)
{
    uint8_t *k = sodium_malloc(3 * TOK_KEYRING_KEY_LEN);
    uint8_t wrapped_mem[TOK_KEYRING_WRAPPED_LEN];
    if (k == NULL) {
        *why = "out of memory";
        return TOK_ERR_NOMEM;
    }
    struct tok_buf wrapped;
    tok_buf_init(&wrapped, wrapped_mem, sizeof wrapped_mem);
    struct tok_slice ad = tok_slice_str(P11_SELF_TEST_AD);
    randombytes_buf(k, TOK_KEYRING_KEY_LEN);
    tok_status st = TOK_OK;
    CK_RV rv = gcm_wrap(p, ad, k, &wrapped);
    if (rv == CKR_OK)
        rv = gcm_unwrap(p, ad, tok_buf_slice(&wrapped), k + TOK_KEYRING_KEY_LEN);
    if (rv != CKR_OK) {
        *why = why_fmt("PKCS#11 key '%s' cannot wrap with CKM_AES_GCM (%s): it needs CKA_ENCRYPT"
                       " and CKA_DECRYPT",
                       u->object, rv_name(rv));
        st = TOK_ERR_CRYPTO;
    } else if (sodium_memcmp(k, k + TOK_KEYRING_KEY_LEN, TOK_KEYRING_KEY_LEN) != 0) {
        *why = why_fmt("PKCS#11 key '%s': the token unwrapped another key than it wrapped",
                       u->object);
        st = TOK_ERR_CRYPTO;
    }
    if (st == TOK_OK && !p->has_root &&
        (rv = cmac_root(p, k + 2 * TOK_KEYRING_KEY_LEN)) != CKR_OK) {
        *why = why_fmt("PKCS#11 key '%s' cannot sign with CKM_AES_CMAC (%s): it needs CKA_SIGN",
                       u->object, rv_name(rv));
        st = TOK_ERR_CRYPTO;
    }
    if (st == TOK_OK && p->has_root &&
        (rv = gcm_unwrap(p, tok_slice_str(P11_ROOT_AD),
                         tok_slice_of(p->root_wrapped, sizeof p->root_wrapped),
                         k + 2 * TOK_KEYRING_KEY_LEN)) != CKR_OK) {
        *why = why_fmt("PKCS#11 key '%s': its sub-key root object does not open under it (%s)",
                       u->object, rv_name(rv));
        st = TOK_ERR_CRYPTO;
    }
    sodium_free(k);
    return st;
}

tok_status tok_master_key_pkcs11_open(const char *uri, const char *pin_file,
                                      struct tok_master_key **out, const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    *why = NULL;
    TOK_ENSURE(uri != NULL && out != NULL, TOK_ERR_INTERNAL);
    *out = NULL;
    if (sodium_init() < 0) {
        *why = "libsodium failed to initialise";
        return TOK_ERR_CRYPTO;
    }
    struct p11_uri u;
    TOK_GUARD(uri_parse(uri, &u, why));
    struct p11 *p = calloc(1, sizeof *p);
    if (p == NULL) {
        *why = "out of memory";
        return TOK_ERR_NOMEM;
    }
    p->base.ops = &p11_ops;
    tok_status st = p11_connect(p, &u, pin_file, false, why);
    CK_ULONG count = 0;
    if (st == TOK_OK)
        st = find_key(p, &u, &p->key, &count, why);
    if (st == TOK_OK && count == 0) {
        *why = why_fmt("PKCS#11 token '%s' has no secret key '%s'%s", u.token, u.object,
                       u.has_id ? " with that id" : "");
        st = TOK_ERR_NOTFOUND;
    } else if (st == TOK_OK && count > 1) {
        *why = why_fmt("PKCS#11 token '%s' has several secret keys '%s': add id= to the URI",
                       u.token, u.object);
        st = TOK_ERR_INPUT;
    }
    if (st == TOK_OK)
        st = check_key(p, &u, why);
    if (st == TOK_OK)
        st = read_root(p, &u, why);
    if (st == TOK_OK)
        st = self_test(p, &u, why);
    if (st != TOK_OK) {
        p11_free(&p->base);
        return st;
    }
    *out = &p->base;
    return TOK_OK;
}

/* Stores root, wrapped by p->key, as a private data object beside the key (master_key.h). */
static tok_status create_root(struct p11 *p, const struct p11_uri *u,
                              const uint8_t root[TOK_KEYRING_KEY_LEN], const char **why)
{
    uint8_t wrapped_mem[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf wrapped;
    tok_buf_init(&wrapped, wrapped_mem, sizeof wrapped_mem);
    CK_RV rv = gcm_wrap(p, tok_slice_str(P11_ROOT_AD), root, &wrapped);
    if (rv == CKR_OK) {
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
        CK_ATTRIBUTE tmpl[] = {
            {CKA_CLASS, &cls, sizeof cls},
            {CKA_TOKEN, &yes, sizeof yes},
            {CKA_PRIVATE, &yes, sizeof yes},
            {CKA_MODIFIABLE, &no, sizeof no},
            {CKA_LABEL, (void *)u->object, strlen(u->object)},
            {CKA_APPLICATION, (void *)P11_ROOT_APP, sizeof P11_ROOT_APP - 1},
            {CKA_VALUE, wrapped.data, wrapped.len},
        };
        CK_OBJECT_HANDLE obj = 0;
        rv = p->f->C_CreateObject(p->session, tmpl, TOK_ARRAY_LEN(tmpl), &obj);
    }
    if (rv != CKR_OK) {
        *why = why_fmt("PKCS#11 token '%s' cannot store the sub-key root beside key '%s' (%s)",
                       u->token, u->object, rv_name(rv));
        return TOK_ERR_CRYPTO;
    }
    return TOK_OK;
}

const char *tok_master_key_previous_pin(const char *uri, const char *pin_file,
                                        const char *fallback)
{
    if (pin_file != NULL && pin_file[0] != '\0')
        return pin_file;
    if (uri == NULL || uri[0] == '\0')
        return NULL;
    struct p11_uri u;
    const char *why = NULL;
    /* a bad URI is reported when it is opened */
    if (uri_parse(uri, &u, &why) == TOK_OK && u.pin_file[0] != '\0')
        return NULL;
    return fallback;
}

tok_status tok_master_key_pkcs11_create(const char *uri, const char *pin_file,
                                        const uint8_t *root, const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    *why = NULL;
    TOK_ENSURE(uri != NULL, TOK_ERR_INTERNAL);
    if (sodium_init() < 0) {
        *why = "libsodium failed to initialise";
        return TOK_ERR_CRYPTO;
    }
    struct p11_uri u;
    TOK_GUARD(uri_parse(uri, &u, why));
    struct p11 p;
    memset(&p, 0, sizeof p);
    tok_status st = p11_connect(&p, &u, pin_file, true, why);
    CK_ULONG count = 0;
    CK_OBJECT_HANDLE existing = 0;
    struct p11_uri by_label = u;
    by_label.has_id = false; /* a label is taken whatever its id */
    if (st == TOK_OK)
        st = find_key(&p, &by_label, &existing, &count, why);
    if (st == TOK_OK && count > 0) {
        *why = why_fmt("PKCS#11 token '%s' already has a key '%s': hsm-init makes new keys only",
                       u.token, u.object);
        st = TOK_ERR_CONFLICT;
    }
    if (st == TOK_OK)
        st = find_root(&p, &u, &existing, &count, why);
    if (st == TOK_OK && count > 0) {
        *why = why_fmt("PKCS#11 token '%s' already has a sub-key root object '%s' (of a key "
                       "deleted by hand?): delete it or choose another label",
                       u.token, u.object);
        st = TOK_ERR_CONFLICT;
    }
    if (st == TOK_OK) {
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE type = CKK_AES;
        CK_ULONG len = TOK_KEYRING_KEY_LEN;
        CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
        CK_ATTRIBUTE tmpl[] = {
            {CKA_CLASS, &cls, sizeof cls},
            {CKA_KEY_TYPE, &type, sizeof type},
            {CKA_VALUE_LEN, &len, sizeof len},
            {CKA_TOKEN, &yes, sizeof yes},
            {CKA_PRIVATE, &yes, sizeof yes},
            {CKA_SENSITIVE, &yes, sizeof yes},
            {CKA_EXTRACTABLE, &no, sizeof no},
            {CKA_MODIFIABLE, &no, sizeof no},
            {CKA_ENCRYPT, &yes, sizeof yes},
            {CKA_DECRYPT, &yes, sizeof yes},
            {CKA_SIGN, &yes, sizeof yes},
            {CKA_VERIFY, &no, sizeof no},
            {CKA_WRAP, &no, sizeof no},
            {CKA_UNWRAP, &no, sizeof no},
            {CKA_DERIVE, &no, sizeof no},
            {CKA_LABEL, u.object, strlen(u.object)},
            {CKA_ID, u.id, u.id_len},
        };
        CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
        CK_OBJECT_HANDLE key = 0;
        CK_RV rv = p.f->C_GenerateKey(p.session, &m, tmpl,
                                      TOK_ARRAY_LEN(tmpl) - (u.has_id ? 0 : 1), &key);
        if (rv != CKR_OK) {
            *why = why_fmt("PKCS#11 token '%s' cannot generate an AES-256 key (%s)", u.token,
                           rv_name(rv));
            st = TOK_ERR_CRYPTO;
        }
        p.key = key;
        /* a key without the root it was made to carry would start a new key line: gone */
        if (st == TOK_OK && root != NULL && (st = create_root(&p, &u, root, why)) != TOK_OK)
            (void)p.f->C_DestroyObject(p.session, key);
    }
    p11_close(&p);
    return st;
}

tok_status tok_master_key_pkcs11_destroy(const char *uri, const char *pin_file, const char **why)
{
    const char *why_unused = NULL;
    if (why == NULL)
        why = &why_unused;
    *why = NULL;
    TOK_ENSURE(uri != NULL, TOK_ERR_INTERNAL);
    struct p11_uri u;
    TOK_GUARD(uri_parse(uri, &u, why));
    struct p11 p;
    memset(&p, 0, sizeof p);
    tok_status st = p11_connect(&p, &u, pin_file, true, why);
    CK_ULONG count = 0, roots = 0;
    CK_OBJECT_HANDLE key = 0, root = 0;
    if (st == TOK_OK)
        st = find_key(&p, &u, &key, &count, why);
    if (st == TOK_OK && count != 1) {
        *why = count == 0 ? why_fmt("PKCS#11 token '%s' has no secret key '%s'", u.token, u.object)
                          : why_fmt("PKCS#11 token '%s' has several secret keys '%s': add id= "
                                    "to the URI",
                                    u.token, u.object);
        st = count == 0 ? TOK_ERR_NOTFOUND : TOK_ERR_INPUT;
    }
    if (st == TOK_OK)
        st = find_root(&p, &u, &root, &roots, why);
    CK_RV rv = CKR_OK;
    if (st == TOK_OK && (rv = p.f->C_DestroyObject(p.session, key)) != CKR_OK) {
        *why = why_fmt("PKCS#11 token '%s' cannot destroy key '%s' (%s)", u.token, u.object,
                       rv_name(rv));
        st = TOK_ERR_CRYPTO;
    }
    /* the root object alone opens nothing: it goes with its key */
    if (st == TOK_OK && roots == 1)
        (void)p.f->C_DestroyObject(p.session, root);
    p11_close(&p);
    return st;
}
