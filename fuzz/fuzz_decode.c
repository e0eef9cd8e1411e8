/*
 * fuzz_decode.c - record decoding (ws_decode, src/decode.c).
 *
 * The input is one record value, decoded from a heap copy of exactly its
 * length (a read past the end is an AddressSanitizer error). Properties:
 *   - the result is WS_R_NONE or one reason code of SPEC §3 that decoding
 *     alone can give, and a reason always comes with a detail sentence;
 *   - an applied transaction has ids that meet the id rule, a type of the
 *     four, an amount >= 0 and below 10^15 with a scale of 0-18 and no
 *     digit beyond it, a currency of three upper-case letters, and an
 *     instant in the accepted range;
 *   - decoding is a function of its input: a second decode with the same
 *     decoder gives the same outcome and the same transaction;
 *   - ws_decode_wallet_key finds the same wallet id as ws_decode.
 */
#include <string.h>

#include "decode.h"
#include "fuzz.h"
#include "timeutil.h"

static ws_decoder *dec;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    PROPERTY(ws_decoder_new(&dec) == WS_OK);
    return 0;
}

static int same_txn(const ws_txn *a, const ws_txn *b)
{
    return a->tx_id_len == b->tx_id_len &&
           memcmp(a->tx_id, b->tx_id, a->tx_id_len) == 0 &&
           a->wallet_id_len == b->wallet_id_len &&
           memcmp(a->wallet_id, b->wallet_id, a->wallet_id_len) == 0 &&
           a->product_id_len == b->product_id_len &&
           memcmp(a->product_id, b->product_id, a->product_id_len) == 0 &&
           a->type == b->type && ws_dec_cmp(a->amount, b->amount) == 0 &&
           a->scale == b->scale && memcmp(a->currency, b->currency, 3) == 0 &&
           ws_time_cmp(a->ts, b->ts) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ws_txn t, t2;
    char detail[WS_DETAIL_MAX], detail2[WS_DETAIL_MAX], key[WS_MAX_ID];
    char *buf = malloc(size ? size : 1);
    enum ws_reason r, r2;
    size_t keylen = 0;
    int k;

    PROPERTY(buf != NULL);
    memcpy(buf, data, size);
    memset(detail, 'X', sizeof detail);
    r = ws_decode(dec, buf, size, &t, detail);
    PROPERTY(r >= WS_R_NONE && r <= WS_R_INVALID_TIMESTAMP);
    PROPERTY(memchr(detail, '\0', sizeof detail) != NULL);
    if (r != WS_R_NONE) {
        PROPERTY(detail[0] != '\0');
    } else {
        PROPERTY(ws_id_valid(t.tx_id, t.tx_id_len));
        PROPERTY(ws_id_valid(t.wallet_id, t.wallet_id_len));
        PROPERTY(ws_id_valid(t.product_id, t.product_id_len));
        PROPERTY(t.type >= WS_CREDIT && t.type <= WS_CANCEL_DEBIT);
        PROPERTY(t.scale <= WS_DEC_MAX_SCALE);
        PROPERTY(wide(t.amount) >= 0);
        PROPERTY(wide(t.amount) <
                 pow10i(WS_DEC_MAX_INT_DIGITS + WS_DEC_MAX_SCALE));
        PROPERTY(wide(t.amount) % pow10i(WS_DEC_MAX_SCALE - t.scale) == 0);
        for (k = 0; k < 3; k++)
            PROPERTY(t.currency[k] >= 'A' && t.currency[k] <= 'Z');
        PROPERTY(t.ts.sec >= 0 && t.ts.sec < WS_TIME_END_SEC);
        PROPERTY(t.ts.nsec >= 0 && t.ts.nsec < 1000000000);

        PROPERTY(ws_decode_wallet_key(dec, buf, size, key, &keylen) == 0);
        PROPERTY(keylen == t.wallet_id_len &&
                 memcmp(key, t.wallet_id, keylen) == 0);
    }
    r2 = ws_decode(dec, buf, size, &t2, detail2);
    PROPERTY(r2 == r);
    PROPERTY(strcmp(detail, detail2) == 0);
    if (r == WS_R_NONE)
        PROPERTY(same_txn(&t, &t2));
    /* Without a detail buffer too. */
    PROPERTY(ws_decode(dec, buf, size, &t2, NULL) == r);
    free(buf);
    return 0;
}
