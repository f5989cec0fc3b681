/*
 * webhooks_sig.c - the wire formats of inbound and outbound webhooks: signature
 * schemes (Stripe's t=/v1=, which tokend also uses, and Adyen's item HMAC), the
 * event parsers and the single state-machine decision. No I/O here: everything is
 * a pure function with a unit test (tests/unit/check_webhooks.c).
 */
#include "tokend/events/webhooks.h"
#include "tokend/vault/card.h"
#include "tokend/core/encoding.h"
#include "tokend/core/json.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

const char *tok_webhook_verdict_code(enum tok_webhook_verdict v)
{
    switch (v) {
    case TOK_WH_OK: return NULL;
    case TOK_WH_MISSING: return "signature_missing";
    case TOK_WH_STALE: return "timestamp_out_of_tolerance";
    case TOK_WH_MISMATCH:
    default: return "signature_invalid";
    }
}

/* "{t}.{body}" signed with secret, as 64 lowercase hex characters into hex. */
static tok_status sign_hex(struct tok_slice secret, struct tok_slice t, struct tok_slice body,
                           char hex[2 * TOK_HMAC_SHA256_LEN + 1])
{
    crypto_auth_hmacsha256_state st;
    uint8_t mac[TOK_HMAC_SHA256_LEN];
    TOK_ENSURE(secret.len > 0 && secret.len <= TOK_WEBHOOK_SECRET_MAX, TOK_ERR_INPUT);
    crypto_auth_hmacsha256_init(&st, secret.ptr, secret.len);
    crypto_auth_hmacsha256_update(&st, t.ptr, t.len);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    if (body.len > 0)
        crypto_auth_hmacsha256_update(&st, body.ptr, body.len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    sodium_bin2hex(hex, 2 * TOK_HMAC_SHA256_LEN + 1, mac, sizeof mac);
    sodium_memzero(mac, sizeof mac);
    return TOK_OK;
}

static bool parse_i64(struct tok_slice s, int64_t *out)
{
    if (s.len == 0 || s.len > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = v;
    return true;
}

tok_status tok_webhook_sig_verify(struct tok_slice header, struct tok_slice body,
                                  struct tok_slice secret, int64_t now, int64_t tolerance_s,
                                  enum tok_webhook_verdict *out)
{
    TOK_ENSURE(out != NULL && tolerance_s >= 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(secret.len > 0 && secret.len <= TOK_WEBHOOK_SECRET_MAX, TOK_ERR_INPUT);
    *out = TOK_WH_MISSING;
    if (header.ptr == NULL || header.len == 0)
        return TOK_OK;
    *out = TOK_WH_MISMATCH;
    if (header.len > TOK_WEBHOOK_SIG_HEADER_MAX)
        return TOK_OK;
    struct tok_slice t = {NULL, 0}, sigs[TOK_WEBHOOK_SIGS_MAX];
    size_t nsigs = 0;
    bool too_many = false;
    size_t i = 0;
    while (i <= header.len) {
        size_t j = i;
        while (j < header.len && header.ptr[j] != ',')
            j++;
        struct tok_slice el = {header.ptr + i, j - i};
        /* tolerate spaces around elements */
        while (el.len > 0 && el.ptr[0] == ' ') {
            el.ptr++;
            el.len--;
        }
        while (el.len > 0 && el.ptr[el.len - 1] == ' ')
            el.len--;
        if (el.len > 2 && el.ptr[0] == 't' && el.ptr[1] == '=') {
            if (t.ptr != NULL)
                return TOK_OK; /* two timestamps: malformed */
            t = tok_slice_of(el.ptr + 2, el.len - 2);
        } else if (el.len > 3 && el.ptr[0] == 'v' && el.ptr[1] == '1' && el.ptr[2] == '=') {
            if (nsigs < TOK_WEBHOOK_SIGS_MAX)
                sigs[nsigs++] = tok_slice_of(el.ptr + 3, el.len - 3);
            else
                too_many = true;
        }
        i = j + 1;
    }
    if (t.ptr == NULL || nsigs == 0) {
        *out = TOK_WH_MISSING;
        return TOK_OK;
    }
    int64_t ts = 0;
    if (too_many || !parse_i64(t, &ts))
        return TOK_OK;
    char expected[2 * TOK_HMAC_SHA256_LEN + 1];
    TOK_GUARD(sign_hex(secret, t, body, expected));
    /* every candidate is compared, so timing says nothing about which matched */
    bool match = false;
    for (size_t k = 0; k < nsigs; k++) {
        bool eq = tok_slice_eq_ct(sigs[k], tok_slice_of(expected, 2 * TOK_HMAC_SHA256_LEN));
        match = match | eq;
    }
    sodium_memzero(expected, sizeof expected);
    if (!match)
        return TOK_OK;
    int64_t d = now - ts;
    if (d > tolerance_s || d < -tolerance_s) {
        *out = TOK_WH_STALE;
        return TOK_OK;
    }
    *out = TOK_WH_OK;
    return TOK_OK;
}

tok_status tok_webhook_sig_header(struct tok_slice secret, int64_t t, struct tok_slice body,
                                  struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && t >= 0, TOK_ERR_INTERNAL);
    char ts[24];
    int n = snprintf(ts, sizeof ts, "%lld", (long long)t);
    TOK_ENSURE(n > 0 && (size_t)n < sizeof ts, TOK_ERR_INTERNAL);
    char hex[2 * TOK_HMAC_SHA256_LEN + 1];
    TOK_GUARD(sign_hex(secret, tok_slice_of(ts, (size_t)n), body, hex));
    uint32_t mark = out->len;
    tok_status st = tok_buf_printf(out, "t=%s,v1=%s", ts, hex);
    if (st != TOK_OK)
        out->len = mark;
    return st;
}

/* ---- Adyen ------------------------------------------------------------------------ */

tok_status tok_webhook_adyen_payload(const struct tok_adyen_item *it, struct tok_buf *out)
{
    TOK_ENSURE(it != NULL && out != NULL, TOK_ERR_INTERNAL);
    const struct tok_slice f[8] = {it->psp_reference, it->original_reference, it->merchant_account,
                                   it->merchant_reference, it->value, it->currency,
                                   it->event_code, it->success};
    uint32_t mark = out->len;
    tok_status st = TOK_OK;
    for (size_t i = 0; i < 8 && st == TOK_OK; i++) {
        if (i > 0)
            st = tok_buf_putc(out, ':');
        if (st == TOK_OK && f[i].len > 0)
            st = tok_buf_write(out, f[i].ptr, f[i].len);
    }
    if (st != TOK_OK)
        out->len = mark;
    return st;
}

tok_status tok_webhook_adyen_verify(const struct tok_adyen_item *it, struct tok_slice hex_key,
                                    bool *ok)
{
    TOK_ENSURE(it != NULL && ok != NULL, TOK_ERR_INTERNAL);
    *ok = false;
    TOK_ENSURE(hex_key.len > 0 && hex_key.len <= 2 * TOK_HMAC_KEY_MAX, TOK_ERR_INPUT);
    struct tok_buf key = {0}, msg = {0};
    uint8_t sig[64];
    struct tok_buf sigb;
    tok_buf_init(&sigb, sig, sizeof sig);
    TOK_GUARD(tok_buf_alloc(&key, (uint32_t)(hex_key.len / 2 + 1), true));
    tok_status st = tok_hex_decode(hex_key, &key);
    if (st == TOK_OK)
        st = tok_buf_alloc(&msg, 4096, false);
    if (st == TOK_OK)
        st = tok_webhook_adyen_payload(it, &msg);
    if (st == TOK_OK && it->hmac_signature.len > 0 && it->hmac_signature.len <= 64 &&
        tok_base64_decode(it->hmac_signature, &sigb) == TOK_OK) {
        tok_status v = tok_hmac_sha256_verify(tok_buf_slice(&key), tok_buf_slice(&msg),
                                              tok_buf_slice(&sigb));
        *ok = v == TOK_OK;
        if (v != TOK_OK && v != TOK_ERR_CRYPTO)
            st = v;
    } else if (st == TOK_ERR_BOUNDS) {
        st = TOK_OK; /* a signing string beyond any real item: not verified */
    }
    tok_buf_wipe(&key);
    tok_buf_wipe(&msg);
    return st;
}

/* ---- parsers ---------------------------------------------------------------------- */

/* Gateway events are larger and wider than API requests (a Stripe charge object has
 * about 60 members), but still bounded. */
static struct tok_json_limits event_limits(void)
{
    struct tok_json_limits lim = tok_json_limits_default();
    lim.max_body = TOK_WEBHOOK_BODY_MAX;
    lim.max_nodes = 8192;
    lim.max_members = 256;
    lim.max_depth = 32;
    lim.max_string_len = 16384;
    return lim;
}

static bool copy_str(const struct tok_json_node *n, char *dst, size_t cap)
{
    struct tok_slice s;
    if (n == NULL || tok_json_string(n, &s) != TOK_OK || s.len == 0 || s.len >= cap)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] < 0x20 || s.ptr[i] == 0x7f)
            return false;
    tok_copy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    return true;
}

static int64_t int_or(const struct tok_json_node *n, int64_t dflt)
{
    int64_t v = 0;
    if (n == NULL || tok_json_int64(n, &v) != TOK_OK || v < 0)
        return dflt;
    return v;
}

struct type_map {
    const char *type;
    enum tok_gw_action action;
};

static const struct type_map stripe_types[] = {
    {"payment_intent.amount_capturable_updated", TOK_GWA_REQUIRES_CAPTURE},
    {"payment_intent.succeeded", TOK_GWA_SUCCEEDED},
    {"payment_intent.payment_failed", TOK_GWA_FAILED},
    {"payment_intent.canceled", TOK_GWA_CANCELED},
    {"charge.succeeded", TOK_GWA_SUCCEEDED}, /* captured=false: requires_capture, below */
    {"charge.captured", TOK_GWA_SUCCEEDED},
    {"charge.failed", TOK_GWA_FAILED},
    {"charge.refunded", TOK_GWA_REFUND_TOTAL},
    {"charge.dispute.created", TOK_GWA_DISPUTED},
    /* a refund that failed after it was reported succeeded (docs.stripe.com/refunds#failed-
     * refunds): charge.refund.updated with the Refund's status failed (other updates are
     * ignored, below), and the newer refund.failed */
    {"charge.refund.updated", TOK_GWA_REFUND_FAILED},
    {"refund.failed", TOK_GWA_REFUND_FAILED},
    /* the card updater; a PaymentMethod update through the API carries the card too */
    {"payment_method.automatically_updated", TOK_GWA_CARD_UPDATED},
    {"payment_method.updated", TOK_GWA_CARD_UPDATED},
};

static const struct type_map sandbox_types[] = {
    {"charge.requires_capture", TOK_GWA_REQUIRES_CAPTURE},
    {"charge.succeeded", TOK_GWA_SUCCEEDED},
    {"charge.refunded", TOK_GWA_REFUND_TOTAL},
    {"charge.disputed", TOK_GWA_DISPUTED},
    {"charge.failed", TOK_GWA_FAILED},
    {"charge.canceled", TOK_GWA_CANCELED},
    {"payment_method.updated", TOK_GWA_CARD_UPDATED},
};

static int small_int_or(const struct tok_json_node *n)
{
    int64_t v = int_or(n, -1);
    return v > 9999 ? -1 : (int)v;
}

/* Keeps only what passes its shape: 4 ASCII digits, a brand name tokend uses. */
static void card_update_of(const struct tok_json_node *card, struct tok_card_update *u)
{
    u->exp_month = small_int_or(tok_json_get(card, "exp_month"));
    u->exp_year = small_int_or(tok_json_get(card, "exp_year"));
    struct tok_slice s;
    const struct tok_json_node *l4 = tok_json_get(card, "last4");
    if (l4 != NULL && tok_json_string(l4, &s) == TOK_OK && s.len == 4) {
        bool digits = true;
        for (size_t i = 0; i < 4; i++)
            digits = digits && s.ptr[i] >= '0' && s.ptr[i] <= '9';
        if (digits) {
            tok_copy(u->last4, s.ptr, 4);
            u->last4[4] = '\0';
        }
    }
    const struct tok_json_node *b = tok_json_get(card, "brand");
    if (b == NULL || tok_json_string(b, &s) != TOK_OK)
        return;
    for (int i = TOK_BRAND_UNKNOWN + 1; i < TOK_BRAND_COUNT; i++) {
        const char *name = tok_card_brand_name((enum tok_card_brand)i);
        if (tok_slice_eq(s, name) && strlen(name) < sizeof u->brand) {
            tok_copy(u->brand, name, strlen(name) + 1);
            return;
        }
    }
}

bool tok_webhook_card_update_ok(const struct tok_card_update *u, int now_month, int now_year)
{
    const char *code = NULL;
    return u != NULL && u->exp_year >= 1000 && u->last4[0] != '\0' &&
           tok_card_expiry_check(u->exp_month, u->exp_year, now_month, now_year, &code) == TOK_OK;
}

tok_status tok_webhook_parse_stripe(struct tok_slice body, bool sandbox, struct tok_gw_event *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    memset(out, 0, sizeof *out);
    out->amount_captured = -1;
    out->amount_refunded = -1;
    struct tok_json_doc *doc = NULL;
    struct tok_json_limits lim = event_limits();
    TOK_ENSURE(tok_json_parse(body, &lim, &doc, NULL) == TOK_OK, TOK_ERR_INPUT);
    const struct tok_json_node *root = tok_json_root(doc);
    const struct tok_json_node *obj = tok_json_get(tok_json_get(root, "data"), "object");
    tok_status st = TOK_ERR_INPUT;
    if (!copy_str(tok_json_get(root, "id"), out->id, sizeof out->id) ||
        !copy_str(tok_json_get(root, "type"), out->type, sizeof out->type) ||
        tok_json_type(obj) != TOK_JSON_OBJECT)
        goto done;
    const struct type_map *map = sandbox ? sandbox_types : stripe_types;
    size_t nmap = sandbox ? TOK_ARRAY_LEN(sandbox_types) : TOK_ARRAY_LEN(stripe_types);
    out->action = TOK_GWA_IGNORE;
    for (size_t i = 0; i < nmap; i++)
        if (strcmp(out->type, map[i].type) == 0)
            out->action = map[i].action;
    bool ref_ok;
    if (out->action == TOK_GWA_CARD_UPDATED) {
        card_update_of(sandbox ? obj : tok_json_get(obj, "card"), &out->card);
        ref_ok = copy_str(tok_json_get(obj, sandbox ? "gateway_reference" : "id"), out->ref,
                          sizeof out->ref);
    } else if (sandbox) {
        ref_ok = copy_str(tok_json_get(obj, "gateway_reference"), out->ref, sizeof out->ref);
    } else if (strncmp(out->type, "charge.dispute.", 15) == 0) {
        ref_ok = copy_str(tok_json_get(obj, "payment_intent"), out->ref, sizeof out->ref) ||
                 copy_str(tok_json_get(obj, "charge"), out->ref, sizeof out->ref);
    } else if (out->action == TOK_GWA_REFUND_FAILED) {
        /* data.object is the Refund: its PaymentIntent names the charge, its id the refund */
        struct tok_slice status = {0};
        const struct tok_json_node *sn = tok_json_get(obj, "status");
        if (sn == NULL || tok_json_string(sn, &status) != TOK_OK || !tok_slice_eq(status, "failed"))
            out->action = TOK_GWA_IGNORE;
        ref_ok = (copy_str(tok_json_get(obj, "payment_intent"), out->ref, sizeof out->ref) ||
                  copy_str(tok_json_get(obj, "charge"), out->ref, sizeof out->ref)) &&
                 copy_str(tok_json_get(obj, "id"), out->refund_ref, sizeof out->refund_ref);
        if (!copy_str(tok_json_get(obj, "failure_reason"), out->failure, sizeof out->failure))
            out->failure[0] = '\0';
        out->amount_refunded = int_or(tok_json_get(obj, "amount"), -1);
    } else {
        ref_ok = copy_str(tok_json_get(obj, "payment_intent"), out->ref, sizeof out->ref) ||
                 copy_str(tok_json_get(obj, "id"), out->ref, sizeof out->ref);
    }
    if (!ref_ok && out->action != TOK_GWA_IGNORE)
        goto done;
    st = TOK_OK;
    if (out->action == TOK_GWA_CARD_UPDATED)
        goto done; /* no amounts */
    if (out->action == TOK_GWA_REFUND_FAILED || strcmp(out->type, "charge.refund.updated") == 0 ||
        strcmp(out->type, "refund.failed") == 0) {
        /* amount_refunded: the refund's amount, read above */
    } else if (sandbox) {
        out->amount_captured = int_or(tok_json_get(obj, "amount_captured"), -1);
        out->amount_refunded = int_or(tok_json_get(obj, "amount_refunded"), -1);
    } else if (strncmp(out->type, "payment_intent.", 15) == 0) {
        out->amount_captured = int_or(tok_json_get(obj, "amount_received"), -1);
    } else if (strncmp(out->type, "charge.dispute.", 15) != 0) {
        out->amount_captured = int_or(tok_json_get(obj, "amount_captured"), -1);
        out->amount_refunded = int_or(tok_json_get(obj, "amount_refunded"), -1);
        bool captured = true;
        const struct tok_json_node *c = tok_json_get(obj, "captured");
        if (c != NULL && tok_json_bool(c, &captured) == TOK_OK && !captured &&
            out->action == TOK_GWA_SUCCEEDED)
            out->action = TOK_GWA_REQUIRES_CAPTURE;
    }
done:
    tok_json_doc_free(&doc);
    return st;
}

static struct tok_slice str_or_empty(const struct tok_json_node *n)
{
    struct tok_slice s = {(const uint8_t *)"", 0};
    if (n != NULL && tok_json_string(n, &s) != TOK_OK)
        s = tok_slice_of("", 0);
    return s;
}

static tok_status adyen_item(const struct tok_json_node *item, struct tok_gw_event *out)
{
    memset(out, 0, sizeof *out);
    out->amount_captured = -1;
    out->amount_refunded = -1;
    struct tok_adyen_item *a = &out->adyen;
    a->psp_reference = str_or_empty(tok_json_get(item, "pspReference"));
    a->original_reference = str_or_empty(tok_json_get(item, "originalReference"));
    a->merchant_account = str_or_empty(tok_json_get(item, "merchantAccountCode"));
    a->merchant_reference = str_or_empty(tok_json_get(item, "merchantReference"));
    a->event_code = str_or_empty(tok_json_get(item, "eventCode"));
    const struct tok_json_node *amount = tok_json_get(item, "amount");
    a->currency = str_or_empty(tok_json_get(amount, "currency"));
    const struct tok_json_node *value = tok_json_get(amount, "value");
    a->value = tok_slice_of("", 0);
    if (value != NULL && tok_json_number_text(value, &a->value) != TOK_OK)
        a->value = tok_slice_of("", 0);
    /* Adyen sends success as the string "true"/"false"; a JSON boolean signs the same text */
    const struct tok_json_node *succ = tok_json_get(item, "success");
    bool b = false;
    if (tok_json_type(succ) == TOK_JSON_BOOL && tok_json_bool(succ, &b) == TOK_OK)
        a->success = tok_slice_str(b ? "true" : "false");
    else
        a->success = str_or_empty(succ);
    a->hmac_signature = str_or_empty(tok_json_get(tok_json_get(item, "additionalData"), "hmacSignature"));
    TOK_ENSURE(a->psp_reference.len > 0 && a->event_code.len > 0, TOK_ERR_INPUT);
    TOK_ENSURE(a->event_code.len <= TOK_WEBHOOK_TYPE_MAX, TOK_ERR_INPUT);
    TOK_ENSURE(a->psp_reference.len + a->event_code.len + a->success.len + 3 < sizeof out->id,
               TOK_ERR_INPUT);
    TOK_ENSURE(a->original_reference.len < sizeof out->ref, TOK_ERR_INPUT);
    struct tok_buf b_id, b_type;
    tok_buf_init(&b_id, out->id, sizeof out->id);
    tok_buf_init(&b_type, out->type, sizeof out->type);
    /* Adyen identifies a notification by eventCode and pspReference (and its outcome) */
    TOK_GUARD(tok_buf_write(&b_id, a->event_code.ptr, a->event_code.len));
    TOK_GUARD(tok_buf_putc(&b_id, ':'));
    TOK_GUARD(tok_buf_write(&b_id, a->psp_reference.ptr, a->psp_reference.len));
    TOK_GUARD(tok_buf_putc(&b_id, ':'));
    TOK_GUARD(tok_buf_write(&b_id, a->success.ptr, a->success.len));
    const char *unused = NULL;
    TOK_GUARD(tok_buf_cstr(&b_id, &unused));
    TOK_GUARD(tok_buf_write(&b_type, a->event_code.ptr, a->event_code.len));
    TOK_GUARD(tok_buf_cstr(&b_type, &unused));
    bool ok = tok_slice_eq(a->success, "true");
    int64_t v = -1;
    if (value != NULL && tok_json_int64(value, &v) != TOK_OK)
        v = -1;
    /* payments are named by pspReference, modifications by originalReference */
    struct tok_slice ref = a->original_reference.len > 0 ? a->original_reference : a->psp_reference;
    const char *ec = out->type;
    out->action = TOK_GWA_IGNORE;
    if (strcmp(ec, "AUTHORISATION") == 0) {
        ref = a->psp_reference;
        out->action = ok ? TOK_GWA_AUTHORISED : TOK_GWA_FAILED;
    } else if (strcmp(ec, "CAPTURE") == 0 && ok) {
        out->action = TOK_GWA_SUCCEEDED;
        out->amount_captured = v;
    } else if (strcmp(ec, "CANCELLATION") == 0 && ok) {
        out->action = TOK_GWA_CANCELED;
    } else if (strcmp(ec, "REFUND") == 0 && ok) {
        out->action = TOK_GWA_REFUND_DELTA;
        out->amount_refunded = v;
        TOK_ENSURE(a->psp_reference.len < sizeof out->refund_ref, TOK_ERR_INPUT);
        tok_copy(out->refund_ref, a->psp_reference.ptr, a->psp_reference.len);
        out->refund_ref[a->psp_reference.len] = '\0';
    } else if (strcmp(ec, "CHARGEBACK") == 0 || strcmp(ec, "NOTIFICATION_OF_CHARGEBACK") == 0) {
        out->action = TOK_GWA_DISPUTED;
    } else if (strcmp(ec, "REFUND_FAILED") == 0) {
        /* docs.adyen.com/online-payments/refund#refund-failed: the refund (pspReference) of
         * the payment (originalReference) failed after its REFUND success=true */
        out->action = TOK_GWA_REFUND_FAILED;
        out->amount_refunded = v;
        TOK_ENSURE(a->psp_reference.len < sizeof out->refund_ref, TOK_ERR_INPUT);
        tok_copy(out->refund_ref, a->psp_reference.ptr, a->psp_reference.len);
        out->refund_ref[a->psp_reference.len] = '\0';
        snprintf(out->failure, sizeof out->failure, "refund_failed");
    }
    tok_copy(out->ref, ref.ptr, ref.len);
    out->ref[ref.len] = '\0';
    return TOK_OK;
}

tok_status tok_webhook_parse_adyen(struct tok_slice body, struct tok_json_doc **doc,
                                   struct tok_gw_event *out, size_t max, size_t *n)
{
    TOK_ENSURE(doc != NULL && out != NULL && n != NULL, TOK_ERR_INTERNAL);
    *n = 0;
    *doc = NULL;
    struct tok_json_limits lim = event_limits();
    TOK_ENSURE(tok_json_parse(body, &lim, doc, NULL) == TOK_OK, TOK_ERR_INPUT);
    const struct tok_json_node *items = tok_json_get(tok_json_root(*doc), "notificationItems");
    TOK_ENSURE(tok_json_type(items) == TOK_JSON_ARRAY, TOK_ERR_INPUT);
    size_t count = tok_json_array_size(items);
    TOK_ENSURE(count > 0, TOK_ERR_INPUT);
    TOK_ENSURE(count <= max, TOK_ERR_BOUNDS);
    for (size_t i = 0; i < count; i++) {
        const struct tok_json_node *el = NULL;
        TOK_GUARD(tok_json_array_at(items, i, &el));
        const struct tok_json_node *item = tok_json_get(el, "NotificationRequestItem");
        TOK_ENSURE(tok_json_type(item) == TOK_JSON_OBJECT, TOK_ERR_INPUT);
        TOK_GUARD(adyen_item(item, &out[i]));
    }
    *n = count;
    return TOK_OK;
}

/* ---- the state machine's decision ------------------------------------------------------ */

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void tok_webhook_decide(const struct tok_charge_view *c, const struct tok_gw_event *e,
                        struct tok_charge_change *out)
{
    out->apply = false;
    out->to = c->state;
    out->captured = c->captured;
    out->refunded = c->refunded;
    int64_t captured = c->captured;
    switch (e->action) {
    case TOK_GWA_AUTHORISED:
        out->to = c->manual_capture ? TOK_CH_REQUIRES_CAPTURE : TOK_CH_SUCCEEDED;
        if (!c->manual_capture && captured == 0)
            captured = c->amount;
        break;
    case TOK_GWA_REQUIRES_CAPTURE:
        out->to = TOK_CH_REQUIRES_CAPTURE;
        break;
    case TOK_GWA_SUCCEEDED:
        out->to = TOK_CH_SUCCEEDED;
        if (e->amount_captured > captured)
            captured = e->amount_captured;
        else if (captured == 0)
            captured = c->amount;
        break;
    case TOK_GWA_REFUND_TOTAL:
    case TOK_GWA_REFUND_DELTA: {
        if (e->amount_captured > captured)
            captured = e->amount_captured;
        if (captured == 0)
            captured = c->amount; /* a refund proves a capture the ledger has not seen yet */
        captured = clamp(captured, 0, c->amount);
        int64_t refunded = c->refunded;
        if (e->action == TOK_GWA_REFUND_TOTAL && e->amount_refunded > refunded)
            refunded = e->amount_refunded;
        if (e->action == TOK_GWA_REFUND_DELTA && !c->refund_known && e->amount_refunded > 0)
            refunded = c->refunded + e->amount_refunded;
        refunded = clamp(refunded, 0, captured);
        if (refunded == 0)
            return;
        out->to = refunded >= captured ? TOK_CH_REFUNDED : TOK_CH_PARTIALLY_REFUNDED;
        bool more = refunded > c->refunded;
        bool ok = tok_charge_transition_ok(c->state, out->to) ||
                  (c->state == TOK_CH_PARTIALLY_REFUNDED && out->to == TOK_CH_PARTIALLY_REFUNDED && more);
        if (!ok) {
            out->to = c->state;
            return;
        }
        out->apply = true;
        out->captured = captured > c->captured ? captured : c->captured;
        out->refunded = refunded > c->refunded ? refunded : c->refunded;
        return;
    }
    case TOK_GWA_DISPUTED:
        out->to = TOK_CH_DISPUTED;
        break;
    case TOK_GWA_FAILED:
        out->to = TOK_CH_FAILED;
        break;
    case TOK_GWA_CANCELED:
        out->to = TOK_CH_CANCELED;
        break;
    case TOK_GWA_IGNORE:
    default:
        return;
    }
    if (!tok_charge_transition_ok(c->state, out->to)) {
        out->to = c->state;
        return;
    }
    out->apply = true;
    captured = clamp(captured, 0, c->amount);
    out->captured = captured > c->captured ? captured : c->captured;
}

/* ---- endpoint URLs ------------------------------------------------------------------- */

static bool has_prefix(struct tok_slice s, const char *p, size_t *n)
{
    *n = strlen(p);
    return s.len >= *n && strncasecmp((const char *)s.ptr, p, *n) == 0;
}

tok_status tok_webhook_url_check(struct tok_slice url, bool allow_http_loopback)
{
    TOK_ENSURE(url.ptr != NULL && url.len > 0 && url.len <= TOK_WEBHOOK_URL_MAX, TOK_ERR_INPUT);
    for (size_t i = 0; i < url.len; i++) {
        uint8_t c = url.ptr[i];
        if (c <= 0x20 || c >= 0x7f || c == '@' || c == '#' || c == '\\')
            return TOK_ERR_INPUT;
    }
    size_t n = 0;
    struct tok_slice host;
    if (has_prefix(url, "https://", &n)) {
        host = tok_slice_of(url.ptr + n, url.len - n);
    } else if (allow_http_loopback && has_prefix(url, "http://", &n)) {
        host = tok_slice_of(url.ptr + n, url.len - n);
        static const char *const loop[] = {"127.0.0.1", "localhost", "[::1]"};
        bool ok = false;
        for (size_t i = 0; i < TOK_ARRAY_LEN(loop) && !ok; i++) {
            size_t ln = strlen(loop[i]);
            ok = host.len >= ln && strncasecmp((const char *)host.ptr, loop[i], ln) == 0 &&
                 (host.len == ln || host.ptr[ln] == ':' || host.ptr[ln] == '/');
        }
        TOK_ENSURE(ok, TOK_ERR_INPUT);
    } else {
        return TOK_ERR_INPUT;
    }
    /* a non-empty host before the port or path */
    size_t h = 0;
    while (h < host.len && host.ptr[h] != '/' && host.ptr[h] != ':' && host.ptr[h] != '?')
        h++;
    TOK_ENSURE(h > 0, TOK_ERR_INPUT);
    return TOK_OK;
}
