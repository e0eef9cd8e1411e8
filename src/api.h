/*
 * api.h - the routes of the HTTP API (SPEC §5), independent of the HTTP
 * library: a request's method, path and query come in, a status, a JSON
 * body and the headers to set go out. http.c carries them over the wire.
 *
 * Every answer is read from one store view: a committed batch, never half
 * of one.
 */
#ifndef WS_API_H
#define WS_API_H

#include <stddef.h>
#include <stdint.h>

#include "json_out.h"
#include "store.h"

/* Returns 1 when the service is ready, else 0 with a reason sentence
 * copied into why[0..cap). Called from any HTTP thread. */
typedef int (*ws_ready_fn)(void *arg, char *why, size_t cap);

/* What the routes need; owned by the caller, read-only while serving. */
typedef struct ws_api {
    ws_store *store;
    ws_ready_fn ready;      /* NULL: ready whenever the store is open */
    void *ready_arg;
} ws_api;

typedef struct ws_reply {
    unsigned status;
    const char *allow;      /* value of an Allow header, or NULL */
    const char *www_authenticate;   /* value of WWW-Authenticate, or NULL */
    ws_buf body;            /* JSON (or Prometheus text for /metrics) */
    const char *content_type;
    const char *route;      /* the route's name, for metrics */
} ws_reply;

/* Answers one request. `path` is the raw (still percent-encoded) path
 * without the query; `currency` the raw value of ?currency= or NULL;
 * `authorized` 0 when authentication is on and the request did not carry
 * the token: then every route but /healthz and /readyz answers 401.
 * Fills *out (the caller frees out->body with ws_buf_free). Any thread. */
void ws_api_handle(const ws_api *api, const char *method, const char *path,
                   const char *currency, int authorized, ws_reply *out);

/* Records one sample of the stored outcome totals for the dashboard's
 * history (ws_metrics_sample), taken at Unix time `time_ms`. Any thread. */
void ws_api_sample(const ws_api *api, int64_t time_ms);

/* Strict percent-decoding of s[0..n) into out[0..cap): every '%' must be
 * followed by two hex digits. Returns 0 with *len set, or -1 (malformed,
 * or longer than cap). */
int ws_api_percent_decode(const char *s, size_t n, char *out, size_t cap,
                          size_t *len);

#endif
