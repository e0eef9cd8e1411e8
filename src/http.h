/*
 * http.h - the HTTP server: libmicrohttpd's thread pool in front of the
 * routes of api.c.
 */
#ifndef WS_HTTP_H
#define WS_HTTP_H

#include "api.h"

/* Room for an error sentence from ws_http_start. */
#define WS_HTTP_ERR_MAX 256

typedef struct ws_http ws_http;

/* Starts serving `api` on listen ("HOST:PORT"; port 0 picks a free one)
 * with `threads` threads. `api` must outlive the server. Returns 0, or
 * WS_ERR_USAGE (bad address) / WS_ERR_IO (cannot listen) with a sentence
 * in err[0..WS_HTTP_ERR_MAX). */
int ws_http_start(const char *listen, unsigned threads, const ws_api *api,
                  ws_http **out, char *err);

/* The port actually listened on. */
unsigned ws_http_port(const ws_http *h);

/* Stops the server and waits for its threads. NULL is accepted. */
void ws_http_stop(ws_http *h);

#endif
