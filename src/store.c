/*
 * store.c - LMDB state store and the data directory around it.
 *
 * Layout of a data directory:
 *   walletstream.format   "walletstream data directory\nformat N\n"
 *   LOCK                  flock()ed by the single writer (replay, run)
 *   state/                the LMDB environment (data.mdb, lock.mdb)
 *
 * Named databases (DESIGN §3):
 *   meta        "format" -> "N"
 *   offsets     source ("topic/partition") -> next offset, int64 LE
 *   wallets     wallet_id -> wallet record (below)
 *   debit_days  wallet_id NUL day(int32 BE) -> empty
 *   top         product_id NUL currency -> top-credit record (below)
 *   products    product_id -> empty (seen in an applied transaction)
 *   seen        transaction_id -> 16-byte content fingerprint
 *   counters    "outcome:<name>" / "reason:<code>" -> int64 LE;
 *               "lost:<source>" -> records of that source deleted from the
 *               log before they were read (kafka_source.c), int64 LE
 *
 * Records are little-endian byte layouts with a version byte first, read
 * and written only by the functions below, never cast from the page.
 * Ids cannot contain NUL (SPEC §2 forbids control characters), so NUL
 * separates the parts of composite keys.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "wset.h"

#define FORMAT_FILE "walletstream.format"
#define FORMAT_MAGIC "walletstream data directory\n"
#define LOCK_FILE "LOCK"
#define STATE_DIR "state"

/* Virtual address space reserved for the map; the file only grows with
 * the data. */
#define DEFAULT_MAP_MAX ((uint64_t)64 << 30)
#define MAX_READERS 1024
#define RECORD_VERSION 1

enum {
    DB_META, DB_OFFSETS, DB_WALLETS, DB_DEBIT_DAYS, DB_TOP, DB_PRODUCTS,
    DB_SEEN, DB_COUNTERS, DB_COUNT
};

static const char *const db_names[DB_COUNT] = {
    "meta", "offsets", "wallets", "debit_days", "top", "products", "seen",
    "counters",
};

/* A batch reads each record it needs from LMDB once, changes it in its
 * working set, and writes the changed records back in key order when it
 * is flushed (before reading the top-credit table with a cursor, and at
 * commit). Until then its LMDB transaction holds only committed data. */
struct ws_batch {
    ws_store *store;
    MDB_txn *txn;
    ws_wset *ws;        /* records read or changed by this batch */
    ws_wentry *last;    /* the entry loaded last (a get, then its put) */
    int dirty;          /* entries changed since the last write-back */
    ws_counts delta;
    int err;            /* first LMDB error met in this batch */
};

struct ws_store {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    enum ws_store_mode mode;
    int lock_fd;
    /* Readers hold it shared for the life of a view; taken exclusively
     * only to adopt a map grown by the writer process (MDB_MAP_RESIZED). */
    pthread_rwlock_t resize;
    struct ws_batch batch;
    int batch_open;
};

struct ws_view {
    ws_store *store;
    MDB_txn *txn;
};

/* ------------------------------------------------------ byte layouts */

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    int i;
    for (i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    int i;
    for (i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    int i;
    for (i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Wallet record, 72 bytes:
 *   0 version, 1-3 currency, 4 scale, 5-7 zero,
 *   8 balance (16), 24 total_debit (16), 40 transactions (8),
 *   48 first_day (4), 52 last_day (4), 56 debit_days (4),
 *   60 last_event nsec (4), 64 last_event sec (8) */
#define WALLET_SIZE 72

static void wallet_encode(const ws_wallet *w, unsigned char *p)
{
    memset(p, 0, WALLET_SIZE);
    p[0] = RECORD_VERSION;
    memcpy(p + 1, w->currency, 3);
    p[4] = w->scale;
    ws_dec_store(w->balance, p + 8);
    ws_dec_store(w->total_debit, p + 24);
    put_u64(p + 40, (uint64_t)w->transactions);
    put_u32(p + 48, (uint32_t)w->first_day);
    put_u32(p + 52, (uint32_t)w->last_day);
    put_u32(p + 56, (uint32_t)w->debit_days);
    put_u32(p + 60, (uint32_t)w->last_event.nsec);
    put_u64(p + 64, (uint64_t)w->last_event.sec);
}

static int wallet_decode(const MDB_val *v, ws_wallet *w)
{
    const unsigned char *p = v->mv_data;

    if (v->mv_size != WALLET_SIZE || p[0] != RECORD_VERSION)
        return WS_ERR_CORRUPT;
    memcpy(w->currency, p + 1, 3);
    w->scale = p[4];
    w->balance = ws_dec_load(p + 8);
    w->total_debit = ws_dec_load(p + 24);
    w->transactions = (int64_t)get_u64(p + 40);
    w->first_day = (int32_t)get_u32(p + 48);
    w->last_day = (int32_t)get_u32(p + 52);
    w->debit_days = (int32_t)get_u32(p + 56);
    w->last_event.nsec = (int32_t)get_u32(p + 60);
    w->last_event.sec = (int64_t)get_u64(p + 64);
    return WS_OK;
}

/* Top-credit record: version, count, then per entry:
 *   amount (16), scale (1), sec (8), nsec (4), tx_id_len (2),
 *   wallet_id_len (2), tx_id bytes, wallet_id bytes. */
#define TOP_ENTRY_FIXED 33
#define TOP_MAX (2 + WS_TOP_N * (TOP_ENTRY_FIXED + 2 * WS_MAX_ID))

static size_t top_encode(const ws_top *t, unsigned char *p)
{
    size_t o = 2;
    unsigned i;

    p[0] = RECORD_VERSION;
    p[1] = (unsigned char)t->n;
    for (i = 0; i < t->n; i++) {
        const ws_top_entry *e = &t->e[i];

        ws_dec_store(e->amount, p + o);
        p[o + 16] = e->scale;
        put_u64(p + o + 17, (uint64_t)e->ts.sec);
        put_u32(p + o + 25, (uint32_t)e->ts.nsec);
        put_u16(p + o + 29, e->tx_id_len);
        put_u16(p + o + 31, e->wallet_id_len);
        o += TOP_ENTRY_FIXED;
        memcpy(p + o, e->tx_id, e->tx_id_len);
        o += e->tx_id_len;
        memcpy(p + o, e->wallet_id, e->wallet_id_len);
        o += e->wallet_id_len;
    }
    return o;
}

static int top_decode(const MDB_val *v, const char currency[3], ws_top *t)
{
    const unsigned char *p = v->mv_data;
    size_t n = v->mv_size, o = 2;
    unsigned i;

    if (n < 2 || p[0] != RECORD_VERSION || p[1] > WS_TOP_N)
        return WS_ERR_CORRUPT;
    memcpy(t->currency, currency, 3);
    t->n = p[1];
    for (i = 0; i < t->n; i++) {
        ws_top_entry *e = &t->e[i];

        if (o + TOP_ENTRY_FIXED > n)
            return WS_ERR_CORRUPT;
        e->amount = ws_dec_load(p + o);
        e->scale = p[o + 16];
        e->ts.sec = (int64_t)get_u64(p + o + 17);
        e->ts.nsec = (int32_t)get_u32(p + o + 25);
        e->tx_id_len = get_u16(p + o + 29);
        e->wallet_id_len = get_u16(p + o + 31);
        o += TOP_ENTRY_FIXED;
        if (e->tx_id_len > WS_MAX_ID || e->wallet_id_len > WS_MAX_ID ||
            o + e->tx_id_len + e->wallet_id_len > n)
            return WS_ERR_CORRUPT;
        memcpy(e->tx_id, p + o, e->tx_id_len);
        o += e->tx_id_len;
        memcpy(e->wallet_id, p + o, e->wallet_id_len);
        o += e->wallet_id_len;
    }
    return o == n ? WS_OK : WS_ERR_CORRUPT;
}

/* product NUL currency */
static size_t top_key(const char *product, size_t n, const char currency[3],
                      char *key)
{
    memcpy(key, product, n);
    key[n] = '\0';
    memcpy(key + n + 1, currency, 3);
    return n + 4;
}

/* ------------------------------------------------------ LMDB helpers */

static int map_err(int rc)
{
    if (rc == 0)
        return WS_OK;
    if (rc == MDB_NOTFOUND)
        return WS_ERR_NOT_FOUND;
    if (rc == MDB_MAP_FULL)
        return WS_ERR_MAP_FULL;
    if (rc == MDB_TXN_FULL)
        return WS_ERR_TXN_FULL;
    if (rc == ENOSPC || rc == EDQUOT || rc == EIO)  /* EIO: a short write */
        return WS_ERR_NO_SPACE;
    return WS_ERR_STORE;
}

static MDB_val val(const void *p, size_t n)
{
    MDB_val v;
    v.mv_data = (void *)p;
    v.mv_size = n;
    return v;
}

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

static int get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kn,
               MDB_val *out)
{
    MDB_val key = val(k, kn);
    return mdb_get(txn, dbi, &key, out);
}

static int put(ws_batch *b, int db, const void *k, size_t kn, const void *v,
               size_t vn)
{
    MDB_val key = val(k, kn), data = val(v, vn);

    return batch_rc(b, mdb_put(b->txn, b->store->dbi[db], &key, &data, 0));
}

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

/* Checks (and, for a writer on a new or empty directory, creates) the
 * format marker. Nothing is written unless the directory is new. */
static int check_format(const char *dir, enum ws_store_mode mode, char *err)
{
    char path[4096], buf[256];
    struct stat st;
    FILE *f;
    size_t n;
    int format = -1, empty;

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

    snprintf(path, sizeof path, "%s/%s", dir, FORMAT_FILE);
    f = fopen(path, "r");
    if (!f) {
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
        snprintf(buf, sizeof buf, "%sformat %d\n", FORMAT_MAGIC,
                 WS_STORE_FORMAT);
        if (write_file_synced(path, buf) != 0) {
            snprintf(err, WS_STORE_ERR_MAX, "cannot write %s: %s", path,
                     strerror(errno));
            return WS_ERR_IO;
        }
        return WS_OK;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (strncmp(buf, FORMAT_MAGIC, strlen(FORMAT_MAGIC)) != 0 ||
        sscanf(buf + strlen(FORMAT_MAGIC), "format %d", &format) != 1) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s is not a walletstream format marker; refusing to "
                 "touch %s", path, dir);
        return WS_ERR_FORMAT;
    }
    if (format != WS_STORE_FORMAT) {
        snprintf(err, WS_STORE_ERR_MAX,
                 "%s was written by data format %d; this walletstream "
                 "(%s) reads format %d only; the directory was left "
                 "untouched", dir, format, WS_VERSION, WS_STORE_FORMAT);
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

static const char *damage_hint(int rc);

/* Opens the named databases and checks (or, on a new environment,
 * writes) the format recorded inside the state. */
static int open_dbs(ws_store *s, const char *dir, char *err)
{
    MDB_txn *txn;
    MDB_val v;
    unsigned flags = s->mode == WS_STORE_WRITE ? MDB_CREATE : 0;
    char want[16];
    int rc, i;

    rc = mdb_txn_begin(s->env, NULL, s->mode == WS_STORE_READ ? MDB_RDONLY : 0,
                       &txn);
    if (rc != 0)
        goto fail;
    for (i = 0; i < DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, db_names[i], flags, &s->dbi[i]);
        if (rc != 0) {
            mdb_txn_abort(txn);
            if (rc == MDB_NOTFOUND) {
                snprintf(err, WS_STORE_ERR_MAX,
                         "the state in %s/%s lacks its \"%s\" table: not "
                         "written by this walletstream", dir, STATE_DIR,
                         db_names[i]);
                return WS_ERR_FORMAT;
            }
            goto fail;
        }
    }
    snprintf(want, sizeof want, "%d", WS_STORE_FORMAT);
    rc = get(txn, s->dbi[DB_META], "format", 6, &v);
    if (rc == MDB_NOTFOUND && s->mode == WS_STORE_WRITE) {
        MDB_val key = val("format", 6), data = val(want, strlen(want));
        rc = mdb_put(txn, s->dbi[DB_META], &key, &data, 0);
    } else if (rc == 0 && (v.mv_size != strlen(want) ||
                           memcmp(v.mv_data, want, v.mv_size) != 0)) {
        mdb_txn_abort(txn);
        snprintf(err, WS_STORE_ERR_MAX,
                 "the state in %s/%s records another data format; this "
                 "walletstream reads format %d", dir, STATE_DIR,
                 WS_STORE_FORMAT);
        return WS_ERR_FORMAT;
    } else if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        snprintf(err, WS_STORE_ERR_MAX,
                 "the state in %s/%s records no data format", dir,
                 STATE_DIR);
        return WS_ERR_FORMAT;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        goto fail;
    return WS_OK;
fail:
    snprintf(err, WS_STORE_ERR_MAX, "cannot open the state in %s/%s: %s%s",
             dir, STATE_DIR, mdb_strerror(rc), damage_hint(rc));
    return WS_ERR_STORE;
}

static int check_file_size(ws_store *s, const char *path, char *err);

int ws_store_open(const char *dir, enum ws_store_mode mode, uint64_t map_max,
                  ws_store **out, char *err)
{
    char path[4096];
    ws_store *s;
    int rc, e;

    *out = NULL;
    err[0] = '\0';
    if (strlen(dir) > 3000) {
        snprintf(err, WS_STORE_ERR_MAX, "data directory path is too long");
        return WS_ERR_USAGE;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, WS_STORE_ERR_MAX, "out of memory");
        return WS_ERR_NOMEM;
    }
    s->mode = mode;
    s->lock_fd = -1;
    if (pthread_rwlock_init(&s->resize, NULL) != 0) {
        free(s);
        snprintf(err, WS_STORE_ERR_MAX, "cannot create a lock");
        return WS_ERR_NOMEM;
    }

    e = check_format(dir, mode, err);
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
    e = WS_ERR_STORE;
    rc = mdb_env_create(&s->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, DB_COUNT);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(s->env, MAX_READERS);
    if (rc == 0 && mode == WS_STORE_WRITE)
        rc = mdb_env_set_mapsize(s->env, map_max ? map_max : DEFAULT_MAP_MAX);
    if (rc == 0)
        rc = mdb_env_open(s->env, path,
                          MDB_NOTLS | (mode == WS_STORE_READ ? MDB_RDONLY
                                                             : MDB_NOMETASYNC),
                          0644);
    if (rc != 0) {
        snprintf(err, WS_STORE_ERR_MAX, "cannot open the state in %s: %s%s",
                 path, mdb_strerror(rc), damage_hint(rc));
        goto fail;
    }
    e = check_file_size(s, path, err);
    if (e == WS_OK)
        e = open_dbs(s, dir, err);
    if (e != WS_OK)
        goto fail;
    if (mode == WS_STORE_WRITE && ws_wset_new(&s->batch.ws) != WS_OK) {
        snprintf(err, WS_STORE_ERR_MAX, "out of memory");
        e = WS_ERR_NOMEM;
        goto fail;
    }
    if (s->lock_fd >= 0)
        note_pid(s->lock_fd);
    s->batch.store = s;
    *out = s;
    return WS_OK;
fail:
    ws_store_close(s);
    return e;
}

void ws_store_close(ws_store *s)
{
    if (!s)
        return;
    if (s->batch_open)
        ws_batch_abort(&s->batch);
    if (s->env && s->mode == WS_STORE_WRITE)
        (void)ws_store_sync(s);     /* the last commit's meta page */
    ws_wset_free(s->batch.ws);
    if (s->env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd);  /* releases the flock */
    pthread_rwlock_destroy(&s->resize);
    free(s);
}

int ws_store_sync(ws_store *s)
{
    return s->mode == WS_STORE_WRITE && mdb_env_sync(s->env, 1) != 0
               ? WS_ERR_IO : WS_OK;
}

void ws_store_usage(ws_store *s, uint64_t *used, uint64_t *limit)
{
    MDB_envinfo info;
    MDB_stat st;

    *used = 0;
    *limit = 0;
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0) {
        *used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
        *limit = (uint64_t)info.me_mapsize;
    }
}

/* --------------------------------------------------------- the batch */

int ws_store_begin(ws_store *s, ws_batch **out)
{
    ws_batch *b = &s->batch;
    int rc;

    if (s->mode != WS_STORE_WRITE || s->batch_open)
        return WS_ERR_STORE;
    rc = mdb_txn_begin(s->env, NULL, 0, &b->txn);
    if (rc != 0)
        return map_err(rc);
    memset(&b->delta, 0, sizeof b->delta);
    b->err = WS_OK;
    s->batch_open = 1;
    *out = b;
    return WS_OK;
}

/* Room for a counters key: "<prefix>:" and a name or a source
 * (topic/partition). */
#define COUNTER_KEY_MAX 600

/* The counters key "<prefix>:<name>" in key[0..COUNTER_KEY_MAX); returns
 * its length, or 0 when it does not fit. */
static size_t counter_key(const char *prefix, const char *name, size_t n,
                          char *key)
{
    size_t pn = strlen(prefix);

    if (pn + 1 + n > COUNTER_KEY_MAX)
        return 0;
    memcpy(key, prefix, pn);
    key[pn] = ':';
    memcpy(key + pn + 1, name, n);
    return pn + 1 + n;
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
    rc = get(b->txn, b->store->dbi[DB_COUNTERS], key, kn, &v);
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
            if ((rc = mdb_cursor_open(b->txn, b->store->dbi[table], &cur)))
                break;
        }
        rc = mdb_cursor_put(cur, &key, &data, 0);
        if (rc == 0)
            d[i]->state = WS_WE_CLEAN;
    }
    if (cur)
        mdb_cursor_close(cur);
    if (rc == 0)
        b->dirty = 0;
    return batch_rc(b, rc);
}

int ws_batch_commit(ws_batch *b)
{
    int i, e = ws_batch_flush(b), rc;

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
    if (e != WS_OK) {
        ws_batch_abort(b);
        return e;
    }
    rc = mdb_txn_commit(b->txn);
    b->txn = NULL;
    b->store->batch_open = 0;
    b->last = NULL;
    b->dirty = 0;
    ws_wset_clear(b->ws);
    return map_err(rc);
}

void ws_batch_abort(ws_batch *b)
{
    if (b->txn)
        mdb_txn_abort(b->txn);
    b->txn = NULL;
    b->store->batch_open = 0;
    b->last = NULL;
    b->dirty = 0;
    ws_wset_clear(b->ws);
}

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
    rc = get(b->txn, b->store->dbi[db], k, kn, &v);
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
    if (e->vlen != 16)
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
        int rc = mdb_del(b->txn, b->store->dbi[DB_SEEN], &key, NULL);

        if (rc != 0 && rc != MDB_NOTFOUND)
            return batch_rc(b, rc);
    }
    e->state = WS_WE_ABSENT;
    e->vlen = 0;
    return WS_OK;
}

int ws_batch_wallet_get(ws_batch *b, const char *id, size_t n, ws_wallet *w)
{
    int err = WS_OK;
    ws_wentry *e = load(b, DB_WALLETS, id, n, WALLET_SIZE, &err);
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
    unsigned char rec[WALLET_SIZE];
    int err = WS_OK;
    ws_wentry *e = load(b, DB_WALLETS, id, n, WALLET_SIZE, &err);

    if (!e)
        return err;
    wallet_encode(w, rec);
    return store_value(b, e, rec, sizeof rec);
}

int ws_batch_debit_day_add(ws_batch *b, const char *wallet, size_t n,
                           int32_t day, int *added)
{
    char key[WS_MAX_ID + 5];
    uint32_t d = (uint32_t)day;

    memcpy(key, wallet, n);
    key[n] = '\0';
    key[n + 1] = (char)(d >> 24);
    key[n + 2] = (char)(d >> 16);
    key[n + 3] = (char)(d >> 8);
    key[n + 4] = (char)d;
    return mark(b, DB_DEBIT_DAYS, key, n + 5, added);
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

/* ------------------------------------------------------------- views */

int ws_store_view(ws_store *s, ws_view **out)
{
    ws_view *v = malloc(sizeof *v);
    int rc;

    if (!v)
        return WS_ERR_NOMEM;
    v->store = s;
    for (;;) {
        pthread_rwlock_rdlock(&s->resize);
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &v->txn);
        if (rc != MDB_MAP_RESIZED)
            break;
        /* The writer grew the map: adopt its size, with no view open. */
        pthread_rwlock_unlock(&s->resize);
        pthread_rwlock_wrlock(&s->resize);
        mdb_env_set_mapsize(s->env, 0);
        pthread_rwlock_unlock(&s->resize);
    }
    if (rc != 0) {
        pthread_rwlock_unlock(&s->resize);
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
    mdb_txn_abort(v->txn);
    pthread_rwlock_unlock(&v->store->resize);
    free(v);
}

int ws_view_wallet(ws_view *v, const char *id, size_t n, ws_wallet *w)
{
    MDB_val data;
    int rc = get(v->txn, v->store->dbi[DB_WALLETS], id, n, &data);

    if (rc != 0)
        return map_err(rc);
    return wallet_decode(&data, w);
}

int ws_view_product(ws_view *v, const char *id, size_t n)
{
    MDB_val data;

    return map_err(get(v->txn, v->store->dbi[DB_PRODUCTS], id, n, &data));
}

/* Calls fn for each currency's top credits of the product, in one
 * transaction of either kind. */
static int tops_in(MDB_txn *txn, MDB_dbi dbi, const char *product, size_t n,
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

int ws_view_tops(ws_view *v, const char *product, size_t n,
                 int (*fn)(const ws_top *t, void *arg), void *arg)
{
    return tops_in(v->txn, v->store->dbi[DB_TOP], product, n, fn, arg);
}

int ws_batch_tops(ws_batch *b, const char *product, size_t n,
                  int (*fn)(const ws_top *t, void *arg), void *arg)
{
    int e = ws_batch_flush(b);

    if (e != WS_OK)
        return e;
    return tops_in(b->txn, b->store->dbi[DB_TOP], product, n, fn, arg);
}

/* One stored counter; 0 when absent. */
static int read_counter(ws_view *v, const char *prefix, const char *name,
                        int64_t *out)
{
    char key[COUNTER_KEY_MAX];
    MDB_val data;
    size_t kn = counter_key(prefix, name, strlen(name), key);
    int rc = get(v->txn, v->store->dbi[DB_COUNTERS], key, kn, &data);

    *out = rc == 0 && data.mv_size == 8 ? (int64_t)get_u64(data.mv_data) : 0;
    return rc == MDB_NOTFOUND ? WS_OK : map_err(rc);
}

int ws_view_counts(ws_view *v, ws_counts *out)
{
    int i, e = WS_OK;

    memset(out, 0, sizeof *out);
    for (i = 0; i < WS_OUTCOME_COUNT && e == WS_OK; i++)
        e = read_counter(v, "outcome", ws_outcome_name((enum ws_outcome)i),
                         &out->outcome[i]);
    for (i = 1; i < WS_R_COUNT && e == WS_OK; i++)
        e = read_counter(v, "reason", ws_reason_name((enum ws_reason)i),
                         &out->reason[i]);
    return e;
}

int ws_view_lost(ws_view *v, const char *source, size_t n, int64_t *total)
{
    char key[COUNTER_KEY_MAX];
    MDB_val data;
    size_t kn = counter_key("lost", source, n, key);
    int rc;

    *total = 0;
    if (kn == 0)
        return WS_ERR_USAGE;
    rc = get(v->txn, v->store->dbi[DB_COUNTERS], key, kn, &data);
    if (rc == MDB_NOTFOUND)
        return WS_OK;
    if (rc != 0)
        return map_err(rc);
    if (data.mv_size != 8)
        return WS_ERR_CORRUPT;
    *total = (int64_t)get_u64(data.mv_data);
    return WS_OK;
}

int ws_view_offset(ws_view *v, const char *source, size_t n, int64_t *next)
{
    MDB_val data;
    int rc = get(v->txn, v->store->dbi[DB_OFFSETS], source, n, &data);

    if (rc != 0)
        return map_err(rc);
    if (data.mv_size != 8)
        return WS_ERR_CORRUPT;
    *next = (int64_t)get_u64(data.mv_data);
    return WS_OK;
}

/* ----------------------------------------------------- state sizes */

int ws_view_sizes(ws_view *v, ws_state_sizes *out)
{
    /* The tables an operator sizes the state by, in ws_state_sizes order. */
    static const int dbs[WS_STATE_TABLES] = {
        DB_WALLETS, DB_PRODUCTS, DB_TOP, DB_DEBIT_DAYS, DB_SEEN};
    MDB_stat st;
    int i, rc;

    memset(out, 0, sizeof *out);
    for (i = 0; i < WS_STATE_TABLES; i++) {
        rc = mdb_stat(v->txn, v->store->dbi[dbs[i]], &st);
        if (rc != 0)
            return map_err(rc);
        out->entries[i] = (uint64_t)st.ms_entries;
    }
    return WS_OK;
}

const char *const ws_state_table_names[WS_STATE_TABLES] = {
    "wallets", "products", "top_credit_lists", "debit_days",
    "transaction_ids"};
/* ------------------------------------------------------ whole tables */

/* Calls fn(key, value, arg) for every entry of one table of the view, in
 * key order; stops at fn's first non-zero value and returns it. */
static int each_entry(ws_view *v, int db,
                      int (*fn)(const MDB_val *key, const MDB_val *data,
                                void *arg),
                      void *arg)
{
    MDB_cursor *cur;
    MDB_val key, data;
    int rc, e = WS_OK;

    rc = mdb_cursor_open(v->txn, v->store->dbi[db], &cur);
    if (rc != 0)
        return map_err(rc);
    rc = mdb_cursor_get(cur, &key, &data, MDB_FIRST);
    while (rc == 0 && e == WS_OK) {
        e = fn(&key, &data, arg);
        if (e == WS_OK)
            rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (e == WS_OK && rc != MDB_NOTFOUND)
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
};

static int each_product_entry(const MDB_val *key, const MDB_val *data,
                              void *arg)
{
    struct each_product *ep = arg;

    (void)data;
    if (key->mv_size == 0 || key->mv_size > WS_MAX_ID)
        return WS_ERR_CORRUPT;
    return ep->fn(key->mv_data, key->mv_size, ep->arg);
}

int ws_view_each_product(ws_view *v,
                         int (*fn)(const char *id, size_t n, void *arg),
                         void *arg)
{
    struct each_product ep;

    ep.fn = fn;
    ep.arg = arg;
    return each_entry(v, DB_PRODUCTS, each_product_entry, &ep);
}

struct each_offset {
    int (*fn)(const char *source, size_t n, int64_t next, void *arg);
    void *arg;
};

static int each_offset_entry(const MDB_val *key, const MDB_val *data,
                             void *arg)
{
    struct each_offset *eo = arg;

    if (data->mv_size != 8)
        return WS_ERR_CORRUPT;
    return eo->fn(key->mv_data, key->mv_size,
                  (int64_t)get_u64(data->mv_data), eo->arg);
}

int ws_view_each_offset(ws_view *v,
                        int (*fn)(const char *source, size_t n, int64_t next,
                                  void *arg),
                        void *arg)
{
    struct each_offset eo;

    eo.fn = fn;
    eo.arg = arg;
    return each_entry(v, DB_OFFSETS, each_offset_entry, &eo);
}

/* Refuses a data.mdb shorter than the pages its newest meta page names
 * (a truncated copy or restore): LMDB maps the file and would die of
 * SIGBUS on the first read past its end (issue 8, "Bad state"). */
static int check_file_size(ws_store *s, const char *path, char *err)
{
    char file[4200];
    MDB_envinfo info;
    MDB_stat st;
    struct stat sb;
    uint64_t need;

    snprintf(file, sizeof file, "%s/data.mdb", path);
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0 ||
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
