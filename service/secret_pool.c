/*
 * secret_pool.c - wiped sodium_malloc blocks kept for reuse (see secret_pool.h).
 */
#include "tokend/secret_pool.h"

#include <sodium.h>
#include <stdlib.h>

struct kept {
    struct kept *next; /* in the block itself: a kept block holds no secret any more */
};

struct tok_secret_pool {
    size_t size;
    unsigned keep, n;
    struct kept *head;
};

tok_status tok_secret_pool_new(size_t size, unsigned keep, struct tok_secret_pool **out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(size > 0, TOK_ERR_INPUT);
    struct tok_secret_pool *p = calloc(1, sizeof *p);
    TOK_ENSURE(p != NULL, TOK_ERR_NOMEM);
    p->size = size < sizeof(struct kept) ? sizeof(struct kept) : size;
    p->keep = keep;
    *out = p;
    return TOK_OK;
}

void tok_secret_pool_free(struct tok_secret_pool **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    struct tok_secret_pool *p = *pp;
    while (p->head != NULL) {
        struct kept *k = p->head;
        p->head = k->next;
        sodium_free(k);
    }
    free(p);
    *pp = NULL;
}

void *tok_secret_pool_take(struct tok_secret_pool *p)
{
    if (p == NULL)
        return NULL;
    struct kept *k = p->head;
    if (k != NULL) {
        p->head = k->next;
        p->n--;
        sodium_memzero(k, sizeof *k);
        return k;
    }
    void *b = sodium_malloc(p->size);
    if (b != NULL)
        sodium_memzero(b, p->size); /* sodium_malloc fills with 0xdb */
    return b;
}

void tok_secret_pool_give(struct tok_secret_pool *p, void *block)
{
    if (p == NULL || block == NULL)
        return;
    sodium_memzero(block, p->size);
    if (p->n >= p->keep) {
        sodium_free(block);
        return;
    }
    struct kept *k = block;
    k->next = p->head;
    p->head = k;
    p->n++;
}
