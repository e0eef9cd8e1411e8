/*
 * standby.h - warm copies of partitions other instances own (run
 * --assignment group --standby-replicas N; Kafka Streams' standby
 * replicas).
 *
 * An instance keeps, for the partitions it is a standby of (the N members
 * after each partition's owner in the order of instance ids:
 * ws_members_standby), its shard up to date with the partition's state
 * topic, read_committed, as the owner commits. When the group gives it
 * such a partition, the restore reads only what the copy lacks.
 *
 * The stream thread calls ws_standby_step between polls, and
 * ws_standby_release before it restores a partition it is given: the
 * copies and the partitions it owns are never written at once.
 */
#ifndef WS_STANDBY_H
#define WS_STANDBY_H

#include "kafka_source.h"
#include "members.h"
#include "store.h"

typedef struct ws_standby ws_standby;

/* Keeps `replicas` copies per partition of `state_topic` (its partition
 * k is shard k of `store`) for this instance, `self` in `members`.
 * Returns 0, or an error with a sentence in err[0..WS_SOURCE_ERR_MAX). */
int ws_standby_new(const ws_kafka_opts *opts, const char *state_topic,
                   ws_store *store, ws_members *members, const char *self,
                   int replicas, ws_standby **out, char *err);
void ws_standby_free(ws_standby *s);

/* Applies up to `max` records waiting for the warm copies (no wait) and
 * commits them, with each copy's position. Returns how many, or -1 with
 * the reason in why (the copies then start over at the next step). */
int ws_standby_step(ws_standby *s, int max, char *why);

/* Partition p is given to this instance: its copy is no longer fed. */
void ws_standby_release(ws_standby *s, int p);

/* The partitions kept warm now (bit p). */
uint64_t ws_standby_partitions(const ws_standby *s);

#endif
