/*
 * ws.h - types shared by every walletstream module.
 *
 * Error codes: functions return 0 (WS_OK) or a positive `enum ws_err`;
 * ws_strerror() names them. Where the caller will show a human sentence,
 * an `errbuf` parameter carries it.
 *
 * Reason codes: the outcome of one record (SPEC §3). A record is applied,
 * a duplicate, or rejected with exactly one `enum ws_reason`.
 */
#ifndef WS_H
#define WS_H

#include <stddef.h>
#include <stdint.h>

#define WS_VERSION "0.1.0"

/* SPEC §2: a record value over 64 KiB is rejected. */
#define WS_MAX_RECORD (64 * 1024)
/* SPEC §2: identifiers are 1-256 bytes of UTF-8. */
#define WS_MAX_ID 256
/* SPEC §4: top credits keep the five largest per product and currency. */
#define WS_TOP_N 5

enum ws_err {
    WS_OK = 0,
    WS_ERR_NOMEM,       /* allocation failed */
    WS_ERR_IO,          /* a read, write or fsync failed */
    WS_ERR_STORE,       /* LMDB reported an error */
    WS_ERR_MAP_FULL,    /* the store reached its size limit */
    WS_ERR_FORMAT,      /* data directory of another format or not ours */
    WS_ERR_LOCKED,      /* another process holds the data directory */
    WS_ERR_NOT_FOUND,   /* no such key */
    WS_ERR_USAGE,       /* bad command line */
    WS_ERR_CORRUPT,     /* a stored record does not decode */
    WS_ERR_TXN_FULL,    /* the batch touched more pages than one LMDB
                           transaction holds: retry with a smaller batch */
    WS_ERR_NO_SPACE,    /* the state's file system is full (ENOSPC, EDQUOT,
                           or LMDB's short write) */
    WS_ERR_NOT_OWNED,   /* another instance of the group owns that part of
                           the state (run --assignment group) */
    WS_ERR_FENCED,      /* a newer owner of the partition took it over:
                           this instance must not commit it */
    WS_ERR_COUNT
};

const char *ws_strerror(int err);

enum ws_outcome {
    WS_APPLIED = 0,
    WS_DUPLICATE,
    WS_REJECTED,
    WS_OUTCOME_COUNT
};

enum ws_reason {
    WS_R_NONE = 0,
    WS_R_INVALID_JSON,
    WS_R_NOT_AN_OBJECT,
    WS_R_MESSAGE_TOO_LARGE,
    WS_R_MISSING_FIELD,
    WS_R_DUPLICATE_FIELD,
    WS_R_INVALID_FIELD,
    WS_R_INVALID_TYPE,
    WS_R_INVALID_AMOUNT,
    WS_R_AMOUNT_OUT_OF_RANGE,
    WS_R_INVALID_CURRENCY,
    WS_R_INVALID_TIMESTAMP,
    WS_R_CURRENCY_MISMATCH,
    WS_R_CONFLICTING_DUPLICATE,
    WS_R_AGGREGATE_OVERFLOW,
    WS_R_COUNT
};

/* The reason's SPEC code ("invalid_json"), or "" for WS_R_NONE. */
const char *ws_reason_name(enum ws_reason r);
/* "applied", "duplicate" or "rejected". */
const char *ws_outcome_name(enum ws_outcome o);

/* An instant: seconds and nanoseconds since 1970-01-01T00:00:00Z. */
typedef struct ws_instant {
    int64_t sec;
    int32_t nsec;
} ws_instant;

/* Outcome and reason totals, as stored and as exported by /metrics. */
typedef struct ws_counts {
    int64_t outcome[WS_OUTCOME_COUNT];
    int64_t reason[WS_R_COUNT];
} ws_counts;

#endif
