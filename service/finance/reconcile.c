/*
 * reconcile.c - the settlement matcher (see reconcile.h and docs/reconciliation.md).
 */
#include "tokend/finance/reconcile.h"
#include "tokend/core/currency.h"
#include "tokend/vault/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct tok_recon {
    enum tok_recon_gateway gw;
    struct tok_recon_ops ops;
    struct tok_csv *csv;
    bool have_header;
    const char *header_error;
    struct tok_recon_columns cols;
    /* both grow by doubling up to their bound, so a small report costs a few KB, not the
     * half megabyte that a full batch and its ledger rows take */
    struct tok_recon_line *batch; /* up to TOK_RECON_BATCH */
    size_t nbatch, batch_cap;
    struct tok_recon_ledger_row *rows; /* up to RECON_ROWS_MAX */
    size_t nrows, rows_cap;
    struct tok_recon_summary sum;
};

#define RECON_ROWS_MAX (TOK_RECON_BATCH * 2)
#define RECON_CAP_FIRST 16

/* arr with room for element n (cap elements now, never more than max, n < max): the
 * same array, a larger copy, or NULL when out of memory (arr is then left as it was). */
static void *room_for(void *arr, size_t *cap, size_t n, size_t elem, size_t max)
{
    if (n < *cap)
        return arr;
    size_t next = *cap == 0 ? RECON_CAP_FIRST : *cap * 2;
    if (next > max)
        next = max;
    void *p = realloc(arr, next * elem);
    if (p != NULL)
        *cap = next;
    return p;
}

const char *tok_recon_kind_name(enum tok_recon_kind k)
{
    switch (k) {
    case TOK_RECON_MATCHED: return "matched";
    case TOK_RECON_MISSING_IN_LEDGER: return "missing_in_ledger";
    case TOK_RECON_MISSING_IN_REPORT: return "missing_in_report";
    case TOK_RECON_AMOUNT_MISMATCH: return "amount_mismatch";
    case TOK_RECON_CURRENCY_MISMATCH: return "currency_mismatch";
    case TOK_RECON_MALFORMED: return "malformed";
    default: return "unknown";
    }
}

tok_status tok_recon_gateway_parse(const char *s, enum tok_recon_gateway *gw)
{
    TOK_ENSURE(s != NULL && gw != NULL, TOK_ERR_INTERNAL);
    if (strcmp(s, "stripe") == 0) {
        *gw = TOK_RECON_STRIPE;
        return TOK_OK;
    }
    if (strcmp(s, "adyen") == 0) {
        *gw = TOK_RECON_ADYEN;
        return TOK_OK;
    }
    return TOK_ERR_INPUT;
}

/* ---- amounts and fields --------------------------------------------------------------- */

tok_status tok_recon_amount(struct tok_slice s, int exponent, int64_t *out)
{
    TOK_ENSURE(out != NULL && exponent >= 0 && exponent <= 4, TOK_ERR_INTERNAL);
    size_t i = 0;
    while (i < s.len && s.ptr[i] == ' ')
        i++;
    while (s.len > i && s.ptr[s.len - 1] == ' ')
        s.len--;
    bool neg = false;
    if (i < s.len && (s.ptr[i] == '-' || s.ptr[i] == '+'))
        neg = s.ptr[i++] == '-';
    TOK_ENSURE(i < s.len, TOK_ERR_INPUT);
    int64_t v = 0;
    int frac = -1; /* digits after the point, -1 before it */
    size_t digits = 0;
    for (; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '.') {
            TOK_ENSURE(frac < 0 && digits > 0, TOK_ERR_INPUT);
            frac = 0;
            continue;
        }
        TOK_ENSURE(c >= '0' && c <= '9', TOK_ERR_INPUT);
        TOK_ENSURE(++digits <= 15, TOK_ERR_INPUT);
        if (frac >= 0) {
            TOK_ENSURE(frac < exponent, TOK_ERR_INPUT); /* more precision than the currency has */
            frac++;
        }
        v = v * 10 + (c - '0');
    }
    TOK_ENSURE(frac != 0, TOK_ERR_INPUT); /* "5." */
    for (int f = frac < 0 ? 0 : frac; f < exponent; f++)
        v *= 10;
    *out = neg ? -v : v;
    return TOK_OK;
}

static struct tok_slice field(const struct tok_csv_record *rec, int col)
{
    if (col < 0 || (size_t)col >= rec->nfields)
        return tok_slice_of("", 0);
    return rec->fields[col];
}

static bool field_is(struct tok_slice f, const char *s)
{
    size_t n = strlen(s);
    return f.len == n && strncasecmp((const char *)f.ptr, s, n) == 0;
}

/* "2024-01-02 03:04:05" or RFC 3339, as UTC. */
static tok_status parse_time(struct tok_slice f, int64_t *out)
{
    char tmp[40];
    TOK_ENSURE(f.len >= 10 && f.len < sizeof tmp - 2, TOK_ERR_INPUT);
    tok_copy(tmp, f.ptr, f.len);
    size_t n = f.len;
    if (n == 10) {
        tok_copy(tmp + n, "T00:00:00", 9);
        n += 9;
    }
    if (tmp[10] == ' ')
        tmp[10] = 'T';
    char last = tmp[n - 1];
    bool has_zone = last == 'Z' || (n > 19 && (tmp[n - 6] == '+' || tmp[n - 6] == '-'));
    if (!has_zone)
        tmp[n++] = 'Z';
    tmp[n] = '\0';
    return tok_rfc3339_parse(tok_slice_of(tmp, n), out);
}

static tok_status copy_ref(struct tok_slice f, char *out)
{
    TOK_ENSURE(f.len > 0 && f.len < TOK_RECON_REF_MAX, TOK_ERR_INPUT);
    for (size_t i = 0; i < f.len; i++) {
        uint8_t c = f.ptr[i];
        TOK_ENSURE(c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != ',' && c != '{' &&
                       c != '}',
                   TOK_ERR_INPUT);
    }
    tok_copy(out, f.ptr, f.len);
    out[f.len] = '\0';
    return TOK_OK;
}

tok_status tok_recon_refs_text(const char *const *refs, size_t n, char out[TOK_RECON_REFS_TEXT_MAX])
{
    TOK_ENSURE(refs != NULL || n == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(n <= TOK_RECON_BATCH, TOK_ERR_BOUNDS);
    struct tok_buf b;
    tok_buf_init(&b, out, TOK_RECON_REFS_TEXT_MAX);
    TOK_GUARD(tok_buf_putc(&b, '{'));
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            TOK_GUARD(tok_buf_putc(&b, ','));
        TOK_GUARD(tok_buf_putc(&b, '"'));
        TOK_GUARD(tok_buf_puts(&b, refs[i]));
        TOK_GUARD(tok_buf_putc(&b, '"'));
    }
    TOK_GUARD(tok_buf_putc(&b, '}'));
    const char *s = NULL;
    return tok_buf_cstr(&b, &s);
}

/* ---- headers ---------------------------------------------------------------------------- */

static int find_col(const struct tok_csv_record *hdr, const char *const *names)
{
    for (; *names != NULL; names++)
        for (size_t i = 0; i < hdr->nfields; i++)
            if (field_is(hdr->fields[i], *names))
                return (int)i;
    return -1;
}

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

tok_status tok_recon_map_header(enum tok_recon_gateway gw, const struct tok_csv_record *hdr,
                                struct tok_recon_columns *c, const char **why)
{
    TOK_ENSURE(hdr != NULL && c != NULL && why != NULL, TOK_ERR_INTERNAL);
    memset(c, -1, sizeof *c);
    c->nfields = hdr->nfields;
    *why = NULL;
    switch (gw) {
    case TOK_RECON_STRIPE:
        /* itemized reports (snake_case) and the Dashboard's balance export (Title Case) */
        c->ref = find_col(hdr, NAMES("source_id", "Source"));
        c->ref2 = find_col(hdr, NAMES("charge_id"));
        c->ref3 = find_col(hdr, NAMES("payment_intent_id"));
        c->type = find_col(hdr, NAMES("reporting_category", "Reporting Category", "Type"));
        c->currency = find_col(hdr, NAMES("currency", "Currency"));
        c->gross = find_col(hdr, NAMES("gross", "Amount"));
        c->fee = find_col(hdr, NAMES("fee", "Fee"));
        c->net = find_col(hdr, NAMES("net", "Net"));
        c->created = find_col(hdr, NAMES("created_utc", "created", "Created (UTC)"));
        if (c->ref < 0 || c->type < 0 || c->currency < 0 || c->gross < 0)
            *why = "a Stripe report needs source_id, reporting_category, currency and gross";
        break;
    case TOK_RECON_ADYEN:
        c->ref = find_col(hdr, NAMES("Psp Reference"));
        c->ref2 = find_col(hdr, NAMES("Modification Reference"));
        c->type = find_col(hdr, NAMES("Type"));
        c->currency = find_col(hdr, NAMES("Gross Currency"));
        c->gross_debit = find_col(hdr, NAMES("Gross Debit (GC)"));
        c->gross_credit = find_col(hdr, NAMES("Gross Credit (GC)"));
        c->net_currency = find_col(hdr, NAMES("Net Currency"));
        c->net_debit = find_col(hdr, NAMES("Net Debit (NC)"));
        c->net_credit = find_col(hdr, NAMES("Net Credit (NC)"));
        c->fee_cols[0] = find_col(hdr, NAMES("Commission (NC)"));
        c->fee_cols[1] = find_col(hdr, NAMES("Markup (NC)"));
        c->fee_cols[2] = find_col(hdr, NAMES("Scheme Fees (NC)"));
        c->fee_cols[3] = find_col(hdr, NAMES("Interchange (NC)"));
        c->created = find_col(hdr, NAMES("Creation Date"));
        if (c->ref < 0 || c->type < 0 || c->currency < 0 || c->gross_credit < 0 ||
            c->gross_debit < 0 || c->net_currency < 0)
            *why = "an Adyen settlement details report needs Psp Reference, Type, Gross Currency, "
                   "Gross Debit (GC), Gross Credit (GC) and Net Currency";
        break;
    default:
        return TOK_ERR_INTERNAL;
    }
    return *why == NULL ? TOK_OK : TOK_ERR_INPUT;
}

/* ---- lines ------------------------------------------------------------------------------- */

static tok_status currency_of(struct tok_slice f, char out[4], int *exp)
{
    TOK_GUARD(tok_currency_normalise(f, out));
    *exp = tok_currency_exponent(f);
    TOK_ENSURE(*exp >= 0, TOK_ERR_INPUT);
    return TOK_OK;
}

/* An optional amount column: empty is 0. */
static tok_status opt_amount(const struct tok_csv_record *rec, int col, int exp, int64_t *out)
{
    struct tok_slice f = field(rec, col);
    *out = 0;
    if (f.len == 0)
        return TOK_OK;
    return tok_recon_amount(f, exp, out);
}

#define BAD(w)                                                                                      \
    do {                                                                                           \
        *why = (w);                                                                                \
        return TOK_ERR_INPUT;                                                                      \
    } while (0)

static tok_status parse_stripe(const struct tok_recon_columns *c, const struct tok_csv_record *rec,
                               struct tok_recon_line *l, const char **why)
{
    struct tok_slice t = field(rec, c->type);
    if (field_is(t, "charge") || field_is(t, "payment"))
        l->type = TOK_RECON_CHARGE;
    else if (field_is(t, "refund") || field_is(t, "payment_refund"))
        l->type = TOK_RECON_REFUND;
    else if (field_is(t, "fee") || field_is(t, "stripe_fee") || field_is(t, "network_cost"))
        l->type = TOK_RECON_FEE;
    else if (t.len == 0)
        BAD("no reporting_category");
    else
        l->type = TOK_RECON_OTHER;
    int exp = 0;
    if (currency_of(field(rec, c->currency), l->currency, &exp) != TOK_OK)
        BAD("unknown currency");
    int64_t gross = 0;
    if (tok_recon_amount(field(rec, c->gross), exp, &gross) != TOK_OK)
        BAD("gross is not an amount");
    if (opt_amount(rec, c->fee, exp, &l->fee) != TOK_OK)
        BAD("fee is not an amount");
    if (c->net >= 0 && field(rec, c->net).len > 0) {
        if (tok_recon_amount(field(rec, c->net), exp, &l->net) != TOK_OK)
            BAD("net is not an amount");
    } else {
        l->net = gross - l->fee;
    }
    l->amount = gross < 0 ? -gross : gross;
    if (l->type == TOK_RECON_FEE) {
        /* a fee line's gross is what it costs (negative in the report) */
        l->fee += l->amount;
        l->amount = 0;
    }
    struct tok_slice ref = field(rec, c->ref);
    if (ref.len == 0 && l->type == TOK_RECON_CHARGE)
        ref = field(rec, c->ref2);
    if (ref.len == 0 && l->type == TOK_RECON_CHARGE)
        ref = field(rec, c->ref3);
    if (l->type == TOK_RECON_CHARGE || l->type == TOK_RECON_REFUND) {
        if (copy_ref(ref, l->ref) != TOK_OK)
            BAD("no usable gateway reference");
        if (gross == 0)
            BAD("zero amount");
    }
    return TOK_OK;
}

static tok_status parse_adyen(const struct tok_recon_columns *c, const struct tok_csv_record *rec,
                              struct tok_recon_line *l, const char **why)
{
    struct tok_slice t = field(rec, c->type);
    if (field_is(t, "Settled") || field_is(t, "SettledBulk"))
        l->type = TOK_RECON_CHARGE;
    else if (field_is(t, "Refunded") || field_is(t, "RefundedBulk"))
        l->type = TOK_RECON_REFUND;
    else if (field_is(t, "Fee") || field_is(t, "InvoiceDeduction"))
        l->type = TOK_RECON_FEE;
    else if (t.len == 0)
        BAD("no Type");
    else
        l->type = TOK_RECON_OTHER;
    int exp = 0, nexp = 0;
    char ncur[4];
    bool need_gross = l->type == TOK_RECON_CHARGE || l->type == TOK_RECON_REFUND;
    struct tok_slice gcur = field(rec, c->currency), nc = field(rec, c->net_currency);
    if (gcur.len == 0 && !need_gross)
        gcur = nc;
    if (currency_of(gcur, l->currency, &exp) != TOK_OK)
        BAD("unknown currency");
    if (nc.len == 0)
        nc = gcur;
    if (currency_of(nc, ncur, &nexp) != TOK_OK)
        BAD("unknown net currency");
    int64_t gd = 0, gc = 0, nd = 0, ncr = 0, fee = 0;
    if (opt_amount(rec, c->gross_debit, exp, &gd) != TOK_OK ||
        opt_amount(rec, c->gross_credit, exp, &gc) != TOK_OK)
        BAD("gross is not an amount");
    if (opt_amount(rec, c->net_debit, nexp, &nd) != TOK_OK ||
        opt_amount(rec, c->net_credit, nexp, &ncr) != TOK_OK)
        BAD("net is not an amount");
    for (size_t i = 0; i < TOK_ARRAY_LEN(c->fee_cols); i++) {
        int64_t f = 0;
        if (opt_amount(rec, c->fee_cols[i], nexp, &f) != TOK_OK)
            BAD("a fee column is not an amount");
        fee += f;
    }
    l->net = ncr - nd;
    l->fee = fee;
    if (l->type == TOK_RECON_CHARGE)
        l->amount = gc;
    else if (l->type == TOK_RECON_REFUND)
        l->amount = gd;
    else if (l->type == TOK_RECON_FEE)
        l->fee += nd - ncr;
    if (need_gross) {
        if (l->amount <= 0)
            BAD("no gross amount on the side its Type needs");
        struct tok_slice ref = field(rec, c->ref);
        /* a refund's own reference is the modification's; the payment's is Psp Reference */
        if (l->type == TOK_RECON_REFUND && field(rec, c->ref2).len > 0)
            ref = field(rec, c->ref2);
        if (copy_ref(ref, l->ref) != TOK_OK)
            BAD("no usable gateway reference");
    }
    return TOK_OK;
}

tok_status tok_recon_parse_line(enum tok_recon_gateway gw, const struct tok_recon_columns *c,
                                const struct tok_csv_record *rec, struct tok_recon_line *l,
                                const char **why)
{
    TOK_ENSURE(c != NULL && rec != NULL && l != NULL && why != NULL, TOK_ERR_INTERNAL);
    memset(l, 0, sizeof *l);
    l->line = rec->line;
    *why = NULL;
    if (rec->error != NULL)
        BAD(rec->error);
    if (rec->nfields != c->nfields)
        BAD("wrong number of fields");
    struct tok_slice cr = field(rec, c->created);
    if (cr.len > 0 && parse_time(cr, &l->created) != TOK_OK)
        BAD("creation date is not a date");
    switch (gw) {
    case TOK_RECON_STRIPE: return parse_stripe(c, rec, l, why);
    case TOK_RECON_ADYEN: return parse_adyen(c, rec, l, why);
    default: return TOK_ERR_INTERNAL;
    }
}

enum tok_recon_kind tok_recon_compare(const struct tok_recon_line *l,
                                      const struct tok_recon_ledger_row *row)
{
    if (row == NULL)
        return TOK_RECON_MISSING_IN_LEDGER;
    if (strcmp(l->currency, row->currency) != 0)
        return TOK_RECON_CURRENCY_MISMATCH;
    if (l->amount != row->amount)
        return TOK_RECON_AMOUNT_MISMATCH;
    return TOK_RECON_MATCHED;
}

/* ---- the engine ------------------------------------------------------------------------------ */

static struct tok_recon_currency_totals *totals_for(struct tok_recon *rc, const char *cur)
{
    struct tok_recon_summary *s = &rc->sum;
    for (size_t i = 0; i < s->ncurrencies; i++)
        if (strcmp(s->currencies[i].currency, cur) == 0)
            return &s->currencies[i];
    if (s->ncurrencies >= TOK_RECON_CURRENCIES_MAX)
        return NULL;
    struct tok_recon_currency_totals *t = &s->currencies[s->ncurrencies++];
    memset(t, 0, sizeof *t);
    snprintf(t->currency, sizeof t->currency, "%s", cur);
    return t;
}

static tok_status report(struct tok_recon *rc, const struct tok_recon_exception *e)
{
    struct tok_recon_summary *s = &rc->sum;
    switch (e->kind) {
    case TOK_RECON_MISSING_IN_LEDGER: s->missing_in_ledger++; break;
    case TOK_RECON_MISSING_IN_REPORT: s->missing_in_report++; break;
    case TOK_RECON_AMOUNT_MISMATCH: s->amount_mismatches++; break;
    case TOK_RECON_CURRENCY_MISMATCH: s->currency_mismatches++; break;
    case TOK_RECON_MALFORMED: s->malformed++; break;
    default: return TOK_ERR_INTERNAL;
    }
    return rc->ops.exception != NULL ? rc->ops.exception(rc->ops.ctx, e) : TOK_OK;
}

static int cmp_row(const void *a, const void *b)
{
    const struct tok_recon_ledger_row *x = a, *y = b;
    int c = strcmp(x->ref, y->ref);
    return c != 0 ? c : (int)x->refund - (int)y->refund;
}

static tok_status flush_batch(struct tok_recon *rc)
{
    if (rc->nbatch == 0)
        return TOK_OK;
    const char *refs[TOK_RECON_BATCH];
    for (size_t i = 0; i < rc->nbatch; i++)
        refs[i] = rc->batch[i].ref;
    rc->nrows = 0;
    TOK_GUARD(rc->ops.lookup(rc->ops.ctx, rc, refs, rc->nbatch));
    if (rc->ops.seen != NULL)
        TOK_GUARD(rc->ops.seen(rc->ops.ctx, refs, rc->nbatch));
    if (rc->nrows > 1)
        qsort(rc->rows, rc->nrows, sizeof rc->rows[0], cmp_row);
    for (size_t i = 0; i < rc->nbatch; i++) {
        const struct tok_recon_line *l = &rc->batch[i];
        struct tok_recon_ledger_row key;
        memset(&key, 0, sizeof key);
        snprintf(key.ref, sizeof key.ref, "%s", l->ref);
        key.refund = l->type == TOK_RECON_REFUND;
        const struct tok_recon_ledger_row *row =
            rc->nrows == 0 ? NULL : bsearch(&key, rc->rows, rc->nrows, sizeof rc->rows[0], cmp_row);
        enum tok_recon_kind k = tok_recon_compare(l, row);
        if (k == TOK_RECON_MATCHED) {
            rc->sum.matched++;
            struct tok_recon_currency_totals *t = totals_for(rc, l->currency);
            if (t != NULL) {
                t->matched++;
                t->matched_amount += l->type == TOK_RECON_REFUND ? -l->amount : l->amount;
            }
            continue;
        }
        struct tok_recon_exception e = {
            .kind = k,
            .line = l->line,
            .ref = l->ref,
            .object_id = row != NULL ? row->object_id : NULL,
            .report_amount = l->amount,
            .ledger_amount = row != NULL ? row->amount : 0,
            .report_currency = l->currency,
            .ledger_currency = row != NULL ? row->currency : NULL,
            .reason = k == TOK_RECON_MISSING_IN_LEDGER
                          ? (l->type == TOK_RECON_REFUND ? "no refund with this reference"
                                                         : "no charge with this reference")
                          : k == TOK_RECON_AMOUNT_MISMATCH ? "amounts differ" : "currencies differ",
        };
        TOK_GUARD(report(rc, &e));
    }
    rc->nbatch = 0;
    return TOK_OK;
}

static tok_status on_record(void *ctx, const struct tok_csv_record *rec)
{
    struct tok_recon *rc = ctx;
    if (!rc->have_header) {
        const char *why = NULL;
        if (tok_recon_map_header(rc->gw, rec, &rc->cols, &why) != TOK_OK) {
            rc->header_error = rec->error != NULL ? rec->error : why;
            return TOK_ERR_INPUT;
        }
        rc->have_header = true;
        return TOK_OK;
    }
    struct tok_recon_summary *s = &rc->sum;
    s->lines++;
    if (rc->ops.progress != NULL && rc->ops.progress_every > 0 && s->lines % rc->ops.progress_every == 0)
        rc->ops.progress(rc->ops.ctx, s->lines);
    struct tok_recon_line *b =
        room_for(rc->batch, &rc->batch_cap, rc->nbatch, sizeof *b, TOK_RECON_BATCH);
    TOK_ENSURE(b != NULL, TOK_ERR_NOMEM);
    rc->batch = b;
    struct tok_recon_line *l = &rc->batch[rc->nbatch];
    memset(l, 0, sizeof *l);
    const char *why = NULL;
    if (tok_recon_parse_line(rc->gw, &rc->cols, rec, l, &why) != TOK_OK) {
        struct tok_recon_exception e = {.kind = TOK_RECON_MALFORMED, .line = rec->line, .reason = why};
        return report(rc, &e);
    }
    if (l->created != 0) {
        if (s->period_from == 0 || l->created < s->period_from)
            s->period_from = l->created;
        if (l->created > s->period_to)
            s->period_to = l->created;
    }
    struct tok_recon_currency_totals *t = totals_for(rc, l->currency);
    if (t != NULL) {
        if (l->type == TOK_RECON_CHARGE)
            t->charges += l->amount;
        else if (l->type == TOK_RECON_REFUND)
            t->refunds += l->amount;
        t->fees += l->fee;
        t->net += l->net;
    }
    if (l->type != TOK_RECON_CHARGE && l->type != TOK_RECON_REFUND)
        return TOK_OK;
    if (++rc->nbatch == TOK_RECON_BATCH)
        return flush_batch(rc);
    return TOK_OK;
}

tok_status tok_recon_new(enum tok_recon_gateway gw, const struct tok_recon_ops *ops,
                         struct tok_recon **out)
{
    TOK_ENSURE(ops != NULL && ops->lookup != NULL && out != NULL, TOK_ERR_INTERNAL);
    struct tok_recon *rc = calloc(1, sizeof *rc);
    TOK_ENSURE(rc != NULL, TOK_ERR_NOMEM);
    rc->gw = gw;
    rc->ops = *ops;
    if (tok_csv_new(on_record, rc, &rc->csv) != TOK_OK) {
        free(rc);
        return TOK_ERR_NOMEM;
    }
    *out = rc;
    return TOK_OK;
}

void tok_recon_free(struct tok_recon **p)
{
    if (p == NULL || *p == NULL)
        return;
    tok_csv_free(&(*p)->csv);
    free((*p)->batch);
    free((*p)->rows);
    free(*p);
    *p = NULL;
}

tok_status tok_recon_feed(struct tok_recon *rc, const void *data, size_t n)
{
    return tok_csv_feed(rc->csv, data, n);
}

tok_status tok_recon_finish(struct tok_recon *rc)
{
    TOK_GUARD(tok_csv_finish(rc->csv));
    if (!rc->have_header) {
        rc->header_error = "the report is empty (no header)";
        return TOK_ERR_INPUT;
    }
    TOK_GUARD(flush_batch(rc));
    if (rc->ops.missing != NULL && rc->sum.period_to != 0)
        TOK_GUARD(rc->ops.missing(rc->ops.ctx, rc, rc->sum.period_from, rc->sum.period_to));
    return TOK_OK;
}

const struct tok_recon_summary *tok_recon_summary(const struct tok_recon *rc)
{
    return &rc->sum;
}

const char *tok_recon_header_error(const struct tok_recon *rc)
{
    return rc->header_error;
}

tok_status tok_recon_add_ledger_row(struct tok_recon *rc, const struct tok_recon_ledger_row *row)
{
    TOK_ENSURE(rc->nrows < RECON_ROWS_MAX, TOK_ERR_BOUNDS);
    struct tok_recon_ledger_row *r =
        room_for(rc->rows, &rc->rows_cap, rc->nrows, sizeof *r, RECON_ROWS_MAX);
    TOK_ENSURE(r != NULL, TOK_ERR_NOMEM);
    rc->rows = r;
    rc->rows[rc->nrows++] = *row;
    return TOK_OK;
}

tok_status tok_recon_add_missing(struct tok_recon *rc, const struct tok_recon_ledger_row *row)
{
    struct tok_recon_exception e = {
        .kind = TOK_RECON_MISSING_IN_REPORT,
        .ref = row->ref,
        .object_id = row->object_id,
        .ledger_amount = row->amount,
        .ledger_currency = row->currency,
        .reason = row->refund ? "refund not in the report" : "charge not in the report",
    };
    return report(rc, &e);
}
