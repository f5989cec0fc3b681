/*
 * gateway.c - what the remote adapters share: idempotency
 * keys, outcome rules for transport failures and common HTTP statuses (see
 * gateway_wire.h), and the exchange that runs one request through tok_httpc and
 * completes the call on the loop thread that submitted it.
 */
#include "tokend/gateways/gateway.h"
#include "tokend/core/rand.h"
#include "tokend/core/encoding.h"
#include "tokend/gateways/gateway_wire.h"
#include "tokend/core/json.h"
#include "tokend/core/log.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static bool code_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

void tok_gateway_set(struct tok_gateway_call *call, enum tok_gateway_outcome outcome,
                     const char *code, const char *decline)
{
    call->outcome = outcome;
    call->code = code;
    call->decline_code[0] = '\0';
    if (decline == NULL)
        return;
    size_t n = strlen(decline);
    if (n == 0 || n >= sizeof call->decline_code)
        return;
    for (size_t i = 0; i < n; i++)
        if (!code_char((uint8_t)decline[i]))
            return;
    tok_copy(call->decline_code, decline, n + 1);
}

void tok_gateway_reset_outputs(struct tok_gateway_call *call)
{
    call->outcome = TOK_GW_OK;
    call->code = NULL;
    call->decline_code[0] = '\0';
    sodium_memzero(call->ref, sizeof call->ref);
    call->captured = false;
    call->action_url[0] = '\0';
}

tok_status tok_gateway_set_action(struct tok_gateway_call *call, struct tok_slice ref,
                                  struct tok_slice url)
{
    /* only an absolute http(s) URL of printable ASCII reaches the app (and a browser) */
    bool https = url.len > 8 && strncmp((const char *)url.ptr, "https://", 8) == 0;
    bool http = url.len > 7 && strncmp((const char *)url.ptr, "http://", 7) == 0;
    TOK_ENSURE((https || http) && url.len < sizeof call->action_url, TOK_ERR_INPUT);
    for (size_t i = 0; i < url.len; i++)
        TOK_ENSURE(url.ptr[i] > 0x20 && url.ptr[i] < 0x7f && url.ptr[i] != '"' &&
                       url.ptr[i] != '<' && url.ptr[i] != '>',
                   TOK_ERR_INPUT);
    TOK_GUARD(tok_gateway_set_ref(call, ref));
    tok_copy(call->action_url, url.ptr, url.len);
    call->action_url[url.len] = '\0';
    call->outcome = TOK_GW_ACTION;
    call->code = "requires_action";
    call->decline_code[0] = '\0';
    return TOK_OK;
}

static bool ref_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == '|';
}

tok_status tok_gateway_set_ref(struct tok_gateway_call *call, struct tok_slice ref)
{
    TOK_ENSURE(ref.len > 0 && ref.len < sizeof call->ref, TOK_ERR_INPUT);
    for (size_t i = 0; i < ref.len; i++)
        TOK_ENSURE(ref_char(ref.ptr[i]), TOK_ERR_INPUT);
    tok_copy(call->ref, ref.ptr, ref.len);
    call->ref[ref.len] = '\0';
    return TOK_OK;
}

bool tok_gateway_id_ok(struct tok_slice s)
{
    if (s.len == 0 || s.len > TOK_GATEWAY_ID_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

tok_status tok_gateway_wire_key(struct tok_gateway_call *call, size_t max,
                                struct tok_gateway_wire *w)
{
    TOK_ENSURE(call != NULL && w != NULL && max >= 48 && max < sizeof w->idem_key,
               TOK_ERR_INTERNAL);
    size_t n = strnlen(call->idempotency_key, sizeof call->idempotency_key);
    TOK_ENSURE(n < sizeof call->idempotency_key, TOK_ERR_INPUT);
    if (n == 0) {
        struct tok_buf b;
        tok_buf_init(&b, call->idempotency_key, sizeof call->idempotency_key - 1);
        TOK_GUARD(tok_random_id("tokend_", &b));
        call->idempotency_key[b.len] = '\0';
        n = b.len;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)call->idempotency_key[i];
        TOK_ENSURE(c > 0x20 && c < 0x7f, TOK_ERR_INPUT);
    }
    struct tok_buf out;
    tok_buf_init(&out, w->idem_key, sizeof w->idem_key - 1);
    if (n <= max) {
        TOK_GUARD(tok_buf_write(&out, call->idempotency_key, n));
    } else {
        uint8_t h[16];
        TOK_ENSURE(crypto_generichash(h, sizeof h, (const uint8_t *)call->idempotency_key, n,
                                      NULL, 0) == 0,
                   TOK_ERR_CRYPTO);
        TOK_GUARD(tok_buf_puts(&out, "tokend_h_"));
        TOK_GUARD(tok_hex_encode(tok_slice_of(h, sizeof h), &out));
    }
    w->idem_key[out.len] = '\0';
    return TOK_OK;
}

void tok_gateway_transport_failed(struct tok_gateway_call *call, enum tok_httpc_result r)
{
    switch (r) {
    case TOK_HTTPC_TIMEOUT:
        tok_gateway_set(call, TOK_GW_UNAVAILABLE, "gateway_timeout", NULL);
        return;
    case TOK_HTTPC_CONNECT:
        tok_gateway_set(call, TOK_GW_UNAVAILABLE, "gateway_unavailable", NULL);
        return;
    case TOK_HTTPC_TLS:
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_tls_failed", NULL);
        return;
    case TOK_HTTPC_TOO_LARGE:
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    case TOK_HTTPC_OK:
    case TOK_HTTPC_OTHER:
    default:
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_error", NULL);
        return;
    }
}

bool tok_gateway_http_common(struct tok_gateway_call *call, long status)
{
    if (status == 401 || status == 403) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_auth_failed", NULL);
        return true;
    }
    if (status == 429) {
        tok_gateway_set(call, TOK_GW_UNAVAILABLE, "rate_limited", NULL);
        return true;
    }
    if (status >= 500 && status <= 599) {
        tok_gateway_set(call, TOK_GW_UNAVAILABLE, "gateway_unavailable", NULL);
        return true;
    }
    return false;
}

struct tok_json_doc *tok_gateway_json(struct tok_slice body)
{
    struct tok_json_limits lim = {TOK_GATEWAY_JSON_DEPTH, TOK_GATEWAY_JSON_NODES,
                                  TOK_GATEWAY_JSON_STRING, TOK_HTTPC_RESPONSE_MAX,
                                  TOK_GATEWAY_JSON_MEMBERS};
    struct tok_json_doc *doc = NULL;
    if (body.len == 0 || tok_json_parse(body, &lim, &doc, NULL) != TOK_OK)
        return NULL;
    if (tok_json_type(tok_json_root(doc)) != TOK_JSON_OBJECT)
        tok_json_doc_free(&doc);
    return doc;
}

/* ---- the exchange ---------------------------------------------------------------------- */

struct remote {
    const struct tok_gateway_ops *ops;
    struct tok_gateway_call *call;
    tok_gateway_parse_fn parse;
    struct tok_gateway_wire w;
};

void tok_gateway_fail_now(struct tok_gateway_call *call, const char *code)
{
    tok_gateway_set(call, TOK_GW_ERROR, code, NULL);
    call->done(call);
}

static void on_exchange_done(struct tok_httpc_request *req)
{
    struct remote *rm = req->data;
    struct tok_gateway_call *call = rm->call;
    if (req->result != TOK_HTTPC_OK) {
        tok_gateway_transport_failed(call, req->result);
        tok_log_warn("%s: %s: no answer (%s%s): %s", __func__, rm->ops->name,
                     tok_httpc_result_name(req->result),
                     req->sent ? ", after the request was sent" : "", req->why);
    } else {
        rm->parse(call, &rm->w, req->status, tok_buf_slice(&req->response));
        if (call->outcome == TOK_GW_ERROR || call->outcome == TOK_GW_UNAVAILABLE)
            tok_log_warn("%s: %s: HTTP %ld -> %s", __func__, rm->ops->name, req->status,
                         call->code != NULL ? call->code : "-");
    }
    tok_httpc_request_free(&req);
    sodium_memzero(&rm->w, sizeof rm->w);
    free(rm);
    call->done(call);
}

void tok_gateway_exchange(const struct tok_gateway_ops *ops, struct tok_gateway_call *call,
                          struct tok_httpc_request *req, const struct tok_gateway_wire *w,
                          tok_gateway_parse_fn parse)
{
    struct remote *rm = calloc(1, sizeof *rm);
    if (rm == NULL) {
        tok_httpc_request_free(&req);
        tok_gateway_fail_now(call, "gateway_error");
        return;
    }
    rm->ops = ops;
    rm->call = call;
    rm->parse = parse;
    rm->w = *w;
    req->data = rm;
    req->done = on_exchange_done;
    req->reply_to = call->env->reply_to;
    tok_httpc_submit(call->env->httpc, req);
}
