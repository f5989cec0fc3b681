/*
 * csv.c - the streaming RFC 4180 reader and the writer (see csv.h).
 *
 * The reader is a byte-at-a-time state machine: its whole state is in
 * struct tok_csv, so input may be cut anywhere (inside a quoted field, between
 * CR and LF, inside the BOM) and memory stays one record whatever the file size.
 */
#include "tokend/core/csv.h"

#include <stdlib.h>

enum state {
    S_FIELD_START, /* nothing of the current field read yet */
    S_UNQUOTED,
    S_QUOTED,
    S_QUOTE_IN_QUOTED, /* a quote inside a quoted field: "" or the closing one */
    S_AFTER_QUOTED,    /* the closing quote was read; a comma or a line break must follow */
};

static const uint8_t bom[3] = {0xEF, 0xBB, 0xBF};

struct tok_csv {
    tok_csv_record_fn fn;
    void *ctx;
    enum state state;
    unsigned bom_seen; /* 0..3 BOM bytes matched at the very start; 4 once decided */
    bool skip_lf;      /* the previous byte was a CR that ended a record */
    bool done;
    bool quoted_any;   /* the record has a quoted field (so it is not a blank line) */
    const char *error;
    uint64_t line;     /* physical line of the next byte */
    uint64_t rec_line; /* where the current record began */
    uint64_t records;
    uint32_t len;      /* content bytes of the record */
    uint32_t starts[TOK_CSV_FIELDS_MAX];
    uint32_t nfields;  /* fields started */
    struct tok_csv_record rec;
    uint8_t data[TOK_CSV_RECORD_MAX];
};

tok_status tok_csv_new(tok_csv_record_fn fn, void *ctx, struct tok_csv **out)
{
    TOK_ENSURE(fn != NULL && out != NULL, TOK_ERR_INTERNAL);
    struct tok_csv *p = calloc(1, sizeof *p);
    TOK_ENSURE(p != NULL, TOK_ERR_NOMEM);
    p->fn = fn;
    p->ctx = ctx;
    p->line = 1;
    p->rec_line = 1;
    p->nfields = 1;
    *out = p;
    return TOK_OK;
}

void tok_csv_free(struct tok_csv **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    free(*pp);
    *pp = NULL;
}

uint64_t tok_csv_records(const struct tok_csv *p)
{
    return p->records;
}

static void set_error(struct tok_csv *p, const char *why)
{
    if (p->error == NULL)
        p->error = why;
}

static void put_byte(struct tok_csv *p, uint8_t c)
{
    if (p->len >= TOK_CSV_RECORD_MAX) {
        set_error(p, "record too long");
        return;
    }
    p->data[p->len++] = c;
}

static void start_field(struct tok_csv *p)
{
    if (p->nfields >= TOK_CSV_FIELDS_MAX) {
        set_error(p, "too many fields");
        return;
    }
    p->starts[p->nfields++] = p->len;
}

static void reset_record(struct tok_csv *p)
{
    p->len = 0;
    p->nfields = 1;
    p->starts[0] = 0;
    p->error = NULL;
    p->quoted_any = false;
    p->state = S_FIELD_START;
    p->rec_line = p->line;
}

static tok_status emit(struct tok_csv *p)
{
    /* a blank line is no record */
    if (p->nfields == 1 && p->len == 0 && !p->quoted_any && p->error == NULL) {
        reset_record(p);
        return TOK_OK;
    }
    struct tok_csv_record *r = &p->rec;
    r->nfields = p->nfields;
    for (uint32_t i = 0; i < p->nfields; i++) {
        uint32_t end = i + 1 < p->nfields ? p->starts[i + 1] : p->len;
        r->fields[i] = tok_slice_of(p->data + p->starts[i], end - p->starts[i]);
    }
    r->line = p->rec_line;
    r->index = p->records++;
    r->error = p->error;
    reset_record(p);
    tok_status st = p->fn(p->ctx, r);
    if (st != TOK_OK)
        p->done = true;
    return st;
}

/* A line break outside quotes ends the record. */
static tok_status end_of_line(struct tok_csv *p, uint8_t c)
{
    p->line++;
    p->skip_lf = c == '\r';
    return emit(p);
}

static tok_status step(struct tok_csv *p, uint8_t c)
{
    if (p->skip_lf) {
        p->skip_lf = false;
        if (c == '\n')
            return TOK_OK;
    }
    switch (p->state) {
    case S_FIELD_START:
        if (c == '"') {
            p->state = S_QUOTED;
            p->quoted_any = true;
            return TOK_OK;
        }
        p->state = S_UNQUOTED;
        /* FALLTHROUGH */
    case S_UNQUOTED:
        if (c == ',') {
            start_field(p);
            p->state = S_FIELD_START;
            return TOK_OK;
        }
        if (c == '\n' || c == '\r')
            return end_of_line(p, c);
        if (c == '"')
            set_error(p, "quote inside an unquoted field");
        put_byte(p, c);
        return TOK_OK;
    case S_QUOTED:
        if (c == '"') {
            p->state = S_QUOTE_IN_QUOTED;
            return TOK_OK;
        }
        if (c == '\n')
            p->line++;
        put_byte(p, c);
        return TOK_OK;
    case S_QUOTE_IN_QUOTED:
        if (c == '"') {
            put_byte(p, '"');
            p->state = S_QUOTED;
            return TOK_OK;
        }
        p->state = S_AFTER_QUOTED;
        /* FALLTHROUGH */
    case S_AFTER_QUOTED:
        if (c == ',') {
            start_field(p);
            p->state = S_FIELD_START;
            return TOK_OK;
        }
        if (c == '\n' || c == '\r')
            return end_of_line(p, c);
        set_error(p, "text after a closing quote");
        put_byte(p, c);
        return TOK_OK;
    default:
        return TOK_ERR_INTERNAL;
    }
}

tok_status tok_csv_feed(struct tok_csv *p, const void *data, size_t n)
{
    TOK_ENSURE(p != NULL && (data != NULL || n == 0), TOK_ERR_INTERNAL);
    TOK_ENSURE(!p->done, TOK_ERR_INTERNAL);
    const uint8_t *b = data;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (p->bom_seen < 3) {
            if (c == bom[p->bom_seen]) {
                p->bom_seen++;
                continue;
            }
            /* not a BOM after all: replay what looked like one */
            unsigned k = p->bom_seen;
            p->bom_seen = 4;
            for (unsigned j = 0; j < k; j++)
                TOK_GUARD(step(p, bom[j]));
        }
        p->bom_seen = 4;
        TOK_GUARD(step(p, c));
    }
    return TOK_OK;
}

tok_status tok_csv_finish(struct tok_csv *p)
{
    TOK_ENSURE(p != NULL, TOK_ERR_INTERNAL);
    if (p->done)
        return TOK_OK;
    if (p->bom_seen > 0 && p->bom_seen < 3) {
        unsigned k = p->bom_seen;
        p->bom_seen = 4;
        for (unsigned j = 0; j < k; j++)
            TOK_GUARD(step(p, bom[j]));
    }
    if (p->state == S_QUOTED)
        set_error(p, "quoted field not closed at the end of the file");
    tok_status st = TOK_OK;
    if (p->len > 0 || p->nfields > 1 || p->quoted_any || p->error != NULL)
        st = emit(p);
    p->done = true;
    return st;
}

/* ---- the writer ------------------------------------------------------------- */

bool tok_csv_formula_lead(struct tok_slice v)
{
    if (v.len == 0)
        return false;
    uint8_t c = v.ptr[0];
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

/* Quoted: "prefix" then v with each quote doubled, then the closing quote. */
static tok_status put_quoted(struct tok_buf *b, const char *prefix, struct tok_slice v)
{
    TOK_GUARD(tok_buf_putc(b, '"'));
    TOK_GUARD(tok_buf_puts(b, prefix));
    size_t from = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] != '"')
            continue;
        TOK_GUARD(tok_buf_write(b, v.ptr + from, i + 1 - from)); /* the quote once ... */
        TOK_GUARD(tok_buf_putc(b, '"'));                        /* ... and again */
        from = i + 1;
    }
    TOK_GUARD(tok_buf_write(b, v.ptr + from, v.len - from));
    return tok_buf_putc(b, '"');
}

tok_status tok_csv_put_text(struct tok_buf *b, struct tok_slice v, bool first)
{
    TOK_ENSURE(b != NULL && (v.ptr != NULL || v.len == 0), TOK_ERR_INTERNAL);
    if (!first)
        TOK_GUARD(tok_buf_putc(b, ','));
    /* OWASP: a ' in front makes the spreadsheet take the cell as text; quoted, so no
     * importer strips or splits it */
    if (tok_csv_formula_lead(v))
        return put_quoted(b, "'", v);
    bool quote = false;
    for (size_t i = 0; i < v.len && !quote; i++) {
        uint8_t c = v.ptr[i];
        quote = c == ',' || c == '"' || c == '\r' || c == '\n' || c == '\t' || c == ';';
    }
    if (!quote)
        return tok_buf_write(b, v.ptr, v.len);
    return put_quoted(b, "", v);
}

static bool plain_integer(struct tok_slice v)
{
    size_t i = v.len > 0 && v.ptr[0] == '-' ? 1 : 0;
    if (i == v.len)
        return false;
    for (; i < v.len; i++)
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return false;
    return true;
}

tok_status tok_csv_put_number(struct tok_buf *b, struct tok_slice v, bool first)
{
    TOK_ENSURE(b != NULL && (v.ptr != NULL || v.len == 0), TOK_ERR_INTERNAL);
    if (v.len > 0 && !plain_integer(v))
        return tok_csv_put_text(b, v, first);
    if (!first)
        TOK_GUARD(tok_buf_putc(b, ','));
    return tok_buf_write(b, v.ptr, v.len);
}

tok_status tok_csv_end(struct tok_buf *b)
{
    return tok_buf_write(b, "\r\n", 2);
}
