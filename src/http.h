/*
 * http.h - the HTTP server: libmicrohttpd's thread pool in front of the
 * routes of api.c, with its limits (connections, per-address connections,
 * idle timeout, per-connection memory), optional HTTPS (libmicrohttpd's
 * GnuTLS support) and optional bearer-token authentication.
 *
 * The server owns what it reads from the certificate, key and token files;
 * the routes only learn whether a request is authorized.
 */
#ifndef WS_HTTP_H
#define WS_HTTP_H

#include "api.h"

/* Room for an error sentence from ws_http_start. */
#define WS_HTTP_ERR_MAX 256

/* Bytes of request line and headers one connection may hold: a longer
 * request is answered 414 (URI) or 431 (headers) and closed. */
#define WS_HTTP_CONN_MEMORY (32 * 1024)

/* Largest certificate, key or token file read. */
#define WS_HTTP_FILE_MAX (1024 * 1024)

typedef struct ws_http ws_http;

typedef struct ws_http_opts {
    const char *listen;         /* "HOST:PORT"; port 0 picks a free one */
    unsigned threads;
    unsigned max_connections;   /* beyond it new connections wait */
    unsigned max_per_ip;        /* connections from one address; 0: any */
    unsigned timeout_s;         /* idle connections are closed after it */
    const char *token_file;     /* "" or NULL: no authentication */
    const char *tls_cert;       /* PEM files; both "" / NULL: plain HTTP */
    const char *tls_key;
} ws_http_opts;

/* Starts serving `api` as `o` says. `api` must outlive the server.
 * Returns 0, or WS_ERR_USAGE (bad address, unreadable or empty token,
 * certificate or key file, a certificate without a key, a key pair the TLS
 * library refuses, TLS not built in) / WS_ERR_IO (cannot listen) with a
 * sentence in err[0..WS_HTTP_ERR_MAX). */
int ws_http_start(const ws_http_opts *o, const ws_api *api, ws_http **out,
                  char *err);

/* The port actually listened on. */
unsigned ws_http_port(const ws_http *h);

/* Stops the server and waits for its threads. NULL is accepted. */
void ws_http_stop(ws_http *h);

/* The bearer token requests must carry (NULL: none): a group's
 * instances send it to each other. */
const char *ws_http_token(const ws_http *h);

#endif
