/*
 * pgarr.h - one-dimensional arrays in PostgreSQL's binary format, for statement parameters
 * sent with format 1 (issue #9: a batch's tokens go to the database as one typed array per
 * column instead of one JSON document that PostgreSQL parses three times).
 *
 * The format is array_recv's (src/backend/utils/adt/arrayfuncs.c), all integers big-endian:
 *
 *   int32 ndim (always 1 here)   int32 flags (1 if any element is NULL, else 0)
 *   uint32 element type OID      int32 dimension (element count)   int32 lower bound (1)
 *   per element: int32 length (-1 for NULL, then no bytes) and the element's binary send
 *   format: bool 1 byte 0/1; int2, int4 two's complement; float8 the IEEE 754 bits;
 *   timestamptz int64 microseconds since 2000-01-01 00:00 UTC; text and bytea the raw bytes.
 *
 * An empty array is ndim 1 with dimension 0, which array_recv accepts (array_send writes
 * ndim 0 instead; both read back as '{}').
 *
 * PostgreSQL checks the element OID against the parameter's declared type ($2::text[]), so
 * a type mix-up fails the statement instead of storing garbage. Each element call checks
 * the array's type too (TOK_ERR_INTERNAL), and writes all of its bytes or none.
 *
 * Usage: tok_pgarr_begin, one element call per value, tok_pgarr_end, then pass the slice
 * it gives as the parameter's value and length with format 1. Several arrays may follow
 * one another in one tok_buf; each slice points into it, so the buffer must outlive the
 * statement and must not be reset in between.
 */
#ifndef TOKEND_PGARR_H
#define TOKEND_PGARR_H

#include "tokend/core/common.h"

/* element type OIDs (src/include/catalog/pg_type.dat) */
#define TOK_PG_OID_BOOL 16
#define TOK_PG_OID_BYTEA 17
#define TOK_PG_OID_INT2 21
#define TOK_PG_OID_INT4 23
#define TOK_PG_OID_TEXT 25
#define TOK_PG_OID_FLOAT8 701
#define TOK_PG_OID_TIMESTAMPTZ 1184

#define TOK_PGARR_HEADER_LEN 20               /* ndim, flags, OID, dimension, lower bound */
#define TOK_PGARR_ITEM_OVERHEAD 4             /* each element's length word */
#define TOK_PGARR_ITEMS_MAX (1u << 20)        /* far above db-batch-max x accounts */
#define TOK_PGARR_ITEM_MAX ((1u << 30) - 1)   /* PostgreSQL's largest field (1 GB - 1) */
#define TOK_PG_EPOCH_UNIX_US 946684800000000LL /* 2000-01-01 00:00 UTC in Unix microseconds */

/** An array being written into a caller's buffer. Fields are internal. */
struct tok_pgarr {
    struct tok_buf *out; /* borrowed */
    uint32_t start;      /* where the header begins in out */
    uint32_t oid;
    uint32_t count;
    bool has_null;
};

/**
 * Starts an array of elem_oid elements at the end of out (borrowed; it must outlive a).
 * Writes the header. TOK_ERR_BOUNDS: no room for it (nothing written). TOK_ERR_INTERNAL:
 * a or out is NULL, or elem_oid is not one of the TOK_PG_OID_* above.
 */
TOK_MUST_CHECK tok_status tok_pgarr_begin(struct tok_pgarr *a, struct tok_buf *out,
                                          uint32_t elem_oid);

/*
 * Element writers. Each appends one element, or nothing on an error. All of them return
 * TOK_ERR_BOUNDS when the buffer lacks room or the array already holds TOK_PGARR_ITEMS_MAX
 * elements, and TOK_ERR_INTERNAL when the array's element type is not the writer's.
 */

/** A NULL element (any type). */
TOK_MUST_CHECK tok_status tok_pgarr_null(struct tok_pgarr *a);

/** A bool element. */
TOK_MUST_CHECK tok_status tok_pgarr_bool(struct tok_pgarr *a, bool v);

/** An int2 element. TOK_ERR_INPUT: v outside -32768..32767. */
TOK_MUST_CHECK tok_status tok_pgarr_int2(struct tok_pgarr *a, int32_t v);

/** An int4 element. TOK_ERR_INPUT: v outside the int32 range. */
TOK_MUST_CHECK tok_status tok_pgarr_int4(struct tok_pgarr *a, int64_t v);

/** A float8 element (any double, NaN and infinities included). */
TOK_MUST_CHECK tok_status tok_pgarr_float8(struct tok_pgarr *a, double v);

/**
 * A timestamptz element from Unix microseconds. TOK_ERR_INPUT: so far out that the shift
 * to PostgreSQL's epoch would overflow (PostgreSQL itself refuses values past 294276 AD).
 */
TOK_MUST_CHECK tok_status tok_pgarr_timestamptz(struct tok_pgarr *a, int64_t unix_us);

/**
 * A text element: s's bytes (borrowed), no terminator. TOK_ERR_INPUT: s holds a NUL byte
 * (PostgreSQL refuses it in text) or is longer than TOK_PGARR_ITEM_MAX.
 */
TOK_MUST_CHECK tok_status tok_pgarr_text(struct tok_pgarr *a, struct tok_slice s);

/** A bytea element: s's bytes (borrowed). TOK_ERR_INPUT: longer than TOK_PGARR_ITEM_MAX. */
TOK_MUST_CHECK tok_status tok_pgarr_bytea(struct tok_pgarr *a, struct tok_slice s);

/**
 * Finishes the array: writes its element count and NULL flag into the header, and sets
 * *out to the array's bytes (borrowed from the buffer given to begin). TOK_ERR_INTERNAL:
 * the buffer was reset or rewound below the header since begin.
 */
TOK_MUST_CHECK tok_status tok_pgarr_end(struct tok_pgarr *a, struct tok_slice *out);

#endif
