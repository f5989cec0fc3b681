/* openapi.h - serves the API's OpenAPI document. */
#ifndef TOKEND_OPENAPI_H
#define TOKEND_OPENAPI_H

#include "tokend/http/http.h"

/**
 * GET /v1/openapi.json: 200 with docs/openapi.json, which the Makefile compiles into the
 * binary (build/gen/openapi_json.h), so a request does no file I/O. Needs no API key: the
 * document describes the public interface (it is in the repository) and holds no tenant data,
 * key or configuration.
 */
void tok_openapi_get(struct tok_req *r);

/** The document's bytes (static, NUL-terminated) and length, for tests. */
struct tok_slice tok_openapi_document(void);

#endif
