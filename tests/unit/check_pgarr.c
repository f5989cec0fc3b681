#include "tokend/store/pgarr.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- a reader for what the encoder wrote, the way array_recv reads it ---------------- */

struct dec {
    struct tok_buf view;
    struct tok_cursor c;
};

static void dec_init(struct dec *d, struct tok_slice arr)
{
    tok_buf_init(&d->view, (void *)(uintptr_t)arr.ptr, (uint32_t)arr.len);
    d->view.len = (uint32_t)arr.len;
    tok_cursor_init(&d->c, &d->view);
}

static uint32_t dec_u32(struct dec *d)
{
    uint8_t b[4];
    ck_assert_int_eq(tok_cursor_read(&d->c, b, 4), TOK_OK);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint64_t dec_u64(struct dec *d)
{
    uint64_t hi = dec_u32(d);
    return hi << 32 | dec_u32(d);
}

/* Checks the header; returns the element count. */
static uint32_t dec_header(struct dec *d, uint32_t oid, uint32_t has_null)
{
    ck_assert_uint_eq(dec_u32(d), 1); /* ndim */
    ck_assert_uint_eq(dec_u32(d), has_null);
    ck_assert_uint_eq(dec_u32(d), oid);
    uint32_t n = dec_u32(d);
    ck_assert_uint_eq(dec_u32(d), 1); /* lower bound */
    return n;
}

/* Reads one element's length word and its bytes into out (cap bytes); -1 for NULL. */
static int32_t dec_item(struct dec *d, uint8_t *out, size_t cap)
{
    int32_t len = (int32_t)dec_u32(d);
    if (len == -1)
        return -1;
    ck_assert_int_ge(len, 0);
    ck_assert_uint_le((size_t)len, cap);
    ck_assert_int_eq(tok_cursor_read(&d->c, out, (size_t)len), TOK_OK);
    return len;
}

static void dec_done(struct dec *d)
{
    ck_assert_uint_eq(tok_cursor_remaining(&d->c), 0);
}

static uint8_t mem[4096];
static struct tok_buf buf;

static void setup(void)
{
    tok_buf_init(&buf, mem, sizeof mem);
}

/* ---- core --------------------------------------------------------------------------------- */

START_TEST(test_pgarr_text_exact_bytes)
{
    struct tok_pgarr a;
    struct tok_slice s;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TEXT), TOK_OK);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("ab")), TOK_OK);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("")), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    static const uint8_t want[] = {0, 0, 0, 1, /* ndim */
                                   0, 0, 0, 0, /* no NULL */
                                   0, 0, 0, 25, /* text */
                                   0, 0, 0, 2,  /* two elements */
                                   0, 0, 0, 1,  /* lower bound */
                                   0, 0, 0, 2, 'a', 'b', 0, 0, 0, 0};
    ck_assert_uint_eq(s.len, sizeof want);
    ck_assert_mem_eq(s.ptr, want, sizeof want);
    ck_assert_ptr_eq(s.ptr, mem);
}
END_TEST

START_TEST(test_pgarr_bool)
{
    struct tok_pgarr a;
    struct tok_slice s;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_BOOL), TOK_OK);
    ck_assert_int_eq(tok_pgarr_bool(&a, true), TOK_OK);
    ck_assert_int_eq(tok_pgarr_bool(&a, false), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    struct dec d;
    uint8_t v[1];
    dec_init(&d, s);
    ck_assert_uint_eq(dec_header(&d, 16, 0), 2);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 1);
    ck_assert_uint_eq(v[0], 1);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 1);
    ck_assert_uint_eq(v[0], 0);
    dec_done(&d);
}
END_TEST

START_TEST(test_pgarr_int2_int4)
{
    struct tok_pgarr a, b;
    struct tok_slice s2, s4;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_INT2), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int2(&a, 12), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int2(&a, -2), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int2(&a, 2031), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, &s2), TOK_OK);
    /* a second array right behind the first, in the same buffer */
    ck_assert_int_eq(tok_pgarr_begin(&b, &buf, TOK_PG_OID_INT4), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int4(&b, 1), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int4(&b, -1), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int4(&b, 0x12345678), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&b, &s4), TOK_OK);
    ck_assert_ptr_eq(s4.ptr, s2.ptr + s2.len);
    ck_assert_uint_eq(buf.len, s2.len + s4.len);

    struct dec d;
    uint8_t v[4];
    dec_init(&d, s2);
    ck_assert_uint_eq(dec_header(&d, 21, 0), 3);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 2);
    ck_assert_mem_eq(v, "\x00\x0c", 2);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 2);
    ck_assert_mem_eq(v, "\xff\xfe", 2);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 2);
    ck_assert_mem_eq(v, "\x07\xef", 2);
    dec_done(&d);

    dec_init(&d, s4);
    ck_assert_uint_eq(dec_header(&d, 23, 0), 3);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 4);
    ck_assert_mem_eq(v, "\x00\x00\x00\x01", 4);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 4);
    ck_assert_mem_eq(v, "\xff\xff\xff\xff", 4);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 4);
    ck_assert_mem_eq(v, "\x12\x34\x56\x78", 4);
    dec_done(&d);
}
END_TEST

START_TEST(test_pgarr_float8)
{
    struct tok_pgarr a;
    struct tok_slice s;
    static const double in[] = {1.5, -0.0, 0.1, INFINITY};
    static const uint64_t bits[] = {0x3ff8000000000000ULL, 0x8000000000000000ULL,
                                    0x3fb999999999999aULL, 0x7ff0000000000000ULL};
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_FLOAT8), TOK_OK);
    for (size_t i = 0; i < TOK_ARRAY_LEN(in); i++)
        ck_assert_int_eq(tok_pgarr_float8(&a, in[i]), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    struct dec d;
    dec_init(&d, s);
    ck_assert_uint_eq(dec_header(&d, 701, 0), TOK_ARRAY_LEN(in));
    for (size_t i = 0; i < TOK_ARRAY_LEN(in); i++) {
        ck_assert_uint_eq(dec_u32(&d), 8);
        ck_assert_uint_eq(dec_u64(&d), bits[i]);
    }
    dec_done(&d);
}
END_TEST

START_TEST(test_pgarr_timestamptz)
{
    struct tok_pgarr a;
    struct tok_slice s;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TIMESTAMPTZ), TOK_OK);
    ck_assert_int_eq(tok_pgarr_timestamptz(&a, TOK_PG_EPOCH_UNIX_US), TOK_OK); /* 2000-01-01 */
    ck_assert_int_eq(tok_pgarr_timestamptz(&a, 0), TOK_OK);                    /* 1970-01-01 */
    ck_assert_int_eq(tok_pgarr_timestamptz(&a, 1700000000LL * 1000000), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    struct dec d;
    uint8_t v[8];
    dec_init(&d, s);
    ck_assert_uint_eq(dec_header(&d, 1184, 0), 3);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 8);
    ck_assert_mem_eq(v, "\0\0\0\0\0\0\0\0", 8);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 8);
    ck_assert_mem_eq(v, "\xff\xfc\xa2\xfe\xc4\xc8\x20\x00", 8); /* -946684800 s */
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 8);
    ck_assert_mem_eq(v, "\x00\x02\xad\x22\xdc\xe6\x60\x00", 8);
    dec_done(&d);
}
END_TEST

START_TEST(test_pgarr_bytea_binary_safe)
{
    struct tok_pgarr a;
    struct tok_slice s;
    static const uint8_t raw[] = {0x00, 0xff, 0x00, 0x5c, 0x27}; /* NUL, 0xff, backslash, quote */
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_BYTEA), TOK_OK);
    ck_assert_int_eq(tok_pgarr_bytea(&a, tok_slice_of(raw, sizeof raw)), TOK_OK);
    ck_assert_int_eq(tok_pgarr_bytea(&a, tok_slice_of(NULL, 0)), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    struct dec d;
    uint8_t v[8];
    dec_init(&d, s);
    ck_assert_uint_eq(dec_header(&d, 17, 0), 2);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), (int)sizeof raw);
    ck_assert_mem_eq(v, raw, sizeof raw);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 0); /* empty, not NULL */
    dec_done(&d);
}
END_TEST

START_TEST(test_pgarr_nulls_set_the_flag)
{
    static const uint32_t oids[] = {TOK_PG_OID_BOOL,   TOK_PG_OID_BYTEA,  TOK_PG_OID_INT2,
                                    TOK_PG_OID_INT4,   TOK_PG_OID_TEXT,   TOK_PG_OID_FLOAT8,
                                    TOK_PG_OID_TIMESTAMPTZ};
    for (size_t i = 0; i < TOK_ARRAY_LEN(oids); i++) {
        struct tok_pgarr a;
        struct tok_slice s;
        tok_buf_reset(&buf);
        ck_assert_int_eq(tok_pgarr_begin(&a, &buf, oids[i]), TOK_OK);
        ck_assert_int_eq(tok_pgarr_null(&a), TOK_OK);
        ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
        struct dec d;
        uint8_t v[1];
        dec_init(&d, s);
        ck_assert_uint_eq(dec_header(&d, oids[i], 1), 1);
        ck_assert_int_eq(dec_item(&d, v, sizeof v), -1); /* and no bytes after it */
        dec_done(&d);
    }
    /* a NULL between values */
    struct tok_pgarr a;
    struct tok_slice s;
    tok_buf_reset(&buf);
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TEXT), TOK_OK);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("x")), TOK_OK);
    ck_assert_int_eq(tok_pgarr_null(&a), TOK_OK);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("yz")), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    struct dec d;
    uint8_t v[2];
    dec_init(&d, s);
    ck_assert_uint_eq(dec_header(&d, 25, 1), 3);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 1);
    ck_assert_mem_eq(v, "x", 1);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), -1);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 2);
    ck_assert_mem_eq(v, "yz", 2);
    dec_done(&d);
}
END_TEST

/* ---- limits ------------------------------------------------------------------------------- */

START_TEST(test_pgarr_empty_is_header_only)
{
    struct tok_pgarr a;
    struct tok_slice s;
    uint8_t m[TOK_PGARR_HEADER_LEN];
    struct tok_buf b;
    tok_buf_init(&b, m, sizeof m); /* exactly the header */
    ck_assert_int_eq(tok_pgarr_begin(&a, &b, TOK_PG_OID_INT4), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    static const uint8_t want[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 0, 0, 0, 0, 1};
    ck_assert_uint_eq(s.len, sizeof want);
    ck_assert_mem_eq(s.ptr, want, sizeof want);
    /* no room for even a NULL */
    ck_assert_int_eq(tok_pgarr_null(&a), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, TOK_PGARR_HEADER_LEN);
}
END_TEST

START_TEST(test_pgarr_header_does_not_fit)
{
    struct tok_pgarr a;
    uint8_t m[TOK_PGARR_HEADER_LEN - 1];
    struct tok_buf b;
    tok_buf_init(&b, m, sizeof m);
    ck_assert_int_eq(tok_pgarr_begin(&a, &b, TOK_PG_OID_TEXT), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_pgarr_overflow_writes_nothing)
{
    /* room for the header, one 3-byte text element, and 6 more bytes */
    uint8_t m[TOK_PGARR_HEADER_LEN + 7 + 6];
    struct tok_buf b;
    struct tok_pgarr a;
    struct tok_slice s;
    tok_buf_init(&b, m, sizeof m);
    ck_assert_int_eq(tok_pgarr_begin(&a, &b, TOK_PG_OID_TEXT), TOK_OK);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("abc")), TOK_OK);
    uint32_t len = b.len;
    /* the length word fits, the bytes do not: neither is written */
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("abcdefg")), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, len);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("abc")), TOK_ERR_BOUNDS); /* 4 + 3 > 6 */
    ck_assert_uint_eq(b.len, len);
    /* exact fit: 4 + 2 */
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("de")), TOK_OK);
    ck_assert_uint_eq(b.len, b.cap);
    ck_assert_int_eq(tok_pgarr_null(&a), TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    /* the array holds what fitted, and says so */
    struct dec d;
    uint8_t v[3];
    dec_init(&d, s);
    ck_assert_uint_eq(dec_header(&d, 25, 0), 2);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 3);
    ck_assert_int_eq(dec_item(&d, v, sizeof v), 2);
    ck_assert_mem_eq(v, "de", 2);
    dec_done(&d);
}
END_TEST

START_TEST(test_pgarr_int_ranges)
{
    struct tok_pgarr a, b;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_INT2), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int2(&a, 32767), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int2(&a, -32768), TOK_OK);
    uint32_t len = buf.len;
    ck_assert_int_eq(tok_pgarr_int2(&a, 32768), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_pgarr_int2(&a, -32769), TOK_ERR_INPUT);
    ck_assert_uint_eq(buf.len, len);
    struct tok_slice s;
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    ck_assert_mem_eq(s.ptr + TOK_PGARR_HEADER_LEN, "\0\0\0\x02\x7f\xff\0\0\0\x02\x80\x00", 12);

    ck_assert_int_eq(tok_pgarr_begin(&b, &buf, TOK_PG_OID_INT4), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int4(&b, INT32_MAX), TOK_OK);
    ck_assert_int_eq(tok_pgarr_int4(&b, INT32_MIN), TOK_OK);
    len = buf.len;
    ck_assert_int_eq(tok_pgarr_int4(&b, (int64_t)INT32_MAX + 1), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_pgarr_int4(&b, (int64_t)INT32_MIN - 1), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_pgarr_int4(&b, UINT32_MAX), TOK_ERR_INPUT); /* a uint32 key version */
    ck_assert_uint_eq(buf.len, len);
    ck_assert_int_eq(tok_pgarr_end(&b, &s), TOK_OK);
    ck_assert_mem_eq(s.ptr + TOK_PGARR_HEADER_LEN, "\0\0\0\x04\x7f\xff\xff\xff\0\0\0\x04\x80\0\0\0",
                     16);
}
END_TEST

START_TEST(test_pgarr_items_max)
{
    size_t cap = TOK_PGARR_HEADER_LEN + (size_t)(TOK_PGARR_ITEMS_MAX + 1) * TOK_PGARR_ITEM_OVERHEAD;
    uint8_t *m = malloc(cap);
    ck_assert_ptr_nonnull(m);
    struct tok_buf b;
    struct tok_pgarr a;
    struct tok_slice s;
    tok_buf_init(&b, m, (uint32_t)cap);
    ck_assert_int_eq(tok_pgarr_begin(&a, &b, TOK_PG_OID_TEXT), TOK_OK);
    for (uint32_t i = 0; i < TOK_PGARR_ITEMS_MAX; i++)
        ck_assert_int_eq(tok_pgarr_null(&a), TOK_OK);
    /* room for one more, but not allowed */
    ck_assert_int_eq(tok_pgarr_null(&a), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, cap - TOK_PGARR_ITEM_OVERHEAD);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    struct dec d;
    dec_init(&d, s);
    ck_assert_uint_eq(dec_header(&d, 25, 1), TOK_PGARR_ITEMS_MAX);
    free(m);
}
END_TEST

START_TEST(test_pgarr_item_too_long)
{
    struct tok_pgarr a;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_BYTEA), TOK_OK);
    /* refused on length alone, before anything is read */
    ck_assert_int_eq(tok_pgarr_bytea(&a, tok_slice_of(mem, (size_t)TOK_PGARR_ITEM_MAX + 1)),
                     TOK_ERR_INPUT);
    ck_assert_uint_eq(buf.len, TOK_PGARR_HEADER_LEN);
}
END_TEST

/* ---- adversarial -------------------------------------------------------------------------- */

START_TEST(test_pgarr_wrong_type_writes_nothing)
{
    struct tok_pgarr a;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TEXT), TOK_OK);
    ck_assert_int_eq(tok_pgarr_bool(&a, true), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_int2(&a, 1), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_int4(&a, 1), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_float8(&a, 1), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_timestamptz(&a, 1), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_bytea(&a, tok_slice_str("x")), TOK_ERR_INTERNAL);
    ck_assert_uint_eq(buf.len, TOK_PGARR_HEADER_LEN);
    struct tok_pgarr b;
    ck_assert_int_eq(tok_pgarr_begin(&b, &buf, TOK_PG_OID_BYTEA), TOK_OK);
    ck_assert_int_eq(tok_pgarr_text(&b, tok_slice_str("x")), TOK_ERR_INTERNAL);
    ck_assert_uint_eq(buf.len, 2 * TOK_PGARR_HEADER_LEN);
}
END_TEST

START_TEST(test_pgarr_unknown_oid_and_null_args)
{
    struct tok_pgarr a;
    struct tok_slice s;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, 20 /* int8: not supported */), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, 0), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_begin(NULL, &buf, TOK_PG_OID_TEXT), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_begin(&a, NULL, TOK_PG_OID_TEXT), TOK_ERR_INTERNAL);
    ck_assert_uint_eq(buf.len, 0);
    ck_assert_int_eq(tok_pgarr_null(NULL), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TEXT), TOK_OK);
    ck_assert_int_eq(tok_pgarr_end(&a, NULL), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_of(NULL, 3)), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
}
END_TEST

START_TEST(test_pgarr_text_with_nul_refused)
{
    struct tok_pgarr a;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TEXT), TOK_OK);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_of("a\0b", 3)), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_of("\0", 1)), TOK_ERR_INPUT);
    ck_assert_uint_eq(buf.len, TOK_PGARR_HEADER_LEN);
    /* bytea takes any byte */
    struct tok_pgarr b;
    ck_assert_int_eq(tok_pgarr_begin(&b, &buf, TOK_PG_OID_BYTEA), TOK_OK);
    ck_assert_int_eq(tok_pgarr_bytea(&b, tok_slice_of("a\0b", 3)), TOK_OK);
}
END_TEST

START_TEST(test_pgarr_buffer_rewound_under_the_array)
{
    struct tok_pgarr a;
    struct tok_slice s;
    ck_assert_int_eq(tok_buf_write(&buf, "xx", 2), TOK_OK);
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TEXT), TOK_OK);
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("abc")), TOK_OK);
    tok_buf_reset(&buf); /* the array's bytes are gone */
    ck_assert_int_eq(tok_pgarr_text(&a, tok_slice_str("d")), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_ERR_INTERNAL);
    ck_assert_uint_eq(buf.len, 0);
    /* rewound into the header */
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TEXT), TOK_OK);
    buf.len = TOK_PGARR_HEADER_LEN - 1;
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_ERR_INTERNAL);
}
END_TEST

START_TEST(test_pgarr_timestamptz_overflow)
{
    struct tok_pgarr a;
    ck_assert_int_eq(tok_pgarr_begin(&a, &buf, TOK_PG_OID_TIMESTAMPTZ), TOK_OK);
    ck_assert_int_eq(tok_pgarr_timestamptz(&a, INT64_MIN), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_pgarr_timestamptz(&a, INT64_MIN + TOK_PG_EPOCH_UNIX_US - 1),
                     TOK_ERR_INPUT);
    ck_assert_uint_eq(buf.len, TOK_PGARR_HEADER_LEN);
    ck_assert_int_eq(tok_pgarr_timestamptz(&a, INT64_MIN + TOK_PG_EPOCH_UNIX_US), TOK_OK);
    ck_assert_int_eq(tok_pgarr_timestamptz(&a, INT64_MAX), TOK_OK);
    struct tok_slice s;
    ck_assert_int_eq(tok_pgarr_end(&a, &s), TOK_OK);
    ck_assert_mem_eq(s.ptr + TOK_PGARR_HEADER_LEN, "\0\0\0\x08\x80\0\0\0\0\0\0\0", 12);
}
END_TEST

Suite *tok_pgarr_suite(void)
{
    Suite *s = suite_create("pgarr");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_checked_fixture(core, setup, NULL);
    tcase_add_checked_fixture(limits, setup, NULL);
    tcase_set_timeout(limits, 60); /* items_max builds a ~TOK_PGARR_ITEMS_MAX array: ~5 s loaded */
    tcase_add_checked_fixture(adv, setup, NULL);
    tcase_add_test(core, test_pgarr_text_exact_bytes);
    tcase_add_test(core, test_pgarr_bool);
    tcase_add_test(core, test_pgarr_int2_int4);
    tcase_add_test(core, test_pgarr_float8);
    tcase_add_test(core, test_pgarr_timestamptz);
    tcase_add_test(core, test_pgarr_bytea_binary_safe);
    tcase_add_test(core, test_pgarr_nulls_set_the_flag);
    tcase_add_test(limits, test_pgarr_empty_is_header_only);
    tcase_add_test(limits, test_pgarr_header_does_not_fit);
    tcase_add_test(limits, test_pgarr_overflow_writes_nothing);
    tcase_add_test(limits, test_pgarr_int_ranges);
    tcase_add_test(limits, test_pgarr_items_max);
    tcase_add_test(limits, test_pgarr_item_too_long);
    tcase_add_test(adv, test_pgarr_wrong_type_writes_nothing);
    tcase_add_test(adv, test_pgarr_unknown_oid_and_null_args);
    tcase_add_test(adv, test_pgarr_text_with_nul_refused);
    tcase_add_test(adv, test_pgarr_buffer_rewound_under_the_array);
    tcase_add_test(adv, test_pgarr_timestamptz_overflow);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
