/*
 * audit_seal.c - block MACs and signed checkpoints. See audit_seal.h and sql/017.
 */
#include "tokend/vault/audit_seal.h"
#include "tokend/core/metrics.h"
#include "tokend/core/encoding.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAC_LABEL "tokend:v1:audit-block"
#define CP_PREFIX "tokend-audit-checkpoint v1 block="
#define SEAL_LOCK "7242500018" /* pg advisory lock: one sealer at a time */
#define TIME_LEN 20            /* YYYY-MM-DDTHH:MM:SSZ */
#define STR_(x) #x
#define STR(x) STR_(x)

struct tok_audit_sealer {
    const struct tok_audit_key *ak;
    int fd;       /* -1: no checkpoints */
    bool own_fd;  /* false for standard output */
    int64_t sealed_to; /* the highest block this process sealed */
    /* written by the chainer's thread, read by /metrics' thread */
    _Atomic uint64_t blocks_sealed, pass_failed;
};

static void be64(uint8_t out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        out[i] = (uint8_t)u;
}

tok_status tok_audit_block_mac(const struct tok_audit_key *ak, int64_t block, int64_t first_id,
                               int64_t last_id, struct tok_slice hash, struct tok_slice prev_mac,
                               uint8_t out[TOK_KEYRING_HASH_LEN])
{
    TOK_ENSURE(ak != NULL && out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(hash.ptr != NULL && hash.len == TOK_KEYRING_HASH_LEN, TOK_ERR_INPUT);
    TOK_ENSURE(prev_mac.ptr != NULL && prev_mac.len == TOK_KEYRING_HASH_LEN, TOK_ERR_INPUT);
    uint8_t mem[sizeof MAC_LABEL - 1 + 3 * 8 + 2 * TOK_KEYRING_HASH_LEN];
    struct tok_buf m;
    tok_buf_init(&m, mem, sizeof mem);
    uint8_t n[8];
    TOK_GUARD(tok_buf_write(&m, MAC_LABEL, sizeof MAC_LABEL - 1));
    be64(n, block);
    TOK_GUARD(tok_buf_write(&m, n, 8));
    be64(n, first_id);
    TOK_GUARD(tok_buf_write(&m, n, 8));
    be64(n, last_id);
    TOK_GUARD(tok_buf_write(&m, n, 8));
    TOK_GUARD(tok_buf_write(&m, hash.ptr, hash.len));
    TOK_GUARD(tok_buf_write(&m, prev_mac.ptr, prev_mac.len));
    return tok_audit_key_mac(ak, tok_slice_of(m.data, m.len), out);
}

/* ---- the checkpoint line ----------------------------------------------------------------- */

static tok_status put_hex(struct tok_buf *b, const char *name, const uint8_t *p, size_t n)
{
    TOK_GUARD(tok_buf_printf(b, " %s=", name));
    return tok_hex_encode(tok_slice_of(p, n), b);
}

tok_status tok_audit_checkpoint_format(const struct tok_audit_key *ak,
                                       const struct tok_audit_checkpoint *cp, struct tok_buf *out)
{
    TOK_ENSURE(ak != NULL && cp != NULL && out != NULL, TOK_ERR_INTERNAL);
    uint32_t start = out->len;
    uint8_t pk[TOK_AUDIT_PK_LEN];
    tok_audit_key_public(ak, pk);
    struct tm tm;
    time_t t = (time_t)cp->time;
    char when[TIME_LEN + 1];
    TOK_ENSURE(gmtime_r(&t, &tm) != NULL &&
                   strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == TIME_LEN,
               TOK_ERR_INPUT);
    tok_status st = tok_buf_printf(out, CP_PREFIX "%" PRId64 " ids=%" PRId64 "-%" PRId64,
                                   cp->block, cp->first_id, cp->last_id);
    if (st == TOK_OK)
        st = put_hex(out, "hash", cp->hash, sizeof cp->hash);
    if (st == TOK_OK)
        st = put_hex(out, "mac", cp->mac, sizeof cp->mac);
    if (st == TOK_OK)
        st = tok_buf_printf(out, " time=%s", when);
    if (st == TOK_OK)
        st = put_hex(out, "pk", pk, sizeof pk);
    uint8_t sig[TOK_AUDIT_SIG_LEN];
    if (st == TOK_OK)
        st = tok_audit_key_sign(ak, tok_slice_of(out->data + start, out->len - start), sig);
    if (st == TOK_OK)
        st = put_hex(out, "sig", sig, sizeof sig);
    if (st == TOK_OK)
        st = tok_buf_write(out, "\n", 1);
    if (st != TOK_OK)
        out->len = start;
    return st;
}

/* A cursor over the line's text. */
struct lp {
    const char *p, *end;
};

static bool lit(struct lp *l, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(l->end - l->p) < n || memcmp(l->p, s, n) != 0)
        return false;
    l->p += n;
    return true;
}

static bool num(struct lp *l, int64_t *out)
{
    int64_t v = 0;
    const char *s = l->p;
    while (l->p < l->end && *l->p >= '0' && *l->p <= '9' && l->p - s < 18)
        v = v * 10 + (*l->p++ - '0');
    *out = v;
    return l->p > s && (l->p == l->end || *l->p < '0' || *l->p > '9');
}

static bool hex(struct lp *l, uint8_t *out, size_t n)
{
    if ((size_t)(l->end - l->p) < 2 * n)
        return false;
    struct tok_buf b;
    tok_buf_init(&b, out, (uint32_t)n);
    if (tok_hex_decode(tok_slice_of(l->p, 2 * n), &b) != TOK_OK || b.len != n)
        return false;
    l->p += 2 * n;
    return true;
}

static bool when(struct lp *l, int64_t *out)
{
    if (l->end - l->p < TIME_LEN)
        return false;
    char t[TIME_LEN + 1];
    tok_copy(t, l->p, TIME_LEN);
    t[TIME_LEN] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(t, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (e == NULL || *e != '\0')
        return false;
    *out = (int64_t)timegm(&tm);
    l->p += TIME_LEN;
    return true;
}

tok_status tok_audit_checkpoint_parse(struct tok_slice line, struct tok_audit_checkpoint *cp)
{
    TOK_ENSURE(cp != NULL && (line.ptr != NULL || line.len == 0), TOK_ERR_INTERNAL);
    TOK_ENSURE(line.len > 0 && line.len <= TOK_AUDIT_CP_LINE_MAX, TOK_ERR_INPUT);
    struct lp l = {(const char *)line.ptr, (const char *)line.ptr + line.len};
    if (l.end[-1] == '\n')
        l.end--;
    uint8_t sig[TOK_AUDIT_SIG_LEN];
    TOK_ENSURE(lit(&l, CP_PREFIX) && num(&l, &cp->block) && lit(&l, " ids=") &&
                   num(&l, &cp->first_id) && lit(&l, "-") && num(&l, &cp->last_id) &&
                   lit(&l, " hash=") && hex(&l, cp->hash, sizeof cp->hash) &&
                   lit(&l, " mac=") && hex(&l, cp->mac, sizeof cp->mac) && lit(&l, " time=") &&
                   when(&l, &cp->time) && lit(&l, " pk=") && hex(&l, cp->pk, sizeof cp->pk),
               TOK_ERR_INPUT);
    size_t signed_len = (size_t)(l.p - (const char *)line.ptr);
    TOK_ENSURE(lit(&l, " sig=") && hex(&l, sig, sizeof sig) && l.p == l.end, TOK_ERR_INPUT);
    TOK_ENSURE(cp->block > 0 && cp->first_id > 0 && cp->last_id >= cp->first_id, TOK_ERR_INPUT);
    return tok_audit_signature_check(cp->pk, tok_slice_of(line.ptr, signed_len), sig);
}

/* ---- the sealer -------------------------------------------------------------------------- */

tok_status tok_audit_sealer_new(const struct tok_audit_key *ak, const char *path,
                                struct tok_audit_sealer **out, char *why, size_t why_len)
{
    TOK_ENSURE(ak != NULL && out != NULL, TOK_ERR_INTERNAL);
    struct tok_audit_sealer *s = calloc(1, sizeof *s);
    TOK_ENSURE(s != NULL, TOK_ERR_NOMEM);
    s->ak = ak;
    s->fd = -1;
    if (path != NULL && strcmp(path, "-") == 0) {
        s->fd = STDOUT_FILENO;
    } else if (path != NULL && path[0] != '\0') {
        s->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (s->fd < 0) {
            snprintf(why, why_len, "cannot open the audit checkpoint file %s: %s", path,
                     strerror(errno));
            free(s);
            return TOK_ERR_IO;
        }
        s->own_fd = true;
    }
    *out = s;
    return TOK_OK;
}

void tok_audit_sealer_free(struct tok_audit_sealer **ps)
{
    if (ps == NULL || *ps == NULL)
        return;
    if ((*ps)->own_fd)
        (void)close((*ps)->fd);
    free(*ps);
    *ps = NULL;
}

static bool exec_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

static tok_status write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        TOK_ENSURE(w > 0, TOK_ERR_IO);
        p += w;
        n -= (size_t)w;
    }
    return TOK_OK;
}

/* A bytea cell of a binary result. */
static struct tok_slice cell(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return tok_slice_of(NULL, 0);
    return tok_slice_of(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

static int64_t int8_at(const PGresult *r, int row, int col)
{
    struct tok_slice s = cell(r, row, col);
    uint64_t v = 0;
    for (size_t i = 0; i < s.len && i < 8; i++)
        v = (v << 8) | s.ptr[i];
    return (int64_t)v;
}

/*
 * MACs for the rows of r (binary: block, first_id, last_id, hash, prev_mac of the first),
 * as the two array literals audit.seal_blocks takes, and the checkpoint lines.
 */
static tok_status seal_rows(const struct tok_audit_sealer *s, const PGresult *r,
                            struct tok_buf *blocks, struct tok_buf *macs, struct tok_buf *lines)
{
    static const uint8_t zeros[TOK_KEYRING_HASH_LEN] = {0};
    uint8_t prev[TOK_KEYRING_HASH_LEN];
    struct tok_slice first_prev = cell(r, 0, 4);
    if (int8_at(r, 0, 0) == 1 || first_prev.len != sizeof prev)
        first_prev = tok_slice_of(zeros, sizeof zeros); /* block 1, or a predecessor never sealed */
    tok_copy(prev, first_prev.ptr, sizeof prev);
    TOK_GUARD(tok_buf_write(blocks, "{", 1));
    TOK_GUARD(tok_buf_write(macs, "{", 1));
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < PQntuples(r); i++) {
        struct tok_audit_checkpoint cp = {
            .block = int8_at(r, i, 0), .first_id = int8_at(r, i, 1), .last_id = int8_at(r, i, 2),
            .time = now,
        };
        struct tok_slice h = cell(r, i, 3);
        TOK_ENSURE(h.len == sizeof cp.hash, TOK_ERR_INTERNAL);
        tok_copy(cp.hash, h.ptr, h.len);
        TOK_GUARD(tok_audit_block_mac(s->ak, cp.block, cp.first_id, cp.last_id, h,
                                      tok_slice_of(prev, sizeof prev), cp.mac));
        tok_copy(prev, cp.mac, sizeof prev);
        TOK_GUARD(tok_buf_printf(blocks, "%s%" PRId64, i > 0 ? "," : "", cp.block));
        if (i > 0)
            TOK_GUARD(tok_buf_write(macs, ",", 1));
        TOK_GUARD(tok_hex_encode(tok_slice_of(cp.mac, sizeof cp.mac), macs));
        if (s->fd >= 0)
            TOK_GUARD(tok_audit_checkpoint_format(s->ak, &cp, lines));
    }
    TOK_GUARD(tok_buf_write(blocks, "}", 2));
    return tok_buf_write(macs, "}", 2);
}

static tok_status seal_pass(struct tok_audit_sealer *s, PGconn *pg, int *sealed)
{
    TOK_ENSURE(s != NULL && pg != NULL, TOK_ERR_INTERNAL);
    if (sealed != NULL)
        *sealed = 0;
    TOK_ENSURE(exec_ok(pg, "BEGIN"), TOK_ERR_DB);
    PGresult *r = PQexecParams(pg, "SELECT pg_try_advisory_xact_lock(" SEAL_LOCK ")", 0, NULL,
                               NULL, NULL, NULL, 0);
    bool locked = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                  PQgetvalue(r, 0, 0)[0] == 't';
    tok_status st = PQresultStatus(r) == PGRES_TUPLES_OK ? TOK_OK : TOK_ERR_DB;
    PQclear(r);
    if (!locked) { /* another sealer is at it: it or the next pass takes these blocks */
        (void)exec_ok(pg, "ROLLBACK");
        return st;
    }
    static const char sql[] = "SELECT block, first_id, last_id, hash, prev_mac"
                              " FROM audit.blocks_to_seal(" STR(TOK_AUDIT_SEAL_BATCH) ")";
    r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) == 0) {
        st = PQresultStatus(r) == PGRES_TUPLES_OK ? TOK_OK : TOK_ERR_DB;
        PQclear(r);
        (void)exec_ok(pg, "ROLLBACK");
        return st;
    }
    int n = PQntuples(r);
    int64_t last = int8_at(r, n - 1, 0);
    if (int8_at(r, 0, 0) <= s->sealed_to) {
        /* a block this process sealed has lost its MAC: someone is rewriting audit.blocks;
         * sealing it again would bless the rewrite */
        PQclear(r);
        (void)exec_ok(pg, "ROLLBACK");
        return TOK_ERR_CRYPTO;
    }
    struct tok_buf blocks = {0}, macs = {0}, lines = {0};
    st = tok_buf_alloc(&blocks, (uint32_t)n * 21u + 4u, false);
    if (st == TOK_OK)
        st = tok_buf_alloc(&macs, (uint32_t)n * 65u + 4u, false);
    if (st == TOK_OK)
        st = tok_buf_alloc(&lines, (uint32_t)n * TOK_AUDIT_CP_LINE_MAX, false);
    if (st == TOK_OK)
        st = seal_rows(s, r, &blocks, &macs, &lines);
    PQclear(r);
    if (st == TOK_OK) {
        const char *v[2] = {(const char *)blocks.data, (const char *)macs.data};
        r = PQexecParams(pg, "SELECT audit.seal_blocks($1::bigint[], $2::text[])", 2, NULL, v,
                         NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            st = TOK_ERR_DB;
        PQclear(r);
    }
    if (st == TOK_OK && !exec_ok(pg, "COMMIT"))
        st = TOK_ERR_DB;
    if (st != TOK_OK)
        (void)exec_ok(pg, "ROLLBACK");
    /* after COMMIT: a checkpoint names only MACs the database kept (a MAC is a function of
     * the block, so a pass that failed here seals the same values next time) */
    if (st == TOK_OK && s->fd >= 0 && lines.len > 0) {
        st = write_all(s->fd, lines.data, lines.len);
        if (st == TOK_OK && s->own_fd && fdatasync(s->fd) != 0)
            st = TOK_ERR_IO;
    }
    if (st == TOK_OK) {
        s->sealed_to = last;
        if (sealed != NULL)
            *sealed = n;
    }
    tok_buf_wipe(&blocks);
    tok_buf_wipe(&macs);
    tok_buf_wipe(&lines);
    return st;
}

tok_status tok_audit_sealer_pass(struct tok_audit_sealer *s, PGconn *pg, int *sealed)
{
    int n = 0;
    tok_status st = seal_pass(s, pg, &n);
    if (sealed != NULL)
        *sealed = n;
    if (s == NULL)
        return st;
    if (n > 0)
        atomic_fetch_add_explicit(&s->blocks_sealed, (uint64_t)n, memory_order_relaxed);
    if (st != TOK_OK)
        atomic_fetch_add_explicit(&s->pass_failed, 1, memory_order_relaxed);
    return st;
}

void tok_audit_sealer_collect(void *ctx, struct tok_metrics_out *o)
{
    struct tok_audit_sealer *s = ctx;
    tok_metrics_family(o, "tokend_audit_blocks_sealed_total", "counter",
                       "Audit blocks this process MACed under the audit key (and checkpointed)");
    tok_metrics_u64(o, "tokend_audit_blocks_sealed_total", NULL,
                    atomic_load_explicit(&s->blocks_sealed, memory_order_relaxed));
    tok_metrics_family(o, "tokend_audit_seal_failures_total", "counter",
                       "Sealing passes that failed: the database, the checkpoint file, or a "
                       "sealed block that lost its MAC (audit.blocks rewritten?)");
    tok_metrics_u64(o, "tokend_audit_seal_failures_total", NULL,
                    atomic_load_explicit(&s->pass_failed, memory_order_relaxed));
}
