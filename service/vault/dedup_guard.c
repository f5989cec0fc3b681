/*
 * dedup_guard.c - per-key fixed-window count of de-duplication hits (dedup_guard.h).
 *
 * An open-addressing table of TOK_DEDUP_GUARD_KEYS slots, probed linearly from the key's
 * hash. Slots are never emptied, only taken over: a slot whose window has ended and that
 * holds no open reservation may be reused by another key, so every probe chain stays
 * unbroken and a key is found wherever it sits in its chain.
 */
#include "tokend/vault/dedup_guard.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    char key[TOK_DEDUP_GUARD_KEY_MAX];
    uint64_t window_start;
    uint32_t hits;     /* in the window that began at window_start */
    uint32_t inflight; /* reservations not yet settled (they outlive a window's end) */
    bool refused;      /* a refusal was reported in this window */
};

struct tok_dedup_guard {
    pthread_mutex_t mu;
    uint32_t max_hits, window_s;
    struct tok_dedup_stats stats;
    struct slot slots[TOK_DEDUP_GUARD_KEYS];
};

tok_status tok_dedup_guard_new(uint32_t max_hits, uint32_t window_s, struct tok_dedup_guard **out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(max_hits >= 1 && window_s >= 1, TOK_ERR_INPUT);
    struct tok_dedup_guard *g = calloc(1, sizeof *g);
    TOK_ENSURE(g != NULL, TOK_ERR_NOMEM);
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return TOK_ERR_NOMEM;
    }
    g->max_hits = max_hits;
    g->window_s = window_s;
    *out = g;
    return TOK_OK;
}

void tok_dedup_guard_free(struct tok_dedup_guard **g)
{
    if (g == NULL || *g == NULL)
        return;
    pthread_mutex_destroy(&(*g)->mu);
    free(*g);
    *g = NULL;
}

static bool key_ok(const char *key_id)
{
    return key_id != NULL && key_id[0] != '\0' &&
           strnlen(key_id, TOK_DEDUP_GUARD_KEY_MAX) < TOK_DEDUP_GUARD_KEY_MAX;
}

static uint32_t key_hash(const char *key_id)
{
    uint32_t h = 2166136261u; /* FNV-1a: key ids are random already; this only spreads them */
    for (const char *p = key_id; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

/* Starts a new window when the key's has ended. */
static void roll(const struct tok_dedup_guard *g, struct slot *s, uint64_t now_s)
{
    if (now_s >= s->window_start + g->window_s || now_s < s->window_start) {
        s->window_start = now_s;
        s->hits = 0;
        s->refused = false;
    }
}

/* The key's slot, or a fresh one for it (create); NULL when absent or the table is full. */
static struct slot *find(struct tok_dedup_guard *g, const char *key_id, uint64_t now_s, bool create)
{
    uint32_t start = key_hash(key_id) % TOK_DEDUP_GUARD_KEYS;
    struct slot *reuse = NULL;
    for (uint32_t i = 0; i < TOK_DEDUP_GUARD_KEYS; i++) {
        struct slot *s = &g->slots[(start + i) % TOK_DEDUP_GUARD_KEYS];
        if (s->key[0] == '\0') {
            if (reuse == NULL)
                reuse = s;
            break; /* the end of the chain */
        }
        if (strcmp(s->key, key_id) == 0)
            return s;
        bool idle = s->inflight == 0 && now_s >= s->window_start + g->window_s;
        if (reuse == NULL && idle)
            reuse = s;
    }
    if (!create || reuse == NULL)
        return NULL;
    memset(reuse, 0, sizeof *reuse);
    size_t n = strlen(key_id); /* < TOK_DEDUP_GUARD_KEY_MAX: key_ok */
    tok_copy(reuse->key, key_id, n + 1);
    reuse->window_start = now_s;
    return reuse;
}

tok_status tok_dedup_guard_reserve(struct tok_dedup_guard *g, const char *key_id, uint64_t now_s,
                                   bool *allowed, uint32_t *retry_after_s, bool *first_refusal)
{
    TOK_ENSURE(g != NULL && allowed != NULL && retry_after_s != NULL && first_refusal != NULL,
               TOK_ERR_INTERNAL);
    TOK_ENSURE(key_ok(key_id), TOK_ERR_INPUT);
    *allowed = false;
    *first_refusal = false;
    *retry_after_s = g->window_s;
    pthread_mutex_lock(&g->mu);
    struct slot *s = find(g, key_id, now_s, true);
    if (s != NULL)
        roll(g, s, now_s);
    if (s != NULL && (uint64_t)s->hits + s->inflight < g->max_hits) {
        s->inflight++;
        g->stats.lookups++;
        *allowed = true;
    } else {
        g->stats.refused++;
        if (s != NULL) {
            uint64_t end = s->window_start + g->window_s;
            *retry_after_s = end > now_s ? (uint32_t)(end - now_s) : 1;
            *first_refusal = !s->refused;
            s->refused = true;
        } else {
            *first_refusal = true; /* fail closed: the table is full of live keys */
        }
    }
    pthread_mutex_unlock(&g->mu);
    return TOK_OK;
}

void tok_dedup_guard_settle(struct tok_dedup_guard *g, const char *key_id, uint64_t now_s, bool hit)
{
    if (g == NULL || !key_ok(key_id))
        return;
    pthread_mutex_lock(&g->mu);
    struct slot *s = find(g, key_id, now_s, false);
    if (s != NULL && s->inflight > 0) {
        s->inflight--;
        roll(g, s, now_s);
        if (hit) {
            s->hits++;
            g->stats.hits++;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

void tok_dedup_guard_stats(struct tok_dedup_guard *g, struct tok_dedup_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    *out = g->stats;
    pthread_mutex_unlock(&g->mu);
}

uint32_t tok_dedup_guard_hits(struct tok_dedup_guard *g, const char *key_id, uint64_t now_s)
{
    if (g == NULL || !key_ok(key_id))
        return 0;
    pthread_mutex_lock(&g->mu);
    struct slot *s = find(g, key_id, now_s, false);
    uint32_t n = 0;
    if (s != NULL && now_s < s->window_start + g->window_s && now_s >= s->window_start)
        n = s->hits;
    pthread_mutex_unlock(&g->mu);
    return n;
}
