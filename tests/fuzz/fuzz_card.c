/*
 * fuzz_card.c - card validation (service/vault/card.c): the checks every tokenise request's
 * number, CVC, expiry and holder name go through.
 *
 * The whole input is offered as each field, and its first bytes as the expiry. Properties:
 *   - tok_card_normalise keeps exactly the digits of its input, 12..19 of them, or refuses
 *     with "invalid_number" and leaves the buffer empty;
 *   - tok_card_luhn_ok agrees with a plain Luhn written here;
 *   - tok_card_pan_check's verdict follows from digits, Luhn, the IIN table row with the
 *     longest matching prefix (none: "invalid_number") and that row's lengths;
 *   - last 4, BIN and the PAN-shaped token keep to what PCI DSS allows: the token has the
 *     PAN's length, first 6 and last 4 digits, and never passes Luhn;
 *   - the two strict UTF-8 validators (card.c and json.c) agree;
 *   - every TOK_ERR_INPUT carries a code, every TOK_OK clears it.
 */
#include "fuzz.h"

#include "tokend/core/json.h"
#include "tokend/vault/card.h"

#include <sodium.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

static bool all_digits(struct tok_slice s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
    return true;
}

static bool luhn_ref(struct tok_slice d)
{
    unsigned sum = 0;
    for (size_t i = 0; i < d.len; i++) {
        unsigned v = (unsigned)(d.ptr[d.len - 1 - i] - '0');
        if (i % 2 == 1)
            v = v * 2 > 9 ? v * 2 - 9 : v * 2;
        sum += v;
    }
    return sum % 10 == 0;
}

/* The table row with the longest prefix matching d (a plain re-implementation), or NULL. */
static const struct tok_iin_range *row_ref(struct tok_slice d)
{
    size_t n = 0;
    const struct tok_iin_range *t = tok_card_iin_table(&n);
    const struct tok_iin_range *best = NULL;
    for (size_t i = 0; i < n; i++) {
        if (t[i].prefix_len > d.len)
            continue;
        unsigned long p = 0;
        for (size_t k = 0; k < t[i].prefix_len; k++)
            p = p * 10 + (unsigned long)(d.ptr[k] - '0');
        if (p >= t[i].low && p <= t[i].high && (best == NULL || t[i].prefix_len > best->prefix_len))
            best = &t[i];
    }
    return best;
}

static void check_code(tok_status st, const char *code, const char *want)
{
    if (st == TOK_OK)
        FUZZ_ASSERT(code == NULL);
    else
        FUZZ_ASSERT(st == TOK_ERR_INPUT && code != NULL && (want == NULL || strcmp(code, want) == 0));
}

static void check_pan(struct tok_slice digits)
{
    FUZZ_ASSERT(tok_card_luhn_ok(digits) ==
                (digits.len >= 1 && digits.len <= TOK_PAN_MAX && all_digits(digits) &&
                 luhn_ref(digits)));
    enum tok_card_brand brand = tok_card_brand_of(digits);
    FUZZ_ASSERT(brand >= TOK_BRAND_UNKNOWN && brand < TOK_BRAND_COUNT);
    FUZZ_ASSERT(tok_card_brand_name(brand) != NULL);

    const char *code = "unset";
    enum tok_card_brand got = TOK_BRAND_COUNT;
    tok_status st = tok_card_pan_check(digits, &got, &code);
    bool shape = digits.len >= TOK_PAN_MIN && digits.len <= TOK_PAN_MAX && all_digits(digits);
    if (!shape)
        check_code(st, code, TOK_CARD_CODE_INVALID_NUMBER);
    else if (!luhn_ref(digits))
        check_code(st, code, TOK_CARD_CODE_LUHN);
    else if (row_ref(digits) == NULL)
        check_code(st, code, TOK_CARD_CODE_INVALID_NUMBER); /* no network issues these digits */
    else if ((row_ref(digits)->lengths & TOK_PAN_LEN_BIT(digits.len)) == 0)
        check_code(st, code, TOK_CARD_CODE_LENGTH_FOR_BRAND);
    else
        FUZZ_ASSERT(st == TOK_OK && code == NULL && got == brand && brand == row_ref(digits)->brand &&
                    tok_card_brand_length_ok(brand, digits.len));

    uint8_t mem[2 * TOK_PAN_MAX];
    struct tok_buf out;
    tok_buf_init(&out, mem, sizeof mem);
    st = tok_card_last4(digits, &out);
    FUZZ_ASSERT(st == (shape ? TOK_OK : TOK_ERR_INPUT));
    if (st == TOK_OK)
        FUZZ_ASSERT(out.len == TOK_LAST4_LEN &&
                    memcmp(out.data, digits.ptr + digits.len - TOK_LAST4_LEN, TOK_LAST4_LEN) == 0);
    for (size_t n = 5; n <= 9; n++) {
        tok_buf_reset(&out);
        st = tok_card_bin(digits, n, &out);
        bool allowed = shape && (n == TOK_BIN_LEN ||
                                 (n == TOK_BIN_LEN_LONG && digits.len >= TOK_BIN_LONG_MIN_PAN));
        FUZZ_ASSERT(st == (allowed ? TOK_OK : TOK_ERR_INPUT));
        if (st == TOK_OK)
            FUZZ_ASSERT(out.len == n && memcmp(out.data, digits.ptr, n) == 0);
    }
    tok_buf_reset(&out);
    st = tok_card_pan_shaped(digits, &out);
    FUZZ_ASSERT(st == (shape ? TOK_OK : TOK_ERR_INPUT));
    if (st == TOK_OK) {
        struct tok_slice tok = tok_buf_slice(&out);
        FUZZ_ASSERT(tok.len == digits.len && all_digits(tok));
        FUZZ_ASSERT(memcmp(tok.ptr, digits.ptr, 6) == 0);
        FUZZ_ASSERT(memcmp(tok.ptr + tok.len - 4, digits.ptr + digits.len - 4, 4) == 0);
        FUZZ_ASSERT(!tok_card_luhn_ok(tok));
    }
    /* no room: nothing written */
    uint8_t small[4];
    struct tok_buf tiny;
    tok_buf_init(&tiny, small, sizeof small);
    if (shape) {
        FUZZ_ASSERT(tok_card_pan_shaped(digits, &tiny) == TOK_ERR_BOUNDS && tiny.len == 0);
        FUZZ_ASSERT(tok_card_bin(digits, TOK_BIN_LEN, &tiny) == TOK_ERR_BOUNDS && tiny.len == 0);
    }
    sodium_memzero(mem, sizeof mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_slice in = tok_slice_of(data, size);

    /* the number as sent */
    uint8_t mem[TOK_PAN_INPUT_MAX + 1];
    struct tok_buf digits;
    tok_buf_init(&digits, mem, sizeof mem);
    const char *code = "unset";
    tok_status st = tok_card_normalise(in, &digits, &code);
    size_t ndigits = 0;
    bool other = false;
    for (size_t i = 0; i < size; i++) {
        if (data[i] >= '0' && data[i] <= '9')
            ndigits++;
        else if (data[i] != ' ' && data[i] != '-')
            other = true;
    }
    bool want_ok = size <= TOK_PAN_INPUT_MAX && !other && ndigits >= TOK_PAN_MIN &&
                   ndigits <= TOK_PAN_MAX;
    if (!want_ok) {
        check_code(st, code, TOK_CARD_CODE_INVALID_NUMBER);
        FUZZ_ASSERT(digits.len == 0);
    } else {
        FUZZ_ASSERT(st == TOK_OK && code == NULL && digits.len == ndigits);
        size_t k = 0;
        for (size_t i = 0; i < size; i++)
            if (data[i] >= '0' && data[i] <= '9')
                FUZZ_ASSERT(digits.data[k++] == data[i]);
        check_pan(tok_buf_slice(&digits));
    }
    sodium_memzero(mem, sizeof mem);
    /* the raw bytes as digits (pan_check is also called on stored numbers) */
    check_pan(tok_slice_of(data, size < 2 * TOK_PAN_MAX ? size : 2 * TOK_PAN_MAX));

    /* the CVC, for each brand */
    for (int b = TOK_BRAND_UNKNOWN; b < TOK_BRAND_COUNT; b++) {
        code = "unset";
        st = tok_card_cvc_check((enum tok_card_brand)b, in, &code);
        size_t want = b == TOK_BRAND_AMEX ? TOK_CVC_LEN_AMEX : TOK_CVC_LEN;
        if (size == want && all_digits(in))
            FUZZ_ASSERT(st == TOK_OK && code == NULL);
        else
            check_code(st, code, TOK_CARD_CODE_INVALID_CVC);
    }

    /* the holder name */
    bool utf8 = tok_utf8_valid(in);
    FUZZ_ASSERT(utf8 == tok_json_utf8_valid(in, NULL));
    code = "unset";
    st = tok_card_name_check(in, &code);
    if (st == TOK_OK) {
        FUZZ_ASSERT(code == NULL && utf8 && size <= TOK_CARD_NAME_MAX);
        for (size_t i = 0; i < size; i++)
            FUZZ_ASSERT(data[i] >= 0x20 && data[i] != 0x7f);
    } else {
        check_code(st, code, TOK_CARD_CODE_INVALID_NAME);
    }

    /* the expiry, from the first bytes */
    if (size >= 4) {
        int month = (int8_t)data[0], year = (int16_t)(data[1] | data[2] << 8);
        int now_month = 1 + data[3] % 12, now_year = 2000 + (size >= 5 ? data[4] : 24);
        code = "unset";
        st = tok_card_expiry_check(month, year, now_month, now_year, &code);
        if (st == TOK_OK) {
            int y = year < 100 ? 2000 + year : year;
            FUZZ_ASSERT(code == NULL && month >= 1 && month <= 12);
            FUZZ_ASSERT(y > now_year || (y == now_year && month >= now_month));
            FUZZ_ASSERT(y <= now_year + TOK_EXPIRY_YEARS_MAX);
        } else {
            check_code(st, code, NULL);
        }
    }
    return 0;
}
