/*
 * store.c - the data directory around the state: its format marker, the
 * writer's LOCK, opening and closing its shards, making commits durable,
 * the space the state uses, and, when a writer opens it, delivering the
 * ids each shard committed for another (ws_store_recover). The layout of
 * the directory and of its tables, and which file of the store holds
 * what, are in store_int.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"
#include "timeutil.h"

/* ---------------------------------------------------- the data directory */

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

int write_file_synced(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    size_t n = strlen(text);
    int ok;

    if (fd < 0)
        return -1;
    ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    return close(fd) == 0 && ok ? 0 : -1;
}

int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ok;

    if (fd < 0)
        return -1;
    ok = fsync(fd) == 0;
    close(fd);
    return ok ? 0 : -1;
}

int path_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

int write_marker_file(const char *path, int shards)
{
    char buf[256];

    snprintf(buf, sizeof buf, "%sformat %d\nshards %d\n", FORMAT_MAGIC,
             WS_STORE_FORMAT, shards);
    return write_file_synced(path, buf);
}

/* Writes dir's format marker (WS_STORE_FORMAT, `shards`) durably, new
 * or over an older one (a temporary file renamed over it, so that the
 * marker is always whole): 0 or -1 with errno set. */
static int write_marker(const char *dir, int shards)
{
    char path[4096], tmp[4096];

    snprintf(path, sizeof path, "%s/%s", dir, FORMAT_FILE);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, FORMAT_FILE);
    unlink(tmp);        /* left by a crash: never read */
    if (write_marker_file(tmp, shards) != 0 || rename(tmp, path) != 0)
        return -1;
    return sync_dir(dir);
}

static int reshard_pending(const char *dir)
{
    return path_exists(dir, STATE_NEW) || path_exists(dir, STATE_OLD) ||
           path_exists(dir, FORMAT_NEW);
}

/* Reads the format marker of an existing data directory: *format and
 * *shards (1 for format 1, which had no shards line). Returns 0, or
 * WS_ERR_FORMAT with a sentence when it is not a marker of ours. */
int read_format(const char *dir, int *format, int *shards, char *err)
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
                        int *shards, int *found, char *err)
{
    char path[4096];
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
        *found = WS_STORE_FORMAT;
        if (write_marker(dir, *shards) != 0) {
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
    if (format < WS_STORE_FORMAT_OLDEST || format > WS_STORE_FORMAT) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s was written by data format %d; this walletstream "
                 "(%s) reads formats %d to %d only; the directory was left "
                 "untouched", dir, format, WS_VERSION,
                 WS_STORE_FORMAT_OLDEST, WS_STORE_FORMAT);
        return WS_ERR_FORMAT;
    }
    *found = format;
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

int take_lock(const char *dir, int *fd_out, char *err)
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

/* ----------------------------------------------------------- open, close */

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
    int e, i, format = WS_STORE_FORMAT;

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
    s->history_days = WS_HISTORY_OFF;

    e = check_format(dir, mode, shards, &s->nshards, &format, err);
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
    /* --max-state-size bounds the whole state: each shard gets its share
     * (whole pages; LMDB rounds it up to at least a few). */
    if (map_max)
        map_max = (map_max / (uint64_t)s->nshards) & ~(uint64_t)4095;
    for (i = 0; i < s->nshards; i++) {
        snprintf(path, sizeof path, "%s/%s/%d", dir, STATE_DIR, i);
        e = shard_open(s, &s->sh[i], path, i, s->nshards, format, map_max,
                       err);
        if (e != WS_OK)
            goto fail;
    }
    /* Every shard records the new format now: so does the marker. */
    if (mode == WS_STORE_WRITE && format < WS_STORE_FORMAT &&
        write_marker(dir, s->nshards) != 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot upgrade the format marker "
                 "of %s: %s", dir, strerror(errno));
        e = WS_ERR_IO;
        goto fail;
    }
    atomic_init(&s->owned, s->nshards >= 64 ? ~(uint64_t)0
                                            : ((uint64_t)1 << s->nshards) - 1);
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

/* ----------------------------------------------- delivering the outboxes */

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

void ws_store_want_commit(ws_store *s, int shard)
{
    int64_t now = ws_clock_ms();
    int i;

    for (i = 0; i < s->nshards; i++)
        if (shard < 0 || i == shard)
            atomic_store(&s->wanted[i], now);
}

int64_t ws_store_commit_wanted(ws_store *s, int shard)
{
    return shard >= 0 && shard < s->nshards
               ? (int64_t)atomic_load(&s->wanted[shard])
               : 0;
}

uint64_t ws_store_commits(ws_store *s)
{
    return (uint64_t)atomic_load(&s->commits);
}

/* --------------------------------------------------------- statements */

/* The text of a history setting: "off", "all" or the days. */
static size_t history_text(int days, char *buf)
{
    if (days == WS_HISTORY_OFF)
        return (size_t)snprintf(buf, 16, "off");
    if (days == WS_HISTORY_ALL)
        return (size_t)snprintf(buf, 16, "all");
    return (size_t)snprintf(buf, 16, "%d", days);
}

int ws_store_set_history(ws_store *s, int days)
{
    char text[16];
    MDB_val key = val("history", 7), data;
    int i, rc = 0;

    if (s->mode != WS_STORE_WRITE)
        return WS_ERR_STORE;
    s->history_days = days < 0 ? WS_HISTORY_OFF : days;
    data = val(text, history_text(s->history_days, text));
    for (i = 0; i < s->nshards && rc == 0; i++) {
        struct shard *sh = &s->sh[i];
        MDB_txn *txn;
        MDB_val old;

        if ((rc = mdb_txn_begin(sh->env, NULL, 0, &txn)) != 0)
            break;
        rc = get(txn, sh->dbi[DB_META], "history", 7, &old);
        if (rc == 0 && old.mv_size == data.mv_size &&
            memcmp(old.mv_data, text, data.mv_size) == 0) {
            mdb_txn_abort(txn);     /* unchanged */
            continue;
        }
        rc = 0;
        if (s->history_days == WS_HISTORY_OFF)
            rc = mdb_drop(txn, sh->dbi[DB_HISTORY], 0);
        if (rc == 0)
            rc = mdb_put(txn, sh->dbi[DB_META], &key, &data, 0);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    return map_err(rc);
}
