/*
 * http.c - libmicrohttpd glue.
 *
 * The response is queued on the handler's second call for a request, not
 * its first: libmicrohttpd 0.9.75 otherwise answers `Connection: close`
 * and keep-alive throughput drops about fivefold (DESIGN §1).
 *
 * A read that must wait for its min_offset (api.h) is suspended
 * (MHD_suspend_connection) so that it holds no thread; the resumer thread
 * resumes the waiting requests once a batch of this process has committed
 * (checked every WS_HTTP_RECHECK_MS), or after WS_HTTP_RECHECK_MAX_MS
 * (`serve`, whose writer is another process; deadlines), and
 * libmicrohttpd calls the handler again, which answers or suspends
 * again.
 *
 * Hostile clients are bounded by libmicrohttpd itself: a connection limit
 * (over it, new connections wait in the listen queue), an optional limit
 * per client address (over it: closed at once), an idle timeout, and
 * WS_HTTP_CONN_MEMORY bytes per connection for the request line and
 * headers (over it: 414 or 431).
 */
#include "http.h"

#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

struct ws_http {
    struct MHD_Daemon *daemon;
    const ws_api *api;
    unsigned port;
    char *token;            /* NULL: no authentication */
    size_t token_len;
    char *cert, *key;       /* PEM, NUL-terminated; NULL: plain HTTP */
    size_t cert_len, key_len;
    atomic_int starting;    /* libmicrohttpd's messages go to start_err */
    char start_err[WS_HTTP_ERR_MAX];
    pthread_t sampler;
    int sampling;           /* the sampler thread was started */
    pthread_mutex_t lock;   /* guards stopping and the waiting list */
    pthread_cond_t wake;
    int stopping;
    pthread_t resumer;
    int resuming;           /* the resumer thread was started */
    pthread_cond_t wait_cond;   /* a request was suspended */
    struct MHD_Connection **waiting;    /* suspended, to resume */
    size_t nwaiting, waiting_cap;
};

/* Between looks for a commit while requests wait, and at most between
 * checks of their min_offset. */
#define WS_HTTP_RECHECK_MS 1
#define WS_HTTP_RECHECK_MAX_MS 10

/* A marker for "first call seen" in *req_cls. */
static int request_started;

/* *req_cls of a request that waits for its min_offset. */
struct waiter {
    int64_t arrived_ms;
};

/* Paths reach the routes still percent-encoded: api.c decodes strictly. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* libmicrohttpd's own messages: kept while the daemon starts (they say
 * why a certificate was refused), logged at debug level afterwards (a
 * client's malformed request or failed TLS handshake). */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    ws_http *h = cls;
    char line[WS_HTTP_ERR_MAX];
    size_t n;

    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (atomic_load(&h->starting)) {
        if (!h->start_err[0])
            snprintf(h->start_err, sizeof h->start_err, "%s", line);
        return;
    }
    ws_log(WS_LOG_DEBUG, "http", "%s", line);
}

/* 1 when no token is configured or the request carries
 * `Authorization: Bearer <token>`. The comparison takes the same time
 * whatever the bytes of the token sent. */
static int authorized(const ws_http *h, struct MHD_Connection *conn)
{
    const char *v;
    size_t i, n;
    unsigned diff;

    if (!h->token)
        return 1;
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v || strncasecmp(v, "Bearer ", 7) != 0)
        return 0;
    for (v += 7; *v == ' '; v++)
        ;
    n = strlen(v);
    diff = n != h->token_len;
    for (i = 0; i < h->token_len; i++)
        diff |= (unsigned char)(h->token[i] ^ (i < n ? v[i] : 0));
    return diff == 0;
}

/* 1 when the request announces a body. */
static int has_body(struct MHD_Connection *conn)
{
    const char *len = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

    return (len && strcmp(len, "0") != 0) ||
           MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* Suspends a request that waits for its min_offset; 0, or -1 when it
 * cannot wait (stopping, out of memory): answer it now. */
static int suspend(ws_http *h, struct MHD_Connection *conn, void **req_cls,
                   int64_t arrived)
{
    struct waiter *w = *req_cls != &request_started ? *req_cls : NULL;

    pthread_mutex_lock(&h->lock);
    if (h->stopping || !h->resuming) {
        pthread_mutex_unlock(&h->lock);
        return -1;
    }
    if (h->nwaiting == h->waiting_cap) {
        size_t cap = h->waiting_cap ? h->waiting_cap * 2 : 64;
        struct MHD_Connection **p = realloc(h->waiting, cap * sizeof *p);

        if (!p) {
            pthread_mutex_unlock(&h->lock);
            return -1;
        }
        h->waiting = p;
        h->waiting_cap = cap;
    }
    if (!w && !(w = malloc(sizeof *w))) {
        pthread_mutex_unlock(&h->lock);
        return -1;
    }
    w->arrived_ms = arrived;
    *req_cls = w;
    MHD_suspend_connection(conn);
    h->waiting[h->nwaiting++] = conn;
    pthread_cond_signal(&h->wait_cond);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_size, void **req_cls)
{
    ws_http *h = cls;
    struct MHD_Response *resp;
    ws_reply reply;
    ws_query q;
    enum MHD_Result ret;

    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) {
        *req_cls = &request_started;
        /* A read without a body waits for the second call (see the top);
         * anything else (another method, or a body announced) is answered
         * now, and libmicrohttpd closes the connection after the answer
         * instead of reading a body that may never end. */
        if (!has_body(conn) &&
            (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
            return MHD_YES;
    } else if (*upload_size) {
        *upload_size = 0;   /* request bodies are ignored */
        return MHD_YES;
    }
#define ARG(name) MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name)
    q.currency = ARG("currency");
    q.limit = ARG("limit");
    q.before = ARG("before");
    q.min_offset = ARG("min_offset");
    q.wait_ms = ARG("wait_ms");
    q.scope = ARG("scope");
#undef ARG
    q.arrived_ms = *req_cls != &request_started
                       ? ((struct waiter *)*req_cls)->arrived_ms
                       : ws_clock_ms();
    for (;;) {
        ws_api_handle(h->api, method, url, &q, authorized(h, conn), &reply);
        if (!reply.wait)
            break;
        ws_buf_free(&reply.body);
        ws_buf_free(&reply.offsets);
        if (suspend(h, conn, req_cls, q.arrived_ms) == 0)
            return MHD_YES;
        q.arrived_ms = INT64_MIN / 2;   /* cannot wait: answer now */
    }
    ws_metrics_http(reply.route, reply.status);
    resp = MHD_create_response_from_buffer(reply.body.len,
                                           reply.body.p ? reply.body.p : "",
                                           MHD_RESPMEM_MUST_COPY);
    ws_buf_free(&reply.body);
    if (!resp) {
        ws_buf_free(&reply.offsets);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            reply.content_type);
    if (reply.allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply.allow);
    if (reply.www_authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                reply.www_authenticate);
    if (reply.offsets.len && !reply.offsets.oom)
        MHD_add_response_header(resp, "Walletstream-Offsets",
                                reply.offsets.p);
    ws_buf_free(&reply.offsets);
    ret = MHD_queue_response(conn, reply.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A request is finished: its waiter, if it waited, is freed. */
static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    if (*req_cls && *req_cls != &request_started)
        free(*req_cls);
    *req_cls = NULL;
}

/* The resumer thread: while requests wait, resumes them all every
 * WS_HTTP_RECHECK_MS (each is checked again by its handler); on stop,
 * resumes the last ones (libmicrohttpd must not stop with suspended
 * connections) and returns. */
static void *resume_loop(void *arg)
{
    ws_http *h = arg;
    struct MHD_Connection **batch = NULL;
    size_t n, cap = 0, i;
    uint64_t seen = ws_api_commits(h->api), now_commits;
    int64_t last = ws_clock_ms();

    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->stopping && h->nwaiting == 0)
            pthread_cond_wait(&h->wait_cond, &h->lock);
        now_commits = ws_api_commits(h->api);
        if (!h->stopping && now_commits == seen &&
            ws_clock_ms() - last < WS_HTTP_RECHECK_MAX_MS) {
            struct timespec until;

            pthread_mutex_unlock(&h->lock);
            until.tv_sec = 0;
            until.tv_nsec = WS_HTTP_RECHECK_MS * 1000000L;
            nanosleep(&until, NULL);
            pthread_mutex_lock(&h->lock);
            continue;
        }
        seen = now_commits;
        last = ws_clock_ms();
        if (h->nwaiting > cap) {
            struct MHD_Connection **p =
                realloc(batch, h->nwaiting * sizeof *p);

            if (p) {
                batch = p;
                cap = h->nwaiting;
            }
        }
        n = h->nwaiting < cap ? h->nwaiting : cap;
        if (n)
            memcpy(batch, h->waiting + (h->nwaiting - n), n * sizeof *batch);
        h->nwaiting -= n;
        pthread_mutex_unlock(&h->lock);
        for (i = 0; i < n; i++)
            MHD_resume_connection(batch[i]);
        pthread_mutex_lock(&h->lock);
        if (h->stopping && h->nwaiting == 0)
            break;
    }
    pthread_mutex_unlock(&h->lock);
    free(batch);
    return NULL;
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss,
                        socklen_t *len, char *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints, *res;
    size_t hn;
    int rc;

    if (!colon || colon[1] == '\0') {
        snprintf(err, WS_HTTP_ERR_MAX, "--listen wants HOST:PORT, got \"%s\"",
                 listen);
        return WS_ERR_USAGE;
    }
    hn = (size_t)(colon - listen);
    if (hn >= sizeof host) {
        snprintf(err, WS_HTTP_ERR_MAX, "--listen host is too long");
        return WS_ERR_USAGE;
    }
    memcpy(host, listen, hn);
    host[hn] = '\0';
    /* [::1]:8000 */
    if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {
        memmove(host, host + 1, hn - 2);
        host[hn - 2] = '\0';
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(err, WS_HTTP_ERR_MAX, "--listen %s: %s", listen,
                 gai_strerror(rc));
        return WS_ERR_USAGE;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return WS_OK;
}

/* Reads a whole file of at most WS_HTTP_FILE_MAX bytes into a
 * NUL-terminated buffer (*out, freed by the caller). */
static int read_file(const char *flag, const char *path, char **out,
                     size_t *len, char *err)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    *out = NULL;
    if (!f) {
        snprintf(err, WS_HTTP_ERR_MAX, "cannot read %s %s: %s", flag, path,
                 strerror(errno));
        return WS_ERR_USAGE;
    }
    buf = malloc(WS_HTTP_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, WS_HTTP_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    n = fread(buf, 1, WS_HTTP_FILE_MAX + 1, f);
    if (ferror(f) || n > WS_HTTP_FILE_MAX || n == 0) {
        snprintf(err, WS_HTTP_ERR_MAX, "cannot read %s %s: %s", flag, path,
                 ferror(f) ? strerror(errno)
                 : n ? "larger than 1 MiB" : "the file is empty");
        fclose(f);
        free(buf);
        return WS_ERR_USAGE;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return WS_OK;
}

const char *ws_http_token(const ws_http *h)
{
    return h->token;
}

/* The token: the file's one line, surrounding whitespace trimmed, of
 * visible ASCII characters (RFC 6750 b64token and more). */
static int load_token(ws_http *h, const char *path, char *err)
{
    size_t n, start = 0, i;
    int e = read_file("--api-token-file", path, &h->token, &n, err);

    if (e != WS_OK)
        return e;
    while (n > 0 && (h->token[n - 1] == '\n' || h->token[n - 1] == '\r' ||
                     h->token[n - 1] == ' ' || h->token[n - 1] == '\t'))
        n--;
    while (start < n && (h->token[start] == ' ' || h->token[start] == '\t'))
        start++;
    memmove(h->token, h->token + start, n - start);
    n -= start;
    h->token[n] = '\0';
    h->token_len = n;
    for (i = 0; i < n; i++)
        if (h->token[i] <= ' ' || h->token[i] > '~')
            break;
    if (n == 0 || i < n) {
        snprintf(err, WS_HTTP_ERR_MAX, "--api-token-file %s: %s", path,
                 n ? "the token must be one line of visible ASCII characters"
                   : "the file holds no token");
        return WS_ERR_USAGE;
    }
    return WS_OK;
}

static void free_secret(char *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

/* The sampler thread: one sample per WS_METRICS_SAMPLE_SECONDS until
 * ws_http_stop. */
static void *sample_loop(void *arg)
{
    ws_http *h = arg;
    struct timespec now, until;

    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        clock_gettime(CLOCK_REALTIME, &now);
        pthread_mutex_unlock(&h->lock);
        ws_api_sample(h->api, (int64_t)now.tv_sec * 1000 +
                                  now.tv_nsec / 1000000);
        pthread_mutex_lock(&h->lock);
        until = now;
        until.tv_sec += WS_METRICS_SAMPLE_SECONDS;
        while (!h->stopping &&
               pthread_cond_timedwait(&h->wake, &h->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static void free_http(ws_http *h)
{
    pthread_cond_destroy(&h->wait_cond);
    free(h->waiting);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free_secret(h->token, h->token_len);
    free_secret(h->key, h->key_len);
    free(h->cert);
    free(h);
}

/* Certificate and key, both or neither. */
static int load_tls(ws_http *h, const ws_http_opts *o, char *err)
{
    int cert = o->tls_cert && o->tls_cert[0], key = o->tls_key && o->tls_key[0];
    int e;

    if (!cert && !key)
        return WS_OK;
    if (!cert || !key) {
        snprintf(err, WS_HTTP_ERR_MAX, "HTTPS needs both --tls-cert and "
                                       "--tls-key");
        return WS_ERR_USAGE;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, WS_HTTP_ERR_MAX, "this libmicrohttpd is built without "
                                       "TLS: --tls-cert cannot be used");
        return WS_ERR_USAGE;
    }
    e = read_file("--tls-cert", o->tls_cert, &h->cert, &h->cert_len, err);
    if (e == WS_OK)
        e = read_file("--tls-key", o->tls_key, &h->key, &h->key_len, err);
    return e;
}

int ws_http_start(const ws_http_opts *o, const ws_api *api, ws_http **out,
                  char *err)
{
    struct sockaddr_storage ss;
    struct rlimit rl;
    socklen_t len;
    const union MHD_DaemonInfo *info;
    unsigned threads = o->threads ? o->threads : 1;
    ws_http *h;
    int e;

    *out = NULL;
    e = parse_listen(o->listen, &ss, &len, err);
    if (e != WS_OK)
        return e;
    if (o->max_connections < threads) {
        snprintf(err, WS_HTTP_ERR_MAX, "--max-connections (%u) must be at "
                 "least --http-threads (%u)", o->max_connections, threads);
        return WS_ERR_USAGE;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)o->max_connections + 64 > rl.rlim_cur)
        ws_log(WS_LOG_WARN, "http", "--max-connections %u is near the limit "
               "of %llu open files (ulimit -n): connections beyond it fail",
               o->max_connections, (unsigned long long)rl.rlim_cur);
    h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, WS_HTTP_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    h->api = api;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    pthread_cond_init(&h->wait_cond, NULL);
    e = load_tls(h, o, err);
    if (e == WS_OK && o->token_file && o->token_file[0])
        e = load_token(h, o->token_file, err);
    if (e != WS_OK) {
        free_http(h);
        return e;
    }
    atomic_store(&h->starting, 1);
    /* The TLS options come last: without a certificate the first of them
     * is MHD_OPTION_END. */
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
            MHD_ALLOW_SUSPEND_RESUME |
            (h->cert ? MHD_USE_TLS : 0) |
            (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handle, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
        MHD_OPTION_NOTIFY_COMPLETED, completed, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WS_HTTP_CONN_MEMORY,
        h->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, h->cert,
        MHD_OPTION_HTTPS_MEM_KEY, h->key,
        MHD_OPTION_END);
    atomic_store(&h->starting, 0);
    if (!h->daemon) {
        /* GnuTLS's refusal of the key pair names TLS or the certificate. */
        int tls = h->cert && (strstr(h->start_err, "TLS") ||
                              strstr(h->start_err, "certificate"));

        if (tls)
            snprintf(err, WS_HTTP_ERR_MAX, "cannot serve HTTPS: %s (are "
                     "--tls-cert and --tls-key a PEM certificate and its "
                     "key?)", h->start_err);
        else
            snprintf(err, WS_HTTP_ERR_MAX, "cannot listen on %s (address in "
                     "use or not available?)", o->listen);
        e = tls ? WS_ERR_USAGE : WS_ERR_IO;
        free_http(h);
        return e;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    h->sampling = pthread_create(&h->sampler, NULL, sample_loop, h) == 0;
    pthread_mutex_lock(&h->lock);
    h->resuming = pthread_create(&h->resumer, NULL, resume_loop, h) == 0;
    pthread_mutex_unlock(&h->lock);
    *out = h;
    return WS_OK;
}

unsigned ws_http_port(const ws_http *h)
{
    return h->port;
}

void ws_http_stop(ws_http *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    pthread_cond_signal(&h->wake);
    pthread_cond_signal(&h->wait_cond);
    pthread_mutex_unlock(&h->lock);
    if (h->sampling)
        pthread_join(h->sampler, NULL);
    if (h->resuming)
        pthread_join(h->resumer, NULL);
    MHD_stop_daemon(h->daemon);
    free_http(h);
}
