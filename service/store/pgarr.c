/*
 * pgarr.c - PostgreSQL binary arrays for statement parameters (format in pgarr.h).
 * Why binary: PostgreSQL spent 7-9% of all CPU of a tokenisation run parsing the JSON
 * document token_store_sql used to take (issue #9); a binary array is read with a length
 * and a byte swap per element.
 */
#include "tokend/store/pgarr.h"

#include <string.h>

#define FLAGS_AT 4 /* offsets inside the header */
#define DIM_AT 12

static void be32(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static void be64(uint8_t out[8], uint64_t v)
{
    be32(out, (uint32_t)(v >> 32));
    be32(out + 4, (uint32_t)v);
}

static bool known_oid(uint32_t oid)
{
    switch (oid) {
    case TOK_PG_OID_BOOL:
    case TOK_PG_OID_BYTEA:
    case TOK_PG_OID_INT2:
    case TOK_PG_OID_INT4:
    case TOK_PG_OID_TEXT:
    case TOK_PG_OID_FLOAT8:
    case TOK_PG_OID_TIMESTAMPTZ:
        return true;
    default:
        return false;
    }
}

tok_status tok_pgarr_begin(struct tok_pgarr *a, struct tok_buf *out, uint32_t elem_oid)
{
    TOK_ENSURE(a != NULL && out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(known_oid(elem_oid), TOK_ERR_INTERNAL);
    uint8_t h[TOK_PGARR_HEADER_LEN];
    be32(h, 1);          /* ndim */
    be32(h + FLAGS_AT, 0); /* has NULL: set by end */
    be32(h + 8, elem_oid);
    be32(h + DIM_AT, 0); /* element count: set by end */
    be32(h + 16, 1);     /* lower bound */
    uint32_t start = out->len;
    TOK_GUARD(tok_buf_write(out, h, sizeof h));
    a->out = out;
    a->start = start;
    a->oid = elem_oid;
    a->count = 0;
    a->has_null = false;
    return TOK_OK;
}

/* The array is of type oid (or any type when oid is 0) and still has its header. */
static tok_status check_array(const struct tok_pgarr *a, uint32_t oid)
{
    TOK_ENSURE(a != NULL && a->out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(oid == 0 || a->oid == oid, TOK_ERR_INTERNAL);
    const struct tok_buf *b = a->out;
    TOK_ENSURE(b->len <= b->cap && a->start <= b->len, TOK_ERR_INTERNAL);
    TOK_ENSURE(b->len - a->start >= TOK_PGARR_HEADER_LEN, TOK_ERR_INTERNAL);
    return TOK_OK;
}

/* Appends one element: its length word (-1 when p is NULL) and n bytes, or nothing. */
static tok_status put_item(struct tok_pgarr *a, uint32_t oid, const void *p, size_t n)
{
    TOK_GUARD(check_array(a, oid));
    TOK_ENSURE(n <= TOK_PGARR_ITEM_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(a->count < TOK_PGARR_ITEMS_MAX, TOK_ERR_BOUNDS);
    struct tok_buf *b = a->out;
    size_t room = b->cap - b->len;
    TOK_ENSURE(n <= room && TOK_PGARR_ITEM_OVERHEAD <= room - n, TOK_ERR_BOUNDS);
    uint8_t len[TOK_PGARR_ITEM_OVERHEAD];
    be32(len, p == NULL ? UINT32_MAX : (uint32_t)n); /* UINT32_MAX is int32 -1 */
    TOK_GUARD(tok_buf_write(b, len, sizeof len));
    if (p != NULL)
        TOK_GUARD(tok_buf_write(b, p, n));
    a->count++;
    return TOK_OK;
}

tok_status tok_pgarr_null(struct tok_pgarr *a)
{
    TOK_GUARD(put_item(a, 0, NULL, 0));
    a->has_null = true;
    return TOK_OK;
}

tok_status tok_pgarr_bool(struct tok_pgarr *a, bool v)
{
    uint8_t b = v ? 1 : 0;
    return put_item(a, TOK_PG_OID_BOOL, &b, 1);
}

tok_status tok_pgarr_int2(struct tok_pgarr *a, int32_t v)
{
    TOK_GUARD(check_array(a, TOK_PG_OID_INT2));
    TOK_ENSURE(v >= INT16_MIN && v <= INT16_MAX, TOK_ERR_INPUT);
    uint16_t u = (uint16_t)v;
    uint8_t out[2] = {(uint8_t)(u >> 8), (uint8_t)u};
    return put_item(a, TOK_PG_OID_INT2, out, sizeof out);
}

tok_status tok_pgarr_int4(struct tok_pgarr *a, int64_t v)
{
    TOK_GUARD(check_array(a, TOK_PG_OID_INT4));
    TOK_ENSURE(v >= INT32_MIN && v <= INT32_MAX, TOK_ERR_INPUT);
    uint8_t out[4];
    be32(out, (uint32_t)v);
    return put_item(a, TOK_PG_OID_INT4, out, sizeof out);
}

tok_status tok_pgarr_float8(struct tok_pgarr *a, double v)
{
    _Static_assert(sizeof(double) == sizeof(uint64_t), "float8 is 8 bytes");
    union {
        double d;
        uint64_t u;
    } bits = {.d = v};
    uint8_t out[8];
    be64(out, bits.u);
    return put_item(a, TOK_PG_OID_FLOAT8, out, sizeof out);
}

tok_status tok_pgarr_timestamptz(struct tok_pgarr *a, int64_t unix_us)
{
    TOK_GUARD(check_array(a, TOK_PG_OID_TIMESTAMPTZ));
    TOK_ENSURE(unix_us >= INT64_MIN + TOK_PG_EPOCH_UNIX_US, TOK_ERR_INPUT);
    uint8_t out[8];
    be64(out, (uint64_t)(unix_us - TOK_PG_EPOCH_UNIX_US));
    return put_item(a, TOK_PG_OID_TIMESTAMPTZ, out, sizeof out);
}

tok_status tok_pgarr_text(struct tok_pgarr *a, struct tok_slice s)
{
    TOK_GUARD(check_array(a, TOK_PG_OID_TEXT));
    TOK_ENSURE(s.ptr != NULL || s.len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(s.len <= TOK_PGARR_ITEM_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(s.len == 0 || memchr(s.ptr, 0, s.len) == NULL, TOK_ERR_INPUT);
    return put_item(a, TOK_PG_OID_TEXT, s.len == 0 ? (const void *)"" : s.ptr, s.len);
}

tok_status tok_pgarr_bytea(struct tok_pgarr *a, struct tok_slice s)
{
    TOK_GUARD(check_array(a, TOK_PG_OID_BYTEA));
    TOK_ENSURE(s.ptr != NULL || s.len == 0, TOK_ERR_INTERNAL);
    return put_item(a, TOK_PG_OID_BYTEA, s.len == 0 ? (const void *)"" : s.ptr, s.len);
}

tok_status tok_pgarr_end(struct tok_pgarr *a, struct tok_slice *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_GUARD(check_array(a, 0));
    uint8_t w[4];
    be32(w, a->has_null ? 1 : 0);
    TOK_GUARD(tok_buf_write_at(a->out, a->start + FLAGS_AT, w, sizeof w));
    be32(w, a->count);
    TOK_GUARD(tok_buf_write_at(a->out, a->start + DIM_AT, w, sizeof w));
    *out = tok_slice_of(a->out->data + a->start, a->out->len - a->start);
    return TOK_OK;
}
