/*
 * engine.c - dedup, currency, exact aggregates and top credits.
 *
 * Within a batch the engine reads its own writes (the batch is one LMDB
 * write transaction), so records of one batch see each other exactly as
 * if each had been committed alone.
 *
 * Every figure is order-independent except where SPEC §4 says otherwise:
 * sums commute, first/last day are min/max, debit days are a set, the
 * scale is a max, and the top 5 is a total order (amount, time, id).
 */
#include "engine.h"

#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "timeutil.h"

void ws_engine_fingerprint(const ws_txn *t, unsigned char fp[16])
{
    /* Length-prefixed fields, so that no two contents share bytes. */
    unsigned char buf[2 * (2 + WS_MAX_ID) + 1 + 16 + 3 + 12];
    size_t o = 0;
    XXH128_hash_t h;
    XXH128_canonical_t c;

    buf[o++] = (unsigned char)(t->wallet_id_len >> 8);
    buf[o++] = (unsigned char)t->wallet_id_len;
    memcpy(buf + o, t->wallet_id, t->wallet_id_len);
    o += t->wallet_id_len;
    buf[o++] = (unsigned char)(t->product_id_len >> 8);
    buf[o++] = (unsigned char)t->product_id_len;
    memcpy(buf + o, t->product_id, t->product_id_len);
    o += t->product_id_len;
    buf[o++] = (unsigned char)t->type;
    ws_dec_store(t->amount, buf + o);
    o += 16;
    memcpy(buf + o, t->currency, 3);
    o += 3;
    for (int i = 0; i < 8; i++)
        buf[o++] = (unsigned char)((uint64_t)t->ts.sec >> (8 * i));
    for (int i = 0; i < 4; i++)
        buf[o++] = (unsigned char)((uint32_t)t->ts.nsec >> (8 * i));
    h = XXH3_128bits(buf, o);
    XXH128_canonicalFromHash(&c, h);
    memcpy(fp, c.digest, 16);
}

void ws_engine_prefetch(const ws_batch *b, const ws_txn *t, int entries)
{
    int32_t day = ws_time_day(t->ts);
    int debit = t->type == WS_DEBIT || t->type == WS_CANCEL_DEBIT;

    ws_batch_prefetch(b, entries, t->tx_id, t->tx_id_len, t->wallet_id,
                      t->wallet_id_len, t->product_id, t->product_id_len,
                      t->type == WS_CREDIT ? t->currency : NULL,
                      debit ? &day : NULL);
}

/* The statement line of an applied transaction (the wallet as it is
 * after it) appended to the batch's log; w->history_head follows. */
static int history_line(ws_batch *b, const ws_txn *t, ws_wallet *w,
                        const ws_source_pos *src)
{
    ws_history_entry h;

    h.seq = w->transactions;
    h.type = (int)t->type;
    h.amount = t->amount;
    h.scale = t->scale;
    h.balance = w->balance;
    h.balance_scale = w->scale;
    h.ts = t->ts;
    h.src.partition = src ? src->partition : -1;
    h.src.offset = src ? src->offset : -1;
    h.tx_id_len = (uint16_t)t->tx_id_len;
    h.product_id_len = (uint16_t)t->product_id_len;
    memcpy(h.tx_id, t->tx_id, t->tx_id_len);
    memcpy(h.product_id, t->product_id, t->product_id_len);
    return ws_batch_history_add(b, t->wallet_id, t->wallet_id_len, &h,
                                &w->history_head);
}

static void reject(ws_result *res, enum ws_reason r)
{
    res->outcome = WS_REJECTED;
    res->reason = r;
}

int ws_engine_apply(ws_batch *b, const ws_txn *t, const ws_source_pos *src,
                    ws_result *res)
{
    unsigned char fp[16], seen_fp[16];
    int e, claimed;

    /* Dedup: only applied transactions are remembered. The id is claimed
     * first (one B-tree descent for the usual, new id) and released if
     * the record is rejected further down. */
    ws_engine_fingerprint(t, fp);
    e = ws_batch_seen_claim(b, t->tx_id, t->tx_id_len, fp, &claimed, seen_fp);
    if (e != WS_OK)
        return e;
    e = ws_engine_apply_claimed(
        b, t, !claimed ? (memcmp(fp, seen_fp, 16) == 0 ? WS_CLAIM_SAME
                                                        : WS_CLAIM_OTHER)
                       : WS_CLAIM_NEW, src, res);
    if (e == WS_OK && claimed && res->outcome != WS_APPLIED)
        e = ws_batch_seen_release(b, t->tx_id, t->tx_id_len);
    return e;
}

int ws_engine_apply_claimed(ws_batch *b, const ws_txn *t, enum ws_claim c,
                            const ws_source_pos *src, ws_result *res)
{
    ws_wallet w;
    ws_dec balance, total_debit;
    int32_t day = ws_time_day(t->ts);
    int e, added;

    res->outcome = WS_APPLIED;
    res->reason = WS_R_NONE;
    res->detail[0] = '\0';
    res->top_changed = 0;

    if (c == WS_CLAIM_SAME) {
        res->outcome = WS_DUPLICATE;
        return WS_OK;
    }
    if (c == WS_CLAIM_OTHER) {
        reject(res, WS_R_CONFLICTING_DUPLICATE);
        snprintf(res->detail, sizeof res->detail,
                 "transaction_id was already applied with other content");
        return WS_OK;
    }

    e = ws_batch_wallet_get(b, t->wallet_id, t->wallet_id_len, &w);
    if (e == WS_ERR_NOT_FOUND) {
        memset(&w, 0, sizeof w);
        memcpy(w.currency, t->currency, 3);
        w.first_day = day;
        w.last_day = day;
        w.last_event = t->ts;
    } else if (e != WS_OK) {
        return e;
    } else if (memcmp(w.currency, t->currency, 3) != 0) {
        reject(res, WS_R_CURRENCY_MISMATCH);
        snprintf(res->detail, sizeof res->detail,
                 "wallet's currency is %.3s, transaction's is %.3s",
                 w.currency, t->currency);
        return WS_OK;
    }

    /* Exact aggregates: refuse what would overflow. */
    balance = w.balance;
    total_debit = w.total_debit;
    if ((t->type == WS_CREDIT || t->type == WS_CANCEL_DEBIT)
            ? ws_dec_add(balance, t->amount, &balance)
            : ws_dec_sub(balance, t->amount, &balance)) {
        reject(res, WS_R_AGGREGATE_OVERFLOW);
        snprintf(res->detail, sizeof res->detail,
                 "applying it would overflow the wallet's exact balance");
        return WS_OK;
    }
    if ((t->type == WS_DEBIT &&
         ws_dec_add(total_debit, t->amount, &total_debit)) ||
        (t->type == WS_CANCEL_DEBIT &&
         ws_dec_sub(total_debit, t->amount, &total_debit))) {
        reject(res, WS_R_AGGREGATE_OVERFLOW);
        snprintf(res->detail, sizeof res->detail,
                 "applying it would overflow the wallet's exact total debit");
        return WS_OK;
    }
    w.balance = balance;
    w.total_debit = total_debit;
    w.transactions++;
    if (t->scale > w.scale)
        w.scale = t->scale;
    if (day < w.first_day)
        w.first_day = day;
    if (day > w.last_day)
        w.last_day = day;
    if (ws_time_cmp(t->ts, w.last_event) > 0)
        w.last_event = t->ts;
    if (t->type == WS_DEBIT || t->type == WS_CANCEL_DEBIT) {
        e = ws_batch_debit_day_add(b, t->wallet_id, t->wallet_id_len, day,
                                   &added);
        if (e != WS_OK)
            return e;
        w.debit_days += added;
    }
    res->balance_after = w.balance;
    res->balance_scale = w.scale;
    res->seq = w.transactions;
    if (ws_batch_history_on(b) && (e = history_line(b, t, &w, src)) != WS_OK)
        return e;
    if ((e = ws_batch_wallet_put(b, t->wallet_id, t->wallet_id_len, &w)) ||
        (e = ws_batch_product_mark(b, t->product_id, t->product_id_len,
                                   &added)))
        return e;
    res->top_changed = added;

    if (t->type == WS_CREDIT) {
        ws_top top;
        ws_top_entry entry;

        e = ws_batch_top_get(b, t->product_id, t->product_id_len,
                             t->currency, &top);
        if (e != WS_OK && e != WS_ERR_NOT_FOUND)
            return e;
        entry.amount = t->amount;
        entry.scale = t->scale;
        entry.ts = t->ts;
        entry.tx_id_len = (uint16_t)t->tx_id_len;
        entry.wallet_id_len = (uint16_t)t->wallet_id_len;
        memcpy(entry.tx_id, t->tx_id, t->tx_id_len);
        memcpy(entry.wallet_id, t->wallet_id, t->wallet_id_len);
        if (ws_top_insert(&top, &entry)) {
            e = ws_batch_top_put(b, t->product_id, t->product_id_len, &top);
            if (e != WS_OK)
                return e;
            res->top_changed = 1;
        }
    }
    return WS_OK;
}

int ws_engine_record(ws_batch *b, ws_decoder *d, const char *buf, size_t len,
                     ws_result *res)
{
    enum ws_reason r = ws_decode(d, buf, len, &res->txn, res->detail);
    int e;

    if (r != WS_R_NONE) {
        reject(res, r);
        res->top_changed = 0;
    } else {
        e = ws_engine_apply(b, &res->txn, NULL, res);
        if (e != WS_OK)
            return e;
    }
    ws_batch_count(b, res->outcome, res->reason);
    return WS_OK;
}
