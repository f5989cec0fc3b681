/*
 * iin_table.c - the one table that maps a PAN prefix to a card brand and the
 * PAN lengths that brand issues. Data only: the lookup is in card.c.
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
 *   braintree braintree/credit-card-type, src/lib/card-types.ts (Elo, Hiper, Hipercard lists)
 */
#include "tokend/vault/card.h"

/* Mask of the PAN lengths a..b inclusive. */
#define LENS(a, b) ((TOK_PAN_LEN_BIT((b) + 1) - 1) & ~(TOK_PAN_LEN_BIT(a) - 1))
#define LEN(a) TOK_PAN_LEN_BIT(a)

#define ROW(brand, low, high, plen, lens, src)                                                     \
    {TOK_BRAND_##brand, (low), (high), (plen), (lens), (src)}

static const struct tok_iin_range iin_table[] = {
    /* Visa: all of 4; 13 (legacy), 16 and 19 digits. */
    ROW(VISA, 4, 4, 1, LEN(13) | LEN(16) | LEN(19), "wiki"),

    /* Mastercard: 51-55 and the 2-series. Always 16 digits. */
    ROW(MASTERCARD, 51, 55, 2, LEN(16), "wiki"),
    ROW(MASTERCARD, 2221, 2720, 4, LEN(16), "mc2"),

    /* American Express: 34, 37, 15 digits (4-digit CID). */
    ROW(AMEX, 34, 34, 2, LEN(15), "wiki"),
    ROW(AMEX, 37, 37, 2, LEN(15), "wiki"),

    /* Discover; 622126-622925 are UnionPay co-branded cards routed by Discover. */
    ROW(DISCOVER, 6011, 6011, 4, LENS(16, 19), "dgn"),
    ROW(DISCOVER, 644, 649, 3, LENS(16, 19), "dgn"),
    ROW(DISCOVER, 65, 65, 2, LENS(16, 19), "dgn"),
    ROW(DISCOVER, 622126, 622925, 6, LENS(16, 19), "dgn"),

    ROW(JCB, 3528, 3589, 4, LENS(16, 19), "wiki"),

    /* Diners Club International / Carte Blanche (300-305), 3095, 36, 38-39. */
    ROW(DINERS, 300, 305, 3, LENS(14, 19), "wiki"),
    ROW(DINERS, 3095, 3095, 4, LENS(14, 19), "wiki"),
    ROW(DINERS, 36, 36, 2, LENS(14, 19), "wiki"),
    ROW(DINERS, 38, 39, 2, LENS(14, 19), "wiki"),

    ROW(UNIONPAY, 62, 62, 2, LENS(16, 19), "wiki"),
    ROW(UNIONPAY, 81, 81, 2, LENS(16, 19), "wiki"),

    ROW(MAESTRO, 5018, 5018, 4, LENS(12, 19), "wiki"),
    ROW(MAESTRO, 5020, 5020, 4, LENS(12, 19), "wiki"),
    ROW(MAESTRO, 5038, 5038, 4, LENS(12, 19), "wiki"),
    ROW(MAESTRO, 5893, 5893, 4, LENS(12, 19), "wiki"),
    ROW(MAESTRO, 6304, 6304, 4, LENS(12, 19), "wiki"),
    ROW(MAESTRO, 6759, 6759, 4, LENS(12, 19), "wiki"),
    ROW(MAESTRO, 6761, 6763, 4, LENS(12, 19), "wiki"),

    ROW(MIR, 2200, 2204, 4, LENS(16, 19), "wiki"),

    /* Elo (Brazil): published BINs, several inside Visa 4 and Discover 65. */
    ROW(ELO, 401178, 401179, 6, LEN(16), "braintree"),
    ROW(ELO, 431274, 431274, 6, LEN(16), "braintree"),
    ROW(ELO, 438935, 438935, 6, LEN(16), "braintree"),
    ROW(ELO, 451416, 451416, 6, LEN(16), "braintree"),
    ROW(ELO, 457393, 457393, 6, LEN(16), "braintree"),
    ROW(ELO, 457631, 457632, 6, LEN(16), "braintree"),
    ROW(ELO, 504175, 504175, 6, LEN(16), "braintree"),
    ROW(ELO, 506699, 506778, 6, LEN(16), "braintree"),
    ROW(ELO, 509000, 509999, 6, LEN(16), "braintree"),
    ROW(ELO, 627780, 627780, 6, LEN(16), "braintree"),
    ROW(ELO, 636297, 636297, 6, LEN(16), "braintree"),
    ROW(ELO, 636368, 636368, 6, LEN(16), "braintree"),
    ROW(ELO, 650031, 650033, 6, LEN(16), "braintree"),
    ROW(ELO, 650035, 650051, 6, LEN(16), "braintree"),
    ROW(ELO, 650405, 650439, 6, LEN(16), "braintree"),
    ROW(ELO, 650485, 650538, 6, LEN(16), "braintree"),
    ROW(ELO, 650541, 650598, 6, LEN(16), "braintree"),
    ROW(ELO, 650700, 650718, 6, LEN(16), "braintree"),
    ROW(ELO, 650720, 650727, 6, LEN(16), "braintree"),
    ROW(ELO, 650901, 650978, 6, LEN(16), "braintree"),
    ROW(ELO, 651652, 651679, 6, LEN(16), "braintree"),
    ROW(ELO, 655000, 655019, 6, LEN(16), "braintree"),
    ROW(ELO, 655021, 655058, 6, LEN(16), "braintree"),

    /* Hiper (Itaú, Brazil). */
    ROW(HIPER, 637095, 637095, 6, LEN(16), "braintree"),
    ROW(HIPER, 637568, 637568, 6, LEN(16), "braintree"),
    ROW(HIPER, 637599, 637599, 6, LEN(16), "braintree"),
    ROW(HIPER, 637609, 637609, 6, LEN(16), "braintree"),
    ROW(HIPER, 637612, 637612, 6, LEN(16), "braintree"),

    /* Hipercard: 606282 is 16 digits; the older 3841x0 cards were issued with 19. */
    ROW(HIPERCARD, 606282, 606282, 6, LEN(16) | LEN(19), "wiki"),
    ROW(HIPERCARD, 384100, 384100, 6, LEN(16) | LEN(19), "wiki"),
    ROW(HIPERCARD, 384140, 384140, 6, LEN(16) | LEN(19), "wiki"),
    ROW(HIPERCARD, 384160, 384160, 6, LEN(16) | LEN(19), "wiki"),

    /* Troy (Turkey): only 9792; its 65 range stays Discover's. */
    ROW(TROY, 979200, 979289, 6, LEN(16), "wiki"),

    /* Verve (Nigeria). */
    ROW(VERVE, 506099, 506198, 6, LEN(16) | LEN(18) | LEN(19), "wiki"),
    ROW(VERVE, 507865, 507964, 6, LEN(16) | LEN(18) | LEN(19), "wiki"),
    ROW(VERVE, 650002, 650027, 6, LEN(16) | LEN(18) | LEN(19), "wiki"),
};

_Static_assert(TOK_ARRAY_LEN(iin_table) > 0, "IIN table is empty");

const struct tok_iin_range *tok_card_iin_table(size_t *n)
{
    if (n != NULL)
        *n = TOK_ARRAY_LEN(iin_table);
    return iin_table;
}
