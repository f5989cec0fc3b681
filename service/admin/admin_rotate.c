/*
 * admin_rotate.c - key rotation commands (admin_rotate.h). Key bytes stay in the keyring:
 * this file moves wrapped keys and sealed values, and opens values only through
 * tok_tenant_keys_open into secret buffers wiped at once.
 */
#include "tokend/admin/admin_rotate.h"
#include "tokend/store/db.h"
#include "tokend/vault/keyring.h"
#include "tokend/vault/master_key.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BYTEA_OID 17
#define ACTOR "tokenctl"

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

static tok_status check(PGresult *r, ExecStatusType want, const char *what)
{
    if (r != NULL && PQresultStatus(r) == want)
        return TOK_OK;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    say("%s: database error: %s (SQLSTATE %s)", what, msg != NULL ? msg : "no result",
        state != NULL ? state : "none");
    return TOK_ERR_DB;
}

static tok_status exec_cmd(PGconn *pg, const char *sql, const char *what)
{
    PGresult *r = PQexec(pg, sql);
    tok_status st = check(r, PGRES_COMMAND_OK, what);
    PQclear(r);
    return st;
}

/* Runs sql with text parameters; *out (may be NULL: cleared) gets a text-format result. */
static tok_status exec_params(PGconn *pg, const char *sql, int n, const char *const *vals,
                              ExecStatusType want, const char *what, PGresult **out)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, vals, NULL, NULL, 0);
    tok_status st = check(r, want, what);
    if (out != NULL && st == TOK_OK)
        *out = r;
    else
        PQclear(r);
    return st;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A decimal in [lo, hi], the whole argument. */
static bool parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* ---- progress ------------------------------------------------------------------------------ */

struct progress {
    const char *what;
    uint64_t total, done, base; /* base: rows done by earlier runs of a resumed rotation */
    uint64_t start_ms, last_ms;
    bool tty;
};

static void progress_init(struct progress *p, const char *what, uint64_t base, uint64_t total)
{
    p->what = what;
    p->base = base;
    p->done = base;
    p->total = total;
    p->start_ms = now_ms();
    p->last_ms = 0;
    p->tty = isatty(STDERR_FILENO) == 1;
}

/* On a terminal a bar redrawn in place; otherwise one line per batch (at most 2 a second). */
static void progress_show(struct progress *p, bool final)
{
    uint64_t now = now_ms();
    if (!final && !p->tty && p->last_ms != 0 && now - p->last_ms < 500)
        return;
    p->last_ms = now;
    if (p->done > p->total)
        p->total = p->done; /* rows written meanwhile by a tokend still on the old version */
    uint64_t ran = p->done - p->base, el = now - p->start_ms;
    uint64_t rate = el > 0 ? ran * 1000u / el : ran;
    uint64_t left = rate > 0 ? (p->total - p->done) / rate : 0;
    unsigned pct = p->total > 0 ? (unsigned)(p->done * 100u / p->total) : 100u;
    if (p->tty) {
        char bar[31];
        unsigned fill = pct * 30u / 100u;
        for (unsigned i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %llu/%llu rows %3u%%  %llu rows/s  %llu:%02llu left ", p->what,
                bar, (unsigned long long)p->done, (unsigned long long)p->total, pct,
                (unsigned long long)rate, (unsigned long long)(left / 60),
                (unsigned long long)(left % 60));
        if (final)
            fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    say("%s: %llu/%llu rows (%u%%), %llu rows/s, %llu s left", p->what,
        (unsigned long long)p->done, (unsigned long long)p->total, pct, (unsigned long long)rate,
        (unsigned long long)left);
}

/* ---- keys new-master -------------------------------------------------------------------- */

/* The PIN file for a second key in a token: its own (given), else its URI's pin-source, else
 * the current key's (the same token). */
static const char *second_pin(const struct tok_admin *a, const char *uri, const char *pin_file)
{
    return tok_master_key_previous_pin(uri, pin_file, a->master_key_pin_file);
}

/* The next master key made in the token uri names, carrying kr's sub-key root. */
static tok_status new_master_pkcs11(const struct tok_admin *a, const struct tok_keyring *kr,
                                    const char *uri, const char *pin_file)
{
    const char *why = NULL;
    tok_status st = tok_keyring_next_master_pkcs11(kr, uri, second_pin(a, uri, pin_file), &why);
    if (st != TOK_OK) {
        say("keys new-master: %s", why != NULL ? why : tok_status_name(st));
        return st == TOK_ERR_CONFLICT ? st : TOK_ERR_INPUT;
    }
    say("made the next master key in the token (non-extractable AES-256, carrying this key "
        "line's sub-key root): give it to every tokend as --master-key-pkcs11 with the current "
        "one as --master-key-previous%s, then run keys rotate-master --new-master-key-pkcs11",
        strcmp(tok_keyring_kind(kr), "pkcs11") == 0 ? "-pkcs11" : "");
    return TOK_OK;
}

tok_status tok_admin_keys_new_master(const struct tok_admin *a, int argc, char **argv)
{
    const char *out = NULL, *uri = NULL, *pin = NULL;
    bool bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc && out == NULL)
            out = argv[++i];
        else if (strcmp(argv[i], "--pkcs11") == 0 && i + 1 < argc && uri == NULL)
            uri = argv[++i];
        else if (strcmp(argv[i], "--pin-file") == 0 && i + 1 < argc && pin == NULL)
            pin = argv[++i];
        else
            bad = true;
    }
    if (bad || (out == NULL) == (uri == NULL) || (pin != NULL && uri == NULL)) {
        say("usage: keys new-master --out FILE | keys new-master --pkcs11 URI [--pin-file F]");
        return TOK_ERR_INPUT;
    }
    struct tok_keyring *kr = NULL;
    TOK_GUARD(tok_admin_keyring(a, &kr));
    if (uri != NULL) {
        tok_status st = new_master_pkcs11(a, kr, uri, pin);
        tok_keyring_free(&kr);
        return st;
    }
    struct tok_buf hex = {0};
    tok_status st = tok_buf_alloc(&hex, 4 * TOK_KEYRING_KEY_LEN + 2, true);
    if (st == TOK_OK)
        st = tok_keyring_next_master(kr, &hex);
    tok_keyring_free(&kr);
    int fd = -1;
    if (st == TOK_OK) {
        fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            say("keys new-master: cannot create %s (it must not exist yet): %s", out,
                strerror(errno));
            st = TOK_ERR_INPUT;
        }
    }
    if (st == TOK_OK) {
        ssize_t n = write(fd, hex.data, hex.len);
        if (n != (ssize_t)hex.len || fsync(fd) != 0) {
            say("keys new-master: cannot write %s", out);
            st = TOK_ERR_IO;
        }
    }
    if (fd >= 0 && close(fd) != 0 && st == TOK_OK)
        st = TOK_ERR_IO;
    if (st != TOK_OK && fd >= 0)
        (void)unlink(out);
    tok_buf_wipe(&hex);
    if (st == TOK_OK)
        say("wrote the next master key to %s (mode 0600): give it to every tokend as "
            "--master-key-file with the current one as --master-key-previous, then run keys "
            "rotate-master",
            out);
    return st;
}

/* ---- keys rotate-master ------------------------------------------------------------------- */

static uint32_t be32(const char *p)
{
    const uint8_t *v = (const uint8_t *)p;
    return (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
}

static tok_status audit_event(PGconn *pg, const char *tenant, const char *action,
                              const char *object, const char *kind, uint32_t from, uint32_t to,
                              uint64_t rows, const char *what)
{
    char f[16], t[16], n[24];
    snprintf(f, sizeof f, "%u", from);
    snprintf(t, sizeof t, "%u", to);
    snprintf(n, sizeof n, "%llu", (unsigned long long)rows);
    const char *vals[7] = {tenant, action, object, kind, f, t, n};
    return exec_params(pg,
                       "INSERT INTO audit.events (tenant_id, actor, action, object, detail) "
                       "VALUES ($1, '" ACTOR "', $2, $3, jsonb_build_object('kind', $4::text, "
                       "'from_version', $5::integer, 'to_version', $6::integer, 'rows', "
                       "$7::bigint))",
                       7, vals, PGRES_COMMAND_OK, what, NULL);
}

/* The running master rotation's versions, or a new one from max(master_version). */
static tok_status master_target(PGconn *pg, uint32_t *from, uint32_t *to, uint64_t *done,
                                bool *resumed)
{
    PGresult *r = NULL;
    TOK_GUARD(exec_params(pg,
                          "SELECT from_version, to_version, rows_done FROM vault.key_rotations "
                          "WHERE kind = 'master' AND state = 'running'",
                          0, NULL, PGRES_TUPLES_OK, "keys rotate-master", &r));
    *resumed = PQntuples(r) == 1;
    if (*resumed) {
        *from = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
        *to = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
        *done = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
        PQclear(r);
        return TOK_OK;
    }
    PQclear(r);
    TOK_GUARD(exec_params(pg, "SELECT coalesce(max(master_version), 1) FROM vault.tenant_keys",
                          0, NULL, PGRES_TUPLES_OK, "keys rotate-master", &r));
    *from = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    *to = *from + 1;
    *done = 0;
    char f[16], t[16];
    snprintf(f, sizeof f, "%u", *from);
    snprintf(t, sizeof t, "%u", *to);
    const char *vals[2] = {f, t};
    /* the rotation and its audit event commit together */
    TOK_GUARD(exec_cmd(pg, "BEGIN", "keys rotate-master"));
    tok_status st = exec_params(pg,
                                "INSERT INTO vault.key_rotations (kind, from_version, to_version) "
                                "VALUES ('master', $1::integer, $2::integer)",
                                2, vals, PGRES_COMMAND_OK, "keys rotate-master", NULL);
    if (st == TOK_OK)
        st = audit_event(pg, NULL, "key.rotation_started", "master_key", "master", *from, *to, 0,
                         "keys rotate-master");
    tok_status end = exec_cmd(pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", "keys rotate-master");
    return st != TOK_OK ? st : end;
}

/* Re-wraps one tenant key pair under `to` and stores it as master version to_version. */
static tok_status rewrap_row(PGconn *pg, const struct tok_keyring *from,
                             const struct tok_keyring *to, const char *to_version,
                             const char *tenant, uint32_t version, struct tok_slice wd,
                             struct tok_slice wf)
{
    uint8_t dek[TOK_KEYRING_WRAPPED_LEN], fpk[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf db, fb;
    tok_buf_init(&db, dek, sizeof dek);
    tok_buf_init(&fb, fpk, sizeof fpk);
    if (tok_keyring_rewrap(from, to, tenant, version, wd, wf, &db, &fb) != TOK_OK) {
        say("keys rotate-master: the keys of tenant %s version %u open under neither master "
            "key (wrong --master-key-file?)",
            tenant, version);
        return TOK_ERR_CRYPTO;
    }
    char v[16];
    snprintf(v, sizeof v, "%u", version);
    const char *uv[5] = {tenant, v, (const char *)dek, (const char *)fpk, to_version};
    const int lens[5] = {0, 0, (int)db.len, (int)fb.len, 0};
    const int fmts[5] = {0, 0, 1, 1, 0};
    const Oid types[5] = {0, 0, BYTEA_OID, BYTEA_OID, 0};
    PGresult *u = PQexecParams(pg,
                               "UPDATE vault.tenant_keys SET wrapped_dek = $3, "
                               "wrapped_fpk = $4, master_version = $5::integer "
                               "WHERE tenant_id = $1 AND version = $2::integer",
                               5, types, uv, lens, fmts, 0);
    tok_status st = check(u, PGRES_COMMAND_OK, "keys rotate-master");
    PQclear(u);
    return st;
}

/* One transaction: up to batch wrapped key pairs below master version `to`, re-wrapped. */
static tok_status master_batch(PGconn *pg, const struct tok_keyring *from,
                               const struct tok_keyring *to, uint32_t to_version, uint32_t batch,
                               uint64_t *moved)
{
    *moved = 0;
    char t[16], b[16];
    snprintf(t, sizeof t, "%u", to_version);
    snprintf(b, sizeof b, "%u", batch);
    const char *vals[2] = {t, b};
    TOK_GUARD(exec_cmd(pg, "BEGIN", "keys rotate-master"));
    PGresult *r = PQexecParams(pg,
                               "SELECT tenant_id, version, wrapped_dek, wrapped_fpk "
                               "FROM vault.tenant_keys WHERE master_version < $1::integer "
                               "AND wrapped_dek IS NOT NULL ORDER BY tenant_id, version "
                               "LIMIT $2::integer FOR UPDATE",
                               2, NULL, vals, NULL, NULL, 1);
    tok_status st = check(r, PGRES_TUPLES_OK, "keys rotate-master");
    for (int i = 0; st == TOK_OK && i < PQntuples(r); i++) {
        st = rewrap_row(pg, from, to, t, PQgetvalue(r, i, 0), be32(PQgetvalue(r, i, 1)),
                        tok_slice_of(PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2)),
                        tok_slice_of(PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3)));
        (*moved)++;
    }
    PQclear(r);
    if (st == TOK_OK && *moved > 0) {
        char n[24];
        snprintf(n, sizeof n, "%llu", (unsigned long long)*moved);
        const char *nv[1] = {n};
        st = exec_params(pg,
                         "UPDATE vault.key_rotations SET rows_done = rows_done + $1::bigint "
                         "WHERE kind = 'master' AND state = 'running'",
                         1, nv, PGRES_COMMAND_OK, "keys rotate-master", NULL);
    }
    tok_status end = exec_cmd(pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", "keys rotate-master");
    return st != TOK_OK ? st : end;
}

/*
 * After the batches: every wrapped key pair must open under the new KEK alone. One that does
 * not (made with the old key file meanwhile, e.g. `tenant create` during the rotation, and so
 * labelled with a version it is not under) is re-wrapped here. *fixed counts them.
 */
static tok_status master_verify(PGconn *pg, const struct tok_keyring *from,
                                const struct tok_keyring *to, uint32_t to_version, uint64_t *fixed)
{
    *fixed = 0;
    char t[16];
    snprintf(t, sizeof t, "%u", to_version);
    TOK_GUARD(exec_cmd(pg, "BEGIN", "keys rotate-master"));
    PGresult *r = PQexecParams(pg,
                               "SELECT tenant_id, version, wrapped_dek, wrapped_fpk "
                               "FROM vault.tenant_keys WHERE wrapped_dek IS NOT NULL "
                               "ORDER BY tenant_id, version FOR UPDATE",
                               0, NULL, NULL, NULL, NULL, 1);
    tok_status st = check(r, PGRES_TUPLES_OK, "keys rotate-master");
    for (int i = 0; st == TOK_OK && i < PQntuples(r); i++) {
        const char *tenant = PQgetvalue(r, i, 0);
        uint32_t version = be32(PQgetvalue(r, i, 1));
        struct tok_slice wd = tok_slice_of(PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2));
        struct tok_slice wf = tok_slice_of(PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3));
        struct tok_tenant_keys *tk = NULL;
        if (tok_keyring_tenant_keys_open(to, tenant, version, wd, wf, &tk) == TOK_OK) {
            tok_tenant_keys_free(&tk);
            continue;
        }
        st = rewrap_row(pg, from, to, t, tenant, version, wd, wf);
        (*fixed)++;
    }
    PQclear(r);
    tok_status end = exec_cmd(pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", "keys rotate-master");
    return st != TOK_OK ? st : end;
}

tok_status tok_admin_keys_rotate_master(const struct tok_admin *a, int argc, char **argv)
{
    const char *file = NULL, *uri = NULL, *pin = NULL;
    uint32_t batch = TOK_ROTATE_BATCH_DEFAULT, pause_ms = 0;
    bool bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        if (strcmp(argv[i], "--new-master-key-file") == 0 && i + 1 < argc && file == NULL)
            file = argv[++i];
        else if (strcmp(argv[i], "--new-master-key-pkcs11") == 0 && i + 1 < argc && uri == NULL)
            uri = argv[++i];
        else if (strcmp(argv[i], "--new-master-key-pin-file") == 0 && i + 1 < argc && pin == NULL)
            pin = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc &&
                 parse_u32(argv[i + 1], 1, TOK_ROTATE_BATCH_MAX, &batch))
            i++;
        else if (strcmp(argv[i], "--pause-ms") == 0 && i + 1 < argc &&
                 parse_u32(argv[i + 1], 0, TOK_ROTATE_WAIT_MS_MAX, &pause_ms))
            i++;
        else
            bad = true;
    }
    if (bad || (file == NULL) == (uri == NULL) || (pin != NULL && uri == NULL)) {
        say("usage: keys rotate-master (--new-master-key-file FILE | --new-master-key-pkcs11 URI "
            "[--new-master-key-pin-file F]) [--batch N] [--pause-ms MS]");
        return TOK_ERR_INPUT;
    }
    const char *name = file != NULL ? file : "the new PKCS#11 key";
    struct tok_keyring *old = NULL, *next = NULL;
    TOK_GUARD(tok_admin_keyring(a, &old));
    const char *why = NULL;
    struct tok_master_key_config nc = {file, uri, uri != NULL ? second_pin(a, uri, pin) : NULL};
    tok_status st = tok_keyring_load(&nc, &next, &why);
    if (st != TOK_OK) {
        say("keys rotate-master: new master key refused: %s", why != NULL ? why : "unknown");
        tok_keyring_free(&old);
        return TOK_ERR_INPUT;
    }
    if (!tok_keyring_same_line(old, next)) {
        say("keys rotate-master: %s does not carry this master key's sub-key root (API keys "
            "would stop working): make it with keys new-master --out FILE (or --pkcs11 URI)",
            name);
        st = TOK_ERR_INPUT;
    } else if (tok_keyring_same_kek(old, next)) {
        say("keys rotate-master: %s is the current master key", name);
        st = TOK_ERR_INPUT;
    }
    PGconn *pg = NULL;
    if (st == TOK_OK)
        st = tok_admin_connect(a, &pg);
    uint32_t from = 0, to = 0;
    uint64_t done = 0, total = 0;
    bool resumed = false;
    if (st == TOK_OK)
        st = master_target(pg, &from, &to, &done, &resumed);
    PGresult *r = NULL;
    if (st == TOK_OK) {
        char t[16];
        snprintf(t, sizeof t, "%u", to);
        const char *vals[1] = {t};
        st = exec_params(pg,
                         "SELECT count(*) FROM vault.tenant_keys WHERE master_version < "
                         "$1::integer AND wrapped_dek IS NOT NULL",
                         1, vals, PGRES_TUPLES_OK, "keys rotate-master", &r);
        if (st == TOK_OK)
            total = done + strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    if (st == TOK_OK && resumed)
        say("keys rotate-master: resuming the rotation to master key version %u (%llu rows "
            "done before)",
            to, (unsigned long long)done);
    struct progress p;
    progress_init(&p, "rotate-master", done, total);
    for (uint64_t moved = 1; st == TOK_OK && moved > 0;) {
        st = master_batch(pg, old, next, to, batch, &moved);
        p.done += moved;
        if (st == TOK_OK && moved > 0)
            progress_show(&p, false);
        if (st == TOK_OK && moved > 0 && pause_ms > 0)
            sleep_ms(pause_ms); /* spares a busy database */
    }
    uint64_t fixed = 0;
    if (st == TOK_OK)
        st = master_verify(pg, old, next, to, &fixed);
    if (st == TOK_OK && fixed > 0) {
        say("keys rotate-master: %llu wrapped key pairs made meanwhile with the old key re-wrapped",
            (unsigned long long)fixed);
        p.done += fixed;
    }
    if (st == TOK_OK) {
        progress_show(&p, true);
        st = exec_cmd(pg, "BEGIN", "keys rotate-master");
        if (st == TOK_OK)
            st = exec_params(pg,
                             "UPDATE vault.key_rotations SET state = 'done', finished_at = now() "
                             "WHERE kind = 'master' AND state = 'running'",
                             0, NULL, PGRES_COMMAND_OK, "keys rotate-master", NULL);
        if (st == TOK_OK)
            st = audit_event(pg, NULL, "key.rotated", "master_key", "master", from, to, p.done,
                             "keys rotate-master");
        tok_status end = exec_cmd(pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", "keys rotate-master");
        if (st == TOK_OK)
            st = end;
    }
    if (st == TOK_OK && file != NULL)
        say("master key rotated: version %u -> %u, %llu wrapped key pairs; restart every tokend "
            "with --master-key-file %s alone, then destroy the old key (keys retire-master "
            "--version %u)",
            from, to, (unsigned long long)p.done, file, from);
    else if (st == TOK_OK)
        say("master key rotated: version %u -> %u, %llu wrapped key pairs; restart every tokend "
            "with --master-key-pkcs11 (the new key) alone, then destroy the old key (keys "
            "retire-master --version %u)",
            from, to, (unsigned long long)p.done, from);
    if (pg != NULL)
        PQfinish(pg);
    tok_keyring_free(&old);
    tok_keyring_free(&next);
    return st;
}

/* ---- keys rotate-data / rotate-fingerprint ------------------------------------------------ */

struct tenant_rotation {
    const struct tok_admin *a;
    PGconn *pg;
    struct tok_keyring *kr;
    char tenant[TOK_ADMIN_TENANT_MAX];
    const char *kind; /* "data" or "fingerprint" */
    const char *what; /* "keys rotate-data" */
    uint32_t from, to, batch, pause_ms, settle_ms;
    uint64_t done;
    struct tok_tenant_keys *old_keys, *new_keys;
};

static tok_status open_version(struct tenant_rotation *t, uint32_t version,
                               struct tok_tenant_keys **out)
{
    char v[16];
    snprintf(v, sizeof v, "%u", version);
    const char *vals[2] = {t->tenant, v};
    PGresult *r = PQexecParams(t->pg,
                               "SELECT wrapped_dek, wrapped_fpk FROM vault.tenant_keys WHERE "
                               "tenant_id = $1 AND version = $2::integer "
                               "AND wrapped_dek IS NOT NULL",
                               2, NULL, vals, NULL, NULL, 1);
    tok_status st = check(r, PGRES_TUPLES_OK, t->what);
    if (st == TOK_OK && PQntuples(r) != 1) {
        say("%s: version %u of tenant %s has no keys any more", t->what, version, t->tenant);
        st = TOK_ERR_NOTFOUND;
    }
    if (st == TOK_OK) {
        st = tok_keyring_tenant_keys_open(
            t->kr, t->tenant, version,
            tok_slice_of(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0)),
            tok_slice_of(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1)), out);
        if (st != TOK_OK)
            say("%s: the tenant's keys of version %u do not open with this master key", t->what,
                version);
    }
    PQclear(r);
    return st;
}

/* Opens a value sealed under the old version for aad and seals it under the new one. */
static tok_status reseal(const struct tenant_rotation *t, struct tok_aad aad,
                         struct tok_slice sealed, struct tok_buf *out)
{
    TOK_ENSURE(sealed.len >= TOK_SEALED_OVERHEAD && sealed.len <= TOK_SEALED_MAX, TOK_ERR_INPUT);
    struct tok_buf plain = {0};
    TOK_GUARD(tok_buf_alloc(&plain, (uint32_t)sealed.len, true));
    tok_status st = tok_tenant_keys_open(t->old_keys, aad, sealed, &plain);
    if (st == TOK_OK)
        st = tok_buf_alloc(out, (uint32_t)sealed.len, false);
    if (st == TOK_OK)
        st = tok_tenant_keys_seal(t->new_keys, aad, tok_buf_slice(&plain), out);
    tok_buf_wipe(&plain);
    return st;
}

/* Re-seals one small table's column of the tenant (gateway accounts, webhook endpoints). */
static tok_status reseal_table(struct tenant_rotation *t, const char *select, const char *update,
                               const char *table, const char *column)
{
    char f[16], to[16];
    snprintf(f, sizeof f, "%u", t->from);
    snprintf(to, sizeof to, "%u", t->to);
    const char *vals[2] = {t->tenant, f};
    PGresult *r = PQexecParams(t->pg, select, 2, NULL, vals, NULL, NULL, 1);
    tok_status st = check(r, PGRES_TUPLES_OK, t->what);
    for (int i = 0; st == TOK_OK && i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        struct tok_aad aad = {t->tenant, table, column, id};
        struct tok_buf out = {0};
        st = reseal(t, aad, tok_slice_of(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1)), &out);
        if (st != TOK_OK)
            say("%s: %s %s does not open under version %u", t->what, table, id, t->from);
        if (st == TOK_OK) {
            const char *uv[4] = {t->tenant, id, (const char *)out.data, to};
            const int lens[4] = {0, 0, (int)out.len, 0};
            const int fmts[4] = {0, 0, 1, 0};
            const Oid types[4] = {0, 0, BYTEA_OID, 0};
            PGresult *u = PQexecParams(t->pg, update, 4, types, uv, lens, fmts, 0);
            st = check(u, PGRES_COMMAND_OK, t->what);
            PQclear(u);
        }
        tok_buf_wipe(&out);
    }
    PQclear(r);
    return st;
}

static tok_status tenant_rows_left(struct tenant_rotation *t, uint64_t *left)
{
    char f[16];
    snprintf(f, sizeof f, "%u", t->from);
    const char *vals[2] = {t->tenant, f};
    PGresult *r = NULL;
    TOK_GUARD(exec_params(t->pg,
                          "SELECT (SELECT count(*) FROM vault.gateway_refs WHERE tenant_id = $1 "
                          "AND key_version = $2::integer) + (SELECT count(*) FROM vault.tokens "
                          "WHERE tenant_id = $1 AND key_version = $2::integer)",
                          2, vals, PGRES_TUPLES_OK, t->what, &r));
    *left = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return TOK_OK;
}

/* A finished rotation's previous version (t->from) still has rows: record a running
 * rotation to the active one (t->to) again, so this run and any rerun move them. */
static tok_status tenant_reopen(struct tenant_rotation *t)
{
    char f[16], to[16];
    snprintf(f, sizeof f, "%u", t->from);
    snprintf(to, sizeof to, "%u", t->to);
    t->kind = "data"; /* no new key: only rows moved */
    const char *vals[4] = {t->tenant, t->kind, f, to};
    TOK_GUARD(exec_params(t->pg,
                          "INSERT INTO vault.key_rotations (tenant_id, kind, from_version, "
                          "to_version) VALUES ($1, $2, $3::integer, $4::integer)",
                          4, vals, PGRES_COMMAND_OK, t->what, NULL));
    say("%s: version %u of tenant %s still has rows: moving them to version %u", t->what,
        t->from, t->tenant, t->to);
    TOK_GUARD(open_version(t, t->from, &t->old_keys));
    return open_version(t, t->to, &t->new_keys);
}

/*
 * One transaction: version to made active, from made 'previous', the tenant's gateway
 * accounts and webhook endpoints re-sealed (a handful of rows, so a tokend reading them sees
 * one version or the other), the rotation recorded, every tokend told to reload the tenant.
 */
static tok_status tenant_start(struct tenant_rotation *t, bool new_fpk)
{
    TOK_GUARD(exec_cmd(t->pg, "BEGIN", t->what));
    const char *tv[1] = {t->tenant};
    PGresult *r = NULL;
    tok_status st = exec_params(t->pg,
                                "SELECT version, state FROM vault.tenant_keys WHERE tenant_id = $1 "
                                "AND state <> 'retired' ORDER BY version FOR UPDATE",
                                1, tv, PGRES_TUPLES_OK, t->what, &r);
    uint32_t active = 0, previous = 0, max = 0;
    for (int i = 0; st == TOK_OK && i < PQntuples(r); i++) {
        uint32_t v = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
        if (strcmp(PQgetvalue(r, i, 1), "active") == 0)
            active = v;
        else
            previous = v;
        max = v > max ? v : max;
    }
    PQclear(r);
    r = NULL;
    if (st == TOK_OK)
        st = exec_params(t->pg, "SELECT coalesce(max(version), 0) FROM vault.tenant_keys "
                                "WHERE tenant_id = $1",
                         1, tv, PGRES_TUPLES_OK, t->what, &r);
    if (st == TOK_OK) {
        uint32_t all = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
        max = all > max ? all : max;
    }
    PQclear(r);
    if (st == TOK_OK && active == 0) {
        say("%s: tenant %s has no active key", t->what, t->tenant);
        st = TOK_ERR_NOTFOUND;
    }
    if (st == TOK_OK) {
        r = NULL;
        st = exec_params(t->pg,
                         "SELECT count(*) FROM vault.key_rotations WHERE kind = 'master' AND "
                         "state = 'running'",
                         0, NULL, PGRES_TUPLES_OK, t->what, &r);
        if (st == TOK_OK && strcmp(PQgetvalue(r, 0, 0), "0") != 0) {
            say("%s: a master key rotation is running: finish it first (keys rotate-master)",
                t->what);
            st = TOK_ERR_CONFLICT;
        }
        PQclear(r);
    }
    uint64_t stray = 0;
    if (st == TOK_OK && previous != 0) {
        t->from = previous;
        st = tenant_rows_left(t, &stray);
    }
    if (st == TOK_OK && previous != 0 && stray > 0) {
        /* rows written under the previous version after its rotation ended (a tokend that had
         * not reloaded yet): move them, as a resumed rotation would, without a new version */
        t->to = active;
        tok_status end = exec_cmd(t->pg, "ROLLBACK", t->what);
        if (end != TOK_OK)
            return end;
        return tenant_reopen(t);
    }
    if (st == TOK_OK && previous != 0) {
        say("%s: version %u of tenant %s is still 'previous': retire it first (keys retire "
            "--tenant %s --version %u)",
            t->what, previous, t->tenant, t->tenant, previous);
        st = TOK_ERR_CONFLICT;
    }
    t->from = active;
    t->to = max + 1;
    if (st == TOK_OK)
        st = open_version(t, t->from, &t->old_keys);
    uint8_t dek[TOK_KEYRING_WRAPPED_LEN], fpk[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf db, fb;
    tok_buf_init(&db, dek, sizeof dek);
    tok_buf_init(&fb, fpk, sizeof fpk);
    if (st == TOK_OK)
        st = tok_keyring_tenant_keys_next(t->kr, t->old_keys, t->to, new_fpk, &db, &fb);
    char f[16], to[16];
    snprintf(f, sizeof f, "%u", t->from);
    snprintf(to, sizeof to, "%u", t->to);
    if (st == TOK_OK) {
        const char *vals[2] = {t->tenant, f};
        st = exec_params(t->pg,
                         "UPDATE vault.tenant_keys SET state = 'previous' WHERE tenant_id = $1 "
                         "AND version = $2::integer",
                         2, vals, PGRES_COMMAND_OK, t->what, NULL);
    }
    if (st == TOK_OK) {
        /* the new version is wrapped under the master version the old one is under */
        const char *vals[5] = {t->tenant, to, (const char *)dek, (const char *)fpk, f};
        const int lens[5] = {0, 0, (int)db.len, (int)fb.len, 0};
        const int fmts[5] = {0, 0, 1, 1, 0};
        const Oid types[5] = {0, 0, BYTEA_OID, BYTEA_OID, 0};
        r = PQexecParams(t->pg,
                         "INSERT INTO vault.tenant_keys (tenant_id, version, wrapped_dek, "
                         "wrapped_fpk, state, master_version) SELECT $1, $2::integer, $3, $4, "
                         "'active', master_version FROM vault.tenant_keys WHERE tenant_id = $1 "
                         "AND version = $5::integer",
                         5, types, vals, lens, fmts, 0);
        st = check(r, PGRES_COMMAND_OK, t->what);
        PQclear(r);
    }
    if (st == TOK_OK)
        st = open_version(t, t->to, &t->new_keys);
    if (st == TOK_OK)
        st = reseal_table(t,
                          "SELECT id, credentials_sealed FROM vault.gateways WHERE tenant_id = $1 "
                          "AND key_version = $2::integer AND credentials_sealed IS NOT NULL",
                          "UPDATE vault.gateways SET credentials_sealed = $3, key_version = "
                          "$4::integer WHERE tenant_id = $1 AND id = $2",
                          "vault.gateways", "credentials_sealed");
    if (st == TOK_OK)
        st = reseal_table(t,
                          "SELECT id, secret_sealed FROM ledger.webhook_endpoints WHERE "
                          "tenant_id = $1 AND key_version = $2::integer "
                          "AND secret_sealed IS NOT NULL",
                          "UPDATE ledger.webhook_endpoints SET secret_sealed = $3, key_version = "
                          "$4::integer WHERE tenant_id = $1 AND id = $2",
                          "ledger.webhook_endpoints", "secret_sealed");
    if (st == TOK_OK) {
        const char *vals[4] = {t->tenant, t->kind, f, to};
        st = exec_params(t->pg,
                         "INSERT INTO vault.key_rotations (tenant_id, kind, from_version, "
                         "to_version) VALUES ($1, $2, $3::integer, $4::integer)",
                         4, vals, PGRES_COMMAND_OK, t->what, NULL);
    }
    if (st == TOK_OK)
        st = audit_event(t->pg, t->tenant, "key.rotation_started", t->tenant, t->kind, t->from,
                         t->to, 0, t->what);
    /* every tokend reloads its cached principals (auth.h): they learn the new active version */
    if (st == TOK_OK)
        st = exec_params(t->pg, "SELECT pg_notify('tokend_keys', '*')", 0, NULL,
                         PGRES_TUPLES_OK, t->what, NULL);
    tok_status end = exec_cmd(t->pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", t->what);
    sodium_memzero(dek, sizeof dek);
    sodium_memzero(fpk, sizeof fpk);
    return st != TOK_OK ? st : end;
}

/* The tenant's running rotation, if any: *found, and t->from, t->to, t->done, t->kind. */
static tok_status tenant_running(struct tenant_rotation *t, bool *found)
{
    const char *tv[1] = {t->tenant};
    PGresult *r = NULL;
    TOK_GUARD(exec_params(t->pg,
                          "SELECT kind, from_version, to_version, rows_done FROM "
                          "vault.key_rotations WHERE tenant_id = $1 AND state = 'running'",
                          1, tv, PGRES_TUPLES_OK, t->what, &r));
    *found = PQntuples(r) == 1;
    if (*found) {
        t->kind = strcmp(PQgetvalue(r, 0, 0), "fingerprint") == 0 ? "fingerprint" : "data";
        t->from = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
        t->to = (uint32_t)strtoul(PQgetvalue(r, 0, 2), NULL, 10);
        t->done = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
    }
    PQclear(r);
    return TOK_OK;
}

/* One transaction: up to batch gateway references of version from re-sealed under to. */
static tok_status refs_batch(struct tenant_rotation *t, uint64_t *moved)
{
    *moved = 0;
    char f[16], to[16], b[16];
    snprintf(f, sizeof f, "%u", t->from);
    snprintf(to, sizeof to, "%u", t->to);
    snprintf(b, sizeof b, "%u", t->batch);
    TOK_GUARD(exec_cmd(t->pg, "BEGIN", t->what));
    const char *vals[3] = {t->tenant, f, b};
    PGresult *r = PQexecParams(t->pg,
                               "SELECT token_id, gateway, ref_sealed FROM vault.gateway_refs "
                               "WHERE tenant_id = $1 AND key_version = $2::integer "
                               "ORDER BY token_id, gateway LIMIT $3::integer FOR UPDATE",
                               3, NULL, vals, NULL, NULL, 1);
    tok_status st = check(r, PGRES_TUPLES_OK, t->what);
    for (int i = 0; st == TOK_OK && i < PQntuples(r); i++) {
        const char *tok = PQgetvalue(r, i, 0), *gw = PQgetvalue(r, i, 1);
        struct tok_buf out = {0};
        /* a destroyed reference (redacted token) has nothing to re-seal: only its version */
        if (!PQgetisnull(r, i, 2)) {
            char row_id[2 * TOK_KEYRING_ID_MAX];
            snprintf(row_id, sizeof row_id, "%s:%s", tok, gw);
            struct tok_aad aad = {t->tenant, "vault.gateway_refs", "ref_sealed", row_id};
            st = reseal(t, aad, tok_slice_of(PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2)),
                        &out);
            if (st != TOK_OK)
                say("%s: the %s reference of %s does not open under version %u", t->what, gw,
                    tok, t->from);
        }
        if (st == TOK_OK) {
            const char *sealed = out.data != NULL ? (const char *)out.data : NULL;
            const char *uv[5] = {t->tenant, tok, gw, sealed, to};
            const int lens[5] = {0, 0, 0, (int)out.len, 0};
            const int fmts[5] = {0, 0, 0, 1, 0};
            const Oid types[5] = {0, 0, 0, BYTEA_OID, 0};
            PGresult *u = PQexecParams(t->pg,
                                       "UPDATE vault.gateway_refs SET ref_sealed = $4, "
                                       "key_version = $5::integer WHERE tenant_id = $1 AND "
                                       "token_id = $2 AND gateway = $3",
                                       5, types, uv, lens, fmts, 0);
            st = check(u, PGRES_COMMAND_OK, t->what);
            PQclear(u);
        }
        tok_buf_wipe(&out);
        (*moved)++;
    }
    PQclear(r);
    /* then the tokens themselves: their fingerprint is of the new version's FPK (the same key
     * for rotate-data; for rotate-fingerprint it matches no new card, by the operator's choice) */
    if (st == TOK_OK && *moved < t->batch) {
        char left[24];
        snprintf(left, sizeof left, "%llu", (unsigned long long)(t->batch - *moved));
        const char *tv[4] = {t->tenant, f, to, left};
        r = NULL;
        st = exec_params(t->pg,
                         "UPDATE vault.tokens SET key_version = $3::integer WHERE tenant_id = $1 "
                         "AND id IN (SELECT id FROM vault.tokens WHERE tenant_id = $1 AND "
                         "key_version = $2::integer LIMIT $4::integer FOR UPDATE)",
                         4, tv, PGRES_COMMAND_OK, t->what, &r);
        if (st == TOK_OK)
            *moved += strtoull(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    if (st == TOK_OK && *moved > 0) {
        char n[24];
        snprintf(n, sizeof n, "%llu", (unsigned long long)*moved);
        const char *nv[2] = {t->tenant, n};
        st = exec_params(t->pg,
                         "UPDATE vault.key_rotations SET rows_done = rows_done + $2::bigint "
                         "WHERE tenant_id = $1 AND state = 'running'",
                         2, nv, PGRES_COMMAND_OK, t->what, NULL);
    }
    tok_status end = exec_cmd(t->pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", t->what);
    return st != TOK_OK ? st : end;
}

static tok_status tenant_finish(struct tenant_rotation *t, uint64_t rows)
{
    TOK_GUARD(exec_cmd(t->pg, "BEGIN", t->what));
    const char *tv[1] = {t->tenant};
    tok_status st = exec_params(t->pg,
                                "UPDATE vault.key_rotations SET state = 'done', "
                                "finished_at = now() WHERE tenant_id = $1 AND state = 'running'",
                                1, tv, PGRES_COMMAND_OK, t->what, NULL);
    if (st == TOK_OK)
        st = audit_event(t->pg, t->tenant, "key.rotated", t->tenant, t->kind, t->from, t->to,
                         rows, t->what);
    tok_status end = exec_cmd(t->pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", t->what);
    return st != TOK_OK ? st : end;
}

static tok_status tenant_usage(const char *cmd, bool fingerprint)
{
    say("usage: keys %s --tenant T%s [--batch N] [--pause-ms MS] [--settle-ms MS]", cmd,
        fingerprint ? " --yes-break-dedup" : "");
    return TOK_ERR_INPUT;
}

static tok_status rotate_tenant(const struct tok_admin *a, int argc, char **argv, bool fingerprint)
{
    const char *cmd = fingerprint ? "rotate-fingerprint" : "rotate-data";
    struct tenant_rotation t = {
        .a = a,
        .kind = fingerprint ? "fingerprint" : "data",
        .what = fingerprint ? "keys rotate-fingerprint" : "keys rotate-data",
        .batch = TOK_ROTATE_BATCH_DEFAULT,
        .settle_ms = TOK_ROTATE_SETTLE_MS_DEFAULT,
    };
    const char *tenant_ref = NULL;
    bool yes = false;
    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--tenant") == 0 && v != NULL)
            tenant_ref = v;
        else if (strcmp(argv[i], "--batch") == 0 &&
                 parse_u32(v, 1, TOK_ROTATE_BATCH_MAX, &t.batch))
            ;
        else if (strcmp(argv[i], "--pause-ms") == 0 &&
                 parse_u32(v, 0, TOK_ROTATE_WAIT_MS_MAX, &t.pause_ms))
            ;
        else if (strcmp(argv[i], "--settle-ms") == 0 &&
                 parse_u32(v, 0, TOK_ROTATE_WAIT_MS_MAX, &t.settle_ms))
            ;
        else if (fingerprint && strcmp(argv[i], "--yes-break-dedup") == 0) {
            yes = true;
            continue;
        } else
            return tenant_usage(cmd, fingerprint);
        i++;
    }
    if (tenant_ref == NULL)
        return tenant_usage(cmd, fingerprint);
    if (fingerprint && !yes) {
        say("keys rotate-fingerprint: a new fingerprint key means cards tokenised from now on "
            "never de-duplicate against older tokens (SECURITY.md): add --yes-break-dedup");
        return TOK_ERR_INPUT;
    }
    TOK_GUARD(tok_admin_keyring(a, &t.kr));
    tok_status st = tok_admin_connect(a, &t.pg);
    struct tok_tenant_keys *probe = NULL;
    uint32_t active = 0;
    /* resolves the tenant and proves the master key opens its keys before anything changes */
    if (st == TOK_OK)
        st = tok_admin_tenant_keys(t.pg, t.kr, tenant_ref, t.what, t.tenant, &probe, &active);
    tok_tenant_keys_free(&probe);
    bool running = false;
    if (st == TOK_OK)
        st = tenant_running(&t, &running);
    if (st == TOK_OK && running) {
        if (strcmp(t.kind, fingerprint ? "fingerprint" : "data") != 0)
            say("%s: a %s-key rotation of tenant %s is running: resuming it", t.what, t.kind,
                t.tenant);
        say("%s: resuming the rotation of tenant %s from version %u to %u (%llu rows done "
            "before)",
            t.what, t.tenant, t.from, t.to, (unsigned long long)t.done);
        st = open_version(&t, t.from, &t.old_keys);
        if (st == TOK_OK)
            st = open_version(&t, t.to, &t.new_keys);
    } else if (st == TOK_OK) {
        st = tenant_start(&t, fingerprint);
        if (st == TOK_OK)
            say("%s: tenant %s: version %u is active, version %u opens older rows until they "
                "move",
                t.what, t.tenant, t.to, t.from);
    }
    /* every tokend must hold the new version before a row moves to it: the notification
     * reaches them at once, their cache TTL bounds it if it is lost (auth.h) */
    if (st == TOK_OK && t.settle_ms > 0)
        sleep_ms(t.settle_ms);
    uint64_t left = 0;
    if (st == TOK_OK)
        st = tenant_rows_left(&t, &left);
    struct progress p;
    progress_init(&p, cmd, t.done, t.done + left);
    for (uint64_t moved = 1; st == TOK_OK && moved > 0;) {
        st = refs_batch(&t, &moved);
        p.done += moved;
        if (st == TOK_OK && moved > 0) {
            progress_show(&p, false);
            if (t.pause_ms > 0)
                sleep_ms(t.pause_ms);
        }
    }
    if (st == TOK_OK) {
        progress_show(&p, true);
        st = tenant_finish(&t, p.done);
    }
    if (st == TOK_OK)
        say("%s: tenant %s: every row is on version %u (%llu moved); retire version %u with "
            "keys retire --tenant %s --version %u",
            t.what, t.tenant, t.to, (unsigned long long)p.done, t.from, t.tenant, t.from);
    tok_tenant_keys_free(&t.old_keys);
    tok_tenant_keys_free(&t.new_keys);
    if (t.pg != NULL)
        PQfinish(t.pg);
    tok_keyring_free(&t.kr);
    return st;
}

tok_status tok_admin_keys_rotate_data(const struct tok_admin *a, int argc, char **argv)
{
    return rotate_tenant(a, argc, argv, false);
}

tok_status tok_admin_keys_rotate_fingerprint(const struct tok_admin *a, int argc, char **argv)
{
    return rotate_tenant(a, argc, argv, true);
}

/* ---- keys retire -------------------------------------------------------------------------- */

tok_status tok_admin_keys_retire(const struct tok_admin *a, int argc, char **argv)
{
    const char *tenant_ref = NULL;
    uint32_t version = 0;
    bool bad = false;
    for (int i = 0; i + 1 < argc && !bad; i += 2) {
        if (strcmp(argv[i], "--tenant") == 0)
            tenant_ref = argv[i + 1];
        else if (strcmp(argv[i], "--version") != 0)
            bad = true;
        else if (!parse_u32(argv[i + 1], 1, INT32_MAX, &version))
            bad = true;
    }
    if (bad)
        version = 0;
    if (tenant_ref == NULL || version == 0 || argc != 4) {
        say("usage: keys retire --tenant T --version N");
        return TOK_ERR_INPUT;
    }
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    const char *what = "keys retire";
    PGresult *r = NULL;
    const char *rv[1] = {tenant_ref};
    tok_status st = exec_params(pg,
                                "SELECT id FROM vault.tenants WHERE id = $1 OR name = $1 "
                                "ORDER BY (id = $1) DESC LIMIT 1",
                                1, rv, PGRES_TUPLES_OK, what, &r);
    char tenant[TOK_ADMIN_TENANT_MAX] = "";
    if (st == TOK_OK && (PQntuples(r) != 1 || PQgetlength(r, 0, 0) >= TOK_ADMIN_TENANT_MAX)) {
        say("%s: no such tenant: %s", what, tenant_ref);
        st = TOK_ERR_NOTFOUND;
    }
    if (st == TOK_OK)
        snprintf(tenant, sizeof tenant, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    char v[16];
    snprintf(v, sizeof v, "%u", version);
    const char *vals[2] = {tenant, v};
    if (st == TOK_OK)
        st = exec_cmd(pg, "BEGIN", what);
    bool in_tx = st == TOK_OK;
    if (st == TOK_OK)
        st = exec_params(pg,
                         "SELECT k.state,"
                         " (SELECT count(*) FROM vault.tokens x"
                         "   WHERE x.tenant_id = $1 AND x.key_version = $2::integer),"
                         " (SELECT count(*) FROM vault.gateway_refs x"
                         "   WHERE x.tenant_id = $1 AND x.key_version = $2::integer),"
                         " (SELECT count(*) FROM vault.gateways x"
                         "   WHERE x.tenant_id = $1 AND x.key_version = $2::integer),"
                         " (SELECT count(*) FROM ledger.webhook_endpoints x"
                         "   WHERE x.tenant_id = $1 AND x.key_version = $2::integer),"
                         " EXISTS (SELECT 1 FROM vault.key_rotations x WHERE x.tenant_id = $1"
                         "         AND x.state = 'running' AND x.from_version = $2::integer)"
                         " FROM vault.tenant_keys k"
                         " WHERE k.tenant_id = $1 AND k.version = $2::integer FOR UPDATE OF k",
                         2, vals, PGRES_TUPLES_OK, what, &r);
    if (st == TOK_OK && PQntuples(r) != 1) {
        say("%s: tenant %s has no key version %u", what, tenant, version);
        st = TOK_ERR_NOTFOUND;
    }
    if (st == TOK_OK) {
        const char *state = PQgetvalue(r, 0, 0);
        unsigned long long tokens = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
        unsigned long long refs = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
        unsigned long long gws = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
        unsigned long long hooks = strtoull(PQgetvalue(r, 0, 4), NULL, 10);
        if (strcmp(state, "retired") == 0) {
            say("%s: version %u of tenant %s is already retired", what, version, tenant);
            st = TOK_ERR_CONFLICT;
        } else if (strcmp(state, "active") == 0) {
            say("%s: version %u of tenant %s is active: rotate to a new version first (keys "
                "rotate-data --tenant %s)",
                what, version, tenant, tenant);
            st = TOK_ERR_CONFLICT;
        } else if (tokens + refs + gws + hooks > 0 || PQgetvalue(r, 0, 5)[0] == 't') {
            say("%s: version %u of tenant %s is still in use (%llu tokens, %llu gateway "
                "references, %llu gateway accounts, %llu webhook endpoints): finish the rotation "
                "first (keys rotate-data --tenant %s)",
                what, version, tenant, tokens, refs, gws, hooks, tenant);
            st = TOK_ERR_CONFLICT;
        }
    }
    PQclear(r);
    if (st == TOK_OK)
        st = exec_params(pg,
                         "UPDATE vault.tenant_keys SET state = 'retired', wrapped_dek = NULL, "
                         "wrapped_fpk = NULL WHERE tenant_id = $1 AND version = $2::integer",
                         2, vals, PGRES_COMMAND_OK, what, NULL);
    if (st == TOK_OK)
        st = audit_event(pg, tenant, "key.retired", tenant, "data", version, version, 0, what);
    if (st == TOK_OK)
        st = exec_params(pg, "SELECT pg_notify('tokend_keys', '*')", 0, NULL, PGRES_TUPLES_OK,
                         what, NULL);
    if (in_tx) {
        tok_status end = exec_cmd(pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", what);
        if (st == TOK_OK)
            st = end;
    }
    if (st == TOK_OK)
        say("retired key version %u of tenant %s: its wrapped keys are destroyed", version,
            tenant);
    PQfinish(pg);
    return st;
}

/* ---- keys retire-master ------------------------------------------------------------------- */

/* Refused when the key uri names opens any wrapped key pair still in use (a sample of each
 * master version, vault.master_key_probe): it is not a retired version's key. */
static tok_status check_unused_key(const struct tok_admin *a, PGconn *pg, const char *uri,
                                   const char *pin)
{
    const char *what = "keys retire-master", *why = NULL;
    struct tok_keyring *kr = NULL;
    struct tok_master_key_config c = {NULL, uri, second_pin(a, uri, pin)};
    if (tok_harden_process(&why) != TOK_OK || tok_keyring_load(&c, &kr, &why) != TOK_OK) {
        say("%s: %s", what, why != NULL ? why : "the key cannot be opened");
        return TOK_ERR_INPUT;
    }
    PGresult *r = PQexecParams(pg,
                               "SELECT master_version, tenant_id, version, wrapped_dek, "
                               "wrapped_fpk FROM vault.master_key_probe()",
                               0, NULL, NULL, NULL, NULL, 1);
    tok_status st = check(r, PGRES_TUPLES_OK, what);
    for (int i = 0; st == TOK_OK && i < PQntuples(r); i++) {
        struct tok_tenant_keys *tk = NULL;
        if (PQgetlength(r, i, 0) != 4 || PQgetlength(r, i, 2) != 4)
            continue;
        if (tok_keyring_tenant_keys_open(
                kr, PQgetvalue(r, i, 1), be32(PQgetvalue(r, i, 2)),
                tok_slice_of(PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3)),
                tok_slice_of(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4)), &tk) == TOK_OK) {
            say("%s: that key still opens tenant keys of master key version %u: not destroyed",
                what, be32(PQgetvalue(r, i, 0)));
            st = TOK_ERR_CONFLICT;
        }
        tok_tenant_keys_free(&tk);
    }
    PQclear(r);
    tok_keyring_free(&kr);
    return st;
}

tok_status tok_admin_keys_retire_master(const struct tok_admin *a, int argc, char **argv)
{
    const char *uri = NULL, *pin = NULL, *what = "keys retire-master";
    uint32_t version = 0;
    bool bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        if (strcmp(argv[i], "--version") == 0 && i + 1 < argc &&
            parse_u32(argv[i + 1], 1, INT32_MAX, &version))
            i++;
        else if (strcmp(argv[i], "--destroy-pkcs11") == 0 && i + 1 < argc && uri == NULL)
            uri = argv[++i];
        else if (strcmp(argv[i], "--pin-file") == 0 && i + 1 < argc && pin == NULL)
            pin = argv[++i];
        else
            bad = true;
    }
    if (bad || version == 0 || (pin != NULL && uri == NULL)) {
        say("usage: keys retire-master --version N [--destroy-pkcs11 URI [--pin-file F]]");
        return TOK_ERR_INPUT;
    }
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    char v[16];
    snprintf(v, sizeof v, "%u", version);
    const char *vals[1] = {v};
    PGresult *r = NULL;
    tok_status st = exec_cmd(pg, "BEGIN", what);
    bool in_tx = st == TOK_OK;
    /* no tenant key is made, re-wrapped or retired meanwhile */
    if (st == TOK_OK)
        st = exec_cmd(pg, "LOCK TABLE vault.tenant_keys IN SHARE ROW EXCLUSIVE MODE", what);
    if (st == TOK_OK)
        st = exec_params(pg,
                         "SELECT (SELECT count(*) FROM vault.tenant_keys WHERE master_version = "
                         "$1::integer AND wrapped_dek IS NOT NULL),"
                         " coalesce((SELECT to_version FROM vault.key_rotations WHERE kind = "
                         "'master' AND state = 'running'), (SELECT coalesce(max(master_version), "
                         "1) FROM vault.tenant_keys WHERE wrapped_dek IS NOT NULL)),"
                         " EXISTS (SELECT 1 FROM vault.key_rotations WHERE kind = 'master' AND "
                         "state = 'running'),"
                         " EXISTS (SELECT 1 FROM audit.events WHERE action = 'key.retired' AND "
                         "object = 'master_key' AND detail->>'from_version' = ($1::integer)::text),"
                         " EXISTS (SELECT 1 FROM vault.tenant_keys WHERE master_version = "
                         "$1::integer) OR EXISTS (SELECT 1 FROM vault.key_rotations WHERE kind = "
                         "'master' AND $1::integer IN (from_version, to_version))",
                         1, vals, PGRES_TUPLES_OK, what, &r);
    if (st == TOK_OK) {
        unsigned long long rows = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        uint32_t current = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
        if (PQgetvalue(r, 0, 4)[0] != 't') {
            say("%s: master key version %u was never used", what, version);
            st = TOK_ERR_NOTFOUND;
        } else if (PQgetvalue(r, 0, 3)[0] == 't') {
            say("%s: master key version %u is already retired", what, version);
            st = TOK_ERR_CONFLICT;
        } else if (version >= current) {
            say("%s: master key version %u is the current one: rotate to a new master key "
                "first (keys rotate-master)",
                what, version);
            st = TOK_ERR_CONFLICT;
        } else if (rows > 0 || PQgetvalue(r, 0, 2)[0] == 't') {
            say("%s: master key version %u still wraps %llu tenant key pairs: finish the "
                "rotation first (keys rotate-master)",
                what, version, rows);
            st = TOK_ERR_CONFLICT;
        }
    }
    PQclear(r);
    if (st == TOK_OK && uri != NULL)
        st = check_unused_key(a, pg, uri, pin);
    if (st == TOK_OK)
        st = audit_event(pg, NULL, "key.retired", "master_key", "master", version, version, 0,
                         what);
    const char *why = NULL;
    /* destroyed inside the transaction: a key that cannot be destroyed is not recorded as
     * retired */
    if (st == TOK_OK && uri != NULL &&
        (st = tok_master_key_pkcs11_destroy(uri, second_pin(a, uri, pin), &why)) != TOK_OK)
        say("%s: %s", what, why != NULL ? why : tok_status_name(st));
    if (in_tx) {
        tok_status end = exec_cmd(pg, st == TOK_OK ? "COMMIT" : "ROLLBACK", what);
        if (st == TOK_OK)
            st = end;
    }
    if (st == TOK_OK && uri != NULL)
        say("retired master key version %u: no wrapped key uses it; its key and sub-key root "
            "object are destroyed in the token",
            version);
    else if (st == TOK_OK)
        say("retired master key version %u: no wrapped key uses it; destroy its key now (the "
            "file and its copies, or the token object: --destroy-pkcs11 URI)",
            version);
    PQfinish(pg);
    return st;
}
