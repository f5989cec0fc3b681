/*
 * tokend_main.c - the daemon: configuration, hardening, keys, database,
 * then the event loops. Every failure before the loops start is one line on
 * stderr and exit code 2.
 */
#include "tokend/store/audit_chain.h"
#include "tokend/core/config.h"
#include "tokend/http/metrics_server.h"
#include "tokend/store/db.h"
#include "tokend/store/listen.h"
#include "tokend/http/ratelimit.h"
#include "tokend/vault/auth.h"
#include "tokend/finance/recon_owner.h"
#include "tokend/http/httpc.h"
#include "tokend/vault/keyring.h"
#include "tokend/vault/master_key.h"
#include "tokend/vault/dedup_guard.h"
#include "tokend/vault/audit_seal.h"
#include "tokend/vault/rotation.h"
#include "tokend/core/log.h"
#include "tokend/server.h"
#include "tokend/events/webhooks.h"
#include "tokend/gateways/gateway_metrics.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define EXIT_CONFIG 2

/* What the limiter refused, per class, when tokend stops (the same figures a /metrics
 * endpoint would read with tok_ratelimit_stats). */
static void log_limits(const struct tok_ratelimit *rl)
{
    for (int c = 0; c < TOK_RL_CLASSES; c++) {
        struct tok_rl_stats s;
        if (tok_ratelimit_stats(rl, (enum tok_rl_class)c, &s) != TOK_OK)
            continue;
        tok_log_info("ratelimit: %s: rate %u.%03u/s burst %u: %llu allowed, %llu refused, %llu "
                     "recorded, %u buckets, %llu evicted",
                     tok_ratelimit_class_name((enum tok_rl_class)c), s.rate_milli / 1000,
                     s.rate_milli % 1000, s.burst,
                     (unsigned long long)s.allowed, (unsigned long long)s.refused,
                     (unsigned long long)s.recorded, s.entries, (unsigned long long)s.evicted);
    }
}

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
    static struct tok_gateway_stats gateway_stats;
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

    /* Everything main starts, freed in reverse on every path (NULL-safe frees). */
    struct tok_keyring *kr = NULL;
    struct tok_db *db = NULL, *rdb = NULL;
    struct tok_httpc *httpc = NULL;
    struct tok_webhook_deliverer *wd = NULL;
    struct tok_audit_chainer *chainer = NULL;
    struct tok_dedup_guard *dg = NULL;
    struct tok_ratelimit *rl = NULL;
    struct tok_auth_epochs *epochs = NULL;
    struct tok_listener *listener = NULL;
    struct tok_metrics_server *ms = NULL;
    struct tok_recon_owner *owner = NULL;
    struct tok_audit_key *ak = NULL;
    struct tok_audit_sealer *sealer = NULL;
    struct tok_db *pools[3] = {NULL, NULL, NULL};
    int rc = EXIT_CONFIG;

    /* a file, or a PKCS#11 token that keeps the KEK's bytes to itself (master_key.h) */
    struct tok_master_key_config mkc = {cfg.master_key_file, cfg.master_key_pkcs11,
                                        cfg.master_key_pin_file};
    if (tok_keyring_load(&mkc, &kr, &cwhy) != TOK_OK) {
        rc = refuse("cannot load the master key", cwhy);
        goto out;
    }
    /* during a master rotation, the version it replaces: a file or a key in a token */
    struct tok_master_key_config prev = {
        cfg.master_key_previous, cfg.master_key_previous_pkcs11,
        tok_master_key_previous_pin(cfg.master_key_previous_pkcs11,
                                    cfg.master_key_previous_pin_file, cfg.master_key_pin_file)};
    if ((prev.file[0] != '\0' || prev.pkcs11_uri[0] != '\0') &&
        tok_keyring_add_previous(kr, &prev, &cwhy) != TOK_OK) {
        rc = refuse("cannot load the previous master key", cwhy);
        goto out;
    }
    struct tok_db_config dbc = {cfg.db_conninfo, cfg.db_threads, cfg.db_batch_max,
                                cfg.db_batch_window_us, "primary"};
    if (tok_db_open(&dbc, &db, why, sizeof why) != TOK_OK) {
        rc = refuse("cannot connect to the database", why);
        goto out;
    }
    /* a key file that does not open the tenant keys in the database is refused now, not on
     * the first request of each tenant (issue #18: one line, exit 2) */
    if (tok_rotation_probe_master(cfg.db_conninfo, kr, why, sizeof why) != TOK_OK) {
        rc = refuse("master key refused", why);
        goto out;
    }
    /* reports read through their own role and pool, so a bug there cannot reach a ciphertext */
    if (cfg.reporting_conninfo[0] != '\0') {
        struct tok_db_config rdc = {cfg.reporting_conninfo, 2, 1, 0, "reporting"};
        if (tok_db_open(&rdc, &rdb, why, sizeof why) != TOK_OK) {
            rc = refuse("cannot connect to the reporting database", why);
            goto out;
        }
    }
    /* gateway HTTPS client: its own thread, like the database's (httpc.h) */
    struct tok_httpc_config hc = {cfg.gateway_ca_file, cfg.gateway_connect_timeout_ms,
                                  cfg.gateway_timeout_ms, cfg.gateway_max_connections,
                                  cfg.gateway_max_inflight};
    tok_status hst = tok_httpc_new(&hc, &httpc);
    if (hst != TOK_OK) {
        rc = refuse("cannot start the gateway HTTP client",
                    hst == TOK_ERR_INPUT ? "cannot read --gateway-ca-file" : tok_status_name(hst));
        goto out;
    }
    /* outbound webhooks: their own thread and connection (webhooks.h) */
    struct tok_webhook_deliver_config wdc = {cfg.db_conninfo, cfg.webhook_allow_http_loopback,
                                             cfg.webhook_retry_base_ms, 0, 0, 0};
    if (tok_webhook_deliverer_new(&wdc, kr, &wd, why, sizeof why) != TOK_OK) {
        rc = refuse("cannot start webhook deliveries", why);
        goto out;
    }
    if (cfg.webhook_allow_http_loopback)
        tok_log_warn("%s: --webhook-allow-http-loopback is for tests only", __func__);
    /* the audit key (keyring.h) keys the chain's blocks and signs checkpoints (audit_seal.h) */
    if (cfg.audit_key_file[0] != '\0') {
        tok_status ast = tok_audit_key_load_file(cfg.audit_key_file, &ak, &cwhy);
        if (ast == TOK_OK)
            ast = tok_audit_sealer_new(ak, cfg.audit_checkpoints, &sealer, why, sizeof why);
        else
            snprintf(why, sizeof why, "%s", cwhy != NULL ? cwhy : tok_status_name(ast));
        if (ast != TOK_OK) {
            rc = refuse("cannot load the audit key", why);
            goto out;
        }
    } else {
        tok_log_warn("%s: no --audit-key-file: the audit chain is not keyed and no checkpoints"
                     " are written (SECURITY.md)", __func__);
    }
    /* which providers serve, so an operator sees a file -> token move take effect (once every
     * start-up refusal above has had its say: those are one line) */
    tok_log_info("%s: master key: %s, previous version: %s", __func__, tok_keyring_kind(kr),
                 tok_keyring_previous_kind(kr));
    struct tok_audit_chain_hook hook = {sealer != NULL ? on_chained : NULL, sealer};
    /* tokend's audit rows are hash-chained by a thread of their own (audit_chain.h) */
    if (tok_audit_chainer_new(cfg.db_conninfo, cfg.audit_chain_interval_ms, &hook, &chainer, why,
                              sizeof why) != TOK_OK) {
        rc = refuse("cannot start the audit chainer", why);
        goto out;
    }
    /* secret keys' budget of de-duplication hits: the card oracle bounded (dedup_guard.h) */
    if (tok_dedup_guard_new(cfg.dedup_hits_max, cfg.dedup_window_s, &dg) != TOK_OK) {
        rc = refuse("cannot start", "out of memory");
        goto out;
    }
    /* rate limits shared by every loop thread (ratelimit.h) */
    struct tok_rl_limit limits[TOK_RL_CLASSES] = {
        [TOK_RL_TOKENISE] = {cfg.rate_tokenise_milli, cfg.burst_tokenise},
        [TOK_RL_CHARGE] = {cfg.rate_charge_milli, cfg.burst_charge},
        [TOK_RL_AUTH_FAIL] = {cfg.rate_auth_fail_milli, cfg.burst_auth_fail},
    };
    if (tok_ratelimit_new(limits, &rl) != TOK_OK || tok_auth_epochs_new(&epochs) != TOK_OK) {
        rc = refuse("cannot set up the rate limits", NULL);
        goto out;
    }
    /* key changes reach every loop's principal cache at once (auth.h, sql/016) */
    struct tok_listen_config lc = {cfg.db_conninfo, TOK_AUTH_NOTIFY_CHANNEL,
                                   tok_auth_on_key_notify, tok_auth_on_listen_reset, epochs};
    if (tok_listener_new(&lc, &listener, why, sizeof why) != TOK_OK) {
        rc = refuse("cannot listen for key changes", why);
        goto out;
    }
    /* reconciliation runs: this process's owner lock, and its predecessors' runs failed
     * before any request is answered (recon_owner.h) */
    if (tok_recon_owner_new(cfg.db_conninfo, &owner, why, sizeof why) != TOK_OK) {
        rc = refuse("cannot start the reconciliation owner", why);
        goto out;
    }

    tok_config_wipe(&cfg); /* the db module keeps its own locked copy */
    app.cfg = &cfg;
    app.db = db;
    app.httpc = httpc;
    app.reporting_db = rdb;
    app.keyring = kr;
    app.dedup_guard = dg;
    app.recon_owner = owner;
    app.ratelimit = rl;
    app.auth_epochs = epochs;
    app.gateway_stats = &gateway_stats;
    if (tok_server_init(&app, why, sizeof why) != TOK_OK) {
        rc = refuse("cannot start", why);
        goto out;
    }
    /* /metrics: its own listener and thread (metrics_server.h), after the loops exist */
    pools[0] = db;
    pools[1] = rdb;
    if (cfg.metrics_listen[0] != '\0') {
        if (tok_metrics_register(&app.metrics, tok_server_collect, &app) != TOK_OK ||
            tok_metrics_register(&app.metrics, tok_db_collect, pools) != TOK_OK ||
            tok_metrics_register(&app.metrics, tok_gateway_collect, &gateway_stats) != TOK_OK ||
            tok_metrics_register(&app.metrics, tok_webhook_collect, wd) != TOK_OK ||
            tok_metrics_register(&app.metrics, tok_audit_chain_collect, chainer) != TOK_OK ||
            tok_metrics_register(&app.metrics, tok_ratelimit_collect, rl) != TOK_OK ||
            (sealer != NULL &&
             tok_metrics_register(&app.metrics, tok_audit_sealer_collect, sealer) != TOK_OK) ||
            tok_metrics_server_start(cfg.metrics_listen, &app.metrics, &ms, why, sizeof why) !=
                TOK_OK) {
            rc = refuse("cannot serve metrics", why);
            goto out;
        }
        tok_log_info("%s: metrics on http://%s/metrics", __func__, cfg.metrics_listen);
    }
    rc = tok_server_run(&app) == TOK_OK ? EXIT_SUCCESS : EXIT_FAILURE;
    log_limits(rl);
out:
    tok_metrics_server_stop(&ms);
    tok_listener_free(&listener); /* before the epochs it writes to */
    tok_webhook_deliverer_free(&wd);
    tok_db_close(&db); /* every request's rows committed: the chainer's last pass takes them */
    /* after the pool, whose last jobs may be runs' final updates; a run this stop cut off is
     * failed by the next tokend's reaper (or a running neighbour's) once the lock is gone */
    tok_recon_owner_free(&owner);
    tok_audit_chainer_free(&chainer);
    tok_audit_sealer_free(&sealer);
    tok_audit_key_free(&ak);
    tok_httpc_free(&httpc); /* the loops have stopped: no one waits for an answer */
    tok_db_close(&rdb);
    tok_keyring_free(&kr);
    tok_dedup_guard_free(&dg);
    tok_ratelimit_free(&rl);
    tok_auth_epochs_free(&epochs);
    tok_config_wipe(&cfg);
    if (rc != EXIT_CONFIG)
        tok_log_info("%s: stopped", __func__);
    return rc;
}
