/*
 * router_int.h - what the files of the router share; no other module
 * includes it (their contract is router.h). Names declared here keep the
 * short names they had as statics of one file.
 *
 * Who owns what:
 *   router.c   the routing thread and router.h's functions: start and
 *              stop, put (decode, choose the shards, skip what a shard
 *              holds), push (hand over, offset marks, back pressure),
 *              quiesce, reset, held offsets, stats
 *   worker.c   one shard's worker (worker_main): taking its items,
 *              applying records, commits (hooks, offsets, outbox prune,
 *              sending the resolutions), how long a batch stays open,
 *              refill, waiting after a failure; the router's failure
 *              (fail, failed) and the records' release (release_rec,
 *              dequeued)
 *   claims.c   the claims of transaction ids: the pending ids (a hash),
 *              decide, resolve, own_pending and the verdicts, the pools of
 *              pending entries and resolutions, res_return and
 *              process_ctl, id buffers; ensure_batch (a decision reads the
 *              shard's batch, which the worker then applies into)
 *   here       the structs, and small helpers all three use (inline)
 *
 * Each worker has one mailbox, guarded by its mutex:
 *   - `items`, in routing order: its shard's records (to apply), claims
 *     of ids of its shard made by other shards' records (to decide),
 *     offset marks and quiesce requests;
 *   - `ctl`, in arrival order: resolutions of ids of its shard claimed
 *     by other shards' records, sent by those shards after they commit.
 * A claim is decided by the id's worker: the id is remembered (its
 * fingerprint says duplicate or conflicting), or claimed by a record not
 * yet resolved (the claim waits in that pending entry), or new (the
 * record becomes the pending owner). The decision is written into the
 * record (`verdict`), which the record's worker waits for at the head of
 * its items. An owner's resolution (applied or not) is sent only after
 * its shard has committed it.
 */
#ifndef WS_ROUTER_INT_H
#define WS_ROUTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "keyset.h"
#include "router.h"

/* Values up to this size are copied into the record itself. */
#define INLINE_VALUE 512

enum item_kind { IT_APPLY, IT_CLAIM, IT_MARK, IT_QUIESCE };

struct item {
    struct item *next;
    enum item_kind kind;
};

/* V_SOLO: one shard only, whose worker claims the id itself when it
 * applies the record (ws_engine_apply: no other shard can claim it, so
 * nothing is pending and nothing resolved). */
enum verdict { V_WAIT = 0, V_NEW, V_SAME, V_OTHER, V_SOLO };

/* One routed record. Owned by its wallet's worker; the id's worker only
 * reads it and writes its verdict while the owner waits for it. */
struct rec {
    struct item apply;          /* in the wallet shard's items */
    struct item claim;          /* in the id shard's items (cross) */
    struct rec *wait_next;      /* among a pending id's waiting claims */
    ws_input in;
    ws_result res;
    unsigned char fp[16];
    int decoded;                /* res.txn is valid: the id needs a claim */
    int asked;                  /* the claim was given to decide() */
    int wshard, tshard;
    uint64_t gen;               /* the pending entry's, with V_NEW */
    _Atomic int verdict;        /* written last by the id's worker */
    char *copy;                 /* the value, when the router copied it:
                                   `inline` or allocated */
    char inline_value[INLINE_VALUE];
};

/* An offset mark: every record of `partition` below `next` was routed.
 * A group's repartitioner's mark (ws_router_put_mark) also tells, for
 * each of its nfront input partitions, the offset past the newest
 * record of it that the shard has been given (router.h, origin_key). */
struct mark {
    struct item it;
    int partition;
    int64_t next;
    int nfront;
    struct {
        int32_t partition;
        int64_t next;
    } front[];
};

/* A transaction id held by a pending entry or a resolution: short ids
 * (all ids seen in practice) inline, so that these structs stay small
 * and reusable. Never copied by value (p may point into it). */
#define ID_INLINE 40
struct idbuf {
    uint16_t n;
    char *p;
    char in[ID_INLINE];
};

/* A resolution of an id claimed by a record of shard `from`, sent after
 * `from` committed the record. */
struct resolution {
    struct resolution *next;
    uint64_t gen;               /* the pending entry's owner generation */
    uint64_t seq;               /* outbox sequence (applied, cross) */
    int from;
    int applied;
    ws_source_pos src;          /* the applied record's (Kafka) */
    unsigned char fp[16];
    struct idbuf id;
};

/* An id claimed by a record not yet resolved. */
struct pending {
    struct pending *next;       /* hash chain */
    uint64_t hash;
    uint64_t gen;
    int owner;                  /* shard of the owning record */
    int state;                  /* 0 in flight, 1 applied, 2 rejected
                                   (known only for the owner's shard) */
    unsigned char fp[16];
    struct rec *wait_head, *wait_tail;
    struct idbuf id;
};

struct worker {
    struct ws_router *r;
    int shard;
    pthread_t thread;
    int started;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct item *items_head, *items_tail;
    struct resolution *ctl_head, *ctl_tail;
    int reset;                  /* drop everything (router reset) */
    _Atomic int awaited;
    _Atomic uint64_t queued;    /* its records handed over, not applied:
                                   the backlog a batch stays open for */        /* claims waiting for this shard's
                                   records to commit: commit soon */
    uint64_t quiesce_done;      /* quiesce requests answered */
    int quiesce_committed;      /* the last answered one committed */

    /* Worker thread only. */
    struct item *head, *tail;   /* taken items, in order */
    ws_batch *batch;
    uint64_t in_batch;
    int64_t opened_ms;
    int64_t last_commit_ms;     /* how long the last commit took */
    int64_t next[WS_ROUTER_MAX_PARTITIONS];     /* -1: not touched */
    int64_t committed[WS_ROUTER_MAX_PARTITIONS]; /* -1: none yet */
    int64_t origin_next[WS_ROUTER_MAX_PARTITIONS]; /* hooks->origin_key's
                                   offsets in this batch; -1: none */
    int offsets_due;            /* a mark moved next[] with no batch */
    int64_t marks_since;        /* a repartitioner's mark moved next[]
                                   with no batch: since when (-1: not) */
    struct resolution *res_head, *res_tail;     /* sent after commit */
    struct pending **table;
    size_t buckets, npending;
    uint64_t gen;
    uint64_t out_seq[WS_SHARDS_MAX];
    double *ages;
    size_t nages, ages_cap;
    /* Records done with: handed back to the router's pool (under lock
     * as `returned`), so that records are not freed on one thread and
     * allocated on another (glibc's arena lock showed in profiles). */
    struct rec *done, *done_tail, *returned, *returned_tail;
    /* Pending entries and resolutions are reused, not freed: resolutions
     * come back from the shard that processed them (`res_returned`,
     * under lock), as records do. */
    struct pending *pending_pool;
    struct resolution *res_pool, *res_returned;
    /* The last outbox sequence delivered by each shard in the open batch,
     * stored at commit (0: none). */
    uint64_t inbox_seq[WS_SHARDS_MAX];
};

struct ws_router {
    ws_router_opts o;
    int n;
    struct worker w[WS_SHARDS_MAX];
    ws_decoder *decoder;
    _Atomic int stop;

    /* Routing thread only: records routed since the last push, and the
     * shards' held offsets as of the last (re)start of routing. */
    struct item *out_head[WS_SHARDS_MAX], *out_tail[WS_SHARDS_MAX];
    uint64_t unpushed, unpushed_cross;
    uint64_t unpushed_to[WS_SHARDS_MAX];   /* records, by shard */
    struct rec *pool;           /* free records */
    int64_t skip[WS_SHARDS_MAX][WS_ROUTER_MAX_PARTITIONS];
    int touched[WS_ROUTER_MAX_PARTITIONS];
    int64_t last_next[WS_ROUTER_MAX_PARTITIONS];
    /* Ids applied by a partition that another owned one remembers, each
     * counted once (the ids, under lock; at most ELSEWHERE_MAX kept). */
    atomic_uint_fast64_t ids_elsewhere;
    struct ws_keyset *elsewhere;

    /* Guarded by lock. */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int64_t held[WS_SHARDS_MAX][WS_ROUTER_MAX_PARTITIONS];
    uint64_t queued;            /* records put, not yet applied */
    int failed;
    char why[WS_ROUTER_WHY_MAX];
    ws_router_stats stats;
};

/* ------------------------------------------------------- small helpers */

static inline struct rec *rec_of_apply(struct item *it)
{
    return (struct rec *)(void *)((char *)it - offsetof(struct rec, apply));
}

static inline struct rec *rec_of_claim(struct item *it)
{
    return (struct rec *)(void *)((char *)it - offsetof(struct rec, claim));
}

static inline void wake(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

/* ----------------------------------------------------------- claims.c */

void id_free(struct idbuf *b);
int pending_grow(struct worker *w);
void pending_clear(struct worker *w);
int ensure_batch(struct worker *w);
int decide(struct worker *w, struct rec *rc);
int resolve(struct worker *w, struct resolution *res, uint32_t *woken);
void own_pending(struct worker *w, struct rec *rc, int applied);
void wake_set(struct ws_router *r, const uint32_t *woken, int self);
void free_resolutions(struct resolution *res);
void res_free(struct worker *w, struct resolution *res);
int process_ctl(struct worker *w, struct resolution *ctl, uint32_t *woken);
int to_resolve(struct worker *w, struct rec *rc, uint64_t gen);

/* ----------------------------------------------------------- worker.c */

void fail(struct ws_router *r, int e, const char *why);
int failed(struct ws_router *r);
void release_rec(struct ws_router *r, struct rec *rc, struct rec **to);
void dequeued(struct ws_router *r, uint64_t records);
void drop_state(struct worker *w);
void *worker_main(void *arg);

/* An id applied by one partition that another partition of this
 * instance remembers: counted once (router.c). Any worker. */
void router_note_elsewhere(struct ws_router *r, const char *id, size_t n);

#endif
