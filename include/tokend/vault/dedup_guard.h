/*
 * dedup_guard.h - the budget of `"deduplicate": true` answers a secret key gets (issue #15).
 *
 * De-duplication tells its caller whether a card is already stored: with the BIN and last 4
 * a token shows, ~10^5 guesses find a stored PAN. Publishable keys never get it (tokens.c);
 * each secret key gets at most max_hits de-duplication hits per window of window_s seconds,
 * counted here, per tokend process. Misses are not counted here: each one is a real
 * tokenisation (a gateway call and a stored token), bounded by the tokenise rate limit.
 *
 * A lookup first reserves a hit (reserve), so a key at its limit is refused BEFORE the
 * lookup, whatever the card: the refusal itself says nothing about the card. settle() then
 * keeps the reservation as a hit or gives it back. Thread-safe (one mutex; the table is
 * small and only de-duplicating requests touch it).
 */
#ifndef TOKEND_DEDUP_GUARD_H
#define TOKEND_DEDUP_GUARD_H

#include "tokend/core/common.h"

#define TOK_DEDUP_GUARD_KEYS 1024 /* keys counted at once per process; more fail closed */
#define TOK_DEDUP_GUARD_KEY_MAX 48 /* = TOK_ID_MAX */

struct tok_dedup_guard;

/** The process's figures since start (what an operator alerts on). */
struct tok_dedup_stats {
    uint64_t lookups; /* reservations granted */
    uint64_t hits;    /* lookups that found a stored card */
    uint64_t refused; /* requests refused at a key's limit (429) */
};

/** A guard allowing max_hits (>= 1) hits per window_s (>= 1) seconds per key. TOK_ERR_NOMEM,
 * TOK_ERR_INPUT. *out is owned by the caller (tok_dedup_guard_free). */
TOK_MUST_CHECK tok_status tok_dedup_guard_new(uint32_t max_hits, uint32_t window_s,
                                              struct tok_dedup_guard **out);

/** Frees *g and sets it to NULL; NULL does nothing. */
void tok_dedup_guard_free(struct tok_dedup_guard **g);

/**
 * Reserves one hit for key_id (borrowed, at most TOK_DEDUP_GUARD_KEY_MAX - 1 bytes) at time
 * now_s (any monotonic seconds). *allowed false: the key's hits and open reservations
 * already reach the limit (or the table is full of live keys); *retry_after_s is then when
 * its window ends, *first_refusal whether this is the window's first refusal (log it once).
 * TOK_ERR_INPUT for a bad key_id.
 */
TOK_MUST_CHECK tok_status tok_dedup_guard_reserve(struct tok_dedup_guard *g, const char *key_id,
                                                  uint64_t now_s, bool *allowed,
                                                  uint32_t *retry_after_s, bool *first_refusal);

/** Ends a granted reservation: hit keeps it as a hit of the current window, a miss (or a
 * failed lookup) gives it back. */
void tok_dedup_guard_settle(struct tok_dedup_guard *g, const char *key_id, uint64_t now_s,
                            bool hit);

/** Copies the process's figures. */
void tok_dedup_guard_stats(struct tok_dedup_guard *g, struct tok_dedup_stats *out);

/** Hits counted in key_id's current window at now_s (0 when the key is not in the table). */
uint32_t tok_dedup_guard_hits(struct tok_dedup_guard *g, const char *key_id, uint64_t now_s);

#endif
