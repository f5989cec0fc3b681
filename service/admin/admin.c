/*
 * admin.c - tokenctl's tenant, API key and audit commands (contract in admin.h).
 *
 * Each write is ONE statement whose data-modifying CTEs insert the object and its audit
 * event together: the statement is its own transaction, so there is no path where the
 * vault changes and the audit log does not (or the reverse), and no ROLLBACK to forget.
 * Error text from PostgreSQL is limited to the primary message: DETAIL can quote a failing
 * row, which for api_keys holds the secret's hash.
 */
#include "tokend/admin/admin_rotate.h"
#include "tokend/admin/admin.h"
#include "tokend/admin/admin_json.h"
#include "tokend/http/origin.h"

#include "tokend/store/db.h"
#include "tokend/core/json.h"
#include "tokend/core/encoding.h"
#include "tokend/vault/keyring.h"
#include "tokend/vault/master_key.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BYTEA_OID 17 /* pg_type.oid of bytea: binary parameters need their type stated */
#define ACTOR "tokenctl"
#define STR_(x) #x
#define STR(x) STR_(x)
#define TIME_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"
#define API_KEY_HINT_LEN 4
#define AUDIT_CURSOR "tok_audit_verify"

static const char *const scope_names[TOK_ADMIN_SCOPES_MAX] = {
    "tokens:write", "tokens:read", "charges:write", "reports:read", "admin",
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, prefixed like every tokenctl message. */
static void say(const char *fmt, ...)
{
    va_list ap;
    fputs("tokenctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int tok_admin_exit_code(tok_status st)
{
    switch (st) {
    case TOK_OK:
        return TOK_ADMIN_EXIT_OK;
    case TOK_ERR_INPUT:
        return TOK_ADMIN_EXIT_USAGE;
    default:
        return TOK_ADMIN_EXIT_FAIL;
    }
}

tok_status tok_admin_dispatch(const struct tok_admin *a, int argc, char **argv,
                              const struct tok_admin_cmd *cmds, size_t n, tok_status (*usage)(void))
{
    TOK_ENSURE(a != NULL && (argv != NULL || argc == 0), TOK_ERR_INTERNAL);
    for (size_t i = 0; argc >= 1 && i < n; i++)
        if (strcmp(argv[0], cmds[i].name) == 0)
            return cmds[i].fn(a, argc - 1, argv + 1);
    return usage();
}

/* 1: argv[*i] is `name` and its value is now in *value (*i advanced); 0: not `name`;
 * -1: `name` without a value. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    if (strcmp(argv[*i], name) != 0)
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *i += 1;
    *value = argv[*i];
    return 1;
}

/* A table cell: control bytes become '?', so a row stays one line and cannot drive the
 * terminal. */
static void print_cell(const char *s, bool last)
{
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        fputc(c < 0x20 || c == 0x7f ? '?' : c, stdout);
    }
    fputc(last ? '\n' : '\t', stdout);
}

static void print_row(const PGresult *r, int row)
{
    int n = PQnfields(r);
    for (int f = 0; f < n; f++)
        print_cell(PQgetisnull(r, row, f) ? "-" : PQgetvalue(r, row, f), f == n - 1);
}

/* Writes all n bytes to fd straight from caller memory: no stdio buffer keeps a copy. */
static tok_status write_all(int fd, const uint8_t *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        TOK_ENSURE(w > 0, TOK_ERR_IO);
        done += (size_t)w;
    }
    return TOK_OK;
}

static tok_status finish_stdout(void)
{
    TOK_ENSURE(fflush(stdout) == 0 && !ferror(stdout), TOK_ERR_IO);
    return TOK_OK;
}

/* header (tab-separated, ending in a newline), then every row of r */
static tok_status print_table(const PGresult *r, const char *header)
{
    fputs(header, stdout);
    for (int i = 0; i < PQntuples(r); i++)
        print_row(r, i);
    return finish_stdout();
}

/* Is item one of the comma-separated entries of list? */
static bool list_has(const struct tok_buf *list, struct tok_slice item)
{
    size_t start = 0;
    for (size_t i = 0; i <= list->len; i++) {
        if (i < list->len && list->data[i] != ',')
            continue;
        if (i - start == item.len && tok_slice_eq_ct(tok_slice_of(list->data + start, i - start),
                                                     item))
            return true;
        start = i + 1;
    }
    return false;
}

/* ---- validation (pure, unit-tested) ----------------------------------------------------- */

static size_t scope_index(struct tok_slice s)
{
    for (size_t k = 0; k < TOK_ARRAY_LEN(scope_names); k++)
        if (tok_slice_eq(s, scope_names[k]))
            return k;
    return SIZE_MAX;
}

tok_status tok_admin_scopes_parse(struct tok_slice list, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && (list.ptr != NULL || list.len == 0), TOK_ERR_INTERNAL);
    TOK_ENSURE(list.len > 0 && list.len <= TOK_ADMIN_SCOPES_IN_MAX, TOK_ERR_INPUT);
    uint8_t mem[TOK_ADMIN_SCOPE_LIST_MAX];
    struct tok_buf tmp;
    tok_buf_init(&tmp, mem, sizeof mem);
    bool seen[TOK_ADMIN_SCOPES_MAX] = {false};
    size_t start = 0;
    for (size_t i = 0; i <= list.len; i++) {
        if (i < list.len && list.ptr[i] != ',')
            continue;
        struct tok_slice item = tok_slice_of(list.ptr + start, i - start);
        start = i + 1;
        size_t k = scope_index(item); /* an empty item matches no scope */
        TOK_ENSURE(k < TOK_ADMIN_SCOPES_MAX, TOK_ERR_INPUT);
        if (seen[k])
            continue;
        seen[k] = true;
        if (tmp.len > 0)
            TOK_GUARD(tok_buf_putc(&tmp, ','));
        TOK_GUARD(tok_buf_puts(&tmp, scope_names[k]));
    }
    return tok_buf_write(out, tmp.data, tmp.len);
}

/* "ten_" and 22 base62 characters: a name of that shape would shadow a tenant id. */
static bool looks_like_tenant_id(struct tok_slice s)
{
    if (s.len != 4 + TOK_RANDOM_ID_CHARS || !tok_slice_eq(tok_slice_of(s.ptr, 4), "ten_"))
        return false;
    for (size_t i = 4; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

tok_status tok_admin_tenant_name_check(struct tok_slice name)
{
    TOK_ENSURE(name.ptr != NULL || name.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(name.len >= 1 && name.len <= TOK_ADMIN_NAME_BYTES_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(name.ptr[0] != ' ' && name.ptr[name.len - 1] != ' ', TOK_ERR_INPUT);
    size_t chars = 0;
    for (size_t i = 0; i < name.len; i++) {
        uint8_t c = name.ptr[i];
        TOK_ENSURE(c >= 0x20 && c != 0x7f, TOK_ERR_INPUT);
        if ((c & 0xC0) != 0x80)
            chars++;
    }
    TOK_ENSURE(chars <= TOK_ADMIN_NAME_CHARS_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(!looks_like_tenant_id(name), TOK_ERR_INPUT);
    return TOK_OK;
}

/* ---- audit chain walk (pure, unit-tested) ----------------------------------------------- */

void tok_audit_walk_init(struct tok_audit_walk *w)
{
    sodium_memzero(w, sizeof *w);
    w->next_block = 1;
    w->next_id = 1;
}

static bool hash_eq(struct tok_slice a, struct tok_slice b)
{
    return a.len == TOK_ADMIN_AUDIT_HASH_LEN && b.len == TOK_ADMIN_AUDIT_HASH_LEN &&
           a.ptr != NULL && b.ptr != NULL &&
           sodium_memcmp(a.ptr, b.ptr, TOK_ADMIN_AUDIT_HASH_LEN) == 0;
}

static tok_status broken(struct tok_audit_walk *w, const char *what, int64_t at, const char *why)
{
    w->broken_what = what;
    w->broken_at = at;
    w->why = why;
    return TOK_ERR_CRYPTO;
}

static struct tok_slice last_hash_of(const struct tok_audit_walk *w)
{
    return tok_slice_of(w->last_hash, sizeof w->last_hash);
}

tok_status tok_audit_walk_step(struct tok_audit_walk *w, int64_t seq, struct tok_slice prev_hash,
                               struct tok_slice hash, struct tok_slice expected)
{
    TOK_ENSURE(w != NULL, TOK_ERR_INTERNAL);
    /* last_hash starts all zeros: the first row's prev_hash must be zeros too, so rows
     * removed from the head of the chain are caught like rows removed from its middle */
    if (!hash_eq(prev_hash, last_hash_of(w)))
        return broken(w, "seq", seq, "previous row missing or altered");
    if (!hash_eq(hash, expected))
        return broken(w, "seq", seq, "row altered");
    tok_copy(w->last_hash, hash.ptr, TOK_ADMIN_AUDIT_HASH_LEN);
    w->count++;
    return TOK_OK;
}

void tok_audit_walk_blocks_start(struct tok_audit_walk *w, int64_t legacy_to)
{
    w->next_block = 1;
    w->next_id = legacy_to + 1;
}

static int64_t id_at(struct tok_slice ids, size_t i)
{
    uint64_t v = 0;
    for (size_t b = 0; b < 8; b++)
        v = (v << 8) | ids.ptr[i * 8 + b];
    return (int64_t)v;
}

/* The first row whose stored and present digests differ, named by the present row's id. */
static tok_status rows_check(struct tok_audit_walk *w, const struct tok_audit_block *b)
{
    size_t stored = b->digests.len / TOK_ADMIN_AUDIT_HASH_LEN;
    size_t now = b->now_digests.len / TOK_ADMIN_AUDIT_HASH_LEN;
    for (size_t i = 0; i < stored || i < now; i++) {
        if (i < stored && i < now &&
            sodium_memcmp(b->digests.ptr + i * TOK_ADMIN_AUDIT_HASH_LEN,
                          b->now_digests.ptr + i * TOK_ADMIN_AUDIT_HASH_LEN,
                          TOK_ADMIN_AUDIT_HASH_LEN) == 0)
            continue;
        if (i >= now)
            return broken(w, "block", b->block, "last row missing");
        if (now > stored)
            return broken(w, "event", id_at(b->now_ids, i), "row added");
        if (now < stored)
            return broken(w, "event", id_at(b->now_ids, i), "a row before it is missing");
        return broken(w, "event", id_at(b->now_ids, i), "row altered");
    }
    return TOK_OK;
}

/*
 * What the plain chain cannot show (issue #18): a block rewritten by someone who recomputed
 * every digest and hash. The signed checkpoints come first: they were shipped away and name
 * the block; then the MAC, which needs the audit key to forge.
 */
static tok_status keyed_check(struct tok_audit_walk *w, const struct tok_audit_block *b)
{
    uint8_t mac[TOK_ADMIN_AUDIT_HASH_LEN];
    if (w->ak != NULL)
        TOK_GUARD(tok_audit_block_mac(w->ak, b->block, b->first_id, b->last_id, b->hash,
                                      tok_slice_of(w->last_mac, sizeof w->last_mac), mac));
    while (w->cp_next < w->n_cps && w->cps[w->cp_next].block < b->block)
        w->cp_next++; /* sorted: only a duplicate block number lands here, checked below */
    for (; w->cp_next < w->n_cps && w->cps[w->cp_next].block == b->block; w->cp_next++) {
        const struct tok_audit_checkpoint *cp = &w->cps[w->cp_next];
        if (cp->first_id != b->first_id || cp->last_id != b->last_id ||
            !hash_eq(b->hash, tok_slice_of(cp->hash, sizeof cp->hash)) ||
            (w->ak != NULL && sodium_memcmp(cp->mac, mac, sizeof mac) != 0))
            return broken(w, "block", b->block, "block differs from the signed checkpoint (rewritten)");
        w->cps_checked++;
    }
    if (w->ak == NULL)
        return TOK_OK;
    if (b->mac.len == 0) {
        if (w->unsealed_from == 0)
            w->unsealed_from = b->block;
    } else {
        if (w->unsealed_from != 0)
            return broken(w, "block", w->unsealed_from, "block's MAC removed");
        if (b->mac.len != sizeof mac || sodium_memcmp(b->mac.ptr, mac, sizeof mac) != 0)
            return broken(w, "block", b->block,
                          "block altered: its MAC does not match (rewritten without the audit key)");
        w->macs_checked++;
    }
    tok_copy(w->last_mac, mac, sizeof mac);
    return TOK_OK;
}

tok_status tok_audit_walk_block(struct tok_audit_walk *w, const struct tok_audit_block *b)
{
    TOK_ENSURE(w != NULL && b != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(b->digests.len % TOK_ADMIN_AUDIT_HASH_LEN == 0 &&
                   b->now_digests.len % TOK_ADMIN_AUDIT_HASH_LEN == 0 &&
                   b->now_ids.len == b->now_digests.len / TOK_ADMIN_AUDIT_HASH_LEN * 8,
               TOK_ERR_INTERNAL);
    if (b->block != w->next_block)
        return broken(w, "block", w->next_block, "block missing");
    if (b->first_id != w->next_id || b->last_id < b->first_id)
        return broken(w, "block", b->block, "block out of place");
    if (!hash_eq(b->prev_hash, last_hash_of(w)))
        return broken(w, "block", b->block, "previous block missing or altered");
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, b->prev_hash.ptr, b->prev_hash.len);
    crypto_hash_sha256_update(&st, b->digests.ptr, b->digests.len);
    crypto_hash_sha256_final(&st, h);
    if (!hash_eq(b->hash, tok_slice_of(h, sizeof h)))
        return broken(w, "block", b->block, "block altered");
    TOK_GUARD(rows_check(w, b));
    TOK_GUARD(keyed_check(w, b));
    tok_copy(w->last_hash, h, sizeof h);
    w->count += b->digests.len / TOK_ADMIN_AUDIT_HASH_LEN;
    w->next_block++;
    w->next_id = b->last_id + 1;
    return TOK_OK;
}

tok_status tok_audit_walk_end(struct tok_audit_walk *w, int64_t last_block, struct tok_slice last_hash)
{
    TOK_ENSURE(w != NULL, TOK_ERR_INTERNAL);
    if (last_block != w->next_block - 1 || !hash_eq(last_hash, last_hash_of(w)))
        return broken(w, "block", w->next_block, "chain ends early: blocks or rows removed from its end");
    if (w->cp_next < w->n_cps)
        return broken(w, "block", w->cps[w->cp_next].block,
                      "block named by a signed checkpoint missing (chain cut or rewritten)");
    return TOK_OK;
}

/* ---- database and key access ------------------------------------------------------------ */

tok_status tok_admin_connect(const struct tok_admin *a, PGconn **out)
{
    char why[TOK_DB_WHY_MAX] = "";
    if (a->db == NULL || a->db[0] == '\0') {
        say("no database: set --db or TOKEND_ADMIN_DB");
        return TOK_ERR_INPUT;
    }
    if (tok_db_connect(a->db, out, why, sizeof why) != TOK_OK) {
        say("cannot connect to the database: %s", why);
        return TOK_ERR_DB;
    }
    return TOK_OK;
}

tok_status tok_admin_keyring(const struct tok_admin *a, struct tok_keyring **out)
{
    const char *why = NULL;
    bool file = a->master_key_file != NULL && a->master_key_file[0] != '\0';
    bool p11 = a->master_key_pkcs11 != NULL && a->master_key_pkcs11[0] != '\0';
    if (!file && !p11) {
        say("no master key: set --master-key-file or TOKEND_MASTER_KEY_FILE"
            " (or --master-key-pkcs11)");
        return TOK_ERR_INPUT;
    }
    bool prev_file = a->master_key_previous != NULL && a->master_key_previous[0] != '\0';
    bool prev_p11 = a->master_key_previous_pkcs11 != NULL && a->master_key_previous_pkcs11[0];
    if (prev_file && prev_p11) {
        say("give --master-key-previous or --master-key-previous-pkcs11, not both");
        return TOK_ERR_INPUT;
    }
    if (!prev_p11 && a->master_key_previous_pin_file != NULL &&
        a->master_key_previous_pin_file[0] != '\0') {
        say("--master-key-previous-pin-file is for --master-key-previous-pkcs11");
        return TOK_ERR_INPUT;
    }
    if (tok_harden_process(&why) != TOK_OK) {
        say("%s", why != NULL ? why : "cannot harden the process");
        return TOK_ERR_INTERNAL;
    }
    /* a file, or a PKCS#11 token that keeps the KEK's bytes to itself (master_key.h) */
    struct tok_master_key_config mkc = {a->master_key_file, a->master_key_pkcs11,
                                        a->master_key_pin_file};
    if (tok_keyring_load(&mkc, out, &why) != TOK_OK) {
        say("master key refused: %s", why != NULL ? why : "unknown reason");
        return TOK_ERR_IO;
    }
    /* during a master rotation, the version it replaces: a file or a key in a token; a
     * wrong one is a configuration error (exit 2), like tokend's */
    struct tok_master_key_config prev = {
        a->master_key_previous, a->master_key_previous_pkcs11,
        tok_master_key_previous_pin(a->master_key_previous_pkcs11,
                                    a->master_key_previous_pin_file, a->master_key_pin_file)};
    if ((prev_file || prev_p11) && tok_keyring_add_previous(*out, &prev, &why) != TOK_OK) {
        say("previous master key refused: %s", why != NULL ? why : "unknown reason");
        tok_keyring_free(out);
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

/* The result's status as ours. A unique violation is TOK_ERR_CONFLICT, left to the caller to
 * explain; anything else is reported here with PostgreSQL's primary message only. */
static tok_status check_result(const PGresult *r, ExecStatusType want, const char *what)
{
    if (r != NULL && PQresultStatus(r) == want)
        return TOK_OK;
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "23505") == 0)
        return TOK_ERR_CONFLICT;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    say("%s: database error: %s (SQLSTATE %s)", what, msg != NULL ? msg : "no result",
        state != NULL ? state : "none");
    return TOK_ERR_DB;
}

static tok_status command(PGconn *pg, const char *sql, const char *what)
{
    PGresult *r = PQexec(pg, sql);
    tok_status st = check_result(r, PGRES_COMMAND_OK, what);
    PQclear(r);
    return st;
}

/* Finds a tenant by id or, failing that, by name; its id goes into out (a C string). */
static tok_status resolve_tenant(PGconn *pg, const char *ref, struct tok_buf *out,
                                 const char *what)
{
    static const char sql[] = "SELECT id FROM vault.tenants WHERE id = $1 OR name = $1 "
                              "ORDER BY (id = $1) DESC LIMIT 1";
    const char *vals[1] = {ref};
    PGresult *r = PQexecParams(pg, sql, 1, NULL, vals, NULL, NULL, 0);
    tok_status st = check_result(r, PGRES_TUPLES_OK, what);
    if (st == TOK_OK && PQntuples(r) != 1) {
        say("%s: no such tenant: %s", what, ref);
        st = TOK_ERR_NOTFOUND;
    }
    const char *s = NULL;
    if (st == TOK_OK)
        st = tok_buf_puts(out, PQgetvalue(r, 0, 0));
    if (st == TOK_OK)
        st = tok_buf_cstr(out, &s);
    PQclear(r);
    return st;
}

/* ---- tenant ----------------------------------------------------------------------------- */

static tok_status tenant_usage(void)
{
    say("usage: tenant create NAME [--bin 0|6|8] [--cvc-optional] | tenant list");
    return TOK_ERR_INPUT;
}

/* The tenant, its version-1 keys and the audit event, in one statement. */
static const char sql_tenant_create[] =
    "WITH t AS ("
    "  INSERT INTO vault.tenants (id, name, bin_mode, cvc_optional)"
    "  VALUES ($1, $2, $3::smallint, $4::boolean)"
    "  RETURNING id, name, bin_mode, cvc_optional),"
    " k AS ("
    "  INSERT INTO vault.tenant_keys (tenant_id, version, wrapped_dek, wrapped_fpk)"
    "  SELECT id, 1, $5::bytea, $6::bytea FROM t RETURNING tenant_id, version)"
    " INSERT INTO audit.events (tenant_id, actor, action, object, detail)"
    " SELECT t.id, '" ACTOR "', 'tenant.created', t.id,"
    "        jsonb_build_object('name', t.name, 'bin_mode', t.bin_mode,"
    "                           'cvc_optional', t.cvc_optional, 'key_version', k.version)"
    "   FROM t JOIN k ON k.tenant_id = t.id";

static tok_status tenant_insert(PGconn *pg, const char *id, const char *name, const char *bin,
                                bool cvc_optional, const struct tok_buf *dek,
                                const struct tok_buf *fpk)
{
    const char *vals[6] = {id, name, bin, cvc_optional ? "true" : "false",
                           (const char *)dek->data, (const char *)fpk->data};
    const int lens[6] = {0, 0, 0, 0, (int)dek->len, (int)fpk->len};
    const int fmts[6] = {0, 0, 0, 0, 1, 1};
    const Oid types[6] = {0, 0, 0, 0, BYTEA_OID, BYTEA_OID};
    PGresult *r = PQexecParams(pg, sql_tenant_create, 6, types, vals, lens, fmts, 0);
    tok_status st = check_result(r, PGRES_COMMAND_OK, "tenant create");
    if (st == TOK_ERR_CONFLICT) {
        const char *c = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        if (c != NULL && strcmp(c, "tenants_name_key") == 0)
            say("tenant create: a tenant named '%s' already exists", name);
        else
            say("tenant create: a uniqueness rule refused the tenant (%s)", c != NULL ? c : "?");
    }
    if (st == TOK_OK && strcmp(PQcmdTuples(r), "1") != 0) {
        say("tenant create: the audit event was not written");
        st = TOK_ERR_INTERNAL;
    }
    PQclear(r);
    return st;
}

static tok_status tenant_create(const struct tok_admin *a, int argc, char **argv)
{
    const char *name = NULL, *bin = "6";
    bool cvc_optional = false;
    for (int i = 0; i < argc; i++) {
        int m = opt_value(argc, argv, &i, "--bin", &bin);
        if (m < 0)
            return tenant_usage();
        if (m > 0)
            continue;
        if (strcmp(argv[i], "--cvc-optional") == 0) {
            cvc_optional = true;
            continue;
        }
        if (argv[i][0] == '-' || name != NULL)
            return tenant_usage();
        name = argv[i];
    }
    if (name == NULL)
        return tenant_usage();
    if (strcmp(bin, "0") != 0 && strcmp(bin, "6") != 0 && strcmp(bin, "8") != 0) {
        say("tenant create: --bin must be 0, 6 or 8");
        return TOK_ERR_INPUT;
    }
    if (tok_admin_tenant_name_check(tok_slice_str(name)) != TOK_OK) {
        say("tenant create: a name is 1 to %d characters, without control characters, "
            "leading or trailing spaces, and not shaped like a tenant id",
            TOK_ADMIN_NAME_CHARS_MAX);
        return TOK_ERR_INPUT;
    }

    uint8_t id_mem[TOK_RANDOM_ID_MAX + 1], dek_mem[TOK_KEYRING_WRAPPED_LEN],
        fpk_mem[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf id, dek, fpk;
    tok_buf_init(&id, id_mem, sizeof id_mem);
    tok_buf_init(&dek, dek_mem, sizeof dek_mem);
    tok_buf_init(&fpk, fpk_mem, sizeof fpk_mem);
    struct tok_keyring *kr = NULL;
    PGconn *pg = NULL;
    const char *id_s = NULL;

    tok_status st = tok_admin_keyring(a, &kr);
    if (st != TOK_OK)
        goto done;
    st = tok_random_id("ten_", &id);
    if (st == TOK_OK)
        st = tok_buf_cstr(&id, &id_s);
    if (st == TOK_OK)
        st = tok_keyring_tenant_keys_new(kr, id_s, 1, &dek, &fpk);
    tok_keyring_free(&kr); /* the KEK is needed for nothing else */
    if (st != TOK_OK) {
        say("tenant create: cannot make the tenant keys (%s)", tok_status_name(st));
        goto done;
    }
    st = tok_admin_connect(a, &pg);
    if (st != TOK_OK)
        goto done;
    st = tenant_insert(pg, id_s, name, bin, cvc_optional, &dek, &fpk);
    if (st != TOK_OK)
        goto done;
    if (a->json) {
        const struct tok_admin_json_field f[] = {
            {"id", TOK_AJ_STR, 0, tok_slice_str(id_s)},
            {"name", TOK_AJ_STR, 0, tok_slice_str(name)},
            {"bin_mode", TOK_AJ_INT, 0, tok_slice_str(bin)},
            {"cvc_optional", TOK_AJ_BOOL, 0, tok_slice_str(cvc_optional ? "true" : "false")},
        };
        st = tok_admin_json_object(f, TOK_ARRAY_LEN(f));
    } else {
        printf("%s\n", id_s);
        st = finish_stdout();
    }
    if (st != TOK_OK)
        say("tenant create: cannot write to stdout (tenant %s was created)", id_s);
done:
    if (pg != NULL)
        PQfinish(pg);
    tok_buf_wipe(&dek);
    tok_buf_wipe(&fpk);
    tok_buf_wipe(&id);
    return st;
}

static tok_status tenant_list(const struct tok_admin *a, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return tenant_usage();
    static const char sql[] =
        "SELECT id, name, bin_mode::text, cvc_optional::text,"
        "       to_char(created_at AT TIME ZONE 'UTC', " TIME_FMT ")"
        "  FROM vault.tenants ORDER BY created_at, id";
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    PGresult *r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
    tok_status st = check_result(r, PGRES_TUPLES_OK, "tenant list");
    if (st == TOK_OK && a->json) {
        static const struct tok_admin_json_field f[] = {
            {"id", TOK_AJ_STR, 0, {0}}, {"name", TOK_AJ_STR, 1, {0}},
            {"bin_mode", TOK_AJ_INT, 2, {0}}, {"cvc_optional", TOK_AJ_BOOL, 3, {0}},
            {"created_at", TOK_AJ_STR, 4, {0}},
        };
        st = tok_admin_json_rows(r, f, TOK_ARRAY_LEN(f));
    } else if (st == TOK_OK) {
        st = print_table(r, "id\tname\tbin_mode\tcvc_optional\tcreated_at\n");
    }
    PQclear(r);
    PQfinish(pg);
    return st;
}

tok_status tok_admin_tenant(const struct tok_admin *a, int argc, char **argv)
{
    static const struct tok_admin_cmd cmds[] = {
        {"create", tenant_create},
        {"list", tenant_list},
    };
    return tok_admin_dispatch(a, argc, argv, cmds, TOK_ARRAY_LEN(cmds), tenant_usage);
}

/* ---- key -------------------------------------------------------------------------------- */

static tok_status key_usage(void)
{
    say("usage: key create --tenant T (--scopes a,b,... | --publishable --origin URL...) "
        "[--live|--test] | key list [--tenant T] | key revoke ID");
    return TOK_ERR_INPUT;
}

struct key_spec {
    const char *tenant;
    bool publishable;
    bool live;
    struct tok_buf scopes;  /* comma-separated, validated */
    struct tok_buf origins; /* comma-separated, normalised */
};

static tok_status key_create_args(int argc, char **argv, struct key_spec *k)
{
    const char *scopes = NULL;
    bool live = false, test = false;
    size_t norigins = 0;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int m = opt_value(argc, argv, &i, "--tenant", &k->tenant);
        if (m == 0)
            m = opt_value(argc, argv, &i, "--scopes", &scopes);
        if (m == 0 && (m = opt_value(argc, argv, &i, "--origin", &v)) > 0) {
            if (++norigins > TOK_ADMIN_ORIGINS_MAX) {
                say("key create: at most %d origins", TOK_ADMIN_ORIGINS_MAX);
                return TOK_ERR_INPUT;
            }
            uint8_t mem[TOK_ORIGIN_MAX];
            struct tok_buf one;
            tok_buf_init(&one, mem, sizeof mem);
            if (tok_origin_normalize(tok_slice_str(v), &one) != TOK_OK) {
                say("key create: bad origin '%s': use https://host[:port], or "
                    "http://localhost[:port] or http://127.0.0.1[:port], without a path",
                    v);
                return TOK_ERR_INPUT;
            }
            if (list_has(&k->origins, tok_buf_slice(&one)))
                continue;
            if (k->origins.len > 0)
                TOK_GUARD(tok_buf_putc(&k->origins, ','));
            TOK_GUARD(tok_buf_write(&k->origins, one.data, one.len));
        }
        if (m < 0)
            return key_usage();
        if (m > 0)
            continue;
        if (strcmp(argv[i], "--publishable") == 0)
            k->publishable = true;
        else if (strcmp(argv[i], "--live") == 0)
            live = true;
        else if (strcmp(argv[i], "--test") == 0)
            test = true;
        else
            return key_usage();
    }
    if (k->tenant == NULL || (live && test) || (scopes == NULL) == !k->publishable)
        return key_usage();
    k->live = live;
    if (k->publishable && norigins == 0) {
        say("key create: a publishable key needs at least one --origin");
        return TOK_ERR_INPUT;
    }
    if (!k->publishable && norigins > 0) {
        say("key create: --origin is only for publishable keys");
        return TOK_ERR_INPUT;
    }
    /* a publishable key sits in web pages: it can only create tokens, never read or redact
     * them (tokens:create, its own scope; the schema's CHECK too, sql/015) */
    if (k->publishable)
        return tok_buf_puts(&k->scopes, "tokens:create");
    if (tok_admin_scopes_parse(tok_slice_str(scopes), &k->scopes) != TOK_OK) {
        say("key create: bad --scopes '%s': a comma-separated list of tokens:write, "
            "tokens:read, charges:write, reports:read, admin",
            scopes);
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

/* The key row and its audit event, in one statement. */
static const char sql_key_create[] =
    "WITH k AS ("
    "  INSERT INTO vault.api_keys (id, tenant_id, secret_hash, prefix, hint, publishable,"
    "                              livemode, scopes, origins)"
    "  VALUES ($1, $2, $3::bytea, $4, $5, $6::boolean, $7::boolean,"
    "          string_to_array($8::text, ','), string_to_array($9::text, ','))"
    "  RETURNING id, tenant_id, scopes, livemode, publishable)"
    " INSERT INTO audit.events (tenant_id, actor, action, object, detail)"
    " SELECT tenant_id, '" ACTOR "', 'key.created', id,"
    "        jsonb_build_object('scopes', to_jsonb(scopes), 'livemode', livemode,"
    "                           'publishable', publishable)"
    "   FROM k";

struct key_row {
    const char *id;
    const char *tenant_id;
    const uint8_t *hash;
    char prefix[TOK_API_KEY_PREFIX_LEN + 1];
    char hint[API_KEY_HINT_LEN + 1];
};

static tok_status key_insert(PGconn *pg, const struct key_spec *k, const struct key_row *row)
{
    const char *scopes = NULL, *origins = NULL;
    struct tok_buf sb = k->scopes, ob = k->origins; /* local views to terminate */
    TOK_GUARD(tok_buf_cstr(&sb, &scopes));
    TOK_GUARD(tok_buf_cstr(&ob, &origins));
    const char *vals[9] = {row->id,
                           row->tenant_id,
                           (const char *)row->hash,
                           row->prefix,
                           row->hint,
                           k->publishable ? "true" : "false",
                           k->live ? "true" : "false",
                           scopes,
                           origins};
    const int lens[9] = {0, 0, TOK_KEYRING_HASH_LEN, 0, 0, 0, 0, 0, 0};
    const int fmts[9] = {0, 0, 1, 0, 0, 0, 0, 0, 0};
    const Oid types[9] = {0, 0, BYTEA_OID, 0, 0, 0, 0, 0, 0};
    PGresult *r = PQexecParams(pg, sql_key_create, 9, types, vals, lens, fmts, 0);
    tok_status st = check_result(r, PGRES_COMMAND_OK, "key create");
    if (st == TOK_ERR_CONFLICT)
        say("key create: a uniqueness rule refused the key; try again");
    if (st == TOK_OK && strcmp(PQcmdTuples(r), "1") != 0) {
        say("key create: the audit event was not written");
        st = TOK_ERR_INTERNAL;
    }
    PQclear(r);
    return st;
}

/* Copies the (non-secret) prefix and last characters the key list shows. */
static tok_status key_row_labels(const struct tok_buf *secret, struct key_row *row)
{
    TOK_ENSURE(secret->len == TOK_API_KEY_LEN, TOK_ERR_INTERNAL);
    struct tok_buf p, h;
    const char *unused = NULL;
    tok_buf_init(&p, row->prefix, sizeof row->prefix);
    tok_buf_init(&h, row->hint, sizeof row->hint);
    TOK_GUARD(tok_buf_write(&p, secret->data, TOK_API_KEY_PREFIX_LEN));
    TOK_GUARD(tok_buf_cstr(&p, &unused));
    TOK_GUARD(tok_buf_write(&h, secret->data + secret->len - API_KEY_HINT_LEN, API_KEY_HINT_LEN));
    return tok_buf_cstr(&h, &unused);
}

static tok_status key_create(const struct tok_admin *a, int argc, char **argv)
{
    uint8_t scopes_mem[TOK_ADMIN_SCOPE_LIST_MAX + 1], origins_mem[TOK_ADMIN_ORIGIN_LIST_MAX + 1];
    struct key_spec k = {0};
    tok_buf_init(&k.scopes, scopes_mem, sizeof scopes_mem);
    tok_buf_init(&k.origins, origins_mem, sizeof origins_mem);
    TOK_GUARD(key_create_args(argc, argv, &k));

    uint8_t tenant_mem[TOK_RANDOM_ID_MAX + 1], id_mem[TOK_RANDOM_ID_MAX + 1];
    uint8_t hash[TOK_KEYRING_HASH_LEN];
    struct tok_buf tenant, id, secret = {0};
    tok_buf_init(&tenant, tenant_mem, sizeof tenant_mem);
    tok_buf_init(&id, id_mem, sizeof id_mem);
    struct key_row row = {.hash = hash};
    struct tok_keyring *kr = NULL;
    PGconn *pg = NULL;

    tok_status st = tok_admin_connect(a, &pg);
    if (st == TOK_OK)
        st = resolve_tenant(pg, k.tenant, &tenant, "key create");
    if (st == TOK_OK)
        st = tok_admin_keyring(a, &kr);
    if (st != TOK_OK)
        goto done;
    row.tenant_id = (const char *)tenant.data;
    st = tok_random_id("key_", &id);
    if (st == TOK_OK)
        st = tok_buf_cstr(&id, &row.id);
    if (st == TOK_OK)
        st = tok_api_key_generate(k.publishable, k.live, &secret);
    if (st == TOK_OK)
        st = tok_keyring_api_key_hash(kr, tok_buf_slice(&secret), hash);
    tok_keyring_free(&kr);
    if (st == TOK_OK)
        st = key_row_labels(&secret, &row);
    if (st != TOK_OK) {
        say("key create: cannot make the key (%s)", tok_status_name(st));
        goto done;
    }
    st = key_insert(pg, &k, &row);
    if (st != TOK_OK)
        goto done;
    /* the one time the secret is shown: straight from its locked buffer to fd 1 */
    if (a->json) {
        const struct tok_admin_json_field f[] = {
            {"id", TOK_AJ_STR, 0, tok_slice_str(row.id)},
            {"tenant", TOK_AJ_STR, 0, tok_slice_str(row.tenant_id)},
            {"secret", TOK_AJ_STR, 0, tok_buf_slice(&secret)},
            {"prefix", TOK_AJ_STR, 0, tok_slice_str(row.prefix)},
            {"hint", TOK_AJ_STR, 0, tok_slice_str(row.hint)},
            {"publishable", TOK_AJ_BOOL, 0, tok_slice_str(k.publishable ? "true" : "false")},
            {"livemode", TOK_AJ_BOOL, 0, tok_slice_str(k.live ? "true" : "false")},
            {"scopes", TOK_AJ_LIST, 0, tok_buf_slice(&k.scopes)},
            {"origins", TOK_AJ_LIST, 0, tok_buf_slice(&k.origins)},
        };
        st = tok_admin_json_object(f, TOK_ARRAY_LEN(f));
    } else {
        st = finish_stdout();
        if (st == TOK_OK)
            st = write_all(STDOUT_FILENO, secret.data, secret.len);
        if (st == TOK_OK)
            st = write_all(STDOUT_FILENO, (const uint8_t *)"\n", 1);
    }
    if (st != TOK_OK) {
        say("key create: cannot write the secret to stdout; revoke key %s", row.id);
        goto done;
    }
    say("created key %s (%s...%s) for tenant %s; its secret is shown once, above", row.id,
        row.prefix, row.hint, row.tenant_id);
done:
    tok_buf_wipe(&secret);
    sodium_memzero(hash, sizeof hash);
    tok_keyring_free(&kr);
    if (pg != NULL)
        PQfinish(pg);
    return st;
}

static tok_status key_list(const struct tok_admin *a, int argc, char **argv)
{
    const char *tenant_ref = NULL;
    for (int i = 0; i < argc; i++)
        if (opt_value(argc, argv, &i, "--tenant", &tenant_ref) <= 0)
            return key_usage();
    static const char sql[] =
        "SELECT id, tenant_id, prefix, hint, array_to_string(scopes, ','),"
        "       array_to_string(origins, ','), livemode::text,"
        "       to_char(revoked_at AT TIME ZONE 'UTC', " TIME_FMT "),"
        "       to_char(created_at AT TIME ZONE 'UTC', " TIME_FMT ")"
        "  FROM vault.api_keys WHERE ($1::text IS NULL OR tenant_id = $1)"
        " ORDER BY created_at, id";
    uint8_t tenant_mem[TOK_RANDOM_ID_MAX + 1];
    struct tok_buf tenant;
    tok_buf_init(&tenant, tenant_mem, sizeof tenant_mem);
    PGconn *pg = NULL;
    PGresult *r = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    tok_status st = TOK_OK;
    if (tenant_ref != NULL)
        st = resolve_tenant(pg, tenant_ref, &tenant, "key list");
    if (st != TOK_OK)
        goto done;
    const char *vals[1] = {tenant_ref != NULL ? (const char *)tenant.data : NULL};
    r = PQexecParams(pg, sql, 1, NULL, vals, NULL, NULL, 0);
    st = check_result(r, PGRES_TUPLES_OK, "key list");
    if (st != TOK_OK)
        goto done;
    if (a->json) {
        static const struct tok_admin_json_field f[] = {
            {"id", TOK_AJ_STR, 0, {0}}, {"tenant", TOK_AJ_STR, 1, {0}},
            {"prefix", TOK_AJ_STR, 2, {0}}, {"hint", TOK_AJ_STR, 3, {0}},
            {"scopes", TOK_AJ_LIST, 4, {0}}, {"origins", TOK_AJ_LIST, 5, {0}},
            {"livemode", TOK_AJ_BOOL, 6, {0}}, {"revoked_at", TOK_AJ_STR, 7, {0}},
            {"created_at", TOK_AJ_STR, 8, {0}},
        };
        st = tok_admin_json_rows(r, f, TOK_ARRAY_LEN(f));
        goto done;
    }
    fputs("id\ttenant\tkey\tscopes\torigins\tlivemode\trevoked_at\tcreated_at\n", stdout);
    for (int i = 0; i < PQntuples(r); i++) {
        char key[TOK_API_KEY_PREFIX_LEN + API_KEY_HINT_LEN + 8];
        struct tok_buf kb;
        const char *key_s = "?";
        tok_buf_init(&kb, key, sizeof key);
        /* "…" (U+2026) built here, not in SQL: the literal would depend on client_encoding */
        if (tok_buf_printf(&kb, "%s\xe2\x80\xa6%s", PQgetvalue(r, i, 2), PQgetvalue(r, i, 3)) ==
                TOK_OK &&
            tok_buf_cstr(&kb, &key_s) != TOK_OK)
            key_s = "?";
        const char *origins = PQgetvalue(r, i, 5);
        print_cell(PQgetvalue(r, i, 0), false);
        print_cell(PQgetvalue(r, i, 1), false);
        print_cell(key_s, false);
        print_cell(PQgetvalue(r, i, 4), false);
        print_cell(origins[0] != '\0' ? origins : "-", false);
        print_cell(PQgetvalue(r, i, 6), false);
        print_cell(PQgetisnull(r, i, 7) ? "-" : PQgetvalue(r, i, 7), false);
        print_cell(PQgetvalue(r, i, 8), true);
    }
    st = finish_stdout();
done:
    PQclear(r);
    PQfinish(pg);
    return st;
}

static const char sql_key_revoke[] =
    "WITH r AS ("
    "  UPDATE vault.api_keys SET revoked_at = now()"
    "   WHERE id = $1 AND revoked_at IS NULL RETURNING id, tenant_id)"
    " INSERT INTO audit.events (tenant_id, actor, action, object)"
    " SELECT tenant_id, '" ACTOR "', 'key.revoked', id FROM r";

static tok_status key_revoke(const struct tok_admin *a, int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-')
        return key_usage();
    const char *vals[1] = {argv[0]};
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    PGresult *r = PQexecParams(pg, sql_key_revoke, 1, NULL, vals, NULL, NULL, 0);
    tok_status st = check_result(r, PGRES_COMMAND_OK, "key revoke");
    bool revoked = st == TOK_OK && strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    r = NULL;
    if (st == TOK_OK && !revoked) {
        /* nothing changed: tell a key revoked earlier from one that never existed */
        r = PQexecParams(pg, "SELECT 1 FROM vault.api_keys WHERE id = $1", 1, NULL, vals, NULL,
                         NULL, 0);
        st = check_result(r, PGRES_TUPLES_OK, "key revoke");
        if (st == TOK_OK && PQntuples(r) == 0) {
            say("key revoke: no such key: %s", argv[0]);
            st = TOK_ERR_NOTFOUND;
        } else if (st == TOK_OK) {
            say("key revoke: key %s is already revoked", argv[0]);
            st = TOK_ERR_CONFLICT;
        }
    }
    if (st == TOK_OK)
        say("revoked key %s", argv[0]);
    PQclear(r);
    PQfinish(pg);
    return st;
}

tok_status tok_admin_key(const struct tok_admin *a, int argc, char **argv)
{
    static const struct tok_admin_cmd cmds[] = {
        {"create", key_create},
        {"list", key_list},
        {"revoke", key_revoke},
    };
    return tok_admin_dispatch(a, argc, argv, cmds, TOK_ARRAY_LEN(cmds), key_usage);
}

/* ---- audit ------------------------------------------------------------------------------ */

static tok_status audit_usage(void)
{
    say("usage: audit verify [--audit-key-file F] [--audit-pubkey HEX] [--checkpoints FILE]..."
        " | audit pubkey [--audit-key-file F]"
        " | audit report --since TIME [--until TIME] [--tenant T] [--json]"
        " | audit dedup [--minutes N]");
    return TOK_ERR_INPUT;
}

#define DEDUP_MINUTES_DEFAULT 60
#define DEDUP_MINUTES_MAX 44640 /* 31 days */

/*
 * `audit dedup [--minutes N]`: per API key, the de-duplication hits (token.deduplicated)
 * and the requests refused at the key's limit (token.dedup_limited) in the last N minutes,
 * from the audit log: the figure an operator alerts on, summed over every tokend process
 * (each one's limit is per process, dedup_guard.h). Keys with neither are not listed.
 */
static tok_status audit_dedup(const struct tok_admin *a, int argc, char **argv)
{
    const char *minutes = NULL;
    for (int i = 0; i < argc; i++)
        if (opt_value(argc, argv, &i, "--minutes", &minutes) <= 0)
            return audit_usage();
    unsigned long n = DEDUP_MINUTES_DEFAULT;
    if (minutes != NULL) {
        char *end = NULL;
        errno = 0;
        n = strtoul(minutes, &end, 10);
        if (errno != 0 || end == minutes || *end != '\0' || minutes[0] == '-' || n < 1 ||
            n > DEDUP_MINUTES_MAX) {
            say("audit dedup: --minutes is a whole number from 1 to %d", DEDUP_MINUTES_MAX);
            return TOK_ERR_INPUT;
        }
    }
    static const char sql[] =
        "SELECT e.actor, coalesce(e.tenant_id, '-'),"
        "       count(*) FILTER (WHERE e.action = 'token.deduplicated'),"
        "       count(*) FILTER (WHERE e.action = 'token.dedup_limited')"
        "  FROM audit.events e"
        " WHERE e.action IN ('token.deduplicated', 'token.dedup_limited')"
        "   AND e.created_at > now() - make_interval(mins => $1::int)"
        " GROUP BY 1, 2 ORDER BY 3 DESC, 4 DESC, 1";
    char nbuf[16];
    snprintf(nbuf, sizeof nbuf, "%lu", n);
    const char *vals[1] = {nbuf};
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    PGresult *r = PQexecParams(pg, sql, 1, NULL, vals, NULL, NULL, 0);
    tok_status st = check_result(r, PGRES_TUPLES_OK, "audit dedup");
    if (st == TOK_OK)
        st = print_table(r, "key\ttenant\thits\trefused\n");
    PQclear(r);
    PQfinish(pg);
    return st;
}

static struct tok_slice cell_bytes(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return tok_slice_of(NULL, 0);
    return tok_slice_of(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

static tok_status int8_cell(const PGresult *r, int row, int col, int64_t *out)
{
    struct tok_slice s = cell_bytes(r, row, col);
    TOK_ENSURE(s.len == 8, TOK_ERR_INTERNAL); /* int8, network byte order */
    *out = id_at(s, 0);
    return TOK_OK;
}

/* One FETCHed batch (binary results) of rows chained one by one: seq, prev_hash, hash, expected. */
static tok_status legacy_batch(const PGresult *r, struct tok_audit_walk *w)
{
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t seq;
        TOK_GUARD(int8_cell(r, i, 0, &seq));
        TOK_GUARD(tok_audit_walk_step(w, seq, cell_bytes(r, i, 1), cell_bytes(r, i, 2),
                                      cell_bytes(r, i, 3)));
    }
    return TOK_OK;
}

/* One FETCHed batch of blocks, each with the digests and ids of the rows in its range now. */
static tok_status blocks_batch(const PGresult *r, struct tok_audit_walk *w)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct tok_audit_block b = {
            .digests = cell_bytes(r, i, 3),
            .prev_hash = cell_bytes(r, i, 4),
            .hash = cell_bytes(r, i, 5),
            .now_digests = cell_bytes(r, i, 6),
            .now_ids = cell_bytes(r, i, 7),
            .mac = cell_bytes(r, i, 8),
        };
        TOK_GUARD(int8_cell(r, i, 0, &b.block));
        TOK_GUARD(int8_cell(r, i, 1, &b.first_id));
        TOK_GUARD(int8_cell(r, i, 2, &b.last_id));
        TOK_GUARD(tok_audit_walk_block(w, &b));
    }
    return TOK_OK;
}

/* Streams a query through a cursor, `fetch` rows at a time (binary results), to batch(). */
static tok_status cursor_walk(PGconn *pg, const char *query, const char *fetch,
                              tok_status (*batch)(const PGresult *, struct tok_audit_walk *),
                              struct tok_audit_walk *w)
{
    char declare[1024];
    TOK_ENSURE(snprintf(declare, sizeof declare, "DECLARE " AUDIT_CURSOR " NO SCROLL CURSOR FOR %s",
                        query) < (int)sizeof declare,
               TOK_ERR_INTERNAL);
    TOK_GUARD(command(pg, declare, "audit verify"));
    tok_status st = TOK_OK;
    for (int n = 1; st == TOK_OK && n > 0;) {
        PGresult *r = PQexecParams(pg, fetch, 0, NULL, NULL, NULL, NULL, 1);
        st = check_result(r, PGRES_TUPLES_OK, "audit verify");
        n = st == TOK_OK ? PQntuples(r) : 0;
        if (st == TOK_OK)
            st = batch(r, w);
        PQclear(r);
    }
    tok_status cst = command(pg, "CLOSE " AUDIT_CURSOR, "audit verify");
    return st != TOK_OK ? st : cst;
}

/* What audit.chain_state says, and the rows it leaves out. */
struct chain_state {
    int64_t legacy_to, last_block, added, pending;
    uint8_t last_hash[TOK_ADMIN_AUDIT_HASH_LEN];
};

static tok_status chain_state_read(PGconn *pg, struct chain_state *cs)
{
    /* added: a row without a seq among those chained one by one, which no block covers */
    static const char sql[] =
        "SELECT s.legacy_to, s.last_block, s.last_hash,"
        " coalesce((SELECT min(e.id) FROM audit.events e WHERE e.id <= s.legacy_to AND e.seq IS NULL), 0),"
        " (SELECT count(*) FROM audit.events e WHERE e.id > s.chained_to)"
        " FROM audit.chain_state s";
    PGresult *r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 1);
    tok_status st = check_result(r, PGRES_TUPLES_OK, "audit verify");
    if (st == TOK_OK && PQntuples(r) != 1) {
        say("audit verify: audit.chain_state is empty: run the migrations");
        st = TOK_ERR_DB;
    }
    struct tok_slice h = st == TOK_OK ? cell_bytes(r, 0, 2) : tok_slice_of(NULL, 0);
    if (st == TOK_OK && (int8_cell(r, 0, 0, &cs->legacy_to) != TOK_OK ||
                         int8_cell(r, 0, 1, &cs->last_block) != TOK_OK ||
                         int8_cell(r, 0, 3, &cs->added) != TOK_OK ||
                         int8_cell(r, 0, 4, &cs->pending) != TOK_OK || h.len != sizeof cs->last_hash))
        st = TOK_ERR_INTERNAL;
    if (st == TOK_OK)
        tok_copy(cs->last_hash, h.ptr, h.len);
    PQclear(r);
    return st;
}

/*
 * The walk, inside one read-only snapshot so rows appended meanwhile cannot confuse it:
 * the rows chained one by one before sql/011 in seq order, then the blocks in order.
 */
static tok_status audit_walk_snapshot(PGconn *pg, struct tok_audit_walk *w, int64_t *pending)
{
    static const char legacy[] =
        "SELECT seq, prev_hash, hash, audit.row_hash(prev_hash, e) FROM audit.events e"
        " WHERE seq IS NOT NULL ORDER BY seq";
    static const char blocks[] =
        "SELECT b.block, b.first_id, b.last_id, b.digests, b.prev_hash, b.hash,"
        " coalesce(r.d, ''::bytea), coalesce(r.i, ''::bytea), b.mac FROM audit.blocks b"
        " LEFT JOIN LATERAL (SELECT string_agg(audit.row_digest(e), ''::bytea ORDER BY e.id) AS d,"
        " string_agg(int8send(e.id), ''::bytea ORDER BY e.id) AS i FROM audit.events e"
        " WHERE e.id BETWEEN b.first_id AND b.last_id) r ON true ORDER BY b.block";
    TOK_GUARD(cursor_walk(pg, legacy, "FETCH " STR(TOK_ADMIN_AUDIT_FETCH) " FROM " AUDIT_CURSOR,
                          legacy_batch, w));
    struct chain_state cs;
    TOK_GUARD(chain_state_read(pg, &cs));
    if (cs.added != 0)
        return broken(w, "event", cs.added, "row added");
    tok_audit_walk_blocks_start(w, cs.legacy_to);
    TOK_GUARD(cursor_walk(pg, blocks, "FETCH " STR(TOK_ADMIN_AUDIT_FETCH_BLOCKS) " FROM " AUDIT_CURSOR,
                          blocks_batch, w));
    TOK_GUARD(tok_audit_walk_end(w, cs.last_block, tok_slice_of(cs.last_hash, sizeof cs.last_hash)));
    *pending = cs.pending;
    return TOK_OK;
}

static tok_status audit_walk(PGconn *pg, struct tok_audit_walk *w, int64_t *pending)
{
    /* chain every row committed so far first (waiting a little for transactions in flight),
     * so the walk covers them and an unchained row is a break, not a race */
    PGresult *cr = PQexec(pg, "SELECT chained FROM audit.chain_pending(" STR(TOK_ADMIN_AUDIT_BLOCK_ROWS)
                              ", " STR(TOK_ADMIN_AUDIT_CHAIN_WAIT_MS) ")");
    tok_status cst = check_result(cr, PGRES_TUPLES_OK, "audit verify");
    PQclear(cr);
    TOK_GUARD(cst);
    TOK_GUARD(command(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "audit verify"));
    tok_status st = audit_walk_snapshot(pg, w, pending);
    tok_status end = command(pg, "ROLLBACK", "audit verify"); /* read only: nothing to keep */
    return st != TOK_OK ? st : end;
}

#define CP_FILES_MAX 16
#define CP_MAX 50000000 /* checkpoints read by one verify (~100 bytes of memory each) */

static int cp_cmp(const void *x, const void *y)
{
    int64_t a = ((const struct tok_audit_checkpoint *)x)->block;
    int64_t b = ((const struct tok_audit_checkpoint *)y)->block;
    return a < b ? -1 : a > b;
}

/* Appends the checkpoints of one file to *cps, each signature checked and made by pk. */
static tok_status checkpoints_read(const char *path, const uint8_t pk[TOK_AUDIT_PK_LEN],
                                   struct tok_audit_checkpoint **cps, size_t *n, size_t *cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        say("audit verify: cannot open the checkpoint file %s", path);
        return TOK_ERR_IO;
    }
    char *line = NULL;
    size_t line_cap = 0;
    tok_status st = TOK_OK;
    for (long no = 1; st == TOK_OK; no++) {
        ssize_t len = getline(&line, &line_cap, f);
        if (len < 0)
            break;
        if (*n == *cap) {
            size_t nc = *cap == 0 ? 1024 : *cap * 2;
            struct tok_audit_checkpoint *g = nc <= CP_MAX ? realloc(*cps, nc * sizeof *g) : NULL;
            if (g == NULL) {
                st = TOK_ERR_NOMEM;
                break;
            }
            *cps = g;
            *cap = nc;
        }
        struct tok_audit_checkpoint *cp = &(*cps)[*n];
        st = tok_audit_checkpoint_parse(tok_slice_of(line, (size_t)len), cp);
        if (st == TOK_ERR_INPUT) {
            printf("audit: checkpoint file %s line %ld: not a checkpoint line\n", path, no);
            st = TOK_ERR_CRYPTO;
        } else if (st == TOK_ERR_CRYPTO) {
            printf("audit: checkpoint file %s line %ld: signature does not verify\n", path, no);
        } else if (st == TOK_OK && sodium_memcmp(cp->pk, pk, TOK_AUDIT_PK_LEN) != 0) {
            printf("audit: checkpoint file %s line %ld: signed by another key\n", path, no);
            st = TOK_ERR_CRYPTO;
        } else if (st == TOK_OK) {
            (*n)++;
        }
    }
    free(line);
    fclose(f);
    return st;
}

struct verify_opts {
    const char *key_file, *pubkey_hex;
    const char *cp_files[CP_FILES_MAX];
    size_t n_cp_files;
};

static tok_status verify_opts_parse(int argc, char **argv, struct verify_opts *o)
{
    o->key_file = getenv("TOKEND_AUDIT_KEY_FILE");
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int k;
        if ((k = opt_value(argc, argv, &i, "--audit-key-file", &o->key_file)) != 0 ||
            (k = opt_value(argc, argv, &i, "--audit-pubkey", &o->pubkey_hex)) != 0) {
            if (k < 0)
                return audit_usage();
            continue;
        }
        k = opt_value(argc, argv, &i, "--checkpoints", &v);
        if (k <= 0 || o->n_cp_files == CP_FILES_MAX)
            return audit_usage();
        o->cp_files[o->n_cp_files++] = v;
    }
    if (o->key_file != NULL && o->key_file[0] == '\0')
        o->key_file = NULL;
    if (o->n_cp_files > 0 && o->key_file == NULL && o->pubkey_hex == NULL) {
        say("audit verify: --checkpoints needs --audit-key-file or --audit-pubkey (whose"
            " signatures to trust)");
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

static tok_status audit_key_open(const char *path, struct tok_audit_key **ak)
{
    const char *why = NULL;
    tok_status st = tok_audit_key_load_file(path, ak, &why);
    if (st != TOK_OK) {
        say("audit key refused: %s", why != NULL ? why : tok_status_name(st));
        return st == TOK_ERR_INPUT ? TOK_ERR_IO : st;
    }
    return TOK_OK;
}

/* The trusted public key: the audit key's, or --audit-pubkey (which must agree with it). */
static tok_status trusted_pk(const struct verify_opts *o, const struct tok_audit_key *ak,
                             uint8_t pk[TOK_AUDIT_PK_LEN])
{
    if (ak != NULL)
        tok_audit_key_public(ak, pk);
    if (o->pubkey_hex == NULL)
        return TOK_OK;
    uint8_t given[TOK_AUDIT_PK_LEN];
    struct tok_buf b;
    tok_buf_init(&b, given, sizeof given);
    if (tok_hex_decode(tok_slice_of(o->pubkey_hex, strlen(o->pubkey_hex)), &b) != TOK_OK ||
        b.len != sizeof given) {
        say("audit verify: --audit-pubkey wants 64 hex characters (tokenctl audit pubkey)");
        return TOK_ERR_INPUT;
    }
    if (ak != NULL && sodium_memcmp(given, pk, sizeof given) != 0) {
        say("audit verify: --audit-pubkey is not the audit key's public key");
        return TOK_ERR_INPUT;
    }
    tok_copy(pk, given, sizeof given);
    return TOK_OK;
}

static tok_status audit_verify(const struct tok_admin *a, int argc, char **argv)
{
    struct verify_opts o = {0};
    TOK_GUARD(verify_opts_parse(argc, argv, &o));
    struct tok_audit_key *ak = NULL;
    if (o.key_file != NULL)
        TOK_GUARD(audit_key_open(o.key_file, &ak));
    uint8_t pk[TOK_AUDIT_PK_LEN];
    struct tok_audit_checkpoint *cps = NULL;
    size_t n_cps = 0, cap = 0;
    tok_status st = trusted_pk(&o, ak, pk);
    for (size_t i = 0; st == TOK_OK && i < o.n_cp_files; i++)
        st = checkpoints_read(o.cp_files[i], pk, &cps, &n_cps, &cap);
    if (st == TOK_OK && n_cps > 0)
        qsort(cps, n_cps, sizeof *cps, cp_cmp);
    PGconn *pg = NULL;
    if (st == TOK_OK)
        st = tok_admin_connect(a, &pg);
    struct tok_audit_walk w;
    tok_audit_walk_init(&w);
    w.ak = ak;
    w.cps = cps;
    w.n_cps = n_cps;
    int64_t pending = 0;
    if (st == TOK_OK) {
        st = audit_walk(pg, &w, &pending);
        PQfinish(pg);
        if (st == TOK_ERR_CRYPTO) {
            printf("audit: chain broken at %s %" PRId64 ": %s\n", w.broken_what, w.broken_at, w.why);
        } else if (st == TOK_OK) {
            printf("audit: %" PRIu64 " events, chain intact\n", w.count);
            if (pending > 0)
                printf("audit: %" PRId64 " newer events not chained yet\n", pending);
            if (ak != NULL)
                printf("audit: %" PRId64 " block MACs match\n", w.macs_checked);
            if (ak != NULL && w.unsealed_from != 0)
                printf("audit: blocks from %" PRId64 " on not sealed yet (tokend seals them)\n",
                       w.unsealed_from);
            if (o.n_cp_files > 0)
                printf("audit: %" PRId64 " signed checkpoints match%s\n", w.cps_checked,
                       n_cps > 0 ? "" : " (the checkpoint files are empty)");
        } else if (st == TOK_ERR_INTERNAL) {
            say("audit verify: unexpected column format from the database");
        }
    } else if (st == TOK_ERR_NOMEM) {
        say("audit verify: out of memory reading checkpoints");
    }
    free(cps);
    tok_audit_key_free(&ak);
    tok_status out = finish_stdout();
    return st != TOK_OK ? st : out;
}

/*
 * `audit report`: who (which API key, tokenctl, tokend itself) did what to which tenants'
 * objects since a time: the answer an operator needs within hours of an incident, to know
 * which customers to notify. One group per tenant, actor and action, with how many events
 * and objects, the first and last time, and a few of the objects. Only audit rows are read:
 * run `audit verify` with the checkpoints first to know they can be trusted.
 */
#define REPORT_SAMPLE 5 /* objects named per group */

static const char report_sql[] =
    "WITH g AS (SELECT e.tenant_id, t.name AS tenant_name, e.actor,"
    "  CASE WHEN k.id IS NOT NULL THEN 'api key ' || k.prefix || '...' || k.hint"
    "       || ' (' || array_to_string(k.scopes, ',') || ')'"
    "       || CASE WHEN k.revoked_at IS NOT NULL THEN ', revoked' ELSE '' END"
    "       WHEN e.actor = 'tokenctl' THEN 'admin (tokenctl)'"
    "       ELSE 'service' END AS actor_kind,"
    "  e.action, count(*) AS events, count(DISTINCT e.object) AS objects,"
    "  min(e.created_at) AS first_at, max(e.created_at) AS last_at,"
    "  (array_agg(DISTINCT e.object ORDER BY e.object) FILTER (WHERE e.object IS NOT NULL))"
    "    [1:" STR(REPORT_SAMPLE) "] AS sample"
    " FROM audit.events e LEFT JOIN vault.tenants t ON t.id = e.tenant_id"
    " LEFT JOIN vault.api_keys k ON k.id = e.actor"
    " WHERE e.created_at >= $1::timestamptz"
    "   AND ($2::text IS NULL OR e.created_at < $2::timestamptz)"
    "   AND ($3::text IS NULL OR e.tenant_id = $3)"
    " GROUP BY 1, 2, 3, 4, 5)"
    " SELECT coalesce(tenant_id, '-'), coalesce(tenant_name, ''), actor, actor_kind, action,"
    "  events, objects, to_char(first_at AT TIME ZONE 'UTC', " TIME_FMT "),"
    "  to_char(last_at AT TIME ZONE 'UTC', " TIME_FMT "), coalesce(array_to_string(sample, ' '), ''),"
    "  json_build_object('tenant_id', tenant_id, 'tenant_name', tenant_name, 'actor', actor,"
    "   'actor_kind', actor_kind, 'action', action, 'events', events, 'objects', objects,"
    "   'first_at', first_at, 'last_at', last_at, 'sample_objects', coalesce(sample, '{}'))"
    " FROM g ORDER BY tenant_id NULLS LAST, actor, action";

static void print_safe(const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        fputc(c < 0x20 || c == 0x7f ? '?' : c, stdout);
    }
}

static void report_text(const PGresult *r, const char *since, const char *until)
{
    int n = PQntuples(r);
    printf("audit report: events since %s%s%s: %d groups\n", since, until ? " until " : "",
           until ? until : "", n);
    const char *ten = NULL, *actor = NULL;
    for (int i = 0; i < n; i++) {
        if (ten == NULL || strcmp(ten, PQgetvalue(r, i, 0)) != 0) {
            ten = PQgetvalue(r, i, 0);
            actor = NULL;
            fputs("tenant ", stdout);
            print_safe(strcmp(ten, "-") == 0 ? "(none: service-wide)" : ten);
            if (PQgetvalue(r, i, 1)[0] != '\0') {
                fputs(" \"", stdout);
                print_safe(PQgetvalue(r, i, 1));
                fputc('"', stdout);
            }
            fputc('\n', stdout);
        }
        if (actor == NULL || strcmp(actor, PQgetvalue(r, i, 2)) != 0) {
            actor = PQgetvalue(r, i, 2);
            fputs("  by ", stdout);
            print_safe(actor);
            fputs(" [", stdout);
            print_safe(PQgetvalue(r, i, 3));
            fputs("]\n", stdout);
        }
        fputs("    ", stdout);
        print_safe(PQgetvalue(r, i, 4));
        printf(": %s events on %s objects, %s .. %s", PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
               PQgetvalue(r, i, 7), PQgetvalue(r, i, 8));
        if (PQgetvalue(r, i, 9)[0] != '\0') {
            fputs("; e.g. ", stdout);
            print_safe(PQgetvalue(r, i, 9));
        }
        fputc('\n', stdout);
    }
}

static tok_status audit_report(const struct tok_admin *a, int argc, char **argv)
{
    const char *since = NULL, *until = NULL, *tenant_ref = NULL;
    bool json = a->json; /* tokenctl_main takes --json out of argv wherever it was */
    for (int i = 0; i < argc; i++) {
        int k;
        if ((k = opt_value(argc, argv, &i, "--since", &since)) == 0 &&
            (k = opt_value(argc, argv, &i, "--until", &until)) == 0)
            k = opt_value(argc, argv, &i, "--tenant", &tenant_ref);
        if (k <= 0)
            return audit_usage();
    }
    if (since == NULL)
        return audit_usage();
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    char tenant_mem[TOK_ADMIN_TENANT_MAX];
    struct tok_buf tenant;
    tok_buf_init(&tenant, tenant_mem, sizeof tenant_mem);
    tok_status st = TOK_OK;
    if (tenant_ref != NULL)
        st = resolve_tenant(pg, tenant_ref, &tenant, "audit report");
    PGresult *r = NULL;
    if (st == TOK_OK) {
        const char *v[3] = {since, until, tenant_ref != NULL ? (const char *)tenant.data : NULL};
        r = PQexecParams(pg, report_sql, 3, NULL, v, NULL, NULL, 0);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (PQresultStatus(r) != PGRES_TUPLES_OK && state != NULL && strncmp(state, "22", 2) == 0) {
            say("audit report: --since/--until: not a time (e.g. 2024-05-01T12:00:00Z)");
            st = TOK_ERR_INPUT;
        } else {
            st = check_result(r, PGRES_TUPLES_OK, "audit report");
        }
    }
    if (st == TOK_OK && json) {
        fputs("[", stdout);
        for (int i = 0; i < PQntuples(r); i++)
            printf("%s\n%s", i > 0 ? "," : "", PQgetvalue(r, i, 10));
        fputs("]\n", stdout);
    } else if (st == TOK_OK) {
        report_text(r, since, until);
    }
    PQclear(r);
    PQfinish(pg);
    tok_status out = finish_stdout();
    return st != TOK_OK ? st : out;
}

/* `audit pubkey`: the checkpoint-signing public key, for whoever checks checkpoints. */
static tok_status audit_pubkey(int argc, char **argv)
{
    struct verify_opts o = {0};
    TOK_GUARD(verify_opts_parse(argc, argv, &o));
    if (o.key_file == NULL) {
        say("audit pubkey: set --audit-key-file or TOKEND_AUDIT_KEY_FILE");
        return TOK_ERR_INPUT;
    }
    struct tok_audit_key *ak = NULL;
    TOK_GUARD(audit_key_open(o.key_file, &ak));
    uint8_t pk[TOK_AUDIT_PK_LEN];
    tok_audit_key_public(ak, pk);
    tok_audit_key_free(&ak);
    char hex[2 * TOK_AUDIT_PK_LEN + 1];
    struct tok_buf b;
    tok_buf_init(&b, hex, sizeof hex);
    TOK_GUARD(tok_hex_encode(tok_slice_of(pk, sizeof pk), &b));
    hex[b.len] = '\0';
    printf("%s\n", hex);
    return finish_stdout();
}

tok_status tok_admin_audit(const struct tok_admin *a, int argc, char **argv)
{
    TOK_ENSURE(a != NULL && (argv != NULL || argc == 0), TOK_ERR_INTERNAL);
    if (argc >= 1 && strcmp(argv[0], "verify") == 0)
        return audit_verify(a, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "pubkey") == 0)
        return audit_pubkey(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "report") == 0)
        return audit_report(a, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "dedup") == 0)
        return audit_dedup(a, argc - 1, argv + 1);
    return audit_usage();
}

/* ---- keys ------------------------------------------------------------------------------- */

/*
 * `keys status [--tenant T]`: each tenant's key versions, their state, and how many rows use
 * each (tokens, sealed gateway references, gateway accounts, webhook endpoints): a version
 * may be retired and destroyed only when its counts are all zero (SECURITY.md, rotation).
 */
static tok_status keys_usage(void)
{
    say("usage: keys status [--tenant T | --master] | keys new-master (--out FILE | --pkcs11 "
        "URI) | keys rotate-master (--new-master-key-file FILE | --new-master-key-pkcs11 URI) | "
        "keys rotate-data --tenant T | keys rotate-fingerprint --tenant T --yes-break-dedup | "
        "keys retire --tenant T --version N | keys retire-master --version N | keys hsm-init "
        "(with --master-key-pkcs11 URI)");
    return TOK_ERR_INPUT;
}

/* Makes the master key inside the token the URI names, then opens it the way tokend will
 * (attributes checked, one wrap and unwrap, the sub-key root), so a key that tokend would
 * refuse is reported here. */
static tok_status keys_hsm_init(const struct tok_admin *a, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return keys_usage();
    if (a->master_key_pkcs11 == NULL || a->master_key_pkcs11[0] == '\0') {
        say("keys hsm-init: give --master-key-pkcs11 'pkcs11:token=...;object=...' and"
            " --master-key-pin-file F");
        return TOK_ERR_INPUT;
    }
    const char *why = NULL;
    if (tok_harden_process(&why) != TOK_OK) {
        say("%s", why != NULL ? why : "cannot harden the process");
        return TOK_ERR_INTERNAL;
    }
    tok_status st =
        tok_master_key_pkcs11_create(a->master_key_pkcs11, a->master_key_pin_file, NULL, &why);
    struct tok_master_key *mk = NULL;
    if (st == TOK_OK)
        st = tok_master_key_pkcs11_open(a->master_key_pkcs11, a->master_key_pin_file, &mk, &why);
    tok_master_key_free(&mk);
    if (st != TOK_OK) {
        say("keys hsm-init: %s", why != NULL ? why : tok_status_name(st));
        return st;
    }
    printf("keys hsm-init: made a non-extractable AES-256 master key in the token\n");
    return finish_stdout();
}

/*
 * `keys status --master`: every master key version the database knows (from the wrapped
 * tenant keys and the master rotations), how many live wrapped key pairs each still wraps,
 * and its state: current (what new keys are wrapped by), previous (older, still in use or
 * not retired yet), retired (keys retire-master recorded that nothing uses it).
 */
static tok_status keys_status_master(const struct tok_admin *a)
{
    static const char sql[] =
        "WITH cur AS (SELECT coalesce((SELECT to_version FROM vault.key_rotations"
        "   WHERE kind = 'master' AND state = 'running'),"
        "  (SELECT coalesce(max(master_version), 1) FROM vault.tenant_keys"
        "   WHERE wrapped_dek IS NOT NULL)) AS v),"
        " vs AS (SELECT master_version AS v FROM vault.tenant_keys"
        "  UNION SELECT from_version FROM vault.key_rotations WHERE kind = 'master'"
        "  UNION SELECT to_version FROM vault.key_rotations WHERE kind = 'master'"
        "  UNION SELECT v FROM cur)"
        " SELECT vs.v,"
        " (SELECT count(*) FROM vault.tenant_keys k WHERE k.master_version = vs.v"
        "   AND k.wrapped_dek IS NOT NULL),"
        " CASE WHEN EXISTS (SELECT 1 FROM audit.events e WHERE e.action = 'key.retired'"
        "   AND e.object = 'master_key' AND e.detail->>'from_version' = vs.v::text) THEN 'retired'"
        "  WHEN vs.v = (SELECT v FROM cur) THEN 'current' ELSE 'previous' END,"
        " coalesce((SELECT r.kind || ' ' || r.from_version || '->' || r.to_version || ' ' ||"
        "   r.state FROM vault.key_rotations r WHERE r.kind = 'master'"
        "   AND vs.v IN (r.from_version, r.to_version) ORDER BY r.id DESC LIMIT 1), '-')"
        " FROM vs ORDER BY vs.v";
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    PGresult *r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
    tok_status st = check_result(r, PGRES_TUPLES_OK, "keys status");
    if (st == TOK_OK)
        st = print_table(r, "master_version\twrapped_key_pairs\tstate\trotation\n");
    PQclear(r);
    PQfinish(pg);
    return st;
}

static tok_status keys_status(const struct tok_admin *a, int argc, char **argv)
{
    const char *tenant_ref = NULL;
    if (argc == 1 && strcmp(argv[0], "--master") == 0)
        return keys_status_master(a);
    for (int i = 0; i < argc; i++)
        if (opt_value(argc, argv, &i, "--tenant", &tenant_ref) <= 0)
            return keys_usage();
    static const char sql[] =
        "SELECT k.tenant_id, t.name, k.version, k.state,"
        " to_char(k.created_at AT TIME ZONE 'UTC', " TIME_FMT "),"
        " (SELECT count(*) FROM vault.tokens x WHERE x.tenant_id = k.tenant_id AND x.key_version = k.version),"
        " (SELECT count(*) FROM vault.gateway_refs x WHERE x.tenant_id = k.tenant_id AND x.key_version = k.version),"
        " (SELECT count(*) FROM vault.gateways x WHERE x.tenant_id = k.tenant_id AND x.key_version = k.version),"
        " (SELECT count(*) FROM ledger.webhook_endpoints x WHERE x.tenant_id = k.tenant_id AND x.key_version = k.version),"
        " k.master_version,"
        " coalesce((SELECT r.kind || ' ' || r.from_version || '->' || r.to_version || ' ' || r.state"
        "   FROM vault.key_rotations r WHERE r.tenant_id = k.tenant_id AND k.version IN (r.from_version, r.to_version)"
        "  ORDER BY r.id DESC LIMIT 1), '-')"
        " FROM vault.tenant_keys k JOIN vault.tenants t ON t.id = k.tenant_id"
        " WHERE $1::text IS NULL OR k.tenant_id = $1 ORDER BY t.created_at, k.tenant_id, k.version";
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    char tenant_mem[TOK_ADMIN_TENANT_MAX];
    struct tok_buf tenant;
    tok_buf_init(&tenant, tenant_mem, sizeof tenant_mem);
    tok_status st = TOK_OK;
    PGresult *r = NULL;
    if (tenant_ref != NULL)
        st = resolve_tenant(pg, tenant_ref, &tenant, "keys status");
    if (st == TOK_OK) {
        const char *vals[1] = {tenant_ref != NULL ? (const char *)tenant.data : NULL};
        r = PQexecParams(pg, sql, 1, NULL, vals, NULL, NULL, 0);
        st = check_result(r, PGRES_TUPLES_OK, "keys status");
    }
    if (st == TOK_OK)
        st = print_table(r, "tenant\tname\tversion\tstate\tcreated_at\ttokens\tgateway_refs"
                            "\tgateways\twebhooks\tmaster_version\trotation\n");
    PQclear(r);
    PQfinish(pg);
    return st;
}

tok_status tok_admin_keys(const struct tok_admin *a, int argc, char **argv)
{
    TOK_ENSURE(a != NULL && (argv != NULL || argc == 0), TOK_ERR_INTERNAL);
    static const struct tok_admin_cmd cmds[] = {
        {"status", keys_status},
        {"new-master", tok_admin_keys_new_master},
        {"rotate-master", tok_admin_keys_rotate_master},
        {"rotate-data", tok_admin_keys_rotate_data},
        {"rotate-fingerprint", tok_admin_keys_rotate_fingerprint},
        {"retire", tok_admin_keys_retire},
        {"retire-master", tok_admin_keys_retire_master},
        {"hsm-init", keys_hsm_init},
    };
    return tok_admin_dispatch(a, argc, argv, cmds, TOK_ARRAY_LEN(cmds), keys_usage);
}

/* ---- gateway ---------------------------------------------------------------------------- */

#define GW_CREDENTIALS_MAX 16384

static tok_status gateway_usage(void)
{
    say("usage: gateway add --tenant T --kind stripe|adyen|sandbox --credentials-file F"
        " [--priority N] [--base-url https://HOST[:PORT]] [--live|--test]"
        " | gateway list [--tenant T] | gateway remove ID");
    return TOK_ERR_INPUT;
}

/* Reads a credentials file into secret memory: a regular file, mode 0600 or tighter. */
static tok_status read_secret_file(const char *path, struct tok_buf *out)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        say("gateway add: cannot open the credentials file %s", path);
        return TOK_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 ||
        st.st_size <= 0 || st.st_size > GW_CREDENTIALS_MAX) {
        say("gateway add: the credentials file must be a regular file of at most %d bytes, mode 0600",
            GW_CREDENTIALS_MAX);
        fclose(f);
        return TOK_ERR_INPUT;
    }
    tok_status s = tok_buf_alloc(out, (uint32_t)st.st_size + 1, true);
    if (s == TOK_OK) {
        size_t n = fread(out->data, 1, (size_t)st.st_size, f);
        out->len = (uint32_t)n;
        if (n != (size_t)st.st_size)
            s = TOK_ERR_IO;
    }
    fclose(f);
    return s;
}

static const char *const credential_fields[] = {"api_key", "merchant_account", "webhook_secret", "hmac_key"};

/* The credentials must be a JSON object of strings with what the kind needs. */
static tok_status credentials_check(const char *kind, struct tok_slice json)
{
    struct tok_json_doc *doc = NULL;
    struct tok_json_error err;
    struct tok_json_limits lim = tok_json_limits_default();
    if (tok_json_parse(json, &lim, &doc, &err) != TOK_OK) {
        say("gateway add: the credentials file is not valid JSON (%s)", err.code);
        return TOK_ERR_INPUT;
    }
    const struct tok_json_node *root = tok_json_root(doc);
    tok_status st = TOK_OK;
    struct tok_slice v;
    if (tok_json_type(root) != TOK_JSON_OBJECT ||
        tok_json_check_keys(root, credential_fields, TOK_ARRAY_LEN(credential_fields), NULL) != TOK_OK) {
        say("gateway add: credentials are an object with api_key, merchant_account, webhook_secret, hmac_key");
        st = TOK_ERR_INPUT;
    }
    for (size_t i = 0; st == TOK_OK && i < tok_json_object_size(root); i++) {
        const struct tok_json_node *val = NULL;
        struct tok_slice k;
        if (tok_json_object_at(root, i, &k, &val) != TOK_OK || tok_json_string(val, &v) != TOK_OK ||
            v.len == 0 || v.len > 512) {
            say("gateway add: every credential is a non-empty string of at most 512 bytes");
            st = TOK_ERR_INPUT;
        }
    }
    bool need_key = strcmp(kind, "sandbox") != 0;
    if (st == TOK_OK && need_key && tok_json_get(root, "api_key") == NULL) {
        say("gateway add: %s credentials need api_key", kind);
        st = TOK_ERR_INPUT;
    }
    if (st == TOK_OK && strcmp(kind, "adyen") == 0 && tok_json_get(root, "merchant_account") == NULL) {
        say("gateway add: adyen credentials need merchant_account");
        st = TOK_ERR_INPUT;
    }
    tok_json_doc_free(&doc);
    return st;
}

static bool base_url_ok(const char *u)
{
    size_t n = strlen(u);
    if (n <= 8 || n > 200 || strncmp(u, "https://", 8) != 0)
        return false;
    for (size_t i = 8; i < n; i++) {
        char c = u[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':'))
            return false;
    }
    return true;
}

tok_status tok_admin_tenant_keys(PGconn *pg, const struct tok_keyring *kr, const char *ref,
                                 const char *what, char tenant[TOK_ADMIN_TENANT_MAX],
                                 struct tok_tenant_keys **out, uint32_t *version)
{
    static const char sql[] =
        "SELECT t.id, k.version, k.wrapped_dek, k.wrapped_fpk FROM vault.tenants t "
        "JOIN vault.tenant_keys k ON k.tenant_id = t.id AND k.state = 'active' "
        "WHERE t.id = $1 OR t.name = $1 ORDER BY (t.id = $1) DESC LIMIT 1";
    const char *vals[1] = {ref};
    PGresult *r = PQexecParams(pg, sql, 1, NULL, vals, NULL, NULL, 1);
    tok_status st = check_result(r, PGRES_TUPLES_OK, what);
    if (st == TOK_OK && PQntuples(r) != 1) {
        say("%s: no such tenant (or it has no active key): %s", what, ref);
        st = TOK_ERR_NOTFOUND;
    }
    if (st == TOK_OK && (PQgetlength(r, 0, 0) >= TOK_ADMIN_TENANT_MAX || PQgetlength(r, 0, 1) != 4))
        st = TOK_ERR_INTERNAL;
    if (st == TOK_OK) {
        tok_copy(tenant, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
        tenant[PQgetlength(r, 0, 0)] = '\0';
        const uint8_t *v = (const uint8_t *)PQgetvalue(r, 0, 1);
        *version = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
        st = tok_keyring_tenant_keys_open(
            kr, tenant, *version,
            tok_slice_of(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2)),
            tok_slice_of(PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3)), out);
        if (st != TOK_OK)
            say("%s: the tenant's keys do not open with this master key", what);
    }
    PQclear(r);
    return st;
}

static const char sql_gateway_add[] =
    "WITH g AS ("
    "  INSERT INTO vault.gateways (tenant_id, id, kind, livemode, priority, base_url,"
    "                              credentials_sealed, key_version)"
    "  VALUES ($1, $2, $3, $4::boolean, $5::integer, $6, $7::bytea, $8::integer)"
    "  RETURNING tenant_id, id, kind, livemode, priority)"
    " INSERT INTO audit.events (tenant_id, actor, action, object, detail)"
    " SELECT g.tenant_id, '" ACTOR "', 'gateway.added', g.id,"
    "        jsonb_build_object('kind', g.kind, 'livemode', g.livemode, 'priority', g.priority)"
    "   FROM g";

static tok_status gateway_add(const struct tok_admin *a, int argc, char **argv)
{
    const char *tenant_ref = NULL, *kind = NULL, *file = NULL, *prio = "100", *base = NULL;
    bool live = false;
    for (int i = 0; i < argc; i++) {
        int m = opt_value(argc, argv, &i, "--tenant", &tenant_ref);
        if (m == 0)
            m = opt_value(argc, argv, &i, "--kind", &kind);
        if (m == 0)
            m = opt_value(argc, argv, &i, "--credentials-file", &file);
        if (m == 0)
            m = opt_value(argc, argv, &i, "--priority", &prio);
        if (m == 0)
            m = opt_value(argc, argv, &i, "--base-url", &base);
        if (m < 0)
            return gateway_usage();
        if (m > 0)
            continue;
        if (strcmp(argv[i], "--live") == 0)
            live = true;
        else if (strcmp(argv[i], "--test") == 0)
            live = false;
        else
            return gateway_usage();
    }
    if (tenant_ref == NULL || kind == NULL || file == NULL)
        return gateway_usage();
    if (strcmp(kind, "stripe") != 0 && strcmp(kind, "adyen") != 0 && strcmp(kind, "sandbox") != 0) {
        say("gateway add: --kind is stripe, adyen or sandbox");
        return TOK_ERR_INPUT;
    }
    char *end = NULL;
    long p = strtol(prio, &end, 10);
    if (end == prio || *end != '\0' || p < 0 || p > 1000) {
        say("gateway add: --priority is a number from 0 to 1000 (lower is tried first)");
        return TOK_ERR_INPUT;
    }
    if (strcmp(kind, "sandbox") == 0 && live) {
        say("gateway add: the sandbox gateway serves test mode only");
        return TOK_ERR_INPUT;
    }
    if (base == NULL) {
        if (strcmp(kind, "stripe") == 0)
            base = "https://api.stripe.com";
        else if (strcmp(kind, "adyen") == 0 && !live)
            base = "https://checkout-test.adyen.com";
        else if (strcmp(kind, "sandbox") == 0)
            base = "";
        else {
            say("gateway add: live adyen accounts need --base-url (their account-specific endpoint)");
            return TOK_ERR_INPUT;
        }
    } else if (!base_url_ok(base)) {
        say("gateway add: --base-url is https://HOST[:PORT] without a path");
        return TOK_ERR_INPUT;
    }
    struct tok_buf cred = {0}, sealed = {0};
    uint8_t idmem[TOK_RANDOM_ID_MAX + 1];
    char tenant[TOK_ADMIN_TENANT_MAX] = "";
    struct tok_buf idb;
    tok_buf_init(&idb, idmem, sizeof idmem);
    struct tok_keyring *kr = NULL;
    struct tok_tenant_keys *tk = NULL;
    PGconn *pg = NULL;
    PGresult *r = NULL;
    const char *id = NULL;
    uint32_t version = 0;
    tok_status st = read_secret_file(file, &cred);
    if (st == TOK_OK)
        st = credentials_check(kind, tok_buf_slice(&cred));
    if (st == TOK_OK)
        st = tok_admin_keyring(a, &kr);
    if (st == TOK_OK)
        st = tok_admin_connect(a, &pg);
    if (st == TOK_OK)
        st = tok_admin_tenant_keys(pg, kr, tenant_ref, "gateway add", tenant, &tk, &version);
    if (st == TOK_OK && (st = tok_random_id("gw_", &idb)) == TOK_OK)
        st = tok_buf_cstr(&idb, &id);
    if (st == TOK_OK)
        st = tok_buf_alloc(&sealed, cred.len + TOK_SEALED_OVERHEAD, false);
    if (st == TOK_OK) {
        struct tok_aad aad = {tenant, "vault.gateways", "credentials_sealed", id};
        st = tok_tenant_keys_seal(tk, aad, tok_buf_slice(&cred), &sealed);
    }
    if (st == TOK_OK) {
        char vbuf[16];
        snprintf(vbuf, sizeof vbuf, "%u", version);
        const char *vals[8] = {tenant, id, kind, live ? "true" : "false", prio,
                               base, (const char *)sealed.data, vbuf};
        const int lens[8] = {0, 0, 0, 0, 0, 0, (int)sealed.len, 0};
        const int fmts[8] = {0, 0, 0, 0, 0, 0, 1, 0};
        const Oid types[8] = {0, 0, 0, 0, 0, 0, BYTEA_OID, 0};
        r = PQexecParams(pg, sql_gateway_add, 8, types, vals, lens, fmts, 0);
        st = check_result(r, PGRES_COMMAND_OK, "gateway add");
    }
    if (st == TOK_OK && a->json) {
        const struct tok_admin_json_field f[] = {
            {"id", TOK_AJ_STR, 0, tok_slice_str(id)},
            {"tenant", TOK_AJ_STR, 0, tok_slice_str(tenant)},
            {"kind", TOK_AJ_STR, 0, tok_slice_str(kind)},
            {"livemode", TOK_AJ_BOOL, 0, tok_slice_str(live ? "true" : "false")},
            {"priority", TOK_AJ_INT, 0, tok_slice_str(prio)},
            {"base_url", TOK_AJ_STR, 0, base != NULL ? tok_slice_str(base) : tok_slice_of(NULL, 0)},
        };
        st = tok_admin_json_object(f, TOK_ARRAY_LEN(f));
    } else if (st == TOK_OK) {
        printf("%s\n", id);
        st = finish_stdout();
    }
    if (st == TOK_OK) {
        say("added %s gateway %s (%s mode, priority %s)", kind, id, live ? "live" : "test", prio);
    }
    PQclear(r);
    PQfinish(pg);
    tok_tenant_keys_free(&tk);
    tok_keyring_free(&kr);
    tok_buf_wipe(&cred);
    tok_buf_wipe(&sealed);
    return st;
}

static tok_status gateway_list(const struct tok_admin *a, int argc, char **argv)
{
    const char *tenant_ref = NULL;
    for (int i = 0; i < argc; i++)
        if (opt_value(argc, argv, &i, "--tenant", &tenant_ref) <= 0)
            return gateway_usage();
    static const char sql[] =
        "SELECT id, tenant_id, kind, livemode::text, priority::text, base_url,"
        "       to_char(created_at AT TIME ZONE 'UTC', " TIME_FMT ")"
        "  FROM vault.gateways WHERE removed_at IS NULL AND ($1::text IS NULL OR tenant_id = $1)"
        " ORDER BY tenant_id, livemode, priority, id";
    uint8_t tmem[TOK_RANDOM_ID_MAX + 1];
    struct tok_buf tenant;
    tok_buf_init(&tenant, tmem, sizeof tmem);
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    tok_status st = TOK_OK;
    if (tenant_ref != NULL)
        st = resolve_tenant(pg, tenant_ref, &tenant, "gateway list");
    PGresult *r = NULL;
    if (st == TOK_OK) {
        const char *vals[1] = {tenant_ref != NULL ? (const char *)tenant.data : NULL};
        r = PQexecParams(pg, sql, 1, NULL, vals, NULL, NULL, 0);
        st = check_result(r, PGRES_TUPLES_OK, "gateway list");
    }
    if (st == TOK_OK && a->json) {
        static const struct tok_admin_json_field f[] = {
            {"id", TOK_AJ_STR, 0, {0}}, {"tenant", TOK_AJ_STR, 1, {0}}, {"kind", TOK_AJ_STR, 2, {0}},
            {"livemode", TOK_AJ_BOOL, 3, {0}}, {"priority", TOK_AJ_INT, 4, {0}},
            {"base_url", TOK_AJ_STR, 5, {0}}, {"created_at", TOK_AJ_STR, 6, {0}},
        };
        st = tok_admin_json_rows(r, f, TOK_ARRAY_LEN(f));
    } else if (st == TOK_OK) {
        fputs("id\ttenant\tkind\tlivemode\tpriority\tbase_url\tcreated_at\n", stdout);
        for (int i = 0; i < PQntuples(r); i++)
            for (int c = 0; c < 7; c++)
                print_cell(PQgetvalue(r, i, c), c == 6);
        st = finish_stdout();
    }
    PQclear(r);
    PQfinish(pg);
    return st;
}

static const char sql_gateway_remove[] =
    "WITH g AS ("
    "  UPDATE vault.gateways SET removed_at = now()"
    "   WHERE id = $1 AND removed_at IS NULL RETURNING tenant_id, id)"
    " INSERT INTO audit.events (tenant_id, actor, action, object)"
    " SELECT g.tenant_id, '" ACTOR "', 'gateway.removed', g.id FROM g";

static tok_status gateway_remove(const struct tok_admin *a, int argc, char **argv)
{
    if (argc != 1)
        return gateway_usage();
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    const char *vals[1] = {argv[0]};
    PGresult *r = PQexecParams(pg, sql_gateway_remove, 1, NULL, vals, NULL, NULL, 0);
    tok_status st = check_result(r, PGRES_COMMAND_OK, "gateway remove");
    if (st == TOK_OK && strcmp(PQcmdTuples(r), "1") != 0) {
        say("gateway remove: no such gateway (or already removed): %s", argv[0]);
        st = TOK_ERR_NOTFOUND;
    }
    if (st == TOK_OK)
        say("removed gateway %s", argv[0]);
    PQclear(r);
    PQfinish(pg);
    return st;
}

tok_status tok_admin_gateway(const struct tok_admin *a, int argc, char **argv)
{
    static const struct tok_admin_cmd cmds[] = {
        {"add", gateway_add},
        {"list", gateway_list},
        {"remove", gateway_remove},
    };
    return tok_admin_dispatch(a, argc, argv, cmds, TOK_ARRAY_LEN(cmds), gateway_usage);
}
