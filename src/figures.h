/*
 * figures.h - the figures as JSON, exactly as the API answers them
 * (SPEC §5) and as the changelog topics carry them: one writer for both,
 * so that they can never differ.
 */
#ifndef WS_FIGURES_H
#define WS_FIGURES_H

#include <stddef.h>

#include "decode.h"
#include "json_out.h"
#include "store.h"

/* {"wallet_id":…,"balance":…,"currency":…,"transactions":…,
 *  "last_event_time":…} */
void ws_figures_balance(ws_buf *b, const char *id, size_t n,
                        const ws_wallet *w);

/* SPEC §4's days: calendar days from first_day to last_day, both
 * included. */
int64_t ws_figures_days(const ws_wallet *w);

/* {"wallet_id":…,"currency":…,"average_daily_debit":…,"total_debit":…,
 *  "days":…,"debit_days":…,"first_day":…,"last_day":…} */
void ws_figures_average(ws_buf *b, const char *id, size_t n,
                        const ws_wallet *w);

/* {"product_id":…,"top_credits":[…]}, written in three steps: begin, then
 * ws_figures_tops_add for each currency's top credits (usable as the
 * callback of ws_view_tops / ws_batch_tops), then end. */
typedef struct ws_tops_writer {
    ws_buf *b;
    const char *currency;   /* 3 letters to keep one currency, or NULL */
    int first;
} ws_tops_writer;

void ws_figures_tops_begin(ws_tops_writer *w, ws_buf *b, const char *id,
                           size_t n, const char *currency);
int ws_figures_tops_add(const ws_top *t, void *writer);
void ws_figures_tops_end(ws_tops_writer *w);

/* A record of <topic>.applied up to its commit time (the caller ends it
 * with the time and '}'): {"transaction_id":…,"wallet_id":…,
 * "product_id":…,"type":…,"amount":…,"currency":…,"timestamp":…,
 * "source":"<topic>/<partition>/<offset>","seq":…,"balance_after":…,
 * "committed_at": */
void ws_figures_applied(ws_buf *b, const ws_txn *t, const char *topic,
                        int partition, int64_t offset, int64_t seq,
                        ws_dec balance, unsigned balance_scale);

/* The fields of a statement line, without braces (the API's
 * /wallets/{id}/transactions and export's transactions table):
 * "seq":…,"transaction_id":…,"type":…,"product_id":…,"amount":…,
 * "timestamp":…,"balance_after":…,"partition":…,"offset":… */
void ws_figures_line_fields(ws_buf *b, const ws_history_entry *h);

#endif
