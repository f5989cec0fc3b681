/*
 * currency.c - ISO 4217 minor units (source: ISO 4217 list one, as published
 * by SIX; the codes below are the ones card gateways settle in).
 */
#include "tokend/core/currency.h"

static const struct {
    char code[4];
    int8_t exponent;
} currencies[] = {
    {"aed", 2}, {"ars", 2}, {"aud", 2}, {"bdt", 2}, {"bgn", 2}, {"bhd", 3}, {"bif", 0},
    {"brl", 2}, {"cad", 2}, {"chf", 2}, {"clp", 0}, {"cny", 2}, {"cop", 2}, {"czk", 2},
    {"djf", 0}, {"dkk", 2}, {"egp", 2}, {"eur", 2}, {"gbp", 2}, {"gnf", 0}, {"hkd", 2},
    {"huf", 2}, {"idr", 2}, {"ils", 2}, {"inr", 2}, {"isk", 0}, {"jod", 3}, {"jpy", 0},
    {"kes", 2}, {"kmf", 0}, {"krw", 0}, {"kwd", 3}, {"lkr", 2}, {"mad", 2}, {"mga", 0},
    {"mxn", 2}, {"myr", 2}, {"ngn", 2}, {"nok", 2}, {"nzd", 2}, {"omr", 3}, {"pen", 2},
    {"php", 2}, {"pkr", 2}, {"pln", 2}, {"pyg", 0}, {"qar", 2}, {"ron", 2}, {"rsd", 2},
    {"rwf", 0}, {"sar", 2}, {"sek", 2}, {"sgd", 2}, {"thb", 2}, {"tnd", 3}, {"try", 2},
    {"twd", 2}, {"uah", 2}, {"ugx", 0}, {"usd", 2}, {"uyu", 2}, {"vnd", 0}, {"vuv", 0},
    {"xaf", 0}, {"xof", 0}, {"xpf", 0}, {"zar", 2},
};

tok_status tok_currency_normalise(struct tok_slice code, char out[4])
{
    TOK_ENSURE(code.len == 3 && out != NULL, TOK_ERR_INPUT);
    for (size_t i = 0; i < 3; i++) {
        uint8_t c = code.ptr[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + ('a' - 'A'));
        TOK_ENSURE(c >= 'a' && c <= 'z', TOK_ERR_INPUT);
        out[i] = (char)c;
    }
    out[3] = '\0';
    for (size_t i = 0; i < TOK_ARRAY_LEN(currencies); i++)
        if (tok_slice_eq(tok_slice_of(out, 3), currencies[i].code))
            return TOK_OK;
    return TOK_ERR_INPUT;
}

int tok_currency_exponent(struct tok_slice code)
{
    char lc[4];
    if (tok_currency_normalise(code, lc) != TOK_OK)
        return -1;
    for (size_t i = 0; i < TOK_ARRAY_LEN(currencies); i++)
        if (tok_slice_eq(tok_slice_of(lc, 3), currencies[i].code))
            return currencies[i].exponent;
    return -1;
}
