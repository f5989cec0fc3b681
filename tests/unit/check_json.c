/*
 * check_json.c - the JSON reader (strictness, limits, hostile input) and writer (escaping,
 * sticky errors).
 */
#include "tokend/core/json.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Parses a C string with the default limits; returns the status, fills err, frees the doc. */
static tok_status parse_str(const char *s, struct tok_json_error *err)
{
    struct tok_json_doc *doc = NULL;
    tok_status st = tok_json_parse(tok_slice_str(s), NULL, &doc, err);
    if (st == TOK_OK)
        ck_assert_ptr_nonnull(doc);
    else
        ck_assert_ptr_null(doc);
    tok_json_doc_free(&doc);
    return st;
}

static tok_status parse_bytes(const void *p, size_t n, struct tok_json_error *err)
{
    struct tok_json_doc *doc = NULL;
    tok_status st = tok_json_parse(tok_slice_of(p, n), NULL, &doc, err);
    tok_json_doc_free(&doc);
    return st;
}

static void expect_code(const char *body, tok_status want_st, const char *want_code)
{
    struct tok_json_error err;
    tok_status st = parse_str(body, &err);
    ck_assert_msg(st == want_st, "body %s: status %s, want %s", body, tok_status_name(st),
                  tok_status_name(want_st));
    ck_assert_ptr_nonnull(err.code);
    ck_assert_str_eq(err.code, want_code);
}

/* A body of `depth` nested arrays: [[[...]]] */
static char *nested(size_t depth, bool closed)
{
    char *s = malloc(2 * depth + 1);
    ck_assert_ptr_nonnull(s);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++)
        s[n++] = '[';
    for (size_t i = 0; closed && i < depth; i++)
        s[n++] = ']';
    s[n] = '\0';
    return s;
}

static bool slice_is(struct tok_slice s, const char *want)
{
    return tok_slice_eq(s, want);
}

/* ---- core ---------------------------------------------------------------------------------- */

START_TEST(test_parse_nested_object)
{
    const char *body = "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,"
                       "\"exp_year\":2030,\"cvc\":\"123\"},\"save\":true,\"meta\":null,"
                       "\"tags\":[\"a\",\"b\\n\\u00e9\"],\"amount\":-150}";
    struct tok_json_doc *doc = NULL;
    struct tok_json_error err;
    ck_assert_int_eq(tok_json_parse(tok_slice_str(body), NULL, &doc, &err), TOK_OK);
    ck_assert_ptr_null(err.code);
    const struct tok_json_node *root = tok_json_root(doc);
    ck_assert_int_eq(tok_json_type(root), TOK_JSON_OBJECT);
    ck_assert_uint_eq(tok_json_object_size(root), 5);

    const struct tok_json_node *card = tok_json_get(root, "card");
    ck_assert_int_eq(tok_json_type(card), TOK_JSON_OBJECT);
    struct tok_slice s;
    ck_assert_int_eq(tok_json_string(tok_json_get(card, "number"), &s), TOK_OK);
    ck_assert(slice_is(s, "4242424242424242"));
    int64_t v = 0;
    ck_assert_int_eq(tok_json_int64(tok_json_get(card, "exp_year"), &v), TOK_OK);
    ck_assert_int_eq(v, 2030);
    ck_assert_int_eq(tok_json_int64(tok_json_get(root, "amount"), &v), TOK_OK);
    ck_assert_int_eq(v, -150);
    bool b = false;
    ck_assert_int_eq(tok_json_bool(tok_json_get(root, "save"), &b), TOK_OK);
    ck_assert(b);
    ck_assert_ptr_nonnull(tok_json_get(root, "meta"));
    ck_assert_int_eq(tok_json_type(tok_json_get(root, "meta")), TOK_JSON_NULL);

    const struct tok_json_node *tags = tok_json_get(root, "tags");
    ck_assert_int_eq(tok_json_type(tags), TOK_JSON_ARRAY);
    ck_assert_uint_eq(tok_json_array_size(tags), 2);
    const struct tok_json_node *t = NULL;
    ck_assert_int_eq(tok_json_array_at(tags, 1, &t), TOK_OK);
    ck_assert_int_eq(tok_json_string(t, &s), TOK_OK);
    ck_assert(slice_is(s, "b\n\xc3\xa9"));
    ck_assert_int_eq(tok_json_array_at(tags, 2, &t), TOK_ERR_BOUNDS);

    /* members come back in document order */
    struct tok_slice key;
    const struct tok_json_node *val = NULL;
    ck_assert_int_eq(tok_json_object_at(root, 0, &key, &val), TOK_OK);
    ck_assert(slice_is(key, "card"));
    ck_assert_ptr_eq(val, card);
    ck_assert_int_eq(tok_json_object_at(root, 4, &key, &val), TOK_OK);
    ck_assert(slice_is(key, "amount"));
    ck_assert_int_eq(tok_json_object_at(root, 5, &key, &val), TOK_ERR_BOUNDS);
    tok_json_doc_free(&doc);
    ck_assert_ptr_null(doc);
    tok_json_doc_free(&doc); /* NULL-safe */
}
END_TEST

START_TEST(test_accessor_type_errors)
{
    struct tok_json_doc *doc = NULL;
    const char *body = "{\"s\":\"12\",\"i\":7,\"f\":1.5,\"b\":false,\"a\":[],\"o\":{}}";
    ck_assert_int_eq(tok_json_parse(tok_slice_str(body), NULL, &doc, NULL), TOK_OK);
    const struct tok_json_node *root = tok_json_root(doc);
    struct tok_slice s;
    int64_t v;
    bool b;
    ck_assert_int_eq(tok_json_string(tok_json_get(root, "i"), &s), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_json_string(tok_json_get(root, "missing"), &s), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_json_int64(tok_json_get(root, "s"), &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_json_int64(tok_json_get(root, "f"), &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_json_int64(NULL, &v), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_json_bool(tok_json_get(root, "s"), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_json_bool(tok_json_get(root, "b"), &b), TOK_OK);
    ck_assert(!b);
    ck_assert_int_eq(tok_json_number_text(tok_json_get(root, "f"), &s), TOK_OK);
    ck_assert(slice_is(s, "1.5"));
    ck_assert_int_eq(tok_json_number_text(tok_json_get(root, "s"), &s), TOK_ERR_INPUT);
    /* get on a non-object, size of the wrong kind */
    ck_assert_ptr_null(tok_json_get(tok_json_get(root, "a"), "x"));
    ck_assert_ptr_null(tok_json_get(NULL, "x"));
    ck_assert_uint_eq(tok_json_object_size(tok_json_get(root, "a")), 0);
    ck_assert_uint_eq(tok_json_array_size(tok_json_get(root, "o")), 0);
    ck_assert_uint_eq(tok_json_array_size(tok_json_get(root, "a")), 0);
    ck_assert_int_eq(tok_json_array_at(tok_json_get(root, "o"), 0, &root), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_json_object_at(tok_json_get(root, "a"), 0, NULL, NULL), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_json_object_at(tok_json_get(root, "o"), 0, NULL, NULL), TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_json_type(NULL), TOK_JSON_NULL);
    tok_json_doc_free(&doc);
}
END_TEST

START_TEST(test_check_keys)
{
    struct tok_json_doc *doc = NULL;
    static const char *const allowed[] = {"number", "cvc", "exp_month"};
    struct tok_slice unknown;
    ck_assert_int_eq(
        tok_json_parse(tok_slice_str("{\"number\":\"x\",\"cvc\":\"1\"}"), NULL, &doc, NULL),
        TOK_OK);
    ck_assert_int_eq(tok_json_check_keys(tok_json_root(doc), allowed, 3, &unknown), TOK_OK);
    tok_json_doc_free(&doc);

    ck_assert_int_eq(tok_json_parse(tok_slice_str("{\"number\":\"x\",\"admin\":true,\"z\":1}"),
                                    NULL, &doc, NULL),
                     TOK_OK);
    ck_assert_int_eq(tok_json_check_keys(tok_json_root(doc), allowed, 3, &unknown),
                     TOK_ERR_INPUT);
    ck_assert(slice_is(unknown, "admin"));
    /* a prefix of an allowed name is not that name */
    tok_json_doc_free(&doc);
    ck_assert_int_eq(tok_json_parse(tok_slice_str("{\"numbe\":1}"), NULL, &doc, NULL), TOK_OK);
    ck_assert_int_eq(tok_json_check_keys(tok_json_root(doc), allowed, 3, &unknown),
                     TOK_ERR_INPUT);
    ck_assert(slice_is(unknown, "numbe"));
    tok_json_doc_free(&doc);

    ck_assert_int_eq(tok_json_parse(tok_slice_str("[1]"), NULL, &doc, NULL), TOK_OK);
    ck_assert_int_eq(tok_json_check_keys(tok_json_root(doc), allowed, 3, &unknown),
                     TOK_ERR_INPUT);
    ck_assert_uint_eq(unknown.len, 0);
    tok_json_doc_free(&doc);
}
END_TEST

START_TEST(test_scalar_roots_and_whitespace)
{
    struct tok_json_doc *doc = NULL;
    ck_assert_int_eq(tok_json_parse(tok_slice_str(" \"x\" \n"), NULL, &doc, NULL), TOK_OK);
    ck_assert_int_eq(tok_json_type(tok_json_root(doc)), TOK_JSON_STRING);
    tok_json_doc_free(&doc);
    ck_assert_int_eq(tok_json_parse(tok_slice_str("42"), NULL, &doc, NULL), TOK_OK);
    int64_t v = 0;
    ck_assert_int_eq(tok_json_int64(tok_json_root(doc), &v), TOK_OK);
    ck_assert_int_eq(v, 42);
    tok_json_doc_free(&doc);
    ck_assert_int_eq(tok_json_parse(tok_slice_str("null"), NULL, &doc, NULL), TOK_OK);
    ck_assert_int_eq(tok_json_type(tok_json_root(doc)), TOK_JSON_NULL);
    tok_json_doc_free(&doc);
}
END_TEST

START_TEST(test_numbers)
{
    struct tok_json_doc *doc = NULL;
    struct tok_json_error err;
    int64_t v = 0;
    const char *body = "[9223372036854775807,-9223372036854775808,-0,0,1.5,1e3,1E3,-1.0e-2]";
    ck_assert_int_eq(tok_json_parse(tok_slice_str(body), NULL, &doc, &err), TOK_OK);
    const struct tok_json_node *a = tok_json_root(doc), *n = NULL;
    ck_assert_int_eq(tok_json_array_at(a, 0, &n), TOK_OK);
    ck_assert_int_eq(tok_json_int64(n, &v), TOK_OK);
    ck_assert(v == INT64_MAX);
    ck_assert_int_eq(tok_json_array_at(a, 1, &n), TOK_OK);
    ck_assert_int_eq(tok_json_int64(n, &v), TOK_OK);
    ck_assert(v == INT64_MIN);
    ck_assert_int_eq(tok_json_array_at(a, 2, &n), TOK_OK); /* -0 is the integer 0 */
    ck_assert_int_eq(tok_json_int64(n, &v), TOK_OK);
    ck_assert_int_eq(v, 0);
    for (size_t i = 4; i < 8; i++) { /* only plain integer literals are integers */
        ck_assert_int_eq(tok_json_array_at(a, i, &n), TOK_OK);
        ck_assert_int_eq(tok_json_type(n), TOK_JSON_NUMBER);
        ck_assert_int_eq(tok_json_int64(n, &v), TOK_ERR_INPUT);
    }
    struct tok_slice s;
    ck_assert_int_eq(tok_json_number_text(n, &s), TOK_OK);
    ck_assert(slice_is(s, "-1.0e-2"));
    tok_json_doc_free(&doc);

    expect_code("9223372036854775808", TOK_ERR_INPUT, TOK_JSON_E_NUMBER_RANGE);
    expect_code("-9223372036854775809", TOK_ERR_INPUT, TOK_JSON_E_NUMBER_RANGE);
    expect_code("{\"amount\":99999999999999999999999}", TOK_ERR_INPUT, TOK_JSON_E_NUMBER_RANGE);
    /* not JSON numbers */
    expect_code("01", TOK_ERR_INPUT, TOK_JSON_E_MALFORMED);
    expect_code("+1", TOK_ERR_INPUT, TOK_JSON_E_MALFORMED);
    expect_code("1.", TOK_ERR_INPUT, TOK_JSON_E_MALFORMED);
    expect_code("NaN", TOK_ERR_INPUT, TOK_JSON_E_MALFORMED);
    expect_code("[Infinity]", TOK_ERR_INPUT, TOK_JSON_E_MALFORMED);
}
END_TEST

START_TEST(test_duplicate_keys)
{
    struct tok_json_error err;
    ck_assert_int_eq(parse_str("{\"cvc\":\"123\",\"cvc\":\"456\"}", &err), TOK_ERR_INPUT);
    ck_assert_str_eq(err.code, TOK_JSON_E_DUPLICATE_KEY);
    ck_assert_ptr_nonnull(strstr(err.detail, "\"cvc\""));
    ck_assert_ptr_null(strstr(err.detail, "123"));
    ck_assert_ptr_null(strstr(err.detail, "456"));

    ck_assert_int_eq(parse_str("{\"a\":{\"b\":1,\"c\":2,\"b\":3}}", &err), TOK_ERR_INPUT);
    ck_assert_str_eq(err.code, TOK_JSON_E_DUPLICATE_KEY);
    ck_assert_ptr_nonnull(strstr(err.detail, "\"b\""));

    /* the same key in two different objects is fine */
    ck_assert_int_eq(parse_str("{\"a\":{\"x\":1},\"b\":{\"x\":1},\"x\":[{\"x\":1},{\"x\":2}]}", &err),
                     TOK_OK);
    /* keys that differ only after an escape are still equal once decoded */
    ck_assert_int_eq(parse_str("{\"pan\":1,\"p\\u0061n\":2}", &err), TOK_ERR_INPUT);
    ck_assert_str_eq(err.code, TOK_JSON_E_DUPLICATE_KEY);
}
END_TEST

START_TEST(test_duplicate_key_not_echoed_when_unsafe)
{
    struct tok_json_error err;
    /* a PAN used as a key must never come back in the detail */
    ck_assert_int_eq(parse_str("{\"4242424242424242\":1,\"4242424242424242\":2}", &err),
                     TOK_ERR_INPUT);
    ck_assert_str_eq(err.code, TOK_JSON_E_DUPLICATE_KEY);
    ck_assert_ptr_null(strstr(err.detail, "4242"));
    /* non-ASCII or long keys are not echoed either */
    ck_assert_int_eq(parse_str("{\"\xc3\xa9\":1,\"\xc3\xa9\":2}", &err), TOK_ERR_INPUT);
    ck_assert_ptr_null(strstr(err.detail, "\xc3"));
    char body[256];
    char key[66];
    memset(key, 'k', 65);
    key[65] = '\0';
    struct tok_buf bb;
    const char *bs = NULL;
    tok_buf_init(&bb, body, sizeof body);
    ck_assert_int_eq(tok_buf_printf(&bb, "{\"%s\":1,\"%s\":2}", key, key), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&bb, &bs), TOK_OK);
    ck_assert_int_eq(parse_str(bs, &err), TOK_ERR_INPUT);
    ck_assert_str_eq(err.code, TOK_JSON_E_DUPLICATE_KEY);
    ck_assert_ptr_null(strstr(err.detail, "kkkk"));
    ck_assert(tok_json_key_echoable(tok_slice_str("exp_month")));
    ck_assert(!tok_json_key_echoable(tok_slice_str("")));
    ck_assert(!tok_json_key_echoable(tok_slice_str("a\tb")));
}
END_TEST

START_TEST(test_repeated_parse_free)
{
    const char *body = "{\"card\":{\"number\":\"4242424242424242\",\"cvc\":\"123\","
                       "\"name\":\"J\\u00f6rg \\\"x\\\"\"},\"list\":[1,2,3,{\"k\":[true]}]}";
    for (int i = 0; i < 1000; i++) {
        struct tok_json_doc *doc = NULL;
        ck_assert_int_eq(tok_json_parse(tok_slice_str(body), NULL, &doc, NULL), TOK_OK);
        struct tok_slice s;
        ck_assert_int_eq(tok_json_string(tok_json_get(tok_json_get(tok_json_root(doc), "card"),
                                                      "cvc"),
                                         &s),
                         TOK_OK);
        ck_assert(slice_is(s, "123"));
        tok_json_doc_free(&doc);
        ck_assert_ptr_null(doc);
        /* failures release everything too */
        ck_assert_int_eq(parse_str("{\"a\":1,\"a\":2}", NULL), TOK_ERR_INPUT);
    }
}
END_TEST

/* ---- writer -------------------------------------------------------------------------------- */

static const char *w_str(struct tok_buf *b, const void *p, size_t n)
{
    const char *out = NULL;
    tok_buf_reset(b);
    ck_assert_int_eq(tok_json_w_string(b, tok_slice_of(p, n)), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(b, &out), TOK_OK);
    return out;
}

START_TEST(test_writer_escaping)
{
    uint8_t mem[256];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_str_eq(w_str(&b, "plain", 5), "\"plain\"");
    ck_assert_str_eq(w_str(&b, "a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    ck_assert_str_eq(w_str(&b, "\n\t\x01\x1f", 4), "\"\\u000a\\u0009\\u0001\\u001f\"");
    ck_assert_str_eq(w_str(&b, "a\0b", 3), "\"a\\u0000b\"");
    ck_assert_str_eq(w_str(&b, "/\x7f", 2), "\"/\x7f\"");
    ck_assert_str_eq(w_str(&b, "", 0), "\"\"");
    /* valid UTF-8 passes through; U+2028/2029 are escaped for <script> embedding */
    ck_assert_str_eq(w_str(&b, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9),
                     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    ck_assert_str_eq(w_str(&b, "\xe2\x80\xa8\xe2\x80\xa9", 6), "\"\\u2028\\u2029\"");
    /* invalid UTF-8: each bad byte becomes U+FFFD */
    ck_assert_str_eq(w_str(&b, "a\xff" "b", 3), "\"a\\ufffdb\"");
    ck_assert_str_eq(w_str(&b, "\xc0\xaf", 2), "\"\\ufffd\\ufffd\"");
    ck_assert_str_eq(w_str(&b, "\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\"");
    ck_assert_str_eq(w_str(&b, "x\xe2\x82", 3), "\"x\\ufffd\\ufffd\"");
    const char *out = w_str(&b, "\xf4\x90\x80\x80", 4);
    ck_assert(tok_json_utf8_valid(tok_slice_str(out), NULL));

    tok_buf_reset(&b);
    ck_assert_int_eq(tok_json_w_key(&b, "k\"ey"), TOK_OK);
    ck_assert_int_eq(tok_json_w_int64(&b, INT64_MIN), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&b, &out), TOK_OK);
    ck_assert_str_eq(out, "\"k\\\"ey\":-9223372036854775808");
}
END_TEST

START_TEST(test_writer_state_machine)
{
    uint8_t mem[256];
    struct tok_buf b;
    struct tok_json_writer w;
    const char *out = NULL;
    tok_buf_init(&b, mem, sizeof mem);
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "id");
    tok_jw_str(&w, "tok_1");
    tok_jw_key(&w, "n");
    tok_jw_int(&w, -5);
    tok_jw_key(&w, "ok");
    tok_jw_bool(&w, true);
    tok_jw_key(&w, "none");
    tok_jw_null(&w);
    tok_jw_key(&w, "arr");
    tok_jw_arr_begin(&w);
    tok_jw_strn(&w, tok_slice_of("a\0", 2));
    tok_jw_arr_begin(&w);
    tok_jw_arr_end(&w);
    tok_jw_obj_begin(&w);
    tok_jw_obj_end(&w);
    tok_jw_int(&w, 1);
    tok_jw_arr_end(&w);
    tok_jw_obj_end(&w);
    ck_assert_int_eq(tok_jw_finish(&w), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&b, &out), TOK_OK);
    ck_assert_str_eq(out, "{\"id\":\"tok_1\",\"n\":-5,\"ok\":true,\"none\":null,"
                          "\"arr\":[\"a\\u0000\",[],{},1]}");

    /* the writer's output is something our own reader accepts */
    struct tok_json_doc *doc = NULL;
    ck_assert_int_eq(tok_json_parse(tok_buf_slice(&b), NULL, &doc, NULL), TOK_OK);
    tok_json_doc_free(&doc);
}
END_TEST

/* the member shorthands write exactly what key + value would */
START_TEST(test_writer_members)
{
    uint8_t mem[128];
    struct tok_buf b;
    struct tok_json_writer w;
    const char *out = NULL;
    tok_buf_init(&b, mem, sizeof mem);
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "id", "tok_1");
    tok_jw_kstr(&w, "none", NULL);
    tok_jw_kint(&w, "n", -5);
    tok_jw_kbool(&w, "ok", false);
    tok_jw_obj_end(&w);
    ck_assert_int_eq(tok_jw_finish(&w), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&b, &out), TOK_OK);
    ck_assert_str_eq(out, "{\"id\":\"tok_1\",\"none\":null,\"n\":-5,\"ok\":false}");
    /* outside an object a member is misuse, as a key would be */
    tok_buf_init(&b, mem, sizeof mem);
    tok_jw_init(&w, &b);
    tok_jw_arr_begin(&w);
    tok_jw_kint(&w, "n", 1);
    ck_assert_int_eq(tok_jw_finish(&w), TOK_ERR_INTERNAL);
}
END_TEST

START_TEST(test_writer_misuse_is_internal)
{
    uint8_t mem[64];
    struct tok_buf b;
    struct tok_json_writer w;
    tok_buf_init(&b, mem, sizeof mem);

    tok_jw_init(&w, &b); /* value without a key inside an object */
    tok_jw_obj_begin(&w);
    tok_jw_int(&w, 1);
    ck_assert_int_eq(tok_jw_finish(&w), TOK_ERR_INTERNAL);

    tok_buf_reset(&b);
    tok_jw_init(&w, &b); /* key inside an array */
    tok_jw_arr_begin(&w);
    tok_jw_key(&w, "k");
    ck_assert_int_eq(tok_jw_finish(&w), TOK_ERR_INTERNAL);

    tok_buf_reset(&b);
    tok_jw_init(&w, &b); /* mismatched end */
    tok_jw_arr_begin(&w);
    tok_jw_obj_end(&w);
    ck_assert_int_eq(tok_jw_finish(&w), TOK_ERR_INTERNAL);

    tok_buf_reset(&b);
    tok_jw_init(&w, &b); /* unfinished document */
    tok_jw_obj_begin(&w);
    ck_assert_int_eq(tok_jw_finish(&w), TOK_ERR_INTERNAL);

    tok_buf_reset(&b);
    tok_jw_init(&w, &b); /* two top-level values */
    tok_jw_int(&w, 1);
    tok_jw_int(&w, 2);
    ck_assert_int_eq(tok_jw_finish(&w), TOK_ERR_INTERNAL);

    tok_buf_reset(&b);
    tok_jw_init(&w, &b); /* nothing written */
    ck_assert_int_eq(tok_jw_finish(&w), TOK_ERR_INTERNAL);
}
END_TEST

/* ---- limits -------------------------------------------------------------------------------- */

START_TEST(test_depth_16_ok_17_refused)
{
    struct tok_json_error err;
    char *s16 = nested(16, true), *s17 = nested(17, true);
    ck_assert_int_eq(parse_str(s16, &err), TOK_OK);
    ck_assert_int_eq(parse_str(s17, &err), TOK_ERR_BOUNDS);
    ck_assert_str_eq(err.code, TOK_JSON_E_TOO_DEEP);
    free(s16);
    free(s17);
    /* objects count the same as arrays */
    char body[512];
    struct tok_buf b;
    tok_buf_init(&b, body, sizeof body);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(tok_buf_puts(&b, "{\"a\":"), TOK_OK);
    ck_assert_int_eq(tok_buf_puts(&b, "1"), TOK_OK);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(tok_buf_putc(&b, '}'), TOK_OK);
    ck_assert_int_eq(parse_bytes(body, b.len, &err), TOK_OK);
    const char *wrapped = NULL;
    struct tok_buf b2;
    char body2[512];
    tok_buf_init(&b2, body2, sizeof body2);
    ck_assert_int_eq(tok_buf_putc(&b2, '['), TOK_OK);
    ck_assert_int_eq(tok_buf_write(&b2, body, b.len), TOK_OK);
    ck_assert_int_eq(tok_buf_putc(&b2, ']'), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&b2, &wrapped), TOK_OK);
    expect_code(wrapped, TOK_ERR_BOUNDS, TOK_JSON_E_TOO_DEEP);
}
END_TEST

START_TEST(test_body_size_limit)
{
    struct tok_json_limits lim = tok_json_limits_default();
    struct tok_json_error err;
    struct tok_json_doc *doc = NULL;
    lim.max_body = 8;
    ck_assert_int_eq(tok_json_parse(tok_slice_str("[1,2,3]"), &lim, &doc, &err), TOK_OK);
    tok_json_doc_free(&doc);
    ck_assert_int_eq(tok_json_parse(tok_slice_str("[1,2,34]"), &lim, &doc, &err), TOK_OK);
    tok_json_doc_free(&doc);
    ck_assert_int_eq(tok_json_parse(tok_slice_str("[1,2,345]"), &lim, &doc, &err),
                     TOK_ERR_BOUNDS);
    ck_assert_str_eq(err.code, TOK_JSON_E_TOO_LARGE);
    ck_assert_ptr_null(doc);

    /* the default: 64 KiB accepted, one byte more refused */
    size_t n = TOK_JSON_DEFAULT_MAX_BODY + 1;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, ' ', n);
    big[0] = '1';
    ck_assert_int_eq(parse_bytes(big, n - 1, &err), TOK_OK);
    ck_assert_int_eq(parse_bytes(big, n, &err), TOK_ERR_BOUNDS);
    ck_assert_str_eq(err.code, TOK_JSON_E_TOO_LARGE);
    free(big);
}
END_TEST

START_TEST(test_string_length_limit)
{
    struct tok_json_error err;
    size_t max = TOK_JSON_DEFAULT_MAX_STRING_LEN;
    char *body = malloc(max + 4);
    ck_assert_ptr_nonnull(body);
    body[0] = '"';
    memset(body + 1, 'a', max + 1);
    body[max + 1] = '"';
    ck_assert_int_eq(parse_bytes(body, max + 2, &err), TOK_OK);
    body[max + 1] = 'a';
    body[max + 2] = '"';
    ck_assert_int_eq(parse_bytes(body, max + 3, &err), TOK_ERR_BOUNDS);
    ck_assert_str_eq(err.code, TOK_JSON_E_TOO_LARGE);
    ck_assert_ptr_null(strstr(err.detail, "aaaa"));
    free(body);

    /* keys are strings too: max bytes ok, max+1 refused */
    char *obj = malloc(max + 8);
    ck_assert_ptr_nonnull(obj);
    for (size_t klen = max; klen <= max + 1; klen++) {
        tok_copy(obj, "{\"", 2);
        memset(obj + 2, 'k', klen);
        tok_copy(obj + 2 + klen, "\":1}", 4);
        tok_status st = parse_bytes(obj, klen + 6, &err);
        ck_assert_int_eq(st, klen == max ? TOK_OK : TOK_ERR_BOUNDS);
        if (st != TOK_OK)
            ck_assert_str_eq(err.code, TOK_JSON_E_TOO_LARGE);
    }
    free(obj);
}
END_TEST

START_TEST(test_node_and_member_limits)
{
    struct tok_json_limits lim = tok_json_limits_default();
    struct tok_json_error err;
    struct tok_json_doc *doc = NULL;
    lim.max_nodes = 4;
    ck_assert_int_eq(tok_json_parse(tok_slice_str("[1,2,3]"), &lim, &doc, &err), TOK_OK);
    tok_json_doc_free(&doc);
    ck_assert_int_eq(tok_json_parse(tok_slice_str("[1,2,3,4]"), &lim, &doc, &err),
                     TOK_ERR_BOUNDS);
    ck_assert_str_eq(err.code, TOK_JSON_E_TOO_LARGE);

    /* default: 64 members per object ok, 65 refused */
    char body[2048];
    struct tok_buf b;
    for (int members = 64; members <= 65; members++) {
        tok_buf_init(&b, body, sizeof body);
        ck_assert_int_eq(tok_buf_putc(&b, '{'), TOK_OK);
        for (int i = 0; i < members; i++)
            ck_assert_int_eq(tok_buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i), TOK_OK);
        ck_assert_int_eq(tok_buf_putc(&b, '}'), TOK_OK);
        tok_status st = parse_bytes(body, b.len, &err);
        ck_assert_int_eq(st, members == 64 ? TOK_OK : TOK_ERR_BOUNDS);
        if (st != TOK_OK)
            ck_assert_str_eq(err.code, TOK_JSON_E_TOO_LARGE);
    }

    /* default: 512 values in all; the array itself is one of them */
    static char arr[4096];
    for (int count = 511; count <= 512; count++) {
        tok_buf_init(&b, arr, sizeof arr);
        ck_assert_int_eq(tok_buf_putc(&b, '['), TOK_OK);
        for (int i = 0; i < count; i++)
            ck_assert_int_eq(tok_buf_puts(&b, i ? ",1" : "1"), TOK_OK);
        ck_assert_int_eq(tok_buf_putc(&b, ']'), TOK_OK);
        ck_assert_int_eq(parse_bytes(arr, b.len, &err), count == 511 ? TOK_OK : TOK_ERR_BOUNDS);
    }
}
END_TEST

START_TEST(test_bad_limits_are_internal)
{
    struct tok_json_limits lim = tok_json_limits_default();
    struct tok_json_doc *doc = NULL;
    struct tok_json_error err;
    lim.max_depth = 0;
    ck_assert_int_eq(tok_json_parse(tok_slice_str("1"), &lim, &doc, &err), TOK_ERR_INTERNAL);
    lim = tok_json_limits_default();
    lim.max_depth = TOK_JSON_HARD_MAX_DEPTH + 1;
    ck_assert_int_eq(tok_json_parse(tok_slice_str("1"), &lim, &doc, &err), TOK_ERR_INTERNAL);
    lim = tok_json_limits_default();
    lim.max_body = TOK_JSON_HARD_MAX_BODY + 1;
    ck_assert_int_eq(tok_json_parse(tok_slice_str("1"), &lim, &doc, &err), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_json_parse(tok_slice_str("1"), NULL, NULL, &err), TOK_ERR_INTERNAL);
    ck_assert_ptr_null(doc);
}
END_TEST

/* ---- adversarial --------------------------------------------------------------------------- */

START_TEST(test_10000_open_brackets)
{
    struct tok_json_error err;
    char *open = nested(10000, false), *closed = nested(10000, true);
    ck_assert_int_eq(parse_str(open, &err), TOK_ERR_BOUNDS);
    ck_assert_str_eq(err.code, TOK_JSON_E_TOO_DEEP);
    ck_assert_int_eq(parse_str(closed, &err), TOK_ERR_BOUNDS);
    ck_assert_str_eq(err.code, TOK_JSON_E_TOO_DEEP);
    free(open);
    free(closed);
    /* and the same with objects */
    size_t n = 10000 * 5;
    char *objs = malloc(n + 1);
    ck_assert_ptr_nonnull(objs);
    for (size_t i = 0; i < n; i += 5)
        tok_copy(objs + i, "{\"a\":", 5);
    objs[n] = '\0';
    expect_code(objs, TOK_ERR_BOUNDS, TOK_JSON_E_TOO_DEEP);
    free(objs);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    static const struct {
        const char *body;
        size_t len;
    } cases[] = {
        {"\"\xff\"", 3},              /* never valid */
        {"\"\xc0\xaf\"", 4},          /* overlong '/' */
        {"\"\xe0\x80\xaf\"", 5},      /* overlong, 3 bytes */
        {"\"\xed\xa0\x80\"", 5},      /* UTF-16 surrogate D800 */
        {"\"\xf4\x90\x80\x80\"", 6},  /* above U+10FFFF */
        {"\"\x80\"", 3},              /* lone continuation */
        {"\"ab\xe2\x82", 5},          /* truncated multibyte at the end */
        {"\"ab\xe2\x82\"", 6},        /* truncated multibyte before the quote */
        {"{\"k\xff\":1}", 8},         /* in a key */
        {"[1,\xff]", 6},              /* outside a string */
        {"\"\\udc00\"", 8},           /* lone low surrogate escape */
        {"\"\\ud800\"", 8},           /* lone high surrogate escape */
        {"\"\\ud800x\"", 9},          /* high surrogate then a plain char */
        {"\"\\ud800\\u0041\"", 14},   /* high surrogate then a non-surrogate escape */
        {"\"\\ud800\\ud800\"", 14},   /* two highs */
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(cases); i++) {
        struct tok_json_error err;
        tok_status st = parse_bytes(cases[i].body, cases[i].len, &err);
        ck_assert_msg(st == TOK_ERR_INPUT, "case %zu: %s", i, tok_status_name(st));
        ck_assert_msg(strcmp(err.code, TOK_JSON_E_INVALID_UTF8) == 0, "case %zu: %s", i,
                      err.code);
    }
    /* a proper pair and the escaped forms of valid characters are fine */
    struct tok_json_doc *doc = NULL;
    struct tok_slice s;
    ck_assert_int_eq(
        tok_json_parse(tok_slice_str("\"\\ud83d\\ude00\\u00e9\\\\u\""), NULL, &doc, NULL), TOK_OK);
    ck_assert_int_eq(tok_json_string(tok_json_root(doc), &s), TOK_OK);
    ck_assert(slice_is(s, "\xf0\x9f\x98\x80\xc3\xa9\\u"));
    tok_json_doc_free(&doc);
    ck_assert(tok_json_utf8_valid(tok_slice_str("\xef\xbf\xbf\xf4\x8f\xbf\xbf"), NULL));
    size_t off = 99;
    ck_assert(!tok_json_utf8_valid(tok_slice_str("ab\xc1\x81"), &off));
    ck_assert_uint_eq(off, 2);
}
END_TEST

/* issue #15: what a JSON string may decode to that PostgreSQL's text and jsonb refuse */
START_TEST(test_text_storable)
{
    ck_assert(tok_json_text_storable(tok_slice_str("")));
    ck_assert(tok_json_text_storable(tok_slice_str("INV-1 caf\xc3\xa9 \xf0\x9f\x98\x80")));
    ck_assert(tok_json_text_storable(tok_slice_of("\x01\x7f", 2))); /* control bytes: storable */
    ck_assert(!tok_json_text_storable(tok_slice_of("a\0b", 3)));
    ck_assert(!tok_json_text_storable(tok_slice_of("\0", 1)));
    ck_assert(!tok_json_text_storable(tok_slice_of("ab\0", 3)));
    ck_assert(!tok_json_text_storable(tok_slice_str("\xed\xa0\x80"))); /* U+D800 as CESU bytes */
    ck_assert(!tok_json_text_storable(tok_slice_str("\xc0\x80")));      /* overlong NUL */
    /* what the parser hands over for "a\u0000b": a NUL inside, refused */
    struct tok_json_doc *doc = NULL;
    struct tok_slice v;
    ck_assert_int_eq(tok_json_parse(tok_slice_str("\"a\\u0000b\""), NULL, &doc, NULL), TOK_OK);
    ck_assert_int_eq(tok_json_string(tok_json_root(doc), &v), TOK_OK);
    ck_assert_uint_eq(v.len, 3);
    ck_assert(!tok_json_text_storable(v));
    tok_json_doc_free(&doc);
}
END_TEST

START_TEST(test_malformed)
{
    static const char *const bodies[] = {
        "{}x",         "{} {}",        "[] []",       "{",          "[1,]",       "{\"a\":1,}",
        "{'a':1}",     "{\"a\"}",      "{a:1}",       "[1 2]",      "\"\\x\"",    "\"\\u12\"",
        "\"\\uzzzz\"", "\"a",          "\"tab\there\"", "tru",      "nul",        "[1]/**/",
        "/* c */ {}",  "// c\n{}",     " ",           "\n\t ",      "]",          "{\"a\":1]",
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(bodies); i++) {
        struct tok_json_error err;
        tok_status st = parse_str(bodies[i], &err);
        ck_assert_msg(st == TOK_ERR_INPUT, "body %zu (%s): %s", i, bodies[i], tok_status_name(st));
        ck_assert_msg(strcmp(err.code, TOK_JSON_E_MALFORMED) == 0, "body %zu: %s", i, err.code);
    }
}
END_TEST

START_TEST(test_empty_body)
{
    struct tok_json_error err;
    struct tok_json_doc *doc = NULL;
    ck_assert_int_eq(tok_json_parse(tok_slice_of(NULL, 0), NULL, &doc, &err), TOK_ERR_INPUT);
    ck_assert_str_eq(err.code, TOK_JSON_E_MALFORMED);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(parse_str("", &err), TOK_ERR_INPUT);
    ck_assert_str_eq(err.code, TOK_JSON_E_MALFORMED);
}
END_TEST

START_TEST(test_detail_never_holds_values)
{
    /* each body is wrong in a different way; none of the value bytes may reach the detail */
    static const char *const bodies[] = {
        "{\"number\":\"4242424242424242\",\"number\":\"4242424242424242\"}",
        "{\"number\":\"4242424242424242\"}x4242424242424242",
        "{\"number\":4242424242424242123456}",
        "{\"number\":\"4242424242424242\xff\"}",
        "{\"number\":4242424242424242 \"4242424242424242\"}",
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(bodies); i++) {
        struct tok_json_error err;
        ck_assert_int_ne(parse_str(bodies[i], &err), TOK_OK);
        ck_assert_msg(strstr(err.detail, "4242") == NULL, "body %zu leaked: %s", i, err.detail);
        ck_assert_uint_lt(strlen(err.detail), sizeof err.detail);
    }
}
END_TEST

START_TEST(test_embedded_nul_and_escapes_decode)
{
    struct tok_json_doc *doc = NULL;
    struct tok_slice s;
    ck_assert_int_eq(tok_json_parse(tok_slice_str("{\"a\":\"x\\u0000y\\/\\b\\f\\r\\t\\\"\"}"),
                                    NULL, &doc, NULL),
                     TOK_OK);
    ck_assert_int_eq(tok_json_string(tok_json_get(tok_json_root(doc), "a"), &s), TOK_OK);
    ck_assert_uint_eq(s.len, 9);
    ck_assert_int_eq(memcmp(s.ptr, "x\0y/\b\f\r\t\"", 9), 0);
    tok_json_doc_free(&doc);
    /* a key holding NUL never matches a shorter C-string lookup */
    ck_assert_int_eq(tok_json_parse(tok_slice_str("{\"pan\\u0000x\":1}"), NULL, &doc, NULL),
                     TOK_OK);
    ck_assert_ptr_null(tok_json_get(tok_json_root(doc), "pan"));
    tok_json_doc_free(&doc);
}
END_TEST

START_TEST(test_writer_sticky_bounds)
{
    uint8_t mem[10];
    struct tok_buf b;
    struct tok_json_writer w;
    tok_buf_init(&b, mem, sizeof mem);
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "token");  /* {"token": = 9 bytes */
    tok_jw_str(&w, "tok_abc"); /* does not fit */
    ck_assert_int_eq(w.st, TOK_ERR_BOUNDS);
    uint32_t len = b.len;
    tok_jw_key(&w, "x"); /* every later call is a no-op */
    tok_jw_int(&w, 1);
    tok_jw_obj_end(&w);
    ck_assert_uint_eq(b.len, len);
    ck_assert_int_eq(tok_jw_finish(&w), TOK_ERR_BOUNDS);

    /* the low-level writers leave the buffer as it was on failure */
    tok_buf_init(&b, mem, 4);
    ck_assert_int_eq(tok_json_w_string(&b, tok_slice_str("abc")), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(tok_json_w_key(&b, "ab"), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(tok_json_w_string(&b, tok_slice_str("\x01")), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(tok_json_w_bool(&b, false), TOK_ERR_BOUNDS);
    ck_assert_int_eq(tok_json_w_null(&b), TOK_OK);
    ck_assert_int_eq(tok_json_w_int64(&b, 1), TOK_ERR_BOUNDS);

    /* nesting beyond the writer's depth */
    uint8_t big[128];
    tok_buf_init(&b, big, sizeof big);
    tok_jw_init(&w, &b);
    for (int i = 0; i < TOK_JSON_W_MAX_DEPTH; i++)
        tok_jw_arr_begin(&w);
    ck_assert_int_eq(w.st, TOK_OK);
    tok_jw_arr_begin(&w);
    ck_assert_int_eq(w.st, TOK_ERR_BOUNDS);
}
END_TEST

Suite *tok_json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *adv = tcase_create("adversarial");

    tcase_add_test(core, test_parse_nested_object);
    tcase_add_test(core, test_accessor_type_errors);
    tcase_add_test(core, test_check_keys);
    tcase_add_test(core, test_scalar_roots_and_whitespace);
    tcase_add_test(core, test_numbers);
    tcase_add_test(core, test_duplicate_keys);
    tcase_add_test(core, test_duplicate_key_not_echoed_when_unsafe);
    tcase_add_test(core, test_writer_escaping);
    tcase_add_test(core, test_writer_members);
    tcase_add_test(core, test_writer_state_machine);
    tcase_add_test(core, test_writer_misuse_is_internal);
    tcase_add_test(core, test_repeated_parse_free);

    tcase_add_test(limits, test_depth_16_ok_17_refused);
    tcase_add_test(limits, test_body_size_limit);
    tcase_add_test(limits, test_string_length_limit);
    tcase_add_test(limits, test_node_and_member_limits);
    tcase_add_test(limits, test_bad_limits_are_internal);
    tcase_add_test(limits, test_writer_sticky_bounds);
    tcase_add_test(adv, test_text_storable);

    tcase_add_test(adv, test_10000_open_brackets);
    tcase_add_test(adv, test_invalid_utf8);
    tcase_add_test(adv, test_malformed);
    tcase_add_test(adv, test_empty_body);
    tcase_add_test(adv, test_detail_never_holds_values);
    tcase_add_test(adv, test_embedded_nul_and_escapes_decode);

    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
