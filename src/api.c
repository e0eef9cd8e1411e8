/*
 * api.c - routes of the HTTP API.
 *
 *   GET|HEAD /balance/{wallet_id}
 *   GET|HEAD /average_daily_debit/{wallet_id}
 *   GET|HEAD /top_credits/{product_id}[?currency=XXX]
 *   GET|HEAD /healthz, /readyz, /metrics, /openapi.json
 *   GET|HEAD /          the dashboard page (src/dashboard.html)
 *   GET|HEAD /status    the process's state as JSON, for the dashboard
 *
 * With authentication on (--api-token-file), a request without the token
 * gets 401 on every route but /healthz and /readyz, which stay open for
 * liveness and readiness probes.
 *
 * Ids are percent-decoded here, strictly (libmicrohttpd's own unescaping
 * is switched off in http.c, because it keeps malformed escapes and would
 * cut an id at %00), then checked against the id rule of SPEC §2.
 */
#include "api.h"

#include <string.h>

#include "decode.h"
#include "figures.h"
#include "metrics.h"
#include "openapi.h"
#include "timeutil.h"

#define JSON_TYPE "application/json"
#define ALLOW_READ "GET, HEAD"

/* ------------------------------------------------------------ replies */

static void reply_status(ws_reply *r, unsigned status)
{
    r->status = status;
    r->content_type = JSON_TYPE;
}

static void reply_error(ws_reply *r, unsigned status, const char *code)
{
    reply_status(r, status);
    ws_buf_reset(&r->body);
    ws_buf_puts(&r->body, "{\"error\":\"");
    ws_buf_puts(&r->body, code);
    ws_buf_puts(&r->body, "\"}");
}

/* 404 naming what was not found: {"error":"wallet_not_found","wallet_id":"x"} */
static void reply_not_found(ws_reply *r, const char *code, const char *field,
                            const char *id, size_t n)
{
    reply_status(r, 404);
    ws_buf_reset(&r->body);
    ws_buf_printf(&r->body, "{\"error\":\"%s\",\"%s\":", code, field);
    ws_json_str(&r->body, id, n);
    ws_buf_putc(&r->body, '}');
}

/* ------------------------------------------------------------ helpers */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ws_api_percent_decode(const char *s, size_t n, char *out, size_t cap,
                          size_t *len)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        char c = s[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= n)
                return -1;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o >= cap)
            return -1;
        out[o++] = c;
    }
    *len = o;
    return 0;
}

/* Decodes the id after a route's prefix; 0 when it meets the id rule. */
static int route_id(const char *raw, char *id, size_t *n)
{
    return ws_api_percent_decode(raw, strlen(raw), id, WS_MAX_ID, n) == 0 &&
                   ws_id_valid(id, *n)
               ? 0
               : -1;
}

/* ------------------------------------------------------------- routes */

/* Reads a wallet; 0 when found, else the error reply is already made. */
static int load_wallet(ws_view *v, const char *id, size_t n, ws_wallet *w,
                       ws_reply *r)
{
    int e = ws_view_wallet(v, id, n, w);

    if (e == WS_ERR_NOT_FOUND)
        reply_not_found(r, "wallet_not_found", "wallet_id", id, n);
    else if (e != WS_OK)
        reply_error(r, 500, "store_error");
    return e;
}

static void balance(ws_view *v, const char *id, size_t n, ws_reply *r)
{
    ws_wallet w;

    if (load_wallet(v, id, n, &w, r) != WS_OK)
        return;
    reply_status(r, 200);
    ws_figures_balance(&r->body, id, n, &w);
}

static void average(ws_view *v, const char *id, size_t n, ws_reply *r)
{
    ws_wallet w;

    if (load_wallet(v, id, n, &w, r) != WS_OK)
        return;
    reply_status(r, 200);
    ws_figures_average(&r->body, id, n, &w);
}

static void top_credits(ws_view *v, const char *id, size_t n,
                        const char *currency_raw, ws_reply *r)
{
    char cur[3];
    ws_tops_writer walk;
    int e;

    if (currency_raw) {
        char raw[8];
        size_t len, k;

        if (ws_api_percent_decode(currency_raw, strlen(currency_raw), raw,
                                  sizeof raw, &len) != 0 || len != 3) {
            reply_error(r, 400, "invalid_currency");
            return;
        }
        for (k = 0; k < 3; k++) {
            char c = raw[k];
            if (c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            if (c < 'A' || c > 'Z') {
                reply_error(r, 400, "invalid_currency");
                return;
            }
            cur[k] = c;
        }
    }
    e = ws_view_product(v, id, n);
    if (e == WS_ERR_NOT_FOUND) {
        reply_not_found(r, "product_not_found", "product_id", id, n);
        return;
    }
    if (e != WS_OK) {
        reply_error(r, 500, "store_error");
        return;
    }
    reply_status(r, 200);
    ws_figures_tops_begin(&walk, &r->body, id, n, currency_raw ? cur : NULL);
    if (ws_view_tops(v, id, n, ws_figures_tops_add, &walk) != WS_OK) {
        reply_error(r, 500, "store_error");
        return;
    }
    ws_figures_tops_end(&walk);
}

/* 1 when ready, else 0 with the reason in why[0..cap). */
static int is_ready(const ws_api *api, char *why, size_t cap)
{
    return !api->ready || api->ready(api->ready_arg, why, cap);
}

/* What /metrics and /status both report: the committed counters and
 * table sizes of one view, the store's size and readiness. */
struct state_now {
    ws_counts c;
    ws_state_sizes z;
    uint64_t used, limit;
    int ready;
    char why[512];
};

static int state_now(const ws_api *api, ws_view *v, struct state_now *st)
{
    if (ws_view_counts(v, &st->c) != WS_OK ||
        ws_view_sizes(v, &st->z) != WS_OK)
        return WS_ERR_STORE;
    ws_store_usage(api->store, &st->used, &st->limit);
    st->ready = is_ready(api, st->why, sizeof st->why);
    return WS_OK;
}

static void metrics(const ws_api *api, ws_view *v, ws_reply *r)
{
    struct state_now st;
    ws_buf *b = &r->body;
    int i;

    if (state_now(api, v, &st) != WS_OK) {
        reply_error(r, 500, "store_error");
        return;
    }
    ws_metrics_ready(st.ready);
    reply_status(r, 200);
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    ws_buf_puts(b, "# HELP walletstream_events_total Records by outcome, "
                   "as committed with the state.\n"
                   "# TYPE walletstream_events_total counter\n");
    for (i = 0; i < WS_OUTCOME_COUNT; i++)
        ws_buf_printf(b, "walletstream_events_total{outcome=\"%s\"} %lld\n",
                      ws_outcome_name((enum ws_outcome)i),
                      (long long)st.c.outcome[i]);
    ws_buf_puts(b, "# HELP walletstream_rejected_total Rejected records by "
                   "reason, as committed with the state.\n"
                   "# TYPE walletstream_rejected_total counter\n");
    for (i = 1; i < WS_R_COUNT; i++)
        ws_buf_printf(b, "walletstream_rejected_total{reason=\"%s\"} %lld\n",
                      ws_reason_name((enum ws_reason)i),
                      (long long)st.c.reason[i]);
    ws_buf_printf(b, "# HELP walletstream_state_bytes Bytes the state store "
                     "uses.\n# TYPE walletstream_state_bytes gauge\n"
                     "walletstream_state_bytes %llu\n"
                     "# HELP walletstream_state_limit_bytes Size the state "
                     "store may grow to.\n"
                     "# TYPE walletstream_state_limit_bytes gauge\n"
                     "walletstream_state_limit_bytes %llu\n",
                  (unsigned long long)st.used, (unsigned long long)st.limit);
    ws_buf_puts(b, "# HELP walletstream_state_entries Entries of a state "
                   "table, as committed.\n"
                   "# TYPE walletstream_state_entries gauge\n");
    for (i = 0; i < WS_STATE_TABLES; i++)
        ws_buf_printf(b, "walletstream_state_entries{table=\"%s\"} %llu\n",
                      ws_state_table_names[i],
                      (unsigned long long)st.z.entries[i]);
    ws_metrics_render(b);
}

static void status(const ws_api *api, ws_view *v, ws_reply *r)
{
    struct state_now st;
    ws_buf *b = &r->body;
    int i;

    if (state_now(api, v, &st) != WS_OK) {
        reply_error(r, 500, "store_error");
        return;
    }
    reply_status(r, 200);
    ws_buf_printf(b, "{\"version\":\"%s\",\"data_format\":%d,\"ready\":%s",
                  WS_VERSION, WS_STORE_FORMAT, st.ready ? "true" : "false");
    if (!st.ready) {
        ws_buf_puts(b, ",\"reason\":");
        ws_json_str(b, st.why, strlen(st.why));
    }
    ws_buf_puts(b, ",\"events\":{");
    for (i = 0; i < WS_OUTCOME_COUNT; i++)
        ws_buf_printf(b, "%s\"%s\":%lld", i ? "," : "",
                      ws_outcome_name((enum ws_outcome)i),
                      (long long)st.c.outcome[i]);
    ws_buf_puts(b, "},\"rejected\":{");
    for (i = 1; i < WS_R_COUNT; i++)
        ws_buf_printf(b, "%s\"%s\":%lld", i > 1 ? "," : "",
                      ws_reason_name((enum ws_reason)i),
                      (long long)st.c.reason[i]);
    ws_buf_printf(b, "},\"state\":{\"shards\":%d,\"bytes\":%llu,"
                     "\"limit_bytes\":%llu", ws_view_shards(v),
                  (unsigned long long)st.used, (unsigned long long)st.limit);
    for (i = 0; i < WS_STATE_TABLES; i++)
        ws_buf_printf(b, ",\"%s\":%llu", ws_state_table_names[i],
                      (unsigned long long)st.z.entries[i]);
    ws_buf_puts(b, "},");
    ws_metrics_json(b);
    ws_buf_putc(b, '}');
}

void ws_api_sample(const ws_api *api, int64_t time_ms)
{
    ws_counts c;
    ws_view *v;

    if (ws_store_view(api->store, &v) != WS_OK)
        return;
    if (ws_view_counts(v, &c) == WS_OK)
        ws_metrics_sample(time_ms, &c);
    ws_view_end(v);
}

enum route { R_NONE, R_BALANCE, R_AVERAGE, R_TOP, R_HEALTH, R_READY,
             R_METRICS, R_OPENAPI, R_DASHBOARD, R_STATUS };

/* Every route: how its path is matched (exactly, or by a prefix the id
 * follows) and its name in metrics, which is its path in openapi.json. */
static const struct {
    const char *path;
    int prefix;
    enum route route;
    const char *name;
} routes[] = {
    {"/balance/", 1, R_BALANCE, "/balance/{wallet_id}"},
    {"/average_daily_debit/", 1, R_AVERAGE, "/average_daily_debit/{wallet_id}"},
    {"/top_credits/", 1, R_TOP, "/top_credits/{product_id}"},
    {"/healthz", 0, R_HEALTH, "/healthz"},
    {"/readyz", 0, R_READY, "/readyz"},
    {"/metrics", 0, R_METRICS, "/metrics"},
    {"/openapi.json", 0, R_OPENAPI, "/openapi.json"},
    {"/", 0, R_DASHBOARD, "/"},
    {"/status", 0, R_STATUS, "/status"},
};

#define NROUTES (sizeof routes / sizeof routes[0])

void ws_api_handle(const ws_api *api, const char *method, const char *path,
                   const char *currency, int authorized, ws_reply *out)
{
    char id[WS_MAX_ID];
    size_t n = 0, k, plen;
    const char *rest = NULL;
    enum route route = R_NONE;
    ws_view *v;

    ws_buf_init(&out->body);
    out->allow = NULL;
    out->www_authenticate = NULL;
    out->route = "other";
    for (k = 0; k < NROUTES; k++) {
        plen = strlen(routes[k].path);
        if (routes[k].prefix ? strncmp(path, routes[k].path, plen) == 0
                             : strcmp(path, routes[k].path) == 0) {
            route = routes[k].route;
            out->route = routes[k].name;
            if (routes[k].prefix)
                rest = path + plen;
            break;
        }
    }
    if (!authorized && route != R_HEALTH && route != R_READY) {
        reply_error(out, 401, "unauthorized");
        out->www_authenticate = "Bearer realm=\"walletstream\"";
        return;
    }
    if (route == R_NONE) {
        reply_error(out, 404, "not_found");
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        reply_error(out, 405, "method_not_allowed");
        out->allow = ALLOW_READ;
        return;
    }
    if (rest && route_id(rest, id, &n) != 0) {
        reply_error(out, 400, "invalid_id");
        return;
    }
    if (route == R_OPENAPI) {
        reply_status(out, 200);
        ws_buf_puts(&out->body, ws_openapi_json);
        return;
    }
    if (route == R_DASHBOARD) {
        reply_status(out, 200);
        out->content_type = "text/html; charset=utf-8";
        ws_buf_puts(&out->body, ws_dashboard_html);
        return;
    }
    if (route == R_HEALTH) {
        reply_status(out, 200);
        ws_buf_puts(&out->body, "{\"status\":\"ok\"}");
        return;
    }
    if (route == R_READY) {
        char why[512];

        if (!is_ready(api, why, sizeof why)) {
            reply_status(out, 503);
            ws_buf_puts(&out->body, "{\"status\":\"not_ready\",\"reason\":");
            ws_json_str(&out->body, why, strlen(why));
            ws_buf_putc(&out->body, '}');
        } else {
            reply_status(out, 200);
            ws_buf_puts(&out->body, "{\"status\":\"ready\"}");
        }
        return;
    }
    if (ws_store_view(api->store, &v) != WS_OK) {
        reply_error(out, 503, "store_unavailable");
        return;
    }
    switch (route) {
    case R_BALANCE: balance(v, id, n, out); break;
    case R_AVERAGE: average(v, id, n, out); break;
    case R_TOP: top_credits(v, id, n, currency, out); break;
    case R_METRICS: metrics(api, v, out); break;
    case R_STATUS: status(api, v, out); break;
    default: break;
    }
    ws_view_end(v);
    if (out->body.oom)
        reply_error(out, 500, "out_of_memory");
}
