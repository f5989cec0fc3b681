/*
 * check_httpc.c - the HTTPS client's request building and failure classes (no network):
 * URL policy (https only, no control characters), header injection, bounds, CURLcode
 * classification, and start/stop of the curl thread.
 */
#include "tokend/http/httpc.h"

#include <check.h>
#include <curl/curl.h>
#include <string.h>

static struct tok_httpc_request *req;

static void setup(void)
{
    req = NULL;
    ck_assert_int_eq(tok_httpc_request_new(&req), TOK_OK);
}

static void teardown(void)
{
    tok_httpc_request_free(&req);
    ck_assert_ptr_null(req);
}

START_TEST(test_url)
{
    ck_assert_int_eq(tok_httpc_request_url(req, "https://api.stripe.com/", "/v1/refunds"), TOK_OK);
    ck_assert_str_eq(req->url, "https://api.stripe.com/v1/refunds");
    ck_assert_int_eq(tok_httpc_request_url(req, "https://localhost:8443", "/v71/payments"), TOK_OK);
    ck_assert_str_eq(req->url, "https://localhost:8443/v71/payments");
}
END_TEST

START_TEST(test_headers)
{
    ck_assert_int_eq(tok_httpc_request_header(req, "Idempotency-Key", tok_slice_str("k1")), TOK_OK);
    ck_assert_int_eq(tok_httpc_request_header(req, "X-API-Key", tok_slice_str("secret")), TOK_OK);
    ck_assert_uint_eq(req->headers.len, strlen("Idempotency-Key: k1") + 1 + strlen("X-API-Key: secret") + 1);
    ck_assert(req->headers.secret);
    ck_assert(req->body.secret);
}
END_TEST

START_TEST(test_classify)
{
    ck_assert_int_eq(tok_httpc_classify(CURLE_OK, false), TOK_HTTPC_OK);
    ck_assert_int_eq(tok_httpc_classify(CURLE_OPERATION_TIMEDOUT, false), TOK_HTTPC_TIMEOUT);
    ck_assert_int_eq(tok_httpc_classify(CURLE_COULDNT_CONNECT, false), TOK_HTTPC_CONNECT);
    ck_assert_int_eq(tok_httpc_classify(CURLE_RECV_ERROR, false), TOK_HTTPC_CONNECT);
    ck_assert_int_eq(tok_httpc_classify(CURLE_GOT_NOTHING, false), TOK_HTTPC_CONNECT);
    ck_assert_int_eq(tok_httpc_classify(CURLE_PEER_FAILED_VERIFICATION, false), TOK_HTTPC_TLS);
    ck_assert_int_eq(tok_httpc_classify(CURLE_SSL_CONNECT_ERROR, false), TOK_HTTPC_TLS);
    ck_assert_int_eq(tok_httpc_classify(CURLE_SSL_CACERT_BADFILE, false), TOK_HTTPC_TLS);
    ck_assert_int_eq(tok_httpc_classify(CURLE_WRITE_ERROR, true), TOK_HTTPC_TOO_LARGE);
    ck_assert_int_eq(tok_httpc_classify(CURLE_WRITE_ERROR, false), TOK_HTTPC_OTHER);
    ck_assert_int_eq(tok_httpc_classify(CURLE_UNSUPPORTED_PROTOCOL, false), TOK_HTTPC_OTHER);
    ck_assert_str_eq(tok_httpc_result_name(TOK_HTTPC_TLS), "tls");
}
END_TEST

START_TEST(test_start_stop)
{
    struct tok_httpc_config cfg = {NULL, 0, 0, 0, 0};
    struct tok_httpc *c = NULL;
    ck_assert_int_eq(tok_httpc_new(&cfg, &c), TOK_OK);
    ck_assert_ptr_nonnull(c);
    tok_httpc_free(&c);
    ck_assert_ptr_null(c);
    tok_httpc_free(&c); /* NULL-safe */
    tok_httpc_free(NULL);
}
END_TEST

/* a released request's block is wiped and, recycled by secmem, handed out again empty */
START_TEST(test_request_reuse_is_wiped)
{
    struct tok_httpc_request *a = NULL, *b = NULL;
    ck_assert_int_eq(tok_httpc_request_new(&a), TOK_OK);
    ck_assert_uint_eq(a->body.cap, TOK_HTTPC_BODY_MAX);
    ck_assert_int_eq(tok_buf_write(&a->body, "card[number]=4242424242424242", 29), TOK_OK);
    ck_assert_int_eq(tok_httpc_request_header(a, "X-API-Key", tok_slice_str("secret")), TOK_OK);
    ck_assert_int_eq(tok_httpc_request_url(a, "https://h", "/v1/payment_intents/pi_1"), TOK_OK);
    ck_assert_int_eq(tok_buf_write(&a->response, "{\"id\":\"pm_1\"}", 13), TOK_OK);
    a->post = true;
    uint8_t *slab = a->slab;
    tok_httpc_request_free(&a);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(tok_httpc_request_new(&b), TOK_OK);
    ck_assert_ptr_eq(b->slab, slab); /* this thread's secmem cache gave the block back */
    ck_assert_uint_eq(b->body.len + b->headers.len + b->response.len, 0);
    ck_assert(!b->post && b->status == 0 && b->url[0] == '\0');
    uint32_t slab_size = TOK_HTTPC_BODY_MAX + TOK_HTTPC_HEADERS_MAX + TOK_HTTPC_RESPONSE_START;
    for (uint32_t i = 0; i < slab_size; i++)
        ck_assert_int_eq(slab[i], 0);
    tok_httpc_request_free(&b);
    struct tok_httpc_config cfg = {NULL, 0, 0, TOK_HTTPC_MAX_CONNECTIONS_MAX + 1, 0};
    struct tok_httpc *c = NULL;
    ck_assert_int_eq(tok_httpc_new(&cfg, &c), TOK_ERR_INPUT);
    ck_assert_ptr_null(c);
    struct tok_httpc_config many = {NULL, 0, 0, 0, TOK_HTTPC_MAX_INFLIGHT_MAX + 1};
    ck_assert_int_eq(tok_httpc_new(&many, &c), TOK_ERR_INPUT);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_limits)
{
    char big[TOK_HTTPC_URL_MAX + 8];
    memset(big, 'a', sizeof big - 1);
    big[0] = '/';
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(tok_httpc_request_url(req, "https://h", big), TOK_ERR_BOUNDS);
    /* the header buffer: fill it, then one more is refused whole */
    static char value[TOK_HTTPC_HEADERS_MAX];
    memset(value, 'v', sizeof value);
    ck_assert_int_eq(tok_httpc_request_header(req, "A", tok_slice_of(value, TOK_HTTPC_HEADERS_MAX - 4)),
                     TOK_OK);
    ck_assert_uint_eq(req->headers.len, TOK_HTTPC_HEADERS_MAX);
    ck_assert_int_eq(tok_httpc_request_header(req, "B", tok_slice_str("")), TOK_ERR_BOUNDS);
    ck_assert_uint_eq(req->headers.len, TOK_HTTPC_HEADERS_MAX);
    struct tok_httpc_config cfg = {NULL, TOK_HTTPC_TIMEOUT_MAX_MS + 1, 0, 0, 0};
    struct tok_httpc *c = NULL;
    ck_assert_int_eq(tok_httpc_new(&cfg, &c), TOK_ERR_INPUT);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_url_policy)
{
    ck_assert_int_eq(tok_httpc_request_url(req, "http://api.stripe.com", "/v1/x"), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_url(req, "file:///etc/passwd", "/x"), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_url(req, "https://", "/x"), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_url(req, "https:///x", "/x"), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_url(req, "https://h", "v1/x"), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_url(req, "https://h", "/v1/x y"), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_url(req, "https://h", "/v1/x\r\nHost: evil"), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_url(req, "https://h", "/v1/x#frag"), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_url(req, "https://h\x01", "/v1/x"), TOK_ERR_INPUT);
}
END_TEST

START_TEST(test_header_injection)
{
    ck_assert_int_eq(tok_httpc_request_header(req, "X-API-Key", tok_slice_str("k\r\nX-Evil: 1")),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_header(req, "X-API-Key", tok_slice_of("k\0x", 3)),
                     TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_header(req, "Bad:Name", tok_slice_str("v")), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_header(req, "Bad Name", tok_slice_str("v")), TOK_ERR_INPUT);
    ck_assert_int_eq(tok_httpc_request_header(req, "", tok_slice_str("v")), TOK_ERR_INPUT);
    ck_assert_uint_eq(req->headers.len, 0);
    struct tok_httpc_config cfg = {"/nonexistent/ca.pem", 0, 0, 0, 0};
    struct tok_httpc *c = NULL;
    ck_assert_int_eq(tok_httpc_new(&cfg, &c), TOK_ERR_INPUT);
}
END_TEST

Suite *tok_httpc_suite(void)
{
    Suite *s = suite_create("httpc");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_add_checked_fixture(adv, setup, teardown);
    tcase_add_test(core, test_url);
    tcase_add_test(core, test_headers);
    tcase_add_test(core, test_classify);
    tcase_add_test(core, test_start_stop);
    tcase_add_test(core, test_request_reuse_is_wiped);
    tcase_add_test(limits, test_limits);
    tcase_add_test(adv, test_url_policy);
    tcase_add_test(adv, test_header_injection);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
