/*
 * metrics.c - histograms, gauges and counters of the running process.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

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

#define ROUTES 8
#define STATUSES 8     /* the codes below, then "other" */
static const char *const route_names[ROUTES] = {
    "/balance", "/average_daily_debit", "/top_credits", "/healthz",
    "/readyz", "/metrics", "/openapi.json", "other"};
static const unsigned status_codes[STATUSES - 1] = {200, 400, 401, 404,
                                                    405, 500, 503};

static struct {
    pthread_mutex_t lock;
    struct histogram commit;
    struct histogram batch;
    struct histogram age;
    int partitions;
    int64_t lag[WS_METRICS_MAX_PARTITIONS];
    int broker_up;
    int ready;
    uint64_t http[ROUTES][STATUSES];
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

void ws_metrics_event_ages(const double *ages, size_t n)
{
    size_t i;

    pthread_mutex_lock(&reg.lock);
    for (i = 0; i < n; i++)
        observe(&reg.age, ages[i]);
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_lag(int partition, int64_t lag)
{
    if (partition < 0)
        return;
    if (partition >= WS_METRICS_MAX_PARTITIONS)
        partition = WS_METRICS_MAX_PARTITIONS - 1;
    pthread_mutex_lock(&reg.lock);
    reg.lag[partition] = lag;
    pthread_mutex_unlock(&reg.lock);
}

void ws_metrics_partitions(int count)
{
    pthread_mutex_lock(&reg.lock);
    reg.partitions = count < WS_METRICS_MAX_PARTITIONS
                         ? count : WS_METRICS_MAX_PARTITIONS;
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

    for (r = 0; r < ROUTES - 1; r++)
        if (strcmp(route, route_names[r]) == 0)
            break;
    for (s = 0; s < STATUSES - 1; s++)
        if (status_codes[s] == status)
            break;
    pthread_mutex_lock(&reg.lock);
    reg.http[r][s]++;
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

void ws_metrics_render(ws_buf *b)
{
    int i, s;

    pthread_mutex_lock(&reg.lock);
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
    if (reg.broker_up >= 0)
        ws_buf_printf(b, "# HELP walletstream_broker_up 1 when the Kafka "
                         "broker answered the last metadata request.\n"
                         "# TYPE walletstream_broker_up gauge\n"
                         "walletstream_broker_up %d\n", reg.broker_up);
    ws_buf_printf(b, "# HELP walletstream_ready 1 when /readyz answers 200.\n"
                     "# TYPE walletstream_ready gauge\nwalletstream_ready %d\n",
                  reg.ready);
    ws_buf_puts(b, "# HELP walletstream_http_requests_total HTTP answers by "
                   "route and status.\n"
                   "# TYPE walletstream_http_requests_total counter\n");
    for (i = 0; i < ROUTES; i++)
        for (s = 0; s < STATUSES; s++)
            if (reg.http[i][s]) {
                char code[8] = "other";
                if (s < STATUSES - 1)
                    snprintf(code, sizeof code, "%u", status_codes[s]);
                ws_buf_printf(b, "walletstream_http_requests_total{route=\"%s\","
                                 "status=\"%s\"} %llu\n", route_names[i], code,
                              (unsigned long long)reg.http[i][s]);
            }
    pthread_mutex_unlock(&reg.lock);
}
