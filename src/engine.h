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
    /* Applied: the wallet after it (its statement line, SPEC 8a). */
    ws_dec balance_after;
    uint8_t balance_scale;
    int64_t seq;                    /* the wallet's applied transactions,
                                       this one the last */
} ws_result;



/* Decodes the record value buf[0..len), applies it to the open batch and
 * counts its outcome there. Stream thread only. Returns 0 with *res set,
 * or a store error (WS_ERR_MAP_FULL, WS_ERR_STORE, WS_ERR_CORRUPT): the
 * batch must then be aborted, and the record was not counted. */
int ws_engine_record(ws_batch *b, ws_decoder *d, const char *buf, size_t len,
                     ws_result *res);

/* Where a record was read, for its statement line (ws_history_entry):
 * NULL when not known. */

/* Asks the caches for what applying t will read (ws_batch_prefetch): a
 * worker calls it with entries 0 for the record after next and with
 * entries 1 for the next one before applying the current one. */
void ws_engine_prefetch(const ws_batch *b, const ws_txn *t, int entries);

/* Applies an already decoded transaction read from `src` (NULL: not
 * known); same contract as above. An applied transaction is appended to
 * its wallet's statement when the batch keeps statements. */
int ws_engine_apply(ws_batch *b, const ws_txn *t, const ws_source_pos *src,
                    ws_result *res);

/* What is known of a transaction_id before its record is applied. */
enum ws_claim {
    WS_CLAIM_NEW = 0,   /* never applied */
    WS_CLAIM_SAME,      /* applied with the same content: a duplicate */
    WS_CLAIM_OTHER      /* applied with other content: conflicting */
};

/* Applies a decoded transaction whose id's claim was decided elsewhere
 * (the id's shard, router.h): the seen table is neither read nor
 * written; the caller remembers the id when the outcome is applied.
 * Does not count the outcome. Same errors as ws_engine_record. */
int ws_engine_apply_claimed(ws_batch *b, const ws_txn *t, enum ws_claim c,
                            const ws_source_pos *src, ws_result *res);

/* 16-byte fingerprint of a transaction's content: wallet, product, type,
 * amount value (not its scale), currency and instant. */
void ws_engine_fingerprint(const ws_txn *t, unsigned char fp[16]);

#endif
