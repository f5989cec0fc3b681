/*
 * admin_webhook.c - `tokenctl webhook add|list|replay|disable|enable` (admin_webhook.h).
 * Runs as the owner role, like the rest of tokenctl.
 */
#include "tokend/admin/admin_webhook.h"
#include "tokend/admin/admin_json.h"
#include "tokend/store/db.h"
#include "tokend/vault/keyring.h"
#include "tokend/events/webhooks.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BYTEA_OID 17

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    fputs("tokenctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static tok_status usage(void)
{
    say("usage: webhook add --tenant T --url URL [--live|--test] | webhook list [--tenant T]"
        " | webhook replay EVENT | webhook disable|enable --tenant T ENDPOINT");
    return TOK_ERR_INPUT;
}

static tok_status check(PGresult *r, ExecStatusType want, const char *what)
{
    if (PQresultStatus(r) == want)
        return TOK_OK;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    say("%s: the database refused (%s)", what, state != NULL ? state : "no SQLSTATE");
    return TOK_ERR_DB;
}

static tok_status webhook_add(const struct tok_admin *a, int argc, char **argv)
{
    const char *tenant_ref = NULL, *url = NULL;
    bool live = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
            tenant_ref = argv[++i];
        else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--live") == 0)
            live = true;
        else if (strcmp(argv[i], "--test") == 0)
            live = false;
        else
            return usage();
    }
    if (tenant_ref == NULL || url == NULL)
        return usage();
    if (tok_webhook_url_check(tok_slice_str(url), true) != TOK_OK) {
        say("webhook add: --url must be https://HOST[:PORT][/PATH] (http:// only for loopback, in tests)");
        return TOK_ERR_INPUT;
    }
    struct tok_keyring *kr = NULL;
    TOK_GUARD(tok_admin_keyring(a, &kr));
    PGconn *pg = NULL;
    struct tok_tenant_keys *tk = NULL;
    struct tok_buf secret = {0}, sealed = {0};
    char tenant[TOK_ADMIN_TENANT_MAX] = "", idmem[TOK_RANDOM_ID_MAX + 1] = "";
    uint32_t version = 0;
    struct tok_buf idb;
    tok_buf_init(&idb, idmem, sizeof idmem - 1);
    PGresult *r = NULL;
    tok_status st = tok_admin_connect(a, &pg);
    if (st == TOK_OK)
        st = tok_admin_tenant_keys(pg, kr, tenant_ref, "webhook add", tenant, &tk, &version);
    if (st == TOK_OK)
        st = tok_random_id("we_", &idb);
    if (st == TOK_OK)
        st = tok_buf_alloc(&secret, 64, true);
    if (st == TOK_OK)
        st = tok_random_id(TOK_WEBHOOK_ENDPOINT_SECRET_PREFIX, &secret);
    if (st == TOK_OK)
        st = tok_random_id("", &secret);
    if (st == TOK_OK)
        st = tok_buf_alloc(&sealed, 64 + TOK_SEALED_OVERHEAD, false);
    if (st == TOK_OK) {
        struct tok_aad aad = {tenant, "ledger.webhook_endpoints", "secret_sealed", idmem};
        st = tok_tenant_keys_seal(tk, aad, tok_buf_slice(&secret), &sealed);
    }
    if (st == TOK_OK) {
        char ver[16];
        snprintf(ver, sizeof ver, "%u", tok_tenant_keys_version(tk));
        const char *v[6] = {tenant, idmem, live ? "true" : "false", url, (const char *)sealed.data, ver};
        const int lens[6] = {0, 0, 0, 0, (int)sealed.len, 0};
        const int fmts[6] = {0, 0, 0, 0, 1, 0};
        const Oid types[6] = {0, 0, 0, 0, BYTEA_OID, 0};
        r = PQexecParams(pg,
                         "WITH e AS (INSERT INTO ledger.webhook_endpoints (tenant_id, id, livemode, url, "
                         "secret_sealed, key_version) VALUES ($1, $2, $3::boolean, $4, $5, $6::integer) "
                         "RETURNING tenant_id, id, url) INSERT INTO audit.events (tenant_id, actor, action, "
                         "object, detail) SELECT e.tenant_id, 'tokenctl', 'webhook_endpoint.created', e.id, "
                         "jsonb_build_object('url', e.url) FROM e",
                         6, types, v, lens, fmts, 0);
        st = check(r, PGRES_COMMAND_OK, "webhook add");
    }
    if (st == TOK_OK && a->json) {
        const struct tok_admin_json_field f[] = {
            {"id", TOK_AJ_STR, 0, tok_slice_str(idmem)},
            {"tenant", TOK_AJ_STR, 0, tok_slice_str(tenant)},
            {"url", TOK_AJ_STR, 0, tok_slice_str(url)},
            {"livemode", TOK_AJ_BOOL, 0, tok_slice_str(live ? "true" : "false")},
            {"secret", TOK_AJ_STR, 0, tok_buf_slice(&secret)},
        };
        st = tok_admin_json_object(f, TOK_ARRAY_LEN(f));
    } else if (st == TOK_OK) {
        fwrite(secret.data, 1, secret.len, stdout);
        fputc('\n', stdout);
        if (fflush(stdout) != 0)
            st = TOK_ERR_IO;
    }
    if (st == TOK_OK) {
        say("added webhook endpoint %s for %s (%s mode); the secret above is shown only once",
            idmem, url, live ? "live" : "test");
    }
    PQclear(r);
    if (pg != NULL)
        PQfinish(pg);
    tok_tenant_keys_free(&tk);
    tok_keyring_free(&kr);
    tok_buf_wipe(&secret);
    tok_buf_wipe(&sealed);
    return st;
}

static tok_status webhook_list(const struct tok_admin *a, int argc, char **argv)
{
    const char *tenant_ref = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
            tenant_ref = argv[++i];
        else
            return usage();
    }
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    const char *v[1] = {tenant_ref};
    PGresult *r = PQexecParams(
        pg,
        "SELECT e.id, e.tenant_id, e.livemode::text, e.url, coalesce(e.disabled_at::text, '') "
        "FROM ledger.webhook_endpoints e JOIN vault.tenants t ON t.id = e.tenant_id "
        "WHERE $1::text IS NULL OR t.id = $1 OR t.name = $1 ORDER BY e.tenant_id, e.created_at",
        1, NULL, v, NULL, NULL, 0);
    tok_status st = check(r, PGRES_TUPLES_OK, "webhook list");
    if (st == TOK_OK && a->json) {
        static const struct tok_admin_json_field f[] = {
            {"id", TOK_AJ_STR, 0, {0}}, {"tenant", TOK_AJ_STR, 1, {0}},
            {"livemode", TOK_AJ_BOOL, 2, {0}}, {"url", TOK_AJ_STR, 3, {0}},
            {"disabled_at", TOK_AJ_STR, 4, {0}},
        };
        st = tok_admin_json_rows(r, f, TOK_ARRAY_LEN(f));
    } else if (st == TOK_OK) {
        fputs("id\ttenant\tlivemode\turl\tdisabled_at\n", stdout);
        for (int i = 0; i < PQntuples(r); i++)
            printf("%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
    }
    PQclear(r);
    PQfinish(pg);
    return st;
}

static tok_status webhook_replay(const struct tok_admin *a, int argc, char **argv)
{
    if (argc != 1)
        return usage();
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    const char *v[1] = {argv[0]};
    PGresult *r = PQexecParams(
        pg,
        "WITH ev AS (SELECT tenant_id, id, livemode FROM ledger.events WHERE id = $1), "
        "up AS (INSERT INTO ledger.deliveries (tenant_id, id, event_id, endpoint_id) "
        "SELECT ev.tenant_id, 'dlv_' || substr(encode(sha256(convert_to(ev.id || ':' || e.id, 'UTF8')), 'hex'), 1, 22), ev.id, e.id "
        "FROM ev JOIN ledger.webhook_endpoints e ON e.tenant_id = ev.tenant_id AND e.livemode = ev.livemode "
        "AND e.disabled_at IS NULL "
        "ON CONFLICT (tenant_id, event_id, endpoint_id) DO UPDATE SET status = 'pending', "
        "next_attempt_at = now(), deadline_at = now() + interval '3 days', updated_at = now() "
        "RETURNING 1), "
        "au AS (INSERT INTO audit.events (tenant_id, actor, action, object) "
        "SELECT ev.tenant_id, 'tokenctl', 'event.replayed', ev.id FROM ev) "
        "SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM up)",
        1, NULL, v, NULL, NULL, 0);
    tok_status st = check(r, PGRES_TUPLES_OK, "webhook replay");
    if (st == TOK_OK && strcmp(PQgetvalue(r, 0, 0), "0") == 0) {
        say("webhook replay: no such event: %s", argv[0]);
        st = TOK_ERR_NOTFOUND;
    }
    if (st == TOK_OK) {
        say("replaying %s to %s endpoint(s)", argv[0], PQgetvalue(r, 0, 1));
        PQclear(PQexec(pg, "NOTIFY tokend_deliveries"));
    }
    PQclear(r);
    PQfinish(pg);
    return st;
}

/* Disabling stops deliveries to the endpoint (deliveries_claim skips it) and queues
 * nothing new for it; its pending deliveries stay pending, so enabling resumes them. */
static tok_status webhook_set_disabled(const struct tok_admin *a, int argc, char **argv,
                                       bool disable)
{
    const char *tenant_ref = NULL, *id = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
            tenant_ref = argv[++i];
        else if (id == NULL && argv[i][0] != '-')
            id = argv[i];
        else
            return usage();
    }
    if (tenant_ref == NULL || id == NULL)
        return usage();
    const char *what = disable ? "webhook disable" : "webhook enable";
    PGconn *pg = NULL;
    TOK_GUARD(tok_admin_connect(a, &pg));
    const char *v[3] = {tenant_ref, id, disable ? "t" : "f"};
    PGresult *r = PQexecParams(
        pg,
        "WITH e AS (UPDATE ledger.webhook_endpoints e SET disabled_at = CASE WHEN $3::boolean "
        "THEN coalesce(e.disabled_at, now()) END FROM vault.tenants t WHERE t.id = e.tenant_id "
        "AND (t.id = $1 OR t.name = $1) AND e.id = $2 RETURNING e.tenant_id, e.id), "
        "au AS (INSERT INTO audit.events (tenant_id, actor, action, object) SELECT e.tenant_id, "
        "'tokenctl', CASE WHEN $3::boolean THEN 'webhook_endpoint.disabled' "
        "ELSE 'webhook_endpoint.enabled' END, e.id FROM e), "
        "p AS (SELECT count(*) AS n FROM ledger.deliveries d JOIN e ON d.tenant_id = e.tenant_id "
        "AND d.endpoint_id = e.id WHERE d.status = 'pending') "
        "SELECT (SELECT count(*) FROM e), (SELECT n FROM p)",
        3, NULL, v, NULL, NULL, 0);
    tok_status st = check(r, PGRES_TUPLES_OK, what);
    if (st == TOK_OK && strcmp(PQgetvalue(r, 0, 0), "0") == 0) {
        say("%s: no endpoint %s for tenant %s", what, id, tenant_ref);
        st = TOK_ERR_NOTFOUND;
    }
    if (st == TOK_OK) {
        say("%s %s; %s pending deliveries %s", disable ? "disabled" : "enabled", id,
            PQgetvalue(r, 0, 1), disable ? "wait until it is enabled" : "resume");
        if (!disable)
            PQclear(PQexec(pg, "NOTIFY tokend_deliveries"));
    }
    PQclear(r);
    PQfinish(pg);
    return st;
}

static tok_status webhook_disable(const struct tok_admin *a, int argc, char **argv)
{
    return webhook_set_disabled(a, argc, argv, true);
}

static tok_status webhook_enable(const struct tok_admin *a, int argc, char **argv)
{
    return webhook_set_disabled(a, argc, argv, false);
}

tok_status tok_admin_webhook(const struct tok_admin *a, int argc, char **argv)
{
    static const struct tok_admin_cmd cmds[] = {
        {"add", webhook_add},
        {"list", webhook_list},
        {"replay", webhook_replay},
        {"disable", webhook_disable},
        {"enable", webhook_enable},
    };
    return tok_admin_dispatch(a, argc, argv, cmds, TOK_ARRAY_LEN(cmds), usage);
}
