/*
 * decimal.c - exact decimal arithmetic on 128-bit integers.
 *
 * Values are integers counting 10^-18. Parsing reads the digits of the
 * number's text; the exponent only moves the decimal point, so an amount
 * like 1e999999999 is refused by counting digits, never by computing.
 * Printing divides by powers of ten. __int128 lives only in this file.
 */
#include "decimal.h"

#include <string.h>

typedef __int128 i128;
typedef unsigned __int128 u128;

#define UNITS_PER_ONE ((u128)1000000000000000000ULL) /* 10^18 */

static i128 to_i128(ws_dec d)
{
    return (i128)(((u128)(uint64_t)d.hi << 64) | (u128)d.lo);
}

static ws_dec from_i128(i128 v)
{
    ws_dec d;
    d.lo = (uint64_t)((u128)v);
    d.hi = (int64_t)(uint64_t)((u128)v >> 64);
    return d;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---------------------------------------------------------------- scan */

int ws_dec_scan(const char *s, size_t n, ws_num_text *out)
{
    size_t i = 0;

    memset(out, 0, sizeof *out);
    if (i < n && s[i] == '-') {
        out->negative = 1;
        i++;
    }
    /* Integer part: 0, or a non-zero digit followed by digits. */
    if (i >= n || !is_digit(s[i]))
        return -1;
    out->int_digits = s + i;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && is_digit(s[i]))
            i++;
    }
    out->int_len = (size_t)(s + i - out->int_digits);
    if (i < n && s[i] == '.') {
        i++;
        out->frac_digits = s + i;
        while (i < n && is_digit(s[i]))
            i++;
        out->frac_len = (size_t)(s + i - out->frac_digits);
        if (out->frac_len == 0)
            return -1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int neg = 0;
        int64_t e = 0;
        size_t start;

        i++;
        out->has_exponent = 1;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            neg = s[i] == '-';
            i++;
        }
        start = i;
        while (i < n && is_digit(s[i])) {
            if (e < WS_DEC_EXP_CLAMP)
                e = e * 10 + (s[i] - '0');
            i++;
        }
        if (i == start)
            return -1;
        if (e > WS_DEC_EXP_CLAMP)
            e = WS_DEC_EXP_CLAMP;
        out->exponent = neg ? -e : e;
    }
    return i == n ? 0 : -1;
}

/* --------------------------------------------------------------- parse */

/* The i-th digit of the number's digit string (integer digits, then
 * fraction digits). */
static int digit_at(const ws_num_text *t, size_t i)
{
    if (i < t->int_len)
        return t->int_digits[i] - '0';
    return t->frac_digits[i - t->int_len] - '0';
}

enum ws_reason ws_dec_parse_amount(const char *s, size_t n, ws_dec *out,
                                   uint8_t *scale)
{
    ws_num_text t;
    size_t len, lead = 0, i;
    int64_t point, frac, int_digits, shift;
    u128 v = 0;

    if (ws_dec_scan(s, n, &t) != 0)
        return WS_R_INVALID_AMOUNT;

    /* The digits D = int || frac; the decimal point sits after `point`
     * digits of D once the exponent has moved it. */
    len = t.int_len + t.frac_len;
    point = (int64_t)t.int_len + t.exponent;
    frac = (int64_t)len - point;
    if (frac < 0)
        frac = 0;

    while (lead < len && digit_at(&t, lead) == 0)
        lead++;
    if (lead == len) {
        /* Zero, "-0" included: only its written scale can be wrong. */
        if (frac > WS_DEC_MAX_SCALE)
            return WS_R_AMOUNT_OUT_OF_RANGE;
        memset(out, 0, sizeof *out);
        *scale = (uint8_t)frac;
        return WS_R_NONE;
    }
    if (t.negative)
        return WS_R_INVALID_AMOUNT;
    int_digits = point - (int64_t)lead;
    if (int_digits > WS_DEC_MAX_INT_DIGITS || frac > WS_DEC_MAX_SCALE)
        return WS_R_AMOUNT_OUT_OF_RANGE;

    /* At most 15 + 18 significant digits remain: they fit in 128 bits. */
    for (i = lead; i < len; i++)
        v = v * 10 + (u128)digit_at(&t, i);
    /* Scale D up to units of 10^-18: shift = 18 - (len - point) >= 0. */
    for (shift = WS_DEC_MAX_SCALE - ((int64_t)len - point); shift > 0; shift--)
        v *= 10;
    *out = from_i128((i128)v);
    *scale = (uint8_t)frac;
    return WS_R_NONE;
}

/* ---------------------------------------------------------- arithmetic */

int ws_dec_add(ws_dec a, ws_dec b, ws_dec *out)
{
    i128 r;

    if (__builtin_add_overflow(to_i128(a), to_i128(b), &r))
        return -1;
    *out = from_i128(r);
    return 0;
}

int ws_dec_sub(ws_dec a, ws_dec b, ws_dec *out)
{
    i128 r;

    if (__builtin_sub_overflow(to_i128(a), to_i128(b), &r))
        return -1;
    *out = from_i128(r);
    return 0;
}

int ws_dec_cmp(ws_dec a, ws_dec b)
{
    i128 x = to_i128(a), y = to_i128(b);

    return (x > y) - (x < y);
}

int ws_dec_is_zero(ws_dec a)
{
    return a.lo == 0 && a.hi == 0;
}

/* ------------------------------------------------------------ printing */

static u128 magnitude(i128 v)
{
    return v < 0 ? (u128)(-(v + 1)) + 1 : (u128)v;
}

/* Writes the decimal digits of v (at least one) at p; returns the count. */
static size_t put_u128(u128 v, char *p)
{
    char tmp[40];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* Prints sign, integer part and `digits` fractional digits of
 * mag / 10^digits_total, where `frac` holds the fraction as an integer of
 * `frac_width` digits. */
static size_t put_fixed(int negative, u128 int_part, u128 frac,
                        unsigned frac_width, unsigned digits, char *buf)
{
    size_t n = 0;
    unsigned i;
    char fbuf[40];

    if (negative)
        buf[n++] = '-';
    n += put_u128(int_part, buf + n);
    if (digits > 0) {
        for (i = frac_width; i > 0; i--) {
            fbuf[i - 1] = (char)('0' + (int)(frac % 10));
            frac /= 10;
        }
        buf[n++] = '.';
        memcpy(buf + n, fbuf, digits);
        n += digits;
    }
    buf[n] = '\0';
    return n;
}

size_t ws_dec_format(ws_dec v, unsigned scale, char *buf)
{
    i128 x = to_i128(v);
    u128 m = magnitude(x);

    if (scale > WS_DEC_MAX_SCALE)
        scale = WS_DEC_MAX_SCALE;
    return put_fixed(x < 0 && m != 0, m / UNITS_PER_ONE, m % UNITS_PER_ONE,
                     WS_DEC_MAX_SCALE, scale, buf);
}

size_t ws_dec_format_average(ws_dec total, int64_t days, unsigned scale,
                             char *buf)
{
    /* The result in units of 10^-6: the 10^-18 units over days * 10^12. */
    i128 x = to_i128(total);
    u128 m = magnitude(x);
    u128 div = (u128)(days > 0 ? days : 1) * 1000000000000ULL;
    u128 q = m / div, r = m % div, pow = 1000000;
    unsigned digits = 6;

    /* Half to even: up above one half, and at one half when q is odd. */
    if (r * 2 > div || (r * 2 == div && (q & 1)))
        q++;
    while (digits > scale && q % 10 == 0) {
        q /= 10;
        pow /= 10;
        digits--;
    }
    return put_fixed(x < 0 && q != 0, q / pow, q % pow, digits, digits, buf);
}

/* ------------------------------------------------------------- storage */

void ws_dec_store(ws_dec v, unsigned char out[16])
{
    int i;

    for (i = 0; i < 8; i++) {
        out[i] = (unsigned char)(v.lo >> (8 * i));
        out[8 + i] = (unsigned char)((uint64_t)v.hi >> (8 * i));
    }
}

ws_dec ws_dec_load(const unsigned char in[16])
{
    ws_dec v;
    uint64_t hi = 0;
    int i;

    v.lo = 0;
    for (i = 0; i < 8; i++) {
        v.lo |= (uint64_t)in[i] << (8 * i);
        hi |= (uint64_t)in[8 + i] << (8 * i);
    }
    v.hi = (int64_t)hi;
    return v;
}
