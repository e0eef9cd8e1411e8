/*
 * router.c - the routing thread and router.h's functions. The shards'
 * workers are in worker.c, the claims of transaction ids in claims.c;
 * what the three share (and how a worker's mailbox works) is in
 * router_int.h.
 */
#include "router_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

/* Records routed but not yet applied, per worker, before ws_router_push
 * waits. Enough to keep a worker busy while the router reads on; each
 * costs a struct rec (1.7 KB), so 65,536 made 110 MB per worker that the
 * kernel zeroed and the caches never held (docs/BENCHMARKS.md,
 * "Per-core cost"). */
#define QUEUE_MAX 8192

/* ------------------------------------------------------- small helpers */

static void append(struct item **head, struct item **tail, struct item *it)
{
    it->next = NULL;
    if (*tail)
        (*tail)->next = it;
    else
        *head = it;
    *tail = it;
}

static void free_recs(struct rec *rc)
{
    struct rec *next;

    for (; rc; rc = next) {
        next = rc->wait_next;
        free(rc);
    }
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
    atomic_init(&r->ids_elsewhere, 0);
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
            w->next[p] = w->committed[p] = w->origin_next[p] = -1;
        w->marks_since = -1;
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
    memset(r->unpushed_to, 0, sizeof r->unpushed_to);
    r->unpushed = r->unpushed_cross = 0;
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
        atomic_store(&w->queued, 0);
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
    ws_keyset_free(r->elsewhere);
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
    atomic_init(&rc->verdict, r->n == 1 ? V_SOLO : V_WAIT);
    rc->apply.kind = IT_APPLY;
    rc->claim.kind = IT_CLAIM;
    rc->asked = r->n == 1;
    reason = ws_decode(r->decoder, in->value, in->len, &rc->res.txn,
                       rc->res.detail);
    rc->decoded = reason == WS_R_NONE;
    if (r->o.by_partition) {
        /* Partition k is shard k (the caller checked the count). */
        rc->wshard = rc->tshard = p >= 0 && p < r->n ? p : 0;
        if (rc->decoded)
            ws_engine_fingerprint(&rc->res.txn, rc->fp);
        else {
            rc->res.outcome = WS_REJECTED;
            rc->res.reason = reason;
            rc->res.top_changed = 0;
        }
    } else if (rc->decoded) {
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
        /* Read, whoever holds it: the other shards' marks move past it
         * (else a partition ending in records one shard held would keep
         * the others' offsets, and its lag, behind). */
        r->touched[p] = 1;
        r->last_next[p] = in->offset + 1;
        held = r->skip[rc->wshard][p];
        if (held >= 0 && in->offset < held) {
            release_rec(r, rc, &r->pool);   /* the shard holds it */
            return;
        }
    }
    append(&r->out_head[rc->wshard], &r->out_tail[rc->wshard], &rc->apply);
    if (rc->decoded && rc->tshard != rc->wshard) {
        append(&r->out_head[rc->tshard], &r->out_tail[rc->tshard],
               &rc->claim);
        r->unpushed_cross++;
    }
    r->unpushed++;
    r->unpushed_to[rc->wshard]++;
}

void ws_router_put_mark(ws_router *r, int partition, int64_t offset,
                        const int32_t *parts, const int64_t *nexts, int n)
{
    struct mark *m;
    int k = partition >= 0 && partition < r->n ? partition : 0, i;

    if (!r->o.by_partition || partition < 0 ||
        partition >= WS_ROUTER_MAX_PARTITIONS)
        return;
    /* read: the partition's offset moves past it (ws_router_push) */
    r->touched[partition] = 1;
    r->last_next[partition] = offset + 1;
    if (n <= 0 ||
        (r->skip[k][partition] >= 0 && offset < r->skip[k][partition]))
        return;     /* nothing to tell, or the shard holds it */
    if (!(m = malloc(sizeof *m + (size_t)n * sizeof m->front[0]))) {
        fail(r, WS_ERR_NOMEM, "out of memory routing a mark");
        return;
    }
    m->it.kind = IT_MARK;
    m->partition = partition;
    m->next = offset + 1;
    m->nfront = n;
    for (i = 0; i < n; i++) {
        m->front[i].partition = parts[i];
        m->front[i].next = nexts[i];
    }
    append(&r->out_head[k], &r->out_tail[k], &m->it);
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
             * there): its stored offset must not go back. A group's
             * partition is its shard's alone. */
            if (r->last_next[p] <= r->skip[k][p] ||
                (r->o.by_partition && k != p))
                continue;
            m = malloc(sizeof *m);

            if (!m) {
                fail(r, WS_ERR_NOMEM, "out of memory routing a record");
                break;
            }
            m->it.kind = IT_MARK;
            m->partition = p;
            m->next = r->last_next[p];
            m->nfront = 0;
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

        if (r->unpushed_to[k]) {
            atomic_fetch_add(&w->queued, r->unpushed_to[k]);
            r->unpushed_to[k] = 0;
        }

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

/* Ids counted in walletstream_ids_on_two_partitions_total are kept to be
 * counted once; beyond this many (a producer reusing ids wholesale),
 * every one is counted. */
#define ELSEWHERE_MAX 65536

void router_note_elsewhere(struct ws_router *r, const char *id, size_t n)
{
    size_t before;
    int fresh = 1;

    pthread_mutex_lock(&r->lock);
    if (!r->elsewhere && ws_keyset_new(&r->elsewhere) != WS_OK)
        r->elsewhere = NULL;
    if (r->elsewhere && ws_keyset_count(r->elsewhere) < ELSEWHERE_MAX) {
        before = ws_keyset_count(r->elsewhere);
        fresh = ws_keyset_add(r->elsewhere, id, n) != WS_OK ||
                ws_keyset_count(r->elsewhere) > before;
    }
    pthread_mutex_unlock(&r->lock);
    if (fresh)
        atomic_fetch_add(&r->ids_elsewhere, 1);
}

int64_t ws_router_routed_next(const ws_router *r, int p)
{
    return p >= 0 && p < WS_ROUTER_MAX_PARTITIONS ? r->last_next[p] : 0;
}

void ws_router_stats_get(ws_router *r, ws_router_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
    out->ids_elsewhere = atomic_load(&r->ids_elsewhere);
}

void ws_router_set_batch_max(ws_router *r, uint64_t batch_max)
{
    r->o.batch_max = batch_max ? batch_max : 1;
}
