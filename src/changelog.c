/*
 * changelog.c - changed keys of a batch, published as figures.
 */
#include "changelog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures.h"
#include "json_out.h"
#include "keyset.h"
#include "log.h"
#include "timeutil.h"

#define ADMIN_TIMEOUT_MS 5000
/* Short, so that a stop is noticed while the broker is away. */
#define METADATA_TIMEOUT_MS 1000
/* Between metadata requests that wait for created topics to show. */
#define METADATA_RETRY_MS 100

const char *const ws_changelog_suffixes[WS_CL_COUNT] = {
    "balances", "avg_debits", "top_credits", "applied"};

/* An applied record of the batch: its key and its value up to the commit
 * time, in c->applied. */
struct applied {
    size_t off, key_len, len;
};

struct ws_changelog {
    char topics[WS_CL_COUNT][600];
    const char *source;         /* the input topic */
    ws_keyset *wallets;
    ws_keyset *products;
    ws_buf value;
    ws_buf applied;             /* keys and values of struct applied */
    struct applied *recs;
    size_t nrecs, cap;
};

int ws_changelog_new(const char *topic, ws_changelog **out)
{
    ws_changelog *c = calloc(1, sizeof *c);
    int i;

    if (!c || ws_keyset_new(&c->wallets) || ws_keyset_new(&c->products)) {
        ws_changelog_free(c);
        return WS_ERR_NOMEM;
    }
    for (i = 0; i < WS_CL_COUNT; i++)
        snprintf(c->topics[i], sizeof c->topics[i], "%s.%s", topic,
                 ws_changelog_suffixes[i]);
    c->source = topic;
    ws_buf_init(&c->value);
    ws_buf_init(&c->applied);
    *out = c;
    return WS_OK;
}

void ws_changelog_free(ws_changelog *c)
{
    if (!c)
        return;
    ws_keyset_free(c->wallets);
    ws_keyset_free(c->products);
    ws_buf_free(&c->value);
    ws_buf_free(&c->applied);
    free(c->recs);
    free(c);
}

/* The applied record's value up to its commit time, after its key. */
static int note_applied(ws_changelog *c, int partition, int64_t offset,
                        const ws_result *res)
{
    const ws_txn *t = &res->txn;
    ws_buf *b = &c->applied;
    struct applied *a;

    if (c->nrecs == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        struct applied *p = realloc(c->recs, cap * sizeof *p);

        if (!p)
            return WS_ERR_NOMEM;
        c->recs = p;
        c->cap = cap;
    }
    a = &c->recs[c->nrecs];
    a->off = b->len;
    a->key_len = t->wallet_id_len;
    ws_buf_put(b, t->wallet_id, t->wallet_id_len);
    ws_figures_applied(b, t, c->source, partition, offset, res->seq,
                       res->balance_after, res->balance_scale);
    if (b->oom)
        return WS_ERR_NOMEM;
    a->len = b->len - a->off - a->key_len;
    c->nrecs++;
    return WS_OK;
}

int ws_changelog_note(ws_changelog *c, int partition, int64_t offset,
                      const ws_result *res)
{
    const ws_txn *t = &res->txn;
    int e;

    if (res->outcome != WS_APPLIED)
        return WS_OK;
    e = ws_keyset_add(c->wallets, t->wallet_id, t->wallet_id_len);
    if (e == WS_OK && res->top_changed)
        e = ws_keyset_add(c->products, t->product_id, t->product_id_len);
    if (e == WS_OK)
        e = note_applied(c, partition, offset, res);
    return e;
}

int ws_changelog_tops_changed(const ws_changelog *c)
{
    return ws_keyset_count(c->products) > 0;
}

void ws_changelog_reset(ws_changelog *c)
{
    ws_keyset_clear(c->wallets);
    ws_keyset_clear(c->products);
    ws_buf_reset(&c->applied);
    c->nrecs = 0;
}

static int send_value(ws_changelog *c, ws_producer *p, int topic,
                      const char *key, size_t n, char *why)
{
    if (c->value.oom) {
        snprintf(why, WS_SOURCE_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    return ws_producer_send(p, c->topics[topic], key, n, c->value.p,
                            c->value.len, NULL, 0, why);
}

/* Sends the batch's applied records, in the order applied, each ending
 * with the commit time `at` (a JSON string with its closing brace). */
static int publish_applied(ws_changelog *c, ws_producer *p, const char *at,
                           size_t at_len, char *why)
{
    size_t i;
    int e = WS_OK;

    for (i = 0; e == WS_OK && i < c->nrecs; i++) {
        const struct applied *a = &c->recs[i];
        const char *k = c->applied.p + a->off;

        ws_buf_reset(&c->value);
        ws_buf_put(&c->value, k + a->key_len, a->len);
        ws_buf_put(&c->value, at, at_len);
        e = send_value(c, p, WS_CL_APPLIED, k, a->key_len, why);
    }
    return e;
}

int ws_changelog_publish(ws_changelog *c, ws_batch *b, ws_producer *p,
                         char *why)
{
    size_t i, n;
    int e = WS_OK;

    for (i = 0; e == WS_OK && i < ws_keyset_count(c->wallets); i++) {
        const char *id = ws_keyset_key(c->wallets, i, &n);
        ws_wallet w;

        if ((e = ws_batch_wallet_get(b, id, n, &w)) != WS_OK) {
            snprintf(why, WS_SOURCE_ERR_MAX, "state store: %s",
                     ws_strerror(e));
            break;
        }
        ws_buf_reset(&c->value);
        ws_figures_balance(&c->value, id, n, &w);
        e = send_value(c, p, WS_CL_BALANCES, id, n, why);
        if (e == WS_OK) {
            ws_buf_reset(&c->value);
            ws_figures_average(&c->value, id, n, &w);
            e = send_value(c, p, WS_CL_AVG_DEBITS, id, n, why);
        }
    }
    for (i = 0; e == WS_OK && i < ws_keyset_count(c->products); i++) {
        const char *id = ws_keyset_key(c->products, i, &n);
        ws_tops_writer tw;

        ws_buf_reset(&c->value);
        ws_figures_tops_begin(&tw, &c->value, id, n, NULL);
        if ((e = ws_batch_tops(b, id, n, ws_figures_tops_add, &tw)) != WS_OK) {
            snprintf(why, WS_SOURCE_ERR_MAX, "state store: %s",
                     ws_strerror(e));
            break;
        }
        ws_figures_tops_end(&tw);
        e = send_value(c, p, WS_CL_TOP_CREDITS, id, n, why);
    }
    if (e == WS_OK && c->nrecs > 0) {
        ws_buf at;

        ws_buf_init(&at);
        ws_json_time(&at, ws_time_now_ms());
        ws_buf_putc(&at, '}');
        e = at.oom ? WS_ERR_NOMEM
                   : publish_applied(c, p, at.p, at.len, why);
        if (at.oom)
            snprintf(why, WS_SOURCE_ERR_MAX, "out of memory");
        ws_buf_free(&at);
    }
    ws_changelog_reset(c);
    return e;
}

/* WS_OK when every topic of names[0..n) exists on the cluster,
 * WS_ERR_NOT_FOUND when some do not, WS_ERR_IO when the cluster does not
 * answer. */
static int topics_exist(rd_kafka_t *rk, char names[][600], int n, char *why)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t rc = rd_kafka_metadata(rk, 1, NULL, &md,
                                               METADATA_TIMEOUT_MS);
    int i, j, found = 0;

    if (rc) {
        snprintf(why, WS_SOURCE_ERR_MAX, "Kafka broker unreachable: %s",
                 rd_kafka_err2str(rc));
        return WS_ERR_IO;
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < md->topic_cnt; j++)
            if (strcmp(md->topics[j].topic, names[i]) == 0 &&
                !md->topics[j].err) {
                found++;
                break;
            }
    rd_kafka_metadata_destroy(md);
    if (found < n) {
        snprintf(why, WS_SOURCE_ERR_MAX, "%d of the %d changelog topics "
                 "are missing and could not be created", n - found, n);
        return WS_ERR_NOT_FOUND;
    }
    return WS_OK;
}

int ws_changelog_create_topics(rd_kafka_t *rk, const char *topic, char *why)
{
    char names[WS_CL_COUNT][600], errstr[256];
    rd_kafka_NewTopic_t *nt[WS_CL_COUNT] = {0};
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    int64_t deadline;
    int i, e, refused = 0;

    for (i = 0; i < WS_CL_COUNT; i++)
        snprintf(names[i], sizeof names[i], "%s.%s", topic,
                 ws_changelog_suffixes[i]);
    e = topics_exist(rk, names, WS_CL_COUNT, why);
    if (e != WS_ERR_NOT_FOUND) {
        if (q)
            rd_kafka_queue_destroy(q);
        return e;
    }
    for (i = 0; i < WS_CL_COUNT; i++) {
        nt[i] = rd_kafka_NewTopic_new(names[i], -1, -1, errstr,
                                      sizeof errstr);
        if (nt[i] && i < WS_CL_COMPACTED)
            rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "compact");
    }
    if (q && nt[0] && nt[1] && nt[2] && nt[3]) {
        rd_kafka_CreateTopics(rk, nt, WS_CL_COUNT, NULL, q);
        ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS + 1000);
    }
    if (ev && rd_kafka_event_error(ev)) {
        ws_log(WS_LOG_WARN, "changelog", "cannot create the changelog "
               "topics: %s", rd_kafka_event_error_string(ev));
        refused = 1;
    } else if (ev) {
        const rd_kafka_CreateTopics_result_t *res =
            rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0, k;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;

        for (k = 0; k < cnt; k++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(tr[k]);

            if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
                ws_log(WS_LOG_INFO, "changelog", "created topic %s",
                       rd_kafka_topic_result_name(tr[k]));
            else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                ws_log(WS_LOG_WARN, "changelog", "cannot create %s: %s",
                       rd_kafka_topic_result_name(tr[k]),
                       rd_kafka_topic_result_error_string(tr[k]));
                refused = 1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    for (i = 0; i < WS_CL_COUNT; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    if (q)
        rd_kafka_queue_destroy(q);
    /* A broker answers CreateTopics before every broker's metadata lists
     * the new topics (seen on a fresh single-node Kafka 4.4: all three
     * created, none in the next metadata answer): ask again for a while. */
    deadline = ws_clock_ms() + ADMIN_TIMEOUT_MS;
    while ((e = topics_exist(rk, names, WS_CL_COUNT, why)) ==
               WS_ERR_NOT_FOUND && !refused && ws_clock_ms() < deadline)
        rd_kafka_poll(rk, METADATA_RETRY_MS);   /* the producer's events */
    if (e != WS_OK)
        return e;
    if (refused)
        ws_log(WS_LOG_WARN, "changelog", "the changelog topics exist but "
               "walletstream could not ensure cleanup.policy=compact on them");
    return WS_OK;
}
