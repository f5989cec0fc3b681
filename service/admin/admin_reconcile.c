/*
 * admin_reconcile.c - `tokenctl reconcile` (see admin_reconcile.h).
 *
 * The matcher's ops run on the owner's connection: ledger rows by gateway
 * reference (one query per batch of TOK_RECON_BATCH lines), the references
 * seen so far in a session temporary table, and at the end one anti-join for
 * the settled ledger rows of the report's period that no line named.
 */
#include "tokend/admin/admin_reconcile.h"
#include "tokend/core/csv.h"
#include "tokend/store/db.h"
#include "tokend/finance/reconcile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXC_LINE_MAX 1024

struct ctl_recon {
    PGconn *pg;
    char tenant[TOK_RECON_ID_MAX];
    const char *livemode;
    const char *gateway;
    FILE *exceptions;
    bool tty;
    uint64_t file_size, bytes_read;
    char *array; /* TOK_RECON_REFS_TEXT_MAX bytes */
};

static const char lookup_sql[] =
    "SELECT c.gateway_ref, c.id, c.currency, c.captured_amount, false FROM ledger.charges c "
    "WHERE c.tenant_id = $1 AND c.livemode = $2 AND c.gateway_ref = ANY($3::text[]) "
    "UNION ALL "
    "SELECT r.gateway_ref, r.id, r.currency, r.amount, true FROM ledger.refunds r "
    "WHERE r.tenant_id = $1 AND r.livemode = $2 AND r.gateway_ref = ANY($3::text[])";

static const char seen_sql[] =
    "INSERT INTO pg_temp.recon_seen SELECT unnest($1::text[]) ON CONFLICT DO NOTHING";

/* Settled rows of the period at this gateway kind (a literal kind, or an account of that kind). */
static const char missing_sql[] =
    "SELECT c.gateway_ref, c.id, c.currency, c.captured_amount, false FROM ledger.charges c "
    "WHERE c.tenant_id = $1 AND c.livemode = $2 AND c.created_at >= to_timestamp($3::bigint) "
    "AND c.created_at < to_timestamp($4::bigint + 1) AND c.gateway_ref IS NOT NULL "
    "AND c.status IN ('succeeded', 'partially_refunded', 'refunded', 'disputed') "
    "AND (c.gateway = $5 OR c.gateway IN (SELECT g.id FROM vault.gateways g "
    "     WHERE g.tenant_id = $1 AND g.kind = $5)) "
    "AND NOT EXISTS (SELECT 1 FROM pg_temp.recon_seen s WHERE s.ref = c.gateway_ref) "
    "UNION ALL "
    "SELECT r.gateway_ref, r.id, r.currency, r.amount, true FROM ledger.refunds r "
    "WHERE r.tenant_id = $1 AND r.livemode = $2 AND r.created_at >= to_timestamp($3::bigint) "
    "AND r.created_at < to_timestamp($4::bigint + 1) AND r.gateway_ref IS NOT NULL "
    "AND r.status = 'succeeded' "
    "AND (r.gateway = $5 OR r.gateway IN (SELECT g.id FROM vault.gateways g "
    "     WHERE g.tenant_id = $1 AND g.kind = $5)) "
    "AND NOT EXISTS (SELECT 1 FROM pg_temp.recon_seen s WHERE s.ref = r.gateway_ref) "
    "ORDER BY 2";

static tok_status exec(PGconn *pg, const char *sql, int n, const char *const *v, PGresult **out)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, v, NULL, NULL, 0);
    ExecStatusType es = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
        fprintf(stderr, "tokenctl: reconcile: %s", r != NULL ? PQresultErrorMessage(r) : "no result\n");
        PQclear(r);
        return TOK_ERR_DB;
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return TOK_OK;
}

static tok_status rows_to(struct tok_recon *rc, PGresult *r, bool missing)
{
    tok_status st = TOK_OK;
    for (int i = 0; i < PQntuples(r) && st == TOK_OK; i++) {
        struct tok_recon_ledger_row row;
        memset(&row, 0, sizeof row);
        snprintf(row.ref, sizeof row.ref, "%s", PQgetvalue(r, i, 0));
        snprintf(row.object_id, sizeof row.object_id, "%s", PQgetvalue(r, i, 1));
        snprintf(row.currency, sizeof row.currency, "%s", PQgetvalue(r, i, 2));
        row.amount = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        row.refund = PQgetvalue(r, i, 4)[0] == 't';
        st = missing ? tok_recon_add_missing(rc, &row) : tok_recon_add_ledger_row(rc, &row);
    }
    return st;
}

static tok_status op_lookup(void *ctx, struct tok_recon *rc, const char *const *refs, size_t n)
{
    struct ctl_recon *c = ctx;
    TOK_GUARD(tok_recon_refs_text(refs, n, c->array));
    const char *v[3] = {c->tenant, c->livemode, c->array};
    PGresult *r = NULL;
    TOK_GUARD(exec(c->pg, lookup_sql, 3, v, &r));
    tok_status st = rows_to(rc, r, false);
    PQclear(r);
    return st;
}

static tok_status op_seen(void *ctx, const char *const *refs, size_t n)
{
    struct ctl_recon *c = ctx;
    TOK_GUARD(tok_recon_refs_text(refs, n, c->array));
    const char *v[1] = {c->array};
    return exec(c->pg, seen_sql, 1, v, NULL);
}

static tok_status op_missing(void *ctx, struct tok_recon *rc, int64_t from, int64_t to)
{
    struct ctl_recon *c = ctx;
    char f[24], t[24];
    snprintf(f, sizeof f, "%lld", (long long)from);
    snprintf(t, sizeof t, "%lld", (long long)to);
    const char *v[5] = {c->tenant, c->livemode, f, t, c->gateway};
    /* single-row mode: a period with a million unmatched ledger rows streams through */
    if (PQsendQueryParams(c->pg, missing_sql, 5, NULL, v, NULL, NULL, 0) != 1 ||
        PQsetSingleRowMode(c->pg) != 1) {
        fprintf(stderr, "tokenctl: reconcile: %s", PQerrorMessage(c->pg));
        return TOK_ERR_DB;
    }
    tok_status st = TOK_OK;
    PGresult *r;
    while ((r = PQgetResult(c->pg)) != NULL) {
        ExecStatusType es = PQresultStatus(r);
        if (es == PGRES_SINGLE_TUPLE && st == TOK_OK)
            st = rows_to(rc, r, true);
        else if (es != PGRES_SINGLE_TUPLE && es != PGRES_TUPLES_OK && st == TOK_OK) {
            fprintf(stderr, "tokenctl: reconcile: the ledger query failed (%s)\n",
                PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "?");
            st = TOK_ERR_DB;
        }
        PQclear(r); /* read to the end even after an error: the connection stays usable */
    }
    return st;
}

static tok_status put_int(struct tok_buf *b, int64_t v, bool present)
{
    char s[24] = "";
    if (present)
        snprintf(s, sizeof s, "%lld", (long long)v);
    return tok_csv_put_number(b, tok_slice_str(s), false);
}

static tok_status op_exception(void *ctx, const struct tok_recon_exception *e)
{
    struct ctl_recon *c = ctx;
    if (c->exceptions == NULL)
        return TOK_OK;
    uint8_t mem[EXC_LINE_MAX];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    char line[24] = "";
    if (e->line > 0)
        snprintf(line, sizeof line, "%llu", (unsigned long long)e->line);
    bool has_report = e->kind != TOK_RECON_MISSING_IN_REPORT && e->kind != TOK_RECON_MALFORMED;
    bool has_ledger = e->object_id != NULL;
    TOK_GUARD(tok_csv_put_text(&b, tok_slice_str(tok_recon_kind_name(e->kind)), true));
    TOK_GUARD(tok_csv_put_number(&b, tok_slice_str(line), false));
    TOK_GUARD(tok_csv_put_text(&b, tok_slice_str(e->ref ? e->ref : ""), false));
    TOK_GUARD(tok_csv_put_text(&b, tok_slice_str(e->object_id ? e->object_id : ""), false));
    TOK_GUARD(put_int(&b, e->report_amount, has_report));
    TOK_GUARD(put_int(&b, e->ledger_amount, has_ledger));
    TOK_GUARD(tok_csv_put_text(&b, tok_slice_str(e->report_currency ? e->report_currency : ""), false));
    TOK_GUARD(tok_csv_put_text(&b, tok_slice_str(e->ledger_currency ? e->ledger_currency : ""), false));
    TOK_GUARD(tok_csv_put_text(&b, tok_slice_str(e->reason ? e->reason : ""), false));
    TOK_GUARD(tok_csv_end(&b));
    TOK_ENSURE(fwrite(b.data, 1, b.len, c->exceptions) == b.len, TOK_ERR_IO);
    return TOK_OK;
}

static void op_progress(void *ctx, uint64_t lines)
{
    struct ctl_recon *c = ctx;
    if (c->tty) {
        unsigned pct = c->file_size > 0 ? (unsigned)(c->bytes_read * 100 / c->file_size) : 0;
        char bar[41];
        memset(bar, ' ', 40);
        memset(bar, '#', pct * 40 / 100);
        bar[40] = '\0';
        fprintf(stderr, "\r[%s] %3u%% %llu lines", bar, pct, (unsigned long long)lines);
        return;
    }
    fprintf(stderr, "reconcile: %llu lines\n", (unsigned long long)lines);
}

static void print_summary(const struct tok_recon_summary *s, const char *gw, const char *tenant)
{
    printf("reconcile: %s report, tenant %s, %llu lines\n", gw, tenant,
           (unsigned long long)s->lines);
    printf("  %-20s %12llu\n", "matched", (unsigned long long)s->matched);
    printf("  %-20s %12llu\n", "missing_in_ledger", (unsigned long long)s->missing_in_ledger);
    printf("  %-20s %12llu\n", "missing_in_report", (unsigned long long)s->missing_in_report);
    printf("  %-20s %12llu\n", "amount_mismatch", (unsigned long long)s->amount_mismatches);
    printf("  %-20s %12llu\n", "currency_mismatch", (unsigned long long)s->currency_mismatches);
    printf("  %-20s %12llu\n", "malformed", (unsigned long long)s->malformed);
    printf("  %-8s %10s %16s %16s %16s %14s %16s\n", "currency", "matched", "matched_amount",
           "charges", "refunds", "fees", "net");
    for (size_t i = 0; i < s->ncurrencies; i++) {
        const struct tok_recon_currency_totals *t = &s->currencies[i];
        printf("  %-8s %10llu %16lld %16lld %16lld %14lld %16lld\n", t->currency,
               (unsigned long long)t->matched, (long long)t->matched_amount, (long long)t->charges,
               (long long)t->refunds, (long long)t->fees, (long long)t->net);
    }
    printf("  (amounts in minor units)\n");
}

static tok_status resolve_tenant(struct ctl_recon *c, const char *t)
{
    const char *v[1] = {t};
    PGresult *r = NULL;
    TOK_GUARD(exec(c->pg, "SELECT id FROM vault.tenants WHERE id = $1 OR name = $1", 1, v, &r));
    bool one = PQntuples(r) == 1;
    if (one)
        snprintf(c->tenant, sizeof c->tenant, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!one)
        fprintf(stderr, "tokenctl: reconcile: no tenant '%s'\n", t);
    return one ? TOK_OK : TOK_ERR_NOTFOUND;
}

static tok_status run(struct ctl_recon *c, enum tok_recon_gateway gw, int fd)
{
    TOK_GUARD(exec(c->pg, "CREATE TEMP TABLE IF NOT EXISTS recon_seen (ref text PRIMARY KEY)", 0,
                   NULL, NULL));
    struct tok_recon_ops ops = {op_lookup, op_seen, op_missing, op_exception, op_progress, c,
                                c->tty ? 10000 : TOK_RECON_PROGRESS_LINES};
    struct tok_recon *rc = NULL;
    TOK_GUARD(tok_recon_new(gw, &ops, &rc));
    static uint8_t chunk[TOK_RECON_READ_CHUNK];
    tok_status st = TOK_OK;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "tokenctl: reconcile: read: %s\n", strerror(errno));
            st = TOK_ERR_IO;
            break;
        }
        if (n == 0)
            break;
        c->bytes_read += (uint64_t)n;
        st = tok_recon_feed(rc, chunk, (size_t)n);
        if (st != TOK_OK)
            break;
    }
    if (st == TOK_OK)
        st = tok_recon_finish(rc);
    if (c->tty)
        fputc('\n', stderr);
    if (st == TOK_ERR_INPUT && tok_recon_header_error(rc) != NULL)
        fprintf(stderr, "tokenctl: reconcile: %s\n", tok_recon_header_error(rc));
    if (st == TOK_OK)
        print_summary(tok_recon_summary(rc), c->gateway, c->tenant);
    tok_recon_free(&rc);
    return st;
}

tok_status tok_admin_reconcile(const struct tok_admin *a, int argc, char **argv)
{
    const char *gateway = NULL, *file = NULL, *tenant = NULL, *exc = NULL;
    bool live = false;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(o, "--gateway") == 0 && has)
            gateway = argv[++i];
        else if (strcmp(o, "--file") == 0 && has)
            file = argv[++i];
        else if (strcmp(o, "--tenant") == 0 && has)
            tenant = argv[++i];
        else if (strcmp(o, "--exceptions") == 0 && has)
            exc = argv[++i];
        else if (strcmp(o, "--live") == 0)
            live = true;
        else if (strcmp(o, "--test") == 0)
            live = false;
        else
            goto usage;
    }
    enum tok_recon_gateway gw;
    if (gateway == NULL || file == NULL || tenant == NULL ||
        tok_recon_gateway_parse(gateway, &gw) != TOK_OK)
        goto usage;
    if (a->db == NULL || a->db[0] == '\0') {
        fprintf(stderr, "tokenctl: no database: set --db or TOKEND_ADMIN_DB\n");
        return TOK_ERR_INPUT;
    }
    int fd = strcmp(file, "-") == 0 ? 0 : open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tokenctl: reconcile: cannot open %s: %s\n", file, strerror(errno));
        return TOK_ERR_IO;
    }
    struct ctl_recon c;
    memset(&c, 0, sizeof c);
    c.livemode = live ? "t" : "f";
    c.gateway = gateway;
    c.tty = isatty(2) == 1;
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        c.file_size = (uint64_t)sb.st_size;
    char why[TOK_DB_WHY_MAX];
    tok_status st = tok_db_connect(a->db, &c.pg, why, sizeof why);
    if (st != TOK_OK) {
        fprintf(stderr, "tokenctl: cannot connect to the database: %s\n", why);
        goto done;
    }
    c.array = malloc(TOK_RECON_REFS_TEXT_MAX);
    st = c.array != NULL ? TOK_OK : TOK_ERR_NOMEM;
    if (st == TOK_OK)
        st = resolve_tenant(&c, tenant);
    if (st == TOK_OK && exc != NULL) {
        c.exceptions = fopen(exc, "w");
        if (c.exceptions == NULL) {
            fprintf(stderr, "tokenctl: reconcile: cannot write %s: %s\n", exc, strerror(errno));
            st = TOK_ERR_IO;
        } else {
            fputs("kind,line,reference,object_id,report_amount,ledger_amount,report_currency,"
                  "ledger_currency,reason\r\n", c.exceptions);
        }
    }
    if (st == TOK_OK)
        st = run(&c, gw, fd);
done:
    if (c.exceptions != NULL && fclose(c.exceptions) != 0 && st == TOK_OK)
        st = TOK_ERR_IO;
    free(c.array);
    if (c.pg != NULL)
        PQfinish(c.pg);
    if (fd > 0)
        close(fd);
    return st;
usage:
    fprintf(stderr, "usage: tokenctl reconcile --gateway stripe|adyen --file REPORT.csv --tenant T\n"
                    "                          [--live|--test] [--exceptions OUT.csv]\n");
    return TOK_ERR_INPUT;
}
