/*
 * state_topic.c - a shard's changes into its partition of the state
 * topic, and a shard rebuilt from it.
 */
#include "state_topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"

/* Changes applied per LMDB transaction while restoring. */
#define RESTORE_BATCH 20000
/* The whole restore may take this long without progress. */
#define RESTORE_STALL_MS 30000

#define MARK_NEXT "state_next"
#define MARK_TIME "state_time"

/* A record's value starts with this byte: many records are empty (a
 * product or debit day is its key alone), and an empty value must not
 * read as a deletion (null). */
#define VALUE_TAG 1
#define VALUE_MAX 4096

struct publish {
    ws_producer *p;
    const char *topic;
    int partition;
    char *why;
    unsigned char buf[VALUE_MAX + 1];
};

static int send_change(void *arg, const void *key, size_t kn,
                       const void *value, size_t vn)
{
    struct publish *pb = arg;

    if (!value)     /* deleted: a tombstone */
        return ws_producer_send_to(pb->p, pb->topic, pb->partition, key, kn,
                                   NULL, 0, NULL, 0, pb->why);
    if (vn > VALUE_MAX) {
        snprintf(pb->why, WS_SOURCE_ERR_MAX, "a record of %zu bytes", vn);
        return WS_ERR_USAGE;
    }
    pb->buf[0] = VALUE_TAG;
    memcpy(pb->buf + 1, value, vn);
    return ws_producer_send_to(pb->p, pb->topic, pb->partition, key, kn,
                               pb->buf, vn + 1, NULL, 0, pb->why);
}

int ws_state_publish(ws_batch *b, ws_producer *p, const char *state_topic,
                     int partition, char *why)
{
    struct publish *pb = malloc(sizeof *pb);
    int e;

    if (!pb) {
        snprintf(why, WS_SOURCE_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    pb->p = p;
    pb->topic = state_topic;
    pb->partition = partition;
    pb->why = why;
    ws_producer_track(p, state_topic, partition);
    e = ws_batch_each_change(b, send_change, pb);
    free(pb);
    return e;
}

int ws_state_mark_next(ws_batch *b, int64_t next)
{
    int e = ws_batch_mark_set(b, MARK_NEXT, (uint64_t)next);

    return e == WS_OK ? ws_batch_mark_set(b, MARK_TIME,
                                          (uint64_t)ws_clock_ms())
                      : e;
}

int ws_state_mark(ws_batch *b, const ws_producer *p)
{
    int64_t last = ws_producer_tracked(p);

    if (last < 0)
        return WS_OK;   /* nothing went there */
    /* The transaction's records are contiguous (one writer), and its
     * commit marker follows the last: the log ends two past it. */
    return ws_state_mark_next(b, last + 2);
}

int ws_state_copy_at(ws_store *store, int shard, int64_t lo, int64_t hi,
                     int64_t *next)
{
    uint64_t mark = 0, when = 0;

    if (ws_store_mark_get(store, shard, MARK_NEXT, &mark) != WS_OK ||
        ws_store_mark_get(store, shard, MARK_TIME, &when) != WS_OK ||
        (int64_t)mark < lo || (hi >= 0 && (int64_t)mark > hi) ||
        ws_clock_ms() - (int64_t)when >= WS_STATE_DELTA_MAX_MS)
        return WS_ERR_NOT_FOUND;
    *next = (int64_t)mark;
    return WS_OK;
}

int ws_state_apply(ws_batch *b, const rd_kafka_message_t *m, char *why)
{
    const unsigned char *v = m->payload;
    int e;

    if (v && (m->len == 0 || v[0] != VALUE_TAG))
        e = WS_ERR_CORRUPT;
    else
        e = ws_batch_apply_change(b, m->key, m->key_len, v ? v + 1 : NULL,
                                  v ? m->len - 1 : 0);
    if (e == WS_ERR_CORRUPT)
        snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d] offset %lld: a record of "
                 "no table of the state", rd_kafka_topic_name(m->rkt),
                 (int)m->partition, (long long)m->offset);
    else if (e != WS_OK)
        snprintf(why, WS_SOURCE_ERR_MAX, "state store: %s", ws_strerror(e));
    return e;
}

rd_kafka_t *ws_state_reader(const ws_kafka_opts *opts, int eof, char *why)
{
    char errstr[512], group[600];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    snprintf(group, sizeof group, "%s.restore", opts->group);
    if (!conf || ws_kafka_conf_set(conf, "bootstrap.servers",
                                   opts->brokers, why) ||
        ws_kafka_conf_set(conf, "group.id", group, why) ||
        ws_kafka_conf_set(conf, "enable.auto.commit", "false", why) ||
        ws_kafka_conf_set(conf, "isolation.level", "read_committed", why) ||
        ws_kafka_conf_set(conf, "enable.partition.eof",
                          eof ? "true" : "false", why) ||
        ws_kafka_conf_set(conf, "auto.offset.reset", "error", why) ||
        ws_kafka_conf_set(conf, "client.id", "walletstream-restore", why) ||
        ws_kafka_conf_props(conf, opts, why)) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                            sizeof errstr))) {
        snprintf(why, WS_SOURCE_ERR_MAX, "cannot create the state reader: "
                 "%s", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Commits the open restore batch and opens the next (*b NULL at the
 * end). */
static int restore_commit(ws_store *store, int shard, ws_batch **b,
                          int64_t next, int last)
{
    int e = WS_OK;

    if (last)
        e = ws_state_mark_next(*b, next);
    if (e == WS_OK)
        e = ws_batch_commit(*b);
    else
        ws_batch_abort(*b);
    *b = NULL;
    if (e == WS_OK && !last)
        e = ws_store_begin_shard(store, shard, b);
    return e;
}

int ws_state_restore(const ws_kafka_opts *opts, const char *state_topic,
                     int partition, ws_store *store, int shard,
                     ws_restore_progress_fn progress, void *arg,
                     ws_restore_stats *st, char *why)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_t *rk;
    ws_batch *b = NULL;
    int64_t lo = -1, hi = -1, from, next, in_batch = 0, mark = 0;
    int64_t t0 = ws_clock_ms(), last_progress = t0;
    rd_kafka_resp_err_t rc;
    int e = WS_OK, done = 0, have;

    memset(st, 0, sizeof *st);
    why[0] = '\0';
    if (!(rk = ws_state_reader(opts, 1, why)))
        return WS_ERR_IO;
    rc = rd_kafka_query_watermark_offsets(rk, state_topic, partition, &lo,
                                          &hi, 10000);
    if (rc) {
        snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d]: cannot read its bounds: "
                 "%s", state_topic, partition, rd_kafka_err2str(rc));
        e = WS_ERR_IO;
        goto out;
    }
    /* Up to date, or only what came since; else all of it, into an
     * emptied shard (a new instance, a copy too old or from another
     * log). */
    have = ws_state_copy_at(store, shard, lo, hi, &mark) == WS_OK;
    st->full = !have;
    from = st->full ? (lo > 0 ? lo : 0) : mark;
    st->from = st->to = next = from;
    if ((e = ws_store_begin_shard(store, shard, &b)) != WS_OK)
        goto store_error;
    if (st->full && (e = ws_batch_wipe(b)) != WS_OK)
        goto store_error;
    if (from >= hi) {
        e = restore_commit(store, shard, &b, hi > from ? hi : from, 1);
        st->to = from;
        if (e != WS_OK)
            goto store_error;
        goto out;
    }
    if (!(list = rd_kafka_topic_partition_list_new(1))) {
        e = WS_ERR_NOMEM;
        goto store_error;
    }
    rd_kafka_topic_partition_list_add(list, state_topic, partition)->offset =
        from;
    if (progress)
        progress(arg, from, hi);
    if ((rc = rd_kafka_assign(rk, list)) != 0) {
        snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d]: cannot read it: %s",
                 state_topic, partition, rd_kafka_err2str(rc));
        e = WS_ERR_IO;
        goto out;
    }
    while (!done && e == WS_OK) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);

        if (!m) {
            if (ws_clock_ms() - last_progress > RESTORE_STALL_MS) {
                snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d]: no progress for "
                         "%d s at offset %lld of %lld", state_topic,
                         partition, RESTORE_STALL_MS / 1000,
                         (long long)next, (long long)hi);
                e = WS_ERR_IO;
            }
            continue;
        }
        last_progress = ws_clock_ms();
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            next = m->offset;
            done = 1;
        } else if (m->err) {
            snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d]: %s", state_topic,
                     partition, rd_kafka_message_errstr(m));
            e = WS_ERR_IO;
        } else {
            e = ws_state_apply(b, m, why);
            st->records++;
            st->bytes += (int64_t)(m->key_len + m->len);
            next = m->offset + 1;
            if (e == WS_OK && ++in_batch >= RESTORE_BATCH) {
                in_batch = 0;
                e = restore_commit(store, shard, &b, next, 0);
                if (progress)
                    progress(arg, next, hi);
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (e == WS_OK)
        e = restore_commit(store, shard, &b, next, 1);
    st->to = next;
    if (e != WS_OK && !why[0])
        goto store_error;
    goto out;
store_error:
    snprintf(why, WS_SOURCE_ERR_MAX, "state store shard %d cannot be "
             "restored: %s", shard, ws_strerror(e));
out:
    if (b)
        ws_batch_abort(b);
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    st->seconds = (double)(ws_clock_ms() - t0) / 1000.0;
    return e;
}
