/*
 * buf.c - bounded buffers. The only file that calls memcpy: every length is
 * checked here, by subtraction (n <= cap - len), never by addition.
 */
#include "tokend/core/common.h"
#include "tokend/core/secmem.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tok_status_name(tok_status st)
{
    switch (st) {
    case TOK_OK:
        return "TOK_OK";
    case TOK_ERR_INPUT:
        return "TOK_ERR_INPUT";
    case TOK_ERR_BOUNDS:
        return "TOK_ERR_BOUNDS";
    case TOK_ERR_CRYPTO:
        return "TOK_ERR_CRYPTO";
    case TOK_ERR_DB:
        return "TOK_ERR_DB";
    case TOK_ERR_NOMEM:
        return "TOK_ERR_NOMEM";
    case TOK_ERR_NOTFOUND:
        return "TOK_ERR_NOTFOUND";
    case TOK_ERR_IO:
        return "TOK_ERR_IO";
    case TOK_ERR_CONFLICT:
        return "TOK_ERR_CONFLICT";
    case TOK_ERR_INTERNAL:
        return "TOK_ERR_INTERNAL";
    default:
        return "TOK_ERR_UNKNOWN";
    }
}

struct tok_slice tok_slice_str(const char *s)
{
    struct tok_slice sl = {(const uint8_t *)s, s == NULL ? 0 : strlen(s)};
    return sl;
}

struct tok_slice tok_slice_of(const void *p, size_t len)
{
    struct tok_slice sl = {(const uint8_t *)p, len};
    return sl;
}

bool tok_slice_eq_ct(struct tok_slice a, struct tok_slice b)
{
    if (a.len != b.len)
        return false;
    if (a.len == 0)
        return true;
    return sodium_memcmp(a.ptr, b.ptr, a.len) == 0;
}

bool tok_slice_eq(struct tok_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

void tok_buf_init(struct tok_buf *b, void *mem, uint32_t cap)
{
    b->data = mem;
    b->cap = cap;
    b->len = 0;
    b->owned = false;
    b->secret = false;
}

tok_status tok_buf_alloc(struct tok_buf *b, uint32_t cap, bool secret)
{
    TOK_ENSURE(b != NULL && cap > 0, TOK_ERR_INTERNAL);
    b->data = secret ? tok_secmem_alloc(cap) : malloc(cap);
    TOK_ENSURE(b->data != NULL, TOK_ERR_NOMEM);
    b->cap = cap;
    b->len = 0;
    b->owned = true;
    b->secret = secret;
    return TOK_OK;
}

void tok_buf_wipe(struct tok_buf *b)
{
    if (b == NULL || b->data == NULL)
        return;
    if (!b->owned) {
        sodium_memzero(b->data, b->cap); /* the caller's memory: it may hold anything */
    } else if (b->secret) {
        tok_secmem_free(b->data); /* wipes it */
    } else {
        /* not secret by its owner's choice: what it held is wiped, its unused tail skipped */
        sodium_memzero(b->data, b->len);
        free(b->data);
    }
    b->data = NULL;
    b->cap = 0;
    b->len = 0;
    b->owned = false;
    b->secret = false;
}

tok_status tok_buf_write(struct tok_buf *b, const void *src, size_t n)
{
    TOK_ENSURE(b != NULL && (src != NULL || n == 0), TOK_ERR_INTERNAL);
    TOK_ENSURE(b->len <= b->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(n <= (size_t)(b->cap - b->len), TOK_ERR_BOUNDS);
    if (n > 0)
        memcpy(b->data + b->len, src, n);
    b->len += (uint32_t)n;
    return TOK_OK;
}

tok_status tok_buf_write_at(struct tok_buf *b, uint32_t at, const void *src, size_t n)
{
    TOK_ENSURE(b != NULL && (src != NULL || n == 0), TOK_ERR_INTERNAL);
    TOK_ENSURE(b->len <= b->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(at <= b->len && n <= (size_t)(b->len - at), TOK_ERR_BOUNDS);
    if (n > 0)
        memcpy(b->data + at, src, n);
    return TOK_OK;
}

tok_status tok_buf_puts(struct tok_buf *b, const char *s)
{
    TOK_ENSURE(s != NULL, TOK_ERR_INTERNAL);
    return tok_buf_write(b, s, strlen(s));
}

tok_status tok_buf_putc(struct tok_buf *b, uint8_t c)
{
    return tok_buf_write(b, &c, 1);
}

tok_status tok_buf_printf(struct tok_buf *b, const char *fmt, ...)
{
    TOK_ENSURE(b != NULL && b->len <= b->cap, TOK_ERR_INTERNAL);
    size_t room = b->cap - b->len;
    TOK_ENSURE(room > 0, TOK_ERR_BOUNDS);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)b->data + b->len, room, fmt, ap);
    va_end(ap);
    TOK_ENSURE(n >= 0, TOK_ERR_INTERNAL);
    /* vsnprintf needs room for its NUL: n == room means truncated */
    TOK_ENSURE((size_t)n < room, TOK_ERR_BOUNDS);
    b->len += (uint32_t)n;
    return TOK_OK;
}

tok_status tok_buf_cstr(struct tok_buf *b, const char **out)
{
    TOK_ENSURE(b != NULL && out != NULL && b->len <= b->cap, TOK_ERR_INTERNAL);
    TOK_ENSURE(b->cap - b->len >= 1, TOK_ERR_BOUNDS);
    b->data[b->len] = '\0';
    *out = (const char *)b->data;
    return TOK_OK;
}

void tok_buf_reset(struct tok_buf *b)
{
    if (b->data != NULL && b->len > 0)
        sodium_memzero(b->data, b->len);
    b->len = 0;
}

struct tok_slice tok_buf_slice(const struct tok_buf *b)
{
    struct tok_slice s = {b->data, b->len};
    return s;
}

void tok_cursor_init(struct tok_cursor *c, const struct tok_buf *b)
{
    c->buf = b;
    c->pos = 0;
}

tok_status tok_cursor_read(struct tok_cursor *c, void *dst, size_t n)
{
    TOK_ENSURE(c != NULL && c->buf != NULL && (dst != NULL || n == 0), TOK_ERR_INTERNAL);
    TOK_ENSURE(c->pos <= c->buf->len, TOK_ERR_INTERNAL);
    TOK_ENSURE(n <= (size_t)(c->buf->len - c->pos), TOK_ERR_BOUNDS);
    if (n > 0)
        memcpy(dst, c->buf->data + c->pos, n);
    c->pos += (uint32_t)n;
    return TOK_OK;
}

size_t tok_cursor_remaining(const struct tok_cursor *c)
{
    return c->buf->len - c->pos;
}

void tok_copy(void *dst, const void *src, size_t n)
{
    if (n > 0)
        memcpy(dst, src, n);
}
