/*
 * router.h - records to the shards that own them (DESIGN "Shards").
 *
 * One thread, the caller's, routes: it decodes each input record and
 * hands it to the worker of its wallet's shard (ws_shard_index), and the
 * claim of its transaction_id to the worker of the id's shard. N worker
 * threads apply: each owns one shard of the store, opens, fills and
 * commits that shard's batches on its own schedule, and writes its own
 * offsets, so that commits of different shards never wait for each
 * other.
 *
 * Exactly as one worker would (SPEC §3): every worker takes its records
 * and claims in routing order; a claim for an id that another record has
 * claimed and not yet resolved (applied or rejected, committed by its
 * shard) waits for that resolution, so a record's outcome is the one it
 * would get if the records were applied one by one in routing order. A
 * new id costs the id's worker one lookup and no lock shared by all
 * workers. An id applied by a record of another shard is committed with
 * the record in that shard's outbox and remembered by the id's shard
 * after (ws_batch_outbox_add): no crash forgets it.
 *
 * After a crash each shard holds what it committed: the source is read
 * again from the smallest of the shards' offsets and the router skips,
 * per shard, what the shard already holds.
 *
 * Ownership: the router owns its threads and every record handed to
 * ws_router_put until the worker releases it (hooks->release). The
 * store and the hooks' context are the caller's and must outlive it.
 */
#ifndef WS_ROUTER_H
#define WS_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "store.h"

/* Most input partitions (or files) one router follows. */
#define WS_ROUTER_MAX_PARTITIONS 1024

/* One input record as the source gives it. */
typedef struct ws_input {
    int partition;          /* Kafka partition, or the file's index */
    int64_t offset;         /* Kafka offset, or the line number */
    const char *value;      /* the record's value, len bytes */
    size_t len;
    int64_t ts_ms;          /* Kafka timestamp, -1 when none */
    ws_source_pos origin;   /* the record's place in the input topic:
                               partition and offset, unless it was read
                               from a repartition topic (a group's
                               <topic>.by-wallet) */
    int repartitioned;      /* 1: origin is the input topic's place, read
                               from the record's header (a group's
                               instance); 0: origin is where it was read */
    void *handle;           /* the source's record (a Kafka message),
                               released by hooks->release; NULL: the
                               router copies the value */
} ws_input;

/* What the caller does around each shard's records and commits; called
 * on that shard's worker thread, so the context must allow calls for
 * different shards at once. Each returns 0, or non-zero with a sentence
 * in why[0..WS_ROUTER_WHY_MAX): the batch is then dropped and the
 * router fails (ws_router_failed). */
#define WS_ROUTER_WHY_MAX 512
typedef struct ws_router_hooks {
    void *ctx;
    /* A record of the shard was rejected: its dead letter. */
    int (*dead_letter)(void *ctx, int shard, const ws_input *in,
                       const ws_result *res, char *why);
    /* A record's outcome, for the changelog; may be NULL. */
    int (*note)(void *ctx, int shard, const ws_input *in,
                const ws_result *res);
    /* The shard's batch is about to commit: make its outputs durable. */
    int (*before_commit)(void *ctx, int shard, ws_batch *b, char *why);
    /* The commit was tried (ok 1: it committed `records` in `seconds`);
     * ages_s are the ages of its records at commit (Kafka timestamps). */
    void (*after_commit)(void *ctx, int shard, int ok, uint64_t records,
                         double seconds, double *ages_s, size_t nages);
    /* The offsets key of a partition ("topic/p"), or 0: not stored. */
    size_t (*source_key)(void *ctx, int partition, char *key, size_t cap);
    /* A group's instance, NULL otherwise: the offsets key of partition p
     * of the input topic ("topic/p"). A shard stores there the offset
     * past the newest repartitioned record of p it applied: the records
     * of p reach a partition of <topic>.by-wallet in their order (one
     * repartitioner per partition at a time, exactly once), so it holds
     * every record of p below that offset that is its own. */
    size_t (*origin_key)(void *ctx, int partition, char *key, size_t cap);
    /* The source's record handle is no longer needed. */
    void (*release)(void *ctx, void *handle);
} ws_router_hooks;

typedef struct ws_router_opts {
    ws_store *store;                /* opened as writer, N shards */
    const ws_router_hooks *hooks;
    uint64_t batch_max;             /* records per batch of one shard */
    unsigned batch_linger_ms;       /* a batch commits after this long */
    /* A group's instance: shard k is partition k of a topic keyed by
     * wallet (<topic>.by-wallet): a record goes to its partition's
     * shard, claims its transaction_id there (ids are unique per
     * partition: docs/DECISIONS.md), and only that shard stores the
     * partition's offset. */
    int by_partition;
} ws_router_opts;

typedef struct ws_router ws_router;

/* Starts one worker per shard of o->store. Returns 0 or WS_ERR_NOMEM. */
int ws_router_start(const ws_router_opts *o, ws_router **out);

/* Stops the workers (their open batches are dropped, not committed:
 * call ws_router_quiesce first for a clean stop) and frees the router.
 * NULL is accepted. */
void ws_router_stop(ws_router *r);

/* Routes one record (it is taken: released through hooks->release). A
 * record the shard owning it already holds (below that shard's
 * committed offset of the partition) is released at once. Blocks while
 * the workers have more records queued than they take in a batch.
 * Routed records are handed over by ws_router_push. */
void ws_router_put(ws_router *r, ws_input *in);

/* A group's instance: the repartitioner's mark read at `offset` of
 * `partition` (repartition.h): every record of input partition parts[i]
 * below nexts[i] that belongs to the partition came before it. The
 * shard stores that frontier (origin_key) once it applied what came
 * before, with the partition's offset past the mark. It is no record:
 * no outcome is counted. n <= 0 (a mark that could not be read): the
 * partition's offset moves past it alone. */
void ws_router_put_mark(ws_router *r, int partition, int64_t offset,
                        const int32_t *parts, const int64_t *nexts, int n);

/* Hands the records routed so far to the workers, and tells every
 * worker that each partition put since was read up to its last offset
 * (so that shards without records of it store their offset too). */
void ws_router_push(ws_router *r);

/* Every shard applies what it was given and commits, until none has
 * anything left to commit. Returns 0, or the failure (as
 * ws_router_failed). */
int ws_router_quiesce(ws_router *r);

/* Non-zero when a worker failed (a store or output error): the error,
 * with the sentence in why. The caller then calls ws_router_reset. */
int ws_router_failed(ws_router *r, char *why, size_t cap);

/* After a failure: every worker drops its open batch and what it was
 * given, the ids committed in outboxes are delivered again, and
 * routing starts over from the shards' committed offsets (which the
 * caller re-reads its source from: the shards' stored offsets). Returns 0 or the
 * store's error. */
int ws_router_reset(ws_router *r);

/* Records per batch from now on (between a reset and routing again). */
void ws_router_set_batch_max(ws_router *r, uint64_t batch_max);

/* Sets a shard's committed next offset of a partition (from the store,
 * when the caller positions its source); -1: nothing held. */
void ws_router_set_held(ws_router *r, int shard, int partition,
                        int64_t next);

/* Reads every shard's stored offset of each of n partitions from the
 * store into the skip table (ws_router_set_held). Returns 0 or an
 * error. */
int ws_router_load_held(ws_router *r, int n);

/* One past the last offset of partition p routed so far (0: none).
 * Routing thread. */
int64_t ws_router_routed_next(const ws_router *r, int p);

/* Lines (records), claims waited for, batches committed: for metrics. */
typedef struct ws_router_stats {
    uint64_t records;
    uint64_t cross_claims;      /* ids claimed in another shard */
    uint64_t ids_elsewhere;     /* a group's: ids applied by one partition
                                   that another owned one remembers */
    uint64_t claim_waits;       /* claims that waited for a resolution */
    uint64_t commits[WS_SHARDS_MAX];
} ws_router_stats;
void ws_router_stats_get(ws_router *r, ws_router_stats *out);

#endif
