/*
 * elements.c - the hosted card form and the CORS preflight of POST /v1/tokens.
 *
 * GET /v1/elements/card?key=pk_...&origin=O: the key is looked up (auth.c,
 * same cache as the API) and O must be one of its allowed origins; the page
 * is then sent with `frame-ancestors O`, so a browser renders it only inside
 * O's pages, and its script posts the token to O only (postMessage
 * targetOrigin). Why the key and origin travel in the URL, and what each
 * check protects against, is in docs/elements.md.
 */
#include "tokend/vault/elements.h"
#include "tokend/http/origin.h"
#include "tokend/vault/auth.h"
#include "tokend/vault/card.h"
#include "tokend/core/json.h"
#include "tokend/core/log.h"

#include <string.h>

/* The element is not a secret, but a page built for one key and origin must not be cached
 * for another; the script and style are the same for everyone. */
#define ASSET_CACHE_CONTROL "public, max-age=300"
#define PAGE_PATH "/v1/elements/card"

/* ---- pure helpers -------------------------------------------------------------- */

static int hex_val(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one value into out; nothing is left in out on failure. */
static tok_status decode_value(struct tok_slice v, struct tok_buf *out)
{
    uint32_t start = out->len;
    for (size_t i = 0; i < v.len; i++) {
        uint8_t c = v.ptr[i];
        if (c == '%') {
            int hi = i + 2 < v.len ? hex_val(v.ptr[i + 1]) : -1;
            int lo = i + 2 < v.len ? hex_val(v.ptr[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                out->len = start;
                return TOK_ERR_INPUT;
            }
            c = (uint8_t)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        tok_status st = c < 0x20 || c == 0x7f ? TOK_ERR_INPUT : tok_buf_putc(out, c);
        if (st != TOK_OK) {
            out->len = start;
            return st;
        }
    }
    return TOK_OK;
}

tok_status tok_elements_query_param(struct tok_slice query, const char *name, struct tok_buf *out)
{
    TOK_ENSURE(name != NULL && out != NULL && (query.ptr != NULL || query.len == 0),
               TOK_ERR_INTERNAL);
    TOK_ENSURE(query.len <= TOK_ELEMENTS_QUERY_MAX, TOK_ERR_INPUT);
    size_t nlen = strlen(name);
    struct tok_slice found = {NULL, 0};
    bool seen = false;
    size_t i = 0;
    while (i < query.len) {
        size_t j = i;
        while (j < query.len && query.ptr[j] != '&')
            j++;
        struct tok_slice pair = tok_slice_of(query.ptr + i, j - i);
        if (pair.len > nlen && pair.ptr[nlen] == '=' &&
            tok_slice_eq(tok_slice_of(pair.ptr, nlen), name)) {
            TOK_ENSURE(!seen, TOK_ERR_INPUT);
            seen = true;
            found = tok_slice_of(pair.ptr + nlen + 1, pair.len - nlen - 1);
        } else if (pair.len == nlen && tok_slice_eq(pair, name)) {
            TOK_ENSURE(!seen, TOK_ERR_INPUT);
            seen = true;
            found = tok_slice_of("", 0);
        }
        i = j + 1;
    }
    TOK_ENSURE(seen, TOK_ERR_NOTFOUND);
    return decode_value(found, out);
}

tok_status tok_elements_iin_json(struct tok_buf *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    size_t n = 0;
    const struct tok_iin_range *t = tok_card_iin_table(&n);
    struct tok_json_writer w;
    tok_jw_init(&w, out);
    tok_jw_obj_begin(&w);
    tok_jw_kint(&w, "pan_min", TOK_PAN_MIN);
    tok_jw_kint(&w, "pan_max", TOK_PAN_MAX);
    tok_jw_kint(&w, "cvc_len", TOK_CVC_LEN);
    tok_jw_kint(&w, "cvc_len_amex", TOK_CVC_LEN_AMEX);
    tok_jw_kint(&w, "expiry_years_max", TOK_EXPIRY_YEARS_MAX);
    tok_jw_kint(&w, "name_max", TOK_CARD_NAME_MAX);
    tok_jw_key(&w, "ranges");
    tok_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        tok_jw_obj_begin(&w);
        tok_jw_kstr(&w, "brand", tok_card_brand_name(t[i].brand));
        tok_jw_kint(&w, "low", t[i].low);
        tok_jw_kint(&w, "high", t[i].high);
        tok_jw_kint(&w, "prefix_len", t[i].prefix_len);
        tok_jw_key(&w, "lengths");
        tok_jw_arr_begin(&w);
        for (int len = TOK_PAN_MIN; len <= TOK_PAN_MAX; len++)
            if ((t[i].lengths & TOK_PAN_LEN_BIT(len)) != 0)
                tok_jw_int(&w, len);
        tok_jw_arr_end(&w);
        tok_jw_obj_end(&w);
    }
    tok_jw_arr_end(&w);
    tok_jw_obj_end(&w);
    return tok_jw_finish(&w);
}

static bool origin_byte_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == ':' || c == '/';
}

tok_status tok_elements_csp(struct tok_slice origin, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && (origin.ptr != NULL || origin.len == 0), TOK_ERR_INTERNAL);
    TOK_ENSURE(origin.len > 0 && origin.len < TOK_AUTH_ORIGIN_MAX, TOK_ERR_INPUT);
    for (size_t i = 0; i < origin.len; i++)
        TOK_ENSURE(origin_byte_ok(origin.ptr[i]), TOK_ERR_INPUT);
    uint32_t start = out->len;
    tok_status st = tok_buf_puts(out, "default-src 'none'; script-src 'self'; style-src 'self'; "
                                      "connect-src 'self'; form-action 'none'; base-uri 'none'; "
                                      "frame-ancestors ");
    if (st == TOK_OK)
        st = tok_buf_write(out, origin.ptr, origin.len);
    if (st != TOK_OK)
        out->len = start;
    return st;
}

tok_status tok_elements_html_escape(struct tok_slice s, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && (s.ptr != NULL || s.len == 0), TOK_ERR_INTERNAL);
    for (size_t i = 0; i < s.len; i++) {
        switch (s.ptr[i]) {
        case '&': TOK_GUARD(tok_buf_puts(out, "&amp;")); break;
        case '<': TOK_GUARD(tok_buf_puts(out, "&lt;")); break;
        case '>': TOK_GUARD(tok_buf_puts(out, "&gt;")); break;
        case '"': TOK_GUARD(tok_buf_puts(out, "&quot;")); break;
        case '\'': TOK_GUARD(tok_buf_puts(out, "&#39;")); break;
        default: TOK_GUARD(tok_buf_putc(out, s.ptr[i])); break;
        }
    }
    return TOK_OK;
}

static const char page_head[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"referrer\" content=\"no-referrer\">\n"
    "<title>Card details</title>\n"
    "<link rel=\"stylesheet\" href=\"/v1/elements/card.css\">\n"
    "<script type=\"application/json\" id=\"tokend-iin\">";

static const char page_mid[] =
    "</script>\n"
    "<script src=\"/v1/elements/card.js\" defer></script>\n"
    "</head>\n"
    "<body>\n"
    "<form id=\"tokend-card\" novalidate";

/* Every input has a visible label, the autocomplete token browsers and password managers
 * fill cards with, and an error paragraph it is described by; errors and the brand are in
 * aria-live regions so screen readers announce them (WCAG 2.1: 1.3.5, 3.3.1, 4.1.3). */
static const char page_form[] =
    ">\n"
    "<div class=\"field\">\n"
    "  <label for=\"number\">Card number</label>\n"
    "  <div class=\"with-brand\">\n"
    "    <input id=\"number\" name=\"cardnumber\" type=\"text\" autocomplete=\"cc-number\" "
    "inputmode=\"numeric\" spellcheck=\"false\" maxlength=\"23\" "
    "placeholder=\"1234 1234 1234 1234\" aria-invalid=\"false\" "
    "aria-describedby=\"number-brand number-error\">\n"
    "    <span id=\"number-brand\" class=\"brand\" data-brand=\"unknown\" "
    "aria-live=\"polite\"></span>\n"
    "  </div>\n"
    "  <p id=\"number-error\" class=\"error\" aria-live=\"polite\"></p>\n"
    "</div>\n"
    "<div class=\"row\">\n"
    "  <div class=\"field\">\n"
    "    <label for=\"exp\">Expiry date <span class=\"hint\">(MM / YY)</span></label>\n"
    "    <input id=\"exp\" name=\"exp-date\" type=\"text\" autocomplete=\"cc-exp\" "
    "inputmode=\"numeric\" spellcheck=\"false\" maxlength=\"9\" placeholder=\"MM / YY\" "
    "aria-invalid=\"false\" aria-describedby=\"exp-error\">\n"
    "    <p id=\"exp-error\" class=\"error\" aria-live=\"polite\"></p>\n"
    "  </div>\n"
    "  <div class=\"field\">\n"
    "    <label for=\"cvc\">Security code</label>\n"
    "    <input id=\"cvc\" name=\"cvc\" type=\"text\" autocomplete=\"cc-csc\" "
    "inputmode=\"numeric\" spellcheck=\"false\" maxlength=\"4\" placeholder=\"CVC\" "
    "aria-invalid=\"false\" aria-describedby=\"cvc-error\">\n"
    "    <p id=\"cvc-error\" class=\"error\" aria-live=\"polite\"></p>\n"
    "  </div>\n"
    "</div>\n"
    "<div class=\"field\">\n"
    "  <label for=\"name\">Name on card</label>\n"
    "  <input id=\"name\" name=\"ccname\" type=\"text\" autocomplete=\"cc-name\" "
    "maxlength=\"100\" aria-invalid=\"false\" aria-describedby=\"name-error\">\n"
    "  <p id=\"name-error\" class=\"error\" aria-live=\"polite\"></p>\n"
    "</div>\n"
    "<button type=\"submit\" class=\"visually-hidden\" tabindex=\"-1\">Save card</button>\n"
    "<p id=\"status\" class=\"status\" role=\"status\" aria-live=\"polite\"></p>\n"
    "</form>\n"
    "</body>\n"
    "</html>\n";

tok_status tok_elements_page(struct tok_slice key, struct tok_slice origin, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_GUARD(tok_buf_puts(out, page_head));
    uint32_t json_at = out->len;
    TOK_GUARD(tok_elements_iin_json(out));
    /* defence in depth: the data block must not be able to close its <script> */
    for (uint32_t i = json_at; i < out->len; i++)
        TOK_ENSURE(out->data[i] != '<', TOK_ERR_INTERNAL);
    TOK_GUARD(tok_buf_puts(out, page_mid));
    TOK_GUARD(tok_buf_puts(out, " data-key=\""));
    TOK_GUARD(tok_elements_html_escape(key, out));
    TOK_GUARD(tok_buf_puts(out, "\" data-origin=\""));
    TOK_GUARD(tok_elements_html_escape(origin, out));
    TOK_GUARD(tok_buf_puts(out, "\""));
    return tok_buf_puts(out, page_form);
}

/* ---- handlers ------------------------------------------------------------------------ */

static struct tok_slice query_of(const struct tok_req *r)
{
    const h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len)
        return tok_slice_of("", 0);
    return tok_slice_of(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

static void common_headers(struct tok_req *r)
{
    tok_http_header(r, "x-content-type-options", "nosniff");
    tok_http_header(r, "referrer-policy", "no-referrer");
}

static void send_asset(struct tok_req *r, const char *content_type, const char *body)
{
    h2o_req_t *req = r->req;
    common_headers(r);
    tok_http_header(r, "cache-control", ASSET_CACHE_CONTROL);
    tok_http_header(r, "cross-origin-resource-policy", "same-origin");
    req->res.status = 200;
    req->res.reason = tok_http_reason(200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_send_inline(req, body, strlen(body));
}

void tok_elements_card_js(struct tok_req *r)
{
    send_asset(r, "text/javascript; charset=utf-8", tok_elements_card_js_src);
}

void tok_elements_card_css(struct tok_req *r)
{
    send_asset(r, "text/css; charset=utf-8", tok_elements_card_css_src);
}

void tok_elements_iin(struct tok_req *r)
{
    uint8_t *mem = h2o_mem_alloc_pool(&r->req->pool, TOK_ELEMENTS_IIN_JSON_MAX);
    struct tok_buf b;
    tok_buf_init(&b, mem, TOK_ELEMENTS_IIN_JSON_MAX);
    if (tok_elements_iin_json(&b) != TOK_OK) {
        tok_log_err("%s: %s: the IIN table does not fit in %d bytes", __func__, r->id,
                    TOK_ELEMENTS_IIN_JSON_MAX);
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return;
    }
    common_headers(r);
    tok_http_json(r, 200, tok_buf_slice(&b));
}

/* Error pages carry their own policy: nobody's to frame, nothing to run. */
static void refuse_page(struct tok_req *r, int status, const char *code, const char *detail,
                        const char *param)
{
    common_headers(r);
    tok_http_header(r, "content-security-policy", "default-src 'none'; frame-ancestors 'none'");
    tok_http_problem(r, status, code, detail, param);
}

/* Reads ?origin= and writes its normal form; answers 400 itself on failure. */
static bool read_origin(struct tok_req *r, struct tok_buf *norm)
{
    uint8_t raw[TOK_ELEMENTS_PARAM_MAX];
    struct tok_buf rb;
    tok_buf_init(&rb, raw, sizeof raw);
    tok_status st = tok_elements_query_param(query_of(r), "origin", &rb);
    if (st == TOK_ERR_NOTFOUND) {
        refuse_page(r, 400, "missing_param",
                    "add ?origin= with the origin of the page that embeds the form", "origin");
        return false;
    }
    if (st != TOK_OK || tok_origin_normalize(tok_buf_slice(&rb), norm) != TOK_OK) {
        refuse_page(r, 400, "invalid_origin",
                    "origin must be scheme://host[:port], as window.location.origin gives",
                    "origin");
        return false;
    }
    return true;
}

static void on_card_key(struct tok_req *r)
{
    uint8_t omem[TOK_AUTH_ORIGIN_MAX], kmem[TOK_ELEMENTS_PARAM_MAX], cmem[TOK_ELEMENTS_CSP_MAX];
    struct tok_buf ob, kb, cb;
    tok_buf_init(&ob, omem, sizeof omem);
    tok_buf_init(&kb, kmem, sizeof kmem);
    tok_buf_init(&cb, cmem, sizeof cmem);
    if (!read_origin(r, &ob))
        return;
    if (!tok_auth_origin_allowed(r->principal, tok_buf_slice(&ob))) {
        tok_log_info("%s: %s: key %s: origin not allowed", __func__, r->id, r->principal->key_id);
        tok_audit_async(r, r->principal->tenant_id, r->principal->key_id, "auth.forbidden",
                        r->route);
        refuse_page(r, 403, "origin_not_allowed",
                    "this publishable key may only be embedded by its allowed origins", "origin");
        return;
    }
    uint8_t *pmem = h2o_mem_alloc_pool(&r->req->pool, TOK_ELEMENTS_PAGE_MAX);
    struct tok_buf pb;
    tok_buf_init(&pb, pmem, TOK_ELEMENTS_PAGE_MAX);
    const char *csp = NULL;
    if (tok_elements_query_param(query_of(r), "key", &kb) != TOK_OK ||
        tok_elements_page(tok_buf_slice(&kb), tok_buf_slice(&ob), &pb) != TOK_OK ||
        tok_elements_csp(tok_buf_slice(&ob), &cb) != TOK_OK || tok_buf_cstr(&cb, &csp) != TOK_OK) {
        tok_log_err("%s: %s: cannot build the element page", __func__, r->id);
        refuse_page(r, 500, "internal_error", NULL, NULL);
        return;
    }
    common_headers(r);
    tok_http_header(r, "content-security-policy", csp);
    tok_http_send(r, 200, "text/html; charset=utf-8", tok_buf_slice(&pb));
}

void tok_elements_card(struct tok_req *r)
{
    uint8_t omem[TOK_AUTH_ORIGIN_MAX], kmem[TOK_ELEMENTS_PARAM_MAX];
    struct tok_buf ob, kb;
    tok_buf_init(&ob, omem, sizeof omem);
    tok_buf_init(&kb, kmem, sizeof kmem);
    if (!read_origin(r, &ob))
        return;
    tok_status st = tok_elements_query_param(query_of(r), "key", &kb);
    if (st != TOK_OK) {
        refuse_page(r, 400, st == TOK_ERR_NOTFOUND ? "missing_param" : "invalid_param",
                    "add ?key= with a publishable key (pk_...)", "key");
        return;
    }
    tok_auth_lookup_publishable(r, tok_buf_slice(&kb), on_card_key);
}

void tok_elements_preflight(struct tok_req *r)
{
    h2o_req_t *req = r->req;
    uint8_t omem[TOK_AUTH_ORIGIN_MAX + 1];
    struct tok_buf ob;
    tok_buf_init(&ob, omem, sizeof omem);
    struct tok_slice origin;
    const char *ostr = NULL;
    /* Only an origin in the exact form a key can list (tokenctl normalises the same way) is
     * echoed; never '*', never Allow-Credentials: no cookie or TLS client auth is ever used. */
    if (tok_http_req_header(r, "origin", &origin) &&
        tok_origin_normalize(origin, &ob) == TOK_OK && tok_buf_cstr(&ob, &ostr) == TOK_OK &&
        tok_slice_eq(origin, ostr)) {
        tok_http_header(r, "access-control-allow-origin", ostr);
        tok_http_header(r, "access-control-allow-methods", "POST");
        tok_http_header(r, "access-control-allow-headers",
                        "authorization, content-type, idempotency-key");
        tok_http_header(r, "access-control-max-age", TOK_ELEMENTS_PREFLIGHT_MAX_AGE);
    }
    tok_http_header(r, "vary", "Origin");
    tok_http_header(r, "allow", "POST, OPTIONS");
    req->res.status = 204;
    req->res.reason = tok_http_reason(204);
    h2o_send_inline(req, "", 0);
}
