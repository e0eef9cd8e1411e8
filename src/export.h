/*
 * export.h - the figures as the original pipeline's three tables, and
 * the applied transactions (wallet statements) as a fourth, as files:
 * `walletstream export`.
 *
 * One export reads ONE view of the store (one LMDB read transaction), so
 * the three tables and the manifest are consistent as of one committed
 * batch, while a writer (`run`, `replay`) keeps committing beside it.
 *
 *   csv    balances.csv, avg_debits.csv, top_credits.csv,
 *          transactions.csv: RFC 4180 (CRLF,
 *          fields quoted when they hold a comma, quote, CR or LF, quotes
 *          doubled), a header line, the columns of deploy/cassandra/
 *          schema.cql in the order Cassandra lists them (key, then the
 *          other columns by name), for `cqlsh COPY ... FROM`.
 *          Decimals exactly as the API prints them; timestamps as epoch
 *          milliseconds plus a _nanos column; dates YYYY-MM-DD;
 *          top_credits as a CQL list literal of `credit` values;
 *          transactions with committed_at empty (a state keeps no commit
 *          times) and source "<topic>/<partition>/<offset>" (empty for
 *          a replayed file's line). No statements kept: no rows.
 *   jsonl  balances.jsonl, avg_debits.jsonl, top_credits.jsonl: one line
 *          per wallet or product, the API's JSON body (figures.c), i.e.
 *          the changelog topics' record values; transactions.jsonl: one
 *          line per statement line, the API's line with the wallet_id and
 *          currency.
 *
 * Rows are in ascending byte order of their key (transactions: of
 * wallet_id, then newest first, as the API pages them). Each file is written
 * under a temporary name, fsynced and renamed; manifest.json (what was
 * exported: counters, input offsets, rows) is removed first and written
 * last, so a directory with a manifest holds one complete export.
 *
 * Ownership: the caller owns the store; export opens and ends its view.
 * Main thread only (it writes files; nothing here is shared).
 */
#ifndef WS_EXPORT_H
#define WS_EXPORT_H

#include <stdint.h>

#include "store.h"

enum ws_export_format { WS_EXPORT_CSV = 0, WS_EXPORT_JSONL };

/* Room for an error sentence. */
#define WS_EXPORT_ERR_MAX 640

/* What one export wrote. */
typedef struct ws_export_totals {
    int64_t wallets;    /* rows of balances and of avg_debits */
    int64_t products;   /* rows of top_credits */
    int64_t lines;      /* rows of transactions */
    ws_counts counts;   /* the stored outcome totals of the same view */
} ws_export_totals;

/* Parses "csv" or "jsonl"; 0, or -1 when it is neither. */
int ws_export_format_parse(const char *name, enum ws_export_format *out);

/* Writes the tables and manifest.json into directory `out_dir` (created
 * with its parents when missing; files of the same names are replaced).
 * Returns 0, or WS_ERR_IO / WS_ERR_NOMEM / a store error with a sentence
 * in err[0..WS_EXPORT_ERR_MAX); then no temporary file is left and no
 * manifest.json is present. */
int ws_export_write(ws_store *s, enum ws_export_format format,
                    const char *out_dir, ws_export_totals *totals,
                    char *err);

#endif
