/*
 * card.h - pure validation of the card data a tokenise request carries: PAN
 * normalisation, Luhn, brand from the IIN table, CVC, expiry, holder name, and
 * the display data PCI DSS allows (BIN, last 4). No I/O, no allocation: every
 * output goes to a caller-provided tok_buf.
 *
 * Rejections carry a stable machine-readable code (the TOK_CARD_CODE_* strings
 * below) through a `const char **code` out-parameter; handlers put it in the
 * problem+json body. The code is a static string, never NULL after a
 * TOK_ERR_INPUT, and set to NULL on TOK_OK. Passing code == NULL is allowed.
 */
#ifndef TOKEND_CARD_H
#define TOKEND_CARD_H

#include "tokend/core/common.h"

/* ISO/IEC 7812: a PAN has 12..19 digits here (8..11-digit PANs are not payment cards we accept). */
#define TOK_PAN_MIN 12
#define TOK_PAN_MAX 19
/* Raw PAN input (digits plus spaces/dashes) longer than this is rejected before scanning. */
#define TOK_PAN_INPUT_MAX 64
#define TOK_CVC_LEN 3
#define TOK_CVC_LEN_AMEX 4
#define TOK_CARD_NAME_MAX 100 /* bytes of UTF-8, not characters */
#define TOK_EXPIRY_YEARS_MAX 20
#define TOK_LAST4_LEN 4
/* PCI DSS v4.0 3.4.1 / PCI SSC FAQ 1091: at most the first 6, or first 8 for PANs of 16+ digits. */
#define TOK_BIN_LEN 6
#define TOK_BIN_LEN_LONG 8
#define TOK_BIN_LONG_MIN_PAN 16
#define TOK_IIN_PREFIX_MAX 8 /* longest prefix an IIN table row may use */

/* Stable rejection codes (API contract: never rename). */
#define TOK_CARD_CODE_INVALID_NUMBER "invalid_number"
#define TOK_CARD_CODE_LUHN "luhn_check_failed"
#define TOK_CARD_CODE_LENGTH_FOR_BRAND "unsupported_length_for_brand"
#define TOK_CARD_CODE_INVALID_CVC "invalid_cvc"
#define TOK_CARD_CODE_EXPIRY_MONTH "invalid_expiry_month"
#define TOK_CARD_CODE_EXPIRED "expired_card"
#define TOK_CARD_CODE_EXPIRY_YEAR "invalid_expiry_year"
#define TOK_CARD_CODE_INVALID_NAME "invalid_name"

enum tok_card_brand {
    TOK_BRAND_UNKNOWN = 0,
    TOK_BRAND_VISA,
    TOK_BRAND_MASTERCARD,
    TOK_BRAND_AMEX,
    TOK_BRAND_DISCOVER,
    TOK_BRAND_JCB,
    TOK_BRAND_DINERS,
    TOK_BRAND_UNIONPAY,
    TOK_BRAND_MAESTRO,
    TOK_BRAND_MIR,
    TOK_BRAND_ELO,
    TOK_BRAND_HIPER,
    TOK_BRAND_HIPERCARD,
    TOK_BRAND_TROY,
    TOK_BRAND_VERVE,
    TOK_BRAND_NARANJA,
    TOK_BRAND_COUNT
};

/* Bit n set in a lengths mask = an n-digit PAN is allowed. */
#define TOK_PAN_LEN_BIT(n) (UINT32_C(1) << (n))

/**
 * One row of the IIN table: the PANs whose first `prefix_len` digits, read as
 * a decimal number, lie in [low, high] belong to `brand` and may have the
 * lengths in `lengths` (TOK_PAN_LEN_BIT mask). `source` names where the range
 * comes from (see docs/iin-ranges.md). The longest matching prefix wins.
 */
struct tok_iin_range {
    enum tok_card_brand brand;
    uint32_t low;
    uint32_t high;
    uint8_t prefix_len;
    uint32_t lengths;
    const char *source;
};

/**
 * The static IIN table (service/vault/iin_table.c). Returns its first row and stores
 * the number of rows in *n. Borrowed, read-only, lives for the whole process.
 */
const struct tok_iin_range *tok_card_iin_table(size_t *n);

/**
 * Strips spaces and dashes from a raw PAN and writes the digits to out_digits
 * (borrowed; must be empty, normally a sodium_malloc buffer of cap >= TOK_PAN_MAX).
 * Input longer than TOK_PAN_INPUT_MAX bytes is rejected without being scanned.
 * TOK_ERR_INPUT + "invalid_number": empty, oversized, any other byte than
 * '0'-'9', ' ', '-', or fewer than TOK_PAN_MIN / more than TOK_PAN_MAX digits;
 * out_digits is then wiped and left empty. TOK_ERR_BOUNDS: out_digits too small.
 * TOK_ERR_INTERNAL: NULL buffer or non-empty out_digits. Luhn is not checked here.
 */
TOK_MUST_CHECK tok_status tok_card_normalise(struct tok_slice in, struct tok_buf *out_digits,
                                             const char **code);

/**
 * True when digits (ASCII '0'-'9' only, 1..TOK_PAN_MAX of them) pass the Luhn
 * (mod 10) check. Walks every digit whatever the data; false on any non-digit.
 */
bool tok_card_luhn_ok(struct tok_slice digits);

/**
 * The brand whose IIN range has the longest prefix matching digits (borrowed),
 * or TOK_BRAND_UNKNOWN. Looks at the prefix only, not at the length.
 */
enum tok_card_brand tok_card_brand_of(struct tok_slice digits);

/** True when a PAN of len digits is allowed for brand (any 12..19 for TOK_BRAND_UNKNOWN). */
bool tok_card_brand_length_ok(enum tok_card_brand brand, size_t len);

/**
 * Full PAN check on normalised digits: TOK_PAN_MIN..TOK_PAN_MAX ASCII digits
 * ("invalid_number"), Luhn ("luhn_check_failed"), a prefix no network issues
 * from, i.e. no IIN table row ("invalid_number"), then the length allowed for
 * the detected brand ("unsupported_length_for_brand"), in that order. Stores
 * the brand in *brand (may be NULL) on TOK_OK. Returns TOK_OK or TOK_ERR_INPUT.
 */
TOK_MUST_CHECK tok_status tok_card_pan_check(struct tok_slice digits, enum tok_card_brand *brand,
                                             const char **code);

/** Static lower-case name ("visa", "mastercard", "amex", ..., "unknown"). Never NULL. */
const char *tok_card_brand_name(enum tok_card_brand brand);

/**
 * CVC: exactly TOK_CVC_LEN_AMEX ASCII digits for amex, TOK_CVC_LEN for every
 * other brand (unknown included). TOK_ERR_INPUT + "invalid_cvc" otherwise.
 */
TOK_MUST_CHECK tok_status tok_card_cvc_check(enum tok_card_brand brand, struct tok_slice cvc,
                                             const char **code);

/**
 * Expiry month/year against the current month/year (the caller reads the clock:
 * this stays pure). A card is valid through the last day of its month.
 * Years 0..99 are read as 2000+yy (cards in circulation cannot predate 2000);
 * other years must have 4 digits. Checks, in order: month 1..12
 * ("invalid_expiry_month"), year 0..99 or 1000..9999 ("invalid_expiry_year"),
 * not before the current month ("expired_card"), year at most
 * now_year + TOK_EXPIRY_YEARS_MAX ("invalid_expiry_year").
 * TOK_ERR_INTERNAL when now_month/now_year are out of range (1..12, 2000..9999).
 */
TOK_MUST_CHECK tok_status tok_card_expiry_check(int month, int year, int now_month, int now_year,
                                                const char **code);

/**
 * Cardholder name: at most TOK_CARD_NAME_MAX bytes, valid UTF-8, no control
 * characters (C0, DEL, C1), no line/paragraph separators (U+2028/2029) and no
 * bidirectional overrides/isolates (U+202A-202E, U+2066-2069), which could
 * forge log lines or reorder text shown to staff. Empty is accepted: whether a
 * name is required is the request parser's decision. TOK_ERR_INPUT + "invalid_name".
 */
TOK_MUST_CHECK tok_status tok_card_name_check(struct tok_slice name, const char **code);

/**
 * Strict UTF-8 (RFC 3629): rejects overlong forms, surrogates (U+D800-DFFF),
 * code points above U+10FFFF, stray continuation bytes and truncated sequences.
 * NUL is valid UTF-8; callers that must reject it check for control characters.
 */
bool tok_utf8_valid(struct tok_slice s);

/**
 * Appends the last TOK_LAST4_LEN digits of a TOK_PAN_MIN..TOK_PAN_MAX-digit
 * PAN to out (borrowed). TOK_ERR_INPUT for a bad PAN, TOK_ERR_BOUNDS when out
 * is full (nothing written).
 */
TOK_MUST_CHECK tok_status tok_card_last4(struct tok_slice digits, struct tok_buf *out);

/**
 * Appends the first n digits (TOK_BIN_LEN or TOK_BIN_LEN_LONG) of a PAN to out.
 * PCI DSS allows the 8-digit BIN only for PANs of TOK_BIN_LONG_MIN_PAN digits or
 * more: n == 8 with a shorter PAN is TOK_ERR_INPUT, as is any other n or a bad PAN.
 * TOK_ERR_BOUNDS when out is full (nothing written).
 */
TOK_MUST_CHECK tok_status tok_card_bin(struct tok_slice digits, size_t n, struct tok_buf *out);

/**
 * Appends a PAN-shaped token to out: same length, same first 6 and last 4
 * digits as the PAN, middle digits from randombytes_uniform. The result is
 * never Luhn-valid (if the draw is, the first middle digit is moved up by one,
 * mod 10, which always breaks the checksum), so a token can never be mistaken
 * for, or equal, a real card number. It keeps BIN + last 4, i.e. exactly what
 * PCI DSS 3.4.1 allows to display, and nothing else of the PAN. A 12-digit PAN
 * has only 2 random digits: such tokens are not unique and must not be used as
 * identifiers on their own.
 * TOK_ERR_INPUT: not TOK_PAN_MIN..TOK_PAN_MAX ASCII digits. TOK_ERR_BOUNDS: out
 * has no room for digits.len bytes (nothing written).
 */
TOK_MUST_CHECK tok_status tok_card_pan_shaped(struct tok_slice digits, struct tok_buf *out);

#endif
