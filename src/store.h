/*
 * store.h - the state store: one LMDB environment per shard in
 * <data-dir>/state/<k>/ (DESIGN "Shards").
 *
 * A shard holds the wallets whose id hashes to it (ws_shard_index), their
 * debit days, the transaction ids that hash to it, its own top-credit
 * lists (merged over the shards on read: the overall top 5 is within the
 * union of the shards' top 5), its outcome counters (summed on read) and,
 * per input source, the offset below which it holds every record routed
 * to it (a source is read again from the smallest).
 *
 * Everything one batch of a shard changes is written in ONE LMDB write
 * transaction of that shard: the unit of exactly-once (DESIGN §1, §3).
 * Readers see every shard's committed batch, never half of one, and never
 * block the writers.
 *
 * The data directory carries a format marker (walletstream.format). A
 * directory written by another format, or an existing non-empty directory
 * that is not ours, is refused before anything in it is touched.
 *
 * Ownership: the store owns the LMDB environment, the writer lock and the
 * one write batch (there is a single writer per data directory, the
 * stream thread). Views are owned by their caller and must be ended.
 */
#ifndef WS_STORE_H
#define WS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "decimal.h"
#include "ws.h"

/* Format of the data directory this build writes: 2 has shards, 3 the
 * compact wallet records, 4 the wallets' statements (a statement log per
 * shard, wallet records that name their newest line; records.c). A
 * writer upgrades formats 2 and 3 in place when it opens them (nothing
 * is rewritten: older records are read as they are and rewritten when
 * they change); readers read all three. Format 1 (one environment) is
 * upgraded by ws_store_reshard. */
#define WS_STORE_FORMAT 4
#define WS_STORE_FORMAT_OLDEST 2
/* Most shards a data directory may have. */
#define WS_SHARDS_MAX 64

/* Room for an error sentence about a data directory. */
#define WS_STORE_ERR_MAX 512

/* The figures of one wallet (SPEC §4). */
typedef struct ws_wallet {
    char currency[3];
    uint8_t scale;          /* largest scale among applied amounts */
    ws_dec balance;
    ws_dec total_debit;     /* debits - cancelDebits */
    int64_t transactions;   /* applied transactions */
    int32_t first_day;      /* days since 1970-01-01, UTC */
    int32_t last_day;
    int32_t debit_days;     /* distinct days with a debit or cancelDebit */
    ws_instant last_event;  /* latest event timestamp */
    uint64_t history_head;  /* its newest statement line (a position in
                               its shard's log), 0: none */
} ws_wallet;

/* One of a product's top credits. */
typedef struct ws_top_entry {
    ws_dec amount;
    uint8_t scale;
    ws_instant ts;
    uint16_t tx_id_len;
    uint16_t wallet_id_len;
    char tx_id[WS_MAX_ID];
    char wallet_id[WS_MAX_ID];
} ws_top_entry;

/* The top credits of one product in one currency, best first. */
typedef struct ws_top {
    char currency[3];
    unsigned n;
    ws_top_entry e[WS_TOP_N];
} ws_top;

/* <0 when entry a ranks above b among top credits (larger amount, then
 * earlier timestamp, then smaller transaction_id in byte order). */
int ws_top_cmp(const ws_top_entry *a, const ws_top_entry *b);

/* Inserts e into t when it belongs to the top 5 and is not there yet;
 * returns 1 when t changed. */
int ws_top_insert(ws_top *t, const ws_top_entry *e);

/* The top lists of one product, by currency (ascending), merged from
 * several sources (shards, a group's instances): ws_top_set_add is a
 * ws_view_tops callback; full is set (and 1 returned) beyond 16
 * currencies. Zero it before the first add. */
typedef struct ws_top_set {
    unsigned n;
    ws_top t[16];
    int full;
} ws_top_set;
int ws_top_set_add(const ws_top *t, void *set);

/* A top list as bytes (as stored; its currency aside), at most
 * WS_TOP_PACKED_MAX, and back (0 or WS_ERR_CORRUPT): what a group's
 * instances send each other to merge their partitions' lists. */
#define WS_TOP_PACKED_MAX (2 + WS_TOP_N * (64 + 2 * WS_MAX_ID))
size_t ws_top_pack(const ws_top *t, unsigned char *out);
int ws_top_unpack(const void *p, size_t n, const char currency[3],
                  ws_top *t);

enum ws_store_mode {
    WS_STORE_READ = 0,      /* serve: read-only, beside a writer */
    WS_STORE_WRITE = 1      /* replay, run: the single writer */
};

typedef struct ws_store ws_store;
typedef struct ws_batch ws_batch;
typedef struct ws_view ws_view;

/* Opens the data directory `dir`. WRITE creates it when missing or empty
 * and takes its writer lock (DIR/LOCK, held until close); READ needs an
 * existing data directory. `map_max` is the largest size the state may
 * grow to in bytes (0: the default). On failure returns WS_ERR_FORMAT,
 * WS_ERR_LOCKED, WS_ERR_IO or WS_ERR_STORE and writes a sentence into
 * err[0..WS_STORE_ERR_MAX). */
int ws_store_open(const char *dir, enum ws_store_mode mode, uint64_t map_max,
                  ws_store **out, char *err);

/* The same with the shard count asked for: a new directory gets
 * `shards` (1 when 0, -shards when negative); an existing one with
 * another count is refused (WS_ERR_FORMAT, the sentence says how to
 * reshard) unless shards is 0 or negative (its own count is kept).
 * A writer first delivers the ids each shard committed for another one
 * (its outbox) to that shard. */
int ws_store_open_shards(const char *dir, enum ws_store_mode mode,
                         uint64_t map_max, int shards, ws_store **out,
                         char *err);

/* The number of shards, and the shard of a wallet or transaction id. */
int ws_store_shards(const ws_store *s);
int ws_store_shard_of(const ws_store *s, const char *id, size_t n);
int ws_shard_index(const char *id, size_t n, int shards);

/* Rewrites the state of data directory `dir` into `shards` shards: from
 * format 1 (an upgrade) or from format 2 with another count; *format and
 * *from say what it was (*format 0: it already had `shards` shards,
 * nothing was done; -1: an interrupted reshard was finished). Every wallet, debit day, id, top list (merged), counter
 * (summed) and offset is copied into state.new/ first and made durable;
 * then state/ is renamed to state.old/, state.new/ to state/, the format
 * marker replaced, and state.old/ removed. Interrupted at any point, the
 * old state is intact or the new one complete: run it again to finish.
 * Refused (WS_ERR_FORMAT) when the shards stopped at different offsets,
 * or (WS_ERR_LOCKED) while a writer holds the directory. */
int ws_store_reshard(const char *dir, int shards, int *from, int *format,
                     char *err);

/* Creates directory `path` and its missing parents (mode 0755). Returns
 * 0, or -1 with errno set. */
int ws_store_mkdirs(const char *path);

/* ------------------------------------------------- a group's instance */

/* A shard can be copied elsewhere change by change (run --assignment
 * group: each batch's changes go to the partition's state topic, and a
 * new owner applies them to its own shard). With `on`, every batch
 * records each record it writes or deletes. Writer, before its first
 * batch. */
void ws_store_journal(ws_store *s, int on);

/* Writes everything the batch holds into its transaction (the working
 * set, statement pruning, counters); ws_batch_commit does it when it
 * was not done. After it the batch's changes are complete: nothing more
 * may be written but marks (ws_batch_mark_set). Returns 0 or the
 * batch's first error. */
int ws_batch_seal(ws_batch *b);

/* Calls fn for each change of a sealed, journaled batch in the order
 * written: key (kn bytes: a table's byte, then the table's key) and
 * value (NULL: deleted). Stops at fn's first non-zero value and returns
 * it. ws_batch_changes counts them. */
int ws_batch_each_change(ws_batch *b,
                         int (*fn)(void *arg, const void *key, size_t kn,
                                   const void *value, size_t vn),
                         void *arg);
size_t ws_batch_changes(const ws_batch *b);

/* A restore: applies one change as ws_batch_each_change gave it (value
 * NULL: deletes) to the batch's shard, or empties the shard (every
 * record of its state; its settings stay). Such a batch bypasses the
 * working set and journal; nothing of it is kept in memory. Returns 0,
 * WS_ERR_CORRUPT (a key of no table) or a store error. */
int ws_batch_apply_change(ws_batch *b, const void *key, size_t kn,
                          const void *value, size_t vn);
int ws_batch_wipe(ws_batch *b);

/* A shard's own number under `name`, outside its state (never
 * journaled), written with the batch; and read back from the last
 * commit (WS_ERR_NOT_FOUND: never set). */
int ws_batch_mark_set(ws_batch *b, const char *name, uint64_t v);
int ws_store_mark_get(ws_store *s, int shard, const char *name,
                      uint64_t *v);

/* Whether transaction ids are remembered by shards this process serves
 * other than `except` (in a group: an id used on two partitions), as of
 * their last commits: begin, then ws_seen_probe_id for each id (*found 1:
 * remembered; 0 or a store error), then end (its read transactions,
 * opened at first use, are ended). */
typedef struct ws_seen_probe {
    ws_store *store;
    int except;
    uint64_t open;
    struct MDB_txn *txn[64];
} ws_seen_probe;
void ws_seen_probe_begin(ws_seen_probe *p, ws_store *s, int except);
int ws_seen_probe_id(ws_seen_probe *p, const char *id, size_t n, int *found);
void ws_seen_probe_end(ws_seen_probe *p);

/* The shards this process serves, bit k for shard k (all of them, unless
 * set: a group's instance serves those of its partitions). Views read
 * only these: a wallet of another shard is WS_ERR_NOT_OWNED, merges and
 * sums cover the owned shards. */
void ws_store_set_owned(ws_store *s, uint64_t mask);
uint64_t ws_store_owned(ws_store *s);

/* Makes every committed batch durable. Commits flush the batch's pages
 * with fdatasync but write the meta page that points at them without a
 * sync of its own (MDB_NOMETASYNC: one sync per commit instead of two);
 * the next commit's sync carries it. A power loss can therefore undo the
 * last committed batch, never corrupt the state: state and offsets go
 * back together and its records are read and applied again. Returns 0 or
 * WS_ERR_IO. Writer only (a no-op on a reader). */
int ws_store_sync(ws_store *s);

/* Closes the store (syncing a writer's last commit); an open batch is
 * aborted. NULL is accepted. */
void ws_store_close(ws_store *s);

/* A number that changes whenever a batch of this process commits (a
 * writer's; a reader's never changes). Any thread. */
uint64_t ws_store_commits(ws_store *s);

/* A reader waits for what shard `shard` (-1: every shard) has not
 * committed yet (read-your-writes): its open batch should commit
 * without waiting for more records. And when that was last asked
 * (ws_clock_ms; 0: never), for the shard's writer. Any thread. */
void ws_store_want_commit(ws_store *s, int shard);
int64_t ws_store_commit_wanted(ws_store *s, int shard);

/* Bytes the state uses on disk and its current map limit. Any thread. */
void ws_store_usage(ws_store *s, uint64_t *used, uint64_t *limit);

/* ------------------------------------------- write batch: stream thread */

/* Opens the write batch of shard 0 (ws_store_begin) or of `shard`. One
 * batch per shard is open at a time, used by one thread (the shard's
 * worker); batches of different shards commit independently. Returns 0
 * or WS_ERR_STORE. */
int ws_store_begin(ws_store *s, ws_batch **out);
int ws_store_begin_shard(ws_store *s, int shard, ws_batch **out);
int ws_batch_shard(const ws_batch *b);

/* Commits (one fdatasync; see ws_store_sync) everything the batch wrote,
 * counters and offsets included. Returns 0, WS_ERR_MAP_FULL,
 * WS_ERR_TXN_FULL, WS_ERR_NO_SPACE or WS_ERR_STORE; on error nothing of
 * the batch is kept. The batch is finished either way. WS_ERR_TXN_FULL
 * (here, from ws_batch_flush or ws_batch_tops, which write the working
 * set back): the batch touched more pages than one LMDB transaction can
 * hold (about 512 MiB); apply the same records again in smaller
 * batches. */
int ws_batch_commit(ws_batch *b);

/* An upper estimate of the pages the batch's LMDB write transaction holds
 * in memory (each page it changes is copied into the heap until the
 * commit writes it): per table, the keys written, but no more than the
 * table's pages when the batch began, plus a page per 16 keys for the
 * pages their inserts add. A worker commits early when it passes its
 * share of WS_BATCH_PAGES_MAX, which bounds the memory of a batch whose
 * keys are scattered over a large state (docs/DECISIONS.md, "Batch
 * memory"). */
#define WS_BATCH_PAGES_MAX 49152
size_t ws_batch_pages(const ws_batch *b);

/* Writes the batch's working set into its LMDB transaction now (commit
 * does it too): a full map or transaction shows here. Returns 0,
 * WS_ERR_MAP_FULL, WS_ERR_TXN_FULL, WS_ERR_NO_SPACE or WS_ERR_STORE; on
 * error abort the batch. */
int ws_batch_flush(ws_batch *b);

/* Drops everything the batch wrote. */
void ws_batch_abort(ws_batch *b);

/* Remembers transaction id[0..n) with content fingerprint fp, unless it
 * is already remembered: then *claimed is 0 and existing holds the stored
 * fingerprint. Returns 0 or an error.
 *
 * Batch reads and writes go through the batch's working set (wset.h):
 * each record is read from LMDB once per batch and written back once, in
 * key order, at commit. */
int ws_batch_seen_claim(ws_batch *b, const char *id, size_t n,
                        const unsigned char fp[16], int *claimed,
                        unsigned char existing[16]);

/* Forgets a transaction id claimed in this batch (it was rejected after
 * all). Returns 0 or an error. */
int ws_batch_seen_release(ws_batch *b, const char *id, size_t n);

/* Where a record was read: Kafka partition and offset (-1: a file, or
 * not known). */
typedef struct ws_source_pos {
    int32_t partition;
    int64_t offset;
} ws_source_pos;

/* The remembered fingerprint of an id of this shard (*found 0 when
 * none) and, for an id applied by a record of another shard read from
 * Kafka, that record's source; and remembering one (src NULL or
 * partition -1: no source). The source lets a restored shard that is
 * ahead of the record's shard (a backup copied shard by shard) know
 * the record again when it is read again, instead of calling it a
 * duplicate of itself. */
int ws_batch_seen_get(ws_batch *b, const char *id, size_t n,
                      unsigned char fp[16], ws_source_pos *src, int *found);
int ws_batch_seen_put(ws_batch *b, const char *id, size_t n,
                      const unsigned char fp[16], const ws_source_pos *src);

/* The outbox: an id of shard `target` applied by a record of this
 * batch's shard, committed with the record, numbered `seq` (from
 * ws_store_outbox_next, one sequence per pair of shards). The target
 * remembers it in its own batch with ws_batch_seen_put and records the
 * sequence delivered with ws_batch_inbox_set; ws_batch_outbox_prune then
 * drops what every target has committed. At open, what was committed but
 * not delivered is delivered (no id is forgotten by a crash between the
 * two commits). */
int ws_batch_outbox_add(ws_batch *b, int target, uint64_t seq,
                        const char *id, size_t n, const unsigned char fp[16],
                        const ws_source_pos *src);
int ws_batch_inbox_set(ws_batch *b, int from, uint64_t seq);
int ws_batch_outbox_prune(ws_batch *b);
uint64_t ws_store_outbox_next(const ws_store *s, int from, int target);

/* Delivers every shard's committed outbox to its targets and empties
 * it (done by a writer's open; again after dropping open batches). No
 * batch may be open. Returns 0 or an error with a sentence in err. */
int ws_store_recover(ws_store *s, char *err);

/* A wallet's figures: 0 (found), WS_ERR_NOT_FOUND or an error. */
int ws_batch_wallet_get(ws_batch *b, const char *id, size_t n, ws_wallet *w);
int ws_batch_wallet_put(ws_batch *b, const char *id, size_t n,
                        const ws_wallet *w);

/* What a coming record will read, asked of the CPU's caches ahead
 * (ws_wset_prefetch; entries 0: the working set's slots, 1: the entries
 * in them, once the slots are cached): its id, wallet and product, the
 * top credits of product/currency when currency is not NULL (a credit),
 * and the debit day *day when day is not NULL (a debit or its cancel).
 * Changes nothing. */
void ws_batch_prefetch(const ws_batch *b, int entries, const char *tx_id,
                       size_t tn, const char *wallet, size_t wn,
                       const char *product, size_t pn, const char *currency,
                       const int32_t *day);

/* Records that the wallet had a debit day; *added is 1 when the day is
 * new for the wallet, 0 when it was already recorded. */
int ws_batch_debit_day_add(ws_batch *b, const char *wallet, size_t n,
                           int32_t day, int *added);

/* The top credits of product/currency: 0 (found), WS_ERR_NOT_FOUND (t is
 * then empty with the currency set) or an error. */
int ws_batch_top_get(ws_batch *b, const char *product, size_t n,
                     const char currency[3], ws_top *t);
int ws_batch_top_put(ws_batch *b, const char *product, size_t n,
                     const ws_top *t);

/* Marks a product as seen (it answers /top_credits even without
 * credits); *added is 1 when it was not seen before. */
int ws_batch_product_mark(ws_batch *b, const char *product, size_t n,
                          int *added);

/* Like ws_view_tops, inside the open batch (it sees its own writes, and
 * the other shards' committed lists). */
int ws_batch_tops(ws_batch *b, const char *product, size_t n,
                  int (*fn)(const ws_top *t, void *arg), void *arg);

/* Counts one outcome (and its reason when rejected); the totals are
 * written at commit. */
void ws_batch_count(ws_batch *b, enum ws_outcome o, enum ws_reason r);

/* Records the next offset to read from `source` (e.g. topic/partition),
 * written with the batch. */
int ws_batch_offset_set(ws_batch *b, const char *source, size_t n,
                        int64_t next);

/* Adds `records` to the records of `source` (topic/partition) deleted
 * from the log before they were read; committed with the batch, so that
 * the count and the offset read past them change together. Returns 0 or
 * an error (the batch's first). */
int ws_batch_lost_add(ws_batch *b, const char *source, size_t n,
                      int64_t records);

/* ------------------------------------------------- wallet statements */

/* One line of a wallet's statement: an applied transaction with the
 * wallet's balance after it (SPEC 8a). `seq` numbers the wallet's
 * applied transactions from 1, in the order they were applied (it is the
 * wallet's `transactions` count after this one). Lines are appended to
 * their shard's log at `pos` and link to the wallet's previous line. */
typedef struct ws_history_entry {
    uint64_t pos;               /* its place in the shard's log */
    uint64_t prev;              /* the wallet's previous line, 0: none */
    int64_t seq;
    int type;                   /* enum ws_type */
    ws_dec amount;
    uint8_t scale;              /* of the amount, as written */
    ws_dec balance;             /* the wallet's balance after it */
    uint8_t balance_scale;      /* the wallet's scale after it */
    ws_instant ts;
    ws_source_pos src;          /* Kafka partition and offset; for a
                                   replayed file, its index and the line */
    uint16_t tx_id_len;
    uint16_t product_id_len;
    char tx_id[WS_MAX_ID];
    char product_id[WS_MAX_ID];
} ws_history_entry;

/* What a writer keeps of statements: none (WS_HISTORY_OFF), all
 * (WS_HISTORY_ALL) or, when > 0, the lines of the last `days` days of
 * event time: each commit drops, oldest applied first, the lines whose
 * event day is more than `days` before the latest of its batch (at most
 * WS_HISTORY_PRUNE_MAX a commit). */
#define WS_HISTORY_OFF (-1)
#define WS_HISTORY_ALL 0
#define WS_HISTORY_DAYS_MAX 3650000
#define WS_HISTORY_PRUNE_MAX 20000

/* Writer only, before its first batch: records the setting in every
 * shard; turning statements off drops the lines kept so far (turned on
 * again, statements start with the transactions applied from then on).
 * Returns 0 or a store error. */
int ws_store_set_history(ws_store *s, int days);

/* Whether the batch keeps statements. */
int ws_batch_history_on(const ws_batch *b);

/* Appends the line of an applied transaction of a wallet (h->seq is the
 * wallet's new `transactions`; h->pos and h->prev are set here, prev
 * from *head) and sets *head, the wallet's history_head, to it. Returns
 * 0 or a store error. */
int ws_batch_history_add(ws_batch *b, const char *wallet, size_t n,
                         ws_history_entry *h, uint64_t *head);

/* Whether the state keeps statements (its writer's last setting):
 * *days as ws_store_set_history. Returns 0 or a store error. */
int ws_view_history_kept(ws_view *v, int *days);

/* Calls fn for the lines of a wallet's statement, newest first, from the
 * line at position `from` (the wallet's history_head, or a line's prev)
 * back to its oldest line kept. Stops when fn returns non-zero (and
 * returns that value); else returns 0, WS_ERR_NOT_FOUND when the line
 * at `from` is another wallet's (a cursor of another statement), or a
 * store error. The entry is valid during the call. */
int ws_view_history(ws_view *v, const char *wallet, size_t n, uint64_t from,
                    int (*fn)(const ws_history_entry *h, void *arg),
                    void *arg);

/* -------------------------------------------------- reads: any thread */

/* Opens a view of the latest committed batch. Returns 0, WS_ERR_NOMEM or
 * WS_ERR_STORE. End it with ws_view_end(). */
int ws_store_view(ws_store *s, ws_view **out);
void ws_view_end(ws_view *v);

int ws_view_shards(const ws_view *v);
/* The shards the view reads (bit k: shard k): those owned when it began. */
uint64_t ws_view_owned(const ws_view *v);

int ws_view_wallet(ws_view *v, const char *id, size_t n, ws_wallet *w);

/* 0 when the product was seen in an applied transaction, else
 * WS_ERR_NOT_FOUND. */
int ws_view_product(ws_view *v, const char *id, size_t n);

/* Calls fn for each currency's top credits of the product, in ascending
 * currency order; stops early when fn returns non-zero. The ws_top is
 * valid during the call only. Returns 0 or an error. */
int ws_view_tops(ws_view *v, const char *product, size_t n,
                 int (*fn)(const ws_top *t, void *arg), void *arg);

/* The stored outcome and reason totals. */
int ws_view_counts(ws_view *v, ws_counts *out);

/* The stored count of records of `source` lost before they were read
 * (ws_batch_lost_add); 0 when none. Returns 0 or an error. */
int ws_view_lost(ws_view *v, const char *source, size_t n, int64_t *total);

/* The stored next offset of `source`: the smallest over the shards, 0
 * (found), or WS_ERR_NOT_FOUND when a shard has none. */
int ws_view_offset(ws_view *v, const char *source, size_t n, int64_t *next);
/* The same for one shard. */
int ws_view_shard_offset(ws_view *v, int shard, const char *source, size_t n,
                         int64_t *next);

/* Entries of the tables that grow with the input, named by
 * ws_state_table_names: wallets, products, top-credit lists (one per
 * product and currency), debit days, transaction ids seen, statement
 * lines. */
#define WS_STATE_TABLES 6
typedef struct ws_state_sizes {
    uint64_t entries[WS_STATE_TABLES];
} ws_state_sizes;
extern const char *const ws_state_table_names[WS_STATE_TABLES];
int ws_view_sizes(ws_view *v, ws_state_sizes *out);
/* ------------------------------------ whole tables, in key (byte) order */

/* Calls fn for every wallet of the view, in ascending byte order of
 * wallet_id; the id and the ws_wallet are valid during the call only.
 * Stops when fn returns non-zero and returns that value; else returns 0,
 * WS_ERR_CORRUPT or WS_ERR_STORE. Any thread. */
int ws_view_each_wallet(ws_view *v,
                        int (*fn)(const char *id, size_t n,
                                  const ws_wallet *w, void *arg),
                        void *arg);

/* Calls fn for every product seen in an applied transaction (those that
 * answer /top_credits), in ascending byte order of product_id; ws_view_tops
 * may be called from fn on the same view. Returns as ws_view_each_wallet. */
int ws_view_each_product(ws_view *v,
                         int (*fn)(const char *id, size_t n, void *arg),
                         void *arg);

/* The parts of a stored source "<topic>/<partition>": 0 with the
 * topic's length and the partition, or -1 when it has another form. */
int ws_source_split(const char *source, size_t n, size_t *topic_len,
                    int32_t *partition);

/* Calls fn for every stored input offset (source such as "topic/0", next
 * offset to read), in ascending byte order of source. Returns as
 * ws_view_each_wallet. */
int ws_view_each_offset(ws_view *v,
                        int (*fn)(const char *source, size_t n, int64_t next,
                                  void *arg),
                        void *arg);
/* The same for the sources `shard` stores, each at that shard's own
 * offset (a group's shard also stores, per partition of the input
 * topic, the offset past the newest record of it that it applied:
 * router.h, origin_key). WS_ERR_NOT_OWNED when the view has no such
 * shard. */
int ws_view_each_shard_offset(ws_view *v, int shard,
                              int (*fn)(const char *source, size_t n,
                                        int64_t next, void *arg),
                              void *arg);

#endif
