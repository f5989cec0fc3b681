/* health.h - liveness and readiness probes. */
#ifndef TOKEND_HEALTH_H
#define TOKEND_HEALTH_H

#include "tokend/http/http.h"

/** GET /healthz: 200 while the process serves requests; touches nothing else. */
void tok_health_live(struct tok_req *r);

/**
 * GET /readyz: 200 when the database answers and its schema version equals
 * the one this binary was built for (TOK_SCHEMA_VERSION); 503 otherwise.
 */
void tok_health_ready(struct tok_req *r);

#endif
