/*
 * check_elements.c - the card element's pure parts: query parameters, the IIN
 * table as JSON (one source for C and JS), the CSP, HTML escaping, the page,
 * and the embedded assets matching service/vault/elements/.
 */
#include "tokend/vault/auth.h"
#include "tokend/vault/card.h"
#include "tokend/vault/elements.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tok_slice S(const char *s)
{
    return tok_slice_str(s);
}

/* Runs tok_elements_query_param into a fresh buffer of cap bytes; out gets a C string. */
static tok_status qp(const char *query, const char *name, char *out, uint32_t cap)
{
    static uint8_t mem[4096];
    struct tok_buf b;
    tok_buf_init(&b, mem, cap);
    tok_status st = tok_elements_query_param(S(query), name, &b);
    size_t n = b.len < 4095 ? b.len : 4095;
    tok_copy(out, mem, n);
    out[n] = '\0';
    return st;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static char *page_for(const char *key, const char *origin)
{
    char *mem = calloc(1, TOK_ELEMENTS_PAGE_MAX + 1);
    ck_assert_ptr_nonnull(mem);
    struct tok_buf b;
    tok_buf_init(&b, mem, TOK_ELEMENTS_PAGE_MAX);
    ck_assert_int_eq(tok_elements_page(S(key), S(origin), &b), TOK_OK);
    mem[b.len] = '\0';
    return mem;
}

/* ---- core ----------------------------------------------------------------------- */

START_TEST(test_query_param_decodes)
{
    char out[512];
    const char *q = "key=pk_test_abc&origin=https%3A%2F%2Fshop.example%3A8443";
    ck_assert_int_eq(qp(q, "key", out, 512), TOK_OK);
    ck_assert_str_eq(out, "pk_test_abc");
    ck_assert_int_eq(qp(q, "origin", out, 512), TOK_OK);
    ck_assert_str_eq(out, "https://shop.example:8443");
    ck_assert_int_eq(qp("a=1&name=Ada+Lovelace&b=2", "name", out, 512), TOK_OK);
    ck_assert_str_eq(out, "Ada Lovelace");
    ck_assert_int_eq(qp("a=1", "key", out, 512), TOK_ERR_NOTFOUND);
}
END_TEST

START_TEST(test_iin_json_mirrors_the_table)
{
    static uint8_t mem[TOK_ELEMENTS_IIN_JSON_MAX + 1];
    struct tok_buf b;
    tok_buf_init(&b, mem, TOK_ELEMENTS_IIN_JSON_MAX);
    ck_assert_int_eq(tok_elements_iin_json(&b), TOK_OK);
    mem[b.len] = '\0';
    const char *j = (const char *)mem;
    size_t n = 0;
    const struct tok_iin_range *t = tok_card_iin_table(&n);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(count_of(j, "\"brand\":"), n);
    ck_assert_ptr_nonnull(strstr(j, "\"pan_min\":12,\"pan_max\":19,\"cvc_len\":3,\"cvc_len_amex\":4"));
    ck_assert_ptr_nonnull(
        strstr(j, "{\"brand\":\"visa\",\"low\":4,\"high\":4,\"prefix_len\":1,\"lengths\":[13,16,19]}"));
    ck_assert_ptr_nonnull(strstr(j, "{\"brand\":\"amex\",\"low\":34,\"high\":34,\"prefix_len\":2,"
                                    "\"lengths\":[15]}"));
    /* every row, in order, with its exact bounds */
    const char *at = j;
    for (size_t i = 0; i < n; i++) {
        char row[160];
        snprintf(row, sizeof row, "{\"brand\":\"%s\",\"low\":%u,\"high\":%u,\"prefix_len\":%u,",
                 tok_card_brand_name(t[i].brand), (unsigned)t[i].low, (unsigned)t[i].high,
                 (unsigned)t[i].prefix_len);
        const char *p = strstr(at, row);
        ck_assert_msg(p != NULL, "row %zu (%s) missing or out of order", i, row);
        at = p + 1;
    }
    ck_assert_ptr_null(strchr(j, '<'));
}
END_TEST

START_TEST(test_csp_is_strict)
{
    uint8_t mem[TOK_ELEMENTS_CSP_MAX + 1];
    struct tok_buf b;
    tok_buf_init(&b, mem, TOK_ELEMENTS_CSP_MAX);
    ck_assert_int_eq(tok_elements_csp(S("https://shop.example"), &b), TOK_OK);
    mem[b.len] = '\0';
    const char *c = (const char *)mem;
    const char *want[] = {"default-src 'none'", "script-src 'self'", "style-src 'self'",
                          "connect-src 'self'", "form-action 'none'", "base-uri 'none'"};
    for (size_t i = 0; i < TOK_ARRAY_LEN(want); i++)
        ck_assert_ptr_nonnull(strstr(c, want[i]));
    const char *fa = strstr(c, "frame-ancestors ");
    ck_assert_ptr_nonnull(fa);
    ck_assert_str_eq(fa, "frame-ancestors https://shop.example");
    ck_assert_ptr_null(strstr(c, "unsafe"));
    ck_assert_ptr_null(strchr(c, '*'));
}
END_TEST

START_TEST(test_html_escape)
{
    uint8_t mem[128];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem - 1);
    ck_assert_int_eq(tok_elements_html_escape(S("a&b<c>d\"e'f"), &b), TOK_OK);
    mem[b.len] = '\0';
    ck_assert_str_eq((const char *)mem, "a&amp;b&lt;c&gt;d&quot;e&#39;f");
}
END_TEST

START_TEST(test_page_has_the_form)
{
    char *p = page_for("pk_test_abc", "https://shop.example");
    const char *want[] = {
        "data-key=\"pk_test_abc\"", "data-origin=\"https://shop.example\"",
        "autocomplete=\"cc-number\"", "autocomplete=\"cc-exp\"", "autocomplete=\"cc-csc\"",
        "autocomplete=\"cc-name\"", "inputmode=\"numeric\"", "<label for=\"number\">",
        "<label for=\"exp\">", "<label for=\"cvc\">", "<label for=\"name\">",
        "id=\"number-error\" class=\"error\" aria-live=\"polite\"",
        "<script src=\"/v1/elements/card.js\" defer></script>",
        "<link rel=\"stylesheet\" href=\"/v1/elements/card.css\">",
        "<script type=\"application/json\" id=\"tokend-iin\">{\"pan_min\":12"};
    for (size_t i = 0; i < TOK_ARRAY_LEN(want); i++)
        ck_assert_msg(strstr(p, want[i]) != NULL, "missing %s", want[i]);
    /* CSP script-src 'self': nothing inline may be needed */
    ck_assert_ptr_null(strstr(p, "<script>"));
    ck_assert_ptr_null(strstr(p, "style="));
    const char *handlers[] = {"onclick=", "onload=", "oninput=", "onsubmit=", "onerror=", "javascript:"};
    for (size_t i = 0; i < TOK_ARRAY_LEN(handlers); i++)
        ck_assert_ptr_null(strstr(p, handlers[i]));
    ck_assert_ptr_null(strstr(p, "//cdn"));
    free(p);
}
END_TEST

/* The binary serves what service/vault/elements/ holds (embed.sh was run after the last edit).
 * Unit tests run from the repository root; elsewhere the file is not found and this passes. */
static void same_as_file(const char *embedded, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_msg(strcmp(buf, embedded) == 0, "%s changed: run service/vault/elements/embed.sh", path);
}

START_TEST(test_assets_match_sources)
{
    same_as_file(tok_elements_card_js_src, "service/vault/elements/card.js");
    same_as_file(tok_elements_card_css_src, "service/vault/elements/card.css");
    ck_assert_ptr_nonnull(strstr(tok_elements_card_js_src, "postMessage(msg, ORIGIN)"));
    ck_assert_ptr_null(strstr(tok_elements_card_js_src, "postMessage(msg, '*')"));
    ck_assert_ptr_null(strstr(tok_elements_card_js_src, "innerHTML"));
}
END_TEST

/* auth.c's origin test the element page relies on: exact, whole-string equality. */
START_TEST(test_origin_allowed_is_exact)
{
    static struct tok_principal p;
    memset(&p, 0, sizeof p);
    tok_copy(p.origins[0], "https://shop.example", sizeof "https://shop.example");
    tok_copy(p.origins[1], "http://127.0.0.1:8080", sizeof "http://127.0.0.1:8080");
    p.norigins = 2;
    ck_assert(tok_auth_origin_allowed(&p, S("https://shop.example")));
    ck_assert(tok_auth_origin_allowed(&p, S("http://127.0.0.1:8080")));
    const char *no[] = {"https://shop.example.evil", "https://shop.exampl", "http://shop.example",
                        "https://SHOP.example", "https://shop.example/", "http://127.0.0.1:808",
                        "", "null"};
    for (size_t i = 0; i < TOK_ARRAY_LEN(no); i++)
        ck_assert_msg(!tok_auth_origin_allowed(&p, S(no[i])), "%s allowed", no[i]);
    p.norigins = 0;
    ck_assert(!tok_auth_origin_allowed(&p, S("https://shop.example")));
}
END_TEST

/* ---- limits --------------------------------------------------------------------- */

START_TEST(test_query_max)
{
    char out[512];
    char *q = malloc(TOK_ELEMENTS_QUERY_MAX + 2);
    ck_assert_ptr_nonnull(q);
    memset(q, 'a', TOK_ELEMENTS_QUERY_MAX + 1);
    tok_copy(q, "key=x&", 6);
    q[TOK_ELEMENTS_QUERY_MAX] = '\0';
    ck_assert_int_eq(qp(q, "key", out, 512), TOK_OK);
    ck_assert_str_eq(out, "x");
    q[TOK_ELEMENTS_QUERY_MAX] = 'a';
    q[TOK_ELEMENTS_QUERY_MAX + 1] = '\0';
    ck_assert_int_eq(qp(q, "key", out, 512), TOK_ERR_INPUT);
    free(q);
}
END_TEST

START_TEST(test_query_value_fits_exactly)
{
    char out[512];
    ck_assert_int_eq(qp("key=abcd", "key", out, 4), TOK_OK);
    ck_assert_str_eq(out, "abcd");
    ck_assert_int_eq(qp("key=abcd", "key", out, 3), TOK_ERR_BOUNDS);
    ck_assert_str_eq(out, ""); /* nothing half-written */
    ck_assert_int_eq(qp("key=", "key", out, 4), TOK_OK);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(qp("key", "key", out, 4), TOK_OK);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(qp("", "key", out, 4), TOK_ERR_NOTFOUND);
}
END_TEST

START_TEST(test_iin_json_buffer_sizes)
{
    static uint8_t mem[TOK_ELEMENTS_IIN_JSON_MAX];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_elements_iin_json(&b), TOK_OK);
    uint32_t need = b.len;
    tok_buf_init(&b, mem, need);
    ck_assert_int_eq(tok_elements_iin_json(&b), TOK_OK);
    tok_buf_init(&b, mem, need - 1);
    ck_assert_int_eq(tok_elements_iin_json(&b), TOK_ERR_BOUNDS);
    tok_buf_init(&b, mem, 0);
    ck_assert_int_eq(tok_elements_iin_json(&b), TOK_ERR_BOUNDS);
}
END_TEST

START_TEST(test_page_and_csp_bounds)
{
    static uint8_t mem[TOK_ELEMENTS_PAGE_MAX];
    struct tok_buf b;
    tok_buf_init(&b, mem, 100);
    ck_assert_int_eq(tok_elements_page(S("pk_test_abc"), S("https://a.example"), &b),
                     TOK_ERR_BOUNDS);
    uint8_t cmem[64];
    struct tok_buf c;
    tok_buf_init(&c, cmem, sizeof cmem);
    ck_assert_int_eq(tok_elements_csp(S("https://a.example"), &c), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(c.len, 0);
    char origin[TOK_AUTH_ORIGIN_MAX + 1];
    memset(origin, 'a', sizeof origin);
    origin[TOK_AUTH_ORIGIN_MAX] = '\0';
    tok_buf_init(&b, mem, TOK_ELEMENTS_CSP_MAX);
    ck_assert_int_eq(tok_elements_csp(S(origin), &b), TOK_ERR_INPUT);
    origin[TOK_AUTH_ORIGIN_MAX - 1] = '\0';
    ck_assert_int_eq(tok_elements_csp(S(origin), &b), TOK_OK);
    ck_assert_int_eq(tok_elements_csp(S(""), &b), TOK_ERR_INPUT);
}
END_TEST

/* ---- adversarial ---------------------------------------------------------------- */

START_TEST(test_query_duplicate_is_refused)
{
    char out[512];
    ck_assert_int_eq(qp("key=a&key=b", "key", out, 512), TOK_ERR_INPUT);
    ck_assert_int_eq(qp("origin=https%3A%2F%2Fa.example&origin=https%3A%2F%2Fb.example", "origin",
                        out, 512),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(qp("key&key=b", "key", out, 512), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_query_names_match_exactly)
{
    char out[512];
    ck_assert_int_eq(qp("keyx=1&xkey=2&key=3", "key", out, 512), TOK_OK);
    ck_assert_str_eq(out, "3");
    ck_assert_int_eq(qp("keyx=1&xkey=2", "key", out, 512), TOK_ERR_NOTFOUND);
    ck_assert_int_eq(qp("KEY=1", "key", out, 512), TOK_ERR_NOTFOUND);
    ck_assert_int_eq(qp("&&key=1&&", "key", out, 512), TOK_OK);
    ck_assert_str_eq(out, "1");
}
END_TEST

START_TEST(test_query_bad_escapes)
{
    char out[512];
    const char *bad[] = {"key=%", "key=%4", "key=%zz", "key=ab%g1", "key=%00", "key=a%0ab",
                         "key=%7f", "key=a%0Db"};
    for (size_t i = 0; i < TOK_ARRAY_LEN(bad); i++) {
        ck_assert_msg(qp(bad[i], "key", out, 512) == TOK_ERR_INPUT, "%s accepted", bad[i]);
        ck_assert_str_eq(out, "");
    }
    ck_assert_int_eq(qp("key=%41%62", "key", out, 512), TOK_OK);
    ck_assert_str_eq(out, "Ab");
}
END_TEST

START_TEST(test_csp_refuses_injection)
{
    uint8_t mem[TOK_ELEMENTS_CSP_MAX];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    const char *bad[] = {"https://a.example; script-src *", "https://a.example *",
                         "'unsafe-inline'", "https://A.example", "https://a.example\r\nx: y",
                         "https://a.example,https://b.example"};
    for (size_t i = 0; i < TOK_ARRAY_LEN(bad); i++) {
        ck_assert_msg(tok_elements_csp(S(bad[i]), &b) == TOK_ERR_INPUT, "%s accepted", bad[i]);
        ck_assert_uint_eq(b.len, 0);
    }
    ck_assert_int_eq(tok_elements_csp(S("https://a.example"), NULL), TOK_ERR_INTERNAL);
}
END_TEST

START_TEST(test_page_escapes_attributes)
{
    char *p = page_for("pk_\"><script>alert(1)</script>", "https://a.example\"onload=\"x");
    ck_assert_ptr_null(strstr(p, "<script>alert"));
    ck_assert_ptr_nonnull(strstr(p, "data-key=\"pk_&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""));
    ck_assert_ptr_nonnull(strstr(p, "data-origin=\"https://a.example&quot;onload=&quot;x\""));
    free(p);
}
END_TEST

START_TEST(test_null_arguments)
{
    uint8_t mem[16];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_elements_query_param(S("key=1"), NULL, &b), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_elements_query_param(S("key=1"), "key", NULL), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_elements_iin_json(NULL), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_elements_html_escape(S("x"), NULL), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_elements_page(S("k"), S("o"), NULL), TOK_ERR_INTERNAL);
}
END_TEST

Suite *tok_elements_suite(void)
{
    Suite *s = suite_create("elements");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adversarial = tcase_create("adversarial");
    tcase_add_test(core, test_query_param_decodes);
    tcase_add_test(core, test_iin_json_mirrors_the_table);
    tcase_add_test(core, test_csp_is_strict);
    tcase_add_test(core, test_html_escape);
    tcase_add_test(core, test_page_has_the_form);
    tcase_add_test(core, test_assets_match_sources);
    tcase_add_test(core, test_origin_allowed_is_exact);
    tcase_add_test(limits, test_query_max);
    tcase_add_test(limits, test_query_value_fits_exactly);
    tcase_add_test(limits, test_iin_json_buffer_sizes);
    tcase_add_test(limits, test_page_and_csp_bounds);
    tcase_add_test(adversarial, test_query_duplicate_is_refused);
    tcase_add_test(adversarial, test_query_names_match_exactly);
    tcase_add_test(adversarial, test_query_bad_escapes);
    tcase_add_test(adversarial, test_csp_refuses_injection);
    tcase_add_test(adversarial, test_page_escapes_attributes);
    tcase_add_test(adversarial, test_null_arguments);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adversarial);
    return s;
}
