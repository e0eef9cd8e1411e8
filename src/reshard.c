/*
 * reshard.c - ws_store_reshard: rewrites the state of a data directory
 * into another number of shards (and formats 1 to 3 into format 4). The new
 * state is written into state.new/ and made durable before it replaces
 * state/; interrupted, it leaves the old state intact or the new one
 * complete, and running it again finishes it (until then store.c
 * refuses to open the directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

/* Writes per transaction while re-sharding: well under the pages one
 * LMDB write transaction holds. */
#define RESHARD_TXN_PUTS 50000

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir/name and everything under it; 0 when it is gone. */
static int rm_tree(const char *dir, const char *name)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!path_exists(dir, name))
        return 0;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* One destination shard's open write transaction while re-sharding. */
struct dest {
    struct shard *sh;
    MDB_txn *txn;
    unsigned puts;
    uint64_t hist_next;     /* its statement log's next position */
};

static int dest_put_flags(struct dest *d, int db, const MDB_val *k,
                          const MDB_val *v, unsigned flags);

static int dest_put(struct dest *d, int db, const MDB_val *k,
                    const MDB_val *v)
{
    return dest_put_flags(d, db, k, v, 0);
}

static int dest_put_flags(struct dest *d, int db, const MDB_val *k,
                          const MDB_val *v, unsigned flags)
{
    MDB_val key = *k, data = *v;
    int rc;

    if (d->puts >= RESHARD_TXN_PUTS) {
        if ((rc = mdb_txn_commit(d->txn)) != 0) {
            d->txn = NULL;
            return rc;
        }
        if ((rc = mdb_txn_begin(d->sh->env, NULL, 0, &d->txn)) != 0) {
            d->txn = NULL;
            return rc;
        }
        d->puts = 0;
    }
    d->puts++;
    return mdb_put(d->txn, d->sh->dbi[db], &key, &data, flags);
}

/* The positions of a wallet's lines, newest first. */
struct chain {
    uint64_t *pos;
    size_t n, cap;
};

static int chain_add(const ws_history_entry *h, void *arg)
{
    struct chain *c = arg;

    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint64_t *p = realloc(c->pos, cap * sizeof *p);

        if (!p)
            return WS_ERR_NOMEM;
        c->pos = p;
        c->cap = cap;
    }
    c->pos[c->n++] = h->pos;
    return WS_OK;
}

/* A wallet and its statement: its lines (walked back from its newest in
 * the source) appended oldest first to the destination's log, linked
 * anew; the wallet record names its newest line there. */
static int dest_wallet(struct shard *from, MDB_txn *rt, struct dest *d,
                       const MDB_val *k, const MDB_val *v)
{
    unsigned char rec[WALLET_MAX], line[HISTORY_MAX], key[8];
    uint32_t tag = history_tag(k->mv_data, k->mv_size), t;
    struct chain c = {NULL, 0, 0};
    uint64_t prev = 0;
    ws_history_entry h;
    ws_wallet w;
    MDB_val hk, hv, data;
    size_t i;
    int rc = 0, e;

    if (wallet_decode(v, &w) != WS_OK)
        return MDB_CORRUPTED;
    if (from->dbi[DB_HISTORY] && w.history_head &&
        (e = history_walk(rt, from->dbi[DB_HISTORY], k->mv_data, k->mv_size,
                          w.history_head, chain_add, &c)) != WS_OK)
        rc = e == WS_ERR_NOMEM ? ENOMEM : MDB_CORRUPTED;
    for (i = c.n; i > 0 && rc == 0; i--) {
        history_key(c.pos[i - 1], key);
        hk = val(key, 8);
        if ((rc = mdb_get(rt, from->dbi[DB_HISTORY], &hk, &hv)) != 0)
            break;
        if (history_decode(&hv, &t, &h) != WS_OK) {
            rc = MDB_CORRUPTED;
            break;
        }
        h.prev = prev;
        prev = d->hist_next++;
        history_key(prev, key);
        hk = val(key, 8);
        data = val(line, history_encode(&h, tag, line));
        rc = dest_put_flags(d, DB_HISTORY, &hk, &data, MDB_APPEND);
    }
    free(c.pos);
    if (rc != 0)
        return rc;
    w.history_head = prev;
    data = val(rec, wallet_encode(&w, rec));
    return dest_put(d, DB_WALLETS, k, &data);
}

/* Adds an int64 counter into the destination's value of the same key. */
static int dest_add(struct dest *d, const MDB_val *k, const MDB_val *v)
{
    MDB_val old, key = *k, data;
    unsigned char buf[8];
    uint64_t sum;
    int rc;

    if (v->mv_size != 8)
        return MDB_CORRUPTED;
    sum = get_u64(v->mv_data);
    rc = mdb_get(d->txn, d->sh->dbi[DB_COUNTERS], &key, &old);
    if (rc == 0 && old.mv_size == 8)
        sum += get_u64(old.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    put_u64(buf, sum);
    data = val(buf, 8);
    return dest_put(d, DB_COUNTERS, k, &data);
}

/* Merges a top list into the destination's list of the same key. */
static int dest_top(struct dest *d, const MDB_val *k, const MDB_val *v)
{
    MDB_val old, key = *k, data;
    unsigned char rec[TOP_MAX];
    ws_top a, b;
    unsigned i;
    int rc, e;

    if (k->mv_size < 4)
        return MDB_CORRUPTED;
    e = top_decode(v, (const char *)k->mv_data + k->mv_size - 3, &a);
    if (e != WS_OK)
        return MDB_CORRUPTED;
    rc = mdb_get(d->txn, d->sh->dbi[DB_TOP], &key, &old);
    if (rc == 0) {
        if (top_decode(&old, (const char *)k->mv_data + k->mv_size - 3,
                       &b) != WS_OK)
            return MDB_CORRUPTED;
        for (i = 0; i < b.n; i++)
            ws_top_insert(&a, &b.e[i]);
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    data = val(rec, top_encode(&a, rec));
    return dest_put(d, DB_TOP, k, &data);
}

/* The id a table's key is sharded by: wallet, product or transaction. */
static size_t shard_key_len(int db, const MDB_val *k)
{
    const char *p = k->mv_data;

    if (db == DB_DEBIT_DAYS)
        return k->mv_size >= 5 ? k->mv_size - 5 : k->mv_size;
    if (db == DB_TOP) {
        const char *nul = memchr(p, '\0', k->mv_size);

        return nul ? (size_t)(nul - p) : k->mv_size;
    }
    return k->mv_size;
}

/* Copies every entry of source shard `from` into the destination shards
 * by the rule of its table. */
static int reshard_copy(struct shard *from, MDB_txn *rt, struct dest *d,
                        int nd)
{
    static const int dbs[] = {DB_WALLETS, DB_DEBIT_DAYS, DB_TOP, DB_PRODUCTS,
                              DB_SEEN, DB_COUNTERS, DB_OUTBOX};
    size_t i;
    int rc = 0;

    for (i = 0; i < sizeof dbs / sizeof dbs[0] && rc == 0; i++) {
        int db = dbs[i];
        MDB_cursor *cur;
        MDB_val k, v;

        if (from->dbi[db] == 0 && db == DB_OUTBOX)
            continue;       /* format 1 */
        if ((rc = mdb_cursor_open(rt, from->dbi[db], &cur)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0) {
            if (db == DB_COUNTERS) {
                rc = dest_add(&d[0], &k, &v);
            } else if (db == DB_OUTBOX) {
                /* A claim committed by its record's shard but perhaps not
                 * yet delivered: it goes to the id's new shard. */
                MDB_val id, fp;

                if (outbox_split(&v, &id, &fp) != WS_OK) {
                    rc = MDB_CORRUPTED;
                    break;
                }
                rc = dest_put(&d[ws_shard_index(id.mv_data, id.mv_size, nd)],
                              DB_SEEN, &id, &fp);
            } else {
                struct dest *to = &d[ws_shard_index(
                    k.mv_data, shard_key_len(db, &k), nd)];

                rc = db == DB_TOP       ? dest_top(to, &k, &v)
                     : db == DB_WALLETS ? dest_wallet(from, rt, to, &k, &v)
                                        : dest_put(to, db, &k, &v);
            }
            if (rc == 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    return rc;
}

/* The offsets every source shard agrees on, copied to every destination;
 * shards that stopped at different offsets (a crash) are refused. */
static int reshard_offsets(ws_store *src, MDB_txn **rt, struct dest *d,
                           int nd, char *err)
{
    MDB_cursor *cur;
    MDB_val k, v, other;
    int rc, i, j;

    for (i = 0; i < src->nshards; i++) {
        if ((rc = mdb_cursor_open(rt[i], src->sh[i].dbi[DB_OFFSETS], &cur)))
            return map_err(rc);
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0) {
            for (j = 0; j < src->nshards; j++)
                if (mdb_get(rt[j], src->sh[j].dbi[DB_OFFSETS], &k, &other) ||
                    other.mv_size != v.mv_size ||
                    memcmp(other.mv_data, v.mv_data, v.mv_size) != 0) {
                    mdb_cursor_close(cur);
                    snprintf(err, WS_STORE_ERR_MAX,
                             "the shards stopped at different offsets of "
                             "%.*s (the last run did not stop cleanly): "
                             "start `walletstream run` on it with its "
                             "current workers, let it catch up, stop it "
                             "with Ctrl-C or SIGTERM, then reshard; "
                             "nothing was changed",
                             (int)(k.mv_size < 300 ? k.mv_size : 300),
                             (const char *)k.mv_data);
                    return WS_ERR_FORMAT;
                }
            for (j = 0; j < nd && rc == 0; j++)
                rc = dest_put(&d[j], DB_OFFSETS, &k, &v);
            if (rc == 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND)
            return map_err(rc);
    }
    return WS_OK;
}

/* Each destination's next log position, and the statements setting of
 * the source (its writer's), as meta. */
static int reshard_history_meta(struct shard *from, MDB_txn *rt,
                                struct dest *d, int nd)
{
    MDB_val k = val("history", 7), setting, nk = val("history_next", 12);
    unsigned char buf[8];
    MDB_val next = val(buf, 8);
    int rc = mdb_get(rt, from->dbi[DB_META], &k, &setting), j;
    int have = rc == 0;

    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    for (j = 0, rc = 0; j < nd && rc == 0; j++) {
        if (have)
            rc = dest_put(&d[j], DB_META, &k, &setting);
        put_u64(buf, d[j].hist_next);
        if (rc == 0)
            rc = dest_put(&d[j], DB_META, &nk, &next);
    }
    return rc;
}

/* Finishes a reshard whose new state is complete (state.old exists). */
static int reshard_finish(const char *dir, char *err)
{
    char a[4096], b[4096];

    if (!path_exists(dir, STATE_DIR) && path_exists(dir, STATE_NEW)) {
        snprintf(a, sizeof a, "%s/%s", dir, STATE_NEW);
        snprintf(b, sizeof b, "%s/%s", dir, STATE_DIR);
        if (rename(a, b) != 0)
            goto fail;
    }
    if (path_exists(dir, FORMAT_NEW)) {
        snprintf(a, sizeof a, "%s/%s", dir, FORMAT_NEW);
        snprintf(b, sizeof b, "%s/%s", dir, FORMAT_FILE);
        if (rename(a, b) != 0)
            goto fail;
    }
    if (sync_dir(dir) != 0 || rm_tree(dir, STATE_OLD) != 0)
        goto fail;
    return WS_OK;
fail:
    snprintf(err, WS_STORE_ERR_MAX, "cannot finish the reshard in %s: %s",
             dir, strerror(errno));
    return WS_ERR_IO;
}

int ws_store_reshard(const char *dir, int shards, int *from, int *format,
                     char *err)
{
    ws_store *src = NULL, *dst = NULL;
    MDB_txn *rt[WS_SHARDS_MAX];
    struct dest d[WS_SHARDS_MAX];
    char path[4096], buf[256];
    int lock_fd = -1, e, rc = 0, i, nread = 0;

    err[0] = '\0';
    *from = 0;
    *format = 0;
    memset(d, 0, sizeof d);
    if (shards < 1 || shards > WS_SHARDS_MAX) {
        snprintf(err, WS_STORE_ERR_MAX, "shards must be 1 to %d",
                 WS_SHARDS_MAX);
        return WS_ERR_USAGE;
    }
    if ((e = take_lock(dir, &lock_fd, err)) != WS_OK)
        return e;
    if (path_exists(dir, STATE_OLD)) {
        *format = -1;   /* finished an interrupted one */
        e = reshard_finish(dir, err);
        goto out;
    }
    if (rm_tree(dir, STATE_NEW) != 0 || rm_tree(dir, FORMAT_NEW) != 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot remove an unfinished "
                 "reshard's files in %s: %s", dir, strerror(errno));
        e = WS_ERR_IO;
        goto out;
    }
    e = read_format(dir, format, from, err);
    if (e == WS_ERR_NOT_FOUND) {
        snprintf(err, WS_STORE_ERR_MAX, "no data directory at %s", dir);
        goto out;
    }
    if (e != WS_OK)
        goto out;
    if (*format != 1 && (*format < WS_STORE_FORMAT_OLDEST ||
                         *format > WS_STORE_FORMAT)) {
        snprintf(err, WS_STORE_ERR_MAX, "%s holds data format %d, which "
                 "this walletstream cannot read", dir, *format);
        e = WS_ERR_FORMAT;
        goto out;
    }
    if (*format >= WS_STORE_FORMAT_OLDEST && *from == shards) {
        *format = 0;    /* nothing to do */
        e = WS_OK;
        goto out;
    }
    /* The source, read only: format 1 is one environment in state/. */
    e = WS_ERR_NOMEM;
    if (!(src = calloc(1, sizeof *src)) || !(dst = calloc(1, sizeof *dst)))
        goto out;
    src->mode = WS_STORE_READ;
    src->lock_fd = -1;
    src->nshards = *from;
    for (i = 0; i < src->nshards && e != WS_ERR_FORMAT; i++) {
        if (*format == 1)
            snprintf(path, sizeof path, "%s/%s", dir, STATE_DIR);
        else
            snprintf(path, sizeof path, "%s/%s/%d", dir, STATE_DIR, i);
        if ((e = shard_open(src, &src->sh[i], path, i,
                            *format == 1 ? 0 : src->nshards, *format, 0,
                            err)))
            goto out;
        if ((rc = mdb_txn_begin(src->sh[i].env, NULL, MDB_RDONLY, &rt[i])))
            goto lmdb;
        nread++;
    }
    dst->mode = WS_STORE_WRITE;
    dst->lock_fd = -1;
    dst->nshards = shards;
    snprintf(path, sizeof path, "%s/%s", dir, STATE_NEW);
    if (mkdir(path, 0755) != 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot create %s: %s", path,
                 strerror(errno));
        e = WS_ERR_IO;
        goto out;
    }
    for (i = 0; i < shards; i++) {
        snprintf(path, sizeof path, "%s/%s/%d", dir, STATE_NEW, i);
        if ((e = shard_open(dst, &dst->sh[i], path, i, shards,
                            WS_STORE_FORMAT, 0, err)))
            goto out;
        d[i].sh = &dst->sh[i];
        d[i].hist_next = 1;
        if ((rc = mdb_txn_begin(d[i].sh->env, NULL, 0, &d[i].txn)))
            goto lmdb;
    }
    if ((e = reshard_offsets(src, rt, d, shards, err)) != WS_OK)
        goto out;
    for (i = 0; i < src->nshards && rc == 0; i++)
        rc = reshard_copy(&src->sh[i], rt[i], d, shards);
    if (rc == 0)
        rc = reshard_history_meta(&src->sh[0], rt[0], d, shards);
    for (i = 0; i < shards && rc == 0; i++) {
        rc = mdb_txn_commit(d[i].txn);
        d[i].txn = NULL;
        if (rc == 0)
            rc = mdb_env_sync(d[i].sh->env, 1);
    }
    if (rc)
        goto lmdb;
    /* Complete and durable: the new state replaces the old. */
    snprintf(path, sizeof path, "%s/%s", dir, FORMAT_NEW);
    if (write_marker_file(path, shards) != 0 || sync_dir(dir) != 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot write %s: %s", path,
                 strerror(errno));
        e = WS_ERR_IO;
        goto out;
    }
    snprintf(path, sizeof path, "%s/%s", dir, STATE_DIR);
    snprintf(buf, sizeof buf, "%s/%s", dir, STATE_OLD);
    for (i = 0; i < nread; i++)
        mdb_txn_abort(rt[i]);
    nread = 0;
    ws_store_close(src);
    src = NULL;
    if (rename(path, buf) != 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot rename %s: %s", path,
                 strerror(errno));
        e = WS_ERR_IO;
        goto out;
    }
    e = reshard_finish(dir, err);
    goto out;
lmdb:
    snprintf(err, WS_STORE_ERR_MAX, "cannot reshard %s: %s", dir,
             mdb_strerror(rc));
    e = map_err(rc);
out:
    for (i = 0; i < WS_SHARDS_MAX; i++)
        if (dst && d[i].txn && i < dst->nshards)
            mdb_txn_abort(d[i].txn);
    for (i = 0; i < nread; i++)
        mdb_txn_abort(rt[i]);
    ws_store_close(src);
    ws_store_close(dst);
    if (lock_fd >= 0)
        close(lock_fd);
    return e;
}
