/*
 * secret_pool.h - equal-sized blocks of sodium_malloc memory for secrets that live as long
 * as one request (a card's PAN and CVC while it is tokenised).
 *
 * Why: sodium_malloc and sodium_free are ~10 system calls each (mmap, three mprotect,
 * mlock, madvise; munlock, munmap), the page-table changes cost TLB shootdowns on the
 * other CPUs (in the 50 ms gateway bench they were a third of tokend's CPU), and each
 * allocation holds at least two locked pages (8 KiB for a 264-byte card). The pool takes
 * sodium_malloc chunks of `per_chunk` blocks (guard pages and canary around the chunk, all
 * of it locked and kept out of core dumps) and hands out their blocks; a block given back
 * is wiped and reused. Chunks are kept until tok_secret_pool_free: the pool holds what the
 * most requests in flight at once needed (1,000 cards: 264 kB).
 *
 * Blocks of one chunk are adjacent: an overrun of one block would reach the next one, not
 * a guard page, so blocks are only ever written through bounded tok_buf writers.
 *
 * One pool belongs to one thread (an event loop): no lock.
 */
#ifndef TOKEND_SECRET_POOL_H
#define TOKEND_SECRET_POOL_H

#include "tokend/common.h"

struct tok_secret_pool;

/**
 * A pool of size-byte blocks, taken from the system per_chunk at a time. TOK_ERR_INPUT for
 * a zero size or per_chunk; TOK_ERR_NOMEM. Pair with tok_secret_pool_free.
 */
TOK_MUST_CHECK tok_status tok_secret_pool_new(size_t size, unsigned per_chunk,
                                              struct tok_secret_pool **out);

/** Wipes and sodium_free's every chunk (blocks still out included) and the pool; *p = NULL. */
void tok_secret_pool_free(struct tok_secret_pool **p);

/** A zeroed block of the pool's size, or NULL (out of memory, or p NULL). */
void *tok_secret_pool_take(struct tok_secret_pool *p);

/** Wipes the block (taken from p) and gives it back. NULL-safe. */
void tok_secret_pool_give(struct tok_secret_pool *p, void *block);

#endif
