/*
 * store_int.h - what the files of the state store share; no other module
 * includes it (their contract is store.h). Names declared here keep the
 * short names they had as statics of one file.
 *
 * Who owns what:
 *   store.c    the data directory: format marker, LOCK, opening and
 *              closing the shards (struct ws_store), sync, usage, and
 *              delivering committed outboxes when a writer opens it
 *              (ws_store_recover)
 *   shard.c    one shard (struct shard): its LMDB environment and tables,
 *              the checks made on opening it, its read transactions, and
 *              the shard an id belongs to (ws_shard_index)
 *   batch.c    one shard's write batch (struct ws_batch, ws_batch_*):
 *              working set, wallets, debit days, top lists, products,
 *              seen ids, outbox and inbox, counters, offsets
 *   view.c     reads over every shard (struct ws_view, ws_view_*): merged
 *              top lists, summed counters, smallest offsets, whole tables
 *              in key order
 *   reshard.c  ws_store_reshard: the state rewritten into another number
 *              of shards
 *   records.c  the byte layouts of keys and records; the order of top
 *              credits (ws_top_cmp, ws_top_insert)
 *
 * Layout of a data directory:
 *   walletstream.format   "walletstream data directory\nformat 2\nshards N\n"
 *                         (format 1 had no shards line and one
 *                         environment in state/; ws_store_reshard
 *                         upgrades it)
 *   LOCK                  flock()ed by the single writer (replay, run,
 *                         reshard)
 *   state/<k>/            shard k's LMDB environment (data.mdb,
 *                         lock.mdb), k from 0 to N-1
 *   state.new/, state.old/, walletstream.format.new
 *                         only while a reshard runs or was interrupted
 *
 * Named databases of each shard (DESIGN §3):
 *   meta        "format" -> "2"; "shard" -> "k/N" (this shard's place)
 *   offsets     source ("topic/partition") -> next offset, int64 LE
 *   wallets     wallet_id -> wallet record (records.c)
 *   debit_days  wallet_id NUL day(int32 BE) -> empty
 *   top         product_id NUL currency -> top-credit record (records.c)
 *   products    product_id -> empty (seen in an applied transaction)
 *   seen        transaction_id (of this shard) -> 16-byte content
 *               fingerprint, then, when a record of another shard read
 *               from Kafka applied it, that record's partition (u32 BE)
 *               and offset (u64 BE)
 *   outbox      target shard (u16 BE) seq (u64 BE) -> fingerprint, source
 *               (as in seen, partition -1 when none), transaction_id: ids
 *               of other shards applied here, until they hold them
 *   inbox       source shard (u16 BE) -> last outbox seq delivered here
 *   counters    "outcome:<name>" / "reason:<code>" -> int64 LE;
 *               "lost:<source>" -> records of that source deleted from the
 *               log before they were read (kafka_source.c), int64 LE
 *   history     the shard's statement log: position (u64 BE, from 1, in
 *               the order applied, appended) -> statement line
 *               (records.c), which links to its wallet's previous line;
 *               the wallet record holds its newest (history_head). meta
 *               "history" says what is kept ("off", "all" or the days),
 *               meta "history_next" the next position (u64 LE). A state
 *               of data format 3 has no such table (readers see no
 *               statements)
 */
#ifndef WS_STORE_INT_H
#define WS_STORE_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "store.h"
#include "wset.h"

#define FORMAT_FILE "walletstream.format"
#define FORMAT_MAGIC "walletstream data directory\n"
#define LOCK_FILE "LOCK"
#define STATE_DIR "state"
/* Left by a reshard until it is finished (reshard.c). */
#define STATE_NEW "state.new"
#define STATE_OLD "state.old"
#define FORMAT_NEW FORMAT_FILE ".new"

/* Bytes of wallets, top lists and products a shard's working set keeps
 * from one batch to the next (split between the shards; wset.h,
 * ws_wset_clear_keeping): about 200,000 wallets in all. */
#define WS_BATCH_KEEP_BYTES ((size_t)32 << 20)

/* A remembered id's value with its applying record's source. */
#define SEEN_SOURCED (16 + 4 + 8)

/* The sizes of the byte layouts of records.c. */
/* A wallet record's longest encoding (records.c). */
#define WALLET_MAX 96
#define TOP_ENTRY_FIXED 33
#define TOP_MAX (2 + WS_TOP_N * (TOP_ENTRY_FIXED + 2 * WS_MAX_ID))
_Static_assert(TOP_MAX <= WS_TOP_PACKED_MAX, "ws_top_pack's room");

/* Room for a counters key: "<prefix>:" and a name or a source
 * (topic/partition). */
#define COUNTER_KEY_MAX 600

/* The named databases of a shard, in the order of db_names (shard.c). */
enum {
    DB_META, DB_OFFSETS, DB_WALLETS, DB_DEBIT_DAYS, DB_TOP, DB_PRODUCTS,
    DB_SEEN, DB_COUNTERS, DB_OUTBOX, DB_INBOX, DB_HISTORY, DB_COUNT
};

extern const char *const db_names[DB_COUNT];

/* A batch reads each record it needs from LMDB once, changes it in its
 * working set, and writes the changed records back in key order when it
 * is flushed (before reading the top-credit table with a cursor, and at
 * commit). Until then its LMDB transaction holds only committed data. */
struct ws_batch {
    ws_store *store;
    struct shard *sh;   /* the shard this batch writes */
    MDB_txn *txn;
    ws_wset *ws;        /* records read or changed by this batch */
    ws_wentry *last;    /* the entry loaded last (a get, then its put) */
    int dirty;          /* entries changed since the last write-back */
    ws_counts delta;
    int err;            /* first LMDB error met in this batch */
    size_t pages[DB_COUNT];     /* each table's pages when it began */
    /* Statements: the next log position (0: not read yet), whether it
     * moved, lines appended, the latest event day among them. */
    uint64_t hist_next;
    int hist_moved;
    size_t hist_added;
    int32_t hist_max_day;
    MDB_cursor *hist_cur;       /* appends; freed with the transaction */
    int sealed;                 /* everything is in txn (ws_batch_seal) */
    int raw;                    /* written past the working set (a
                                   restore): nothing of it is kept */
    /* The changes of the batch, when the store journals them
     * (ws_store_journal): entries of u8 table, u32 key length, key, u32
     * value length (JOURNAL_DELETED: a deletion), value. */
    unsigned char *jbuf;
    size_t jlen, jcap, jcount;
};
#define JOURNAL_DELETED 0xffffffffu

/* One shard: an LMDB environment in state/<index>/ and its tables. */
struct shard {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    int index;
    /* Readers hold it shared for the life of a view; taken exclusively
     * only to adopt a map grown by the writer process (MDB_MAP_RESIZED). */
    pthread_rwlock_t resize;
    int resize_init;
    struct ws_batch batch;
    int batch_open;
};

struct ws_store {
    enum ws_store_mode mode;
    int lock_fd;
    int nshards;
    struct shard sh[WS_SHARDS_MAX];
    int history_days;   /* ws_store_set_history; WS_HISTORY_OFF at open */
    int journal;        /* batches record their changes (ws_store_journal) */
    /* The shards this process serves (bit k: shard k), all but in a
     * group's instance (ws_store_set_owned); views read only them. */
    atomic_uint_fast64_t owned;
    atomic_uint_fast64_t commits;   /* batches committed by this process */
    /* When a reader last waited for each shard's next commit
     * (ws_store_want_commit; ws_clock_ms, 0: never). */
    atomic_int_fast64_t wanted[WS_SHARDS_MAX];
    /* Next outbox sequence from shard [from] to shard [target]. */
    uint64_t next_seq[WS_SHARDS_MAX][WS_SHARDS_MAX];
};

/* A view holds one read transaction per shard, begun in shard order. */
struct ws_view {
    ws_store *store;
    MDB_txn *txn[WS_SHARDS_MAX];    /* NULL: a shard not served */
    int first;                      /* the first served shard, -1: none */
};

/* ---------------------------------------------------------- LMDB helpers */

static inline int map_err(int rc)
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

static inline MDB_val val(const void *p, size_t n)
{
    MDB_val v;
    v.mv_data = (void *)p;
    v.mv_size = n;
    return v;
}

static inline int get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kn,
                      MDB_val *out)
{
    MDB_val key = val(k, kn);
    return mdb_get(txn, dbi, &key, out);
}

/* ---------------------------------------------------- records.c: layouts */

/* A little-endian u64 at p. */
void put_u64(unsigned char *p, uint64_t v);
uint64_t get_u64(const unsigned char *p);

/* A wallet record (at most WALLET_MAX bytes) and a top-credit record (at
 * most TOP_MAX bytes), their length returned. The decoders return 0 or
 * WS_ERR_CORRUPT. */
size_t wallet_encode(const ws_wallet *w, unsigned char *p);
int wallet_decode(const MDB_val *v, ws_wallet *w);
size_t top_encode(const ws_top *t, unsigned char *p);
int top_decode(const MDB_val *v, const char currency[3], ws_top *t);

/* Keys, written into the caller's buffer: a top list's (product NUL
 * currency) and a counter's ("<prefix>:<name>", 0 when it exceeds
 * COUNTER_KEY_MAX), their length returned; an outbox entry's (target,
 * seq) and its seq read back; an inbox entry's (source shard). */
size_t top_key(const char *product, size_t n, const char currency[3],
               char *key);
size_t counter_key(const char *prefix, const char *name, size_t n,
                   char *key);
void outbox_key(int target, uint64_t seq, unsigned char k[10]);
uint64_t outbox_seq(const unsigned char *k);
/* A statement line's key (its log position) and the position read back
 * (0 when not a position); a line (at most HISTORY_MAX bytes) with its
 * wallet's tag (history_tag, store.c) and its decoding (0 or
 * WS_ERR_CORRUPT). */
#define HISTORY_MAX (8 + 10 + 10 + 19 + 19 + 10 + 5 + 5 + 10 + \
                     2 * (3 + WS_MAX_ID))
void history_key(uint64_t pos, unsigned char key[8]);
uint64_t history_pos(const MDB_val *key);
size_t history_encode(const ws_history_entry *h, uint32_t tag,
                      unsigned char *p);
int history_decode(const MDB_val *v, uint32_t *tag, ws_history_entry *h);
/* The 32 bits of a wallet_id a line carries: a cursor into another
 * wallet's statement is refused. */
uint32_t history_tag(const char *wallet, size_t n);
void inbox_key(int from, unsigned char k[2]);

/* The source of a remembered id (12 bytes after its fingerprint), and
 * an outbox value split into the id and the value its shard remembers
 * (0 or WS_ERR_CORRUPT). */
void source_put(unsigned char *p, const ws_source_pos *src);
void source_get(const unsigned char *p, ws_source_pos *src);
int outbox_split(const MDB_val *data, MDB_val *id, MDB_val *seen);

/* ------------------------------------------------------ shard.c: a shard */

/* Opens shard `index` of `count` of a data directory of `format` in
 * `path` (its place not checked when count is 0), as s->mode asks: 0 or
 * an error with a sentence in err. */
int shard_open(ws_store *s, struct shard *sh, const char *path, int index,
               int count, int format, uint64_t map_max, char *err);
/* Closes it (a writer's last commit synced); its batch must not be open.
 * Never opened: nothing is done. */
void shard_close(struct shard *sh, int writer);
/* Begins a read transaction on it holding its resize lock shared: abort
 * the transaction, then unlock sh->resize. An LMDB code. */
int shard_read(struct shard *sh, MDB_txn **txn);

/* ----------------------------------------------- view.c: statement lines */

/* Calls fn for a wallet's lines in transaction txn of its shard's
 * history table dbi, newest first from position `from`: as
 * ws_view_history (WS_ERR_NOT_FOUND when the first line is another
 * wallet's; fn's non-zero value stops the walk and is returned). */
int history_walk(MDB_txn *txn, MDB_dbi dbi, const char *wallet, size_t n,
                 uint64_t from,
                 int (*fn)(const ws_history_entry *h, void *arg), void *arg);

/* ---------------------------------------------- view.c: merged top lists */

/* fn for each currency's top credits of a product: in one transaction
 * (tops_in), or merged over txn[k] of every shard k (tops_merged). */
int tops_in(MDB_txn *txn, MDB_dbi dbi, const char *product, size_t n,
            int (*fn)(const ws_top *t, void *arg), void *arg);
int tops_merged(ws_store *s, MDB_txn *const *txn, const char *product,
                size_t n, int (*fn)(const ws_top *t, void *arg), void *arg);

/* --------------------------------------------- batch.c: outbox and inbox */

/* The last outbox seq of shard `from` delivered to shard sh; dropping
 * sh's outbox entries for `target` up to `upto` (an LMDB code). */
int read_inbox(MDB_txn *txn, struct shard *sh, int from, uint64_t *seq);
int outbox_drop(MDB_txn *txn, struct shard *sh, int target, uint64_t upto);

/* ------------------------------------------- store.c: the data directory */

/* Creates `path` (it must not exist) holding `text`, fsync'ed: 0, or
 * -1 with errno set. */
int write_file_synced(const char *path, const char *text);
/* The same with the text of a format marker (WS_STORE_FORMAT, shards). */
int write_marker_file(const char *path, int shards);
/* fsync()s the directory dir (its entries): 0 or -1 with errno set. */
int sync_dir(const char *dir);
/* 1 when dir/name exists. */
int path_exists(const char *dir, const char *name);
/* The format and shard count in dir's marker: 0, WS_ERR_NOT_FOUND, or
 * WS_ERR_FORMAT with a sentence in err. */
int read_format(const char *dir, int *format, int *shards, char *err);
/* Takes dir's writer lock (*fd_out, held until closed): 0, or WS_ERR_IO
 * or WS_ERR_LOCKED with a sentence in err. */
int take_lock(const char *dir, int *fd_out, char *err);

#endif
