/*
 * rand.c - a per-thread pool of libsodium random bytes for ids and nonces. See rand.h.
 */
#include "tokend/core/rand.h"
#include "tokend/core/base62.h"

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

tok_status tok_random_id(const char *prefix, struct tok_buf *out)
{
    TOK_ENSURE(prefix != NULL && out != NULL && out->len <= out->cap, TOK_ERR_INTERNAL);
    size_t plen = strnlen(prefix, TOK_RANDOM_ID_PREFIX_MAX + 1);
    TOK_ENSURE(plen <= TOK_RANDOM_ID_PREFIX_MAX, TOK_ERR_INPUT);
    for (size_t i = 0; i < plen; i++) {
        char c = prefix[i];
        TOK_ENSURE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_', TOK_ERR_INPUT);
    }
    TOK_ENSURE(plen + TOK_RANDOM_ID_CHARS <= (size_t)(out->cap - out->len), TOK_ERR_BOUNDS);

    uint8_t rnd[TOK_RANDOM_ID_BYTES];
    tok_rand_public(rnd, sizeof rnd);
    uint32_t start = out->len;
    tok_status st = tok_buf_write(out, prefix, plen);
    if (st == TOK_OK)
        st = tok_base62_encode(tok_slice_of(rnd, sizeof rnd), TOK_RANDOM_ID_CHARS, out);
    if (st != TOK_OK)
        out->len = start;
    sodium_memzero(rnd, sizeof rnd);
    return st;
}
