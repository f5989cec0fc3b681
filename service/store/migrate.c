/*
 * migrate.c - the migration runner used by `tokenctl migrate`, `make run` and
 * the tests.
 */
#include "tokend/store/migrate.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_KEY "7242500001" /* pg_advisory_lock key reserved for migrations */

struct migration {
    int version;
    char name[256];
};

static int cmp_migration(const void *a, const void *b)
{
    return ((const struct migration *)a)->version - ((const struct migration *)b)->version;
}

static bool parse_name(const char *fname, int *version)
{
    size_t n = strlen(fname);
    if (n < 9 || n >= 256 || strcmp(fname + n - 4, ".sql") != 0 || fname[3] != '_')
        return false;
    for (int i = 0; i < 3; i++)
        if (fname[i] < '0' || fname[i] > '9')
            return false;
    *version = (fname[0] - '0') * 100 + (fname[1] - '0') * 10 + (fname[2] - '0');
    return *version > 0;
}

static tok_status read_file(const char *path, struct tok_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    TOK_ENSURE(fd >= 0, TOK_ERR_IO);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size >= TOK_MIGRATION_FILE_MAX) {
        close(fd);
        return TOK_ERR_IO;
    }
    tok_status s = tok_buf_alloc(out, (uint32_t)st.st_size + 1, false);
    if (s != TOK_OK) {
        close(fd);
        return s;
    }
    while (out->len < (uint32_t)st.st_size) {
        ssize_t r = read(fd, out->data + out->len, (size_t)st.st_size - out->len);
        if (r <= 0) {
            close(fd);
            tok_buf_wipe(out);
            return TOK_ERR_IO;
        }
        out->len += (uint32_t)r;
    }
    close(fd);
    return TOK_OK;
}

static bool exec_ok(PGconn *c, const char *sql, char *why, size_t why_len)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType es = PQresultStatus(r);
    bool ok = es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(why, why_len, "%.*s", (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
    PQclear(r);
    return ok;
}

static tok_status apply_one(PGconn *c, const char *dir, const struct migration *m, int *applied,
                            char *why, size_t why_len)
{
    char path[1536];
    snprintf(path, sizeof path, "%s/%s", dir, m->name);
    struct tok_buf text = {0};
    if (read_file(path, &text) != TOK_OK) {
        snprintf(why, why_len, "cannot read %s", path);
        return TOK_ERR_IO;
    }
    uint8_t digest[crypto_hash_sha256_BYTES];
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    crypto_hash_sha256(digest, text.data, text.len);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    const char *sqltext = NULL;
    if (tok_buf_cstr(&text, &sqltext) != TOK_OK) {
        tok_buf_wipe(&text);
        return TOK_ERR_INTERNAL;
    }

    char vbuf[16];
    snprintf(vbuf, sizeof vbuf, "%d", m->version);
    const char *p1[1] = {vbuf};
    PGresult *r = PQexecParams(c, "SELECT checksum FROM tokend_meta.schema_migrations WHERE version = $1",
                               1, NULL, p1, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, why_len, "cannot read the migrations table");
        PQclear(r);
        tok_buf_wipe(&text);
        return TOK_ERR_DB;
    }
    if (PQntuples(r) == 1) {
        bool same = strcmp(PQgetvalue(r, 0, 0), hex) == 0;
        PQclear(r);
        tok_buf_wipe(&text);
        if (!same) {
            snprintf(why, why_len, "%s changed after it was applied (checksum differs); add a new migration instead",
                     m->name);
            return TOK_ERR_INPUT;
        }
        return TOK_OK;
    }
    PQclear(r);

    tok_status st = TOK_OK;
    if (!exec_ok(c, "BEGIN", why, why_len) || !exec_ok(c, sqltext, why, why_len)) {
        char inner[512];
        snprintf(inner, sizeof inner, "%s", why);
        snprintf(why, why_len, "%s failed: %s", m->name, inner);
        st = TOK_ERR_DB;
    }
    if (st == TOK_OK) {
        const char *p3[3] = {vbuf, m->name, hex};
        r = PQexecParams(c, "INSERT INTO tokend_meta.schema_migrations (version, name, checksum) "
                            "VALUES ($1, $2, $3)", 3, NULL, p3, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(why, why_len, "cannot record %s", m->name);
            st = TOK_ERR_DB;
        }
        PQclear(r);
    }
    if (st == TOK_OK && !exec_ok(c, "COMMIT", why, why_len))
        st = TOK_ERR_DB;
    if (st != TOK_OK) {
        char tmp[8];
        (void)exec_ok(c, "ROLLBACK", tmp, sizeof tmp);
    } else {
        printf("migrate: applied %s\n", m->name);
        (*applied)++;
    }
    tok_buf_wipe(&text);
    return st;
}

tok_status tok_migrate_apply(PGconn *c, const char *dir, int *applied, char *why, size_t why_len)
{
    TOK_ENSURE(c != NULL && dir != NULL && applied != NULL, TOK_ERR_INTERNAL);
    *applied = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(why, why_len, "cannot open migrations directory %s", dir);
        return TOK_ERR_IO;
    }
    struct migration *list = calloc(TOK_MIGRATIONS_MAX, sizeof *list);
    if (list == NULL) {
        closedir(d);
        return TOK_ERR_NOMEM;
    }
    size_t n = 0;
    tok_status st = TOK_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && st == TOK_OK) {
        if (e->d_name[0] == '.')
            continue;
        int v = 0;
        if (!parse_name(e->d_name, &v)) {
            snprintf(why, why_len, "unexpected file %s in %s (want NNN_name.sql)", e->d_name, dir);
            st = TOK_ERR_INPUT;
            break;
        }
        if (n >= TOK_MIGRATIONS_MAX) {
            st = TOK_ERR_BOUNDS;
            break;
        }
        list[n].version = v;
        snprintf(list[n].name, sizeof list[n].name, "%s", e->d_name);
        n++;
    }
    closedir(d);
    qsort(list, n, sizeof *list, cmp_migration);
    /* gaps are allowed (engineers working in parallel each take a number ahead), repeats not */
    for (size_t i = 1; i < n && st == TOK_OK; i++) {
        if (list[i].version == list[i - 1].version) {
            snprintf(why, why_len, "two migrations share the number of %s", list[i].name);
            st = TOK_ERR_INPUT;
        }
    }
    if (st == TOK_OK &&
        (!exec_ok(c, "SET client_min_messages = warning", why, why_len) ||
         !exec_ok(c, "SELECT pg_advisory_lock(" LOCK_KEY ")", why, why_len) ||
         !exec_ok(c, "CREATE SCHEMA IF NOT EXISTS tokend_meta; "
                     "CREATE TABLE IF NOT EXISTS tokend_meta.schema_migrations ("
                     " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                  why, why_len)))
        st = TOK_ERR_DB;
    for (size_t i = 0; i < n && st == TOK_OK; i++)
        st = apply_one(c, dir, &list[i], applied, why, why_len);
    char tmp[8];
    (void)exec_ok(c, "SELECT pg_advisory_unlock(" LOCK_KEY ")", tmp, sizeof tmp);
    free(list);
    return st;
}
