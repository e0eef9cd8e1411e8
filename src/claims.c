/*
 * claims.c - the claims of transaction ids (router_int.h): which record
 * owns an id, decided by the id's worker; the pending ids, the verdicts,
 * the resolutions sent after a commit.
 */
#include "router_int.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "timeutil.h"

/* --------------------------------------------------------- id buffers */

static int id_set(struct idbuf *b, const char *id, size_t n)
{
    b->n = (uint16_t)n;
    b->p = n <= ID_INLINE ? b->in : malloc(n);
    if (!b->p)
        return WS_ERR_NOMEM;
    memcpy(b->p, id, n);
    return WS_OK;
}

void id_free(struct idbuf *b)
{
    if (b->p && b->p != b->in)
        free(b->p);
    b->p = NULL;
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

int pending_grow(struct worker *w)
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

void pending_clear(struct worker *w)
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
int ensure_batch(struct worker *w)
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
int decide(struct worker *w, struct rec *rc)
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
int resolve(struct worker *w, struct resolution *res,
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

/* The pending entry rc owns in this (its id's) shard learns the
 * owner's outcome. Claims of this shard's own records waiting for it are
 * decided now (they commit or are lost together with rc): after an
 * applied owner each is a duplicate or conflicting; after a rejected one
 * the first, when it is this shard's, owns the id. Other shards' claims
 * wait for the commit. */
void own_pending(struct worker *w, struct rec *rc, int applied)
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

void wake_set(struct ws_router *r, const uint32_t *woken, int self)
{
    int k;

    for (k = 0; k < r->n; k++)
        if (k != self && (woken[k / 32] >> (k % 32) & 1))
            wake(&r->w[k]);
}

/* -------------------------------------------------------- resolutions */

void free_resolutions(struct resolution *res)
{
    struct resolution *next;

    for (; res; res = next) {
        next = res->next;
        id_free(&res->id);
        free(res);
    }
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

/* A resolution of this worker's own back to its pool. */
void res_free(struct worker *w, struct resolution *res)
{
    id_free(&res->id);
    res->next = w->res_pool;
    w->res_pool = res;
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
int process_ctl(struct worker *w, struct resolution *ctl,
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
int to_resolve(struct worker *w, struct rec *rc, uint64_t gen)
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
        res_free(w, res);
        return WS_ERR_NOMEM;
    }
    if (res->applied && rc->tshard != w->shard) {
        int e;

        res->seq = w->out_seq[rc->tshard]++;
        e = ws_batch_outbox_add(w->batch, rc->tshard, res->seq, t->tx_id,
                                t->tx_id_len, rc->fp, &res->src);
        if (e != WS_OK) {
            res_free(w, res);
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
