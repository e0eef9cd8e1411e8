/*
 * stream.c - the stream thread's loop.
 */
#include "stream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

/* How often the topic's metadata is read: partitions added, broker
 * reachable. Faster while not ready, to notice recovery quickly. */
#define SYNC_READY_MS 2000
#define SYNC_NOT_READY_MS 500
/* Pause before trying a failed batch again. */
#define RETRY_MS 1000
/* How long the dead letters and changelog records of a batch may take to
 * be confirmed. */
#define OUTPUT_FLUSH_MS 10000
/* Poll timeout while no batch is open: how quickly a stop is noticed. */
#define IDLE_POLL_MS 100
/* Records taken from the consumer per poll call. */
#define POLL_MAX 512
/* Under a backlog a batch stays open up to this many times the duration
 * of the last commit (and at least --batch-linger), so that commits take
 * at most about a quarter of the time however slow the disk; a batch is
 * never held open longer than MAX_OPEN_MS. */
#define COMMIT_SHARE 3
#define MAX_OPEN_MS 1000

struct ws_status {
    pthread_mutex_t lock;
    char reason[512];
    int ready;
};

int ws_status_new(ws_status **out)
{
    ws_status *st = calloc(1, sizeof *st);

    if (!st)
        return WS_ERR_NOMEM;
    pthread_mutex_init(&st->lock, NULL);
    snprintf(st->reason, sizeof st->reason, "starting");
    *out = st;
    return WS_OK;
}

void ws_status_free(ws_status *st)
{
    if (!st)
        return;
    pthread_mutex_destroy(&st->lock);
    free(st);
}

void ws_status_set(ws_status *st, const char *reason)
{
    int changed;

    pthread_mutex_lock(&st->lock);
    changed = reason ? (st->ready || strcmp(st->reason, reason) != 0)
                     : !st->ready;
    st->ready = reason == NULL;
    snprintf(st->reason, sizeof st->reason, "%s", reason ? reason : "");
    pthread_mutex_unlock(&st->lock);
    ws_metrics_ready(reason == NULL);
    if (changed) {
        if (reason)
            ws_log(WS_LOG_WARN, "stream", "not ready: %s", reason);
        else
            ws_log(WS_LOG_INFO, "stream", "ready");
    }
}

int ws_status_ready(ws_status *st, char *why, size_t cap)
{
    int ready;

    pthread_mutex_lock(&st->lock);
    ready = st->ready;
    if (!ready)
        snprintf(why, cap, "%s", st->reason);
    pthread_mutex_unlock(&st->lock);
    return ready;
}

struct loop {
    const ws_stream_opts *o;
    ws_decoder *decoder;
    ws_batch *batch;
    uint64_t in_batch;
    uint64_t batch_max;
    int64_t first_ms;           /* when the open batch got its first record */
    int64_t last_commit_ms;     /* how long the last commit took */
    int dropped;                /* a batch was dropped and the partitions
                                   rewound: records polled before are stale */
    double *ages;               /* Kafka timestamps (s) of the batch's records,
                                   turned into ages at commit; grown, reused */
    size_t nages, ages_cap;
    int64_t next[WS_SOURCE_MAX_PARTITIONS];  /* -1: untouched */
    /* Why not ready, by cause; the first non-empty one is shown. */
    char store_err[WS_SOURCE_ERR_MAX];
    char out_err[WS_SOURCE_ERR_MAX];
    char source_err[WS_SOURCE_ERR_MAX];
};

static void publish_status(struct loop *l)
{
    /* The deepest cause first: an unreachable broker also makes the
     * output records undeliverable. */
    const char *why = l->store_err[0] ? l->store_err
                      : l->source_err[0] ? l->source_err
                      : l->out_err[0] ? l->out_err
                      : ws_source_partitions(l->o->source) == 0
                          ? "partitions not assigned yet" : NULL;

    ws_status_set(l->o->status, why);
}

static void reset_batch(struct loop *l)
{
    int p;

    l->batch = NULL;
    l->in_batch = 0;
    l->nages = 0;
    for (p = 0; p < WS_SOURCE_MAX_PARTITIONS; p++)
        l->next[p] = -1;
}

/* Sleeps up to ms, waking early on a stop. */
static void pause_ms(struct loop *l, int ms)
{
    struct timespec ts = {0, 50 * 1000000};

    while (ms > 0 && !*l->o->stop) {
        nanosleep(&ts, NULL);
        ms -= 50;
    }
}

/* Drops the open batch and positions the partitions at the stored
 * offsets again, so that its records are read again. */
static void drop_batch(struct loop *l)
{
    char why[WS_SOURCE_ERR_MAX];

    if (l->batch)
        ws_batch_abort(l->batch);
    reset_batch(l);
    l->dropped = 1;
    if (l->o->changelog)
        ws_changelog_reset(l->o->changelog);
    if (ws_source_rewind(l->o->source, l->o->store, why) != WS_OK)
        snprintf(l->source_err, sizeof l->source_err, "%s", why);
}

static void update_lag(struct loop *l)
{
    ws_view *v;
    int p, n = ws_source_partitions(l->o->source);

    ws_metrics_partitions(n);
    if (ws_store_view(l->o->store, &v) != WS_OK)
        return;
    for (p = 0; p < n; p++) {
        char key[600];
        size_t kn = ws_source_offset_key(l->o->topic, p, key, sizeof key);
        int64_t hi = ws_source_high_watermark(l->o->source, p), next = 0;
        int64_t lost;

        if (ws_view_offset(v, key, kn, &next) != WS_OK)
            next = 0;
        ws_metrics_lag(p, hi < 0 ? -1 : hi > next ? hi - next : 0);
        if (ws_view_lost(v, key, kn, &lost) == WS_OK)
            ws_metrics_lost(p, lost);
    }
    ws_view_end(v);
}

/* The store failed on the open batch, which is dropped so that its
 * records are read again. A batch too large for one LMDB transaction
 * makes the next batches half as large and is retried at once; anything
 * else shows in /readyz as `what` and is retried after a pause. */
static void store_failed(struct loop *l, const char *what, int e)
{
    int halve = e == WS_ERR_TXN_FULL && l->in_batch > 1;

    if (halve) {
        l->batch_max = l->in_batch / 2;
        ws_log(WS_LOG_WARN, "stream", "batches now hold at most %llu "
               "records", (unsigned long long)l->batch_max);
        l->store_err[0] = '\0';
    } else {
        snprintf(l->store_err, sizeof l->store_err, "%s: %s%s", what,
                 ws_strerror(e),
                 e == WS_ERR_MAP_FULL ? " (raise --max-state-size)" : "");
    }
    publish_status(l);
    drop_batch(l);
    if (!halve)
        pause_ms(l, RETRY_MS);
}

/* Commits the open batch: dead letters first, then the state. */
static int commit(struct loop *l)
{
    char why[WS_SOURCE_ERR_MAX], key[600];
    int n = ws_source_partitions(l->o->source), p, e;
    double t0, took;
    uint64_t records = l->in_batch;

    if (!l->batch)
        return WS_OK;
    t0 = ws_clock_seconds(0);
    /* The batch's changes go into its LMDB transaction first: a full
     * state shows as the store's error, before anything is sent. */
    if ((e = ws_batch_flush(l->batch)) != WS_OK) {
        store_failed(l, "state store cannot commit", e);
        return e;
    }
    if (l->o->changelog &&
        (e = ws_changelog_publish(l->o->changelog, l->batch, l->o->producer,
                                  why)) != WS_OK) {
        snprintf(l->out_err, sizeof l->out_err, "changelog: %s", why);
        publish_status(l);
        drop_batch(l);
        pause_ms(l, RETRY_MS);
        return e;
    }
    if (ws_producer_flush(l->o->producer, OUTPUT_FLUSH_MS, why) != WS_OK) {
        snprintf(l->out_err, sizeof l->out_err,
                 "dead letters or changelog cannot be written: %s", why);
        publish_status(l);
        drop_batch(l);
        pause_ms(l, RETRY_MS);
        return WS_ERR_IO;
    }
    l->out_err[0] = '\0';
    for (p = 0, e = WS_OK; p < n && e == WS_OK; p++)
        if (l->next[p] >= 0)
            e = ws_batch_offset_set(
                l->batch, key,
                ws_source_offset_key(l->o->topic, p, key, sizeof key),
                l->next[p]);
    if (e == WS_OK) {
        e = ws_batch_commit(l->batch);
        l->batch = NULL;
    }
    if (e != WS_OK) {
        store_failed(l, "state store cannot commit", e);
        return e;
    }
    took = ws_clock_seconds(0) - t0;
    ws_metrics_batch(took, records);
    l->last_commit_ms = (int64_t)(took * 1000.0);
    {
        double now = ws_clock_seconds(1);
        size_t i;

        for (i = 0; i < l->nages; i++)
            l->ages[i] = now - l->ages[i];
        ws_metrics_event_ages(l->ages, l->nages);
    }
    ws_source_commit_group(l->o->source, l->next, n);
    if (l->store_err[0]) {
        l->store_err[0] = '\0';
        publish_status(l);
    }
    reset_batch(l);
    update_lag(l);
    return WS_OK;
}

/* Remembers the record's Kafka timestamp for the event-age histogram. */
static void note_timestamp(struct loop *l, const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t type;
    int64_t ms = rd_kafka_message_timestamp(m, &type);

    if (ms < 0 || type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
        return;
    if (l->nages == l->ages_cap) {
        size_t cap = l->ages_cap ? l->ages_cap * 2 : 1024;
        double *a = realloc(l->ages, cap * sizeof *a);

        if (!a)
            return;     /* a metric only: skip rather than fail */
        l->ages = a;
        l->ages_cap = cap;
    }
    l->ages[l->nages++] = (double)ms / 1000.0;
}

/* One record into the open batch. */
static void take(struct loop *l, rd_kafka_message_t *m)
{
    char why[WS_SOURCE_ERR_MAX];
    ws_result res;
    int e;

    if (!l->batch) {
        e = ws_store_begin(l->o->store, &l->batch);
        if (e != WS_OK) {
            store_failed(l, "state store cannot begin a batch", e);
            return;
        }
        l->first_ms = ws_clock_ms();
    }
    e = ws_engine_record(l->batch, l->decoder, m->payload, m->len, &res);
    if (e == WS_OK && res.outcome == WS_REJECTED)
        e = ws_dlq_send(l->o->producer, l->o->dlq_topic, m, &res, why) ==
                    WS_OK ? WS_OK : -1;
    if (e == WS_OK && l->o->changelog)
        e = ws_changelog_note(l->o->changelog, &res);
    if (e == -1) {
        snprintf(l->out_err, sizeof l->out_err, "%s", why);
        publish_status(l);
        drop_batch(l);
        pause_ms(l, RETRY_MS);
        return;
    }
    if (e != WS_OK) {
        store_failed(l, "state store error", e);
        return;
    }
    if (m->partition >= 0 && m->partition < WS_SOURCE_MAX_PARTITIONS)
        l->next[m->partition] = m->offset + 1;
    l->in_batch++;
    note_timestamp(l, m);
}

/* The consumer's position in a partition lies outside the log: records
 * were deleted before they were read (retention, the embedded broker's
 * bounded memory), or the log was replaced (a recreated topic). The open
 * batch is committed, so that the stored offsets are the positions, and
 * the partitions are assigned again: ws_source_rewind logs and counts
 * what was lost and reads on from the log's first record, or refuses a
 * replaced log (not ready, with the reason). */
static void position_lost(struct loop *l, const rd_kafka_message_t *m)
{
    char why[WS_SOURCE_ERR_MAX];

    ws_log(WS_LOG_WARN, "kafka", "%s [%d]: offset %lld lies outside the log",
           l->o->topic, m->partition, (long long)m->offset);
    if (l->batch && commit(l) != WS_OK)
        return;     /* dropped and rewound by commit */
    l->dropped = 1; /* records polled with this one predate the rewind */
    if (ws_source_rewind(l->o->source, l->o->store, why) != WS_OK) {
        snprintf(l->source_err, sizeof l->source_err, "%s", why);
        publish_status(l);
    }
    update_lag(l);
}

/* Whether the open batch has been open long enough: --batch-linger, or
 * COMMIT_SHARE times the last commit when that is longer. */
static int batch_due(const struct loop *l)
{
    int64_t open_ms = ws_clock_ms() - l->first_ms;
    int64_t want = COMMIT_SHARE * l->last_commit_ms;

    if (want < (int64_t)l->o->batch_linger_ms)
        want = (int64_t)l->o->batch_linger_ms;
    if (want > MAX_OPEN_MS)
        want = MAX_OPEN_MS;
    return l->in_batch >= l->batch_max || open_ms >= want;
}

int ws_stream_run(const ws_stream_opts *o)
{
    struct loop l;
    rd_kafka_message_t *msgs[POLL_MAX];
    int64_t last_sync = 0;
    int e;

    memset(&l, 0, sizeof l);
    l.o = o;
    l.batch_max = o->batch_max;
    reset_batch(&l);
    if ((e = ws_decoder_new(&l.decoder)) != WS_OK)
        return e;
    publish_status(&l);

    while (!*o->stop) {
        int64_t now = ws_clock_ms();
        const char *err;
        size_t n, i;

        if (!l.batch && now - last_sync >=
                            (l.source_err[0] || l.out_err[0] || l.store_err[0] ||
                                     !ws_source_partitions(o->source)
                                 ? SYNC_NOT_READY_MS : SYNC_READY_MS)) {
            char why[WS_SOURCE_ERR_MAX];

            last_sync = now;
            if (ws_source_sync(o->source, o->store, o->ignore_stored, 1000,
                               why) == WS_OK) {
                l.source_err[0] = '\0';
                ws_metrics_broker_up(1);
            } else {
                snprintf(l.source_err, sizeof l.source_err, "%s", why);
                ws_metrics_broker_up(strstr(why, "unreachable") ? 0 : 1);
                ws_log(WS_LOG_DEBUG, "stream", "sync: %s", why);
            }
            update_lag(&l);
            publish_status(&l);
            last_sync = ws_clock_ms();
        }
        n = ws_source_poll(o->source, l.batch ? 0 : IDLE_POLL_MS, msgs,
                           POLL_MAX);
        l.dropped = 0;      /* these records were read after any rewind */
        if ((err = ws_source_take_error(o->source)) != NULL &&
            strstr(err, "ALL_BROKERS_DOWN")) {
            snprintf(l.source_err, sizeof l.source_err,
                     "Kafka broker unreachable at %s: %s", o->brokers, err);
            ws_metrics_broker_up(0);
            publish_status(&l);
        }
        if (n == 0) {
            commit(&l);     /* nothing more right now */
            continue;
        }
        for (i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];

            /* librdkafka 2.0 reports the broker's OFFSET_OUT_OF_RANGE as
             * _AUTO_OFFSET_RESET (auto.offset.reset=error); the broker's
             * own code is taken the same way, should it come through. */
            if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
                if (!l.dropped)
                    position_lost(&l, m);
            } else if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    ws_log(WS_LOG_WARN, "kafka", "%s",
                           rd_kafka_message_errstr(m));
            } else if (!l.dropped) {
                take(&l, m);
                if (l.batch && batch_due(&l))
                    commit(&l);
            }
            rd_kafka_message_destroy(m);
        }
    }
    /* Stopping: the open batch is finished and committed. */
    if (l.batch && commit(&l) != WS_OK && l.batch)
        drop_batch(&l);
    ws_decoder_free(l.decoder);
    free(l.ages);
    return WS_OK;
}
