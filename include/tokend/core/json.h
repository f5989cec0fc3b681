/*
 * json.h - the one JSON reader and writer of tokend.
 *
 * Reader: request bodies carry PANs and CVCs, so the parse tree is secret memory. A parsed
 * document lives in ONE sodium_malloc arena (guard pages, excluded from core dumps) that
 * tok_json_doc_free wipes and releases; yajl's own scratch buffers (its lexer keeps copies of
 * unescaped strings) come from allocation callbacks that wipe every block before freeing it.
 * Strict input: RFC 8259 only (no comments, no trailing garbage, no second document), strict
 * UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF, also none smuggled in through
 * \u escapes), no duplicate keys, and hard limits on size, depth, values and members.
 *
 * Writer: non-secret response JSON appended to a bounded tok_buf, always valid UTF-8.
 */
#ifndef TOKEND_JSON_H
#define TOKEND_JSON_H

#include "tokend/core/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults returned by tok_json_limits_default(). */
#define TOK_JSON_DEFAULT_MAX_DEPTH 16u
#define TOK_JSON_DEFAULT_MAX_NODES 512u
#define TOK_JSON_DEFAULT_MAX_STRING_LEN 4096u
#define TOK_JSON_DEFAULT_MAX_BODY (64u * 1024u)
#define TOK_JSON_DEFAULT_MAX_MEMBERS 64u

/* Hard caps: limits above these are a configuration bug (TOK_ERR_INTERNAL). */
#define TOK_JSON_HARD_MAX_DEPTH 64u
#define TOK_JSON_HARD_MAX_NODES 65536u
#define TOK_JSON_HARD_MAX_BODY (1024u * 1024u)
#define TOK_JSON_HARD_MAX_MEMBERS 1024u /* duplicate detection is quadratic per object */

/* A duplicate key is named in the error detail only when it is this short (and printable). */
#define TOK_JSON_KEY_ECHO_MAX 64u
#define TOK_JSON_DETAIL_MAX 128u

/* Stable error codes (tok_json_error.code); safe to put in an RFC 9457 "code" member. */
#define TOK_JSON_E_MALFORMED "malformed_json"
#define TOK_JSON_E_TOO_DEEP "json_too_deep"
#define TOK_JSON_E_TOO_LARGE "json_too_large"
#define TOK_JSON_E_DUPLICATE_KEY "duplicate_key"
#define TOK_JSON_E_INVALID_UTF8 "invalid_utf8"
#define TOK_JSON_E_NUMBER_RANGE "json_number_out_of_range"
#define TOK_JSON_E_INTERNAL "internal_error"

/** Parser limits. Every field must be in 1..its TOK_JSON_HARD_MAX_* cap. */
struct tok_json_limits {
    uint32_t max_depth;      /* nesting of arrays/objects; the root container is depth 1 */
    uint32_t max_nodes;      /* values of any kind, containers included */
    uint32_t max_string_len; /* bytes of one string, key or number text, after unescaping */
    uint32_t max_body;       /* bytes of the whole body */
    uint32_t max_members;    /* members of one object */
};

/**
 * Why a parse failed. `code` is one of the TOK_JSON_E_* strings (static, never NULL after a
 * failure, NULL after success). `detail` is a NUL-terminated English sentence for humans; it
 * never contains bytes of a value from the body (only offsets, limits and, for duplicate_key,
 * a key that passes tok_json_key_echoable()).
 */
struct tok_json_error {
    const char *code;
    char detail[TOK_JSON_DETAIL_MAX];
};

enum tok_json_type {
    TOK_JSON_NULL,
    TOK_JSON_BOOL,
    TOK_JSON_NUMBER,
    TOK_JSON_STRING,
    TOK_JSON_ARRAY,
    TOK_JSON_OBJECT
};

/** A parsed document: one wiped-on-free sodium_malloc arena. Opaque. */
struct tok_json_doc;
/** One value inside a document; borrowed from the document, valid until tok_json_doc_free. */
struct tok_json_node;

/** The default limits (TOK_JSON_DEFAULT_*). */
struct tok_json_limits tok_json_limits_default(void);

/**
 * Parses body (borrowed; not modified, not wiped: the caller owns and wipes it) into a new
 * document. Needs sodium_init() to have succeeded (tokend refuses to start otherwise). lim may be NULL for the defaults. err may be NULL.
 * On success *out owns the document; pair it with tok_json_doc_free. On failure *out is NULL
 * and err says why. Returns:
 *   TOK_ERR_INPUT    malformed_json (syntax, trailing garbage, empty body), duplicate_key,
 *                    invalid_utf8, json_number_out_of_range
 *   TOK_ERR_BOUNDS   json_too_large, json_too_deep (a limit was exceeded)
 *   TOK_ERR_NOMEM    an allocation failed (code internal_error)
 *   TOK_ERR_INTERNAL NULL out, limits outside 1..hard cap (code internal_error)
 */
TOK_MUST_CHECK tok_status tok_json_parse(struct tok_slice body, const struct tok_json_limits *lim,
                                         struct tok_json_doc **out, struct tok_json_error *err);

/** Wipes the whole arena (sodium_memzero), frees it and sets *doc = NULL. NULL-safe. */
void tok_json_doc_free(struct tok_json_doc **doc);

/** The root value (never NULL for a parsed document; NULL for a NULL doc). */
const struct tok_json_node *tok_json_root(const struct tok_json_doc *doc);

/**
 * The type of node. A NULL node (e.g. a missing member from tok_json_get) reads as
 * TOK_JSON_NULL, so "absent" and "null" can be treated alike; test the pointer to tell them apart.
 */
enum tok_json_type tok_json_type(const struct tok_json_node *node);

/** The member of obj named key (a C string), or NULL when missing or obj is not an object. */
const struct tok_json_node *tok_json_get(const struct tok_json_node *obj, const char *key);

/**
 * The bytes of a string value (valid UTF-8, unescaped; may contain U+0000, so never treat it
 * as a C string). out borrows from the document. TOK_ERR_INPUT when node is not a string.
 */
TOK_MUST_CHECK tok_status tok_json_string(const struct tok_json_node *node, struct tok_slice *out);

/**
 * An integer value. Only plain integer literals are integers: -?(0|[1-9][0-9]*) within int64.
 * 1.5, 1e3, 1.0 and "12" are TOK_ERR_INPUT; -0 is the integer 0. (Literals beyond int64 never
 * reach here: the parse refuses them with json_number_out_of_range.)
 */
TOK_MUST_CHECK tok_status tok_json_int64(const struct tok_json_node *node, int64_t *out);

/**
 * The literal text of any number exactly as sent (e.g. "12.50", "1e3"), for callers that
 * parse decimals themselves. TOK_ERR_INPUT when node is not a number.
 */
TOK_MUST_CHECK tok_status tok_json_number_text(const struct tok_json_node *node,
                                               struct tok_slice *out);

/** A boolean value. TOK_ERR_INPUT when node is not true/false. */
TOK_MUST_CHECK tok_status tok_json_bool(const struct tok_json_node *node, bool *out);

/** Members of an object (0 when node is not an object). */
size_t tok_json_object_size(const struct tok_json_node *obj);

/**
 * The i-th member, in document order. key and val borrow from the document (either may be NULL
 * when not wanted). TOK_ERR_INPUT when obj is not an object, TOK_ERR_BOUNDS when i >= size.
 */
TOK_MUST_CHECK tok_status tok_json_object_at(const struct tok_json_node *obj, size_t i,
                                             struct tok_slice *key,
                                             const struct tok_json_node **val);

/** Elements of an array (0 when node is not an array). */
size_t tok_json_array_size(const struct tok_json_node *arr);

/** The i-th element. TOK_ERR_INPUT when arr is not an array, TOK_ERR_BOUNDS when i >= size. */
TOK_MUST_CHECK tok_status tok_json_array_at(const struct tok_json_node *arr, size_t i,
                                            const struct tok_json_node **val);

/**
 * Refuses unknown fields: TOK_OK when every key of obj is one of allowed[0..n-1] (C strings).
 * Otherwise TOK_ERR_INPUT and *unknown_out (may be NULL) is the first unknown key, borrowed
 * from the document; it was sent by the client and may hold anything, so check it with
 * tok_json_key_echoable() before putting it in a response or a log. TOK_ERR_INPUT with an
 * empty *unknown_out when obj is not an object.
 */
TOK_MUST_CHECK tok_status tok_json_check_keys(const struct tok_json_node *obj,
                                              const char *const allowed[], size_t n,
                                              struct tok_slice *unknown_out);

/**
 * True when a client-sent key is safe to echo in an error: 1..TOK_JSON_KEY_ECHO_MAX bytes of
 * printable ASCII with fewer than 8 digits in all (so a PAN used as a key is never echoed).
 */
bool tok_json_key_echoable(struct tok_slice key);

/**
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
 * When invalid and bad_off is not NULL, *bad_off is the offset of the first bad sequence.
 */
bool tok_json_utf8_valid(struct tok_slice s, size_t *bad_off);

/**
 * What PostgreSQL's text and jsonb can store: strict UTF-8 (as above: a lone surrogate
 * escape, \ud800, never gets this far, the parser refuses it) without NUL, which text cannot
 * hold and jsonb refuses as \u0000 (SQLSTATE 22P05). Check client text with it before
 * anything irreversible (a gateway call) happens, so the database never refuses it after.
 */
bool tok_json_text_storable(struct tok_slice s);

/* ---- writer ------------------------------------------------------------------------------ */

/**
 * Appends s as a JSON string literal with its quotes. Escapes '"', '\\', every byte below 0x20
 * as \u00XX, and U+2028/U+2029 (so the text is also safe inside a <script>). Each byte that
 * does not start a valid UTF-8 sequence becomes \ufffd, so the output is always valid UTF-8.
 * TOK_ERR_BOUNDS when it does not fit; then b is left as it was.
 */
TOK_MUST_CHECK tok_status tok_json_w_string(struct tok_buf *b, struct tok_slice s);

/** Appends "name": (name escaped like tok_json_w_string). TOK_ERR_BOUNDS; b unchanged. */
TOK_MUST_CHECK tok_status tok_json_w_key(struct tok_buf *b, const char *name);

/** Appends a decimal integer. TOK_ERR_BOUNDS; b unchanged. */
TOK_MUST_CHECK tok_status tok_json_w_int64(struct tok_buf *b, int64_t v);

/** Appends true or false. TOK_ERR_BOUNDS; b unchanged. */
TOK_MUST_CHECK tok_status tok_json_w_bool(struct tok_buf *b, bool v);

/** Appends null. TOK_ERR_BOUNDS; b unchanged. */
TOK_MUST_CHECK tok_status tok_json_w_null(struct tok_buf *b);

#define TOK_JSON_W_MAX_DEPTH 16

/**
 * A tiny streaming writer that places commas and colons and records the FIRST error in st
 * (sticky: after an error every call does nothing). Write a whole document, then check once:
 *
 *     struct tok_json_writer w;
 *     tok_jw_init(&w, &out);
 *     tok_jw_obj_begin(&w);
 *     tok_jw_key(&w, "id");     tok_jw_str(&w, token_id);
 *     tok_jw_key(&w, "last4");  tok_jw_strn(&w, last4);
 *     tok_jw_key(&w, "brands"); tok_jw_arr_begin(&w); tok_jw_str(&w, "visa"); tok_jw_arr_end(&w);
 *     tok_jw_obj_end(&w);
 *     TOK_GUARD(tok_jw_finish(&w));
 *
 * (Reading w.st directly after the last call is equivalent when the document is known to be
 * balanced.) After an error the buffer holds a partial document: discard it. Errors: TOK_ERR_BOUNDS (the
 * buffer is full, or nesting beyond TOK_JSON_W_MAX_DEPTH), TOK_ERR_INTERNAL (misuse: a key
 * outside an object, a value without a key inside an object, an unbalanced end, a second
 * top-level value, an unfinished document at tok_jw_finish).
 * Fields are private to json.c; read only st.
 */
struct tok_json_writer {
    struct tok_buf *b;
    int depth;                                  /* open containers */
    bool need_comma[TOK_JSON_W_MAX_DEPTH + 1];  /* a value was written at this depth */
    bool is_object[TOK_JSON_W_MAX_DEPTH + 1];   /* the container at this depth is an object */
    bool have_key;                              /* a key was written and awaits its value */
    tok_status st;
};

/** Starts a writer appending to b (borrowed; must outlive the writer). */
void tok_jw_init(struct tok_json_writer *w, struct tok_buf *b);
/** The sticky status; also TOK_ERR_INTERNAL when containers are still open or nothing was written. */
TOK_MUST_CHECK tok_status tok_jw_finish(const struct tok_json_writer *w);
void tok_jw_obj_begin(struct tok_json_writer *w);
void tok_jw_obj_end(struct tok_json_writer *w);
void tok_jw_arr_begin(struct tok_json_writer *w);
void tok_jw_arr_end(struct tok_json_writer *w);
/** A member name (C string, escaped). */
void tok_jw_key(struct tok_json_writer *w, const char *name);
/** A string value from a C string (NULL writes null). */
void tok_jw_str(struct tok_json_writer *w, const char *s);
/** A string value from a slice (may hold NUL; invalid UTF-8 becomes \ufffd). */
void tok_jw_strn(struct tok_json_writer *w, struct tok_slice s);
void tok_jw_int(struct tok_json_writer *w, int64_t v);
void tok_jw_bool(struct tok_json_writer *w, bool v);
void tok_jw_null(struct tok_json_writer *w);
/** A member: tok_jw_key then the value (NULL s writes null). */
void tok_jw_kstr(struct tok_json_writer *w, const char *key, const char *s);
void tok_jw_kint(struct tok_json_writer *w, const char *key, int64_t v);
void tok_jw_kbool(struct tok_json_writer *w, const char *key, bool v);
/** Writes an already-serialised JSON value (trusted: e.g. jsonb text from PostgreSQL). */
void tok_jw_raw(struct tok_json_writer *w, struct tok_slice json);

#endif
