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

/**
 * Appends one field, preceded by a comma unless first; quotes it (doubling
 * quotes) when it holds a comma, quote, CR or LF. TOK_ERR_BOUNDS when it
 * does not fit (b may then hold part of it: callers discard the record).
 */
TOK_MUST_CHECK tok_status tok_csv_put(struct tok_buf *b, struct tok_slice v, bool first);

/** Ends a record with CRLF (RFC 4180). */
TOK_MUST_CHECK tok_status tok_csv_end(struct tok_buf *b);

#endif
