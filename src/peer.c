/*
 * peer.c - GET requests to the other instances of a group (libcurl).
 */
#include "peer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "log.h"
#include "timeutil.h"

/* A peer on the same network answers in milliseconds; one that does not
 * answer within this is taken as gone (the request answers 503). */
#define PEER_TIMEOUT_MS 5000
#define PEER_CONNECT_MS 1000
/* Largest answer taken from a peer (a statement page of 1000 lines). */
#define PEER_BODY_MAX (4u << 20)
/* How long a request that met a moved partition waits for the group to
 * be described again before its one retry. */
#define REFRESH_WAIT_MS 3000
/* The instances are asked for marks of the same offsets once per this
 * (a waiting reader rechecks every few milliseconds). */
#define ASK_AGAIN_MS 100

/* Idle curl handles kept for the next request: each keeps its
 * connections open (HTTP keep-alive), so that a forwarded request does
 * not open a TCP connection each time (bench/forward.sh). */
#define PEER_IDLE_MAX 16

struct ws_peer {
    ws_members *members;
    /* "Authorization: Bearer …", NULL: none; set once, read by any
     * thread. */
    _Atomic(char *) auth;
    pthread_mutex_t lock;       /* guards the rest */
    CURL *idle[PEER_IDLE_MAX];
    int nidle;
    ws_repartition *repartition;    /* NULL: not running */
    /* Per input partition: the largest offset marks were asked for, when
     * they were last asked for (want_marks), and the offset the sender
     * thread is to ask the other instances for (-1: none). */
    int64_t asked[WS_SOURCE_MAX_PARTITIONS];
    int64_t asked_ms[WS_SOURCE_MAX_PARTITIONS];
    int64_t to_send[WS_SOURCE_MAX_PARTITIONS];
    pthread_cond_t send_cond;   /* to_send or stopping changed */
    int stopping;
    pthread_t sender;
    int sending;                /* the sender thread runs */
};

/* A handle for one request: an idle one (its connections kept), or a
 * new one; NULL when none can be made. */
static CURL *handle_take(ws_peer *pr)
{
    CURL *c = NULL;

    pthread_mutex_lock(&pr->lock);
    if (pr->nidle > 0)
        c = pr->idle[--pr->nidle];
    pthread_mutex_unlock(&pr->lock);
    if (c)
        curl_easy_reset(c);     /* options gone, connections kept */
    else
        c = curl_easy_init();
    return c;
}

/* Back to the idle ones after a request that went well; closed after
 * one that did not (its connection may be half used). */
static void handle_give(ws_peer *pr, CURL *c, int ok)
{
    if (ok) {
        pthread_mutex_lock(&pr->lock);
        if (pr->nidle < PEER_IDLE_MAX) {
            pr->idle[pr->nidle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&pr->lock);
    }
    if (c)
        curl_easy_cleanup(c);
}

int ws_peer_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? WS_OK
                                                            : WS_ERR_NOMEM;
}

void ws_peer_global_cleanup(void)
{
    curl_global_cleanup();
}

struct answer {
    ws_buf *body;
    ws_buf *offsets;        /* NULL: not wanted */
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;

    if (a->body->len + size * n > PEER_BODY_MAX)
        return 0;       /* aborts the transfer */
    ws_buf_put(a->body, p, size * n);
    return a->body->oom ? 0 : size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    static const char name[] = "walletstream-offsets:";
    struct answer *a = arg;
    size_t len = size * n, k = sizeof name - 1;

    if (a->offsets && len > k && strncasecmp(p, name, k) == 0) {
        while (k < len && p[k] == ' ')
            k++;
        while (len > k && (p[len - 1] == '\r' || p[len - 1] == '\n'))
            len--;
        ws_buf_reset(a->offsets);
        ws_buf_put(a->offsets, p + k, len - k);
    }
    return size * n;
}

/* GET base+target, which may take wait_ms more than an answer takes: 0
 * with *status, the body and (when asked) the Walletstream-Offsets
 * header, or -1. */
static int get(ws_peer *pr, const char *base, const char *target,
               unsigned wait_ms, unsigned *status, ws_buf *body,
               ws_buf *offsets)
{
    CURL *c = handle_take(pr);
    struct curl_slist *hdrs = NULL;
    char *auth = atomic_load(&pr->auth);
    struct answer a = {body, offsets};
    size_t n = strlen(base) + strlen(target) + 1;
    char *url = malloc(n);
    long code = 0;
    CURLcode rc;

    if (!c || !url) {
        free(url);
        if (c)
            handle_give(pr, c, 1);
        return -1;
    }
    snprintf(url, n, "%s%s", base, target);
    if (auth)
        hdrs = curl_slist_append(NULL, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     (long)PEER_TIMEOUT_MS + (long)wait_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)PEER_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    else
        ws_log(WS_LOG_WARN, "group", "GET %s: %s", url,
               curl_easy_strerror(rc));
    curl_slist_free_all(hdrs);
    free(url);
    handle_give(pr, c, rc == CURLE_OK);
    *status = (unsigned)code;
    return rc == CURLE_OK && code > 0 && !body->oom ? 0 : -1;
}

/* One try at the owner of partition p as the members are known: 0 with
 * out set, or -1. */
static int forward_once(ws_peer *pr, int p, const char *target,
                        unsigned wait_ms, ws_reply *out)
{
    char url[WS_MEMBERS_URL_MAX];
    unsigned status;
    ws_buf body, offsets;

    /* Nobody, or this instance (it has not restored it yet). */
    if (ws_members_owner(pr->members, p, url, sizeof url) != WS_OK)
        return -1;
    ws_buf_init(&body);
    ws_buf_init(&offsets);
    if (get(pr, url, target, wait_ms, &status, &body, &offsets) != 0 ||
        status == 503) {
        /* Gone, or not the owner any more (503 not_owned_here). */
        ws_buf_free(&body);
        ws_buf_free(&offsets);
        return -1;
    }
    out->status = status;
    ws_buf_free(&out->body);
    out->body = body;
    ws_buf_free(&out->offsets);
    out->offsets = offsets;
    return 0;
}

static int forward(void *arg, int p, const char *target, unsigned wait_ms,
                   ws_reply *out)
{
    ws_peer *pr = arg;

    if (forward_once(pr, p, target, wait_ms, out) == 0)
        return 0;
    /* The group moved since it was last described: once more, with who
     * owns what now. */
    ws_members_refresh_wait(pr->members, REFRESH_WAIT_MS);
    return forward_once(pr, p, target, wait_ms, out);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One peer's "/internal/tops" answer: "partitions HEX SEEN" (the
 * partitions it answered for; SEEN 1 when one of them saw the product),
 * then lines "CUR HEX". Returns SEEN, or -1 when malformed. */
static int parse_tops(const ws_buf *b, int (*fn)(const ws_top *t, void *),
                      void *farg, uint64_t *covered)
{
    const char *s = b->p, *end = b->p + b->len;
    unsigned long long mask;
    int used = 0, seen;

    if (b->len < 14 || memchr(s, '\n', b->len) == NULL ||
        sscanf(s, "partitions %llx %d%n", &mask, &seen, &used) != 2 ||
        s + used >= end || s[used] != '\n' || (seen != 0 && seen != 1))
        return -1;
    *covered |= mask;
    s += used + 1;

    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        unsigned char raw[WS_TOP_PACKED_MAX];
        size_t n, i;
        ws_top t;

        if (!nl || nl - s < 5 || s[3] != ' ' || (nl - s - 4) % 2 != 0 ||
            (n = (size_t)(nl - s - 4) / 2) > sizeof raw)
            return -1;
        for (i = 0; i < n; i++) {
            int hi = hexval(s[4 + 2 * i]), lo = hexval(s[5 + 2 * i]);

            if (hi < 0 || lo < 0)
                return -1;
            raw[i] = (unsigned char)(hi << 4 | lo);
        }
        if (ws_top_unpack(raw, n, s, &t) != WS_OK)
            return -1;
        fn(&t, farg);
        s = nl + 1;
    }
    return seen;
}

static void want_marks_here(void *arg, const int32_t *parts,
                            const int64_t *offsets, int n)
{
    ws_peer *pr = arg;
    int i;

    pthread_mutex_lock(&pr->lock);
    for (i = 0; i < n && pr->repartition; i++)
        ws_repartition_want_marks(pr->repartition, parts[i], offsets[i]);
    pthread_mutex_unlock(&pr->lock);
}

static void want_marks(void *arg, const int32_t *parts,
                       const int64_t *offsets, int n)
{
    ws_peer *pr = arg;
    int64_t now = ws_clock_ms();
    int i, fresh = 0;

    /* Every reader rechecks often while it waits: the instances are
     * asked once per ASK_AGAIN_MS for the same offsets. */
    pthread_mutex_lock(&pr->lock);
    for (i = 0; i < n; i++) {
        int p = parts[i];

        if (p < 0 || p >= WS_SOURCE_MAX_PARTITIONS ||
            (offsets[i] <= pr->asked[p] &&
             now - pr->asked_ms[p] < ASK_AGAIN_MS))
            continue;
        fresh = 1;
        if (offsets[i] > pr->asked[p])
            pr->asked[p] = offsets[i];
        pr->asked_ms[p] = now;
        if (offsets[i] > pr->to_send[p])
            pr->to_send[p] = offsets[i];
    }
    if (fresh)
        pthread_cond_signal(&pr->send_cond);
    pthread_mutex_unlock(&pr->lock);
    if (fresh)
        want_marks_here(pr, parts, offsets, n);
}

/* The sender thread: asks the other instances for the marks want_marks
 * gathered, "/internal/marks?min_offset=P:O,...", apart from the HTTP
 * threads: an instance's thread that waits for another instance's
 * answer may hold the connection that instance's ask comes in on. An
 * instance that does not answer reads none of the partitions (else the
 * reader's answer is a 503 or a 504 anyway): it is logged. */
static void *send_loop(void *arg)
{
    ws_peer *pr = arg;
    char urls[64][WS_MEMBERS_URL_MAX];
    ws_buf target;
    int p, i, peers;

    ws_buf_init(&target);
    pthread_mutex_lock(&pr->lock);
    while (!pr->stopping) {
        int any = 0;

        ws_buf_reset(&target);
        ws_buf_puts(&target, "/internal/marks?min_offset=");
        for (p = 0; p < WS_SOURCE_MAX_PARTITIONS; p++)
            if (pr->to_send[p] >= 0) {
                ws_buf_printf(&target, "%s%d:%lld", any ? "," : "", p,
                              (long long)pr->to_send[p]);
                pr->to_send[p] = -1;
                any = 1;
            }
        if (!any) {
            pthread_cond_wait(&pr->send_cond, &pr->lock);
            continue;
        }
        pthread_mutex_unlock(&pr->lock);
        peers = target.oom ? -1 : ws_members_peers(pr->members, urls, 64);
        for (i = 0; i < peers; i++) {
            unsigned status = 0;
            ws_buf body;

            ws_buf_init(&body);
            if (get(pr, urls[i], target.p, 0, &status, &body, NULL) != 0 ||
                status != 200)
                ws_log(WS_LOG_WARN, "group", "marks not asked of %s (HTTP "
                       "%u)", urls[i], status);
            ws_buf_free(&body);
        }
        pthread_mutex_lock(&pr->lock);
    }
    pthread_mutex_unlock(&pr->lock);
    ws_buf_free(&target);
    return NULL;
}

/* A product's lists as asked of the other instances (peer_tops). */
struct tops_ask {
    const char *raw_id, *min_offset;
    int64_t deadline_ms;
    int (*fn)(const ws_top *t, void *farg);
    void *farg;
    ws_buf *behind;
};

/* One round over the other members as known: how many saw the product,
 * or -1, or -2 (one answered 504: its body in a->behind); *covered gets
 * the partitions they answered for. */
static int tops_once(ws_peer *pr, const struct tops_ask *a,
                     uint64_t *covered)
{
    char urls[64][WS_MEMBERS_URL_MAX], target[6 * 1024];
    int n = ws_members_peers(pr->members, urls, 64), i, e = 0, known = 0;

    *covered = 0;
    if (n < 0)
        return -1;      /* the group was never described */
    for (i = 0; i < n && e == 0; i++) {
        int64_t left = a->deadline_ms - ws_clock_ms();
        unsigned status, wait_ms = 0;
        ws_buf body;
        int seen = -1;

        /* each instance waits what is left of the request's wait */
        if (a->min_offset)
            wait_ms = left > 0 ? (unsigned)left : 0;
        if ((a->min_offset
                 ? snprintf(target, sizeof target, "/internal/tops/%s?"
                            "min_offset=%s&wait_ms=%u", a->raw_id,
                            a->min_offset, wait_ms)
                 : snprintf(target, sizeof target, "/internal/tops/%s",
                            a->raw_id)) >= (int)sizeof target)
            return -1;
        ws_buf_init(&body);
        if (get(pr, urls[i], target, wait_ms, &status, &body, NULL) == 0) {
            if (status == 200)
                seen = parse_tops(&body, a->fn, a->farg, covered);
            else if (status == 504 && a->behind) {
                ws_buf_reset(a->behind);
                ws_buf_put(a->behind, body.p, body.len);
                seen = -2;
            }
        }
        e = seen < 0 ? seen : 0;
        known += seen == 1;
        ws_buf_free(&body);
    }
    return e != 0 ? e : known;
}

static int peer_tops(void *arg, const char *raw_id, const char *min_offset,
                     int64_t deadline_ms, uint64_t need,
                     int (*fn)(const ws_top *t, void *farg), void *farg,
                     ws_buf *behind)
{
    ws_peer *pr = arg;
    struct tops_ask a = {raw_id, min_offset, deadline_ms, fn, farg, behind};
    uint64_t covered;
    int known = tops_once(pr, &a, &covered);

    if (known == -2 || (known >= 0 && (covered & need) == need))
        return known;
    /* An instance gone, or a partition moving: once more with the group
     * as it is now (the lists already given stay: merging one twice
     * changes nothing). */
    ws_members_refresh_wait(pr->members, REFRESH_WAIT_MS);
    known = tops_once(pr, &a, &covered);
    return known == -2 || (known >= 0 && (covered & need) == need) ? known
                                                                   : -1;
}

static void describe(void *arg, ws_buf *b)
{
    ws_peer *pr = arg;

    ws_members_json(pr->members, b);
}

int ws_peer_new(ws_members *m, ws_peer **out, ws_api_group *hooks)
{
    ws_peer *pr = calloc(1, sizeof *pr);
    int i;

    *out = NULL;
    if (!pr)
        return WS_ERR_NOMEM;
    pr->members = m;
    for (i = 0; i < WS_SOURCE_MAX_PARTITIONS; i++)
        pr->asked[i] = pr->to_send[i] = -1;
    atomic_init(&pr->auth, NULL);
    pthread_mutex_init(&pr->lock, NULL);
    pthread_cond_init(&pr->send_cond, NULL);
    if (pthread_create(&pr->sender, NULL, send_loop, pr) != 0) {
        ws_peer_free(pr);
        return WS_ERR_NOMEM;
    }
    pr->sending = 1;
    hooks->arg = pr;
    hooks->forward = forward;
    hooks->peer_tops = peer_tops;
    hooks->want_marks = want_marks;
    hooks->want_marks_here = want_marks_here;
    hooks->describe = describe;
    *out = pr;
    return WS_OK;
}

int ws_peer_set_token(ws_peer *p, const char *token)
{
    size_t n;
    char *auth;

    if (!token)
        return WS_OK;
    n = strlen(token) + 32;
    if (!(auth = malloc(n)))
        return WS_ERR_NOMEM;
    snprintf(auth, n, "Authorization: Bearer %s", token);
    free(atomic_exchange(&p->auth, auth));
    return WS_OK;
}

void ws_peer_set_repartition(ws_peer *p, ws_repartition *r)
{
    pthread_mutex_lock(&p->lock);
    p->repartition = r;
    pthread_mutex_unlock(&p->lock);
}

void ws_peer_free(ws_peer *p)
{
    if (!p)
        return;
    if (p->sending) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_cond_signal(&p->send_cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->sender, NULL);
    }
    free(atomic_load(&p->auth));
    while (p->nidle > 0)
        curl_easy_cleanup(p->idle[--p->nidle]);
    pthread_cond_destroy(&p->send_cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
