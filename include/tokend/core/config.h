/*
 * config.h - tokend's configuration: command-line flags override TOKEND_*
 * environment variables, which override the defaults below.
 */
#ifndef TOKEND_CONFIG_H
#define TOKEND_CONFIG_H

#include "tokend/core/common.h"
#include "tokend/core/log.h"

/* The gateway client's limits (httpc.h), here because the options bound them. */
/* connections per gateway host (HTTP/2: each carries up to TOK_HTTPC_STREAMS calls) */
#define TOK_HTTPC_MAX_CONNECTIONS_DEFAULT 64u
#define TOK_HTTPC_MAX_CONNECTIONS_MAX 1024u
/* calls libcurl runs at once (each costs it ~30 KiB); later ones wait in order */
#define TOK_HTTPC_MAX_INFLIGHT_DEFAULT 512u
#define TOK_HTTPC_MAX_INFLIGHT_MAX 65536u

/* De-duplication hits a secret key gets per window (dedup_guard.h, SECURITY.md "PAN oracle") */
#define TOK_DEDUP_HITS_DEFAULT 1000u
#define TOK_DEDUP_HITS_MAX 10000000u
#define TOK_DEDUP_WINDOW_DEFAULT_S 3600u
#define TOK_DEDUP_WINDOW_MAX_S 604800u /* a week */

#define TOK_BODY_LIMIT_DEFAULT (64u * 1024u)
#define TOK_BODY_LIMIT_MAX (16u * 1024u * 1024u)
#define TOK_THREADS_MAX 64
#define TOK_DB_THREADS_MAX 32
#define TOK_ADDR_MAX 128
#define TOK_PATH_MAX 1024
#define TOK_CONNINFO_MAX 2048
#define TOK_PKCS11_URI_CFG_MAX 1025 /* TOK_PKCS11_URI_MAX (vault/master_key.h) and a NUL */
#define TOK_CONFIG_WHY_MAX 256
/* the edge (issue #15): connection cap, deadlines, HTTP/2 reset budget, request headers */
#define TOK_MAX_CONNECTIONS_DEFAULT 10000u
#define TOK_MAX_CONNECTIONS_MAX 1000000u
#define TOK_HANDSHAKE_TIMEOUT_MS_DEFAULT 5000u
#define TOK_IDLE_TIMEOUT_MS_DEFAULT 60000u
#define TOK_H2_RESET_BUDGET_DEFAULT 100u
#define TOK_HEADER_LIMIT_DEFAULT (32u * 1024u) /* bytes of request header names and values */
#define TOK_HEADERS_MAX 100u                   /* request header fields (h2o's HTTP/1 limit) */

/* Rate limits (ratelimit.h): rates in thousandths of a token per second (the options take
 * decimals: "0.5" is 500); a rate of 0 turns a class off. The defaults are Stripe's order
 * of magnitude for one account (100 writes/s); bench/run.sh raises them. */
#define TOK_RATE_TOKENISE_DEFAULT_MILLI 100000u
#define TOK_BURST_TOKENISE_DEFAULT 500u
#define TOK_RATE_CHARGE_DEFAULT_MILLI 100000u
#define TOK_BURST_CHARGE_DEFAULT 500u
#define TOK_RATE_AUTH_FAIL_DEFAULT_MILLI 5000u
#define TOK_BURST_AUTH_FAIL_DEFAULT 100u
#define TOK_RATE_OPT_MAX 1000000u /* per second, and the largest burst */
/* How long a loop thread trusts a cached API key when no change notification came (the
 * backstop: revocations arrive by LISTEN/NOTIFY at once, see auth.h) */
#define TOK_AUTH_CACHE_TTL_DEFAULT_MS 3000u

/* The access log (http.c): every answer, 1 in N, errors only, or none. Errors (5xx, and the
 * 401/403 of failed authentication and authorisation) are written in every mode but off. */
enum tok_access_log { TOK_ACCESS_ALL = 0, TOK_ACCESS_SAMPLE, TOK_ACCESS_ERRORS, TOK_ACCESS_OFF };
#define TOK_ACCESS_SAMPLE_MAX 1000000u

struct tok_config {
    char listen_h2c[TOK_ADDR_MAX]; /* "host:port", "" = off */
    char listen_tls[TOK_ADDR_MAX]; /* "host:port", "" = off */
    char metrics_listen[TOK_ADDR_MAX]; /* /metrics, plain HTTP/1.1; "" = off */
    char tls_cert[TOK_PATH_MAX];
    char tls_key[TOK_PATH_MAX];
    char db_conninfo[TOK_CONNINFO_MAX]; /* secret: may hold a password; never logged */
    char reporting_conninfo[TOK_CONNINFO_MAX]; /* tokend_reporting; "" = reports answer 503 */
    char master_key_file[TOK_PATH_MAX];
    char master_key_previous[TOK_PATH_MAX]; /* "" = none; during a master rotation (keyring.h) */
    char master_key_pkcs11[TOK_PKCS11_URI_CFG_MAX]; /* RFC 7512 URI, instead of the file */
    char master_key_pin_file[TOK_PATH_MAX];         /* the token's PIN (master_key.h) */
    /* the previous version in a token while a master rotation runs, and its PIN ("": the
     * URI's pin-source, else master_key_pin_file: the same token) */
    char master_key_previous_pkcs11[TOK_PKCS11_URI_CFG_MAX];
    char master_key_previous_pin_file[TOK_PATH_MAX];
    char audit_key_file[TOK_PATH_MAX];    /* "" = audit blocks not keyed (audit_seal.h) */
    char audit_checkpoints[TOK_PATH_MAX]; /* signed checkpoint sink, "-" = stdout, "" = none */
    char gateway_ca_file[TOK_PATH_MAX]; /* CA bundle for gateway TLS; "" = system store */
    unsigned gateway_connect_timeout_ms;
    unsigned gateway_timeout_ms; /* a whole gateway request */
    unsigned gateway_max_connections; /* per gateway host (httpc.h) */
    unsigned gateway_max_inflight;    /* gateway calls at once (httpc.h) */
    unsigned threads;
    unsigned db_threads;
    unsigned db_batch_max;      /* most requests grouped into one transaction */
    unsigned db_batch_window_us; /* how long a DB thread waits to fill a batch */
    uint32_t body_limit;
    unsigned max_connections;     /* open client connections, whole process */
    unsigned handshake_timeout_ms; /* accept -> first complete request (TLS, h2c preface) */
    unsigned idle_timeout_ms;      /* a connection with no request in flight */
    unsigned h2_reset_budget;      /* HTTP/2 requests cancelled beyond those completed */
    unsigned header_limit;         /* request header bytes; more is 431 */
    enum tok_log_level log_level;
    enum tok_access_log access_log;
    unsigned access_log_sample; /* TOK_ACCESS_SAMPLE: one ordinary answer in this many */
    bool webhook_allow_http_loopback; /* TEST ONLY: deliver webhooks to http://127.0.0.1 etc. */
    unsigned webhook_retry_base_ms;   /* first webhook retry delay before jitter (issue #6) */
    unsigned audit_chain_interval_ms; /* the audit chainer's period (audit_chain.h) */
    unsigned dedup_hits_max;          /* de-duplication hits per secret key per window */
    unsigned dedup_window_s;          /* that window, in seconds */
    /* per second x 1000 (ratelimit.h); rate 0 = off */
    unsigned rate_tokenise_milli, burst_tokenise;   /* per API key */
    unsigned rate_charge_milli, burst_charge;       /* per API key */
    unsigned rate_auth_fail_milli, burst_auth_fail; /* failed authentications per address */
    unsigned auth_cache_ttl_ms;               /* auth.h: the cache's backstop */
    bool show_help;
    bool show_version;
};

/** Fills the defaults (threads = number of online CPUs). */
void tok_config_defaults(struct tok_config *cfg);

/**
 * Applies TOKEND_* variables from the environment, then argv. On a bad value
 * returns TOK_ERR_INPUT and writes a one-line reason (no secret) into why.
 */
TOK_MUST_CHECK tok_status tok_config_load(struct tok_config *cfg, int argc, char **argv,
                                          char *why, size_t why_len);

/**
 * Checks cross-field rules (a key file is set, TLS has both cert and key, at
 * least one listener). TOK_ERR_INPUT with a reason.
 */
TOK_MUST_CHECK tok_status tok_config_validate(const struct tok_config *cfg, char *why,
                                              size_t why_len);

/**
 * Splits "host:port" or "[v6]:port" into a sockaddr. TOK_ERR_INPUT when
 * malformed or the port is outside 1-65535. addr_len is in/out.
 */
struct sockaddr;
TOK_MUST_CHECK tok_status tok_config_parse_addr(const char *s, struct sockaddr *addr,
                                                unsigned *addr_len);

/** The --help text. */
const char *tok_config_usage(void);

/** Wipes fields that may hold secrets (the conninfo). */
void tok_config_wipe(struct tok_config *cfg);

#endif
