/*
 * routes.h - the route table: the one place that maps a method and a path to
 * a handler file. A newcomer finds any behaviour in one hop from here.
 */
#ifndef TOKEND_ROUTES_H
#define TOKEND_ROUTES_H

#include "tokend/core/common.h"
#include "tokend/http/http.h"

typedef void (*tok_handler_fn)(struct tok_req *r);

struct tok_route {
    const char *method;
    const char *pattern; /* "/v1/tokens/{id}": {name} matches one non-empty segment */
    tok_handler_fn fn;
};

#define TOK_ALLOW_MAX 64

/**
 * Finds the route for method and path (path without query). TOK_OK with
 * *out and r->params filled; TOK_ERR_NOTFOUND when no pattern matches the
 * path; TOK_ERR_INPUT when the path matches but not the method, with the
 * allowed methods written into allow (comma separated).
 */
TOK_MUST_CHECK tok_status tok_routes_match(struct tok_slice method, struct tok_slice path,
                                           struct tok_req *r, const struct tok_route **out,
                                           char allow[TOK_ALLOW_MAX]);

/** The table itself (NULL-method terminated), for tests and /openapi.json. */
const struct tok_route *tok_routes_table(void);

#endif
