/*
 * decode.h - record bytes to a validated transaction (SPEC §2, §3).
 *
 * ws_decode() is a pure function of its input: no I/O, no logging, no
 * allocation. It either fills a ws_txn or returns exactly one reason code
 * with a human sentence. The decoder object only holds scratch space
 * (jsmn's token array, sized for the largest record accepted), allocated
 * once so that the hot path allocates nothing.
 */
#ifndef WS_DECODE_H
#define WS_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "decimal.h"
#include "ws.h"

enum ws_type {
    WS_CREDIT = 0,
    WS_DEBIT,
    WS_CANCEL_CREDIT,
    WS_CANCEL_DEBIT
};

/* "credit", "debit", "cancelCredit" or "cancelDebit". */
const char *ws_type_name(enum ws_type t);

/* A validated transaction. Ids are unescaped UTF-8, not NUL-terminated:
 * their lengths travel beside them. */
typedef struct ws_txn {
    char tx_id[WS_MAX_ID];
    size_t tx_id_len;
    char wallet_id[WS_MAX_ID];
    size_t wallet_id_len;
    char product_id[WS_MAX_ID];
    size_t product_id_len;
    enum ws_type type;
    ws_dec amount;          /* >= 0, in units of 10^-18 */
    uint8_t scale;          /* fractional digits as written (0-18) */
    char currency[3];       /* upper-case ASCII letters */
    ws_instant ts;          /* UTC */
} ws_txn;

/* Room for a reason's detail sentence. */
#define WS_DETAIL_MAX 160

typedef struct ws_decoder ws_decoder;

/* Allocates a decoder. Returns 0 or WS_ERR_NOMEM. Free with
 * ws_decoder_free(). A decoder serves one thread at a time. */
int ws_decoder_new(ws_decoder **out);
void ws_decoder_free(ws_decoder *d);

/* Decodes one record value buf[0..len). Returns WS_R_NONE and fills *out,
 * or a reason code and writes a NUL-terminated sentence into
 * detail[0..WS_DETAIL_MAX) (may be NULL). */
enum ws_reason ws_decode(ws_decoder *d, const char *buf, size_t len,
                         ws_txn *out, char *detail);

/* Finds the wallet id of a record value, for a producer's message key:
 * 0 with the unescaped id in out[0..WS_MAX_ID) and *n set, or -1 when
 * the record is not a JSON object with a string wallet_id (any alias). */
int ws_decode_wallet_key(ws_decoder *d, const char *buf, size_t len,
                         char *out, size_t *n);

/* 1 when id[0..n) meets the id rule of SPEC §2: 1-256 bytes of valid
 * UTF-8 without control characters (C0, DEL, C1). Any thread. */
int ws_id_valid(const char *id, size_t n);

#endif
