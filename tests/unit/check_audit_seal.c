/*
 * check_audit_seal.c - block MACs and the signed checkpoint line (audit_seal.h).
 */
#include "tokend/vault/audit_seal.h"

#include <check.h>
#include <sodium.h>
#include <string.h>

static const uint8_t root[TOK_KEYRING_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static struct tok_audit_key *ak;

static void setup(void)
{
    ck_assert_int_eq(tok_audit_key_from_bytes(root, &ak), TOK_OK);
}

static void teardown(void)
{
    tok_audit_key_free(&ak);
    ck_assert_ptr_null(ak);
}

static struct tok_audit_checkpoint sample(void)
{
    struct tok_audit_checkpoint cp = {.block = 7, .first_id = 101, .last_id = 140, .time = 1700000000};
    memset(cp.hash, 0xab, sizeof cp.hash);
    memset(cp.mac, 0xcd, sizeof cp.mac);
    return cp;
}

/* Formats sample() into line (NUL-terminated) and returns its length. */
static size_t line_of(char *line, size_t cap)
{
    struct tok_audit_checkpoint cp = sample();
    struct tok_buf b;
    tok_buf_init(&b, line, (uint32_t)cap);
    ck_assert_int_eq(tok_audit_checkpoint_format(ak, &cp, &b), TOK_OK);
    ck_assert_uint_lt(b.len, cap);
    line[b.len] = '\0';
    return b.len;
}

START_TEST(test_checkpoint_round_trip)
{
    char line[TOK_AUDIT_CP_LINE_MAX];
    size_t n = line_of(line, sizeof line);
    ck_assert_int_eq(line[n - 1], '\n');
    ck_assert_ptr_nonnull(strstr(line, " block=7 ids=101-140 hash=abab"));
    ck_assert_ptr_nonnull(strstr(line, " time=2023-11-14T22:13:20Z pk="));
    struct tok_audit_checkpoint cp, want = sample();
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of(line, n), &cp), TOK_OK);
    ck_assert_int_eq(cp.block, 7);
    ck_assert_int_eq(cp.first_id, 101);
    ck_assert_int_eq(cp.last_id, 140);
    ck_assert_int_eq(cp.time, 1700000000);
    ck_assert_mem_eq(cp.hash, want.hash, sizeof cp.hash);
    ck_assert_mem_eq(cp.mac, want.mac, sizeof cp.mac);
    uint8_t pk[TOK_AUDIT_PK_LEN];
    tok_audit_key_public(ak, pk);
    ck_assert_mem_eq(cp.pk, pk, sizeof pk);
    /* without its newline too */
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of(line, n - 1), &cp), TOK_OK);
}
END_TEST

START_TEST(test_block_mac_chains)
{
    uint8_t h[32], zero[32] = {0}, m1[32], m2[32], m1b[32];
    memset(h, 0x11, sizeof h);
    ck_assert_int_eq(tok_audit_block_mac(ak, 1, 1, 5, tok_slice_of(h, 32), tok_slice_of(zero, 32), m1), TOK_OK);
    ck_assert_int_eq(tok_audit_block_mac(ak, 1, 1, 5, tok_slice_of(h, 32), tok_slice_of(zero, 32), m1b), TOK_OK);
    ck_assert_mem_eq(m1, m1b, 32); /* a function of the block: re-sealing gives the same MAC */
    ck_assert_int_eq(tok_audit_block_mac(ak, 2, 6, 9, tok_slice_of(h, 32), tok_slice_of(m1, 32), m2), TOK_OK);
    ck_assert_mem_ne(m1, m2, 32);
    /* every field counts */
    ck_assert_int_eq(tok_audit_block_mac(ak, 1, 1, 6, tok_slice_of(h, 32), tok_slice_of(zero, 32), m1b), TOK_OK);
    ck_assert_mem_ne(m1, m1b, 32);
    ck_assert_int_eq(tok_audit_block_mac(ak, 1, 1, 5, tok_slice_of(h, 32), tok_slice_of(m2, 32), m1b), TOK_OK);
    ck_assert_mem_ne(m1, m1b, 32);
    /* another audit key, another MAC */
    struct tok_audit_key *other = NULL;
    uint8_t r2[32];
    memset(r2, 9, sizeof r2);
    ck_assert_int_eq(tok_audit_key_from_bytes(r2, &other), TOK_OK);
    ck_assert_int_eq(tok_audit_block_mac(other, 1, 1, 5, tok_slice_of(h, 32), tok_slice_of(zero, 32), m1b), TOK_OK);
    ck_assert_mem_ne(m1, m1b, 32);
    tok_audit_key_free(&other);
}
END_TEST

START_TEST(test_limits)
{
    uint8_t h[32] = {0}, out[32];
    ck_assert_int_eq(tok_audit_block_mac(ak, 1, 1, 1, tok_slice_of(h, 31), tok_slice_of(h, 32), out), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_audit_block_mac(ak, 1, 1, 1, tok_slice_of(h, 32), tok_slice_of(h, 33), out), TOK_ERR_INPUT);
    struct tok_audit_checkpoint cp;
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of("", 0), &cp), TOK_ERR_INPUT);
    char big[TOK_AUDIT_CP_LINE_MAX + 1];
    memset(big, 'a', sizeof big);
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of(big, sizeof big), &cp), TOK_ERR_INPUT);
    /* a buffer one byte short: nothing appended */
    char line[TOK_AUDIT_CP_LINE_MAX];
    size_t n = line_of(line, sizeof line);
    char small[TOK_AUDIT_CP_LINE_MAX];
    struct tok_buf b;
    tok_buf_init(&b, small, (uint32_t)n - 1);
    struct tok_audit_checkpoint s = sample();
    ck_assert_int_eq(tok_audit_checkpoint_format(ak, &s, &b), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_adversarial)
{
    char line[TOK_AUDIT_CP_LINE_MAX];
    size_t n = line_of(line, sizeof line);
    struct tok_audit_checkpoint cp;
    /* every truncation is refused */
    for (size_t cut = 0; cut + 1 < n; cut++)
        ck_assert_int_ne(tok_audit_checkpoint_parse(tok_slice_of(line, cut), &cp), TOK_OK);
    /* any changed signed character breaks the signature (the shape stays valid) */
    char *hash = strstr(line, "hash=") + 5;
    *hash = 'c';
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of(line, n), &cp), TOK_ERR_CRYPTO);
    *hash = 'a';
    char *blk = strstr(line, "block=7");
    blk[6] = '8';
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of(line, n), &cp), TOK_ERR_CRYPTO);
    blk[6] = '7';
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of(line, n), &cp), TOK_OK);
    /* trailing garbage, a non-hex signature */
    char more[TOK_AUDIT_CP_LINE_MAX + 8];
    memcpy(more, line, n - 1);
    memcpy(more + n - 1, " x\n", 3);
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of(more, n + 2), &cp), TOK_ERR_INPUT);
    line[n - 2] = 'z';
    ck_assert_int_eq(tok_audit_checkpoint_parse(tok_slice_of(line, n), &cp), TOK_ERR_INPUT);
}
END_TEST

Suite *tok_audit_seal_suite(void)
{
    Suite *s = suite_create("audit_seal");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_add_checked_fixture(adv, setup, teardown);
    tcase_add_test(core, test_checkpoint_round_trip);
    tcase_add_test(core, test_block_mac_chains);
    tcase_add_test(limits, test_limits);
    tcase_add_test(adv, test_adversarial);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
