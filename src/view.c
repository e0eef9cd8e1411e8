/*
 * view.c - reads over every shard of a store (ws_view_*): one read
 * transaction per shard, begun in shard order, so that a view sees each
 * shard's latest committed batch and never half of one. A wallet is read
 * from its shard; top lists are merged (the overall top 5 is within the
 * union of the shards' top 5), counters summed, an offset is the
 * smallest of the shards', and whole tables are merged in key order.
 * Any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* ----------------------------------------------------------------- views */

static void view_release(ws_view *v, int upto)
{
    int i;

    for (i = upto - 1; i >= 0; i--)
        if (v->txn[i]) {
            mdb_txn_abort(v->txn[i]);
            pthread_rwlock_unlock(&v->store->sh[i].resize);
        }
}

int ws_store_view(ws_store *s, ws_view **out)
{
    ws_view *v = malloc(sizeof *v);
    uint64_t owned = ws_store_owned(s);
    int rc = 0, i;

    if (!v)
        return WS_ERR_NOMEM;
    v->store = s;
    v->first = -1;
    /* Shards this process does not serve (a group's instance) are not
     * read: their txn stays NULL and every read skips them. */
    for (i = 0; i < s->nshards; i++) {
        v->txn[i] = NULL;
        if (!(owned >> i & 1))
            continue;
        if ((rc = shard_read(&s->sh[i], &v->txn[i])) != 0)
            break;
        if (v->first < 0)
            v->first = i;
    }
    if (rc != 0) {
        view_release(v, i);
        free(v);
        return map_err(rc);
    }
    *out = v;
    return WS_OK;
}

void ws_view_end(ws_view *v)
{
    if (!v)
        return;
    view_release(v, v->store->nshards);
    free(v);
}

int ws_view_shards(const ws_view *v)
{
    return v->store->nshards;
}

uint64_t ws_view_owned(const ws_view *v)
{
    uint64_t mask = 0;
    int k;

    for (k = 0; k < v->store->nshards && k < 64; k++)
        if (v->txn[k])
            mask |= (uint64_t)1 << k;
    return mask;
}

int ws_view_wallet(ws_view *v, const char *id, size_t n, ws_wallet *w)
{
    int k = ws_store_shard_of(v->store, id, n);
    MDB_val data;
    int rc;

    if (!v->txn[k])
        return WS_ERR_NOT_OWNED;
    rc = get(v->txn[k], v->store->sh[k].dbi[DB_WALLETS], id, n, &data);
    if (rc != 0)
        return map_err(rc);
    return wallet_decode(&data, w);
}

int ws_view_product(ws_view *v, const char *id, size_t n)
{
    MDB_val data;
    int i, rc = MDB_NOTFOUND;

    for (i = 0; i < v->store->nshards && rc == MDB_NOTFOUND; i++)
        if (v->txn[i])
            rc = get(v->txn[i], v->store->sh[i].dbi[DB_PRODUCTS], id, n,
                     &data);
    return map_err(rc);
}

/* ------------------------------------------------------ merged top lists */

int ws_top_set_add(const ws_top *t, void *set)
{
    ws_top_set *a = set;
    unsigned i, j;

    for (i = 0; i < a->n; i++)
        if (memcmp(a->t[i].currency, t->currency, 3) == 0)
            break;
    if (i == a->n) {
        if (a->n == sizeof a->t / sizeof a->t[0]) {
            a->full = 1;
            return 1;
        }
        a->n++;
        /* Kept in ascending currency order. */
        while (i > 0 && memcmp(a->t[i - 1].currency, t->currency, 3) > 0) {
            a->t[i] = a->t[i - 1];
            i--;
        }
        memcpy(a->t[i].currency, t->currency, 3);
        a->t[i].n = 0;
    }
    for (j = 0; j < t->n; j++)
        ws_top_insert(&a->t[i], &t->e[j]);
    return 0;
}

/* Calls fn for each currency's top credits of the product, in one
 * transaction of either kind. */
int tops_in(MDB_txn *txn, MDB_dbi dbi, const char *product, size_t n,
            int (*fn)(const ws_top *t, void *arg), void *arg)
{
    MDB_cursor *cur;
    MDB_val key, data;
    char prefix[WS_MAX_ID + 1];
    ws_top top;
    int rc, e = WS_OK;

    memcpy(prefix, product, n);
    prefix[n] = '\0';
    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return map_err(rc);
    key = val(prefix, n + 1);
    rc = mdb_cursor_get(cur, &key, &data, MDB_SET_RANGE);
    while (rc == 0) {
        if (key.mv_size != n + 4 || memcmp(key.mv_data, prefix, n + 1) != 0)
            break;
        e = top_decode(&data, (const char *)key.mv_data + n + 1, &top);
        if (e != WS_OK || fn(&top, arg) != 0)
            break;
        rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (e == WS_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = map_err(rc);
    return e;
}

/* The merged lists of txn[i] of every shard, then fn for each. */
int tops_merged(ws_store *s, MDB_txn *const *txn, const char *product,
                size_t n, int (*fn)(const ws_top *t, void *arg),
                void *arg)
{
    ws_top_set *a = calloc(1, sizeof *a);
    unsigned i;
    int k, e = WS_OK;

    if (!a)
        return WS_ERR_NOMEM;
    for (k = 0; k < s->nshards && e == WS_OK; k++)
        if (txn[k])
            e = tops_in(txn[k], s->sh[k].dbi[DB_TOP], product, n,
                        ws_top_set_add, a);
    if (e == WS_OK && a->full)
        e = WS_ERR_CORRUPT;
    for (i = 0; i < a->n && e == WS_OK; i++)
        if (fn(&a->t[i], arg) != 0)
            break;
    free(a);
    return e;
}

int ws_view_tops(ws_view *v, const char *product, size_t n,
                 int (*fn)(const ws_top *t, void *arg), void *arg)
{
    return tops_merged(v->store, v->txn, product, n, fn, arg);
}

/* -------------------------------------------------- counters and offsets */

/* One stored counter of one shard; 0 when absent or not 8 bytes. */
static int read_counter(ws_view *v, int k, const char *prefix,
                        const char *name, size_t nn, int64_t *out)
{
    char key[COUNTER_KEY_MAX];
    MDB_val data;
    size_t kn = counter_key(prefix, name, nn, key);
    int rc;

    *out = 0;
    if (kn == 0)
        return WS_ERR_USAGE;
    rc = get(v->txn[k], v->store->sh[k].dbi[DB_COUNTERS], key, kn, &data);
    if (rc == 0 && data.mv_size != 8)
        return WS_ERR_CORRUPT;
    if (rc == 0)
        *out = (int64_t)get_u64(data.mv_data);
    return rc == MDB_NOTFOUND ? WS_OK : map_err(rc);
}

/* A counter summed over the shards. */
static int sum_counter(ws_view *v, const char *prefix, const char *name,
                       size_t nn, int64_t *out)
{
    int64_t one;
    int k, e = WS_OK;

    *out = 0;
    for (k = 0; k < v->store->nshards && e == WS_OK; k++)
        if (v->txn[k] &&
            (e = read_counter(v, k, prefix, name, nn, &one)) == WS_OK)
            *out += one;
    return e;
}

int ws_view_counts(ws_view *v, ws_counts *out)
{
    int i, e = WS_OK;

    memset(out, 0, sizeof *out);
    for (i = 0; i < WS_OUTCOME_COUNT && e == WS_OK; i++) {
        const char *name = ws_outcome_name((enum ws_outcome)i);

        e = sum_counter(v, "outcome", name, strlen(name), &out->outcome[i]);
    }
    for (i = 1; i < WS_R_COUNT && e == WS_OK; i++) {
        const char *name = ws_reason_name((enum ws_reason)i);

        e = sum_counter(v, "reason", name, strlen(name), &out->reason[i]);
    }
    return e;
}

int ws_view_lost(ws_view *v, const char *source, size_t n, int64_t *total)
{
    return sum_counter(v, "lost", source, n, total);
}

int ws_view_shard_offset(ws_view *v, int shard, const char *source, size_t n,
                         int64_t *next)
{
    MDB_val data;
    int rc;

    if (shard < 0 || shard >= v->store->nshards || !v->txn[shard])
        return WS_ERR_NOT_OWNED;
    rc = get(v->txn[shard], v->store->sh[shard].dbi[DB_OFFSETS], source, n,
             &data);
    if (rc != 0)
        return map_err(rc);
    if (data.mv_size != 8)
        return WS_ERR_CORRUPT;
    *next = (int64_t)get_u64(data.mv_data);
    return WS_OK;
}

int ws_view_offset(ws_view *v, const char *source, size_t n, int64_t *next)
{
    int64_t one;
    int k, e, found = 0;

    /* Every shard holds what was routed to it below its own offset: the
     * source is read again from the smallest. A shard with no offset
     * holds nothing of it yet. In a group's instance (its shards
     * journaled) a partition is one shard's alone: the others have none. */
    for (k = 0; k < v->store->nshards; k++) {
        if (!v->txn[k])
            continue;
        e = ws_view_shard_offset(v, k, source, n, &one);
        if (e == WS_ERR_NOT_FOUND && v->store->journal)
            continue;
        if (e != WS_OK)
            return e;
        if (!found++ || one < *next)
            *next = one;
    }
    return found ? WS_OK : WS_ERR_NOT_FOUND;
}

/* ----------------------------------------------------------- state sizes */

static int each_entry(ws_view *v, int db,
                      int (*fn)(const MDB_val *key, const MDB_val *data,
                                void *arg),
                      void *arg);

/* Keys of a table counted once however many shards hold them. */
struct distinct {
    uint64_t n;
    unsigned char last[WS_MAX_ID + 4];
    size_t last_n;
};

static int count_distinct(const MDB_val *key, const MDB_val *data, void *arg)
{
    struct distinct *d = arg;

    (void)data;
    if (key->mv_size == d->last_n &&
        memcmp(key->mv_data, d->last, d->last_n) == 0)
        return WS_OK;
    d->n++;
    d->last_n = key->mv_size < sizeof d->last ? key->mv_size : 0;
    memcpy(d->last, key->mv_data, d->last_n);
    return WS_OK;
}

/* Ids shard `from` committed for shard `to` that `to` does not hold yet
 * (its outbox above `to`'s inbox): remembered, counted once. */
static int undelivered(ws_view *v, int from, int to, uint64_t *n)
{
    struct shard *fs = &v->store->sh[from];
    unsigned char k[10];
    MDB_cursor *cur;
    MDB_val key, data;
    uint64_t have;
    int rc, e;

    if ((e = read_inbox(v->txn[to], &v->store->sh[to], from, &have)))
        return e;
    outbox_key(to, have + 1, k);
    if ((rc = mdb_cursor_open(v->txn[from], fs->dbi[DB_OUTBOX], &cur)) != 0)
        return map_err(rc);
    key = val(k, 10);
    rc = mdb_cursor_get(cur, &key, &data, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size == 10 && memcmp(key.mv_data, k, 2) == 0) {
        (*n)++;
        rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? WS_OK : map_err(rc);
}

int ws_view_sizes(ws_view *v, ws_state_sizes *out)
{
    /* The tables an operator sizes the state by, in ws_state_sizes order.
     * Wallets, their debit days and ids live in one shard each; products
     * and top-credit lists may be in several and are counted once; an id
     * committed by another shard and not yet delivered counts too. */
    static const int dbs[WS_STATE_TABLES] = {
        DB_WALLETS, DB_PRODUCTS, DB_TOP, DB_DEBIT_DAYS, DB_SEEN,
        DB_HISTORY};
    int n = v->store->nshards, i, k, t, rc, e;
    MDB_stat st;

    memset(out, 0, sizeof *out);
    for (i = 0; i < WS_STATE_TABLES; i++) {
        if (n > 1 && (dbs[i] == DB_PRODUCTS || dbs[i] == DB_TOP)) {
            struct distinct d;

            memset(&d, 0, sizeof d);
            if ((e = each_entry(v, dbs[i], count_distinct, &d)) != WS_OK)
                return e;
            out->entries[i] = d.n;
            continue;
        }
        for (k = 0; k < n; k++) {
            if (!v->txn[k] || v->store->sh[k].dbi[dbs[i]] == 0)
                continue;   /* not served; no statements table */
            rc = mdb_stat(v->txn[k], v->store->sh[k].dbi[dbs[i]], &st);
            if (rc != 0)
                return map_err(rc);
            out->entries[i] += (uint64_t)st.ms_entries;
        }
    }
    for (k = 0; k < n; k++)
        for (t = 0; t < n; t++)
            if (t != k && v->txn[k] && v->txn[t] &&
                (e = undelivered(v, k, t, &out->entries[4])))
                return e;
    return WS_OK;
}

const char *const ws_state_table_names[WS_STATE_TABLES] = {
    "wallets", "products", "top_credit_lists", "debit_days",
    "transaction_ids", "statement_lines"};

/* ---------------------------------------------------------- whole tables */

/* Calls fn(key, value, arg) for every entry of one table over all the
 * shards of the view, in key order (a merge of one cursor per shard);
 * a key held by several shards is passed once per shard, in shard
 * order. Stops at fn's first non-zero value and returns it. */
static int each_entry(ws_view *v, int db,
                      int (*fn)(const MDB_val *key, const MDB_val *data,
                                void *arg),
                      void *arg)
{
    MDB_cursor *cur[WS_SHARDS_MAX];
    MDB_val key[WS_SHARDS_MAX], data[WS_SHARDS_MAX];
    int live[WS_SHARDS_MAX];
    int n = v->store->nshards, k, rc = 0, e = WS_OK;

    for (k = 0; k < n; k++) {
        cur[k] = NULL;
        live[k] = 0;
    }
    for (k = 0; k < n && rc == 0; k++) {
        if (!v->txn[k])
            continue;
        rc = mdb_cursor_open(v->txn[k], v->store->sh[k].dbi[db], &cur[k]);
        if (rc == 0) {
            rc = mdb_cursor_get(cur[k], &key[k], &data[k], MDB_FIRST);
            live[k] = rc == 0;
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
    }
    while (rc == 0 && e == WS_OK) {
        int best = -1;

        for (k = 0; k < n; k++)
            if (live[k] && (best < 0 || mdb_cmp(v->txn[k],
                                                v->store->sh[k].dbi[db],
                                                &key[k], &key[best]) < 0))
                best = k;
        if (best < 0)
            break;
        e = fn(&key[best], &data[best], arg);
        if (e == WS_OK) {
            rc = mdb_cursor_get(cur[best], &key[best], &data[best], MDB_NEXT);
            live[best] = rc == 0;
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
    }
    for (k = 0; k < n; k++)
        if (cur[k])
            mdb_cursor_close(cur[k]);
    if (e == WS_OK && rc != 0)
        e = map_err(rc);
    return e;
}

struct each_wallet {
    int (*fn)(const char *id, size_t n, const ws_wallet *w, void *arg);
    void *arg;
};

static int each_wallet_entry(const MDB_val *key, const MDB_val *data,
                             void *arg)
{
    struct each_wallet *ew = arg;
    ws_wallet w;
    int e = wallet_decode(data, &w);

    if (e != WS_OK || key->mv_size == 0 || key->mv_size > WS_MAX_ID)
        return e != WS_OK ? e : WS_ERR_CORRUPT;
    return ew->fn(key->mv_data, key->mv_size, &w, ew->arg);
}

int ws_view_each_wallet(ws_view *v,
                        int (*fn)(const char *id, size_t n,
                                  const ws_wallet *w, void *arg),
                        void *arg)
{
    struct each_wallet ew;

    ew.fn = fn;
    ew.arg = arg;
    return each_entry(v, DB_WALLETS, each_wallet_entry, &ew);
}

struct each_product {
    int (*fn)(const char *id, size_t n, void *arg);
    void *arg;
    char last[WS_MAX_ID];
    size_t last_n;
};

static int each_product_entry(const MDB_val *key, const MDB_val *data,
                              void *arg)
{
    struct each_product *ep = arg;

    (void)data;
    if (key->mv_size == 0 || key->mv_size > WS_MAX_ID)
        return WS_ERR_CORRUPT;
    if (key->mv_size == ep->last_n &&
        memcmp(key->mv_data, ep->last, ep->last_n) == 0)
        return WS_OK;       /* seen in another shard too */
    memcpy(ep->last, key->mv_data, key->mv_size);
    ep->last_n = key->mv_size;
    return ep->fn(key->mv_data, key->mv_size, ep->arg);
}

int ws_view_each_product(ws_view *v,
                         int (*fn)(const char *id, size_t n, void *arg),
                         void *arg)
{
    struct each_product ep;

    ep.fn = fn;
    ep.arg = arg;
    ep.last_n = 0;
    return each_entry(v, DB_PRODUCTS, each_product_entry, &ep);
}

int ws_source_split(const char *source, size_t n, size_t *topic_len,
                    int32_t *partition)
{
    size_t k = n;
    int64_t p = 0;

    while (k > 0 && source[k - 1] != '/')
        k--;
    if (k < 2 || k == n || n - k > 10)
        return -1;
    for (size_t i = k; i < n; i++) {
        if (source[i] < '0' || source[i] > '9')
            return -1;
        p = p * 10 + (source[i] - '0');
    }
    if (p > INT32_MAX)
        return -1;
    *topic_len = k - 1;
    *partition = (int32_t)p;
    return 0;
}

/* Calls fn for each source stored by `shard`, at the offset `one`
 * (1: that shard's own) or else the smallest over the shards. */
static int each_offset_of(ws_view *v, int shard, int one,
                          int (*fn)(const char *source, size_t n,
                                    int64_t next, void *arg),
                          void *arg)
{
    MDB_cursor *cur;
    MDB_val key, data;
    int rc, e = WS_OK;
    int64_t next;

    rc = mdb_cursor_open(v->txn[shard], v->store->sh[shard].dbi[DB_OFFSETS],
                         &cur);
    if (rc != 0)
        return map_err(rc);
    rc = mdb_cursor_get(cur, &key, &data, MDB_FIRST);
    while (rc == 0 && e == WS_OK) {
        if (one)
            e = data.mv_size == 8 ? WS_OK : WS_ERR_CORRUPT;
        else
            e = ws_view_offset(v, key.mv_data, key.mv_size, &next);
        if (one && e == WS_OK)
            next = (int64_t)get_u64(data.mv_data);
        if (e == WS_ERR_NOT_FOUND)
            e = WS_OK;      /* not in every shard yet: not committed */
        else if (e == WS_OK)
            e = fn(key.mv_data, key.mv_size, next, arg);
        if (e == WS_OK)
            rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (e == WS_OK && rc != MDB_NOTFOUND)
        e = map_err(rc);
    return e;
}

int ws_view_each_offset(ws_view *v,
                        int (*fn)(const char *source, size_t n, int64_t next,
                                  void *arg),
                        void *arg)
{
    /* The sources are those of the first shard (every shard stores every
     * source at its first commit); each at its smallest offset over the
     * shards. */
    if (v->first < 0)
        return WS_OK;
    return each_offset_of(v, v->first, 0, fn, arg);
}

int ws_view_each_shard_offset(ws_view *v, int shard,
                              int (*fn)(const char *source, size_t n,
                                        int64_t next, void *arg),
                              void *arg)
{
    if (shard < 0 || shard >= v->store->nshards || !v->txn[shard])
        return WS_ERR_NOT_OWNED;
    return each_offset_of(v, shard, 1, fn, arg);
}

/* ----------------------------------------------------------- statements */

int ws_view_history_kept(ws_view *v, int *days)
{
    struct shard *sh = &v->store->sh[v->first < 0 ? 0 : v->first];
    MDB_val data;
    char text[16];
    int rc;

    *days = WS_HISTORY_OFF;
    if (v->first < 0 || sh->dbi[DB_HISTORY] == 0)
        return WS_OK;       /* none served; written before statements */
    rc = get(v->txn[v->first], sh->dbi[DB_META], "history", 7, &data);
    if (rc == MDB_NOTFOUND) {
        *days = WS_HISTORY_ALL;     /* resharded: the setting comes back
                                       with the next writer */
        return WS_OK;
    }
    if (rc != 0)
        return map_err(rc);
    if (data.mv_size == 0 || data.mv_size >= sizeof text)
        return WS_ERR_CORRUPT;
    memcpy(text, data.mv_data, data.mv_size);
    text[data.mv_size] = '\0';
    if (strcmp(text, "off") == 0)
        *days = WS_HISTORY_OFF;
    else if (strcmp(text, "all") == 0)
        *days = WS_HISTORY_ALL;
    else if ((*days = atoi(text)) <= 0)
        return WS_ERR_CORRUPT;
    return WS_OK;
}

int history_walk(MDB_txn *txn, MDB_dbi dbi, const char *wallet, size_t n,
                 uint64_t from,
                 int (*fn)(const ws_history_entry *h, void *arg), void *arg)
{
    uint32_t want = history_tag(wallet, n), tag;
    uint64_t pos = from;
    ws_history_entry h;
    int rc, e = WS_OK, first = 1;

    /* Each line names its wallet's previous one: a walk back from the
     * newest, one lookup a line, until a line no longer kept. */
    while (pos != 0 && e == WS_OK) {
        unsigned char key[8];
        MDB_val data;

        history_key(pos, key);
        rc = get(txn, dbi, key, 8, &data);
        if (rc == MDB_NOTFOUND)
            break;          /* older lines were not kept */
        if (rc != 0)
            return map_err(rc);
        if ((e = history_decode(&data, &tag, &h)) != WS_OK)
            return e;
        if (tag != want)
            return first ? WS_ERR_NOT_FOUND : WS_ERR_CORRUPT;
        h.pos = pos;
        first = 0;
        e = fn(&h, arg);
        if (h.prev >= pos && h.prev != 0)
            return WS_ERR_CORRUPT;  /* links only go back */
        pos = h.prev;
    }
    return e;
}

int ws_view_history(ws_view *v, const char *wallet, size_t n, uint64_t from,
                    int (*fn)(const ws_history_entry *h, void *arg),
                    void *arg)
{
    int k = ws_store_shard_of(v->store, wallet, n);
    struct shard *sh = &v->store->sh[k];

    if (!v->txn[k])
        return WS_ERR_NOT_OWNED;
    if (sh->dbi[DB_HISTORY] == 0)
        return WS_OK;       /* written before statements */
    return history_walk(v->txn[k], sh->dbi[DB_HISTORY], wallet, n, from, fn,
                        arg);
}

