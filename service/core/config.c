/*
 * config.c - flags and TOKEND_* environment variables, one table for both so
 * the help text, the parser and README's configuration table agree.
 */
#include "tokend/core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum opt_kind { OPT_STR, OPT_UINT, OPT_MILLI, OPT_LEVEL, OPT_ACCESS, OPT_FLAG };

struct opt {
    const char *flag; /* long option name */
    const char *env;
    enum opt_kind kind;
    size_t off;      /* offset of the field in struct tok_config */
    size_t size;     /* string capacity */
    unsigned min, max;
    const char *help;
};

#define STR(field) OPT_STR, offsetof(struct tok_config, field), sizeof(((struct tok_config *)0)->field), 0, 0
#define UINT(field, lo, hi) OPT_UINT, offsetof(struct tok_config, field), 0, lo, hi
/* a decimal with up to 3 places ("0.25"), stored in thousandths; lo and hi in whole units */
#define MILLI(field, lo, hi) OPT_MILLI, offsetof(struct tok_config, field), 0, lo, hi

static const struct opt opts[] = {
    {"listen", "TOKEND_LISTEN", STR(listen_h2c), "cleartext h2c (prior knowledge) address host:port, '' = off"},
    {"listen-tls", "TOKEND_LISTEN_TLS", STR(listen_tls), "TLS (h2, http/1.1) address host:port, '' = off"},
    {"metrics-listen", "TOKEND_METRICS_LISTEN", STR(metrics_listen), "Prometheus /metrics address host:port, its own listener, '' = off (default off)"},
    {"tls-cert", "TOKEND_TLS_CERT", STR(tls_cert), "PEM certificate chain for the TLS listener"},
    {"tls-key", "TOKEND_TLS_KEY", STR(tls_key), "PEM private key for the TLS listener"},
    {"db", "TOKEND_DB", STR(db_conninfo), "libpq connection string (service role)"},
    {"reporting-db", "TOKEND_REPORTING_DB", STR(reporting_conninfo), "libpq connection string (reporting role), '' = reports off"},
    {"master-key-file", "TOKEND_MASTER_KEY_FILE", STR(master_key_file), "master key file (the current version; 32 bytes, or 128 hex from keys new-master), mode 0600"},
    {"master-key-previous", "TOKEND_MASTER_KEY_PREVIOUS", STR(master_key_previous), "the previous master key version's file while a master rotation runs (SECURITY.md), mode 0600; '' = none"},
    {"master-key-previous-pkcs11", "TOKEND_MASTER_KEY_PREVIOUS_PKCS11", STR(master_key_previous_pkcs11), "the previous master key version in a PKCS#11 token instead (RFC 7512 URI) while a master rotation runs; '' = none"},
    {"master-key-previous-pin-file", "TOKEND_MASTER_KEY_PREVIOUS_PIN_FILE", STR(master_key_previous_pin_file), "that token's user PIN, mode 0600 (default: the URI's pin-source, else --master-key-pin-file)"},
    {"master-key-pkcs11", "TOKEND_MASTER_KEY_PKCS11", STR(master_key_pkcs11), "the master key in a PKCS#11 token instead: pkcs11:token=...;object=...[?module-path=...] (RFC 7512)"},
    {"master-key-pin-file", "TOKEND_MASTER_KEY_PIN_FILE", STR(master_key_pin_file), "that token's user PIN, mode 0600 (or pin-source=file:... in the URI)"},
    {"threads", "TOKEND_THREADS", UINT(threads, 1, TOK_THREADS_MAX), "event-loop threads (default: CPUs)"},
    {"db-threads", "TOKEND_DB_THREADS", UINT(db_threads, 1, TOK_DB_THREADS_MAX), "database connections/threads"},
    {"db-batch-max", "TOKEND_DB_BATCH_MAX", UINT(db_batch_max, 1, 4096), "most requests grouped into one commit"},
    {"db-batch-window-us", "TOKEND_DB_BATCH_WINDOW_US", UINT(db_batch_window_us, 0, 100000), "wait to fill a batch (microseconds)"},
    {"gateway-ca-file", "TOKEND_GATEWAY_CA_FILE", STR(gateway_ca_file), "PEM CA bundle trusted for gateway TLS (default: system store)"},
    {"gateway-connect-timeout-ms", "TOKEND_GATEWAY_CONNECT_TIMEOUT_MS", UINT(gateway_connect_timeout_ms, 1, 600000), "gateway connect timeout (default 2000)"},
    {"gateway-timeout-ms", "TOKEND_GATEWAY_TIMEOUT_MS", UINT(gateway_timeout_ms, 1, 600000), "whole gateway request timeout (default 15000)"},
    {"gateway-max-connections", "TOKEND_GATEWAY_MAX_CONNECTIONS", UINT(gateway_max_connections, 1, TOK_HTTPC_MAX_CONNECTIONS_MAX), "connections per gateway host; each HTTP/2 one carries 100 calls at once (default 64)"},
    {"gateway-max-inflight", "TOKEND_GATEWAY_MAX_INFLIGHT", UINT(gateway_max_inflight, 1, TOK_HTTPC_MAX_INFLIGHT_MAX), "gateway calls running at once; later ones wait in order (default 512)"},
    {"body-limit", "TOKEND_BODY_LIMIT", UINT(body_limit, 256, TOK_BODY_LIMIT_MAX), "largest request body in bytes"},
    {"max-connections", "TOKEND_MAX_CONNECTIONS", UINT(max_connections, 1, TOK_MAX_CONNECTIONS_MAX), "open client connections; past it new ones are closed at once (default 10000, bounded by the file descriptor limit)"},
    {"handshake-timeout-ms", "TOKEND_HANDSHAKE_TIMEOUT_MS", UINT(handshake_timeout_ms, 100, 600000), "accept to first complete request: TLS handshake, HTTP/2 preface (default 5000)"},
    {"idle-timeout-ms", "TOKEND_IDLE_TIMEOUT_MS", UINT(idle_timeout_ms, 100, 3600000), "close a connection with no request in flight this long; PINGs do not count (default 60000)"},
    {"h2-reset-budget", "TOKEND_H2_RESET_BUDGET", UINT(h2_reset_budget, 1, 100000), "HTTP/2 requests a connection may cancel beyond those it completes, then it is closed (default 100)"},
    {"header-limit", "TOKEND_HEADER_LIMIT", UINT(header_limit, 1024, 262144), "request header bytes (names and values); more is 431 (default 32768)"},
    {"webhook-allow-http-loopback", NULL, OPT_FLAG, offsetof(struct tok_config, webhook_allow_http_loopback), 0, 0, 0, "TEST ONLY: allow http:// webhook endpoints on loopback (default: https only)"},
    {"webhook-retry-base-ms", "TOKEND_WEBHOOK_RETRY_BASE_MS", UINT(webhook_retry_base_ms, 100, 3600000), "first webhook retry delay, doubled per try (default 10000)"},
    {"audit-key-file", "TOKEND_AUDIT_KEY_FILE", STR(audit_key_file), "32-byte audit key (block MACs, checkpoint signatures), mode 0600; '' = audit log not keyed"},
    {"audit-checkpoints", "TOKEND_AUDIT_CHECKPOINTS", STR(audit_checkpoints), "append a signed checkpoint line per sealed audit block to this file ('-' = stdout); needs --audit-key-file"},
    {"audit-chain-interval-ms", "TOKEND_AUDIT_CHAIN_INTERVAL_MS", UINT(audit_chain_interval_ms, 10, 60000), "how often tokend's new audit rows are hash-chained (default 100)"},
    {"dedup-hits-max", "TOKEND_DEDUP_HITS_MAX", UINT(dedup_hits_max, 1, TOK_DEDUP_HITS_MAX), "de-duplication hits per secret key per window, then 429 (default 1000)"},
    {"dedup-window-s", "TOKEND_DEDUP_WINDOW_S", UINT(dedup_window_s, 1, TOK_DEDUP_WINDOW_MAX_S), "that window in seconds (default 3600)"},
    {"rate-tokenise", "TOKEND_RATE_TOKENISE", MILLI(rate_tokenise_milli, 0, TOK_RATE_OPT_MAX), "tokenisations per second per API key (decimals allowed), 0 = no limit (default 100)"},
    {"burst-tokenise", "TOKEND_BURST_TOKENISE", UINT(burst_tokenise, 1, TOK_RATE_OPT_MAX), "tokenisations a key may save up (default 500)"},
    {"rate-charge", "TOKEND_RATE_CHARGE", MILLI(rate_charge_milli, 0, TOK_RATE_OPT_MAX), "charges, captures, voids, refunds per second per API key, 0 = no limit (default 100)"},
    {"burst-charge", "TOKEND_BURST_CHARGE", UINT(burst_charge, 1, TOK_RATE_OPT_MAX), "charge calls a key may save up (default 500)"},
    {"rate-auth-failures", "TOKEND_RATE_AUTH_FAILURES", MILLI(rate_auth_fail_milli, 0, TOK_RATE_OPT_MAX), "failed authentications per second per client address, 0 = no limit (default 5)"},
    {"burst-auth-failures", "TOKEND_BURST_AUTH_FAILURES", UINT(burst_auth_fail, 1, TOK_RATE_OPT_MAX), "failed authentications an address may save up (default 100)"},
    {"auth-cache-ttl-ms", "TOKEND_AUTH_CACHE_TTL_MS", UINT(auth_cache_ttl_ms, 100, 3600000), "how long a cached API key is trusted without a change notification (default 3000)"},
    {"log-level", "TOKEND_LOG_LEVEL", OPT_LEVEL, offsetof(struct tok_config, log_level), 0, 0, 0, "debug|info|warn|error"},
    {"access-log", "TOKEND_ACCESS_LOG", OPT_ACCESS, offsetof(struct tok_config, access_log), 0, 0, 0, "all|sample:N|errors|off: every answer, 1 in N, or none; 5xx, 401 and 403 are logged in every mode but off (default all)"},
    {"help", NULL, OPT_FLAG, offsetof(struct tok_config, show_help), 0, 0, 0, "this text"},
    {"version", NULL, OPT_FLAG, offsetof(struct tok_config, show_version), 0, 0, 0, "print the version"},
};

void tok_config_defaults(struct tok_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_h2c, sizeof cfg->listen_h2c, "127.0.0.1:8080");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = n < 1 ? 1 : n > TOK_THREADS_MAX ? TOK_THREADS_MAX : (unsigned)n;
    cfg->db_threads = 2;
    cfg->db_batch_max = 256;
    cfg->db_batch_window_us = 0;
    cfg->body_limit = TOK_BODY_LIMIT_DEFAULT;
    cfg->max_connections = TOK_MAX_CONNECTIONS_DEFAULT;
    cfg->handshake_timeout_ms = TOK_HANDSHAKE_TIMEOUT_MS_DEFAULT;
    cfg->idle_timeout_ms = TOK_IDLE_TIMEOUT_MS_DEFAULT;
    cfg->h2_reset_budget = TOK_H2_RESET_BUDGET_DEFAULT;
    cfg->header_limit = TOK_HEADER_LIMIT_DEFAULT;
    cfg->gateway_connect_timeout_ms = 2000;
    cfg->gateway_timeout_ms = 15000;
    cfg->gateway_max_connections = TOK_HTTPC_MAX_CONNECTIONS_DEFAULT;
    cfg->gateway_max_inflight = TOK_HTTPC_MAX_INFLIGHT_DEFAULT;
    cfg->log_level = TOK_LOG_INFO;
    cfg->webhook_retry_base_ms = 10000;
    cfg->audit_chain_interval_ms = 100;
    cfg->dedup_hits_max = TOK_DEDUP_HITS_DEFAULT;
    cfg->dedup_window_s = TOK_DEDUP_WINDOW_DEFAULT_S;
    cfg->rate_tokenise_milli = TOK_RATE_TOKENISE_DEFAULT_MILLI;
    cfg->burst_tokenise = TOK_BURST_TOKENISE_DEFAULT;
    cfg->rate_charge_milli = TOK_RATE_CHARGE_DEFAULT_MILLI;
    cfg->burst_charge = TOK_BURST_CHARGE_DEFAULT;
    cfg->rate_auth_fail_milli = TOK_RATE_AUTH_FAIL_DEFAULT_MILLI;
    cfg->burst_auth_fail = TOK_BURST_AUTH_FAIL_DEFAULT;
    cfg->auth_cache_ttl_ms = TOK_AUTH_CACHE_TTL_DEFAULT_MS;
}

/* "all", "errors", "off" or "sample:N" (N from 1 to TOK_ACCESS_SAMPLE_MAX; sample:1 is all) */
static tok_status parse_access_log(struct tok_config *cfg, const struct opt *o, const char *v,
                                   char *why, size_t why_len)
{
    static const struct {
        const char *name;
        enum tok_access_log mode;
    } modes[] = {{"all", TOK_ACCESS_ALL}, {"errors", TOK_ACCESS_ERRORS}, {"off", TOK_ACCESS_OFF}};
    for (size_t i = 0; i < TOK_ARRAY_LEN(modes); i++) {
        if (strcmp(v, modes[i].name) == 0) {
            cfg->access_log = modes[i].mode;
            cfg->access_log_sample = 0;
            return TOK_OK;
        }
    }
    static const char prefix[] = "sample:";
    if (strncmp(v, prefix, sizeof prefix - 1) == 0) {
        const char *n = v + sizeof prefix - 1;
        char *end = NULL;
        errno = 0;
        unsigned long every = strtoul(n, &end, 10);
        if (n[0] >= '0' && n[0] <= '9' && errno == 0 && end != n && *end == '\0' && every >= 1 &&
            every <= TOK_ACCESS_SAMPLE_MAX) {
            cfg->access_log = every == 1 ? TOK_ACCESS_ALL : TOK_ACCESS_SAMPLE;
            cfg->access_log_sample = (unsigned)every;
            return TOK_OK;
        }
    }
    snprintf(why, why_len, "--%s must be all, errors, off or sample:N (N from 1 to %u)", o->flag,
             TOK_ACCESS_SAMPLE_MAX);
    return TOK_ERR_INPUT;
}

static tok_status set_value(struct tok_config *cfg, const struct opt *o, const char *v, char *why,
                            size_t why_len)
{
    char *field = (char *)cfg + o->off;
    switch (o->kind) {
    case OPT_STR:
        if (strlen(v) >= o->size) {
            snprintf(why, why_len, "--%s is too long (max %zu bytes)", o->flag, o->size - 1);
            return TOK_ERR_INPUT;
        }
        snprintf(field, o->size, "%s", v);
        return TOK_OK;
    case OPT_UINT: {
        char *end = NULL;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n < o->min || n > o->max) {
            snprintf(why, why_len, "--%s must be a whole number from %u to %u", o->flag, o->min,
                     o->max);
            return TOK_ERR_INPUT;
        }
        if (o->off == offsetof(struct tok_config, body_limit))
            cfg->body_limit = (uint32_t)n;
        else
            *(unsigned *)(void *)field = (unsigned)n;
        return TOK_OK;
    }
    case OPT_MILLI: {
        /* digits, then optionally '.' and 1 to 3 digits: no sign, exponent or locale */
        unsigned long long whole = 0, frac = 0;
        size_t i = 0, nd = 0, nf = 0;
        for (; v[i] >= '0' && v[i] <= '9' && nd < 10; i++, nd++)
            whole = whole * 10 + (unsigned)(v[i] - '0');
        if (v[i] == '.')
            for (i++; v[i] >= '0' && v[i] <= '9' && nf < 3; i++, nf++)
                frac = frac * 10 + (unsigned)(v[i] - '0');
        for (size_t k = nf; k < 3; k++)
            frac *= 10;
        if (nd == 0 || v[i] != '\0' || (v[nd] == '.' && nf == 0) || whole > o->max ||
            whole * 1000 + frac > (unsigned long long)o->max * 1000 ||
            whole * 1000 + frac < (unsigned long long)o->min * 1000) {
            snprintf(why, why_len, "--%s must be a number from %u to %u (up to 3 decimals)",
                     o->flag, o->min, o->max);
            return TOK_ERR_INPUT;
        }
        *(unsigned *)(void *)field = (unsigned)(whole * 1000 + frac);
        return TOK_OK;
    }
    case OPT_LEVEL:
        if (tok_log_parse_level(v, &cfg->log_level) != TOK_OK) {
            snprintf(why, why_len, "--%s must be debug, info, warn or error", o->flag);
            return TOK_ERR_INPUT;
        }
        return TOK_OK;
    case OPT_ACCESS:
        return parse_access_log(cfg, o, v, why, why_len);
    case OPT_FLAG:
        *(bool *)(void *)field = true;
        return TOK_OK;
    default:
        return TOK_ERR_INTERNAL;
    }
}

tok_status tok_config_load(struct tok_config *cfg, int argc, char **argv, char *why, size_t why_len)
{
    for (size_t i = 0; i < TOK_ARRAY_LEN(opts); i++) {
        const char *v = opts[i].env != NULL ? getenv(opts[i].env) : NULL;
        if (v != NULL)
            TOK_GUARD(set_value(cfg, &opts[i], v, why, why_len));
    }
    struct option lopts[TOK_ARRAY_LEN(opts) + 1];
    memset(lopts, 0, sizeof lopts);
    for (size_t i = 0; i < TOK_ARRAY_LEN(opts); i++) {
        lopts[i].name = opts[i].flag;
        lopts[i].has_arg = opts[i].kind == OPT_FLAG ? no_argument : required_argument;
        lopts[i].val = 0;
    }
    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, "hV", lopts, &idx);
        if (c == -1)
            break;
        if (c == 'h') {
            cfg->show_help = true;
            continue;
        }
        if (c == 'V') {
            cfg->show_version = true;
            continue;
        }
        if (c != 0 || idx < 0) {
            const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
            snprintf(why, why_len, "unknown or incomplete option '%.64s' (see --help)", arg);
            return TOK_ERR_INPUT;
        }
        TOK_GUARD(set_value(cfg, &opts[idx], optarg != NULL ? optarg : "", why, why_len));
    }
    if (optind < argc) {
        snprintf(why, why_len, "unexpected argument '%.64s' (see --help)", argv[optind]);
        return TOK_ERR_INPUT;
    }
    return TOK_OK;
}

tok_status tok_config_parse_addr(const char *s, struct sockaddr *addr, unsigned *addr_len)
{
    TOK_ENSURE(s != NULL && addr != NULL && addr_len != NULL, TOK_ERR_INTERNAL);
    char host[TOK_ADDR_MAX];
    const char *colon = strrchr(s, ':');
    TOK_ENSURE(colon != NULL && colon != s, TOK_ERR_INPUT);
    size_t hlen = (size_t)(colon - s);
    TOK_ENSURE(hlen < sizeof host, TOK_ERR_INPUT);
    const char *h = s;
    if (s[0] == '[') {
        TOK_ENSURE(hlen >= 2 && s[hlen - 1] == ']', TOK_ERR_INPUT);
        h = s + 1;
        hlen -= 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)hlen, h);
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    TOK_ENSURE(errno == 0 && end != colon + 1 && *end == '\0' && port >= 1 && port <= 65535,
               TOK_ERR_INPUT);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    memset(&v4, 0, sizeof v4);
    memset(&v6, 0, sizeof v6);
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        TOK_ENSURE(*addr_len >= sizeof v4, TOK_ERR_BOUNDS);
        v4.sin_family = AF_INET;
        v4.sin_port = htons((uint16_t)port);
        tok_copy(addr, &v4, sizeof v4);
        *addr_len = sizeof v4;
        return TOK_OK;
    }
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        TOK_ENSURE(*addr_len >= sizeof v6, TOK_ERR_BOUNDS);
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons((uint16_t)port);
        tok_copy(addr, &v6, sizeof v6);
        *addr_len = sizeof v6;
        return TOK_OK;
    }
    return TOK_ERR_INPUT;
}

tok_status tok_config_validate(const struct tok_config *cfg, char *why, size_t why_len)
{
    struct sockaddr_storage ss;
    unsigned len = sizeof ss;
    if (cfg->audit_checkpoints[0] != '\0' && cfg->audit_key_file[0] == '\0') {
        snprintf(why, why_len, "--audit-checkpoints needs --audit-key-file (checkpoints are signed)");
        return TOK_ERR_INPUT;
    }
    if (cfg->master_key_file[0] == '\0' && cfg->master_key_pkcs11[0] == '\0') {
        snprintf(why, why_len, "no master key file: set --master-key-file or TOKEND_MASTER_KEY_FILE"
                               " (or --master-key-pkcs11)");
        return TOK_ERR_INPUT;
    }
    if (cfg->master_key_file[0] != '\0' && cfg->master_key_pkcs11[0] != '\0') {
        snprintf(why, why_len, "give --master-key-file or --master-key-pkcs11, not both");
        return TOK_ERR_INPUT;
    }
    if (cfg->master_key_pin_file[0] != '\0' && cfg->master_key_pkcs11[0] == '\0') {
        snprintf(why, why_len, "--master-key-pin-file is for --master-key-pkcs11");
        return TOK_ERR_INPUT;
    }
    if (cfg->master_key_previous[0] != '\0' && cfg->master_key_previous_pkcs11[0] != '\0') {
        snprintf(why, why_len,
                 "give --master-key-previous or --master-key-previous-pkcs11, not both");
        return TOK_ERR_INPUT;
    }
    if (cfg->master_key_previous_pin_file[0] != '\0' &&
        cfg->master_key_previous_pkcs11[0] == '\0') {
        snprintf(why, why_len,
                 "--master-key-previous-pin-file is for --master-key-previous-pkcs11");
        return TOK_ERR_INPUT;
    }
    if (cfg->db_conninfo[0] == '\0') {
        snprintf(why, why_len, "no database: set --db or TOKEND_DB (a libpq connection string)");
        return TOK_ERR_INPUT;
    }
    if (cfg->listen_h2c[0] == '\0' && cfg->listen_tls[0] == '\0') {
        snprintf(why, why_len, "no listener: set --listen and/or --listen-tls");
        return TOK_ERR_INPUT;
    }
    if (cfg->listen_h2c[0] != '\0' && tok_config_parse_addr(cfg->listen_h2c, (struct sockaddr *)&ss, &len) != TOK_OK) {
        snprintf(why, why_len, "bad --listen address '%.64s' (want host:port)", cfg->listen_h2c);
        return TOK_ERR_INPUT;
    }
    len = sizeof ss;
    if (cfg->metrics_listen[0] != '\0' &&
        tok_config_parse_addr(cfg->metrics_listen, (struct sockaddr *)&ss, &len) != TOK_OK) {
        snprintf(why, why_len, "bad --metrics-listen address '%.64s' (want host:port)",
                 cfg->metrics_listen);
        return TOK_ERR_INPUT;
    }
    len = sizeof ss;
    if (cfg->listen_tls[0] != '\0') {
        if (tok_config_parse_addr(cfg->listen_tls, (struct sockaddr *)&ss, &len) != TOK_OK) {
            snprintf(why, why_len, "bad --listen-tls address '%.64s' (want host:port)", cfg->listen_tls);
            return TOK_ERR_INPUT;
        }
        if (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0') {
            snprintf(why, why_len, "--listen-tls needs --tls-cert and --tls-key");
            return TOK_ERR_INPUT;
        }
    }
    return TOK_OK;
}

const char *tok_config_usage(void)
{
    static char text[8192];
    if (text[0] != '\0')
        return text;
    struct tok_buf b;
    tok_buf_init(&b, text, sizeof text - 1);
    if (tok_buf_puts(&b, "usage: tokend [options]\n\noptions (each also read from its environment variable):\n") != TOK_OK)
        return "usage: tokend [options]\n";
    for (size_t i = 0; i < TOK_ARRAY_LEN(opts); i++) {
        if (tok_buf_printf(&b, "  --%-20s %-26s %s\n", opts[i].flag,
                           opts[i].env != NULL ? opts[i].env : "", opts[i].help) != TOK_OK)
            break;
    }
    text[b.len] = '\0';
    return text;
}

void tok_config_wipe(struct tok_config *cfg)
{
    sodium_memzero(cfg->db_conninfo, sizeof cfg->db_conninfo);
    sodium_memzero(cfg->reporting_conninfo, sizeof cfg->reporting_conninfo);
}
