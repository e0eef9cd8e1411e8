/*
 * http.c - libmicrohttpd glue.
 *
 * The response is queued on the handler's second call for a request, not
 * its first: libmicrohttpd 0.9.75 otherwise answers `Connection: close`
 * and keep-alive throughput drops about fivefold (DESIGN §1).
 */
#include "http.h"

#include "metrics.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

struct ws_http {
    struct MHD_Daemon *daemon;
    const ws_api *api;
    unsigned port;
    pthread_t sampler;
    int sampling;               /* the sampler thread was started */
    pthread_mutex_t lock;       /* guards stopping, with wake */
    pthread_cond_t wake;
    int stopping;
};

/* A marker for "first call seen" in *req_cls. */
static int request_started;

/* Paths reach the routes still percent-encoded: api.c decodes strictly. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_size, void **req_cls)
{
    ws_http *h = cls;
    struct MHD_Response *resp;
    ws_reply reply;
    enum MHD_Result ret;

    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) {
        *req_cls = &request_started;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;   /* request bodies are ignored */
        return MHD_YES;
    }
    ws_api_handle(h->api, method, url,
                  MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                              "currency"),
                  &reply);
    ws_metrics_http(reply.route, reply.status);
    resp = MHD_create_response_from_buffer(reply.body.len,
                                           reply.body.p ? reply.body.p : "",
                                           MHD_RESPMEM_MUST_COPY);
    ws_buf_free(&reply.body);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            reply.content_type);
    if (reply.allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply.allow);
    ret = MHD_queue_response(conn, reply.status, resp);
    MHD_destroy_response(resp);
    return ret;
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

int ws_http_start(const char *listen, unsigned threads, const ws_api *api,
                  ws_http **out, char *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    const union MHD_DaemonInfo *info;
    ws_http *h;
    int e;

    *out = NULL;
    e = parse_listen(listen, &ss, &len, err);
    if (e != WS_OK)
        return e;
    h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, WS_HTTP_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    h->api = api;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
            (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handle, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, threads ? threads : 1,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, WS_HTTP_ERR_MAX,
                 "cannot listen on %s (address in use or not available?)",
                 listen);
        ws_http_stop(h);
        return WS_ERR_IO;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    h->sampling = pthread_create(&h->sampler, NULL, sample_loop, h) == 0;
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
    if (h->sampling) {
        pthread_mutex_lock(&h->lock);
        h->stopping = 1;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->sampler, NULL);
    }
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
