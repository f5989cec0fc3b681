/* currency.h - ISO 4217 codes tokend accepts and their minor-unit exponents. */
#ifndef TOKEND_CURRENCY_H
#define TOKEND_CURRENCY_H

#include "tokend/core/common.h"

#define TOK_AMOUNT_MAX 99999999LL /* 8 digits, the largest amount gateways take */

/**
 * The exponent of a lower- or upper-case three-letter code (jpy 0, usd 2,
 * kwd 3), or -1 when tokend does not know the currency.
 */
int tok_currency_exponent(struct tok_slice code);

/** Writes the lower-case code into out[4]. TOK_ERR_INPUT when unknown. */
TOK_MUST_CHECK tok_status tok_currency_normalise(struct tok_slice code, char out[4]);

#endif
