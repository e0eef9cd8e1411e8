/*
 * producer.c - idempotent producer with per-flush delivery accounting.
 */
#include "producer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define MAX_HEADERS 8
/* Sends between serving the delivery reports (they are served at every
 * flush too, and when the queue is full). */
#define POLL_EVERY 256

struct ws_producer {
    rd_kafka_t *rk;
    /* Handles of the topics written, so that a send does not look the
     * topic up by name (measured: docs/BENCHMARKS.md, "Per-core cost"). */
    rd_kafka_topic_t **rkt;
    int ntopics;
    unsigned long sends;
    unsigned long pending;  /* queued since the last flush */
    unsigned long reported; /* delivery reports received since then */
    unsigned long failed;   /* of those, delivery failed */
    int brokers_down;       /* "all brokers down" reported since the last
                               successful delivery */
    char error[256];
    /* Transactional (ws_producer_open_txn): a transaction is open, the
     * producer was fenced (fatal: every flush fails). */
    int txn, in_txn, fenced;
    /* The largest offset delivered into the tracked topic and partition
     * since the last flush (ws_producer_track), -1: none. */
    char *track_topic;
    int32_t track_partition;
    int64_t track_last;
};

/* Runs on the stream thread, inside rd_kafka_poll / rd_kafka_flush. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    ws_producer *p = opaque;

    (void)rk;
    p->reported++;
    if (m->err) {
        p->failed++;
        snprintf(p->error, sizeof p->error, "%s: %s",
                 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    } else if (m->offset < 0) {
        /* A success without the offset the broker wrote it at is not
         * trusted: librdkafka 2.0.2's idempotent producer reported one
         * for a record that never reached the log (issue 8, Produce
         * errors NOT_ENOUGH_REPLICAS). Failing the window sends the batch
         * again: a dead letter may repeat, never go missing. */
        p->failed++;
        snprintf(p->error, sizeof p->error, "%s [%d]: delivery reported "
                 "without an offset", rd_kafka_topic_name(m->rkt),
                 (int)m->partition);
    } else {
        p->brokers_down = 0;
        if (p->track_topic && m->partition == p->track_partition &&
            m->offset > p->track_last &&
            strcmp(rd_kafka_topic_name(m->rkt), p->track_topic) == 0)
            p->track_last = m->offset;
    }
}

/* Runs on the stream thread, inside rd_kafka_poll. */
static void on_error(rd_kafka_t *rk, int code, const char *reason,
                     void *opaque)
{
    ws_producer *p = opaque;

    (void)rk;
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        ws_metrics_broker_up(0);
        p->brokers_down = 1;
    }
    ws_log(WS_LOG_WARN, "producer", "%s: %s",
           rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
}

/* The producer, transactional with id txn_id when not NULL. */
static int producer_open(const ws_kafka_opts *opts, const char *txn_id,
                         ws_producer **out, char *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ws_producer *p = calloc(1, sizeof *p);
    int e = WS_ERR_NOMEM;

    *out = NULL;
    if (!p || !conf) {
        snprintf(err, WS_SOURCE_ERR_MAX, "out of memory");
        goto fail;
    }
    e = WS_ERR_USAGE;
    /* No linger: a batch's output is produced in one burst and then
     * waited for, so waiting to fill a request only adds latency
     * (measured +1 ms per commit on a real broker with linger.ms=1).
     * lz4: the changelog's JSON shrinks several times, and a batch waits
     * for the broker to take it (measured: stream throughput 72,101 ->
     * 82,383 events/s, docs/BENCHMARKS.md); -X compression.type=none
     * turns it off. */
    if (rd_kafka_conf_set(conf, "bootstrap.servers", opts->brokers, errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "compression.type", "lz4", errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "client.id", "walletstream-out", errstr,
                          sizeof errstr)) {
        snprintf(err, WS_SOURCE_ERR_MAX, "producer: %s", errstr);
        goto fail;
    }
    if (txn_id &&
        (rd_kafka_conf_set(conf, "transactional.id", txn_id, errstr,
                           sizeof errstr) ||
         /* A batch's transaction lasts a batch: one left open by a crash
          * is aborted by the broker after this long at the latest (a new
          * owner's init aborts it at once). */
         rd_kafka_conf_set(conf, "transaction.timeout.ms", "60000", errstr,
                           sizeof errstr))) {
        snprintf(err, WS_SOURCE_ERR_MAX, "producer: %s", errstr);
        goto fail;
    }
    if ((e = ws_kafka_conf_props(conf, opts, err)) != WS_OK)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p->rk) {
        snprintf(err, WS_SOURCE_ERR_MAX, "cannot create the producer: %s",
                 errstr);
        e = WS_ERR_IO;
        goto fail;
    }
    p->txn = txn_id != NULL;
    p->track_last = -1;
    *out = p;
    return WS_OK;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    free(p);
    return e;
}

int ws_producer_open(const ws_kafka_opts *opts, ws_producer **out, char *err)
{
    return producer_open(opts, NULL, out, err);
}

/* The sentence of a transactional error, consumed. Returns WS_ERR_FENCED
 * when the producer was fenced (or is otherwise unusable), else
 * WS_ERR_IO. */
static int txn_error(ws_producer *p, rd_kafka_error_t *error,
                     const char *what, char *why)
{
    int fatal = rd_kafka_error_is_fatal(error);

    snprintf(why, WS_SOURCE_ERR_MAX, "%s: %s", what,
             rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    if (fatal)
        p->fenced = 1;
    return fatal ? WS_ERR_FENCED : WS_ERR_IO;
}

int ws_producer_open_txn(const ws_kafka_opts *opts, const char *txn_id,
                         int timeout_ms, ws_producer **out, char *err)
{
    rd_kafka_error_t *error;
    int e = producer_open(opts, txn_id, out, err);

    if (e != WS_OK)
        return e;
    /* Fences every earlier producer of this id and completes (aborts) its
     * open transaction: from here on, this one alone writes for it. */
    if ((error = rd_kafka_init_transactions((*out)->rk, timeout_ms))) {
        e = txn_error(*out, error, "cannot begin as the partition's writer",
                      err);
        ws_producer_close(*out);
        *out = NULL;
        return e == WS_ERR_FENCED ? WS_ERR_FENCED : WS_ERR_IO;
    }
    return WS_OK;
}

void ws_producer_track(ws_producer *p, const char *topic, int32_t partition)
{
    free(p->track_topic);
    p->track_topic = topic ? strdup(topic) : NULL;
    p->track_partition = partition;
    p->track_last = -1;
}

int64_t ws_producer_tracked(const ws_producer *p)
{
    return p->track_last;
}

int ws_producer_fenced(const ws_producer *p)
{
    return p->fenced;
}

/* Opens the transaction of the records about to be sent. */
static int txn_begin(ws_producer *p, char *why)
{
    rd_kafka_error_t *error;

    if (!p->txn || p->in_txn)
        return WS_OK;
    if (p->fenced) {
        snprintf(why, WS_SOURCE_ERR_MAX, "fenced: another instance now "
                 "writes for this partition");
        return WS_ERR_FENCED;
    }
    if ((error = rd_kafka_begin_transaction(p->rk)))
        return txn_error(p, error, "cannot begin a transaction", why);
    p->in_txn = 1;
    p->track_last = -1;
    return WS_OK;
}

void ws_producer_abort(ws_producer *p)
{
    rd_kafka_error_t *error;

    if (!p || !p->txn || !p->in_txn)
        return;
    p->in_txn = 0;
    if (p->fenced)
        return;
    if ((error = rd_kafka_abort_transaction(p->rk, 30000))) {
        char why[WS_SOURCE_ERR_MAX];

        txn_error(p, error, "cannot abort the transaction", why);
        ws_log(WS_LOG_WARN, "producer", "%s", why);
    }
    /* Its records will never be delivered: their reports are not waited
     * for. */
    p->pending = p->reported = p->failed = 0;
}

int ws_producer_send_offsets(ws_producer *p, rd_kafka_t *consumer,
                             const rd_kafka_topic_partition_list_t *offsets,
                             char *why)
{
    rd_kafka_consumer_group_metadata_t *md;
    rd_kafka_error_t *error;
    int e;

    if ((e = txn_begin(p, why)) != WS_OK)
        return e;
    if (!(md = rd_kafka_consumer_group_metadata(consumer))) {
        snprintf(why, WS_SOURCE_ERR_MAX, "no consumer group metadata");
        return WS_ERR_IO;
    }
    error = rd_kafka_send_offsets_to_transaction(p->rk, offsets, md, 30000);
    rd_kafka_consumer_group_metadata_destroy(md);
    return error ? txn_error(p, error, "cannot commit the input offsets",
                             why)
                 : WS_OK;
}

/* The producer's handle of topic (a few: the changelog's, the dead
 * letters'), made on its first send; NULL when it cannot be made. */
static rd_kafka_topic_t *topic_handle(ws_producer *p, const char *topic)
{
    rd_kafka_topic_t **grown, *t;
    int i;

    for (i = 0; i < p->ntopics; i++)
        if (strcmp(rd_kafka_topic_name(p->rkt[i]), topic) == 0)
            return p->rkt[i];
    grown = realloc(p->rkt, (size_t)(p->ntopics + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    p->rkt = grown;
    if (!(t = rd_kafka_topic_new(p->rk, topic, NULL)))
        return NULL;
    return p->rkt[p->ntopics++] = t;
}

int ws_producer_send(ws_producer *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     const ws_header *headers, int nheaders, char *why)
{
    return ws_producer_send_to(p, topic, RD_KAFKA_PARTITION_UA, key, key_len,
                               value, value_len, headers, nheaders, why);
}

int ws_producer_send_to(ws_producer *p, const char *topic, int32_t partition,
                        const void *key, size_t key_len, const void *value,
                        size_t value_len, const ws_header *headers,
                        int nheaders, char *why)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_topic_t *rkt = topic_handle(p, topic);
    rd_kafka_resp_err_t rc;
    int i, tries;

    if ((i = txn_begin(p, why)) != WS_OK)
        return i;
    if (!rkt) {
        snprintf(why, WS_SOURCE_ERR_MAX, "topic %s cannot be written: %s",
                 topic, rd_kafka_err2str(rd_kafka_last_error()));
        return WS_ERR_IO;
    }

    if (nheaders > 0) {
        hdrs = rd_kafka_headers_new((size_t)nheaders);
        for (i = 0; i < nheaders; i++)
            rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                                -1);
    }
    for (tries = 0; tries < 600; tries++) {
        rc = rd_kafka_producev(
            p->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)value, value_len),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(p->rk, 100);  /* make room */
    }
    if (rc) {
        /* On failure the headers are still ours. */
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        snprintf(why, WS_SOURCE_ERR_MAX, "topic %s cannot be written: %s",
                 topic, rd_kafka_err2str(rc));
        return WS_ERR_IO;
    }
    p->pending++;
    if (++p->sends % POLL_EVERY == 0)
        rd_kafka_poll(p->rk, 0);
    return WS_OK;
}

int ws_producer_flush(ws_producer *p, int timeout_ms, char *why)
{
    int64_t deadline = ws_clock_ms() + timeout_ms, left;
    int e = WS_OK;

    /* Wait for each delivery report rather than with rd_kafka_flush():
     * rd_kafka_poll returns as soon as a report arrives, while flush in
     * librdkafka 2.0 added about 40 ms per call against the embedded
     * broker (measured: 39.8 ms mean commit with it, ~1 ms without). */
    rd_kafka_poll(p->rk, 0);
    while (p->reported < p->pending && (left = deadline - ws_clock_ms()) > 0)
        rd_kafka_poll(p->rk, (int)(left < 100 ? left : 100));
    if (p->reported < p->pending) {
        /* Name the cause when the producer knows it (issue 8: /readyz
         * said only "delivery timed out" while the broker was down). */
        snprintf(why, WS_SOURCE_ERR_MAX, "%soutput records undelivered: "
                 "delivery timed out (%lu of %lu confirmed)",
                 p->brokers_down ? "Kafka broker unreachable: " : "",
                 p->reported, p->pending);
        e = WS_ERR_IO;
    } else if (p->failed > 0) {
        snprintf(why, WS_SOURCE_ERR_MAX, "topic %s", p->error);
        e = WS_ERR_IO;
    }
    /* Records still unconfirmed after a failed wait get their reports
     * later: the next window waits for them too, so that their reports
     * can never stand in for its own records. */
    p->pending = e == WS_OK ? 0 : p->pending - p->reported;
    p->reported = 0;
    p->failed = 0;
    if (p->txn && p->in_txn) {
        rd_kafka_error_t *error;

        /* Delivered is not yet visible: the transaction's records are
         * for read_committed consumers once it commits. A failure aborts
         * it (the batch is dropped and its records sent again in a new
         * one); fenced, this producer is done. */
        if (e != WS_OK) {
            ws_producer_abort(p);
            return e;
        }
        left = deadline - ws_clock_ms();
        error = rd_kafka_commit_transaction(p->rk, left > 0 ? (int)left : 1);
        p->in_txn = 0;
        if (error) {
            int abortable = rd_kafka_error_txn_requires_abort(error);

            e = txn_error(p, error, "cannot commit the transaction", why);
            if (abortable) {
                p->in_txn = 1;
                ws_producer_abort(p);
            }
        }
    }
    return e;
}

void ws_producer_warm(ws_producer *p, const char *topic, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, topic, NULL);

    if (!t)
        return;
    if (rd_kafka_metadata(p->rk, 0, t, &md, timeout_ms) == 0)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
}

rd_kafka_t *ws_producer_handle(ws_producer *p)
{
    return p->rk;
}

void ws_producer_close(ws_producer *p)
{
    int i;

    if (!p)
        return;
    ws_producer_abort(p);
    if (rd_kafka_flush(p->rk, 5000)) {
        ws_log(WS_LOG_WARN, "producer", "%d output records were still "
               "undelivered at exit (their batch was not committed: they "
               "are sent again after restart)", rd_kafka_outq_len(p->rk));
        /* Drop them, so that destroying the producer cannot wait on a
         * broker that is gone. */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE |
                                  RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->rk, 0);
    }
    for (i = 0; i < p->ntopics; i++)
        rd_kafka_topic_destroy(p->rkt[i]);
    free(p->rkt);
    free(p->track_topic);
    rd_kafka_destroy(p->rk);
    free(p);
}
