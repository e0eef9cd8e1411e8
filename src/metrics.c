/*
 * metrics.c - histograms, gauges and counters of the running process.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

#define NBUCKETS 12

struct histogram {
    const double *bounds;   /* NBUCKETS upper bounds, ascending */
    uint64_t counts[NBUCKETS];
    uint64_t total;
    double sum;
};

static const double commit_bounds[NBUCKETS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5};
static const double age_bounds[NBUCKETS] = {
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5, 30, 300};
static const double batch_bounds[NBUCKETS] = {
    1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000};

/* Routes are counted under the names api.c gives them (its route table),
 * in the order they are first answered. */
#define MAX_ROUTES 16
#define STATUSES 8     /* the codes below, then "other" */
static const unsigned status_codes[STATUSES - 1] = {200, 400, 401, 404,
                                                    405, 500, 503};

static struct {
    pthread_mutex_t lock;
    struct histogram commit;
    struct histogram batch;
    struct histogram age;
    int shards;             /* 0: not a writer (serve) */
    struct histogram shard_commit[WS_SHARDS_MAX];
    uint64_t cross_claims, claim_waits;
    /* A group's instance: partitions restored from the state topic. */
    uint64_t restores, restore_records, restore_bytes;
    int group;                  /* ids_elsewhere is reported */
    uint64_t ids_elsewhere;
    double restore_seconds;
    int partitions;
    int64_t lag[WS_METRICS_MAX_PARTITIONS];
    /* of the input partitions this instance repartitions; -1 - 1: not */
    int64_t lost_repart[WS_METRICS_MAX_PARTITIONS];
    int64_t lost[WS_METRICS_MAX_PARTITIONS];
    const char *broker;     /* bootstrap servers; NULL: no consumer */
    int broker_embedded;
    int broker_up;
    int ready;
    const char *routes[MAX_ROUTES];
    int nroutes;
    uint64_t http[MAX_ROUTES][STATUSES];
    struct ws_metrics_sample history[WS_METRICS_HISTORY];
    int nhistory;           /* samples kept, at most WS_METRICS_HISTORY */
    int next;               /* where the next sample goes */
} reg = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .commit = {.bounds = commit_bounds},
    .batch = {.bounds = batch_bounds},
    .age = {.bounds = age_bounds},
    .broker_up = -1,
};

static void observe(struct histogram *h, double v)
{
    int i;

    for (i = 0; i < NBUCKETS; i++)
        if (v <= h->bounds[i])
            h->counts[i]++;
    h->total++;
    h->sum += v;
}

void ws_metrics_batch(double commit_seconds, uint64_t records)
{
    pthread_mutex_lock(&reg.lock);
    observe(&reg.commit, commit_seconds);
    observe(&reg.batch, (double)records);
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_shards(int shards)
{
    int k;

    pthread_mutex_lock(&reg.lock);
    reg.shards = shards < WS_SHARDS_MAX ? shards : WS_SHARDS_MAX;
    for (k = 0; k < reg.shards; k++)
        reg.shard_commit[k].bounds = commit_bounds;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_shard_commit(int shard, double commit_seconds)
{
    pthread_mutex_lock(&reg.lock);
    if (shard >= 0 && shard < reg.shards)
        observe(&reg.shard_commit[shard], commit_seconds);
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_claims(uint64_t cross_shard, uint64_t waited)
{
    pthread_mutex_lock(&reg.lock);
    reg.cross_claims = cross_shard;
    reg.claim_waits = waited;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_ids_elsewhere(uint64_t n)
{
    pthread_mutex_lock(&reg.lock);
    reg.group = 1;
    reg.ids_elsewhere = n;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_restore(int64_t records, int64_t bytes, double seconds)
{
    pthread_mutex_lock(&reg.lock);
    reg.restores++;
    reg.restore_records += (uint64_t)records;
    reg.restore_bytes += (uint64_t)bytes;
    reg.restore_seconds += seconds;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_event_ages(const double *ages, size_t n)
{
    size_t i;

    pthread_mutex_lock(&reg.lock);
    for (i = 0; i < n; i++)
        observe(&reg.age, ages[i]);
    pthread_mutex_unlock(&reg.lock);
}

/* Sets a per-partition figure; partitions beyond the registry's room
 * share its last slot. */
static void partition_figure(int64_t *fig, int partition, int64_t v)
{
    if (partition < 0)
        return;
    if (partition >= WS_METRICS_MAX_PARTITIONS)
        partition = WS_METRICS_MAX_PARTITIONS - 1;
    pthread_mutex_lock(&reg.lock);
    fig[partition] = v;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_lag(int partition, int64_t lag)
{
    partition_figure(reg.lag, partition, lag);
}

void ws_metrics_lost(int partition, int64_t total)
{
    partition_figure(reg.lost, partition, total);
}

void ws_metrics_lost_repartition(int partition, int64_t total)
{
    /* Stored plus one: 0 (the registry's start) is "not this instance's". */
    partition_figure(reg.lost_repart, partition, total < 0 ? 0 : total + 1);
}

void ws_metrics_partitions(int count)
{
    pthread_mutex_lock(&reg.lock);
    reg.partitions = count < WS_METRICS_MAX_PARTITIONS
                         ? count : WS_METRICS_MAX_PARTITIONS;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_broker(const char *bootstrap, int embedded)
{
    pthread_mutex_lock(&reg.lock);
    reg.broker = bootstrap;
    reg.broker_embedded = embedded;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_broker_up(int up)
{
    pthread_mutex_lock(&reg.lock);
    reg.broker_up = up;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_ready(int ready)
{
    pthread_mutex_lock(&reg.lock);
    reg.ready = ready;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_http(const char *route, unsigned status)
{
    int r, s;

    for (s = 0; s < STATUSES - 1; s++)
        if (status_codes[s] == status)
            break;
    pthread_mutex_lock(&reg.lock);
    for (r = 0; r < reg.nroutes; r++)
        if (strcmp(route, reg.routes[r]) == 0)
            break;
    if (r == reg.nroutes && r < MAX_ROUTES)
        reg.routes[reg.nroutes++] = route;
    if (r < MAX_ROUTES)
        reg.http[r][s]++;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_sample(int64_t time_ms, const ws_counts *c)
{
    struct ws_metrics_sample *x;
    int i;

    pthread_mutex_lock(&reg.lock);
    x = &reg.history[reg.next];
    x->time_ms = time_ms;
    for (i = 0; i < WS_OUTCOME_COUNT; i++)
        x->outcome[i] = c->outcome[i];
    x->commits = reg.commit.total;
    x->commit_seconds = reg.commit.sum;
    x->aged = reg.age.total;
    x->age_seconds = reg.age.sum;
    reg.next = (reg.next + 1) % WS_METRICS_HISTORY;
    if (reg.nhistory < WS_METRICS_HISTORY)
        reg.nhistory++;
    pthread_mutex_unlock(&reg.lock);
}

static void render_histogram(ws_buf *b, const char *name, const char *help,
                             const struct histogram *h)
{
    int i;

    ws_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (i = 0; i < NBUCKETS; i++)
        ws_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                      (unsigned long long)h->counts[i]);
    ws_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n"
                     "%s_count %llu\n", name, (unsigned long long)h->total,
                  name, h->sum, name, (unsigned long long)h->total);
}

/* The shards' commit histograms, one series per shard. */
static void render_shards(ws_buf *b)
{
    const char *name = "walletstream_shard_batch_commit_seconds";
    int k, i;

    if (reg.shards == 0)
        return;
    ws_buf_printf(b, "# HELP walletstream_shards Shards of the state, one "
                     "worker each (--workers).\n# TYPE walletstream_shards "
                     "gauge\nwalletstream_shards %d\n", reg.shards);
    ws_buf_printf(b, "# HELP %s Time to commit one batch of one shard.\n"
                     "# TYPE %s histogram\n", name, name);
    for (k = 0; k < reg.shards; k++) {
        const struct histogram *h = &reg.shard_commit[k];

        for (i = 0; i < NBUCKETS; i++)
            ws_buf_printf(b, "%s_bucket{shard=\"%d\",le=\"%g\"} %llu\n", name,
                          k, h->bounds[i], (unsigned long long)h->counts[i]);
        ws_buf_printf(b, "%s_bucket{shard=\"%d\",le=\"+Inf\"} %llu\n"
                         "%s_sum{shard=\"%d\"} %.9g\n%s_count{shard=\"%d\"} "
                         "%llu\n", name, k, (unsigned long long)h->total,
                      name, k, h->sum, name, k,
                      (unsigned long long)h->total);
    }
    ws_buf_printf(b, "# HELP walletstream_claims_cross_shard_total Records "
                     "whose transaction_id belongs to another shard than "
                     "their wallet (decided there).\n# TYPE "
                     "walletstream_claims_cross_shard_total counter\n"
                     "walletstream_claims_cross_shard_total %llu\n"
                     "# HELP walletstream_claims_waited_total Claims that "
                     "waited for an earlier record with the same "
                     "transaction_id to commit.\n# TYPE "
                     "walletstream_claims_waited_total counter\n"
                     "walletstream_claims_waited_total %llu\n",
                  (unsigned long long)reg.cross_claims,
                  (unsigned long long)reg.claim_waits);
    if (reg.group)
        ws_buf_printf(b, "# HELP walletstream_ids_on_two_partitions_total "
                         "transaction_ids applied by one partition of this "
                         "instance that another of its partitions already "
                         "remembers (--assignment group: ids are unique per "
                         "partition; one used for wallets of two partitions "
                         "applies twice).\n# TYPE "
                         "walletstream_ids_on_two_partitions_total counter\n"
                         "walletstream_ids_on_two_partitions_total %llu\n",
                      (unsigned long long)reg.ids_elsewhere);
    if (reg.restores > 0)
        ws_buf_printf(b, "# HELP walletstream_restores_total Partitions "
                         "restored from the state topic (--assignment "
                         "group).\n# TYPE walletstream_restores_total "
                         "counter\nwalletstream_restores_total %llu\n"
                         "# HELP walletstream_restored_records_total "
                         "Records read from the state topic.\n# TYPE "
                         "walletstream_restored_records_total counter\n"
                         "walletstream_restored_records_total %llu\n"
                         "# HELP walletstream_restored_bytes_total Their "
                         "keys and values.\n# TYPE "
                         "walletstream_restored_bytes_total counter\n"
                         "walletstream_restored_bytes_total %llu\n"
                         "# HELP walletstream_restore_seconds_total Time "
                         "spent restoring.\n# TYPE "
                         "walletstream_restore_seconds_total counter\n"
                         "walletstream_restore_seconds_total %.3f\n",
                      (unsigned long long)reg.restores,
                      (unsigned long long)reg.restore_records,
                      (unsigned long long)reg.restore_bytes,
                      reg.restore_seconds);
}

void ws_metrics_render(ws_buf *b)
{
    int i, s, k = 0;

    pthread_mutex_lock(&reg.lock);
    render_shards(b);
    render_histogram(b, "walletstream_batch_commit_seconds",
                     "Time to commit one batch to the state store, "
                     "dead letters included.", &reg.commit);
    render_histogram(b, "walletstream_batch_events",
                     "Records carried by one committed batch.", &reg.batch);
    render_histogram(b, "walletstream_event_age_seconds",
                     "Commit time minus the record's Kafka timestamp: how "
                     "long after it was produced a record became "
                     "queryable.", &reg.age);
    ws_buf_puts(b, "# HELP walletstream_consumer_lag Records of a partition "
                   "not yet committed to the state (high watermark minus "
                   "next offset).\n# TYPE walletstream_consumer_lag gauge\n");
    for (i = 0; i < reg.partitions; i++)
        if (reg.lag[i] >= 0)
            ws_buf_printf(b, "walletstream_consumer_lag{partition=\"%d\"} "
                             "%lld\n", i, (long long)reg.lag[i]);
    ws_buf_puts(b, "# HELP walletstream_records_lost_total Records deleted "
                   "from a partition's log before walletstream read them "
                   "(retention, or the embedded broker's bounded memory), "
                   "as committed with the state.\n"
                   "# TYPE walletstream_records_lost_total counter\n");
    for (i = 0; i < reg.partitions; i++)
        ws_buf_printf(b, "walletstream_records_lost_total{partition=\"%d\"} "
                         "%lld\n", i, (long long)reg.lost[i]);
    for (i = 0; i < WS_METRICS_MAX_PARTITIONS; i++) {
        if (!reg.lost_repart[i])
            continue;
        if (!k++)
            ws_buf_puts(b, "# HELP walletstream_records_lost_before_"
                           "repartition_total Records deleted from a "
                           "partition of the input topic before a group's "
                           "repartitioner read them, as committed with the "
                           "group's offsets; from the instance that "
                           "repartitions the partition.\n# TYPE "
                           "walletstream_records_lost_before_repartition_"
                           "total counter\n");
        ws_buf_printf(b, "walletstream_records_lost_before_repartition_total"
                         "{partition=\"%d\"} %lld\n", i,
                      (long long)(reg.lost_repart[i] - 1));
    }
    if (reg.broker) {
        const char *p;

        ws_buf_puts(b, "# HELP walletstream_broker_info The Kafka bootstrap "
                       "servers read from; kind=\"embedded\" for the "
                       "in-process test broker (--embedded-broker).\n"
                       "# TYPE walletstream_broker_info gauge\n"
                       "walletstream_broker_info{bootstrap=\"");
        for (p = reg.broker; *p; p++) {     /* a label value's escapes */
            if (*p == '\\' || *p == '"')
                ws_buf_putc(b, '\\');
            if (*p == '\n')
                ws_buf_puts(b, "\\n");
            else
                ws_buf_putc(b, *p);
        }
        ws_buf_printf(b, "\",kind=\"%s\"} 1\n",
                      reg.broker_embedded ? "embedded" : "kafka");
    }
    if (reg.broker_up >= 0)
        ws_buf_printf(b, "# HELP walletstream_broker_up 1 when the Kafka "
                         "broker answered the last metadata request.\n"
                         "# TYPE walletstream_broker_up gauge\n"
                         "walletstream_broker_up %d\n", reg.broker_up);
    ws_buf_printf(b, "# HELP walletstream_ready 1 when /readyz answers 200.\n"
                     "# TYPE walletstream_ready gauge\nwalletstream_ready %d\n",
                  reg.ready);
    ws_buf_puts(b, "# HELP walletstream_http_requests_total HTTP answers by "
                   "route (its OpenAPI path) and status.\n"
                   "# TYPE walletstream_http_requests_total counter\n");
    for (i = 0; i < reg.nroutes; i++)
        for (s = 0; s < STATUSES; s++)
            if (reg.http[i][s]) {
                char code[8] = "other";
                if (s < STATUSES - 1)
                    snprintf(code, sizeof code, "%u", status_codes[s]);
                ws_buf_printf(b, "walletstream_http_requests_total{route=\"%s\","
                                 "status=\"%s\"} %llu\n", reg.routes[i], code,
                              (unsigned long long)reg.http[i][s]);
            }
    ws_buf_printf(b, "# HELP walletstream_build_info The running version and "
                     "the data directory format it reads and writes.\n"
                     "# TYPE walletstream_build_info gauge\n"
                     "walletstream_build_info{version=\"%s\","
                     "data_format=\"%d\"} 1\n", WS_VERSION, WS_STORE_FORMAT);
    pthread_mutex_unlock(&reg.lock);
}

/* ------------------------------------------------- JSON for /status */

static void json_histogram(ws_buf *b, const char *name,
                           const struct histogram *h)
{
    int i;

    ws_buf_printf(b, "\"%s\":{\"count\":%llu,\"sum\":%.9g,\"buckets\":[",
                  name, (unsigned long long)h->total, h->sum);
    for (i = 0; i < NBUCKETS; i++)
        ws_buf_printf(b, "%s{\"le\":%g,\"count\":%llu}", i ? "," : "",
                      h->bounds[i], (unsigned long long)h->counts[i]);
    ws_buf_puts(b, "]}");
}

void ws_metrics_json(ws_buf *b)
{
    int i, k;

    pthread_mutex_lock(&reg.lock);
    ws_buf_puts(b, "\"broker\":");
    if (reg.broker) {
        ws_buf_puts(b, "{\"bootstrap\":");
        ws_json_str(b, reg.broker, strlen(reg.broker));
        ws_buf_printf(b, ",\"kind\":\"%s\"}",
                      reg.broker_embedded ? "embedded" : "kafka");
    } else {
        ws_buf_puts(b, "null");
    }
    ws_buf_puts(b, ",\"broker_up\":");
    ws_buf_puts(b, reg.broker_up < 0 ? "null"
                   : reg.broker_up ? "true" : "false");
    ws_buf_puts(b, ",\"consumer_lag\":[");
    for (i = 0, k = 0; i < reg.partitions; i++)
        if (reg.lag[i] >= 0)
            ws_buf_printf(b, "%s{\"partition\":%d,\"lag\":%lld}",
                          k++ ? "," : "", i, (long long)reg.lag[i]);
    ws_buf_puts(b, "],\"records_lost\":[");
    for (i = 0; i < reg.partitions; i++)
        ws_buf_printf(b, "%s{\"partition\":%d,\"lost\":%lld}",
                      i ? "," : "", i, (long long)reg.lost[i]);
    ws_buf_puts(b, "],");
    if (reg.group) {
        ws_buf_puts(b, "\"records_lost_before_repartition\":[");
        for (i = 0, k = 0; i < WS_METRICS_MAX_PARTITIONS; i++)
            if (reg.lost_repart[i])
                ws_buf_printf(b, "%s{\"partition\":%d,\"lost\":%lld}",
                              k++ ? "," : "", i,
                              (long long)(reg.lost_repart[i] - 1));
        ws_buf_puts(b, "],");
    }
    json_histogram(b, "batch_commit_seconds", &reg.commit);
    ws_buf_putc(b, ',');
    json_histogram(b, "event_age_seconds", &reg.age);
    if (reg.shards > 0) {
        ws_buf_printf(b, ",\"workers\":{\"claims_cross_shard\":%llu,"
                         "\"claims_waited\":%llu,\"shards\":[",
                      (unsigned long long)reg.cross_claims,
                      (unsigned long long)reg.claim_waits);
        for (i = 0; i < reg.shards; i++)
            ws_buf_printf(b, "%s{\"shard\":%d,\"commits\":%llu,"
                             "\"commit_seconds\":%.9g}", i ? "," : "", i,
                          (unsigned long long)reg.shard_commit[i].total,
                          reg.shard_commit[i].sum);
        ws_buf_puts(b, "]}");
    }
    ws_buf_printf(b, ",\"history\":{\"interval_seconds\":%d,\"columns\":["
                     "\"time_ms\",\"applied\",\"duplicate\",\"rejected\","
                     "\"commits\",\"commit_seconds\",\"aged\","
                     "\"age_seconds\"],\"samples\":[",
                  WS_METRICS_SAMPLE_SECONDS);
    for (i = 0; i < reg.nhistory; i++) {
        const struct ws_metrics_sample *x =
            &reg.history[(reg.next - reg.nhistory + i + WS_METRICS_HISTORY) %
                         WS_METRICS_HISTORY];

        ws_buf_printf(b, "%s[%lld,%lld,%lld,%lld,%llu,%.9g,%llu,%.9g]",
                      i ? "," : "", (long long)x->time_ms,
                      (long long)x->outcome[WS_APPLIED],
                      (long long)x->outcome[WS_DUPLICATE],
                      (long long)x->outcome[WS_REJECTED],
                      (unsigned long long)x->commits, x->commit_seconds,
                      (unsigned long long)x->aged, x->age_seconds);
    }
    ws_buf_puts(b, "]}");
    pthread_mutex_unlock(&reg.lock);
}
