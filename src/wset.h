/*
 * wset.h - the working set of one write batch: every record of the store
 * that the batch has read or written, by table and key.
 *
 * The store reads a record from LMDB once per batch, keeps it here, lets
 * the batch change it in memory, and writes the changed records back in
 * key order when the batch is flushed. Records of one batch therefore see
 * each other's changes, LMDB sees one write per changed key per batch
 * instead of one per event, and the write-back walks each B-tree in order
 * (DESIGN §3, measured in docs/BENCHMARKS.md "Profile").
 *
 * Ownership: the working set owns its entries and their bytes (an arena of
 * chunks, kept from batch to batch); an entry pointer is valid until the
 * next ws_wset_clear(). Stream thread only.
 */
#ifndef WS_WSET_H
#define WS_WSET_H

#include <stddef.h>
#include <stdint.h>

/* What the batch knows about one record. */
enum ws_wstate {
    WS_WE_ABSENT = 0,   /* not in the store, nothing to write */
    WS_WE_CLEAN = 1,    /* in the store with value `val` */
    WS_WE_DIRTY = 2     /* to be written with value `val` */
};

typedef struct ws_wentry {
    uint64_t hash;
    unsigned char *val;     /* vlen bytes, room for vcap */
    uint32_t vlen, vcap;
    uint16_t klen;
    uint8_t table;          /* the store's table number */
    uint8_t state;          /* enum ws_wstate */
    uint8_t listed;         /* in the working set's list of dirty
                               entries (wset.c) */
    uint8_t kept;           /* kept from the last batch, not used since */
    unsigned char key[];    /* klen bytes */
} ws_wentry;

typedef struct ws_wset ws_wset;

int ws_wset_new(ws_wset **out);
void ws_wset_free(ws_wset *w);

/* Asks the CPU to fetch the slot where table/key would be found (entry
 * 0), or, once that slot is in the cache, the entry it holds (entry 1): a
 * batch calls it for the keys of the records after the current one, so
 * that the probes of ws_wset_find no longer wait for memory. Changes
 * nothing. */
void ws_wset_prefetch(const ws_wset *w, unsigned table, const void *key,
                      size_t klen, int entry);

/* The entry of table/key, or NULL. */
ws_wentry *ws_wset_find(ws_wset *w, unsigned table, const void *key,
                        size_t klen);

/* Adds an entry for table/key (which must not be present yet) with state
 * and a copy of val[0..vlen), with room for at least vcap bytes. Returns
 * NULL when out of memory. */
ws_wentry *ws_wset_add(ws_wset *w, unsigned table, const void *key,
                       size_t klen, enum ws_wstate state, const void *val,
                       size_t vlen, size_t vcap);

/* Replaces the entry's value (growing its room when needed) and sets its
 * state. Returns 0 or WS_ERR_NOMEM. An entry whose state the caller sets
 * to WS_WE_DIRTY by hand is not written back: dirty it through here. */
int ws_wset_set(ws_wset *w, ws_wentry *e, enum ws_wstate state,
                const void *val, size_t vlen);

/* The entries dirtied since the last call that are still dirty, sorted by
 * table, then key in LMDB's default order (bytes, then shorter first);
 * the caller writes them back (and marks them clean). The array is owned
 * by the working set and valid until the next call of any ws_wset
 * function but this one. Returns 0 or WS_ERR_NOMEM. */
int ws_wset_dirty(ws_wset *w, ws_wentry ***out, size_t *n);

/* How many times entries of `table` were put on the write-back list in
 * this batch (since the last ws_wset_clear): at least the number of its
 * distinct keys written. */
size_t ws_wset_written(const ws_wset *w, unsigned table);

/* Number of entries. */
size_t ws_wset_count(const ws_wset *w);

/* Forgets every entry, keeping (most of) the memory for the next batch. */
void ws_wset_clear(ws_wset *w);

/* Forgets every entry but the clean and absent ones of the tables in the
 * bit mask `tables` (bit t: table t), up to about max_bytes of them, for
 * the next batch: called after a commit, when they hold exactly what the
 * store holds, so that the next batch finds them without reading LMDB.
 * While fewer than an eighth of the entries kept are used by the next
 * batch, it keeps none for the next 8 (a state far larger than the
 * bound: keeping costs a copy and rarely helps). */
void ws_wset_clear_keeping(ws_wset *w, uint32_t tables, size_t max_bytes);

#endif
