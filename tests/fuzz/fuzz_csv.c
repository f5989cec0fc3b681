/*
 * fuzz_csv.c - the streaming CSV reader and the writer (service/core/csv.c): settlement
 * reports are uploaded by clients and read through it.
 *
 * Properties:
 *   - chunking does not matter: the input fed whole and fed in pieces whose sizes (1..64
 *     bytes) come from the input itself gives the same records (fields, line, index, error);
 *   - every record keeps to the limits: at most TOK_CSV_FIELDS_MAX fields and
 *     TOK_CSV_RECORD_MAX bytes of content, index counts up from 0, lines never go back;
 *   - round trip: the records read cleanly, written back with tok_csv_put_text/tok_csv_end
 *     and read again, are the same fields, except that a field a spreadsheet would run as a
 *     formula (tok_csv_formula_lead) comes back with the ' the writer puts in front.
 */
#include "fuzz.h"

#include "tokend/core/csv.h"

#include <sodium.h>

#define WRITE_MAX (2u * 1024u * 1024u)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

struct sink {
    crypto_generichash_state h; /* every record as read */
    uint64_t records, last_line;
    struct tok_buf *out;        /* clean records written back (NULL: do not write) */
    bool write_ok;
    bool clean_only_hash;       /* hash only the fields of clean records */
    bool as_written;            /* hash formula-leading fields with the writer's ' in front */
};

static void hash_u64(crypto_generichash_state *h, uint64_t v)
{
    crypto_generichash_update(h, (const uint8_t *)&v, sizeof v);
}

static tok_status on_record(void *ctx, const struct tok_csv_record *rec)
{
    struct sink *s = ctx;
    FUZZ_ASSERT(rec->nfields >= 1 && rec->nfields <= TOK_CSV_FIELDS_MAX);
    FUZZ_ASSERT(rec->index == s->records);
    FUZZ_ASSERT(rec->line >= 1 && rec->line >= s->last_line);
    s->records++;
    s->last_line = rec->line;
    size_t total = 0;
    for (size_t i = 0; i < rec->nfields; i++)
        total += rec->fields[i].len;
    FUZZ_ASSERT(total <= TOK_CSV_RECORD_MAX);

    if (s->clean_only_hash && rec->error != NULL)
        return TOK_OK;
    hash_u64(&s->h, rec->nfields);
    if (!s->clean_only_hash) {
        hash_u64(&s->h, rec->line);
        hash_u64(&s->h, rec->index);
        const char *e = rec->error != NULL ? rec->error : "";
        crypto_generichash_update(&s->h, (const uint8_t *)e, strlen(e) + 1);
    }
    for (size_t i = 0; i < rec->nfields; i++) {
        bool quote = s->as_written && tok_csv_formula_lead(rec->fields[i]);
        hash_u64(&s->h, rec->fields[i].len + quote);
        if (quote)
            crypto_generichash_update(&s->h, (const uint8_t *)"'", 1);
        if (rec->fields[i].len > 0)
            crypto_generichash_update(&s->h, rec->fields[i].ptr, rec->fields[i].len);
    }
    if (s->out != NULL && rec->error == NULL && s->write_ok) {
        for (size_t i = 0; i < rec->nfields && s->write_ok; i++)
            s->write_ok = tok_csv_put_text(s->out, rec->fields[i], i == 0) == TOK_OK;
        s->write_ok = s->write_ok && tok_csv_end(s->out) == TOK_OK;
    }
    return TOK_OK;
}

static void read_all(const uint8_t *data, size_t size, const uint8_t *chunks, size_t nchunks,
                     struct sink *s, uint8_t digest[32])
{
    struct tok_csv *p = NULL;
    FUZZ_ASSERT(tok_csv_new(on_record, s, &p) == TOK_OK);
    crypto_generichash_init(&s->h, NULL, 0, 32);
    size_t off = 0, k = 0;
    while (off < size) {
        size_t n = nchunks == 0 ? size : 1 + chunks[k++ % nchunks] % 64;
        if (n > size - off)
            n = size - off;
        FUZZ_ASSERT(tok_csv_feed(p, data + off, n) == TOK_OK);
        off += n;
    }
    FUZZ_ASSERT(tok_csv_finish(p) == TOK_OK);
    FUZZ_ASSERT(tok_csv_records(p) == s->records);
    /* after the end, more input or another finish hands over nothing */
    FUZZ_ASSERT(tok_csv_finish(p) == TOK_OK && tok_csv_records(p) == s->records);
    tok_csv_free(&p);
    FUZZ_ASSERT(p == NULL);
    crypto_generichash_final(&s->h, digest, 32);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t wmem[WRITE_MAX];
    struct tok_buf w;
    tok_buf_init(&w, wmem, sizeof wmem);

    uint8_t whole[32], pieces[32], clean1[32], clean2[32];
    struct sink a = {.out = &w, .write_ok = true};
    read_all(data, size, NULL, 0, &a, whole);
    struct sink b = {0};
    read_all(data, size, data, size, &b, pieces);
    FUZZ_ASSERT(a.records == b.records);
    FUZZ_ASSERT(memcmp(whole, pieces, 32) == 0);

    /* the clean records, written and read back. A record of one empty field is written as
     * an empty line, which the reader skips as blank; a first field that starts with a BOM
     * loses it when it opens the file: leave those inputs out. */
    if (!a.write_ok)
        return 0;
    struct sink c = {.clean_only_hash = true, .as_written = true};
    struct sink d = {.clean_only_hash = true};
    read_all(data, size, NULL, 0, &c, clean1);
    struct tok_slice out = tok_buf_slice(&w);
    bool bom = out.len >= 3 && memcmp(out.ptr, "\xef\xbb\xbf", 3) == 0;
    bool blank = false;
    for (size_t i = 1; i < out.len && !blank; i++)
        blank = out.ptr[i] == '\n' && out.ptr[i - 1] == '\r' && (i < 2 || out.ptr[i - 2] == '\n');
    if (bom || blank)
        return 0;
    read_all(out.ptr, out.len, NULL, 0, &d, clean2);
    FUZZ_ASSERT(memcmp(clean1, clean2, 32) == 0);
    return 0;
}
