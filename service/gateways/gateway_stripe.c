/*
 * gateway_stripe.c - the Stripe adapter (API v1: form-encoded requests, JSON answers).
 *
 *   TOKENISE  1. POST /v1/payment_methods       type=card, card[number|exp_month|exp_year|cvc],
 *                                               billing_details[name]    -> pm_...
 *             2. POST /v1/customers             payment_method=pm_...    -> cus_...
 *                                               ref = "pm_...|cus_..."
 *   CHARGE    POST /v1/payment_intents          amount, currency, customer, payment_method,
 *                                               payment_method_types[]=card, confirm=true,
 *                                               capture_method, and either off_session=true
 *                                               (merchant-initiated) or
 *                                               setup_future_usage=off_session (the customer
 *                                               is present)                -> ref = pi_...
 *   CAPTURE   POST /v1/payment_intents/{pi}/capture  amount_to_capture
 *   VOID      POST /v1/payment_intents/{pi}/cancel
 *   REFUND    POST /v1/refunds                  payment_intent, amount   -> ref = re_...
 *   DETACH    POST /v1/payment_methods/{pm}/detach
 *   COMPLETE  GET  /v1/payment_intents/{pi}      after the customer came back from 3-D Secure
 *
 * Customer authentication (docs.stripe.com/payments/3d-secure/authentication-flow): a charge
 * with the customer present carries return_url; when the issuer wants 3-D Secure the
 * PaymentIntent answers requires_action with next_action.redirect_to_url.url, the page the
 * customer is sent to (ACTION). Stripe sends the customer back to return_url, and the
 * PaymentIntent, retrieved, is then succeeded, requires_capture or, authentication failed,
 * requires_payment_method with last_payment_error.code payment_intent_authentication_failure.
 * Without a return_url Stripe answers next_action use_stripe_sdk, which only Stripe.js in the
 * customer's browser can follow: tokend reports it as an authentication_required decline.
 *
 * Why a Customer: Stripe lets a PaymentMethod that is not attached to a Customer be used
 * once; a second PaymentIntent with it is refused (docs.stripe.com/payments/payment-methods,
 * "attach it to a Customer"; docs.stripe.com/api/customers/create, parameter
 * payment_method: "The ID of the PaymentMethod to attach to the customer"). tokend keeps a
 * card to charge it again, so tokenisation attaches it. Not a SetupIntent: confirming one
 * asks the issuer and may demand 3-D Secure at tokenisation, which tokend's API cannot
 * answer; instead a charge made with the customer present carries
 * setup_future_usage=off_session, which is what Stripe documents (api/payment_methods/attach)
 * for optimising an attached card for later merchant-initiated charges.
 * Tokens stored before the Customer existed have a bare "pm_..." reference; their charges
 * send no customer (Stripe charges such a PaymentMethod once).
 *
 * Every request carries Authorization: Bearer <secret key>, Stripe-Version (pinned, so a
 * dashboard upgrade cannot change the objects we parse) and Idempotency-Key (Stripe
 * saves the first answer for 24 h: a retry with the same key cannot charge twice; the
 * Customer step uses the key + "_customer").
 * off_session=true (docs.stripe.com/api/payment_intents/create#off_session): no customer is
 * present to authenticate; Stripe then answers an issuer's demand for 3-D Secure with a
 * 402 authentication_required decline instead of requires_action.
 * payment_method_types[]=card: without it, API versions from 2023-08-16 enable automatic
 * payment methods and confirming needs a return_url.
 * Amounts: tokend's ISO 4217 minor units, except ISK (Stripe keeps it two-decimal).
 */
#include "tokend/core/currency.h"
#include "tokend/gateways/gateway.h"
#include "tokend/gateways/registry.h"
#include "tokend/gateways/gateway_wire.h"
#include "tokend/core/json.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- encoding --------------------------------------------------------------------------- */

static bool unreserved(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static tok_status pct_encode(struct tok_buf *b, struct tok_slice s, bool key)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (unreserved(c) || (key && (c == '[' || c == ']'))) {
            TOK_GUARD(tok_buf_putc(b, c));
            continue;
        }
        uint8_t esc[3] = {'%', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
        TOK_GUARD(tok_buf_write(b, esc, 3));
    }
    return TOK_OK;
}

tok_status tok_stripe_form_add(struct tok_buf *body, const char *key, struct tok_slice value)
{
    TOK_ENSURE(body != NULL && key != NULL && key[0] != '\0', TOK_ERR_INTERNAL);
    TOK_ENSURE(value.ptr != NULL || value.len == 0, TOK_ERR_INTERNAL);
    uint32_t mark = body->len;
    tok_status st = TOK_OK;
    if (body->len > 0)
        st = tok_buf_putc(body, '&');
    if (st == TOK_OK)
        st = pct_encode(body, tok_slice_str(key), true);
    if (st == TOK_OK)
        st = tok_buf_putc(body, '=');
    if (st == TOK_OK)
        st = pct_encode(body, value, false);
    if (st != TOK_OK) {
        /* leave the body as it was, and wipe the partial value (it may be a PAN) */
        sodium_memzero(body->data + mark, body->len - mark);
        body->len = mark;
    }
    return st;
}

static tok_status form_int(struct tok_buf *body, const char *key, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", (long long)v);
    TOK_ENSURE(n > 0 && (size_t)n < sizeof num, TOK_ERR_INTERNAL);
    return tok_stripe_form_add(body, key, tok_slice_of(num, (size_t)n));
}

static tok_status form_str(struct tok_buf *body, const char *key, const char *v)
{
    return tok_stripe_form_add(body, key, tok_slice_str(v));
}

tok_status tok_stripe_amount(const char *currency, int64_t amount, int64_t *out)
{
    TOK_ENSURE(currency != NULL && out != NULL, TOK_ERR_INTERNAL);
    char lc[4];
    TOK_GUARD(tok_currency_normalise(tok_slice_str(currency), lc));
    TOK_ENSURE(amount >= 0 && amount <= TOK_AMOUNT_MAX, TOK_ERR_INPUT);
    if (strcmp(lc, "isk") == 0)
        amount *= 100;
    *out = amount;
    return TOK_OK;
}

static tok_status encode_tokenise(const struct tok_gateway_call *call, struct tok_buf *path,
                                  struct tok_buf *body)
{
    if (call->step == 1) { /* the Customer the PaymentMethod is attached to */
        TOK_ENSURE(tok_gateway_id_ok(tok_slice_str(call->step_ref)), TOK_ERR_INPUT);
        TOK_GUARD(tok_buf_puts(path, "/v1/customers"));
        return form_str(body, "payment_method", call->step_ref);
    }
    const struct tok_card_data *card = call->card;
    TOK_ENSURE(card != NULL && card->pan.len >= 12 && card->pan.len <= 19, TOK_ERR_INPUT);
    TOK_ENSURE(card->exp_month >= 1 && card->exp_month <= 12 && card->exp_year >= 2000 &&
                   card->exp_year <= 9999,
               TOK_ERR_INPUT);
    TOK_GUARD(tok_buf_puts(path, "/v1/payment_methods"));
    TOK_GUARD(form_str(body, "type", "card"));
    TOK_GUARD(tok_stripe_form_add(body, "card[number]", card->pan));
    TOK_GUARD(form_int(body, "card[exp_month]", card->exp_month));
    TOK_GUARD(form_int(body, "card[exp_year]", card->exp_year));
    if (card->cvc.len > 0)
        TOK_GUARD(tok_stripe_form_add(body, "card[cvc]", card->cvc));
    if (card->name.len > 0)
        TOK_GUARD(tok_stripe_form_add(body, "billing_details[name]", card->name));
    return TOK_OK;
}

tok_status tok_stripe_split_ref(const char *pm_ref, char pm[TOK_GATEWAY_ID_MAX + 1],
                                char cus[TOK_GATEWAY_ID_MAX + 1])
{
    TOK_ENSURE(pm_ref != NULL && pm != NULL && cus != NULL, TOK_ERR_INPUT);
    const char *bar = strchr(pm_ref, '|');
    struct tok_slice p = bar != NULL ? tok_slice_of(pm_ref, (size_t)(bar - pm_ref))
                                     : tok_slice_str(pm_ref);
    struct tok_slice c = bar != NULL ? tok_slice_str(bar + 1) : tok_slice_of("", 0);
    TOK_ENSURE(tok_gateway_id_ok(p) && (bar == NULL || tok_gateway_id_ok(c)), TOK_ERR_INPUT);
    tok_copy(pm, p.ptr, p.len);
    pm[p.len] = '\0';
    if (c.len > 0)
        tok_copy(cus, c.ptr, c.len);
    cus[c.len] = '\0';
    return TOK_OK;
}

static tok_status encode_charge(const struct tok_gateway_call *call, struct tok_buf *path,
                                struct tok_buf *body)
{
    char pm[TOK_GATEWAY_ID_MAX + 1], cus[TOK_GATEWAY_ID_MAX + 1];
    TOK_GUARD(tok_stripe_split_ref(call->pm_ref, pm, cus));
    char lc[4];
    int64_t amount = 0;
    TOK_GUARD(tok_currency_normalise(tok_slice_str(call->currency), lc));
    TOK_ENSURE(call->amount >= 1, TOK_ERR_INPUT);
    TOK_GUARD(tok_stripe_amount(lc, call->amount, &amount));
    TOK_GUARD(tok_buf_puts(path, "/v1/payment_intents"));
    TOK_GUARD(form_int(body, "amount", amount));
    TOK_GUARD(form_str(body, "currency", lc));
    if (cus[0] != '\0')
        TOK_GUARD(form_str(body, "customer", cus));
    TOK_GUARD(form_str(body, "payment_method", pm));
    TOK_GUARD(form_str(body, "payment_method_types[]", "card"));
    TOK_GUARD(form_str(body, "confirm", "true"));
    if (call->off_session)
        TOK_GUARD(form_str(body, "off_session", "true"));
    else if (cus[0] != '\0')
        TOK_GUARD(form_str(body, "setup_future_usage", "off_session"));
    if (!call->off_session && call->return_url != NULL && call->return_url[0] != '\0')
        TOK_GUARD(form_str(body, "return_url", call->return_url));
    TOK_GUARD(form_str(body, "capture_method", call->capture ? "automatic" : "manual"));
    sodium_memzero(pm, sizeof pm);
    sodium_memzero(cus, sizeof cus);
    return TOK_OK;
}

static tok_status encode_detach(const struct tok_gateway_call *call, struct tok_buf *path)
{
    char pm[TOK_GATEWAY_ID_MAX + 1], cus[TOK_GATEWAY_ID_MAX + 1];
    TOK_GUARD(tok_stripe_split_ref(call->pm_ref, pm, cus));
    tok_status st = tok_buf_printf(path, "/v1/payment_methods/%s/detach", pm);
    sodium_memzero(pm, sizeof pm);
    sodium_memzero(cus, sizeof cus);
    return st;
}

static tok_status encode_followup(const struct tok_gateway_call *call, struct tok_buf *path,
                                  struct tok_buf *body)
{
    TOK_ENSURE(call->charge_ref != NULL && tok_gateway_id_ok(tok_slice_str(call->charge_ref)),
               TOK_ERR_INPUT);
    int64_t amount = 0;
    if (call->op != TOK_GW_VOID) {
        TOK_ENSURE(call->amount >= 1, TOK_ERR_INPUT);
        TOK_GUARD(tok_stripe_amount(call->currency, call->amount, &amount));
    }
    switch (call->op) {
    case TOK_GW_CAPTURE:
        TOK_GUARD(tok_buf_printf(path, "/v1/payment_intents/%s/capture", call->charge_ref));
        return form_int(body, "amount_to_capture", amount);
    case TOK_GW_VOID:
        return tok_buf_printf(path, "/v1/payment_intents/%s/cancel", call->charge_ref);
    case TOK_GW_REFUND:
        TOK_GUARD(tok_buf_puts(path, "/v1/refunds"));
        TOK_GUARD(form_str(body, "payment_intent", call->charge_ref));
        return form_int(body, "amount", amount);
    default:
        return TOK_ERR_INTERNAL;
    }
}

tok_status tok_stripe_encode(const struct tok_gateway_call *call, struct tok_buf *path,
                             struct tok_buf *body)
{
    TOK_ENSURE(call != NULL && path != NULL && body != NULL, TOK_ERR_INTERNAL);
    uint32_t pmark = path->len, bmark = body->len;
    tok_status st;
    switch (call->op) {
    case TOK_GW_TOKENISE:
        st = encode_tokenise(call, path, body);
        break;
    case TOK_GW_CHARGE:
        st = encode_charge(call, path, body);
        break;
    case TOK_GW_CAPTURE:
    case TOK_GW_VOID:
    case TOK_GW_REFUND:
        st = encode_followup(call, path, body);
        break;
    case TOK_GW_DETACH:
        st = encode_detach(call, path);
        break;
    case TOK_GW_COMPLETE:
        st = call->charge_ref != NULL && tok_gateway_id_ok(tok_slice_str(call->charge_ref))
                 ? tok_buf_printf(path, "/v1/payment_intents/%s", call->charge_ref)
                 : TOK_ERR_INPUT;
        break;
    default:
        st = TOK_ERR_INTERNAL;
        break;
    }
    if (st != TOK_OK) {
        sodium_memzero(body->data + bmark, body->len - bmark);
        body->len = bmark;
        path->len = pmark;
    }
    return st;
}

/* ---- parsing ---------------------------------------------------------------------------- */

static bool str_of(const struct tok_json_node *obj, const char *key, struct tok_slice *out)
{
    const struct tok_json_node *n = tok_json_get(obj, key);
    return n != NULL && tok_json_string(n, out) == TOK_OK;
}

/* A short [a-z0-9_] code from the answer as a C string in out; "" when absent or odd. */
static void code_of(const struct tok_json_node *obj, const char *key, char *out, size_t cap)
{
    struct tok_slice s;
    out[0] = '\0';
    if (!str_of(obj, key, &s) || s.len == 0 || s.len >= cap)
        return;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return;
    }
    tok_copy(out, s.ptr, s.len);
    out[s.len] = '\0';
}

/* Stripe's card_error codes -> tokend's stable codes (static strings). */
static const char *card_code(const char *stripe_code)
{
    static const struct {
        const char *stripe, *ours;
    } map[] = {
        {"card_declined", "card_declined"},
        {"expired_card", "expired_card"},
        {"incorrect_cvc", "incorrect_cvc"},
        {"invalid_cvc", "incorrect_cvc"},
        {"incorrect_number", "incorrect_number"},
        {"invalid_number", "incorrect_number"},
        {"invalid_expiry_month", "expired_card"},
        {"invalid_expiry_year", "expired_card"},
        {"authentication_required", "authentication_required"},
        {"card_decline_rate_limit_exceeded", "card_declined"},
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(map); i++)
        if (strcmp(stripe_code, map[i].stripe) == 0)
            return map[i].ours;
    return "card_declined";
}

static void parse_error(struct tok_gateway_call *call, long status,
                        const struct tok_json_node *root)
{
    const struct tok_json_node *err = tok_json_get(root, "error");
    char type[32], code[TOK_GATEWAY_CODE_MAX], decline[TOK_GATEWAY_CODE_MAX];
    code_of(err, "type", type, sizeof type);
    code_of(err, "code", code, sizeof code);
    code_of(err, "decline_code", decline, sizeof decline);
    if (status == 402 && strcmp(type, "card_error") == 0) {
        if (strcmp(code, "processing_error") == 0) {
            tok_gateway_set(call, TOK_GW_ERROR, "processing_error", NULL);
            return;
        }
        const char *ours = card_code(code);
        tok_gateway_set(call, TOK_GW_DECLINED, ours, decline[0] != '\0' ? decline : ours);
        return;
    }
    if (status == 409 || strcmp(type, "idempotency_error") == 0) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_conflict", NULL);
        return;
    }
    tok_gateway_set(call, TOK_GW_ERROR, "gateway_invalid_request", NULL);
}

/* A PaymentIntent that is not (yet) paid: waiting for the customer, or refused. */
static void parse_unpaid(struct tok_gateway_call *call, const struct tok_json_node *root,
                         struct tok_slice id, struct tok_slice status)
{
    sodium_memzero(call->ref, sizeof call->ref);
    if (tok_slice_eq(status, "requires_action")) {
        const struct tok_json_node *na = tok_json_get(root, "next_action");
        struct tok_slice type = {0}, url = {0};
        const struct tok_json_node *rd = tok_json_get(na, "redirect_to_url");
        if (str_of(na, "type", &type) && tok_slice_eq(type, "redirect_to_url") &&
            str_of(rd, "url", &url) && tok_gateway_set_action(call, id, url) == TOK_OK)
            return;
        tok_gateway_set(call, TOK_GW_DECLINED, "authentication_required",
                        "authentication_required");
        return;
    }
    if (tok_slice_eq(status, "requires_payment_method")) {
        const struct tok_json_node *err = tok_json_get(root, "last_payment_error");
        char code[TOK_GATEWAY_CODE_MAX], decline[TOK_GATEWAY_CODE_MAX];
        code_of(err, "code", code, sizeof code);
        code_of(err, "decline_code", decline, sizeof decline);
        if (strcmp(code, "payment_intent_authentication_failure") == 0 || code[0] == '\0') {
            tok_gateway_set(call, TOK_GW_DECLINED, "authentication_failed",
                            "authentication_failed");
            return;
        }
        const char *ours = card_code(code);
        tok_gateway_set(call, TOK_GW_DECLINED, ours, decline[0] != '\0' ? decline : ours);
        return;
    }
    tok_gateway_set(call, TOK_GW_ERROR, "processing_error", NULL);
}

static void parse_ok(struct tok_gateway_call *call, const struct tok_json_node *root)
{
    struct tok_slice id, status = {0};
    (void)str_of(root, "status", &status);
    if (!str_of(root, "id", &id) || tok_gateway_set_ref(call, id) != TOK_OK) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    switch (call->op) {
    case TOK_GW_TOKENISE:
        return;
    case TOK_GW_CHARGE:
    case TOK_GW_COMPLETE:
        if (tok_slice_eq(status, "succeeded")) {
            call->captured = true;
            return;
        }
        if (tok_slice_eq(status, "requires_capture"))
            return;
        parse_unpaid(call, root, id, status);
        return;
    case TOK_GW_CAPTURE:
        sodium_memzero(call->ref, sizeof call->ref);
        if (!tok_slice_eq(status, "succeeded"))
            tok_gateway_set(call, TOK_GW_ERROR, "processing_error", NULL);
        return;
    case TOK_GW_VOID:
        sodium_memzero(call->ref, sizeof call->ref);
        if (!tok_slice_eq(status, "canceled"))
            tok_gateway_set(call, TOK_GW_ERROR, "processing_error", NULL);
        return;
    case TOK_GW_REFUND:
        if (!tok_slice_eq(status, "succeeded") && !tok_slice_eq(status, "pending")) {
            sodium_memzero(call->ref, sizeof call->ref);
            tok_gateway_set(call, TOK_GW_ERROR, "processing_error", NULL);
        }
        return;
    case TOK_GW_DETACH:
        sodium_memzero(call->ref, sizeof call->ref);
        return;
    default:
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_error", NULL);
        return;
    }
}

void tok_stripe_parse(struct tok_gateway_call *call, const struct tok_gateway_wire *w,
                      long status, struct tok_slice body)
{
    (void)w;
    tok_gateway_reset_outputs(call);
    if (tok_gateway_http_common(call, status))
        return;
    struct tok_json_doc *doc = tok_gateway_json(body);
    if (doc == NULL) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    const struct tok_json_node *root = tok_json_root(doc);
    if (status == 200)
        parse_ok(call, root);
    else if (status >= 400 && status <= 499)
        parse_error(call, status, root);
    else
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
    tok_json_doc_free(&doc);
}

/* ---- the adapter ------------------------------------------------------------------------ */

static void stripe_send(const struct tok_gateway_ops *self, struct tok_gateway_call *call)
{
    tok_gateway_reset_outputs(call);
    const struct tok_gateway_account *acct = call->account;
    if (acct == NULL || acct->api_key == NULL || acct->api_key[0] == '\0' ||
        acct->base_url[0] == '\0' || call->env == NULL || call->env->httpc == NULL ||
        call->env->reply_to == NULL) {
        tok_gateway_fail_now(call, "gateway_not_configured");
        return;
    }
    struct tok_gateway_wire w;
    memset(&w, 0, sizeof w);
    if (tok_gateway_wire_key(call, TOK_STRIPE_IDEM_MAX - 16, &w) != TOK_OK) {
        tok_gateway_fail_now(call, "gateway_error");
        return;
    }
    if (call->step == 1) { /* the Customer step has its own key, derived from the call's */
        struct tok_buf kb;
        tok_buf_init(&kb, w.idem_key, sizeof w.idem_key - 1);
        kb.len = (uint32_t)strlen(w.idem_key);
        if (tok_buf_puts(&kb, "_customer") != TOK_OK) {
            tok_gateway_fail_now(call, "gateway_error");
            return;
        }
        w.idem_key[kb.len] = '\0';
    }
    struct tok_httpc_request *req = NULL;
    if (tok_httpc_request_new(&req) != TOK_OK) {
        tok_gateway_fail_now(call, "gateway_error");
        return;
    }
    char pmem[TOK_GATEWAY_PATH_MAX];
    struct tok_buf path;
    tok_buf_init(&path, pmem, sizeof pmem - 1);
    const char *p = NULL;
    char auth[16 + 512];
    struct tok_buf ab;
    tok_buf_init(&ab, auth, sizeof auth);
    tok_status st = tok_stripe_encode(call, &path, &req->body);
    if (st == TOK_OK)
        st = tok_buf_cstr(&path, &p);
    if (st == TOK_OK)
        st = tok_httpc_request_url(req, acct->base_url, p);
    if (st == TOK_OK)
        st = tok_buf_puts(&ab, "Bearer ");
    if (st == TOK_OK)
        st = tok_buf_puts(&ab, acct->api_key);
    if (st == TOK_OK)
        st = tok_httpc_request_header(req, "Authorization", tok_buf_slice(&ab));
    sodium_memzero(auth, sizeof auth);
    if (st == TOK_OK)
        st = tok_httpc_request_header(req, "Stripe-Version", tok_slice_str(TOK_STRIPE_VERSION));
    /* a retrieval is safe to repeat and takes no key */
    if (st == TOK_OK && call->op != TOK_GW_COMPLETE)
        st = tok_httpc_request_header(req, "Idempotency-Key", tok_slice_str(w.idem_key));
    if (st == TOK_OK)
        st = tok_httpc_request_header(req, "Content-Type",
                                      tok_slice_str("application/x-www-form-urlencoded"));
    if (st != TOK_OK) {
        tok_httpc_request_free(&req);
        tok_gateway_fail_now(call, st == TOK_ERR_INPUT ? "gateway_invalid_request"
                                                       : "gateway_error");
        return;
    }
    req->post = call->op != TOK_GW_COMPLETE;
    tok_gateway_exchange(self, call, req, &w, tok_stripe_parse);
}

static const struct tok_gateway_ops stripe;

/* TOKENISE's steps: the PaymentMethod, then the Customer it is attached to. */
static void on_tokenise_step(struct tok_gateway_call *call)
{
    if (call->step == 0 && call->outcome == TOK_GW_OK) {
        tok_copy(call->step_ref, call->ref, sizeof call->step_ref);
        call->step = 1;
        stripe_send(&stripe, call);
        return;
    }
    if (call->step == 1 && call->outcome == TOK_GW_OK) {
        char ref[TOK_GATEWAY_REF_MAX];
        int n = snprintf(ref, sizeof ref, "%s|%s", call->step_ref, call->ref);
        if (n <= 0 || (size_t)n >= sizeof ref ||
            tok_gateway_set_ref(call, tok_slice_of(ref, (size_t)n)) != TOK_OK) {
            sodium_memzero(call->ref, sizeof call->ref);
            tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        }
        sodium_memzero(ref, sizeof ref);
    }
    /* a failed Customer step leaves an unattached PaymentMethod at Stripe, which nothing
     * references and Stripe never charges without a confirm */
    sodium_memzero(call->step_ref, sizeof call->step_ref);
    call->step = 0;
    call->done = call->step_done;
    call->step_done = NULL;
    call->done(call);
}

static void stripe_submit(const struct tok_gateway_ops *self, struct tok_gateway_call *call)
{
    if (call->op == TOK_GW_TOKENISE) {
        call->step = 0;
        call->step_done = call->done;
        call->done = on_tokenise_step;
    }
    stripe_send(self, call);
}

static const struct tok_gateway_ops stripe = {"stripe", false, stripe_submit};

const struct tok_gateway_ops *tok_gateway_stripe(void)
{
    return &stripe;
}
