/*
 * webhooks_deliver.c - the delivery thread: takes due outbox rows of every
 * tenant (ledger.deliveries_claim, which leases them), POSTs each event signed
 * with Tokend-Signature through its own libcurl multi handle (all of a batch
 * concurrently), and records every attempt (ledger.delivery_record). It has its
 * own connection and blocks only itself: no event-loop thread ever waits on it.
 * It sleeps on the connection's socket, woken by NOTIFY tokend_deliveries (new
 * rows) or after poll_ms (retries falling due).
 */
#include "tokend/events/webhooks.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/json.h"
#include "tokend/core/log.h"
#include "tokend/core/metrics.h"

#include <curl/curl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLAIM_MAX 32
#define LEASE_S 60
#define SECRET_MAX 128
#define SIG_MAX 128
#define ERR_MAX 200

/* What one attempt came to; the label values of tokend_webhook_attempts_total. */
enum attempt_outcome { AO_DELIVERED = 0, AO_HTTP_ERROR, AO_TRANSPORT_ERROR, AO_NOT_SENT, AO_COUNT };
static const char *const attempt_outcome_names[AO_COUNT] = {"delivered", "http_error",
                                                            "transport_error", "not_sent"};

struct tok_webhook_deliverer {
    char *conninfo; /* sodium_malloc */
    const struct tok_keyring *kr;
    struct tok_webhook_deliver_config cfg;
    pthread_t tid;
    atomic_bool stop;
    PGconn *pg;
    /* written by the delivery thread, read by /metrics' thread */
    struct {
        _Atomic uint64_t attempts[AO_COUNT]; /* by enum attempt_outcome */
        _Atomic uint64_t retried, gave_up, unrecorded;
        _Atomic uint64_t claimed_last; /* rows the last claim took (CLAIM_MAX: more are due) */
        _Atomic uint64_t lag_ms;       /* the last batch's longest wait for a first try */
    } stats;
};


static void bump(_Atomic uint64_t *v)
{
    atomic_fetch_add_explicit(v, 1, memory_order_relaxed);
}

struct delivery {
    char tenant[64], id[64], endpoint[64];
    int attempt;
    char *body;
    CURL *easy;
    struct curl_slist *headers;
    long status;
    char err[ERR_MAX];
    char curl_err[CURL_ERROR_SIZE];
    int64_t started_ms;
    int duration_ms;
    bool sent;    /* the POST was started (prepare succeeded) */
    bool transport_failed;
};

double tok_webhook_backoff_s(unsigned attempt, unsigned base_ms, unsigned cap_s)
{
    double d = (double)(base_ms == 0 ? 10000 : base_ms) / 1000.0;
    double cap = cap_s == 0 ? 6 * 3600.0 : (double)cap_s;
    for (unsigned i = 1; i < attempt && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    /* full range [0.5, 1) of the delay: receivers that failed together retry apart */
    double u = (double)randombytes_uniform(1000000) / 1000000.0;
    return d * (0.5 + u / 2);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* libpq would print server notices (a shutting-down server's FATAL) raw on stderr,
 * breaking the one-JSON-object-per-line log: log them our way instead. */
static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* may quote SQL parameters: never logged verbatim */
    tok_log_debug("%s: server notice on the delivery connection", __func__);
}

static bool connect_db(struct tok_webhook_deliverer *d)
{
    if (d->pg != NULL && PQstatus(d->pg) == CONNECTION_OK)
        return true;
    if (d->pg != NULL)
        PQfinish(d->pg);
    d->pg = PQconnectdb(d->conninfo);
    if (PQstatus(d->pg) != CONNECTION_OK) {
        PQfinish(d->pg);
        d->pg = NULL;
        return false;
    }
    PQsetNoticeProcessor(d->pg, on_notice, NULL);
    PGresult *r = PQexec(d->pg, "LISTEN tokend_deliveries");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    tok_copy(dst, src, n);
    dst[n] = '\0';
}

/* Unseals the endpoint secret and builds the signed request for one row. */
static tok_status prepare(struct tok_webhook_deliverer *d, PGresult *res, int i, struct delivery *dl)
{
    copy_field(dl->tenant, sizeof dl->tenant, PQgetvalue(res, i, 0));
    copy_field(dl->id, sizeof dl->id, PQgetvalue(res, i, 1));
    dl->attempt = (int)strtol(PQgetvalue(res, i, 3), NULL, 10);
    copy_field(dl->endpoint, sizeof dl->endpoint, PQgetvalue(res, i, 6));
    const char *url = PQgetvalue(res, i, 4);
    if (tok_webhook_url_check(tok_slice_str(url), d->cfg.allow_http_loopback) != TOK_OK) {
        snprintf(dl->err, sizeof dl->err, "url_not_allowed");
        return TOK_ERR_INPUT;
    }
    size_t body_len = (size_t)PQgetlength(res, i, 10);
    dl->body = malloc(body_len + 1);
    TOK_ENSURE(dl->body != NULL, TOK_ERR_NOMEM);
    tok_copy(dl->body, PQgetvalue(res, i, 10), body_len);
    dl->body[body_len] = '\0';

    uint32_t version = (uint32_t)strtoul(PQgetvalue(res, i, 7), NULL, 10);
    size_t slen = 0, dlen = 0, flen = 0;
    unsigned char *sealed = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 5), &slen);
    unsigned char *dek = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 8), &dlen);
    unsigned char *fpk = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 9), &flen);
    struct tok_tenant_keys *tk = NULL;
    struct tok_buf secret = {0};
    uint8_t sigmem[SIG_MAX];
    struct tok_buf sig;
    tok_buf_init(&sig, sigmem, sizeof sigmem);
    tok_status st = sealed != NULL && dek != NULL && fpk != NULL ? TOK_OK : TOK_ERR_NOMEM;
    if (st == TOK_OK)
        st = tok_keyring_tenant_keys_open(d->kr, dl->tenant, version, tok_slice_of(dek, dlen),
                                          tok_slice_of(fpk, flen), &tk);
    if (st == TOK_OK)
        st = tok_buf_alloc(&secret, SECRET_MAX, true);
    if (st == TOK_OK) {
        struct tok_aad aad = {dl->tenant, "ledger.webhook_endpoints", "secret_sealed", dl->endpoint};
        st = tok_tenant_keys_open(tk, aad, tok_slice_of(sealed, slen), &secret);
    }
    if (st == TOK_OK)
        st = tok_buf_puts(&sig, "tokend-signature: ");
    if (st == TOK_OK)
        st = tok_webhook_sig_header(tok_buf_slice(&secret), (int64_t)time(NULL),
                                    tok_slice_of(dl->body, body_len), &sig);
    const char *sigline = NULL;
    if (st == TOK_OK)
        st = tok_buf_cstr(&sig, &sigline);
    tok_buf_wipe(&secret);
    tok_tenant_keys_free(&tk);
    PQfreemem(sealed);
    PQfreemem(dek);
    PQfreemem(fpk);
    if (st != TOK_OK) {
        snprintf(dl->err, sizeof dl->err, "secret_unavailable");
        return st;
    }
    dl->headers = curl_slist_append(NULL, "content-type: application/json");
    dl->headers = curl_slist_append(dl->headers, sigline);
    dl->headers = curl_slist_append(dl->headers, "user-agent: tokend-webhooks/" TOKEND_VERSION);
    dl->headers = curl_slist_append(dl->headers, "expect:");
    dl->easy = curl_easy_init();
    TOK_ENSURE(dl->easy != NULL && dl->headers != NULL, TOK_ERR_NOMEM);
    CURL *e = dl->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, d->cfg.allow_http_loopback ? "http,https" : "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, dl->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, dl->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(d->cfg.timeout_ms == 0 ? 10000 : d->cfg.timeout_ms));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, dl->curl_err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, dl);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    return TOK_OK;
}

static void record(struct tok_webhook_deliverer *d, struct delivery *dl)
{
    char att[16], status[16], dur[16], retry[32];
    snprintf(att, sizeof att, "%d", dl->attempt);
    snprintf(status, sizeof status, "%ld", dl->status);
    snprintf(dur, sizeof dur, "%d", dl->duration_ms);
    snprintf(retry, sizeof retry, "%.3f",
             tok_webhook_backoff_s((unsigned)dl->attempt, d->cfg.retry_base_ms, d->cfg.retry_cap_s));
    const char *v[7] = {dl->tenant, dl->id, att, dl->status > 0 ? status : NULL,
                        dl->err[0] != '\0' ? dl->err : NULL, dur, retry};
    PGresult *r = PQexecParams(d->pg,
                               "SELECT ledger.delivery_record($1, $2, $3::integer, $4::integer, $5, "
                               "$6::integer, $7::double precision)",
                               7, NULL, v, NULL, NULL, 0);
    enum attempt_outcome ao = AO_HTTP_ERROR;
    if (!dl->sent)
        ao = AO_NOT_SENT;
    else if (dl->transport_failed)
        ao = AO_TRANSPORT_ERROR;
    else if (dl->status >= 200 && dl->status <= 299)
        ao = AO_DELIVERED;
    bump(&d->stats.attempts[ao]);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        bump(&d->stats.unrecorded);
    else if (strcmp(PQgetvalue(r, 0, 0), "failed") == 0)
        bump(&d->stats.gave_up);
    else if (strcmp(PQgetvalue(r, 0, 0), "pending") == 0)
        bump(&d->stats.retried);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        tok_log_err("%s: recording delivery %s failed: %s", __func__, dl->id,
                    PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "?");
    else
        tok_log_info("%s: delivery %s attempt %d: %s -> %s", __func__, dl->id, dl->attempt,
                     dl->status > 0 ? status : dl->err, PQgetvalue(r, 0, 0));
    PQclear(r);
}

static void delivery_free(struct delivery *dl)
{
    if (dl->easy != NULL)
        curl_easy_cleanup(dl->easy);
    curl_slist_free_all(dl->headers); /* holds the signature: not a secret once sent */
    free(dl->body);
}

/* How long the event has waited for its first try: now - its top-level "created" (unix
 * seconds, from the database's clock), in ms; 0 when the body does not say. */
static int64_t first_try_lag_ms(const char *body, size_t len)
{
    struct tok_json_limits lim = {TOK_JSON_HARD_MAX_DEPTH, TOK_JSON_HARD_MAX_NODES,
                                  TOK_JSON_DEFAULT_MAX_STRING_LEN * 16, TOK_JSON_HARD_MAX_BODY,
                                  TOK_JSON_HARD_MAX_MEMBERS};
    struct tok_json_doc *doc = NULL;
    int64_t created = 0;
    if (tok_json_parse(tok_slice_of(body, len), &lim, &doc, NULL) != TOK_OK)
        return 0;
    const struct tok_json_node *c = tok_json_get(tok_json_root(doc), "created");
    tok_status st = c != NULL ? tok_json_int64(c, &created) : TOK_ERR_INPUT;
    tok_json_doc_free(&doc);
    if (st != TOK_OK || created <= 0)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return now > created * 1000 ? now - created * 1000 : 0;
}

/* One batch: claim, send all concurrently, record. Returns the number claimed. */
static int run_batch(struct tok_webhook_deliverer *d, CURLM *multi)
{
    char lim[8], lease[8];
    snprintf(lim, sizeof lim, "%d", CLAIM_MAX);
    snprintf(lease, sizeof lease, "%d", LEASE_S);
    const char *v[2] = {lim, lease};
    PGresult *res = PQexecParams(d->pg, "SELECT * FROM ledger.deliveries_claim($1::integer, $2::integer)",
                                 2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    struct delivery *dls = n > 0 ? calloc((size_t)n, sizeof *dls) : NULL;
    if (n > 0 && dls == NULL) {
        PQclear(res);
        return -1;
    }
    int64_t lag_ms = 0;
    for (int i = 0; i < n; i++) {
        tok_status pst = prepare(d, res, i, &dls[i]);
        if (dls[i].attempt == 1) {
            int64_t l = first_try_lag_ms(PQgetvalue(res, i, 10), (size_t)PQgetlength(res, i, 10));
            if (l > lag_ms)
                lag_ms = l;
        }
        if (pst != TOK_OK)
            continue;
        dls[i].sent = true;
        dls[i].started_ms = now_ms();
        curl_multi_add_handle(multi, dls[i].easy);
    }
    atomic_store_explicit(&d->stats.claimed_last, (uint64_t)n, memory_order_relaxed);
    atomic_store_explicit(&d->stats.lag_ms, (uint64_t)lag_ms, memory_order_relaxed);
    PQclear(res);
    int running = 1;
    while (running > 0) {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 200, NULL);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct delivery *dl = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&dl);
            dl->duration_ms = (int)(now_ms() - dl->started_ms);
            if (m->data.result == CURLE_OK) {
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &dl->status);
                if (dl->status < 200 || dl->status > 299)
                    snprintf(dl->err, sizeof dl->err, "http_%ld", dl->status);
            } else {
                dl->transport_failed = true;
                snprintf(dl->err, sizeof dl->err, "%s", curl_easy_strerror(m->data.result));
            }
            curl_multi_remove_handle(multi, m->easy_handle);
        }
    }
    for (int i = 0; i < n; i++) {
        record(d, &dls[i]);
        delivery_free(&dls[i]);
    }
    free(dls);
    return n;
}

static void wait_for_work(struct tok_webhook_deliverer *d)
{
    unsigned poll_ms = d->cfg.poll_ms == 0 ? 500 : d->cfg.poll_ms;
    struct pollfd pfd = {PQsocket(d->pg), POLLIN, 0};
    if (pfd.fd < 0 || poll(&pfd, 1, (int)poll_ms) <= 0)
        return;
    PQconsumeInput(d->pg);
    PGnotify *nt;
    while ((nt = PQnotifies(d->pg)) != NULL)
        PQfreemem(nt);
}

static void *deliver_main(void *arg)
{
    struct tok_webhook_deliverer *d = arg;
    CURLM *multi = curl_multi_init();
    while (!atomic_load(&d->stop)) {
        if (!connect_db(d)) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
            continue;
        }
        int n = run_batch(d, multi);
        if (n < 0) {
            PQfinish(d->pg);
            d->pg = NULL;
            continue;
        }
        if (n < CLAIM_MAX)
            wait_for_work(d);
    }
    curl_multi_cleanup(multi);
    if (d->pg != NULL)
        PQfinish(d->pg);
    d->pg = NULL;
    return NULL;
}

tok_status tok_webhook_deliverer_new(const struct tok_webhook_deliver_config *cfg,
                                     const struct tok_keyring *kr,
                                     struct tok_webhook_deliverer **out, char *why, size_t why_len)
{
    TOK_ENSURE(cfg != NULL && cfg->conninfo != NULL && kr != NULL && out != NULL, TOK_ERR_INTERNAL);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(why, why_len, "libcurl cannot start");
        return TOK_ERR_INTERNAL;
    }
    struct tok_webhook_deliverer *d = calloc(1, sizeof *d);
    TOK_ENSURE(d != NULL, TOK_ERR_NOMEM);
    size_t n = strlen(cfg->conninfo);
    d->conninfo = sodium_malloc(n + 1);
    if (d->conninfo == NULL) {
        free(d);
        return TOK_ERR_NOMEM;
    }
    tok_copy(d->conninfo, cfg->conninfo, n + 1);
    d->cfg = *cfg;
    d->cfg.conninfo = NULL;
    d->kr = kr;
    atomic_init(&d->stop, false);
    if (pthread_create(&d->tid, NULL, deliver_main, d) != 0) {
        sodium_free(d->conninfo);
        free(d);
        snprintf(why, why_len, "cannot start the webhook delivery thread");
        return TOK_ERR_INTERNAL;
    }
    *out = d;
    return TOK_OK;
}

void tok_webhook_deliverer_free(struct tok_webhook_deliverer **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    struct tok_webhook_deliverer *d = *dp;
    atomic_store(&d->stop, true);
    pthread_join(d->tid, NULL);
    sodium_free(d->conninfo);
    free(d);
    *dp = NULL;
}

void tok_webhook_collect(void *ctx, struct tok_metrics_out *o)
{
    struct tok_webhook_deliverer *d = ctx;
    char lab[48];
    tok_metrics_family(o, "tokend_webhook_attempts_total", "counter",
                       "Outbound webhook POSTs by outcome (http_error: the receiver answered "
                       "non-2xx; transport_error: no answer; not_sent: URL or secret refused)");
    for (size_t i = 0; i < TOK_ARRAY_LEN(attempt_outcome_names); i++) {
        snprintf(lab, sizeof lab, "outcome=\"%s\"", attempt_outcome_names[i]);
        tok_metrics_u64(o, "tokend_webhook_attempts_total", lab,
                        atomic_load_explicit(&d->stats.attempts[i], memory_order_relaxed));
    }
    tok_metrics_family(o, "tokend_webhook_retries_scheduled_total", "counter",
                       "Failed attempts after which the delivery waits for another try");
    tok_metrics_u64(o, "tokend_webhook_retries_scheduled_total", NULL,
                    atomic_load_explicit(&d->stats.retried, memory_order_relaxed));
    tok_metrics_family(o, "tokend_webhook_deliveries_failed_total", "counter",
                       "Deliveries given up: their 3-day deadline passed without a 2xx");
    tok_metrics_u64(o, "tokend_webhook_deliveries_failed_total", NULL,
                    atomic_load_explicit(&d->stats.gave_up, memory_order_relaxed));
    tok_metrics_family(o, "tokend_webhook_unrecorded_total", "counter",
                       "Attempts whose result could not be written (retried after the lease)");
    tok_metrics_u64(o, "tokend_webhook_unrecorded_total", NULL,
                    atomic_load_explicit(&d->stats.unrecorded, memory_order_relaxed));
    tok_metrics_family(o, "tokend_webhook_claimed", "gauge",
                       "Deliveries the last claim took from the outbox (32, the most it takes: "
                       "more were due)");
    tok_metrics_u64(o, "tokend_webhook_claimed", NULL,
                    atomic_load_explicit(&d->stats.claimed_last, memory_order_relaxed));
    tok_metrics_family(o, "tokend_webhook_first_attempt_lag_seconds", "gauge",
                       "In the last batch, the longest time an event waited for its first "
                       "delivery attempt (0: no first attempt in it)");
    tok_metrics_double(o, "tokend_webhook_first_attempt_lag_seconds", NULL,
                       (double)atomic_load_explicit(&d->stats.lag_ms, memory_order_relaxed) /
                           1000.0);
}
