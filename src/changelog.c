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
#include "topics.h"

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
    int skip_tops;              /* ws_changelog_skip_tops */
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
    if (e == WS_OK && res->top_changed && !c->skip_tops)
        e = ws_keyset_add(c->products, t->product_id, t->product_id_len);
    if (e == WS_OK)
        e = note_applied(c, partition, offset, res);
    return e;
}

void ws_changelog_skip_tops(ws_changelog *c)
{
    c->skip_tops = 1;
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

int ws_changelog_create_topics(rd_kafka_t *rk, const char *topic, char *why)
{
    char names[WS_CL_COUNT][600];
    ws_topic_spec specs[WS_CL_COUNT];
    int i;

    for (i = 0; i < WS_CL_COUNT; i++) {
        snprintf(names[i], sizeof names[i], "%s.%s", topic,
                 ws_changelog_suffixes[i]);
        specs[i].name = names[i];
        specs[i].partitions = -1;
        specs[i].compact = i < WS_CL_COMPACTED;
    }
    return ws_topics_ensure(rk, specs, WS_CL_COUNT, "changelog", why);
}
