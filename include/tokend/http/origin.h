/*
 * origin.h - a browser origin's one normal form (Origin header, allowed-origin lists).
 */
#ifndef TOKEND_HTTP_ORIGIN_H
#define TOKEND_HTTP_ORIGIN_H

#include "tokend/core/common.h"

#define TOK_ORIGIN_MAX 300      /* "https://" + 253-byte host + ":65535" */
#define TOK_ORIGIN_HOST_MAX 253 /* RFC 1035 */
#define TOK_ORIGIN_LABEL_MAX 63

/**
 * Checks a browser origin and appends its normal form to out (no NUL): "https://host[:port]",
 * or "http://localhost[:port]" / "http://127.0.0.1[:port]" for development. No path, query,
 * fragment, user info or trailing slash. Scheme and host are lowercased and a default port
 * (443, 80) is dropped, because browsers send the Origin header that way. Host: dot-separated
 * labels of 1..63 letters, digits and hyphens (not at a label's ends), at most 253 bytes.
 * Port: 1..65535 without leading zeros. Nothing is appended on failure.
 * TOK_ERR_INPUT: anything else. TOK_ERR_BOUNDS: out lacks room.
 */
TOK_MUST_CHECK tok_status tok_origin_normalize(struct tok_slice origin, struct tok_buf *out);

#endif
