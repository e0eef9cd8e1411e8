/*
 * metrics.h - the runtime metrics registry and its Prometheus text.
 *
 * Besides main.c this is the one module with global mutable state: the
 * registry is process-wide, written by the stream thread and read by the
 * HTTP threads under one mutex. Outcome and reason counters are not kept
 * here: they are stored with the state (store.c) so that they survive
 * restarts and equal the figures they describe.
 */
#ifndef WS_METRICS_H
#define WS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "json_out.h"

/* Partitions tracked for lag; more are folded into the last gauge. */
#define WS_METRICS_MAX_PARTITIONS 1024

/* One committed batch: how long the commit took and how many records it
 * carried. Any thread. */
void ws_metrics_batch(double commit_seconds, uint64_t records);

/* Ages of the records a batch committed: commit time minus each record's
 * Kafka timestamp, in seconds. Any thread. */
void ws_metrics_event_ages(const double *ages, size_t n);

/* The writer's shards (run): their count, each commit's duration by
 * shard, and the claims of ids decided in another shard than their
 * record's (router.h) and those that waited. */
void ws_metrics_shards(int shards);
void ws_metrics_shard_commit(int shard, double commit_seconds);
void ws_metrics_claims(uint64_t cross_shard, uint64_t waited);
/* A group's instance: ids applied by one of its partitions that another
 * of its partitions remembers. */
void ws_metrics_ids_elsewhere(uint64_t n);
/* A partition restored from the state topic (--assignment group). */
void ws_metrics_restore(int64_t records, int64_t bytes, double seconds);

/* Consumer lag of a partition (high watermark minus the next offset the
 * state will read); -1 when unknown. Any thread. */
void ws_metrics_lag(int partition, int64_t lag);
void ws_metrics_partitions(int count);

/* Records of a partition deleted from the log before they were read, as
 * stored with the state (ws_view_lost). Any thread. */
void ws_metrics_lost(int partition, int64_t total);
/* Records of a partition of the input topic deleted before a group's
 * repartitioner read them (repartition.c), for a partition this
 * instance repartitions; total < 0: it no longer does. Any thread. */
void ws_metrics_lost_repartition(int partition, int64_t total);

/* The broker in use: its bootstrap address (borrowed: must outlive the
 * registry's readers, i.e. the process's HTTP server) and whether it is
 * the embedded test broker. Shown by /metrics (walletstream_broker_info),
 * /status and the dashboard's banner. Any thread. */
void ws_metrics_broker(const char *bootstrap, int embedded);

/* 1 when the broker answered the last metadata request. Any thread. */
void ws_metrics_broker_up(int up);

/* 1 when /readyz answers 200. Any thread. */
void ws_metrics_ready(int ready);

/* Counts one HTTP answer by route and status. Any thread. */
void ws_metrics_http(const char *route, unsigned status);

/* Appends the registry in Prometheus text format, build info included.
 * Any thread. */
void ws_metrics_render(ws_buf *b);

/* ---------------------------------------- the dashboard's history */

/* One sample a second, five minutes kept: what the dashboard at / draws
 * its rates from. Totals at the sample's time; rates are differences. */
#define WS_METRICS_SAMPLE_SECONDS 1
#define WS_METRICS_HISTORY 300

struct ws_metrics_sample {
    int64_t time_ms;                    /* Unix time */
    int64_t outcome[WS_OUTCOME_COUNT];  /* committed records by outcome */
    uint64_t commits;                   /* batch commits so far */
    double commit_seconds;              /* their total duration */
    uint64_t aged;                      /* records whose age was measured */
    double age_seconds;                 /* their total age */
};

/* Records one sample: the stored outcome totals `c` with the registry's
 * commit and age totals. Any thread (the HTTP server's sampler). */
void ws_metrics_sample(int64_t time_ms, const ws_counts *c);

/* Appends the registry as members of a JSON object (no braces): broker
 * (null, or bootstrap and kind), broker_up, consumer_lag, records_lost,
 * batch_commit_seconds, event_age_seconds and history.
 * Any thread. */
void ws_metrics_json(ws_buf *b);

#endif
