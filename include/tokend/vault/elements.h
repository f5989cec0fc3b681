/*
 * elements.h - the hosted card form ("card element"): a page tokend serves
 * itself, embedded by a merchant in an iframe, so the card number goes from
 * the browser to tokend and the merchant's pages only ever see a token.
 *
 *   GET /v1/elements/card?key=pk_...&origin=https://shop.example
 *       the form; 403 unless origin is one of the key's allowed origins, and
 *       then framable by that origin only (CSP frame-ancestors)
 *   GET /v1/elements/card.js, /v1/elements/card.css   its script and style
 *   GET /v1/elements/iin.json  the IIN table the script checks brands with
 *   OPTIONS /v1/tokens         the CORS preflight for publishable keys
 *
 * The security model and the postMessage protocol are in docs/elements.md.
 */
#ifndef TOKEND_ELEMENTS_H
#define TOKEND_ELEMENTS_H

#include "tokend/core/common.h"
#include "tokend/http/http.h"

#define TOK_ELEMENTS_QUERY_MAX 2048     /* a longer query string is refused unread */
#define TOK_ELEMENTS_PARAM_MAX 256      /* one decoded query parameter */
#define TOK_ELEMENTS_IIN_JSON_MAX 16384 /* the IIN table as JSON */
#define TOK_ELEMENTS_PAGE_MAX 32768     /* the whole HTML page */
#define TOK_ELEMENTS_CSP_MAX 512
#define TOK_ELEMENTS_PREFLIGHT_MAX_AGE "600" /* seconds; browsers cap it at 7200 anyway */

/** The embedded script and style (service/vault/elements_assets.c, made from service/vault/elements/). */
extern const char tok_elements_card_js_src[];
extern const char tok_elements_card_css_src[];

/** GET /v1/elements/card: the form, for a publishable key and one of its origins. */
void tok_elements_card(struct tok_req *r);

/** GET /v1/elements/card.js and /v1/elements/card.css. */
void tok_elements_card_js(struct tok_req *r);
void tok_elements_card_css(struct tok_req *r);

/** GET /v1/elements/iin.json: tok_elements_iin_json's document. */
void tok_elements_iin(struct tok_req *r);

/**
 * OPTIONS /v1/tokens: answers a CORS preflight. The preflight carries no key,
 * so it cannot know which origins are allowed; it allows any well-formed
 * origin to *send* POST (never with credentials). The POST itself is then
 * checked against the key's origins and only an allowed origin's response
 * carries Access-Control-Allow-Origin, so a browser never lets another site
 * read it. 204 always; CORS headers only for a well-formed Origin.
 */
void tok_elements_preflight(struct tok_req *r);

/**
 * Finds name=value in a query string (without the '?') and appends the
 * percent-decoded value ('+' is a space) to out. TOK_ERR_NOTFOUND: absent.
 * TOK_ERR_INPUT: given twice (parameter pollution), bad %-escape, a decoded
 * control byte (< 0x20 or 0x7f), or a query longer than TOK_ELEMENTS_QUERY_MAX.
 * TOK_ERR_BOUNDS: the value does not fit in out (out is then left as it was).
 */
TOK_MUST_CHECK tok_status tok_elements_query_param(struct tok_slice query, const char *name,
                                                   struct tok_buf *out);

/**
 * Appends the IIN table (tok_card_iin_table, the one the server checks with)
 * and the other limits the client mirrors, as JSON:
 * {"pan_min":12,"pan_max":19,"cvc_len":3,"cvc_len_amex":4,"expiry_years_max":20,
 *  "ranges":[{"brand":"visa","low":4,"high":4,"prefix_len":1,"lengths":[13,16,19]},...]}
 * The text never holds '<', so it may sit inside an HTML <script> data block.
 * TOK_ERR_BOUNDS when out is too small (out then holds a partial document).
 */
TOK_MUST_CHECK tok_status tok_elements_iin_json(struct tok_buf *out);

/**
 * Appends the page's Content-Security-Policy, framable by `origin` only
 * (already normalised: scheme://host[:port], so no ';' or space can reach the
 * header). TOK_ERR_INPUT for an origin with other bytes, TOK_ERR_BOUNDS.
 */
TOK_MUST_CHECK tok_status tok_elements_csp(struct tok_slice origin, struct tok_buf *out);

/** Appends s with & < > " ' escaped for HTML text and attribute values. TOK_ERR_BOUNDS. */
TOK_MUST_CHECK tok_status tok_elements_html_escape(struct tok_slice s, struct tok_buf *out);

/**
 * Appends the element's HTML for key (a publishable key) and origin (the
 * merchant origin it posts its token to), both HTML-escaped, with the IIN
 * table embedded. TOK_ERR_BOUNDS when out is too small.
 */
TOK_MUST_CHECK tok_status tok_elements_page(struct tok_slice key, struct tok_slice origin,
                                            struct tok_buf *out);

#endif
