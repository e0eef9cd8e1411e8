/*
 * test_decimal.c - exact decimal amounts (src/decimal.c; SPEC §2 amount
 * rule, §4 average daily debit, scale and exactness; DESIGN §4).
 *
 * A ws_dec counts units of 10^-18 in a signed 128-bit integer kept as two
 * 64-bit halves. Expected values are written out digit by digit here,
 * never computed with floating point.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "wstest.h"

/* The largest and smallest values a ws_dec holds. */
static const ws_dec DEC_MAX = {UINT64_MAX, INT64_MAX};
static const ws_dec DEC_MIN = {0, INT64_MIN};

static ws_dec dec(uint64_t lo, int64_t hi)
{
    ws_dec d;

    d.lo = lo;
    d.hi = hi;
    return d;
}

/* A small signed value in units of 10^-18. */
static ws_dec units(int64_t v)
{
    return dec((uint64_t)v, v < 0 ? -1 : 0);
}

/* m / 10^frac as a ws_dec, i.e. m * 10^(18 - frac) units, computed
 * with 32-bit limbs (frac <= 18). */
static ws_dec amt(uint64_t m, unsigned frac)
{
    uint32_t limb[4] = {(uint32_t)m, (uint32_t)(m >> 32), 0, 0};
    unsigned e = 18 - frac, i;

    while (e-- > 0) {
        uint64_t carry = 0;

        for (i = 0; i < 4; i++) {
            uint64_t x = (uint64_t)limb[i] * 10 + carry;

            limb[i] = (uint32_t)x;
            carry = x >> 32;
        }
    }
    return dec(limb[0] | (uint64_t)limb[1] << 32,
               (int64_t)(limb[2] | (uint64_t)limb[3] << 32));
}

/* -v, two's complement, computed here rather than by the code under
 * test. */
static ws_dec neg(ws_dec v)
{
    uint64_t lo = ~v.lo + 1;

    return dec(lo, (int64_t)(~(uint64_t)v.hi + (lo == 0)));
}

static int dec_eq(ws_dec a, ws_dec b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

/* Parses an amount from a heap copy of exactly its text. */
static enum ws_reason parse(const char *s, ws_dec *out, uint8_t *scale)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    ws_dec v = dec(0xDEAD, 0xBEEF);
    uint8_t sc = 99;
    enum ws_reason r;

    if (!copy)
        return WS_R_COUNT;
    memcpy(copy, s, n);
    r = ws_dec_parse_amount(copy, n, &v, &sc);
    free(copy);
    if (out)
        *out = v;
    if (scale)
        *scale = sc;
    return r;
}

static int scan(const char *s, ws_num_text *out)
{
    return ws_dec_scan(s, strlen(s), out);
}

/* The amount text s, parsed, printed with `scale` digits. */
static const char *fmt_of(const char *s, unsigned scale)
{
    static char buf[WS_DEC_TEXT_MAX];
    ws_dec v;

    if (parse(s, &v, NULL) != WS_R_NONE)
        return "(not parsed)";
    ws_dec_format(v, scale, buf);
    return buf;
}

/* Average of an amount text over days, printed for a wallet scale. */
static const char *avg(const char *total, int64_t days, unsigned scale)
{
    static char buf[WS_DEC_TEXT_MAX];
    ws_dec v;
    int neg = total[0] == '-';

    /* Amounts are never negative; totals can be: parse |total|, negate. */
    if (parse(total + neg, &v, NULL) != WS_R_NONE)
        return "(not parsed)";
    if (neg && ws_dec_sub(units(0), v, &v) != 0)
        return "(overflow)";
    ws_dec_format_average(v, days, scale, buf);
    return buf;
}

#define CHECK_AMOUNT(text, want, want_scale)                             \
    do {                                                                 \
        ws_dec v_;                                                       \
        uint8_t s_;                                                      \
        enum ws_reason r_ = parse(text, &v_, &s_);                       \
        CHECK_EQ_STR(ws_reason_name(r_), "");                            \
        if (r_ == WS_R_NONE) {                                           \
            CHECK(dec_eq(v_, want));                                     \
            CHECK_EQ_INT(s_, want_scale);                                \
        } else {                                                         \
            printf("  (amount \"%s\")\n", text);                         \
        }                                                                \
    } while (0)

#define CHECK_AMOUNT_REASON(text, want)                                  \
    do {                                                                 \
        enum ws_reason r_ = parse(text, NULL, NULL);                     \
        if (r_ != (want))                                                \
            printf("  (amount \"%s\")\n", text);                         \
        CHECK_EQ_STR(ws_reason_name(r_), ws_reason_name(want));          \
    } while (0)

/* ---------------------------------------------------------------- scan */

static void test_scan_accepts_json_numbers(void)
{
    static const char *const ok[] = {
        "0", "-0", "7", "123", "1.5", "0.5", "0.000", "-12.75", "1e5",
        "1E5", "1e+5", "1e-5", "1E-05", "-1.5e-3", "0e0", "10.01e+10",
        "123456789012345678901234567890",
    };
    size_t i;
    ws_num_text t;

    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (scan(ok[i], &t) != 0) {
            printf("  \"%s\" was not scanned\n", ok[i]);
            CHECK(0);
        }
    }
}

static void test_scan_rejects_what_json_does_not_allow(void)
{
    static const char *const bad[] = {
        "", "-", "+1", "01", "00", "-01", ".5", "-.5", "5.", "5.e3", "1e",
        "1e+", "1e-", "1E+-5", "e5", "0x10", "NaN", "nan", "Infinity",
        "-Infinity", "inf", " 1", "1 ", "1..2", "1.2.3", "--1", "1e5.5",
        "1_000", "1,5", "1ee5", "true", "null", "\"5\"", "5e5e5", "1e 5",
        "\xD9\xA1", /* ARABIC-INDIC DIGIT ONE */
    };
    size_t i;
    ws_num_text t;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (scan(bad[i], &t) != -1) {
            printf("  \"%s\" was scanned as a number\n", bad[i]);
            CHECK(0);
        }
    }
}

static void test_scan_splits_the_number_into_its_parts(void)
{
    ws_num_text t;

    CHECK_EQ_INT(scan("-12.750e-3", &t), 0);
    CHECK_EQ_INT(t.negative, 1);
    CHECK_EQ_INT(t.int_len, 2);
    CHECK(memcmp(t.int_digits, "12", 2) == 0);
    CHECK(t.frac_digits != NULL);
    CHECK_EQ_INT(t.frac_len, 3);
    CHECK(t.frac_digits && memcmp(t.frac_digits, "750", 3) == 0);
    CHECK_EQ_INT(t.has_exponent, 1);
    CHECK_EQ_INT(t.exponent, -3);

    CHECK_EQ_INT(scan("42", &t), 0);
    CHECK_EQ_INT(t.negative, 0);
    CHECK_EQ_INT(t.int_len, 2);
    CHECK(t.frac_digits == NULL);
    CHECK_EQ_INT(t.frac_len, 0);
    CHECK_EQ_INT(t.has_exponent, 0);
    CHECK_EQ_INT(t.exponent, 0);

    CHECK_EQ_INT(scan("0E+07", &t), 0);
    CHECK_EQ_INT(t.int_len, 1);
    CHECK_EQ_INT(t.has_exponent, 1);
    CHECK_EQ_INT(t.exponent, 7);
}

static void test_scan_clamps_huge_exponents(void)
{
    ws_num_text t;

    CHECK_EQ_INT(scan("1e999999999", &t), 0);
    CHECK_EQ_INT(t.exponent, 999999999);
    CHECK_EQ_INT(scan("1e1000000000", &t), 0);
    CHECK_EQ_INT(t.exponent, WS_DEC_EXP_CLAMP);
    CHECK_EQ_INT(scan("1e99999999999999999999999999999999999999", &t), 0);
    CHECK_EQ_INT(t.exponent, WS_DEC_EXP_CLAMP);
    CHECK_EQ_INT(scan("1e-99999999999999999999999999999999999999", &t), 0);
    CHECK_EQ_INT(t.exponent, -WS_DEC_EXP_CLAMP);
    CHECK_EQ_INT(scan("1e00000000000000000000000000000000000005", &t), 0);
    CHECK_EQ_INT(t.exponent, 5);
}

static void test_scan_reads_only_the_given_length(void)
{
    ws_num_text t;

    CHECK_EQ_INT(ws_dec_scan("12345", 3, &t), 0);
    CHECK_EQ_INT(t.int_len, 3);
    CHECK_EQ_INT(ws_dec_scan("1.5", 2, &t), -1);    /* "1." */
    CHECK_EQ_INT(ws_dec_scan("1e5", 2, &t), -1);    /* "1e" */
    CHECK_EQ_INT(ws_dec_scan("7x", 1, &t), 0);
}

/* --------------------------------------------------------------- parse */

static void test_amount_keeps_the_written_scale(void)
{
    CHECK_AMOUNT("75.00", amt(75, 0), 2);
    CHECK_AMOUNT("75", amt(75, 0), 0);
    CHECK_AMOUNT("75.0", amt(75, 0), 1);
    CHECK_AMOUNT("5.00", amt(5, 0), 2);
    CHECK_AMOUNT("0.5", amt(5, 1), 1);
    CHECK_AMOUNT("12.34", amt(1234, 2), 2);
}

static void test_amount_parse_and_format_round_trip(void)
{
    static const struct {
        const char *text;
        unsigned scale;
    } cases[] = {
        {"75.00", 2}, {"0", 0}, {"0.00", 2}, {"0.5", 1}, {"12.34", 2},
        {"1.000000000000000000", 18}, {"0.000000000000000001", 18},
        {"999999999999999", 0},
        {"999999999999999.999999999999999999", 18},
        {"123456789012345.123456789012345678", 18},
        {"100000000000000.5", 1},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ws_dec v;
        uint8_t sc;
        char buf[WS_DEC_TEXT_MAX];
        size_t n;

        CHECK_EQ_INT(parse(cases[i].text, &v, &sc), WS_R_NONE);
        CHECK_EQ_INT(sc, cases[i].scale);
        n = ws_dec_format(v, sc, buf);
        CHECK_EQ_STR(buf, cases[i].text);
        CHECK_EQ_INT(n, strlen(cases[i].text));
    }
}

static void test_amount_exponent_moves_the_point(void)
{
    /* 5e2 = 500, scale 0. */
    CHECK_AMOUNT("5e2", amt(500, 0), 0);
    CHECK_AMOUNT("5E+2", amt(500, 0), 0);
    /* 1234E-2 = 12.34, scale 2. */
    CHECK_AMOUNT("1234E-2", amt(1234, 2), 2);
    CHECK_EQ_STR(fmt_of("1234E-2", 2), "12.34");
    /* 1e-18: one unit, scale 18. */
    CHECK_AMOUNT("1e-18", units(1), 18);
    CHECK_AMOUNT("1.5e1", amt(15, 0), 0);
    CHECK_AMOUNT("1.25e1", amt(125, 1), 1);
    CHECK_AMOUNT("100e-2", amt(1, 0), 2);
    CHECK_AMOUNT("0.001e3", amt(1, 0), 0);
    CHECK_AMOUNT("0.5e-17", units(5), 18);
    CHECK_AMOUNT("12e0", amt(12, 0), 0);
}

static void test_amount_accepts_18_fraction_digits(void)
{
    CHECK_AMOUNT("0.000000000000000001", units(1), 18);
    CHECK_AMOUNT("1.000000000000000000", amt(1, 0), 18);
    CHECK_AMOUNT("0.123456789012345678",
                 units(INT64_C(123456789012345678)), 18);
}

static void test_amount_rejects_more_than_18_fraction_digits(void)
{
    CHECK_AMOUNT_REASON("0.0000000000000000001", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("1.0000000000000000000", WS_R_AMOUNT_OUT_OF_RANGE);
    /* The fraction is counted after moving the point: 1.0e-18 has 19. */
    CHECK_AMOUNT_REASON("1.0e-18", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("1e-19", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("10e-19", WS_R_AMOUNT_OUT_OF_RANGE);
    /* Zero too: its written scale is 19. */
    CHECK_AMOUNT_REASON("0.0000000000000000000", WS_R_AMOUNT_OUT_OF_RANGE);
}

static void test_amount_accepts_15_integer_digits(void)
{
    /* 999999999999999 * 10^18 = 0x314dc6448d932ae0a456589c0000 */
    CHECK_AMOUNT("999999999999999",
                 dec(UINT64_C(3089650035136921600), INT64_C(54210108624275)),
                 0);
    CHECK(dec_eq(amt(UINT64_C(999999999999999), 0),
                 dec(UINT64_C(3089650035136921600), INT64_C(54210108624275))));
    CHECK_EQ_STR(fmt_of("9.99999999999999e14", 0), "999999999999999");
    CHECK_EQ_STR(fmt_of("1e14", 0), "100000000000000");
    /* Leading zeros of the fraction moved left are not integer digits. */
    CHECK_EQ_STR(fmt_of("0.00123e3", 2), "1.23");
}

static void test_amount_rejects_more_than_15_integer_digits(void)
{
    CHECK_AMOUNT_REASON("1000000000000000", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("9999999999999999.5", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("1e15", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("0.1e16", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("1e999999999", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("123456789012345678901234567890",
                        WS_R_AMOUNT_OUT_OF_RANGE);
}

static void test_amount_huge_exponents_are_out_of_range(void)
{
    CHECK_AMOUNT_REASON("1e999999999", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("1e-999999999", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("1e99999999999999999999", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("1e-99999999999999999999", WS_R_AMOUNT_OUT_OF_RANGE);
    CHECK_AMOUNT_REASON("0e-99999999999999999999", WS_R_AMOUNT_OUT_OF_RANGE);
    /* Zero times any power of ten is zero, with no fraction digits. */
    CHECK_AMOUNT("0e99999999999999999999", units(0), 0);
}

static void test_amount_exponent_of_60000_digits_is_answered_fast(void)
{
    size_t n = 60000, i;
    char *pos = malloc(n + 3), *neg = malloc(n + 4);
    int k, wrong = 0;

    if (!pos || !neg) {
        CHECK(0);
        free(pos);
        free(neg);
        return;
    }
    memcpy(pos, "1e", 2);
    memset(pos + 2, '9', n);
    memcpy(neg, "1e-", 3);
    memset(neg + 3, '9', n);
    /* 60,000 exponent digits, 1000 times each way: linear in the text,
     * never in the exponent's value. */
    for (k = 0; k < 1000; k++) {
        ws_dec v;
        uint8_t sc;

        if (ws_dec_parse_amount(pos, n + 2, &v, &sc) !=
            WS_R_AMOUNT_OUT_OF_RANGE)
            wrong++;
        if (ws_dec_parse_amount(neg, n + 3, &v, &sc) !=
            WS_R_AMOUNT_OUT_OF_RANGE)
            wrong++;
    }
    CHECK_EQ_INT(wrong, 0);
    /* And 60,000 digits of mantissa. */
    for (i = 0; i < n + 2; i++)
        pos[i] = '7';
    CHECK_EQ_INT(ws_dec_parse_amount(pos, n + 2, &(ws_dec){0, 0},
                                     &(uint8_t){0}),
                 WS_R_AMOUNT_OUT_OF_RANGE);
    free(pos);
    free(neg);
}

static void test_amount_negative_is_invalid_amount(void)
{
    CHECK_AMOUNT_REASON("-5.00", WS_R_INVALID_AMOUNT);
    CHECK_AMOUNT_REASON("-1", WS_R_INVALID_AMOUNT);
    CHECK_AMOUNT_REASON("-1e-18", WS_R_INVALID_AMOUNT);
    CHECK_AMOUNT_REASON("-0.000000000000000001", WS_R_INVALID_AMOUNT);
}

static void test_amount_minus_zero_is_zero(void)
{
    CHECK_AMOUNT("-0", units(0), 0);
    CHECK_AMOUNT("-0.00", units(0), 2);
    CHECK_AMOUNT("-0e-3", units(0), 3);
    CHECK_AMOUNT("0", units(0), 0);
    CHECK_AMOUNT("0.000", units(0), 3);
    CHECK_EQ_STR(fmt_of("-0.00", 2), "0.00");
}

static void test_amount_that_is_not_a_json_number_is_invalid_amount(void)
{
    static const char *const bad[] = {
        "+5", ".5", "5.", "NaN", "Infinity", "-Infinity", "0x10", "",
        " 5", "5 ", "1,5", "05", "true", "null", "five", "1e", "--5",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_AMOUNT_REASON(bad[i], WS_R_INVALID_AMOUNT);
}

/* ---------------------------------------------------------- arithmetic */

static void test_add_and_sub_are_exact(void)
{
    ws_dec r;

    CHECK_EQ_INT(ws_dec_add(units(5), units(7), &r), 0);
    CHECK(dec_eq(r, units(12)));
    CHECK_EQ_INT(ws_dec_sub(units(5), units(7), &r), 0);
    CHECK(dec_eq(r, units(-2)));
    CHECK_EQ_INT(ws_dec_add(units(-5), units(5), &r), 0);
    CHECK(ws_dec_is_zero(r));
    /* Carry into and borrow from the high half. */
    CHECK_EQ_INT(ws_dec_add(dec(UINT64_MAX, 0), units(1), &r), 0);
    CHECK(dec_eq(r, dec(0, 1)));
    CHECK_EQ_INT(ws_dec_sub(dec(0, 1), units(1), &r), 0);
    CHECK(dec_eq(r, dec(UINT64_MAX, 0)));
    CHECK_EQ_INT(ws_dec_sub(units(0), dec(0, 1), &r), 0);
    CHECK(dec_eq(r, dec(0, -1)));
}

static void test_add_detects_overflow_at_the_int128_limits(void)
{
    ws_dec r = units(42), one = units(1);

    CHECK_EQ_INT(ws_dec_add(DEC_MAX, one, &r), -1);
    CHECK(dec_eq(r, units(42)));            /* untouched */
    CHECK_EQ_INT(ws_dec_add(one, DEC_MAX, &r), -1);
    CHECK_EQ_INT(ws_dec_add(DEC_MAX, DEC_MAX, &r), -1);
    CHECK_EQ_INT(ws_dec_add(DEC_MIN, units(-1), &r), -1);
    CHECK_EQ_INT(ws_dec_add(DEC_MIN, DEC_MIN, &r), -1);
    CHECK(dec_eq(r, units(42)));
    /* Right at the limits, no overflow. */
    CHECK_EQ_INT(ws_dec_add(DEC_MAX, units(0), &r), 0);
    CHECK(dec_eq(r, DEC_MAX));
    CHECK_EQ_INT(ws_dec_add(dec(UINT64_MAX - 1, INT64_MAX), one, &r), 0);
    CHECK(dec_eq(r, DEC_MAX));
    CHECK_EQ_INT(ws_dec_add(DEC_MIN, one, &r), 0);
    CHECK(dec_eq(r, dec(1, INT64_MIN)));
    CHECK_EQ_INT(ws_dec_add(DEC_MAX, DEC_MIN, &r), 0);
    CHECK(dec_eq(r, units(-1)));
}

static void test_sub_detects_overflow_at_the_int128_limits(void)
{
    ws_dec r = units(42), one = units(1);

    CHECK_EQ_INT(ws_dec_sub(DEC_MIN, one, &r), -1);
    CHECK(dec_eq(r, units(42)));            /* untouched */
    CHECK_EQ_INT(ws_dec_sub(DEC_MAX, units(-1), &r), -1);
    CHECK_EQ_INT(ws_dec_sub(units(0), DEC_MIN, &r), -1);
    CHECK_EQ_INT(ws_dec_sub(DEC_MAX, DEC_MIN, &r), -1);
    CHECK_EQ_INT(ws_dec_sub(units(-2), DEC_MAX, &r), -1);
    CHECK(dec_eq(r, units(42)));
    CHECK_EQ_INT(ws_dec_sub(units(-1), DEC_MAX, &r), 0);
    CHECK(dec_eq(r, DEC_MIN));
    CHECK_EQ_INT(ws_dec_sub(units(0), DEC_MAX, &r), 0);
    CHECK(dec_eq(r, dec(1, INT64_MIN)));
    CHECK_EQ_INT(ws_dec_sub(DEC_MIN, DEC_MIN, &r), 0);
    CHECK(ws_dec_is_zero(r));
}

static void test_cmp_orders_signed_values(void)
{
    CHECK(ws_dec_cmp(units(1), units(2)) < 0);
    CHECK(ws_dec_cmp(units(2), units(1)) > 0);
    CHECK(ws_dec_cmp(units(7), units(7)) == 0);
    CHECK(ws_dec_cmp(units(-1), units(0)) < 0);
    CHECK(ws_dec_cmp(units(0), units(-1)) > 0);
    CHECK(ws_dec_cmp(units(-2), units(-1)) < 0);
    CHECK(ws_dec_cmp(DEC_MIN, DEC_MAX) < 0);
    CHECK(ws_dec_cmp(DEC_MAX, DEC_MIN) > 0);
    CHECK(ws_dec_cmp(DEC_MIN, units(-1)) < 0);
    /* The low half compares unsigned, the high half signed. */
    CHECK(ws_dec_cmp(dec(UINT64_MAX, 0), dec(1, 0)) > 0);
    CHECK(ws_dec_cmp(dec(UINT64_MAX, 0), dec(0, 1)) < 0);
    CHECK(ws_dec_cmp(dec(0, -1), dec(UINT64_MAX, 0)) < 0);
    CHECK(ws_dec_cmp(dec(5, 3), dec(5, 3)) == 0);
}

static void test_is_zero(void)
{
    CHECK(ws_dec_is_zero(units(0)));
    CHECK(!ws_dec_is_zero(units(1)));
    CHECK(!ws_dec_is_zero(units(-1)));
    CHECK(!ws_dec_is_zero(dec(0, 1)));
    CHECK(!ws_dec_is_zero(DEC_MIN));
}

/* ------------------------------------------------------------ printing */

static void test_format_prints_the_requested_scale(void)
{
    char buf[WS_DEC_TEXT_MAX];

    CHECK_EQ_INT(ws_dec_format(amt(75, 0), 2, buf), 5);
    CHECK_EQ_STR(buf, "75.00");
    ws_dec_format(amt(75, 0), 0, buf);
    CHECK_EQ_STR(buf, "75");
    ws_dec_format(units(0), 0, buf);
    CHECK_EQ_STR(buf, "0");
    ws_dec_format(units(0), 3, buf);
    CHECK_EQ_STR(buf, "0.000");
    ws_dec_format(units(1), 18, buf);
    CHECK_EQ_STR(buf, "0.000000000000000001");
    ws_dec_format(amt(25, 2), 2, buf);
    CHECK_EQ_STR(buf, "0.25");
    ws_dec_format(amt(25, 2), 6, buf);
    CHECK_EQ_STR(buf, "0.250000");
}

static void test_format_of_negative_values(void)
{
    char buf[WS_DEC_TEXT_MAX];

    CHECK_EQ_INT(ws_dec_format(neg(amt(1250, 2)), 2, buf), 6);
    CHECK_EQ_STR(buf, "-12.50");
    ws_dec_format(neg(amt(5, 1)), 1, buf);
    CHECK_EQ_STR(buf, "-0.5");
    ws_dec_format(units(-1), 18, buf);
    CHECK_EQ_STR(buf, "-0.000000000000000001");
    ws_dec_format(neg(amt(75, 0)), 0, buf);
    CHECK_EQ_STR(buf, "-75");
}

static void test_format_at_the_int128_limits(void)
{
    char buf[WS_DEC_TEXT_MAX];
    size_t n;

    n = ws_dec_format(DEC_MAX, 18, buf);
    CHECK_EQ_STR(buf, "170141183460469231731.687303715884105727");
    CHECK_EQ_INT(n, strlen(buf));
    n = ws_dec_format(DEC_MIN, 18, buf);
    CHECK_EQ_STR(buf, "-170141183460469231731.687303715884105728");
    CHECK_EQ_INT(n, strlen(buf));
    CHECK(n < WS_DEC_TEXT_MAX);
    ws_dec_format(dec(0, 1), 18, buf);      /* 2^64 units */
    CHECK_EQ_STR(buf, "18.446744073709551616");
}

/* --------------------------------------------------- average daily debit */

static void test_average_examples(void)
{
    /* SPEC §5's example: 5.00 over 91 days. */
    CHECK_EQ_STR(avg("5.00", 91, 2), "0.054945");
    CHECK_EQ_STR(avg("20.00", 1, 2), "20.00");
    CHECK_EQ_STR(avg("0.00", 1, 2), "0.00");
    CHECK_EQ_STR(avg("0", 1, 0), "0");
    CHECK_EQ_STR(avg("10", 2, 0), "5");
    CHECK_EQ_STR(avg("1.5", 73, 18), "0.020548");
    CHECK_EQ_STR(avg("2", 3, 0), "0.666667");
    CHECK_EQ_STR(avg("7", 3, 2), "2.333333");
}

static void test_average_trims_trailing_zeros_down_to_the_scale(void)
{
    CHECK_EQ_STR(avg("1.5", 1, 0), "1.5");
    CHECK_EQ_STR(avg("1.5", 1, 1), "1.5");
    CHECK_EQ_STR(avg("1.5", 1, 3), "1.500");
    CHECK_EQ_STR(avg("1", 4, 0), "0.25");
    CHECK_EQ_STR(avg("20", 1, 0), "20");
    CHECK_EQ_STR(avg("20", 1, 6), "20.000000");
    /* Never more than 6 digits, whatever the scale. */
    CHECK_EQ_STR(avg("20", 1, 18), "20.000000");
    CHECK_EQ_STR(avg("0.000000000000000001", 1, 18), "0.000000");
}

static void test_average_rounds_half_to_even_at_6_digits(void)
{
    /* Exactly halfway: to the even neighbour. */
    CHECK_EQ_STR(avg("0.0000005", 1, 7), "0.000000");
    CHECK_EQ_STR(avg("0.0000005", 1, 0), "0");
    CHECK_EQ_STR(avg("0.0000015", 1, 7), "0.000002");
    CHECK_EQ_STR(avg("0.0000025", 1, 7), "0.000002");
    CHECK_EQ_STR(avg("0.0000035", 1, 7), "0.000004");
    CHECK_EQ_STR(avg("2.0000025", 1, 7), "2.000002");
    /* Halfway reached through the division. */
    CHECK_EQ_STR(avg("0.000001", 2, 6), "0.000000");
    CHECK_EQ_STR(avg("0.000003", 2, 6), "0.000002");
    CHECK_EQ_STR(avg("0.000005", 2, 6), "0.000002");
    CHECK_EQ_STR(avg("0.000007", 2, 0), "0.000004");
    /* Just off halfway goes to the nearer neighbour. */
    CHECK_EQ_STR(avg("0.000000500000000001", 1, 0), "0.000001");
    CHECK_EQ_STR(avg("0.000002499999999999", 1, 0), "0.000002");
    CHECK_EQ_STR(avg("0.000002500000000001", 1, 0), "0.000003");
    /* Carry out of the fraction. */
    CHECK_EQ_STR(avg("0.9999995", 1, 0), "1");
    CHECK_EQ_STR(avg("0.9999995", 1, 2), "1.00");
}

static void test_average_of_negative_totals_is_symmetric(void)
{
    CHECK_EQ_STR(avg("-5.00", 91, 2), "-0.054945");
    CHECK_EQ_STR(avg("-0.0000015", 1, 7), "-0.000002");
    CHECK_EQ_STR(avg("-0.0000025", 1, 7), "-0.000002");
    CHECK_EQ_STR(avg("-0.0000035", 1, 7), "-0.000004");
    CHECK_EQ_STR(avg("-1.5", 1, 3), "-1.500");
    CHECK_EQ_STR(avg("-20.00", 1, 2), "-20.00");
    /* A negative total that rounds to zero prints no minus sign. */
    CHECK_EQ_STR(avg("-0.0000005", 1, 0), "0");
    CHECK_EQ_STR(avg("-0.0000005", 1, 7), "0.000000");
}

static void test_average_at_the_int128_limits(void)
{
    char buf[WS_DEC_TEXT_MAX];

    ws_dec_format_average(DEC_MAX, 1, 0, buf);
    CHECK_EQ_STR(buf, "170141183460469231731.687304");
    ws_dec_format_average(DEC_MIN, 1, 0, buf);
    CHECK_EQ_STR(buf, "-170141183460469231731.687304");
    ws_dec_format_average(DEC_MAX, INT64_C(2932897), 2, buf);
    CHECK_EQ_STR(buf, "58011305361377.924875");
    ws_dec_format_average(units(1), INT64_MAX, 0, buf);
    CHECK_EQ_STR(buf, "0");
}

/* ------------------------------------------------------------- storage */

static void test_store_writes_16_little_endian_bytes(void)
{
    unsigned char b[16];
    static const unsigned char one[16] = {1};
    static const unsigned char mixed[16] = {
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x81,
    };
    size_t i;
    int all_ff = 1;

    ws_dec_store(units(1), b);
    CHECK(memcmp(b, one, 16) == 0);
    ws_dec_store(dec(UINT64_C(0x0102030405060708),
                     (int64_t)UINT64_C(0x8112131415161718)), b);
    CHECK(memcmp(b, mixed, 16) == 0);
    ws_dec_store(units(-1), b);
    for (i = 0; i < 16; i++)
        all_ff &= b[i] == 0xFF;
    CHECK(all_ff);
}

static void test_store_and_load_round_trip(void)
{
    const ws_dec values[] = {
        units(0), units(1), units(-1), amt(75, 0),
        neg(amt(1250, 2)), DEC_MAX, DEC_MIN, dec(0, 1),
        dec(UINT64_MAX, -1), dec(UINT64_C(0x8000000000000000), 0),
        dec(UINT64_C(0x0102030405060708), (int64_t)UINT64_C(0x8112131415161718)),
    };
    size_t i;

    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        unsigned char b[16];
        ws_dec back;

        ws_dec_store(values[i], b);
        back = ws_dec_load(b);
        CHECK(dec_eq(back, values[i]));
        CHECK_EQ_INT(ws_dec_cmp(back, values[i]), 0);
    }
}

int main(void)
{
    RUN(test_scan_accepts_json_numbers);
    RUN(test_scan_rejects_what_json_does_not_allow);
    RUN(test_scan_splits_the_number_into_its_parts);
    RUN(test_scan_clamps_huge_exponents);
    RUN(test_scan_reads_only_the_given_length);
    RUN(test_amount_keeps_the_written_scale);
    RUN(test_amount_parse_and_format_round_trip);
    RUN(test_amount_exponent_moves_the_point);
    RUN(test_amount_accepts_18_fraction_digits);
    RUN(test_amount_rejects_more_than_18_fraction_digits);
    RUN(test_amount_accepts_15_integer_digits);
    RUN(test_amount_rejects_more_than_15_integer_digits);
    RUN(test_amount_huge_exponents_are_out_of_range);
    RUN(test_amount_exponent_of_60000_digits_is_answered_fast);
    RUN(test_amount_negative_is_invalid_amount);
    RUN(test_amount_minus_zero_is_zero);
    RUN(test_amount_that_is_not_a_json_number_is_invalid_amount);
    RUN(test_add_and_sub_are_exact);
    RUN(test_add_detects_overflow_at_the_int128_limits);
    RUN(test_sub_detects_overflow_at_the_int128_limits);
    RUN(test_cmp_orders_signed_values);
    RUN(test_is_zero);
    RUN(test_format_prints_the_requested_scale);
    RUN(test_format_of_negative_values);
    RUN(test_format_at_the_int128_limits);
    RUN(test_average_examples);
    RUN(test_average_trims_trailing_zeros_down_to_the_scale);
    RUN(test_average_rounds_half_to_even_at_6_digits);
    RUN(test_average_of_negative_totals_is_symmetric);
    RUN(test_average_at_the_int128_limits);
    RUN(test_store_writes_16_little_endian_bytes);
    RUN(test_store_and_load_round_trip);
    return WSTEST_END();
}
