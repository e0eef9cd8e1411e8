/*
 * state_topic.h - a partition's state in Kafka, for the instances of a
 * group (run --assignment group; DESIGN "Many machines").
 *
 * <topic>.state is compacted and has one partition per partition of the
 * consumed topic (<topic>.by-wallet): partition p holds, for every record
 * of shard p's state, its latest value (key: the table's byte then the
 * record's key; value: the record as stored; a deletion is a
 * tombstone). Each batch of shard p sends its changes there in the
 * transaction that also carries its outputs, and commits that
 * transaction before its LMDB transaction: the topic is never behind
 * the local state, and the partition's next owner rebuilds the state
 * exactly from it.
 *
 * A shard remembers where its copy of the topic stops (a mark, outside
 * its state): an instance given back a partition it owned reads only
 * what was written since.
 */
#ifndef WS_STATE_TOPIC_H
#define WS_STATE_TOPIC_H

#include <stdint.h>

#include "kafka_source.h"
#include "producer.h"
#include "store.h"

/* A copy older than this is rebuilt from the start rather than brought
 * up to date: a tombstone older than the topic's delete.retention.ms
 * (Kafka's default: 24 h) may have been compacted away. */
#define WS_STATE_DELTA_MAX_MS (12LL * 3600 * 1000)

/* Sends the changes of the sealed batch b into `partition` of
 * `state_topic` through p (in p's open transaction), and follows that
 * partition (ws_producer_track). Returns 0 or an error with a sentence in
 * why[0..WS_SOURCE_ERR_MAX). */
int ws_state_publish(ws_batch *b, ws_producer *p, const char *state_topic,
                     int partition, char *why);

/* After the transaction of b's changes committed: records in b where
 * the shard's copy of the topic now stops. Returns 0 or a store error. */
int ws_state_mark(ws_batch *b, const ws_producer *p);

/* The pieces a restore and a warm copy (standby.c) share: a consumer of
 * the state topic outside any group, read_committed (eof: with end of
 * partition events); one record of it applied to the batch of its shard
 * (0, or an error with why); the position a shard's copy stops at
 * recorded (with the time), and read back: 0 with *next when the copy is
 * recent and within [lo, hi] (hi < 0: any), else WS_ERR_NOT_FOUND. */
rd_kafka_t *ws_state_reader(const ws_kafka_opts *opts, int eof, char *why);
int ws_state_apply(ws_batch *b, const rd_kafka_message_t *m, char *why);
int ws_state_mark_next(ws_batch *b, int64_t next);
int ws_state_copy_at(ws_store *store, int shard, int64_t lo, int64_t hi,
                     int64_t *next);

typedef struct ws_restore_stats {
    int64_t records;        /* read from the topic */
    int64_t bytes;          /* their keys and values */
    int64_t from, to;       /* the offsets read (to: the end) */
    int full;               /* 1: the shard was emptied first */
    double seconds;
} ws_restore_stats;

/* Makes shard `shard` of `store` hold what partition `partition` of
 * `state_topic` holds, read_committed: only what was written after the
 * shard's mark when the mark is recent and within the log, else from the
 * start into an emptied shard. The caller must be the partition's only
 * writer (its transactional producer opened: nothing is left open
 * there). Returns 0 or an error with a sentence in why. */
/* progress(arg, at, end), when not NULL, is called at the start and at
 * every commit of the restore with the offset reached and the end. */
typedef void (*ws_restore_progress_fn)(void *arg, int64_t at, int64_t end);
int ws_state_restore(const ws_kafka_opts *opts, const char *state_topic,
                     int partition, ws_store *store, int shard,
                     ws_restore_progress_fn progress, void *arg,
                     ws_restore_stats *st, char *why);

#endif
