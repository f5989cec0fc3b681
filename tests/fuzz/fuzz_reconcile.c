/*
 * fuzz_reconcile.c - the settlement report readers (service/finance/reconcile.c on top of
 * the CSV reader): Stripe's itemized balance report and Adyen's settlement details report,
 * as a client uploads them to POST /v1/reconciliations or tokenctl reads them.
 *
 * Each input is read as both gateways' report, against a ledger made up here: the lookup
 * finds two of three references (a charge or a refund, in usd or eur, with an amount taken
 * from the reference), and one row is always "missing in report". Properties:
 *   - lookup gets 1..TOK_RECON_BATCH references, each a non-empty C string the parser
 *     accepted, which tok_recon_refs_text always renders;
 *   - every exception has a known kind and a reason, and a line unless missing_in_report;
 *   - the summary's counters are exactly the exceptions the sink received, and a file is
 *     refused (TOK_ERR_INPUT) only with a header error;
 *   - tok_recon_amount never overflows (UBSan) and reads its own output back;
 *   - line by line (tok_recon_map_header, tok_recon_parse_line): a refusal has a reason, a
 *     charge or refund line has a reference and a non-negative amount.
 */
#include "fuzz.h"

#include "tokend/finance/reconcile.h"

#include <sodium.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

struct ledger {
    uint64_t kinds[TOK_RECON_MALFORMED + 1];
    uint64_t lookups, seen;
};

static uint32_t hash_ref(const char *ref)
{
    uint32_t h = 2166136261u;
    for (; *ref != '\0'; ref++)
        h = (h ^ (uint8_t)*ref) * 16777619u;
    return h;
}

static tok_status on_lookup(void *ctx, struct tok_recon *rc, const char *const *refs, size_t n)
{
    struct ledger *lg = ctx;
    static char text[TOK_RECON_REFS_TEXT_MAX];
    FUZZ_ASSERT(n >= 1 && n <= TOK_RECON_BATCH);
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(refs[i], TOK_RECON_REF_MAX);
        FUZZ_ASSERT(len >= 1 && len < TOK_RECON_REF_MAX);
        FUZZ_ASSERT(strpbrk(refs[i], "\"\\,{} ") == NULL);
    }
    FUZZ_ASSERT(tok_recon_refs_text(refs, n, text) == TOK_OK);
    FUZZ_ASSERT(text[0] == '{' && strlen(text) < TOK_RECON_REFS_TEXT_MAX);
    lg->lookups += n;
    for (size_t i = 0; i < n; i++) {
        uint32_t h = hash_ref(refs[i]);
        if (h % 3 == 0)
            continue;
        struct tok_recon_ledger_row row;
        memset(&row, 0, sizeof row);
        snprintf(row.ref, sizeof row.ref, "%s", refs[i]);
        snprintf(row.object_id, sizeof row.object_id, "ch_%08x", h);
        snprintf(row.currency, sizeof row.currency, "%s", (h & 4) != 0 ? "eur" : "usd");
        row.amount = (int64_t)(h % 100000);
        row.refund = (h & 8) != 0;
        FUZZ_ASSERT(tok_recon_add_ledger_row(rc, &row) == TOK_OK);
    }
    return TOK_OK;
}

static tok_status on_seen(void *ctx, const char *const *refs, size_t n)
{
    struct ledger *lg = ctx;
    (void)refs;
    lg->seen += n;
    return TOK_OK;
}

static tok_status on_missing(void *ctx, struct tok_recon *rc, int64_t from, int64_t to)
{
    (void)ctx;
    FUZZ_ASSERT(from <= to);
    struct tok_recon_ledger_row row = {.ref = "ch_never_in_a_report", .object_id = "ch_x",
                                       .currency = "usd", .amount = 100};
    return tok_recon_add_missing(rc, &row);
}

static tok_status on_exception(void *ctx, const struct tok_recon_exception *e)
{
    struct ledger *lg = ctx;
    FUZZ_ASSERT(e->kind >= TOK_RECON_MATCHED && e->kind <= TOK_RECON_MALFORMED &&
                e->kind != TOK_RECON_MATCHED);
    FUZZ_ASSERT(e->reason != NULL && e->reason[0] != '\0');
    FUZZ_ASSERT(strcmp(tok_recon_kind_name(e->kind), "?") != 0);
    if (e->kind == TOK_RECON_MISSING_IN_REPORT)
        FUZZ_ASSERT(e->line == 0 && e->ref != NULL);
    else
        FUZZ_ASSERT(e->line >= 1);
    if (e->kind != TOK_RECON_MALFORMED)
        FUZZ_ASSERT(e->ref != NULL && e->ref[0] != '\0');
    lg->kinds[e->kind]++;
    return TOK_OK;
}

static void run(enum tok_recon_gateway gw, const uint8_t *data, size_t size)
{
    struct ledger lg;
    memset(&lg, 0, sizeof lg);
    struct tok_recon_ops ops = {.lookup = on_lookup, .seen = on_seen, .missing = on_missing,
                                .exception = on_exception, .ctx = &lg};
    struct tok_recon *rc = NULL;
    FUZZ_ASSERT(tok_recon_new(gw, &ops, &rc) == TOK_OK);
    tok_status st = tok_recon_feed(rc, data, size);
    if (st == TOK_OK)
        st = tok_recon_finish(rc);
    FUZZ_ASSERT(st == TOK_OK || st == TOK_ERR_INPUT);
    if (st == TOK_ERR_INPUT) {
        FUZZ_ASSERT(tok_recon_header_error(rc) != NULL);
        tok_recon_free(&rc);
        return;
    }
    const struct tok_recon_summary *s = tok_recon_summary(rc);
    FUZZ_ASSERT(s->missing_in_ledger == lg.kinds[TOK_RECON_MISSING_IN_LEDGER]);
    FUZZ_ASSERT(s->missing_in_report == lg.kinds[TOK_RECON_MISSING_IN_REPORT]);
    FUZZ_ASSERT(s->amount_mismatches == lg.kinds[TOK_RECON_AMOUNT_MISMATCH]);
    FUZZ_ASSERT(s->currency_mismatches == lg.kinds[TOK_RECON_CURRENCY_MISMATCH]);
    FUZZ_ASSERT(s->malformed == lg.kinds[TOK_RECON_MALFORMED]);
    /* every charge or refund line was looked up once and is matched or an exception */
    FUZZ_ASSERT(lg.seen == lg.lookups);
    FUZZ_ASSERT(s->matched + s->missing_in_ledger + s->amount_mismatches +
                    s->currency_mismatches == lg.lookups);
    FUZZ_ASSERT(s->lines >= lg.lookups + s->malformed);
    FUZZ_ASSERT(s->ncurrencies <= TOK_RECON_CURRENCIES_MAX);
    FUZZ_ASSERT(s->period_from <= s->period_to);
    tok_recon_free(&rc);
    FUZZ_ASSERT(rc == NULL);
}

/* The pure parts, line by line: which gateways' header the file has. */
struct lines {
    enum tok_recon_gateway gw;
    bool have_header, header_ok;
    struct tok_recon_columns cols;
};

static tok_status on_line(void *ctx, const struct tok_csv_record *rec)
{
    struct lines *ls = ctx;
    const char *why = NULL;
    if (!ls->have_header) {
        ls->have_header = true;
        ls->header_ok = tok_recon_map_header(ls->gw, rec, &ls->cols, &why) == TOK_OK;
        FUZZ_ASSERT(ls->header_ok || why != NULL);
        return ls->header_ok ? TOK_OK : TOK_ERR_INPUT;
    }
    struct tok_recon_line l;
    if (tok_recon_parse_line(ls->gw, &ls->cols, rec, &l, &why) != TOK_OK) {
        FUZZ_ASSERT(why != NULL);
        return TOK_OK;
    }
    FUZZ_ASSERT(l.line == rec->line && l.type <= TOK_RECON_OTHER);
    FUZZ_ASSERT(memchr(l.ref, '\0', sizeof l.ref) != NULL);
    FUZZ_ASSERT(memchr(l.currency, '\0', sizeof l.currency) != NULL);
    if (l.type == TOK_RECON_CHARGE || l.type == TOK_RECON_REFUND)
        FUZZ_ASSERT(l.ref[0] != '\0' && l.amount >= 0);
    return TOK_OK;
}

static bool header_ok(enum tok_recon_gateway gw, const uint8_t *data, size_t size)
{
    struct lines ls = {.gw = gw};
    struct tok_csv *p = NULL;
    FUZZ_ASSERT(tok_csv_new(on_line, &ls, &p) == TOK_OK);
    tok_status st = tok_csv_feed(p, data, size);
    if (st == TOK_OK)
        st = tok_csv_finish(p);
    tok_csv_free(&p);
    FUZZ_ASSERT(st == TOK_OK || (st == TOK_ERR_INPUT && !ls.header_ok));
    return ls.header_ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the whole engine costs a matcher of half a megabyte (one batch): run it only on a
     * file whose header it would accept, after the lines alone */
    for (int gw = TOK_RECON_STRIPE; gw <= TOK_RECON_ADYEN; gw++)
        if (header_ok((enum tok_recon_gateway)gw, data, size))
            run((enum tok_recon_gateway)gw, data, size);

    /* an amount, at the exponents currencies have */
    for (int exp = 0; exp <= 3; exp++) {
        int64_t v = 0;
        if (tok_recon_amount(tok_slice_of(data, size), exp, &v) != TOK_OK)
            continue;
        /* written back with the fraction's trailing zeros left out (at most 15 digits) */
        char txt[40];
        int64_t p = exp == 0 ? 1 : exp == 1 ? 10 : exp == 2 ? 100 : 1000;
        uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        uint64_t ip = a / (uint64_t)p, fp = a % (uint64_t)p;
        int fd = exp;
        while (fd > 0 && fp % 10 == 0 && fp != 0) {
            fp /= 10;
            fd--;
        }
        int k = fp == 0 ? snprintf(txt, sizeof txt, "%s%llu", v < 0 ? "-" : "",
                                   (unsigned long long)ip)
                        : snprintf(txt, sizeof txt, "%s%llu.%0*llu", v < 0 ? "-" : "",
                                   (unsigned long long)ip, fd, (unsigned long long)fp);
        int64_t back = 0;
        FUZZ_ASSERT(tok_recon_amount(tok_slice_of(txt, (size_t)k), exp, &back) == TOK_OK &&
                    back == v);
    }
    return 0;
}
