/*
 * secmem.c - per-thread recycling of guarded secret memory. See secmem.h.
 */
#include "tokend/core/secmem.h"

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

#define CLASS_MIN_SHIFT 9u   /* 512 B */
#define NCLASSES 8u          /* 512 B .. 64 KiB */
#define CARVED_CLASSES 6u    /* 512 B .. 16 KiB: carved from chunks */
#define CHUNK_BYTES 65536u   /* one sodium_malloc for 128 cards, 8 gateway requests or 4 JSON arenas */
#define LARGE UINT32_MAX     /* not cached */
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
/* carved blocks of threads that ended (they cannot go back to the system one by one) */
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block *orphans[CARVED_CLASSES];

static size_t class_size(uint32_t cls)
{
    return (size_t)1 << (cls + CLASS_MIN_SHIFT);
}

static bool carved(uint32_t cls)
{
    return cls < CARVED_CLASSES;
}

static unsigned cache_max(uint32_t cls)
{
    unsigned n = CACHE_BYTES >> (cls + CLASS_MIN_SHIFT);
    return n < 4 ? 4 : n > CACHE_MAX ? CACHE_MAX : n;
}

static void push(struct block **list, struct block *b, size_t size)
{
    b->h.next = *list;
    *list = b;
    POISON(b, size);
}

static struct block *pop(struct block **list, size_t size)
{
    struct block *b = *list;
    if (b == NULL)
        return NULL;
    UNPOISON(b, size);
    *list = b->h.next;
    b->h.next = NULL;
    return b;
}

/* A thread that ends gives its blocks back: separate ones to the system, carved ones to
 * the orphans that other threads take before they carve a new chunk. */
static void on_thread_exit(void *arg)
{
    struct cache *c = arg;
    for (uint32_t k = 0; k < NCLASSES; k++) {
        struct block *b;
        while ((b = pop(&c->free[k], class_size(k))) != NULL) {
            if (!carved(k)) {
                sodium_free(b);
                continue;
            }
            pthread_mutex_lock(&orphans_lock);
            push(&orphans[k], b, class_size(k));
            pthread_mutex_unlock(&orphans_lock);
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

/*
 * Fills this thread's cache of a small class: orphans first, else one new chunk carved
 * into blocks. A chunk is never unmapped (its blocks come and go one by one), so carved
 * memory stays at the peak number of secrets held at once: a few hundred bytes each.
 */
static bool refill(struct cache *c, uint32_t cls)
{
    size_t size = class_size(cls);
    pthread_mutex_lock(&orphans_lock);
    struct block *b = pop(&orphans[cls], size);
    pthread_mutex_unlock(&orphans_lock);
    if (b != NULL) {
        push(&c->free[cls], b, size);
        c->count[cls]++;
        return true;
    }
    uint8_t *chunk = sodium_malloc(CHUNK_BYTES);
    if (chunk == NULL)
        return false;
    memset(chunk, 0, CHUNK_BYTES);
    for (size_t at = 0; at + size <= CHUNK_BYTES; at += size) {
        b = (struct block *)(void *)(chunk + at);
        b->h.cls = cls;
        push(&c->free[cls], b, size);
        c->count[cls]++;
    }
    return true;
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
        if (c->free[cls] == NULL && carved(cls) && !refill(c, cls))
            return NULL;
        b = pop(&c->free[cls], class_size(cls));
        if (b != NULL) {
            c->count[cls]--;
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
    sodium_memzero(p, b->h.len); /* the rest of the block was never handed out: still zero */
    b->h.len = 0;
    struct cache *c = this_cache();
    if (!carved(cls) && (!c->registered || c->count[cls] >= cache_max(cls))) {
        sodium_free(b);
        return;
    }
    push(&c->free[cls], b, class_size(cls));
    c->count[cls]++;
}

unsigned tok_secmem_cached(void)
{
    unsigned n = 0;
    for (uint32_t k = 0; k < NCLASSES; k++)
        n += tls_cache.count[k];
    return n;
}
