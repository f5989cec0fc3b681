/*
 * check_webhooks.c - signature schemes (Stripe/tokend t=,v1=; Adyen item HMAC with
 * the sample Adyen's libraries test), parsers and the charge state machine.
 * The Stripe vector was computed independently (Python hmac) for
 * secret "whsec_test_secret", t=1700000000.
 */
#include "tokend/core/json.h"
#include "tokend/events/webhooks.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static const char body[] = "{\"id\":\"evt_1\",\"type\":\"charge.succeeded\"}";
static const char good[] = "c0475716eb2200f1fe97fcf35a3c05d1fd4f8ba9a07a596730c8d18bb87c0672";
#define T0 1700000000

static enum tok_webhook_verdict verify(const char *hdr, const char *b, const char *secret, int64_t now)
{
    enum tok_webhook_verdict v = TOK_WH_OK;
    tok_status st = tok_webhook_sig_verify(hdr ? tok_slice_str(hdr) : tok_slice_of(NULL, 0),
                                           tok_slice_str(b), tok_slice_str(secret), now, 300, &v);
    ck_assert_int_eq(st, TOK_OK);
    return v;
}

START_TEST(test_stripe_known_vector)
{
    char hdr[200];
    snprintf(hdr, sizeof hdr, "t=%d,v1=%s", T0, good);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0 + 10), TOK_WH_OK);
}
END_TEST

START_TEST(test_sig_header_roundtrip)
{
    uint8_t mem[TOK_WEBHOOK_SIG_OUT_MAX];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_webhook_sig_header(tok_slice_str("whsec_test_secret"), T0, tok_slice_str(body), &b), TOK_OK);
    char expect[200];
    snprintf(expect, sizeof expect, "t=%d,v1=%s", T0, good);
    ck_assert_uint_eq(b.len, strlen(expect));
    ck_assert(memcmp(mem, expect, b.len) == 0);
}
END_TEST

START_TEST(test_stripe_refusals)
{
    char hdr[300];
    snprintf(hdr, sizeof hdr, "t=%d,v1=%s", T0, good);
    ck_assert_int_eq(verify(hdr, "{\"id\":\"evt_2\",\"type\":\"charge.succeeded\"}", "whsec_test_secret", T0), TOK_WH_MISMATCH);
    ck_assert_int_eq(verify(hdr, body, "whsec_other", T0), TOK_WH_MISMATCH);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0 + 301), TOK_WH_STALE);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0 - 301), TOK_WH_STALE);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0 + 300), TOK_WH_OK);
    ck_assert_int_eq(verify(NULL, body, "whsec_test_secret", T0), TOK_WH_MISSING);
    ck_assert_int_eq(verify("t=1700000000", body, "whsec_test_secret", T0), TOK_WH_MISSING);
    snprintf(hdr, sizeof hdr, "v1=%s", good);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0), TOK_WH_MISSING);
    snprintf(hdr, sizeof hdr, "t=%d,v0=%s", T0, good);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0), TOK_WH_MISSING);
}
END_TEST

START_TEST(test_stripe_several_v1)
{
    char hdr[400];
    snprintf(hdr, sizeof hdr, "t=%d,v1=%064d,v1=%s,v0=abc", T0, 0, good);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0), TOK_WH_OK);
    snprintf(hdr, sizeof hdr, "t=%d, v1=%s", T0, good);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0), TOK_WH_OK);
}
END_TEST

START_TEST(test_sig_adversarial)
{
    char hdr[400];
    snprintf(hdr, sizeof hdr, "t=%d,t=%d,v1=%s", T0, T0, good);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0), TOK_WH_MISMATCH);
    snprintf(hdr, sizeof hdr, "t=-5,v1=%s", good);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0), TOK_WH_MISMATCH);
    snprintf(hdr, sizeof hdr, "t=%d,v1=%.63s", T0, good);
    ck_assert_int_eq(verify(hdr, body, "whsec_test_secret", T0), TOK_WH_MISMATCH);
    ck_assert_int_eq(verify(",,,,", body, "whsec_test_secret", T0), TOK_WH_MISSING);
    enum tok_webhook_verdict v;
    ck_assert_int_eq(tok_webhook_sig_verify(tok_slice_str("t=1,v1=a"), tok_slice_str(body),
                                            tok_slice_of("", 0), T0, 300, &v), TOK_ERR_INPUT);
}
END_TEST

static struct tok_adyen_item sample(void)
{
    struct tok_adyen_item it;
    memset(&it, 0, sizeof it);
    it.psp_reference = tok_slice_str("7914073381342284");
    it.original_reference = tok_slice_str("");
    it.merchant_account = tok_slice_str("TestMerchant");
    it.merchant_reference = tok_slice_str("TestPayment-1407325143704");
    it.value = tok_slice_str("1130");
    it.currency = tok_slice_str("EUR");
    it.event_code = tok_slice_str("AUTHORISATION");
    it.success = tok_slice_str("true");
    it.hmac_signature = tok_slice_str("coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=");
    return it;
}

static const char adyen_key[] = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";

START_TEST(test_adyen_sample)
{
    struct tok_adyen_item it = sample();
    bool ok = false;
    ck_assert_int_eq(tok_webhook_adyen_verify(&it, tok_slice_str(adyen_key), &ok), TOK_OK);
    ck_assert(ok);
    uint8_t mem[256];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_webhook_adyen_payload(&it, &b), TOK_OK);
    const char *want = "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true";
    ck_assert_uint_eq(b.len, strlen(want));
    ck_assert(memcmp(mem, want, b.len) == 0);
}
END_TEST

START_TEST(test_adyen_refusals)
{
    struct tok_adyen_item it = sample();
    bool ok = true;
    it.value = tok_slice_str("1131");
    ck_assert_int_eq(tok_webhook_adyen_verify(&it, tok_slice_str(adyen_key), &ok), TOK_OK);
    ck_assert(!ok);
    it = sample();
    it.hmac_signature = tok_slice_str("not base64!");
    ck_assert_int_eq(tok_webhook_adyen_verify(&it, tok_slice_str(adyen_key), &ok), TOK_OK);
    ck_assert(!ok);
    it = sample();
    ck_assert_int_eq(tok_webhook_adyen_verify(&it, tok_slice_str("zz"), &ok), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_webhook_adyen_verify(&it, tok_slice_str("00"), &ok), TOK_OK);
    ck_assert(!ok);
}
END_TEST

START_TEST(test_parse_adyen)
{
    const char *b = "{\"live\":\"false\",\"notificationItems\":[{\"NotificationRequestItem\":{"
                    "\"additionalData\":{\"hmacSignature\":\"coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=\"},"
                    "\"amount\":{\"currency\":\"EUR\",\"value\":1130},\"eventCode\":\"AUTHORISATION\","
                    "\"merchantAccountCode\":\"TestMerchant\",\"merchantReference\":\"TestPayment-1407325143704\","
                    "\"pspReference\":\"7914073381342284\",\"success\":\"true\"}}]}";
    struct tok_gw_event ev[2];
    struct tok_json_doc *doc = NULL;
    size_t n = 0;
    ck_assert_int_eq(tok_webhook_parse_adyen(tok_slice_str(b), &doc, ev, 2, &n), TOK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(ev[0].id, "AUTHORISATION:7914073381342284:true");
    ck_assert_str_eq(ev[0].ref, "7914073381342284");
    ck_assert_int_eq(ev[0].action, TOK_GWA_AUTHORISED);
    bool ok = false;
    ck_assert_int_eq(tok_webhook_adyen_verify(&ev[0].adyen, tok_slice_str(adyen_key), &ok), TOK_OK);
    ck_assert(ok);
    tok_json_doc_free(&doc);
    ck_assert_int_eq(tok_webhook_parse_adyen(tok_slice_str("{\"notificationItems\":[]}"), &doc, ev, 2, &n),
                     TOK_ERR_INPUT);
    tok_json_doc_free(&doc);
}
END_TEST

START_TEST(test_parse_stripe)
{
    struct tok_gw_event e;
    const char *b = "{\"id\":\"evt_1\",\"type\":\"charge.refunded\",\"data\":{\"object\":{\"id\":\"ch_1\","
                    "\"payment_intent\":\"pi_1\",\"amount_captured\":1000,\"amount_refunded\":300,"
                    "\"payment_method_details\":{\"card\":{\"last4\":\"4242\"}}}}}";
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), false, &e), TOK_OK);
    ck_assert_str_eq(e.ref, "pi_1");
    ck_assert_int_eq(e.action, TOK_GWA_REFUND_TOTAL);
    ck_assert_int_eq(e.amount_refunded, 300);
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str("{\"type\":\"x\"}"), false, &e), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str("[1]"), false, &e), TOK_ERR_INPUT);
}
END_TEST

/* A refund that fails later: Stripe's charge.refund.updated (only when the Refund is failed)
 * and refund.failed name the charge by payment_intent and the refund by id; Adyen's
 * REFUND_FAILED by originalReference and pspReference. */
START_TEST(test_parse_refund_failed)
{
    struct tok_gw_event e;
    const char *b = "{\"id\":\"evt_rf\",\"type\":\"charge.refund.updated\",\"data\":{\"object\":{"
                    "\"id\":\"re_1\",\"object\":\"refund\",\"amount\":700,\"charge\":\"ch_9\","
                    "\"payment_intent\":\"pi_1\",\"status\":\"failed\","
                    "\"failure_reason\":\"expired_or_canceled_card\"},"
                    "\"previous_attributes\":{\"status\":\"succeeded\"}}}";
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), false, &e), TOK_OK);
    ck_assert_int_eq(e.action, TOK_GWA_REFUND_FAILED);
    ck_assert_str_eq(e.ref, "pi_1");
    ck_assert_str_eq(e.refund_ref, "re_1");
    ck_assert_str_eq(e.failure, "expired_or_canceled_card");
    ck_assert_int_eq(e.amount_refunded, 700);
    ck_assert_int_eq(e.amount_captured, -1);
    /* another update of a refund (status succeeded) is not a failure */
    const char *ok = "{\"id\":\"evt_ru\",\"type\":\"charge.refund.updated\",\"data\":{\"object\":{"
                     "\"id\":\"re_1\",\"object\":\"refund\",\"amount\":700,"
                     "\"payment_intent\":\"pi_1\","
                     "\"status\":\"succeeded\"}}}";
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(ok), false, &e), TOK_OK);
    ck_assert_int_eq(e.action, TOK_GWA_IGNORE);
    const char *rf = "{\"id\":\"evt_rf2\",\"type\":\"refund.failed\",\"data\":{\"object\":{"
                     "\"id\":\"re_2\",\"object\":\"refund\",\"amount\":5,\"charge\":\"ch_9\","
                     "\"status\":\"failed\"}}}";
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(rf), false, &e), TOK_OK);
    ck_assert_int_eq(e.action, TOK_GWA_REFUND_FAILED);
    ck_assert_str_eq(e.ref, "ch_9");
    ck_assert_str_eq(e.refund_ref, "re_2");
    ck_assert_str_eq(e.failure, "");
    /* a failed refund without its id cannot be matched: refused */
    const char *noid = "{\"id\":\"evt_rf3\",\"type\":\"refund.failed\",\"data\":{\"object\":{"
                       "\"object\":\"refund\",\"payment_intent\":\"pi_1\",\"status\":\"failed\"}}}";
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(noid), false, &e), TOK_ERR_INPUT);

    const char *a = "{\"live\":\"false\",\"notificationItems\":[{\"NotificationRequestItem\":{"
                    "\"additionalData\":{\"hmacSignature\":\"x\"},"
                    "\"amount\":{\"currency\":\"EUR\",\"value\":1000},"
                    "\"eventCode\":\"REFUND_FAILED\","
                    "\"merchantAccountCode\":\"M\",\"merchantReference\":\"r\","
                    "\"originalReference\":\"PAYMENT000000001\","
                    "\"pspReference\":\"REFUND0000000001\","
                    "\"reason\":\"Refund failed\",\"success\":\"true\"}}]}";
    struct tok_gw_event ev[1];
    struct tok_json_doc *doc = NULL;
    size_t n = 0;
    ck_assert_int_eq(tok_webhook_parse_adyen(tok_slice_str(a), &doc, ev, 1, &n), TOK_OK);
    ck_assert_int_eq(ev[0].action, TOK_GWA_REFUND_FAILED);
    ck_assert_str_eq(ev[0].ref, "PAYMENT000000001");
    ck_assert_str_eq(ev[0].refund_ref, "REFUND0000000001");
    ck_assert_int_eq(ev[0].amount_refunded, 1000);
    ck_assert_str_eq(ev[0].id, "REFUND_FAILED:REFUND0000000001:true");
    tok_json_doc_free(&doc);
}
END_TEST

/* A Stripe PaymentMethod event as documented (data.object is the PaymentMethod; the
 * card is data.object.card), trimmed to the fields that matter plus decoys. */
#define PM_EVENT(type, card)                                                                       \
    "{\"id\":\"evt_1Pm\",\"object\":\"event\",\"type\":\"" type "\",\"data\":{\"object\":{"         \
    "\"id\":\"pm_1Abc\",\"object\":\"payment_method\",\"type\":\"card\",\"card\":" card "},"       \
    "\"previous_attributes\":{\"card\":{\"exp_year\":2024}}}}"

START_TEST(test_parse_card_update)
{
    struct tok_gw_event e;
    const char *b = PM_EVENT("payment_method.automatically_updated",
                             "{\"brand\":\"visa\",\"exp_month\":3,\"exp_year\":2031,\"last4\":\"1881\","
                             "\"funding\":\"credit\"}");
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), false, &e), TOK_OK);
    ck_assert_int_eq(e.action, TOK_GWA_CARD_UPDATED);
    ck_assert_str_eq(e.ref, "pm_1Abc");
    ck_assert_str_eq(e.id, "evt_1Pm");
    ck_assert_int_eq(e.card.exp_month, 3);
    ck_assert_int_eq(e.card.exp_year, 2031);
    ck_assert_str_eq(e.card.last4, "1881");
    ck_assert_str_eq(e.card.brand, "visa");
    ck_assert(tok_webhook_card_update_ok(&e.card, 6, 2026));
    /* payment_method.updated too; a brand tokend does not name is dropped, not refused */
    b = PM_EVENT("payment_method.updated",
                 "{\"brand\":\"eftpos_au\",\"exp_month\":12,\"exp_year\":2030,\"last4\":\"0005\"}");
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), false, &e), TOK_OK);
    ck_assert_int_eq(e.action, TOK_GWA_CARD_UPDATED);
    ck_assert_str_eq(e.card.brand, "");
    ck_assert(tok_webhook_card_update_ok(&e.card, 6, 2026));
    /* the sandbox shape: flat, with gateway_reference */
    b = "{\"id\":\"evt_s\",\"type\":\"payment_method.updated\",\"data\":{\"object\":{"
        "\"gateway_reference\":\"sbxpm_ok_1\",\"exp_month\":1,\"exp_year\":2029,\"last4\":\"4444\"}}}";
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), true, &e), TOK_OK);
    ck_assert_int_eq(e.action, TOK_GWA_CARD_UPDATED);
    ck_assert_str_eq(e.ref, "sbxpm_ok_1");
    ck_assert_str_eq(e.card.last4, "4444");
    ck_assert(tok_webhook_card_update_ok(&e.card, 6, 2026));
    /* Stripe's own automatically_updated name is not a sandbox type */
    b = "{\"id\":\"evt_s\",\"type\":\"payment_method.automatically_updated\",\"data\":{\"object\":{"
        "\"gateway_reference\":\"sbxpm_ok_1\"}}}";
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), true, &e), TOK_OK);
    ck_assert_int_eq(e.action, TOK_GWA_IGNORE);
}
END_TEST

START_TEST(test_card_update_limits)
{
    struct tok_card_update u = {3, 2031, "1881", ""};
    ck_assert(tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_month = 0;
    ck_assert(!tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_month = 13;
    ck_assert(!tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_month = 12;
    ck_assert(tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_year = 31; /* two digits: not what a gateway sends, not guessed */
    ck_assert(!tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_year = 2026;
    u.exp_month = 6; /* this month: still valid */
    ck_assert(tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_month = 5; /* already expired */
    ck_assert(!tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_month = 1;
    u.exp_year = 2026 + 20;
    ck_assert(tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_year = 2026 + 21;
    ck_assert(!tok_webhook_card_update_ok(&u, 6, 2026));
    u.exp_year = 2030;
    u.last4[0] = '\0';
    ck_assert(!tok_webhook_card_update_ok(&u, 6, 2026));
    ck_assert(!tok_webhook_card_update_ok(NULL, 6, 2026));
}
END_TEST

START_TEST(test_parse_card_update_adversarial)
{
    struct tok_gw_event e;
    /* a whole card number where last4 belongs never reaches the event */
    const char *b = PM_EVENT("payment_method.automatically_updated",
                             "{\"exp_month\":3,\"exp_year\":2031,\"last4\":\"4000056655665556\"}");
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), false, &e), TOK_OK);
    ck_assert_str_eq(e.card.last4, "");
    ck_assert(!tok_webhook_card_update_ok(&e.card, 6, 2026));
    static const char *const bad_cards[] = {
        "{\"exp_month\":\"3\",\"exp_year\":2031,\"last4\":\"1881\"}",  /* month as a string */
        "{\"exp_month\":3,\"exp_year\":2031.5,\"last4\":\"1881\"}",     /* not an integer */
        "{\"exp_month\":-3,\"exp_year\":2031,\"last4\":\"1881\"}",
        "{\"exp_month\":3,\"exp_year\":99999999999,\"last4\":\"1881\"}",
        "{\"exp_month\":3,\"exp_year\":2031,\"last4\":\"188\"}",
        "{\"exp_month\":3,\"exp_year\":2031,\"last4\":\"18a1\"}",
        "{\"exp_month\":3,\"exp_year\":2031,\"last4\":1881}",
        "{\"exp_month\":3,\"exp_year\":2031}",
        "null",
        "\"4242\"",
    };
    char buf[512];
    for (size_t i = 0; i < sizeof bad_cards / sizeof *bad_cards; i++) {
        snprintf(buf, sizeof buf, PM_EVENT("payment_method.automatically_updated", "%s"), bad_cards[i]);
        ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(buf), false, &e), TOK_OK);
        ck_assert_int_eq(e.action, TOK_GWA_CARD_UPDATED);
        ck_assert_msg(!tok_webhook_card_update_ok(&e.card, 6, 2026), "card %zu accepted", i);
    }
    /* a brand name longer than any tokend knows, or with a NUL, is not copied */
    b = PM_EVENT("payment_method.updated",
                 "{\"brand\":\"visa\\u0000x\",\"exp_month\":3,\"exp_year\":2031,\"last4\":\"1881\"}");
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), false, &e), TOK_OK);
    ck_assert_str_eq(e.card.brand, "");
    /* no reference: not an event tokend can act on */
    b = "{\"id\":\"evt_1\",\"type\":\"payment_method.updated\",\"data\":{\"object\":{\"card\":{}}}}";
    ck_assert_int_eq(tok_webhook_parse_stripe(tok_slice_str(b), false, &e), TOK_ERR_INPUT);
}
END_TEST

/* The main line's order: requires_action (3-D Secure) comes between pending and
 * requires_capture, though its enum value is the last. */
static int main_rank(int s)
{
    switch (s) {
    case TOK_CH_PENDING: return 0;
    case TOK_CH_REQUIRES_ACTION: return 1;
    case TOK_CH_REQUIRES_CAPTURE: return 2;
    case TOK_CH_SUCCEEDED: return 3;
    case TOK_CH_PARTIALLY_REFUNDED: return 4;
    case TOK_CH_REFUNDED: return 5;
    default: return -1;
    }
}

/* Every ordered pair of states: forward on the main line, disputed from it, failed and
 * canceled only before money moved, nothing out of a final state, never a self-loop. */
START_TEST(test_state_machine_all_pairs)
{
    for (int f = 0; f < TOK_CH_STATE_COUNT; f++) {
        for (int t = 0; t < TOK_CH_STATE_COUNT; t++) {
            bool want;
            bool main_f = main_rank(f) >= 0, main_t = main_rank(t) >= 0;
            if (f == t || !main_f)
                want = false;
            else if (main_t)
                want = main_rank(t) > main_rank(f);
            else if (t == TOK_CH_DISPUTED)
                want = true;
            else if (t == TOK_CH_FAILED || t == TOK_CH_CANCELED)
                want = main_rank(f) <= main_rank(TOK_CH_REQUIRES_CAPTURE);
            else
                want = false;
            ck_assert_msg(tok_charge_transition_ok((enum tok_charge_state)f, (enum tok_charge_state)t) == want,
                          "%s -> %s", tok_charge_state_name((enum tok_charge_state)f),
                          tok_charge_state_name((enum tok_charge_state)t));
        }
    }
}
END_TEST

START_TEST(test_decide_out_of_order)
{
    struct tok_charge_view c = {TOK_CH_REQUIRES_CAPTURE, 1000, 0, 0, true, false};
    struct tok_gw_event e;
    memset(&e, 0, sizeof e);
    e.action = TOK_GWA_REFUND_TOTAL;
    e.amount_captured = 1000;
    e.amount_refunded = 1000;
    struct tok_charge_change ch;
    tok_webhook_decide(&c, &e, &ch);
    ck_assert(ch.apply);
    ck_assert_int_eq(ch.to, TOK_CH_REFUNDED);
    ck_assert_int_eq(ch.refunded, 1000);
    c.state = TOK_CH_REFUNDED;
    c.captured = c.refunded = 1000;
    e.action = TOK_GWA_SUCCEEDED;
    tok_webhook_decide(&c, &e, &ch);
    ck_assert(!ch.apply);
    ck_assert_int_eq(ch.to, TOK_CH_REFUNDED);
    /* a second partial refund moves the amount within partially_refunded */
    struct tok_charge_view p = {TOK_CH_PARTIALLY_REFUNDED, 1000, 1000, 200, false, false};
    e.action = TOK_GWA_REFUND_TOTAL;
    e.amount_refunded = 500;
    tok_webhook_decide(&p, &e, &ch);
    ck_assert(ch.apply);
    ck_assert_int_eq(ch.refunded, 500);
    e.amount_refunded = 100; /* an older total: never lowers */
    tok_webhook_decide(&p, &e, &ch);
    ck_assert(!ch.apply);
}
END_TEST

START_TEST(test_url_check)
{
    ck_assert_int_eq(tok_webhook_url_check(tok_slice_str("https://app.example.com/hooks"), false), TOK_OK);
    ck_assert_int_eq(tok_webhook_url_check(tok_slice_str("http://127.0.0.1:9/x"), false), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_webhook_url_check(tok_slice_str("http://127.0.0.1:9/x"), true), TOK_OK);
    ck_assert_int_eq(tok_webhook_url_check(tok_slice_str("http://127.0.0.1.evil.com/x"), true), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_webhook_url_check(tok_slice_str("https://user@host/"), false), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_webhook_url_check(tok_slice_str("https:///x"), false), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_webhook_url_check(tok_slice_str(""), false), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_backoff_bounds)
{
    for (unsigned a = 1; a < 40; a++) {
        double d = tok_webhook_backoff_s(a, 1000, 3600);
        double full = a < 13 ? (double)(1u << (a - 1)) : 3600.0;
        if (full > 3600.0)
            full = 3600.0;
        ck_assert(d >= full * 0.5 - 1e-9 && d < full + 1e-9);
    }
}
END_TEST

Suite *tok_webhooks_suite(void)
{
    Suite *s = suite_create("webhooks");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_test(core, test_stripe_known_vector);
    tcase_add_test(core, test_sig_header_roundtrip);
    tcase_add_test(core, test_stripe_several_v1);
    tcase_add_test(core, test_adyen_sample);
    tcase_add_test(core, test_parse_adyen);
    tcase_add_test(core, test_parse_stripe);
    tcase_add_test(core, test_parse_refund_failed);
    tcase_add_test(core, test_parse_card_update);
    tcase_add_test(limits, test_card_update_limits);
    tcase_add_test(adv, test_parse_card_update_adversarial);
    tcase_add_test(core, test_state_machine_all_pairs);
    tcase_add_test(core, test_decide_out_of_order);
    tcase_add_test(limits, test_stripe_refusals);
    tcase_add_test(limits, test_backoff_bounds);
    tcase_add_test(adv, test_sig_adversarial);
    tcase_add_test(adv, test_adyen_refusals);
    tcase_add_test(adv, test_url_check);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
