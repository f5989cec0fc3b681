/*
 * check_card.c - the card module: PAN normalisation, Luhn, brand table,
 * CVC, expiry, holder name, BIN/last4 and PAN-shaped tokens.
 *
 * Apart from well-known public test cards, every PAN here is synthesised:
 * a prefix, zero padding, and a check digit computed by this file's own Luhn
 * implementation (independent of the one under test).
 */
#include "tokend/vault/card.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers -------------------------------------------------------------- */

/* Reference Luhn: the check digit that makes d[0..n-1] + digit valid. */
static char ref_check_digit(const char *d, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int v = d[n - 1 - i] - '0';
        if (i % 2 == 0) { /* doubled once the check digit is appended */
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return (char)('0' + (10 - sum % 10) % 10);
}

static bool ref_luhn(const char *d, size_t n)
{
    return n > 0 && ref_check_digit(d, n - 1) == d[n - 1];
}

/* Writes a len-digit Luhn-valid PAN starting with prefix, padded with fill. */
static void make_pan_fill(char *out, size_t cap, const char *prefix, size_t len, char fill)
{
    size_t plen = strlen(prefix);
    ck_assert_uint_lt(len, cap);
    ck_assert_uint_lt(plen, len);
    memset(out, fill, len);
    memcpy(out, prefix, plen);
    out[len - 1] = ref_check_digit(out, len - 1);
    out[len] = '\0';
}

static void make_pan(char *out, size_t cap, const char *prefix, size_t len)
{
    make_pan_fill(out, cap, prefix, len, '0');
}

static struct tok_slice S(const char *s)
{
    return tok_slice_str(s);
}

static enum tok_card_brand check_ok(const char *pan)
{
    enum tok_card_brand b = TOK_BRAND_COUNT;
    const char *code = "unset";
    ck_assert_msg(tok_card_pan_check(S(pan), &b, &code) == TOK_OK, "%s rejected: %s", pan,
                  code == NULL ? "(null)" : code);
    ck_assert_ptr_null(code);
    return b;
}

static void check_rejected(const char *pan, const char *want)
{
    enum tok_card_brand b = TOK_BRAND_COUNT;
    const char *code = NULL;
    ck_assert_int_eq(tok_card_pan_check(S(pan), &b, &code), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(code);
    ck_assert_str_eq(code, want);
    ck_assert_int_eq(b, TOK_BRAND_COUNT); /* untouched on failure */
}

/* Normalises in into a fresh 32-byte buffer; returns the status. */
static tok_status norm(struct tok_slice in, char *digits, const char **code)
{
    uint8_t mem[32] = {0};
    struct tok_buf out;
    tok_buf_init(&out, mem, sizeof mem);
    tok_status st = tok_card_normalise(in, &out, code);
    if (st == TOK_OK) {
        memcpy(digits, out.data, out.len);
        digits[out.len] = '\0';
    } else {
        ck_assert_uint_eq(out.len, 0);
        for (size_t i = 0; i < sizeof mem; i++)
            ck_assert_uint_eq(mem[i], 0); /* partial digits were wiped */
        digits[0] = '\0';
    }
    return st;
}

static void u32_to_prefix(char *out, size_t cap, uint32_t v, size_t plen)
{
    ck_assert_int_eq(snprintf(out, cap, "%0*u", (int)plen, v), (int)plen);
}

/* ---- core: Luhn and brands ------------------------------------------------ */

static const struct {
    const char *pan;
    enum tok_card_brand brand;
} public_cards[] = {
    {"4242424242424242", TOK_BRAND_VISA},       {"4000056655665556", TOK_BRAND_VISA},
    {"4012888888881881", TOK_BRAND_VISA},       {"5555555555554444", TOK_BRAND_MASTERCARD},
    {"2223003122003222", TOK_BRAND_MASTERCARD}, {"5105105105105100", TOK_BRAND_MASTERCARD},
    {"378282246310005", TOK_BRAND_AMEX},        {"371449635398431", TOK_BRAND_AMEX},
    {"6011111111111117", TOK_BRAND_DISCOVER},   {"6011000990139424", TOK_BRAND_DISCOVER},
    {"3056930009020004", TOK_BRAND_DINERS},     {"36227206271667", TOK_BRAND_DINERS},
    {"3566002020360505", TOK_BRAND_JCB},        {"6200000000000005", TOK_BRAND_UNIONPAY},
};

START_TEST(test_card_public_test_cards)
{
    for (size_t i = 0; i < TOK_ARRAY_LEN(public_cards); i++) {
        const char *pan = public_cards[i].pan;
        ck_assert_msg(tok_card_luhn_ok(S(pan)), "%s", pan);
        ck_assert_msg(check_ok(pan) == public_cards[i].brand, "%s", pan);
        ck_assert_int_eq(tok_card_brand_of(S(pan)), public_cards[i].brand);

        /* Every other last digit breaks the checksum. */
        char bad[TOK_PAN_MAX + 1];
        size_t n = strlen(pan);
        memcpy(bad, pan, n + 1);
        for (char c = '0'; c <= '9'; c++) {
            if (c == pan[n - 1])
                continue;
            bad[n - 1] = c;
            ck_assert(!tok_card_luhn_ok(S(bad)));
            check_rejected(bad, TOK_CARD_CODE_LUHN);
        }
    }
}
END_TEST

/* Luhn under test agrees with the reference on every length and many bodies. */
START_TEST(test_card_luhn_matches_reference)
{
    char pan[TOK_PAN_MAX + 1];
    size_t mismatches = 0;
    for (size_t len = 1; len <= TOK_PAN_MAX; len++) {
        for (uint32_t seed = 0; seed < 2000; seed++) {
            uint32_t x = seed * 2654435761u;
            for (size_t i = 0; i < len; i++) {
                pan[i] = (char)('0' + (x >> 7) % 10);
                x = x * 1103515245u + 12345u;
            }
            pan[len] = '\0';
            mismatches += tok_card_luhn_ok(tok_slice_of(pan, len)) != ref_luhn(pan, len);
        }
    }
    ck_assert_uint_eq(mismatches, 0);
}
END_TEST

static const struct {
    const char *prefix;
    enum tok_card_brand brand;
    size_t lens[4];
} brand_vectors[] = {
    {"4", TOK_BRAND_VISA, {13, 16, 19}},
    {"411111", TOK_BRAND_VISA, {16}},
    {"51", TOK_BRAND_MASTERCARD, {16}},
    {"55", TOK_BRAND_MASTERCARD, {16}},
    {"2221", TOK_BRAND_MASTERCARD, {16}},
    {"2720", TOK_BRAND_MASTERCARD, {16}},
    {"34", TOK_BRAND_AMEX, {15}},
    {"37", TOK_BRAND_AMEX, {15}},
    {"6011", TOK_BRAND_DISCOVER, {16, 17, 18, 19}},
    {"644", TOK_BRAND_DISCOVER, {16, 19}},
    {"649", TOK_BRAND_DISCOVER, {16}},
    {"65", TOK_BRAND_DISCOVER, {16, 19}},
    {"622126", TOK_BRAND_DISCOVER, {16}},
    {"622925", TOK_BRAND_DISCOVER, {19}},
    {"650034", TOK_BRAND_DISCOVER, {16}}, /* gap between two Elo ranges */
    {"650028", TOK_BRAND_DISCOVER, {16}}, /* after Verve, before Elo */
    {"3528", TOK_BRAND_JCB, {16, 19}},
    {"3589", TOK_BRAND_JCB, {16}},
    {"300", TOK_BRAND_DINERS, {14, 16}},
    {"305", TOK_BRAND_DINERS, {14}},
    {"3095", TOK_BRAND_DINERS, {14}},
    {"36", TOK_BRAND_DINERS, {14, 19}},
    {"38", TOK_BRAND_DINERS, {14}},
    {"39", TOK_BRAND_DINERS, {16}},
    {"384120", TOK_BRAND_DINERS, {14}}, /* next to Hipercard 384100/384140 */
    {"62", TOK_BRAND_UNIONPAY, {16, 17, 18, 19}},
    {"622125", TOK_BRAND_UNIONPAY, {16}}, /* just below Discover's 622126 */
    {"622926", TOK_BRAND_UNIONPAY, {16}},
    {"623", TOK_BRAND_UNIONPAY, {14, 15}},
    {"810", TOK_BRAND_UNIONPAY, {16}},
    {"8171", TOK_BRAND_UNIONPAY, {19}},
    {"5018", TOK_BRAND_MAESTRO, {12, 19}},
    {"5020", TOK_BRAND_MAESTRO, {13}},
    {"5038", TOK_BRAND_MAESTRO, {15}},
    {"5893", TOK_BRAND_MAESTRO, {16}},
    {"6304", TOK_BRAND_MAESTRO, {18}},
    {"6759", TOK_BRAND_MAESTRO, {12}},
    {"6761", TOK_BRAND_MAESTRO, {16}},
    {"6763", TOK_BRAND_MAESTRO, {19}},
    {"675964", TOK_BRAND_MAESTRO, {16}}, /* issue #16: was reported unknown */
    {"493698", TOK_BRAND_MAESTRO, {16}}, /* inside Visa 4 */
    {"56", TOK_BRAND_MAESTRO, {16}},
    {"63", TOK_BRAND_MAESTRO, {16}},
    {"60", TOK_BRAND_MAESTRO, {16}},
    {"2131", TOK_BRAND_JCB, {15, 16}}, /* the old 15-digit JCB ranges */
    {"1800", TOK_BRAND_JCB, {15, 19}},
    {"2200", TOK_BRAND_MIR, {16, 19}},
    {"2204", TOK_BRAND_MIR, {17}},
    {"401178", TOK_BRAND_ELO, {16}}, /* inside Visa 4 */
    {"457632", TOK_BRAND_ELO, {16}},
    {"504175", TOK_BRAND_ELO, {16}},
    {"506699", TOK_BRAND_ELO, {16}},
    {"509999", TOK_BRAND_ELO, {16}},
    {"627780", TOK_BRAND_ELO, {16}}, /* inside UnionPay 62 */
    {"650031", TOK_BRAND_ELO, {16}}, /* inside Discover 65 */
    {"655058", TOK_BRAND_ELO, {16}},
    {"637095", TOK_BRAND_HIPER, {16}},
    {"637612", TOK_BRAND_HIPER, {16}},
    {"63737423", TOK_BRAND_HIPER, {16}}, /* the 8-digit BINs, inside Maestro 6 */
    {"63743358", TOK_BRAND_HIPER, {16}},
    {"63737424", TOK_BRAND_MAESTRO, {16}},
    {"589562", TOK_BRAND_NARANJA, {16}}, /* inside Maestro 58 */
    {"402918", TOK_BRAND_NARANJA, {16}}, /* inside Visa 4 */
    {"527572", TOK_BRAND_NARANJA, {16}}, /* inside Mastercard 52 */
    {"606282", TOK_BRAND_HIPERCARD, {16, 19}},
    {"384100", TOK_BRAND_HIPERCARD, {16}}, /* inside Diners 38 */
    {"384160", TOK_BRAND_HIPERCARD, {19}},
    {"979200", TOK_BRAND_TROY, {16}},
    {"979289", TOK_BRAND_TROY, {16}},
    {"979290", TOK_BRAND_TROY, {16}},
    {"650052", TOK_BRAND_TROY, {16}}, /* issue #16: was reported Discover */
    {"650923", TOK_BRAND_TROY, {16}}, /* between two Elo ranges */
    {"658768", TOK_BRAND_TROY, {16}},
    {"65083704", TOK_BRAND_TROY, {16}},
    {"65083705", TOK_BRAND_DISCOVER, {16}},
    {"506099", TOK_BRAND_VERVE, {16, 18, 19}},
    {"507941", TOK_BRAND_VERVE, {16}},
    {"650002", TOK_BRAND_VERVE, {18}}, /* inside Discover 65 */
    {"650027", TOK_BRAND_VERVE, {19}},
};

/* First digits no network issues from: refused as "invalid_number", Luhn-valid or not. */
static const char *const unissued_prefixes[] = {
    "0", "1", "7", "9", "2220", "2721", "2205", "3527", "306", "979199", "9793", "8172", "80",
};

START_TEST(test_card_unissued_prefix_refused)
{
    char pan[TOK_PAN_MAX + 2];
    for (size_t i = 0; i < TOK_ARRAY_LEN(unissued_prefixes); i++) {
        for (size_t len = TOK_PAN_MIN; len <= TOK_PAN_MAX; len++) {
            make_pan(pan, sizeof pan, unissued_prefixes[i], len);
            ck_assert_int_eq(tok_card_brand_of(S(pan)), TOK_BRAND_UNKNOWN);
            check_rejected(pan, TOK_CARD_CODE_INVALID_NUMBER);
        }
    }
    /* All zeros is Luhn-valid but belongs to no network. */
    check_rejected("0000000000000000", TOK_CARD_CODE_INVALID_NUMBER);
}
END_TEST

START_TEST(test_card_brand_vectors)
{
    char pan[TOK_PAN_MAX + 2];
    for (size_t i = 0; i < TOK_ARRAY_LEN(brand_vectors); i++) {
        for (size_t k = 0; k < 4 && brand_vectors[i].lens[k] != 0; k++) {
            make_pan(pan, sizeof pan, brand_vectors[i].prefix, brand_vectors[i].lens[k]);
            ck_assert_msg(check_ok(pan) == brand_vectors[i].brand, "%s: got %s", pan,
                          tok_card_brand_name(tok_card_brand_of(S(pan))));
            /* The body digits after the prefix do not change the brand. */
            make_pan_fill(pan, sizeof pan, brand_vectors[i].prefix, brand_vectors[i].lens[k], '7');
            ck_assert_msg(check_ok(pan) == brand_vectors[i].brand, "%s", pan);
        }
    }
}
END_TEST

/* Every row, at both ends of its range, at every length it allows. */
START_TEST(test_card_every_table_row)
{
    size_t n = 0;
    const struct tok_iin_range *t = tok_card_iin_table(&n);
    char prefix[TOK_IIN_PREFIX_MAX + 1], pan[TOK_PAN_MAX + 2];
    ck_assert_uint_gt(n, 50);
    for (size_t i = 0; i < n; i++) {
        uint32_t ends[2] = {t[i].low, t[i].high};
        for (size_t e = 0; e < 2; e++) {
            u32_to_prefix(prefix, sizeof prefix, ends[e], t[i].prefix_len);
            for (size_t len = TOK_PAN_MIN; len <= TOK_PAN_MAX; len++) {
                make_pan(pan, sizeof pan, prefix, len);
                enum tok_card_brand b = TOK_BRAND_COUNT;
                const char *code = NULL;
                tok_status st = tok_card_pan_check(S(pan), &b, &code);
                if ((t[i].lengths & TOK_PAN_LEN_BIT(len)) != 0) {
                    ck_assert_msg(st == TOK_OK, "%s (%s)", pan, code);
                    ck_assert_msg(b == t[i].brand, "%s: %s, want %s", pan,
                                  tok_card_brand_name(b), tok_card_brand_name(t[i].brand));
                    ck_assert(tok_card_brand_length_ok(t[i].brand, len));
                } else {
                    ck_assert_int_eq(st, TOK_ERR_INPUT);
                    ck_assert_str_eq(code, TOK_CARD_CODE_LENGTH_FOR_BRAND);
                }
            }
        }
    }
}
END_TEST

static uint32_t pow10u(size_t k)
{
    uint32_t p = 1;
    while (k-- > 0)
        p *= 10;
    return p;
}

/* The table's own invariants: well-formed rows and no same-length overlap. */
START_TEST(test_card_table_is_consistent)
{
    size_t n = 0;
    const struct tok_iin_range *t = tok_card_iin_table(&n);
    uint32_t allowed = 0;
    for (size_t len = TOK_PAN_MIN; len <= TOK_PAN_MAX; len++)
        allowed |= TOK_PAN_LEN_BIT(len);
    for (size_t i = 0; i < n; i++) {
        ck_assert(t[i].brand > TOK_BRAND_UNKNOWN && t[i].brand < TOK_BRAND_COUNT);
        ck_assert(t[i].prefix_len >= 1 && t[i].prefix_len <= TOK_IIN_PREFIX_MAX);
        ck_assert_uint_le(t[i].low, t[i].high);
        ck_assert_uint_ge(t[i].low, pow10u(t[i].prefix_len - 1u));
        ck_assert_uint_lt(t[i].high, pow10u(t[i].prefix_len));
        ck_assert_uint_ne(t[i].lengths, 0);
        ck_assert_uint_eq(t[i].lengths & ~allowed, 0);
        ck_assert_ptr_nonnull(t[i].source);
        ck_assert_uint_gt(strlen(t[i].source), 0);
        for (size_t j = i + 1; j < n; j++) {
            if (t[j].prefix_len != t[i].prefix_len)
                continue;
            ck_assert_msg(t[i].high < t[j].low || t[j].high < t[i].low,
                          "rows %zu and %zu overlap", i, j);
        }
    }
    /* Every brand has at least one row. */
    for (int b = TOK_BRAND_UNKNOWN + 1; b < TOK_BRAND_COUNT; b++) {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found = found || t[i].brand == (enum tok_card_brand)b;
        ck_assert_msg(found, "brand %d has no IIN row", b);
    }
}
END_TEST

START_TEST(test_card_brand_names)
{
    static const char *const want[TOK_BRAND_COUNT] = {
        "unknown", "visa",    "mastercard", "amex", "discover", "jcb",       "diners", "unionpay",
        "maestro", "mir",     "elo",        "hiper", "hipercard", "troy",    "verve",
        "naranja",
    };
    for (int b = 0; b < TOK_BRAND_COUNT; b++)
        ck_assert_str_eq(tok_card_brand_name((enum tok_card_brand)b), want[b]);
    ck_assert_str_eq(tok_card_brand_name(TOK_BRAND_COUNT), "unknown");
    ck_assert_str_eq(tok_card_brand_name((enum tok_card_brand)1000), "unknown");
}
END_TEST

START_TEST(test_card_normalise_separators)
{
    char d[32];
    const char *code = "unset";
    ck_assert_int_eq(norm(S("4242 4242 4242 4242"), d, &code), TOK_OK);
    ck_assert_str_eq(d, "4242424242424242");
    ck_assert_ptr_null(code);
    ck_assert_int_eq(norm(S("4242-4242-4242-4242"), d, &code), TOK_OK);
    ck_assert_str_eq(d, "4242424242424242");
    ck_assert_int_eq(norm(S(" 3782-822463-10005 "), d, &code), TOK_OK);
    ck_assert_str_eq(d, "378282246310005");
    ck_assert_int_eq(norm(S("4242--4242  4242- -4242"), d, &code), TOK_OK);
    ck_assert_str_eq(d, "4242424242424242");
}
END_TEST

START_TEST(test_card_normalise_then_check)
{
    char d[32];
    enum tok_card_brand b;
    ck_assert_int_eq(norm(S("5555 5555 5555 4444"), d, NULL), TOK_OK);
    ck_assert_int_eq(tok_card_pan_check(S(d), &b, NULL), TOK_OK);
    ck_assert_int_eq(b, TOK_BRAND_MASTERCARD);
    ck_assert_int_eq(tok_card_pan_check(S(d), NULL, NULL), TOK_OK);
}
END_TEST

START_TEST(test_card_cvc)
{
    const char *code = "unset";
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, S("123"), &code), TOK_OK);
    ck_assert_ptr_null(code);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_UNKNOWN, S("000"), &code), TOK_OK);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_AMEX, S("1234"), &code), TOK_OK);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_AMEX, S("123"), &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_CVC);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, S("1234"), &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_MASTERCARD, S("12"), &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, S(""), &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, S("12a"), &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, S("1 3"), &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, tok_slice_of("1\0003", 3), &code),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, tok_slice_of(NULL, 3), &code),
                     TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_CVC);
}
END_TEST

START_TEST(test_card_expiry)
{
    const char *code = "unset";
    /* now = June 2025 */
    ck_assert_int_eq(tok_card_expiry_check(6, 2025, 6, 2025, &code), TOK_OK);
    ck_assert_ptr_null(code);
    ck_assert_int_eq(tok_card_expiry_check(7, 2025, 6, 2025, &code), TOK_OK);
    ck_assert_int_eq(tok_card_expiry_check(1, 2026, 6, 2025, &code), TOK_OK);
    ck_assert_int_eq(tok_card_expiry_check(5, 2025, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRED);
    ck_assert_int_eq(tok_card_expiry_check(12, 2024, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRED);
    /* Two-digit years are 20yy. */
    ck_assert_int_eq(tok_card_expiry_check(6, 25, 6, 2025, &code), TOK_OK);
    ck_assert_int_eq(tok_card_expiry_check(5, 25, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRED);
    ck_assert_int_eq(tok_card_expiry_check(1, 30, 6, 2025, &code), TOK_OK);
    ck_assert_int_eq(tok_card_expiry_check(6, 0, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRED);
    /* Year rollover: now = December. */
    ck_assert_int_eq(tok_card_expiry_check(12, 2025, 12, 2025, &code), TOK_OK);
    ck_assert_int_eq(tok_card_expiry_check(11, 2025, 12, 2025, &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_expiry_check(1, 2026, 12, 2025, &code), TOK_OK);
    /* now = January */
    ck_assert_int_eq(tok_card_expiry_check(12, 2024, 1, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRED);
    ck_assert_int_eq(tok_card_expiry_check(1, 2025, 1, 2025, &code), TOK_OK);
}
END_TEST

START_TEST(test_card_name_valid)
{
    const char *code = "unset";
    ck_assert_int_eq(tok_card_name_check(S("JANE Q DOE"), &code), TOK_OK);
    ck_assert_ptr_null(code);
    ck_assert_int_eq(tok_card_name_check(S("José Ñúñez-O'Brien"), &code), TOK_OK);
    ck_assert_int_eq(tok_card_name_check(S("王小明"), &code), TOK_OK);
    ck_assert_int_eq(tok_card_name_check(S("Zoë \xF0\x9F\x98\x80"), &code), TOK_OK);
    ck_assert_int_eq(tok_card_name_check(S(""), &code), TOK_OK);
    ck_assert(tok_utf8_valid(S("plain ascii")));
    ck_assert(tok_utf8_valid(tok_slice_of(NULL, 0)));
}
END_TEST

START_TEST(test_card_last4_and_bin)
{
    uint8_t mem[32];
    struct tok_buf out;
    tok_buf_init(&out, mem, sizeof mem);
    ck_assert_int_eq(tok_card_last4(S("4242424242424242"), &out), TOK_OK);
    ck_assert_uint_eq(out.len, 4);
    ck_assert_int_eq(memcmp(out.data, "4242", 4), 0);
    tok_buf_reset(&out);
    ck_assert_int_eq(tok_card_last4(S("378282246310005"), &out), TOK_OK);
    ck_assert_int_eq(memcmp(out.data, "0005", 4), 0);
    tok_buf_reset(&out);
    ck_assert_int_eq(tok_card_bin(S("5555555555554444"), 6, &out), TOK_OK);
    ck_assert_uint_eq(out.len, 6);
    ck_assert_int_eq(memcmp(out.data, "555555", 6), 0);
    tok_buf_reset(&out);
    ck_assert_int_eq(tok_card_bin(S("2223003122003222"), 8, &out), TOK_OK);
    ck_assert_uint_eq(out.len, 8);
    ck_assert_int_eq(memcmp(out.data, "22230031", 8), 0);
    /* Appends after what is there. */
    ck_assert_int_eq(tok_card_last4(S("2223003122003222"), &out), TOK_OK);
    ck_assert_uint_eq(out.len, 12);
    ck_assert_int_eq(memcmp(out.data, "222300313222", 12), 0);
}
END_TEST

/*
 * Draws `iterations` tokens for pan and checks each one. Failures are counted
 * and asserted once at the end: a Check assertion per digit would dominate
 * the run time of 100,000 tokens.
 */
static void assert_pan_shaped(const char *pan, size_t iterations)
{
    size_t n = strlen(pan);
    uint32_t seen[TOK_PAN_MAX] = {0}; /* bitmask of digits seen per position */
    size_t bad_status = 0, bad_shape = 0, luhn_valid = 0, same_as_pan = 0;
    for (size_t it = 0; it < iterations; it++) {
        uint8_t mem[TOK_PAN_MAX];
        struct tok_buf out;
        tok_buf_init(&out, mem, sizeof mem);
        if (tok_card_pan_shaped(S(pan), &out) != TOK_OK || out.len != n) {
            bad_status++;
            continue;
        }
        if (memcmp(mem, pan, 6) != 0 || memcmp(mem + n - 4, pan + n - 4, 4) != 0)
            bad_shape++;
        same_as_pan += memcmp(mem, pan, n) == 0;
        for (size_t i = 0; i < n; i++) {
            if (mem[i] < '0' || mem[i] > '9') {
                bad_shape++;
                break;
            }
            seen[i] |= 1u << (mem[i] - '0');
        }
        if (ref_luhn((const char *)mem, n) || tok_card_luhn_ok(tok_buf_slice(&out)))
            luhn_valid++;
    }
    ck_assert_msg(bad_status == 0, "%s: %zu failed calls", pan, bad_status);
    ck_assert_msg(luhn_valid == 0, "%s: %zu Luhn-valid tokens", pan, luhn_valid);
    ck_assert_msg(same_as_pan == 0, "%s: %zu tokens equal to the PAN", pan, same_as_pan);
    ck_assert_msg(bad_shape == 0, "%s: %zu tokens lost length/BIN/last4", pan, bad_shape);
    /* Middle digits are random: each takes all ten values over enough draws. */
    if (iterations >= 1000) {
        for (size_t i = 6; i < n - 4; i++)
            ck_assert_msg(seen[i] == 0x3ff, "%s: position %zu saw %03x", pan, i, seen[i]);
    }
}

/* 100,000 tokens over every PAN length, none Luhn-valid, all keep BIN/last4/length. */
START_TEST(test_card_pan_shaped_100k)
{
    static const char *const prefixes[] = {"4", "51", "2221", "34", "6011", "3528", "36",
                                           "62", "6759", "2200", "650031", "979200"};
    char pan[TOK_PAN_MAX + 2];
    size_t total = 0;
    for (size_t len = TOK_PAN_MIN; len <= TOK_PAN_MAX; len++) {
        for (size_t p = 0; p < TOK_ARRAY_LEN(prefixes); p++) {
            make_pan_fill(pan, sizeof pan, prefixes[p], len, (char)('0' + (len + p) % 10));
            assert_pan_shaped(pan, 1000);
            total += 1000;
        }
    }
    ck_assert_uint_lt(total, 100000);
    assert_pan_shaped("4242424242424242", 100000 - total);
}
END_TEST

/* ---- limits ---------------------------------------------------------------- */

START_TEST(test_card_pan_lengths_11_12_19_20)
{
    char pan[32], d[32];
    const char *code = NULL;

    make_pan(pan, sizeof pan, "1", 11);
    check_rejected(pan, TOK_CARD_CODE_INVALID_NUMBER);
    ck_assert_int_eq(norm(S(pan), d, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);

    make_pan(pan, sizeof pan, "50", 12);
    ck_assert_int_eq(check_ok(pan), TOK_BRAND_MAESTRO);
    ck_assert_int_eq(norm(S(pan), d, &code), TOK_OK);
    ck_assert_str_eq(d, pan);

    make_pan(pan, sizeof pan, "4", 19);
    ck_assert_int_eq(check_ok(pan), TOK_BRAND_VISA);
    ck_assert_int_eq(norm(S(pan), d, &code), TOK_OK);
    ck_assert_str_eq(d, pan);

    make_pan(pan, sizeof pan, "4", 20);
    check_rejected(pan, TOK_CARD_CODE_INVALID_NUMBER);
    ck_assert(!tok_card_luhn_ok(S(pan))); /* beyond TOK_PAN_MAX */
    ck_assert_int_eq(norm(S(pan), d, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);

    /* A brand that allows 12 digits, and one that does not. */
    make_pan(pan, sizeof pan, "6759", 12);
    ck_assert_int_eq(check_ok(pan), TOK_BRAND_MAESTRO);
    make_pan(pan, sizeof pan, "4", 12);
    check_rejected(pan, TOK_CARD_CODE_LENGTH_FOR_BRAND);
    make_pan(pan, sizeof pan, "37", 16);
    check_rejected(pan, TOK_CARD_CODE_LENGTH_FOR_BRAND);
    make_pan(pan, sizeof pan, "51", 19);
    check_rejected(pan, TOK_CARD_CODE_LENGTH_FOR_BRAND);

    ck_assert(!tok_card_brand_length_ok(TOK_BRAND_UNKNOWN, 11));
    ck_assert(tok_card_brand_length_ok(TOK_BRAND_UNKNOWN, 12));
    ck_assert(tok_card_brand_length_ok(TOK_BRAND_UNKNOWN, 19));
    ck_assert(!tok_card_brand_length_ok(TOK_BRAND_UNKNOWN, 20));
    ck_assert(!tok_card_brand_length_ok(TOK_BRAND_AMEX, 16));
    ck_assert(!tok_card_brand_length_ok(TOK_BRAND_VISA, 1000));
}
END_TEST

START_TEST(test_card_normalise_input_limit)
{
    char in[TOK_PAN_INPUT_MAX + 2], d[32];
    const char *code = NULL;
    /* 16 digits padded with spaces to exactly TOK_PAN_INPUT_MAX bytes: fine. */
    memset(in, ' ', sizeof in);
    memcpy(in, "4242424242424242", 16);
    ck_assert_int_eq(norm(tok_slice_of(in, TOK_PAN_INPUT_MAX), d, &code), TOK_OK);
    ck_assert_str_eq(d, "4242424242424242");
    /* One byte more is refused, however harmless. */
    ck_assert_int_eq(norm(tok_slice_of(in, TOK_PAN_INPUT_MAX + 1), d, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);
}
END_TEST

START_TEST(test_card_normalise_out_buffer)
{
    uint8_t mem[TOK_PAN_MAX];
    struct tok_buf out;
    const char *code = NULL;
    tok_buf_init(&out, mem, TOK_PAN_MAX - 1);
    ck_assert_int_eq(tok_card_normalise(S("4242424242424242"), &out, &code), TOK_ERR_BOUNDS);
    tok_buf_init(&out, mem, TOK_PAN_MAX);
    ck_assert_int_eq(tok_card_normalise(S("4242424242424242"), &out, &code), TOK_OK);
    ck_assert_uint_eq(out.len, 16);
    /* Not empty: refused rather than silently appended to. */
    ck_assert_int_eq(tok_card_normalise(S("4242424242424242"), &out, &code), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_card_normalise(S("4242424242424242"), NULL, &code), TOK_ERR_INTERNAL);
    /* 19 digits fill a TOK_PAN_MAX buffer exactly. */
    char pan[32];
    make_pan(pan, sizeof pan, "4", 19);
    tok_buf_init(&out, mem, TOK_PAN_MAX);
    ck_assert_int_eq(tok_card_normalise(S(pan), &out, &code), TOK_OK);
    ck_assert_uint_eq(out.len, 19);
}
END_TEST

START_TEST(test_card_expiry_limits)
{
    const char *code = NULL;
    ck_assert_int_eq(tok_card_expiry_check(0, 2030, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_MONTH);
    ck_assert_int_eq(tok_card_expiry_check(13, 2030, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_MONTH);
    ck_assert_int_eq(tok_card_expiry_check(1, 2030, 6, 2025, &code), TOK_OK);
    ck_assert_int_eq(tok_card_expiry_check(12, 2030, 6, 2025, &code), TOK_OK);
    /* 20 years ahead is the limit, by calendar year. */
    ck_assert_int_eq(tok_card_expiry_check(12, 2045, 6, 2025, &code), TOK_OK);
    ck_assert_int_eq(tok_card_expiry_check(1, 2046, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_YEAR);
    ck_assert_int_eq(tok_card_expiry_check(6, 45, 6, 2025, &code), TOK_OK);
    ck_assert_int_eq(tok_card_expiry_check(6, 46, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_YEAR);
    ck_assert_int_eq(tok_card_expiry_check(6, 99, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_YEAR);
    ck_assert_int_eq(tok_card_expiry_check(6, 99, 6, 2090, &code), TOK_OK);
    /* Neither 2 nor 4 digits. */
    ck_assert_int_eq(tok_card_expiry_check(6, 100, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_YEAR);
    ck_assert_int_eq(tok_card_expiry_check(6, 999, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_expiry_check(6, 10000, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_YEAR);
    ck_assert_int_eq(tok_card_expiry_check(6, 1999, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRED);
    /* A bad clock is our bug, not the caller's. */
    ck_assert_int_eq(tok_card_expiry_check(6, 2030, 0, 2025, &code), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_card_expiry_check(6, 2030, 13, 2025, &code), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_card_expiry_check(6, 2030, 6, 25, &code), TOK_ERR_INTERNAL);
}
END_TEST

START_TEST(test_card_name_length)
{
    char name[TOK_CARD_NAME_MAX + 8];
    const char *code = "unset";
    memset(name, 'A', sizeof name);
    ck_assert_int_eq(tok_card_name_check(tok_slice_of(name, 1), &code), TOK_OK);
    ck_assert_int_eq(tok_card_name_check(tok_slice_of(name, TOK_CARD_NAME_MAX), &code), TOK_OK);
    ck_assert_int_eq(tok_card_name_check(tok_slice_of(name, TOK_CARD_NAME_MAX + 1), &code),
                     TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NAME);
    /* 100 bytes ending in a 4-byte character; 101 bytes of valid UTF-8 are refused. */
    memcpy(name + TOK_CARD_NAME_MAX - 4, "\xF0\x9F\x98\x80", 4);
    ck_assert_int_eq(tok_card_name_check(tok_slice_of(name, TOK_CARD_NAME_MAX), &code), TOK_OK);
    memset(name, 'A', sizeof name);
    memcpy(name + TOK_CARD_NAME_MAX - 1, "\xC3\xA9", 2); /* é straddles the limit */
    ck_assert(tok_utf8_valid(tok_slice_of(name, TOK_CARD_NAME_MAX + 1)));
    ck_assert_int_eq(tok_card_name_check(tok_slice_of(name, TOK_CARD_NAME_MAX + 1), &code),
                     TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_card_utf8_boundaries)
{
    /* Smallest and largest code point of each sequence length. */
    ck_assert(tok_utf8_valid(tok_slice_of("\x00", 1)));
    ck_assert(tok_utf8_valid(S("\x7F")));
    ck_assert(tok_utf8_valid(S("\xC2\x80")));
    ck_assert(tok_utf8_valid(S("\xDF\xBF")));
    ck_assert(tok_utf8_valid(S("\xE0\xA0\x80")));
    ck_assert(tok_utf8_valid(S("\xED\x9F\xBF"))); /* U+D7FF, last before surrogates */
    ck_assert(tok_utf8_valid(S("\xEE\x80\x80"))); /* U+E000, first after */
    ck_assert(tok_utf8_valid(S("\xEF\xBF\xBF")));
    ck_assert(tok_utf8_valid(S("\xF0\x90\x80\x80")));
    ck_assert(tok_utf8_valid(S("\xF4\x8F\xBF\xBF"))); /* U+10FFFF */
    const char *code = NULL;
    ck_assert_int_eq(tok_card_name_check(S("A\xF4\x8F\xBF\xBF"), &code), TOK_OK);
}
END_TEST

START_TEST(test_card_last4_bin_limits)
{
    uint8_t mem[8];
    struct tok_buf out;
    char pan[32];
    tok_buf_init(&out, mem, 3);
    ck_assert_int_eq(tok_card_last4(S("4242424242424242"), &out), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(out.len, 0);
    tok_buf_init(&out, mem, 5);
    ck_assert_int_eq(tok_card_bin(S("4242424242424242"), 6, &out), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(out.len, 0);
    tok_buf_init(&out, mem, sizeof mem);
    /* PCI: 8-digit BIN only for 16+ digit PANs. */
    ck_assert_int_eq(tok_card_bin(S("378282246310005"), 8, &out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_bin(S("378282246310005"), 6, &out), TOK_OK);
    tok_buf_reset(&out);
    ck_assert_int_eq(tok_card_bin(S("4242424242424242"), 7, &out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_bin(S("4242424242424242"), 0, &out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_bin(S("4242424242424242"), 19, &out), TOK_ERR_INPUT);
    make_pan(pan, sizeof pan, "1", 11);
    ck_assert_int_eq(tok_card_last4(S(pan), &out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_bin(S(pan), 6, &out), TOK_ERR_INPUT);
    make_pan(pan, sizeof pan, "1", 12);
    ck_assert_int_eq(tok_card_last4(S(pan), &out), TOK_OK);
    ck_assert_int_eq(tok_card_bin(S("4242424242424242"), 6, NULL), TOK_ERR_INTERNAL);
    ck_assert_uint_eq(out.len, 4);
}
END_TEST

START_TEST(test_card_pan_shaped_limits)
{
    uint8_t mem[32];
    struct tok_buf out;
    char pan[32];
    tok_buf_init(&out, mem, sizeof mem);
    make_pan(pan, sizeof pan, "1", 11);
    ck_assert_int_eq(tok_card_pan_shaped(S(pan), &out), TOK_ERR_INPUT);
    make_pan(pan, sizeof pan, "4", 20);
    ck_assert_int_eq(tok_card_pan_shaped(S(pan), &out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_pan_shaped(S(""), &out), TOK_ERR_INPUT);
    ck_assert_uint_eq(out.len, 0);
    /* 12 digits: two random digits, still never Luhn-valid. */
    make_pan(pan, sizeof pan, "6759", 12);
    assert_pan_shaped(pan, 5000);
    make_pan(pan, sizeof pan, "4", 19);
    assert_pan_shaped(pan, 1000);
    /* Exact fit, then one byte short. */
    tok_buf_init(&out, mem, 16);
    ck_assert_int_eq(tok_card_pan_shaped(S("4242424242424242"), &out), TOK_OK);
    tok_buf_init(&out, mem, 15);
    ck_assert_int_eq(tok_card_pan_shaped(S("4242424242424242"), &out), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(tok_card_pan_shaped(S("4242424242424242"), NULL), TOK_ERR_INTERNAL);
    /* Appends after a prefix. */
    tok_buf_init(&out, mem, sizeof mem);
    ck_assert_int_eq(tok_buf_puts(&out, "tok_"), TOK_OK);
    ck_assert_int_eq(tok_card_pan_shaped(S("4242424242424242"), &out), TOK_OK);
    ck_assert_uint_eq(out.len, 20);
    ck_assert_int_eq(memcmp(mem, "tok_424242", 10), 0);
}
END_TEST

/* ---- adversarial -------------------------------------------------------------- */

START_TEST(test_card_normalise_garbage)
{
    char d[32];
    const char *code = NULL;
    static const struct {
        const char *in;
        size_t len;
    } bad[] = {
        {"", 0},
        {"    ", 4},
        {"----------------", 16},
        {"4242a24242424242", 16},
        {"4242424242424242\n", 17},
        {"4242\t4242424242424242", 21},
        {"+4242424242424242", 17},
        {"4242.4242.4242.4242", 19},
        {"4242424242424242\0" "1234", 21},          /* embedded NUL */
        {"\x00" "4242424242424242", 17},              /* leading NUL */
        {"\xEF\xBC\x94\xEF\xBC\x92\xEF\xBC\x94\xEF\xBC\x92" /* fullwidth "4242" */
         "424242424242",
         24},
        {"\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x91"
         "\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x91", /* "１"x12 */
         36},
        {"\xD9\xA4\xD9\xA2\xD9\xA4\xD9\xA2" "424242424242", 20}, /* Arabic-Indic digits */
        {"4242\xC2\xA0" "4242\xC2\xA0" "4242\xC2\xA0" "4242", 22}, /* no-break spaces */
        {"\xFF\xFE" "4242424242424242", 18},
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(bad); i++) {
        code = NULL;
        ck_assert_msg(norm(tok_slice_of(bad[i].in, bad[i].len), d, &code) == TOK_ERR_INPUT,
                      "case %zu accepted", i);
        ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);
    }
    ck_assert_int_eq(norm(tok_slice_of(NULL, 16), d, &code), TOK_ERR_INPUT);
    ck_assert_int_eq(norm(tok_slice_of(NULL, 0), d, &code), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_card_normalise_10kb)
{
    static char big[10 * 1024];
    char d[32];
    const char *code = NULL;
    memset(big, '4', sizeof big);
    ck_assert_int_eq(norm(tok_slice_of(big, sizeof big), d, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);
    memset(big, ' ', sizeof big);
    memcpy(big, "4242424242424242", 16);
    ck_assert_int_eq(norm(tok_slice_of(big, sizeof big), d, &code), TOK_ERR_INPUT);
    ck_assert_int_eq(norm(tok_slice_of(big, SIZE_MAX), d, &code), TOK_ERR_INPUT); /* not read */
}
END_TEST

START_TEST(test_card_check_garbage)
{
    char pan[32];
    const char *code = NULL;
    ck_assert_int_eq(tok_card_pan_check(S(""), NULL, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);
    ck_assert_int_eq(tok_card_pan_check(tok_slice_of(NULL, 16), NULL, &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_pan_check(S("4242 4242 4242 4242"), NULL, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);
    ck_assert_int_eq(tok_card_pan_check(tok_slice_of("4242424242424242\0", 17), NULL, &code),
                     TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);
    /* Bytes just outside '0'..'9' ('/' and ':') must not pass as digits 10 or -1. */
    make_pan(pan, sizeof pan, "4", 16);
    pan[8] = '/';
    ck_assert(!tok_card_luhn_ok(S(pan)));
    ck_assert_int_eq(tok_card_pan_check(S(pan), NULL, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NUMBER);
    pan[8] = ':';
    ck_assert(!tok_card_luhn_ok(S(pan)));
    ck_assert(!tok_card_luhn_ok(S("")));
    ck_assert(!tok_card_luhn_ok(tok_slice_of(NULL, 5)));
    /* Brand lookup on short or odd input never reads past the slice. */
    ck_assert_int_eq(tok_card_brand_of(S("")), TOK_BRAND_UNKNOWN);
    ck_assert_int_eq(tok_card_brand_of(tok_slice_of(NULL, 4)), TOK_BRAND_UNKNOWN);
    ck_assert_int_eq(tok_card_brand_of(S("4")), TOK_BRAND_VISA);
    ck_assert_int_eq(tok_card_brand_of(tok_slice_of("6500319", 5)), TOK_BRAND_DISCOVER);
    ck_assert_int_eq(tok_card_brand_of(S("x4242")), TOK_BRAND_UNKNOWN);
    ck_assert_int_eq(tok_card_brand_of(S("65003x")), TOK_BRAND_DISCOVER);
    /* All zeros is Luhn-valid but belongs to no brand, so it is refused. */
    check_rejected("0000000000000000", TOK_CARD_CODE_INVALID_NUMBER);
}
END_TEST

START_TEST(test_card_name_utf8_attacks)
{
    static const struct {
        const char *s;
        size_t len;
        bool utf8_ok; /* well-formed UTF-8, refused only as a name */
    } bad[] = {
        {"A\xC0\xAF", 3, false},          /* overlong '/' */
        {"A\xC1\xBF", 3, false},          /* overlong DEL */
        {"A\xE0\x80\xAF", 4, false},      /* 3-byte overlong '/' */
        {"A\xE0\x9F\xBF", 4, false},      /* 3-byte overlong U+07FF */
        {"A\xF0\x80\x80\xAF", 5, false},  /* 4-byte overlong '/' */
        {"A\xF0\x8F\xBF\xBF", 5, false},  /* 4-byte overlong U+FFFF */
        {"A\xED\xA0\x80", 4, false},      /* surrogate U+D800 */
        {"A\xED\xBF\xBF", 4, false},      /* surrogate U+DFFF */
        {"A\xF4\x90\x80\x80", 5, false},  /* U+110000 */
        {"A\xF5\x80\x80\x80", 5, false},  /* lead byte past F4 */
        {"A\xF8\x88\x80\x80\x80", 6, false}, /* 5-byte form */
        {"A\xFE", 2, false},
        {"A\xFF", 2, false},
        {"A\x80", 2, false},              /* stray continuation */
        {"A\xC3", 2, false},              /* truncated 2-byte */
        {"A\xE2\x82", 3, false},          /* truncated 3-byte */
        {"A\xF0\x9F\x98", 4, false},      /* truncated 4-byte */
        {"A\xC3\x28", 3, false},          /* bad continuation */
        {"A\xE2\x28\xA1", 4, false},
        {"A\0B", 3, true},                /* embedded NUL */
        {"A\tB", 3, true},
        {"A\nB", 3, true},
        {"A\rB", 3, true},
        {"A\x1B[31mB", 7, true},          /* ANSI escape */
        {"A\x7F", 2, true},               /* DEL */
        {"A\xC2\x85", 3, true},           /* NEL (C1) */
        {"A\xC2\x9F", 3, true},           /* last C1 */
        {"A\xE2\x80\xA8", 4, true},       /* LINE SEPARATOR */
        {"A\xE2\x80\xA9", 4, true},       /* PARAGRAPH SEPARATOR */
        {"A\xE2\x80\xAE" "EOD", 7, true}, /* RIGHT-TO-LEFT OVERRIDE */
        {"A\xE2\x81\xA6", 4, true},       /* LEFT-TO-RIGHT ISOLATE */
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(bad); i++) {
        const char *code = NULL;
        struct tok_slice s = tok_slice_of(bad[i].s, bad[i].len);
        ck_assert_msg(tok_utf8_valid(s) == bad[i].utf8_ok, "utf8 case %zu", i);
        ck_assert_msg(tok_card_name_check(s, &code) == TOK_ERR_INPUT, "name case %zu", i);
        ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_NAME);
    }
    /* Non-breaking space (U+00A0, just past C1) is an ordinary character. */
    ck_assert_int_eq(tok_card_name_check(S("A\xC2\xA0" "B"), NULL), TOK_OK);
    ck_assert_int_eq(tok_card_name_check(tok_slice_of(NULL, 3), NULL), TOK_ERR_INPUT);
    ck_assert(!tok_utf8_valid(tok_slice_of(NULL, 3)));
    /* 10 KB is refused on length alone. */
    static char big[10 * 1024];
    memset(big, 'A', sizeof big);
    ck_assert_int_eq(tok_card_name_check(tok_slice_of(big, sizeof big), NULL), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_card_expiry_extremes)
{
    const char *code = NULL;
    ck_assert_int_eq(tok_card_expiry_check(INT_MIN, 2030, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_MONTH);
    ck_assert_int_eq(tok_card_expiry_check(INT_MAX, 2030, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_MONTH);
    ck_assert_int_eq(tok_card_expiry_check(-1, 2030, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_expiry_check(6, INT_MAX, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_YEAR);
    ck_assert_int_eq(tok_card_expiry_check(6, INT_MIN, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_YEAR);
    ck_assert_int_eq(tok_card_expiry_check(6, -1, 6, 2025, &code), TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_EXPIRY_YEAR);
    ck_assert_int_eq(tok_card_expiry_check(6, 2030, INT_MAX, INT_MAX, &code), TOK_ERR_INTERNAL);
    ck_assert_int_eq(tok_card_expiry_check(6, 2030, 6, INT_MIN, &code), TOK_ERR_INTERNAL);
}
END_TEST

START_TEST(test_card_cvc_oversized)
{
    static char big[10 * 1024];
    const char *code = NULL;
    memset(big, '1', sizeof big);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, tok_slice_of(big, sizeof big), &code),
                     TOK_ERR_INPUT);
    ck_assert_str_eq(code, TOK_CARD_CODE_INVALID_CVC);
    ck_assert_int_eq(tok_card_cvc_check(TOK_BRAND_VISA, S("\xEF\xBC\x91"), &code), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_card_cvc_check((enum tok_card_brand)1000, S("123"), &code), TOK_OK);
}
END_TEST

Suite *tok_card_suite(void)
{
    Suite *s = suite_create("card");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *adversarial = tcase_create("adversarial");

    tcase_set_timeout(core, 60);
    tcase_add_test(core, test_card_public_test_cards);
    tcase_add_test(core, test_card_luhn_matches_reference);
    tcase_add_test(core, test_card_brand_vectors);
    tcase_add_test(core, test_card_unissued_prefix_refused);
    tcase_add_test(core, test_card_every_table_row);
    tcase_add_test(core, test_card_table_is_consistent);
    tcase_add_test(core, test_card_brand_names);
    tcase_add_test(core, test_card_normalise_separators);
    tcase_add_test(core, test_card_normalise_then_check);
    tcase_add_test(core, test_card_cvc);
    tcase_add_test(core, test_card_expiry);
    tcase_add_test(core, test_card_name_valid);
    tcase_add_test(core, test_card_last4_and_bin);
    tcase_add_test(core, test_card_pan_shaped_100k);

    tcase_set_timeout(limits, 30);
    tcase_add_test(limits, test_card_pan_lengths_11_12_19_20);
    tcase_add_test(limits, test_card_normalise_input_limit);
    tcase_add_test(limits, test_card_normalise_out_buffer);
    tcase_add_test(limits, test_card_expiry_limits);
    tcase_add_test(limits, test_card_name_length);
    tcase_add_test(limits, test_card_utf8_boundaries);
    tcase_add_test(limits, test_card_last4_bin_limits);
    tcase_add_test(limits, test_card_pan_shaped_limits);

    tcase_add_test(adversarial, test_card_normalise_garbage);
    tcase_add_test(adversarial, test_card_normalise_10kb);
    tcase_add_test(adversarial, test_card_check_garbage);
    tcase_add_test(adversarial, test_card_name_utf8_attacks);
    tcase_add_test(adversarial, test_card_expiry_extremes);
    tcase_add_test(adversarial, test_card_cvc_oversized);

    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adversarial);
    return s;
}
