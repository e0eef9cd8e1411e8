/*
 * engine.h - one record's outcome and its effect on the figures
 * (SPEC §3, §4).
 *
 * The engine is the single path every record takes, whatever its source
 * (a replayed file, a Kafka partition): decode, dedup, currency check,
 * exact aggregates, top-5 insert, counting. It talks only to the store's
 * batch API; it does no I/O of its own and never logs: the outcome and its
 * reason come back to the caller.
 */
#ifndef WS_ENGINE_H
#define WS_ENGINE_H

#include <stddef.h>

#include "decode.h"
#include "store.h"
#include "ws.h"

typedef struct ws_result {
    enum ws_outcome outcome;
    enum ws_reason reason;          /* WS_R_NONE unless rejected */
    char detail[WS_DETAIL_MAX];     /* a sentence when rejected */
    ws_txn txn;                     /* the decoded record, unless it was
                                       rejected by decode */
    int top_changed;                /* applied, and the product's top
                                       credits (or its existence) changed */
} ws_result;

/* Decodes the record value buf[0..len), applies it to the open batch and
 * counts its outcome there. Stream thread only. Returns 0 with *res set,
 * or a store error (WS_ERR_MAP_FULL, WS_ERR_STORE, WS_ERR_CORRUPT): the
 * batch must then be aborted, and the record was not counted. */
int ws_engine_record(ws_batch *b, ws_decoder *d, const char *buf, size_t len,
                     ws_result *res);

/* Applies an already decoded transaction; same contract as above. */
int ws_engine_apply(ws_batch *b, const ws_txn *t, ws_result *res);

/* 16-byte fingerprint of a transaction's content: wallet, product, type,
 * amount value (not its scale), currency and instant. */
void ws_engine_fingerprint(const ws_txn *t, unsigned char fp[16]);

/* <0 when entry a ranks above b among top credits (larger amount, then
 * earlier timestamp, then smaller transaction_id in byte order). */
int ws_engine_top_cmp(const ws_top_entry *a, const ws_top_entry *b);

/* Inserts e into t when it belongs to the top 5; returns 1 when t
 * changed. */
int ws_engine_top_insert(ws_top *t, const ws_top_entry *e);

#endif
