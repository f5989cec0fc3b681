/*
 * registry.c - the table of adapters. Adding a gateway is one adapter file and one entry here.
 */
#include "tokend/gateways/registry.h"

const struct tok_gateway_ops *tok_gateway_find(struct tok_slice name)
{
    const struct tok_gateway_ops *all[] = {tok_gateway_sandbox(), tok_gateway_stripe(),
                                           tok_gateway_adyen()};
    for (size_t i = 0; i < TOK_ARRAY_LEN(all); i++)
        if (tok_slice_eq(name, all[i]->name))
            return all[i];
    return NULL;
}
