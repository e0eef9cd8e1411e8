/*
 * stream.c - the stream thread's loop.
 */
#include "stream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "repartition.h"
#include "router.h"
#include "standby.h"
#include "state_topic.h"
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
/* Records applied to the warm copies between two polls at most. */
#define STANDBY_STEP_MAX 5000
/* How often lag and lost records are read from the state (and the
 * committed offsets mirrored to the consumer group) at least; also after
 * every commit of a shard. */
#define LAG_MS 500

struct ws_status {
    pthread_mutex_t lock;
    char reason[512];
    int ready;
    int partitions;
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

void ws_status_set_partitions(ws_status *st, int n)
{
    pthread_mutex_lock(&st->lock);
    st->partitions = n;
    pthread_mutex_unlock(&st->lock);
}

int ws_status_partitions(void *arg)
{
    ws_status *st = arg;
    int n;

    pthread_mutex_lock(&st->lock);
    n = st->partitions;
    pthread_mutex_unlock(&st->lock);
    return n;
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

/* What the shards' workers share with the stream thread (router hooks). */
struct shared {
    const ws_stream_opts *o;
    int shards;
    ws_producer *producer[WS_SHARDS_MAX];   /* [0] is o->producer */
    ws_changelog *changelog[WS_SHARDS_MAX]; /* NULL: no changelog */
    /* Top-credit lists are merged over the shards: a batch that changed
     * one publishes the merged lists and commits under this lock, so
     * that the last record of a product's list is the current one. */
    pthread_mutex_t tops;
    int tops_held[WS_SHARDS_MAX];
    _Atomic int committed;      /* a shard committed: lag to update */
    /* A group's instance: a partition's producer is opened when the group
     * gives it (NULL: not this instance's). */
    int group_mode;
};

struct loop {
    const ws_stream_opts *o;
    struct shared sh;
    ws_router *router;
    uint64_t batch_max;
    int dropped;                /* the partitions were rewound: records
                                   polled before are stale */
    unsigned assignments;       /* the source's, when held was loaded */
    int64_t last_lag_ms;
    /* Why not ready, by cause; the first non-empty one is shown. */
    char store_err[WS_SOURCE_ERR_MAX];
    char out_err[WS_SOURCE_ERR_MAX];
    char source_err[WS_SOURCE_ERR_MAX];
    char group_err[WS_SOURCE_ERR_MAX];  /* a given partition not read */
    int restoring;                      /* the partition being restored */
    /* Producers of partitions given up while a worker may still use them
     * (the router failed before they were idle): closed once the router
     * is reset. */
    ws_producer *retired[WS_SHARDS_MAX];
    int nretired;
};

static void publish_status(struct loop *l)
{
    /* The deepest cause first: an unreachable broker also makes the
     * output records undeliverable. */
    const char *why = l->store_err[0] ? l->store_err
                      : l->source_err[0] ? l->source_err
                      : l->out_err[0] ? l->out_err
                      : l->group_err[0] ? l->group_err
                      : ws_source_partitions(l->o->source) == 0
                          ? (l->o->group_mode ? "joining the group"
                                              : "partitions not assigned yet")
                          : NULL;

    ws_status_set(l->o->status, why);
    ws_status_set_partitions(l->o->status,
                             ws_source_partitions(l->o->source));
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

static void update_lag(struct loop *l)
{
    ws_view *v;
    int p, n = ws_source_partitions(l->o->source);
    int64_t next[WS_SOURCE_MAX_PARTITIONS];

    l->last_lag_ms = ws_clock_ms();
    ws_metrics_partitions(n);
    {
        ws_router_stats rs;

        ws_router_stats_get(l->router, &rs);
        ws_metrics_claims(rs.cross_claims, rs.claim_waits);
        if (l->o->group_mode)
            ws_metrics_ids_elsewhere(rs.ids_elsewhere);
    }
    if (ws_store_view(l->o->store, &v) != WS_OK)
        return;
    for (p = 0; p < n; p++) {
        char key[600];
        size_t kn = ws_source_offset_key(l->o->topic, p, key, sizeof key);
        int64_t hi = ws_source_high_watermark(l->o->source, p), lost;

        if (!ws_source_owns(l->o->source, p)) {
            next[p] = -1;   /* another instance's: no lag of ours */
            ws_metrics_lag(p, -1);
            continue;
        }
        if (ws_view_offset(v, key, kn, &next[p]) != WS_OK)
            next[p] = -1;
        if (l->o->group_mode && next[p] >= 0 &&
            ws_router_routed_next(l->router, p) <= next[p]) {
            /* Read committed, the log ends in a transaction's marker,
             * which no record's offset reaches; with nothing in flight,
             * everything below the consumer's position (past such
             * markers) is applied. */
            int64_t pos = ws_source_position(l->o->source, p);

            if (pos > next[p])
                next[p] = pos;
        }
        ws_metrics_lag(p, hi < 0 ? -1 : hi > next[p] ? hi - (next[p] < 0 ? 0
                                                        : next[p]) : 0);
        if (ws_view_lost(v, key, kn, &lost) == WS_OK)
            ws_metrics_lost(p, lost);
    }
    ws_view_end(v);
    /* Mirrored to the consumer group for lag tools: where every shard
     * has committed. */
    ws_source_commit_group(l->o->source, next, n);
}

/* Loads the shards' stored offsets into the router after the source
 * (re)assigned its partitions at the smallest of them. */
static void load_held(struct loop *l)
{
    int e = ws_router_load_held(l->router, ws_source_partitions(l->o->source));

    if (e != WS_OK)
        snprintf(l->store_err, sizeof l->store_err,
                 "state store cannot be read: %s", ws_strerror(e));
    l->assignments = ws_source_assignments(l->o->source);
}

/* -------------------------------------------------- a group's instance */

/* Where a repartitioned record was first read: its
 * "walletstream.source" header (topic/partition/offset of the input
 * topic). Returns 1, or 0 when it has none (not written by the
 * repartitioner): it keeps its own place. */
static int origin_of(const rd_kafka_message_t *m, ws_source_pos *origin)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    char text[600], *slash;
    long long part, off;

    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "walletstream.source", &v, &n) !=
            RD_KAFKA_RESP_ERR_NO_ERROR || !v || n == 0 || n >= sizeof text)
        return 0;
    memcpy(text, v, n);
    text[n] = '\0';
    /* The topic may hold '/' no more than Kafka allows (it does not). */
    if (!(slash = strchr(text, '/')) ||
        sscanf(slash + 1, "%lld/%lld", &part, &off) != 2 || part < 0 ||
        part > INT32_MAX || off < 0)
        return 0;
    origin->partition = (int32_t)part;
    origin->offset = off;
    return 1;
}

/* The repartitioner's mark (repartition.h) m is, routed as such: 1, or
 * 0 when m is a record. A mark that cannot be read is logged and
 * skipped: it only moves read-your-writes frontiers. */
static int put_mark(struct loop *l, const rd_kafka_message_t *m)
{
    int32_t parts[WS_SOURCE_MAX_PARTITIONS];
    int64_t nexts[WS_SOURCE_MAX_PARTITIONS];
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    int k;

    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, WS_REPARTITION_MARK, &v, &n) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    k = ws_repartition_mark_parse(m->payload, m->len, parts, nexts,
                                  WS_SOURCE_MAX_PARTITIONS);
    if (k < 0)
        ws_log(WS_LOG_WARN, "group", "%s [%d] at offset %lld: a mark that "
               "cannot be read (skipped)", rd_kafka_topic_name(m->rkt),
               (int)m->partition, (long long)m->offset);
    ws_router_put_mark(l->router, m->partition, m->offset, parts, nexts, k);
    return 1;
}

/* The transactional id of a partition's writer: one per partition of
 * the group's topic, so that its next owner's producer fences this one. */
static void txn_id(const ws_stream_opts *o, int p, char *out, size_t cap)
{
    snprintf(out, cap, "walletstream.%s.%s.%d", o->group, o->topic, p);
}

/* How far a restore is, in /readyz's reason. */
static void restore_progress(void *arg, int64_t at, int64_t end)
{
    struct loop *l = arg;

    snprintf(l->group_err, sizeof l->group_err, "restoring partition %d of "
             "%s from %s: offset %lld of %lld", l->restoring, l->o->topic,
             l->o->state_topic, (long long)at, (long long)end);
    publish_status(l);
}

/* The group gives partition p: fence its former owner (the new
 * producer's first act), rebuild shard p from the state topic, and read
 * on from the offset that state holds. */
static int group_assigned(void *arg, int p, int64_t *next, char *why)
{
    struct loop *l = arg;
    const ws_stream_opts *o = l->o;
    char id[700], key[600];
    ws_restore_stats st;
    ws_producer *prod = NULL;
    ws_view *v;
    size_t kn;
    int e;

    if (p >= l->sh.shards) {
        snprintf(why, WS_SOURCE_ERR_MAX, "partition %d beyond the %d shards "
                 "of the state (the topic gained partitions: not supported)",
                 p, l->sh.shards);
        return -1;
    }
    snprintf(l->group_err, sizeof l->group_err, "restoring partition %d of "
             "%s from %s", p, o->topic, o->state_topic);
    publish_status(l);
    ws_standby_release(o->standby, p);  /* its warm copy, if any, stops */
    txn_id(o, p, id, sizeof id);
    if ((e = ws_producer_open_txn(o->producer_opts, id, 30000, &prod,
                                  why)) != WS_OK)
        goto fail;
    l->restoring = p;
    e = ws_state_restore(o->consumer_opts, o->state_topic, p, o->store, p,
                         restore_progress, l, &st, why);
    if (e != WS_OK)
        goto fail;
    ws_log(WS_LOG_INFO, "group", "partition %d restored from %s (%s, "
           "offsets %lld to %lld): %lld records, %lld bytes in %.2f s", p,
           o->state_topic, st.full ? "from its start" : "since this "
           "instance's copy", (long long)st.from, (long long)st.to,
           (long long)st.records, (long long)st.bytes, st.seconds);
    ws_metrics_restore(st.records, st.bytes, st.seconds);
    ws_store_set_owned(o->store, ws_store_owned(o->store) |
                                     (uint64_t)1 << p);
    *next = 0;
    kn = ws_source_offset_key(o->topic, p, key, sizeof key);
    if (ws_store_view(o->store, &v) == WS_OK) {
        if (ws_view_shard_offset(v, p, key, kn, next) != WS_OK)
            *next = 0;
        ws_view_end(v);
    }
    ws_router_set_held(l->router, p, p, *next);
    l->sh.producer[p] = prod;
    l->group_err[0] = '\0';
    publish_status(l);
    return 0;
fail:
    ws_producer_close(prod);
    snprintf(l->group_err, sizeof l->group_err, "partition %d of %s not "
             "read: %s", p, o->topic, why);
    publish_status(l);
    return -1;
}

/* Partition p is no longer this instance's. Its producer is closed now
 * when the workers are idle (idle), else once the router is reset. */
static void group_release(struct loop *l, int p, int idle)
{
    ws_store_set_owned(l->o->store, ws_store_owned(l->o->store) &
                                        ~((uint64_t)1 << p));
    if (idle) {
        ws_producer_close(l->sh.producer[p]);   /* aborts its transaction */
        if (l->sh.changelog[p])
            ws_changelog_reset(l->sh.changelog[p]);
    } else if (l->sh.producer[p]) {
        l->retired[l->nretired++] = l->sh.producer[p];
    }
    l->sh.producer[p] = NULL;
}

/* The router was reset (every worker idle): the retired producers go. */
static void group_close_retired(struct loop *l)
{
    while (l->nretired > 0)
        ws_producer_close(l->retired[--l->nretired]);
}

/* The group takes partitions: what was given for them is committed
 * first (taken as lost, another instance may own them already: its
 * producer fenced this one's, and their batches fail instead). */
static void group_revoked(void *arg, const int *parts, int n, int lost)
{
    struct loop *l = arg;
    int i, idle;

    (void)lost;
    /* Failed (a fenced commit): some workers may still be at work; the
     * loop recovers next, and their producers are closed then. */
    idle = ws_router_quiesce(l->router) == 0;
    for (i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < l->sh.shards)
            group_release(l, parts[i], idle);
}

/* After a failed batch: the other partitions' open transactions go with
 * their dropped batches; a partition whose writer was fenced is another
 * instance's now and is given up at once. */
static void group_after_failure(struct loop *l)
{
    int k;

    group_close_retired(l);
    for (k = 0; k < l->sh.shards; k++) {
        if (l->sh.changelog[k] && !l->sh.producer[k])
            ws_changelog_reset(l->sh.changelog[k]);
        if (!l->sh.producer[k])
            continue;
        if (ws_producer_fenced(l->sh.producer[k])) {
            group_release(l, k, 1);
            ws_source_drop(l->o->source, k);
        } else {
            ws_producer_abort(l->sh.producer[k]);
        }
    }
}

/* A shard failed: every shard drops its open batch, the partitions are
 * read again from the shards' committed offsets. A batch too large for
 * one LMDB transaction makes the batches half as large at once;
 * anything else shows in /readyz and is retried after a pause. */
static void recover(struct loop *l)
{
    char why[WS_ROUTER_WHY_MAX], src[WS_SOURCE_ERR_MAX];
    int e = ws_router_failed(l->router, why, sizeof why), halve, k;

    halve = e == WS_ERR_TXN_FULL && l->batch_max > 1;
    if (halve) {
        l->batch_max /= 2;
        ws_log(WS_LOG_WARN, "stream", "batches now hold at most %llu "
               "records", (unsigned long long)l->batch_max);
    } else if (e == WS_ERR_IO || e == WS_ERR_NOMEM) {
        snprintf(l->out_err, sizeof l->out_err, "%s", why);
    } else {
        snprintf(l->store_err, sizeof l->store_err, "%s", why);
    }
    publish_status(l);
    for (k = 0; k < l->sh.shards; k++)
        if (l->sh.changelog[k])
            ws_changelog_reset(l->sh.changelog[k]);
    if ((e = ws_router_reset(l->router)) != WS_OK) {
        snprintf(l->store_err, sizeof l->store_err,
                 "state store: %s", ws_strerror(e));
        publish_status(l);
    }
    if (halve)
        ws_router_set_batch_max(l->router, l->batch_max);
    if (l->o->group_mode)
        group_after_failure(l);
    l->dropped = 1;
    if (ws_source_rewind(l->o->source, l->o->store, src) != WS_OK)
        snprintf(l->source_err, sizeof l->source_err, "%s", src);
    load_held(l);
    if (!halve)
        pause_ms(l, RETRY_MS);
}

/* The consumer's position in a partition lies outside the log: records
 * were deleted before they were read (retention, the embedded broker's
 * bounded memory), or the log was replaced (a recreated topic). Every
 * shard commits what it was given, so that the stored offsets are the
 * positions, and the partitions are assigned again: ws_source_rewind
 * logs and counts what was lost and reads on from the log's first
 * record, or refuses a replaced log (not ready, with the reason). */
static void position_lost(struct loop *l, const rd_kafka_message_t *m)
{
    char why[WS_SOURCE_ERR_MAX];

    ws_log(WS_LOG_WARN, "kafka", "%s [%d]: offset %lld lies outside the log",
           l->o->topic, m->partition, (long long)m->offset);
    if (ws_router_quiesce(l->router) != 0)
        return;     /* failed: recovered by the loop */
    l->dropped = 1; /* records polled with this one predate the rewind */
    if (ws_source_rewind(l->o->source, l->o->store, why) != WS_OK) {
        snprintf(l->source_err, sizeof l->source_err, "%s", why);
        publish_status(l);
    }
    load_held(l);
    update_lag(l);
}

/* ------------------------------------------ router hooks: shard threads */

static int hook_dead_letter(void *ctx, int shard, const ws_input *in,
                            const ws_result *res, char *why)
{
    struct shared *sh = ctx;

    if (!sh->producer[shard]) {
        snprintf(why, WS_ROUTER_WHY_MAX, "partition %d is not this "
                 "instance's", shard);
        return -1;
    }
    return ws_dlq_send(sh->producer[shard], sh->o->dlq_topic, in->handle,
                       sh->o->in_topic, &in->origin, res, why) == WS_OK
               ? 0 : -1;
}

static int hook_note(void *ctx, int shard, const ws_input *in,
                     const ws_result *res)
{
    struct shared *sh = ctx;

    return sh->changelog[shard]
               ? ws_changelog_note(sh->changelog[shard],
                                   in->origin.partition, in->origin.offset,
                                   res)
               : 0;
}

/* Dead letters and changelog records are delivered before the batch
 * that made them commits (DESIGN §1). */
static int hook_before_commit(void *ctx, int shard, ws_batch *b, char *why)
{
    struct shared *sh = ctx;
    ws_changelog *cl = sh->changelog[shard];
    ws_producer *p = sh->producer[shard];
    char what[WS_SOURCE_ERR_MAX];
    int e;

    if (!p) {
        snprintf(why, WS_ROUTER_WHY_MAX, "partition %d is not this "
                 "instance's", shard);
        return -1;
    }
    if (cl && !sh->group_mode && ws_changelog_tops_changed(cl)) {
        pthread_mutex_lock(&sh->tops);
        sh->tops_held[shard] = 1;
    }
    if (cl && ws_changelog_publish(cl, b, p, what) != WS_OK) {
        snprintf(why, WS_ROUTER_WHY_MAX, "changelog: %s", what);
        return -1;
    }
    /* A group's partition: the batch's changes go to its state topic in
     * the same transaction, committed before the store's. */
    if (sh->group_mode &&
        ws_state_publish(b, p, sh->o->state_topic, shard, what) != WS_OK) {
        snprintf(why, WS_ROUTER_WHY_MAX, "state topic: %s", what);
        return -1;
    }
    if ((e = ws_producer_flush(p, OUTPUT_FLUSH_MS, what)) != WS_OK) {
        if (e == WS_ERR_FENCED)
            snprintf(why, WS_ROUTER_WHY_MAX, "partition %d: %s", shard,
                     what);
        else
            snprintf(why, WS_ROUTER_WHY_MAX, "dead letters or changelog "
                     "cannot be written: %s", what);
        return -1;
    }
    if (sh->group_mode && ws_state_mark(b, p) != WS_OK) {
        snprintf(why, WS_ROUTER_WHY_MAX, "state store shard %d: cannot "
                 "record its state topic position", shard);
        return -1;
    }
    return 0;
}

static void hook_after_commit(void *ctx, int shard, int ok, uint64_t records,
                              double seconds, double *ages, size_t nages)
{
    struct shared *sh = ctx;

    if (sh->tops_held[shard]) {
        sh->tops_held[shard] = 0;
        pthread_mutex_unlock(&sh->tops);
    }
    if (sh->changelog[shard])
        ws_changelog_reset(sh->changelog[shard]);
    if (!ok)
        return;
    atomic_store(&sh->committed, 1);
    ws_metrics_batch(seconds, records);
    ws_metrics_shard_commit(shard, seconds);
    ws_metrics_event_ages(ages, nages);
}

static size_t hook_source_key(void *ctx, int partition, char *key,
                              size_t cap)
{
    struct shared *sh = ctx;

    return ws_source_offset_key(sh->o->topic, partition, key, cap);
}

static size_t hook_origin_key(void *ctx, int partition, char *key,
                              size_t cap)
{
    struct shared *sh = ctx;

    return ws_source_offset_key(sh->o->in_topic, partition, key, cap);
}

static void hook_release(void *ctx, void *handle)
{
    (void)ctx;
    rd_kafka_message_destroy(handle);
}

/* One producer and changelog per shard (a producer's delivery accounting
 * belongs to one thread). */
static int shared_open(struct shared *sh, const ws_stream_opts *o)
{
    char err[WS_SOURCE_ERR_MAX];
    int k, e = WS_OK;

    memset(sh, 0, sizeof *sh);
    sh->o = o;
    sh->shards = ws_store_shards(o->store);
    sh->group_mode = o->group_mode;
    pthread_mutex_init(&sh->tops, NULL);
    sh->producer[0] = o->group_mode ? NULL : o->producer;
    for (k = 1; k < sh->shards && e == WS_OK && !o->group_mode; k++)
        if ((e = ws_producer_open(o->producer_opts, &sh->producer[k],
                                  err)) == WS_OK)
            ws_producer_warm(sh->producer[k], o->dlq_topic, 2000);
        else
            ws_log(WS_LOG_ERROR, "stream", "%s", err);
    for (k = 0; k < sh->shards && e == WS_OK && o->changelog; k++)
        if ((e = ws_changelog_new(o->in_topic, &sh->changelog[k])) == WS_OK &&
            o->group_mode)
            /* A partition's top credits are not the product's: those are
             * merged over the partitions by the API. */
            ws_changelog_skip_tops(sh->changelog[k]);
    return e;
}

static void shared_close(struct shared *sh)
{
    int k;

    for (k = 0; k < sh->shards; k++) {
        if (k > 0 || sh->group_mode)
            ws_producer_close(sh->producer[k]);
        sh->producer[k] = NULL;
        ws_changelog_free(sh->changelog[k]);
    }
    pthread_mutex_destroy(&sh->tops);
}

/* ------------------------------------------------------ stream thread */

static int sync_source(struct loop *l)
{
    const ws_stream_opts *o = l->o;
    char why[WS_SOURCE_ERR_MAX];
    int e = ws_source_sync(o->source, o->store, o->ignore_stored, 1000, why);

    if (e == WS_OK) {
        l->source_err[0] = '\0';
        ws_metrics_broker_up(1);
    } else {
        snprintf(l->source_err, sizeof l->source_err, "%s", why);
        ws_metrics_broker_up(strstr(why, "unreachable") ? 0 : 1);
        ws_log(WS_LOG_DEBUG, "stream", "sync: %s", why);
    }
    if (ws_source_assignments(o->source) != l->assignments)
        load_held(l);
    update_lag(l);
    publish_status(l);
    return e;
}

/* The source is about to assign partitions at the stored offsets: every
 * shard first commits what it was given. */
static void before_assign(void *arg)
{
    struct loop *l = arg;

    ws_router_quiesce(l->router);
    l->dropped = 1;
}

int ws_stream_run(const ws_stream_opts *o)
{
    static const ws_router_hooks hooks0 = {
        NULL, hook_dead_letter, hook_note, hook_before_commit,
        hook_after_commit, hook_source_key, NULL, hook_release};
    ws_router_hooks hooks = hooks0;
    ws_router_opts ro;
    struct loop l;
    rd_kafka_message_t *msgs[POLL_MAX];
    int64_t last_sync = 0;
    int e, standby_busy = 0;

    memset(&l, 0, sizeof l);
    l.o = o;
    l.batch_max = o->batch_max;
    l.assignments = (unsigned)-1;
    if ((e = shared_open(&l.sh, o)) != WS_OK) {
        shared_close(&l.sh);
        return e;
    }
    hooks.ctx = &l.sh;
    if (o->group_mode)
        hooks.origin_key = hook_origin_key;
    memset(&ro, 0, sizeof ro);
    ro.store = o->store;
    ro.hooks = &hooks;
    ro.batch_max = o->batch_max;
    ro.batch_linger_ms = (unsigned)o->batch_linger_ms;
    ro.by_partition = o->group_mode;
    if ((e = ws_router_start(&ro, &l.router)) != WS_OK) {
        shared_close(&l.sh);
        return e;
    }
    ws_source_on_assign(o->source, before_assign, &l);
    if (o->group_mode) {
        ws_group_hooks gh = {&l, group_assigned, group_revoked};

        l.group_err[0] = '\0';
        ws_source_group_hooks(o->source, &gh);
    }
    ws_metrics_shards(l.sh.shards);
    publish_status(&l);

    while (!*o->stop) {
        int64_t now = ws_clock_ms();
        const char *err;
        size_t n, i;

        if (ws_router_failed(l.router, NULL, 0)) {
            recover(&l);
            continue;
        }
        if (now - last_sync >=
            (l.source_err[0] || l.out_err[0] || l.store_err[0] ||
                     !ws_source_partitions(o->source)
                 ? SYNC_NOT_READY_MS : SYNC_READY_MS)) {
            last_sync = now;
            if (sync_source(&l) == WS_OK && (l.out_err[0] || l.store_err[0])) {
                /* A failed batch went through since: its cause is gone. */
                l.out_err[0] = l.store_err[0] = '\0';
                publish_status(&l);
            }
            last_sync = ws_clock_ms();
        }
        /* Warm copies behind: no wait for records of our own. */
        n = ws_source_poll(o->source, standby_busy ? 0 : IDLE_POLL_MS, msgs,
                           POLL_MAX);
        l.dropped = 0;      /* these records were read after any rewind */
        if ((err = ws_source_take_error(o->source)) != NULL &&
            strstr(err, "ALL_BROKERS_DOWN")) {
            snprintf(l.source_err, sizeof l.source_err,
                     "Kafka broker unreachable at %s: %s", o->brokers, err);
            ws_metrics_broker_up(0);
            publish_status(&l);
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
                rd_kafka_timestamp_type_t type;
                int64_t ts = rd_kafka_message_timestamp(m, &type);
                ws_input in;

                in.partition = m->partition;
                in.offset = m->offset;
                in.origin.partition = m->partition;
                in.origin.offset = m->offset;
                in.repartitioned = 0;
                if (o->group_mode &&
                    !ws_source_owns(o->source, m->partition)) {
                    /* Polled before the group took the partition: its
                     * next owner reads it from the committed offset. */
                    rd_kafka_message_destroy(m);
                    continue;
                }
                if (o->group_mode && put_mark(&l, m)) {
                    rd_kafka_message_destroy(m);
                    continue;
                }
                if (o->group_mode)
                    in.repartitioned = origin_of(m, &in.origin);
                in.value = m->payload;
                in.len = m->len;
                in.ts_ms = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
                in.handle = m;
                ws_router_put(l.router, &in);   /* takes the message */
                continue;
            }
            rd_kafka_message_destroy(m);
        }
        if (n > 0)
            ws_router_push(l.router);
        if (o->standby) {
            char why[WS_SOURCE_ERR_MAX];
            int fed = ws_standby_step(o->standby, STANDBY_STEP_MAX, why);

            if (fed < 0)
                ws_log(WS_LOG_WARN, "group", "%s", why);
            standby_busy = fed == STANDBY_STEP_MAX;
        }
        if (atomic_exchange(&l.sh.committed, 0) ||
            ws_clock_ms() - l.last_lag_ms >= LAG_MS)
            update_lag(&l);
    }
    /* Stopping: every shard commits what it was given. */
    ws_router_quiesce(l.router);
    ws_source_on_assign(o->source, NULL, NULL);
    ws_source_group_hooks(o->source, NULL);
    update_lag(&l);
    ws_router_stop(l.router);
    group_close_retired(&l);
    shared_close(&l.sh);
    return WS_OK;
}
