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
#include "metrics.h"
#include "producer.h"
#include "store.h"
#include "timeutil.h"

/* Records per transaction at most, and how long one gathers records
 * (the repartitioner's batch linger: it adds that much latency). */
#define TXN_MAX 5000
#define LINGER_MS 5
/* Pause after a failed transaction. */
#define RETRY_MS 500
/* How long a reader's wish for marks holds (the longest a reader waits,
 * api.h), and how often the consumer is left while one waits. */
#define MARK_WISH_MS 11000
#define MARK_POLL_MS 5

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
    /* Marks asked for (ws_repartition_want_marks): per input partition,
     * the largest and the smallest offset readers wait for (-1: none),
     * and since when. */
    atomic_llong want[WS_SOURCE_MAX_PARTITIONS];
    atomic_llong want_min[WS_SOURCE_MAX_PARTITIONS];
    atomic_llong want_ms[WS_SOURCE_MAX_PARTITIONS];
    /* Per input partition: the offset in the open transaction's marks
     * (-1: none), and in the last marks committed (-1: none; a wish
     * below it is answered). */
    int64_t marked_at[WS_SOURCE_MAX_PARTITIONS];
    int64_t mark_done[WS_SOURCE_MAX_PARTITIONS];
    char mark[WS_SOURCE_MAX_PARTITIONS * 32];  /* a mark's value */
    /* Per input partition this member was given (-1: not given, or not
     * known yet): the next offset to read, and the records deleted from
     * the log before they were repartitioned, counted up to that offset.
     * The count is committed with the offset, as the metadata of the
     * group's committed offset (LOST_META), in the same transactions, so
     * that the count and the offset that skips the records move together,
     * exactly once; lost_committed is the count as last committed. */
    int64_t pos[WS_SOURCE_MAX_PARTITIONS];
    int64_t lost[WS_SOURCE_MAX_PARTITIONS];
    int64_t lost_committed[WS_SOURCE_MAX_PARTITIONS];
};

/* The committed offset's metadata: "walletstream lost=N". */
#define LOST_META "walletstream lost="

static int64_t lost_of_meta(const rd_kafka_topic_partition_t *tp)
{
    size_t k = sizeof LOST_META - 1, i;
    const char *m = tp->metadata;
    int64_t n = 0;

    if (!m || tp->metadata_size <= k || memcmp(m, LOST_META, k) != 0)
        return 0;
    for (i = k; i < tp->metadata_size && m[i] >= '0' && m[i] <= '9' &&
                n < INT64_MAX / 10 - 9; i++)
        n = n * 10 + (m[i] - '0');
    return n;
}

static int in_range(int p)
{
    return p >= 0 && p < WS_SOURCE_MAX_PARTITIONS;
}

/* Partition p is not this member's (or not known): nothing kept. */
static void forget(ws_repartition *r, int p)
{
    if (!in_range(p))
        return;
    r->pos[p] = r->lost[p] = r->lost_committed[p] = -1;
    ws_metrics_lost_repartition(p, -1);
}

/* Reading p goes on from `start` with `lost` records counted before it
 * (`committed` of them already committed); records below the log's
 * start `lo` (-1: unknown) are counted, logged, and skipped: the start
 * offset returned. */
static int64_t position(ws_repartition *r, const char *topic, int p,
                        int64_t start, int64_t lo, int64_t lost,
                        int64_t committed)
{
    if (lo > start) {
        ws_log(WS_LOG_ERROR, "repartition", "%s [%d]: records %lld to %lld "
               "(%lld) were deleted from the log before they were "
               "repartitioned; reading on from offset %lld",
               topic, p, (long long)start, (long long)lo - 1,
               (long long)(lo - start), (long long)lo);
        lost += lo - start;
        start = lo;
    }
    r->pos[p] = start;
    r->lost[p] = lost;
    r->lost_committed[p] = committed;
    ws_metrics_lost_repartition(p, lost);
    return start;
}

/* The log's start of p, -1 when it cannot be read. */
static int64_t log_start(rd_kafka_t *rk, const char *topic, int p)
{
    int64_t lo = -1, hi = -1;

    return rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR
               ? lo : -1;
}

/* Where partition ct (as rd_kafka_committed filled it) is read from:
 * its committed offset (0 when the group never committed one: a new
 * group reads every record), or the log's start when that is beyond it,
 * with the count committed in its metadata; -1 when its committed
 * offset could not be read (it stays unknown). */
static int64_t from_committed(ws_repartition *r, rd_kafka_t *rk,
                              const rd_kafka_topic_partition_t *ct)
{
    int64_t lost = lost_of_meta(ct);

    forget(r, ct->partition);
    if (ct->err || !in_range(ct->partition))
        return -1;
    return position(r, ct->topic, ct->partition,
                    ct->offset >= 0 ? ct->offset : 0,
                    log_start(rk, ct->topic, ct->partition), lost, lost);
}

/* Where each of `parts` is read from: its committed offset (0 for a
 * partition the group never committed: a new group reads every record),
 * or the log's start when that is beyond it (the records between are
 * counted lost). Sets the offsets in parts; partitions whose committed
 * offset cannot be read keep INVALID (librdkafka reads the committed
 * offset itself) and stay unknown until a rewind reads it. */
static void start_offsets(ws_repartition *r, rd_kafka_t *rk,
                          rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *c =
        rd_kafka_topic_partition_list_copy(parts);
    int i, ok;

    ok = c && rd_kafka_committed(rk, c, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t start = ok ? from_committed(r, rk, &c->elems[i]) : -1;

        if (!ok)
            forget(r, tp->partition);
        if (start >= 0)
            tp->offset = start;
    }
    if (c)
        rd_kafka_topic_partition_list_destroy(c);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    ws_repartition *r = opaque;
    rd_kafka_error_t *error;
    int i;

    /* Where to read comes from the group's committed offsets (committed
     * with the records, in the transactions). */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        start_offsets(r, rk, parts);
        error = rd_kafka_incremental_assign(rk, parts);
    } else {
        for (i = 0; i < parts->cnt; i++)
            forget(r, parts->elems[i].partition);
        error = rd_kafka_incremental_unassign(rk, parts);
    }
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
        /* Never moved past records silently: where to read is set on
         * assignment, and records deleted under the reader come back as
         * an error, counted in skip_deleted(). */
        (e = ws_kafka_conf_set(conf, "auto.offset.reset", "error", err)) ||
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
    rd_kafka_conf_set_opaque(conf, r);
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
                               m->key, m->key_len, m->payload, m->len, &h,
                               1, why);
}

void ws_repartition_want_marks(ws_repartition *r, int p, int64_t offset)
{
    long long cur;

    if (!r || !in_range(p) || offset < 0)
        return;
    /* the time first: a wish is never seen with an older one's */
    atomic_store(&r->want_ms[p], ws_clock_ms());
    cur = atomic_load(&r->want[p]);
    while (cur < offset &&
           !atomic_compare_exchange_weak(&r->want[p], &cur, offset))
        ;
    cur = atomic_load(&r->want_min[p]);
    while ((cur < 0 || cur > offset) &&
           !atomic_compare_exchange_weak(&r->want_min[p], &cur, offset))
        ;
}

/* Whether marks of p are due: a reader waits for an offset of p that no
 * committed marks cover yet, this member reads p, and it has read past
 * the smallest such offset (so that marks answer a reader: marks before
 * it would make the shards commit for nothing, while a reader waits) and
 * past its last marks. The largest wish does not hold back a smaller
 * one; once marks cover the smallest, the largest stands for those
 * between (whose readers ask again within 100 ms, peer.c). A wish that
 * marks answered, or older than the longest wait of a reader, is
 * dropped. */
static int mark_due(ws_repartition *r, int p, int64_t now)
{
    long long want = atomic_load(&r->want[p]);
    long long least = atomic_load(&r->want_min[p]);

    if (want < 0)
        return 0;
    if (want < r->mark_done[p] ||
        now - atomic_load(&r->want_ms[p]) > MARK_WISH_MS) {
        /* answered by marks in the log (whoever reads p now: they stay
         * true), or nobody waits any more; a wish made meanwhile stays */
        if (atomic_compare_exchange_strong(&r->want[p], &want, -1))
            atomic_compare_exchange_strong(&r->want_min[p], &least, -1);
        return 0;
    }
    if (least < 0 || least < r->mark_done[p]) {
        /* the smallest answered: the largest stands for the rest */
        atomic_compare_exchange_strong(&r->want_min[p], &least, want);
        least = atomic_load(&r->want_min[p]);
        if (least < 0)
            least = want;
    }
    return r->pos[p] >= 0 && r->pos[p] > least &&
           r->pos[p] > r->mark_done[p];
}

/* Marks asked for, into the open transaction (opened by the first
 * record sent: marks alone make one): to each partition q of
 * <topic>.by-wallet, "P:NEXT,..." for each input partition P whose marks
 * are due (mark_due), NEXT the offset past the last record of P read (in
 * this transaction or before it). Every record of P below NEXT that
 * belongs to q is then in q before the mark, so q's instance holds them
 * all once it applied what came before: a product's min_offset in a
 * group waits for that on every partition. The transaction also commits
 * P's offset (its position again, when it holds no record of P), so that
 * a member that lost P meanwhile cannot commit it (KIP-447), nor a mark
 * older than the new reader's records. Returns 0 or an error; *sent 1
 * when marks were sent (marks_sent once they are committed). */
static int send_marks(ws_repartition *r, int *sent, char *why)
{
    ws_header h = {WS_REPARTITION_MARK, r->topic};
    int64_t now = ws_clock_ms();
    size_t len = 0;
    int32_t q;
    int p, e = WS_OK;

    *sent = 0;
    for (p = 0; p < WS_SOURCE_MAX_PARTITIONS; p++) {
        r->marked_at[p] = -1;
        if (mark_due(r, p, now)) {
            r->marked_at[p] = r->pos[p];
            if (r->next[p] < 0)
                r->next[p] = r->pos[p];
            len += (size_t)snprintf(r->mark + len, sizeof r->mark - len,
                                    "%s%d:%lld", len ? "," : "", p,
                                    (long long)r->pos[p]);
        }
    }
    for (q = 0; len > 0 && q < r->partitions && e == WS_OK; q++)
        e = ws_producer_send_to(r->producer, r->out_topic, q, NULL, 0,
                                r->mark, len, &h, 1, why);
    *sent = len > 0 && e == WS_OK;
    return e;
}

/* The transaction with the marks committed: wishes below them are
 * answered (mark_due drops them). */
static void marks_sent(ws_repartition *r)
{
    int p;

    for (p = 0; p < WS_SOURCE_MAX_PARTITIONS; p++)
        if (r->marked_at[p] > r->mark_done[p])
            r->mark_done[p] = r->marked_at[p];
}

/* Whether some reader waits for a mark of a partition this member
 * reads. */
static int marks_wanted(ws_repartition *r)
{
    int p;

    for (p = 0; p < WS_SOURCE_MAX_PARTITIONS; p++)
        if (r->pos[p] >= 0 &&
            atomic_load_explicit(&r->want[p], memory_order_relaxed) >= 0)
            return 1;
    return 0;
}

int ws_repartition_mark_parse(const void *value, size_t len,
                              int32_t *parts, int64_t *nexts, int max)
{
    const char *s = value, *end = s + len;
    int n = 0;

    while (s < end) {
        int64_t p = 0, next = 0;
        const char *d = s;

        for (; s < end && *s >= '0' && *s <= '9' && p < 1000000; s++)
            p = p * 10 + (*s - '0');
        if (s == d || s == end || *s++ != ':' || p >= WS_SOURCE_MAX_PARTITIONS)
            return -1;
        for (d = s; s < end && *s >= '0' && *s <= '9' &&
                    next < INT64_MAX / 10 - 9; s++)
            next = next * 10 + (*s - '0');
        if (s == d || (s < end && *s++ != ',') || n == max ||
            (s == end && s[-1] == ','))
            return -1;
        parts[n] = (int32_t)p;
        nexts[n++] = next;
    }
    return n > 0 ? n : -1;
}

/* The input offsets after the records of the open transaction, each
 * with the count of records deleted before it, into it. */
static int send_offsets(ws_repartition *r, char *why)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    int p, e = WS_OK;

    if (!l)
        return WS_ERR_NOMEM;
    for (p = 0; p < WS_SOURCE_MAX_PARTITIONS && e == WS_OK; p++) {
        rd_kafka_topic_partition_t *tp;
        char meta[64];
        int n;

        if (r->next[p] < 0)
            continue;
        if (r->lost[p] < 0) {
            snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d]: its committed offset "
                     "is not known yet", r->topic, p);
            e = WS_ERR_IO;
            break;
        }
        tp = rd_kafka_topic_partition_list_add(l, r->topic, p);
        tp->offset = r->next[p];
        if (r->lost[p] > 0) {
            n = snprintf(meta, sizeof meta, LOST_META "%lld",
                         (long long)r->lost[p]);
            /* freed with the list */
            if (!(tp->metadata = malloc((size_t)n))) {
                e = WS_ERR_NOMEM;
                break;
            }
            memcpy(tp->metadata, meta, (size_t)n);
            tp->metadata_size = (size_t)n;
        }
    }
    if (e == WS_OK && l->cnt > 0)
        e = ws_producer_send_offsets(r->producer, r->rk, l, why);
    rd_kafka_topic_partition_list_destroy(l);
    return e;
}

/* Reads p from `offset`: taken off the assignment and given back at
 * that offset (as kafka_source.c's group_rewind: librdkafka 2.0 left a
 * partition stopped when seeking it after an out-of-range error; found
 * by test_kafka_lost). 0, or -1 (logged). */
static int seek_to(ws_repartition *r, const char *topic, int p,
                   int64_t offset)
{
    rd_kafka_topic_partition_list_t *one =
        rd_kafka_topic_partition_list_new(1);
    rd_kafka_error_t *error = NULL;

    if (!one)
        return -1;
    rd_kafka_topic_partition_list_add(one, topic, p)->offset = offset;
    if (!(error = rd_kafka_incremental_unassign(r->rk, one)))
        error = rd_kafka_incremental_assign(r->rk, one);
    if (error) {
        ws_log(WS_LOG_WARN, "repartition", "%s [%d]: cannot read from "
               "offset %lld: %s", topic, p, (long long)offset,
               rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_destroy(one);
    return error ? -1 : 0;
}

/* Records of p deleted under the reader (librdkafka reports the read
 * position out of range: auto.offset.reset is "error"): counted from
 * where it read up to the log's start, which the open transaction then
 * commits as p's offset, and read on from there. Returns 0, or an error
 * (the position is not known: read again from the committed offsets). */
static int skip_deleted(ws_repartition *r, int p, char *why)
{
    int64_t lo;

    if (!in_range(p) || r->pos[p] < 0 ||
        (lo = log_start(r->rk, r->topic, p)) < 0) {
        snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d]: read position out of "
                 "range, and where to read on is not known", r->topic, p);
        return WS_ERR_IO;
    }
    if (lo <= r->pos[p]) {
        /* Beyond the log's end: a topic deleted and created again
         * under the same name. Its records are not the ones the group
         * committed past: nothing is read until an operator decides
         * (docs/OPERATIONS.md, "Records lost, logs replaced"). */
        snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d]: the group's offset %lld "
                 "lies beyond the log (its start is %lld): was the topic "
                 "created again? Nothing of it is repartitioned",
                 r->topic, p, (long long)r->pos[p], (long long)lo);
        return WS_ERR_IO;
    }
    r->next[p] = position(r, r->topic, p, r->pos[p], lo, r->lost[p],
                          r->lost_committed[p]);
    return seek_to(r, r->topic, p, r->next[p]) == 0 ? WS_OK : WS_ERR_IO;
}

/* After a failed transaction: read again from the group's committed
 * offsets (what was committed is in the output; nothing after it), with
 * the counts committed with them. */
static void rewind_to_committed(ws_repartition *r)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    int i, ok;

    if (rd_kafka_assignment(r->rk, &a) || !a) {
        /* where to read is not known: every record read now ends the
         * transaction until a rewind reads the committed offsets (and
         * no mark claims what the aborted one held) */
        for (i = 0; i < WS_SOURCE_MAX_PARTITIONS; i++)
            if (r->pos[i] >= 0)
                forget(r, i);
        return;
    }
    ok = a->cnt > 0 &&
         rd_kafka_committed(r->rk, a, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (i = 0; i < a->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &a->elems[i];
        int64_t start = ok ? from_committed(r, r->rk, tp) : -1;

        if (!ok)
            forget(r, tp->partition);
        if (start >= 0)
            seek_to(r, tp->topic, tp->partition, start);
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
    int p, n, e, marked;

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
        m = rd_kafka_consumer_poll(r->rk, marks_wanted(r) ? MARK_POLL_MS
                                                          : 100);
        until = ws_clock_ms() + LINGER_MS;
        while (m && e == WS_OK) {
            p = m->partition;
            if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
                e = skip_deleted(r, p, why);
            } else if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    ws_log(WS_LOG_WARN, "repartition", "%s",
                           rd_kafka_message_errstr(m));
            } else if (!in_range(p) || r->pos[p] < 0) {
                /* Given without a known committed offset: read again
                 * once it is known. */
                snprintf(why, WS_SOURCE_ERR_MAX, "%s [%d]: its committed "
                         "offset is not known yet", r->topic, p);
                e = WS_ERR_IO;
            } else if ((e = forward(r, m, why)) == WS_OK) {
                r->next[p] = r->pos[p] = m->offset + 1;
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
        marked = 0;
        if (e == WS_OK)
            e = send_marks(r, &marked, why);
        if (n == 0 && !marked && e == WS_OK)
            continue;
        if (e == WS_OK)
            e = send_offsets(r, why);
        if (e == WS_OK)
            e = ws_producer_flush(r->producer, 30000, why);
        else
            ws_producer_abort(r->producer);
        if (e == WS_OK) {
            if (marked)
                marks_sent(r);
            for (p = 0; p < WS_SOURCE_MAX_PARTITIONS; p++)
                if (r->next[p] >= 0)
                    r->lost_committed[p] = r->lost[p];
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
    for (e = 0; e < WS_SOURCE_MAX_PARTITIONS; e++) {
        r->pos[e] = r->lost[e] = r->lost_committed[e] = -1;
        r->mark_done[e] = -1;
        atomic_init(&r->want[e], -1);
        atomic_init(&r->want_min[e], -1);
        atomic_init(&r->want_ms[e], 0);
    }
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
