/*
 * fuzz_query.c - the form/URL decoders: the query strings of the reporting and export API
 * (tok_reports_parse_query, service/finance/reports.c: percent-decoding, '+', filters,
 * RFC 3339 times, cursors), the hosted card form's query (tok_elements_query_param,
 * service/vault/elements.c) and webhook endpoint URLs (tok_webhook_url_check,
 * service/events/webhooks_sig.c).
 *
 * Properties:
 *   - tok_reports_parse_query, for each list and export: on success every field is a
 *     NUL-terminated string without control bytes and the limit is 1..1000; on failure it
 *     names a parameter and a reason;
 *   - tok_elements_query_param agrees with a reference decoder written here from its
 *     header comment (found / absent / given twice / bad escape / control byte);
 *   - an accepted webhook URL has the promised shape.
 */
#include "fuzz.h"

#include "tokend/events/webhooks.h"
#include "tokend/finance/reports.h"
#include "tokend/vault/elements.h"

#include <sodium.h>
#include <strings.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    return 0;
}

static void clean_str(const char *s, size_t cap)
{
    const char *end = memchr(s, '\0', cap);
    FUZZ_ASSERT(end != NULL);
    for (; s < end; s++)
        FUZZ_ASSERT((uint8_t)*s >= 0x20 && *s != 0x7f);
}

static void check_reports(struct tok_slice in)
{
    static const enum tok_report_kind kinds[] = {TOK_REPORT_CHARGES, TOK_REPORT_REFUNDS,
                                                 TOK_REPORT_EVENTS};
    for (size_t k = 0; k < TOK_ARRAY_LEN(kinds); k++) {
        for (int export = 0; export <= 1; export++) {
            struct tok_report_query q;
            const char *bad = NULL, *why = NULL;
            tok_status st = tok_reports_parse_query(in, kinds[k], export != 0, &q, &bad, &why);
            if (st != TOK_OK) {
                FUZZ_ASSERT(st == TOK_ERR_INPUT && bad != NULL && why != NULL);
                continue;
            }
            FUZZ_ASSERT(bad == NULL && why == NULL);
            FUZZ_ASSERT(q.kind == kinds[k] && q.limit >= 1 && q.limit <= 1000);
            clean_str(q.created_from, sizeof q.created_from);
            clean_str(q.created_to, sizeof q.created_to);
            clean_str(q.status, sizeof q.status);
            clean_str(q.gateway, sizeof q.gateway);
            clean_str(q.invoice_ref, sizeof q.invoice_ref);
            clean_str(q.currency, sizeof q.currency);
            clean_str(q.type, sizeof q.type);
            clean_str(q.starting_after, sizeof q.starting_after);
            if (kinds[k] == TOK_REPORT_EVENTS)
                FUZZ_ASSERT(q.status[0] == '\0' && q.gateway[0] == '\0' &&
                            q.invoice_ref[0] == '\0' && q.currency[0] == '\0');
        }
    }
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The reference: what elements.h says tok_elements_query_param does. */
static tok_status ref_param(struct tok_slice q, const char *name, uint8_t *out, size_t cap,
                            size_t *outlen)
{
    if (q.len > TOK_ELEMENTS_QUERY_MAX)
        return TOK_ERR_INPUT;
    size_t nl = strlen(name), i = 0;
    struct tok_slice v = {NULL, 0};
    bool seen = false;
    while (i < q.len) {
        size_t j = i;
        while (j < q.len && q.ptr[j] != '&')
            j++;
        size_t n = j - i;
        if (n >= nl && memcmp(q.ptr + i, name, nl) == 0 && (n == nl || q.ptr[i + nl] == '=')) {
            if (seen)
                return TOK_ERR_INPUT;
            seen = true;
            v = n == nl ? tok_slice_of("", 0) : tok_slice_of(q.ptr + i + nl + 1, n - nl - 1);
        }
        i = j + 1;
    }
    if (!seen)
        return TOK_ERR_NOTFOUND;
    size_t o = 0;
    for (size_t k = 0; k < v.len; k++) {
        uint8_t c = v.ptr[k];
        if (c == '%') {
            if (k + 2 >= v.len || hexval(v.ptr[k + 1]) < 0 || hexval(v.ptr[k + 2]) < 0)
                return TOK_ERR_INPUT;
            c = (uint8_t)(hexval(v.ptr[k + 1]) * 16 + hexval(v.ptr[k + 2]));
            k += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c < 0x20 || c == 0x7f)
            return TOK_ERR_INPUT;
        if (o == cap)
            return TOK_ERR_BOUNDS;
        out[o++] = c;
    }
    *outlen = o;
    return TOK_OK;
}

static void check_elements(struct tok_slice in)
{
    static const char *const names[] = {"key", "origin"};
    for (size_t k = 0; k < TOK_ARRAY_LEN(names); k++) {
        uint8_t mem[128], want[128];
        struct tok_buf out;
        tok_buf_init(&out, mem, sizeof mem);
        size_t wlen = 0;
        tok_status st = tok_elements_query_param(in, names[k], &out);
        tok_status ref = ref_param(in, names[k], want, sizeof want, &wlen);
        FUZZ_ASSERT(st == ref);
        if (st == TOK_OK)
            FUZZ_ASSERT(out.len == wlen && (wlen == 0 || memcmp(out.data, want, wlen) == 0));
        else
            FUZZ_ASSERT(out.len == 0);
    }
}

static void check_url(struct tok_slice in)
{
    for (int loop = 0; loop <= 1; loop++) {
        tok_status st = tok_webhook_url_check(in, loop != 0);
        FUZZ_ASSERT(st == TOK_OK || st == TOK_ERR_INPUT);
        if (st != TOK_OK)
            continue;
        FUZZ_ASSERT(in.len <= TOK_WEBHOOK_URL_MAX);
        /* the scheme is case-insensitive (RFC 3986 section 3.1) */
        bool https = in.len > 8 && strncasecmp((const char *)in.ptr, "https://", 8) == 0;
        bool http = in.len > 7 && strncasecmp((const char *)in.ptr, "http://", 7) == 0;
        FUZZ_ASSERT(https || (loop && http));
        for (size_t i = 0; i < in.len; i++)
            FUZZ_ASSERT(in.ptr[i] > 0x20 && in.ptr[i] != 0x7f && in.ptr[i] != '@' &&
                        in.ptr[i] != '#');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_slice in = tok_slice_of(data, size);
    check_reports(in);
    check_elements(in);
    check_url(in);
    return 0;
}
