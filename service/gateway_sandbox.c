/*
 * gateway_sandbox.c - the in-process sandbox gateway used by test-mode keys
 * and `make run`. It behaves like a real gateway for the well-known test card
 * numbers and keeps nothing: its reference is a random id.
 */
#include "tokend/gateway.h"
#include "tokend/keyring.h"

#include <string.h>

static void sandbox_tokenise(const struct tok_gateway_ops *self, struct tok_gateway_call *call)
{
    (void)self;
    call->outcome = TOK_GW_OK;
    call->code = NULL;
    call->ref[0] = '\0';
    if (tok_slice_eq(call->card->pan, "4000000000000119")) {
        call->outcome = TOK_GW_ERROR;
        call->code = "processing_error";
    } else {
        struct tok_buf b;
        tok_buf_init(&b, call->ref, sizeof call->ref - 1);
        const char *s = NULL;
        if (tok_random_id("sbxpm_", &b) != TOK_OK || tok_buf_cstr(&b, &s) != TOK_OK) {
            call->outcome = TOK_GW_ERROR;
            call->code = "processing_error";
        }
    }
    call->done(call);
}

static const struct tok_gateway_ops sandbox = {"sandbox", true, sandbox_tokenise};

const struct tok_gateway_ops *tok_gateway_sandbox(void)
{
    return &sandbox;
}

const struct tok_gateway_ops *tok_gateway_find(struct tok_slice name)
{
    if (tok_slice_eq(name, sandbox.name))
        return &sandbox;
    return NULL;
}
