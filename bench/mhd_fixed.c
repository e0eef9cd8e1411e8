/*
 * mhd_fixed.c - the reference of the API benchmark (bench/api.sh): a
 * minimal libmicrohttpd server that answers every GET with the same fixed
 * JSON body, 200, Content-Type: application/json.
 *
 *   mhd_fixed PORT [THREADS]
 *
 * Same libmicrohttpd set-up as src/http.c: an internal polling thread
 * with epoll, a pool of THREADS threads (default 4, walletstream's
 * --http-threads default), 30 s connection timeout, and the response
 * queued on the handler's second call (queued on the first, libmicrohttpd
 * 0.9.75 answers `Connection: close`). What it leaves out is
 * walletstream's own work: routing, the LMDB read, JSON formatting,
 * metrics. Prints "listening on 127.0.0.1 port N" and runs until SIGINT or
 * SIGTERM.
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
 *        -o build/mhd_fixed bench/mhd_fixed.c $(pkg-config --cflags --libs libmicrohttpd)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

/* The size of a typical /balance answer. */
static const char body[] =
    "{\"wallet_id\":\"w123456\",\"balance\":-384.30,\"currency\":\"EUR\","
    "\"transactions\":11,\"last_event_time\":\"2024-03-26T12:22:37Z\"}";

static int started;

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_size, void **req_cls)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) {
        *req_cls = &started;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    resp = MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
                                           MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    sigset_t set;
    unsigned threads = 4;
    long port;
    int sig;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: mhd_fixed PORT [THREADS]\n");
        return 2;
    }
    port = strtol(argv[1], NULL, 10);
    if (argc == 3)
        threads = (unsigned)strtoul(argv[2], NULL, 10);
    if (port < 0 || port > 65535 || threads == 0) {
        fprintf(stderr, "mhd_fixed: bad port or thread count\n");
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0,
                         NULL, NULL, handle, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_THREAD_POOL_SIZE, threads,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                         MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_fixed: cannot listen on 127.0.0.1:%ld\n", port);
        return 1;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("listening on 127.0.0.1 port %u\n", info ? info->port : 0);
    fflush(stdout);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
