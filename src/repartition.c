/*
 * repartition.c - input records into <topic>.by-wallet, exactly once.
 */
#include "repartition.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode.h"
#include "log.h"
#include "producer.h"
#include "store.h"
#include "timeutil.h"

/* Records per transaction at most, and how long one gathers records
 * (the repartitioner's batch linger: it adds that much latency). */
#define TXN_MAX 5000
#define LINGER_MS 5
/* Pause after a failed transaction. */
#define RETRY_MS 500

struct ws_repartition {
    ws_kafka_opts in;           /* strings copied below */
    char topic[600], group[600], instance[300], out_topic[600];
    char txn_id[1300];
    int partitions;
    rd_kafka_t *rk;             /* the consumer */
    ws_producer *producer;
    ws_decoder *decoder;
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_ullong records;
    int64_t next[WS_SOURCE_MAX_PARTITIONS];   /* after the open txn's */
};

/* Partitions given whose committed offset lies below the log's start:
 * records deleted (retention) before they were repartitioned. Reading
 * goes on from the log's start (auto.offset.reset=earliest); the loss is
 * logged, never silent. */
static void warn_deleted(rd_kafka_t *rk,
                         const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *c =
        rd_kafka_topic_partition_list_copy(parts);
    int i;

    if (!c)
        return;
    if (rd_kafka_committed(rk, c, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (i = 0; i < c->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &c->elems[i];
            int64_t lo = -1, hi = -1;

            if (tp->offset >= 0 &&
                rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition,
                                                 &lo, &hi, 5000) == 0 &&
                tp->offset < lo)
                ws_log(WS_LOG_ERROR, "repartition", "%s [%d]: records %lld "
                       "to %lld (%lld) were deleted from the log before they "
                       "were repartitioned; reading on from offset %lld",
                       tp->topic, (int)tp->partition, (long long)tp->offset,
                       (long long)lo - 1, (long long)(lo - tp->offset),
                       (long long)lo);
        }
    rd_kafka_topic_partition_list_destroy(c);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    rd_kafka_error_t *error;

    (void)opaque;
    /* Where to read comes from the group's committed offsets (committed
     * with the records, in the transactions). */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        warn_deleted(rk, parts);
        error = rd_kafka_incremental_assign(rk, parts);
    } else
        error = rd_kafka_incremental_unassign(rk, parts);
    if (error) {
        ws_log(WS_LOG_ERROR, "repartition", "rebalance: %s",
               rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

static int open_consumer(ws_repartition *r, char *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t rc;
    int e;

    if (!conf)
        return WS_ERR_NOMEM;
    if ((e = ws_kafka_conf_set(conf, "bootstrap.servers",
                               r->in.brokers, err)) ||
        (e = ws_kafka_conf_set(conf, "group.id", r->group, err)) ||
        (e = ws_kafka_conf_set(conf, "group.instance.id", r->instance, err)) ||
        (e = ws_kafka_conf_set(conf, "partition.assignment.strategy",
                               "cooperative-sticky", err)) ||
        (e = ws_kafka_conf_set(conf, "enable.auto.commit", "false", err)) ||
        (e = ws_kafka_conf_set(conf, "enable.auto.offset.store",
                               "false", err)) ||
        /* A new group reads the topic from its start: every record. */
        (e = ws_kafka_conf_set(conf, "auto.offset.reset", "earliest", err)) ||
        (e = ws_kafka_conf_set(conf, "isolation.level",
                               "read_committed", err)) ||
        (e = ws_kafka_conf_set(conf, "client.id",
                               "walletstream-repartition", err)) ||
        (e = ws_kafka_conf_session(conf, &r->in, err)) ||
        (e = ws_kafka_conf_props(conf, &r->in, err))) {
        rd_kafka_conf_destroy(conf);
        return e;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    if (!(r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                               sizeof errstr))) {
        snprintf(err, WS_SOURCE_ERR_MAX, "repartition: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return WS_ERR_IO;
    }
    rd_kafka_poll_set_consumer(r->rk);
    if (!(l = rd_kafka_topic_partition_list_new(1)))
        return WS_ERR_NOMEM;
    rd_kafka_topic_partition_list_add(l, r->topic, RD_KAFKA_PARTITION_UA);
    rc = rd_kafka_subscribe(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (rc) {
        snprintf(err, WS_SOURCE_ERR_MAX, "repartition: cannot join %s: %s",
                 r->group, rd_kafka_err2str(rc));
        return WS_ERR_IO;
    }
    return WS_OK;
}

/* The partition of <topic>.by-wallet a record goes to. */
static int32_t target(ws_repartition *r, const rd_kafka_message_t *m)
{
    char wallet[WS_MAX_ID];
    size_t n;

    if (ws_decode_wallet_key(r->decoder, m->payload, m->len, wallet, &n) ==
            0 && ws_id_valid(wallet, n))
        return (int32_t)ws_shard_index(wallet, n, r->partitions);
    return (int32_t)((unsigned)m->partition % (unsigned)r->partitions);
}

static int forward(ws_repartition *r, const rd_kafka_message_t *m,
                   char *why)
{
    char source[700];
    ws_header h = {"walletstream.source", source};

    snprintf(source, sizeof source, "%s/%d/%lld", r->topic,
             (int)m->partition, (long long)m->offset);
    return ws_producer_send_to(r->producer, r->out_topic, target(r, m),
                               m->key, m->key_len, m->payload, m->len, &h, 1,
                               why);
}

/* The input offsets after the records of the open transaction, into it. */
static int send_offsets(ws_repartition *r, char *why)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    int p, e;

    if (!l)
        return WS_ERR_NOMEM;
    for (p = 0; p < WS_SOURCE_MAX_PARTITIONS; p++)
        if (r->next[p] >= 0)
            rd_kafka_topic_partition_list_add(l, r->topic, p)->offset =
                r->next[p];
    e = l->cnt > 0 ? ws_producer_send_offsets(r->producer, r->rk, l, why)
                   : WS_OK;
    rd_kafka_topic_partition_list_destroy(l);
    return e;
}

/* After a failed transaction: read again from the group's committed
 * offsets (what was committed is in the output; nothing after it). */
static void rewind_to_committed(ws_repartition *r)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    int i;

    if (rd_kafka_assignment(r->rk, &a) || !a)
        return;
    if (a->cnt > 0 && rd_kafka_committed(r->rk, a, 10000) == 0)
        for (i = 0; i < a->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &a->elems[i];
            rd_kafka_topic_partition_list_t *one =
                rd_kafka_topic_partition_list_new(1);
            rd_kafka_error_t *error;

            if (!one)
                continue;
            rd_kafka_topic_partition_list_add(one, tp->topic, tp->partition)
                ->offset = tp->offset >= 0 ? tp->offset
                                           : RD_KAFKA_OFFSET_BEGINNING;
            if ((error = rd_kafka_seek_partitions(r->rk, one, 10000)))
                rd_kafka_error_destroy(error);
            rd_kafka_topic_partition_list_destroy(one);
        }
    rd_kafka_topic_partition_list_destroy(a);
}

static int open_producer(ws_repartition *r, char *err)
{
    ws_kafka_opts o = r->in;

    o.topic = r->out_topic;
    return ws_producer_open_txn(&o, r->txn_id, 30000, &r->producer, err);
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void *run(void *arg)
{
    ws_repartition *r = arg;
    char why[WS_SOURCE_ERR_MAX];
    int p, n, e;

    while (!atomic_load(&r->stop)) {
        int64_t until;
        rd_kafka_message_t *m;

        for (p = 0; p < WS_SOURCE_MAX_PARTITIONS; p++)
            r->next[p] = -1;
        n = 0;
        e = WS_OK;
        if (!r->producer && open_producer(r, why) != WS_OK) {
            ws_log(WS_LOG_WARN, "repartition", "%s", why);
            pause_ms(RETRY_MS);
            continue;
        }
        m = rd_kafka_consumer_poll(r->rk, 100);
        until = ws_clock_ms() + LINGER_MS;
        while (m && e == WS_OK) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    ws_log(WS_LOG_WARN, "repartition", "%s",
                           rd_kafka_message_errstr(m));
            } else if ((e = forward(r, m, why)) == WS_OK) {
                if (m->partition >= 0 &&
                    m->partition < WS_SOURCE_MAX_PARTITIONS)
                    r->next[m->partition] = m->offset + 1;
                n++;
            }
            rd_kafka_message_destroy(m);
            m = NULL;
            if (e == WS_OK && n < TXN_MAX) {
                int64_t left = until - ws_clock_ms();

                m = rd_kafka_consumer_poll(r->rk, left > 0 ? (int)left : 0);
            }
        }
        if (m)
            rd_kafka_message_destroy(m);
        if (n == 0 && e == WS_OK)
            continue;
        if (e == WS_OK)
            e = send_offsets(r, why);
        if (e == WS_OK)
            e = ws_producer_flush(r->producer, 30000, why);
        else
            ws_producer_abort(r->producer);
        if (e == WS_OK) {
            atomic_fetch_add(&r->records, (unsigned long long)n);
            continue;
        }
        ws_log(WS_LOG_WARN, "repartition", "%d records not committed (read "
               "again): %s", n, why);
        if (e == WS_ERR_FENCED || ws_producer_fenced(r->producer)) {
            ws_producer_close(r->producer);
            r->producer = NULL;
        }
        rewind_to_committed(r);
        pause_ms(RETRY_MS);
    }
    return NULL;
}

int ws_repartition_start(const ws_kafka_opts *in, const char *out_topic,
                         int partitions, ws_repartition **out, char *err)
{
    ws_repartition *r = calloc(1, sizeof *r);
    int e;

    *out = NULL;
    if (!r || ws_decoder_new(&r->decoder) != WS_OK) {
        free(r);
        snprintf(err, WS_SOURCE_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    r->in = *in;
    snprintf(r->topic, sizeof r->topic, "%s", in->topic);
    snprintf(r->group, sizeof r->group, "%s.repartition", in->group);
    snprintf(r->instance, sizeof r->instance, "%s", in->instance_id);
    snprintf(r->out_topic, sizeof r->out_topic, "%s", out_topic);
    snprintf(r->txn_id, sizeof r->txn_id, "walletstream.%s.repartition.%s",
             in->group, in->instance_id);
    r->in.topic = r->topic;
    r->in.group = r->group;
    r->in.instance_id = r->instance;
    r->in.client_id = NULL;
    r->partitions = partitions;
    if ((e = open_consumer(r, err)) != WS_OK ||
        (e = open_producer(r, err)) != WS_OK)
        goto fail;
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        snprintf(err, WS_SOURCE_ERR_MAX, "cannot start the repartitioner");
        e = WS_ERR_NOMEM;
        goto fail;
    }
    r->started = 1;
    *out = r;
    return WS_OK;
fail:
    ws_repartition_stop(r);
    return e;
}

void ws_repartition_stop(ws_repartition *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    if (r->started)
        pthread_join(r->thread, NULL);
    ws_producer_close(r->producer);     /* aborts an open transaction */
    if (r->rk) {
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    ws_decoder_free(r->decoder);
    free(r);
}

unsigned long long ws_repartition_records(ws_repartition *r)
{
    return r ? atomic_load(&r->records) : 0;
}
