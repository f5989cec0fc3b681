/*
 * routes.c - the route table and the matcher.
 */
#include "tokend/routes.h"
#include "tokend/payments/charges.h"
#include "tokend/vault/elements.h"
#include "tokend/finance/exports.h"
#include "tokend/http/health.h"
#include "tokend/http/openapi.h"
#include "tokend/finance/reconcile_api.h"
#include "tokend/finance/reports.h"
#include "tokend/vault/tokens.h"
#include "tokend/events/webhooks.h"

#include <string.h>

static const struct tok_route routes[] = {
    {"GET", "/healthz", tok_health_live},
    {"GET", "/readyz", tok_health_ready},
    {"GET", "/v1/openapi.json", tok_openapi_get},
    {"POST", "/v1/tokens", tok_tokens_create},
    {"OPTIONS", "/v1/tokens", tok_elements_preflight},
    {"GET", "/v1/tokens/{id}", tok_tokens_get},
    {"DELETE", "/v1/tokens/{id}", tok_tokens_redact},
    {"POST", "/v1/charges", tok_charges_create},
    {"GET", "/v1/charges/{id}", tok_charges_get},
    {"POST", "/v1/charges/{id}/capture", tok_charges_capture},
    {"POST", "/v1/charges/{id}/void", tok_charges_void},
    {"POST", "/v1/charges/{id}/complete", tok_charges_complete},
    {"POST", "/v1/refunds", tok_refunds_create},
    {"GET", "/v1/refunds/{id}", tok_refunds_get},
    {"GET", "/v1/charges", tok_reports_list_charges},
    {"GET", "/v1/refunds", tok_reports_list_refunds},
    {"GET", "/v1/exports/charges", tok_exports_charges},
    {"GET", "/v1/exports/refunds", tok_exports_refunds},
    {"GET", "/v1/events", tok_reports_list_events},
    {"GET", "/v1/exports/events", tok_exports_events},
    {"POST", "/v1/reconciliations", tok_recon_api_create},
    {"GET", "/v1/reconciliations/{id}", tok_recon_api_get},
    {"GET", "/v1/reconciliations/{id}/exceptions", tok_recon_api_exceptions},
    {"POST", "/v1/webhooks/{gateway}/{endpoint_id}", tok_webhooks_inbound},
    {"POST", "/v1/webhook-endpoints", tok_webhooks_endpoint_create},
    {"GET", "/v1/webhook-endpoints", tok_webhooks_endpoints_list},
    {"DELETE", "/v1/webhook-endpoints/{id}", tok_webhooks_endpoint_disable},
    {"GET", "/v1/events/{id}/deliveries", tok_webhooks_deliveries_list},
    {"GET", "/v1/elements/card", tok_elements_card},
    {"GET", "/v1/elements/card.js", tok_elements_card_js},
    {"GET", "/v1/elements/card.css", tok_elements_card_css},
    {"GET", "/v1/elements/iin.json", tok_elements_iin},
    {NULL, NULL, NULL},
};

const struct tok_route *tok_routes_table(void)
{
    return routes;
}

/* Matches one pattern against a path, capturing {params}. */
static bool match_path(const char *pattern, struct tok_slice path, struct tok_req *r)
{
    size_t pi = 0, si = 0, plen = strlen(pattern), n = 0;
    while (pi < plen && si < path.len) {
        if (pattern[pi] == '{') {
            const char *close = strchr(pattern + pi, '}');
            if (close == NULL)
                return false;
            size_t start = si;
            while (si < path.len && path.ptr[si] != '/')
                si++;
            if (si == start || n >= TOK_PATH_PARAMS_MAX)
                return false;
            if (r != NULL)
                r->params[n] = tok_slice_of(path.ptr + start, si - start);
            n++;
            pi = (size_t)(close - pattern) + 1;
            continue;
        }
        if (pattern[pi] != (char)path.ptr[si])
            return false;
        pi++;
        si++;
    }
    if (pi != plen || si != path.len)
        return false;
    if (r != NULL)
        r->nparams = n;
    return true;
}

tok_status tok_routes_match(struct tok_slice method, struct tok_slice path, struct tok_req *r,
                            const struct tok_route **out, char allow[TOK_ALLOW_MAX])
{
    TOK_ENSURE(out != NULL && allow != NULL, TOK_ERR_INTERNAL);
    struct tok_buf ab;
    tok_buf_init(&ab, allow, TOK_ALLOW_MAX);
    bool path_seen = false;
    for (const struct tok_route *rt = routes; rt->method != NULL; rt++) {
        if (!match_path(rt->pattern, path, NULL))
            continue;
        path_seen = true;
        if (tok_slice_eq(method, rt->method) ||
            (tok_slice_eq(method, "HEAD") && strcmp(rt->method, "GET") == 0)) {
            (void)match_path(rt->pattern, path, r);
            *out = rt;
            return TOK_OK;
        }
        if (ab.len > 0 && tok_buf_puts(&ab, ", ") != TOK_OK)
            continue;
        if (tok_buf_puts(&ab, rt->method) != TOK_OK)
            continue;
    }
    if (ab.len >= TOK_ALLOW_MAX)
        ab.len = TOK_ALLOW_MAX - 1;
    allow[ab.len] = '\0';
    return path_seen ? TOK_ERR_INPUT : TOK_ERR_NOTFOUND;
}
