/*
 * gateway_sandbox.c - the in-process sandbox gateway used by test-mode keys
 * and `make run`. It behaves like a real gateway for the well-known test card
 * numbers and keeps no state: a payment-method reference carries the card's
 * test behaviour ("sbxpm_<behaviour>_<random>"), so charges need no PAN.
 */
#include "tokend/gateways/gateway.h"
#include "tokend/gateways/registry.h"
#include "tokend/core/rand.h"

#include <string.h>

/* Test cards are recognised by the test BIN 400000 and their last four digits (Stripe's
 * documented test numbers), so no card number is written in this file. */
#define TEST_BIN "400000"
#define TEST_LEN 16

struct behaviour {
    const char *last4;   /* of a 16-digit test card with BIN 400000 */
    const char *tag;     /* carried in the reference */
    const char *code;    /* charge outcome code, NULL = succeeds */
    const char *decline; /* decline_code */
};

static const struct behaviour behaviours[] = {
    {"0002", "generic", "card_declined", "generic_decline"},
    {"9995", "funds", "card_declined", "insufficient_funds"},
    {"0069", "expired", "expired_card", "expired_card"},
    {"0127", "cvc", "incorrect_cvc", "incorrect_cvc"},
};

static void set_ref(struct tok_gateway_call *call, const char *prefix)
{
    struct tok_buf b;
    const char *s = NULL;
    tok_buf_init(&b, call->ref, sizeof call->ref - 1);
    if (tok_buf_puts(&b, prefix) != TOK_OK || tok_random_id("", &b) != TOK_OK ||
        tok_buf_cstr(&b, &s) != TOK_OK) {
        call->outcome = TOK_GW_ERROR;
        call->code = "processing_error";
    }
}

/* True when pan is the 16-digit test card 400000...<last4>. */
static bool is_test_card(struct tok_slice pan, const char *last4)
{
    return pan.len == TEST_LEN && tok_slice_eq(tok_slice_of(pan.ptr, 6), TEST_BIN) &&
           tok_slice_eq(tok_slice_of(pan.ptr + TEST_LEN - 4, 4), last4) &&
           tok_slice_eq(tok_slice_of(pan.ptr + 6, 6), "000000");
}

static void tokenise(struct tok_gateway_call *call)
{
    if (is_test_card(call->card->pan, "0119")) { /* processing error */
        call->outcome = TOK_GW_ERROR;
        call->code = "processing_error";
        return;
    }
    const char *tag = "ok";
    for (size_t i = 0; i < TOK_ARRAY_LEN(behaviours); i++)
        if (is_test_card(call->card->pan, behaviours[i].last4))
            tag = behaviours[i].tag;
    char prefix[32];
    struct tok_buf b;
    tok_buf_init(&b, prefix, sizeof prefix - 1);
    const char *s = NULL;
    if (tok_buf_printf(&b, "sbxpm_%s_", tag) != TOK_OK || tok_buf_cstr(&b, &s) != TOK_OK) {
        call->outcome = TOK_GW_ERROR;
        call->code = "processing_error";
        return;
    }
    set_ref(call, s);
}

static void charge(struct tok_gateway_call *call)
{
    for (size_t i = 0; i < TOK_ARRAY_LEN(behaviours); i++) {
        size_t tl = strlen(behaviours[i].tag);
        if (strncmp(call->pm_ref, "sbxpm_", 6) == 0 && strncmp(call->pm_ref + 6, behaviours[i].tag, tl) == 0 &&
            call->pm_ref[6 + tl] == '_') {
            call->outcome = TOK_GW_DECLINED;
            call->code = behaviours[i].code;
            struct tok_buf d;
            tok_buf_init(&d, call->decline_code, sizeof call->decline_code - 1);
            if (tok_buf_puts(&d, behaviours[i].decline) == TOK_OK)
                call->decline_code[d.len] = '\0';
            return;
        }
    }
    set_ref(call, "sbxch_");
    call->captured = call->capture;
}

static void sandbox_submit(const struct tok_gateway_ops *self, struct tok_gateway_call *call)
{
    (void)self;
    call->outcome = TOK_GW_OK;
    call->code = NULL;
    call->ref[0] = '\0';
    call->decline_code[0] = '\0';
    call->captured = false;
    switch (call->op) {
    case TOK_GW_TOKENISE:
        tokenise(call);
        break;
    case TOK_GW_CHARGE:
        charge(call);
        break;
    case TOK_GW_CAPTURE:
    case TOK_GW_VOID:
    case TOK_GW_DETACH: /* the sandbox stores nothing to forget */
        break;
    case TOK_GW_REFUND:
        set_ref(call, "sbxre_");
        break;
    default:
        call->outcome = TOK_GW_ERROR;
        call->code = "processing_error";
        break;
    }
    call->done(call);
}

static const struct tok_gateway_ops sandbox = {"sandbox", true, sandbox_submit};

const struct tok_gateway_ops *tok_gateway_sandbox(void)
{
    return &sandbox;
}
