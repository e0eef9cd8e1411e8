/*
 * records.c - the byte layouts of the store's keys and records, and the
 * order of top credits.
 *
 * Records are little-endian byte layouts with a version byte first, read
 * and written only by the functions below, never cast from the page.
 * Ids cannot contain NUL (SPEC §2 forbids control characters), so NUL
 * separates the parts of composite keys. The tables that hold them are
 * listed in store_int.h.
 */
#include <string.h>

#include "store_int.h"
#include "timeutil.h"

#define RECORD_VERSION 1

/* ---------------------------------------------------------- byte layouts */

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

void put_u64(unsigned char *p, uint64_t v)
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

uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Wallet record. Written as version 3, a varint layout (about 28 bytes
 * for a typical wallet, docs/BENCHMARKS.md "Per-core cost"):
 *   0 version (3), 1-3 currency, 4 scale, then varints (7 bits a byte,
 *   least significant first): balance and total_debit (zigzag, 128-bit),
 *   transactions, first_day (zigzag), last_day - first_day (zigzag),
 *   debit_days, last_event sec - first_day * 86400 (zigzag), last_event
 *   nsec, history_head (data format 4).
 * Read also as version 2 (data format 3: the same without history_head).
 * Read also as version 1, the fixed layout of data format 2 (72 bytes):
 *   0 version, 1-3 currency, 4 scale, 5-7 zero,
 *   8 balance (16), 24 total_debit (16), 40 transactions (8),
 *   48 first_day (4), 52 last_day (4), 56 debit_days (4),
 *   60 last_event nsec (4), 64 last_event sec (8) */
#define WALLET_V1 1
#define WALLET_V2 2
#define WALLET_V3 3
#define WALLET_V1_SIZE 72

/* An unsigned (hi:lo) as a varint at p; returns its length (<= 19). */
static size_t put_var(unsigned char *p, uint64_t lo, uint64_t hi)
{
    size_t n = 0;

    while (hi || lo >= 0x80) {
        p[n++] = (unsigned char)(lo | 0x80);
        lo = lo >> 7 | hi << 57;
        hi >>= 7;
    }
    p[n++] = (unsigned char)lo;
    return n;
}

/* The varint at *p (before end) into (hi:lo); 0, or -1 when it runs past
 * end or beyond 128 bits. */
static int get_var(const unsigned char **p, const unsigned char *end,
                   uint64_t *lo, uint64_t *hi)
{
    unsigned shift = 0;

    *lo = *hi = 0;
    for (;;) {
        uint64_t b;

        if (*p >= end || shift > 126)
            return -1;
        b = *(*p)++ & 0x7f;
        if (shift < 64) {
            *lo |= b << shift;
            if (shift > 57)
                *hi |= b >> (64 - shift);
        } else {
            *hi |= b << (shift - 64);
        }
        if (!((*p)[-1] & 0x80))
            return 0;
        shift += 7;
    }
}

/* Zigzag: signed as unsigned, small magnitudes small. */
static void put_svar128(unsigned char *p, size_t *o, ws_dec v)
{
    uint64_t sign = v.hi < 0 ? ~(uint64_t)0 : 0;
    uint64_t hi = (uint64_t)v.hi << 1 | v.lo >> 63, lo = v.lo << 1;

    *o += put_var(p + *o, lo ^ sign, hi ^ sign);
}

static int get_svar128(const unsigned char **p, const unsigned char *end,
                       ws_dec *v)
{
    uint64_t lo, hi, sign;

    if (get_var(p, end, &lo, &hi) != 0)
        return -1;
    sign = (lo & 1) ? ~(uint64_t)0 : 0;
    v->lo = (lo >> 1 | hi << 63) ^ sign;
    v->hi = (int64_t)((hi >> 1) ^ sign);
    return 0;
}

static void put_svar(unsigned char *p, size_t *o, int64_t v)
{
    uint64_t u = (uint64_t)v;

    *o += put_var(p + *o, u << 1 ^ (v < 0 ? ~(uint64_t)0 : 0), 0);
}

static int get_svar(const unsigned char **p, const unsigned char *end,
                    int64_t *v)
{
    uint64_t lo, hi;

    if (get_var(p, end, &lo, &hi) != 0 || hi)
        return -1;
    *v = (int64_t)(lo >> 1 ^ ((lo & 1) ? ~(uint64_t)0 : 0));
    return 0;
}

static int get_uvar(const unsigned char **p, const unsigned char *end,
                    uint64_t *v)
{
    uint64_t hi;

    return get_var(p, end, v, &hi) != 0 || hi ? -1 : 0;
}

size_t wallet_encode(const ws_wallet *w, unsigned char *p)
{
    size_t o = 5;

    p[0] = WALLET_V3;
    memcpy(p + 1, w->currency, 3);
    p[4] = w->scale;
    put_svar128(p, &o, w->balance);
    put_svar128(p, &o, w->total_debit);
    o += put_var(p + o, (uint64_t)w->transactions, 0);
    put_svar(p, &o, w->first_day);
    put_svar(p, &o, (int64_t)w->last_day - w->first_day);
    o += put_var(p + o, (uint64_t)(uint32_t)w->debit_days, 0);
    put_svar(p, &o, w->last_event.sec - (int64_t)w->first_day * 86400);
    o += put_var(p + o, (uint64_t)(uint32_t)w->last_event.nsec, 0);
    o += put_var(p + o, w->history_head, 0);
    return o;
}

static int wallet_decode_v1(const unsigned char *p, ws_wallet *w)
{
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
    w->history_head = 0;
    return WS_OK;
}

int wallet_decode(const MDB_val *v, ws_wallet *w)
{
    const unsigned char *p = v->mv_data, *end = p + v->mv_size;
    int64_t first, span, since;
    uint64_t n, days, nsec;

    if (v->mv_size == WALLET_V1_SIZE && p[0] == WALLET_V1)
        return wallet_decode_v1(p, w);
    if (v->mv_size < 5 || v->mv_size > WALLET_MAX ||
        (p[0] != WALLET_V2 && p[0] != WALLET_V3))
        return WS_ERR_CORRUPT;
    w->history_head = 0;
    memcpy(w->currency, p + 1, 3);
    w->scale = p[4];
    p += 5;
    if (get_svar128(&p, end, &w->balance) || get_svar128(&p, end, &w->total_debit) ||
        get_uvar(&p, end, &n) || get_svar(&p, end, &first) ||
        get_svar(&p, end, &span) || get_uvar(&p, end, &days) ||
        get_svar(&p, end, &since) || get_uvar(&p, end, &nsec) ||
        (((const unsigned char *)v->mv_data)[0] == WALLET_V3 &&
         get_uvar(&p, end, &w->history_head)) || p != end ||
        n > INT64_MAX || first < INT32_MIN || first > INT32_MAX ||
        span < 0 || span > (int64_t)UINT32_MAX || first + span > INT32_MAX ||
        days > INT32_MAX || since > INT64_MAX / 2 || since < INT64_MIN / 2 ||
        nsec > 999999999)
        return WS_ERR_CORRUPT;
    w->transactions = (int64_t)n;
    w->first_day = (int32_t)first;
    w->last_day = (int32_t)(first + span);
    w->debit_days = (int32_t)days;
    w->last_event.sec = since + first * 86400;
    w->last_event.nsec = (int32_t)nsec;
    return WS_OK;
}

/* Top-credit record: version, count, then per entry:
 *   amount (16), scale (1), sec (8), nsec (4), tx_id_len (2),
 *   wallet_id_len (2), tx_id bytes, wallet_id bytes (TOP_ENTRY_FIXED
 *   bytes before the ids, TOP_MAX in all). */
size_t top_encode(const ws_top *t, unsigned char *p)
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

int top_decode(const MDB_val *v, const char currency[3], ws_top *t)
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
size_t top_key(const char *product, size_t n, const char currency[3],
               char *key)
{
    memcpy(key, product, n);
    key[n] = '\0';
    memcpy(key + n + 1, currency, 3);
    return n + 4;
}

/* ------------------------------------------------------------------ keys */

/* The counters key "<prefix>:<name>" in key[0..COUNTER_KEY_MAX); returns
 * its length, or 0 when it does not fit. */
size_t counter_key(const char *prefix, const char *name, size_t n,
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

/* Outbox key: target shard (u16 BE) then sequence (u64 BE), so that one
 * target's entries are contiguous and in sequence order. */
void outbox_key(int target, uint64_t seq, unsigned char k[10])
{
    int i;

    k[0] = (unsigned char)(target >> 8);
    k[1] = (unsigned char)target;
    for (i = 0; i < 8; i++)
        k[2 + i] = (unsigned char)(seq >> (56 - 8 * i));
}

uint64_t outbox_seq(const unsigned char *k)
{
    uint64_t s = 0;
    int i;

    for (i = 0; i < 8; i++)
        s = s << 8 | k[2 + i];
    return s;
}

void inbox_key(int from, unsigned char k[2])
{
    k[0] = (unsigned char)(from >> 8);
    k[1] = (unsigned char)from;
}

/* A remembered id's value: its fingerprint, and for ids applied by a
 * record of another shard from a Kafka partition, that record's source
 * (partition u32, offset u64; SEEN_SOURCED bytes in all). */
void source_put(unsigned char *p, const ws_source_pos *src)
{
    uint32_t part = (uint32_t)src->partition;
    int i;

    for (i = 0; i < 4; i++)
        p[i] = (unsigned char)(part >> (24 - 8 * i));
    for (i = 0; i < 8; i++)
        p[4 + i] = (unsigned char)((uint64_t)src->offset >> (56 - 8 * i));
}

void source_get(const unsigned char *p, ws_source_pos *src)
{
    uint32_t part = 0;
    uint64_t off = 0;
    int i;

    for (i = 0; i < 4; i++)
        part = part << 8 | p[i];
    for (i = 0; i < 8; i++)
        off = off << 8 | p[4 + i];
    src->partition = (int32_t)part;
    src->offset = (int64_t)off;
}

/* An outbox value as the id and the value the id's shard remembers. */
int outbox_split(const MDB_val *data, MDB_val *id, MDB_val *seen)
{
    ws_source_pos src;

    if (data->mv_size <= SEEN_SOURCED)
        return WS_ERR_CORRUPT;
    source_get((const unsigned char *)data->mv_data + 16, &src);
    *id = val((const char *)data->mv_data + SEEN_SOURCED,
              data->mv_size - SEEN_SOURCED);
    *seen = val(data->mv_data, src.partition < 0 ? 16 : SEEN_SOURCED);
    return WS_OK;
}

/* ------------------------------------------------------------- top lists */

int ws_top_cmp(const ws_top_entry *a, const ws_top_entry *b)
{
    int c = ws_dec_cmp(b->amount, a->amount);   /* larger first */
    size_t n;

    if (c != 0)
        return c;
    c = ws_time_cmp(a->ts, b->ts);              /* earlier first */
    if (c != 0)
        return c;
    n = a->tx_id_len < b->tx_id_len ? a->tx_id_len : b->tx_id_len;
    c = memcmp(a->tx_id, b->tx_id, n);          /* smaller id first */
    if (c != 0)
        return c;
    return (a->tx_id_len > b->tx_id_len) - (a->tx_id_len < b->tx_id_len);
}

int ws_top_insert(ws_top *t, const ws_top_entry *e)
{
    unsigned pos = t->n;
    int c = 1;

    /* Down past the entries ranked after e; an equal entry is met just
     * before its place: already there (a list merged twice: a group's
     * instances may both answer for a partition that moves). */
    while (pos > 0 && (c = ws_top_cmp(e, &t->e[pos - 1])) < 0)
        pos--;
    if (c == 0 || pos >= WS_TOP_N)
        return 0;
    if (t->n < WS_TOP_N)
        t->n++;
    memmove(&t->e[pos + 1], &t->e[pos],
            (t->n - 1 - pos) * sizeof t->e[0]);
    t->e[pos] = *e;
    return 1;
}

/* ------------------------------------------------------ statement lines */

/* A statement line's key: its place in the shard's log (u64 BE), so that
 * lines are appended in the order applied. */
void history_key(uint64_t pos, unsigned char key[8])
{
    int i;

    for (i = 0; i < 8; i++)
        key[i] = (unsigned char)(pos >> (56 - 8 * i));
}

uint64_t history_pos(const MDB_val *key)
{
    const unsigned char *k = key->mv_data;
    uint64_t pos = 0;
    size_t i;

    for (i = 0; i < key->mv_size && i < 8; i++)
        pos = pos << 8 | k[i];
    return key->mv_size == 8 ? pos : 0;
}

/* A statement line (version 1):
 *   0 version, 1 type, 2 amount scale, 3 balance scale, 4-7 the wallet's
 *   tag (u32 LE, history_tag), then varints: the wallet's previous line
 *   (its log position, 0: none), seq, amount (128-bit), balance after
 *   (zigzag, 128-bit), event sec (zigzag), event nsec, partition + 1,
 *   offset + 1, then the transaction_id and the product_id, each a varint
 *   length and its bytes. The wallet_id and currency are the wallet's. */
#define HISTORY_V1 1

size_t history_encode(const ws_history_entry *h, uint32_t tag,
                      unsigned char *p)
{
    size_t o = 8;

    p[0] = HISTORY_V1;
    p[1] = (unsigned char)h->type;
    p[2] = h->scale;
    p[3] = h->balance_scale;
    put_u32(p + 4, tag);
    o += put_var(p + o, h->prev, 0);
    o += put_var(p + o, (uint64_t)h->seq, 0);
    o += put_var(p + o, h->amount.lo, (uint64_t)h->amount.hi);
    put_svar128(p, &o, h->balance);
    put_svar(p, &o, h->ts.sec);
    o += put_var(p + o, (uint64_t)(uint32_t)h->ts.nsec, 0);
    o += put_var(p + o, (uint64_t)((int64_t)h->src.partition + 1), 0);
    o += put_var(p + o, (uint64_t)(h->src.offset + 1), 0);
    o += put_var(p + o, h->tx_id_len, 0);
    memcpy(p + o, h->tx_id, h->tx_id_len);
    o += h->tx_id_len;
    o += put_var(p + o, h->product_id_len, 0);
    memcpy(p + o, h->product_id, h->product_id_len);
    return o + h->product_id_len;
}

/* Reads a length-prefixed id at *p into out (its length in *n). */
static int get_id(const unsigned char **p, const unsigned char *end,
                  char *out, uint16_t *n)
{
    uint64_t len;

    if (get_uvar(p, end, &len) != 0 || len > WS_MAX_ID ||
        len > (uint64_t)(end - *p))
        return -1;
    memcpy(out, *p, (size_t)len);
    *p += len;
    *n = (uint16_t)len;
    return 0;
}

int history_decode(const MDB_val *v, uint32_t *tag, ws_history_entry *h)
{
    const unsigned char *p = v->mv_data, *end = p + v->mv_size;
    uint64_t lo, hi, seq, nsec, part, off;

    if (v->mv_size < 8 || p[0] != HISTORY_V1 || p[1] > 3 /* enum ws_type */)
        return WS_ERR_CORRUPT;
    h->type = p[1];
    h->scale = p[2];
    h->balance_scale = p[3];
    *tag = get_u32(p + 4);
    p += 8;
    if (get_uvar(&p, end, &h->prev) != 0 ||
        get_uvar(&p, end, &seq) != 0 || seq > INT64_MAX ||
        get_var(&p, end, &lo, &hi) != 0 ||
        get_svar128(&p, end, &h->balance) != 0 ||
        get_svar(&p, end, &h->ts.sec) != 0 ||
        get_uvar(&p, end, &nsec) != 0 || nsec >= 1000000000u ||
        get_uvar(&p, end, &part) != 0 || part > INT32_MAX ||
        get_uvar(&p, end, &off) != 0 || off > INT64_MAX ||
        get_id(&p, end, h->tx_id, &h->tx_id_len) != 0 ||
        get_id(&p, end, h->product_id, &h->product_id_len) != 0 || p != end)
        return WS_ERR_CORRUPT;
    h->seq = (int64_t)seq;
    h->amount.lo = lo;
    h->amount.hi = (int64_t)hi;
    h->ts.nsec = (int32_t)nsec;
    h->src.partition = (int32_t)part - 1;
    h->src.offset = (int64_t)off - 1;
    return WS_OK;
}

size_t ws_top_pack(const ws_top *t, unsigned char *out)
{
    return top_encode(t, out);
}

int ws_top_unpack(const void *p, size_t n, const char currency[3], ws_top *t)
{
    MDB_val v = val(p, n);

    return top_decode(&v, currency, t);
}
