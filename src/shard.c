/*
 * shard.c - one shard of the state: its LMDB environment in
 * state/<k>/, its named tables (store_int.h), the checks made when it
 * is opened (data format, the shard's place, a truncated file), its read
 * transactions, and the shard an id belongs to.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "store_int.h"

/* Virtual address space reserved for the map; the file only grows with
 * the data. */
#define DEFAULT_MAP_MAX ((uint64_t)64 << 30)
#define MAX_READERS 1024

const char *const db_names[DB_COUNT] = {
    "meta", "offsets", "wallets", "debit_days", "top", "products", "seen",
    "counters", "outbox", "inbox", "history",
};

/* What an operator should do about an LMDB error meaning the state files
 * are damaged or not LMDB's; "" for other errors. */
static const char *damage_hint(int rc)
{
    if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
        rc == MDB_VERSION_MISMATCH)
        return " (the state is damaged or not walletstream's: restore the "
               "data directory from a backup or rebuild it with replay; "
               "nothing was written)";
    return "";
}

/* Refuses a data.mdb shorter than the pages its newest meta page names
 * (a truncated copy or restore): LMDB maps the file and would die of
 * SIGBUS on the first read past its end (issue 8, "Bad state"). */
static int check_file_size(struct shard *sh, const char *path, char *err)
{
    char file[4200];
    MDB_envinfo info;
    MDB_stat st;
    struct stat sb;
    uint64_t need;

    snprintf(file, sizeof file, "%s/data.mdb", path);
    if (mdb_env_info(sh->env, &info) != 0 || mdb_env_stat(sh->env, &st) != 0 ||
        stat(file, &sb) != 0)
        return WS_OK;    /* nothing to compare: LMDB reports its own errors */
    need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)sb.st_size >= need)
        return WS_OK;
    snprintf(err, WS_STORE_ERR_MAX,
             "the state file %s is truncated: it holds %llu bytes, its "
             "pages need %llu; restore the data directory from a backup or "
             "rebuild it (replay); nothing was written", file,
             (unsigned long long)sb.st_size, (unsigned long long)need);
    return WS_ERR_STORE;
}

/* Opens the named databases and checks (or, on a new environment,
 * writes) the format and the shard's place recorded inside it; `format`
 * is the data format expected (the marker's; a writer records formats 2, 3
 * as WS_STORE_FORMAT), `place` ("index/count") is checked when not
 * NULL. */
static int open_dbs(struct shard *sh, int writer, const char *path,
                    int format, const char *place, char *err)
{
    MDB_txn *txn;
    MDB_val v;
    unsigned flags = writer ? MDB_CREATE : 0;
    char want[16], now[16];  /* the format expected, the one written */
    int rc, i, k;

    rc = mdb_txn_begin(sh->env, NULL, writer ? 0 : MDB_RDONLY, &txn);
    if (rc != 0)
        goto fail;
    for (i = 0; i < DB_COUNT; i++) {
        if (format == 1 && (i == DB_OUTBOX || i == DB_INBOX)) {
            sh->dbi[i] = 0;     /* format 1 had neither */
            continue;
        }
        rc = mdb_dbi_open(txn, db_names[i], flags, &sh->dbi[i]);
        if (rc == MDB_NOTFOUND && i == DB_HISTORY) {
            sh->dbi[i] = 0;     /* written before statements: none */
            continue;
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            if (rc == MDB_NOTFOUND) {
                snprintf(err, WS_STORE_ERR_MAX,
                         "the state in %s lacks its \"%s\" table: not "
                         "written by this walletstream", path, db_names[i]);
                return WS_ERR_FORMAT;
            }
            goto fail;
        }
    }
    snprintf(want, sizeof want, "%d", format);
    snprintf(now, sizeof now, "%d", WS_STORE_FORMAT);
    for (k = 0; k < 2; k++) {
        const char *name = k == 0 ? "format" : "shard";
        const char *expect = k == 0 ? want : place;

        if (!expect)
            continue;
        rc = get(txn, sh->dbi[DB_META], name, strlen(name), &v);
        /* An older directory whose upgrade stopped after this shard:
         * its own records are read the same either way. */
        if (k == 0 && rc == 0 && format < WS_STORE_FORMAT &&
            v.mv_size == strlen(now) && memcmp(v.mv_data, now, v.mv_size) == 0)
            continue;
        if (rc == MDB_NOTFOUND && writer) {
            MDB_val key = val(name, strlen(name));
            MDB_val data = val(expect, strlen(expect));

            rc = mdb_put(txn, sh->dbi[DB_META], &key, &data, 0);
        } else if (rc == 0 && (v.mv_size != strlen(expect) ||
                               memcmp(v.mv_data, expect, v.mv_size) != 0)) {
            mdb_txn_abort(txn);
            snprintf(err, WS_STORE_ERR_MAX,
                     k == 0 ? "the state in %s records another data format; "
                              "this walletstream reads format %s"
                            : "the state in %s belongs to another shard "
                              "than %s (moved by hand?); nothing was "
                              "written", path, expect);
            return WS_ERR_FORMAT;
        } else if (rc == MDB_NOTFOUND) {
            mdb_txn_abort(txn);
            snprintf(err, WS_STORE_ERR_MAX, "the state in %s records no %s",
                     path, k == 0 ? "data format" : "shard");
            return WS_ERR_FORMAT;
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            goto fail;
        }
        /* A writer upgrades formats 2 and 3 in place: nothing but the
         * format changes (records.c reads their records as they are). */
        if (k == 0 && writer && format < WS_STORE_FORMAT) {
            MDB_val key = val(name, strlen(name));
            MDB_val data = val(now, strlen(now));

            if ((rc = mdb_put(txn, sh->dbi[DB_META], &key, &data, 0)) != 0) {
                mdb_txn_abort(txn);
                goto fail;
            }
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        goto fail;
    return WS_OK;
fail:
    snprintf(err, WS_STORE_ERR_MAX, "cannot open the state in %s: %s%s",
             path, mdb_strerror(rc), damage_hint(rc));
    return WS_ERR_STORE;
}

/* Opens the LMDB environment in `path` as shard `index` of `count` of a
 * data directory of `format` (place not checked when count is 0). */
int shard_open(ws_store *s, struct shard *sh, const char *path,
               int index, int count, int format, uint64_t map_max,
               char *err)
{
    int writer = s->mode == WS_STORE_WRITE, rc, e;
    char place[32];

    sh->index = index;
    if (pthread_rwlock_init(&sh->resize, NULL) != 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot create a lock");
        return WS_ERR_NOMEM;
    }
    sh->resize_init = 1;
    if (writer && mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot create %s: %s", path,
                 strerror(errno));
        return WS_ERR_IO;
    }
    rc = mdb_env_create(&sh->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(sh->env, DB_COUNT);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(sh->env, MAX_READERS);
    if (rc == 0 && writer)
        rc = mdb_env_set_mapsize(sh->env, map_max ? map_max : DEFAULT_MAP_MAX);
    if (rc == 0)
        rc = mdb_env_open(sh->env, path,
                          MDB_NOTLS | (writer ? MDB_NOMETASYNC : MDB_RDONLY),
                          0644);
    if (rc != 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot open the state in %s: %s%s",
                 path, mdb_strerror(rc), damage_hint(rc));
        return WS_ERR_STORE;
    }
    snprintf(place, sizeof place, "%d/%d", index, count);
    e = check_file_size(sh, path, err);
    if (e == WS_OK)
        e = open_dbs(sh, writer, path, format, count ? place : NULL, err);
    if (e != WS_OK)
        return e;
    if (writer && ws_wset_new(&sh->batch.ws) != WS_OK) {
        snprintf(err, WS_STORE_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    sh->batch.store = s;
    sh->batch.sh = sh;
    return WS_OK;
}

/* Closes the shard (syncing a writer's last commit); its batch must not
 * be open. */
void shard_close(struct shard *sh, int writer)
{
    if (sh->env && writer)
        (void)mdb_env_sync(sh->env, 1);     /* the last commit's meta page */
    ws_wset_free(sh->batch.ws);
    sh->batch.ws = NULL;
    free(sh->batch.jbuf);
    sh->batch.jbuf = NULL;
    sh->batch.jlen = sh->batch.jcap = 0;
    if (sh->env)
        mdb_env_close(sh->env);
    sh->env = NULL;
    if (sh->resize_init)
        pthread_rwlock_destroy(&sh->resize);
    sh->resize_init = 0;
}

/* A read transaction on one shard, holding its resize lock shared. */
int shard_read(struct shard *sh, MDB_txn **txn)
{
    int rc;

    for (;;) {
        pthread_rwlock_rdlock(&sh->resize);
        rc = mdb_txn_begin(sh->env, NULL, MDB_RDONLY, txn);
        if (rc != MDB_MAP_RESIZED)
            break;
        /* The writer grew the map: adopt its size, with no view open. */
        pthread_rwlock_unlock(&sh->resize);
        pthread_rwlock_wrlock(&sh->resize);
        mdb_env_set_mapsize(sh->env, 0);
        pthread_rwlock_unlock(&sh->resize);
    }
    if (rc != 0)
        pthread_rwlock_unlock(&sh->resize);
    return rc;
}

int ws_store_shards(const ws_store *s)
{
    return s->nshards;
}

int ws_store_shard_of(const ws_store *s, const char *id, size_t n)
{
    return ws_shard_index(id, n, s->nshards);
}

int ws_shard_index(const char *id, size_t n, int shards)
{
    return shards <= 1 ? 0 : (int)(XXH3_64bits(id, n) % (uint64_t)shards);
}

uint32_t history_tag(const char *wallet, size_t n)
{
    return (uint32_t)(XXH3_64bits(wallet, n) >> 32);
}
