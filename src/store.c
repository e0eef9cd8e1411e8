/*
 * store.c - LMDB state store and the data directory around it.
 *
 * The layout of the data directory and of its tables is described in
 * store_int.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>
#include <xxhash.h>

#include "store_int.h"
#include "timeutil.h"
#include "wset.h"

/* ------------------------------------------------ the data directory */

/* 1 when dir holds no entries but a broker's: the address file
 * kafka.bootstrap (written by `walletstream broker` and `make run` before
 * any writer starts) and `make run`'s Kafka log directory kafka/; 0 when
 * it holds others, -1 on error. */
static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strncmp(e->d_name, "kafka.bootstrap", 15) != 0 &&
            strcmp(e->d_name, "kafka") != 0) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    return empty;
}

int ws_store_mkdirs(const char *path)
{
    char buf[4096];
    size_t i, n = strlen(path);

    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    return 0;
}

static int write_file_synced(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    size_t n = strlen(text);
    int ok;

    if (fd < 0)
        return -1;
    ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    return close(fd) == 0 && ok ? 0 : -1;
}

static int reshard_pending(const char *dir);

/* Reads the format marker of an existing data directory: *format and
 * *shards (1 for format 1, which had no shards line). Returns 0, or
 * WS_ERR_FORMAT with a sentence when it is not a marker of ours. */
static int read_format(const char *dir, int *format, int *shards, char *err)
{
    char path[4096], buf[256];
    const char *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/%s", dir, FORMAT_FILE);
    f = fopen(path, "r");
    if (!f)
        return WS_ERR_NOT_FOUND;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    *shards = 1;
    if (strncmp(buf, FORMAT_MAGIC, strlen(FORMAT_MAGIC)) != 0 ||
        sscanf(buf + strlen(FORMAT_MAGIC), "format %d", format) != 1) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s is not a walletstream format marker; refusing to "
                 "touch %s", path, dir);
        return WS_ERR_FORMAT;
    }
    if ((p = strstr(buf, "\nshards ")) != NULL &&
        (sscanf(p, "\nshards %d", shards) != 1 || *shards < 1 ||
         *shards > WS_SHARDS_MAX)) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s names %d shards; this walletstream handles 1 to %d",
                 path, *shards, WS_SHARDS_MAX);
        return WS_ERR_FORMAT;
    }
    return WS_OK;
}

/* Checks (and, for a writer on a new or empty directory, creates) the
 * format marker; *shards is the directory's shard count. `want` (0: any)
 * is the count the caller asks for: a new directory gets it (1 when 0),
 * an existing one with another count is refused with what to do.
 * Nothing is written unless the directory is new. */
static int check_format(const char *dir, enum ws_store_mode mode, int want,
                        int *shards, char *err)
{
    char path[4096], buf[256];
    struct stat st;
    int format = -1, empty, e;

    if (stat(dir, &st) != 0) {
        if (mode == WS_STORE_READ) {
            snprintf(err, WS_STORE_ERR_MAX,
                     "no data directory at %s (create it with "
                     "`walletstream replay` or `walletstream run`)", dir);
            return WS_ERR_IO;
        }
        if (ws_store_mkdirs(dir) != 0) {
            snprintf(err, WS_STORE_ERR_MAX, "cannot create %s: %s", dir,
                     strerror(errno));
            return WS_ERR_IO;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        snprintf(err, WS_STORE_ERR_MAX, "%s is not a directory", dir);
        return WS_ERR_FORMAT;
    }

    e = read_format(dir, &format, shards, err);
    if (e == WS_ERR_NOT_FOUND) {
        snprintf(path, sizeof path, "%s/%s", dir, FORMAT_FILE);
        empty = dir_is_empty(dir);
        if (empty < 0) {
            snprintf(err, WS_STORE_ERR_MAX, "cannot read %s: %s", dir,
                     strerror(errno));
            return WS_ERR_IO;
        }
        if (!empty) {
            snprintf(err, WS_STORE_ERR_MAX,
                     "%s is not a walletstream data directory (it is not "
                     "empty and has no %s); refusing to touch it",
                     dir, FORMAT_FILE);
            return WS_ERR_FORMAT;
        }
        if (mode == WS_STORE_READ) {
            snprintf(err, WS_STORE_ERR_MAX,
                     "%s is empty: no state to serve yet", dir);
            return WS_ERR_IO;
        }
        *shards = want > 0 ? want : want < 0 ? -want : 1;
        snprintf(buf, sizeof buf, "%sformat %d\nshards %d\n", FORMAT_MAGIC,
                 WS_STORE_FORMAT, *shards);
        if (write_file_synced(path, buf) != 0) {
            snprintf(err, WS_STORE_ERR_MAX, "cannot write %s: %s", path,
                     strerror(errno));
            return WS_ERR_IO;
        }
        return WS_OK;
    }
    if (e != WS_OK)
        return e;
    if (format == 1) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s was written by data format 1 (one state, no shards); "
                 "this walletstream (%s) reads format %d. Upgrade it in "
                 "place, keeping every figure, id and offset: stop the "
                 "process using it, then run `walletstream reshard "
                 "--data-dir %s` (the old state is kept until the new one "
                 "is complete). Nothing was touched", dir, WS_VERSION,
                 WS_STORE_FORMAT, dir);
        return WS_ERR_FORMAT;
    }
    if (format != WS_STORE_FORMAT) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s was written by data format %d; this walletstream "
                 "(%s) reads format %d only; the directory was left "
                 "untouched", dir, format, WS_VERSION, WS_STORE_FORMAT);
        return WS_ERR_FORMAT;
    }
    if (reshard_pending(dir)) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s holds an interrupted reshard; finish it with "
                 "`walletstream reshard --data-dir %s`; nothing was "
                 "touched", dir, dir);
        return WS_ERR_FORMAT;
    }
    if (want > 0 && want != *shards) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s holds %d shards and %d workers were asked for: run "
                 "with --workers %d (or without --workers), or stop it and "
                 "re-shard it with `walletstream reshard --data-dir %s "
                 "--workers %d`; nothing was touched", dir, *shards, want,
                 *shards, dir, want);
        return WS_ERR_FORMAT;
    }
    return WS_OK;
}

static int take_lock(const char *dir, int *fd_out, char *err)
{
    char path[4096], pid[32];
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, LOCK_FILE);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot open %s: %s", path,
                 strerror(errno));
        return WS_ERR_IO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t n = read(fd, pid, sizeof pid - 1);

        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, WS_STORE_ERR_MAX,
                 "data directory %s is in use by another walletstream "
                 "process%s%s; only one writer may use a data directory",
                 dir, pid[0] ? " (pid " : "", pid[0] ? pid : "");
        if (pid[0])
            strncat(err, ")", WS_STORE_ERR_MAX - strlen(err) - 1);
        close(fd);
        return WS_ERR_LOCKED;
    }
    *fd_out = fd;
    return WS_OK;
}

/* Writes our pid into the held lock file, for the message a second
 * writer gets; done only once the directory proved ours. */
static void note_pid(int fd)
{
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());

    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        return; /* only a diagnostic */
}

int ws_store_open(const char *dir, enum ws_store_mode mode, uint64_t map_max,
                  ws_store **out, char *err)
{
    return ws_store_open_shards(dir, mode, map_max, 0, out, err);
}

int ws_store_open_shards(const char *dir, enum ws_store_mode mode,
                         uint64_t map_max, int shards, ws_store **out,
                         char *err)
{
    char path[4096];
    ws_store *s;
    int e, i;

    *out = NULL;
    err[0] = '\0';
    if (strlen(dir) > 3000) {
        snprintf(err, WS_STORE_ERR_MAX, "data directory path is too long");
        return WS_ERR_USAGE;
    }
    if (shards < -WS_SHARDS_MAX || shards > WS_SHARDS_MAX) {
        snprintf(err, WS_STORE_ERR_MAX, "workers must be 1 to %d",
                 WS_SHARDS_MAX);
        return WS_ERR_USAGE;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, WS_STORE_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    s->mode = mode;
    s->lock_fd = -1;

    e = check_format(dir, mode, shards, &s->nshards, err);
    if (e != WS_OK)
        goto fail;
    if (mode == WS_STORE_WRITE) {
        e = take_lock(dir, &s->lock_fd, err);
        if (e != WS_OK)
            goto fail;
    }
    snprintf(path, sizeof path, "%s/%s", dir, STATE_DIR);
    if (mode == WS_STORE_WRITE && mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot create %s: %s", path,
                 strerror(errno));
        e = WS_ERR_IO;
        goto fail;
    }
    for (i = 0; i < s->nshards; i++) {
        snprintf(path, sizeof path, "%s/%s/%d", dir, STATE_DIR, i);
        e = shard_open(s, &s->sh[i], path, i, s->nshards, WS_STORE_FORMAT,
                       map_max, err);
        if (e != WS_OK)
            goto fail;
    }
    if (mode == WS_STORE_WRITE && (e = ws_store_recover(s, err)) != WS_OK)
        goto fail;
    if (s->lock_fd >= 0)
        note_pid(s->lock_fd);
    *out = s;
    return WS_OK;
fail:
    ws_store_close(s);
    return e;
}

void ws_store_close(ws_store *s)
{
    int i;

    if (!s)
        return;
    for (i = 0; i < WS_SHARDS_MAX; i++) {
        if (s->sh[i].batch_open)
            ws_batch_abort(&s->sh[i].batch);
        shard_close(&s->sh[i], s->mode == WS_STORE_WRITE);
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd);  /* releases the flock */
    free(s);
}

int ws_store_sync(ws_store *s)
{
    int i, e = WS_OK;

    if (s->mode != WS_STORE_WRITE)
        return WS_OK;
    for (i = 0; i < s->nshards; i++)
        if (mdb_env_sync(s->sh[i].env, 1) != 0)
            e = WS_ERR_IO;
    return e;
}

static void shard_usage(struct shard *sh, uint64_t *used, uint64_t *limit)
{
    MDB_envinfo info;
    MDB_stat st;

    if (mdb_env_info(sh->env, &info) == 0 && mdb_env_stat(sh->env, &st) == 0) {
        *used += (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
        *limit += (uint64_t)info.me_mapsize;
    }
}

void ws_store_usage(ws_store *s, uint64_t *used, uint64_t *limit)
{
    int i;

    *used = 0;
    *limit = 0;
    for (i = 0; i < s->nshards; i++)
        shard_usage(&s->sh[i], used, limit);
}

/* ------------------------------------- claims of other shards' records */

/* At open: every claim a shard applied for another shard's ids and
 * committed (its outbox) is delivered to that shard now, so that a crash
 * between the two commits loses no remembered id; the outboxes are then
 * emptied. */
int ws_store_recover(ws_store *s, char *err)
{
    int w, t, rc = 0, e = WS_OK;

    for (t = 0; t < s->nshards && rc == 0 && e == WS_OK; t++) {
        struct shard *ts = &s->sh[t];
        MDB_txn *tt = NULL;

        if ((rc = mdb_txn_begin(ts->env, NULL, 0, &tt)) != 0)
            break;
        for (w = 0; w < s->nshards && rc == 0 && e == WS_OK; w++) {
            struct shard *ws = &s->sh[w];
            MDB_txn *wt;
            MDB_cursor *cur;
            MDB_val key, data;
            unsigned char k[10], v[8];
            uint64_t have, last;

            if (w == t)
                continue;
            if ((e = read_inbox(tt, ts, w, &have)) != WS_OK)
                break;
            last = have;
            if ((rc = mdb_txn_begin(ws->env, NULL, MDB_RDONLY, &wt)) != 0)
                break;
            outbox_key(t, have + 1, k);
            key = val(k, 10);
            if ((rc = mdb_cursor_open(wt, ws->dbi[DB_OUTBOX], &cur)) == 0) {
                rc = mdb_cursor_get(cur, &key, &data, MDB_SET_RANGE);
                while (rc == 0 && key.mv_size == 10 &&
                       memcmp(key.mv_data, k, 2) == 0) {
                    MDB_val id, fp;

                    if ((e = outbox_split(&data, &id, &fp)) != WS_OK)
                        break;
                    if ((rc = mdb_put(tt, ts->dbi[DB_SEEN], &id, &fp, 0)))
                        break;
                    last = outbox_seq(key.mv_data);
                    rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT);
                }
                if (rc == MDB_NOTFOUND)
                    rc = 0;
                mdb_cursor_close(cur);
            }
            mdb_txn_abort(wt);
            if (rc == 0 && e == WS_OK && last != have) {
                inbox_key(w, k);
                put_u64(v, last);
                key = val(k, 2);
                data = val(v, 8);
                rc = mdb_put(tt, ts->dbi[DB_INBOX], &key, &data, 0);
            }
            s->next_seq[w][t] = last + 1;
        }
        if (rc == 0 && e == WS_OK)
            rc = mdb_txn_commit(tt);
        else
            mdb_txn_abort(tt);
    }
    /* Delivered everywhere: the outboxes are emptied. */
    for (w = 0; w < s->nshards && rc == 0 && e == WS_OK; w++) {
        MDB_txn *wt;

        if ((rc = mdb_txn_begin(s->sh[w].env, NULL, 0, &wt)) != 0)
            break;
        for (t = 0; t < s->nshards && rc == 0; t++)
            if (t != w)
                rc = outbox_drop(wt, &s->sh[w], t, UINT64_MAX);
        rc = rc == 0 ? mdb_txn_commit(wt) : (mdb_txn_abort(wt), rc);
    }
    if (rc != 0 || e != WS_OK) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "cannot deliver the shards' remembered ids to each other: "
                 "%s", rc ? mdb_strerror(rc) : ws_strerror(e));
        return rc ? map_err(rc) : e;
    }
    return WS_OK;
}

/* ---------------------------------------------------------- reshard */

#define STATE_NEW "state.new"
#define STATE_OLD "state.old"
#define FORMAT_NEW FORMAT_FILE ".new"
/* Writes per transaction while re-sharding: well under the pages one
 * LMDB write transaction holds. */
#define RESHARD_TXN_PUTS 50000

static int path_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static int reshard_pending(const char *dir)
{
    return path_exists(dir, STATE_NEW) || path_exists(dir, STATE_OLD) ||
           path_exists(dir, FORMAT_NEW);
}

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

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ok;

    if (fd < 0)
        return -1;
    ok = fsync(fd) == 0;
    close(fd);
    return ok ? 0 : -1;
}

/* One destination shard's open write transaction while re-sharding. */
struct dest {
    struct shard *sh;
    MDB_txn *txn;
    unsigned puts;
};

static int dest_put(struct dest *d, int db, const MDB_val *k,
                    const MDB_val *v)
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
    return mdb_put(d->txn, d->sh->dbi[db], &key, &data, 0);
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

                rc = db == DB_TOP ? dest_top(to, &k, &v)
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
                             "current workers, stop it with Ctrl-C or "
                             "SIGTERM, then reshard; nothing was changed",
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
    if (*format != 1 && *format != WS_STORE_FORMAT) {
        snprintf(err, WS_STORE_ERR_MAX, "%s holds data format %d, which "
                 "this walletstream cannot read", dir, *format);
        e = WS_ERR_FORMAT;
        goto out;
    }
    if (*format == WS_STORE_FORMAT && *from == shards) {
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
        if ((rc = mdb_txn_begin(d[i].sh->env, NULL, 0, &d[i].txn)))
            goto lmdb;
    }
    if ((e = reshard_offsets(src, rt, d, shards, err)) != WS_OK)
        goto out;
    for (i = 0; i < src->nshards && rc == 0; i++)
        rc = reshard_copy(&src->sh[i], rt[i], d, shards);
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
    snprintf(buf, sizeof buf, "%sformat %d\nshards %d\n", FORMAT_MAGIC,
             WS_STORE_FORMAT, shards);
    if (write_file_synced(path, buf) != 0 || sync_dir(dir) != 0) {
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
