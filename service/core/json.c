/*
 * json.c - JSON request reader (yajl 2 -> a small DOM in one wiped, guarded arena) and
 * the response writer. Both directions of the format live here so a reviewer sees them together.
 *
 * Why an arena: a request body's parse tree holds PAN and CVC bytes. One secmem block
 * (secmem.h) is locked, kept out of core dumps, and wiped in one go when released.
 * Why strict: a lenient parser is where request smuggling between two JSON readers starts
 * (duplicate keys resolved differently, invalid UTF-8 normalised differently), so anything
 * ambiguous is refused instead of interpreted.
 */
#include "tokend/core/json.h"
#include "tokend/core/secmem.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

struct tok_json_node {
    uint8_t type;     /* enum tok_json_type */
    bool b;           /* TOK_JSON_BOOL */
    bool is_integer;  /* TOK_JSON_NUMBER: a plain integer literal that fits int64 */
    uint32_t key_len; /* member of an object: its key */
    uint32_t len;     /* string bytes or number text */
    uint32_t count;   /* containers: members / elements */
    const uint8_t *key;
    const uint8_t *str;
    int64_t i64;
    struct tok_json_node *next;  /* next sibling, while building */
    struct tok_json_node *first; /* first child, while building */
    struct tok_json_node *last;  /* last child, while building */
    struct tok_json_node **kids; /* containers: children in order, set when the container closes */
};

struct tok_json_doc {
    struct tok_json_node *nodes;
    uint32_t nodes_cap;
    uint32_t nodes_used;
    uint8_t *bytes; /* strings, keys, number text, child arrays */
    size_t bytes_cap;
    size_t bytes_used;
    struct tok_json_node *root;
};

/* ---- errors -------------------------------------------------------------------------------- */

static void err_set(struct tok_json_error *err, const char *code, const char *detail)
{
    struct tok_buf b;
    tok_buf_init(&b, err->detail, sizeof err->detail);
    err->code = code;
    err->detail[0] = '\0';
    /* a static detail always fits; if one ever did not, an empty detail is still safe */
    if (tok_buf_puts(&b, detail) == TOK_OK && tok_buf_putc(&b, '\0') == TOK_OK)
        return;
    err->detail[0] = '\0';
}

/* "<what> <n>" with a number that is an offset or a limit, never a value from the body */
static void err_set_n(struct tok_json_error *err, const char *code, const char *what, size_t n)
{
    struct tok_buf b;
    const char *s = NULL;
    err_set(err, code, what);
    tok_buf_init(&b, err->detail, sizeof err->detail);
    if (tok_buf_printf(&b, "%s %zu", what, n) == TOK_OK && tok_buf_cstr(&b, &s) == TOK_OK)
        return;
    err_set(err, code, what);
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when it is not one (RFC 3629 table). */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0) /* overlong */
            return 0;
        if (c == 0xED && p[1] > 0x9F) /* UTF-16 surrogates */
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) /* overlong */
            return 0;
        if (c == 0xF4 && p[1] > 0x8F) /* above U+10FFFF */
            return 0;
        return 4;
    }
    return 0; /* continuation byte, C0/C1 overlong leads, F5..FF */
}

bool tok_json_utf8_valid(struct tok_slice s, size_t *bad_off)
{
    size_t i = 0;
    while (i < s.len) {
        if (s.ptr[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s.ptr + i, s.len - i);
        if (k == 0) {
            if (bad_off != NULL)
                *bad_off = i;
            return false;
        }
        i += k;
    }
    return true;
}

bool tok_json_text_storable(struct tok_slice s)
{
    if (s.len > 0 && (s.ptr == NULL || memchr(s.ptr, 0, s.len) != NULL))
        return false;
    return tok_json_utf8_valid(s, NULL);
}

static bool hex4(struct tok_slice s, size_t at, uint32_t *out)
{
    uint32_t v = 0;
    if (at > s.len || s.len - at < 4)
        return false;
    for (size_t i = at; i < at + 4; i++) {
        uint8_t c = s.ptr[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return false;
        v = (v << 4) | d;
    }
    *out = v;
    return true;
}

/*
 * yajl 2.1 decodes a lone high-surrogate escape to '?' and a lone low one to CESU bytes
 * (invalid UTF-8), and pairs a high surrogate with ANY following \u escape. Each would let two
 * readers see different strings, so unpaired or mispaired surrogate escapes are refused here,
 * before yajl runs. Only string contents are examined; syntax errors are left to yajl.
 */
static bool escapes_valid(struct tok_slice s, size_t *bad_off)
{
    bool in_str = false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!in_str) {
            in_str = (c == '"');
            continue;
        }
        if (c == '"') {
            in_str = false;
            continue;
        }
        if (c != '\\')
            continue;
        uint32_t cp = 0, lo = 0;
        if (i + 1 >= s.len || s.ptr[i + 1] != 'u' || !hex4(s, i + 2, &cp)) {
            i++; /* a two-byte escape (or a malformed one yajl will report) */
            continue;
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            *bad_off = i;
            return false;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* \uD8xx must be followed at once by \uDCxx..\uDFxx */
            if (i + 7 >= s.len || s.ptr[i + 6] != '\\' || s.ptr[i + 7] != 'u' ||
                !hex4(s, i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                *bad_off = i;
                return false;
            }
            i += 11;
            continue;
        }
        i += 5;
    }
    return true;
}

/* ---- yajl allocation: every block is wiped before it is released ---------------------------- */

/* The header keeps the block size for the wipe and keeps the payload maximally aligned. */
#define WIPE_HDR (sizeof(max_align_t))

static void *on_yajl_malloc(void *ctx, size_t sz)
{
    (void)ctx;
    if (sz > SIZE_MAX - WIPE_HDR)
        return NULL;
    uint8_t *p = malloc(WIPE_HDR + sz);
    if (p == NULL)
        return NULL;
    tok_copy(p, &sz, sizeof sz);
    return p + WIPE_HDR;
}

static void on_yajl_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr == NULL)
        return;
    uint8_t *p = (uint8_t *)ptr - WIPE_HDR;
    size_t sz;
    tok_copy(&sz, p, sizeof sz);
    sodium_memzero(p, WIPE_HDR + sz);
    free(p);
}

/* Never the C realloc: it may move the block and leave the old bytes unwiped behind it. */
static void *on_yajl_realloc(void *ctx, void *ptr, size_t sz)
{
    if (ptr == NULL)
        return on_yajl_malloc(ctx, sz);
    size_t old;
    tok_copy(&old, (uint8_t *)ptr - WIPE_HDR, sizeof old);
    void *np = on_yajl_malloc(ctx, sz);
    if (np == NULL)
        return NULL; /* the old block stays valid, as realloc promises */
    tok_copy(np, ptr, old < sz ? old : sz);
    on_yajl_free(ctx, ptr);
    return np;
}

/* ---- arena --------------------------------------------------------------------------------- */

#define ALIGN_UP(n, a) (((n) + ((a)-1)) & ~((size_t)(a)-1))

/*
 * Sizing: a value needs at least one body byte, so nodes <= body length. Strings, keys and
 * number texts are disjoint parts of the body and unescaping never lengthens them (\n -> 1
 * byte, \uXXXX -> at most 3, a surrogate pair's 12 -> 4), so their bytes total at most the
 * body length. Child arrays need one pointer per node plus alignment per container.
 */
static tok_status arena_new(size_t body_len, const struct tok_json_limits *lim,
                            struct tok_json_doc **out)
{
    size_t nodes_cap = body_len < lim->max_nodes ? body_len : lim->max_nodes;
    size_t hdr = ALIGN_UP(sizeof(struct tok_json_doc), alignof(max_align_t));
    size_t nodes_sz = ALIGN_UP(nodes_cap * sizeof(struct tok_json_node), alignof(max_align_t));
    size_t bytes_cap = body_len + nodes_cap * (sizeof(void *) + alignof(void *)) + 64;
    /* a guarded block is only as aligned as its size: round it so every region below
     * stays max-aligned */
    size_t total = ALIGN_UP(hdr + nodes_sz + bytes_cap, alignof(max_align_t));
    uint8_t *mem = tok_secmem_alloc(total); /* zeroed */
    TOK_ENSURE(mem != NULL, TOK_ERR_NOMEM);
    struct tok_json_doc *doc = (struct tok_json_doc *)(void *)mem;
    doc->nodes = (struct tok_json_node *)(void *)(mem + hdr);
    doc->nodes_cap = (uint32_t)nodes_cap;
    doc->bytes = mem + hdr + nodes_sz;
    doc->bytes_cap = bytes_cap;
    *out = doc;
    return TOK_OK;
}

static void *arena_take(struct tok_json_doc *doc, size_t n, size_t align)
{
    size_t at = ALIGN_UP(doc->bytes_used, align);
    if (at > doc->bytes_cap || n > doc->bytes_cap - at)
        return NULL;
    doc->bytes_used = at + n;
    return doc->bytes + at;
}

void tok_json_doc_free(struct tok_json_doc **doc)
{
    if (doc == NULL || *doc == NULL)
        return;
    tok_secmem_free(*doc); /* wipes it */
    *doc = NULL;
}

/* ---- builder (yajl callbacks) -------------------------------------------------------------- */

struct builder {
    struct tok_json_doc *doc;
    const struct tok_json_limits *lim;
    struct tok_json_error *err;
    tok_status st;
    uint32_t depth;
    struct tok_json_node *stack[TOK_JSON_HARD_MAX_DEPTH];
    const uint8_t *key; /* the pending member name, already copied into the arena */
    uint32_t key_len;
};

static int fail(struct builder *bl, tok_status st, const char *code, const char *what, size_t n)
{
    bl->st = st;
    err_set_n(bl->err, code, what, n);
    return 0;
}

static int fail_internal(struct builder *bl)
{
    bl->st = TOK_ERR_INTERNAL;
    err_set(bl->err, TOK_JSON_E_INTERNAL, "internal error while parsing");
    return 0;
}

static const uint8_t *copy_in(struct builder *bl, const uint8_t *p, size_t n)
{
    uint8_t *dst = arena_take(bl->doc, n == 0 ? 1 : n, 1);
    if (dst != NULL)
        tok_copy(dst, p, n);
    return dst;
}

/* Text checks shared by strings and keys; returns the arena copy or NULL after recording why. */
static const uint8_t *take_text(struct builder *bl, const unsigned char *s, size_t n)
{
    if (n > bl->lim->max_string_len) {
        fail(bl, TOK_ERR_BOUNDS, TOK_JSON_E_TOO_LARGE, "string longer than",
             bl->lim->max_string_len);
        return NULL;
    }
    /* yajl validated the raw bytes and escapes_valid() the escapes; this re-checks what the
     * tree will actually hold, so the DOM is valid UTF-8 whatever yajl decodes */
    if (!tok_json_utf8_valid(tok_slice_of(s, n), NULL)) {
        bl->st = TOK_ERR_INPUT;
        err_set(bl->err, TOK_JSON_E_INVALID_UTF8, "string is not valid UTF-8");
        return NULL;
    }
    const uint8_t *p = copy_in(bl, s, n);
    if (p == NULL)
        fail_internal(bl);
    return p;
}

static struct tok_json_node *add_node(struct builder *bl, enum tok_json_type type)
{
    struct tok_json_doc *doc = bl->doc;
    struct tok_json_node *parent = bl->depth > 0 ? bl->stack[bl->depth - 1] : NULL;
    if (parent == NULL && doc->root != NULL) {
        fail_internal(bl); /* yajl refuses a second document before we get here */
        return NULL;
    }
    if (doc->nodes_used >= bl->lim->max_nodes || doc->nodes_used >= doc->nodes_cap) {
        fail(bl, TOK_ERR_BOUNDS, TOK_JSON_E_TOO_LARGE, "more values than", bl->lim->max_nodes);
        return NULL;
    }
    if (parent != NULL && parent->type == TOK_JSON_OBJECT && bl->key == NULL) {
        fail_internal(bl);
        return NULL;
    }
    struct tok_json_node *n = &doc->nodes[doc->nodes_used++];
    n->type = (uint8_t)type;
    if (parent == NULL) {
        doc->root = n;
        return n;
    }
    if (parent->type == TOK_JSON_OBJECT) {
        n->key = bl->key;
        n->key_len = bl->key_len;
        bl->key = NULL;
        bl->key_len = 0;
    }
    if (parent->last == NULL)
        parent->first = n;
    else
        parent->last->next = n;
    parent->last = n;
    parent->count++;
    return n;
}

static int on_null(void *ctx)
{
    return add_node(ctx, TOK_JSON_NULL) != NULL;
}

static int on_boolean(void *ctx, int v)
{
    struct tok_json_node *n = add_node(ctx, TOK_JSON_BOOL);
    if (n == NULL)
        return 0;
    n->b = v != 0;
    return 1;
}

/*
 * yajl has already checked the grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * Only the first part alone is an integer; it must fit int64 or the body is refused, so no
 * amount is ever silently rounded through a double.
 */
static int on_number(void *ctx, const char *s, size_t n)
{
    struct builder *bl = ctx;
    if (n > bl->lim->max_string_len)
        return fail(bl, TOK_ERR_BOUNDS, TOK_JSON_E_TOO_LARGE, "number longer than",
                    bl->lim->max_string_len);
    bool neg = n > 0 && s[0] == '-';
    bool integer = n > (size_t)neg;
    uint64_t mag = 0;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    bool overflow = false;
    for (size_t i = neg; i < n && integer; i++) {
        if (s[i] < '0' || s[i] > '9') {
            integer = false;
            break;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (overflow || mag > (lim - d) / 10u)
            overflow = true;
        else
            mag = mag * 10u + d;
    }
    if (integer && overflow) {
        bl->st = TOK_ERR_INPUT;
        err_set(bl->err, TOK_JSON_E_NUMBER_RANGE, "integer outside the signed 64-bit range");
        return 0;
    }
    const uint8_t *txt = copy_in(bl, (const uint8_t *)s, n);
    if (txt == NULL)
        return fail_internal(bl);
    struct tok_json_node *node = add_node(bl, TOK_JSON_NUMBER);
    if (node == NULL)
        return 0;
    node->str = txt;
    node->len = (uint32_t)n;
    node->is_integer = integer;
    if (integer)
        node->i64 = neg ? (mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag)
                        : (int64_t)mag;
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    struct builder *bl = ctx;
    const uint8_t *p = take_text(bl, s, n);
    if (p == NULL)
        return 0;
    struct tok_json_node *node = add_node(bl, TOK_JSON_STRING);
    if (node == NULL)
        return 0;
    node->str = p;
    node->len = (uint32_t)n;
    return 1;
}

static int open_container(struct builder *bl, enum tok_json_type type)
{
    if (bl->depth >= bl->lim->max_depth)
        return fail(bl, TOK_ERR_BOUNDS, TOK_JSON_E_TOO_DEEP, "nesting deeper than",
                    bl->lim->max_depth);
    struct tok_json_node *n = add_node(bl, type);
    if (n == NULL)
        return 0;
    bl->stack[bl->depth++] = n;
    return 1;
}

static int close_container(struct builder *bl)
{
    if (bl->depth == 0)
        return fail_internal(bl);
    struct tok_json_node *c = bl->stack[--bl->depth];
    if (c->count == 0)
        return 1;
    struct tok_json_node **kids =
        arena_take(bl->doc, (size_t)c->count * sizeof *kids, alignof(struct tok_json_node *));
    if (kids == NULL)
        return fail_internal(bl);
    size_t i = 0;
    for (struct tok_json_node *k = c->first; k != NULL && i < c->count; k = k->next)
        kids[i++] = k;
    if (i != c->count)
        return fail_internal(bl);
    c->kids = kids;
    return 1;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, TOK_JSON_OBJECT);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, TOK_JSON_ARRAY);
}

static int on_end(void *ctx)
{
    return close_container(ctx);
}

static bool bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n)
{
    struct builder *bl = ctx;
    if (bl->depth == 0)
        return fail_internal(bl);
    struct tok_json_node *obj = bl->stack[bl->depth - 1];
    if (obj->count >= bl->lim->max_members)
        return fail(bl, TOK_ERR_BOUNDS, TOK_JSON_E_TOO_LARGE, "more object members than",
                    bl->lim->max_members);
    for (const struct tok_json_node *m = obj->first; m != NULL; m = m->next) {
        if (!bytes_eq(m->key, m->key_len, k, n))
            continue;
        bl->st = TOK_ERR_INPUT;
        struct tok_slice key = tok_slice_of(k, n);
        if (!tok_json_key_echoable(key)) {
            err_set(bl->err, TOK_JSON_E_DUPLICATE_KEY, "duplicate key in an object");
            return 0;
        }
        struct tok_buf b;
        const char *s = NULL;
        tok_buf_init(&b, bl->err->detail, sizeof bl->err->detail);
        bl->err->code = TOK_JSON_E_DUPLICATE_KEY;
        if (tok_buf_puts(&b, "duplicate key \"") != TOK_OK || tok_buf_write(&b, k, n) != TOK_OK ||
            tok_buf_putc(&b, '"') != TOK_OK || tok_buf_cstr(&b, &s) != TOK_OK)
            err_set(bl->err, TOK_JSON_E_DUPLICATE_KEY, "duplicate key in an object");
        return 0;
    }
    const uint8_t *p = take_text(bl, k, n);
    if (p == NULL)
        return 0;
    bl->key = p;
    bl->key_len = (uint32_t)n;
    return 1;
}

static const yajl_callbacks builder_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_integer = NULL,
    .yajl_double = NULL,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

/* ---- parse --------------------------------------------------------------------------------- */

struct tok_json_limits tok_json_limits_default(void)
{
    struct tok_json_limits l = {
        .max_depth = TOK_JSON_DEFAULT_MAX_DEPTH,
        .max_nodes = TOK_JSON_DEFAULT_MAX_NODES,
        .max_string_len = TOK_JSON_DEFAULT_MAX_STRING_LEN,
        .max_body = TOK_JSON_DEFAULT_MAX_BODY,
        .max_members = TOK_JSON_DEFAULT_MAX_MEMBERS,
    };
    return l;
}

static bool limits_ok(const struct tok_json_limits *l)
{
    return l->max_depth >= 1 && l->max_depth <= TOK_JSON_HARD_MAX_DEPTH && l->max_nodes >= 1 &&
           l->max_nodes <= TOK_JSON_HARD_MAX_NODES && l->max_string_len >= 1 &&
           l->max_string_len <= TOK_JSON_HARD_MAX_BODY && l->max_body >= 1 &&
           l->max_body <= TOK_JSON_HARD_MAX_BODY && l->max_members >= 1 &&
           l->max_members <= TOK_JSON_HARD_MAX_MEMBERS;
}

/* yajl's non-verbose message is "<kind> error: <static text>\n": no input bytes in it
 * (the verbose form quotes the input, so it is never asked for). */
static void err_from_yajl(struct tok_json_error *err, yajl_handle h, size_t off)
{
    unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
    struct tok_buf b;
    const char *s = NULL;
    err_set_n(err, TOK_JSON_E_MALFORMED, "invalid JSON at byte", off);
    if (msg != NULL) {
        size_t n = strlen((const char *)msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ' || msg[n - 1] == '.'))
            n--;
        tok_buf_init(&b, err->detail, sizeof err->detail);
        if (tok_buf_write(&b, msg, n) != TOK_OK ||
            tok_buf_printf(&b, " at byte %zu", off) != TOK_OK || tok_buf_cstr(&b, &s) != TOK_OK)
            err_set_n(err, TOK_JSON_E_MALFORMED, "invalid JSON at byte", off);
        yajl_free_error(h, msg);
    }
}

tok_status tok_json_parse(struct tok_slice body, const struct tok_json_limits *lim,
                          struct tok_json_doc **out, struct tok_json_error *err)
{
    struct tok_json_error scratch;
    struct tok_json_limits defaults = tok_json_limits_default();
    size_t bad = 0;
    if (err == NULL)
        err = &scratch;
    err->code = NULL;
    err->detail[0] = '\0';
    if (out == NULL || (body.ptr == NULL && body.len > 0)) {
        err_set(err, TOK_JSON_E_INTERNAL, "invalid arguments");
        return TOK_ERR_INTERNAL;
    }
    *out = NULL;
    if (lim == NULL)
        lim = &defaults;
    if (!limits_ok(lim)) {
        err_set(err, TOK_JSON_E_INTERNAL, "invalid parser limits");
        return TOK_ERR_INTERNAL;
    }
    if (body.len > lim->max_body) {
        err_set_n(err, TOK_JSON_E_TOO_LARGE, "body larger than", lim->max_body);
        return TOK_ERR_BOUNDS;
    }
    if (body.len == 0) {
        err_set(err, TOK_JSON_E_MALFORMED, "empty body");
        return TOK_ERR_INPUT;
    }
    if (!tok_json_utf8_valid(body, &bad) || !escapes_valid(body, &bad)) {
        err_set_n(err, TOK_JSON_E_INVALID_UTF8, "invalid UTF-8 at byte", bad);
        return TOK_ERR_INPUT;
    }

    struct builder bl = {.lim = lim, .err = err, .st = TOK_OK};
    tok_status st = arena_new(body.len, lim, &bl.doc);
    if (st != TOK_OK) {
        err_set(err, TOK_JSON_E_INTERNAL, "out of memory");
        return st;
    }
    yajl_alloc_funcs afs = {
        .malloc = on_yajl_malloc, .realloc = on_yajl_realloc, .free = on_yajl_free, .ctx = NULL};
    yajl_handle h = yajl_alloc(&builder_callbacks, &afs, &bl);
    if (h == NULL) {
        err_set(err, TOK_JSON_E_INTERNAL, "out of memory");
        st = TOK_ERR_NOMEM;
        goto fail;
    }
    /* both are yajl's defaults; set anyway so a library default change cannot loosen us */
    yajl_config(h, yajl_allow_comments, 0);
    yajl_config(h, yajl_dont_validate_strings, 0);
    yajl_config(h, yajl_allow_trailing_garbage, 0);
    yajl_config(h, yajl_allow_multiple_values, 0);
    yajl_config(h, yajl_allow_partial_values, 0);

    yajl_status ys = yajl_parse(h, body.ptr, body.len);
    size_t off = yajl_get_bytes_consumed(h);
    if (ys == yajl_status_ok) {
        ys = yajl_complete_parse(h);
        off = body.len; /* an error now means the body ended too early */
    }
    switch (ys) {
    case yajl_status_ok:
        st = bl.doc->root != NULL && bl.depth == 0 ? TOK_OK : TOK_ERR_INTERNAL;
        if (st != TOK_OK)
            err_set(err, TOK_JSON_E_INTERNAL, "internal error while parsing");
        break;
    case yajl_status_client_canceled:
        st = bl.st != TOK_OK ? bl.st : TOK_ERR_INTERNAL;
        if (bl.st == TOK_OK)
            err_set(err, TOK_JSON_E_INTERNAL, "internal error while parsing");
        break;
    case yajl_status_error:
        err_from_yajl(err, h, off);
        st = TOK_ERR_INPUT;
        break;
    default:
        err_set(err, TOK_JSON_E_INTERNAL, "internal error while parsing");
        st = TOK_ERR_INTERNAL;
        break;
    }
    yajl_free(h);
    if (st != TOK_OK)
        goto fail;
    err->code = NULL;
    err->detail[0] = '\0';
    *out = bl.doc;
    return TOK_OK;
fail:
    tok_json_doc_free(&bl.doc);
    return st;
}

/* ---- node access --------------------------------------------------------------------------- */

const struct tok_json_node *tok_json_root(const struct tok_json_doc *doc)
{
    return doc == NULL ? NULL : doc->root;
}

enum tok_json_type tok_json_type(const struct tok_json_node *node)
{
    return node == NULL ? TOK_JSON_NULL : (enum tok_json_type)node->type;
}

const struct tok_json_node *tok_json_get(const struct tok_json_node *obj, const char *key)
{
    if (obj == NULL || key == NULL || obj->type != TOK_JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < obj->count; i++) {
        const struct tok_json_node *m = obj->kids[i];
        if (bytes_eq(m->key, m->key_len, (const uint8_t *)key, n))
            return m;
    }
    return NULL;
}

tok_status tok_json_string(const struct tok_json_node *node, struct tok_slice *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(node != NULL && node->type == TOK_JSON_STRING, TOK_ERR_INPUT);
    *out = tok_slice_of(node->str, node->len);
    return TOK_OK;
}

tok_status tok_json_int64(const struct tok_json_node *node, int64_t *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(node != NULL && node->type == TOK_JSON_NUMBER && node->is_integer, TOK_ERR_INPUT);
    *out = node->i64;
    return TOK_OK;
}

tok_status tok_json_number_text(const struct tok_json_node *node, struct tok_slice *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(node != NULL && node->type == TOK_JSON_NUMBER, TOK_ERR_INPUT);
    *out = tok_slice_of(node->str, node->len);
    return TOK_OK;
}

tok_status tok_json_bool(const struct tok_json_node *node, bool *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(node != NULL && node->type == TOK_JSON_BOOL, TOK_ERR_INPUT);
    *out = node->b;
    return TOK_OK;
}

size_t tok_json_object_size(const struct tok_json_node *obj)
{
    return obj != NULL && obj->type == TOK_JSON_OBJECT ? obj->count : 0;
}

tok_status tok_json_object_at(const struct tok_json_node *obj, size_t i, struct tok_slice *key,
                              const struct tok_json_node **val)
{
    TOK_ENSURE(obj != NULL && obj->type == TOK_JSON_OBJECT, TOK_ERR_INPUT);
    TOK_ENSURE(i < obj->count, TOK_ERR_BOUNDS);
    const struct tok_json_node *m = obj->kids[i];
    if (key != NULL)
        *key = tok_slice_of(m->key, m->key_len);
    if (val != NULL)
        *val = m;
    return TOK_OK;
}

size_t tok_json_array_size(const struct tok_json_node *arr)
{
    return arr != NULL && arr->type == TOK_JSON_ARRAY ? arr->count : 0;
}

tok_status tok_json_array_at(const struct tok_json_node *arr, size_t i,
                             const struct tok_json_node **val)
{
    TOK_ENSURE(val != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(arr != NULL && arr->type == TOK_JSON_ARRAY, TOK_ERR_INPUT);
    TOK_ENSURE(i < arr->count, TOK_ERR_BOUNDS);
    *val = arr->kids[i];
    return TOK_OK;
}

tok_status tok_json_check_keys(const struct tok_json_node *obj, const char *const allowed[],
                               size_t n, struct tok_slice *unknown_out)
{
    if (unknown_out != NULL)
        *unknown_out = tok_slice_of(NULL, 0);
    TOK_ENSURE(allowed != NULL || n == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(obj != NULL && obj->type == TOK_JSON_OBJECT, TOK_ERR_INPUT);
    for (uint32_t i = 0; i < obj->count; i++) {
        const struct tok_json_node *m = obj->kids[i];
        bool known = false;
        for (size_t j = 0; j < n && !known; j++)
            known = allowed[j] != NULL &&
                    bytes_eq(m->key, m->key_len, (const uint8_t *)allowed[j], strlen(allowed[j]));
        if (known)
            continue;
        if (unknown_out != NULL)
            *unknown_out = tok_slice_of(m->key, m->key_len);
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

bool tok_json_key_echoable(struct tok_slice key)
{
    if (key.len == 0 || key.len > TOK_JSON_KEY_ECHO_MAX)
        return false;
    size_t digits = 0;
    for (size_t i = 0; i < key.len; i++) {
        uint8_t c = key.ptr[i];
        if (c < 0x20 || c > 0x7e)
            return false;
        if (c >= '0' && c <= '9')
            digits++;
    }
    return digits < 8;
}

/* ---- writer -------------------------------------------------------------------------------- */

/* Bytes a JSON string may carry as they are: printable ASCII except the quote and backslash. */
static bool plain_byte(uint8_t c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static tok_status w_string_body(struct tok_buf *b, struct tok_slice s)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    size_t i = 0;
    while (i < s.len) {
        while (i < s.len && plain_byte(s.ptr[i])) /* the common case, in one tight loop */
            i++;
        if (i == s.len)
            break;
        uint8_t c = s.ptr[i];
        size_t k = 1;
        const char *esc = NULL;
        uint8_t u[6] = {'\\', 'u', '0', '0', 0, 0};
        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c < 0x20) {
            u[4] = (uint8_t)hex[c >> 4];
            u[5] = (uint8_t)hex[c & 0xF];
        } else if (c >= 0x80) {
            k = utf8_seq(s.ptr + i, s.len - i);
            if (k == 0) {
                esc = "\\ufffd";
                k = 1;
            } else if (k == 3 && c == 0xE2 && s.ptr[i + 1] == 0x80 &&
                       (s.ptr[i + 2] == 0xA8 || s.ptr[i + 2] == 0xA9)) {
                esc = s.ptr[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
            } else {
                i += k;
                continue;
            }
        } else {
            i++;
            continue;
        }
        TOK_GUARD(tok_buf_write(b, s.ptr + run, i - run));
        if (esc != NULL)
            TOK_GUARD(tok_buf_puts(b, esc));
        else
            TOK_GUARD(tok_buf_write(b, u, sizeof u));
        i += k;
        run = i;
    }
    return tok_buf_write(b, s.ptr + run, s.len - run);
}

tok_status tok_json_w_string(struct tok_buf *b, struct tok_slice s)
{
    TOK_ENSURE(b != NULL && (s.ptr != NULL || s.len == 0), TOK_ERR_INTERNAL);
    uint32_t mark = b->len;
    tok_status st = tok_buf_putc(b, '"');
    if (st == TOK_OK)
        st = w_string_body(b, s);
    if (st == TOK_OK)
        st = tok_buf_putc(b, '"');
    if (st != TOK_OK)
        b->len = mark;
    return st;
}

tok_status tok_json_w_key(struct tok_buf *b, const char *name)
{
    TOK_ENSURE(b != NULL && name != NULL, TOK_ERR_INTERNAL);
    uint32_t mark = b->len;
    tok_status st = tok_json_w_string(b, tok_slice_str(name));
    if (st == TOK_OK)
        st = tok_buf_putc(b, ':');
    if (st != TOK_OK)
        b->len = mark;
    return st;
}

tok_status tok_json_w_int64(struct tok_buf *b, int64_t v)
{
    TOK_ENSURE(b != NULL, TOK_ERR_INTERNAL);
    return tok_buf_printf(b, "%" PRId64, v);
}

tok_status tok_json_w_bool(struct tok_buf *b, bool v)
{
    TOK_ENSURE(b != NULL, TOK_ERR_INTERNAL);
    return tok_buf_puts(b, v ? "true" : "false");
}

tok_status tok_json_w_null(struct tok_buf *b)
{
    TOK_ENSURE(b != NULL, TOK_ERR_INTERNAL);
    return tok_buf_puts(b, "null");
}

void tok_jw_init(struct tok_json_writer *w, struct tok_buf *b)
{
    *w = (struct tok_json_writer){.b = b, .st = b == NULL ? TOK_ERR_INTERNAL : TOK_OK};
}

tok_status tok_jw_finish(const struct tok_json_writer *w)
{
    TOK_ENSURE(w != NULL, TOK_ERR_INTERNAL);
    TOK_GUARD(w->st);
    TOK_ENSURE(w->depth == 0 && w->need_comma[0] && !w->have_key, TOK_ERR_INTERNAL);
    return TOK_OK;
}

static void jw_fail(struct tok_json_writer *w, tok_status st)
{
    if (w->st == TOK_OK)
        w->st = st;
}

/* Everything a value needs before it: a comma, and a key when inside an object. */
static bool jw_before_value(struct tok_json_writer *w)
{
    if (w->st != TOK_OK)
        return false;
    int d = w->depth;
    if (d == 0 && w->need_comma[0]) {
        jw_fail(w, TOK_ERR_INTERNAL); /* a second top-level value */
        return false;
    }
    if (w->is_object[d]) {
        if (!w->have_key) {
            jw_fail(w, TOK_ERR_INTERNAL);
            return false;
        }
        w->have_key = false;
        return true;
    }
    if (w->need_comma[d]) {
        tok_status st = tok_buf_putc(w->b, ',');
        if (st != TOK_OK) {
            jw_fail(w, st);
            return false;
        }
    }
    return true;
}

static void jw_after_value(struct tok_json_writer *w, tok_status st)
{
    if (st != TOK_OK) {
        jw_fail(w, st);
        return;
    }
    w->need_comma[w->depth] = true;
}

static void jw_open(struct tok_json_writer *w, bool object)
{
    if (!jw_before_value(w))
        return;
    if (w->depth >= TOK_JSON_W_MAX_DEPTH) {
        jw_fail(w, TOK_ERR_BOUNDS);
        return;
    }
    tok_status st = tok_buf_putc(w->b, object ? '{' : '[');
    if (st != TOK_OK) {
        jw_fail(w, st);
        return;
    }
    w->depth++;
    w->need_comma[w->depth] = false;
    w->is_object[w->depth] = object;
}

static void jw_close(struct tok_json_writer *w, bool object)
{
    if (w->st != TOK_OK)
        return;
    if (w->depth == 0 || w->is_object[w->depth] != object || w->have_key) {
        jw_fail(w, TOK_ERR_INTERNAL);
        return;
    }
    tok_status st = tok_buf_putc(w->b, object ? '}' : ']');
    if (st != TOK_OK) {
        jw_fail(w, st);
        return;
    }
    w->depth--;
    w->need_comma[w->depth] = true;
}

void tok_jw_obj_begin(struct tok_json_writer *w)
{
    jw_open(w, true);
}

void tok_jw_obj_end(struct tok_json_writer *w)
{
    jw_close(w, true);
}

void tok_jw_arr_begin(struct tok_json_writer *w)
{
    jw_open(w, false);
}

void tok_jw_arr_end(struct tok_json_writer *w)
{
    jw_close(w, false);
}

void tok_jw_key(struct tok_json_writer *w, const char *name)
{
    if (w->st != TOK_OK)
        return;
    int d = w->depth;
    if (!w->is_object[d] || w->have_key || name == NULL) {
        jw_fail(w, TOK_ERR_INTERNAL);
        return;
    }
    uint32_t mark = w->b->len;
    tok_status st = w->need_comma[d] ? tok_buf_putc(w->b, ',') : TOK_OK;
    if (st == TOK_OK)
        st = tok_json_w_key(w->b, name);
    if (st != TOK_OK) {
        w->b->len = mark;
        jw_fail(w, st);
        return;
    }
    w->have_key = true;
}

void tok_jw_strn(struct tok_json_writer *w, struct tok_slice s)
{
    if (s.ptr == NULL && s.len > 0) {
        jw_fail(w, TOK_ERR_INTERNAL);
        return;
    }
    if (!jw_before_value(w))
        return;
    jw_after_value(w, tok_json_w_string(w->b, s));
}

void tok_jw_str(struct tok_json_writer *w, const char *s)
{
    if (s == NULL) {
        tok_jw_null(w);
        return;
    }
    tok_jw_strn(w, tok_slice_str(s));
}

void tok_jw_int(struct tok_json_writer *w, int64_t v)
{
    if (!jw_before_value(w))
        return;
    jw_after_value(w, tok_json_w_int64(w->b, v));
}

void tok_jw_bool(struct tok_json_writer *w, bool v)
{
    if (!jw_before_value(w))
        return;
    jw_after_value(w, tok_json_w_bool(w->b, v));
}

void tok_jw_kstr(struct tok_json_writer *w, const char *key, const char *s)
{
    tok_jw_key(w, key);
    tok_jw_str(w, s);
}

void tok_jw_kint(struct tok_json_writer *w, const char *key, int64_t v)
{
    tok_jw_key(w, key);
    tok_jw_int(w, v);
}

void tok_jw_kbool(struct tok_json_writer *w, const char *key, bool v)
{
    tok_jw_key(w, key);
    tok_jw_bool(w, v);
}

void tok_jw_null(struct tok_json_writer *w)
{
    if (!jw_before_value(w))
        return;
    jw_after_value(w, tok_json_w_null(w->b));
}

void tok_jw_raw(struct tok_json_writer *w, struct tok_slice json)
{
    if (!jw_before_value(w))
        return;
    jw_after_value(w, tok_buf_write(w->b, json.ptr, json.len));
}
