/* check_edge.c - the edge's accept path (edge.h): back-off when accept4() runs
 * out of descriptors, and the connection cap. A real h2o loop on loopback. */
#include "tokend/http/edge.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The rig's h2o config, context, loop and edge live for the process in tokend and have no
 * dispose path; under LeakSanitizer, what a rig allocates is not reported (the integration
 * tests run the edge under ASan in a real tokend). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define RIG_LSAN_OFF() __lsan_disable()
#define RIG_LSAN_ON() __lsan_enable()
#else
#define RIG_LSAN_OFF() ((void)0)
#define RIG_LSAN_ON() ((void)0)
#endif

struct rig {
    h2o_globalconf_t conf;
    h2o_context_t ctx;
    h2o_accept_ctx_t actx;
    struct tok_edge *edge;
    int port;
};

static void rig_init(struct rig *g, unsigned max_conns)
{
    RIG_LSAN_OFF(); /* until the test's RIG_LSAN_ON() */
    h2o_config_init(&g->conf);
    h2o_config_register_host(&g->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&g->ctx, loop, &g->conf);
    g->actx.ctx = &g->ctx;
    g->actx.hosts = g->conf.hosts;
    struct tok_edge_limits lim = {max_conns, 5000, 60000, 100};
    ck_assert_int_eq(tok_edge_new(&g->ctx, &lim, &g->edge), TOK_OK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    g->port = ntohs(sa.sin_port);
    h2o_socket_t *l = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    ck_assert_int_eq(tok_edge_listen(g->edge, l, &g->actx), TOK_OK);
}

static int client(const struct rig *g)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0); /* the backlog takes it */
    return fd;
}

static void run_for(struct rig *g, long ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        h2o_evloop_run(g->ctx.loop, 20);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

START_TEST(test_edge_accept_backs_off_on_emfile)
{
    struct rig g;
    rig_init(&g, 1000);
    for (int i = 0; i < 3; i++)
        (void)client(&g);
    /* no descriptor left for accept4(): the next free number is the limit */
    int probe = dup(0);
    ck_assert_int_ge(probe, 0);
    close(probe);
    struct rlimit old, rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    rl = old;
    rl.rlim_cur = (rlim_t)probe;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    run_for(&g, 600);
    struct tok_edge_stats st;
    tok_edge_get_stats(g.edge, &st);
    /* a pause of 100 ms per failure: about 6 in 600 ms; a spinning loop fails thousands of times */
    ck_assert_uint_ge(st.accept_paused, 1);
    ck_assert_uint_le(st.accept_paused, 12);
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    run_for(&g, 300);
    tok_edge_get_stats(g.edge, &st);
    ck_assert_uint_eq(st.accepted, 3); /* the listener resumed by itself */
    RIG_LSAN_ON();
}
END_TEST

START_TEST(test_edge_cap_closes_new_connections_at_once)
{
    struct rig g;
    rig_init(&g, 2);
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = client(&g);
    run_for(&g, 200);
    struct tok_edge_stats st;
    tok_edge_get_stats(g.edge, &st);
    ck_assert_uint_eq(st.accepted, 2);
    ck_assert_uint_eq(st.refused, 3);
    ck_assert_uint_eq(st.open, 2);
    int closed = 0;
    for (int i = 0; i < 5; i++) {
        char c;
        struct timeval tv = {0, 100000};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (recv(fds[i], &c, 1, 0) == 0)
            closed++;
    }
    ck_assert_int_eq(closed, 3);
    RIG_LSAN_ON();
}
END_TEST

Suite *tok_edge_suite(void)
{
    Suite *s = suite_create("edge");
    TCase *limits = tcase_create("limits");
    tcase_set_timeout(limits, 10);
    tcase_add_test(limits, test_edge_accept_backs_off_on_emfile);
    tcase_add_test(limits, test_edge_cap_closes_new_connections_at_once);
    suite_add_tcase(s, limits);
    return s;
}
