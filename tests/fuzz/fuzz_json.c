/*
 * fuzz_json.c - the JSON reader (service/core/json.c): every request body goes through it.
 *
 * Properties checked on every input, beyond "no sanitizer report":
 *   - a document accepted under tight limits is accepted under the defaults (limits only
 *     ever refuse more);
 *   - every failure carries one of the documented codes and a NUL-terminated detail;
 *   - every string and key of an accepted document is valid UTF-8, every member found by
 *     tok_json_object_at is found again by tok_json_get, tok_json_check_keys accepts the
 *     object's own keys;
 *   - round trip: the document written back with the writer (tok_json_w_string etc.) parses
 *     again to the same tree.
 */
#include "fuzz.h"

#include "tokend/core/json.h"

#include <sodium.h>

#define OUT_MAX TOK_JSON_HARD_MAX_BODY

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

static bool code_known(const char *c)
{
    static const char *const codes[] = {TOK_JSON_E_MALFORMED,     TOK_JSON_E_TOO_DEEP,
                                        TOK_JSON_E_TOO_LARGE,     TOK_JSON_E_DUPLICATE_KEY,
                                        TOK_JSON_E_INVALID_UTF8,  TOK_JSON_E_NUMBER_RANGE,
                                        TOK_JSON_E_INTERNAL};
    for (size_t i = 0; i < TOK_ARRAY_LEN(codes); i++)
        if (c != NULL && strcmp(c, codes[i]) == 0)
            return true;
    return false;
}

static void check_failure(tok_status st, const struct tok_json_error *err)
{
    FUZZ_ASSERT(st == TOK_ERR_INPUT || st == TOK_ERR_BOUNDS || st == TOK_ERR_NOMEM);
    FUZZ_ASSERT(code_known(err->code));
    FUZZ_ASSERT(memchr(err->detail, '\0', sizeof err->detail) != NULL);
}

/* Writes node back as JSON (numbers as sent), checking the accessors on the way. */
static void emit(const struct tok_json_node *n, struct tok_buf *out, int depth)
{
    FUZZ_ASSERT(depth <= (int)TOK_JSON_HARD_MAX_DEPTH);
    struct tok_slice s;
    switch (tok_json_type(n)) {
    case TOK_JSON_NULL:
        FUZZ_ASSERT(tok_json_w_null(out) == TOK_OK);
        return;
    case TOK_JSON_BOOL: {
        bool b = false;
        FUZZ_ASSERT(tok_json_bool(n, &b) == TOK_OK);
        FUZZ_ASSERT(tok_json_w_bool(out, b) == TOK_OK);
        return;
    }
    case TOK_JSON_NUMBER: {
        FUZZ_ASSERT(tok_json_number_text(n, &s) == TOK_OK && s.len > 0);
        int64_t v = 0;
        if (tok_json_int64(n, &v) == TOK_OK) {
            /* only a plain integer literal is an integer, and it reads back as itself */
            char txt[24];
            int k = snprintf(txt, sizeof txt, "%lld", (long long)v);
            bool minus_zero = s.len == 2 && s.ptr[0] == '-' && s.ptr[1] == '0';
            FUZZ_ASSERT(minus_zero || ((size_t)k == s.len && memcmp(txt, s.ptr, s.len) == 0));
        }
        FUZZ_ASSERT(tok_buf_write(out, s.ptr, s.len) == TOK_OK);
        return;
    }
    case TOK_JSON_STRING:
        FUZZ_ASSERT(tok_json_string(n, &s) == TOK_OK);
        FUZZ_ASSERT(tok_json_utf8_valid(s, NULL));
        FUZZ_ASSERT(tok_json_w_string(out, s) == TOK_OK);
        return;
    case TOK_JSON_ARRAY: {
        size_t len = tok_json_array_size(n);
        FUZZ_ASSERT(tok_buf_putc(out, '[') == TOK_OK);
        for (size_t i = 0; i < len; i++) {
            const struct tok_json_node *v = NULL;
            FUZZ_ASSERT(tok_json_array_at(n, i, &v) == TOK_OK && v != NULL);
            if (i > 0)
                FUZZ_ASSERT(tok_buf_putc(out, ',') == TOK_OK);
            emit(v, out, depth + 1);
        }
        FUZZ_ASSERT(tok_json_array_at(n, len, &(const struct tok_json_node *){NULL}) ==
                    TOK_ERR_BOUNDS);
        FUZZ_ASSERT(tok_buf_putc(out, ']') == TOK_OK);
        return;
    }
    case TOK_JSON_OBJECT: {
        size_t len = tok_json_object_size(n);
        FUZZ_ASSERT(len <= TOK_JSON_DEFAULT_MAX_MEMBERS);
        FUZZ_ASSERT(tok_buf_putc(out, '{') == TOK_OK);
        char *keys[TOK_JSON_DEFAULT_MAX_MEMBERS];
        size_t nkeys = 0;
        for (size_t i = 0; i < len; i++) {
            const struct tok_json_node *v = NULL;
            FUZZ_ASSERT(tok_json_object_at(n, i, &s, &v) == TOK_OK && v != NULL);
            FUZZ_ASSERT(tok_json_utf8_valid(s, NULL));
            (void)tok_json_key_echoable(s);
            /* a key without NUL is reachable by name, and names this very member */
            if (memchr(s.ptr, '\0', s.len) == NULL) {
                char *k = malloc(s.len + 1);
                FUZZ_ASSERT(k != NULL);
                memcpy(k, s.ptr, s.len);
                k[s.len] = '\0';
                FUZZ_ASSERT(tok_json_get(n, k) == v);
                keys[nkeys++] = k;
            }
            if (i > 0)
                FUZZ_ASSERT(tok_buf_putc(out, ',') == TOK_OK);
            FUZZ_ASSERT(tok_json_w_string(out, s) == TOK_OK);
            FUZZ_ASSERT(tok_buf_putc(out, ':') == TOK_OK);
            emit(v, out, depth + 1);
        }
        if (nkeys == len) {
            struct tok_slice unknown;
            FUZZ_ASSERT(tok_json_check_keys(n, (const char *const *)keys, nkeys, &unknown) ==
                        TOK_OK);
        }
        for (size_t i = 0; i < nkeys; i++)
            free(keys[i]);
        FUZZ_ASSERT(tok_buf_putc(out, '}') == TOK_OK);
        return;
    }
    default:
        FUZZ_ASSERT(!"unknown node type");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_slice in = tok_slice_of(data, size);
    struct tok_json_error err;
    struct tok_json_doc *doc = NULL;

    struct tok_json_limits tight = {.max_depth = 3, .max_nodes = 12, .max_string_len = 24,
                                    .max_body = 512, .max_members = 4};
    tok_status st_tight = tok_json_parse(in, &tight, &doc, &err);
    if (st_tight == TOK_OK)
        tok_json_doc_free(&doc);
    else
        check_failure(st_tight, &err);
    FUZZ_ASSERT(doc == NULL);

    tok_status st = tok_json_parse(in, NULL, &doc, &err);
    if (st != TOK_OK) {
        check_failure(st, &err);
        FUZZ_ASSERT(doc == NULL);
        /* tighter limits never accept what the defaults refuse */
        FUZZ_ASSERT(st_tight != TOK_OK);
        return 0;
    }
    FUZZ_ASSERT(err.code == NULL);
    FUZZ_ASSERT(tok_json_utf8_valid(in, NULL));

    static uint8_t mem_a[OUT_MAX], mem_b[OUT_MAX];
    struct tok_buf a, b;
    tok_buf_init(&a, mem_a, OUT_MAX);
    tok_buf_init(&b, mem_b, OUT_MAX);
    emit(tok_json_root(doc), &a, 1);
    tok_json_doc_free(&doc);

    /* the written text parses to the same tree: written again, it is the same text (the
     * limits are the defaults but for the body, which escaping may have made longer) */
    struct tok_json_limits lim = tok_json_limits_default();
    lim.max_body = TOK_JSON_HARD_MAX_BODY;
    st = tok_json_parse(tok_buf_slice(&a), &lim, &doc, &err);
    FUZZ_ASSERT(st == TOK_OK);
    emit(tok_json_root(doc), &b, 1);
    tok_json_doc_free(&doc);
    FUZZ_ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    return 0;
}
