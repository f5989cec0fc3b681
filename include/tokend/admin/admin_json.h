/* admin_json.h - tokenctl's --json output, for scripts: one JSON document on stdout. */
#ifndef TOKEND_ADMIN_JSON_H
#define TOKEND_ADMIN_JSON_H

#include "tokend/core/common.h"

#include <libpq-fe.h>

#define TOK_ADMIN_JSON_ROW_MAX 65536   /* one listed row or created object, serialised */

/** How a text value becomes JSON. */
enum tok_admin_json_kind {
    TOK_AJ_STR,  /* a string; SQL NULL or "" is null */
    TOK_AJ_BOOL, /* "true"/"t" is true, anything else false */
    TOK_AJ_INT,  /* decimal digits; anything else is TOK_ERR_INTERNAL */
    TOK_AJ_LIST, /* comma-separated strings; "" or NULL is [] */
};

/** One member of an object: name, and the column (lists) or value (objects) it comes from. */
struct tok_admin_json_field {
    const char *name;
    enum tok_admin_json_kind kind;
    int col;                /* tok_admin_json_rows: the result column */
    struct tok_slice value; /* tok_admin_json_object: the value (ptr NULL for null) */
};

/**
 * Writes the rows of r to stdout as one JSON array of objects, a line per row, each with the
 * fields given (borrowed). TOK_ERR_BOUNDS if a row serialises to more than
 * TOK_ADMIN_JSON_ROW_MAX bytes, TOK_ERR_INTERNAL for a value that is not of its kind,
 * TOK_ERR_IO if stdout fails.
 */
TOK_MUST_CHECK tok_status tok_admin_json_rows(const PGresult *r,
                                              const struct tok_admin_json_field *fields,
                                              size_t nfields);

/**
 * Writes one JSON object and a newline to fd 1, built in locked memory and written with
 * write(2) (no stdio copy), then wiped: a created key's secret may be one of the values.
 * Flushes stdout first so the output keeps its order. Errors as tok_admin_json_rows.
 */
TOK_MUST_CHECK tok_status tok_admin_json_object(const struct tok_admin_json_field *fields,
                                                size_t nfields);

#endif
