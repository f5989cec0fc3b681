/*
 * reconcile.h - settlement matching: a gateway's settlement report (Stripe's
 * itemized balance / payout reconciliation CSV, Adyen's Settlement details
 * report) against the ledger, by gateway reference. Column definitions and
 * their sources: docs/reconciliation.md.
 *
 * The engine streams: bytes go through the CSV reader (csv.h), lines are
 * parsed as they complete and matched in batches of TOK_RECON_BATCH against
 * the ledger through the caller's ops (a database connection in tokenctl,
 * a database job in tokend), so memory is one batch whatever the file size.
 * Ledger rows of the report's period that no line named ("missing in report")
 * are asked for at the end, by ops->missing.
 */
#ifndef TOKEND_RECONCILE_H
#define TOKEND_RECONCILE_H

#include "tokend/core/common.h"
#include "tokend/core/csv.h"

#define TOK_RECON_BATCH 1000
#define TOK_RECON_REF_MAX 128
#define TOK_RECON_CURRENCIES_MAX 32
#define TOK_RECON_ID_MAX 48

enum tok_recon_gateway { TOK_RECON_STRIPE, TOK_RECON_ADYEN };

enum tok_recon_line_type { TOK_RECON_CHARGE, TOK_RECON_REFUND, TOK_RECON_FEE, TOK_RECON_OTHER };

enum tok_recon_kind {
    TOK_RECON_MATCHED,
    TOK_RECON_MISSING_IN_LEDGER,
    TOK_RECON_MISSING_IN_REPORT,
    TOK_RECON_AMOUNT_MISMATCH,
    TOK_RECON_CURRENCY_MISMATCH,
    TOK_RECON_MALFORMED,
};

/** One settlement line, amounts in minor units of `currency`. */
struct tok_recon_line {
    uint64_t line;
    enum tok_recon_line_type type;
    char ref[TOK_RECON_REF_MAX];
    char currency[4];
    int64_t amount; /* gross, positive for charges and refunds alike */
    int64_t fee;    /* fees the line carries (positive = charged to the merchant) */
    int64_t net;    /* signed, as the report says */
    int64_t created; /* epoch seconds, 0 when the report gives none */
};

/** Where each field is in a report (-1 = absent). */
struct tok_recon_columns {
    int ref, ref2, ref3, type, currency, gross, fee, net, created;
    int gross_debit, gross_credit, net_currency, net_debit, net_credit;
    int fee_cols[4];
    size_t nfields;
};

/** What the ledger holds for one reference. */
struct tok_recon_ledger_row {
    char ref[TOK_RECON_REF_MAX];
    char object_id[TOK_RECON_ID_MAX];
    char currency[4];
    int64_t amount;
    bool refund;
};

/** One exception (borrowed by the sink for the duration of the call). */
struct tok_recon_exception {
    enum tok_recon_kind kind;
    uint64_t line; /* 0 for missing_in_report */
    const char *ref;
    const char *object_id;
    int64_t report_amount, ledger_amount;
    const char *report_currency, *ledger_currency;
    const char *reason;
};

struct tok_recon_currency_totals {
    char currency[4];
    uint64_t matched;
    int64_t matched_amount, charges, refunds, fees, net;
};

struct tok_recon_summary {
    uint64_t lines, matched, missing_in_ledger, missing_in_report, amount_mismatches,
        currency_mismatches, malformed;
    int64_t period_from, period_to; /* epoch seconds of the first and last dated line */
    struct tok_recon_currency_totals currencies[TOK_RECON_CURRENCIES_MAX];
    size_t ncurrencies;
};

struct tok_recon;

struct tok_recon_ops {
    /**
     * Finds the ledger rows (charges and refunds) whose gateway reference is
     * one of refs[0..n), and calls tok_recon_add_ledger_row for each.
     */
    tok_status (*lookup)(void *ctx, struct tok_recon *rc, const char *const *refs, size_t n);
    /** Remembers refs as seen (for missing). */
    tok_status (*seen)(void *ctx, const char *const *refs, size_t n);
    /**
     * Calls tok_recon_add_missing for each settled ledger row of the period
     * [from, to] whose reference was never seen.
     */
    tok_status (*missing)(void *ctx, struct tok_recon *rc, int64_t from, int64_t to);
    /** Receives every exception, in order. */
    tok_status (*exception)(void *ctx, const struct tok_recon_exception *e);
    /** Called every progress_every lines (may be NULL). */
    void (*progress)(void *ctx, uint64_t lines);
    void *ctx;
    uint64_t progress_every;
};

/** A matcher for one report. ops is copied. TOK_ERR_NOMEM. */
TOK_MUST_CHECK tok_status tok_recon_new(enum tok_recon_gateway gw, const struct tok_recon_ops *ops,
                                        struct tok_recon **out);
void tok_recon_free(struct tok_recon **rc);

/** Feeds report bytes (any chunking). Errors come from ops or TOK_ERR_INPUT for a bad header. */
TOK_MUST_CHECK tok_status tok_recon_feed(struct tok_recon *rc, const void *data, size_t n);

/** Ends the report: matches the last batch, then asks for missing rows. */
TOK_MUST_CHECK tok_status tok_recon_finish(struct tok_recon *rc);

/** The summary so far (complete after tok_recon_finish). Borrowed from rc. */
const struct tok_recon_summary *tok_recon_summary(const struct tok_recon *rc);

/** The header problem when tok_recon_feed returned TOK_ERR_INPUT (static text), or NULL. */
const char *tok_recon_header_error(const struct tok_recon *rc);

/** For ops->lookup: one ledger row (at most 2 x TOK_RECON_BATCH a batch: TOK_ERR_BOUNDS past
 * that; TOK_ERR_NOMEM when the row array cannot grow). */
TOK_MUST_CHECK tok_status tok_recon_add_ledger_row(struct tok_recon *rc,
                                                   const struct tok_recon_ledger_row *row);

/** For ops->missing: a settled ledger row the report lacks. */
TOK_MUST_CHECK tok_status tok_recon_add_missing(struct tok_recon *rc,
                                                const struct tok_recon_ledger_row *row);

/** "stripe" / "adyen" into gw. TOK_ERR_INPUT. */
TOK_MUST_CHECK tok_status tok_recon_gateway_parse(const char *s, enum tok_recon_gateway *gw);

/** Stable names: "matched", "missing_in_ledger", ... */
const char *tok_recon_kind_name(enum tok_recon_kind k);

/* ---- the pure parts, exposed for tests ------------------------------------------ */

/** Maps a header record to columns. TOK_ERR_INPUT with *why when a needed column is absent. */
TOK_MUST_CHECK tok_status tok_recon_map_header(enum tok_recon_gateway gw,
                                               const struct tok_csv_record *hdr,
                                               struct tok_recon_columns *cols, const char **why);

/** Parses one record. TOK_ERR_INPUT with *why (static text) when malformed. */
TOK_MUST_CHECK tok_status tok_recon_parse_line(enum tok_recon_gateway gw,
                                               const struct tok_recon_columns *cols,
                                               const struct tok_csv_record *rec,
                                               struct tok_recon_line *out, const char **why);

/** "19.99" with exponent 2 -> 1999, "-5" -> -500, "1,234.50" refused. TOK_ERR_INPUT. */
TOK_MUST_CHECK tok_status tok_recon_amount(struct tok_slice s, int exponent, int64_t *out);

/* A batch of references as a PostgreSQL array literal: quotes, commas, braces, NUL. */
#define TOK_RECON_REFS_TEXT_MAX (TOK_RECON_BATCH * (TOK_RECON_REF_MAX + 3) + 4)

/**
 * Writes '{"a","b"}' for refs (as the matcher passes them to ops->lookup and ops->missing:
 * no quote, backslash, comma, brace or space, which the parser refuses) into out, a
 * C string of at most TOK_RECON_REFS_TEXT_MAX bytes. TOK_ERR_BOUNDS: more than
 * TOK_RECON_BATCH references or a reference too long.
 */
TOK_MUST_CHECK tok_status tok_recon_refs_text(const char *const *refs, size_t n,
                                              char out[TOK_RECON_REFS_TEXT_MAX]);

/** Compares a line with its ledger row (NULL = none). */
enum tok_recon_kind tok_recon_compare(const struct tok_recon_line *l,
                                      const struct tok_recon_ledger_row *row);

#endif
