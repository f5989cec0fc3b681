/*
 * check_master_key.c - master key providers (master_key.h): the file provider keeps the
 * keyring's derivations as they were; choosing a provider; the PKCS#11 provider's URI and
 * PIN file rules, all refused before any module is loaded. The token itself is exercised
 * with SoftHSM2 in tests/integration/t_43_pkcs11.sh.
 */
#include "tokend/vault/master_key.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t kek[TOK_KEYRING_KEY_LEN] = {
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f};

/* Opens uri with pin_file; returns the status and leaves the reason in *why. */
static tok_status p11(const char *uri, const char *pin_file, const char **why)
{
    struct tok_master_key *mk = NULL;
    tok_status st = tok_master_key_pkcs11_open(uri, pin_file, &mk, why);
    ck_assert_ptr_null(mk);
    return st;
}

static void write_file(char path[40], const void *content, size_t len, mode_t mode)
{
    snprintf(path, 40, "/tmp/tok_master_key_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    ck_assert_int_eq(close(fd), 0);
}

/* ---- core -------------------------------------------------------------------------------- */

/* The file provider's sub-keys are those keyring.h has always described (KDF of the KEK):
 * a keyring made through the provider hashes API keys exactly as before. */
START_TEST(test_file_provider_keeps_derivations)
{
    struct tok_master_key *mk = NULL;
    ck_assert_int_eq(tok_master_key_from_bytes(kek, &mk), TOK_OK);
    ck_assert_str_eq(tok_master_key_kind(mk), "file");
    struct tok_keyring *kr = NULL;
    ck_assert_int_eq(tok_keyring_new(&mk, &kr), TOK_OK);
    ck_assert_ptr_null(mk); /* taken */

    uint8_t sub[32], want[TOK_KEYRING_HASH_LEN], got[TOK_KEYRING_HASH_LEN];
    static const char secret[] = "sk_test_abc";
    ck_assert_int_eq(crypto_kdf_derive_from_key(sub, sizeof sub, 1, "tokend__", kek), 0);
    ck_assert_int_eq(crypto_generichash(want, sizeof want, (const uint8_t *)secret,
                                        sizeof secret - 1, sub, sizeof sub),
                     0);
    ck_assert_int_eq(tok_keyring_api_key_hash(kr, tok_slice_str(secret), got), TOK_OK);
    ck_assert_mem_eq(got, want, sizeof want);
    tok_keyring_free(&kr);
}
END_TEST

/* A tenant key wrapped through one keyring opens through another over the same file KEK. */
START_TEST(test_file_provider_wraps_and_unwraps)
{
    struct tok_keyring *a = NULL, *b = NULL;
    ck_assert_int_eq(tok_keyring_from_bytes(kek, &a), TOK_OK);
    struct tok_master_key *mk = NULL;
    ck_assert_int_eq(tok_master_key_from_bytes(kek, &mk), TOK_OK);
    ck_assert_int_eq(tok_keyring_new(&mk, &b), TOK_OK);
    uint8_t dm[TOK_KEYRING_WRAPPED_LEN], fm[TOK_KEYRING_WRAPPED_LEN];
    struct tok_buf d, f;
    tok_buf_init(&d, dm, sizeof dm);
    tok_buf_init(&f, fm, sizeof fm);
    ck_assert_int_eq(tok_keyring_tenant_keys_new(a, "ten_1", 1, &d, &f), TOK_OK);
    struct tok_tenant_keys *tk = NULL;
    ck_assert_int_eq(tok_keyring_tenant_keys_open(b, "ten_1", 1, tok_buf_slice(&d),
                                                  tok_buf_slice(&f), &tk),
                     TOK_OK);
    tok_tenant_keys_free(&tk);
    /* bound to the tenant and the version, as before */
    ck_assert_int_eq(tok_keyring_tenant_keys_open(b, "ten_2", 1, tok_buf_slice(&d),
                                                  tok_buf_slice(&f), &tk),
                     TOK_ERR_CRYPTO);
    ck_assert_int_eq(tok_keyring_tenant_keys_open(b, "ten_1", 2, tok_buf_slice(&d),
                                                  tok_buf_slice(&f), &tk),
                     TOK_ERR_CRYPTO);
    tok_keyring_free(&a);
    tok_keyring_free(&b);
}
END_TEST

START_TEST(test_load_chooses_one_provider)
{
    const char *why = NULL;
    struct tok_keyring *kr = NULL;
    struct tok_master_key_config none = {NULL, "", NULL};
    ck_assert_int_eq(tok_keyring_load(&none, &kr, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "no master key: set --master-key-file or --master-key-pkcs11");
    struct tok_master_key_config both = {"/tmp/x", "pkcs11:token=a;object=b", NULL};
    ck_assert_int_eq(tok_keyring_load(&both, &kr, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "give --master-key-file or --master-key-pkcs11, not both");
    struct tok_master_key_config pin = {"/tmp/x", NULL, "/tmp/pin"};
    ck_assert_int_eq(tok_keyring_load(&pin, &kr, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "--master-key-pin-file is for --master-key-pkcs11");
    ck_assert_ptr_null(kr);

    char path[40];
    write_file(path, kek, sizeof kek, 0600);
    struct tok_master_key_config file = {path, NULL, NULL};
    ck_assert_int_eq(tok_keyring_load(&file, &kr, &why), TOK_OK);
    tok_keyring_free(&kr);
    unlink(path);
    tok_master_key_free(NULL);
}
END_TEST

/* A URI that parses gets as far as the PIN: none given is the next refusal. */
START_TEST(test_uri_accepted_forms)
{
    const char *why = NULL;
    static const char *const ok[] = {
        "pkcs11:token=tokend;object=master",
        "PKCS11:token=tokend;object=master",
        "pkcs11:object=master;token=tokend;type=secret-key",
        "pkcs11:token=my%20token;object=m%41ster;id=%01%02%ff",
        "pkcs11:token=t;object=o?module-path=/usr/lib/softhsm/libsofthsm2.so",
        "pkcs11:token=t;;object=o?",
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(ok); i++) {
        ck_assert_int_eq(p11(ok[i], NULL, &why), TOK_ERR_INPUT);
        ck_assert_str_eq(why, "no PKCS#11 PIN: set --master-key-pin-file or pin-source=file:... in "
                              "the URI");
    }
}
END_TEST

/* ---- limits ------------------------------------------------------------------------------ */

START_TEST(test_uri_limits)
{
    const char *why = NULL;
    char uri[TOK_PKCS11_URI_MAX + 2];
    /* a 32-character token label (CK_TOKEN_INFO's size) parses; 33 does not */
    snprintf(uri, sizeof uri, "pkcs11:object=o;token=%s", "abcdefghijklmnopqrstuvwxyz012345");
    ck_assert_int_eq(p11(uri, NULL, &why), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(why, "no PKCS#11 PIN"));
    snprintf(uri, sizeof uri, "pkcs11:object=o;token=%s", "abcdefghijklmnopqrstuvwxyz0123456");
    ck_assert_int_eq(p11(uri, NULL, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "PKCS#11 URI: bad or empty value for 'token'");
    /* TOK_PKCS11_URI_MAX characters parse; one more is refused before parsing */
    memset(uri, 0, sizeof uri);
    int n = snprintf(uri, sizeof uri, "pkcs11:token=t;object=o?module-path=/");
    memset(uri + n, 'a', TOK_PKCS11_URI_MAX - (size_t)n);
    ck_assert_uint_eq(strlen(uri), TOK_PKCS11_URI_MAX);
    ck_assert_int_eq(p11(uri, NULL, &why), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(why, "no PKCS#11 PIN"));
    uri[TOK_PKCS11_URI_MAX] = 'a';
    ck_assert_int_eq(p11(uri, NULL, &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "not a PKCS#11 URI (pkcs11:token=...;object=...)");
}
END_TEST

/* The PIN file: 1..TOK_PKCS11_PIN_MAX bytes and an optional newline, mode 0600. A PIN the
 * file rules accept goes on to the module, which here does not exist. */
START_TEST(test_pin_file_limits)
{
    const char *why = NULL;
    static const char uri[] = "pkcs11:token=t;object=o?module-path=/nonexistent/module.so";
    char path[40], pin[TOK_PKCS11_PIN_MAX + 2];
    memset(pin, '7', sizeof pin);
    pin[TOK_PKCS11_PIN_MAX] = '\n';
    write_file(path, pin, TOK_PKCS11_PIN_MAX + 1, 0600);
    ck_assert_int_eq(p11(uri, path, &why), TOK_ERR_CRYPTO);
    ck_assert_ptr_nonnull(strstr(why, "PKCS#11 module cannot be loaded: /nonexistent/module.so"));
    unlink(path);
    pin[TOK_PKCS11_PIN_MAX] = '7'; /* 129 PIN bytes */
    write_file(path, pin, TOK_PKCS11_PIN_MAX + 1, 0600);
    ck_assert_int_eq(p11(uri, path, &why), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(why, "PKCS#11 PIN file must hold 1 to 128 bytes"));
    unlink(path);
    write_file(path, "\n", 1, 0600);
    ck_assert_int_eq(p11(uri, path, &why), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(why, "PKCS#11 PIN file must hold 1 to 128 bytes"));
    unlink(path);
    write_file(path, "1234", 4, 0640);
    ck_assert_int_eq(p11(uri, path, &why), TOK_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(why, "readable by group or others"));
    unlink(path);
    ck_assert_int_eq(p11(uri, "/tmp/tok_master_key_no_such_pin", &why), TOK_ERR_IO);
    ck_assert_str_eq(why, "PKCS#11 PIN file not found: /tmp/tok_master_key_no_such_pin");
    /* pin-source=file: in the URI, and never both */
    ck_assert_int_eq(p11("pkcs11:token=t;object=o?pin-source=file:/tmp/tok_master_key_none", NULL,
                         &why),
                     TOK_ERR_IO);
    ck_assert_str_eq(why, "PKCS#11 PIN file not found: /tmp/tok_master_key_none");
    ck_assert_int_eq(p11("pkcs11:token=t;object=o?pin-source=/p", "/q", &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "give the PIN file once: --master-key-pin-file or pin-source in the URI");
}
END_TEST

/* ---- adversarial ------------------------------------------------------------------------- */

START_TEST(test_uri_refused)
{
    static const struct {
        const char *uri, *why;
    } cases[] = {
        {"", "not a PKCS#11 URI (pkcs11:token=...;object=...)"},
        {"pkcs11", "not a PKCS#11 URI (pkcs11:token=...;object=...)"},
        {"file:/etc/key", "not a PKCS#11 URI (pkcs11:token=...;object=...)"},
        {"pkcs11:", "PKCS#11 URI: give both token= and object= (the labels of the token and the key)"},
        {"pkcs11:token=t", "PKCS#11 URI: give both token= and object= (the labels of the token and the key)"},
        {"pkcs11:token=t;object=o;token=u", "PKCS#11 URI: 'token' appears twice"},
        {"pkcs11:token=t;object=o?module-path=/a&module-path=/b", "PKCS#11 URI: 'module-path' appears twice"},
        {"pkcs11:token;object=o", "PKCS#11 URI: 'token' is not name=value"},
        {"pkcs11:token=;object=o", "PKCS#11 URI: bad or empty value for 'token'"},
        {"pkcs11:token=%4;object=o", "PKCS#11 URI: bad or empty value for 'token'"},
        {"pkcs11:token=%;object=o", "PKCS#11 URI: bad or empty value for 'token'"},
        {"pkcs11:token=a%zz;object=o", "PKCS#11 URI: bad or empty value for 'token'"},
        {"pkcs11:token=a%00b;object=o", "PKCS#11 URI: bad or empty value for 'token'"},
        {"pkcs11:token=t;object=o;type=cert", "PKCS#11 URI: the master key is type=secret-key"},
        {"pkcs11:token=t;object=o;slot-id=1", "PKCS#11 URI: attribute 'slot-id' is not supported (token, object, id, type; ?module-path, pin-source)"},
        /* query attributes belong after '?', path ones before it */
        {"pkcs11:token=t;object=o;module-path=/x.so", "PKCS#11 URI: attribute 'module-path' is not supported (token, object, id, type; ?module-path, pin-source)"},
        {"pkcs11:object=o?token=t", "PKCS#11 URI: attribute 'token' is not supported (token, object, id, type; ?module-path, pin-source)"},
        {"pkcs11:token=t;object=o?pin-value=1234", "PKCS#11 URI: pin-value is refused (it shows in ps and logs): put the PIN in a file (pin-source=file:... or --master-key-pin-file)"},
    };
    for (size_t i = 0; i < TOK_ARRAY_LEN(cases); i++) {
        const char *why = NULL;
        ck_assert_int_eq(p11(cases[i].uri, "/tmp/pin", &why), TOK_ERR_INPUT);
        ck_assert_msg(strcmp(why, cases[i].why) == 0, "%s: got '%s'", cases[i].uri, why);
    }
    /* a 65-byte id does not fit CKA_ID's bound */
    char uri[512];
    int n = snprintf(uri, sizeof uri, "pkcs11:token=t;object=o;id=");
    for (int i = 0; i < 65; i++)
        n += snprintf(uri + n, sizeof uri - (size_t)n, "%%%02x", i);
    const char *why = NULL;
    ck_assert_int_eq(p11(uri, "/tmp/pin", &why), TOK_ERR_INPUT);
    ck_assert_str_eq(why, "PKCS#11 URI: bad or empty value for 'id'");
    ck_assert_int_eq(tok_master_key_pkcs11_create("pkcs11:token=t", "/tmp/pin", NULL, &why),
                     TOK_ERR_INPUT);
}
END_TEST

/* A previous key in a token takes its own PIN file, else its URI's pin-source, else the
 * current key's PIN file (the same token: one user PIN). */
START_TEST(test_previous_pin_choice)
{
    const char *u = "pkcs11:token=t;object=o";
    const char *src = "pkcs11:token=t;object=o?pin-source=file:/p";
    ck_assert_str_eq(tok_master_key_previous_pin(u, "/prev", "/cur"), "/prev");
    ck_assert_str_eq(tok_master_key_previous_pin(src, "/prev", "/cur"), "/prev");
    ck_assert_ptr_null(tok_master_key_previous_pin(src, "", "/cur"));
    ck_assert_str_eq(tok_master_key_previous_pin(u, "", "/cur"), "/cur");
    ck_assert_str_eq(tok_master_key_previous_pin(u, NULL, "/cur"), "/cur");
    ck_assert_ptr_null(tok_master_key_previous_pin("", NULL, "/cur"));
    ck_assert_ptr_null(tok_master_key_previous_pin(NULL, NULL, "/cur"));
    /* a bad URI is refused when opened, with its reason: here it falls through */
    ck_assert_str_eq(tok_master_key_previous_pin("file:x", NULL, "/cur"), "/cur");
}
END_TEST

Suite *tok_master_key_suite(void)
{
    Suite *s = suite_create("master_key");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adversarial = tcase_create("adversarial");
    tcase_add_test(core, test_file_provider_keeps_derivations);
    tcase_add_test(core, test_file_provider_wraps_and_unwraps);
    tcase_add_test(core, test_load_chooses_one_provider);
    tcase_add_test(core, test_uri_accepted_forms);
    tcase_add_test(core, test_previous_pin_choice);
    tcase_add_test(limits, test_uri_limits);
    tcase_add_test(limits, test_pin_file_limits);
    tcase_add_test(adversarial, test_uri_refused);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adversarial);
    return s;
}
