/*
 * wset.c - open addressing over entries carved from an arena of chunks.
 *
 * Entries never move (pointers to them stay valid for the batch), so the
 * arena grows by whole chunks instead of realloc. Clearing rewinds the
 * chunks and empties the slot array; both are kept for the next batch,
 * up to a bound, so a steady stream of batches allocates nothing.
 *
 * The write-back takes the entries dirtied since the last one from a list
 * (scanning every slot for them took 4 % of a replay) and sorts them by
 * radix on their first 15 key bytes (glibc's qsort with a comparison
 * function took 6 %; docs/BENCHMARKS.md, "Per-core cost").
 */
#include "wset.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ws.h"

#define CHUNK_SIZE ((size_t)1 << 20)
/* Arena kept across batches; chunks beyond it are freed at clear. */
#define KEEP_BYTES ((size_t)64 << 20)
#define MIN_SLOTS 1024

struct chunk {
    struct chunk *next;
    size_t used, cap;
    unsigned char data[];
};

/* The hash sits beside the pointer so that a probe touches the entry
 * itself only when the hashes match (measured: probing through the
 * pointer made the slot lookup 14 % of a replay's time). */
struct slot {
    uint64_t hash;
    ws_wentry *e;           /* NULL: empty slot */
};

/* A dirty entry with its sort key: table and the key's first 15 bytes as
 * two big-endian integers, so that most comparisons need no memcmp. */
struct sorted {
    uint64_t k0, k1;
    ws_wentry *e;
};

struct ws_wset {
    struct chunk *first, *cur;
    struct slot *slots;
    size_t nslots;          /* a power of two, more than twice count */
    size_t count;
    ws_wentry **list;       /* entries dirtied since the last write-back */
    size_t nlist, list_cap;
    size_t written[256];    /* listings by table since the last clear */
    unsigned char *keep;    /* scratch: the entries kept over a clear */
    size_t keep_cap;
    size_t kept, hits;      /* entries kept at the last clear, and how
                               many of them the batch since used */
    int keep_pause;         /* clears left that keep nothing */
    struct sorted *sort, *tmp;
    ws_wentry **dirty;
    size_t dirty_cap;
};

int ws_wset_new(ws_wset **out)
{
    ws_wset *w = calloc(1, sizeof *w);

    if (!w)
        return WS_ERR_NOMEM;
    w->nslots = MIN_SLOTS;
    w->slots = calloc(w->nslots, sizeof *w->slots);
    if (!w->slots) {
        free(w);
        return WS_ERR_NOMEM;
    }
    *out = w;
    return WS_OK;
}

void ws_wset_free(ws_wset *w)
{
    struct chunk *c, *next;

    if (!w)
        return;
    for (c = w->first; c; c = next) {
        next = c->next;
        free(c);
    }
    free(w->slots);
    free(w->list);
    free(w->keep);
    free(w->sort);
    free(w->tmp);
    free(w->dirty);
    free(w);
}

/* Puts a dirty entry on the list of the next write-back (once). */
static int list_dirty(ws_wset *w, ws_wentry *e)
{
    if (e->listed)
        return WS_OK;
    if (w->nlist == w->list_cap) {
        size_t cap = w->list_cap ? w->list_cap * 2 : 1024;
        ws_wentry **l = realloc(w->list, cap * sizeof *l);

        if (!l)
            return WS_ERR_NOMEM;
        w->list = l;
        w->list_cap = cap;
    }
    w->list[w->nlist++] = e;
    e->listed = 1;
    w->written[e->table]++;
    return WS_OK;
}

/* n bytes, 8-aligned, from the arena. */
static void *arena_alloc(ws_wset *w, size_t n)
{
    struct chunk *c = w->cur, *last = NULL;
    void *p;

    /* Chunks after cur are unused in this batch (clear rewound them). */
    n = (n + 7) & ~(size_t)7;
    while (c && c->used + n > c->cap) {
        last = c;
        c = c->next;
    }
    if (!c) {
        size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;

        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = NULL;
        c->used = 0;
        c->cap = cap;
        if (last)
            last->next = c;
        else
            w->first = c;
    }
    w->cur = c;
    p = c->data + c->used;
    c->used += n;
    return p;
}

static uint64_t hash_of(unsigned table, const void *key, size_t klen)
{
    return XXH3_64bits_withSeed(key, klen, table);
}

static struct slot *slot_for(struct slot *slots, size_t nslots, uint64_t h,
                              unsigned table, const void *key, size_t klen)
{
    size_t i = (size_t)h & (nslots - 1);

    for (;;) {
        struct slot *sl = &slots[i];

        if (!sl->e || (sl->hash == h && sl->e->table == table &&
                       sl->e->klen == klen &&
                       memcmp(sl->e->key, key, klen) == 0))
            return sl;
        i = (i + 1) & (nslots - 1);
    }
}

void ws_wset_prefetch(const ws_wset *w, unsigned table, const void *key,
                      size_t klen, int entry)
{
    uint64_t h = hash_of(table, key, klen);
    const struct slot *sl = &w->slots[(size_t)h & (w->nslots - 1)];

    if (!entry) {
        __builtin_prefetch(sl);
        return;
    }
    /* The slot came in at the first call: fetch the entry it points to,
     * header, key and (allocated right after them) value. */
    if (sl->e && sl->hash == h) {
        __builtin_prefetch(sl->e);
        __builtin_prefetch((const char *)sl->e + 64);
    }
}

ws_wentry *ws_wset_find(ws_wset *w, unsigned table, const void *key,
                        size_t klen)
{
    ws_wentry *e = slot_for(w->slots, w->nslots, hash_of(table, key, klen),
                            table, key, klen)->e;

    if (e && e->kept) {
        e->kept = 0;
        w->hits++;
    }
    return e;
}

static int grow(ws_wset *w)
{
    size_t n = w->nslots * 2, i;
    struct slot *slots = calloc(n, sizeof *slots);

    if (!slots)
        return WS_ERR_NOMEM;
    for (i = 0; i < w->nslots; i++) {
        ws_wentry *e = w->slots[i].e;

        if (e)
            *slot_for(slots, n, e->hash, e->table, e->key, e->klen) =
                w->slots[i];
    }
    free(w->slots);
    w->slots = slots;
    w->nslots = n;
    return WS_OK;
}

ws_wentry *ws_wset_add(ws_wset *w, unsigned table, const void *key,
                       size_t klen, enum ws_wstate state, const void *val,
                       size_t vlen, size_t vcap)
{
    uint64_t h = hash_of(table, key, klen);
    ws_wentry *e;
    struct slot *slot;

    if (vcap < vlen)
        vcap = vlen;
    if (klen > UINT16_MAX || vcap > UINT32_MAX)
        return NULL;
    if ((w->count + 1) * 2 > w->nslots && grow(w) != WS_OK)
        return NULL;
    e = arena_alloc(w, sizeof *e + klen);
    if (!e)
        return NULL;
    e->val = vcap ? arena_alloc(w, vcap) : NULL;
    if (vcap && !e->val)
        return NULL;
    e->hash = h;
    e->klen = (uint16_t)klen;
    e->table = (uint8_t)table;
    e->state = (uint8_t)state;
    e->listed = 0;
    e->kept = 0;
    e->vcap = (uint32_t)vcap;
    e->vlen = (uint32_t)vlen;
    memcpy(e->key, key, klen);
    if (vlen)
        memcpy(e->val, val, vlen);
    if (state == WS_WE_DIRTY && list_dirty(w, e) != WS_OK)
        return NULL;
    slot = slot_for(w->slots, w->nslots, h, table, key, klen);
    slot->hash = h;
    slot->e = e;
    w->count++;
    return e;
}

int ws_wset_set(ws_wset *w, ws_wentry *e, enum ws_wstate state,
                const void *val, size_t vlen)
{
    if (vlen > e->vcap) {
        unsigned char *p;

        if (vlen > UINT32_MAX || !(p = arena_alloc(w, vlen)))
            return WS_ERR_NOMEM;
        e->val = p;
        e->vcap = (uint32_t)vlen;
    }
    if (state == WS_WE_DIRTY && list_dirty(w, e) != WS_OK)
        return WS_ERR_NOMEM;
    if (vlen)
        memmove(e->val, val, vlen);
    e->vlen = (uint32_t)vlen;
    e->state = (uint8_t)state;
    return WS_OK;
}

/* Bytes key[from..from+n) as a big-endian integer, zero-padded. */
static uint64_t key_bits(const ws_wentry *e, size_t from, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = v << 8 | (from + i < e->klen ? e->key[from + i] : 0);
    return v;
}

/* The table, then LMDB's default key order: bytes, then shorter first. */
static int sorted_cmp(const void *pa, const void *pb)
{
    const struct sorted *x = pa, *y = pb;
    const ws_wentry *a = x->e, *b = y->e;
    size_t n;
    int c;

    if (x->k0 != y->k0)
        return x->k0 < y->k0 ? -1 : 1;
    if (x->k1 != y->k1)
        return x->k1 < y->k1 ? -1 : 1;
    n = a->klen < b->klen ? a->klen : b->klen;
    c = memcmp(a->key, b->key, n);
    if (c != 0)
        return c;
    return (a->klen > b->klen) - (a->klen < b->klen);
}

/* Sorts a[0..n) by (k0, k1): least significant byte first, one stable
 * counting pass per byte, skipping bytes that all entries share (the
 * table and common prefixes); tmp has room for n. Returns the array that
 * holds the result (a or tmp). */
static struct sorted *radix_sort(struct sorted *a, struct sorted *tmp,
                                 size_t n)
{
    static const int passes = 16;
    size_t count[16][256], i;
    int p;

    memset(count, 0, sizeof count);
    for (i = 0; i < n; i++)
        for (p = 0; p < passes; p++) {
            uint64_t k = p < 8 ? a[i].k1 : a[i].k0;

            count[p][(k >> (8 * (p % 8))) & 0xff]++;
        }
    for (p = 0; p < passes; p++) {
        size_t pos[256], sum = 0;
        struct sorted *t;
        int b, skip = 0;

        for (b = 0; b < 256; b++) {
            if (count[p][b] == n)
                skip = 1;
            pos[b] = sum;
            sum += count[p][b];
        }
        if (skip)
            continue;
        for (i = 0; i < n; i++) {
            uint64_t k = p < 8 ? a[i].k1 : a[i].k0;

            tmp[pos[(k >> (8 * (p % 8))) & 0xff]++] = a[i];
        }
        t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

int ws_wset_dirty(ws_wset *w, ws_wentry ***out, size_t *n)
{
    struct sorted *s;
    size_t i, j, k = 0;

    if (w->dirty_cap < w->nlist) {
        size_t cap = w->nlist;
        ws_wentry **d = realloc(w->dirty, cap * sizeof *d);

        if (!d)
            return WS_ERR_NOMEM;
        w->dirty = d;
        if (!(s = realloc(w->sort, cap * sizeof *s)))
            return WS_ERR_NOMEM;
        w->sort = s;
        if (!(s = realloc(w->tmp, cap * sizeof *s)))
            return WS_ERR_NOMEM;
        w->tmp = s;
        w->dirty_cap = cap;
    }
    for (i = 0; i < w->nlist; i++) {
        ws_wentry *e = w->list[i];

        e->listed = 0;
        if (e->state == WS_WE_DIRTY) {
            w->sort[k].k0 = (uint64_t)e->table << 56 | key_bits(e, 0, 7);
            w->sort[k].k1 = key_bits(e, 7, 8);
            w->sort[k++].e = e;
        }
    }
    w->nlist = 0;
    s = k > 1 ? radix_sort(w->sort, w->tmp, k) : w->sort;
    /* Keys equal in their first 15 bytes: by the whole key. */
    for (i = 0; i < k; i = j) {
        for (j = i + 1; j < k && s[j].k0 == s[i].k0 && s[j].k1 == s[i].k1;
             j++)
            ;
        if (j - i > 1)
            qsort(s + i, j - i, sizeof *s, sorted_cmp);
    }
    for (i = 0; i < k; i++)
        w->dirty[i] = s[i].e;
    *out = w->dirty;
    *n = k;
    return WS_OK;
}

size_t ws_wset_written(const ws_wset *w, unsigned table)
{
    return table < 256 ? w->written[table] : 0;
}

size_t ws_wset_count(const ws_wset *w)
{
    return w->count;
}

void ws_wset_clear(ws_wset *w)
{
    struct chunk *c, *next;
    size_t kept = 0, want;

    /* Keep a slot array sized for the batch just done, not the largest
     * batch ever: a small batch then clears a small array. */
    want = MIN_SLOTS;
    while (want < w->count * 4)
        want *= 2;
    if (w->nslots > want * 2) {
        struct slot *slots = calloc(want, sizeof *slots);

        if (slots) {
            free(w->slots);
            w->slots = slots;
            w->nslots = want;
        } else {
            memset(w->slots, 0, w->nslots * sizeof *w->slots);
        }
    } else {
        memset(w->slots, 0, w->nslots * sizeof *w->slots);
    }
    w->count = 0;
    w->nlist = 0;
    memset(w->written, 0, sizeof w->written);

    for (c = w->first; c; c = c->next) {
        kept += c->cap;
        c->used = 0;
        if (kept >= KEEP_BYTES && c->next) {
            for (next = c->next; next; next = c->next) {
                c->next = next->next;
                free(next);
            }
        }
    }
    w->cur = w->first;
}

/* One kept entry in the scratch buffer: this header, the key, the value. */
struct kept {
    uint32_t vlen;
    uint16_t klen;
    uint8_t table, state;
};

/* Appends n bytes to the scratch buffer at *used; 0 or WS_ERR_NOMEM. */
static int keep_put(ws_wset *w, size_t *used, const void *p, size_t n)
{
    if (n == 0)
        return WS_OK;
    if (*used + n > w->keep_cap) {
        size_t cap = w->keep_cap ? w->keep_cap : 65536;
        unsigned char *k;

        while (cap < *used + n)
            cap *= 2;
        if (!(k = realloc(w->keep, cap)))
            return WS_ERR_NOMEM;
        w->keep = k;
        w->keep_cap = cap;
    }
    memcpy(w->keep + *used, p, n);
    *used += n;
    return WS_OK;
}

void ws_wset_clear_keeping(ws_wset *w, uint32_t tables, size_t max_bytes)
{
    size_t i, used = 0, at;
    int ok = WS_OK;

    if (w->kept > 0 && w->hits * 8 < w->kept)
        w->keep_pause = 8;
    w->kept = w->hits = 0;
    if (w->keep_pause > 0) {
        w->keep_pause--;
        ws_wset_clear(w);
        return;
    }
    for (i = 0; i < w->nslots && ok == WS_OK && used < max_bytes; i++) {
        ws_wentry *e = w->slots[i].e;
        struct kept k;

        if (!e || e->table >= 32 || !(tables >> e->table & 1) ||
            e->state == WS_WE_DIRTY)
            continue;
        k.vlen = e->vlen;
        k.klen = e->klen;
        k.table = e->table;
        k.state = e->state;
        if ((ok = keep_put(w, &used, &k, sizeof k)) == WS_OK &&
            (ok = keep_put(w, &used, e->key, e->klen)) == WS_OK)
            ok = keep_put(w, &used, e->val, e->vlen);
    }
    ws_wset_clear(w);
    if (ok != WS_OK)
        return;         /* a cache only: the next batch reads LMDB */
    for (at = 0; at < used;) {
        struct kept k;
        ws_wentry *e;

        memcpy(&k, w->keep + at, sizeof k);
        at += sizeof k;
        e = ws_wset_add(w, k.table, w->keep + at, k.klen,
                        (enum ws_wstate)k.state, w->keep + at + k.klen,
                        k.vlen, k.vlen);
        at += (size_t)k.klen + k.vlen;
        if (!e) {
            ws_wset_clear(w);
            return;
        }
        e->kept = 1;
        w->kept++;
    }
}
