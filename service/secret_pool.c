/*
 * secret_pool.c - blocks of sodium_malloc'd chunks, wiped and reused (see secret_pool.h).
 */
#include "tokend/secret_pool.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>

struct free_block {
    struct free_block *next; /* in the block itself: a free block holds no secret */
};

struct chunk {
    struct chunk *next;
    uint8_t *mem; /* sodium_malloc'd, per_chunk * size bytes */
};

struct tok_secret_pool {
    size_t size;
    unsigned per_chunk;
    struct chunk *chunks;
    struct free_block *free;
};

tok_status tok_secret_pool_new(size_t size, unsigned per_chunk, struct tok_secret_pool **out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(size > 0 && per_chunk > 0 && size <= SIZE_MAX / per_chunk, TOK_ERR_INPUT);
    struct tok_secret_pool *p = calloc(1, sizeof *p);
    TOK_ENSURE(p != NULL, TOK_ERR_NOMEM);
    /* blocks hold a free-list link when free, and stay pointer-aligned */
    size_t a = sizeof(void *);
    p->size = size < sizeof(struct free_block) ? sizeof(struct free_block) : (size + a - 1) / a * a;
    p->per_chunk = per_chunk;
    *out = p;
    return TOK_OK;
}

void tok_secret_pool_free(struct tok_secret_pool **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    struct tok_secret_pool *p = *pp;
    while (p->chunks != NULL) {
        struct chunk *c = p->chunks;
        p->chunks = c->next;
        sodium_free(c->mem); /* wipes before it unmaps */
        free(c);
    }
    free(p);
    *pp = NULL;
}

static bool grow(struct tok_secret_pool *p)
{
    struct chunk *c = calloc(1, sizeof *c);
    if (c == NULL)
        return false;
    c->mem = sodium_malloc(p->size * p->per_chunk);
    if (c->mem == NULL) {
        free(c);
        return false;
    }
    sodium_memzero(c->mem, p->size * p->per_chunk); /* sodium_malloc fills with 0xdb */
    c->next = p->chunks;
    p->chunks = c;
    for (unsigned i = p->per_chunk; i-- > 0;) {
        struct free_block *b = (struct free_block *)(void *)(c->mem + i * p->size);
        b->next = p->free;
        p->free = b;
    }
    return true;
}

void *tok_secret_pool_take(struct tok_secret_pool *p)
{
    if (p == NULL || (p->free == NULL && !grow(p)))
        return NULL;
    struct free_block *b = p->free;
    p->free = b->next;
    sodium_memzero(b, sizeof *b);
    return b;
}

void tok_secret_pool_give(struct tok_secret_pool *p, void *block)
{
    if (p == NULL || block == NULL)
        return;
    sodium_memzero(block, p->size);
    struct free_block *b = block;
    b->next = p->free;
    p->free = b;
}
