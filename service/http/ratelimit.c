/*
 * ratelimit.c - shared token buckets in fixed-size, sharded tables. See ratelimit.h.
 */
#include "tokend/http/ratelimit.h"
#include "tokend/core/metrics.h"

#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A bucket counts nano-tokens, so a rate of m thousandths of a token per second is m
 * nano-tokens per microsecond and the arithmetic stays in integers: the largest burst,
 * 10^6 tokens, is 10^15 nano-tokens, far inside 64 bits. */
#define UNIT 1000000000u
#define SHARD_SLOTS (TOK_RL_SLOTS / TOK_RL_SHARDS)

_Static_assert(TOK_RL_SLOTS % TOK_RL_SHARDS == 0, "shards split the slots evenly");
_Static_assert(TOK_RL_PROBE <= SHARD_SLOTS, "a probe window stays inside its shard");

struct slot {
    uint64_t hash; /* 0: empty */
    uint64_t tokens; /* nano-tokens at `at` */
    uint64_t at;     /* microseconds */
    uint8_t klen;
    uint8_t key[TOK_RL_KEY_MAX];
};

struct shard {
    pthread_mutex_t mu;
    struct slot slots[SHARD_SLOTS];
};

struct table {
    struct tok_rl_limit limit;
    struct shard *shards; /* TOK_RL_SHARDS, NULL when the class is off */
    _Atomic uint64_t allowed, refused, recorded, evicted;
    _Atomic uint32_t entries;
};

struct tok_ratelimit {
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    struct table t[TOK_RL_CLASSES];
};

uint64_t tok_ratelimit_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *tok_ratelimit_class_name(enum tok_rl_class c)
{
    switch (c) {
    case TOK_RL_TOKENISE:
        return "tokenise";
    case TOK_RL_CHARGE:
        return "charge";
    case TOK_RL_AUTH_FAIL:
        return "auth_failure";
    default:
        return "?";
    }
}

tok_status tok_ratelimit_new(const struct tok_rl_limit limits[TOK_RL_CLASSES],
                             struct tok_ratelimit **out)
{
    TOK_ENSURE(limits != NULL && out != NULL, TOK_ERR_INTERNAL);
    for (int c = 0; c < TOK_RL_CLASSES; c++) {
        TOK_ENSURE(limits[c].rate_milli <= TOK_RL_RATE_MILLI_MAX &&
                       limits[c].burst <= TOK_RL_BURST_MAX,
                   TOK_ERR_INPUT);
        TOK_ENSURE(limits[c].rate_milli == 0 || limits[c].burst > 0, TOK_ERR_INPUT);
    }
    struct tok_ratelimit *rl = calloc(1, sizeof *rl);
    TOK_ENSURE(rl != NULL, TOK_ERR_NOMEM);
    crypto_shorthash_keygen(rl->hash_key);
    for (int c = 0; c < TOK_RL_CLASSES; c++) {
        struct table *t = &rl->t[c];
        t->limit = limits[c];
        if (t->limit.rate_milli == 0)
            continue;
        t->shards = calloc(TOK_RL_SHARDS, sizeof *t->shards);
        if (t->shards == NULL) {
            tok_ratelimit_free(&rl);
            return TOK_ERR_NOMEM;
        }
        for (unsigned s = 0; s < TOK_RL_SHARDS; s++)
            pthread_mutex_init(&t->shards[s].mu, NULL);
    }
    *out = rl;
    return TOK_OK;
}

void tok_ratelimit_free(struct tok_ratelimit **prl)
{
    if (prl == NULL || *prl == NULL)
        return;
    struct tok_ratelimit *rl = *prl;
    for (int c = 0; c < TOK_RL_CLASSES; c++) {
        struct table *t = &rl->t[c];
        if (t->shards == NULL)
            continue;
        for (unsigned s = 0; s < TOK_RL_SHARDS; s++)
            pthread_mutex_destroy(&t->shards[s].mu);
        free(t->shards);
    }
    sodium_memzero(rl->hash_key, sizeof rl->hash_key);
    free(rl);
    *prl = NULL;
}

/* The bucket's nano-tokens at `now`: what it held at `at` plus what it gained since, up to
 * the burst. A clock that went backwards gains nothing. */
static uint64_t refilled(const struct tok_rl_limit *l, const struct slot *s, uint64_t now)
{
    uint64_t cap = (uint64_t)l->burst * UNIT;
    if (s->tokens >= cap)
        return cap;
    if (now <= s->at)
        return s->tokens;
    uint64_t missing = cap - s->tokens, elapsed = now - s->at;
    if (elapsed > missing / l->rate_milli) /* elapsed * rate would reach the cap (or overflow) */
        return cap;
    return s->tokens + elapsed * l->rate_milli;
}

static uint32_t retry_after(const struct tok_rl_limit *l, uint64_t tokens)
{
    uint64_t wait_us = (UNIT - tokens + l->rate_milli - 1) / l->rate_milli;
    uint64_t s = (wait_us + 999999u) / 1000000u;
    return s < 1 ? 1 : s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

enum op { OP_TAKE, OP_PEEK, OP_RECORD };

/*
 * Finds key's slot in its probe window, or makes one (a fresh bucket is full). Called with
 * the shard locked. NULL only for OP_PEEK of a key that has no bucket: it is full.
 */
static struct slot *slot_for(struct table *t, struct shard *sh, size_t start, uint64_t h,
                             struct tok_slice key, uint64_t now, enum op op)
{
    struct slot *empty = NULL, *fullest = NULL;
    uint64_t most = 0;
    for (size_t i = 0; i < TOK_RL_PROBE; i++) {
        struct slot *s = &sh->slots[(start + i) % SHARD_SLOTS];
        if (s->hash == h && s->klen == key.len && memcmp(s->key, key.ptr, key.len) == 0)
            return s;
        if (s->hash == 0) {
            if (empty == NULL)
                empty = s;
            continue;
        }
        uint64_t have = refilled(&t->limit, s, now);
        if (fullest == NULL || have > most) {
            fullest = s;
            most = have;
        }
    }
    if (op == OP_PEEK)
        return NULL;
    struct slot *victim = empty != NULL ? empty : fullest;
    if (victim->hash != 0)
        atomic_fetch_add_explicit(&t->evicted, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&t->entries, 1, memory_order_relaxed);
    victim->hash = h;
    victim->klen = (uint8_t)key.len;
    tok_copy(victim->key, key.ptr, key.len);
    victim->tokens = (uint64_t)t->limit.burst * UNIT;
    victim->at = now;
    return victim;
}

static tok_status apply(struct tok_ratelimit *rl, enum tok_rl_class c, struct tok_slice key,
                        uint64_t now, enum op op, uint32_t *retry_after_s)
{
    TOK_ENSURE(rl != NULL && (unsigned)c < TOK_RL_CLASSES, TOK_ERR_INTERNAL);
    TOK_ENSURE(key.len > 0 && key.len <= TOK_RL_KEY_MAX && key.ptr != NULL, TOK_ERR_INPUT);
    struct table *t = &rl->t[c];
    if (t->shards == NULL)
        return TOK_OK;
    uint64_t h = 0;
    crypto_shorthash((unsigned char *)&h, key.ptr, key.len, rl->hash_key);
    h |= 1; /* 0 marks an empty slot */
    size_t at = (size_t)((h >> 1) % TOK_RL_SLOTS);
    struct shard *sh = &t->shards[at / SHARD_SLOTS];
    tok_status st = TOK_OK;
    pthread_mutex_lock(&sh->mu);
    struct slot *s = slot_for(t, sh, at % SHARD_SLOTS, h, key, now, op);
    if (s != NULL) {
        uint64_t have = refilled(&t->limit, s, now);
        if (have < UNIT && op != OP_RECORD) {
            if (retry_after_s != NULL)
                *retry_after_s = retry_after(&t->limit, have);
            st = TOK_ERR_BOUNDS;
        } else if (op != OP_PEEK) {
            s->tokens = have >= UNIT ? have - UNIT : 0;
            s->at = now > s->at ? now : s->at;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    if (st != TOK_OK)
        atomic_fetch_add_explicit(&t->refused, 1, memory_order_relaxed);
    else if (op == OP_TAKE)
        atomic_fetch_add_explicit(&t->allowed, 1, memory_order_relaxed);
    else if (op == OP_RECORD)
        atomic_fetch_add_explicit(&t->recorded, 1, memory_order_relaxed);
    return st;
}

tok_status tok_ratelimit_take(struct tok_ratelimit *rl, enum tok_rl_class c, struct tok_slice key,
                              uint64_t now_us, uint32_t *retry_after_s)
{
    return apply(rl, c, key, now_us, OP_TAKE, retry_after_s);
}

tok_status tok_ratelimit_peek(struct tok_ratelimit *rl, enum tok_rl_class c, struct tok_slice key,
                              uint64_t now_us, uint32_t *retry_after_s)
{
    return apply(rl, c, key, now_us, OP_PEEK, retry_after_s);
}

void tok_ratelimit_record(struct tok_ratelimit *rl, enum tok_rl_class c, struct tok_slice key,
                          uint64_t now_us)
{
    (void)apply(rl, c, key, now_us, OP_RECORD, NULL); /* never refuses; bad input is ignored */
}

tok_status tok_ratelimit_stats(const struct tok_ratelimit *rl, enum tok_rl_class c,
                               struct tok_rl_stats *out)
{
    TOK_ENSURE(rl != NULL && out != NULL && (unsigned)c < TOK_RL_CLASSES, TOK_ERR_INTERNAL);
    /* the counters are atomics: reading them through a const table is safe */
    struct table *t = (struct table *)(uintptr_t)&rl->t[c];
    out->rate_milli = t->limit.rate_milli;
    out->burst = t->limit.burst;
    out->allowed = atomic_load_explicit(&t->allowed, memory_order_relaxed);
    out->refused = atomic_load_explicit(&t->refused, memory_order_relaxed);
    out->recorded = atomic_load_explicit(&t->recorded, memory_order_relaxed);
    out->evicted = atomic_load_explicit(&t->evicted, memory_order_relaxed);
    out->entries = atomic_load_explicit(&t->entries, memory_order_relaxed);
    return TOK_OK;
}

void tok_ratelimit_collect(void *ctx, struct tok_metrics_out *o)
{
    const struct tok_ratelimit *rl = ctx;
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } fams[] = {
        {"tokend_ratelimit_refused_total", "counter",
         "Requests refused with 429 by a limiter (tokenise, charge: per API key; auth_failure: "
         "per client address)", offsetof(struct tok_rl_stats, refused)},
        {"tokend_ratelimit_allowed_total", "counter", "Requests a limiter let through",
         offsetof(struct tok_rl_stats, allowed)},
        {"tokend_ratelimit_evicted_total", "counter",
         "Buckets dropped to make room for another key (the table is full)",
         offsetof(struct tok_rl_stats, evicted)},
    };
    struct tok_rl_stats st[TOK_RL_CLASSES];
    for (int c = 0; c < TOK_RL_CLASSES; c++)
        if (tok_ratelimit_stats(rl, (enum tok_rl_class)c, &st[c]) != TOK_OK)
            memset(&st[c], 0, sizeof st[c]);
    char lab[48];
    for (size_t f = 0; f < TOK_ARRAY_LEN(fams); f++) {
        tok_metrics_family(o, fams[f].name, fams[f].type, fams[f].help);
        for (int c = 0; c < TOK_RL_CLASSES; c++) {
            uint64_t v;
            tok_copy(&v, (const char *)&st[c] + fams[f].off, sizeof v);
            snprintf(lab, sizeof lab, "limiter=\"%s\"",
                     tok_ratelimit_class_name((enum tok_rl_class)c));
            tok_metrics_u64(o, fams[f].name, lab, v);
        }
    }
    tok_metrics_family(o, "tokend_ratelimit_buckets", "gauge",
                       "Keys or addresses a limiter is tracking (at most 4096 per limiter)");
    for (int c = 0; c < TOK_RL_CLASSES; c++) {
        snprintf(lab, sizeof lab, "limiter=\"%s\"", tok_ratelimit_class_name((enum tok_rl_class)c));
        tok_metrics_u64(o, "tokend_ratelimit_buckets", lab, st[c].entries);
    }
    tok_metrics_family(o, "tokend_ratelimit_rate", "gauge",
                       "A limiter's configured rate, tokens per second (0: off)");
    for (int c = 0; c < TOK_RL_CLASSES; c++) {
        snprintf(lab, sizeof lab, "limiter=\"%s\"", tok_ratelimit_class_name((enum tok_rl_class)c));
        tok_metrics_double(o, "tokend_ratelimit_rate", lab, (double)st[c].rate_milli / 1000.0);
    }
}

tok_status tok_ratelimit_addr_key(const struct sockaddr *sa, socklen_t sa_len,
                                  uint8_t out[TOK_RL_ADDR_KEY_MAX], size_t *len)
{
    TOK_ENSURE(sa != NULL && out != NULL && len != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(sa_len >= (socklen_t)sizeof sa->sa_family, TOK_ERR_INPUT);
    if (sa->sa_family == AF_INET) {
        TOK_ENSURE(sa_len >= (socklen_t)sizeof(struct sockaddr_in), TOK_ERR_INPUT);
        struct sockaddr_in v4;
        tok_copy(&v4, sa, sizeof v4);
        out[0] = 4;
        tok_copy(out + 1, &v4.sin_addr, 4);
        *len = 5;
        return TOK_OK;
    }
    TOK_ENSURE(sa->sa_family == AF_INET6, TOK_ERR_INPUT);
    TOK_ENSURE(sa_len >= (socklen_t)sizeof(struct sockaddr_in6), TOK_ERR_INPUT);
    struct sockaddr_in6 v6;
    tok_copy(&v6, sa, sizeof v6);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) { /* the same client as over IPv4 */
        out[0] = 4;
        tok_copy(out + 1, v6.sin6_addr.s6_addr + 12, 4);
        *len = 5;
        return TOK_OK;
    }
    out[0] = 6;
    tok_copy(out + 1, v6.sin6_addr.s6_addr, 8);
    *len = 9;
    return TOK_OK;
}
