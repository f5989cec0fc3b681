/*
 * check_gateway_stripe.c - the Stripe adapter's wire format without a network: form
 * encoding, amounts, each operation's request, and the mapping of every kind of answer;
 * plus the idempotency keys and outcome rules the adapters share (gateway.c).
 */
#include "tokend/gateways/gateway.h"
#include "tokend/vault/card.h"
#include "tokend/gateways/gateway_wire.h"

#include <check.h>
#include <string.h>

static char body_mem[4096], path_mem[256];
static struct tok_buf body, path;
static struct tok_gateway_call call;
static struct tok_card_data card;
static struct tok_gateway_wire wire;

static void setup(void)
{
    tok_buf_init(&body, body_mem, sizeof body_mem - 1);
    tok_buf_init(&path, path_mem, sizeof path_mem - 1);
    memset(&call, 0, sizeof call);
    memset(&card, 0, sizeof card);
    memset(&wire, 0, sizeof wire);
    card.pan = tok_slice_str("4242424242424242");
    card.cvc = tok_slice_str("123");
    card.exp_month = 3;
    card.exp_year = 2031;
    call.card = &card;
    strcpy(call.currency, "usd");
}

static const char *body_str(void)
{
    body_mem[body.len] = '\0';
    return body_mem;
}

static const char *path_str(void)
{
    path_mem[path.len] = '\0';
    return path_mem;
}

static void parse(long status, const char *json)
{
    tok_stripe_parse(&call, &wire, status, tok_slice_str(json));
}

/* ---- core ------------------------------------------------------------------------------ */

START_TEST(test_form_encoding)
{
    ck_assert_int_eq(tok_stripe_form_add(&body, "card[number]", tok_slice_str("42 42")), TOK_OK);
    ck_assert_int_eq(tok_stripe_form_add(&body, "name", tok_slice_str("A&B=C+D/é~._-")), TOK_OK);
    ck_assert_str_eq(body_str(), "card[number]=42%2042&name=A%26B%3DC%2BD%2F%C3%A9~._-");
}
END_TEST

START_TEST(test_amounts)
{
    int64_t out = 0;
    ck_assert_int_eq(tok_stripe_amount("usd", 1999, &out), TOK_OK);
    ck_assert_int_eq(out, 1999);
    ck_assert_int_eq(tok_stripe_amount("JPY", 500, &out), TOK_OK);
    ck_assert_int_eq(out, 500);
    ck_assert_int_eq(tok_stripe_amount("isk", 1050, &out), TOK_OK);
    ck_assert_int_eq(out, 105000);
    ck_assert_int_eq(tok_stripe_amount("kwd", 1230, &out), TOK_OK);
    ck_assert_int_eq(out, 1230);
}
END_TEST

START_TEST(test_encode_tokenise)
{
    card.name = tok_slice_str("J Smith");
    call.op = TOK_GW_TOKENISE;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v1/payment_methods");
    ck_assert_str_eq(body_str(), "type=card&card[number]=4242424242424242&card[exp_month]=3&"
                                 "card[exp_year]=2031&card[cvc]=123&billing_details[name]=J%20Smith");
}
END_TEST

START_TEST(test_encode_charge)
{
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "pm_123abc";
    call.amount = 1999;
    strcpy(call.currency, "USD");
    call.capture = false;
    call.off_session = true;
    /* a reference from before the Customer step: no customer */
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v1/payment_intents");
    ck_assert_str_eq(body_str(), "amount=1999&currency=usd&payment_method=pm_123abc&"
                                 "payment_method_types[]=card&confirm=true&off_session=true&"
                                 "capture_method=manual");
    /* merchant-initiated, with the Customer the card is attached to */
    setup();
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "pm_123abc|cus_9xY";
    call.amount = 1999;
    strcpy(call.currency, "USD");
    call.capture = true;
    call.off_session = true;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(body_str(), "amount=1999&currency=usd&customer=cus_9xY&"
                                 "payment_method=pm_123abc&payment_method_types[]=card&"
                                 "confirm=true&off_session=true&capture_method=automatic");
    /* the customer present: no off_session, the card set up for later off-session use */
    setup();
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "pm_123abc|cus_9xY";
    call.amount = 1999;
    strcpy(call.currency, "USD");
    call.capture = true;
    call.off_session = false;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(body_str(), "amount=1999&currency=usd&customer=cus_9xY&"
                                 "payment_method=pm_123abc&payment_method_types[]=card&"
                                 "confirm=true&setup_future_usage=off_session&"
                                 "capture_method=automatic");
}
END_TEST

START_TEST(test_encode_customer_and_detach)
{
    call.op = TOK_GW_TOKENISE;
    call.step = 1;
    strcpy(call.step_ref, "pm_123abc");
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v1/customers");
    ck_assert_str_eq(body_str(), "payment_method=pm_123abc");
    setup();
    call.op = TOK_GW_DETACH;
    call.pm_ref = "pm_123abc|cus_9xY";
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v1/payment_methods/pm_123abc/detach");
    ck_assert_str_eq(body_str(), "");
    setup();
    call.op = TOK_GW_DETACH;
    call.pm_ref = "pm_123abc|cus/../x";
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
    call.pm_ref = "pm_1|";
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_encode_followups)
{
    call.charge_ref = "pi_ABC";
    call.amount = 600;
    call.op = TOK_GW_CAPTURE;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v1/payment_intents/pi_ABC/capture");
    ck_assert_str_eq(body_str(), "amount_to_capture=600");
    setup();
    call.charge_ref = "pi_ABC";
    call.op = TOK_GW_VOID;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v1/payment_intents/pi_ABC/cancel");
    ck_assert_str_eq(body_str(), "");
    setup();
    call.charge_ref = "pi_ABC";
    call.amount = 250;
    call.op = TOK_GW_REFUND;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v1/refunds");
    ck_assert_str_eq(body_str(), "payment_intent=pi_ABC&amount=250");
}
END_TEST

START_TEST(test_parse_ok)
{
    call.op = TOK_GW_TOKENISE;
    parse(200, "{\"id\":\"pm_1\",\"object\":\"payment_method\",\"card\":{\"last4\":\"4242\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert_str_eq(call.ref, "pm_1");
    call.op = TOK_GW_CHARGE;
    parse(200, "{\"id\":\"pi_1\",\"status\":\"succeeded\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert(call.captured);
    ck_assert_str_eq(call.ref, "pi_1");
    parse(200, "{\"id\":\"pi_2\",\"status\":\"requires_capture\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert(!call.captured);
    call.op = TOK_GW_REFUND;
    parse(200, "{\"id\":\"re_1\",\"status\":\"succeeded\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert_str_eq(call.ref, "re_1");
    call.op = TOK_GW_VOID;
    parse(200, "{\"id\":\"pi_1\",\"status\":\"canceled\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert_str_eq(call.ref, "");
}
END_TEST

/* 3-D Secure: return_url sent with the customer present only; requires_action with a redirect
 * is ACTION; COMPLETE retrieves the PaymentIntent and maps its state */
START_TEST(test_three_ds)
{
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "pm_1|cus_1";
    call.amount = 1000;
    call.return_url = "https://shop.example/r?o=1";
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_ptr_nonnull(strstr(body_str(), "&return_url=https%3A%2F%2Fshop.example%2Fr%3Fo%3D1"));
    tok_buf_reset(&body);
    call.off_session = true;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_ptr_null(strstr(body_str(), "return_url"));
    parse(200, "{\"id\":\"pi_3\",\"status\":\"requires_action\",\"next_action\":{\"type\":"
               "\"redirect_to_url\",\"redirect_to_url\":{\"url\":\"https://hooks.stripe.com/3d\","
               "\"return_url\":\"https://shop.example/r\"}}}");
    ck_assert_int_eq(call.outcome, TOK_GW_ACTION);
    ck_assert_str_eq(call.ref, "pi_3");
    ck_assert_str_eq(call.action_url, "https://hooks.stripe.com/3d");
    /* only Stripe.js could follow it, or a URL that is no http(s) URL: a decline */
    parse(200, "{\"id\":\"pi_3\",\"status\":\"requires_action\",\"next_action\":{\"type\":"
               "\"use_stripe_sdk\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "authentication_required");
    ck_assert_str_eq(call.ref, "");
    parse(200, "{\"id\":\"pi_3\",\"status\":\"requires_action\",\"next_action\":{\"type\":"
               "\"redirect_to_url\",\"redirect_to_url\":{\"url\":\"javascript:alert(1)\"}}}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.action_url, "");
    call.op = TOK_GW_COMPLETE;
    call.charge_ref = "pi_3";
    tok_buf_reset(&body);
    tok_buf_reset(&path);
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    ck_assert_str_eq(path_str(), "/v1/payment_intents/pi_3");
    ck_assert_int_eq(body.len, 0);
    parse(200, "{\"id\":\"pi_3\",\"status\":\"succeeded\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_OK);
    ck_assert(call.captured);
    parse(200, "{\"id\":\"pi_3\",\"status\":\"requires_payment_method\",\"last_payment_error\":"
               "{\"code\":\"payment_intent_authentication_failure\",\"type\":\"card_error\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "authentication_failed");
    call.charge_ref = "pi_3/../x";
    tok_buf_reset(&path);
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_parse_declines)
{
    call.op = TOK_GW_CHARGE;
    parse(402, "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
               "\"decline_code\":\"insufficient_funds\",\"payment_intent\":{\"id\":\"pi_9\"}}}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "card_declined");
    ck_assert_str_eq(call.decline_code, "insufficient_funds");
    ck_assert_str_eq(call.ref, "");
    parse(402, "{\"error\":{\"type\":\"card_error\",\"code\":\"expired_card\"}}");
    ck_assert_str_eq(call.code, "expired_card");
    ck_assert_str_eq(call.decline_code, "expired_card");
    parse(402, "{\"error\":{\"type\":\"card_error\",\"code\":\"incorrect_cvc\",\"decline_code\":\"incorrect_cvc\"}}");
    ck_assert_str_eq(call.code, "incorrect_cvc");
    parse(402, "{\"error\":{\"type\":\"card_error\",\"code\":\"processing_error\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "processing_error");
}
END_TEST

START_TEST(test_parse_errors)
{
    call.op = TOK_GW_CHARGE;
    parse(401, "{\"error\":{\"type\":\"invalid_request_error\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "gateway_auth_failed");
    parse(429, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"rate_limit\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_UNAVAILABLE);
    ck_assert_str_eq(call.code, "rate_limited");
    parse(500, "");
    ck_assert_int_eq(call.outcome, TOK_GW_UNAVAILABLE);
    ck_assert_str_eq(call.code, "gateway_unavailable");
    parse(503, "<html>");
    ck_assert_int_eq(call.outcome, TOK_GW_UNAVAILABLE);
    parse(400, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"resource_missing\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "gateway_invalid_request");
    parse(400, "{\"error\":{\"type\":\"idempotency_error\"}}");
    ck_assert_str_eq(call.code, "gateway_conflict");
}
END_TEST

START_TEST(test_transport_outcomes)
{
    tok_gateway_transport_failed(&call, TOK_HTTPC_TIMEOUT);
    ck_assert_int_eq(call.outcome, TOK_GW_UNAVAILABLE);
    ck_assert_str_eq(call.code, "gateway_timeout");
    tok_gateway_transport_failed(&call, TOK_HTTPC_CONNECT);
    ck_assert_int_eq(call.outcome, TOK_GW_UNAVAILABLE);
    ck_assert_str_eq(call.code, "gateway_unavailable");
    tok_gateway_transport_failed(&call, TOK_HTTPC_TLS);
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "gateway_tls_failed");
    tok_gateway_transport_failed(&call, TOK_HTTPC_TOO_LARGE);
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "gateway_bad_response");
}
END_TEST

START_TEST(test_wire_keys)
{
    ck_assert_int_eq(tok_gateway_wire_key(&call, TOK_STRIPE_IDEM_MAX, &wire), TOK_OK);
    ck_assert_int_eq(strncmp(wire.idem_key, "tokend_", 7), 0);
    ck_assert_str_eq(call.idempotency_key, wire.idem_key); /* written back for retries */
    strcpy(call.idempotency_key, "tokend_ch_abc_stripe");
    ck_assert_int_eq(tok_gateway_wire_key(&call, TOK_STRIPE_IDEM_MAX, &wire), TOK_OK);
    ck_assert_str_eq(wire.idem_key, "tokend_ch_abc_stripe");
}
END_TEST

/* ---- limits ---------------------------------------------------------------------------- */

START_TEST(test_form_bounds_leave_body_unchanged)
{
    struct tok_buf small;
    char mem[24];
    memset(mem, 0, sizeof mem);
    tok_buf_init(&small, mem, sizeof mem);
    ck_assert_int_eq(tok_stripe_form_add(&small, "a", tok_slice_str("1")), TOK_OK);
    ck_assert_int_eq(tok_stripe_form_add(&small, "card[number]", tok_slice_str("4242424242424242")),
                     TOK_ERR_BOUNDS);
    ck_assert_uint_eq(small.len, 3);
    for (size_t i = 3; i < sizeof mem; i++)
        ck_assert_int_eq(mem[i], 0); /* the partial PAN was wiped */
}
END_TEST

/* TOK_HTTPC_BODY_MAX (one page of a request's buffers) holds the largest body we build */
START_TEST(test_largest_body_fits_httpc)
{
    char name[TOK_CARD_NAME_MAX + 1], ref[TOK_GATEWAY_ID_MAX];
    memset(name, '&', TOK_CARD_NAME_MAX); /* every byte percent-encoded: three times as long */
    name[TOK_CARD_NAME_MAX] = '\0';
    memset(ref, 'a', sizeof ref - 1);
    ref[sizeof ref - 1] = '\0';
    card.pan = tok_slice_str("4242424242424242424");
    card.cvc = tok_slice_str("1234");
    card.name = tok_slice_str(name);
    call.op = TOK_GW_TOKENISE;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    uint32_t most = body.len;
    tok_buf_reset(&body);
    path.len = 0;
    call.op = TOK_GW_CHARGE;
    call.pm_ref = ref;
    call.amount = 99999999;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_OK);
    most = body.len > most ? body.len : most;
    ck_assert_uint_lt(most, TOK_HTTPC_BODY_MAX / 2);
}
END_TEST

START_TEST(test_amount_limits)
{
    int64_t out = 0;
    ck_assert_int_eq(tok_stripe_amount("usd", 0, &out), TOK_OK);
    ck_assert_int_eq(tok_stripe_amount("usd", 99999999, &out), TOK_OK);
    ck_assert_int_eq(tok_stripe_amount("usd", 100000000, &out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_stripe_amount("usd", -1, &out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_stripe_amount("xyz", 1, &out), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_long_idempotency_key_is_hashed)
{
    memset(call.idempotency_key, 'k', sizeof call.idempotency_key - 1);
    call.idempotency_key[sizeof call.idempotency_key - 1] = '\0';
    ck_assert_int_eq(tok_gateway_wire_key(&call, TOK_ADYEN_IDEM_MAX, &wire), TOK_OK);
    ck_assert_uint_le(strlen(wire.idem_key), TOK_ADYEN_IDEM_MAX);
    ck_assert_int_eq(strncmp(wire.idem_key, "tokend_h_", 9), 0);
    struct tok_gateway_wire again;
    memset(&again, 0, sizeof again);
    ck_assert_int_eq(tok_gateway_wire_key(&call, TOK_ADYEN_IDEM_MAX, &again), TOK_OK);
    ck_assert_str_eq(again.idem_key, wire.idem_key); /* deterministic */
}
END_TEST

/* ---- adversarial ----------------------------------------------------------------------- */

START_TEST(test_refs_cannot_inject_paths)
{
    call.op = TOK_GW_CAPTURE;
    call.amount = 1;
    call.charge_ref = "pi_1/../../v1/refunds";
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
    ck_assert_uint_eq(path.len, 0);
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "pm_1&amount=1";
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
    ck_assert_uint_eq(body.len, 0);
    call.op = TOK_GW_CHARGE;
    call.pm_ref = NULL;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_bad_inputs)
{
    call.op = TOK_GW_TOKENISE;
    card.exp_month = 13;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
    ck_assert_uint_eq(body.len, 0);
    call.op = TOK_GW_CHARGE;
    call.pm_ref = "pm_1";
    call.amount = 0;
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
    call.amount = 100;
    strcpy(call.currency, "xx");
    ck_assert_int_eq(tok_stripe_encode(&call, &path, &body), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_hostile_answers)
{
    call.op = TOK_GW_CHARGE;
    parse(200, "{\"not json");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.code, "gateway_bad_response");
    parse(200, "[1,2]");
    ck_assert_str_eq(call.code, "gateway_bad_response");
    parse(200, "{\"id\":\"pi_1\\r\\nX: y\",\"status\":\"succeeded\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
    ck_assert_str_eq(call.ref, "");
    parse(200, "{\"id\":\"pi_1\",\"status\":\"requires_action\"}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.code, "authentication_required");
    ck_assert_str_eq(call.ref, "");
    /* a decline code that is not a plain code is not copied */
    parse(402, "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
               "\"decline_code\":\"<script>4242424242424242\"}}");
    ck_assert_int_eq(call.outcome, TOK_GW_DECLINED);
    ck_assert_str_eq(call.decline_code, "card_declined");
    parse(402, "{\"error\":{\"type\":\"card_error\",\"code\":\"some_new_code\"}}");
    ck_assert_str_eq(call.code, "card_declined");
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char doc[400];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"status\":\"succeeded\"}", big);
    parse(200, doc);
    ck_assert_int_eq(call.outcome, TOK_GW_ERROR);
}
END_TEST

Suite *tok_gateway_stripe_suite(void)
{
    Suite *s = suite_create("gateway_stripe");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_checked_fixture(core, setup, NULL);
    tcase_add_checked_fixture(limits, setup, NULL);
    tcase_add_checked_fixture(adv, setup, NULL);
    tcase_add_test(core, test_form_encoding);
    tcase_add_test(core, test_amounts);
    tcase_add_test(core, test_encode_tokenise);
    tcase_add_test(core, test_three_ds);
    tcase_add_test(core, test_encode_charge);
    tcase_add_test(core, test_encode_followups);
    tcase_add_test(core, test_encode_customer_and_detach);
    tcase_add_test(core, test_parse_ok);
    tcase_add_test(core, test_parse_declines);
    tcase_add_test(core, test_parse_errors);
    tcase_add_test(core, test_transport_outcomes);
    tcase_add_test(core, test_wire_keys);
    tcase_add_test(limits, test_form_bounds_leave_body_unchanged);
    tcase_add_test(limits, test_amount_limits);
    tcase_add_test(limits, test_largest_body_fits_httpc);
    tcase_add_test(limits, test_long_idempotency_key_is_hashed);
    tcase_add_test(adv, test_refs_cannot_inject_paths);
    tcase_add_test(adv, test_bad_inputs);
    tcase_add_test(adv, test_hostile_answers);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
