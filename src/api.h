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

/* The number of partitions of the input topic, 0 when not known. Any
 * thread. */
typedef int (*ws_partitions_fn)(void *arg);

struct ws_reply;

/* A group's instance (run --assignment group): the other instances hold
 * the rest of the state. */
typedef struct ws_api_group {
    void *arg;
    /* Answers the request `target` (a path with its raw query) from the
     * instance that owns partition p, which may take wait_ms (its
     * min_offset) to answer: 0 with out's status, body and offsets set,
     * or -1 when none could (out untouched). */
    int (*forward)(void *arg, int p, const char *target, unsigned wait_ms,
                   struct ws_reply *out);
    /* Calls fn(t, farg) for each top list (one per currency) of product
     * `raw_id` (percent-encoded) that the other instances hold, until
     * their answers cover every partition of `need` (bit p: partition
     * p; once more after the group is described again if they do not):
     * how many instances saw the product, or -1 when one did not answer
     * or `need` was not covered. fn may see a list twice. min_offset
     * (raw; NULL: none): each instance answers once its partitions hold
     * those offsets, waiting until deadline_ms (ws_clock_ms) at most;
     * -2 when one answered that they do not yet, with its 504 body in
     * *behind. */
    int (*peer_tops)(void *arg, const char *raw_id, const char *min_offset,
                     int64_t deadline_ms, uint64_t need,
                     int (*fn)(const ws_top *t, void *farg), void *farg,
                     ws_buf *behind);
    /* A product's min_offset (n input partitions and offsets): every
     * instance's repartitioner (this one's at once, the others' by a
     * thread of the hooks' own: no HTTP thread waits for them) is asked
     * for marks of those partitions (repartition.h); asked again for the
     * same offsets after a while only. */
    void (*want_marks)(void *arg, const int32_t *parts,
                       const int64_t *offsets, int n);
    /* /internal/marks: this instance's repartitioner alone. */
    void (*want_marks_here)(void *arg, const int32_t *parts,
                            const int64_t *offsets, int n);
    /* The group as JSON for /status (its members and who owns what). */
    void (*describe)(void *arg, ws_buf *b);
} ws_api_group;

/* What the routes need; owned by the caller, read-only while serving. */
typedef struct ws_api {
    ws_store *store;
    ws_ready_fn ready;      /* NULL: ready whenever the store is open */
    void *ready_arg;
    ws_partitions_fn partitions;    /* NULL: not known (serve) */
    void *partitions_arg;
    const ws_api_group *group;      /* NULL: not a group's instance */
    /* A group's instance: the input topic, whose offsets min_offset and
     * Walletstream-Offsets name (its records are repartitioned), and its
     * partition count when run started (0: not known). */
    const char *input_topic;
    int input_partitions;
} ws_api;

/* The query parameters a route reads, raw (still percent-encoded), NULL
 * when absent, and when the request arrived (ws_clock_ms) for min_offset's
 * wait. */
typedef struct ws_query {
    const char *currency;
    const char *limit;
    const char *before;
    const char *min_offset;
    const char *wait_ms;
    const char *scope;      /* "local": from this instance's partitions
                               only (what instances ask each other) */
    int64_t arrived_ms;
} ws_query;

/* Longest wait a request may ask for with wait_ms, and the default. */
#define WS_API_WAIT_MAX_MS 10000
#define WS_API_WAIT_DEFAULT_MS 1000

typedef struct ws_reply {
    unsigned status;
    const char *allow;      /* value of an Allow header, or NULL */
    const char *www_authenticate;   /* value of WWW-Authenticate, or NULL */
    ws_buf body;            /* JSON (or Prometheus text for /metrics) */
    const char *content_type;
    const char *route;      /* the route's name, for metrics */
    int wait;               /* 1: min_offset is not committed yet and the
                               request may wait: ask again later (nothing
                               else of the reply is set) */
    ws_buf offsets;         /* value of the Walletstream-Offsets header
                               (empty: none): per partition, the last
                               offset the answer's state includes,
                               "0:123,1:97" */
} ws_reply;

/* Answers one request. `path` is the raw (still percent-encoded) path
 * without the query; `authorized` 0 when authentication is on and the
 * request did not carry the token: then every route but /healthz and
 * /readyz answers 401. Fills *out (the caller frees out->body and
 * out->offsets with ws_buf_free, whatever out->wait). Any thread. */
void ws_api_handle(const ws_api *api, const char *method, const char *path,
                   const ws_query *q, int authorized, ws_reply *out);

/* A number that changes when the state this process serves may have
 * moved on (a batch of its own committed): a request waiting for
 * min_offset is worth asking again then. Any thread. */
uint64_t ws_api_commits(const ws_api *api);

/* Records one sample of the stored outcome totals for the dashboard's
 * history (ws_metrics_sample), taken at Unix time `time_ms`. Any thread. */
void ws_api_sample(const ws_api *api, int64_t time_ms);

/* Strict percent-decoding of s[0..n) into out[0..cap): every '%' must be
 * followed by two hex digits. Returns 0 with *len set, or -1 (malformed,
 * or longer than cap). */
int ws_api_percent_decode(const char *s, size_t n, char *out, size_t cap,
                          size_t *len);

#endif
