/*
 * secmem.c - per-thread recycling of guarded secret memory. See secmem.h.
 */
#include "tokend/secmem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CLASS_MIN_SHIFT 9u /* 512 B */
#define NCLASSES 8u        /* 512 B .. 64 KiB */
#define LARGE UINT32_MAX   /* not cached */
#define CACHE_BYTES (256u * 1024u)
#define CACHE_MAX 64u

/* Sits in front of the caller's bytes; a power-of-two class keeps both aligned. */
struct block {
    union {
        struct {
            struct block *next; /* in a cache */
            uint32_t cls;
            uint32_t len; /* bytes handed out: all a caller may have written */
        } h;
        max_align_t align;
    };
};

struct cache {
    struct block *free[NCLASSES];
    unsigned count[NCLASSES];
    bool registered;
};

static _Thread_local struct cache tls_cache;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static size_t class_size(uint32_t cls)
{
    return (size_t)1 << (cls + CLASS_MIN_SHIFT);
}

static unsigned cache_max(uint32_t cls)
{
    unsigned n = CACHE_BYTES >> (cls + CLASS_MIN_SHIFT);
    return n < 4 ? 4 : n > CACHE_MAX ? CACHE_MAX : n;
}

/* A thread that ends gives its cached blocks back to the system. */
static void on_thread_exit(void *arg)
{
    struct cache *c = arg;
    for (uint32_t k = 0; k < NCLASSES; k++) {
        while (c->free[k] != NULL) {
            struct block *b = c->free[k];
            UNPOISON(b, class_size(k));
            c->free[k] = b->h.next;
            sodium_free(b);
        }
        c->count[k] = 0;
    }
    c->registered = false;
}

static void make_exit_key(void)
{
    (void)pthread_key_create(&exit_key, on_thread_exit);
}

static struct cache *this_cache(void)
{
    struct cache *c = &tls_cache;
    if (!c->registered) {
        (void)pthread_once(&exit_once, make_exit_key);
        c->registered = pthread_setspecific(exit_key, c) == 0;
    }
    return c;
}

void *tok_secmem_alloc(size_t n)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t need = n + sizeof(struct block);
    uint32_t cls = 0;
    while (cls < NCLASSES && class_size(cls) < need)
        cls++;
    struct block *b = NULL;
    if (cls < NCLASSES) {
        struct cache *c = this_cache();
        b = c->free[cls];
        if (b != NULL) {
            UNPOISON(b, class_size(cls));
            c->free[cls] = b->h.next;
            c->count[cls]--;
            b->h.next = NULL;
            b->h.len = (uint32_t)n;
            return b + 1; /* all zero: zeroed when made, its used part wiped when released */
        }
        need = class_size(cls);
    } else {
        /* sodium_malloc ends a block at its guard page: a block is as aligned as its size */
        need = (need + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
        cls = LARGE;
    }
    b = sodium_malloc(need);
    if (b == NULL)
        return NULL;
    memset(b, 0, need);
    b->h.cls = cls;
    b->h.len = cls == LARGE ? 0 : (uint32_t)n;
    return b + 1;
}

void tok_secmem_free(void *p)
{
    if (p == NULL)
        return;
    struct block *b = (struct block *)p - 1;
    uint32_t cls = b->h.cls;
    if (cls == LARGE) {
        sodium_free(b); /* wipes the whole allocation before it unmaps it */
        return;
    }
    size_t size = class_size(cls);
    sodium_memzero(p, b->h.len); /* the rest of the block was never handed out: still zero */
    struct cache *c = this_cache();
    if (!c->registered || c->count[cls] >= cache_max(cls)) {
        sodium_free(b);
        return;
    }
    b->h.next = c->free[cls];
    c->free[cls] = b;
    c->count[cls]++;
    POISON(b, size);
}

unsigned tok_secmem_cached(void)
{
    unsigned n = 0;
    for (uint32_t k = 0; k < NCLASSES; k++)
        n += tls_cache.count[k];
    return n;
}
