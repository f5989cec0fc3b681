/*
 * pgarr_echo.c - sends PostgreSQL one binary array (service/store/pgarr.c) of each element type,
 * with NULLs, extremes and empty arrays, as format-1 parameters, and prints what PostgreSQL
 * read back as text, one line per parameter: "<n> <type> <text>". Then sends a text array
 * where an int4[] is declared and prints "mismatch <SQLSTATE>". Test tooling for
 * tests/integration/t_09_group_commit.sh; the unit suite checks the bytes, this checks that
 * PostgreSQL agrees with them.
 *
 *   PGARR_ECHO_DB='host=... dbname=...' pgarr_echo
 *   exit 0 when both statements ran as described (whatever PostgreSQL printed), 1 otherwise.
 */
#include "tokend/store/pgarr.h"

#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define ECHO_PARAMS 9
#define ECHO_BUF 4096

static const char *const echo_sql =
    "SELECT $1::bool[]::text, $2::int2[]::text, $3::int4[]::text, $4::float8[]::text, "
    "$5::timestamptz[]::text, $6::text[]::text, $7::bytea[]::text, "
    "$8::text[]::text || ' ' || cardinality($8::text[]), "
    "$9::int4[]::text || ' ' || cardinality($9::int4[])";
static const char *const echo_types[ECHO_PARAMS] = {
    "bool", "int2", "int4", "float8", "timestamptz", "text", "bytea", "text-empty", "int4-empty"};

/* Writes the nine arrays into b; slices point into it. */
static tok_status build(struct tok_buf *b, struct tok_slice out[ECHO_PARAMS])
{
    static const uint8_t raw[] = {0x00, 0xff};
    struct tok_pgarr a;
    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_BOOL));
    TOK_GUARD(tok_pgarr_bool(&a, true));
    TOK_GUARD(tok_pgarr_bool(&a, false));
    TOK_GUARD(tok_pgarr_null(&a));
    TOK_GUARD(tok_pgarr_end(&a, &out[0]));

    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_INT2));
    TOK_GUARD(tok_pgarr_int2(&a, INT16_MAX));
    TOK_GUARD(tok_pgarr_int2(&a, INT16_MIN));
    TOK_GUARD(tok_pgarr_int2(&a, 0));
    TOK_GUARD(tok_pgarr_end(&a, &out[1]));

    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_INT4));
    TOK_GUARD(tok_pgarr_int4(&a, INT32_MAX));
    TOK_GUARD(tok_pgarr_int4(&a, INT32_MIN));
    TOK_GUARD(tok_pgarr_null(&a));
    TOK_GUARD(tok_pgarr_end(&a, &out[2]));

    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_FLOAT8));
    TOK_GUARD(tok_pgarr_float8(&a, 1.5));
    TOK_GUARD(tok_pgarr_float8(&a, -0.0));
    TOK_GUARD(tok_pgarr_float8(&a, 0.1));
    TOK_GUARD(tok_pgarr_float8(&a, -INFINITY));
    TOK_GUARD(tok_pgarr_null(&a));
    TOK_GUARD(tok_pgarr_end(&a, &out[3]));

    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_TIMESTAMPTZ));
    TOK_GUARD(tok_pgarr_timestamptz(&a, TOK_PG_EPOCH_UNIX_US));
    TOK_GUARD(tok_pgarr_timestamptz(&a, 0));
    TOK_GUARD(tok_pgarr_timestamptz(&a, 1700000000LL * 1000000 + 123456));
    TOK_GUARD(tok_pgarr_null(&a));
    TOK_GUARD(tok_pgarr_end(&a, &out[4]));

    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_TEXT));
    TOK_GUARD(tok_pgarr_text(&a, tok_slice_str("a\"b\\c")));
    TOK_GUARD(tok_pgarr_text(&a, tok_slice_str("")));
    TOK_GUARD(tok_pgarr_text(&a, tok_slice_str("caf\xc3\xa9")));
    TOK_GUARD(tok_pgarr_null(&a));
    TOK_GUARD(tok_pgarr_end(&a, &out[5]));

    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_BYTEA));
    TOK_GUARD(tok_pgarr_bytea(&a, tok_slice_of(raw, sizeof raw)));
    TOK_GUARD(tok_pgarr_bytea(&a, tok_slice_of(raw, 0)));
    TOK_GUARD(tok_pgarr_null(&a));
    TOK_GUARD(tok_pgarr_end(&a, &out[6]));

    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_TEXT));
    TOK_GUARD(tok_pgarr_end(&a, &out[7]));
    TOK_GUARD(tok_pgarr_begin(&a, b, TOK_PG_OID_INT4));
    return tok_pgarr_end(&a, &out[8]);
}

static bool run(PGconn *pg, struct tok_slice arrays[ECHO_PARAMS])
{
    const char *v[ECHO_PARAMS];
    int l[ECHO_PARAMS], f[ECHO_PARAMS];
    for (int i = 0; i < ECHO_PARAMS; i++) {
        v[i] = (const char *)arrays[i].ptr;
        l[i] = (int)arrays[i].len;
        f[i] = 1;
    }
    PGresult *r = PQexecParams(pg, echo_sql, ECHO_PARAMS, NULL, v, l, f, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (!ok)
        fprintf(stderr, "pgarr_echo: %s", PQresultErrorMessage(r));
    for (int i = 0; ok && i < ECHO_PARAMS; i++)
        printf("%d %s %s\n", i + 1, echo_types[i], PQgetisnull(r, 0, i) ? "NULL" : PQgetvalue(r, 0, i));
    PQclear(r);
    if (!ok)
        return false;
    /* a text array where int4[] is declared: PostgreSQL must refuse it, not reinterpret it */
    const char *mv[1] = {v[5]};
    int ml[1] = {l[5]}, mf[1] = {1};
    r = PQexecParams(pg, "SELECT $1::int4[]", 1, NULL, mv, ml, mf, 0);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    printf("mismatch %s\n", PQresultStatus(r) == PGRES_FATAL_ERROR && state != NULL ? state : "none");
    PQclear(r);
    return true;
}

int main(void)
{
    const char *db = getenv("PGARR_ECHO_DB");
    if (db == NULL) {
        fprintf(stderr, "pgarr_echo: set PGARR_ECHO_DB\n");
        return 2;
    }
    static uint8_t mem[ECHO_BUF];
    struct tok_buf b;
    struct tok_slice arrays[ECHO_PARAMS];
    tok_buf_init(&b, mem, sizeof mem);
    tok_status st = build(&b, arrays);
    if (st != TOK_OK) {
        fprintf(stderr, "pgarr_echo: encoding failed: %s\n", tok_status_name(st));
        return 1;
    }
    PGconn *pg = PQconnectdb(db);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "pgarr_echo: cannot connect\n");
        PQfinish(pg);
        return 1;
    }
    PGresult *r = PQexec(pg, "SET TimeZone = 'UTC'");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    ok = ok && run(pg, arrays);
    PQfinish(pg);
    return ok ? 0 : 1;
}
