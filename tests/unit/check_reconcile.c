#include "tokend/finance/reconcile.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tok_csv_record rec_of(const char *const *f, size_t n, uint64_t line)
{
    struct tok_csv_record r;
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < n; i++)
        r.fields[i] = tok_slice_str(f[i]);
    r.nfields = n;
    r.line = line;
    return r;
}

START_TEST(test_amounts)
{
    int64_t v = 0;
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("19.99"), 2, &v), TOK_OK);
    ck_assert_int_eq(v, 1999);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("-5"), 2, &v), TOK_OK);
    ck_assert_int_eq(v, -500);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("7.5"), 2, &v), TOK_OK);
    ck_assert_int_eq(v, 750);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("1200"), 0, &v), TOK_OK);
    ck_assert_int_eq(v, 1200);
}
END_TEST

START_TEST(test_stripe_lines)
{
    const char *h[] = {"created_utc", "currency", "gross", "fee", "net", "reporting_category", "source_id"};
    struct tok_csv_record hdr = rec_of(h, 7, 1);
    struct tok_recon_columns c;
    const char *why = NULL;
    ck_assert_int_eq(tok_recon_map_header(TOK_RECON_STRIPE, &hdr, &c, &why), TOK_OK);
    const char *l1[] = {"2030-01-15 12:00:00", "USD", "-3.00", "0", "-3.00", "refund", "re_1"};
    struct tok_csv_record r = rec_of(l1, 7, 2);
    struct tok_recon_line line;
    ck_assert_int_eq(tok_recon_parse_line(TOK_RECON_STRIPE, &c, &r, &line, &why), TOK_OK);
    ck_assert_int_eq(line.type, TOK_RECON_REFUND);
    ck_assert_int_eq(line.amount, 300);
    ck_assert_str_eq(line.currency, "usd");
    ck_assert_str_eq(line.ref, "re_1");
    struct tok_recon_ledger_row row = {.ref = "re_1", .currency = "usd", .amount = 300, .refund = true};
    ck_assert_int_eq(tok_recon_compare(&line, &row), TOK_RECON_MATCHED);
    row.amount = 301;
    ck_assert_int_eq(tok_recon_compare(&line, &row), TOK_RECON_AMOUNT_MISMATCH);
    memcpy(row.currency, "eur", 4);
    ck_assert_int_eq(tok_recon_compare(&line, &row), TOK_RECON_CURRENCY_MISMATCH);
    ck_assert_int_eq(tok_recon_compare(&line, NULL), TOK_RECON_MISSING_IN_LEDGER);
}
END_TEST

START_TEST(test_limits)
{
    int64_t v = 0;
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("999999999999999"), 0, &v), TOK_OK);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("9999999999999999"), 0, &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("1.234"), 2, &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str(""), 2, &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("-"), 2, &v), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_adversarial)
{
    int64_t v = 0;
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("1,234.50"), 2, &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("1.2.3"), 2, &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str("5."), 2, &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_recon_amount(tok_slice_str(".5"), 2, &v), TOK_ERR_INPUT);
    const char *h[] = {"Psp Reference", "Type"};
    struct tok_csv_record hdr = rec_of(h, 2, 1);
    struct tok_recon_columns c;
    const char *why = NULL;
    ck_assert_int_eq(tok_recon_map_header(TOK_RECON_ADYEN, &hdr, &c, &why), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(why);
    const char *sh[] = {"currency", "gross", "reporting_category", "source_id"};
    hdr = rec_of(sh, 4, 1);
    ck_assert_int_eq(tok_recon_map_header(TOK_RECON_STRIPE, &hdr, &c, &why), TOK_OK);
    const char *bad[] = {"usd", "1.00", "charge", "ch_\"x"};
    struct tok_csv_record r = rec_of(bad, 4, 2);
    struct tok_recon_line line;
    ck_assert_int_eq(tok_recon_parse_line(TOK_RECON_STRIPE, &c, &r, &line, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "no usable gateway reference");
    const char *shortl[] = {"usd", "1.00", "charge"};
    r = rec_of(shortl, 3, 3);
    ck_assert_int_eq(tok_recon_parse_line(TOK_RECON_STRIPE, &c, &r, &line, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "wrong number of fields");
}
END_TEST

START_TEST(test_refs_text)
{
    static char out[TOK_RECON_REFS_TEXT_MAX];
    const char *two[] = {"ch_1", "pi_2"};
    ck_assert_int_eq(tok_recon_refs_text(two, 2, out), TOK_OK);
    ck_assert_str_eq(out, "{\"ch_1\",\"pi_2\"}");
    ck_assert_int_eq(tok_recon_refs_text(NULL, 0, out), TOK_OK);
    ck_assert_str_eq(out, "{}");

    /* a full batch of the longest references fits; one more does not */
    static char ref[TOK_RECON_REF_MAX];
    static const char *refs[TOK_RECON_BATCH + 1];
    memset(ref, 'r', TOK_RECON_REF_MAX - 1);
    for (size_t i = 0; i <= TOK_RECON_BATCH; i++)
        refs[i] = ref;
    ck_assert_int_eq(tok_recon_refs_text(refs, TOK_RECON_BATCH, out), TOK_OK);
    ck_assert_uint_eq(strlen(out), TOK_RECON_BATCH * (TOK_RECON_REF_MAX + 2) + 1);
    ck_assert_int_eq(tok_recon_refs_text(refs, TOK_RECON_BATCH + 1, out), TOK_ERR_BOUNDS);
}
END_TEST

/* A report of 2,500 charges is matched in batches of TOK_RECON_BATCH, the batch and the
 * ledger rows growing from nothing to their bound (two rows per reference here), and a
 * lookup that adds more than twice a batch of rows is refused. */
struct batches {
    size_t calls, refs, bounds_at;
    bool overfill;
};

static tok_status batches_lookup(void *ctx, struct tok_recon *rc, const char *const *refs, size_t n)
{
    struct batches *b = ctx;
    b->calls++;
    b->refs += n;
    for (size_t i = 0; i < n; i++) {
        struct tok_recon_ledger_row row = {.currency = "usd"};
        snprintf(row.ref, sizeof row.ref, "%s", refs[i]);
        snprintf(row.object_id, sizeof row.object_id, "ch_%zu", i);
        row.amount = strtoll(refs[i] + 3, NULL, 10);
        ck_assert_int_eq(tok_recon_add_ledger_row(rc, &row), TOK_OK);
        row.refund = true;
        ck_assert_int_eq(tok_recon_add_ledger_row(rc, &row), TOK_OK);
    }
    if (b->overfill) {
        struct tok_recon_ledger_row row = {.ref = "ch_x", .currency = "usd"};
        tok_status st = TOK_OK;
        size_t added = 0;
        while ((st = tok_recon_add_ledger_row(rc, &row)) == TOK_OK)
            added++;
        ck_assert_int_eq(st, TOK_ERR_BOUNDS);
        b->bounds_at = 2 * n + added;
    }
    return TOK_OK;
}

START_TEST(test_batches)
{
    struct batches b = {.overfill = _i == 1};
    struct tok_recon_ops ops = {.lookup = batches_lookup, .ctx = &b};
    struct tok_recon *rc = NULL;
    ck_assert_int_eq(tok_recon_new(TOK_RECON_STRIPE, &ops, &rc), TOK_OK);
    const char *hdr = "currency,gross,reporting_category,source_id\n";
    ck_assert_int_eq(tok_recon_feed(rc, hdr, strlen(hdr)), TOK_OK);
    char line[64];
    for (int i = 1; i <= 2500; i++) {
        int len = snprintf(line, sizeof line, "usd,%d.%02d,charge,ch_%d\n", i / 100, i % 100, i);
        ck_assert_int_eq(tok_recon_feed(rc, line, (size_t)len), TOK_OK);
    }
    ck_assert_int_eq(tok_recon_finish(rc), TOK_OK);
    ck_assert_uint_eq(b.calls, 3);
    ck_assert_uint_eq(b.refs, 2500);
    ck_assert_uint_eq(tok_recon_summary(rc)->matched, 2500);
    if (b.overfill)
        ck_assert_uint_eq(b.bounds_at, 2 * TOK_RECON_BATCH);
    tok_recon_free(&rc);
    ck_assert_ptr_null(rc);
}
END_TEST

Suite *tok_reconcile_suite(void)
{
    Suite *s = suite_create("reconcile");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_test(core, test_amounts);
    tcase_add_test(core, test_refs_text);
    tcase_add_test(core, test_stripe_lines);
    tcase_add_loop_test(limits, test_batches, 0, 2);
    tcase_add_test(limits, test_limits);
    tcase_add_test(adv, test_adversarial);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
