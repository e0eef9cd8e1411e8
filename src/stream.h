/*
 * stream.h - the stream thread of `walletstream run`: records from the
 * Kafka source through the engine into the store, in batches, with dead
 * letters, offsets and readiness.
 *
 * Batching (DESIGN §2): a batch commits when it holds --batch-max
 * records, when the consumer has nothing more to give right now, or when
 * it has been open for --batch-linger ms or, if longer, three times as
 * long as the last commit took (at most 1 s). Idle, each record is
 * committed within one fsync of arriving; under a backlog commits take at
 * most about a quarter of the time and one commit carries thousands.
 *
 * Commit order of a batch: dead letters and changelog records delivered
 * and confirmed -> figures, counters and next offsets in one LMDB
 * transaction -> offsets mirrored to the consumer group. When a step fails (dead-letter topic, store), the
 * batch is dropped, the partitions are rewound to the stored offsets,
 * /readyz says why, and the same records are tried again after a pause:
 * nothing is skipped.
 */
#ifndef WS_STREAM_H
#define WS_STREAM_H

#include <signal.h>
#include <stdint.h>

#include "changelog.h"
#include "producer.h"
#include "kafka_source.h"
#include "store.h"

/* Readiness, shared between the stream thread (writer) and the HTTP
 * threads (readers). */
typedef struct ws_status ws_status;

int ws_status_new(ws_status **out);
void ws_status_free(ws_status *st);
/* Sets the reason the service is not ready, or NULL when ready. */
void ws_status_set(ws_status *st, const char *reason);
/* Returns 1 when ready; else 0 with the reason copied into why[0..cap). */
int ws_status_ready(ws_status *st, char *why, size_t cap);
/* The input topic's partitions (0: not known yet), set with the
 * readiness; the getter has the signature of ws_partitions_fn (api.h). */
void ws_status_set_partitions(ws_status *st, int n);
int ws_status_partitions(void *st);

typedef struct ws_stream_opts {
    ws_store *store;
    ws_source *source;
    ws_producer *producer;          /* dead letters and changelog of
                                       shard 0; the other shards' are
                                       opened with producer_opts */
    const ws_kafka_opts *producer_opts;
    const char *dlq_topic;
    int changelog;                  /* 0: no changelog topics */
    ws_status *status;
    const char *topic;              /* the topic read (offsets' keys) */
    const char *brokers;            /* named when none answers */
    /* run --assignment group: `topic` is <in_topic>.by-wallet, shard k is
     * its partition k, written through a transactional producer opened
     * (fencing the former owner) when the group gives the partition,
     * which also carries the shard's changes to state_topic; restored
     * from it first. Outputs are named after in_topic. */
    int group_mode;
    const char *in_topic;           /* the input topic (= topic when not
                                       in a group) */
    const char *state_topic;
    const char *group;
    const ws_kafka_opts *consumer_opts;
    struct ws_standby *standby;     /* warm copies to feed, or NULL */
    uint64_t batch_max;
    uint64_t batch_linger_ms;
    int ignore_stored;              /* a brand-new embedded broker */
    volatile sig_atomic_t *stop;    /* set by SIGINT/SIGTERM */
} ws_stream_opts;

/* Runs until *stop is set; then commits the open batch and returns 0.
 * Returns an error only when it cannot go on at all. */
int ws_stream_run(const ws_stream_opts *o);

#endif
