/*
 * secmem.h - memory for secrets (card data, request bodies that hold it, gateway
 * bodies, keys in transit), recycled per thread.
 *
 * Every block is a libsodium guarded allocation (sodium_malloc: guard pages,
 * mlock, excluded from core dumps), so a secret never lands in swap or a core
 * file and an overflow faults. sodium_malloc and sodium_free cost several
 * system calls each (mmap, mprotect, mlock, munlock, munmap) and the TLB
 * shootdowns they send to the other CPUs: more than half of tokend's CPU per
 * tokenisation (issue #9 profile). So released blocks are wiped and kept in
 * a small per-thread cache by size class, and the next request of that class
 * on that thread reuses one without a system call. The cache is bounded per
 * class; beyond it blocks go back to the system. No locks: a block released
 * on another thread simply joins that thread's cache.
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
