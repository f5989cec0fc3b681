/*
 * gwsim_webhooks.h - gwsim's webhook sender (issue #16): the events a gateway sends after the
 * fact (a Stripe dispute, a refund that fails later, an Adyen NOTIFICATION_OF_CHARGEBACK or
 * REFUND_FAILED) are queued by the simulator's event loop and POSTed by one sender thread to
 * the endpoint configured for that gateway (POST /__gwsim/webhooks). Included once, by gwsim.c
 * (a tool is one translation unit), kept apart so the two can change independently.
 *
 * Bounded and loopback only:
 *   - an endpoint is http://127.0.0.1:PORT/path, http://localhost:PORT/path or
 *     http://[::1]:PORT/path (cleartext HTTP/1.1, as tokend's h2c listener takes it); anything
 *     else is refused when configured, so gwsim never connects off the machine;
 *   - at most GW_WH_EVENTS_MAX events are kept (sent ones are dropped first; a full log refuses
 *     new events, counted in webhooks.dropped), each at most GW_WH_BODY_MAX bytes;
 *   - an event is tried at most GW_WH_TRIES times (1 s, then 2 s apart), each with a 5 s
 *     connect/send/receive timeout; any 2xx delivers it.
 *
 * Stripe events are signed when sent (Stripe-Signature: t=<now>,v1=<HMAC-SHA256 of "t.body"
 * under the endpoint secret>, docs.stripe.com/webhooks#verify-manually), so a resend carries
 * a fresh timestamp and the same event id, as Stripe's retries do. Adyen notifications carry
 * their HMAC inside each item (additionalData.hmacSignature: base64 HMAC-SHA256, under the
 * hex-decoded key, of pspReference:originalReference:merchantAccountCode:merchantReference:
 * value:currency:eventCode:success, docs.adyen.com/development-resources/webhooks/
 * verify-hmac-signatures), computed when the event is queued.
 *
 * No event carries card data: gwsim's objects hold none.
 */
#ifndef GWSIM_WEBHOOKS_H
#define GWSIM_WEBHOOKS_H

#include "tokend/core/common.h"
#include "tokend/core/encoding.h"
#include "tokend/core/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define GW_WH_EVENTS_MAX 256
#define GW_WH_BODY_MAX (16u * 1024u)
#define GW_WH_TRIES 3
#define GW_WH_SECRET_MAX 256
#define GW_WH_PATH_MAX 512
#define GW_WH_DELAY_DEFAULT_MS 300u

enum gw_wh_api { GW_WH_STRIPE = 0, GW_WH_ADYEN = 1 };

struct gw_wh_endpoint {
    bool set;
    bool v6;
    char host[16]; /* as the URL names it, for the Host header */
    int port;
    char path[GW_WH_PATH_MAX];
    uint8_t secret[GW_WH_SECRET_MAX]; /* Stripe: the whsec_ bytes; Adyen: the decoded key */
    size_t secret_len;
};

struct gw_wh_event {
    bool used;
    enum gw_wh_api api;
    char id[96];
    char type[48];
    char *body;
    size_t len;
    uint64_t due_ms; /* CLOCK_MONOTONIC */
    uint64_t seq;    /* queue order */
    int tries;
    int last_status; /* HTTP status of the last try; 0 none; -1 no answer */
    bool delivered, given_up;
};

struct gw_wh {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stop;
    struct gw_wh_endpoint ep[2];
    uint32_t delay_ms;
    struct gw_wh_event ev[GW_WH_EVENTS_MAX];
    uint64_t seq;
    uint64_t queued, delivered, failed_tries, given_up, dropped, unconfigured, resent;
};

static uint64_t gw_wh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Reads http://(127.0.0.1|localhost|[::1]):PORT[/path] into ep. False otherwise. */
static bool gw_wh_url(const char *url, struct gw_wh_endpoint *ep)
{
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
    if (strncmp(url, "http://", 7) != 0)
        return false;
    const char *p = url + 7;
    size_t hi = 0, hl = 0;
    for (; hi < TOK_ARRAY_LEN(hosts); hi++) {
        hl = strlen(hosts[hi]);
        if (strncmp(p, hosts[hi], hl) == 0 && p[hl] == ':')
            break;
    }
    if (hi == TOK_ARRAY_LEN(hosts))
        return false;
    p += hl + 1;
    long port = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 6) {
        port = port * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || port < 1 || port > 65535 || (*p != '\0' && *p != '/'))
        return false;
    const char *path = *p == '\0' ? "/" : p;
    if (strlen(path) >= sizeof ep->path)
        return false;
    for (const char *q = path; *q != '\0'; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return false;
    snprintf(ep->host, sizeof ep->host, "%s", hosts[hi]);
    ep->v6 = hi == 2;
    ep->port = (int)port;
    snprintf(ep->path, sizeof ep->path, "%s", path);
    return true;
}

/* One POST; the HTTP status, or -1 when nothing usable came back. */
static int gw_wh_post(const struct gw_wh_endpoint *ep, const char *sig_name, const char *sig,
                      const char *body, size_t len)
{
    int fd = socket(ep->v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc;
    if (ep->v6) {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((uint16_t)ep->port);
        a.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)ep->port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (rc != 0) {
        close(fd);
        return -1;
    }
    char head[1024], sigline[256] = "";
    if (sig_name != NULL)
        snprintf(sigline, sizeof sigline, "%s: %s\r\n", sig_name, sig);
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: gwsim-webhooks/1\r\n"
                     "Content-Type: application/json; charset=utf-8\r\n%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     ep->path, ep->host, ep->port, sigline, len);
    int status = -1;
    if (n > 0 && (size_t)n < sizeof head && send(fd, head, (size_t)n, MSG_NOSIGNAL) == n) {
        size_t off = 0;
        while (off < len) {
            ssize_t w = send(fd, body + off, len - off, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        char resp[64];
        size_t got = 0;
        while (off == len && got < sizeof resp - 1) {
            ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        resp[got] = '\0';
        int s = 0;
        if (got >= 12 && strncmp(resp, "HTTP/1.", 7) == 0 && sscanf(resp + 9, "%3d", &s) == 1)
            status = s;
    }
    close(fd);
    return status;
}

/* "t=<now>,v1=<hex>" over "<now>.<body>". */
static void gw_wh_stripe_sig(const struct gw_wh_endpoint *ep, const char *body, size_t len,
                             char *out, size_t cap)
{
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, ep->secret, ep->secret_len);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    char hex[2 * sizeof mac + 1];
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(out, cap, "t=%s,v1=%s", ts, hex);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(mac, sizeof mac);
}

static void *gw_wh_main(void *arg)
{
    struct gw_wh *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        /* the earliest due event not yet decided */
        struct gw_wh_event *next = NULL;
        for (size_t i = 0; i < GW_WH_EVENTS_MAX; i++) {
            struct gw_wh_event *e = &w->ev[i];
            if (e->used && !e->delivered && !e->given_up &&
                (next == NULL || e->due_ms < next->due_ms ||
                 (e->due_ms == next->due_ms && e->seq < next->seq)))
                next = e;
        }
        uint64_t now = gw_wh_now_ms();
        if (next == NULL || next->due_ms > now) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            uint64_t wait = next == NULL ? 1000 : next->due_ms - now;
            until.tv_sec += (time_t)(wait / 1000);
            until.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w->cv, &w->mu, &until);
            continue;
        }
        /* copy what the send needs, then send unlocked */
        enum gw_wh_api api = next->api;
        struct gw_wh_endpoint ep = w->ep[api];
        size_t len = next->len;
        char *body = malloc(len + 1);
        uint64_t seq = next->seq;
        char id[sizeof next->id];
        snprintf(id, sizeof id, "%s", next->id);
        if (body != NULL)
            memcpy(body, next->body, len);
        pthread_mutex_unlock(&w->mu);
        int status = -1;
        if (body != NULL && ep.set) {
            char sig[160] = "";
            if (api == GW_WH_STRIPE)
                gw_wh_stripe_sig(&ep, body, len, sig, sizeof sig);
            status = gw_wh_post(&ep, api == GW_WH_STRIPE ? "Stripe-Signature" : NULL, sig, body,
                                len);
        }
        free(body);
        sodium_memzero(&ep, sizeof ep);
        tok_log_info("gwsim: webhook %s: %d", id, status);
        pthread_mutex_lock(&w->mu);
        /* the slot may have been reused while unlocked: find the event again by seq */
        for (size_t i = 0; i < GW_WH_EVENTS_MAX; i++) {
            struct gw_wh_event *e = &w->ev[i];
            if (!e->used || e->seq != seq)
                continue;
            e->tries++;
            e->last_status = status;
            if (status >= 200 && status < 300) {
                e->delivered = true;
                w->delivered++;
            } else {
                w->failed_tries++;
                if (e->tries >= GW_WH_TRIES) {
                    e->given_up = true;
                    w->given_up++;
                } else {
                    e->due_ms = gw_wh_now_ms() + 1000u * (uint64_t)e->tries;
                }
            }
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void gw_wh_init(struct gw_wh *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->delay_ms = GW_WH_DELAY_DEFAULT_MS;
}

/* The sender starts with the first endpoint configured. */
static bool gw_wh_start(struct gw_wh *w)
{
    if (w->started)
        return true;
    if (pthread_create(&w->thread, NULL, gw_wh_main, w) != 0)
        return false;
    w->started = true;
    return true;
}

static void gw_wh_stop(struct gw_wh *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->thread, NULL);
    for (size_t i = 0; i < GW_WH_EVENTS_MAX; i++)
        free(w->ev[i].body);
    sodium_memzero(w->ep, sizeof w->ep);
}

static bool gw_wh_configured(struct gw_wh *w, enum gw_wh_api api)
{
    pthread_mutex_lock(&w->mu);
    bool set = w->ep[api].set;
    pthread_mutex_unlock(&w->mu);
    return set;
}

/* Queues an event (the body is copied). False when there is no endpoint or no room. */
static bool gw_wh_queue(struct gw_wh *w, enum gw_wh_api api, const char *id, const char *type,
                        const uint8_t *body, size_t len)
{
    pthread_mutex_lock(&w->mu);
    bool ok = false;
    if (!w->ep[api].set) {
        w->unconfigured++;
    } else if (len == 0 || len > GW_WH_BODY_MAX) {
        w->dropped++;
    } else {
        struct gw_wh_event *slot = NULL;
        for (size_t i = 0; i < GW_WH_EVENTS_MAX && slot == NULL; i++)
            if (!w->ev[i].used)
                slot = &w->ev[i];
        /* full: the oldest decided event makes room */
        for (size_t i = 0; i < GW_WH_EVENTS_MAX && slot == NULL; i++) {
            struct gw_wh_event *e = &w->ev[i];
            if ((e->delivered || e->given_up) && (slot == NULL || e->seq < slot->seq))
                slot = e;
        }
        char *copy = slot != NULL ? malloc(len + 1) : NULL;
        if (copy == NULL) {
            w->dropped++;
        } else {
            free(slot->body);
            memset(slot, 0, sizeof *slot);
            memcpy(copy, body, len);
            copy[len] = '\0';
            slot->used = true;
            slot->api = api;
            snprintf(slot->id, sizeof slot->id, "%s", id);
            snprintf(slot->type, sizeof slot->type, "%s", type);
            slot->body = copy;
            slot->len = len;
            slot->seq = ++w->seq;
            slot->due_ms = gw_wh_now_ms() + w->delay_ms;
            w->queued++;
            ok = true;
            pthread_cond_signal(&w->cv);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return ok;
}

/* Sends a kept event again, now (a gateway's redelivery). False: no such event. */
static bool gw_wh_resend(struct gw_wh *w, struct tok_slice id)
{
    pthread_mutex_lock(&w->mu);
    bool found = false;
    for (size_t i = 0; i < GW_WH_EVENTS_MAX; i++) {
        struct gw_wh_event *e = &w->ev[i];
        if (e->used && strlen(e->id) == id.len && memcmp(e->id, id.ptr, id.len) == 0) {
            e->delivered = e->given_up = false;
            e->tries = 0;
            e->due_ms = gw_wh_now_ms();
            e->seq = ++w->seq;
            found = true;
            w->resent++;
        }
    }
    if (found)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return found;
}

/* Adyen's item signature: base64(HMAC-SHA256(key, the 8 fields joined by ':')). */
static bool gw_wh_adyen_hmac(struct gw_wh *w, const char *const fields[8], char *out, size_t cap)
{
    pthread_mutex_lock(&w->mu);
    bool ok = w->ep[GW_WH_ADYEN].set;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    if (ok) {
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, w->ep[GW_WH_ADYEN].secret, w->ep[GW_WH_ADYEN].secret_len);
        for (size_t i = 0; i < 8; i++) {
            if (i > 0)
                crypto_auth_hmacsha256_update(&st, (const uint8_t *)":", 1);
            crypto_auth_hmacsha256_update(&st, (const uint8_t *)fields[i], strlen(fields[i]));
        }
        crypto_auth_hmacsha256_final(&st, mac);
        sodium_memzero(&st, sizeof st);
    }
    pthread_mutex_unlock(&w->mu);
    if (ok && cap >= sodium_base64_ENCODED_LEN(sizeof mac, sodium_base64_VARIANT_ORIGINAL))
        sodium_bin2base64(out, cap, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
    else
        ok = false;
    sodium_memzero(mac, sizeof mac);
    return ok;
}

/* Configures one gateway's endpoint. secret: Stripe's whsec_ text; Adyen's key in hex. */
static bool gw_wh_set(struct gw_wh *w, enum gw_wh_api api, const char *url, struct tok_slice secret)
{
    struct gw_wh_endpoint ep;
    memset(&ep, 0, sizeof ep);
    if (!gw_wh_url(url, &ep) || secret.len == 0)
        return false;
    if (api == GW_WH_STRIPE) {
        if (secret.len > sizeof ep.secret)
            return false;
        memcpy(ep.secret, secret.ptr, secret.len);
        ep.secret_len = secret.len;
    } else {
        size_t bin = 0;
        if (secret.len % 2 != 0 || secret.len / 2 > sizeof ep.secret ||
            sodium_hex2bin(ep.secret, sizeof ep.secret, (const char *)secret.ptr, secret.len,
                           NULL, &bin, NULL) != 0 || bin != secret.len / 2)
            return false;
        ep.secret_len = bin;
    }
    ep.set = true;
    pthread_mutex_lock(&w->mu);
    w->ep[api] = ep;
    pthread_mutex_unlock(&w->mu);
    sodium_memzero(&ep, sizeof ep);
    return gw_wh_start(w);
}

#endif
