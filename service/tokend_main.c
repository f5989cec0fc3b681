/*
 * tokend_main.c - the daemon: configuration, hardening, keys, database,
 * then the event loops. Every failure before the loops start is one line on
 * stderr and exit code 2.
 */
#include "tokend/store/audit_chain.h"
#include "tokend/core/config.h"
#include "tokend/store/db.h"
#include "tokend/http/httpc.h"
#include "tokend/vault/keyring.h"
#include "tokend/vault/audit_seal.h"
#include "tokend/core/log.h"
#include "tokend/server.h"
#include "tokend/events/webhooks.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define EXIT_CONFIG 2

static int refuse(const char *what, const char *why)
{
    fprintf(stderr, "tokend: %s%s%s\n", what, why != NULL && why[0] ? ": " : "", why ? why : "");
    return EXIT_CONFIG;
}

/* The chainer's hook: seals the blocks it made (block MACs and signed checkpoints). */
static bool on_chained(void *ctx, PGconn *pg)
{
    static time_t last_warn;
    int sealed = 0;
    tok_status st = tok_audit_sealer_pass(ctx, pg, &sealed);
    if (st == TOK_OK)
        return sealed == TOK_AUDIT_SEAL_BATCH;
    time_t now = time(NULL);
    if (now - last_warn >= 10) { /* the chainer's thread only: no race on last_warn */
        last_warn = now;
        tok_log_err("%s: audit blocks not sealed: %s", __func__,
                    st == TOK_ERR_CRYPTO ? "a block sealed earlier lost its MAC (audit.blocks rewritten?)"
                    : st == TOK_ERR_IO   ? "cannot write the checkpoint file"
                                         : tok_status_name(st));
    }
    return true;
}

int main(int argc, char **argv)
{
    static struct tok_config cfg;
    static struct tok_app app;
    char why[TOK_CONFIG_WHY_MAX] = "";
    const char *cwhy = NULL;

    if (sodium_init() < 0)
        return refuse("libsodium failed to initialise", NULL);
    if (tok_harden_process(&cwhy) != TOK_OK)
        return refuse("cannot disable core dumps", cwhy);

    tok_config_defaults(&cfg);
    if (tok_config_load(&cfg, argc, argv, why, sizeof why) != TOK_OK)
        return refuse("bad configuration", why);
    if (cfg.show_help) {
        fputs(tok_config_usage(), stdout);
        return 0;
    }
    if (cfg.show_version) {
        printf("tokend %s\n", TOKEND_VERSION);
        return 0;
    }
    if (tok_config_validate(&cfg, why, sizeof why) != TOK_OK)
        return refuse("bad configuration", why);
    tok_log_set_level(cfg.log_level);

    struct tok_keyring *kr = NULL;
    if (tok_keyring_load_file(cfg.master_key_file, &kr, &cwhy) != TOK_OK)
        return refuse("cannot load the master key", cwhy);

    struct tok_db_config dbc = {cfg.db_conninfo, cfg.db_threads, cfg.db_batch_max,
                                cfg.db_batch_window_us};
    struct tok_db *db = NULL;
    if (tok_db_open(&dbc, &db, why, sizeof why) != TOK_OK) {
        tok_keyring_free(&kr);
        return refuse("cannot connect to the database", why);
    }
    /* reports read through their own role and pool, so a bug there cannot reach a ciphertext */
    struct tok_db *rdb = NULL;
    if (cfg.reporting_conninfo[0] != '\0') {
        struct tok_db_config rdc = {cfg.reporting_conninfo, 2, 1, 0};
        if (tok_db_open(&rdc, &rdb, why, sizeof why) != TOK_OK) {
            tok_db_close(&db);
            tok_keyring_free(&kr);
            return refuse("cannot connect to the reporting database", why);
        }
    }
    /* gateway HTTPS client: its own thread, like the database's (httpc.h) */
    struct tok_httpc_config hc = {cfg.gateway_ca_file, cfg.gateway_connect_timeout_ms,
                                  cfg.gateway_timeout_ms, cfg.gateway_max_connections,
                                  cfg.gateway_max_inflight};
    struct tok_httpc *httpc = NULL;
    tok_status hst = tok_httpc_new(&hc, &httpc);
    if (hst != TOK_OK) {
        tok_db_close(&db);
        tok_keyring_free(&kr);
        return refuse("cannot start the gateway HTTP client",
                      hst == TOK_ERR_INPUT ? "cannot read --gateway-ca-file" : tok_status_name(hst));
    }
    /* outbound webhooks: their own thread and connection (webhooks.h) */
    struct tok_webhook_deliver_config wdc = {cfg.db_conninfo, cfg.webhook_allow_http_loopback,
                                             cfg.webhook_retry_base_ms, 0, 0, 0};
    struct tok_webhook_deliverer *wd = NULL;
    if (tok_webhook_deliverer_new(&wdc, kr, &wd, why, sizeof why) != TOK_OK) {
        tok_db_close(&db);
        tok_keyring_free(&kr);
        return refuse("cannot start webhook deliveries", why);
    }
    if (cfg.webhook_allow_http_loopback)
        tok_log_warn("%s: --webhook-allow-http-loopback is for tests only", __func__);
    /* the audit key (keyring.h) keys the chain's blocks and signs checkpoints (audit_seal.h) */
    struct tok_audit_key *ak = NULL;
    struct tok_audit_sealer *sealer = NULL;
    if (cfg.audit_key_file[0] != '\0') {
        tok_status ast = tok_audit_key_load_file(cfg.audit_key_file, &ak, &cwhy);
        if (ast == TOK_OK)
            ast = tok_audit_sealer_new(ak, cfg.audit_checkpoints, &sealer, why, sizeof why);
        else
            snprintf(why, sizeof why, "%s", cwhy != NULL ? cwhy : tok_status_name(ast));
        if (ast != TOK_OK) {
            tok_audit_key_free(&ak);
            tok_webhook_deliverer_free(&wd);
            tok_db_close(&db);
            tok_keyring_free(&kr);
            return refuse("cannot load the audit key", why);
        }
    } else {
        tok_log_warn("%s: no --audit-key-file: the audit chain is not keyed and no checkpoints"
                     " are written (SECURITY.md)", __func__);
    }
    struct tok_audit_chain_hook hook = {sealer != NULL ? on_chained : NULL, sealer};
    /* tokend's audit rows are hash-chained by a thread of their own (audit_chain.h) */
    struct tok_audit_chainer *chainer = NULL;
    if (tok_audit_chainer_new(cfg.db_conninfo, cfg.audit_chain_interval_ms, &hook, &chainer, why,
                              sizeof why) != TOK_OK) {
        tok_audit_sealer_free(&sealer);
        tok_audit_key_free(&ak);
        tok_webhook_deliverer_free(&wd);
        tok_db_close(&db);
        tok_keyring_free(&kr);
        return refuse("cannot start the audit chainer", why);
    }
    tok_config_wipe(&cfg); /* the db module keeps its own locked copy */

    app.cfg = &cfg;
    app.db = db;
    app.httpc = httpc;
    app.reporting_db = rdb;
    app.keyring = kr;
    if (tok_server_init(&app, why, sizeof why) != TOK_OK) {
        tok_audit_chainer_free(&chainer);
        tok_audit_sealer_free(&sealer);
        tok_audit_key_free(&ak);
        tok_webhook_deliverer_free(&wd);
        tok_db_close(&rdb);
        tok_db_close(&db);
        tok_keyring_free(&kr);
        tok_httpc_free(&httpc);
        return refuse("cannot start", why);
    }
    tok_status st = tok_server_run(&app);
    tok_webhook_deliverer_free(&wd);
    tok_db_close(&app.db); /* every request's rows committed: the chainer's last pass takes them */
    tok_audit_chainer_free(&chainer);
    tok_audit_sealer_free(&sealer);
    tok_audit_key_free(&ak);
    tok_httpc_free(&app.httpc); /* the loops have stopped: no one waits for an answer */
    tok_db_close(&app.reporting_db);
    tok_keyring_free(&app.keyring);
    tok_log_info("%s: stopped", __func__);
    return st == TOK_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
