/*
 * check_gateway_adyen.c - the Adyen adapter's wire format without a network: the JSON of
 * each operation (read back with the project's parser), amounts in Adyen's minor units,
 * the stored-method reference, refusal mapping and every kind of answer.
 */
#include "tokend/gateways/gateway.h"
#include "tokend/vault/card.h"
#include "tokend/gateways/gateway_wire.h"
#include "tokend/core/json.h"

#include <check.h>
#include <string.h>

static char path_mem[256];
static struct tok_buf body, path;
static struct tok_gateway_call call;
static struct tok_card_data card;
static struct tok_gateway_wire wire;
static struct tok_json_doc *doc;

static void setup(void)
{
    ck_assert_int_eq(tok_buf_alloc(&body, 4096, true), TOK_OK);
    tok_buf_init(&path, path_mem, sizeof path_mem - 1);
    memset(&call, 0, sizeof call);
    memset(&card, 0, sizeof card);
    memset(&wire, 0, sizeof wire);
    card.pan = tok_slice_str("4242424242424242");
    card.cvc = tok_slice_str("737");
    card.name = tok_slice_str("J Smith");
    card.exp_month = 3;
    card.exp_year = 2031;
    call.card = &card;
    strcpy(call.currency, "eur");
    strcpy(wire.reference, "tokend_ch_1_adyen");
    strcpy(wire.shopper, "tokend_shopper1");
    doc = NULL;
}

static void teardown(void)
{
    tok_json_doc_free(&doc);
    tok_buf_wipe(&body);
}

static const char *path_str(void)
{
    path_mem[path.len] = '\0';
    return path_mem;
}

/* the encoded body, parsed back */
static const struct tok_json_node *sent(void)
{
    tok_json_doc_free(&doc);
    ck_assert_int_eq(tok_json_parse(tok_buf_slice(&body), NULL, &doc, NULL), TOK_OK);
    return tok_json_root(doc);
}

static bool str_is(const struct tok_json_node *n, const char *want)
{
    struct tok_slice s;
    return tok_json_string(n, &s) == TOK_OK && tok_slice_eq(s, want);
}

static int64_t int_of(const struct tok_json_node *n)
{
    int64_t v = -1;
    ck_assert_int_eq(tok_json_int64(n, &v), TOK_OK);
    return v;
}

static void parse(long status, const char *json)
{
    tok_adyen_parse(&call, &wire, status, tok_slice_str(json));
}

/* ---- core ------------------------------------------------------------------------------ */

START_TEST(test_encode_tokenise)
{
    call.op = TOK_GW_TOKENISE;
    ck_assert_int_eq(tok_adyen_encode(&call, "TokendECOM", &wire, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v71/payments");
    const struct tok_json_node *r = sent();
    ck_assert(str_is(tok_json_get(r, "merchantAccount"), "TokendECOM"));
    ck_assert(str_is(tok_json_get(r, "reference"), "tokend_ch_1_adyen"));
    ck_assert_int_eq(int_of(tok_json_get(tok_json_get(r, "amount"), "value")), 0);
    ck_assert(str_is(tok_json_get(tok_json_get(r, "amount"), "currency"), "EUR"));
    const struct tok_json_node *pm = tok_json_get(r, "paymentMethod");
    ck_assert(str_is(tok_json_get(pm, "type"), "scheme"));
    ck_assert(str_is(tok_json_get(pm, "number"), "4242424242424242"));
    ck_assert(str_is(tok_json_get(pm, "expiryMonth"), "03"));
    ck_assert(str_is(tok_json_get(pm, "expiryYear"), "2031"));
    ck_assert(str_is(tok_json_get(pm, "cvc"), "737"));
    ck_assert(str_is(tok_json_get(pm, "holderName"), "J Smith"));
    bool store = false;
    ck_assert_int_eq(tok_json_bool(tok_json_get(r, "storePaymentMethod"), &store), TOK_OK);
    ck_assert(store);
    ck_assert(str_is(tok_json_get(r, "shopperReference"), "tokend_shopper1"));
    ck_assert(str_is(tok_json_get(r, "recurringProcessingModel"), "UnscheduledCardOnFile"));
    ck_assert(str_is(tok_json_get(r, "shopperInteraction"), "Ecommerce"));
    /* required by Checkout v71's PaymentRequest (tests/contracts/adyen) */
    ck_assert(str_is(tok_json_get(r, "returnUrl"), "https://return.tokend.invalid/"));
}
END_TEST

START_TEST(test_encode_charge)
{
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "ABCDEF0123456789|tokend_abc";
    call.amount = 1999;
    call.capture = true;
    call.off_session = true;
    wire.shopper[0] = '\0';
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert_str_eq(wire.shopper, "tokend_abc");
    const struct tok_json_node *r = sent();
    ck_assert_int_eq(int_of(tok_json_get(tok_json_get(r, "amount"), "value")), 1999);
    const struct tok_json_node *pm = tok_json_get(r, "paymentMethod");
    ck_assert(str_is(tok_json_get(pm, "storedPaymentMethodId"), "ABCDEF0123456789"));
    ck_assert_ptr_null(tok_json_get(pm, "number"));
    ck_assert(str_is(tok_json_get(r, "shopperReference"), "tokend_abc"));
    ck_assert(str_is(tok_json_get(r, "shopperInteraction"), "ContAuth"));
    ck_assert(str_is(tok_json_get(r, "recurringProcessingModel"), "UnscheduledCardOnFile"));
    ck_assert_int_eq(int_of(tok_json_get(r, "captureDelayHours")), 0);
    ck_assert_ptr_null(tok_json_get(r, "additionalData"));
    ck_assert(str_is(tok_json_get(r, "returnUrl"), "https://return.tokend.invalid/"));
    /* authorise only */
    tok_buf_reset(&body);
    path.len = 0;
    call.capture = false;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    r = sent();
    ck_assert_ptr_null(tok_json_get(r, "captureDelayHours"));
    ck_assert(str_is(tok_json_get(tok_json_get(r, "additionalData"), "manualCapture"), "true"));
    /* the shopper present: Ecommerce, CardOnFile */
    tok_buf_reset(&body);
    path.len = 0;
    call.off_session = false;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    r = sent();
    ck_assert(str_is(tok_json_get(r, "shopperInteraction"), "Ecommerce"));
    ck_assert(str_is(tok_json_get(r, "recurringProcessingModel"), "CardOnFile"));
    ck_assert(str_is(tok_json_get(r, "returnUrl"), "https://return.tokend.invalid/"));
}
END_TEST

START_TEST(test_encode_detach)
{
    call.op = TOK_GW_DETACH;
    call.pm_ref = "ABCDEF0123456789|tokend_abc";
    ck_assert_int_eq(tok_adyen_encode(&call, "Merchant ECOM", &wire, &path, &body), TOK_OK);
    path.data[path.len] = '\0';
    ck_assert_str_eq((const char *)path.data, "/v71/storedPaymentMethods/ABCDEF0123456789?"
                                              "shopperReference=tokend_abc&"
                                              "merchantAccount=Merchant%20ECOM");
    ck_assert_uint_eq(body.len, 0);
    call.outcome = TOK_GW_ERROR;
    tok_adyen_parse(&call, &wire, 204, tok_slice_of("", 0));
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    tok_adyen_parse(&call, &wire, 422, tok_slice_str("{\"errorCode\":\"800\"}"));
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
}
END_TEST

START_TEST(test_encode_modifications)
{
    call.charge_ref = "PSP0000000000001";
    call.amount = 600;
    call.op = TOK_GW_CAPTURE;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v71/payments/PSP0000000000001/captures");
    ck_assert_int_eq(int_of(tok_json_get(tok_json_get(sent(), "amount"), "value")), 600);
    tok_buf_reset(&body);
    path.len = 0;
    call.op = TOK_GW_VOID;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v71/payments/PSP0000000000001/cancels");
    ck_assert_ptr_null(tok_json_get(sent(), "amount"));
    tok_buf_reset(&body);
    path.len = 0;
    call.op = TOK_GW_REFUND;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v71/payments/PSP0000000000001/refunds");
}
END_TEST

START_TEST(test_amounts)
{
    int64_t v = 0;
    char up[4];
    ck_assert_int_eq(tok_adyen_amount("eur", 1050, &v, up), TOK_OK);
    ck_assert_int_eq(v, 1050);
    ck_assert_str_eq(up, "EUR");
    ck_assert_int_eq(tok_adyen_amount("jpy", 500, &v, up), TOK_OK);
    ck_assert_int_eq(v, 500);
    ck_assert_int_eq(tok_adyen_amount("CLP", 500, &v, up), TOK_OK);
    ck_assert_int_eq(v, 50000);
    ck_assert_int_eq(tok_adyen_amount("isk", 7, &v, up), TOK_OK);
    ck_assert_int_eq(v, 700);
    ck_assert_int_eq(tok_adyen_amount("kwd", 1230, &v, up), TOK_OK);
    ck_assert_int_eq(v, 1230);
}
END_TEST

START_TEST(test_parse_payments)
{
    call.op = TOK_GW_TOKENISE;
    parse(200, "{\"additionalData\":{\"tokenization.storedPaymentMethodId\":\"ABCDEF0123456789\","
               "\"tokenization.shopperReference\":\"tokend_shopper1\"},\"pspReference\":\"P1\","
               "\"resultCode\":\"Authorised\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert_str_eq(call.ref, "ABCDEF0123456789|tokend_shopper1");
    parse(200, "{\"additionalData\":{\"recurring.recurringDetailReference\":\"R1\"},"
               "\"resultCode\":\"Authorised\"}");
    ck_assert_str_eq(call.ref, "R1|tokend_shopper1");
    call.op = TOK_GW_CHARGE;
    call.capture = true;
    parse(200, "{\"pspReference\":\"PSP0000000000002\",\"resultCode\":\"Authorised\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert_str_eq(call.ref, "PSP0000000000002");
    ck_assert(call.captured);
    call.capture = false;
    parse(200, "{\"pspReference\":\"PSP0000000000002\",\"resultCode\":\"Authorised\"}");
    ck_assert(!call.captured);
    parse(200, "{\"pspReference\":\"P\",\"resultCode\":\"Refused\",\"refusalReason\":\"Not enough balance\","
               "\"refusalReasonCode\":\"12\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "card_declined");
    ck_assert_str_eq(call.decline_code, "insufficient_funds");
    ck_assert_str_eq(call.ref, "");
    parse(200, "{\"resultCode\":\"Error\",\"refusalReason\":\"Acquirer Error\",\"refusalReasonCode\":\"4\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "processing_error");
}
END_TEST

/* 3-D Secure: returnUrl with the shopper present; RedirectShopper -> ACTION; COMPLETE sends
 * only details.redirectResult to /payments/details */
START_TEST(test_three_ds)
{
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "ABCDEF0123456789|tokend_shopper1";
    call.amount = 1000;
    call.return_url = "https://shop.example/r";
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert(str_is(tok_json_get(sent(), "returnUrl"), "https://shop.example/r"));
    ck_assert(str_is(tok_json_get(sent(), "shopperInteraction"), "Ecommerce"));
    parse(200, "{\"pspReference\":\"JLCMPCQ8HXSKGK82\",\"resultCode\":\"RedirectShopper\","
               "\"action\":{\"paymentMethodType\":\"scheme\","
               "\"url\":\"https://checkoutshopper-test.adyen.com/x\","
               "\"method\":\"GET\",\"type\":\"redirect\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_ACTION);
    ck_assert_str_eq(call.ref, "JLCMPCQ8HXSKGK82");
    ck_assert_str_eq(call.action_url, "https://checkoutshopper-test.adyen.com/x");
    /* a POST redirect cannot be a link: not followed */
    parse(200, "{\"pspReference\":\"JLCMPCQ8HXSKGK82\",\"resultCode\":\"RedirectShopper\","
               "\"action\":{\"url\":\"https://a.example/x\",\"method\":\"POST\","
               "\"type\":\"redirect\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    call.return_url = NULL; /* nowhere to send the shopper back: a decline */
    parse(200, "{\"pspReference\":\"JLCMPCQ8HXSKGK82\",\"resultCode\":\"RedirectShopper\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "authentication_required");
    call.op = TOK_GW_COMPLETE;
    call.return_data = "X6XtfGC3!Y";
    tok_buf_reset(&body);
    tok_buf_reset(&path);
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v71/payments/details");
    const struct tok_json_node *root = sent();
    ck_assert(str_is(tok_json_get(tok_json_get(root, "details"), "redirectResult"), "X6XtfGC3!Y"));
    ck_assert_ptr_null(tok_json_get(root, "merchantAccount"));
    ck_assert_ptr_null(tok_json_get(root, "reference"));
    call.capture = true;
    parse(200, "{\"resultCode\":\"Authorised\",\"pspReference\":\"V4HZ4RBFJGXXGN82\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert_str_eq(call.ref, "V4HZ4RBFJGXXGN82");
    ck_assert(call.captured);
    parse(200, "{\"resultCode\":\"Refused\",\"refusalReason\":\"3D Not Authenticated\","
               "\"refusalReasonCode\":\"11\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "authentication_failed");
    call.return_data = NULL;
    tok_buf_reset(&body);
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_ERR_INPUT);
}
END_TEST

/* 3-D Secure 2: the redirect flow asked for explicitly; the shopper's browser; a native answer */
static struct tok_browser_info browser;

static void set_browser(void)
{
    memset(&browser, 0, sizeof browser);
    strcpy(browser.user_agent, "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0");
    strcpy(browser.accept_header, "text/html,*/*;q=0.8");
    strcpy(browser.language, "nl-NL");
    browser.color_depth = 24;
    browser.screen_height = 1080;
    browser.screen_width = 1920;
    browser.time_zone_offset = -60;
    browser.java_enabled = false;
    strcpy(browser.ip_address, "2001:db8::7");
}

static const char *native_3ds(const struct tok_json_node *r)
{
    static char v[32];
    struct tok_slice s;
    const struct tok_json_node *n =
        tok_json_get(tok_json_get(tok_json_get(r, "authenticationData"), "threeDSRequestData"),
                     "nativeThreeDS");
    if (n == NULL || tok_json_string(n, &s) != TOK_OK || s.len >= sizeof v)
        return "-";
    tok_copy(v, s.ptr, s.len);
    v[s.len] = '\0';
    return v;
}

START_TEST(test_three_ds2)
{
    call.op = TOK_GW_TOKENISE;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert_str_eq(native_3ds(sent()), "disabled");
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "ABCDEF0123456789|tokend_shopper1";
    call.amount = 1000;
    call.off_session = true;
    tok_buf_reset(&body);
    path.len = 0;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert_str_eq(native_3ds(sent()), "-"); /* ContAuth: no authentication to choose */
    ck_assert_ptr_null(tok_json_get(sent(), "browserInfo"));
    call.off_session = false;
    call.return_url = "https://shop.example:8443/pay/return?o=1";
    tok_buf_reset(&body);
    path.len = 0;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    const struct tok_json_node *r = sent();
    ck_assert_str_eq(native_3ds(r), "disabled");
    ck_assert_ptr_null(tok_json_get(r, "browserInfo")); /* none given: none sent */
    ck_assert_ptr_null(tok_json_get(r, "channel"));
    set_browser();
    call.browser = &browser;
    tok_buf_reset(&body);
    path.len = 0;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    r = sent();
    const struct tok_json_node *bi = tok_json_get(r, "browserInfo");
    ck_assert(str_is(tok_json_get(bi, "userAgent"), browser.user_agent));
    ck_assert(str_is(tok_json_get(bi, "acceptHeader"), "text/html,*/*;q=0.8"));
    ck_assert(str_is(tok_json_get(bi, "language"), "nl-NL"));
    ck_assert_int_eq(int_of(tok_json_get(bi, "colorDepth")), 24);
    ck_assert_int_eq(int_of(tok_json_get(bi, "screenHeight")), 1080);
    ck_assert_int_eq(int_of(tok_json_get(bi, "screenWidth")), 1920);
    ck_assert_int_eq(int_of(tok_json_get(bi, "timeZoneOffset")), -60);
    bool java = true;
    ck_assert_int_eq(tok_json_bool(tok_json_get(bi, "javaEnabled"), &java), TOK_OK);
    ck_assert(!java);
    ck_assert(str_is(tok_json_get(r, "channel"), "Web"));
    ck_assert(str_is(tok_json_get(r, "origin"), "https://shop.example:8443"));
    ck_assert(str_is(tok_json_get(r, "shopperIP"), "2001:db8::7"));
    /* no address given: no shopperIP; user information in return_url: no origin */
    browser.ip_address[0] = '\0';
    call.return_url = "https://u:p@shop.example/r";
    tok_buf_reset(&body);
    path.len = 0;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    r = sent();
    ck_assert_ptr_null(tok_json_get(r, "shopperIP"));
    ck_assert_ptr_null(tok_json_get(r, "origin"));
    ck_assert_ptr_nonnull(tok_json_get(r, "browserInfo"));
    /* off session, a browser lent anyway: not sent (nobody to authenticate) */
    call.off_session = true;
    tok_buf_reset(&body);
    path.len = 0;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_OK);
    ck_assert_ptr_null(tok_json_get(sent(), "browserInfo"));
    call.off_session = false;
    /* native 3DS2 although redirect was asked for: a specific failure, not a decline */
    static const char *const native[] = {
        "{\"pspReference\":\"JLCMPCQ8HXSKGK82\",\"resultCode\":\"IdentifyShopper\","
        "\"action\":{\"paymentMethodType\":\"scheme\",\"subtype\":\"fingerprint\","
        "\"token\":\"eyJ0aHJlZURTTWV0aG9kTm90aWZpY2F0aW9uVVJMIjoiIn0=\","
        "\"type\":\"threeDS2\",\"paymentData\":\"Ab02b4c0\"}}",
        "{\"pspReference\":\"JLCMPCQ8HXSKGK82\",\"resultCode\":\"ChallengeShopper\","
        "\"action\":{\"subtype\":\"challenge\",\"token\":\"e30=\",\"type\":\"threeDS2\"}}",
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(native); i++) {
        call.return_url = "https://shop.example/r";
        parse(200, native[i]);
        ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
        ck_assert_str_eq(call.code, "native_3ds_unsupported");
        ck_assert_str_eq(call.action_url, "");
        call.return_url = NULL; /* nowhere to return to: the decline it always was */
        parse(200, native[i]);
        ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
        ck_assert_str_eq(call.code, "authentication_required");
    }
    call.op = TOK_GW_TOKENISE;
    parse(200, native[0]);
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "authentication_required");
}
END_TEST

START_TEST(test_refusals)
{
    const char *code = NULL, *dec = NULL;
    struct {
        const char *num, *text, *code, *dec;
    } cases[] = {
        {"2", "", "card_declined", "generic_decline"},
        {"6", "", "expired_card", "expired_card"},
        {"24", "", "incorrect_cvc", "incorrect_cvc"},
        {"12", "", "card_declined", "insufficient_funds"},
        {"", "CVC Declined", "incorrect_cvc", "incorrect_cvc"},
        {"", "Expired Card", "expired_card", "expired_card"},
        {"999", "Refused", "card_declined", "generic_decline"},
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(cases); i++) {
        tok_adyen_refusal(tok_slice_str(cases[i].num), tok_slice_str(cases[i].text), &code, &dec);
        ck_assert_str_eq(code, cases[i].code);
        ck_assert_str_eq(dec, cases[i].dec);
    }
}
END_TEST

START_TEST(test_parse_modifications)
{
    call.op = TOK_GW_REFUND;
    parse(201, "{\"merchantAccount\":\"M\",\"paymentPspReference\":\"P1\",\"pspReference\":\"R2\","
               "\"status\":\"received\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert_str_eq(call.ref, "R2");
    call.op = TOK_GW_CAPTURE;
    parse(201, "{\"pspReference\":\"C3\",\"status\":\"received\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert_str_eq(call.ref, "");
    parse(422, "{\"status\":422,\"errorCode\":\"167\",\"errorType\":\"validation\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "gateway_invalid_request");
    parse(401, "{\"status\":401,\"errorCode\":\"000\",\"errorType\":\"security\"}");
    ck_assert_str_eq(call.code, "gateway_auth_failed");
    parse(500, "{\"status\":500}");
    ck_assert_int_eq(call.outcome, TOK_GW_UNAVAILABLE);
    parse(429, "");
    ck_assert_str_eq(call.code, "rate_limited");
}
END_TEST

/* ---- limits ---------------------------------------------------------------------------- */

START_TEST(test_amount_limits)
{
    int64_t v = 0;
    char up[4];
    ck_assert_int_eq(tok_adyen_amount("eur", 0, &v, up), TOK_OK);
    ck_assert_int_eq(tok_adyen_amount("eur", 99999999, &v, up), TOK_OK);
    ck_assert_int_eq(tok_adyen_amount("eur", 100000000, &v, up), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_adyen_amount("eur", -1, &v, up), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_adyen_amount("zzz", 1, &v, up), TOK_ERR_INPUT);
}
END_TEST

/* TOK_HTTPC_BODY_MAX holds the largest body we build: every string at its longest and escaped */
START_TEST(test_largest_body_fits_httpc)
{
    char name[TOK_CARD_NAME_MAX + 1];
    char merchant[sizeof((struct tok_gateway_account *)0)->merchant_account];
    memset(name, '"', TOK_CARD_NAME_MAX);
    name[TOK_CARD_NAME_MAX] = '\0';
    memset(merchant, '"', sizeof merchant - 1);
    merchant[sizeof merchant - 1] = '\0';
    memset(wire.reference, 'r', TOK_ADYEN_REFERENCE_MAX);
    wire.reference[TOK_ADYEN_REFERENCE_MAX] = '\0';
    memset(wire.shopper, 's', TOK_ADYEN_SHOPPER_MAX - 1);
    wire.shopper[TOK_ADYEN_SHOPPER_MAX - 1] = '\0';
    card.pan = tok_slice_str("4242424242424242424");
    card.cvc = tok_slice_str("1234");
    card.name = tok_slice_str(name);
    call.op = TOK_GW_TOKENISE;
    tok_status st = tok_adyen_encode(&call, merchant, &wire, &path, &body);
    ck_assert_int_eq(st, TOK_OK);
    /* a quarter left over (authenticationData took the half's last 31 bytes and more) */
    ck_assert_uint_lt(body.len, TOK_HTTPC_BODY_MAX * 3 / 4);
}
END_TEST

/* the largest charge: every string at its longest and escaped, return_url and the browser's
 * texts at their shared budget (TOK_GATEWAY_CUSTOMER_TEXT_MAX) */
START_TEST(test_largest_charge_fits_httpc)
{
    char merchant[sizeof((struct tok_gateway_account *)0)->merchant_account];
    memset(merchant, '"', sizeof merchant - 1);
    merchant[sizeof merchant - 1] = '\0';
    memset(wire.reference, 'r', TOK_ADYEN_REFERENCE_MAX);
    wire.reference[TOK_ADYEN_REFERENCE_MAX] = '\0';
    char pm_ref[TOK_GATEWAY_REF_MAX];
    memset(pm_ref, 'A', TOK_GATEWAY_ID_MAX);
    pm_ref[TOK_GATEWAY_ID_MAX] = '|';
    size_t shop = TOK_GATEWAY_REF_MAX - TOK_GATEWAY_ID_MAX - 2; /* the longest ref tokend keeps */
    memset(pm_ref + TOK_GATEWAY_ID_MAX + 1, 's', shop);
    pm_ref[TOK_GATEWAY_ID_MAX + 1 + shop] = '\0';
    set_browser();
    size_t ua = TOK_BROWSER_UA_MAX / 4, ah = TOK_BROWSER_ACCEPT_MAX / 2; /* escaped: x2 */
    memset(browser.user_agent, '"', ua);
    browser.user_agent[ua] = '\0';
    memset(browser.accept_header, '\\', ah);
    browser.accept_header[ah] = '\0';
    memset(browser.language, 'x', TOK_BROWSER_LANGUAGE_MAX);
    browser.language[TOK_BROWSER_LANGUAGE_MAX] = '\0';
    strcpy(browser.ip_address, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    browser.color_depth = 48;
    browser.screen_height = browser.screen_width = 999999;
    browser.time_zone_offset = -840;
    static char url[TOK_GATEWAY_URL_MAX];
    size_t rest = TOK_GATEWAY_CUSTOMER_TEXT_MAX - 2 * ua - 2 * ah;
    ck_assert_uint_lt(rest, sizeof url);
    strcpy(url, "https://");
    memset(url + 8, 'h', 72);
    memset(url + 80, '\\', (rest - 80) / 2);
    url[80 + (rest - 80) / 2] = '\0';
    call.op = TOK_GW_CHARGE;
    call.pm_ref = pm_ref;
    call.amount = 99999999;
    call.capture = false;
    call.off_session = false;
    call.return_url = url;
    call.browser = &browser;
    ck_assert_int_eq(tok_adyen_encode(&call, merchant, &wire, &path, &body), TOK_OK);
    ck_assert_ptr_nonnull(tok_json_get(sent(), "origin"));
    ck_assert_uint_lt(body.len, TOK_HTTPC_BODY_MAX);
}
END_TEST

START_TEST(test_small_body_is_refused_and_wiped)
{
    tok_buf_wipe(&body);
    ck_assert_int_eq(tok_buf_alloc(&body, 64, true), TOK_OK);
    call.op = TOK_GW_TOKENISE;
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(body.len, 0);
    for (uint32_t i = 0; i < body.cap; i++)
        ck_assert_int_eq(body.data[i], 0);
}
END_TEST

/* ---- adversarial ----------------------------------------------------------------------- */

START_TEST(test_bad_references)
{
    call.op = TOK_GW_CHARGE;
    call.amount = 100;
    const char *bad[] = {"NOBAR", "|tokend_x", "ID|", "ID|tok\"en", "ID/..|x", "A|B|C"};
    for (size_t i = 0; i < TOK_ARRAY_LEN(bad); i++) {
        call.pm_ref = bad[i];
        ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_ERR_INPUT);
        ck_assert_uint_eq(body.len, 0);
    }
    call.op = TOK_GW_REFUND;
    call.charge_ref = "PSP/../payments";
    ck_assert_int_eq(tok_adyen_encode(&call, "M", &wire, &path, &body), TOK_ERR_INPUT);
    ck_assert_uint_eq(path.len, 0);
    call.charge_ref = "PSP1";
    ck_assert_int_eq(tok_adyen_encode(&call, "", &wire, &path, &body), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_hostile_answers)
{
    call.op = TOK_GW_TOKENISE;
    parse(200, "{\"resultCode\":\"Authorised\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "gateway_bad_response");
    parse(200, "{\"resultCode\":\"Authorised\",\"additionalData\":{\"tokenization.storedPaymentMethodId\":\"a|b\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.ref, "");
    parse(200, "{\"resultCode\":\"RedirectShopper\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "authentication_required");
    parse(200, "nope");
    ck_assert_str_eq(call.code, "gateway_bad_response");
    call.op = TOK_GW_REFUND;
    parse(200, "{\"status\":\"received\",\"pspReference\":\"R\"}"); /* modifications answer 201 */
    ck_assert_str_eq(call.code, "gateway_bad_response");
    parse(201, "{\"status\":\"refused\",\"pspReference\":\"R\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
}
END_TEST

Suite *tok_gateway_adyen_suite(void)
{
    Suite *s = suite_create("gateway_adyen");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_add_checked_fixture(adv, setup, teardown);
    tcase_add_test(core, test_encode_tokenise);
    tcase_add_test(core, test_three_ds);
    tcase_add_test(core, test_three_ds2);
    tcase_add_test(core, test_encode_charge);
    tcase_add_test(core, test_encode_detach);
    tcase_add_test(core, test_encode_modifications);
    tcase_add_test(core, test_amounts);
    tcase_add_test(core, test_parse_payments);
    tcase_add_test(core, test_refusals);
    tcase_add_test(core, test_parse_modifications);
    tcase_add_test(limits, test_amount_limits);
    tcase_add_test(limits, test_small_body_is_refused_and_wiped);
    tcase_add_test(limits, test_largest_body_fits_httpc);
    tcase_add_test(limits, test_largest_charge_fits_httpc);
    tcase_add_test(adv, test_bad_references);
    tcase_add_test(adv, test_hostile_answers);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
