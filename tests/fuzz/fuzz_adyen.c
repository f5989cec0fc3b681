/*
 * fuzz_adyen.c - the Adyen notification parser and item HMAC
 * (service/events/webhooks_sig.c): POST /v1/webhooks/adyen/... parses the body first, since
 * Adyen signs each item, not the request.
 *
 * Properties, for every item of an accepted notification:
 *   - the event fields are NUL-terminated, the action one of the enum;
 *   - tok_webhook_adyen_payload is the eight fields joined by ':' (rebuilt here);
 *   - tok_webhook_adyen_verify says ok exactly when the item's hmacSignature is the base64
 *     HMAC-SHA256 of that payload under the key, computed here with libsodium directly.
 */
#include "fuzz.h"

#include "tokend/core/json.h"
#include "tokend/events/webhooks.h"

#include <sodium.h>

/* Adyen's documented example key (also tests/unit/check_webhooks.c) */
static const char hex_key[] = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";
static uint8_t key[32];

#define PAYLOAD_CAP 4096 /* tok_webhook_adyen_verify's own buffer */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0 ||
        sodium_hex2bin(key, sizeof key, hex_key, strlen(hex_key), NULL, NULL, NULL) != 0)
        abort();
    return 0;
}

static void check_item(const struct tok_gw_event *e)
{
    FUZZ_ASSERT(memchr(e->id, '\0', sizeof e->id) != NULL && e->id[0] != '\0');
    FUZZ_ASSERT(memchr(e->type, '\0', sizeof e->type) != NULL && e->type[0] != '\0');
    FUZZ_ASSERT(memchr(e->ref, '\0', sizeof e->ref) != NULL && e->ref[0] != '\0');
    FUZZ_ASSERT(memchr(e->refund_ref, '\0', sizeof e->refund_ref) != NULL);
    FUZZ_ASSERT(e->action >= TOK_GWA_IGNORE && e->action <= TOK_GWA_LAST);
    FUZZ_ASSERT(memchr(e->failure, '\0', sizeof e->failure) != NULL);

    const struct tok_adyen_item *it = &e->adyen;
    const struct tok_slice f[8] = {it->psp_reference, it->original_reference, it->merchant_account,
                                   it->merchant_reference, it->value, it->currency,
                                   it->event_code, it->success};
    static uint8_t want[8 * TOK_JSON_HARD_MAX_BODY + 8];
    size_t n = 0;
    for (size_t i = 0; i < 8; i++) {
        if (i > 0)
            want[n++] = ':';
        FUZZ_ASSERT(f[i].len <= TOK_JSON_HARD_MAX_BODY);
        if (f[i].len > 0)
            memcpy(want + n, f[i].ptr, f[i].len);
        n += f[i].len;
    }
    static uint8_t got_mem[sizeof want];
    struct tok_buf got;
    tok_buf_init(&got, got_mem, sizeof got_mem);
    FUZZ_ASSERT(tok_webhook_adyen_payload(it, &got) == TOK_OK);
    FUZZ_ASSERT(got.len == n && memcmp(got.data, want, n) == 0);

    bool ok = true;
    tok_status st = tok_webhook_adyen_verify(it, tok_slice_str(hex_key), &ok);
    FUZZ_ASSERT(st == TOK_OK);
    bool should = false;
    if (n < PAYLOAD_CAP) {
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state hs;
        crypto_auth_hmacsha256_init(&hs, key, sizeof key);
        crypto_auth_hmacsha256_update(&hs, want, n);
        crypto_auth_hmacsha256_final(&hs, mac);
        char b64[sodium_base64_ENCODED_LEN(sizeof mac, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(b64, sizeof b64, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
        should = it->hmac_signature.len == strlen(b64) &&
                 memcmp(it->hmac_signature.ptr, b64, it->hmac_signature.len) == 0;
    }
    FUZZ_ASSERT(ok == should);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_gw_event ev[TOK_WEBHOOK_ITEMS_MAX];
    struct tok_json_doc *doc = NULL;
    size_t n = SIZE_MAX;
    memset(ev, 0xa5, sizeof ev);
    tok_status st = tok_webhook_parse_adyen(tok_slice_of(data, size), &doc, ev, TOK_WEBHOOK_ITEMS_MAX, &n);
    FUZZ_ASSERT(st == TOK_OK || st == TOK_ERR_INPUT || st == TOK_ERR_BOUNDS);
    if (st == TOK_OK) {
        FUZZ_ASSERT(doc != NULL && n >= 1 && n <= TOK_WEBHOOK_ITEMS_MAX);
        for (size_t i = 0; i < n; i++)
            check_item(&ev[i]);
    }
    tok_json_doc_free(&doc);
    FUZZ_ASSERT(doc == NULL);
    return 0;
}
