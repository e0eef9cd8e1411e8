/*
 * api.c - routes of the HTTP API.
 *
 *   GET|HEAD /balance/{wallet_id}
 *   GET|HEAD /average_daily_debit/{wallet_id}
 *   GET|HEAD /top_credits/{product_id}[?currency=XXX]
 *   GET|HEAD /wallets/{wallet_id}/transactions[?limit=N&before=CURSOR]
 *            the wallet's statement, newest first
 *   ?min_offset=P:O[,P:O...][&wait_ms=MS] on the wallet and product
 *            routes: answered once the state includes offset O of
 *            partition P (read-your-writes), else 504 after the wait, 409
 *            when the topic has no partition P
 *   Every answer read from the state carries Walletstream-Offsets: the
 *   last offset of each partition it includes.
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

#include <stdlib.h>
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

/* ---------------------------------------------------- a group's instance */

/* An unsigned decimal (at most `max`) from a raw query value; 0 or -1. */
static int query_uint(const char *raw, uint64_t max, uint64_t *out)
{
    char text[24];
    size_t n, i;
    uint64_t v = 0;

    if (ws_api_percent_decode(raw, strlen(raw), text, sizeof text - 1, &n) ||
        n == 0)
        return -1;
    for (i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9' ||
            v > (max - (uint64_t)(text[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    *out = v;
    return 0;
}

/* How long a min_offset may wait (wait_ms, default 1000): 0, or -1 with
 * the 400 reply made. */
static int wait_of(const ws_query *q, uint64_t *wait, ws_reply *out)
{
    *wait = WS_API_WAIT_DEFAULT_MS;
    if (q->wait_ms && query_uint(q->wait_ms, WS_API_WAIT_MAX_MS, wait)) {
        reply_error(out, 400, "invalid_wait_ms");
        return -1;
    }
    return 0;
}

/* Whether the request is asked of this instance's partitions alone. */
static int scope_local(const ws_query *q)
{
    return q->scope && strcmp(q->scope, "local") == 0;
}

/* Appends "&name=value" (value raw) when present. */
static void target_arg(ws_buf *t, const char *name, const char *value)
{
    if (value)
        ws_buf_printf(t, "&%s=%s", name, value);
}

/* A wallet of a partition another instance owns: its answer, from it.
 * 0 when answered (forwarded, or 503), -1 when the wallet is this
 * instance's. */
static int wallet_elsewhere(const ws_api *api, const char *path,
                            const ws_query *q, const char *id, size_t n,
                            ws_reply *out)
{
    int shard = ws_store_shard_of(api->store, id, n);
    unsigned wait_ms = 0;
    ws_buf target;

    if (!api->group || ws_store_owned(api->store) >> shard & 1)
        return -1;
    if (scope_local(q)) {
        reply_error(out, 503, "not_owned_here");
        return 0;
    }
    ws_buf_init(&target);
    ws_buf_puts(&target, path);
    ws_buf_puts(&target, "?scope=local");
    target_arg(&target, "limit", q->limit);
    target_arg(&target, "before", q->before);
    target_arg(&target, "min_offset", q->min_offset);
    if (q->min_offset) {
        /* The owner waits what is left of this request's wait. */
        uint64_t wait;
        int64_t left;

        if (wait_of(q, &wait, out) != 0) {
            ws_buf_free(&target);
            return 0;
        }
        left = (int64_t)wait - (ws_clock_ms() - q->arrived_ms);
        ws_buf_printf(&target, "&wait_ms=%lld",
                      (long long)(left > 0 ? left : 0));
        wait_ms = (unsigned)(left > 0 ? left : 0);
    }
    if (target.oom ||
        api->group->forward(api->group->arg, shard, target.p, wait_ms,
                            out) != 0) {
        reply_status(out, 503);
        ws_buf_reset(&out->body);
        ws_buf_printf(&out->body, "{\"error\":\"owner_unavailable\","
                                  "\"partition\":%d}", shard);
    } else {
        out->content_type = JSON_TYPE;
    }
    ws_buf_free(&target);
    return 0;
}

/* /internal/tops/{product}: "partitions MASK SEEN" (the partitions this
 * instance answers for, in hex; SEEN 1 when one saw the product), then
 * its merged lists, one line each, "CUR HEX" (ws_top_pack). */
static void tops_part(ws_view *v, const char *id, size_t n, ws_reply *r)
{
    ws_top_set *g = calloc(1, sizeof *g);
    unsigned char raw[WS_TOP_PACKED_MAX];
    unsigned i;
    size_t k, len;
    int e = g ? ws_view_product(v, id, n) : WS_ERR_NOMEM, seen = e == WS_OK;

    if (e == WS_OK)
        e = ws_view_tops(v, id, n, ws_top_set_add, g);
    if (e != WS_OK && e != WS_ERR_NOT_FOUND)
        reply_error(r, 500, "store_error");
    else if (g->full)
        reply_error(r, 500, "store_error");
    else {
        reply_status(r, 200);
        r->content_type = "text/plain; charset=utf-8";
        /* the view's shards: those owned when it began */
        ws_buf_printf(&r->body, "partitions %llx %d\n",
                      (unsigned long long)ws_view_owned(v), seen);
        for (i = 0; i < g->n; i++) {
            len = ws_top_pack(&g->t[i], raw);
            ws_buf_put(&r->body, g->t[i].currency, 3);
            ws_buf_putc(&r->body, ' ');
            for (k = 0; k < len; k++)
                ws_buf_printf(&r->body, "%02x", raw[k]);
            ws_buf_putc(&r->body, '\n');
        }
    }
    free(g);
}

/* ------------------------------------------------------------- routes */

/* Reads a wallet; 0 when found, else the error reply is already made. */
static int load_wallet(ws_view *v, const char *id, size_t n, ws_wallet *w,
                       ws_reply *r)
{
    int e = ws_view_wallet(v, id, n, w);

    if (e == WS_ERR_NOT_FOUND)
        reply_not_found(r, "wallet_not_found", "wallet_id", id, n);
    else if (e == WS_ERR_NOT_OWNED)
        reply_error(r, 503, "not_owned_here");  /* the group moved it */
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

/* A product's top credits. In a group, the view is ended (*vp NULL)
 * once its lists are taken, before the other instances are asked (which
 * may wait for a min_offset): no read transaction stays open meanwhile. */
static void top_credits(const ws_api *api, ws_view **vp, const char *id,
                        size_t n, const char *raw_id, const ws_query *q,
                        ws_reply *r)
{
    ws_view *v = *vp;
    const char *currency_raw = q->currency;
    char cur[3];
    ws_tops_writer walk;
    ws_top_set *g = NULL;
    uint64_t wait = 0;
    ws_buf behind;
    unsigned i;
    int e;

    ws_buf_init(&behind);
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
    if (api->group && !scope_local(q)) {
        /* A group's: every instance's lists merged (a product's credits
         * are in every partition). */
        int peers;

        if (!(g = calloc(1, sizeof *g))) {
            reply_error(r, 500, "out_of_memory");
            return;
        }
        uint64_t all = ws_view_shards(v) >= 64
                           ? ~(uint64_t)0
                           : ((uint64_t)1 << ws_view_shards(v)) - 1;
        uint64_t owned = ws_view_owned(v);

        if (e == WS_OK)
            e = ws_view_tops(v, id, n, ws_top_set_add, g);
        ws_view_end(v);
        *vp = NULL;
        if (q->min_offset)
            wait_of(q, &wait, r);   /* valid: view_for read it */
        peers = api->group->peer_tops(api->group->arg, raw_id, q->min_offset,
                                      q->arrived_ms + (int64_t)wait,
                                      all & ~owned,
                                      ws_top_set_add, g, &behind);
        if (peers == -2) {
            /* an instance's partitions do not hold min_offset yet: its
             * 504, which says how far they are */
            reply_status(r, 504);
            ws_buf_reset(&r->body);
            ws_buf_put(&r->body, behind.p, behind.len);
            ws_buf_free(&behind);
            free(g);
            return;
        }
        ws_buf_free(&behind);
        if (peers < 0) {
            /* An instance did not answer, or a partition is moving: no
             * answer rather than one without some partitions' credits. */
            reply_error(r, 503, "instance_unavailable");
            free(g);
            return;
        }
        if (e == WS_ERR_NOT_FOUND && peers > 0)
            e = WS_OK;
    }
    if (e == WS_ERR_NOT_FOUND) {
        reply_not_found(r, "product_not_found", "product_id", id, n);
        free(g);
        return;
    }
    if (e != WS_OK || (g && g->full)) {
        reply_error(r, 500, "store_error");
        free(g);
        return;
    }
    reply_status(r, 200);
    ws_figures_tops_begin(&walk, &r->body, id, n, currency_raw ? cur : NULL);
    if (g) {
        for (i = 0; i < g->n; i++)
            ws_figures_tops_add(&g->t[i], &walk);
        free(g);
    } else if (ws_view_tops(v, id, n, ws_figures_tops_add, &walk) != WS_OK) {
        reply_error(r, 500, "store_error");
        return;
    }
    ws_figures_tops_end(&walk);
}

/* ---------------------------------------------------------- statements */

#define STATEMENT_SUFFIX "/transactions"
#define STATEMENT_LIMIT_DEFAULT 20
#define STATEMENT_LIMIT_MAX 1000

/* The cursor of a statement page: the log position of the first line of
 * the next (older) page, in lower-case hex. Opaque to clients. */
static int cursor_parse(const char *raw, uint64_t *pos)
{
    char text[24];
    size_t n, i;
    uint64_t v = 0;

    if (ws_api_percent_decode(raw, strlen(raw), text, sizeof text - 1, &n) ||
        n == 0 || n > 15)
        return -1;
    for (i = 0; i < n; i++) {
        int d = hexval(text[i]);

        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *pos = v;
    return v > 0 ? 0 : -1;
}

struct statement {
    ws_buf *b;
    uint64_t limit, n;
    uint64_t next;      /* the first line beyond the limit, 0: none */
};

static int statement_line(const ws_history_entry *h, void *arg)
{
    struct statement *st = arg;
    ws_buf *b = st->b;

    if (st->n == st->limit) {
        st->next = h->pos;
        return 1;
    }
    ws_buf_puts(b, st->n++ ? ",{" : "{");
    ws_figures_line_fields(b, h);
    ws_buf_putc(b, '}');
    return 0;
}

static void statement(ws_view *v, const char *id, size_t n, const ws_query *q,
                      ws_reply *r)
{
    struct statement st;
    uint64_t limit = STATEMENT_LIMIT_DEFAULT, before = 0;
    ws_wallet w;
    int days, e;

    if (q->limit &&
        (query_uint(q->limit, STATEMENT_LIMIT_MAX, &limit) || limit == 0)) {
        reply_error(r, 400, "invalid_limit");
        return;
    }
    if (q->before && cursor_parse(q->before, &before) != 0) {
        reply_error(r, 400, "invalid_cursor");
        return;
    }
    if (load_wallet(v, id, n, &w, r) != WS_OK)
        return;
    if ((e = ws_view_history_kept(v, &days)) != WS_OK) {
        reply_error(r, 500, "store_error");
        return;
    }
    if (days == WS_HISTORY_OFF) {
        reply_status(r, 404);
        ws_buf_puts(&r->body, "{\"error\":\"statements_not_kept\","
                              "\"wallet_id\":");
        ws_json_str(&r->body, id, n);
        ws_buf_putc(&r->body, '}');
        return;
    }
    reply_status(r, 200);
    ws_buf_puts(&r->body, "{\"wallet_id\":");
    ws_json_str(&r->body, id, n);
    ws_buf_puts(&r->body, ",\"currency\":\"");
    ws_buf_put(&r->body, w.currency, 3);
    ws_buf_puts(&r->body, "\",\"transactions\":[");
    memset(&st, 0, sizeof st);
    st.b = &r->body;
    st.limit = limit;
    e = ws_view_history(v, id, n, before ? before : w.history_head,
                        statement_line, &st);
    if (e == WS_ERR_NOT_FOUND) {
        reply_error(r, 400, "invalid_cursor");
        return;
    }
    if (e != WS_OK && e != 1) {
        reply_error(r, 500, "store_error");
        return;
    }
    ws_buf_puts(&r->body, "],\"next\":");
    if (st.next)
        ws_buf_printf(&r->body, "\"%llx\"", (unsigned long long)st.next);
    else
        ws_buf_puts(&r->body, "null");
    ws_buf_putc(&r->body, '}');
}

/* ------------------------------------------------------ read-your-writes */

#define MIN_OFFSETS_MAX 64

struct want {
    int32_t partition;
    int64_t offset;
};

/* Parses "P:O[,P:O...]"; the number of pairs, or -1. */
static int parse_min_offset(const char *raw, struct want *w)
{
    char text[MIN_OFFSETS_MAX * 32];
    size_t n, i = 0;
    int k = 0;

    if (ws_api_percent_decode(raw, strlen(raw), text, sizeof text - 1, &n) ||
        n == 0)
        return -1;
    text[n] = '\0';
    while (i < n) {
        uint64_t part = 0, off = 0;
        size_t d = 0;

        if (k == MIN_OFFSETS_MAX)
            return -1;
        for (; i < n && text[i] >= '0' && text[i] <= '9' && d < 10; i++, d++)
            part = part * 10 + (uint64_t)(text[i] - '0');
        if (d == 0 || part > INT32_MAX || i >= n || text[i++] != ':')
            return -1;
        for (d = 0; i < n && text[i] >= '0' && text[i] <= '9' && d < 18;
             i++, d++)
            off = off * 10 + (uint64_t)(text[i] - '0');
        if (d == 0 || (i < n && text[i] != ','))
            return -1;
        if (i < n && ++i == n)
            return -1;      /* a trailing comma */
        w[k].partition = (int32_t)part;
        w[k].offset = (int64_t)off;
        k++;
    }
    return k;
}

/* Whether source is "<topic>/<partition>" of `topic` (NULL: of any
 * topic); *p set. */
static int source_of(const char *topic, const char *source, size_t n,
                     int32_t *p)
{
    size_t topic_len;

    return ws_source_split(source, n, &topic_len, p) == 0 &&
           (!topic || (strlen(topic) == topic_len &&
                       memcmp(topic, source, topic_len) == 0));
}

/* Finds the stored source of partition p ("<topic>/p"). */
struct source_find {
    const char *topic;      /* NULL: any */
    int32_t partition;
    char key[600];
    size_t n;
    int64_t next;
};

static int source_find(const char *source, size_t n, int64_t next, void *arg)
{
    struct source_find *f = arg;
    int32_t p;

    if (!source_of(f->topic, source, n, &p) || p != f->partition ||
        n >= sizeof f->key)
        return 0;
    memcpy(f->key, source, n);
    f->n = n;
    f->next = next;
    return 1;
}

/* The number of partitions of the topic min_offset names, 0: not known. */
static int input_partitions(const ws_api *api)
{
    if (api->group)
        return api->input_partitions;
    return api->partitions ? api->partitions(api->partitions_arg) : 0;
}

/* The next offset of partition p that `shard` (-1: every shard) holds:
 * -1 when none is stored yet. In a group's instance, the input topic's
 * offset past the newest of its records the wallet's shard applied
 * (router.h, origin_key); with shard -1, the least of the shards it
 * serves (INT64_MAX when it serves none). */
static int64_t held_next(const ws_api *api, ws_view *v, int shard, int32_t p)
{
    struct source_find f;
    int64_t next;
    int e;

    f.topic = api->group ? api->input_topic : NULL;
    f.partition = p;
    f.n = 0;
    if (api->group && shard < 0) {
        /* every partition this instance serves: the least of theirs
         * (the repartitioner's marks move each one's: repartition.h) */
        int64_t least = INT64_MAX;
        uint64_t owned = ws_view_owned(v);
        int k;

        for (k = 0; k < ws_view_shards(v) && k < 64; k++)
            if (owned >> k & 1) {
                next = held_next(api, v, k, p);
                if (next < least)
                    least = next;
            }
        return least;   /* INT64_MAX: none served, none to wait for */
    }
    if (api->group)
        return ws_view_each_shard_offset(v, shard, source_find, &f) == 1
                   ? f.next : -1;
    if (ws_view_each_offset(v, source_find, &f) != 1)
        return -1;
    e = shard < 0 ? ws_view_offset(v, f.key, f.n, &next)
                  : ws_view_shard_offset(v, shard, f.key, f.n, &next);
    return e == WS_OK ? next : -1;
}

/* Whether the state of the view includes every offset wanted for the
 * answer (of a wallet's shard, or of every shard when shard is -1): 1
 * yes, 0 not yet, -1 the topic has no such partition (*bad set). */
static int includes(const ws_api *api, ws_view *v, int shard,
                    const struct want *w, int nw, int64_t *held, int *bad)
{
    int parts = input_partitions(api);
    int i, all = 1;

    for (i = 0; i < nw; i++) {
        if (parts > 0 && w[i].partition >= parts) {
            *bad = i;
            return -1;
        }
        held[i] = held_next(api, v, shard, w[i].partition);
        if (held[i] <= w[i].offset)
            all = 0;
    }
    return all;
}

/* 504 (or 409): how far the state is. */
static void reply_behind(const ws_api *api, ws_reply *r, int status,
                         const struct want *w, int nw, const int64_t *held,
                         int bad, int64_t waited)
{
    int i;

    reply_status(r, (unsigned)status);
    ws_buf_reset(&r->body);
    if (status == 409) {
        ws_buf_printf(&r->body, "{\"error\":\"partition_not_followed\","
                      "\"partition\":%d,\"partitions\":%d}",
                      (int)w[bad].partition, input_partitions(api));
        return;
    }
    ws_buf_puts(&r->body, "{\"error\":\"not_yet_applied\",\"waited_ms\":");
    ws_json_i64(&r->body, waited);
    ws_buf_puts(&r->body, ",\"wanted\":{");
    for (i = 0; i < nw; i++)
        ws_buf_printf(&r->body, "%s\"%d\":%lld", i ? "," : "",
                      (int)w[i].partition, (long long)w[i].offset);
    /* The last offset included, -1: none of that partition yet. */
    ws_buf_puts(&r->body, "},\"included\":{");
    for (i = 0; i < nw; i++)
        ws_buf_printf(&r->body, "%s\"%d\":%lld", i ? "," : "",
                      (int)w[i].partition,
                      (long long)(held[i] < 0 ? -1 : held[i] - 1));
    ws_buf_puts(&r->body, "}}");
}

/* The Walletstream-Offsets header of a view: the sources of `topic`
 * (NULL: every source). */
struct header {
    ws_buf *b;
    const char *topic;
};

static int offsets_header(const char *source, size_t n, int64_t next,
                          void *arg)
{
    struct header *h = arg;
    ws_buf *b = h->b;
    int32_t p;

    if (!source_of(h->topic, source, n, &p) || next <= 0)
        return 0;
    if (b->len)
        ws_buf_putc(b, ',');
    ws_json_i64(b, p);
    ws_buf_putc(b, ':');
    ws_json_i64(b, next - 1);
    return 0;
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
    if (api->group) {
        /* This instance's partitions; the group's members and theirs. */
        uint64_t owned = ws_store_owned(api->store);
        int first = 1;

        ws_buf_puts(b, "\"partitions_owned\":[");
        for (i = 0; i < ws_view_shards(v); i++)
            if (owned >> i & 1) {
                ws_buf_printf(b, first ? "%d" : ",%d", i);
                first = 0;
            }
        ws_buf_puts(b, "],\"group\":");
        api->group->describe(api->group->arg, b);
        ws_buf_putc(b, ',');
    }
    ws_metrics_json(b);
    ws_buf_putc(b, '}');
}

uint64_t ws_api_commits(const ws_api *api)
{
    return ws_store_commits(api->store);
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

enum route { R_NONE, R_BALANCE, R_AVERAGE, R_TOP, R_STATEMENT, R_HEALTH,
             R_READY, R_METRICS, R_OPENAPI, R_DASHBOARD, R_STATUS,
             R_TOPS_PART, R_MARKS };

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
    {"/wallets/", 1, R_STATEMENT, "/wallets/{wallet_id}/transactions"},
    {"/healthz", 0, R_HEALTH, "/healthz"},
    {"/readyz", 0, R_READY, "/readyz"},
    {"/metrics", 0, R_METRICS, "/metrics"},
    {"/openapi.json", 0, R_OPENAPI, "/openapi.json"},
    {"/", 0, R_DASHBOARD, "/"},
    {"/status", 0, R_STATUS, "/status"},
    {"/internal/tops/", 1, R_TOPS_PART, "/internal/tops/{product_id}"},
    {"/internal/marks", 0, R_MARKS, "/internal/marks"},
};

#define NROUTES (sizeof routes / sizeof routes[0])

/* Routes that take min_offset: of a wallet (its shard) or a product
 * (every shard). */
static int takes_min_offset(enum route route)
{
    return route == R_BALANCE || route == R_AVERAGE || route == R_TOP ||
           route == R_STATEMENT || route == R_TOPS_PART;
}

/* The wanted offsets as the group's hooks take them. */
static void split_wants(const struct want *w, int nw, int32_t *parts,
                        int64_t *offsets)
{
    int i;

    for (i = 0; i < nw; i++) {
        parts[i] = w[i].partition;
        offsets[i] = w[i].offset;
    }
}

/* A product's min_offset in a group: every instance's repartitioner is
 * asked for marks. */
static void want_marks(const ws_api *api, const struct want *w, int nw)
{
    int32_t parts[MIN_OFFSETS_MAX];
    int64_t offsets[MIN_OFFSETS_MAX];

    split_wants(w, nw, parts, offsets);
    api->group->want_marks(api->group->arg, parts, offsets, nw);
}

/* /internal/marks?min_offset=...: this instance's repartitioner sends
 * marks of those input partitions once it has read past the offsets
 * (without min_offset: nothing is asked). */
static void marks(const ws_api *api, const ws_query *q, ws_reply *out)
{
    struct want w[MIN_OFFSETS_MAX];
    int32_t parts[MIN_OFFSETS_MAX];
    int64_t offsets[MIN_OFFSETS_MAX];
    int nw = 0;

    if (q->min_offset && (nw = parse_min_offset(q->min_offset, w)) < 0) {
        reply_error(out, 400, "invalid_min_offset");
        return;
    }
    split_wants(w, nw, parts, offsets);
    if (api->group && nw > 0)
        api->group->want_marks_here(api->group->arg, parts, offsets, nw);
    reply_status(out, 200);
    ws_buf_printf(&out->body, "{\"asked\":%d}", api->group ? nw : 0);
}

/* The view for a request: once it includes q->min_offset (0), or with
 * the reply made (409, 504, 400) or out->wait set (-1). */
static int view_for(const ws_api *api, const ws_query *q, enum route route,
                    const char *id, size_t n, ws_view **v, ws_reply *out)
{
    struct want w[MIN_OFFSETS_MAX];
    int64_t held[MIN_OFFSETS_MAX], waited;
    uint64_t wait = WS_API_WAIT_DEFAULT_MS;
    int nw = 0, bad = 0, in, shard;
    struct header hdr;

    if (q->min_offset && takes_min_offset(route)) {
        if ((nw = parse_min_offset(q->min_offset, w)) < 0) {
            reply_error(out, 400, "invalid_min_offset");
            return -1;
        }
        if (wait_of(q, &wait, out) != 0)
            return -1;
    }
    if (ws_store_view(api->store, v) != WS_OK) {
        reply_error(out, 503, "store_unavailable");
        return -1;
    }
    in = 1;
    shard = route == R_BALANCE || route == R_AVERAGE || route == R_STATEMENT
                ? ws_store_shard_of(api->store, id, n) : -1;
    if (nw > 0) {
        /* A product's answer in a group, merged from every instance: the
         * instances' partitions need the repartitioners' marks, asked
         * for before any instance waits (an instance asked by this one
         * asks too, once its partitions do not hold the offsets). */
        if (api->group && route == R_TOP && !scope_local(q))
            want_marks(api, w, nw);
        in = includes(api, *v, shard, w, nw, held, &bad);
        waited = ws_clock_ms() - q->arrived_ms;
        if (in == 0 && waited < (int64_t)wait) {
            /* the shard's writer (in this process) need not wait for
             * more records before it commits; the request is asked again
             * (no header: it does not answer yet) */
            ws_store_want_commit(api->store, shard);
            if (api->group && shard < 0)
                want_marks(api, w, nw);
            out->wait = 1;
            ws_view_end(*v);
            *v = NULL;
            return -1;
        }
        if (in != 1)
            reply_behind(api, out, in < 0 ? 409 : 504, w, nw, held, bad,
                         waited);
    }
    /* A group's instance: the wallet's shard's offsets of the input
     * topic; none for a product (the answer is merged from the group). */
    hdr.b = &out->offsets;
    hdr.topic = api->group ? api->input_topic : NULL;
    if ((api->group ? shard < 0 ||
                          ws_view_each_shard_offset(*v, shard, offsets_header,
                                                    &hdr) != WS_OK
                    : ws_view_each_offset(*v, offsets_header, &hdr) != WS_OK) ||
        out->offsets.oom)
        ws_buf_reset(&out->offsets);
    if (in == 1)
        return 0;
    ws_view_end(*v);
    *v = NULL;
    return -1;
}

void ws_api_handle(const ws_api *api, const char *method, const char *path,
                   const ws_query *q, int authorized, ws_reply *out)
{
    char id[WS_MAX_ID];
    size_t n = 0, k, plen;
    const char *rest = NULL;
    char raw[3 * WS_MAX_ID + 1];
    enum route route = R_NONE;
    ws_view *v;

    ws_buf_init(&out->body);
    ws_buf_init(&out->offsets);
    out->allow = NULL;
    out->www_authenticate = NULL;
    out->route = "other";
    out->wait = 0;
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
    if (route == R_STATEMENT) {
        /* /wallets/{wallet_id}/transactions: the id is what precedes the
         * suffix (a '/' inside an id comes percent-encoded). */
        size_t rn = strlen(rest), sn = strlen(STATEMENT_SUFFIX);

        if (rn <= sn || strcmp(rest + rn - sn, STATEMENT_SUFFIX) != 0 ||
            rn - sn >= sizeof raw) {
            route = R_NONE;
            out->route = "other";
        } else {
            memcpy(raw, rest, rn - sn);
            raw[rn - sn] = '\0';
            rest = raw;
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
    if (route == R_MARKS) {
        marks(api, q, out);
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
    if ((route == R_BALANCE || route == R_AVERAGE || route == R_STATEMENT) &&
        wallet_elsewhere(api, path, q, id, n, out) == 0)
        return;
    if (view_for(api, q, route, id, n, &v, out) != 0)
        return;
    switch (route) {
    case R_BALANCE: balance(v, id, n, out); break;
    case R_AVERAGE: average(v, id, n, out); break;
    case R_TOP: top_credits(api, &v, id, n, rest, q, out); break;
    case R_TOPS_PART: tops_part(v, id, n, out); break;
    case R_STATEMENT: statement(v, id, n, q, out); break;
    case R_METRICS: metrics(api, v, out); break;
    case R_STATUS: status(api, v, out); break;
    default: break;
    }
    ws_view_end(v);
    if (out->body.oom)
        reply_error(out, 500, "out_of_memory");
}
