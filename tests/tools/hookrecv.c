/*
 * hookrecv.c - a webhook receiver for tests: answers 500 to the first --fail
 * requests of each event and 200 afterwards, checks each request's Tokend-Signature itself with
 * the endpoint secret (read from --secret-file, or updated with a line on stdin),
 * and appends one line per request to --log:
 *   <n> <answered status> sig=<ok|bad|missing|stale> <event id or ->
 * HTTP/1.1 over loopback, one connection at a time (tokend sends few requests).
 * usage: hookrecv --port P --secret-file F --log FILE [--fail N]
 */
#include "tokend/events/webhooks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX (512 * 1024)

static char secret[256];

static void load_secret(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(secret, sizeof secret, f) != NULL)
        secret[strcspn(secret, "\r\n")] = '\0';
    fclose(f);
}

static const char *find_header(char *head, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ')
                v++;
            char *e = strstr(v, "\r\n");
            *len = e != NULL ? (size_t)(e - v) : strlen(v);
            return v;
        }
    }
    return NULL;
}

static void serve(int c, FILE *log, const char *secret_path, int *count, int fail)
{
    static char buf[REQ_MAX + 1];
    size_t got = 0;
    char *body = NULL;
    size_t clen = 0;
    for (;;) {
        ssize_t k = read(c, buf + got, REQ_MAX - got);
        if (k <= 0)
            return;
        got += (size_t)k;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        size_t l = 0;
        const char *cl = find_header(buf, "content-length", &l);
        clen = cl != NULL ? strtoul(cl, NULL, 10) : 0;
        body = end + 4;
        if ((size_t)(buf + got - body) >= clen)
            break;
        if (got >= REQ_MAX)
            return;
    }
    *(body - 2) = '\0'; /* end the head for header lookups */
    load_secret(secret_path);
    size_t sl = 0;
    const char *sig = find_header(buf, "tokend-signature", &sl);
    enum tok_webhook_verdict v = TOK_WH_MISSING;
    if (secret[0] != '\0' &&
        tok_webhook_sig_verify(tok_slice_of(sig, sig != NULL ? sl : 0), tok_slice_of(body, clen),
                               tok_slice_str(secret), (int64_t)time(NULL), TOK_WEBHOOK_TOLERANCE_S,
                               &v) != TOK_OK)
        v = TOK_WH_MISMATCH;
    (*count)++;
    const char *names[] = {"ok", "missing", "bad", "stale"};
    char evt[64] = "-";
    const char *id = strstr(body, "\"id\": \"evt_");
    if (id != NULL)
        snprintf(evt, sizeof evt, "%.26s", id + 7);
    /* each event fails its first `fail` tries */
    static char seen[1024][32];
    static int tries[1024];
    int slot = 0;
    while (slot < 1023 && seen[slot][0] != '\0' && strcmp(seen[slot], evt) != 0)
        slot++;
    size_t elen = strnlen(evt, sizeof seen[slot] - 1); /* event ids are shorter */
    tok_copy(seen[slot], evt, elen);
    seen[slot][elen] = '\0';
    tries[slot]++;
    int status = tries[slot] <= fail ? 500 : 200;
    fprintf(log, "%d %d sig=%s %s\n", *count, status, names[v], evt);
    fflush(log);
    char resp[128];
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                     status);
    if (write(c, resp, (size_t)n) < 0)
        return;
}

int main(int argc, char **argv)
{
    int port = 0, fail = 0;
    const char *secret_path = NULL, *log_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--fail") == 0)
            fail = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--secret-file") == 0)
            secret_path = argv[i + 1];
        else if (strcmp(argv[i], "--log") == 0)
            log_path = argv[i + 1];
    }
    if (port <= 0 || secret_path == NULL || log_path == NULL || sodium_init() < 0) {
        fputs("usage: hookrecv --port P --secret-file F --log FILE [--fail N]\n", stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    FILE *log = fopen(log_path, "a");
    int s = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (log == NULL || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
        perror("hookrecv");
        return 1;
    }
    int count = 0;
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        serve(c, log, secret_path, &count, fail);
        close(c);
    }
}
