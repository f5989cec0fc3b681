/*
 * health.c - /healthz and /readyz.
 */
#include "tokend/http/health.h"
#include "tokend/core/log.h"

#include "schema_version.h" /* generated from sql/ by the Makefile */

#include <stdlib.h>
#include <string.h>

struct ready_call {
    struct tok_call call; /* first */
    long version;
};

static const struct tok_sql schema_version_sql = {
    "schema_version", "SELECT coalesce(max(version), 0) FROM tokend_meta.schema_migrations", 0};

void tok_health_live(struct tok_req *r)
{
    static const char body[] = "{\"status\":\"ok\"}";
    tok_http_json(r, 200, tok_slice_of(body, sizeof body - 1));
}

static tok_status ready_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct ready_call *rc = (struct ready_call *)job;
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &schema_version_sql, NULL, NULL, NULL, &res));
    rc->version = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
    return TOK_OK;
}

static void ready_result(struct tok_call *call, struct tok_req *r)
{
    struct ready_call *rc = (struct ready_call *)call;
    if (call->job.status != TOK_OK) {
        tok_log_warn("%s: %s: database unreachable (%s)", __func__, r->id,
                     tok_status_name(call->job.status));
        tok_http_problem(r, 503, "database_unavailable", "the database does not answer", NULL);
        return;
    }
    if (rc->version != TOK_SCHEMA_VERSION) {
        tok_log_warn("%s: %s: schema version %ld, this build needs %d", __func__, r->id,
                     rc->version, TOK_SCHEMA_VERSION);
        tok_http_problem(r, 503, "schema_outdated",
                         "the database schema is not the version this build needs; run migrations",
                         NULL);
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    tok_http_json(r, 200, tok_slice_of(body, sizeof body - 1));
}

static void ready_release(struct tok_call *call)
{
    free(call);
}

void tok_health_ready(struct tok_req *r)
{
    struct ready_call *rc = calloc(1, sizeof *rc);
    if (rc == NULL) {
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    rc->call.job.exec = ready_exec;
    rc->call.on_result = ready_result;
    rc->call.release = ready_release;
    tok_http_call(r, &rc->call);
}
