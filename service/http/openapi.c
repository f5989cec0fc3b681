/*
 * openapi.c - GET /v1/openapi.json from the document compiled into the binary.
 */
#include "tokend/http/openapi.h"

#include "openapi_json.h" /* generated from docs/openapi.json by the Makefile */

struct tok_slice tok_openapi_document(void)
{
    return tok_slice_of(tok_openapi_json, sizeof tok_openapi_json - 1);
}

void tok_openapi_get(struct tok_req *r)
{
    tok_http_json(r, 200, tok_openapi_document());
}
