/*
 * origin.c - browser origins (the Origin header, and the allowed origins tokenctl stores)
 * in their one normal form. Moved from admin.c: the card element (vault) checks the
 * header, tokenctl checks what it stores, and both must agree byte for byte.
 */
#include "tokend/http/origin.h"

#include <inttypes.h>

static bool host_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Dot-separated labels of 1..63 [a-z0-9-] (already lowercased), no hyphen at either end. */
static bool host_ok(const uint8_t *h, size_t n)
{
    if (n == 0 || n > TOK_ORIGIN_HOST_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && h[i] != '.') {
            if (!host_char_ok(h[i]))
                return false;
            continue;
        }
        size_t len = i - start;
        if (len == 0 || len > TOK_ORIGIN_LABEL_MAX || h[start] == '-' || h[i - 1] == '-')
            return false;
        start = i + 1;
    }
    return true;
}

/* 1..65535, decimal, no sign and no leading zero; *port gets the value. */
static bool port_ok(const uint8_t *p, size_t n, uint32_t *port)
{
    if (n == 0 || n > 5 || p[0] == '0')
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(p[i] - '0');
    }
    *port = v;
    return v <= 65535;
}

tok_status tok_origin_normalize(struct tok_slice origin, struct tok_buf *out)
{
    TOK_ENSURE(out != NULL && (origin.ptr != NULL || origin.len == 0), TOK_ERR_INTERNAL);
    TOK_ENSURE(origin.len > 0 && origin.len <= TOK_ORIGIN_MAX, TOK_ERR_INPUT);
    uint8_t low[TOK_ORIGIN_MAX];
    for (size_t i = 0; i < origin.len; i++) {
        uint8_t c = origin.ptr[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
    }
    struct tok_slice all = tok_slice_of(low, origin.len);
    bool https;
    size_t skip;
    if (all.len > 8 && tok_slice_eq(tok_slice_of(low, 8), "https://")) {
        https = true;
        skip = 8;
    } else if (all.len > 7 && tok_slice_eq(tok_slice_of(low, 7), "http://")) {
        https = false;
        skip = 7;
    } else {
        return TOK_ERR_INPUT;
    }
    const uint8_t *auth = low + skip;
    size_t auth_len = all.len - skip;
    size_t host_len = auth_len;
    for (size_t i = 0; i < auth_len; i++) {
        if (auth[i] == ':') {
            host_len = i;
            break;
        }
    }
    TOK_ENSURE(host_ok(auth, host_len), TOK_ERR_INPUT);
    struct tok_slice host = tok_slice_of(auth, host_len);
    /* plain http only where the traffic never leaves the machine */
    TOK_ENSURE(https || tok_slice_eq(host, "localhost") || tok_slice_eq(host, "127.0.0.1"),
               TOK_ERR_INPUT);
    uint32_t port = 0;
    bool has_port = host_len < auth_len;
    if (has_port)
        TOK_ENSURE(port_ok(auth + host_len + 1, auth_len - host_len - 1, &port), TOK_ERR_INPUT);
    if (port == (https ? 443u : 80u))
        has_port = false; /* browsers leave the default port out of Origin */

    uint8_t mem[TOK_ORIGIN_MAX];
    struct tok_buf tmp;
    tok_buf_init(&tmp, mem, sizeof mem);
    TOK_GUARD(tok_buf_puts(&tmp, https ? "https://" : "http://"));
    TOK_GUARD(tok_buf_write(&tmp, host.ptr, host.len));
    if (has_port)
        TOK_GUARD(tok_buf_printf(&tmp, ":%" PRIu32, port));
    return tok_buf_write(out, tmp.data, tmp.len);
}
