/*
 * fuzz_decimal.c - amounts (src/decimal.c).
 *
 * The input is split at its first NUL into two texts a and b. Properties:
 *   - ws_dec_parse_amount returns exactly WS_R_NONE, WS_R_INVALID_AMOUNT or
 *     WS_R_AMOUNT_OUT_OF_RANGE, and a parsed amount is >= 0, below 10^15,
 *     with a scale of 0-18 and no digit beyond that scale;
 *   - parse -> ws_dec_format(scale) -> parse gives the same amount and
 *     scale, and the text fits WS_DEC_TEXT_MAX;
 *   - a text ws_dec_scan refuses is never parsed as an amount;
 *   - a + b - b == a and a - b + b == a when no overflow is reported;
 *     ws_dec_cmp is antisymmetric and agrees with the difference's sign;
 *   - store/load is the identity; ws_dec_format_average never overruns;
 *   - the same arithmetic properties, and ws_dec_format within
 *     WS_DEC_TEXT_MAX for any scale, hold for any two 128-bit values taken
 *     from the input's last 33 bytes (sums and totals, not only amounts).
 */
#include <string.h>

#include "decimal.h"
#include "fuzz.h"

static int parse_checked(const char *s, size_t n, ws_dec *v, uint8_t *scale)
{
    ws_num_text t;
    enum ws_reason r = ws_dec_parse_amount(s, n, v, scale);
    char text[WS_DEC_TEXT_MAX + 8];
    ws_dec again;
    uint8_t scale2;
    size_t len;

    PROPERTY(r == WS_R_NONE || r == WS_R_INVALID_AMOUNT ||
             r == WS_R_AMOUNT_OUT_OF_RANGE);
    if (ws_dec_scan(s, n, &t) != 0)
        PROPERTY(r == WS_R_INVALID_AMOUNT);
    if (r != WS_R_NONE)
        return -1;
    PROPERTY(*scale <= WS_DEC_MAX_SCALE);
    PROPERTY(wide(*v) >= 0);
    PROPERTY(wide(*v) < pow10i(WS_DEC_MAX_INT_DIGITS + WS_DEC_MAX_SCALE));
    PROPERTY(wide(*v) % pow10i(WS_DEC_MAX_SCALE - *scale) == 0);

    memset(text, 'X', sizeof text);
    len = ws_dec_format(*v, *scale, text);
    PROPERTY(len < WS_DEC_TEXT_MAX && text[len] == '\0' && strlen(text) == len);
    PROPERTY(text[WS_DEC_TEXT_MAX] == 'X');
    PROPERTY(ws_dec_parse_amount(text, len, &again, &scale2) == WS_R_NONE);
    PROPERTY(ws_dec_cmp(again, *v) == 0 && scale2 == *scale);
    return 0;
}

static void arithmetic(ws_dec a, ws_dec b)
{
    ws_dec s, d, back;
    unsigned char raw[16];
    int c = ws_dec_cmp(a, b);

    PROPERTY(c == -ws_dec_cmp(b, a));
    PROPERTY((c == 0) == (wide(a) == wide(b)));
    if (ws_dec_add(a, b, &s) == 0) {
        PROPERTY(ws_dec_sub(s, b, &back) == 0 && ws_dec_cmp(back, a) == 0);
    }
    if (ws_dec_sub(a, b, &d) == 0) {
        PROPERTY(ws_dec_add(d, b, &back) == 0 && ws_dec_cmp(back, a) == 0);
        PROPERTY((wide(d) > 0) - (wide(d) < 0) == c);
        PROPERTY(ws_dec_is_zero(d) == (c == 0));
    }
    ws_dec_store(a, raw);
    back = ws_dec_load(raw);
    PROPERTY(back.lo == a.lo && back.hi == a.hi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    size_t na = nul ? (size_t)(nul - s) : size;
    ws_dec a, b;
    uint8_t sa = 0, sb = 0;
    int oka, okb = -1;

    oka = parse_checked(s, na, &a, &sa);
    if (nul)
        okb = parse_checked(nul + 1, size - na - 1, &b, &sb);
    if (size >= 33) {
        const uint8_t *raw = data + size - 33;
        char text[WS_DEC_TEXT_MAX + 8];
        ws_dec x, y;

        memcpy(&x.lo, raw, 8);
        memcpy(&x.hi, raw + 8, 8);
        memcpy(&y.lo, raw + 16, 8);
        memcpy(&y.hi, raw + 24, 8);
        arithmetic(x, y);
        memset(text, 'X', sizeof text);
        PROPERTY(ws_dec_format(x, raw[32] % (WS_DEC_MAX_SCALE + 1), text) <
                 WS_DEC_TEXT_MAX);
        PROPERTY(text[WS_DEC_TEXT_MAX] == 'X');
        if (wide(x) >= 0 && wide(y) > 0) {
            memset(text, 'X', sizeof text);
            PROPERTY(ws_dec_format_average(x, (int64_t)(y.lo % 3660000) + 1,
                                           raw[32] % (WS_DEC_MAX_SCALE + 1),
                                           text) < WS_DEC_TEXT_MAX);
            PROPERTY(text[WS_DEC_TEXT_MAX] == 'X');
        }
    }
    if (oka == 0 && okb == 0) {
        char text[WS_DEC_TEXT_MAX + 8];
        int64_t days = (int64_t)(1 + (b.lo % 3660000));

        arithmetic(a, b);
        memset(text, 'X', sizeof text);
        PROPERTY(ws_dec_format_average(a, days, sa, text) < WS_DEC_TEXT_MAX);
        PROPERTY(text[WS_DEC_TEXT_MAX] == 'X');
    }
    return 0;
}
