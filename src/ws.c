/*
 * ws.c - names of the shared error, outcome and reason codes.
 */
#include "ws.h"

const char *ws_strerror(int err)
{
    static const char *const names[WS_ERR_COUNT] = {
        [WS_OK] = "success",
        [WS_ERR_NOMEM] = "out of memory",
        [WS_ERR_IO] = "input/output error",
        [WS_ERR_STORE] = "state store error",
        [WS_ERR_MAP_FULL] = "state store is full",
        [WS_ERR_FORMAT] = "incompatible or foreign data directory",
        [WS_ERR_LOCKED] = "data directory is in use by another process",
        [WS_ERR_NOT_FOUND] = "not found",
        [WS_ERR_USAGE] = "usage error",
        [WS_ERR_CORRUPT] = "stored record is corrupt",
        [WS_ERR_TXN_FULL] = "batch too large for one store transaction",
        [WS_ERR_NO_SPACE] =
            "no space left on the state's file system (or a write error there)",
        [WS_ERR_NOT_OWNED] = "owned by another instance of the group",
        [WS_ERR_FENCED] = "fenced: another instance now owns the partition",
    };
    if (err < 0 || err >= WS_ERR_COUNT)
        return "unknown error";
    return names[err];
}

const char *ws_reason_name(enum ws_reason r)
{
    static const char *const names[WS_R_COUNT] = {
        [WS_R_NONE] = "",
        [WS_R_INVALID_JSON] = "invalid_json",
        [WS_R_NOT_AN_OBJECT] = "not_an_object",
        [WS_R_MESSAGE_TOO_LARGE] = "message_too_large",
        [WS_R_MISSING_FIELD] = "missing_field",
        [WS_R_DUPLICATE_FIELD] = "duplicate_field",
        [WS_R_INVALID_FIELD] = "invalid_field",
        [WS_R_INVALID_TYPE] = "invalid_type",
        [WS_R_INVALID_AMOUNT] = "invalid_amount",
        [WS_R_AMOUNT_OUT_OF_RANGE] = "amount_out_of_range",
        [WS_R_INVALID_CURRENCY] = "invalid_currency",
        [WS_R_INVALID_TIMESTAMP] = "invalid_timestamp",
        [WS_R_CURRENCY_MISMATCH] = "currency_mismatch",
        [WS_R_CONFLICTING_DUPLICATE] = "conflicting_duplicate",
        [WS_R_AGGREGATE_OVERFLOW] = "aggregate_overflow",
    };
    if ((int)r < 0 || r >= WS_R_COUNT)
        return "";
    return names[r];
}

const char *ws_outcome_name(enum ws_outcome o)
{
    static const char *const names[WS_OUTCOME_COUNT] = {
        [WS_APPLIED] = "applied",
        [WS_DUPLICATE] = "duplicate",
        [WS_REJECTED] = "rejected",
    };
    if ((int)o < 0 || o >= WS_OUTCOME_COUNT)
        return "";
    return names[o];
}
