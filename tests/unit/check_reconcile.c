#include "tokend/finance/reconcile.h"

#include <check.h>
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

Suite *tok_reconcile_suite(void)
{
    Suite *s = suite_create("reconcile");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_test(core, test_amounts);
    tcase_add_test(core, test_refs_text);
    tcase_add_test(core, test_stripe_lines);
    tcase_add_test(limits, test_limits);
    tcase_add_test(adv, test_adversarial);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
