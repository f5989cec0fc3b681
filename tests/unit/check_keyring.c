#include "tokend/vault/keyring.h"
#include "tokend/vault/master_key.h"

#include "tokend/core/base62.h"
#include "tokend/core/encoding.h"

#include <check.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const uint8_t test_kek[TOK_KEYRING_KEY_LEN] = {
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f};
static const char test_kek_hex[] =
    "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";

/* ---- helpers ----------------------------------------------------------------------------- */

/* Writes a temporary key file with the given mode; path must hold 32 bytes. */
static void write_key_file(char path[32], const void *content, size_t len, mode_t mode)
{
    snprintf(path, 32, "/tmp/tok_keyring_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    ck_assert_int_eq(close(fd), 0);
}

static tok_status load(const void *content, size_t len, mode_t mode, const char **why)
{
    char path[32];
    struct tok_keyring *kr = NULL;
    write_key_file(path, content, len, mode);
    tok_status st = tok_keyring_load_file(path, &kr, why);
    unlink(path);
    if (st == TOK_OK)
        ck_assert_ptr_nonnull(kr);
    else
        ck_assert_ptr_null(kr);
    tok_keyring_free(&kr);
    ck_assert_ptr_null(kr);
    return st;
}

struct tenant {
    uint8_t dek_mem[TOK_KEYRING_WRAPPED_LEN];
    uint8_t fpk_mem[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf dek, fpk;
};

static void tenant_new(const struct tok_keyring *kr, const char *id, uint32_t version,
                       struct tenant *t)
{
    tok_buf_init(&t->dek, t->dek_mem, sizeof t->dek_mem);
    tok_buf_init(&t->fpk, t->fpk_mem, sizeof t->fpk_mem);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr, id, version, &t->dek, &t->fpk), TOK_OK);
    ck_assert_uint_eq(t->dek.len, TOK_KEYRING_WRAPPED_LEN);
    ck_assert_uint_eq(t->fpk.len, TOK_KEYRING_WRAPPED_LEN);
}

static tok_status tenant_open(const struct tok_keyring *kr, const char *id, uint32_t version,
                              const struct tenant *t, struct tok_tenant_keys **tk)
{
    return tok_keyring_tenant_keys_open(kr, id, version, tok_buf_slice(&t->dek),
                                        tok_buf_slice(&t->fpk), tk);
}

static struct tok_keyring *kr_fixture;

static void keyring_setup(void)
{
    ck_assert_int_eq(tok_keyring_from_bytes(test_kek, &kr_fixture), TOK_OK);
}

static void keyring_teardown(void)
{
    tok_keyring_free(&kr_fixture);
}

static struct tok_tenant_keys *open_tenant(const char *id, uint32_t version)
{
    struct tenant t;
    struct tok_tenant_keys *tk = NULL;
    tenant_new(kr_fixture, id, version, &t);
    ck_assert_int_eq(tenant_open(kr_fixture, id, version, &t, &tk), TOK_OK);
    return tk;
}

static const struct tok_aad aad_a = {"ten_a", "gateway_refs", "ref", "row_1"};

/* ---- master key file --------------------------------------------------------------------- */

START_TEST(test_key_file_missing)
{
    struct tok_keyring *kr = NULL;
    const char *why = NULL;
    ck_assert_int_eq(tok_keyring_load_file("/tmp/tok_keyring_does_not_exist", &kr, &why),
                     TOK_ERR_IO);
    ck_assert_ptr_null(kr);
    ck_assert_str_eq(why, "master key file not found: /tmp/tok_keyring_does_not_exist");
    ck_assert_int_eq(tok_keyring_load_file("/tmp/tok_keyring_does_not_exist", &kr, NULL),
                     TOK_ERR_IO);
}
END_TEST

START_TEST(test_key_file_mode_0600_raw_accepted)
{
    const char *why = "unset";
    ck_assert_int_eq(load(test_kek, sizeof test_kek, 0600, &why), TOK_OK);
    ck_assert_ptr_null(why);
    ck_assert_int_eq(load(test_kek, sizeof test_kek, 0400, &why), TOK_OK);
}
END_TEST

START_TEST(test_key_file_mode_0644_refused)
{
    const char *why = NULL;
    ck_assert_int_eq(load(test_kek, sizeof test_kek, 0644, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "master key file is readable by group or others (chmod 600)");
    ck_assert_int_eq(load(test_kek, sizeof test_kek, 0640, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(load(test_kek, sizeof test_kek, 0604, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(load(test_kek, sizeof test_kek, 0610, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(load(test_kek, sizeof test_kek, 0601, &why), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_key_file_hex_accepted)
{
    const char *why = NULL;
    char upper[66];
    ck_assert_int_eq(load(test_kek_hex, 64, 0600, &why), TOK_OK);
    snprintf(upper, sizeof upper, "%s\n", test_kek_hex);
    ck_assert_int_eq(load(upper, 65, 0600, &why), TOK_OK);
    for (size_t i = 0; i < 64; i++)
        upper[i] = (char)((upper[i] >= 'a' && upper[i] <= 'f') ? upper[i] - 32 : upper[i]);
    ck_assert_int_eq(load(upper, 65, 0600, &why), TOK_OK);
}
END_TEST

/* The hex and raw forms of one key are the same keyring: same API-key hash. */
START_TEST(test_key_file_hex_equals_raw)
{
    char path[32];
    struct tok_keyring *from_file = NULL, *from_bytes = NULL;
    uint8_t h1[TOK_KEYRING_HASH_LEN], h2[TOK_KEYRING_HASH_LEN];
    write_key_file(path, test_kek_hex, 64, 0600);
    ck_assert_int_eq(tok_keyring_load_file(path, &from_file, NULL), TOK_OK);
    unlink(path);
    ck_assert_int_eq(tok_keyring_from_bytes(test_kek, &from_bytes), TOK_OK);
    struct tok_slice secret = tok_slice_str("sk_test_abc");
    ck_assert_int_eq(tok_keyring_api_key_hash(from_file, secret, h1), TOK_OK);
    ck_assert_int_eq(tok_keyring_api_key_hash(from_bytes, secret, h2), TOK_OK);
    ck_assert_mem_eq(h1, h2, sizeof h1);
    tok_keyring_free(&from_file);
    tok_keyring_free(&from_bytes);
}
END_TEST

START_TEST(test_key_file_wrong_length_refused)
{
    const char *why = NULL;
    uint8_t big[100];
    memset(big, 0x41, sizeof big);
    ck_assert_int_eq(load(big, 0, 0600, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "master key file must hold 32 raw bytes or 64 (or 128) hex characters");
    ck_assert_int_eq(load(big, 1, 0600, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(load(big, 31, 0600, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(load(big, 33, 0600, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(load(test_kek_hex, 63, 0600, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(load(big, 66, 0600, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(load(big, sizeof big, 0600, &why), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_key_file_malformed_hex_refused)
{
    const char *why = NULL;
    char hex[67];
    /* 64 hex + something other than one newline */
    snprintf(hex, sizeof hex, "%s ", test_kek_hex);
    ck_assert_int_eq(load(hex, 65, 0600, &why), TOK_ERR_INPUT);
    snprintf(hex, sizeof hex, "%s\r\n", test_kek_hex);
    ck_assert_int_eq(load(hex, 66, 0600, &why), TOK_ERR_INPUT);
    /* a non-hex character inside */
    snprintf(hex, sizeof hex, "%s", test_kek_hex);
    hex[10] = 'g';
    ck_assert_int_eq(load(hex, 64, 0600, &why), TOK_ERR_INPUT);
    hex[10] = ':';
    ck_assert_int_eq(load(hex, 64, 0600, &why), TOK_ERR_INPUT);
    /* a newline in the middle, then 64 bytes in all */
    snprintf(hex, sizeof hex, "%s", test_kek_hex);
    hex[63] = '\n';
    ck_assert_int_eq(load(hex, 64, 0600, &why), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_key_file_zero_key_refused)
{
    const char *why = NULL;
    uint8_t zero[32] = {0};
    ck_assert_int_eq(load(zero, sizeof zero, 0600, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "master key is all zeros");
    char zhex[65];
    memset(zhex, '0', 64);
    zhex[64] = '\n';
    ck_assert_int_eq(load(zhex, 65, 0600, &why), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_key_file_not_regular_refused)
{
    struct tok_keyring *kr = NULL;
    const char *why = NULL;
    char dir[] = "/tmp/tok_keyring_dir_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0700), 0);
    ck_assert_int_eq(tok_keyring_load_file(dir, &kr, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "master key file is not a regular file");
    ck_assert_int_eq(rmdir(dir), 0);
    ck_assert_int_eq(tok_keyring_load_file("/dev/null", &kr, &why), TOK_ERR_INPUT);
    ck_assert_ptr_null(kr);
}
END_TEST

/* A FIFO at the key path must be refused, not block startup waiting for a writer. */
START_TEST(test_key_file_fifo_refused)
{
    struct tok_keyring *kr = NULL;
    const char *why = NULL;
    char dir[] = "/tmp/tok_keyring_dir_XXXXXX";
    char path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(tok_keyring_load_file(path, &kr, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "master key file is not a regular file");
    unlink(path);
    rmdir(dir);
}
END_TEST

/* ---- sub-key hashes ------------------------------------------------------------------------ */

START_TEST(test_api_key_hash_and_audit_mac)
{
    uint8_t h1[TOK_KEYRING_HASH_LEN], h2[TOK_KEYRING_HASH_LEN], m[TOK_KEYRING_HASH_LEN];
    struct tok_slice s = tok_slice_str("sk_live_0000000000000000000000000000000000000000001");
    ck_assert_int_eq(tok_keyring_api_key_hash(kr_fixture, s, h1), TOK_OK);
    ck_assert_int_eq(tok_keyring_api_key_hash(kr_fixture, s, h2), TOK_OK);
    ck_assert_mem_eq(h1, h2, sizeof h1);
    /* the two sub-keys differ: the same message gives unrelated outputs */
    ck_assert_int_eq(tok_keyring_audit_mac(kr_fixture, s, m), TOK_OK);
    ck_assert_int_ne(memcmp(h1, m, sizeof m), 0);
    /* and neither is the unkeyed hash */
    uint8_t plain[32];
    crypto_generichash(plain, sizeof plain, s.ptr, s.len, NULL, 0);
    ck_assert_int_ne(memcmp(h1, plain, sizeof plain), 0);
    ck_assert_int_ne(memcmp(m, plain, sizeof plain), 0);
    /* another master key, another hash */
    uint8_t other_key[32];
    memset(other_key, 0x5a, sizeof other_key);
    struct tok_keyring *other = NULL;
    ck_assert_int_eq(tok_keyring_from_bytes(other_key, &other), TOK_OK);
    ck_assert_int_eq(tok_keyring_api_key_hash(other, s, h2), TOK_OK);
    ck_assert_int_ne(memcmp(h1, h2, sizeof h1), 0);
    tok_keyring_free(&other);
    ck_assert_int_eq(tok_keyring_audit_mac(kr_fixture, tok_slice_of(NULL, 0), m), TOK_OK);
}
END_TEST

START_TEST(test_api_key_hash_limits)
{
    uint8_t h[TOK_KEYRING_HASH_LEN];
    static uint8_t in[TOK_KEYRING_HASH_IN_MAX + 1];
    ck_assert_int_eq(tok_keyring_api_key_hash(kr_fixture, tok_slice_of(in, 0), h), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_keyring_api_key_hash(kr_fixture, tok_slice_of(in, 1), h), TOK_OK);
    ck_assert_int_eq(tok_keyring_api_key_hash(kr_fixture, tok_slice_of(in, TOK_KEYRING_HASH_IN_MAX),
                                              h),
                     TOK_OK);
    ck_assert_int_eq(tok_keyring_api_key_hash(kr_fixture,
                                              tok_slice_of(in, TOK_KEYRING_HASH_IN_MAX + 1), h),
                     TOK_ERR_INPUT);
}
END_TEST

/* ---- tenant keys --------------------------------------------------------------------------- */

START_TEST(test_wrap_unwrap_round_trip)
{
    struct tenant t;
    struct tok_tenant_keys *tk = NULL, *tk2 = NULL;
    tenant_new(kr_fixture, "ten_a", 1, &t);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 1, &t, &tk), TOK_OK);
    ck_assert_ptr_nonnull(tk);
    ck_assert_uint_eq(tok_tenant_keys_version(tk), 1);
    /* open twice: same keys, so one seals and the other opens */
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 1, &t, &tk2), TOK_OK);
    uint8_t sealed_mem[128], plain_mem[64];
    struct tok_buf sealed, plain;
    tok_buf_init(&sealed, sealed_mem, sizeof sealed_mem);
    tok_buf_init(&plain, plain_mem, sizeof plain_mem);
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_str("pm_123"), &sealed), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_open(tk2, aad_a, tok_buf_slice(&sealed), &plain), TOK_OK);
    ck_assert_uint_eq(plain.len, 6);
    ck_assert_mem_eq(plain_mem, "pm_123", 6);
    /* the wrapped keys are not the keys: two tenants' wraps never repeat */
    struct tenant t2;
    tenant_new(kr_fixture, "ten_a", 1, &t2);
    ck_assert_int_ne(memcmp(t.dek_mem, t2.dek_mem, TOK_KEYRING_WRAPPED_LEN), 0);
    tok_tenant_keys_free(&tk);
    tok_tenant_keys_free(&tk2);
    ck_assert_ptr_null(tk);
    tok_tenant_keys_free(&tk);
    tok_tenant_keys_free(NULL);
    tok_keyring_free(NULL);
}
END_TEST

START_TEST(test_unwrap_wrong_binding)
{
    struct tenant t, other;
    struct tok_tenant_keys *tk = NULL;
    tenant_new(kr_fixture, "ten_a", 1, &t);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_b", 1, &t, &tk), TOK_ERR_CRYPTO);
    ck_assert_ptr_null(tk);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 2, &t, &tk), TOK_ERR_CRYPTO);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_aa", 1, &t, &tk), TOK_ERR_CRYPTO);
    /* DEK and FPK swapped: the role is bound too */
    ck_assert_int_eq(tok_keyring_tenant_keys_open(kr_fixture, "ten_a", 1, tok_buf_slice(&t.fpk),
                                                  tok_buf_slice(&t.dek), &tk),
                     TOK_ERR_CRYPTO);
    /* another tenant's FPK with this tenant's DEK */
    tenant_new(kr_fixture, "ten_b", 1, &other);
    ck_assert_int_eq(tok_keyring_tenant_keys_open(kr_fixture, "ten_a", 1, tok_buf_slice(&t.dek),
                                                  tok_buf_slice(&other.fpk), &tk),
                     TOK_ERR_CRYPTO);
    /* another master key */
    uint8_t k2[32];
    memset(k2, 0x77, sizeof k2);
    struct tok_keyring *kr2 = NULL;
    ck_assert_int_eq(tok_keyring_from_bytes(k2, &kr2), TOK_OK);
    ck_assert_int_eq(tenant_open(kr2, "ten_a", 1, &t, &tk), TOK_ERR_CRYPTO);
    tok_keyring_free(&kr2);
    /* a flipped byte anywhere (nonce, body, tag) */
    for (size_t i = 0; i < TOK_KEYRING_WRAPPED_LEN; i += 7) {
        t.dek_mem[i] ^= 0x01;
        ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 1, &t, &tk), TOK_ERR_CRYPTO);
        t.dek_mem[i] ^= 0x01;
    }
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 1, &t, &tk), TOK_OK);
    tok_tenant_keys_free(&tk);
}
END_TEST

START_TEST(test_tenant_keys_limits)
{
    uint8_t a[TOK_KEYRING_WRAPPED_LEN], b[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf da, fb;
    tok_buf_init(&da, a, sizeof a);
    tok_buf_init(&fb, b, sizeof b);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, "", 1, &da, &fb), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, "t", 0, &da, &fb), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, "a:1", 1, &da, &fb), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, "a b", 1, &da, &fb), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, "a\n", 1, &da, &fb), TOK_ERR_INPUT);
    char id[TOK_KEYRING_ID_MAX + 2];
    memset(id, 'x', sizeof id);
    id[TOK_KEYRING_ID_MAX + 1] = '\0';
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, id, 1, &da, &fb), TOK_ERR_INPUT);
    id[TOK_KEYRING_ID_MAX] = '\0';
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, id, UINT32_MAX, &da, &fb), TOK_OK);
    struct tok_tenant_keys *tk = NULL;
    ck_assert_int_eq(tok_keyring_tenant_keys_open(kr_fixture, id, UINT32_MAX, tok_buf_slice(&da),
                                                  tok_buf_slice(&fb), &tk),
                     TOK_OK);
    tok_tenant_keys_free(&tk);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, "x", 1, &da, &fb), TOK_ERR_BOUNDS);
    /* room for the DEK but not the FPK: nothing is written at all */
    uint8_t c[TOK_KEYRING_WRAPPED_LEN], d[TOK_KEYRING_WRAPPED_LEN - 1];
    tok_buf_init(&da, c, sizeof c);
    tok_buf_init(&fb, d, sizeof d);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(kr_fixture, "x", 1, &da, &fb), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(da.len, 0);
    ck_assert_uint_eq(fb.len, 0);
}
END_TEST

START_TEST(test_unwrap_malformed_lengths)
{
    struct tenant t;
    struct tok_tenant_keys *tk = NULL;
    tenant_new(kr_fixture, "ten_a", 1, &t);
    struct tok_slice dek = tok_buf_slice(&t.dek), fpk = tok_buf_slice(&t.fpk);
    size_t lens[] = {0, 1, 24, 40, 71, 73};
    uint8_t big[80] = {0};
    for (size_t i = 0; i < TOK_ARRAY_LEN(lens); i++) {
        struct tok_slice bad = tok_slice_of(lens[i] <= 72 ? dek.ptr : big, lens[i]);
        ck_assert_int_eq(tok_keyring_tenant_keys_open(kr_fixture, "ten_a", 1, bad, fpk, &tk),
                         TOK_ERR_INPUT);
        ck_assert_int_eq(tok_keyring_tenant_keys_open(kr_fixture, "ten_a", 1, dek, bad, &tk),
                         TOK_ERR_INPUT);
        ck_assert_ptr_null(tk);
    }
    ck_assert_int_eq(tok_keyring_tenant_keys_open(kr_fixture, "ten_a", 0, dek, fpk, &tk),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_keyring_tenant_keys_open(kr_fixture, "te:a", 1, dek, fpk, &tk),
                     TOK_ERR_INPUT);
}
END_TEST

/* ---- sealing ------------------------------------------------------------------------------- */

START_TEST(test_seal_open_round_trip)
{
    struct tok_tenant_keys *tk = open_tenant("ten_a", 3);
    uint8_t sealed_mem[256], plain_mem[128];
    struct tok_buf sealed, plain;
    tok_buf_init(&sealed, sealed_mem, sizeof sealed_mem);
    tok_buf_init(&plain, plain_mem, sizeof plain_mem);
    const char *ref = "cus_Q1 / pm_1NqXyZ";
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_str(ref), &sealed), TOK_OK);
    ck_assert_uint_eq(sealed.len, strlen(ref) + TOK_SEALED_OVERHEAD);
    ck_assert_uint_eq(sealed_mem[0], TOK_SEALED_FORMAT_V1);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_buf_slice(&sealed), &plain), TOK_OK);
    ck_assert_uint_eq(plain.len, strlen(ref));
    ck_assert_mem_eq(plain_mem, ref, plain.len);
    /* same plaintext twice: random nonces, different ciphertexts */
    uint8_t again_mem[256];
    struct tok_buf again;
    tok_buf_init(&again, again_mem, sizeof again_mem);
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_str(ref), &again), TOK_OK);
    ck_assert_int_ne(memcmp(again_mem, sealed_mem, sealed.len), 0);
    /* empty plaintext */
    tok_buf_reset(&sealed);
    tok_buf_reset(&plain);
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_of(NULL, 0), &sealed), TOK_OK);
    ck_assert_uint_eq(sealed.len, TOK_SEALED_OVERHEAD);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_buf_slice(&sealed), &plain), TOK_OK);
    ck_assert_uint_eq(plain.len, 0);
    tok_tenant_keys_free(&tk);
}
END_TEST

START_TEST(test_seal_swapped_ciphertext_rejected)
{
    struct tok_tenant_keys *a = open_tenant("ten_a", 1);
    struct tok_tenant_keys *b = open_tenant("ten_b", 1);
    struct tok_tenant_keys *a2 = open_tenant("ten_a", 2);
    uint8_t sealed_mem[128], plain_mem[64];
    struct tok_buf sealed, plain;
    tok_buf_init(&sealed, sealed_mem, sizeof sealed_mem);
    tok_buf_init(&plain, plain_mem, sizeof plain_mem);
    ck_assert_int_eq(tok_tenant_keys_seal(a, aad_a, tok_slice_str("pm_a"), &sealed), TOK_OK);
    struct tok_slice s = tok_buf_slice(&sealed);

    struct tok_aad other_row = aad_a, other_col = aad_a, other_table = aad_a;
    other_row.row_id = "row_2";
    other_col.column = "ref2";
    other_table.table = "credentials";
    ck_assert_int_eq(tok_tenant_keys_open(a, other_row, s, &plain), TOK_ERR_CRYPTO);
    ck_assert_int_eq(tok_tenant_keys_open(a, other_col, s, &plain), TOK_ERR_CRYPTO);
    ck_assert_int_eq(tok_tenant_keys_open(a, other_table, s, &plain), TOK_ERR_CRYPTO);
    /* moved to tenant b's row, opened with b's keys */
    struct tok_aad b_row = aad_a;
    b_row.tenant_id = "ten_b";
    ck_assert_int_eq(tok_tenant_keys_open(b, b_row, s, &plain), TOK_ERR_CRYPTO);
    /* same tenant, another key version */
    ck_assert_int_eq(tok_tenant_keys_open(a2, aad_a, s, &plain), TOK_ERR_CRYPTO);
    /* field boundaries are length-prefixed: "row_1" + "x" is not "row_" + "1x" */
    struct tok_aad shifted = {"ten_a", "gateway_refs", "re", "frow_1"};
    ck_assert_int_eq(tok_tenant_keys_open(a, shifted, s, &plain), TOK_ERR_CRYPTO);
    ck_assert_uint_eq(plain.len, 0);
    /* tenant a's keys with tenant b's aad: a caller bug, refused before any crypto */
    ck_assert_int_eq(tok_tenant_keys_open(a, b_row, s, &plain), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_seal(a, b_row, tok_slice_str("x"), &sealed), TOK_ERR_INPUT);
    /* still opens where it belongs */
    ck_assert_int_eq(tok_tenant_keys_open(a, aad_a, s, &plain), TOK_OK);
    tok_tenant_keys_free(&a);
    tok_tenant_keys_free(&b);
    tok_tenant_keys_free(&a2);
}
END_TEST

START_TEST(test_seal_flipped_byte_rejected)
{
    struct tok_tenant_keys *tk = open_tenant("ten_a", 1);
    uint8_t sealed_mem[128], plain_mem[64];
    struct tok_buf sealed, plain;
    tok_buf_init(&sealed, sealed_mem, sizeof sealed_mem);
    tok_buf_init(&plain, plain_mem, sizeof plain_mem);
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_str("pm_flip"), &sealed), TOK_OK);
    /* byte 0 is the format: an unknown format is TOK_ERR_INPUT; every other byte is CRYPTO */
    for (uint32_t i = 0; i < sealed.len; i++) {
        sealed_mem[i] ^= 0x80;
        tok_status want = i == 0 ? TOK_ERR_INPUT : TOK_ERR_CRYPTO;
        ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_buf_slice(&sealed), &plain), want);
        ck_assert_uint_eq(plain.len, 0);
        sealed_mem[i] ^= 0x80;
    }
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_buf_slice(&sealed), &plain), TOK_OK);
    tok_tenant_keys_free(&tk);
}
END_TEST

/* Shorter than the 41-byte overhead is malformed, known without a key: TOK_ERR_INPUT.
 * 41 bytes or more whose tag fails (a longer value cut short) is TOK_ERR_CRYPTO. */
START_TEST(test_open_truncated)
{
    struct tok_tenant_keys *tk = open_tenant("ten_a", 1);
    uint8_t sealed_mem[128], plain_mem[64];
    struct tok_buf sealed, plain;
    tok_buf_init(&sealed, sealed_mem, sizeof sealed_mem);
    tok_buf_init(&plain, plain_mem, sizeof plain_mem);
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_str("pm_truncate_me"), &sealed),
                     TOK_OK);
    size_t short_lens[] = {0, 1, 24, 40};
    for (size_t i = 0; i < TOK_ARRAY_LEN(short_lens); i++)
        ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_slice_of(sealed_mem, short_lens[i]),
                                              &plain),
                         TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_slice_of(NULL, 0), &plain),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_slice_of(sealed_mem, 41), &plain),
                     TOK_ERR_CRYPTO);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_slice_of(sealed_mem, sealed.len - 1),
                                          &plain),
                     TOK_ERR_CRYPTO);
    ck_assert_uint_eq(plain.len, 0);
    tok_tenant_keys_free(&tk);
}
END_TEST

START_TEST(test_seal_limits)
{
    struct tok_tenant_keys *tk = open_tenant("ten_a", 1);
    static uint8_t pt[TOK_SEALED_PLAINTEXT_MAX + 1];
    struct tok_buf sealed, plain;
    ck_assert_int_eq(tok_buf_alloc(&sealed, TOK_SEALED_MAX + 1, false), TOK_OK);
    ck_assert_int_eq(tok_buf_alloc(&plain, TOK_SEALED_PLAINTEXT_MAX, true), TOK_OK);
    randombytes_buf(pt, sizeof pt);
    /* plaintext max and max + 1 */
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_of(pt, TOK_SEALED_PLAINTEXT_MAX),
                                          &sealed),
                     TOK_OK);
    ck_assert_uint_eq(sealed.len, TOK_SEALED_MAX);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_buf_slice(&sealed), &plain), TOK_OK);
    ck_assert_mem_eq(plain.data, pt, TOK_SEALED_PLAINTEXT_MAX);
    /* a sealed value longer than the maximum is refused before decryption */
    ck_assert_int_eq(tok_buf_write(&sealed, "x", 1), TOK_OK);
    tok_buf_reset(&plain);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_buf_slice(&sealed), &plain),
                     TOK_ERR_INPUT);
    tok_buf_reset(&sealed);
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a,
                                          tok_slice_of(pt, TOK_SEALED_PLAINTEXT_MAX + 1), &sealed),
                     TOK_ERR_INPUT);
    tok_buf_wipe(&sealed);
    tok_buf_wipe(&plain);

    /* output room: exact, one short (nothing written) */
    uint8_t mem[TOK_SEALED_OVERHEAD + 4];
    struct tok_buf out;
    tok_buf_init(&out, mem, TOK_SEALED_OVERHEAD + 3);
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_str("abcd"), &out), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(out.len, 0);
    tok_buf_init(&out, mem, sizeof mem);
    ck_assert_int_eq(tok_tenant_keys_seal(tk, aad_a, tok_slice_str("abcd"), &out), TOK_OK);
    uint8_t p[4];
    struct tok_buf pb;
    tok_buf_init(&pb, p, 3);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_buf_slice(&out), &pb), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(pb.len, 0);
    tok_buf_init(&pb, p, 4);
    ck_assert_int_eq(tok_tenant_keys_open(tk, aad_a, tok_buf_slice(&out), &pb), TOK_OK);

    /* aad fields: empty, NULL, max and max + 1 */
    char longf[TOK_KEYRING_ID_MAX + 2];
    memset(longf, 'r', sizeof longf);
    longf[TOK_KEYRING_ID_MAX + 1] = '\0';
    struct tok_aad bad = aad_a;
    uint8_t smem[256];
    struct tok_buf s;
    tok_buf_init(&s, smem, sizeof smem);
    bad.row_id = "";
    ck_assert_int_eq(tok_tenant_keys_seal(tk, bad, tok_slice_str("x"), &s), TOK_ERR_INPUT);
    bad.row_id = NULL;
    ck_assert_int_eq(tok_tenant_keys_seal(tk, bad, tok_slice_str("x"), &s), TOK_ERR_INPUT);
    bad.row_id = longf;
    ck_assert_int_eq(tok_tenant_keys_seal(tk, bad, tok_slice_str("x"), &s), TOK_ERR_INPUT);
    bad = aad_a;
    bad.table = NULL;
    ck_assert_int_eq(tok_tenant_keys_seal(tk, bad, tok_slice_str("x"), &s), TOK_ERR_INPUT);
    bad.table = "";
    ck_assert_int_eq(tok_tenant_keys_seal(tk, bad, tok_slice_str("x"), &s), TOK_ERR_INPUT);
    bad = aad_a;
    bad.tenant_id = NULL;
    ck_assert_int_eq(tok_tenant_keys_seal(tk, bad, tok_slice_str("x"), &s), TOK_ERR_INPUT);
    ck_assert_uint_eq(s.len, 0);
    bad = aad_a;
    longf[TOK_KEYRING_ID_MAX] = '\0';
    bad.row_id = longf;
    bad.column = longf;
    bad.table = longf;
    ck_assert_int_eq(tok_tenant_keys_seal(tk, bad, tok_slice_str("x"), &s), TOK_OK);
    tok_tenant_keys_free(&tk);
}
END_TEST

struct thread_arg {
    const struct tok_tenant_keys *tk;
    int failures;
};

static void *seal_open_loop(void *p)
{
    struct thread_arg *arg = p;
    for (int i = 0; i < 500; i++) {
        uint8_t smem[128], pmem[64], fp[TOK_FINGERPRINT_LEN];
        struct tok_buf s, pl;
        tok_buf_init(&s, smem, sizeof smem);
        tok_buf_init(&pl, pmem, sizeof pmem);
        if (tok_tenant_keys_seal(arg->tk, aad_a, tok_slice_str("pm_threads"), &s) != TOK_OK ||
            tok_tenant_keys_open(arg->tk, aad_a, tok_buf_slice(&s), &pl) != TOK_OK ||
            pl.len != 10 ||
            tok_tenant_keys_fingerprint(arg->tk, tok_slice_str("4242424242424242"), fp) != TOK_OK)
            arg->failures++;
    }
    return NULL;
}

/* One tok_tenant_keys shared by several threads (the event loops share one cache). */
START_TEST(test_tenant_keys_shared_by_threads)
{
    struct tok_tenant_keys *tk = open_tenant("ten_a", 1);
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].tk = tk;
        args[i].failures = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, seal_open_loop, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(args[i].failures, 0);
    }
    tok_tenant_keys_free(&tk);
}
END_TEST

/* ---- fingerprints -------------------------------------------------------------------------- */

START_TEST(test_fingerprint_stable_and_per_tenant)
{
    struct tenant t;
    struct tok_tenant_keys *a1 = NULL, *a2 = NULL;
    tenant_new(kr_fixture, "ten_a", 1, &t);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 1, &t, &a1), TOK_OK);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 1, &t, &a2), TOK_OK);
    struct tok_tenant_keys *b = open_tenant("ten_b", 1);
    uint8_t f1[32], f2[32], f3[32], f4[32];
    struct tok_slice pan = tok_slice_str("4242424242424242");
    ck_assert_int_eq(tok_tenant_keys_fingerprint(a1, pan, f1), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(a2, pan, f2), TOK_OK);
    ck_assert_mem_eq(f1, f2, sizeof f1);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(b, pan, f3), TOK_OK);
    ck_assert_int_ne(memcmp(f1, f3, sizeof f1), 0);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(a1, tok_slice_str("5555555555554444"), f4),
                     TOK_OK);
    ck_assert_int_ne(memcmp(f1, f4, sizeof f1), 0);
    /* not the unkeyed hash */
    uint8_t plain[32];
    crypto_generichash(plain, sizeof plain, pan.ptr, pan.len, NULL, 0);
    ck_assert_int_ne(memcmp(f1, plain, sizeof plain), 0);
    /* hex for display */
    char hex[65];
    struct tok_buf hb;
    const char *hs = NULL;
    tok_buf_init(&hb, hex, sizeof hex);
    ck_assert_int_eq(tok_hex_encode(tok_slice_of(f1, sizeof f1), &hb), TOK_OK);
    ck_assert_int_eq(tok_buf_cstr(&hb, &hs), TOK_OK);
    ck_assert_uint_eq(strlen(hs), 64);
    tok_tenant_keys_free(&a1);
    tok_tenant_keys_free(&a2);
    tok_tenant_keys_free(&b);
}
END_TEST

START_TEST(test_fingerprint_limits)
{
    struct tok_tenant_keys *tk = open_tenant("ten_a", 1);
    uint8_t fp[32];
    const char *digits = "12345678901234567890";
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_of(digits, 0), fp), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_of(digits, 7), fp), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_of(digits, 8), fp), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_of(digits, 19), fp), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_of(digits, 20), fp), TOK_ERR_INPUT);
    /* not normalised: separators, spaces, a NUL */
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_str("4242 4242 4242 4242"), fp),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_str("4242-4242-4242-4242"), fp),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_of("42424242\0" "4242", 13), fp),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_str("424242424242424/"), fp),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, tok_slice_str("424242424242424:"), fp),
                     TOK_ERR_INPUT);
    tok_tenant_keys_free(&tk);
}
END_TEST

/* ---- reference lookup hashes --------------------------------------------------------------- */

START_TEST(test_ref_lookup_stable_across_versions_and_per_tenant)
{
    struct tok_tenant_keys *a1 = open_tenant("ten_a", 1), *a2 = open_tenant("ten_a", 2);
    struct tok_tenant_keys *b = open_tenant("ten_b", 1);
    uint8_t h1[32], h2[32], h3[32], h4[32], fp[32];
    struct tok_slice ref = tok_slice_str("pm_1Nx2abcdefghijklmnopqr");
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(a1, ref, h1), TOK_OK);
    /* a rotation (new key version) must not orphan references stored before it */
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(a2, ref, h2), TOK_OK);
    ck_assert_mem_eq(h1, h2, sizeof h1);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(b, ref, h3), TOK_OK);
    ck_assert_int_ne(memcmp(h1, h3, sizeof h1), 0);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(a1, tok_slice_str("pm_1Nx2abcdefghijklmnopqs"), h4),
                     TOK_OK);
    ck_assert_int_ne(memcmp(h1, h4, sizeof h1), 0);
    uint8_t plain[32];
    crypto_generichash(plain, sizeof plain, ref.ptr, ref.len, NULL, 0);
    ck_assert_int_ne(memcmp(h1, plain, sizeof plain), 0);
    /* not the fingerprint key either */
    ck_assert_int_eq(tok_tenant_keys_fingerprint(a1, tok_slice_str("12345678"), fp), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(a1, tok_slice_str("12345678"), h4), TOK_OK);
    ck_assert_int_ne(memcmp(fp, h4, sizeof fp), 0);
    tok_tenant_keys_free(&a1);
    tok_tenant_keys_free(&a2);
    tok_tenant_keys_free(&b);
}
END_TEST

START_TEST(test_ref_lookup_limits)
{
    struct tok_tenant_keys *tk = open_tenant("ten_a", 1);
    static uint8_t in[TOK_KEYRING_HASH_IN_MAX + 1];
    uint8_t h[32];
    memset(in, 'x', sizeof in);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(tk, tok_slice_of(in, 0), h), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(tk, tok_slice_of(NULL, 0), h), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(tk, tok_slice_of(in, 1), h), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(tk, tok_slice_of(in, TOK_KEYRING_HASH_IN_MAX), h),
                     TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(tk, tok_slice_of(in, sizeof in), h), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_tenant_keys_ref_lookup(NULL, tok_slice_of(in, 1), h), TOK_ERR_INTERNAL);
    tok_tenant_keys_free(&tk);
}
END_TEST

/* ---- random ids and API keys --------------------------------------------------------------- */

static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, TOK_RANDOM_ID_MAX);
}

START_TEST(test_random_id_format_and_unique)
{
    enum { N = 10000 };
    char(*ids)[TOK_RANDOM_ID_MAX] = calloc(N, TOK_RANDOM_ID_MAX);
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++) {
        struct tok_buf b;
        tok_buf_init(&b, ids[i], TOK_RANDOM_ID_MAX);
        ck_assert_int_eq(tok_random_id("tok_", &b), TOK_OK);
        ck_assert_uint_eq(b.len, 4 + TOK_RANDOM_ID_CHARS);
        ck_assert_mem_eq(ids[i], "tok_", 4);
        ck_assert(tok_base62_is_alphabet(tok_slice_of(ids[i] + 4, TOK_RANDOM_ID_CHARS)));
    }
    qsort(ids, N, TOK_RANDOM_ID_MAX, cmp_ids);
    for (int i = 1; i < N; i++)
        ck_assert_int_ne(memcmp(ids[i - 1], ids[i], TOK_RANDOM_ID_MAX), 0);
    free(ids);
}
END_TEST

START_TEST(test_random_id_limits)
{
    uint8_t mem[TOK_RANDOM_ID_MAX + 1];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_random_id("", &b), TOK_OK);
    ck_assert_uint_eq(b.len, TOK_RANDOM_ID_CHARS);
    tok_buf_reset(&b);
    ck_assert_int_eq(tok_random_id("abcdefghijklmno_", &b), TOK_OK);
    ck_assert_uint_eq(b.len, TOK_RANDOM_ID_MAX);
    tok_buf_reset(&b);
    ck_assert_int_eq(tok_random_id("abcdefghijklmnop_", &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_random_id("Tok_", &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_random_id("tok-", &b), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_random_id("tok%s", &b), TOK_ERR_INPUT);
    ck_assert_uint_eq(b.len, 0);
    /* room: exact fit and one short */
    tok_buf_init(&b, mem, 3 + TOK_RANDOM_ID_CHARS - 1);
    ck_assert_int_eq(tok_random_id("ch_", &b), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(b.len, 0);
    tok_buf_init(&b, mem, 3 + TOK_RANDOM_ID_CHARS);
    ck_assert_int_eq(tok_random_id("ch_", &b), TOK_OK);
}
END_TEST

START_TEST(test_api_key_generate_and_parse)
{
    static const struct {
        bool pub, live;
        const char *prefix;
    } kinds[] = {{false, false, "sk_test_"},
                 {false, true, "sk_live_"},
                 {true, false, "pk_test_"},
                 {true, true, "pk_live_"}};
    for (size_t i = 0; i < TOK_ARRAY_LEN(kinds); i++) {
        struct tok_buf key = {0};
        ck_assert_int_eq(tok_api_key_generate(kinds[i].pub, kinds[i].live, &key), TOK_OK);
        ck_assert(key.secret);
        ck_assert_uint_eq(key.len, TOK_API_KEY_LEN);
        ck_assert_mem_eq(key.data, kinds[i].prefix, TOK_API_KEY_PREFIX_LEN);
        const char *s = NULL;
        ck_assert_int_eq(tok_buf_cstr(&key, &s), TOK_OK);
        bool pub = !kinds[i].pub, live = !kinds[i].live;
        ck_assert_int_eq(tok_api_key_parse_prefix(tok_buf_slice(&key), &pub, &live), TOK_OK);
        ck_assert(pub == kinds[i].pub);
        ck_assert(live == kinds[i].live);
        tok_buf_wipe(&key);
    }
    /* into a caller buffer, appended */
    struct tok_buf mine;
    ck_assert_int_eq(tok_buf_alloc(&mine, 2 * TOK_API_KEY_LEN, true), TOK_OK);
    ck_assert_int_eq(tok_api_key_generate(false, true, &mine), TOK_OK);
    ck_assert_int_eq(tok_api_key_generate(false, true, &mine), TOK_OK);
    ck_assert_uint_eq(mine.len, 2 * TOK_API_KEY_LEN);
    ck_assert_int_ne(memcmp(mine.data, mine.data + TOK_API_KEY_LEN, TOK_API_KEY_LEN), 0);
    ck_assert_int_eq(tok_api_key_generate(false, true, &mine), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(mine.len, 2 * TOK_API_KEY_LEN);
    tok_buf_wipe(&mine);
}
END_TEST

START_TEST(test_api_key_parse_limits)
{
    bool pub = false, live = false;
    char key[TOK_API_KEY_MAX + 2];
    memset(key, 'A', sizeof key);
    tok_copy(key, "sk_live_", 8);
    key[TOK_API_KEY_MAX + 1] = '\0';
    ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, 0), &pub, &live), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, 1), &pub, &live), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, 8), &pub, &live), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, TOK_API_KEY_MAX - 1), &pub, &live),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, TOK_API_KEY_MAX), &pub, &live),
                     TOK_OK);
    ck_assert(!pub);
    ck_assert(live);
    ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, TOK_API_KEY_MAX + 1), &pub, &live),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(NULL, 0), &pub, &live), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_api_key_parse_adversarial)
{
    bool pub = true, live = true;
    char key[TOK_API_KEY_LEN + 1];
    static const char *const bad_prefixes[] = {"sk_prod_", "xk_live_", "SK_LIVE_", "sk-live-",
                                               "rk_live_", "sk_livex", "pk_test-", "sk__live"};
    for (size_t i = 0; i < TOK_ARRAY_LEN(bad_prefixes); i++) {
        memset(key, '1', sizeof key);
        tok_copy(key, bad_prefixes[i], 8);
        ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, TOK_API_KEY_LEN), &pub, &live),
                         TOK_ERR_INPUT);
    }
    /* a byte outside base62 anywhere in the body */
    static const char bad_chars[] = {'_', '-', ' ', '\0', '\n', '=', '/', '+'};
    for (size_t i = 0; i < sizeof bad_chars; i++) {
        memset(key, '1', sizeof key);
        tok_copy(key, "pk_test_", 8);
        key[8 + (i * 5) % TOK_API_KEY_BODY_CHARS] = bad_chars[i];
        ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, TOK_API_KEY_LEN), &pub, &live),
                         TOK_ERR_INPUT);
    }
    /* above 2^256: cannot have come from 32 random bytes */
    memset(key, 'z', sizeof key);
    tok_copy(key, "sk_test_", 8);
    ck_assert_int_eq(tok_api_key_parse_prefix(tok_slice_of(key, TOK_API_KEY_LEN), &pub, &live),
                     TOK_ERR_INPUT);
    /* outputs untouched on failure */
    ck_assert(pub);
    ck_assert(live);
}
END_TEST

/* ---- process hardening --------------------------------------------------------------------- */

/* Run in a child of our own, so the test runner stays dumpable even with CK_FORK=no. */
START_TEST(test_harden_process)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const char *why = "unset";
        struct rlimit rl;
        int code = 0;
        if (tok_harden_process(&why) != TOK_OK || why != NULL)
            code = 1;
        else if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0 || rl.rlim_max != 0)
            code = 2;
        else if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
            code = 3;
        _exit(code);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/* ---- rotation (issue #18) ----------------------------------------------------------------- */

static const uint8_t kek2[TOK_KEYRING_KEY_LEN] = {
    0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};

/* The next master key's file content: kek2, then test_kek as the carried root. */
static void next_master_bytes(uint8_t out[2 * TOK_KEYRING_KEY_LEN])
{
    memcpy(out, kek2, TOK_KEYRING_KEY_LEN);
    memcpy(out + TOK_KEYRING_KEY_LEN, test_kek, TOK_KEYRING_KEY_LEN);
}

/* The same in hex, as keys new-master writes it (128 characters, no newline here). */
static void next_master_hex(char out[4 * TOK_KEYRING_KEY_LEN + 1])
{
    uint8_t both[2 * TOK_KEYRING_KEY_LEN];
    next_master_bytes(both);
    sodium_bin2hex(out, 4 * TOK_KEYRING_KEY_LEN + 1, both, sizeof both);
}

static struct tok_keyring *load_path_ok(const void *content, size_t len)
{
    char path[32];
    struct tok_keyring *kr = NULL;
    write_key_file(path, content, len, 0600);
    ck_assert_int_eq(tok_keyring_load_file(path, &kr, NULL), TOK_OK);
    unlink(path);
    return kr;
}

static tok_status add_previous(struct tok_keyring *kr, const void *content, size_t len,
                               const char **why)
{
    char path[32];
    write_key_file(path, content, len, 0600);
    tok_status st = tok_keyring_load_previous(kr, path, why);
    unlink(path);
    return st;
}

START_TEST(test_master_file_carries_root)
{
    uint8_t both[2 * TOK_KEYRING_KEY_LEN];
    next_master_bytes(both);
    char hex[4 * TOK_KEYRING_KEY_LEN + 2];
    sodium_bin2hex(hex, sizeof hex, both, sizeof both);
    hex[4 * TOK_KEYRING_KEY_LEN] = '\n';
    /* two keys only in hex: 64 raw bytes are refused (a hex key with a typo is that long) */
    const char *why = NULL;
    ck_assert_int_eq(load(both, sizeof both, 0600, &why), TOK_ERR_INPUT);
    struct tok_keyring *raw = load_path_ok(hex, 4 * TOK_KEYRING_KEY_LEN);
    struct tok_keyring *hexed = load_path_ok(hex, 4 * TOK_KEYRING_KEY_LEN + 1);
    /* the API-key hash is the same as under the first master key: the root came along */
    uint8_t h0[TOK_KEYRING_HASH_LEN], h1[TOK_KEYRING_HASH_LEN], h2[TOK_KEYRING_HASH_LEN];
    struct tok_slice s = tok_slice_str("sk_test_x");
    ck_assert_int_eq(tok_keyring_api_key_hash(kr_fixture, s, h0), TOK_OK);
    ck_assert_int_eq(tok_keyring_api_key_hash(raw, s, h1), TOK_OK);
    ck_assert_int_eq(tok_keyring_api_key_hash(hexed, s, h2), TOK_OK);
    ck_assert_mem_eq(h0, h1, sizeof h0);
    ck_assert_mem_eq(h0, h2, sizeof h0);
    ck_assert(tok_keyring_same_line(kr_fixture, raw));
    ck_assert(!tok_keyring_same_kek(kr_fixture, raw));
    ck_assert(tok_keyring_same_kek(raw, hexed));
    /* but its KEK is its own: what the first key wrapped does not open */
    struct tenant t;
    struct tok_tenant_keys *tk = NULL;
    tenant_new(kr_fixture, "ten_a", 1, &t);
    ck_assert_int_eq(tenant_open(raw, "ten_a", 1, &t, &tk), TOK_ERR_CRYPTO);
    tok_keyring_free(&raw);
    tok_keyring_free(&hexed);
}
END_TEST

START_TEST(test_previous_key_opens_old_wraps_and_rewrap)
{
    char both[4 * TOK_KEYRING_KEY_LEN + 1];
    next_master_hex(both);
    struct tok_keyring *next = load_path_ok(both, 4 * TOK_KEYRING_KEY_LEN);
    struct tok_keyring *next_alone = load_path_ok(both, 4 * TOK_KEYRING_KEY_LEN);
    const char *why = NULL;
    ck_assert_int_eq(add_previous(next, test_kek_hex, 64, &why), TOK_OK);
    struct tenant t;
    struct tok_tenant_keys *tk = NULL, *tk2 = NULL;
    tenant_new(kr_fixture, "ten_a", 3, &t);
    ck_assert_int_eq(tenant_open(next, "ten_a", 3, &t, &tk), TOK_OK);
    ck_assert_int_eq(tenant_open(next_alone, "ten_a", 3, &t, &tk2), TOK_ERR_CRYPTO);

    /* re-wrapped under the next KEK: opens without the previous key, keys unchanged */
    uint8_t d[TOK_KEYRING_WRAPPED_LEN], f[TOK_KEYRING_WRAPPED_LEN];
    struct tenant r;
    tok_buf_init(&r.dek, r.dek_mem, sizeof r.dek_mem);
    tok_buf_init(&r.fpk, r.fpk_mem, sizeof r.fpk_mem);
    ck_assert_int_eq(tok_keyring_rewrap(kr_fixture, next_alone, "ten_a", 3, tok_buf_slice(&t.dek),
                                        tok_buf_slice(&t.fpk), &r.dek, &r.fpk),
                     TOK_OK);
    ck_assert_int_eq(tenant_open(next_alone, "ten_a", 3, &r, &tk2), TOK_OK);
    uint8_t fp1[TOK_FINGERPRINT_LEN], fp2[TOK_FINGERPRINT_LEN];
    struct tok_slice pan = tok_slice_str("4242424242424242");
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk, pan, fp1), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(tk2, pan, fp2), TOK_OK);
    ck_assert_mem_eq(fp1, fp2, sizeof fp1);
    tok_tenant_keys_free(&tk2);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 3, &r, &tk2), TOK_ERR_CRYPTO);

    /* a rotation resumed: the pair is already under `to`, and rewrap still succeeds */
    struct tok_buf d2, f2;
    tok_buf_init(&d2, d, sizeof d);
    tok_buf_init(&f2, f, sizeof f);
    ck_assert_int_eq(tok_keyring_rewrap(kr_fixture, next_alone, "ten_a", 3, tok_buf_slice(&r.dek),
                                        tok_buf_slice(&r.fpk), &d2, &f2),
                     TOK_OK);
    /* bound to tenant and version as before: another version does not re-wrap */
    tok_buf_init(&d2, d, sizeof d);
    tok_buf_init(&f2, f, sizeof f);
    ck_assert_int_eq(tok_keyring_rewrap(kr_fixture, next_alone, "ten_a", 4, tok_buf_slice(&t.dek),
                                        tok_buf_slice(&t.fpk), &d2, &f2),
                     TOK_ERR_CRYPTO);
    ck_assert_uint_eq(d2.len, 0);
    ck_assert_uint_eq(f2.len, 0);
    tok_tenant_keys_free(&tk);
    tok_keyring_free(&next);
    tok_keyring_free(&next_alone);
}
END_TEST

START_TEST(test_tenant_keys_next_keeps_or_renews_fpk)
{
    struct tok_tenant_keys *v1 = open_tenant("ten_a", 1), *v2 = NULL, *v3 = NULL;
    struct tenant n2, n3;
    tok_buf_init(&n2.dek, n2.dek_mem, sizeof n2.dek_mem);
    tok_buf_init(&n2.fpk, n2.fpk_mem, sizeof n2.fpk_mem);
    tok_buf_init(&n3.dek, n3.dek_mem, sizeof n3.dek_mem);
    tok_buf_init(&n3.fpk, n3.fpk_mem, sizeof n3.fpk_mem);
    ck_assert_int_eq(tok_keyring_tenant_keys_next(kr_fixture, v1, 2, false, &n2.dek, &n2.fpk),
                     TOK_OK);
    ck_assert_int_eq(tok_keyring_tenant_keys_next(kr_fixture, v1, 3, true, &n3.dek, &n3.fpk),
                     TOK_OK);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 2, &n2, &v2), TOK_OK);
    ck_assert_int_eq(tenant_open(kr_fixture, "ten_a", 3, &n3, &v3), TOK_OK);
    uint8_t f1[TOK_FINGERPRINT_LEN], f2[TOK_FINGERPRINT_LEN], f3[TOK_FINGERPRINT_LEN];
    struct tok_slice pan = tok_slice_str("4242424242424242");
    ck_assert_int_eq(tok_tenant_keys_fingerprint(v1, pan, f1), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(v2, pan, f2), TOK_OK);
    ck_assert_int_eq(tok_tenant_keys_fingerprint(v3, pan, f3), TOK_OK);
    ck_assert_mem_eq(f1, f2, sizeof f1);    /* rotate-data: de-duplication unchanged */
    ck_assert_mem_ne(f1, f3, sizeof f1);    /* rotate-fingerprint: a new FPK */
    /* a fresh DEK: a value sealed under version 1 does not open under 2 (nor with 1's AAD) */
    uint8_t mem[64];
    struct tok_buf sealed, plain;
    tok_buf_init(&sealed, mem, sizeof mem);
    ck_assert_int_eq(tok_tenant_keys_seal(v1, aad_a, tok_slice_str("pm_1"), &sealed), TOK_OK);
    uint8_t pmem[16];
    tok_buf_init(&plain, pmem, sizeof pmem);
    ck_assert_int_eq(tok_tenant_keys_open(v2, aad_a, tok_buf_slice(&sealed), &plain),
                     TOK_ERR_CRYPTO);
    tok_tenant_keys_free(&v1);
    tok_tenant_keys_free(&v2);
    tok_tenant_keys_free(&v3);
}
END_TEST

START_TEST(test_tenant_keys_next_limits)
{
    struct tok_tenant_keys *v2 = open_tenant("ten_a", 2);
    struct tenant n;
    tok_buf_init(&n.dek, n.dek_mem, sizeof n.dek_mem);
    tok_buf_init(&n.fpk, n.fpk_mem, sizeof n.fpk_mem);
    ck_assert_int_eq(tok_keyring_tenant_keys_next(kr_fixture, v2, 2, false, &n.dek, &n.fpk),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_keyring_tenant_keys_next(kr_fixture, v2, 1, false, &n.dek, &n.fpk),
                     TOK_ERR_INPUT);
    tok_buf_init(&n.dek, n.dek_mem, TOK_KEYRING_WRAPPED_LEN - 1);
    ck_assert_int_eq(tok_keyring_tenant_keys_next(kr_fixture, v2, 3, false, &n.dek, &n.fpk),
                     TOK_ERR_BOUNDS);
    ck_assert_uint_eq(n.fpk.len, 0);
    tok_buf_init(&n.dek, n.dek_mem, sizeof n.dek_mem);
    ck_assert_int_eq(tok_keyring_tenant_keys_next(kr_fixture, v2, 3, false, &n.dek, &n.fpk),
                     TOK_OK);
    tok_tenant_keys_free(&v2);
}
END_TEST

START_TEST(test_next_master_file)
{
    uint8_t mem[4 * TOK_KEYRING_KEY_LEN + 2];
    struct tok_buf hex;
    tok_buf_init(&hex, mem, sizeof mem - 1);
    ck_assert_int_eq(tok_keyring_next_master(kr_fixture, &hex), TOK_ERR_BOUNDS);
    tok_buf_init(&hex, mem, sizeof mem);
    ck_assert_int_eq(tok_keyring_next_master(kr_fixture, &hex), TOK_OK);
    ck_assert_uint_eq(hex.len, 4 * TOK_KEYRING_KEY_LEN + 1);
    struct tok_keyring *next = load_path_ok(mem, hex.len);
    ck_assert(tok_keyring_same_line(kr_fixture, next));
    ck_assert(!tok_keyring_same_kek(kr_fixture, next));
    tok_keyring_free(&next);
}
END_TEST

/* A previous key is a file or a token key: exactly one; with neither or both, nothing is
 * loaded. Naming both is refused before any file or module is opened. */
START_TEST(test_previous_config_refused)
{
    const char *why = NULL;
    struct tok_master_key_config none = {NULL, NULL, NULL}, empty = {"", "", NULL};
    struct tok_master_key_config both = {"/tmp/tok_keyring_does_not_exist",
                                         "pkcs11:token=t;object=o", "/tmp/pin"};
    ck_assert_int_eq(tok_keyring_add_previous(kr_fixture, &none, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "no previous master key given");
    ck_assert_int_eq(tok_keyring_add_previous(kr_fixture, &empty, &why), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_keyring_add_previous(kr_fixture, &both, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "give --master-key-previous or --master-key-previous-pkcs11, not both");
    /* a bad URI is refused with its reason, under the previous key's name in tokend */
    struct tok_master_key_config bad = {NULL, "token=t;object=o", "/tmp/pin"};
    ck_assert_int_eq(tok_keyring_add_previous(kr_fixture, &bad, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "not a PKCS#11 URI (pkcs11:token=...;object=...)");
    ck_assert_str_eq(tok_keyring_kind(kr_fixture), "file");
    ck_assert_str_eq(tok_keyring_kind(NULL), "none");
    ck_assert_str_eq(tok_keyring_previous_kind(kr_fixture), "none");
}
END_TEST

START_TEST(test_previous_key_refused)
{
    char both[4 * TOK_KEYRING_KEY_LEN + 1];
    next_master_hex(both);
    struct tok_keyring *next = load_path_ok(both, 4 * TOK_KEYRING_KEY_LEN);
    const char *why = NULL;
    /* another line: its root differs */
    ck_assert_int_eq(add_previous(next, kek2, sizeof kek2, &why), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(why, "is not of this key line"));
    /* the current key again */
    ck_assert_int_eq(add_previous(next, both, 4 * TOK_KEYRING_KEY_LEN, &why), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(why, "is the current master key"));
    ck_assert_int_eq(tok_keyring_load_previous(next, "/tmp/tok_keyring_does_not_exist", &why),
                     TOK_ERR_IO);
    ck_assert_str_eq(why, "previous master key file not found: /tmp/tok_keyring_does_not_exist");
    /* refused previous keys left nothing behind: the first key's wraps do not open */
    struct tenant t;
    struct tok_tenant_keys *tk = NULL;
    tenant_new(kr_fixture, "ten_a", 1, &t);
    ck_assert_int_eq(tenant_open(next, "ten_a", 1, &t, &tk), TOK_ERR_CRYPTO);
    /* an audit key file holds one key: 128 hex characters are refused there */
    struct tok_audit_key *ak = NULL;
    char path[32];
    write_key_file(path, both, 4 * TOK_KEYRING_KEY_LEN, 0600);
    ck_assert_int_eq(tok_audit_key_load_file(path, &ak, &why), TOK_ERR_INPUT);
    unlink(path);
    tok_keyring_free(&next);
}
END_TEST


Suite *tok_keyring_suite(void)
{
    Suite *s = suite_create("keyring");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *adversarial = tcase_create("adversarial");
    TCase *all[] = {core, limits, adversarial};
    for (size_t i = 0; i < TOK_ARRAY_LEN(all); i++) {
        tcase_add_checked_fixture(all[i], keyring_setup, keyring_teardown);
        tcase_set_timeout(all[i], 30);
    }

    tcase_add_test(core, test_key_file_mode_0600_raw_accepted);
    tcase_add_test(core, test_key_file_hex_accepted);
    tcase_add_test(core, test_key_file_hex_equals_raw);
    tcase_add_test(core, test_api_key_hash_and_audit_mac);
    tcase_add_test(core, test_wrap_unwrap_round_trip);
    tcase_add_test(core, test_seal_open_round_trip);
    tcase_add_test(core, test_tenant_keys_shared_by_threads);
    tcase_add_test(core, test_fingerprint_stable_and_per_tenant);
    tcase_add_test(core, test_ref_lookup_stable_across_versions_and_per_tenant);
    tcase_add_test(core, test_random_id_format_and_unique);
    tcase_add_test(core, test_api_key_generate_and_parse);
    tcase_add_test(core, test_harden_process);
    tcase_add_test(core, test_master_file_carries_root);
    tcase_add_test(core, test_previous_key_opens_old_wraps_and_rewrap);
    tcase_add_test(core, test_tenant_keys_next_keeps_or_renews_fpk);
    tcase_add_test(core, test_next_master_file);

    tcase_add_test(limits, test_key_file_wrong_length_refused);
    tcase_add_test(limits, test_api_key_hash_limits);
    tcase_add_test(limits, test_tenant_keys_limits);
    tcase_add_test(limits, test_seal_limits);
    tcase_add_test(limits, test_fingerprint_limits);
    tcase_add_test(limits, test_ref_lookup_limits);
    tcase_add_test(limits, test_random_id_limits);
    tcase_add_test(limits, test_api_key_parse_limits);
    tcase_add_test(limits, test_tenant_keys_next_limits);

    tcase_add_test(adversarial, test_key_file_missing);
    tcase_add_test(adversarial, test_key_file_mode_0644_refused);
    tcase_add_test(adversarial, test_key_file_malformed_hex_refused);
    tcase_add_test(adversarial, test_key_file_zero_key_refused);
    tcase_add_test(adversarial, test_key_file_not_regular_refused);
    tcase_add_test(adversarial, test_key_file_fifo_refused);
    tcase_add_test(adversarial, test_unwrap_wrong_binding);
    tcase_add_test(adversarial, test_unwrap_malformed_lengths);
    tcase_add_test(adversarial, test_seal_swapped_ciphertext_rejected);
    tcase_add_test(adversarial, test_seal_flipped_byte_rejected);
    tcase_add_test(adversarial, test_open_truncated);
    tcase_add_test(adversarial, test_api_key_parse_adversarial);
    tcase_add_test(adversarial, test_previous_key_refused);
    tcase_add_test(adversarial, test_previous_config_refused);

    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adversarial);
    return s;
}
