/*
 * common.h - the one error convention and the bounded byte buffers every
 * module of tokend uses (STYLE.md sections 3 and 4).
 */
#ifndef TOKEND_COMMON_H
#define TOKEND_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TOK_OK = 0,
    TOK_ERR_INPUT,    /* caller's data is malformed or out of range */
    TOK_ERR_BOUNDS,   /* a buffer or limit would be exceeded */
    TOK_ERR_CRYPTO,   /* a cryptographic operation failed (bad tag, bad key) */
    TOK_ERR_DB,       /* PostgreSQL refused or is unreachable */
    TOK_ERR_NOMEM,    /* allocation failed */
    TOK_ERR_NOTFOUND, /* the object does not exist (or belongs to someone else) */
    TOK_ERR_IO,       /* a file or socket operation failed */
    TOK_ERR_CONFLICT, /* a uniqueness rule or a concurrent change refused the write */
    TOK_ERR_INTERNAL  /* a bug: an invariant did not hold */
} tok_status;

#define TOK_MUST_CHECK __attribute__((warn_unused_result))
#define TOK_GUARD(x)                                                                               \
    do {                                                                                           \
        tok_status tok_s_ = (x);                                                                   \
        if (tok_s_ != TOK_OK)                                                                      \
            return tok_s_;                                                                         \
    } while (0)
#define TOK_ENSURE(c, err)                                                                         \
    do {                                                                                           \
        if (!(c))                                                                                  \
            return (err);                                                                          \
    } while (0)
#define TOK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/** A borrowed view of bytes; never owns memory. */
struct tok_slice {
    const uint8_t *ptr;
    size_t len;
};

/** A bounded byte buffer. `owned` buffers were allocated by tok_buf_alloc. */
struct tok_buf {
    uint8_t *data;
    uint32_t cap;
    uint32_t len;
    bool owned;
    bool secret; /* allocated from secmem.h (guarded, locked); wiped whole when released */
};

/** A read position inside a tok_buf. */
struct tok_cursor {
    const struct tok_buf *buf;
    uint32_t pos;
};

/** Static name of a status, for logs ("TOK_ERR_INPUT"). Never NULL. */
const char *tok_status_name(tok_status st);

/** A slice over a NUL-terminated string (borrowed). */
struct tok_slice tok_slice_str(const char *s);

/** A slice over len bytes at p (borrowed). */
struct tok_slice tok_slice_of(const void *p, size_t len);

/** Constant-time equality of two slices of any length (length itself is not secret). */
bool tok_slice_eq_ct(struct tok_slice a, struct tok_slice b);

/** Plain equality for non-secret data (route names, field names). */
bool tok_slice_eq(struct tok_slice a, const char *s);

/** Wraps caller memory of cap bytes as an empty buffer (not owned). */
void tok_buf_init(struct tok_buf *b, void *mem, uint32_t cap);

/**
 * Allocates cap bytes; secret buffers come from secmem.h (guard pages, locked, not dumped).
 * Returns TOK_ERR_NOMEM.
 */
TOK_MUST_CHECK tok_status tok_buf_alloc(struct tok_buf *b, uint32_t cap, bool secret);

/**
 * Wipes the bytes (sodium_memzero) and releases owned memory: a borrowed or secret buffer
 * is wiped whole, an owned non-secret one up to len. Safe on a zeroed buffer.
 */
void tok_buf_wipe(struct tok_buf *b);

/** Appends n bytes. TOK_ERR_BOUNDS when they do not fit (nothing written). */
TOK_MUST_CHECK tok_status tok_buf_write(struct tok_buf *b, const void *src, size_t n);

/**
 * Overwrites n bytes already written, starting at offset at (a length or count field
 * reserved before its value was known). TOK_ERR_BOUNDS when [at, at + n) is not inside
 * [0, len) (nothing written); len never changes.
 */
TOK_MUST_CHECK tok_status tok_buf_write_at(struct tok_buf *b, uint32_t at, const void *src,
                                           size_t n);

/** Appends a NUL-free C string. */
TOK_MUST_CHECK tok_status tok_buf_puts(struct tok_buf *b, const char *s);

/** Appends one byte. */
TOK_MUST_CHECK tok_status tok_buf_putc(struct tok_buf *b, uint8_t c);

/** snprintf into the free space; truncation is TOK_ERR_BOUNDS and leaves len unchanged. */
TOK_MUST_CHECK tok_status tok_buf_printf(struct tok_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Makes the content a C string: writes a NUL after len without counting it.
 * TOK_ERR_BOUNDS when there is no room for it.
 */
TOK_MUST_CHECK tok_status tok_buf_cstr(struct tok_buf *b, const char **out);

/** Empties the buffer (wiping the bytes that were there). */
void tok_buf_reset(struct tok_buf *b);

/** The content as a slice (borrowed from b). */
struct tok_slice tok_buf_slice(const struct tok_buf *b);

/** Starts reading b from its beginning. */
void tok_cursor_init(struct tok_cursor *c, const struct tok_buf *b);

/** Copies n bytes out; TOK_ERR_BOUNDS when fewer remain (nothing consumed). */
TOK_MUST_CHECK tok_status tok_cursor_read(struct tok_cursor *c, void *dst, size_t n);

/** Bytes left to read. */
size_t tok_cursor_remaining(const struct tok_cursor *c);

/** Copies n bytes from src to dst (the only memcpy outside buf.c is in libraries). */
void tok_copy(void *dst, const void *src, size_t n);

#endif
