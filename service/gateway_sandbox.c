/*
 * gateway_sandbox.c - the in-process sandbox gateway used by test-mode keys
 * and `make run`. It behaves like a real gateway for the well-known test card
 * numbers and keeps no state: a payment-method reference carries the card's
 * test behaviour ("sbxpm_<behaviour>_<random>"), so charges need no PAN.
 */
#include "tokend/gateway.h"
#include "tokend/keyring.h"

#include <string.h>

struct behaviour {
    const char *pan;     /* test card number */
    const char *tag;     /* carried in the reference */
    const char *code;    /* charge outcome code, NULL = succeeds */
    const char *decline; /* decline_code */
};

static const struct behaviour behaviours[] = {
    {"4000000000000002", "generic", "card_declined", "generic_decline"},
    {"4000000000009995", "funds", "card_declined", "insufficient_funds"},
    {"4000000000000069", "expired", "expired_card", "expired_card"},
    {"4000000000000127", "cvc", "incorrect_cvc", "incorrect_cvc"},
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

static void tokenise(struct tok_gateway_call *call)
{
    if (tok_slice_eq(call->card->pan, "4000000000000119")) {
        call->outcome = TOK_GW_ERROR;
        call->code = "processing_error";
        return;
    }
    const char *tag = "ok";
    for (size_t i = 0; i < TOK_ARRAY_LEN(behaviours); i++)
        if (tok_slice_eq(call->card->pan, behaviours[i].pan))
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
