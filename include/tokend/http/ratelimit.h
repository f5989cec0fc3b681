/*
 * ratelimit.h - token buckets shared by every event-loop thread (issue #15, finding 3).
 *
 * Three classes: tokenisations (POST /v1/tokens, the card element's POST included) and
 * charges (POST /v1/charges, captures, voids, refunds) per API key, and failed
 * authentications per client address. A bucket holds up to `burst` tokens and gains `rate`
 * per second; a request takes one, or is refused with the whole seconds until one is back.
 *
 * DESIGN DECISION: one table per class for the whole process, not one per loop thread. With
 * per-thread buckets a key's effective limit would be N x the configured one and depend on
 * which loop the kernel gave each connection. The table is fixed-size (TOK_RL_SLOTS entries,
 * allocated once) and split into shards with a mutex each, so threads rarely wait on one
 * another and memory never grows: a new key replaces the entry in its probe window whose
 * bucket holds the most tokens (a full bucket is the same as no entry, so evicting it loses
 * nothing; the keys being throttled have the emptiest buckets and are the last to go).
 * Slots are chosen with a keyed hash (SipHash, random key per process), so nobody can aim
 * many keys at one window to push a throttled entry out.
 *
 * The functions take the time as an argument (the caller passes tok_ratelimit_now_us()), so
 * the logic is tested with an injected clock. Counters are per class and readable at any
 * time from any thread (tok_ratelimit_stats, tok_ratelimit_collect), for logs and /metrics.
 */
#ifndef TOKEND_HTTP_RATELIMIT_H
#define TOKEND_HTTP_RATELIMIT_H

#include "tokend/core/common.h"

#include <sys/socket.h>

#define TOK_RL_KEY_MAX 64      /* bytes of a bucket's key (an API key id and an address) */
#define TOK_RL_SLOTS 4096      /* buckets per class */
#define TOK_RL_SHARDS 16       /* mutexes per class */
#define TOK_RL_PROBE 8         /* slots a key may occupy (its probe window) */
#define TOK_RL_RATE_MILLI_MAX 1000000000u /* 1,000,000 tokens per second */
#define TOK_RL_BURST_MAX 1000000u
#define TOK_RL_ADDR_KEY_MAX 9  /* tok_ratelimit_addr_key: a family byte and up to 8 bytes */

enum tok_rl_class {
    TOK_RL_TOKENISE = 0, /* per API key (publishable keys: per key and client address) */
    TOK_RL_CHARGE,       /* per API key */
    TOK_RL_AUTH_FAIL,    /* per client address (IPv4 /32, IPv6 /64) */
    TOK_RL_CLASSES,
    TOK_RL_NONE = TOK_RL_CLASSES /* "no limit" for callers that take an optional class */
};

/**
 * One class's limit: `rate_milli` thousandths of a token per second (0 = no limit; 100 = one
 * token every 10 s, 100000 = 100 per second), at most `burst` tokens saved up.
 */
struct tok_rl_limit {
    uint32_t rate_milli;
    uint32_t burst;
};

/** One class's counters since start (monotonic; read without stopping anyone). */
struct tok_rl_stats {
    uint32_t rate_milli, burst; /* as configured */
    uint64_t allowed;     /* tok_ratelimit_take answers that let a request through */
    uint64_t refused;     /* requests refused (take or peek): each was answered 429 */
    uint64_t recorded;    /* events charged with tok_ratelimit_record (failed authentications) */
    uint64_t evicted;     /* buckets dropped to make room for another key */
    uint32_t entries;     /* slots in use (at most TOK_RL_SLOTS) */
};

struct tok_ratelimit;

/**
 * Allocates the tables (about 400 KiB per class whose rate is not 0). limits[] is copied.
 * TOK_ERR_INPUT when a rate or burst is above its maximum or a limited class has burst 0;
 * TOK_ERR_NOMEM.
 */
TOK_MUST_CHECK tok_status tok_ratelimit_new(const struct tok_rl_limit limits[TOK_RL_CLASSES],
                                            struct tok_ratelimit **out);

/** Frees *rl and sets it to NULL. NULL is ignored. */
void tok_ratelimit_free(struct tok_ratelimit **rl);

/** CLOCK_MONOTONIC in microseconds: the clock the request path passes to the calls below. */
uint64_t tok_ratelimit_now_us(void);

/**
 * Takes one token from key's bucket in class c. TOK_OK: go ahead (always, when the class is
 * off). TOK_ERR_BOUNDS: refused, *retry_after_s (>= 1) seconds until a token is back.
 * TOK_ERR_INPUT when key is empty or longer than TOK_RL_KEY_MAX; TOK_ERR_INTERNAL for a bad
 * class. Thread-safe. key is borrowed.
 */
TOK_MUST_CHECK tok_status tok_ratelimit_take(struct tok_ratelimit *rl, enum tok_rl_class c,
                                             struct tok_slice key, uint64_t now_us,
                                             uint32_t *retry_after_s);

/**
 * Like tok_ratelimit_take but takes nothing: TOK_OK while the bucket holds a whole token,
 * TOK_ERR_BOUNDS (counted as refused) when it is empty. For limits charged after the fact
 * (failed authentications): check before the work, record when it failed.
 */
TOK_MUST_CHECK tok_status tok_ratelimit_peek(struct tok_ratelimit *rl, enum tok_rl_class c,
                                             struct tok_slice key, uint64_t now_us,
                                             uint32_t *retry_after_s);

/**
 * Charges one event to key's bucket (one token, or what is left of one): never refuses.
 * Nothing when the class is off or the key is empty or too long.
 */
void tok_ratelimit_record(struct tok_ratelimit *rl, enum tok_rl_class c, struct tok_slice key,
                          uint64_t now_us);

/** Copies class c's counters into *out. TOK_ERR_INTERNAL for a bad class or NULL. */
TOK_MUST_CHECK tok_status tok_ratelimit_stats(const struct tok_ratelimit *rl, enum tok_rl_class c,
                                              struct tok_rl_stats *out);

struct tok_metrics_out;
/**
 * The /metrics collector (metrics.h): per limiter (class name), requests refused and
 * allowed, buckets evicted and in use, the configured rate. ctx is the struct tok_ratelimit.
 */
void tok_ratelimit_collect(void *ctx, struct tok_metrics_out *o);

/** "tokenise", "charge", "auth_failure"; "?" for anything else. Static. */
const char *tok_ratelimit_class_name(enum tok_rl_class c);

/**
 * The bucket key of a client address: IPv4 (and IPv4-mapped IPv6) by its 4 bytes, IPv6 by
 * its /64 (one host usually holds a whole /64, so counting its addresses one by one would
 * let it start over 2^64 times). Writes at most TOK_RL_ADDR_KEY_MAX bytes into out and their
 * count into *len. TOK_ERR_INPUT for another family or a short sockaddr.
 */
TOK_MUST_CHECK tok_status tok_ratelimit_addr_key(const struct sockaddr *sa, socklen_t sa_len,
                                                 uint8_t out[TOK_RL_ADDR_KEY_MAX], size_t *len);

#endif
