/*
 * metrics_server.c - a blocking accept loop on one thread: a scrape every few seconds from
 * a Prometheus server needs nothing more, and it stays out of the event loops.
 */
#include "tokend/http/metrics_server.h"
#include "tokend/core/config.h"
#include "tokend/core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct tok_metrics_server {
    int fd;
    int stop_pipe[2]; /* a byte written here ends the thread's poll */
    pthread_t tid;
    bool running;
    const struct tok_metrics_registry *reg;
    uint8_t *out; /* TOK_METRICS_OUT_MAX bytes, reused by every scrape */
};

static bool send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static void answer(int fd, const char *status, const char *type, const uint8_t *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, type, len);
    if (n > 0 && (size_t)n < sizeof head && send_all(fd, head, (size_t)n) && len > 0)
        send_all(fd, body, len);
}

/* Reads the request head (until CRLFCRLF) within the timeout; false on anything else. */
static bool read_head(int fd, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    while (*len + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, TOK_METRICS_IO_TIMEOUT_MS) <= 0)
            return false;
        ssize_t r = recv(fd, buf + *len, cap - 1 - *len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        *len += (size_t)r;
        buf[*len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            return true;
    }
    return false;
}

static void serve(struct tok_metrics_server *s, int fd)
{
    char req[TOK_METRICS_REQUEST_MAX];
    size_t len;
    struct timeval tv = {TOK_METRICS_IO_TIMEOUT_MS / 1000, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (!read_head(fd, req, sizeof req, &len)) {
        static const char msg[] = "bad request\n";
        answer(fd, "400 Bad Request", "text/plain", (const uint8_t *)msg, sizeof msg - 1);
        return;
    }
    bool get = strncmp(req, "GET ", 4) == 0, head = strncmp(req, "HEAD ", 5) == 0;
    const char *path = req + (get ? 4 : 5);
    size_t plen = strcspn(path, " ?\r\n");
    if (!(get || head) || plen != 8 || strncmp(path, "/metrics", 8) != 0) {
        static const char msg[] = "only GET /metrics here\n";
        answer(fd, "404 Not Found", "text/plain", (const uint8_t *)msg, sizeof msg - 1);
        return;
    }
    struct tok_buf b;
    tok_buf_init(&b, s->out, TOK_METRICS_OUT_MAX);
    if (tok_metrics_render(s->reg, &b) != TOK_OK) {
        tok_log(TOK_LOG_ERR, "metrics: the scrape does not fit in %u bytes",
                TOK_METRICS_OUT_MAX);
        static const char msg[] = "metrics output too large\n";
        answer(fd, "500 Internal Server Error", "text/plain", (const uint8_t *)msg,
               sizeof msg - 1);
        return;
    }
    answer(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", head ? NULL : b.data,
           head ? 0 : b.len);
}

static void *metrics_thread(void *arg)
{
    struct tok_metrics_server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{s->fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents != 0)
            break;
        if ((p[0].revents & POLLIN) == 0)
            continue;
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                poll(NULL, 0, 100); /* out of descriptors: back off, never spin */
            continue;
        }
        serve(s, c);
        close(c);
    }
    return NULL;
}

tok_status tok_metrics_server_start(const char *addr, const struct tok_metrics_registry *reg,
                                    struct tok_metrics_server **out, char *why, size_t why_len)
{
    TOK_ENSURE(addr != NULL && reg != NULL && out != NULL, TOK_ERR_INTERNAL);
    struct sockaddr_storage ss;
    unsigned slen = sizeof ss;
    if (tok_config_parse_addr(addr, (struct sockaddr *)&ss, &slen) != TOK_OK) {
        snprintf(why, why_len, "bad --metrics-listen address '%.64s'", addr);
        return TOK_ERR_INPUT;
    }
    struct tok_metrics_server *s = calloc(1, sizeof *s);
    TOK_ENSURE(s != NULL, TOK_ERR_NOMEM);
    s->reg = reg;
    s->fd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->out = malloc(TOK_METRICS_OUT_MAX);
    if (s->out == NULL || pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        snprintf(why, why_len, "metrics: out of memory or descriptors");
        tok_metrics_server_stop(&s);
        return TOK_ERR_NOMEM;
    }
    int on = 1;
    s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(s->fd, (struct sockaddr *)&ss, slen) != 0 || listen(s->fd, 16) != 0) {
        snprintf(why, why_len, "cannot listen on %.64s for metrics: %s", addr, strerror(errno));
        tok_metrics_server_stop(&s);
        return TOK_ERR_IO;
    }
    if (pthread_create(&s->tid, NULL, metrics_thread, s) != 0) {
        snprintf(why, why_len, "metrics: cannot start the thread");
        tok_metrics_server_stop(&s);
        return TOK_ERR_NOMEM;
    }
    s->running = true;
    *out = s;
    return TOK_OK;
}

void tok_metrics_server_stop(struct tok_metrics_server **ps)
{
    if (ps == NULL || *ps == NULL)
        return;
    struct tok_metrics_server *s = *ps;
    if (s->running && write(s->stop_pipe[1], "x", 1) == 1)
        pthread_join(s->tid, NULL);
    if (s->fd >= 0)
        close(s->fd);
    for (int i = 0; i < 2; i++)
        if (s->stop_pipe[i] >= 0)
            close(s->stop_pipe[i]);
    free(s->out);
    free(s);
    *ps = NULL;
}
