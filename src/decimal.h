/*
 * decimal.h - exact decimal amounts (SPEC §2, §4; DESIGN §4).
 *
 * A ws_dec is a signed 128-bit integer counting units of 10^-18, kept as
 * two 64-bit halves so that __int128 stays inside decimal.c. The scale an
 * amount was written with (its fractional digits) travels beside it as a
 * separate small integer. Nothing here ever goes through binary floating
 * point: numbers are parsed from their text and printed digit by digit.
 */
#ifndef WS_DECIMAL_H
#define WS_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#include "ws.h"

/* SPEC §2: at most 18 fractional digits, at most 15 integer digits. */
#define WS_DEC_MAX_SCALE 18
#define WS_DEC_MAX_INT_DIGITS 15
/* Longest text ws_dec_format writes: sign, 21 integer digits, point,
 * 18 fraction digits, NUL. */
#define WS_DEC_TEXT_MAX 48

typedef struct ws_dec {
    uint64_t lo;
    int64_t hi;
} ws_dec;

/* The pieces of a JSON number's text, as ws_dec_scan finds them. */
typedef struct ws_num_text {
    int negative;
    const char *int_digits;   /* points into the scanned text */
    size_t int_len;
    const char *frac_digits;  /* NULL when there is no '.' */
    size_t frac_len;
    int64_t exponent;         /* clamped to +-WS_DEC_EXP_CLAMP */
    int has_exponent;
} ws_num_text;

/* Exponents beyond this cannot give an amount in range; clamping them
 * keeps every later computation in int64 and constant time. */
#define WS_DEC_EXP_CLAMP 1000000000

/* Checks that s[0..n) is exactly one JSON number (RFC 8259 grammar:
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?) and splits it.
 * Returns 0, or -1 when the text is not a JSON number. Any thread. */
int ws_dec_scan(const char *s, size_t n, ws_num_text *out);

/* Parses an amount (SPEC §2) from the text of a JSON number. On success
 * returns WS_R_NONE and sets *out and *scale (fractional digits after
 * moving the point by the exponent). Returns WS_R_INVALID_AMOUNT when the
 * text is not a JSON number or is negative and not zero, and
 * WS_R_AMOUNT_OUT_OF_RANGE for more than 18 fractional or 15 integer
 * digits. Runs in time linear in n, whatever the exponent. */
enum ws_reason ws_dec_parse_amount(const char *s, size_t n, ws_dec *out,
                                   uint8_t *scale);

/* *out = a + b (or a - b). Returns 0, or -1 on overflow (out untouched). */
int ws_dec_add(ws_dec a, ws_dec b, ws_dec *out);
int ws_dec_sub(ws_dec a, ws_dec b, ws_dec *out);

/* <0, 0, >0 as a is less than, equal to, greater than b. */
int ws_dec_cmp(ws_dec a, ws_dec b);
int ws_dec_is_zero(ws_dec a);

/* Writes v with exactly `scale` fractional digits (0-18) and a NUL into
 * buf (at least WS_DEC_TEXT_MAX bytes); digits of v beyond the scale are
 * not printed (callers pass a scale at least that of every addend).
 * Returns the length written. */
size_t ws_dec_format(ws_dec v, unsigned scale, char *buf);

/* Writes total / days rounded half-to-even to 6 fractional digits, then
 * with trailing zeros removed while more than `scale` digits remain
 * (SPEC §4, average daily debit). days must be >= 1. Returns the length. */
size_t ws_dec_format_average(ws_dec total, int64_t days, unsigned scale,
                             char *buf);

/* 16 little-endian bytes, as the store keeps them. */
void ws_dec_store(ws_dec v, unsigned char out[16]);
ws_dec ws_dec_load(const unsigned char in[16]);

#endif
