/*
 * gwsim_record.h - gwsim's exchange recorder (`--record DIR`), for the contract tests
 * (tests/contracts, t_45_contracts.sh): every Stripe and Adyen request gwsim answers is written
 * with its answer to DIR as one JSON file, which the contract scripts check against the
 * gateways' published documents. Included once, by gwsim.c: a tool is one translation unit
 * (the Makefile builds each .c file of tests/tools into its own binary), and the recorder is kept
 * apart from the simulator so the two can change without touching each other.
 *
 * No card data reaches the disk. Request bodies carry test card numbers and CVCs (the
 * adapters tokenise raw cards), and the rule is the same for test tooling as for tokend: no
 * PAN or CVC ever on disk (SECURITY.md). So, before anything is written:
 *   - the values of card-number fields (JSON "number", "encryptedCardNumber"; form keys ending
 *     in "[number]") keep their last 4 characters, every other character becomes '*';
 *   - the values of CVC fields ("cvc", "cvv", "encryptedSecurityCode"; "[cvc]") become all '*';
 *   - in every other string value, any run of 12 to 19 digits that passes the Luhn check (a
 *     card number sent where it does not belong) is masked the same way.
 * The query string is read as a form and masked the same way.
 * The masked values keep their type and length, so they stay valid against the documents'
 * schemas (Adyen's CardDetails.number and .cvc are plain strings). Answers get the last rule
 * too: gwsim never puts the card it was given in an answer, but it echoes what a client put
 * in free text (Stripe metadata, descriptions), which may be a card number.
 *
 * A record: {"seq", "api" ("stripe"|"adyen"), "route", "method", "path", "query",
 * "request_content_type", "idempotency_key", "stripe_version", "request_body" (text),
 * "status", "replayed", "response_content_type", "response_body" (text)}.
 */
#ifndef GWSIM_RECORD_H
#define GWSIM_RECORD_H

#include "tokend/core/common.h"
#include "tokend/core/json.h"
#include "tokend/core/log.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define GW_REC_MAX (1024u * 1024u) /* one record; larger exchanges are not recorded */
#define GW_REC_KEY_MAX 128

struct gw_recorder {
    const char *dir;       /* NULL: not recording */
    uint64_t seq;
    struct tok_buf secret; /* decoded request values (may hold card data): sodium_malloc'd */
    struct tok_buf rec;    /* the record being written (redacted) */
    struct tok_buf body;   /* the redacted request body */
    struct tok_buf query;  /* the redacted query string */
};

/* What a field holds, by its name. */
enum gw_rec_field { REC_PLAIN, REC_NUMBER, REC_CVC };

static enum gw_rec_field rec_field_json(struct tok_slice key)
{
    if (tok_slice_eq(key, "number") || tok_slice_eq(key, "encryptedCardNumber"))
        return REC_NUMBER;
    if (tok_slice_eq(key, "cvc") || tok_slice_eq(key, "cvv") ||
        tok_slice_eq(key, "encryptedSecurityCode"))
        return REC_CVC;
    return REC_PLAIN;
}

static bool rec_ends_with(struct tok_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len >= n && memcmp(s.ptr + s.len - n, lit, n) == 0;
}

static enum gw_rec_field rec_field_form(struct tok_slice key)
{
    if (rec_ends_with(key, "[number]"))
        return REC_NUMBER;
    if (rec_ends_with(key, "[cvc]"))
        return REC_CVC;
    return REC_PLAIN;
}

static bool rec_luhn(const uint8_t *d, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)(d[n - 1 - i] - '0');
        if (i % 2 == 1)
            v = v * 2 > 9 ? v * 2 - 9 : v * 2;
        sum += v;
    }
    return sum % 10 == 0;
}

/* Masks v in place (v is the recorder's own copy): see the header comment. */
static void rec_mask(uint8_t *v, size_t len, enum gw_rec_field f)
{
    if (f == REC_CVC || (f == REC_NUMBER && len <= 4)) {
        memset(v, '*', len);
        return;
    }
    if (f == REC_NUMBER) {
        memset(v, '*', len - 4);
        return;
    }
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && v[j] >= '0' && v[j] <= '9')
            j++;
        if (j - i >= 12 && j - i <= 19 && rec_luhn(v + i, j - i))
            memset(v + i, '*', j - i - 4);
        i = j > i ? j : i + 1;
    }
}

/* A copy of s in the secret arena, masked; the slice points into the arena. */
static tok_status rec_masked(struct gw_recorder *r, struct tok_slice s, enum gw_rec_field f,
                             struct tok_slice *out)
{
    uint32_t start = r->secret.len;
    TOK_GUARD(tok_buf_write(&r->secret, s.ptr, s.len));
    rec_mask(r->secret.data + start, s.len, f);
    *out = tok_slice_of(r->secret.data + start, s.len);
    return TOK_OK;
}

static tok_status rec_json_value(struct gw_recorder *r, struct tok_json_writer *w,
                                 const struct tok_json_node *n, enum gw_rec_field f)
{
    struct tok_slice s;
    int64_t i;
    bool b;
    switch (tok_json_type(n)) {
    case TOK_JSON_OBJECT:
        tok_jw_obj_begin(w);
        for (size_t k = 0; k < tok_json_object_size(n); k++) {
            struct tok_slice key;
            const struct tok_json_node *v = NULL;
            TOK_GUARD(tok_json_object_at(n, k, &key, &v));
            char kbuf[GW_REC_KEY_MAX + 1];
            TOK_ENSURE(key.len <= GW_REC_KEY_MAX && memchr(key.ptr, '\0', key.len) == NULL,
                       TOK_ERR_INPUT);
            tok_copy(kbuf, key.ptr, key.len);
            kbuf[key.len] = '\0';
            tok_jw_key(w, kbuf);
            TOK_GUARD(rec_json_value(r, w, v, rec_field_json(key)));
        }
        tok_jw_obj_end(w);
        return w->st;
    case TOK_JSON_ARRAY:
        tok_jw_arr_begin(w);
        for (size_t k = 0; k < tok_json_array_size(n); k++) {
            const struct tok_json_node *v = NULL;
            TOK_GUARD(tok_json_array_at(n, k, &v));
            TOK_GUARD(rec_json_value(r, w, v, f));
        }
        tok_jw_arr_end(w);
        return w->st;
    case TOK_JSON_STRING:
        TOK_GUARD(tok_json_string(n, &s));
        TOK_GUARD(rec_masked(r, s, f, &s));
        tok_jw_strn(w, s);
        return w->st;
    case TOK_JSON_NUMBER:
        if (f != REC_PLAIN) { /* a card number sent as a JSON number */
            tok_jw_str(w, "****");
            return w->st;
        }
        if (tok_json_int64(n, &i) == TOK_OK) {
            tok_jw_int(w, i);
            return w->st;
        }
        TOK_GUARD(tok_json_number_text(n, &s));
        tok_jw_raw(w, s);
        return w->st;
    case TOK_JSON_BOOL:
        TOK_GUARD(tok_json_bool(n, &b));
        tok_jw_bool(w, b);
        return w->st;
    case TOK_JSON_NULL:
        tok_jw_null(w);
        return w->st;
    default:
        return TOK_ERR_INPUT;
    }
}

static int rec_hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded, decoded into the secret arena */
static tok_status rec_form_decode(struct gw_recorder *r, struct tok_slice s,
                                  struct tok_slice *out)
{
    uint32_t start = r->secret.len;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && s.len - i >= 3 && rec_hex(s.ptr[i + 1]) >= 0 &&
                   rec_hex(s.ptr[i + 2]) >= 0) {
            c = (uint8_t)(rec_hex(s.ptr[i + 1]) * 16 + rec_hex(s.ptr[i + 2]));
            i += 2;
        }
        TOK_GUARD(tok_buf_putc(&r->secret, c));
    }
    *out = tok_slice_of(r->secret.data + start, r->secret.len - start);
    return TOK_OK;
}

static tok_status rec_form_encode(struct tok_buf *b, struct tok_slice v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < v.len; i++) {
        uint8_t c = v.ptr[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '*') {
            TOK_GUARD(tok_buf_putc(b, c));
            continue;
        }
        uint8_t esc[3] = {'%', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
        TOK_GUARD(tok_buf_write(b, esc, 3));
    }
    return TOK_OK;
}

/* Form bodies and query strings, into out: keys re-encoded (decoded first, so %5B and [ read
 * alike); a value as sent, or re-encoded when masking changed it. */
static tok_status rec_form(struct gw_recorder *r, struct tok_slice body, struct tok_buf *out)
{
    size_t i = 0;
    while (i < body.len) {
        size_t j = i, eq;
        while (j < body.len && body.ptr[j] != '&')
            j++;
        for (eq = i; eq < j && body.ptr[eq] != '='; eq++)
            ;
        struct tok_slice rk = tok_slice_of(body.ptr + i, eq - i);
        struct tok_slice rv = eq < j ? tok_slice_of(body.ptr + eq + 1, j - eq - 1)
                                     : tok_slice_of(body.ptr + j, 0);
        struct tok_slice k, v, m;
        TOK_GUARD(rec_form_decode(r, rk, &k));
        TOK_GUARD(rec_form_decode(r, rv, &v));
        TOK_GUARD(rec_masked(r, v, rec_field_form(k), &m));
        if (out->len > 0)
            TOK_GUARD(tok_buf_putc(out, '&'));
        TOK_GUARD(rec_form_encode(out, k));
        if (eq < j)
            TOK_GUARD(tok_buf_putc(out, '='));
        if (sodium_memcmp(m.ptr, v.ptr, v.len) == 0)
            TOK_GUARD(tok_buf_write(out, rv.ptr, rv.len));
        else
            TOK_GUARD(rec_form_encode(out, m));
        i = j + 1;
    }
    return TOK_OK;
}

/* The redacted request body into r->body. */
static tok_status rec_request_body(struct gw_recorder *r, struct tok_slice ctype,
                                   struct tok_slice body)
{
    if (body.len == 0)
        return TOK_OK;
    if (ctype.len >= 16 && memcmp(ctype.ptr, "application/json", 16) == 0) {
        struct tok_json_doc *doc = NULL;
        struct tok_json_error err;
        struct tok_json_limits lim = tok_json_limits_default();
        if (tok_json_parse(body, &lim, &doc, &err) == TOK_OK) {
            struct tok_json_writer w;
            tok_jw_init(&w, &r->body);
            tok_status st = rec_json_value(r, &w, tok_json_root(doc), REC_PLAIN);
            tok_json_doc_free(&doc);
            if (st == TOK_OK && tok_jw_finish(&w) == TOK_OK)
                return TOK_OK;
            tok_buf_reset(&r->body);
        }
        /* not JSON after all: recorded as text, with card-like digit runs masked */
        struct tok_slice m;
        TOK_GUARD(rec_masked(r, body, REC_PLAIN, &m));
        return tok_buf_write(&r->body, m.ptr, m.len);
    }
    return rec_form(r, body, &r->body);
}

/* One exchange; each part borrowed. */
struct gw_rec_exchange {
    const char *api, *route;
    struct tok_slice method, path, query, req_ctype, idem_key, stripe_version, req_body;
    int status;
    bool replayed;
    const char *resp_ctype;
    struct tok_slice resp_body;
};

static tok_status rec_write_file(struct gw_recorder *r, const struct gw_rec_exchange *x)
{
    char name[4096];
    int n = snprintf(name, sizeof name, "%s/%06llu-%s.json", r->dir,
                     (unsigned long long)r->seq, x->api);
    TOK_ENSURE(n > 0 && (size_t)n < sizeof name, TOK_ERR_BOUNDS);
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    TOK_ENSURE(fd >= 0, TOK_ERR_INTERNAL);
    size_t off = 0;
    while (off < r->rec.len) {
        ssize_t w = write(fd, r->rec.data + off, r->rec.len - off);
        if (w <= 0) {
            close(fd);
            return TOK_ERR_INTERNAL;
        }
        off += (size_t)w;
    }
    return close(fd) == 0 ? TOK_OK : TOK_ERR_INTERNAL;
}

static tok_status rec_exchange(struct gw_recorder *r, const struct gw_rec_exchange *x)
{
    TOK_GUARD(rec_request_body(r, x->req_ctype, x->req_body));
    TOK_GUARD(rec_form(r, x->query, &r->query));
    struct tok_slice resp;
    TOK_GUARD(rec_masked(r, x->resp_body, REC_PLAIN, &resp));
    struct tok_json_writer w;
    tok_jw_init(&w, &r->rec);
    tok_jw_obj_begin(&w);
    tok_jw_kint(&w, "seq", (int64_t)r->seq);
    tok_jw_kstr(&w, "api", x->api);
    tok_jw_kstr(&w, "route", x->route);
    tok_jw_key(&w, "method");
    tok_jw_strn(&w, x->method);
    tok_jw_key(&w, "path");
    tok_jw_strn(&w, x->path);
    tok_jw_key(&w, "query");
    tok_jw_strn(&w, tok_buf_slice(&r->query));
    tok_jw_key(&w, "request_content_type");
    tok_jw_strn(&w, x->req_ctype);
    tok_jw_key(&w, "idempotency_key");
    tok_jw_strn(&w, x->idem_key);
    tok_jw_key(&w, "stripe_version");
    tok_jw_strn(&w, x->stripe_version);
    tok_jw_key(&w, "request_body");
    tok_jw_strn(&w, tok_buf_slice(&r->body));
    tok_jw_kint(&w, "status", x->status);
    tok_jw_kbool(&w, "replayed", x->replayed);
    tok_jw_kstr(&w, "response_content_type", x->resp_ctype);
    tok_jw_key(&w, "response_body");
    tok_jw_strn(&w, resp);
    tok_jw_obj_end(&w);
    TOK_GUARD(tok_jw_finish(&w));
    TOK_GUARD(tok_buf_putc(&r->rec, '\n'));
    return rec_write_file(r, x);
}

/** Records one exchange (a no-op unless recording); failures are logged, never fatal. */
static void gw_record(struct gw_recorder *r, const struct gw_rec_exchange *x)
{
    if (r->dir == NULL)
        return;
    r->seq++;
    tok_status st = rec_exchange(r, x);
    if (st != TOK_OK)
        tok_log_err("%s: exchange %llu (%s) not recorded (status %d)", __func__,
                    (unsigned long long)r->seq, x->route, (int)st);
    tok_buf_reset(&r->secret);
    tok_buf_reset(&r->body);
    tok_buf_reset(&r->query);
    tok_buf_reset(&r->rec);
}

/** Starts recording into dir (an existing directory, borrowed for the process's life). */
static tok_status gw_record_init(struct gw_recorder *r, const char *dir)
{
    TOK_GUARD(tok_buf_alloc(&r->secret, 4u * GW_REC_MAX, true));
    TOK_GUARD(tok_buf_alloc(&r->body, GW_REC_MAX, false));
    TOK_GUARD(tok_buf_alloc(&r->query, GW_REC_MAX / 4, false));
    TOK_GUARD(tok_buf_alloc(&r->rec, 2u * GW_REC_MAX, false));
    r->dir = dir;
    return TOK_OK;
}

static void gw_record_wipe(struct gw_recorder *r)
{
    if (r->dir == NULL)
        return;
    tok_buf_wipe(&r->secret);
    tok_buf_wipe(&r->body);
    tok_buf_wipe(&r->query);
    tok_buf_wipe(&r->rec);
    r->dir = NULL;
}

#endif
