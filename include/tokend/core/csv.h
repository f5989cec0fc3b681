/*
 * csv.h - RFC 4180 CSV: a streaming reader (fed any number of bytes at a
 * time, one byte or a whole chunk, never the whole file) and the writer the
 * exports use. Reader and writer live together so the format is in one place.
 *
 * The reader is lenient the way settlement files need: a UTF-8 BOM is
 * skipped, records end with CRLF, LF or a lone CR, quoted fields may hold
 * commas, quotes ("") and line breaks, blank lines are skipped. A record it
 * cannot read cleanly (a quote inside an unquoted field, text after a
 * closing quote, too many fields, too long, a quote left open at the end) is
 * still handed over, with `error` set, so the caller reports its line number
 * and the reason and goes on with the next one.
 */
#ifndef TOKEND_CSV_H
#define TOKEND_CSV_H

#include "tokend/core/common.h"

#define TOK_CSV_FIELDS_MAX 64
#define TOK_CSV_RECORD_MAX (16u * 1024u) /* bytes of field content in one record */

/** One record, borrowed from the reader until the callback returns. */
struct tok_csv_record {
    struct tok_slice fields[TOK_CSV_FIELDS_MAX];
    size_t nfields;
    uint64_t line;     /* physical line (1-based) the record starts on */
    uint64_t index;    /* 0 for the first record (the header, usually) */
    const char *error; /* NULL, or why the record is malformed (static text) */
};

/** Called for each record; a status other than TOK_OK stops the reader and is returned. */
typedef tok_status (*tok_csv_record_fn)(void *ctx, const struct tok_csv_record *rec);

struct tok_csv;

/** A reader that calls fn(ctx, record) for each record. TOK_ERR_NOMEM. */
TOK_MUST_CHECK tok_status tok_csv_new(tok_csv_record_fn fn, void *ctx, struct tok_csv **out);

/** Frees the reader; *p becomes NULL. NULL does nothing. */
void tok_csv_free(struct tok_csv **p);

/**
 * Feeds n bytes. Calls fn for every record they complete. Returns the first
 * non-OK status fn returned (the reader is then finished), else TOK_OK.
 */
TOK_MUST_CHECK tok_status tok_csv_feed(struct tok_csv *p, const void *data, size_t n);

/** Ends the input: hands over a last record without a line break. As tok_csv_feed. */
TOK_MUST_CHECK tok_status tok_csv_finish(struct tok_csv *p);

/** Records handed over so far (blank lines not counted). */
uint64_t tok_csv_records(const struct tok_csv *p);

/*
 * The writer's two kinds of cell (issue #15, finding 11: CSV injection).
 *
 * Exports are opened in spreadsheets, and Excel, LibreOffice and Google Sheets
 * run a cell that starts with = + - @ (or a tab or CR, which they skip before
 * looking) as a formula: =HYPERLINK(...) exfiltrates the sheet, DDE runs
 * commands. So, as OWASP's CSV-injection guidance says, every TEXT cell whose
 * first byte is one of those six is written with a single quote in front and
 * in double quotes: `=1+1` becomes `"'=1+1"`. The quote makes the spreadsheet
 * read the cell as text; it is part of the data a CSV parser sees.
 *
 * NUMBER cells are the numeric columns tokend itself generates (amounts, line
 * numbers): they stay numbers, so a refund of -300 is `-300`, not `'-300`, and
 * sums still work. A number cell is written as is only when it is a plain
 * integer (^-?[0-9]+$) or empty; anything else given as a number is written
 * as a neutralised text cell, so a caller's mistake cannot open a hole.
 *
 * Every other column (ids, statuses, references, invoice refs, descriptions,
 * reasons, event data) is text. There is no raw "as is" writer.
 */

/**
 * Appends one text field, preceded by a comma unless first. A field that
 * starts with = + - @ TAB or CR gets a leading ' and is quoted; a field that
 * holds a comma, quote, CR, LF, TAB or semicolon (a separator in some
 * locales) is quoted, quotes doubled. TOK_ERR_BOUNDS when it does not fit
 * (b may then hold part of it: callers discard the record).
 */
TOK_MUST_CHECK tok_status tok_csv_put_text(struct tok_buf *b, struct tok_slice v, bool first);

/**
 * Appends one numeric field tokend generated: as is when v is empty or a
 * plain integer (-?[0-9]+), else exactly as tok_csv_put_text would.
 * TOK_ERR_BOUNDS as tok_csv_put_text.
 */
TOK_MUST_CHECK tok_status tok_csv_put_number(struct tok_buf *b, struct tok_slice v, bool first);

/** True when a spreadsheet would read a cell starting with v as a formula (= + - @ TAB CR). */
bool tok_csv_formula_lead(struct tok_slice v);

/** Ends a record with CRLF (RFC 4180). */
TOK_MUST_CHECK tok_status tok_csv_end(struct tok_buf *b);

#endif
