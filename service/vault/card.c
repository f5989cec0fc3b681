/*
 * card.c - validation of card data before it is tokenised, and the display
 * data PCI DSS lets us keep (BIN, last 4). Pure: no I/O, no allocation, no
 * clock (the caller passes the current month). The brand ranges are data, in
 * iin_table.c.
 */
#include "tokend/vault/card.h"

#include <sodium.h>

static void set_code(const char **code, const char *c)
{
    if (code != NULL)
        *code = c;
}

static tok_status reject(const char **code, const char *c)
{
    set_code(code, c);
    return TOK_ERR_INPUT;
}

static uint32_t is_digit(uint8_t c)
{
    return (uint32_t)(c >= '0') & (uint32_t)(c <= '9');
}

/* No early exit: how far a bad byte sits into a PAN should not show in timing. */
static bool all_digits(struct tok_slice s)
{
    uint32_t ok = 1;
    for (size_t i = 0; i < s.len; i++)
        ok &= is_digit(s.ptr[i]);
    return ok == 1;
}

static bool pan_shape_ok(struct tok_slice d)
{
    return d.ptr != NULL && d.len >= TOK_PAN_MIN && d.len <= TOK_PAN_MAX && all_digits(d);
}

tok_status tok_card_normalise(struct tok_slice in, struct tok_buf *out, const char **code)
{
    set_code(code, NULL);
    TOK_ENSURE(out != NULL && out->data != NULL && out->len == 0, TOK_ERR_INTERNAL);
    TOK_ENSURE(out->cap >= TOK_PAN_MAX, TOK_ERR_BOUNDS);
    /* Oversized input is refused before we look at a single byte of it. */
    if (in.ptr == NULL || in.len == 0 || in.len > TOK_PAN_INPUT_MAX)
        return reject(code, TOK_CARD_CODE_INVALID_NUMBER);

    uint32_t bad = 0;
    size_t ndigits = 0;
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        uint32_t digit = is_digit(c);
        uint32_t sep = (uint32_t)(c == ' ') | (uint32_t)(c == '-');
        bad |= (digit | sep) ^ 1u;
        if (digit == 1 && ndigits < TOK_PAN_MAX) {
            tok_status st = tok_buf_putc(out, c);
            if (st != TOK_OK) {
                tok_buf_reset(out);
                return st;
            }
        }
        ndigits += digit;
    }
    if (bad != 0 || ndigits < TOK_PAN_MIN || ndigits > TOK_PAN_MAX) {
        tok_buf_reset(out);
        return reject(code, TOK_CARD_CODE_INVALID_NUMBER);
    }
    return TOK_OK;
}

bool tok_card_luhn_ok(struct tok_slice d)
{
    if (d.ptr == NULL || d.len == 0 || d.len > TOK_PAN_MAX)
        return false;
    uint32_t sum = 0;
    uint32_t bad = 0;
    for (size_t i = 0; i < d.len; i++) {
        uint32_t v = (uint32_t)d.ptr[d.len - 1 - i] - (uint32_t)'0';
        bad |= (uint32_t)(v > 9);
        v &= 0x0f; /* keeps the arithmetic small when the byte was not a digit */
        /* Every second digit from the right is doubled; 2v > 9 means subtract 9. */
        uint32_t x = v << (i & 1);
        x -= 9u & (0u - (uint32_t)(x > 9));
        sum += x;
    }
    return bad == 0 && sum % 10 == 0;
}

/* The row with the longest prefix matching d, or NULL. */
static const struct tok_iin_range *iin_match(struct tok_slice d)
{
    uint32_t prefix[TOK_IIN_PREFIX_MAX + 1] = {0};
    size_t avail = 0;
    if (d.ptr == NULL)
        return NULL;
    while (avail < TOK_IIN_PREFIX_MAX && avail < d.len && is_digit(d.ptr[avail])) {
        prefix[avail + 1] = prefix[avail] * 10 + (uint32_t)(d.ptr[avail] - '0');
        avail++;
    }
    size_t n = 0;
    const struct tok_iin_range *table = tok_card_iin_table(&n);
    const struct tok_iin_range *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct tok_iin_range *r = &table[i];
        if (r->prefix_len == 0 || r->prefix_len > avail)
            continue;
        if (prefix[r->prefix_len] < r->low || prefix[r->prefix_len] > r->high)
            continue;
        if (best == NULL || r->prefix_len > best->prefix_len)
            best = r;
    }
    return best;
}

enum tok_card_brand tok_card_brand_of(struct tok_slice digits)
{
    const struct tok_iin_range *r = iin_match(digits);
    return r == NULL ? TOK_BRAND_UNKNOWN : r->brand;
}

bool tok_card_brand_length_ok(enum tok_card_brand brand, size_t len)
{
    if (len < TOK_PAN_MIN || len > TOK_PAN_MAX)
        return false;
    if (brand == TOK_BRAND_UNKNOWN)
        return true;
    size_t n = 0;
    const struct tok_iin_range *table = tok_card_iin_table(&n);
    for (size_t i = 0; i < n; i++) {
        if (table[i].brand == brand && (table[i].lengths & TOK_PAN_LEN_BIT(len)) != 0)
            return true;
    }
    return false;
}

tok_status tok_card_pan_check(struct tok_slice digits, enum tok_card_brand *brand,
                              const char **code)
{
    set_code(code, NULL);
    if (!pan_shape_ok(digits))
        return reject(code, TOK_CARD_CODE_INVALID_NUMBER);
    if (!tok_card_luhn_ok(digits))
        return reject(code, TOK_CARD_CODE_LUHN);
    /* The matched row, not the brand as a whole, decides the length. */
    const struct tok_iin_range *r = iin_match(digits);
    /* First digits no network issues from (0000 0000 0000 0000): not a card number. */
    if (r == NULL)
        return reject(code, TOK_CARD_CODE_INVALID_NUMBER);
    if ((r->lengths & TOK_PAN_LEN_BIT(digits.len)) == 0)
        return reject(code, TOK_CARD_CODE_LENGTH_FOR_BRAND);
    if (brand != NULL)
        *brand = r->brand;
    return TOK_OK;
}

const char *tok_card_brand_name(enum tok_card_brand brand)
{
    switch (brand) {
    case TOK_BRAND_VISA:
        return "visa";
    case TOK_BRAND_MASTERCARD:
        return "mastercard";
    case TOK_BRAND_AMEX:
        return "amex";
    case TOK_BRAND_DISCOVER:
        return "discover";
    case TOK_BRAND_JCB:
        return "jcb";
    case TOK_BRAND_DINERS:
        return "diners";
    case TOK_BRAND_UNIONPAY:
        return "unionpay";
    case TOK_BRAND_MAESTRO:
        return "maestro";
    case TOK_BRAND_MIR:
        return "mir";
    case TOK_BRAND_ELO:
        return "elo";
    case TOK_BRAND_HIPER:
        return "hiper";
    case TOK_BRAND_HIPERCARD:
        return "hipercard";
    case TOK_BRAND_TROY:
        return "troy";
    case TOK_BRAND_VERVE:
        return "verve";
    case TOK_BRAND_NARANJA:
        return "naranja";
    case TOK_BRAND_UNKNOWN:
    case TOK_BRAND_COUNT:
    default:
        return "unknown";
    }
}

tok_status tok_card_cvc_check(enum tok_card_brand brand, struct tok_slice cvc, const char **code)
{
    set_code(code, NULL);
    size_t want = brand == TOK_BRAND_AMEX ? TOK_CVC_LEN_AMEX : TOK_CVC_LEN;
    if (cvc.ptr == NULL || cvc.len != want || !all_digits(cvc))
        return reject(code, TOK_CARD_CODE_INVALID_CVC);
    return TOK_OK;
}

tok_status tok_card_expiry_check(int month, int year, int now_month, int now_year,
                                 const char **code)
{
    set_code(code, NULL);
    TOK_ENSURE(now_month >= 1 && now_month <= 12, TOK_ERR_INTERNAL);
    TOK_ENSURE(now_year >= 2000 && now_year <= 9999, TOK_ERR_INTERNAL);
    if (month < 1 || month > 12)
        return reject(code, TOK_CARD_CODE_EXPIRY_MONTH);
    /* Range-check before any arithmetic, so INT_MAX cannot overflow below. */
    if (year < 0 || (year > 99 && year < 1000) || year > 9999)
        return reject(code, TOK_CARD_CODE_EXPIRY_YEAR);
    if (year <= 99)
        year += 2000;
    /* Valid through the last day of the expiry month: only earlier months are past. */
    if (year * 12 + (month - 1) < now_year * 12 + (now_month - 1))
        return reject(code, TOK_CARD_CODE_EXPIRED);
    if (year - now_year > TOK_EXPIRY_YEARS_MAX)
        return reject(code, TOK_CARD_CODE_EXPIRY_YEAR);
    return TOK_OK;
}

/*
 * Decodes the code point at s.ptr[*pos] and advances *pos. False on any
 * ill-formed sequence, using the well-formed byte table of RFC 3629 section 4
 * (Unicode 15, table 3-7): the second byte's range excludes overlongs (E0, F0),
 * surrogates (ED) and code points above U+10FFFF (F4).
 */
static bool utf8_next(struct tok_slice s, size_t *pos, uint32_t *cp)
{
    size_t i = *pos;
    uint8_t b0 = s.ptr[i];
    if (b0 < 0x80) {
        *cp = b0;
        *pos = i + 1;
        return true;
    }
    size_t n;
    uint32_t c;
    uint8_t lo = 0x80, hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        n = 1;
        c = b0 & 0x1fu;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        n = 2;
        c = b0 & 0x0fu;
        lo = b0 == 0xe0 ? 0xa0 : lo;
        hi = b0 == 0xed ? 0x9f : hi;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        n = 3;
        c = b0 & 0x07u;
        lo = b0 == 0xf0 ? 0x90 : lo;
        hi = b0 == 0xf4 ? 0x8f : hi;
    } else {
        return false; /* 80-C1 (continuation or overlong lead) and F5-FF */
    }
    if (n > s.len - i - 1)
        return false;
    for (size_t k = 1; k <= n; k++) {
        uint8_t b = s.ptr[i + k];
        if (b < lo || b > hi)
            return false;
        lo = 0x80;
        hi = 0xbf;
        c = (c << 6) | (b & 0x3fu);
    }
    *cp = c;
    *pos = i + 1 + n;
    return true;
}

bool tok_utf8_valid(struct tok_slice s)
{
    if (s.len == 0)
        return true;
    if (s.ptr == NULL)
        return false;
    size_t pos = 0;
    uint32_t cp = 0;
    while (pos < s.len) {
        if (!utf8_next(s, &pos, &cp))
            return false;
    }
    return true;
}

static bool name_char_ok(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
        return false; /* C0, DEL, C1: newlines and escapes forge log lines */
    if (cp == 0x2028 || cp == 0x2029)
        return false; /* line and paragraph separators */
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
        return false; /* bidi embeddings, overrides and isolates reorder displayed text */
    return true;
}

tok_status tok_card_name_check(struct tok_slice name, const char **code)
{
    set_code(code, NULL);
    if (name.len > TOK_CARD_NAME_MAX || (name.ptr == NULL && name.len != 0))
        return reject(code, TOK_CARD_CODE_INVALID_NAME);
    size_t pos = 0;
    uint32_t cp = 0;
    while (pos < name.len) {
        if (!utf8_next(name, &pos, &cp) || !name_char_ok(cp))
            return reject(code, TOK_CARD_CODE_INVALID_NAME);
    }
    return TOK_OK;
}

tok_status tok_card_last4(struct tok_slice digits, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(pan_shape_ok(digits), TOK_ERR_INPUT);
    return tok_buf_write(out, digits.ptr + (digits.len - TOK_LAST4_LEN), TOK_LAST4_LEN);
}

tok_status tok_card_bin(struct tok_slice digits, size_t n, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(pan_shape_ok(digits), TOK_ERR_INPUT);
    TOK_ENSURE(n == TOK_BIN_LEN || n == TOK_BIN_LEN_LONG, TOK_ERR_INPUT);
    TOK_ENSURE(n == TOK_BIN_LEN || digits.len >= TOK_BIN_LONG_MIN_PAN, TOK_ERR_INPUT);
    return tok_buf_write(out, digits.ptr, n);
}

tok_status tok_card_pan_shaped(struct tok_slice digits, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(pan_shape_ok(digits), TOK_ERR_INPUT);
    TOK_ENSURE(digits.len <= (size_t)(out->cap - out->len), TOK_ERR_BOUNDS);

    const size_t n = digits.len;
    const size_t mid_end = n - TOK_LAST4_LEN;
    uint8_t tok[TOK_PAN_MAX];
    tok_copy(tok, digits.ptr, TOK_BIN_LEN);
    for (size_t i = TOK_BIN_LEN; i < mid_end; i++)
        tok[i] = (uint8_t)('0' + randombytes_uniform(10));
    tok_copy(tok + mid_end, digits.ptr + mid_end, TOK_LAST4_LEN);
    /*
     * Any single-digit change moves the Luhn sum mod 10 (doubling is a
     * permutation of 0-9), so bumping one middle digit always breaks it.
     */
    if (tok_card_luhn_ok(tok_slice_of(tok, n)))
        tok[TOK_BIN_LEN] = (uint8_t)('0' + (tok[TOK_BIN_LEN] - '0' + 1) % 10);
    tok_status st = tok_buf_write(out, tok, n);
    sodium_memzero(tok, sizeof tok);
    return st;
}
