/*
 * standby.c - warm copies of other instances' partitions, fed from the
 * state topic between the stream thread's polls.
 */
#include "standby.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "state_topic.h"
#include "timeutil.h"

/* How often the copies to keep are computed from the members. */
#define WANT_EVERY_MS 200

struct ws_standby {
    const ws_kafka_opts *opts;
    char topic[600], self[256];
    ws_store *store;
    ws_members *members;
    int replicas;
    rd_kafka_t *rk;
    uint64_t mask;              /* the copies being fed */
    uint64_t want;              /* the copies to keep, as last computed */
    int64_t want_ms;            /* when (ws_clock_ms) */
    int64_t next[64];           /* where each copy stops */
};

int ws_standby_new(const ws_kafka_opts *opts, const char *state_topic,
                   ws_store *store, ws_members *members, const char *self,
                   int replicas, ws_standby **out, char *err)
{
    ws_standby *s = calloc(1, sizeof *s);

    *out = NULL;
    if (!s) {
        snprintf(err, WS_SOURCE_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    s->opts = opts;
    snprintf(s->topic, sizeof s->topic, "%s", state_topic);
    snprintf(s->self, sizeof s->self, "%s", self);
    s->store = store;
    s->members = members;
    s->replicas = replicas;
    if (!(s->rk = ws_state_reader(opts, 0, err))) {
        free(s);
        return WS_ERR_IO;
    }
    *out = s;
    return WS_OK;
}

void ws_standby_free(ws_standby *s)
{
    if (!s)
        return;
    rd_kafka_consumer_close(s->rk);
    rd_kafka_destroy(s->rk);
    free(s);
}

uint64_t ws_standby_partitions(const ws_standby *s)
{
    return s->mask;
}

/* Feeds the copies of `want` from where each stops; a copy without a
 * recent position is emptied and fed from the log's start. */
static int reassign(ws_standby *s, uint64_t want, char *why)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    rd_kafka_resp_err_t rc;
    int p, e = WS_OK;

    if (!l)
        return WS_ERR_NOMEM;
    for (p = 0; p < 64 && e == WS_OK; p++) {
        int64_t at = 0;
        ws_batch *b = NULL;

        if (!(want >> p & 1))
            continue;
        if (!(s->mask >> p & 1) &&
            ws_state_copy_at(s->store, p, 0, -1, &at) != WS_OK) {
            at = 0;
            if ((e = ws_store_begin_shard(s->store, p, &b)) == WS_OK &&
                (e = ws_batch_wipe(b)) == WS_OK &&
                (e = ws_state_mark_next(b, 0)) == WS_OK)
                e = ws_batch_commit(b);
            else if (e != WS_OK && b)
                ws_batch_abort(b);
            if (e != WS_OK)
                snprintf(why, WS_SOURCE_ERR_MAX, "standby copy of "
                         "partition %d: %s", p, ws_strerror(e));
        } else if (s->mask >> p & 1) {
            at = s->next[p];
        }
        s->next[p] = at;
        rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = at;
    }
    if (e == WS_OK && (rc = rd_kafka_assign(s->rk, l->cnt ? l : NULL))) {
        snprintf(why, WS_SOURCE_ERR_MAX, "standby copies: %s",
                 rd_kafka_err2str(rc));
        e = WS_ERR_IO;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e == WS_OK) {
        if (want != s->mask)
            ws_log(WS_LOG_INFO, "group", "standby copies of %d partitions "
                   "kept warm", __builtin_popcountll(want));
        s->mask = want;
    }
    return e;
}

int ws_standby_step(ws_standby *s, int max, char *why)
{
    uint64_t want;
    ws_batch *b[64] = {0};
    int n = 0, p, e = WS_OK;

    /* Called between every two polls: the members' order is sorted again
     * only every WANT_EVERY_MS (they change at a rebalance, seconds
     * apart); the owned mask is always current. */
    if (ws_clock_ms() - s->want_ms >= WANT_EVERY_MS) {
        s->want = ws_members_standby(s->members, s->self, s->replicas);
        s->want_ms = ws_clock_ms();
    }
    want = s->want & ~ws_store_owned(s->store);
    if (want != s->mask && (e = reassign(s, want, why)) != WS_OK) {
        s->mask = 0;    /* start over at the next step */
        return -1;
    }
    while (n < max && e == WS_OK) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 0);

        if (!m)
            break;
        p = m->partition;
        if (m->err || p < 0 || p >= 64 || !(s->mask >> p & 1)) {
            if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ws_log(WS_LOG_WARN, "group", "standby copies: %s",
                       rd_kafka_message_errstr(m));
        } else if (!b[p] &&
                   (e = ws_store_begin_shard(s->store, p, &b[p])) != WS_OK) {
            snprintf(why, WS_SOURCE_ERR_MAX, "standby copy of partition "
                     "%d: %s", p, ws_strerror(e));
        } else if ((e = ws_state_apply(b[p], m, why)) == WS_OK) {
            s->next[p] = m->offset + 1;
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    for (p = 0; p < 64; p++) {
        if (!b[p])
            continue;
        if (e == WS_OK && (e = ws_state_mark_next(b[p], s->next[p])) ==
                              WS_OK &&
            (e = ws_batch_commit(b[p])) != WS_OK)
            snprintf(why, WS_SOURCE_ERR_MAX, "standby copy of partition "
                     "%d: %s", p, ws_strerror(e));
        else if (e != WS_OK)
            ws_batch_abort(b[p]);
    }
    if (e != WS_OK) {
        s->mask = 0;    /* positions from the store at the next step */
        return -1;
    }
    return n;
}

void ws_standby_release(ws_standby *s, int p)
{
    char why[WS_SOURCE_ERR_MAX];

    if (!s || p < 0 || p >= 64 || !(s->mask >> p & 1))
        return;
    if (reassign(s, s->mask & ~((uint64_t)1 << p), why) != WS_OK) {
        ws_log(WS_LOG_WARN, "group", "%s", why);
        rd_kafka_assign(s->rk, NULL);
        s->mask = 0;
    }
}
