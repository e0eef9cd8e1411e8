/*
 * router.c - the routing thread and the shards' workers (router.h).
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
#include "router.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "timeutil.h"

/* Records routed but not yet applied, per worker, before ws_router_put
 * waits. */
#define QUEUE_MAX 65536
/* How long a worker whose next record waits for a claim lets its open
 * batch wait before committing it anyway (owners are asked to commit
 * when a claim waits for them: this is a safety net only). */
#define BLOCKED_COMMIT_MS 50
/* Poll period of an idle worker. */
#define IDLE_MS 50
/* While records keep coming, a batch stays open up to this many times
 * the duration of the last commit (and at least the linger), so that
 * commits take at most about a quarter of the time however slow the
 * disk; never longer than MAX_OPEN_MS. With nothing more queued it
 * commits after the linger. */
#define COMMIT_SHARE 3
#define MAX_OPEN_MS 1000
/* Records applied between looks at the mailbox for other shards' claims
 * (their records wait for the verdicts). */
#define REFILL_EVERY 128

/* Values up to this size are copied into the record itself. */
#define INLINE_VALUE 512

enum item_kind { IT_APPLY, IT_CLAIM, IT_MARK, IT_QUIESCE };

struct item {
    struct item *next;
    enum item_kind kind;
};

enum verdict { V_WAIT = 0, V_NEW, V_SAME, V_OTHER };

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

/* An offset mark: every record of `partition` below `next` was routed. */
struct mark {
    struct item it;
    int partition;
    int64_t next;
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

static int id_set(struct idbuf *b, const char *id, size_t n)
{
    b->n = (uint16_t)n;
    b->p = n <= ID_INLINE ? b->in : malloc(n);
    if (!b->p)
        return WS_ERR_NOMEM;
    memcpy(b->p, id, n);
    return WS_OK;
}

static void id_free(struct idbuf *b)
{
    if (b->p && b->p != b->in)
        free(b->p);
    b->p = NULL;
}

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
    _Atomic int awaited;        /* claims waiting for this shard's
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
    int offsets_due;            /* a mark moved next[] with no batch */
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
    struct rec *pool;           /* free records */
    int64_t skip[WS_SHARDS_MAX][WS_ROUTER_MAX_PARTITIONS];
    int touched[WS_ROUTER_MAX_PARTITIONS];
    int64_t last_next[WS_ROUTER_MAX_PARTITIONS];

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

static struct rec *rec_of_apply(struct item *it)
{
    return (struct rec *)(void *)((char *)it - offsetof(struct rec, apply));
}

static struct rec *rec_of_claim(struct item *it)
{
    return (struct rec *)(void *)((char *)it - offsetof(struct rec, claim));
}

static void append(struct item **head, struct item **tail, struct item *it)
{
    it->next = NULL;
    if (*tail)
        (*tail)->next = it;
    else
        *head = it;
    *tail = it;
}

static void wake(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

static void fail(struct ws_router *r, int e, const char *why)
{
    pthread_mutex_lock(&r->lock);
    if (!r->failed) {
        r->failed = e ? e : WS_ERR_IO;
        snprintf(r->why, sizeof r->why, "%s", why);
    }
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static int failed(struct ws_router *r)
{
    int f;

    pthread_mutex_lock(&r->lock);
    f = r->failed;
    pthread_mutex_unlock(&r->lock);
    return f;
}

/* The source's handle (or the router's copy) of a record is released;
 * the record goes back to `*to`. */
static void release_rec(struct ws_router *r, struct rec *rc, struct rec **to)
{
    if (rc->copy && rc->copy != rc->inline_value)
        free(rc->copy);
    else if (!rc->copy && r->o.hooks->release)
        r->o.hooks->release(r->o.hooks->ctx, rc->in.handle);
    rc->copy = NULL;
    rc->wait_next = *to;
    *to = rc;
}

static void free_recs(struct rec *rc)
{
    struct rec *next;

    for (; rc; rc = next) {
        next = rc->wait_next;
        free(rc);
    }
}

/* One record of this worker's items has been taken care of. */
static void dequeued(struct ws_router *r, uint64_t records)
{
    pthread_mutex_lock(&r->lock);
    r->queued -= records;
    r->stats.records += records;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

/* ------------------------------------------------ pending ids (a hash) */

static struct pending **pending_slot(struct worker *w, const char *id,
                                     size_t n, uint64_t h)
{
    struct pending **p = &w->table[h & (w->buckets - 1)];

    while (*p && !((*p)->hash == h && (*p)->id.n == n &&
                   memcmp((*p)->id.p, id, n) == 0))
        p = &(*p)->next;
    return p;
}

static int pending_grow(struct worker *w)
{
    size_t nb = w->buckets ? w->buckets * 2 : 1024, i;
    struct pending **t = calloc(nb, sizeof *t);

    if (!t)
        return WS_ERR_NOMEM;
    for (i = 0; i < w->buckets; i++) {
        struct pending *p = w->table[i], *next;

        for (; p; p = next) {
            next = p->next;
            p->next = t[p->hash & (nb - 1)];
            t[p->hash & (nb - 1)] = p;
        }
    }
    free(w->table);
    w->table = t;
    w->buckets = nb;
    return WS_OK;
}

static struct pending *pending_new(struct worker *w)
{
    struct pending *p = w->pending_pool;

    if (p)
        w->pending_pool = p->next;
    else
        p = malloc(sizeof *p);
    return p;
}

static void pending_free(struct worker *w, struct pending *p)
{
    id_free(&p->id);
    p->next = w->pending_pool;
    w->pending_pool = p;
}

static void pending_clear(struct worker *w)
{
    size_t i;

    for (i = 0; i < w->buckets; i++) {
        struct pending *p = w->table[i], *next;

        for (; p; p = next) {
            next = p->next;
            pending_free(w, p);
        }
        w->table[i] = NULL;
    }
    w->npending = 0;
}

/* ---------------------------------------------------- deciding claims */

/* Opens the worker's batch when none is open. */
static int ensure_batch(struct worker *w)
{
    int e;

    if (w->batch)
        return WS_OK;
    e = ws_store_begin_shard(w->r->o.store, w->shard, &w->batch);
    if (e == WS_OK)
        w->opened_ms = ws_clock_ms();
    return e;
}

static void give_verdict(struct rec *rc, enum verdict v)
{
    atomic_store_explicit(&rc->verdict, (int)v, memory_order_release);
}

/* Decides the claim of rc's id in this worker's shard (the id's). The
 * verdict is written into rc, or rc waits in the pending entry. Returns
 * 0 or a store error. */
static int decide(struct worker *w, struct rec *rc)
{
    const ws_txn *t = &rc->res.txn;
    uint64_t h = XXH3_64bits(t->tx_id, t->tx_id_len);
    struct pending **slot, *p;
    unsigned char fp[16];
    ws_source_pos src;
    int found, e;

    if (w->npending >= w->buckets && (e = pending_grow(w)) != WS_OK)
        return e;
    slot = pending_slot(w, t->tx_id, t->tx_id_len, h);
    if ((p = *slot) != NULL) {
        /* The owner's outcome decides, once it is committed; only this
         * shard's own records, applied in its open batch, decide now
         * (they commit or are lost together with rc's). */
        if (p->owner == w->shard && rc->wshard == w->shard && p->state == 1) {
            give_verdict(rc, memcmp(p->fp, rc->fp, 16) == 0 ? V_SAME
                                                             : V_OTHER);
            return WS_OK;
        }
        if (p->owner == w->shard && rc->wshard == w->shard && p->state == 2) {
            /* The owner was rejected in this open batch: rc owns it now
             * (the owner's resolution no longer matches its generation). */
            p->gen = ++w->gen;
            p->state = 0;
            memcpy(p->fp, rc->fp, 16);
            rc->gen = p->gen;
            give_verdict(rc, V_NEW);
            return WS_OK;
        }
        rc->wait_next = NULL;
        if (p->wait_tail)
            p->wait_tail->wait_next = rc;
        else
            p->wait_head = rc;
        p->wait_tail = rc;
        /* The owner's shard commits soon: someone waits for it. */
        atomic_fetch_add(&w->r->w[p->owner].awaited, 1);
        if (p->owner != w->shard)
            wake(&w->r->w[p->owner]);
        pthread_mutex_lock(&w->r->lock);
        w->r->stats.claim_waits++;
        pthread_mutex_unlock(&w->r->lock);
        return WS_OK;
    }
    if ((e = ensure_batch(w)) != WS_OK ||
        (e = ws_batch_seen_get(w->batch, t->tx_id, t->tx_id_len, fp, &src,
                               &found)) != WS_OK)
        return e;
    if (found && src.partition >= 0 && w->r->o.hooks->source_key &&
        src.partition == rc->in.partition && src.offset == rc->in.offset &&
        memcmp(fp, rc->fp, 16) == 0)
        found = 0;  /* the record that applied it, read again: it owns it */
    if (found) {
        give_verdict(rc, memcmp(fp, rc->fp, 16) == 0 ? V_SAME : V_OTHER);
        return WS_OK;
    }
    p = pending_new(w);
    if (!p)
        return WS_ERR_NOMEM;
    p->hash = h;
    p->gen = ++w->gen;
    p->owner = rc->wshard;
    p->state = 0;
    memcpy(p->fp, rc->fp, 16);
    p->wait_head = p->wait_tail = NULL;
    if (id_set(&p->id, t->tx_id, t->tx_id_len) != WS_OK) {
        pending_free(w, p);
        return WS_ERR_NOMEM;
    }
    p->next = NULL;
    *slot = p;
    w->npending++;
    rc->gen = p->gen;
    give_verdict(rc, V_NEW);
    return WS_OK;
}

/* The owner of a pending id of this shard was committed: applied (the
 * id is remembered; the waiting claims are duplicates or conflicting)
 * or not (the first waiting claim is decided afresh). */
static int resolve(struct worker *w, struct resolution *res,
                   uint32_t *woken)
{
    uint64_t h = XXH3_64bits(res->id.p, res->id.n);
    struct pending **slot, *p;
    struct rec *rc, *next;
    int e;

    if (w->buckets == 0)
        return WS_OK;
    slot = pending_slot(w, res->id.p, res->id.n, h);
    p = *slot;
    if (res->applied && res->from != w->shard) {
        /* Remembered here too, with the sequence delivered. */
        if ((e = ensure_batch(w)) != WS_OK ||
            (e = ws_batch_seen_put(w->batch, res->id.p, res->id.n, res->fp,
                                   &res->src)))
            return e;
        if (res->seq > w->inbox_seq[res->from])
            w->inbox_seq[res->from] = res->seq;
    }
    if (!p || p->gen != res->gen)
        return WS_OK;
    *slot = p->next;
    w->npending--;
    for (rc = p->wait_head; rc; rc = rc->wait_next)
        atomic_fetch_sub(&w->r->w[p->owner].awaited, 1);
    rc = p->wait_head;
    if (res->applied) {
        for (; rc; rc = next) {
            next = rc->wait_next;
            give_verdict(rc, memcmp(rc->fp, res->fp, 16) == 0 ? V_SAME
                                                               : V_OTHER);
            woken[rc->wshard / 32] |= 1u << (rc->wshard % 32);
        }
        pending_free(w, p);
        return WS_OK;
    }
    pending_free(w, p);
    /* Not applied: the waiting claims are decided again, in order. */
    for (; rc; rc = next) {
        next = rc->wait_next;
        if ((e = decide(w, rc)) != WS_OK)
            return e;
        woken[rc->wshard / 32] |= 1u << (rc->wshard % 32);
    }
    return WS_OK;
}

static void wake_set(struct ws_router *r, const uint32_t *woken, int self)
{
    int k;

    for (k = 0; k < r->n; k++)
        if (k != self && (woken[k / 32] >> (k % 32) & 1))
            wake(&r->w[k]);
}

/* ------------------------------------------------------------ commits */

static void note_age(struct worker *w, int64_t ts_ms)
{
    if (ts_ms < 0)
        return;
    if (w->nages == w->ages_cap) {
        size_t cap = w->ages_cap ? w->ages_cap * 2 : 1024;
        double *a = realloc(w->ages, cap * sizeof *a);

        if (!a)
            return;     /* a metric only */
        w->ages = a;
        w->ages_cap = cap;
    }
    w->ages[w->nages++] = (double)ts_ms / 1000.0;
}

static void free_resolutions(struct resolution *res)
{
    struct resolution *next;

    for (; res; res = next) {
        next = res->next;
        id_free(&res->id);
        free(res);
    }
}

/* Drops the worker's open batch, its pending ids and resolutions (its
 * items are dropped by drop_items, once every worker has stopped). */
static void drop_state(struct worker *w)
{
    int p;

    if (w->batch)
        ws_batch_abort(w->batch);
    w->batch = NULL;
    w->in_batch = 0;
    w->nages = 0;
    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
        w->next[p] = -1;
    w->offsets_due = 0;
    memset(w->inbox_seq, 0, sizeof w->inbox_seq);
    free_resolutions(w->res_head);
    w->res_head = w->res_tail = NULL;
    pthread_mutex_lock(&w->lock);
    free_resolutions(w->ctl_head);
    w->ctl_head = w->ctl_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    pending_clear(w);
}

/* Drops every item given to the workers, none of which is running. A
 * record may be in two lists (its claim in another's): every list is
 * walked before any record is freed. */
static void drop_items(struct ws_router *r)
{
    struct rec *dead = NULL, *rc;
    uint64_t records = 0;
    int k;

    for (k = 0; k < r->n; k++) {
        struct worker *w = &r->w[k];
        struct item *lists[2], *it, *next;
        int l;

        pthread_mutex_lock(&w->lock);
        lists[0] = w->head;
        lists[1] = w->items_head;
        w->head = w->tail = NULL;
        w->items_head = w->items_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        for (l = 0; l < 2; l++)
            for (it = lists[l]; it; it = next) {
                next = it->next;
                if (it->kind == IT_APPLY) {
                    rc = rec_of_apply(it);
                    rc->wait_next = dead;
                    dead = rc;
                    records++;
                } else if (it->kind != IT_CLAIM) {
                    free(it);
                }
            }
    }
    for (; dead; dead = rc) {
        rc = dead->wait_next;
        release_rec(r, dead, &r->pool);
    }
    dequeued(r, records);
}

/* Commits the open batch (or stores the marks' offsets alone), then
 * sends the batch's resolutions. Returns 0 or an error (the router has
 * failed then). */
static int commit(struct worker *w)
{
    struct ws_router *r = w->r;
    const ws_router_hooks *hk = r->o.hooks;
    char why[WS_ROUTER_WHY_MAX], key[600];
    uint32_t woken[WS_SHARDS_MAX / 32] = {0};
    struct resolution *res, *next;
    double t0 = ws_clock_seconds(0);
    uint64_t records = w->in_batch;
    const char *step = "";
    int p, e = WS_OK, any_offset = 0;

    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
        if (w->next[p] >= 0) {
            any_offset = 1;
            break;
        }
    if (!w->batch && !any_offset && !w->res_head)
        return WS_OK;
    why[0] = '\0';
    step = "begin";
    e = ensure_batch(w);
    if (e == WS_OK && (step = "prune", 1))
        e = ws_batch_outbox_prune(w->batch);
    if (e == WS_OK && (step = "write back", 1))
        e = ws_batch_flush(w->batch);
    if (e == WS_OK && hk->before_commit &&
        hk->before_commit(hk->ctx, w->shard, w->batch, why) != 0)
        e = WS_ERR_IO;
    for (p = 0; p < r->n && e == WS_OK; p++)
        if (w->inbox_seq[p] > 0)
            e = ws_batch_inbox_set(w->batch, p, w->inbox_seq[p]);
    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS && e == WS_OK; p++) {
        size_t kn;

        if (w->next[p] < 0 || !hk->source_key ||
            (kn = hk->source_key(hk->ctx, p, key, sizeof key)) == 0)
            continue;
        e = ws_batch_offset_set(w->batch, key, kn, w->next[p]);
    }
    if (e == WS_OK && (step = "commit", 1)) {
        e = ws_batch_commit(w->batch);
        w->batch = NULL;
    }
    if (e != WS_OK) {
        if (w->batch)
            ws_batch_abort(w->batch);
        w->batch = NULL;
        if (!why[0])
            snprintf(why, sizeof why, "state store shard %d cannot commit "
                     "(%s): %s%s", w->shard, step, ws_strerror(e),
                     e == WS_ERR_MAP_FULL ? " (raise --max-state-size)" : "");
        if (hk->after_commit)
            hk->after_commit(hk->ctx, w->shard, 0, records, 0, NULL, 0);
        fail(r, e, why);
        return e;
    }
    {
        double now = ws_clock_seconds(1), took = ws_clock_seconds(0) - t0;
        size_t i;

        w->last_commit_ms = (int64_t)(took * 1000.0);
        for (i = 0; i < w->nages; i++)
            w->ages[i] = now - w->ages[i];
        if (hk->after_commit)
            hk->after_commit(hk->ctx, w->shard, 1, records, took, w->ages,
                             w->nages);
    }
    w->offsets_due = 0;
    memset(w->inbox_seq, 0, sizeof w->inbox_seq);
    pthread_mutex_lock(&r->lock);
    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
        if (w->next[p] >= 0)
            r->held[w->shard][p] = w->committed[p] = w->next[p];
    r->stats.commits[w->shard]++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
        w->next[p] = -1;
    w->in_batch = 0;
    w->nages = 0;

    /* Committed: the batch's claims are resolved. */
    res = w->res_head;
    w->res_head = w->res_tail = NULL;
    for (; res; res = next) {
        struct worker *t;
        int target = ws_shard_index(res->id.p, res->id.n, r->n);

        next = res->next;
        if (target == w->shard) {
            e = resolve(w, res, woken);
            id_free(&res->id);
            res->next = w->res_pool;
            w->res_pool = res;
            if (e != WS_OK) {
                free_resolutions(next);
                snprintf(why, sizeof why, "state store shard %d: %s",
                         w->shard, ws_strerror(e));
                fail(r, e, why);
                return e;
            }
            continue;
        }
        t = &r->w[target];
        res->next = NULL;
        pthread_mutex_lock(&t->lock);
        if (t->ctl_tail)
            t->ctl_tail->next = res;
        else
            t->ctl_head = res;
        t->ctl_tail = res;
        pthread_cond_signal(&t->wake);
        pthread_mutex_unlock(&t->lock);
    }
    wake_set(r, woken, w->shard);
    return WS_OK;
}

/* A resolution from the pool (refilled from those the other shards
 * handed back), else allocated. */
static struct resolution *res_new(struct worker *w)
{
    struct resolution *res = w->res_pool;

    if (!res) {
        pthread_mutex_lock(&w->lock);
        res = w->res_pool = w->res_returned;
        w->res_returned = NULL;
        pthread_mutex_unlock(&w->lock);
    }
    if (res) {
        w->res_pool = res->next;
        return res;
    }
    return malloc(sizeof *res);
}

/* Hands processed resolutions back to the shards that sent them. */
static void res_return(struct ws_router *r, struct resolution *list)
{
    struct resolution *by[WS_SHARDS_MAX] = {0}, *next;
    int k;

    for (; list; list = next) {
        next = list->next;
        list->next = by[list->from];
        by[list->from] = list;
    }
    for (k = 0; k < r->n; k++) {
        struct resolution *last = by[k];

        if (!last)
            continue;
        while (last->next)
            last = last->next;
        pthread_mutex_lock(&r->w[k].lock);
        last->next = r->w[k].res_returned;
        r->w[k].res_returned = by[k];
        pthread_mutex_unlock(&r->w[k].lock);
    }
}

/* Applies the resolutions other shards sent (ids of this shard), then
 * hands them back. Returns 0 or a store error. */
static int process_ctl(struct worker *w, struct resolution *ctl,
                       uint32_t *woken)
{
    struct resolution *res;
    int e = WS_OK;

    for (res = ctl; res; res = res->next) {
        if (e == WS_OK)
            e = resolve(w, res, woken);
        id_free(&res->id);
    }
    res_return(w->r, ctl);
    return e;
}

/* Whether the sources are Kafka partitions (stable positions) rather
 * than files (a file replayed again is new input). */
static int r_sourced(const struct ws_router *r)
{
    return r->o.hooks->source_key != NULL;
}

/* Remembers that rc's claim is to be resolved after this batch commits. */
static int to_resolve(struct worker *w, struct rec *rc, uint64_t gen)
{
    struct resolution *res = res_new(w);
    const ws_txn *t = &rc->res.txn;

    if (!res)
        return WS_ERR_NOMEM;
    res->next = NULL;
    res->gen = gen;
    res->from = w->shard;
    res->applied = rc->res.outcome == WS_APPLIED;
    res->seq = 0;
    res->src.partition = r_sourced(w->r) ? rc->in.partition : -1;
    res->src.offset = rc->in.offset;
    memcpy(res->fp, rc->fp, 16);
    if (id_set(&res->id, t->tx_id, t->tx_id_len) != WS_OK) {
        res->id.p = NULL;
        res->next = w->res_pool;
        w->res_pool = res;
        return WS_ERR_NOMEM;
    }
    if (res->applied && rc->tshard != w->shard) {
        int e;

        res->seq = w->out_seq[rc->tshard]++;
        e = ws_batch_outbox_add(w->batch, rc->tshard, res->seq, t->tx_id,
                                t->tx_id_len, rc->fp, &res->src);
        if (e != WS_OK) {
            id_free(&res->id);
            res->next = w->res_pool;
            w->res_pool = res;
            return e;
        }
    }
    if (w->res_tail)
        w->res_tail->next = res;
    else
        w->res_head = res;
    w->res_tail = res;
    return WS_OK;
}

/* The pending entry rc owns in this (its id's) shard learns the
 * owner's outcome. Claims of this shard's own records waiting for it are
 * decided now (they commit or are lost together with rc): after an
 * applied owner each is a duplicate or conflicting; after a rejected one
 * the first, when it is this shard's, owns the id. Other shards' claims
 * wait for the commit. */
static void own_pending(struct worker *w, struct rec *rc, int applied)
{
    const ws_txn *t = &rc->res.txn;
    uint64_t h = XXH3_64bits(t->tx_id, t->tx_id_len);
    struct pending *p = *pending_slot(w, t->tx_id, t->tx_id_len, h);
    struct rec **link, *x;

    if (!p || p->gen != rc->gen)
        return;
    p->state = applied ? 1 : 2;
    if (applied) {
        for (link = &p->wait_head; (x = *link) != NULL;) {
            if (x->wshard != w->shard) {
                link = &x->wait_next;
                continue;
            }
            *link = x->wait_next;
            atomic_fetch_sub(&w->awaited, 1);
            give_verdict(x, memcmp(x->fp, p->fp, 16) == 0 ? V_SAME
                                                           : V_OTHER);
        }
    } else if ((x = p->wait_head) != NULL && x->wshard == w->shard) {
        p->wait_head = x->wait_next;
        atomic_fetch_sub(&w->awaited, 1);
        p->gen = ++w->gen;
        p->state = 0;
        memcpy(p->fp, x->fp, 16);
        x->gen = p->gen;
        give_verdict(x, V_NEW);
    }
    if (!p->wait_head)
        p->wait_tail = NULL;
    else
        for (x = p->wait_head; x; x = x->wait_next)
            p->wait_tail = x;
}

/* Applies one record of this shard whose claim is decided. */
static int apply(struct worker *w, struct rec *rc)
{
    struct ws_router *r = w->r;
    const ws_router_hooks *hk = r->o.hooks;
    char why[WS_ROUTER_WHY_MAX];
    int e, v;

    if ((e = ensure_batch(w)) != WS_OK)
        return e;
    if (rc->decoded) {
        v = atomic_load_explicit(&rc->verdict, memory_order_acquire);
        e = ws_engine_apply_claimed(w->batch, &rc->res.txn,
                                    v == V_NEW ? WS_CLAIM_NEW
                                    : v == V_SAME ? WS_CLAIM_SAME
                                                  : WS_CLAIM_OTHER,
                                    &rc->res);
        if (e != WS_OK)
            return e;
        if (v == V_NEW) {
            if (rc->tshard == w->shard) {
                own_pending(w, rc, rc->res.outcome == WS_APPLIED);
                if (rc->res.outcome == WS_APPLIED &&
                    (e = ws_batch_seen_put(w->batch, rc->res.txn.tx_id,
                                           rc->res.txn.tx_id_len, rc->fp,
                                           NULL)))
                    return e;
            }
            if ((e = to_resolve(w, rc, rc->gen)) != WS_OK)
                return e;
        }
    }
    ws_batch_count(w->batch, rc->res.outcome, rc->res.reason);
    why[0] = '\0';
    if (rc->res.outcome == WS_REJECTED && hk->dead_letter &&
        hk->dead_letter(hk->ctx, w->shard, &rc->in, &rc->res, why) != 0) {
        fail(r, WS_ERR_IO, why[0] ? why : "dead letter not written");
        return WS_ERR_IO;
    }
    if (hk->note && hk->note(hk->ctx, w->shard, &rc->res) != 0) {
        fail(r, WS_ERR_NOMEM, "changelog: out of memory");
        return WS_ERR_NOMEM;
    }
    if (rc->in.partition >= 0 && rc->in.partition < WS_ROUTER_MAX_PARTITIONS)
        w->next[rc->in.partition] = rc->in.offset + 1;
    note_age(w, rc->in.ts_ms);
    w->in_batch++;
    return WS_OK;
}

/* ------------------------------------------------------ the worker */

/* Whether the head record can be applied now (its claim decided). */
static int head_ready(struct rec *rc)
{
    return !rc->decoded ||
           atomic_load_explicit(&rc->verdict, memory_order_acquire) != V_WAIT;
}

/* Decides, in routing order, the claims among newly taken items: other
 * shards' claims of this shard's ids (removed from the list) and this
 * shard's own records whose id is its own. Claims never wait for the
 * records ahead of them, so no worker waits on another's queue. */
static int take_claims(struct worker *w, struct item **head,
                       struct item **tail, uint32_t *woken)
{
    struct item **link = head, *it, *last = NULL;
    int e = WS_OK;

    while ((it = *link) != NULL && e == WS_OK) {
        struct rec *rc;

        if (it->kind == IT_CLAIM) {
            rc = rec_of_claim(it);
            *link = it->next;
            rc->asked = 1;
            e = decide(w, rc);
            if (atomic_load_explicit(&rc->verdict, memory_order_acquire) !=
                V_WAIT)
                woken[rc->wshard / 32] |= 1u << (rc->wshard % 32);
            continue;
        }
        if (it->kind == IT_APPLY) {
            rc = rec_of_apply(it);
            if (rc->decoded && rc->tshard == w->shard && !rc->asked) {
                rc->asked = 1;
                e = decide(w, rc);
            }
        }
        last = it;
        link = &it->next;
    }
    *tail = last;
    return e;
}

/* Takes what arrived meanwhile, in the middle of a long run of records:
 * other shards' claims are decided now (their records wait for them) and
 * resolutions applied; the rest joins the queue. */
static int refill(struct worker *w)
{
    uint32_t woken[WS_SHARDS_MAX / 32] = {0};
    struct item *taken, *taken_tail = NULL;
    struct resolution *ctl;
    int e = WS_OK;

    pthread_mutex_lock(&w->lock);
    taken = w->reset ? NULL : w->items_head;
    if (taken)
        w->items_head = w->items_tail = NULL;
    ctl = w->ctl_head;
    w->ctl_head = w->ctl_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    e = process_ctl(w, ctl, woken);
    if (e == WS_OK && taken) {
        e = take_claims(w, &taken, &taken_tail, woken);
        if (taken) {
            if (w->tail)
                w->tail->next = taken;
            else
                w->head = taken;
            w->tail = taken_tail;
        }
    }
    wake_set(w->r, woken, w->shard);
    return e;
}

/* Works through the taken items until the head waits for a claim.
 * Returns 0, 1 when blocked, or an error. */
static int work(struct worker *w)
{
    struct ws_router *r = w->r;
    uint64_t applied = 0;
    int e = WS_OK, blocked = 0;

    while (w->head && e == WS_OK) {
        struct item *it = w->head;

        if (it->kind == IT_APPLY) {
            struct rec *rc = rec_of_apply(it);

            if (!head_ready(rc)) {
                blocked = 1;
                break;
            }
            w->head = it->next;
            if (!w->head)
                w->tail = NULL;
            e = apply(w, rc);
            release_rec(r, rc, &w->done);
            if (!w->done_tail)
                w->done_tail = rc;
            if (e == WS_OK && ++applied % REFILL_EVERY == 0)
                e = refill(w);
            if (e == WS_OK && w->in_batch >= r->o.batch_max)
                e = commit(w);
        } else if (it->kind == IT_MARK) {
            struct mark *m = (struct mark *)(void *)it;

            w->head = it->next;
            if (m->partition < WS_ROUTER_MAX_PARTITIONS &&
                m->next > w->next[m->partition] &&
                m->next > w->committed[m->partition]) {
                if (!w->batch && !w->offsets_due)
                    w->opened_ms = ws_clock_ms();
                w->next[m->partition] = m->next;
                w->offsets_due = 1;
            }
            free(m);
        } else {    /* IT_QUIESCE (claims were taken out by take_claims) */
            uint64_t before = r->stats.commits[w->shard];

            w->head = it->next;
            free(it);
            e = commit(w);
            pthread_mutex_lock(&r->lock);
            w->quiesce_committed |= r->stats.commits[w->shard] != before;
            w->quiesce_done++;
            pthread_cond_broadcast(&r->changed);
            pthread_mutex_unlock(&r->lock);
        }
        if (!w->head)
            w->tail = NULL;
    }
    if (applied)
        dequeued(r, applied);
    if (e != WS_OK)
        return e;
    return blocked;
}

/* How long the open batch may stay open now. */
static int64_t open_for(struct worker *w)
{
    int64_t linger = (int64_t)w->r->o.batch_linger_ms, want;
    int backlog;

    pthread_mutex_lock(&w->lock);
    backlog = w->head != NULL || w->items_head != NULL;
    pthread_mutex_unlock(&w->lock);
    if (!backlog)
        return linger;
    want = COMMIT_SHARE * w->last_commit_ms;
    if (want < linger)
        want = linger;
    return want > MAX_OPEN_MS ? MAX_OPEN_MS : want;
}

/* The last item of a list. */
static struct item *items_tail(struct item *it)
{
    while (it && it->next)
        it = it->next;
    return it;
}

static int has_work(struct worker *w)
{
    if (w->items_head || w->ctl_head || w->reset)
        return 1;
    if (atomic_load(&w->awaited) > 0 && w->res_head)
        return 1;
    if (w->head && w->head->kind == IT_APPLY)
        return head_ready(rec_of_apply(w->head));
    return w->head != NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ws_router *r = w->r;
    int64_t blocked_since = -1;
    char why[WS_ROUTER_WHY_MAX];

    while (!atomic_load(&r->stop)) {
        uint32_t woken[WS_SHARDS_MAX / 32] = {0};
        struct resolution *ctl;
        struct item *taken = NULL, *taken_tail = NULL;
        int64_t now = ws_clock_ms(), wait_ms = IDLE_MS;
        int e = WS_OK, reset;

        pthread_mutex_lock(&w->lock);
        if (!has_work(w)) {
            struct timespec until;

            if (w->batch || w->res_head || w->offsets_due) {
                int64_t due = w->opened_ms + (int64_t)r->o.batch_linger_ms -
                              now;

                if (blocked_since >= 0)
                    due = blocked_since + BLOCKED_COMMIT_MS - now;
                wait_ms = due < 0 ? 0 : due < IDLE_MS ? due : IDLE_MS;
            }
            if (wait_ms > 0) {
                ws_clock_deadline(&until, (int)wait_ms);
                pthread_cond_timedwait(&w->wake, &w->lock, &until);
            }
        }
        if (!w->reset) {
            taken = w->items_head;
            w->items_head = w->items_tail = NULL;
        }
        if (w->done) {
            w->done_tail->wait_next = w->returned;
            if (!w->returned)
                w->returned_tail = w->done_tail;
            w->returned = w->done;
            w->done = w->done_tail = NULL;
        }
        ctl = w->ctl_head;
        w->ctl_head = w->ctl_tail = NULL;
        reset = w->reset;
        pthread_mutex_unlock(&w->lock);

        if (reset) {
            /* Drops its state, then waits until the router has dropped
             * the items and says go on (reset back to 0). */
            free_resolutions(ctl);
            drop_state(w);
            blocked_since = -1;
            pthread_mutex_lock(&w->lock);
            w->reset = 2;
            pthread_cond_broadcast(&w->wake);
            while (w->reset && !atomic_load(&r->stop))
                pthread_cond_wait(&w->wake, &w->lock);
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        if (failed(r)) {
            /* Waits for the reset (what it was given stays queued; the
             * resolutions are delivered again from the outboxes). */
            struct timespec until;

            free_resolutions(ctl);
            pthread_mutex_lock(&w->lock);
            if (taken) {    /* back in front of what came since */
                struct item *last = items_tail(taken);

                last->next = w->items_head;
                if (!w->items_head)
                    w->items_tail = last;
                w->items_head = taken;
            }
            if (!w->reset && !atomic_load(&r->stop)) {
                ws_clock_deadline(&until, IDLE_MS);
                pthread_cond_timedwait(&w->wake, &w->lock, &until);
            }
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        e = process_ctl(w, ctl, woken);
        if (e == WS_OK && taken) {
            e = take_claims(w, &taken, &taken_tail, woken);
            if (taken) {
                if (w->tail)
                    w->tail->next = taken;
                else
                    w->head = taken;
                w->tail = taken_tail;
            }
        }
        if (e == WS_OK) {
            e = work(w);
            if (e == 1) {
                if (blocked_since < 0)
                    blocked_since = ws_clock_ms();
                e = WS_OK;
            } else if (e == WS_OK) {
                blocked_since = -1;
            }
        }
        wake_set(r, woken, w->shard);
        now = ws_clock_ms();
        if (e == WS_OK && (w->batch || w->res_head || w->offsets_due) &&
            (now - w->opened_ms >= open_for(w) ||
             (atomic_load(&w->awaited) > 0 && w->res_head) ||
             (blocked_since >= 0 && now - blocked_since >= BLOCKED_COMMIT_MS)))
            e = commit(w);
        if (e != WS_OK && !failed(r)) {
            snprintf(why, sizeof why, "state store shard %d: %s%s", w->shard,
                     ws_strerror(e),
                     e == WS_ERR_MAP_FULL ? " (raise --max-state-size)" : "");
            fail(r, e, why);
        }
    }
    return NULL;
}

/* ------------------------------------------------------ the router */

static void load_out_seq(struct ws_router *r)
{
    int k, t;

    for (k = 0; k < r->n; k++)
        for (t = 0; t < r->n; t++)
            r->w[k].out_seq[t] = ws_store_outbox_next(r->o.store, k, t);
}

int ws_router_start(const ws_router_opts *o, ws_router **out)
{
    struct ws_router *r = calloc(1, sizeof *r);
    int k, p;

    *out = NULL;
    if (!r)
        return WS_ERR_NOMEM;
    r->o = *o;
    if (r->o.batch_max == 0)
        r->o.batch_max = 1;
    r->n = ws_store_shards(o->store);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    for (k = 0; k < WS_SHARDS_MAX; k++)
        for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
            r->held[k][p] = r->skip[k][p] = -1;
    if (ws_decoder_new(&r->decoder) != WS_OK) {
        free(r);
        return WS_ERR_NOMEM;
    }
    for (k = 0; k < r->n; k++) {
        struct worker *w = &r->w[k];

        w->r = r;
        w->shard = k;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
            w->next[p] = w->committed[p] = -1;
        if (pending_grow(w) != WS_OK)
            goto fail;
    }
    load_out_seq(r);
    for (k = 0; k < r->n; k++) {
        if (pthread_create(&r->w[k].thread, NULL, worker_main, &r->w[k]))
            goto fail;
        r->w[k].started = 1;
    }
    *out = r;
    return WS_OK;
fail:
    ws_router_stop(r);
    return WS_ERR_NOMEM;
}

/* Drops what was routed but not pushed. */
static void drop_unpushed(struct ws_router *r)
{
    int k;

    for (k = 0; k < r->n; k++) {
        struct item *it = r->out_head[k], *next;

        for (; it; it = next) {
            next = it->next;
            if (it->kind == IT_APPLY)
                release_rec(r, rec_of_apply(it), &r->pool);
            else if (it->kind != IT_CLAIM)
                free(it);
        }
        r->out_head[k] = r->out_tail[k] = NULL;
    }
    memset(r->touched, 0, sizeof r->touched);
    r->unpushed = r->unpushed_cross = 0;
}

void ws_router_stop(ws_router *r)
{
    int k;

    if (!r)
        return;
    atomic_store(&r->stop, 1);
    for (k = 0; k < r->n; k++)
        if (r->w[k].started) {
            wake(&r->w[k]);
            pthread_join(r->w[k].thread, NULL);
        }
    drop_unpushed(r);
    drop_items(r);
    for (k = 0; k < r->n; k++) {
        struct worker *w = &r->w[k];

        drop_state(w);
        free(w->table);
        free(w->ages);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
    }
    for (k = 0; k < r->n; k++) {
        struct pending *p, *pn;

        free_recs(r->w[k].done);
        free_recs(r->w[k].returned);
        r->w[k].done = r->w[k].returned = NULL;
        free_resolutions(r->w[k].res_pool);
        free_resolutions(r->w[k].res_returned);
        for (p = r->w[k].pending_pool; p; p = pn) {
            pn = p->next;
            id_free(&p->id);
            free(p);
        }
    }
    free_recs(r->pool);
    ws_decoder_free(r->decoder);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->changed);
    free(r);
}

void ws_router_put(ws_router *r, ws_input *in)
{
    struct rec *rc = r->pool;
    enum ws_reason reason;
    int p = in->partition;
    int64_t held;

    if (rc)
        r->pool = rc->wait_next;
    else if (!(rc = malloc(sizeof *rc))) {
        fail(r, WS_ERR_NOMEM, "out of memory routing a record");
        if (in->handle && r->o.hooks->release)
            r->o.hooks->release(r->o.hooks->ctx, in->handle);
        return;
    }
    rc->in = *in;
    rc->copy = NULL;
    if (!in->handle) {
        /* No handle: the value is copied (the caller reuses its buffer). */
        rc->copy = in->len <= INLINE_VALUE ? rc->inline_value
                                           : malloc(in->len ? in->len : 1);
        if (!rc->copy) {
            free(rc);
            fail(r, WS_ERR_NOMEM, "out of memory routing a record");
            return;
        }
        memcpy(rc->copy, in->value, in->len);
        rc->in.value = rc->copy;
    }
    rc->wait_next = NULL;
    rc->gen = 0;
    atomic_init(&rc->verdict, V_WAIT);
    rc->apply.kind = IT_APPLY;
    rc->claim.kind = IT_CLAIM;
    rc->asked = 0;
    reason = ws_decode(r->decoder, in->value, in->len, &rc->res.txn,
                       rc->res.detail);
    rc->decoded = reason == WS_R_NONE;
    if (rc->decoded) {
        ws_engine_fingerprint(&rc->res.txn, rc->fp);
        rc->wshard = ws_shard_index(rc->res.txn.wallet_id,
                                    rc->res.txn.wallet_id_len, r->n);
        rc->tshard = ws_shard_index(rc->res.txn.tx_id,
                                    rc->res.txn.tx_id_len, r->n);
    } else {
        /* No wallet to route by: spread by position. */
        rc->res.outcome = WS_REJECTED;
        rc->res.reason = reason;
        rc->res.top_changed = 0;
        /* No wallet to route by: by partition, so that a partition's
         * (a file's) dead letters keep their order. */
        rc->wshard = rc->tshard = (int)((unsigned)(p < 0 ? 0 : p) %
                                        (unsigned)r->n);
    }
    if (p >= 0 && p < WS_ROUTER_MAX_PARTITIONS) {
        held = r->skip[rc->wshard][p];
        if (held >= 0 && in->offset < held) {
            release_rec(r, rc, &r->pool);   /* the shard holds it */
            return;
        }
        r->touched[p] = 1;
        r->last_next[p] = in->offset + 1;
    }
    append(&r->out_head[rc->wshard], &r->out_tail[rc->wshard], &rc->apply);
    if (rc->decoded && rc->tshard != rc->wshard) {
        append(&r->out_head[rc->tshard], &r->out_tail[rc->tshard],
               &rc->claim);
        r->unpushed_cross++;
    }
    r->unpushed++;
}

void ws_router_push(ws_router *r)
{
    int k, p;

    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++) {
        if (!r->touched[p])
            continue;
        r->touched[p] = 0;
        for (k = 0; k < r->n; k++) {
            struct mark *m;

            /* Never below what the shard holds (it was skipped up to
             * there): its stored offset must not go back. */
            if (r->last_next[p] <= r->skip[k][p])
                continue;
            m = malloc(sizeof *m);

            if (!m) {
                fail(r, WS_ERR_NOMEM, "out of memory routing a record");
                break;
            }
            m->it.kind = IT_MARK;
            m->partition = p;
            m->next = r->last_next[p];
            append(&r->out_head[k], &r->out_tail[k], &m->it);
        }
    }
    pthread_mutex_lock(&r->lock);
    r->queued += r->unpushed;
    r->stats.cross_claims += r->unpushed_cross;
    pthread_mutex_unlock(&r->lock);
    r->unpushed = r->unpushed_cross = 0;
    for (k = 0; k < r->n; k++) {
        struct worker *w = &r->w[k];

        pthread_mutex_lock(&w->lock);
        if (w->returned) {
            w->returned_tail->wait_next = r->pool;
            r->pool = w->returned;
            w->returned = w->returned_tail = NULL;
        }
        if (!r->out_head[k]) {
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        if (w->items_tail)
            w->items_tail->next = r->out_head[k];
        else
            w->items_head = r->out_head[k];
        w->items_tail = r->out_tail[k];
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        r->out_head[k] = r->out_tail[k] = NULL;
    }
    /* Back pressure: the workers are given at most QUEUE_MAX each. */
    pthread_mutex_lock(&r->lock);
    while (r->queued > (uint64_t)QUEUE_MAX * (uint64_t)r->n && !r->failed &&
           !atomic_load(&r->stop)) {
        struct timespec until;

        ws_clock_deadline(&until, 100);
        pthread_cond_timedwait(&r->changed, &r->lock, &until);
    }
    pthread_mutex_unlock(&r->lock);
}

int ws_router_quiesce(ws_router *r)
{
    int k, any = 1, rounds = 0;

    ws_router_push(r);
    while (any && !failed(r)) {
        uint64_t target[WS_SHARDS_MAX];

        any = 0;
        pthread_mutex_lock(&r->lock);
        for (k = 0; k < r->n; k++) {
            target[k] = r->w[k].quiesce_done + 1;
            r->w[k].quiesce_committed = 0;
        }
        pthread_mutex_unlock(&r->lock);
        for (k = 0; k < r->n; k++) {
            struct item *it = malloc(sizeof *it);

            if (!it) {
                fail(r, WS_ERR_NOMEM, "out of memory");
                break;
            }
            it->kind = IT_QUIESCE;
            append(&r->out_head[k], &r->out_tail[k], it);
        }
        ws_router_push(r);
        pthread_mutex_lock(&r->lock);
        for (k = 0; k < r->n && !r->failed; k++) {
            while (r->w[k].quiesce_done < target[k] && !r->failed) {
                struct timespec until;

                ws_clock_deadline(&until, 100);
                pthread_cond_timedwait(&r->changed, &r->lock, &until);
            }
            any |= r->w[k].quiesce_committed;
        }
        pthread_mutex_unlock(&r->lock);
        if (++rounds > 64)
            break;      /* cannot happen: each round resolves a level */
    }
    return failed(r);
}

int ws_router_failed(ws_router *r, char *why, size_t cap)
{
    int f;

    pthread_mutex_lock(&r->lock);
    f = r->failed;
    if (f && why)
        snprintf(why, cap, "%s", r->why);
    pthread_mutex_unlock(&r->lock);
    return f;
}

int ws_router_reset(ws_router *r)
{
    char err[WS_STORE_ERR_MAX];
    int k, e;

    drop_unpushed(r);
    for (k = 0; k < r->n; k++) {
        pthread_mutex_lock(&r->w[k].lock);
        r->w[k].reset = 1;
        pthread_cond_signal(&r->w[k].wake);
        pthread_mutex_unlock(&r->w[k].lock);
    }
    for (k = 0; k < r->n; k++) {
        struct worker *w = &r->w[k];

        pthread_mutex_lock(&w->lock);
        while (w->reset != 2)
            pthread_cond_wait(&w->wake, &w->lock);
        pthread_mutex_unlock(&w->lock);
    }
    drop_items(r);
    /* Every batch is closed: deliver the committed outboxes again. */
    e = ws_store_recover(r->o.store, err);
    load_out_seq(r);
    for (k = 0; k < r->n; k++) {
        struct worker *w = &r->w[k];

        pthread_mutex_lock(&w->lock);
        w->reset = 0;
        pthread_cond_broadcast(&w->wake);
        pthread_mutex_unlock(&w->lock);
    }
    pthread_mutex_lock(&r->lock);
    r->queued = 0;
    memcpy(r->skip, r->held, sizeof r->skip);
    if (e == WS_OK) {
        r->failed = 0;
        r->why[0] = '\0';
    }
    pthread_mutex_unlock(&r->lock);
    return e;
}

void ws_router_set_held(ws_router *r, int shard, int partition, int64_t next)
{
    if (shard < 0 || shard >= r->n || partition < 0 ||
        partition >= WS_ROUTER_MAX_PARTITIONS)
        return;
    pthread_mutex_lock(&r->lock);
    r->held[shard][partition] = next;
    pthread_mutex_unlock(&r->lock);
    r->skip[shard][partition] = next;
}

int ws_router_load_held(ws_router *r, int n)
{
    const ws_router_hooks *hk = r->o.hooks;
    char key[600];
    ws_view *v;
    int p, k, e;

    if ((e = ws_store_view(r->o.store, &v)) != WS_OK)
        return e;
    for (p = 0; p < n && p < WS_ROUTER_MAX_PARTITIONS; p++) {
        size_t kn = hk->source_key ? hk->source_key(hk->ctx, p, key,
                                                    sizeof key) : 0;

        for (k = 0; k < r->n; k++) {
            int64_t next = -1;

            if (kn == 0 ||
                ws_view_shard_offset(v, k, key, kn, &next) != WS_OK)
                next = -1;
            ws_router_set_held(r, k, p, next);
        }
    }
    ws_view_end(v);
    return WS_OK;
}

int64_t ws_router_resume(ws_router *r, int partition)
{
    int64_t min = -1;
    int k;

    if (partition < 0 || partition >= WS_ROUTER_MAX_PARTITIONS)
        return -1;
    pthread_mutex_lock(&r->lock);
    for (k = 0; k < r->n; k++) {
        int64_t h = r->held[k][partition];

        if (h < 0) {
            min = -1;
            break;
        }
        if (k == 0 || h < min)
            min = h;
    }
    pthread_mutex_unlock(&r->lock);
    return min;
}

void ws_router_stats_get(ws_router *r, ws_router_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
}

void ws_router_set_batch_max(ws_router *r, uint64_t batch_max)
{
    r->o.batch_max = batch_max ? batch_max : 1;
}
