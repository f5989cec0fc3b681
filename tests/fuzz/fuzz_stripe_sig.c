/*
 * fuzz_stripe_sig.c - the Stripe-Signature header and the Stripe event parser
 * (service/events/webhooks_sig.c): both read bytes from anyone who can reach
 * POST /v1/webhooks/stripe/... before (header) or right after (body) the signature check.
 *
 * Input: the header value, '\n', the body. The secret and the clock are fixed (the seeds
 * are signed with them, so mutations start from a header that verifies). Properties:
 *   - the verdict is one of the four, and TOK_WH_OK only when the header holds the hex
 *     HMAC of "{t}.{body}" this file computes itself;
 *   - a header made by tok_webhook_sig_header for this body and a t from the input always
 *     verifies at that t;
 *   - the event parser fills NUL-terminated fields or refuses with TOK_ERR_INPUT.
 */
#include "fuzz.h"

#include "tokend/core/encoding.h"
#include "tokend/events/webhooks.h"

#include <sodium.h>

#define SECRET "whsec_fuzz_secret"
#define NOW 1700000000

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

/* True when some "v1=" in hdr is hex HMAC(SECRET, "{t}.{body}") for a "t=" in hdr. */
static bool holds_good_mac(struct tok_slice hdr, struct tok_slice body)
{
    for (size_t i = 0; i + 2 <= hdr.len; i++) {
        if (hdr.ptr[i] != 't' || hdr.ptr[i + 1] != '=')
            continue;
        size_t j = i + 2;
        while (j < hdr.len && hdr.ptr[j] >= '0' && hdr.ptr[j] <= '9')
            j++;
        crypto_auth_hmacsha256_state st;
        uint8_t mac[32];
        crypto_auth_hmacsha256_init(&st, (const uint8_t *)SECRET, strlen(SECRET));
        crypto_auth_hmacsha256_update(&st, hdr.ptr + i + 2, j - i - 2);
        crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
        crypto_auth_hmacsha256_update(&st, body.ptr, body.len);
        crypto_auth_hmacsha256_final(&st, mac);
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
        for (size_t k = 0; k + 3 + 64 <= hdr.len; k++)
            if (memcmp(hdr.ptr + k, "v1=", 3) == 0 && memcmp(hdr.ptr + k + 3, hex, 64) == 0)
                return true;
    }
    return false;
}

static void check_event(const struct tok_gw_event *e)
{
    FUZZ_ASSERT(memchr(e->id, '\0', sizeof e->id) != NULL && e->id[0] != '\0');
    FUZZ_ASSERT(memchr(e->type, '\0', sizeof e->type) != NULL && e->type[0] != '\0');
    FUZZ_ASSERT(memchr(e->ref, '\0', sizeof e->ref) != NULL);
    FUZZ_ASSERT(memchr(e->refund_ref, '\0', sizeof e->refund_ref) != NULL);
    FUZZ_ASSERT(e->action >= TOK_GWA_IGNORE && e->action <= TOK_GWA_LAST);
    FUZZ_ASSERT(memchr(e->failure, '\0', sizeof e->failure) != NULL);
    if (e->action == TOK_GWA_CARD_UPDATED) {
        size_t n = strnlen(e->card.last4, sizeof e->card.last4);
        FUZZ_ASSERT(n == 0 || n == 4);
        FUZZ_ASSERT(memchr(e->card.brand, '\0', sizeof e->card.brand) != NULL);
        (void)tok_webhook_card_update_ok(&e->card, 6, 2030);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_slice rest = tok_slice_of(data, size);
    struct tok_slice hdr = fuzz_line(&rest), body = rest;
    struct tok_slice secret = tok_slice_str(SECRET);

    enum tok_webhook_verdict v = TOK_WH_OK;
    FUZZ_ASSERT(tok_webhook_sig_verify(hdr, body, secret, NOW, TOK_WEBHOOK_TOLERANCE_S, &v) ==
                TOK_OK);
    FUZZ_ASSERT(v == TOK_WH_OK || v == TOK_WH_MISSING || v == TOK_WH_MISMATCH || v == TOK_WH_STALE);
    FUZZ_ASSERT((tok_webhook_verdict_code(v) == NULL) == (v == TOK_WH_OK));
    if (v == TOK_WH_OK)
        FUZZ_ASSERT(hdr.len <= TOK_WEBHOOK_SIG_HEADER_MAX && holds_good_mac(hdr, body));
    /* no header at all */
    FUZZ_ASSERT(tok_webhook_sig_verify(tok_slice_of(NULL, 0), body, secret, NOW, 300, &v) == TOK_OK &&
                v == TOK_WH_MISSING);

    /* what we sign ourselves verifies */
    int64_t t = 0;
    for (size_t i = 0; i < 5 && i < size; i++)
        t = t * 256 + data[i];
    char mem[TOK_WEBHOOK_SIG_OUT_MAX];
    struct tok_buf out;
    tok_buf_init(&out, mem, sizeof mem);
    FUZZ_ASSERT(tok_webhook_sig_header(secret, t, body, &out) == TOK_OK);
    FUZZ_ASSERT(tok_webhook_sig_verify(tok_buf_slice(&out), body, secret, t, 0, &v) == TOK_OK &&
                v == TOK_WH_OK);

    /* the event, as Stripe and as the sandbox send it */
    for (int sandbox = 0; sandbox <= 1; sandbox++) {
        struct tok_gw_event e;
        memset(&e, 0xa5, sizeof e);
        tok_status st = tok_webhook_parse_stripe(body, sandbox != 0, &e);
        FUZZ_ASSERT(st == TOK_OK || st == TOK_ERR_INPUT || st == TOK_ERR_BOUNDS);
        if (st == TOK_OK)
            check_event(&e);
    }
    return 0;
}
