/*
 * rand.c - a per-thread pool of libsodium random bytes for ids and nonces. See rand.h.
 */
#include "tokend/core/rand.h"

#include <sodium.h>
#include <string.h>

struct pool {
    unsigned char bytes[TOK_RAND_POOL];
    size_t next; /* bytes before it were handed out (and wiped) */
};

static _Thread_local struct pool tls_pool = {.next = TOK_RAND_POOL};

void tok_rand_public(void *out, size_t n)
{
    if (n > TOK_RAND_POOLED_MAX) {
        randombytes_buf(out, n);
        return;
    }
    struct pool *p = &tls_pool;
    if (TOK_RAND_POOL - p->next < n) {
        randombytes_buf(p->bytes, sizeof p->bytes);
        p->next = 0;
    }
    memcpy(out, p->bytes + p->next, n);
    sodium_memzero(p->bytes + p->next, n);
    p->next += n;
}
