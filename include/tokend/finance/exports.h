/*
 * exports.h - GET /v1/exports/charges and GET /v1/exports/refunds
 * (?from=&to=&format=csv|ndjson and the list filters; reports:read or
 * charges:write).
 *
 * Streamed: the response is an h2o generator; each time h2o has written the
 * previous chunk (proceed), one job on the reporting pool reads the next
 * TOK_EXPORT_CHUNK_ROWS rows by keyset ((created_at, id) after the last row
 * sent), so no transaction is held between chunks and memory is one chunk
 * whether the export has ten rows or ten million. CSV follows RFC 4180 with
 * a header record; amounts are in minor units with the currency beside them.
 */
#ifndef TOKEND_EXPORTS_H
#define TOKEND_EXPORTS_H

#include "tokend/http/http.h"

#define TOK_EXPORT_CHUNK_ROWS 1000
#define TOK_EXPORT_CHUNK_MAX (4u * 1024u * 1024u) /* bytes of one chunk at worst */

void tok_exports_charges(struct tok_req *r);
void tok_exports_refunds(struct tok_req *r);
/** GET /v1/exports/events (from, to, type, format; columns id,livemode,type,data,created_at). */
void tok_exports_events(struct tok_req *r);

#endif
