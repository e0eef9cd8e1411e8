/*
 * batch.c - one shard's write batch (ws_batch_*): everything a batch of
 * that shard changes, written in one LMDB write transaction of the
 * shard. Reads and writes go through the batch's working set (wset.h);
 * the changed records are written back in key order. It holds wallets,
 * debit days, top lists, products, the transaction ids the shard
 * remembers, the outbox and inbox that carry ids applied by other
 * shards, outcome counters and offsets. One batch per shard, used by the
 * shard's worker only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"
#include "timeutil.h"

/* ---------------------------------------------------------- LMDB helpers */

/* Remembers the first error of the batch (once LMDB or the working set
 * failed, the write transaction must not be committed) and returns err. */
static int batch_err(ws_batch *b, int err)
{
    if (err != WS_OK && err != WS_ERR_NOT_FOUND && b->err == WS_OK)
        b->err = err;
    return err;
}

/* The same for an LMDB return code. */
static int batch_rc(ws_batch *b, int rc)
{
    return batch_err(b, map_err(rc));
}

/* Records one change for ws_batch_each_change when the store journals
 * (v NULL: a deletion). */
static int journal(ws_batch *b, int db, const void *k, size_t kn,
                   const void *v, size_t vn)
{
    size_t need = 4 + 1 + kn + 4 + (v ? vn : 0);
    unsigned char *p;
    uint32_t n;

    if (!b->store->journal || b->raw)
        return WS_OK;
    if (b->jlen + need > b->jcap) {
        size_t cap = b->jcap ? b->jcap : 65536;

        while (cap < b->jlen + need)
            cap *= 2;
        if (!(p = realloc(b->jbuf, cap)))
            return batch_err(b, WS_ERR_NOMEM);
        b->jbuf = p;
        b->jcap = cap;
    }
    p = b->jbuf + b->jlen;
    n = (uint32_t)(1 + kn);
    memcpy(p, &n, 4);
    p[4] = (unsigned char)db;
    memcpy(p + 5, k, kn);
    p += 5 + kn;
    n = v ? (uint32_t)vn : JOURNAL_DELETED;
    memcpy(p, &n, 4);
    if (v)
        memcpy(p + 4, v, vn);
    b->jlen += need;
    b->jcount++;
    return WS_OK;
}

static int put(ws_batch *b, int db, const void *k, size_t kn, const void *v,
               size_t vn)
{
    MDB_val key = val(k, kn), data = val(v, vn);

    if (journal(b, db, k, kn, v, vn) != WS_OK)
        return b->err;
    return batch_rc(b, mdb_put(b->txn, b->sh->dbi[db], &key, &data, 0));
}

/* ------------------------------------------------------------- the batch */

int ws_store_begin(ws_store *s, ws_batch **out)
{
    return ws_store_begin_shard(s, 0, out);
}

int ws_store_begin_shard(ws_store *s, int shard, ws_batch **out)
{
    struct shard *sh;
    ws_batch *b;
    int rc;

    if (s->mode != WS_STORE_WRITE || shard < 0 || shard >= s->nshards)
        return WS_ERR_STORE;
    sh = &s->sh[shard];
    b = &sh->batch;
    if (sh->batch_open)
        return WS_ERR_STORE;
    rc = mdb_txn_begin(sh->env, NULL, 0, &b->txn);
    if (rc != 0)
        return map_err(rc);
    memset(&b->delta, 0, sizeof b->delta);
    b->err = WS_OK;
    b->hist_next = 0;
    b->hist_moved = 0;
    b->hist_added = 0;
    b->hist_max_day = 0;
    b->hist_cur = NULL;
    b->sealed = 0;
    b->raw = 0;
    b->jlen = b->jcount = 0;
    for (rc = 0; rc < DB_COUNT; rc++) {
        MDB_stat st;

        b->pages[rc] = mdb_stat(b->txn, sh->dbi[rc], &st) == 0
                           ? st.ms_branch_pages + st.ms_leaf_pages +
                                 st.ms_overflow_pages
                           : 0;
    }
    sh->batch_open = 1;
    *out = b;
    return WS_OK;
}

size_t ws_batch_pages(const ws_batch *b)
{
    size_t total = 0, written;
    int t;

    for (t = 0; t < DB_COUNT; t++) {
        written = ws_wset_written(b->ws, (unsigned)t);
        total += (written < b->pages[t] ? written : b->pages[t]) +
                 written / 16;
    }
    /* Statement lines are appended: full pages, about 50 lines each. */
    return total + b->hist_added / 32;
}

int ws_batch_shard(const ws_batch *b)
{
    return b->sh->index;
}

static int add_counter(ws_batch *b, const char *prefix, const char *name,
                       size_t n, int64_t delta)
{
    char key[COUNTER_KEY_MAX];
    unsigned char buf[8];
    MDB_val v;
    int64_t total = 0;
    size_t kn = counter_key(prefix, name, n, key);
    int rc;

    if (kn == 0)
        return batch_err(b, WS_ERR_USAGE);
    rc = get(b->txn, b->sh->dbi[DB_COUNTERS], key, kn, &v);
    if (rc == 0 && v.mv_size == 8)
        total = (int64_t)get_u64(v.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return batch_rc(b, rc);
    put_u64(buf, (uint64_t)(total + delta));
    return put(b, DB_COUNTERS, key, kn, buf, 8);
}

/* Writes the working set's changed records into the LMDB transaction, in
 * key order, one cursor per table: consecutive keys mostly land on the
 * page the cursor is on, so LMDB skips the descent from the root. */
int ws_batch_flush(ws_batch *b)
{
    ws_wentry **d;
    MDB_cursor *cur = NULL;
    size_t n, i;
    int table = -1, rc = 0, e;

    if (b->err != WS_OK)
        return b->err;
    /* Nothing changed since the last write-back: the changelog reads
     * each changed product's tops through a cursor, one flush each
     * (measured: scanning the slots every time took 75 % of a stream's
     * time). */
    if (!b->dirty)
        return WS_OK;
    if ((e = ws_wset_dirty(b->ws, &d, &n)) != WS_OK)
        return batch_err(b, e);
    for (i = 0; i < n && rc == 0; i++) {
        MDB_val key = val(d[i]->key, d[i]->klen);
        MDB_val data = val(d[i]->val, d[i]->vlen);

        if (d[i]->table != table) {
            if (cur)
                mdb_cursor_close(cur);
            cur = NULL;
            table = d[i]->table;
            if ((rc = mdb_cursor_open(b->txn, b->sh->dbi[table], &cur)))
                break;
        }
        rc = mdb_cursor_put(cur, &key, &data, 0);
        /* A key-only record (a product, a debit day) has no value
         * pointer: it is not a deletion. */
        if (rc == 0 &&
            (rc = journal(b, table, key.mv_data, key.mv_size,
                          data.mv_data ? data.mv_data : "",
                          data.mv_size)) != 0) {
            rc = 0;     /* b->err holds it */
            break;
        }
        if (rc == 0)
            d[i]->state = WS_WE_CLEAN;
    }
    if (cur)
        mdb_cursor_close(cur);
    if (rc == 0)
        b->dirty = 0;
    return batch_rc(b, rc);
}

static int history_commit(ws_batch *b);

int ws_batch_seal(ws_batch *b)
{
    int i, e;

    if (b->sealed)
        return b->err;
    e = ws_batch_flush(b);
    if (e == WS_OK)
        e = history_commit(b);
    for (i = 0; e == WS_OK && i < WS_OUTCOME_COUNT; i++)
        if (b->delta.outcome[i]) {
            const char *name = ws_outcome_name((enum ws_outcome)i);

            e = add_counter(b, "outcome", name, strlen(name),
                            b->delta.outcome[i]);
        }
    for (i = 1; e == WS_OK && i < WS_R_COUNT; i++)
        if (b->delta.reason[i]) {
            const char *name = ws_reason_name((enum ws_reason)i);

            e = add_counter(b, "reason", name, strlen(name),
                            b->delta.reason[i]);
        }
    if (e == WS_OK && b->err == WS_OK)
        b->sealed = 1;
    return e != WS_OK ? e : b->err;
}

int ws_batch_commit(ws_batch *b)
{
    int e = ws_batch_seal(b), rc;

    if (e != WS_OK) {
        ws_batch_abort(b);
        return e;
    }
    rc = mdb_txn_commit(b->txn);    /* frees hist_cur */
    b->txn = NULL;
    b->hist_cur = NULL;
    b->sh->batch_open = 0;
    b->last = NULL;
    b->dirty = 0;
    /* Committed: the working set's wallets, top lists and products are
     * what the store holds, and nothing but this shard's batches writes
     * them; the next batch starts from them. Anything else (a failed
     * commit, an abort) forgets them all. */
    if (rc == 0)
        atomic_fetch_add(&b->store->commits, 1);
    if (rc == 0 && !b->raw)
        ws_wset_clear_keeping(b->ws, 1u << DB_WALLETS | 1u << DB_TOP |
                                         1u << DB_PRODUCTS,
                              WS_BATCH_KEEP_BYTES /
                                  (size_t)b->store->nshards);
    else
        ws_wset_clear(b->ws);
    return map_err(rc);
}

void ws_batch_abort(ws_batch *b)
{
    if (b->txn)
        mdb_txn_abort(b->txn);  /* frees hist_cur */
    b->txn = NULL;
    b->hist_cur = NULL;
    b->sh->batch_open = 0;
    b->last = NULL;
    b->dirty = 0;
    ws_wset_clear(b->ws);
}

/* ------------------------------------------------------- the working set */

/* The working-set entry of table/key, read from LMDB on its first use in
 * the batch (absent records get an ABSENT entry, so a second miss costs
 * no descent either); vcap reserves room for the value the batch may
 * write. NULL with *err set on failure. */
static ws_wentry *load(ws_batch *b, int db, const void *k, size_t kn,
                       size_t vcap, int *err)
{
    ws_wentry *e = b->last;
    MDB_val v;
    int rc;

    if (e && e->table == db && e->klen == kn && memcmp(e->key, k, kn) == 0)
        return e;
    if ((e = ws_wset_find(b->ws, (unsigned)db, k, kn)) != NULL)
        return b->last = e;
    rc = get(b->txn, b->sh->dbi[db], k, kn, &v);
    if (rc == 0)
        e = ws_wset_add(b->ws, (unsigned)db, k, kn, WS_WE_CLEAN, v.mv_data,
                        v.mv_size, vcap);
    else if (rc == MDB_NOTFOUND)
        e = ws_wset_add(b->ws, (unsigned)db, k, kn, WS_WE_ABSENT, NULL, 0,
                        vcap);
    else {
        *err = batch_rc(b, rc);
        return NULL;
    }
    if (!e)
        *err = batch_err(b, WS_ERR_NOMEM);
    return b->last = e;
}

/* Sets the entry's value and marks it to be written. */
static int store_value(ws_batch *b, ws_wentry *e, const void *v, size_t n)
{
    b->dirty = 1;
    return batch_err(b, ws_wset_set(b->ws, e, WS_WE_DIRTY, v, n));
}

/* Marks a key-only record (empty value) present; *added is 1 when it was
 * not there before. */
static int mark(ws_batch *b, int db, const void *k, size_t kn, int *added)
{
    int err = WS_OK;
    ws_wentry *e = load(b, db, k, kn, 0, &err);

    *added = 0;
    if (!e)
        return err;
    if (e->state != WS_WE_ABSENT)
        return WS_OK;
    *added = 1;
    return store_value(b, e, "", 0);
}

/* ----------------------------------------------------------- the records */

int ws_batch_seen_claim(ws_batch *b, const char *id, size_t n,
                        const unsigned char fp[16], int *claimed,
                        unsigned char existing[16])
{
    int err = WS_OK;
    ws_wentry *e = load(b, DB_SEEN, id, n, 16, &err);

    *claimed = 0;
    if (!e)
        return err;
    if (e->state == WS_WE_ABSENT) {
        *claimed = 1;
        return store_value(b, e, fp, 16);
    }
    if (e->vlen != 16 && e->vlen != SEEN_SOURCED)
        return WS_ERR_CORRUPT;
    memcpy(existing, e->val, 16);
    return WS_OK;
}

int ws_batch_seen_release(ws_batch *b, const char *id, size_t n)
{
    ws_wentry *e = ws_wset_find(b->ws, DB_SEEN, id, n);
    MDB_val key = val(id, n);

    if (!e || e->state == WS_WE_ABSENT)
        return WS_OK;
    if (e->state == WS_WE_CLEAN) {
        /* Already written back (a flush came between claim and release). */
        int rc = mdb_del(b->txn, b->sh->dbi[DB_SEEN], &key, NULL);

        if (rc != 0 && rc != MDB_NOTFOUND)
            return batch_rc(b, rc);
        if (rc == 0 && journal(b, DB_SEEN, id, n, NULL, 0) != WS_OK)
            return b->err;
    }
    e->state = WS_WE_ABSENT;
    e->vlen = 0;
    return WS_OK;
}

int ws_batch_wallet_get(ws_batch *b, const char *id, size_t n, ws_wallet *w)
{
    int err = WS_OK;
    ws_wentry *e = load(b, DB_WALLETS, id, n, WALLET_MAX, &err);
    MDB_val v;

    if (!e)
        return err;
    if (e->state == WS_WE_ABSENT)
        return WS_ERR_NOT_FOUND;
    v = val(e->val, e->vlen);
    return wallet_decode(&v, w);
}

int ws_batch_wallet_put(ws_batch *b, const char *id, size_t n,
                        const ws_wallet *w)
{
    unsigned char rec[WALLET_MAX];
    int err = WS_OK;
    ws_wentry *e = load(b, DB_WALLETS, id, n, WALLET_MAX, &err);

    if (!e)
        return err;
    return store_value(b, e, rec, wallet_encode(w, rec));
}

/* The debit_days key of wallet[0..n) and day; returns its length. */
static size_t debit_day_key(const char *wallet, size_t n, int32_t day,
                            char key[WS_MAX_ID + 5])
{
    uint32_t d = (uint32_t)day;

    memcpy(key, wallet, n);
    key[n] = '\0';
    key[n + 1] = (char)(d >> 24);
    key[n + 2] = (char)(d >> 16);
    key[n + 3] = (char)(d >> 8);
    key[n + 4] = (char)d;
    return n + 5;
}

int ws_batch_debit_day_add(ws_batch *b, const char *wallet, size_t n,
                           int32_t day, int *added)
{
    char key[WS_MAX_ID + 5];

    return mark(b, DB_DEBIT_DAYS, key, debit_day_key(wallet, n, day, key),
                added);
}

void ws_batch_prefetch(const ws_batch *b, int entries, const char *tx_id,
                       size_t tn, const char *wallet, size_t wn,
                       const char *product, size_t pn, const char *currency,
                       const int32_t *day)
{
    char key[WS_MAX_ID + 5];

    /* A new id is never in the working set: its slot, not an entry. */
    if (!entries)
        ws_wset_prefetch(b->ws, DB_SEEN, tx_id, tn, 0);
    ws_wset_prefetch(b->ws, DB_WALLETS, wallet, wn, entries);
    ws_wset_prefetch(b->ws, DB_PRODUCTS, product, pn, entries);
    if (currency)
        ws_wset_prefetch(b->ws, DB_TOP, key,
                         top_key(product, pn, currency, key), entries);
    if (day)
        ws_wset_prefetch(b->ws, DB_DEBIT_DAYS, key,
                         debit_day_key(wallet, wn, *day, key), entries);
}

/* ---------------------------------------------------------- statements */

int ws_batch_history_on(const ws_batch *b)
{
    return b->store->history_days != WS_HISTORY_OFF;
}

/* The next log position: meta "history_next", else after the last line,
 * else 1. */
static int history_next(ws_batch *b)
{
    MDB_val v, key, data;
    MDB_cursor *cur;
    int rc;

    rc = get(b->txn, b->sh->dbi[DB_META], "history_next", 12, &v);
    if (rc == 0 && v.mv_size == 8) {
        b->hist_next = get_u64(v.mv_data);
        return WS_OK;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return batch_rc(b, rc);
    if ((rc = mdb_cursor_open(b->txn, b->sh->dbi[DB_HISTORY], &cur)) != 0)
        return batch_rc(b, rc);
    rc = mdb_cursor_get(cur, &key, &data, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return batch_rc(b, rc);
    b->hist_next = rc == 0 ? history_pos(&key) + 1 : 1;
    return WS_OK;
}

int ws_batch_history_add(ws_batch *b, const char *wallet, size_t n,
                         ws_history_entry *h, uint64_t *head)
{
    unsigned char k[8], v[HISTORY_MAX];
    MDB_val key, data;
    int32_t day;
    int e, rc;

    if (b->store->history_days == WS_HISTORY_OFF)
        return WS_OK;
    if (n > WS_MAX_ID || h->tx_id_len > WS_MAX_ID ||
        h->product_id_len > WS_MAX_ID)
        return batch_err(b, WS_ERR_USAGE);
    if (!b->hist_next && (e = history_next(b)) != WS_OK)
        return e;
    if (!b->hist_cur &&
        (rc = mdb_cursor_open(b->txn, b->sh->dbi[DB_HISTORY], &b->hist_cur)))
        return batch_rc(b, rc);
    h->pos = b->hist_next;
    h->prev = *head;
    history_key(h->pos, k);
    key = val(k, 8);
    data = val(v, history_encode(h, history_tag(wallet, n), v));
    /* Positions only grow: an append, never a descent or a split in the
     * middle (pages stay full). */
    if ((rc = mdb_cursor_put(b->hist_cur, &key, &data, MDB_APPEND)) != 0)
        return batch_rc(b, rc);
    if (journal(b, DB_HISTORY, k, 8, data.mv_data, data.mv_size) != WS_OK)
        return b->err;
    *head = h->pos;
    b->hist_next++;
    b->hist_moved = 1;
    day = ws_time_day(h->ts);
    if (b->hist_added++ == 0 || day > b->hist_max_day)
        b->hist_max_day = day;
    return WS_OK;
}

/* At commit: the next position, and with --history-days the oldest
 * lines out of the kept days dropped (at most WS_HISTORY_PRUNE_MAX). */
static int history_commit(ws_batch *b)
{
    unsigned char next[8];
    MDB_val key, data;
    int days = b->store->history_days, rc = 0, n = 0;

    if (days > 0 && b->hist_added > 0 && b->hist_cur) {
        int32_t cutoff = b->hist_max_day - days;

        while (n < WS_HISTORY_PRUNE_MAX &&
               (rc = mdb_cursor_get(b->hist_cur, &key, &data, MDB_FIRST)) ==
                   0) {
            ws_history_entry h;
            uint32_t tag;

            if (history_decode(&data, &tag, &h) != WS_OK)
                return batch_err(b, WS_ERR_CORRUPT);
            if (ws_time_day(h.ts) >= cutoff)
                break;
            if (journal(b, DB_HISTORY, key.mv_data, key.mv_size, NULL, 0) !=
                WS_OK)
                return b->err;
            if ((rc = mdb_cursor_del(b->hist_cur, 0)) != 0)
                break;
            n++;
        }
        if (rc != 0 && rc != MDB_NOTFOUND)
            return batch_rc(b, rc);
    }
    if (!b->hist_moved)
        return WS_OK;
    put_u64(next, b->hist_next);
    return put(b, DB_META, "history_next", 12, next, 8);
}

int ws_batch_top_get(ws_batch *b, const char *product, size_t n,
                     const char currency[3], ws_top *t)
{
    char key[WS_MAX_ID + 4];
    int err = WS_OK;
    ws_wentry *e = load(b, DB_TOP, key, top_key(product, n, currency, key),
                        0, &err);
    MDB_val v;

    if (!e)
        return err;
    if (e->state == WS_WE_ABSENT) {
        memcpy(t->currency, currency, 3);
        t->n = 0;
        return WS_ERR_NOT_FOUND;
    }
    v = val(e->val, e->vlen);
    return top_decode(&v, currency, t);
}

int ws_batch_top_put(ws_batch *b, const char *product, size_t n,
                     const ws_top *t)
{
    char key[WS_MAX_ID + 4];
    unsigned char rec[TOP_MAX];
    int err = WS_OK;
    ws_wentry *e = load(b, DB_TOP, key, top_key(product, n, t->currency, key),
                        0, &err);

    if (!e)
        return err;
    return store_value(b, e, rec, top_encode(t, rec));
}

int ws_batch_product_mark(ws_batch *b, const char *product, size_t n,
                          int *added)
{
    return mark(b, DB_PRODUCTS, product, n, added);
}

int ws_batch_tops(ws_batch *b, const char *product, size_t n,
                  int (*fn)(const ws_top *t, void *arg), void *arg)
{
    ws_store *s = b->store;
    MDB_txn *txn[WS_SHARDS_MAX];
    int e = ws_batch_flush(b), k, rc = 0;

    if (e != WS_OK)
        return e;
    /* A group's instance: the shard is a partition, whose lists are its
     * own (merged by whoever reads every partition). */
    if (s->nshards == 1 || s->journal)
        return tops_in(b->txn, b->sh->dbi[DB_TOP], product, n, fn, arg);
    /* The batch's own lists with the other shards' committed ones. */
    for (k = 0; k < s->nshards && rc == 0; k++)
        if (k == b->sh->index)
            txn[k] = b->txn;
        else if ((rc = shard_read(&s->sh[k], &txn[k])) != 0)
            break;
    if (rc == 0)
        e = tops_merged(s, txn, product, n, fn, arg);
    else
        e = map_err(rc);
    while (--k >= 0)
        if (k != b->sh->index) {
            mdb_txn_abort(txn[k]);
            pthread_rwlock_unlock(&s->sh[k].resize);
        }
    return e;
}

void ws_batch_count(ws_batch *b, enum ws_outcome o, enum ws_reason r)
{
    b->delta.outcome[o]++;
    if (o == WS_REJECTED)
        b->delta.reason[r]++;
}

int ws_batch_offset_set(ws_batch *b, const char *source, size_t n,
                        int64_t next)
{
    unsigned char buf[8];

    put_u64(buf, (uint64_t)next);
    return put(b, DB_OFFSETS, source, n, buf, 8);
}

int ws_batch_lost_add(ws_batch *b, const char *source, size_t n,
                      int64_t records)
{
    return add_counter(b, "lost", source, n, records);
}

/* --------------------------------------- claims of other shards' records */

/* The last sequence shard `from` delivered to the shard of txn/sh. */
int read_inbox(MDB_txn *txn, struct shard *sh, int from, uint64_t *seq)
{
    unsigned char k[2];
    MDB_val v;
    int rc;

    inbox_key(from, k);
    rc = get(txn, sh->dbi[DB_INBOX], k, 2, &v);
    *seq = 0;
    if (rc == MDB_NOTFOUND)
        return WS_OK;
    if (rc != 0)
        return map_err(rc);
    if (v.mv_size != 8)
        return WS_ERR_CORRUPT;
    *seq = get_u64(v.mv_data);
    return WS_OK;
}

int ws_batch_seen_get(ws_batch *b, const char *id, size_t n,
                      unsigned char fp[16], ws_source_pos *src, int *found)
{
    int err = WS_OK;
    ws_wentry *e = load(b, DB_SEEN, id, n, SEEN_SOURCED, &err);

    *found = 0;
    src->partition = -1;
    src->offset = -1;
    if (!e)
        return err;
    if (e->state == WS_WE_ABSENT)
        return WS_OK;
    if (e->vlen != 16 && e->vlen != SEEN_SOURCED)
        return WS_ERR_CORRUPT;
    memcpy(fp, e->val, 16);
    if (e->vlen == SEEN_SOURCED)
        source_get(e->val + 16, src);
    *found = 1;
    return WS_OK;
}

int ws_batch_seen_put(ws_batch *b, const char *id, size_t n,
                      const unsigned char fp[16], const ws_source_pos *src)
{
    unsigned char v[SEEN_SOURCED];
    int err = WS_OK;
    ws_wentry *e = load(b, DB_SEEN, id, n, SEEN_SOURCED, &err);

    if (!e)
        return err;
    memcpy(v, fp, 16);
    if (!src || src->partition < 0)
        return store_value(b, e, v, 16);
    source_put(v + 16, src);
    return store_value(b, e, v, SEEN_SOURCED);
}

int ws_batch_outbox_add(ws_batch *b, int target, uint64_t seq,
                        const char *id, size_t n, const unsigned char fp[16],
                        const ws_source_pos *src)
{
    unsigned char k[10], v[SEEN_SOURCED + WS_MAX_ID];
    ws_source_pos none = {-1, -1};

    if (n > WS_MAX_ID)
        return batch_err(b, WS_ERR_USAGE);
    outbox_key(target, seq, k);
    memcpy(v, fp, 16);
    source_put(v + 16, src ? src : &none);
    memcpy(v + SEEN_SOURCED, id, n);
    /* A new key (one sequence per pair of shards): into the working set
     * without a lookup, written back in key order with the rest. */
    if (!ws_wset_add(b->ws, DB_OUTBOX, k, 10, WS_WE_DIRTY, v,
                     SEEN_SOURCED + n, SEEN_SOURCED + n))
        return batch_err(b, WS_ERR_NOMEM);
    b->dirty = 1;
    return WS_OK;
}

int ws_batch_inbox_set(ws_batch *b, int from, uint64_t seq)
{
    unsigned char k[2], v[8];

    inbox_key(from, k);
    put_u64(v, seq);
    return put(b, DB_INBOX, k, 2, v, 8);
}

/* Deletes the entries of `sh`'s outbox for `target` up to seq `upto`. */
int outbox_drop(MDB_txn *txn, struct shard *sh, int target,
                uint64_t upto)
{
    unsigned char k[10];
    MDB_cursor *cur;
    MDB_val key, data;
    int rc;

    outbox_key(target, 0, k);
    if ((rc = mdb_cursor_open(txn, sh->dbi[DB_OUTBOX], &cur)) != 0)
        return rc;
    key = val(k, 10);
    rc = mdb_cursor_get(cur, &key, &data, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size == 10 &&
           memcmp(key.mv_data, k, 2) == 0 && outbox_seq(key.mv_data) <= upto) {
        if ((rc = mdb_cursor_del(cur, 0)) == 0)
            rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

int ws_batch_outbox_prune(ws_batch *b)
{
    ws_store *s = b->store;
    int t, rc = 0, e = WS_OK;

    for (t = 0; t < s->nshards && e == WS_OK && rc == 0; t++) {
        MDB_txn *txn;
        uint64_t upto;

        if (t == b->sh->index)
            continue;
        if ((rc = shard_read(&s->sh[t], &txn)) != 0)
            break;
        e = read_inbox(txn, &s->sh[t], b->sh->index, &upto);
        mdb_txn_abort(txn);
        pthread_rwlock_unlock(&s->sh[t].resize);
        if (e == WS_OK && upto > 0)
            rc = outbox_drop(b->txn, b->sh, t, upto);
    }
    return rc ? batch_rc(b, rc) : batch_err(b, e);
}

uint64_t ws_store_outbox_next(const ws_store *s, int from, int target)
{
    return s->next_seq[from][target];
}

/* ------------------------------------------- a shard copied change by change */

void ws_store_journal(ws_store *s, int on)
{
    s->journal = on;
}


int ws_batch_each_change(ws_batch *b,
                         int (*fn)(void *arg, const void *key, size_t kn,
                                   const void *value, size_t vn),
                         void *arg)
{
    size_t at = 0;
    int e = 0;

    while (at < b->jlen && e == 0) {
        const unsigned char *p = b->jbuf + at;
        uint32_t kn, vn;

        memcpy(&kn, p, 4);
        memcpy(&vn, p + 4 + kn, 4);
        e = vn == JOURNAL_DELETED
                ? fn(arg, p + 4, kn, NULL, 0)
                : fn(arg, p + 4, kn, p + 8 + kn, vn);
        at += 4 + (size_t)kn + 4 + (vn == JOURNAL_DELETED ? 0 : vn);
    }
    return e;
}

size_t ws_batch_changes(const ws_batch *b)
{
    return b->jcount;
}

int ws_batch_apply_change(ws_batch *b, const void *key, size_t kn,
                          const void *value, size_t vn)
{
    const unsigned char *k = key;
    MDB_val mk, mv;
    int rc;

    if (kn < 2 || k[0] >= DB_COUNT || b->sh->dbi[k[0]] == 0 ||
        (k[0] == DB_META &&
         !(kn - 1 == 12 && memcmp(k + 1, "history_next", 12) == 0)))
        return batch_err(b, WS_ERR_CORRUPT);
    if (!b->raw) {
        b->raw = 1;
        ws_wset_clear(b->ws);
    }
    mk = val(k + 1, kn - 1);
    if (!value) {
        rc = mdb_del(b->txn, b->sh->dbi[k[0]], &mk, NULL);
        return batch_rc(b, rc == MDB_NOTFOUND ? 0 : rc);
    }
    mv = val(value, vn);
    return batch_rc(b, mdb_put(b->txn, b->sh->dbi[k[0]], &mk, &mv, 0));
}

int ws_batch_wipe(ws_batch *b)
{
    MDB_val key = val("history_next", 12);
    int t, rc = 0;

    b->raw = 1;
    ws_wset_clear(b->ws);
    for (t = 0; t < DB_COUNT && rc == 0; t++)
        if (t != DB_META && b->sh->dbi[t] != 0)
            rc = mdb_drop(b->txn, b->sh->dbi[t], 0);
    if (rc == 0 && (rc = mdb_del(b->txn, b->sh->dbi[DB_META], &key, NULL)) ==
                       MDB_NOTFOUND)
        rc = 0;
    return batch_rc(b, rc);
}

/* A shard's own numbers live in its meta table as "mark:<name>". */
static size_t mark_key(const char *name, char *key, size_t cap)
{
    int n = snprintf(key, cap, "mark:%s", name);

    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int ws_batch_mark_set(ws_batch *b, const char *name, uint64_t v)
{
    char key[64];
    unsigned char buf[8];
    size_t kn = mark_key(name, key, sizeof key);
    MDB_val mk = val(key, kn), mv = val(buf, 8);

    if (kn == 0)
        return batch_err(b, WS_ERR_USAGE);
    put_u64(buf, v);
    return batch_rc(b, mdb_put(b->txn, b->sh->dbi[DB_META], &mk, &mv, 0));
}

int ws_store_mark_get(ws_store *s, int shard, const char *name, uint64_t *v)
{
    char key[64];
    size_t kn = mark_key(name, key, sizeof key);
    MDB_txn *txn;
    MDB_val data;
    int rc;

    *v = 0;
    if (kn == 0 || shard < 0 || shard >= s->nshards)
        return WS_ERR_USAGE;
    if ((rc = shard_read(&s->sh[shard], &txn)) != 0)
        return map_err(rc);
    rc = get(txn, s->sh[shard].dbi[DB_META], key, kn, &data);
    if (rc == 0 && data.mv_size == 8)
        *v = get_u64(data.mv_data);
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->sh[shard].resize);
    if (rc == 0 && data.mv_size != 8)
        return WS_ERR_CORRUPT;
    return map_err(rc);
}

void ws_store_set_owned(ws_store *s, uint64_t mask)
{
    atomic_store(&s->owned, mask);
}

uint64_t ws_store_owned(ws_store *s)
{
    return atomic_load(&s->owned);
}

/* ---------------------------------------------------- ids of other shards */

void ws_seen_probe_begin(ws_seen_probe *p, ws_store *s, int except)
{
    p->store = s;
    p->except = except;
    p->open = 0;
}

int ws_seen_probe_id(ws_seen_probe *p, const char *id, size_t n, int *found)
{
    ws_store *s = p->store;
    uint64_t owned = ws_store_owned(s);
    MDB_val data;
    int k, rc;

    *found = 0;
    for (k = 0; k < s->nshards && k < 64 && !*found; k++) {
        if (k == p->except || !(owned >> k & 1))
            continue;
        if (!(p->open >> k & 1)) {
            if ((rc = shard_read(&s->sh[k], &p->txn[k])) != 0)
                return map_err(rc);
            p->open |= (uint64_t)1 << k;
        }
        rc = get(p->txn[k], s->sh[k].dbi[DB_SEEN], id, n, &data);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return map_err(rc);
        *found = rc == 0;
    }
    return WS_OK;
}

void ws_seen_probe_end(ws_seen_probe *p)
{
    int k;

    for (k = 0; p->open && k < 64; k++)
        if (p->open >> k & 1) {
            mdb_txn_abort(p->txn[k]);
            pthread_rwlock_unlock(&p->store->sh[k].resize);
            p->open &= ~((uint64_t)1 << k);
        }
}
