#include "tokend/admin/admin.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static tok_status scopes(const char *in, char *out, size_t cap)
{
    struct tok_buf b;
    const char *s = NULL;
    tok_buf_init(&b, out, (uint32_t)cap);
    tok_status st = tok_admin_scopes_parse(tok_slice_str(in), &b);
    if (st == TOK_OK)
        ck_assert_int_eq(tok_buf_cstr(&b, &s), TOK_OK);
    else
        ck_assert_uint_eq(b.len, 0);
    return st;
}

static tok_status origin(const char *in, char *out, size_t cap)
{
    struct tok_buf b;
    const char *s = NULL;
    tok_buf_init(&b, out, (uint32_t)cap);
    tok_status st = tok_origin_normalize(tok_slice_str(in), &b);
    if (st == TOK_OK)
        ck_assert_int_eq(tok_buf_cstr(&b, &s), TOK_OK);
    else
        ck_assert_uint_eq(b.len, 0);
    return st;
}

static void expect_origin(const char *in, const char *want)
{
    char out[TOK_ORIGIN_MAX + 1];
    ck_assert_msg(origin(in, out, sizeof out) == TOK_OK, "origin %s refused", in);
    ck_assert_str_eq(out, want);
}

static void expect_origin_refused(const char *in)
{
    char out[TOK_ORIGIN_MAX + 1];
    ck_assert_msg(origin(in, out, sizeof out) == TOK_ERR_INPUT, "origin %s accepted", in);
}

static tok_status name_check(const char *s)
{
    return tok_admin_tenant_name_check(tok_slice_str(s));
}

static uint8_t h_a[32], h_b[32], h_c[32], zero[32];

static void walk_setup(void)
{
    memset(h_a, 0xa1, sizeof h_a);
    memset(h_b, 0xb2, sizeof h_b);
    memset(h_c, 0xc3, sizeof h_c);
    memset(zero, 0, sizeof zero);
}

static struct tok_slice h(const uint8_t *p)
{
    return tok_slice_of(p, 32);
}

/* ---- core ------------------------------------------------------------------------------- */

START_TEST(test_scopes_valid_in_order)
{
    char out[TOK_ADMIN_SCOPE_LIST_MAX + 1];
    ck_assert_int_eq(scopes("tokens:read,tokens:write", out, sizeof out), TOK_OK);
    ck_assert_str_eq(out, "tokens:read,tokens:write");
    ck_assert_int_eq(scopes("admin", out, sizeof out), TOK_OK);
    ck_assert_str_eq(out, "admin");
    ck_assert_int_eq(scopes("charges:write,reports:read", out, sizeof out), TOK_OK);
    ck_assert_str_eq(out, "charges:write,reports:read");
}
END_TEST

START_TEST(test_scopes_dedup)
{
    char out[TOK_ADMIN_SCOPE_LIST_MAX + 1];
    ck_assert_int_eq(scopes("admin,tokens:read,admin,tokens:read", out, sizeof out), TOK_OK);
    ck_assert_str_eq(out, "admin,tokens:read");
}
END_TEST

START_TEST(test_scopes_unknown_refused)
{
    char out[TOK_ADMIN_SCOPE_LIST_MAX + 1];
    ck_assert_int_eq(scopes("tokens:delete", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes("tokens:read,root", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes("Admin", out, sizeof out), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_origin_valid)
{
    expect_origin("https://shop.example.com", "https://shop.example.com");
    expect_origin("https://shop.example.com:8443", "https://shop.example.com:8443");
    expect_origin("http://localhost", "http://localhost");
    expect_origin("http://localhost:3000", "http://localhost:3000");
    expect_origin("http://127.0.0.1:8080", "http://127.0.0.1:8080");
    expect_origin("https://a-b.example", "https://a-b.example");
}
END_TEST

START_TEST(test_origin_normalised)
{
    expect_origin("HTTPS://Shop.Example.COM", "https://shop.example.com");
    expect_origin("https://shop.example.com:443", "https://shop.example.com");
    expect_origin("http://localhost:80", "http://localhost");
    expect_origin("https://localhost:80", "https://localhost:80");
}
END_TEST

START_TEST(test_name_valid)
{
    ck_assert_int_eq(name_check("Acme"), TOK_OK);
    ck_assert_int_eq(name_check("Acme Corp GmbH & Co. KG"), TOK_OK);
    ck_assert_int_eq(name_check("Caf\xc3\xa9 M\xc3\xbcller"), TOK_OK);
    ck_assert_int_eq(name_check("ten_short"), TOK_OK);
}
END_TEST

START_TEST(test_walk_intact_chain)
{
    struct tok_audit_walk w;
    tok_audit_walk_init(&w);
    ck_assert_int_eq(tok_audit_walk_step(&w, 1, h(zero), h(h_a), h(h_a)), TOK_OK);
    ck_assert_int_eq(tok_audit_walk_step(&w, 2, h(h_a), h(h_b), h(h_b)), TOK_OK);
    ck_assert_int_eq(tok_audit_walk_step(&w, 5, h(h_b), h(h_c), h(h_c)), TOK_OK);
    ck_assert_uint_eq(w.count, 3);
    ck_assert_ptr_null(w.why);
}
END_TEST

START_TEST(test_walk_row_altered)
{
    struct tok_audit_walk w;
    tok_audit_walk_init(&w);
    ck_assert_int_eq(tok_audit_walk_step(&w, 1, h(zero), h(h_a), h(h_a)), TOK_OK);
    ck_assert_int_eq(tok_audit_walk_step(&w, 2, h(h_a), h(h_b), h(h_c)), TOK_ERR_CRYPTO);
    ck_assert_int_eq(w.broken_at, 2);
    ck_assert_str_eq(w.why, "row altered");
    ck_assert_uint_eq(w.count, 1);
}
END_TEST

START_TEST(test_walk_row_missing)
{
    struct tok_audit_walk w;
    tok_audit_walk_init(&w);
    ck_assert_int_eq(tok_audit_walk_step(&w, 1, h(zero), h(h_a), h(h_a)), TOK_OK);
    /* row 2 (hash h_b) was deleted: row 3 still points at it */
    ck_assert_int_eq(tok_audit_walk_step(&w, 3, h(h_b), h(h_c), h(h_c)), TOK_ERR_CRYPTO);
    ck_assert_int_eq(w.broken_at, 3);
    ck_assert_str_eq(w.why, "previous row missing or altered");
}
END_TEST

/* ---- block walk (sql/011) ---- */

/* A block of rows 1..n digested as d[i] = {i+1, ...}, ids first..first+n-1, after prev. */
struct blk {
    uint8_t digests[4 * 32], ids[4 * 8], prev[32], hash[32];
    struct tok_audit_block b;
};

static void blk_make(struct blk *k, int64_t block, int64_t first, size_t n, const uint8_t *prev)
{
    memset(k, 0, sizeof *k);
    for (size_t i = 0; i < n; i++) {
        memset(k->digests + i * 32, (int)(block * 16 + (int64_t)i + 1), 32);
        for (size_t b = 0; b < 8; b++)
            k->ids[i * 8 + b] = (uint8_t)((uint64_t)(first + (int64_t)i) >> (56 - 8 * b));
    }
    memcpy(k->prev, prev, 32);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, k->prev, 32);
    crypto_hash_sha256_update(&st, k->digests, n * 32);
    crypto_hash_sha256_final(&st, k->hash);
    k->b = (struct tok_audit_block){
        .block = block,
        .first_id = first,
        .last_id = first + (int64_t)n - 1,
        .digests = tok_slice_of(k->digests, n * 32),
        .prev_hash = tok_slice_of(k->prev, 32),
        .hash = tok_slice_of(k->hash, 32),
        .now_digests = tok_slice_of(k->digests, n * 32),
        .now_ids = tok_slice_of(k->ids, n * 8),
    };
}

START_TEST(test_blocks_intact)
{
    struct tok_audit_walk w;
    tok_audit_walk_init(&w);
    ck_assert_int_eq(tok_audit_walk_step(&w, 1, h(zero), h(h_a), h(h_a)), TOK_OK);
    tok_audit_walk_blocks_start(&w, 10); /* rows up to id 10 were chained one by one */
    struct blk k1, k2;
    blk_make(&k1, 1, 11, 3, h_a);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k1.b), TOK_OK);
    blk_make(&k2, 2, 14, 4, k1.hash);
    k2.b.last_id = 20; /* ids 18..20 were aborted: the range may be wider than its rows */
    ck_assert_int_eq(tok_audit_walk_block(&w, &k2.b), TOK_OK);
    ck_assert_uint_eq(w.count, 1 + 3 + 4);
    ck_assert_int_eq(w.next_id, 21);
    ck_assert_int_eq(tok_audit_walk_end(&w, 2, h(k2.hash)), TOK_OK);
    ck_assert_ptr_null(w.why);
}
END_TEST

START_TEST(test_blocks_row_altered_added_missing)
{
    struct tok_audit_walk w;
    struct blk k;
    uint8_t other[4 * 32];

    tok_audit_walk_init(&w);
    blk_make(&k, 1, 1, 3, zero);
    memcpy(other, k.digests, sizeof other);
    other[32] ^= 1; /* the second row (id 2) changed */
    k.b.now_digests = tok_slice_of(other, 3 * 32);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k.b), TOK_ERR_CRYPTO);
    ck_assert_str_eq(w.broken_what, "event");
    ck_assert_int_eq(w.broken_at, 2);
    ck_assert_str_eq(w.why, "row altered");

    tok_audit_walk_init(&w);
    blk_make(&k, 1, 1, 2, zero);
    k.b.now_digests = tok_slice_of(k.digests, 3 * 32); /* a third row appeared in the range */
    k.b.now_ids = tok_slice_of(k.ids, 3 * 8);
    k.digests[64] = 0xEE;
    k.ids[2 * 8 + 7] = 9;
    ck_assert_int_eq(tok_audit_walk_block(&w, &k.b), TOK_ERR_CRYPTO);
    ck_assert_str_eq(w.why, "row added");
    ck_assert_int_eq(w.broken_at, 9);

    tok_audit_walk_init(&w);
    blk_make(&k, 1, 1, 3, zero);
    memcpy(other, k.digests + 32, 2 * 32); /* row 1 deleted: rows 2 and 3 remain */
    uint8_t ids[2 * 8] = {0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3};
    k.b.now_digests = tok_slice_of(other, 2 * 32);
    k.b.now_ids = tok_slice_of(ids, sizeof ids);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k.b), TOK_ERR_CRYPTO);
    ck_assert_str_eq(w.why, "a row before it is missing");
    ck_assert_int_eq(w.broken_at, 2);

    tok_audit_walk_init(&w);
    blk_make(&k, 1, 1, 3, zero);
    k.b.now_digests = tok_slice_of(k.digests, 2 * 32); /* the last row deleted */
    k.b.now_ids = tok_slice_of(k.ids, 2 * 8);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k.b), TOK_ERR_CRYPTO);
    ck_assert_str_eq(w.broken_what, "block");
    ck_assert_int_eq(w.broken_at, 1);
    ck_assert_str_eq(w.why, "last row missing");
    ck_assert_uint_eq(w.count, 0);
}
END_TEST

START_TEST(test_blocks_tampered_blocks)
{
    struct tok_audit_walk w;
    struct blk k1, k2, k3;

    /* a block's stored digests rewritten (rows altered to match): its hash no longer does */
    tok_audit_walk_init(&w);
    blk_make(&k1, 1, 1, 2, zero);
    k1.digests[0] ^= 1;
    ck_assert_int_eq(tok_audit_walk_block(&w, &k1.b), TOK_ERR_CRYPTO);
    ck_assert_str_eq(w.why, "block altered");

    /* ... and its hash recomputed too: the next block's link breaks */
    tok_audit_walk_init(&w);
    blk_make(&k1, 1, 1, 2, zero);
    blk_make(&k2, 2, 3, 2, k1.hash);
    k1.digests[0] ^= 1;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, zero, 32);
    crypto_hash_sha256_update(&st, k1.digests, 64);
    crypto_hash_sha256_final(&st, k1.hash);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k1.b), TOK_OK);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k2.b), TOK_ERR_CRYPTO);
    ck_assert_str_eq(w.broken_what, "block");
    ck_assert_int_eq(w.broken_at, 2);
    ck_assert_str_eq(w.why, "previous block missing or altered");

    /* a block deleted: the next number is missing */
    tok_audit_walk_init(&w);
    blk_make(&k1, 1, 1, 2, zero);
    blk_make(&k3, 3, 5, 2, zero);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k1.b), TOK_OK);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k3.b), TOK_ERR_CRYPTO);
    ck_assert_int_eq(w.broken_at, 2);
    ck_assert_str_eq(w.why, "block missing");

    /* a range that does not start where the last one ended */
    tok_audit_walk_init(&w);
    blk_make(&k1, 1, 1, 2, zero);
    blk_make(&k2, 2, 4, 2, k1.hash);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k1.b), TOK_OK);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k2.b), TOK_ERR_CRYPTO);
    ck_assert_str_eq(w.why, "block out of place");

    /* the last blocks deleted: chain_state still counts them */
    tok_audit_walk_init(&w);
    blk_make(&k1, 1, 1, 2, zero);
    blk_make(&k2, 2, 3, 2, k1.hash);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k1.b), TOK_OK);
    ck_assert_int_eq(tok_audit_walk_end(&w, 2, h(k2.hash)), TOK_ERR_CRYPTO);
    ck_assert_int_eq(w.broken_at, 2);
    ck_assert_str_eq(w.why, "chain ends early: blocks or rows removed from its end");
}
END_TEST

START_TEST(test_blocks_bad_shapes)
{
    struct tok_audit_walk w;
    struct blk k;
    tok_audit_walk_init(&w);
    blk_make(&k, 1, 1, 2, zero);
    k.b.now_ids = tok_slice_of(k.ids, 8); /* one id for two digests */
    ck_assert_int_eq(tok_audit_walk_block(&w, &k.b), TOK_ERR_INTERNAL);
    blk_make(&k, 1, 1, 2, zero);
    k.b.digests = tok_slice_of(k.digests, 33);
    ck_assert_int_eq(tok_audit_walk_block(&w, &k.b), TOK_ERR_INTERNAL);
}
END_TEST

START_TEST(test_exit_codes)
{
    ck_assert_int_eq(tok_admin_exit_code(TOK_OK), 0);
    ck_assert_int_eq(tok_admin_exit_code(TOK_ERR_INPUT), 2);
    ck_assert_int_eq(tok_admin_exit_code(TOK_ERR_CONFLICT), 1);
    ck_assert_int_eq(tok_admin_exit_code(TOK_ERR_NOTFOUND), 1);
    ck_assert_int_eq(tok_admin_exit_code(TOK_ERR_CRYPTO), 1);
    ck_assert_int_eq(tok_admin_exit_code(TOK_ERR_DB), 1);
}
END_TEST

/* ---- limits ----------------------------------------------------------------------------- */

START_TEST(test_scopes_all_five_fit)
{
    char out[TOK_ADMIN_SCOPE_LIST_MAX + 1];
    ck_assert_int_eq(
        scopes("tokens:write,tokens:read,charges:write,reports:read,admin", out, sizeof out),
        TOK_OK);
    ck_assert_str_eq(out, "tokens:write,tokens:read,charges:write,reports:read,admin");
}
END_TEST

START_TEST(test_scopes_empty_and_oversized)
{
    char out[TOK_ADMIN_SCOPE_LIST_MAX + 1];
    ck_assert_int_eq(scopes("", out, sizeof out), TOK_ERR_INPUT);
    /* valid items, repeated past the length limit */
    char big[TOK_ADMIN_SCOPES_IN_MAX + 16];
    size_t n = 0;
    memcpy(big, "admin", 5);
    for (n = 5; n <= TOK_ADMIN_SCOPES_IN_MAX; n += 6)
        memcpy(big + n, ",admin", 6);
    big[n] = '\0';
    ck_assert_uint_gt(strlen(big), TOK_ADMIN_SCOPES_IN_MAX);
    ck_assert_int_eq(scopes(big, out, sizeof out), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_scopes_output_too_small)
{
    char out[8];
    ck_assert_int_eq(scopes("tokens:write", out, sizeof out), TOK_ERR_BOUNDS);
}
END_TEST

START_TEST(test_origin_ports)
{
    expect_origin("https://a.example:1", "https://a.example:1");
    expect_origin("https://a.example:65535", "https://a.example:65535");
    expect_origin_refused("https://a.example:0");
    expect_origin_refused("https://a.example:65536");
    expect_origin_refused("https://a.example:080");
    expect_origin_refused("https://a.example:");
    expect_origin_refused("https://a.example:123456");
}
END_TEST

START_TEST(test_origin_label_and_host_lengths)
{
    char label63[64], label64[65], url[TOK_ORIGIN_MAX + 64];
    memset(label63, 'a', 63);
    label63[63] = '\0';
    memset(label64, 'a', 64);
    label64[64] = '\0';
    snprintf(url, sizeof url, "https://%s.example", label63);
    expect_origin(url, url);
    snprintf(url, sizeof url, "https://%s.example", label64);
    expect_origin_refused(url);
    /* 4 labels of 63 and dots: 255 bytes of host, over 253 */
    snprintf(url, sizeof url, "https://%s.%s.%s.%s", label63, label63, label63, label63);
    expect_origin_refused(url);
    /* 253 bytes exactly: 3 x 63 + 61 + 3 dots */
    char label61[62];
    memset(label61, 'b', 61);
    label61[61] = '\0';
    snprintf(url, sizeof url, "https://%s.%s.%s.%s", label63, label63, label63, label61);
    expect_origin(url, url);
}
END_TEST

START_TEST(test_origin_output_too_small)
{
    char out[10];
    ck_assert_int_eq(origin("https://shop.example.com", out, sizeof out), TOK_ERR_BOUNDS);
}
END_TEST

START_TEST(test_name_lengths)
{
    char n100[101], n101[102];
    memset(n100, 'x', 100);
    n100[100] = '\0';
    memset(n101, 'x', 101);
    n101[101] = '\0';
    ck_assert_int_eq(name_check(""), TOK_ERR_INPUT);
    ck_assert_int_eq(name_check("x"), TOK_OK);
    ck_assert_int_eq(name_check(n100), TOK_OK);
    ck_assert_int_eq(name_check(n101), TOK_ERR_INPUT);
    /* 100 two-byte characters: 200 bytes, still 100 characters */
    char wide[201];
    for (size_t i = 0; i < 200; i += 2) {
        wide[i] = (char)0xc3;
        wide[i + 1] = (char)0xa9;
    }
    wide[200] = '\0';
    ck_assert_int_eq(name_check(wide), TOK_OK);
}
END_TEST

/* ---- adversarial ------------------------------------------------------------------------ */

START_TEST(test_scopes_malformed)
{
    char out[TOK_ADMIN_SCOPE_LIST_MAX + 1];
    ck_assert_int_eq(scopes(",", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes("tokens:read,", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes(",tokens:read", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes("tokens:read,,admin", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes("tokens:read admin", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes(" admin", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes("tokens:writ", out, sizeof out), TOK_ERR_INPUT);
    ck_assert_int_eq(scopes("tokens:writee", out, sizeof out), TOK_ERR_INPUT);
    /* an embedded NUL ends nothing: the slice length counts */
    struct tok_buf b;
    tok_buf_init(&b, out, sizeof out);
    ck_assert_int_eq(tok_admin_scopes_parse(tok_slice_of("admin\0x", 7), &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_admin_scopes_parse(tok_slice_of(NULL, 0), &b), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_origin_malformed)
{
    expect_origin_refused("");
    expect_origin_refused("https://");
    expect_origin_refused("http://");
    expect_origin_refused("shop.example.com");
    expect_origin_refused("//shop.example.com");
    expect_origin_refused("https://shop.example.com/");
    expect_origin_refused("https://shop.example.com/path");
    expect_origin_refused("https://shop.example.com?x=1");
    expect_origin_refused("https://shop.example.com#frag");
    expect_origin_refused("https://user@shop.example.com");
    expect_origin_refused("https://user:pw@shop.example.com");
    expect_origin_refused("http://shop.example.com");
    expect_origin_refused("http://localhost.evil.example");
    expect_origin_refused("http://127.0.0.1.evil.example");
    expect_origin_refused("http://127.0.0.2");
    expect_origin_refused("ftp://shop.example.com");
    expect_origin_refused("javascript://shop.example.com");
    expect_origin_refused("https://shop.example.com.");
    expect_origin_refused("https://.example.com");
    expect_origin_refused("https://a..example");
    expect_origin_refused("https://-a.example");
    expect_origin_refused("https://a-.example");
    expect_origin_refused("https://a_b.example");
    expect_origin_refused("https://[::1]");
    expect_origin_refused("https://[::1]:443");
    expect_origin_refused("https://shop.example.com:443:443");
    expect_origin_refused("https://shop.example.com:+443");
    expect_origin_refused("https:// shop.example.com");
    expect_origin_refused("https://shop.example.com\r\nX: y");
    expect_origin_refused("https://sh\xc3\xb6p.example");
    expect_origin_refused("https://shop.example.com,https://evil.example");
    char out[TOK_ORIGIN_MAX + 1];
    struct tok_buf b;
    tok_buf_init(&b, out, sizeof out);
    ck_assert_int_eq(tok_origin_normalize(tok_slice_of("https://a.example\0.evil", 23), &b),
                     TOK_ERR_INPUT);
    char huge[TOK_ORIGIN_MAX + 2];
    memset(huge, 'a', sizeof huge - 1);
    memcpy(huge, "https://", 8);
    huge[sizeof huge - 1] = '\0';
    expect_origin_refused(huge);
}
END_TEST

START_TEST(test_name_malformed)
{
    ck_assert_int_eq(name_check("tab\there"), TOK_ERR_INPUT);
    ck_assert_int_eq(name_check("new\nline"), TOK_ERR_INPUT);
    ck_assert_int_eq(name_check("esc\x1b[31m"), TOK_ERR_INPUT);
    ck_assert_int_eq(name_check("del\x7f"), TOK_ERR_INPUT);
    ck_assert_int_eq(name_check(" lead"), TOK_ERR_INPUT);
    ck_assert_int_eq(name_check("trail "), TOK_ERR_INPUT);
    /* shaped like a tenant id: would shadow one where T may be an id or a name */
    ck_assert_int_eq(name_check("ten_0123456789abcdefABCDEF"), TOK_ERR_INPUT);
    ck_assert_int_eq(name_check("ten_0123456789abcdefABCDE!"), TOK_OK);
    char big[TOK_ADMIN_NAME_BYTES_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(name_check(big), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_walk_first_row_not_genesis)
{
    struct tok_audit_walk w;
    tok_audit_walk_init(&w);
    /* the head of the chain was cut: the first remaining row points at a real hash */
    ck_assert_int_eq(tok_audit_walk_step(&w, 7, h(h_a), h(h_b), h(h_b)), TOK_ERR_CRYPTO);
    ck_assert_int_eq(w.broken_at, 7);
    ck_assert_str_eq(w.why, "previous row missing or altered");
}
END_TEST

START_TEST(test_walk_bad_lengths)
{
    struct tok_audit_walk w;
    tok_audit_walk_init(&w);
    ck_assert_int_eq(tok_audit_walk_step(&w, 1, tok_slice_of(zero, 31), h(h_a), h(h_a)),
                     TOK_ERR_CRYPTO);
    tok_audit_walk_init(&w);
    ck_assert_int_eq(tok_audit_walk_step(&w, 1, h(zero), tok_slice_of(h_a, 31),
                                         tok_slice_of(h_a, 31)),
                     TOK_ERR_CRYPTO);
    ck_assert_str_eq(w.why, "row altered");
    tok_audit_walk_init(&w);
    ck_assert_int_eq(tok_audit_walk_step(&w, 1, h(zero), h(h_a), tok_slice_of(NULL, 0)),
                     TOK_ERR_CRYPTO);
    tok_audit_walk_init(&w);
    ck_assert_int_eq(tok_audit_walk_step(&w, 1, tok_slice_of(NULL, 0), h(h_a), h(h_a)),
                     TOK_ERR_CRYPTO);
    ck_assert_int_eq(tok_audit_walk_step(NULL, 1, h(zero), h(h_a), h(h_a)), TOK_ERR_INTERNAL);
}
END_TEST

Suite *tok_admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *adversarial = tcase_create("adversarial");
    tcase_add_checked_fixture(core, walk_setup, NULL);
    tcase_add_checked_fixture(adversarial, walk_setup, NULL);
    tcase_add_test(core, test_scopes_valid_in_order);
    tcase_add_test(core, test_scopes_dedup);
    tcase_add_test(core, test_scopes_unknown_refused);
    tcase_add_test(core, test_origin_valid);
    tcase_add_test(core, test_origin_normalised);
    tcase_add_test(core, test_name_valid);
    tcase_add_test(core, test_walk_intact_chain);
    tcase_add_test(core, test_walk_row_altered);
    tcase_add_test(core, test_walk_row_missing);
    tcase_add_test(core, test_exit_codes);
    tcase_add_test(core, test_blocks_intact);
    tcase_add_test(adversarial, test_blocks_row_altered_added_missing);
    tcase_add_test(adversarial, test_blocks_tampered_blocks);
    tcase_add_test(adversarial, test_blocks_bad_shapes);
    tcase_add_test(limits, test_scopes_all_five_fit);
    tcase_add_test(limits, test_scopes_empty_and_oversized);
    tcase_add_test(limits, test_scopes_output_too_small);
    tcase_add_test(limits, test_origin_ports);
    tcase_add_test(limits, test_origin_label_and_host_lengths);
    tcase_add_test(limits, test_origin_output_too_small);
    tcase_add_test(limits, test_name_lengths);
    tcase_add_test(adversarial, test_scopes_malformed);
    tcase_add_test(adversarial, test_origin_malformed);
    tcase_add_test(adversarial, test_name_malformed);
    tcase_add_test(adversarial, test_walk_first_row_not_genesis);
    tcase_add_test(adversarial, test_walk_bad_lengths);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adversarial);
    return s;
}
