/*
 * gateway_adyen.c - the Adyen adapter (Checkout API v71, JSON).
 *
 *   TOKENISE  POST /v71/payments  zero-value authorisation (amount 0, as Adyen documents for
 *             storing a card): paymentMethod {type scheme, number, expiryMonth "MM",
 *             expiryYear "YYYY", cvc, holderName}, storePaymentMethod true,
 *             shopperReference (random, ours), recurringProcessingModel
 *             UnscheduledCardOnFile, shopperInteraction Ecommerce, returnUrl
 *             -> ref = "<additionalData.tokenization.storedPaymentMethodId>|<shopperReference>"
 *             (tokend keeps only that sealed string, and charges need both halves)
 *   CHARGE    POST /v71/payments  paymentMethod {type scheme, storedPaymentMethodId},
 *             shopperReference, and who starts it: merchant-initiated (off_session) ->
 *             shopperInteraction ContAuth, recurringProcessingModel UnscheduledCardOnFile;
 *             the shopper present -> shopperInteraction Ecommerce, recurringProcessingModel
 *             CardOnFile (docs.adyen.com/online-payments/tokenization/create-and-use-tokens:
 *             Ecommerce for a shopper in session, ContAuth for later payments without him);
 *             capture at once: captureDelayHours 0; authorise only:
 *             additionalData.manualCapture "true" -> ref = pspReference
 *   CAPTURE   POST /v71/payments/{psp}/captures   amount
 *   VOID      POST /v71/payments/{psp}/cancels
 *   REFUND    POST /v71/payments/{psp}/refunds    amount -> ref = the refund's pspReference
 *   DETACH    DELETE /v71/storedPaymentMethods/{id}?shopperReference=..&merchantAccount=..
 *             -> 204 (the token can no longer be used with payment requests)
 *   COMPLETE  POST /v71/payments/details  {"details": {"redirectResult": ...}}: the payment
 *             that waited for the shopper (below) -> resultCode Authorised or Refused
 * 3-D Secure (docs.adyen.com/online-payments/3d-secure/redirect-3ds2): a charge with the
 * shopper present carries returnUrl; when the issuer wants authentication Adyen answers
 * resultCode RedirectShopper and an action {type redirect, method GET, url} the shopper's
 * browser follows (ACTION, ref = pspReference). Adyen sends the shopper back to returnUrl
 * with a redirectResult, which COMPLETE passes to /payments/details.
 * Every payment with the shopper present (TOKENISE, CHARGE on session) asks for that redirect
 * flow explicitly: authenticationData.threeDSRequestData.nativeThreeDS "disabled" ("Use the
 * redirect 3D Secure authentication flow", Checkout v71's ThreeDSRequestData; "preferred" asks
 * for native 3DS2, docs.adyen.com/online-payments/3d-secure/native-3ds2). Native 3DS2
 * (IdentifyShopper, ChallengeShopper, action type threeDS2 with a token and no url) needs
 * Adyen's 3DS2 Component running in the shopper's browser, which a server-only service cannot
 * give: should one come anyway (an account set up to force it), a charge that could have been
 * redirected fails with code native_3ds_unsupported (ERROR: no other gateway is tried, the
 * payment is left unfinished at Adyen, where it expires); elsewhere (no returnUrl, no shopper,
 * TOKENISE) any authentication demand is an authentication_required decline.
 * The shopper's browser (call->browser, docs.adyen.com/online-payments/3d-secure/redirect-3ds2/
 * api-only: "the full object is required for web integrations") goes as browserInfo, with
 * channel "Web", origin (the scheme, host and port of return_url: the app's site, which the
 * shopper is on) and shopperIP when the app gave the address. Adyen refuses a 3DS2 payment
 * without it (Authentication required).
 * Modifications answer 201 "received": Adyen decides later and says so by webhook (CAPTURE,
 * CANCELLATION, REFUND notifications). tokend records "received" as done; a refusal that
 * arrives by webhook is for the webhook handler (not part of this adapter).
 * Headers: X-API-Key, Idempotency-Key (<= 64 characters), Content-Type application/json.
 * A declining card is refused at TOKENISE already (the zero-value authorisation asks the
 * issuer), unlike Stripe, where creating a PaymentMethod does not.
 */
#include "tokend/core/currency.h"
#include "tokend/gateways/gateway.h"
#include "tokend/gateways/registry.h"
#include "tokend/core/rand.h"
#include "tokend/gateways/gateway_wire.h"
#include "tokend/core/json.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- encoding --------------------------------------------------------------------------- */

/*
 * Checkout v71 requires returnUrl on every /payments request (PaymentRequest "required" in
 * Adyen's OpenAPI document; t_45_contracts.sh checks the adapter's requests against it): the
 * page a shopper sent away to authenticate comes back to. tokend redirects no shopper yet (a
 * RedirectShopper answer is an authentication_required decline), so the URL names a host that
 * cannot exist (RFC 6761 .invalid): a redirect made anyway ends in the shopper's browser and
 * reaches no one, instead of a real site.
 */
#define TOK_ADYEN_RETURN_URL "https://return.tokend.invalid/"

tok_status tok_adyen_amount(const char *currency, int64_t amount, int64_t *out, char cur_upper[4])
{
    TOK_ENSURE(currency != NULL && out != NULL && cur_upper != NULL, TOK_ERR_INTERNAL);
    char lc[4];
    TOK_GUARD(tok_currency_normalise(tok_slice_str(currency), lc));
    TOK_ENSURE(amount >= 0 && amount <= TOK_AMOUNT_MAX, TOK_ERR_INPUT);
    /* docs.adyen.com/development-resources/currency-codes: "differs from standard" */
    if (strcmp(lc, "clp") == 0 || strcmp(lc, "isk") == 0)
        amount *= 100;
    for (int i = 0; i < 3; i++)
        cur_upper[i] = (char)(lc[i] - 'a' + 'A');
    cur_upper[3] = '\0';
    *out = amount;
    return TOK_OK;
}

static void w_amount(struct tok_json_writer *jw, int64_t value, const char *cur)
{
    tok_jw_key(jw, "amount");
    tok_jw_obj_begin(jw);
    tok_jw_kstr(jw, "currency", cur);
    tok_jw_kint(jw, "value", value);
    tok_jw_obj_end(jw);
}

/* authenticationData: the redirect flow, asked for explicitly (see the top of this file) */
static void w_redirect_3ds(struct tok_json_writer *jw)
{
    tok_jw_key(jw, "authenticationData");
    tok_jw_obj_begin(jw);
    tok_jw_key(jw, "threeDSRequestData");
    tok_jw_obj_begin(jw);
    tok_jw_kstr(jw, "nativeThreeDS", "disabled");
    tok_jw_obj_end(jw);
    tok_jw_obj_end(jw);
}

/*
 * The origin (RFC 6454: scheme "://" host [":" port]) of an absolute http(s) URL into
 * out[cap]; false when it has none we would send (user information, longer than Adyen's 80).
 */
static bool origin_of(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return false;
    p += 3;
    size_t n = (size_t)(p - url) + strcspn(p, "/?#\\"); /* as WHATWG URL: a backslash too */
    if (n == (size_t)(p - url) || memchr(url, '@', n) != NULL || n > TOK_ADYEN_ORIGIN_MAX ||
        n >= cap)
        return false;
    tok_copy(out, url, n);
    out[n] = '\0';
    return true;
}

static void w_browser(const struct tok_gateway_call *call, struct tok_json_writer *jw)
{
    const struct tok_browser_info *b = call->browser;
    tok_jw_key(jw, "browserInfo");
    tok_jw_obj_begin(jw);
    tok_jw_kstr(jw, "acceptHeader", b->accept_header);
    tok_jw_kint(jw, "colorDepth", b->color_depth);
    tok_jw_kbool(jw, "javaEnabled", b->java_enabled);
    tok_jw_kstr(jw, "language", b->language);
    tok_jw_kint(jw, "screenHeight", b->screen_height);
    tok_jw_kint(jw, "screenWidth", b->screen_width);
    tok_jw_kint(jw, "timeZoneOffset", b->time_zone_offset);
    tok_jw_kstr(jw, "userAgent", b->user_agent);
    tok_jw_obj_end(jw);
    tok_jw_kstr(jw, "channel", "Web");
    char origin[TOK_ADYEN_ORIGIN_MAX + 1];
    if (call->return_url != NULL && origin_of(call->return_url, origin, sizeof origin))
        tok_jw_kstr(jw, "origin", origin);
    if (b->ip_address[0] != '\0')
        tok_jw_kstr(jw, "shopperIP", b->ip_address);
}

static tok_status encode_tokenise(const struct tok_gateway_call *call,
                                  const struct tok_gateway_wire *w, struct tok_json_writer *jw)
{
    const struct tok_card_data *card = call->card;
    TOK_ENSURE(card != NULL && card->pan.len >= 12 && card->pan.len <= 19, TOK_ERR_INPUT);
    TOK_ENSURE(card->exp_month >= 1 && card->exp_month <= 12 && card->exp_year >= 2000 &&
                   card->exp_year <= 9999,
               TOK_ERR_INPUT);
    TOK_ENSURE(w->shopper[0] != '\0', TOK_ERR_INPUT);
    char mm[4], yyyy[8];
    snprintf(mm, sizeof mm, "%02d", card->exp_month);
    snprintf(yyyy, sizeof yyyy, "%04d", card->exp_year);
    const char *cur = call->currency[0] != '\0' ? call->currency : TOK_ADYEN_TOKENISE_CURRENCY;
    char up[4];
    int64_t zero = 0;
    TOK_GUARD(tok_adyen_amount(cur, 0, &zero, up));
    w_amount(jw, 0, up);
    tok_jw_key(jw, "paymentMethod");
    tok_jw_obj_begin(jw);
    tok_jw_kstr(jw, "type", "scheme");
    tok_jw_key(jw, "number");
    tok_jw_strn(jw, card->pan);
    tok_jw_kstr(jw, "expiryMonth", mm);
    tok_jw_kstr(jw, "expiryYear", yyyy);
    if (card->cvc.len > 0) {
        tok_jw_key(jw, "cvc");
        tok_jw_strn(jw, card->cvc);
    }
    if (card->name.len > 0) {
        tok_jw_key(jw, "holderName");
        tok_jw_strn(jw, card->name);
    }
    tok_jw_obj_end(jw);
    tok_jw_kbool(jw, "storePaymentMethod", true);
    tok_jw_kstr(jw, "shopperReference", w->shopper);
    tok_jw_kstr(jw, "recurringProcessingModel", "UnscheduledCardOnFile");
    tok_jw_kstr(jw, "shopperInteraction", "Ecommerce");
    tok_jw_kstr(jw, "returnUrl", TOK_ADYEN_RETURN_URL);
    w_redirect_3ds(jw);
    return TOK_OK;
}

/* pm_ref "<storedPaymentMethodId>|<shopperReference>": the id into id[], the shopper into w. */
static tok_status split_pm_ref(const char *pm_ref, char *id, size_t id_cap,
                               struct tok_gateway_wire *w)
{
    TOK_ENSURE(pm_ref != NULL, TOK_ERR_INPUT);
    const char *bar = strchr(pm_ref, '|');
    TOK_ENSURE(bar != NULL, TOK_ERR_INPUT);
    struct tok_slice sid = tok_slice_of(pm_ref, (size_t)(bar - pm_ref));
    struct tok_slice shop = tok_slice_str(bar + 1);
    TOK_ENSURE(tok_gateway_id_ok(sid) && tok_gateway_id_ok(shop), TOK_ERR_INPUT);
    TOK_ENSURE(sid.len < id_cap && shop.len < sizeof w->shopper, TOK_ERR_INPUT);
    tok_copy(id, sid.ptr, sid.len);
    id[sid.len] = '\0';
    tok_copy(w->shopper, shop.ptr, shop.len);
    w->shopper[shop.len] = '\0';
    return TOK_OK;
}

static tok_status encode_charge(const struct tok_gateway_call *call, struct tok_gateway_wire *w,
                                struct tok_json_writer *jw)
{
    char id[TOK_GATEWAY_ID_MAX + 1];
    TOK_GUARD(split_pm_ref(call->pm_ref, id, sizeof id, w));
    int64_t value = 0;
    char up[4];
    TOK_ENSURE(call->amount >= 1, TOK_ERR_INPUT);
    TOK_GUARD(tok_adyen_amount(call->currency, call->amount, &value, up));
    w_amount(jw, value, up);
    tok_jw_key(jw, "paymentMethod");
    tok_jw_obj_begin(jw);
    tok_jw_kstr(jw, "type", "scheme");
    tok_jw_kstr(jw, "storedPaymentMethodId", id);
    tok_jw_obj_end(jw);
    tok_jw_kstr(jw, "shopperReference", w->shopper);
    tok_jw_kstr(jw, "shopperInteraction", call->off_session ? "ContAuth" : "Ecommerce");
    tok_jw_kstr(jw, "recurringProcessingModel",
                call->off_session ? "UnscheduledCardOnFile" : "CardOnFile");
    /* Checkout v71 requires returnUrl on every /payments: the app's own when the customer is
     * here to come back to it, else a name that cannot resolve (see TOK_ADYEN_RETURN_URL) */
    tok_jw_kstr(jw, "returnUrl",
                !call->off_session && call->return_url != NULL && call->return_url[0] != '\0'
                    ? call->return_url
                    : TOK_ADYEN_RETURN_URL);
    if (!call->off_session) {
        w_redirect_3ds(jw);
        if (call->browser != NULL)
            w_browser(call, jw);
    }
    if (call->capture) {
        tok_jw_kint(jw, "captureDelayHours", 0);
    } else {
        tok_jw_key(jw, "additionalData");
        tok_jw_obj_begin(jw);
        tok_jw_kstr(jw, "manualCapture", "true");
        tok_jw_obj_end(jw);
    }
    sodium_memzero(id, sizeof id);
    return TOK_OK;
}

/* DELETE /storedPaymentMethods/{id}: everything in the path and the query, no body */
static tok_status encode_detach(const struct tok_gateway_call *call, const char *merchant,
                                struct tok_gateway_wire *w, struct tok_buf *path)
{
    char id[TOK_GATEWAY_ID_MAX + 1];
    TOK_GUARD(split_pm_ref(call->pm_ref, id, sizeof id, w));
    tok_status st = tok_buf_printf(path, TOK_ADYEN_API "/storedPaymentMethods/%s?", id);
    struct tok_buf q;
    char qmem[TOK_GATEWAY_PATH_MAX];
    tok_buf_init(&q, qmem, sizeof qmem);
    if (st == TOK_OK)
        st = tok_stripe_form_add(&q, "shopperReference", tok_slice_str(w->shopper));
    if (st == TOK_OK)
        st = tok_stripe_form_add(&q, "merchantAccount", tok_slice_str(merchant));
    if (st == TOK_OK)
        st = tok_buf_write(path, q.data, q.len);
    sodium_memzero(id, sizeof id);
    return st;
}

static tok_status encode(const struct tok_gateway_call *call, const char *merchant,
                         struct tok_gateway_wire *w, struct tok_buf *path, struct tok_buf *body)
{
    TOK_ENSURE(merchant != NULL && merchant[0] != '\0', TOK_ERR_INPUT);
    TOK_ENSURE(w->reference[0] != '\0', TOK_ERR_INPUT);
    if (call->op == TOK_GW_DETACH)
        return encode_detach(call, merchant, w, path);
    struct tok_json_writer jw;
    if (call->op == TOK_GW_COMPLETE) { /* PaymentDetailsRequest: details only */
        TOK_ENSURE(call->return_data != NULL && call->return_data[0] != '\0' &&
                       strlen(call->return_data) < TOK_GATEWAY_RETURN_DATA_MAX,
                   TOK_ERR_INPUT);
        TOK_GUARD(tok_buf_puts(path, TOK_ADYEN_API "/payments/details"));
        tok_jw_init(&jw, body);
        tok_jw_obj_begin(&jw);
        tok_jw_key(&jw, "details");
        tok_jw_obj_begin(&jw);
        tok_jw_kstr(&jw, "redirectResult", call->return_data);
        tok_jw_obj_end(&jw);
        tok_jw_obj_end(&jw);
        return tok_jw_finish(&jw);
    }
    tok_jw_init(&jw, body);
    tok_jw_obj_begin(&jw);
    tok_jw_kstr(&jw, "merchantAccount", merchant);
    tok_jw_kstr(&jw, "reference", w->reference);
    const char *verb = NULL;
    switch (call->op) {
    case TOK_GW_TOKENISE:
        TOK_GUARD(tok_buf_puts(path, TOK_ADYEN_API "/payments"));
        TOK_GUARD(encode_tokenise(call, w, &jw));
        break;
    case TOK_GW_CHARGE:
        TOK_GUARD(tok_buf_puts(path, TOK_ADYEN_API "/payments"));
        TOK_GUARD(encode_charge(call, w, &jw));
        break;
    case TOK_GW_CAPTURE:
        verb = "captures";
        break;
    case TOK_GW_VOID:
        verb = "cancels";
        break;
    case TOK_GW_REFUND:
        verb = "refunds";
        break;
    default:
        return TOK_ERR_INTERNAL;
    }
    if (verb != NULL) {
        TOK_ENSURE(call->charge_ref != NULL && tok_gateway_id_ok(tok_slice_str(call->charge_ref)),
                   TOK_ERR_INPUT);
        TOK_GUARD(tok_buf_printf(path, TOK_ADYEN_API "/payments/%s/%s", call->charge_ref, verb));
        if (call->op != TOK_GW_VOID) {
            int64_t value = 0;
            char up[4];
            TOK_ENSURE(call->amount >= 1, TOK_ERR_INPUT);
            TOK_GUARD(tok_adyen_amount(call->currency, call->amount, &value, up));
            w_amount(&jw, value, up);
        }
    }
    tok_jw_obj_end(&jw);
    return tok_jw_finish(&jw);
}

tok_status tok_adyen_encode(const struct tok_gateway_call *call, const char *merchant_account,
                            struct tok_gateway_wire *w, struct tok_buf *path, struct tok_buf *body)
{
    TOK_ENSURE(call != NULL && w != NULL && path != NULL && body != NULL, TOK_ERR_INTERNAL);
    uint32_t pmark = path->len, bmark = body->len;
    tok_status st = encode(call, merchant_account, w, path, body);
    if (st != TOK_OK) {
        sodium_memzero(body->data + bmark, body->len - bmark);
        body->len = bmark;
        path->len = pmark;
    }
    return st;
}

/* ---- parsing ---------------------------------------------------------------------------- */

void tok_adyen_refusal(struct tok_slice reason_code, struct tok_slice reason, const char **code,
                       const char **decline)
{
    /* docs.adyen.com/development-resources/refusal-reasons */
    static const struct {
        const char *num, *text, *code, *decline;
    } map[] = {
        {"2", "Refused", "card_declined", "generic_decline"},
        {"3", "Referral", "card_declined", "call_issuer"},
        {"5", "Blocked Card", "card_declined", "restricted_card"},
        {"6", "Expired Card", "expired_card", "expired_card"},
        {"7", "Invalid Amount", "card_declined", "invalid_amount"},
        {"8", "Invalid Card Number", "incorrect_number", "incorrect_number"},
        {"9", "Issuer Unavailable", "card_declined", "issuer_not_available"},
        {"10", "Not supported", "card_declined", "card_not_supported"},
        {"11", "3D Not Authenticated", "authentication_required", "authentication_required"},
        {"12", "Not enough balance", "card_declined", "insufficient_funds"},
        {"14", "Acquirer Fraud", "card_declined", "fraudulent"},
        {"15", "Cancelled", "card_declined", "generic_decline"},
        {"16", "Shopper Cancelled", "card_declined", "generic_decline"},
        {"20", "FRAUD", "card_declined", "fraudulent"},
        {"24", "CVC Declined", "incorrect_cvc", "incorrect_cvc"},
        {"25", "Restricted Card", "card_declined", "restricted_card"},
        {"27", "Do Not Honor", "card_declined", "do_not_honor"},
        {"28", "Withdrawal amount exceeded", "card_declined", "withdrawal_count_limit_exceeded"},
        {"29", "Withdrawal count exceeded", "card_declined", "withdrawal_count_limit_exceeded"},
        {"31", "Fraud", "card_declined", "fraudulent"},
        {"32", "AVS Declined", "card_declined", "incorrect_address"},
        {"33", "Card requires online pin", "card_declined", "online_or_offline_pin_required"},
        {"35", "Declined Non Generic", "card_declined", "generic_decline"},
        {"38", "Authentication required", "authentication_required", "authentication_required"},
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(map); i++) {
        if (reason_code.len > 0 ? tok_slice_eq(reason_code, map[i].num)
                                : tok_slice_eq(reason, map[i].text)) {
            *code = map[i].code;
            *decline = map[i].decline;
            return;
        }
    }
    *code = "card_declined";
    *decline = "generic_decline";
}

static bool str_of(const struct tok_json_node *obj, const char *key, struct tok_slice *out)
{
    const struct tok_json_node *n = tok_json_get(obj, key);
    return n != NULL && tok_json_string(n, out) == TOK_OK;
}

static void parse_payment(struct tok_gateway_call *call, const struct tok_gateway_wire *w,
                          const struct tok_json_node *root)
{
    struct tok_slice result = {0}, psp = {0};
    if (!str_of(root, "resultCode", &result)) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    if (tok_slice_eq(result, "Refused") || tok_slice_eq(result, "Cancelled")) {
        struct tok_slice rc = {0}, reason = {0};
        (void)str_of(root, "refusalReasonCode", &rc);
        (void)str_of(root, "refusalReason", &reason);
        const char *code = NULL, *decline = NULL;
        tok_adyen_refusal(rc, reason, &code, &decline);
        /* refused after the shopper's challenge: the authentication failed, as Stripe's
         * payment_intent_authentication_failure is reported */
        if (call->op == TOK_GW_COMPLETE && strcmp(code, "authentication_required") == 0)
            code = decline = "authentication_failed";
        tok_gateway_set(call, TOK_GW_DECLINED, code, decline);
        return;
    }
    if (tok_slice_eq(result, "RedirectShopper") && call->op == TOK_GW_CHARGE &&
        call->return_url != NULL && !call->off_session) {
        const struct tok_json_node *act = tok_json_get(root, "action");
        struct tok_slice type = {0}, method = {0}, url = {0};
        if (!str_of(root, "pspReference", &psp) || !tok_gateway_id_ok(psp))
            psp = tok_slice_str(w->reference); /* the merchant reference names it too */
        if (str_of(act, "type", &type) && tok_slice_eq(type, "redirect") &&
            (!str_of(act, "method", &method) || tok_slice_eq(method, "GET")) &&
            str_of(act, "url", &url) && tok_gateway_set_action(call, psp, url) == TOK_OK)
            return;
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    bool native =
        tok_slice_eq(result, "IdentifyShopper") || tok_slice_eq(result, "ChallengeShopper");
    if (native && call->op == TOK_GW_CHARGE && call->return_url != NULL && !call->off_session) {
        /* native 3DS2 although the redirect flow was asked for (see the top of this file) */
        tok_gateway_set(call, TOK_GW_ERROR, "native_3ds_unsupported", NULL);
        return;
    }
    if (tok_slice_eq(result, "RedirectShopper") || native) {
        /* 3-D Secure wanted: no shopper is present to authenticate, or nowhere to send one */
        tok_gateway_set(call, TOK_GW_DECLINED, "authentication_required",
                        "authentication_required");
        return;
    }
    if (!tok_slice_eq(result, "Authorised")) {
        /* Error, or an asynchronous state (Received, Pending) cards should never reach */
        tok_gateway_set(call, TOK_GW_ERROR, "processing_error", NULL);
        return;
    }
    if (call->op == TOK_GW_CHARGE || call->op == TOK_GW_COMPLETE) {
        if (!str_of(root, "pspReference", &psp) || !tok_gateway_id_ok(psp) ||
            tok_gateway_set_ref(call, psp) != TOK_OK) {
            tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
            return;
        }
        call->captured = call->capture;
        return;
    }
    /* TOKENISE: the stored payment method id, paired with our shopper reference */
    const struct tok_json_node *ad = tok_json_get(root, "additionalData");
    struct tok_slice id = {0};
    if (!str_of(ad, "tokenization.storedPaymentMethodId", &id) &&
        !str_of(ad, "recurring.recurringDetailReference", &id)) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    char ref[TOK_GATEWAY_REF_MAX];
    int n = snprintf(ref, sizeof ref, "%.*s|%s", (int)id.len, (const char *)id.ptr, w->shopper);
    if (!tok_gateway_id_ok(id) || n <= 0 || (size_t)n >= sizeof ref ||
        tok_gateway_set_ref(call, tok_slice_of(ref, (size_t)n)) != TOK_OK)
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
    sodium_memzero(ref, sizeof ref);
}

static void parse_modification(struct tok_gateway_call *call, const struct tok_json_node *root)
{
    struct tok_slice status = {0}, psp = {0};
    if (!str_of(root, "status", &status) || !tok_slice_eq(status, "received")) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    if (call->op != TOK_GW_REFUND)
        return;
    if (!str_of(root, "pspReference", &psp) || !tok_gateway_id_ok(psp) ||
        tok_gateway_set_ref(call, psp) != TOK_OK)
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
}

void tok_adyen_parse(struct tok_gateway_call *call, const struct tok_gateway_wire *w, long status,
                     struct tok_slice body)
{
    tok_gateway_reset_outputs(call);
    if (tok_gateway_http_common(call, status))
        return;
    if (status >= 400 && status <= 499) {
        /* 422 validation (errorCode 800 "Contract not found", 167 unknown psp...), 400, 404 */
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_invalid_request", NULL);
        return;
    }
    if (call->op == TOK_GW_DETACH) {
        if (status != 204 && status != 200)
            tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    bool payment = call->op == TOK_GW_TOKENISE || call->op == TOK_GW_CHARGE ||
                   call->op == TOK_GW_COMPLETE;
    if (status != (payment ? 200 : 201)) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    struct tok_json_doc *doc = tok_gateway_json(body);
    if (doc == NULL) {
        tok_gateway_set(call, TOK_GW_ERROR, "gateway_bad_response", NULL);
        return;
    }
    if (payment)
        parse_payment(call, w, tok_json_root(doc));
    else
        parse_modification(call, tok_json_root(doc));
    tok_json_doc_free(&doc);
}

/* ---- the adapter ------------------------------------------------------------------------ */

static void adyen_submit(const struct tok_gateway_ops *self, struct tok_gateway_call *call)
{
    tok_gateway_reset_outputs(call);
    const struct tok_gateway_account *acct = call->account;
    if (acct == NULL || acct->api_key == NULL || acct->api_key[0] == '\0' ||
        acct->base_url[0] == '\0' || acct->merchant_account[0] == '\0' || call->env == NULL ||
        call->env->httpc == NULL || call->env->reply_to == NULL) {
        tok_gateway_fail_now(call, "gateway_not_configured");
        return;
    }
    struct tok_gateway_wire w;
    memset(&w, 0, sizeof w);
    if (tok_gateway_wire_key(call, TOK_ADYEN_IDEM_MAX, &w) != TOK_OK) {
        tok_gateway_fail_now(call, "gateway_error");
        return;
    }
    /* the merchant reference: our idempotency key (<= 64 < 80 characters) */
    tok_copy(w.reference, w.idem_key, strlen(w.idem_key) + 1);
    if (call->op == TOK_GW_TOKENISE) {
        struct tok_buf sb;
        tok_buf_init(&sb, w.shopper, sizeof w.shopper - 1);
        if (tok_random_id("tokend_", &sb) != TOK_OK) {
            tok_gateway_fail_now(call, "gateway_error");
            return;
        }
        w.shopper[sb.len] = '\0';
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
    tok_status st = tok_adyen_encode(call, acct->merchant_account, &w, &path, &req->body);
    if (st == TOK_OK)
        st = tok_buf_cstr(&path, &p);
    if (st == TOK_OK)
        st = tok_httpc_request_url(req, acct->base_url, p);
    if (st == TOK_OK)
        st = tok_httpc_request_header(req, "X-API-Key", tok_slice_str(acct->api_key));
    if (st == TOK_OK)
        st = tok_httpc_request_header(req, "Idempotency-Key", tok_slice_str(w.idem_key));
    if (st == TOK_OK)
        st = tok_httpc_request_header(req, "Content-Type", tok_slice_str("application/json"));
    if (st != TOK_OK) {
        tok_httpc_request_free(&req);
        sodium_memzero(&w, sizeof w);
        tok_gateway_fail_now(call, st == TOK_ERR_INPUT ? "gateway_invalid_request"
                                                       : "gateway_error");
        return;
    }
    req->post = call->op != TOK_GW_DETACH;
    req->del = call->op == TOK_GW_DETACH;
    tok_gateway_exchange(self, call, req, &w, tok_adyen_parse);
    sodium_memzero(&w, sizeof w);
}

static const struct tok_gateway_ops adyen = {"adyen", false, adyen_submit};

const struct tok_gateway_ops *tok_gateway_adyen(void)
{
    return &adyen;
}
