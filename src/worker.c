/*
 * worker.c - one shard's worker (router_int.h): it takes its items,
 * decides the claims of its ids (claims.c), applies its records and
 * commits its batch.
 */
#include "router_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

/* How long a worker whose next record waits for a claim lets its open
 * batch wait before committing it anyway (owners are asked to commit
 * when a claim waits for them: this is a safety net only). */
#define BLOCKED_COMMIT_MS 50
/* Poll period of an idle worker. */
#define IDLE_MS 50
/* A repartitioner's marks alone are committed this long after the first
 * (marks_due), and looked at this often for a reader that wants them. */
#define MARKS_LINGER_MS 1000
#define MARKS_CHECK_MS 5
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
/* How often (records) a batch compares ws_batch_pages with its share. */
#define PAGES_CHECK_EVERY 1024

/* ------------------------------------------------------- small helpers */

void fail(struct ws_router *r, int e, const char *why)
{
    pthread_mutex_lock(&r->lock);
    if (!r->failed) {
        r->failed = e ? e : WS_ERR_IO;
        snprintf(r->why, sizeof r->why, "%s", why);
    }
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

int failed(struct ws_router *r)
{
    int f;

    pthread_mutex_lock(&r->lock);
    f = r->failed;
    pthread_mutex_unlock(&r->lock);
    return f;
}

/* The source's handle (or the router's copy) of a record is released;
 * the record goes back to `*to`. */
void release_rec(struct ws_router *r, struct rec *rc, struct rec **to)
{
    if (rc->copy && rc->copy != rc->inline_value)
        free(rc->copy);
    else if (!rc->copy && r->o.hooks->release)
        r->o.hooks->release(r->o.hooks->ctx, rc->in.handle);
    rc->copy = NULL;
    rc->wait_next = *to;
    *to = rc;
}

/* One record of this worker's items has been taken care of. */
void dequeued(struct ws_router *r, uint64_t records)
{
    pthread_mutex_lock(&r->lock);
    r->queued -= records;
    r->stats.records += records;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
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

/* Drops the worker's open batch, its pending ids and resolutions (its
 * items are dropped by drop_items, once every worker has stopped). */
void drop_state(struct worker *w)
{
    int p;

    if (w->batch)
        ws_batch_abort(w->batch);
    w->batch = NULL;
    w->in_batch = 0;
    w->nages = 0;
    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
        w->next[p] = w->origin_next[p] = -1;
    w->offsets_due = 0;
    w->marks_since = -1;
    memset(w->inbox_seq, 0, sizeof w->inbox_seq);
    free_resolutions(w->res_head);
    w->res_head = w->res_tail = NULL;
    pthread_mutex_lock(&w->lock);
    free_resolutions(w->ctl_head);
    w->ctl_head = w->ctl_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    pending_clear(w);
}

/* A group's partition, after its commit: the ids it applied that another
 * partition of this instance remembers (transaction_id is unique per
 * partition in a group: docs/DECISIONS.md). Checked after the commit, so
 * that of two batches committing at once the later one sees the other;
 * the router counts each id once. */
static void count_elsewhere(struct worker *w, const struct resolution *res)
{
    ws_seen_probe probe;
    int found;

    if (__builtin_popcountll(ws_store_owned(w->r->o.store)) < 2)
        return;
    ws_seen_probe_begin(&probe, w->r->o.store, w->shard);
    for (; res; res = res->next)
        if (res->applied &&
            ws_seen_probe_id(&probe, res->id.p, res->id.n, &found) == WS_OK &&
            found)
            router_note_elsewhere(w->r, res->id.p, res->id.n);
    ws_seen_probe_end(&probe);
}

/* Stores next[p] (-1: not touched) under the key `key` names for each
 * partition p (none when key is NULL or names none) in the open batch. */
static int offsets_put(struct worker *w,
                       size_t (*key)(void *ctx, int p, char *buf,
                                     size_t cap),
                       const int64_t *next)
{
    char buf[600];
    size_t kn;
    int p, e = WS_OK;

    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS && e == WS_OK && key; p++)
        if (next[p] >= 0 &&
            (kn = key(w->r->o.hooks->ctx, p, buf, sizeof buf)) > 0)
            e = ws_batch_offset_set(w->batch, buf, kn, next[p]);
    return e;
}

/* Commits the open batch (or stores the marks' offsets alone), then
 * sends the batch's resolutions. Returns 0 or an error (the router has
 * failed then). */
static int commit(struct worker *w)
{
    struct ws_router *r = w->r;
    const ws_router_hooks *hk = r->o.hooks;
    char why[WS_ROUTER_WHY_MAX];
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
    for (p = 0; p < r->n && e == WS_OK; p++)
        if (w->inbox_seq[p] > 0)
            e = ws_batch_inbox_set(w->batch, p, w->inbox_seq[p]);
    if (e == WS_OK)
        e = offsets_put(w, hk->source_key, w->next);
    if (e == WS_OK)
        e = offsets_put(w, hk->origin_key, w->origin_next);
    /* Everything the batch writes is in it before its outputs go out (a
     * group's state topic carries the batch's changes). */
    if (e == WS_OK && (step = "write back", 1))
        e = ws_batch_seal(w->batch);
    if (e == WS_OK && hk->before_commit &&
        hk->before_commit(hk->ctx, w->shard, w->batch, why) != 0)
        e = WS_ERR_IO;
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
    w->marks_since = -1;
    memset(w->inbox_seq, 0, sizeof w->inbox_seq);
    pthread_mutex_lock(&r->lock);
    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
        if (w->next[p] >= 0)
            r->held[w->shard][p] = w->committed[p] = w->next[p];
    r->stats.commits[w->shard]++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    for (p = 0; p < WS_ROUTER_MAX_PARTITIONS; p++)
        w->next[p] = w->origin_next[p] = -1;
    w->in_batch = 0;
    w->nages = 0;

    /* Committed: the batch's claims are resolved. */
    res = w->res_head;
    w->res_head = w->res_tail = NULL;
    if (r->o.by_partition)
        count_elsewhere(w, res);
    for (; res; res = next) {
        struct worker *t;
        /* The id's shard (a group's: the record's own partition). */
        int target = r->o.by_partition
                         ? w->shard : ws_shard_index(res->id.p, res->id.n,
                                                     r->n);

        next = res->next;
        if (target == w->shard) {
            e = resolve(w, res, woken);
            res_free(w, res);
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

/* Prefetches for the record of item it, if a decoded record. */
static void prefetch(struct worker *w, struct item *it, int entries)
{
    if (it && it->kind == IT_APPLY && rec_of_apply(it)->decoded)
        ws_engine_prefetch(w->batch, &rec_of_apply(it)->res.txn, entries);
}

/* Applies one record of this shard whose claim is decided (taken off the
 * head of the items). */
static int apply(struct worker *w, struct rec *rc)
{
    struct ws_router *r = w->r;
    const ws_router_hooks *hk = r->o.hooks;
    char why[WS_ROUTER_WHY_MAX];
    ws_source_pos src;
    int e, v;

    if ((e = ensure_batch(w)) != WS_OK)
        return e;
    /* The keys of the next two records reach the caches while this one
     * applies: the slots of the second, the entries of the first. */
    prefetch(w, w->head ? w->head->next : NULL, 0);
    prefetch(w, w->head, 1);
    v = atomic_load_explicit(&rc->verdict, memory_order_acquire);
    src = rc->in.origin;
    if (rc->decoded && v == V_SOLO) {
        if ((e = ws_engine_apply(w->batch, &rc->res.txn, &src, &rc->res)) !=
            WS_OK)
            return e;
    } else if (rc->decoded) {
        e = ws_engine_apply_claimed(w->batch, &rc->res.txn,
                                    v == V_NEW ? WS_CLAIM_NEW
                                    : v == V_SAME ? WS_CLAIM_SAME
                                                  : WS_CLAIM_OTHER,
                                    &src, &rc->res);
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
    if (hk->note && hk->note(hk->ctx, w->shard, &rc->in, &rc->res) != 0) {
        fail(r, WS_ERR_NOMEM, "changelog: out of memory");
        return WS_ERR_NOMEM;
    }
    if (rc->in.partition >= 0 && rc->in.partition < WS_ROUTER_MAX_PARTITIONS)
        w->next[rc->in.partition] = rc->in.offset + 1;
    if (rc->in.repartitioned && rc->in.origin.partition >= 0 &&
        rc->in.origin.partition < WS_ROUTER_MAX_PARTITIONS &&
        rc->in.origin.offset + 1 > w->origin_next[rc->in.origin.partition])
        w->origin_next[rc->in.origin.partition] = rc->in.origin.offset + 1;
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

/* Applies the resolutions taken from the mailbox, then decides the
 * claims among the items taken (take_claims) and queues the rest behind
 * the worker's items. Returns 0 or a store error. */
static int take_in(struct worker *w, struct resolution *ctl,
                   struct item *taken, uint32_t *woken)
{
    struct item *taken_tail = NULL;
    int e = process_ctl(w, ctl, woken);

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
    return e;
}

/* Hands the records applied so far back to the router for reuse (under
 * the worker's lock): during a long run of records too, else the router
 * allocates (and the kernel zeroes) a new record for every one routed
 * meanwhile (measured: 12 % of a replay). */
static void give_back(struct worker *w)
{
    if (!w->done)
        return;
    w->done_tail->wait_next = w->returned;
    if (!w->returned)
        w->returned_tail = w->done_tail;
    w->returned = w->done;
    w->done = w->done_tail = NULL;
}

/* Takes what arrived meanwhile, in the middle of a long run of records:
 * other shards' claims are decided now (their records wait for them) and
 * resolutions applied; the rest joins the queue. */
static int refill(struct worker *w)
{
    uint32_t woken[WS_SHARDS_MAX / 32] = {0};
    struct item *taken;
    struct resolution *ctl;
    int e = WS_OK;

    pthread_mutex_lock(&w->lock);
    taken = w->reset ? NULL : w->items_head;
    if (taken)
        w->items_head = w->items_tail = NULL;
    give_back(w);
    ctl = w->ctl_head;
    w->ctl_head = w->ctl_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    e = take_in(w, ctl, taken, woken);
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
            atomic_fetch_sub(&w->queued, 1);
            if (!w->done_tail)
                w->done_tail = rc;
            if (e == WS_OK && ++applied % REFILL_EVERY == 0)
                e = refill(w);
            if (e == WS_OK && (w->in_batch >= r->o.batch_max ||
                               (w->in_batch % PAGES_CHECK_EVERY == 0 &&
                                ws_batch_pages(w->batch) >
                                    WS_BATCH_PAGES_MAX / (size_t)r->n)))
                e = commit(w);
        } else if (it->kind == IT_MARK) {
            struct mark *m = (struct mark *)(void *)it;
            int i;

            w->head = it->next;
            if (m->partition < WS_ROUTER_MAX_PARTITIONS &&
                m->next > w->next[m->partition] &&
                m->next > w->committed[m->partition]) {
                if (m->nfront > 0) {
                    /* a repartitioner's: committed with the next batch,
                     * or when a reader wants it (marks_due) */
                    if (w->marks_since < 0)
                        w->marks_since = ws_clock_ms();
                } else {
                    if (!w->batch && !w->offsets_due)
                        w->opened_ms = ws_clock_ms();
                    w->offsets_due = 1;
                }
                w->next[m->partition] = m->next;
                /* how far each input partition is given to this shard
                 * (stored with the offset) */
                for (i = 0; i < m->nfront; i++)
                    if (m->front[i].partition >= 0 &&
                        m->front[i].partition < WS_ROUTER_MAX_PARTITIONS &&
                        m->front[i].next >
                            w->origin_next[m->front[i].partition])
                        w->origin_next[m->front[i].partition] =
                            m->front[i].next;
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

    /* Records of its own waiting, not offset marks or claims: those come
     * with every poll round, and would hold batches open at any rate. A
     * reader waiting for this shard's next commit (read-your-writes)
     * wants it now rather than a larger batch. */
    if (atomic_load(&w->queued) == 0 ||
        ws_store_commit_wanted(w->r->o.store, w->shard) >= w->opened_ms)
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

/* Whether the frontiers a repartitioner's marks moved (with nothing
 * else to commit) are committed now: once a reader waits for this shard
 * (read-your-writes on a product: it waits for every partition), or
 * MARKS_LINGER_MS after the first. Not at once: marks reach every
 * partition, and a commit for each (a group's is a Kafka transaction)
 * where no reader waits only holds up the shards' own commits
 * (docs/DECISIONS.md, "A product's read-your-writes in a group"). */
static int marks_due(struct worker *w, int64_t now)
{
    return w->marks_since >= 0 &&
           (now - w->marks_since >= MARKS_LINGER_MS ||
            ws_store_commit_wanted(w->r->o.store, w->shard) >=
                w->marks_since);
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

void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ws_router *r = w->r;
    int64_t blocked_since = -1;
    char why[WS_ROUTER_WHY_MAX];

    while (!atomic_load(&r->stop)) {
        uint32_t woken[WS_SHARDS_MAX / 32] = {0};
        struct resolution *ctl;
        struct item *taken = NULL;
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
            /* a reader may want the marks' frontiers (marks_due) */
            if (w->marks_since >= 0 && wait_ms > MARKS_CHECK_MS)
                wait_ms = MARKS_CHECK_MS;
            if (wait_ms > 0) {
                ws_clock_deadline(&until, (int)wait_ms);
                pthread_cond_timedwait(&w->wake, &w->lock, &until);
            }
        }
        if (!w->reset) {
            taken = w->items_head;
            w->items_head = w->items_tail = NULL;
        }
        give_back(w);
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
        e = take_in(w, ctl, taken, woken);
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
        else if (e == WS_OK && marks_due(w, now))
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
