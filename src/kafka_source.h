/*
 * kafka_source.h - the librdkafka consumer of the input topic.
 *
 * No group membership: the source reads the topic's metadata and assigns
 * itself every partition (rd_kafka_assign) at the offsets stored with the
 * state, so a restart after kill -9 resumes at once, with no rebalance
 * and no session timeout to wait out (DESIGN §1). Offsets are also
 * committed to the consumer group, asynchronously, for lag tools; they
 * are never read back.
 *
 * Everything here runs on the stream thread.
 */
#ifndef WS_KAFKA_SOURCE_H
#define WS_KAFKA_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "store.h"

#define WS_SOURCE_ERR_MAX 512
/* Most partitions one topic may have here. */
#define WS_SOURCE_MAX_PARTITIONS 1024

typedef struct ws_kafka_opts {
    const char *brokers;
    const char *topic;
    const char *group;
    char *const *props;     /* "key=value" librdkafka properties (-X) */
    int nprops;
    /* Consumer: a stored offset beyond its log's end (a recreated topic)
     * is read from the log's start when the process starts, instead of
     * refused (--recreated-topic read-from-start). */
    int recreated_from_start;
    /* run --assignment group: the consumer is a member of `group`
     * (static: group.instance.id instance_id), given its partitions by
     * the group (cooperative-sticky) and reading them read_committed;
     * client_id names it to the other members (NULL: "walletstream"). */
    int group_mode;
    const char *instance_id;
    const char *client_id;
    unsigned session_timeout_ms;    /* 0: librdkafka's default */
} ws_kafka_opts;

/* One librdkafka property: 0, or WS_ERR_USAGE with "key: reason" in
 * err[0..WS_SOURCE_ERR_MAX). */
int ws_kafka_conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
                      char *err);

/* A group member's session settings (session.timeout.ms and a heartbeat
 * a third of it) into conf: 0 or WS_ERR_USAGE with the reason in err. */
int ws_kafka_conf_session(rd_kafka_conf_t *conf, const ws_kafka_opts *opts,
                          char *err);

/* Applies opts->props to conf. Returns 0, or WS_ERR_USAGE with a sentence
 * in err[0..WS_SOURCE_ERR_MAX). Shared with the producers. */
int ws_kafka_conf_props(rd_kafka_conf_t *conf, const ws_kafka_opts *opts,
                        char *err);

typedef struct ws_source ws_source;

/* Creates the consumer. Returns 0, or an error with a sentence in err. */
int ws_source_open(const ws_kafka_opts *opts, ws_source **out, char *err);

/* Closes the consumer (leaving no group: there is no membership). NULL is
 * accepted. */
void ws_source_close(ws_source *s);

/* Reads the topic's metadata. When the topic has partitions not yet
 * assigned (the first call, partitions added later, the topic back after
 * it was deleted), assigns every partition at its offset stored in
 * `store` (offset 0 when none), checked against the log:
 * - below the log's start: the records in between were deleted before
 *   they were read; they are logged, the partition's stored offset moves
 *   to the log's start and its lost count (ws_view_lost) grows by as
 *   many, in one store transaction, and reading goes on from there;
 * - beyond the log's end: the log was replaced (a topic deleted and
 *   created again). The topic is refused for the life of the process:
 *   nothing more is assigned and this call and ws_source_rewind return
 *   WS_ERR_IO with the reason and the operator's choices in why. With
 *   opts->recreated_from_start, the first assignment reads such a log
 *   from its start instead.
 * `ignore_stored` starts every partition at offset 0 on the first
 * assignment (a brand-new embedded broker). Returns 0, or an error with
 * the reason in why (broker unreachable, topic missing, refused, store). */
int ws_source_sync(ws_source *s, ws_store *store, int ignore_stored,
                   int timeout_ms, char *why);

/* Positions every assigned partition at its stored offset again (after an
 * aborted batch, or a position outside the log), checked against the log
 * as ws_source_sync does. Returns 0 or an error with the reason in why. */
int ws_source_rewind(ws_source *s, ws_store *store, char *why);

/* A group's member (ws_kafka_opts.group_mode): what the caller does when
 * the group gives or takes partitions. Called on the stream thread from
 * inside ws_source_poll (the rebalance) or ws_source_sync (a partition
 * whose first try failed is tried again there). */
typedef struct ws_group_hooks {
    void *arg;
    /* Partition p is given: make its state current (fence its former
     * owner, restore) and say in *next where to read from. Non-zero,
     * with the reason in why: it is not read, and tried again at the
     * next sync. */
    int (*assigned)(void *arg, int p, int64_t *next, char *why);
    /* Partitions are taken away: after it returns they are no longer
     * read. lost: the group took them without asking (this member was
     * thought gone): another instance may own them already. */
    void (*revoked)(void *arg, const int *parts, int n, int lost);
} ws_group_hooks;
/* Sets the hooks (NULL: none; partitions are then given and taken
 * without a word, as when closing). */
void ws_source_group_hooks(ws_source *s, const ws_group_hooks *h);
/* Whether partition p is read by this instance (always, for the
 * partitions of ws_source_partitions, when not in a group). */
int ws_source_owns(const ws_source *s, int p);
/* A group's member: partition p is given but not read yet (its state
 * could not be restored); and giving partition p up at once (its
 * writer was fenced: another instance owns it now). */
int ws_source_pending(const ws_source *s, int p);
void ws_source_drop(ws_source *s, int p);
/* Whether the member has been given its first assignment. */
int ws_source_joined(const ws_source *s);

/* fn(arg) is called before partitions are assigned at the stored
 * offsets (ws_source_sync, ws_source_rewind), so that whatever was read
 * is committed first; NULL: nothing. */
void ws_source_on_assign(ws_source *s, void (*fn)(void *arg), void *arg);

/* How many assignments were made so far (changes when the partitions were
 * positioned at the stored offsets again). */
unsigned ws_source_assignments(const ws_source *s);

/* Number of assigned partitions (0 before the first successful sync); a
 * group's member: the topic's partition count once it joined (which of
 * them it reads: ws_source_owns). */
int ws_source_partitions(const ws_source *s);

/* Up to cap records into msgs[]: waits up to timeout_ms for the first,
 * then takes what is already there, without waiting. Returns how many (0: none came).
 * The caller destroys each with rd_kafka_message_destroy(). Errors arrive
 * as messages with ->err set. Stream thread only. */
size_t ws_source_poll(ws_source *s, int timeout_ms,
                      rd_kafka_message_t **msgs, size_t cap);

/* Commits next offsets to the consumer group, asynchronously, for lag
 * tools. next[p] < 0 means unchanged. */
void ws_source_commit_group(ws_source *s, const int64_t *next, int n);

/* The consumer's position in partition p (the next offset it returns),
 * or -1 when unknown. */
int64_t ws_source_position(ws_source *s, int p);
/* The last high watermark seen for a partition, or -1. */
int64_t ws_source_high_watermark(ws_source *s, int partition);

/* The last broker-wide error reported by librdkafka since the previous
 * call (e.g. all brokers down), or NULL; cleared by reading. */
const char *ws_source_take_error(ws_source *s);

/* The store key of a partition's offset: "topic/partition". */
size_t ws_source_offset_key(const char *topic, int partition, char *buf,
                            size_t cap);

#endif
