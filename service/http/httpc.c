/*
 * httpc.c - libcurl multi interface on one dedicated thread (see httpc.h for
 * the design and for what we cannot wipe).
 */
#include "tokend/http/httpc.h"
#include "tokend/core/secmem.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 1000
#define UPLOAD_BUFFER 16384L /* CURLOPT_UPLOAD_BUFFERSIZE's smallest */
#define SLAB_SIZE (TOK_HTTPC_BODY_MAX + TOK_HTTPC_HEADERS_MAX + TOK_HTTPC_RESPONSE_START)

_Static_assert(TOK_HTTPC_WHY_MAX >= CURL_ERROR_SIZE, "CURLOPT_ERRORBUFFER needs CURL_ERROR_SIZE");

struct tok_httpc {
    CURLM *multi;
    pthread_t tid;
    pthread_mutex_t lock;
    struct tok_httpc_request *pending_head, *pending_tail; /* under lock */
    bool stop;                                            /* under lock */
    char ca_file[1024];
    long connect_timeout_ms, timeout_ms;
    /* curl thread only */
    struct tok_httpc_request *running;
    unsigned nrunning, max_inflight;
    struct tok_httpc_request *waiting_head, *waiting_tail; /* beyond max_inflight, in order */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *tok_httpc_result_name(enum tok_httpc_result r)
{
    switch (r) {
    case TOK_HTTPC_OK:
        return "ok";
    case TOK_HTTPC_TIMEOUT:
        return "timeout";
    case TOK_HTTPC_CONNECT:
        return "connect";
    case TOK_HTTPC_TLS:
        return "tls";
    case TOK_HTTPC_TOO_LARGE:
        return "too_large";
    case TOK_HTTPC_OTHER:
        return "other";
    default:
        return "unknown";
    }
}

enum tok_httpc_result tok_httpc_classify(int curl_code, bool too_large)
{
    switch ((CURLcode)curl_code) {
    case CURLE_OK:
        return TOK_HTTPC_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return TOK_HTTPC_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return TOK_HTTPC_CONNECT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
        return TOK_HTTPC_TLS;
    case CURLE_WRITE_ERROR:
        return too_large ? TOK_HTTPC_TOO_LARGE : TOK_HTTPC_OTHER;
    default:
        return TOK_HTTPC_OTHER;
    }
}

/* ---- requests ------------------------------------------------------------------------- */

/* A borrowed slice of the request's secret block (wiped by us, released with it). */
static void slab_slice(struct tok_buf *b, uint8_t *mem, uint32_t cap)
{
    tok_buf_init(b, mem, cap);
    b->secret = true;
}

/*
 * One secmem block holds body, headers and the first response buffer: SLAB_SIZE is sized
 * so that with secmem's header it is one 8 KiB class, recycled per thread (secmem.h).
 */
_Static_assert(SLAB_SIZE + 16u <= 8192u, "a request's buffers fit one 8 KiB secmem block");

tok_status tok_httpc_request_new(struct tok_httpc_request **out)
{
    TOK_ENSURE(out != NULL, TOK_ERR_INTERNAL);
    struct tok_httpc_request *r = calloc(1, sizeof *r);
    TOK_ENSURE(r != NULL, TOK_ERR_NOMEM);
    r->slab = tok_secmem_alloc(SLAB_SIZE); /* zeroed */
    if (r->slab == NULL) {
        free(r);
        return TOK_ERR_NOMEM;
    }
    slab_slice(&r->body, r->slab, TOK_HTTPC_BODY_MAX);
    slab_slice(&r->headers, r->slab + TOK_HTTPC_BODY_MAX, TOK_HTTPC_HEADERS_MAX);
    slab_slice(&r->response, r->slab + TOK_HTTPC_BODY_MAX + TOK_HTTPC_HEADERS_MAX,
               TOK_HTTPC_RESPONSE_START);
    *out = r;
    return TOK_OK;
}

void tok_httpc_request_free(struct tok_httpc_request **req)
{
    if (req == NULL || *req == NULL)
        return;
    struct tok_httpc_request *r = *req;
    *req = NULL;
    if (r->response.owned)
        tok_buf_wipe(&r->response); /* grew past the slab: a block of its own */
    tok_secmem_free(r->slab);       /* wipes body, headers and the first response buffer */
    sodium_memzero(r, sizeof *r);   /* the URL's path may hold a gateway reference */
    free(r);
}

static bool url_part_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '#')
            return false;
    return true;
}

tok_status tok_httpc_request_url(struct tok_httpc_request *req, const char *base, const char *path)
{
    TOK_ENSURE(req != NULL && base != NULL && path != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(strncmp(base, "https://", 8) == 0 && base[8] != '\0' && base[8] != '/',
               TOK_ERR_INPUT);
    TOK_ENSURE(path[0] == '/' && url_part_ok(base) && url_part_ok(path), TOK_ERR_INPUT);
    size_t blen = strlen(base);
    while (blen > 8 && base[blen - 1] == '/')
        blen--;
    struct tok_buf b;
    tok_buf_init(&b, req->url, sizeof req->url);
    const char *s = NULL;
    TOK_GUARD(tok_buf_write(&b, base, blen));
    TOK_GUARD(tok_buf_puts(&b, path));
    TOK_GUARD(tok_buf_cstr(&b, &s));
    return TOK_OK;
}

static bool header_part_ok(struct tok_slice s, bool name)
{
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '\r' || c == '\n' || c == '\0' || (name && (c == ':' || c <= 0x20)))
            return false;
    }
    return true;
}

tok_status tok_httpc_request_header(struct tok_httpc_request *req, const char *name,
                                    struct tok_slice value)
{
    TOK_ENSURE(req != NULL && name != NULL && req->headers.data != NULL, TOK_ERR_INTERNAL);
    struct tok_slice n = tok_slice_str(name);
    TOK_ENSURE(n.len > 0 && header_part_ok(n, true) && header_part_ok(value, false),
               TOK_ERR_INPUT);
    /* all or nothing: check the room first (name, ": ", value, NUL) */
    size_t need = n.len + 2 + value.len + 1;
    TOK_ENSURE(need <= (size_t)(req->headers.cap - req->headers.len), TOK_ERR_BOUNDS);
    TOK_GUARD(tok_buf_write(&req->headers, n.ptr, n.len));
    TOK_GUARD(tok_buf_write(&req->headers, ": ", 2));
    TOK_GUARD(tok_buf_write(&req->headers, value.ptr, value.len));
    TOK_GUARD(tok_buf_putc(&req->headers, '\0'));
    return TOK_OK;
}

/* ---- the curl thread ------------------------------------------------------------------ */

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct tok_httpc_request *r = userdata;
    size_t n = size * nmemb;
    if (n == 0)
        return 0;
    if (n > TOK_HTTPC_RESPONSE_MAX || r->response.len > TOK_HTTPC_RESPONSE_MAX - n) {
        r->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (r->response.data == NULL &&
        tok_buf_alloc(&r->response, TOK_HTTPC_RESPONSE_START, true) != TOK_OK)
        return 0;
    if (n > (size_t)(r->response.cap - r->response.len)) {
        uint32_t cap = r->response.cap;
        while (n > (size_t)(cap - r->response.len))
            cap *= 2;
        if (cap > TOK_HTTPC_RESPONSE_MAX)
            cap = TOK_HTTPC_RESPONSE_MAX;
        struct tok_buf bigger;
        if (tok_buf_alloc(&bigger, cap, true) != TOK_OK)
            return 0;
        if (tok_buf_write(&bigger, r->response.data, r->response.len) != TOK_OK) {
            tok_buf_wipe(&bigger);
            return 0;
        }
        tok_buf_wipe(&r->response); /* the slab's slice is zeroed, not freed */
        r->response = bigger;
    }
    if (tok_buf_write(&r->response, ptr, n) != TOK_OK)
        return 0;
    return n;
}

/* Wipes the copies libcurl's slist made of our header lines, then frees the list. */
static void slist_wipe_free(struct curl_slist *l)
{
    for (struct curl_slist *s = l; s != NULL; s = s->next)
        if (s->data != NULL)
            sodium_memzero(s->data, strlen(s->data));
    curl_slist_free_all(l);
}

static void running_remove(struct tok_httpc *c, struct tok_httpc_request *r)
{
    for (struct tok_httpc_request **p = &c->running; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            r->next = NULL;
            return;
        }
    }
}

static void finish_transfer(struct tok_httpc_request *r, CURLcode rc)
{
    CURL *e = r->easy;
    r->result = tok_httpc_classify((int)rc, r->too_large);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    long sent = 0;
    if (curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent > 0)
        r->sent = true;
    if (r->result != TOK_HTTPC_OK && r->why[0] == '\0')
        snprintf(r->why, sizeof r->why, "%s", curl_easy_strerror(rc));
    if (r->result != TOK_HTTPC_OK)
        tok_buf_reset(&r->response);
    slist_wipe_free(r->slist);
    r->slist = NULL;
    curl_easy_cleanup(e);
    r->easy = NULL;
    /* the request body (maybe a PAN) is not needed any more */
    tok_buf_reset(&r->body);
    tok_buf_reset(&r->headers);
}

static void reply(struct tok_httpc_request *r)
{
    h2o_multithread_send_message(r->reply_to, &r->super);
}

static CURLcode setup_easy(struct tok_httpc *c, struct tok_httpc_request *r)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return CURLE_OUT_OF_MEMORY;
    r->easy = e;
    struct curl_slist *l = NULL;
    /* no "Expect: 100-continue" round trip; JSON/form content types come from the caller */
    struct curl_slist *t = curl_slist_append(l, "Expect:");
    if (t == NULL)
        return CURLE_OUT_OF_MEMORY;
    l = t;
    for (uint32_t off = 0; off < r->headers.len;) {
        const char *line = (const char *)r->headers.data + off;
        size_t n = strnlen(line, r->headers.len - off);
        t = curl_slist_append(l, line);
        if (t == NULL) {
            slist_wipe_free(l);
            return CURLE_OUT_OF_MEMORY;
        }
        l = t;
        off += (uint32_t)n + 1;
    }
    r->slist = l;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, r->url);
    SET(CURLOPT_PROTOCOLS_STR, "https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->ca_file[0] != '\0')
        SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_PROXY, ""); /* never through an environment proxy */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SET(CURLOPT_PIPEWAIT, 1L); /* prefer multiplexing on an HTTP/2 connection being set up */
    /*
     * libcurl mallocs a 64 KiB upload buffer per transfer (over HTTP/2 the body is read
     * through it): 64 MB with 1,000 calls in flight for bodies < 1 kB. 16 KiB is its minimum.
     */
    SET(CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUFFER);
    /* gateway answers are 0.5-3 kB; a longer one is read in several pieces */
    SET(CURLOPT_BUFFERSIZE, TOK_HTTPC_DOWNLOAD_BUFFER);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_USERAGENT, "tokend/" TOKEND_VERSION);
    SET(CURLOPT_HTTPHEADER, l);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_ERRORBUFFER, r->why);
    SET(CURLOPT_PRIVATE, r);
    if (r->del) {
        SET(CURLOPT_HTTPGET, 1L);
        SET(CURLOPT_CUSTOMREQUEST, "DELETE");
    } else if (r->post) {
        SET(CURLOPT_POST, 1L);
        /* POSTFIELDS, not COPYPOSTFIELDS: no copy of ours (libcurl's own: see httpc.h) */
        SET(CURLOPT_POSTFIELDS, r->body.len > 0 ? (const char *)r->body.data : "");
        SET(CURLOPT_POSTFIELDSIZE, (long)r->body.len);
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }
#undef SET
    return rc;
}

/*
 * Starts queued requests while fewer than max_inflight run: each transfer costs libcurl
 * ~30 KiB (its upload buffer alone is 16 KiB), so a burst of slow gateway calls is held
 * here, in order, at the cost of its request only. The timeout starts when it starts.
 */
static void start_pending(struct tok_httpc *c, struct tok_httpc_request *list)
{
    if (list != NULL) {
        if (c->waiting_tail != NULL)
            c->waiting_tail->next = list;
        else
            c->waiting_head = list;
        while (list->next != NULL)
            list = list->next;
        c->waiting_tail = list;
    }
    while (c->waiting_head != NULL && c->nrunning < c->max_inflight) {
        struct tok_httpc_request *r = c->waiting_head;
        c->waiting_head = r->next;
        if (c->waiting_head == NULL)
            c->waiting_tail = NULL;
        r->next = NULL;
        r->why[0] = '\0';
        CURLcode rc = setup_easy(c, r);
        if (rc == CURLE_OK && curl_multi_add_handle(c->multi, r->easy) == CURLM_OK) {
            r->next = c->running;
            c->running = r;
            c->nrunning++;
            continue;
        }
        if (r->easy == NULL)
            r->easy = curl_easy_init(); /* finish_transfer cleans it up */
        if (r->easy == NULL) {
            r->result = TOK_HTTPC_OTHER;
            snprintf(r->why, sizeof r->why, "out of memory");
            slist_wipe_free(r->slist);
            r->slist = NULL;
            tok_buf_reset(&r->body);
            tok_buf_reset(&r->headers);
        } else {
            finish_transfer(r, rc != CURLE_OK ? rc : CURLE_FAILED_INIT);
        }
        reply(r);
    }
}

static void collect_done(struct tok_httpc *c)
{
    int left = 0;
    CURLMsg *m;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        struct tok_httpc_request *r = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(c->multi, e);
        if (r == NULL) {
            curl_easy_cleanup(e);
            continue;
        }
        running_remove(c, r);
        c->nrunning--;
        finish_transfer(r, rc);
        reply(r);
    }
}

static void *curl_main(void *arg)
{
    struct tok_httpc *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        bool stop = c->stop;
        struct tok_httpc_request *list = c->pending_head;
        c->pending_head = c->pending_tail = NULL;
        pthread_mutex_unlock(&c->lock);
        if (stop) {
            /* the loops have stopped: nobody would run `done`; release what libcurl holds */
            if (c->waiting_tail != NULL) {
                c->waiting_tail->next = list;
                list = c->waiting_head;
                c->waiting_head = c->waiting_tail = NULL;
            }
            for (struct tok_httpc_request *r = list; r != NULL; r = r->next) {
                tok_buf_reset(&r->body);
                tok_buf_reset(&r->headers);
            }
            break;
        }
        start_pending(c, list);
        int running = 0;
        curl_multi_perform(c->multi, &running);
        collect_done(c);
        curl_multi_poll(c->multi, NULL, 0, POLL_MS, NULL);
    }
    return NULL;
}

tok_status tok_httpc_new(const struct tok_httpc_config *cfg, struct tok_httpc **out)
{
    TOK_ENSURE(cfg != NULL && out != NULL, TOK_ERR_INTERNAL);
    unsigned ct = cfg->connect_timeout_ms != 0 ? cfg->connect_timeout_ms
                                                : TOK_HTTPC_CONNECT_TIMEOUT_DEFAULT_MS;
    unsigned tt = cfg->timeout_ms != 0 ? cfg->timeout_ms : TOK_HTTPC_TIMEOUT_DEFAULT_MS;
    unsigned mc = cfg->max_connections != 0 ? cfg->max_connections
                                             : TOK_HTTPC_MAX_CONNECTIONS_DEFAULT;
    TOK_ENSURE(ct <= TOK_HTTPC_TIMEOUT_MAX_MS && tt <= TOK_HTTPC_TIMEOUT_MAX_MS, TOK_ERR_INPUT);
    unsigned mi = cfg->max_inflight != 0 ? cfg->max_inflight : TOK_HTTPC_MAX_INFLIGHT_DEFAULT;
    TOK_ENSURE(mc <= TOK_HTTPC_MAX_CONNECTIONS_MAX && mi <= TOK_HTTPC_MAX_INFLIGHT_MAX,
               TOK_ERR_INPUT);
    pthread_once(&global_once, global_init);
    TOK_ENSURE(global_rc == CURLE_OK, TOK_ERR_INTERNAL);
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    TOK_ENSURE(vi != NULL && (vi->features & CURL_VERSION_SSL) != 0, TOK_ERR_INTERNAL);
    struct tok_httpc *c = calloc(1, sizeof *c);
    TOK_ENSURE(c != NULL, TOK_ERR_NOMEM);
    if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0') {
        FILE *f = fopen(cfg->ca_file, "r");
        if (f == NULL || strlen(cfg->ca_file) >= sizeof c->ca_file) {
            if (f != NULL)
                fclose(f);
            free(c);
            return TOK_ERR_INPUT;
        }
        fclose(f);
        snprintf(c->ca_file, sizeof c->ca_file, "%s", cfg->ca_file);
    }
    c->connect_timeout_ms = (long)ct;
    c->max_inflight = mi;
    c->timeout_ms = (long)tt;
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        free(c);
        return TOK_ERR_NOMEM;
    }
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)mc);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)TOK_HTTPC_STREAMS);
    pthread_mutex_init(&c->lock, NULL);
    if (pthread_create(&c->tid, NULL, curl_main, c) != 0) {
        pthread_mutex_destroy(&c->lock);
        curl_multi_cleanup(c->multi);
        free(c);
        return TOK_ERR_INTERNAL;
    }
    *out = c;
    return TOK_OK;
}

void tok_httpc_free(struct tok_httpc **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    struct tok_httpc *c = *cp;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_mutex_unlock(&c->lock);
    curl_multi_wakeup(c->multi);
    pthread_join(c->tid, NULL);
    /* transfers still running: detach them from libcurl and wipe what we own */
    while (c->running != NULL) {
        struct tok_httpc_request *r = c->running;
        c->running = r->next;
        r->next = NULL;
        curl_multi_remove_handle(c->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        slist_wipe_free(r->slist);
        r->slist = NULL;
        tok_buf_reset(&r->body);
        tok_buf_reset(&r->headers);
        tok_buf_reset(&r->response);
    }
    curl_multi_cleanup(c->multi);
    pthread_mutex_destroy(&c->lock);
    free(c);
    *cp = NULL;
}

void tok_httpc_submit(struct tok_httpc *c, struct tok_httpc_request *req)
{
    req->next = NULL;
    req->result = TOK_HTTPC_OTHER;
    req->status = 0;
    req->sent = false;
    req->too_large = false;
    tok_buf_reset(&req->response);
    pthread_mutex_lock(&c->lock);
    bool stopping = c->stop;
    if (!stopping) {
        if (c->pending_tail != NULL)
            c->pending_tail->next = req;
        else
            c->pending_head = req;
        c->pending_tail = req;
    }
    pthread_mutex_unlock(&c->lock);
    if (stopping) {
        snprintf(req->why, sizeof req->why, "the HTTP client is stopping");
        reply(req);
        return;
    }
    curl_multi_wakeup(c->multi);
}

void tok_httpc_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct tok_httpc_request *r = (struct tok_httpc_request *)m;
        r->done(r);
    }
}
