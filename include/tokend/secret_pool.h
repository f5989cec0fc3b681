/*
 * secret_pool.h - a free list of equal-sized sodium_malloc blocks, for secrets that live
 * as long as one request (a card's PAN and CVC while it is tokenised).
 *
 * Why: sodium_malloc and sodium_free are ~10 system calls each (mmap, three mprotect,
 * mlock, madvise; munlock, munmap) and the page-table changes cost TLB shootdowns on the
 * other CPUs: in the 50 ms gateway bench they were a third of tokend's CPU. A block given
 * back is wiped and kept (guard pages, canary and lock intact) for the next request.
 *
 * One pool belongs to one thread (an event loop): no lock.
 */
#ifndef TOKEND_SECRET_POOL_H
#define TOKEND_SECRET_POOL_H

#include "tokend/common.h"

struct tok_secret_pool;

/**
 * A pool of size-byte blocks keeping at most `keep` free ones. TOK_ERR_INPUT for a zero
 * size; TOK_ERR_NOMEM. Pair with tok_secret_pool_free.
 */
TOK_MUST_CHECK tok_status tok_secret_pool_new(size_t size, unsigned keep,
                                              struct tok_secret_pool **out);

/** sodium_free's every kept block and the pool; sets *p = NULL. NULL-safe. */
void tok_secret_pool_free(struct tok_secret_pool **p);

/**
 * A zeroed sodium_malloc'd block of the pool's size (a kept one when there is one), or NULL
 * when out of memory. p NULL: never (use sodium_malloc).
 */
void *tok_secret_pool_take(struct tok_secret_pool *p);

/** Wipes the block (taken from p) and keeps it, or sodium_free's it when p is full. NULL-safe. */
void tok_secret_pool_give(struct tok_secret_pool *p, void *block);

#endif
