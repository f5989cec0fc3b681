/*
 * iin_table.c - the one table that maps a PAN prefix to a card brand and the
 * PAN lengths that brand issues. Data only: the lookup is in card.c. The rows
 * are generated from service/vault/iin_ranges.tsv (scripts/gen-iin-rows.sh), the
 * same data the card element reads through GET /v1/elements/iin.json.
 *
 * Every row names its source; docs/iin-ranges.md lists the sources, the
 * conflicts between them and how each was settled. Rows may overlap only
 * with different prefix lengths: the longest matching prefix wins, which is
 * how Elo 650031 beats Discover 65 and Hipercard 384100 beats Diners 38
 * (the unit suite checks that no two rows of equal length overlap).
 *
 * Source tags:
 *   wiki      Wikipedia, "Payment card number", section "Issuer identification number (IIN)"
 *   mc2       Mastercard, 2-series BIN expansion (222100-272099), live since 2017
 *   dgn       Discover Global Network IIN ranges (6011, 622126-622925, 644-649, 65)
 *   braintree braintree/credit-card-type 10.3.0, src/lib/card-types.ts
 */
#include "tokend/vault/card.h"

/* Mask of the PAN lengths a..b inclusive. */
#define LENS(a, b) ((TOK_PAN_LEN_BIT((b) + 1) - 1) & ~(TOK_PAN_LEN_BIT(a) - 1))
#define LEN(a) TOK_PAN_LEN_BIT(a)

#define ROW(brand, low, high, plen, lens, src)                                                     \
    {TOK_BRAND_##brand, (low), (high), (plen), (lens), (src)}

static const struct tok_iin_range iin_table[] = {
#include "iin_rows.h" /* generated from service/vault/iin_ranges.tsv by the Makefile */
};

_Static_assert(TOK_ARRAY_LEN(iin_table) > 0, "IIN table is empty");

const struct tok_iin_range *tok_card_iin_table(size_t *n)
{
    if (n != NULL)
        *n = TOK_ARRAY_LEN(iin_table);
    return iin_table;
}
