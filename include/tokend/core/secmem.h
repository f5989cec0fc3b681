/*
 * secmem.h - memory for secrets (card data, request bodies that hold it, gateway
 * bodies, keys in transit), recycled per thread.
 *
 * All of it comes from libsodium's guarded allocations (sodium_malloc: guard
 * pages, mlock, excluded from core dumps), so a secret never lands in swap or
 * a core file. sodium_malloc and sodium_free cost several system calls each
 * (mmap, mprotect, mlock, munlock, munmap) and the TLB shootdowns they send to
 * the other CPUs: more than half of tokend's CPU per tokenisation (issue #9
 * profile), and each call is at least two locked pages. So:
 *   - blocks of up to 16 KiB (card data, a gateway request's buffers, the JSON
 *     parse arena of a request body) are carved from 64 KiB guarded chunks: 128
 *     cards or 4 arenas in one sodium_malloc. The chunk has guard pages at its
 *     ends, not between its blocks. Chunks are kept for reuse (memory stays at
 *     the peak number of such secrets held at once). A card request's arena is
 *     8-16 KiB: one sodium_malloc and sodium_free per request, each a guarded
 *     mapping of its own, until this class was carved too;
 *   - blocks of 32-64 KiB (bigger JSON documents) are one sodium_malloc each,
 *     with their own guard pages, and a few are kept per thread;
 *   - anything larger is a plain sodium_malloc.
 * A released block is wiped (the bytes handed out) and kept in a per-thread
 * cache by size class; the next request of that class on that thread reuses
 * it without a system call. No locks on that path: a block released on
 * another thread joins that thread's cache.
 */
#ifndef TOKEND_SECMEM_H
#define TOKEND_SECMEM_H

#include <stddef.h>

/** A zeroed block of at least n bytes of locked, guarded memory; NULL when out of memory. */
void *tok_secmem_alloc(size_t n);

/** Wipes the whole block and releases it (to this thread's cache or the system). NULL is ignored. */
void tok_secmem_free(void *p);

/** Blocks waiting in this thread's cache (for tests and the debug log). */
unsigned tok_secmem_cached(void);

#endif
