/*
 * test_timeutil.c - instants and calendar days (src/timeutil.c; SPEC §2
 * timestamp rule, §4 calendar days).
 *
 * Expected instants were computed independently (Python's calendar.timegm
 * and datetime.date), not with the code under test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"
#include "wstest.h"

/* 2024-05-11T12:50:00Z, the SPEC's example instant. */
#define T_EXAMPLE INT64_C(1715431800)

static ws_instant inst(int64_t sec, int32_t nsec)
{
    ws_instant t;

    t.sec = sec;
    t.nsec = nsec;
    return t;
}

/* Parses s as RFC 3339 from a heap copy of exactly its length (so that a
 * read past the end is an AddressSanitizer error). Returns 0 or -1;
 * *why must be set on failure. */
static int parse(const char *s, ws_instant *out)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    const char *why = NULL;
    ws_instant t = inst(-7, -7);
    int r;

    if (!copy)
        return -2;
    memcpy(copy, s, n);
    r = ws_time_parse_rfc3339(copy, n, &t, &why);
    free(copy);
    if (r != 0 && (why == NULL || why[0] == '\0')) {
        printf("  no reason given for rejecting \"%s\"\n", s);
        return -3;
    }
    if (out)
        *out = t;
    return r;
}

static int epoch(const char *s, ws_instant *out)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    const char *why = NULL;
    ws_instant t = inst(-7, -7);
    int r;

    if (!copy)
        return -2;
    memcpy(copy, s, n);
    r = ws_time_parse_epoch_ms(copy, n, &t, &why);
    free(copy);
    if (r != 0 && (why == NULL || why[0] == '\0')) {
        printf("  no reason given for rejecting \"%s\"\n", s);
        return -3;
    }
    if (out)
        *out = t;
    return r;
}

/* Checks that s parses to sec/nsec. */
#define CHECK_PARSES(s, want_sec, want_nsec)                             \
    do {                                                                 \
        ws_instant t_;                                                   \
        int r_ = parse(s, &t_);                                          \
        CHECK_EQ_INT(r_, 0);                                             \
        if (r_ == 0) {                                                   \
            CHECK_EQ_INT(t_.sec, want_sec);                              \
            CHECK_EQ_INT(t_.nsec, want_nsec);                            \
        } else {                                                         \
            printf("  (input \"%s\")\n", s);                             \
        }                                                                \
    } while (0)

#define CHECK_REFUSED(s)                                                 \
    do {                                                                 \
        int r_ = parse(s, NULL);                                         \
        if (r_ != -1)                                                    \
            printf("  \"%s\" was not refused\n", s);                     \
        CHECK_EQ_INT(r_, -1);                                            \
    } while (0)

/* ------------------------------------------------------------ calendar */

static void test_days_from_civil_known_values(void)
{
    CHECK_EQ_INT(ws_days_from_civil(1970, 1, 1), 0);
    CHECK_EQ_INT(ws_days_from_civil(1970, 1, 2), 1);
    CHECK_EQ_INT(ws_days_from_civil(1969, 12, 31), -1);
    CHECK_EQ_INT(ws_days_from_civil(2000, 2, 29), 11016);
    CHECK_EQ_INT(ws_days_from_civil(2000, 3, 1), 11017);
    CHECK_EQ_INT(ws_days_from_civil(2024, 2, 29), 19782);
    CHECK_EQ_INT(ws_days_from_civil(2024, 5, 11), 19854);
    CHECK_EQ_INT(ws_days_from_civil(1900, 3, 1), -25508);
    CHECK_EQ_INT(ws_days_from_civil(9999, 12, 31), 2932896);
}

static void test_day_format_known_values(void)
{
    char buf[WS_DAY_TEXT_MAX];

    CHECK_EQ_INT(ws_day_format(0, buf), 10);
    CHECK_EQ_STR(buf, "1970-01-01");
    ws_day_format(11016, buf);
    CHECK_EQ_STR(buf, "2000-02-29");
    ws_day_format(19782, buf);
    CHECK_EQ_STR(buf, "2024-02-29");
    ws_day_format(19854, buf);
    CHECK_EQ_STR(buf, "2024-05-11");
    ws_day_format(2932896, buf);
    CHECK_EQ_STR(buf, "9999-12-31");
}

/* Every day from 1970-01-01 to 9999-12-31: format, then read back. */
static void test_day_format_and_days_from_civil_agree_on_every_day(void)
{
    char buf[WS_DAY_TEXT_MAX];
    int32_t day;
    long bad = 0;

    for (day = 0; day <= 2932896; day++) {
        unsigned y, m, d;

        if (ws_day_format(day, buf) != 10 ||
            sscanf(buf, "%4u-%2u-%2u", &y, &m, &d) != 3 ||
            ws_days_from_civil(y, m, d) != day)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_time_day_is_the_utc_calendar_day(void)
{
    CHECK_EQ_INT(ws_time_day(inst(0, 0)), 0);
    CHECK_EQ_INT(ws_time_day(inst(86399, 999999999)), 0);
    CHECK_EQ_INT(ws_time_day(inst(86400, 0)), 1);
    CHECK_EQ_INT(ws_time_day(inst(T_EXAMPLE, 0)), 19854);
    CHECK_EQ_INT(ws_time_day(inst(WS_TIME_END_SEC - 1, 999999999)), 2932896);
}

/* ----------------------------------------------------------- printing */

static void test_time_format_without_fraction(void)
{
    char buf[WS_TIME_TEXT_MAX];

    CHECK_EQ_INT(ws_time_format(inst(0, 0), buf), 20);
    CHECK_EQ_STR(buf, "1970-01-01T00:00:00Z");
    ws_time_format(inst(T_EXAMPLE, 0), buf);
    CHECK_EQ_STR(buf, "2024-05-11T12:50:00Z");
    ws_time_format(inst(951782400 + 3661, 0), buf);
    CHECK_EQ_STR(buf, "2000-02-29T01:01:01Z");
}

static void test_time_format_trims_trailing_zeros_of_the_fraction(void)
{
    char buf[WS_TIME_TEXT_MAX];

    CHECK_EQ_INT(ws_time_format(inst(T_EXAMPLE, 250000000), buf), 23);
    CHECK_EQ_STR(buf, "2024-05-11T12:50:00.25Z");
    ws_time_format(inst(T_EXAMPLE, 100000000), buf);
    CHECK_EQ_STR(buf, "2024-05-11T12:50:00.1Z");
    ws_time_format(inst(T_EXAMPLE, 1000), buf);
    CHECK_EQ_STR(buf, "2024-05-11T12:50:00.000001Z");
    ws_time_format(inst(T_EXAMPLE, 10), buf);
    CHECK_EQ_STR(buf, "2024-05-11T12:50:00.00000001Z");
}

static void test_time_format_prints_nine_fraction_digits(void)
{
    char buf[WS_TIME_TEXT_MAX];

    CHECK_EQ_INT(ws_time_format(inst(T_EXAMPLE, 123456789), buf), 30);
    CHECK_EQ_STR(buf, "2024-05-11T12:50:00.123456789Z");
    ws_time_format(inst(T_EXAMPLE, 1), buf);
    CHECK_EQ_STR(buf, "2024-05-11T12:50:00.000000001Z");
    ws_time_format(inst(WS_TIME_END_SEC - 1, 999999999), buf);
    CHECK_EQ_STR(buf, "9999-12-31T23:59:59.999999999Z");
    CHECK(strlen(buf) < WS_TIME_TEXT_MAX);
}

/* What the parser reads, the printer writes back (UTC, 'Z'). */
static void test_time_format_round_trips_through_the_parser(void)
{
    static const char *const texts[] = {
        "1970-01-01T00:00:00Z",          "2024-05-11T12:50:00Z",
        "2024-05-11T12:50:00.25Z",       "2024-02-29T23:59:59.999999999Z",
        "2000-02-29T00:00:00.000000001Z", "9999-12-31T23:59:59Z",
    };
    char buf[WS_TIME_TEXT_MAX];
    size_t i;

    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ws_instant t;

        CHECK_EQ_INT(parse(texts[i], &t), 0);
        ws_time_format(t, buf);
        CHECK_EQ_STR(buf, texts[i]);
    }
}

/* --------------------------------------------------------- comparison */

static void test_time_cmp_orders_by_seconds_then_nanoseconds(void)
{
    CHECK(ws_time_cmp(inst(10, 0), inst(10, 0)) == 0);
    CHECK(ws_time_cmp(inst(10, 5), inst(10, 5)) == 0);
    CHECK(ws_time_cmp(inst(10, 0), inst(11, 0)) < 0);
    CHECK(ws_time_cmp(inst(11, 0), inst(10, 0)) > 0);
    /* Seconds decide before nanoseconds. */
    CHECK(ws_time_cmp(inst(10, 999999999), inst(11, 0)) < 0);
    CHECK(ws_time_cmp(inst(11, 0), inst(10, 999999999)) > 0);
    CHECK(ws_time_cmp(inst(10, 1), inst(10, 2)) < 0);
    CHECK(ws_time_cmp(inst(10, 2), inst(10, 1)) > 0);
    CHECK(ws_time_cmp(inst(0, 0), inst(WS_TIME_END_SEC - 1, 0)) < 0);
}

/* ------------------------------------------------------------- RFC 3339 */

static void test_timestamp_accepts_z_and_lower_case_z(void)
{
    CHECK_PARSES("2024-05-11T12:50:00Z", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11T12:50:00z", T_EXAMPLE, 0);
}

static void test_timestamp_offsets_are_normalised_to_utc(void)
{
    CHECK_PARSES("2024-05-11T14:50:00+02:00", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11T18:20:00+05:30", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11T04:50:00-08:00", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11T12:50:00+00:00", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11T12:50:00-00:00", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11T14:50:00.25+02:00", T_EXAMPLE, 250000000);
    /* An offset can move the instant to another UTC day. */
    CHECK_PARSES("2024-05-12T01:00:00+23:59", T_EXAMPLE - 42540, 0);
    CHECK_PARSES("2024-05-10T23:00:00-23:59", T_EXAMPLE + 36540, 0);
}

static void test_timestamp_without_offset_is_utc(void)
{
    CHECK_PARSES("2024-05-11T12:50:00", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11T12:50:00.5", T_EXAMPLE, 500000000);
}

static void test_timestamp_accepts_space_or_lower_case_t_separator(void)
{
    CHECK_PARSES("2024-05-11 12:50:00Z", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11 12:50:00", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11t12:50:00Z", T_EXAMPLE, 0);
    CHECK_REFUSED("2024-05-11X12:50:00Z");
    CHECK_REFUSED("2024-05-11_12:50:00Z");
    CHECK_REFUSED("2024-05-1112:50:00Z");
    CHECK_REFUSED("2024-05-11  12:50:00Z");
}

static void test_timestamp_accepts_1_to_9_fraction_digits(void)
{
    CHECK_PARSES("2024-05-11T12:50:00.1Z", T_EXAMPLE, 100000000);
    CHECK_PARSES("2024-05-11T12:50:00.12Z", T_EXAMPLE, 120000000);
    CHECK_PARSES("2024-05-11T12:50:00.123Z", T_EXAMPLE, 123000000);
    CHECK_PARSES("2024-05-11T12:50:00.1234Z", T_EXAMPLE, 123400000);
    CHECK_PARSES("2024-05-11T12:50:00.12345Z", T_EXAMPLE, 123450000);
    CHECK_PARSES("2024-05-11T12:50:00.123456Z", T_EXAMPLE, 123456000);
    CHECK_PARSES("2024-05-11T12:50:00.1234567Z", T_EXAMPLE, 123456700);
    CHECK_PARSES("2024-05-11T12:50:00.12345678Z", T_EXAMPLE, 123456780);
    CHECK_PARSES("2024-05-11T12:50:00.123456789Z", T_EXAMPLE, 123456789);
    CHECK_PARSES("2024-05-11T12:50:00.000000001Z", T_EXAMPLE, 1);
    CHECK_PARSES("2024-05-11T12:50:00.000000000Z", T_EXAMPLE, 0);
    CHECK_PARSES("2024-05-11T12:50:00.999999999+02:00", T_EXAMPLE - 7200,
                 999999999);
}

static void test_timestamp_rejects_10_fraction_digits(void)
{
    CHECK_REFUSED("2024-05-11T12:50:00.1234567890Z");
    CHECK_REFUSED("2024-05-11T12:50:00.0000000000Z");
    CHECK_REFUSED("2024-05-11T12:50:00.1234567891");
}

static void test_timestamp_rejects_a_point_without_fraction_digits(void)
{
    CHECK_REFUSED("2024-05-11T12:50:00.Z");
    CHECK_REFUSED("2024-05-11T12:50:00.");
    CHECK_REFUSED("2024-05-11T12:50:00,5Z");
}

static void test_timestamp_leap_days(void)
{
    CHECK_PARSES("2024-02-29T00:00:00Z", INT64_C(1709164800), 0);
    CHECK_PARSES("2000-02-29T00:00:00Z", INT64_C(951782400), 0);
    CHECK_REFUSED("2023-02-29T00:00:00Z");
    CHECK_REFUSED("2100-02-29T00:00:00Z");
    CHECK_REFUSED("1900-02-29T00:00:00Z");
    CHECK_REFUSED("2024-02-30T00:00:00Z");
}

static void test_timestamp_rejects_days_beyond_the_month(void)
{
    CHECK_PARSES("2024-01-31T00:00:00Z", INT64_C(1706659200), 0);
    CHECK_REFUSED("2024-04-31T00:00:00Z");
    CHECK_REFUSED("2024-06-31T00:00:00Z");
    CHECK_REFUSED("2024-09-31T00:00:00Z");
    CHECK_REFUSED("2024-11-31T00:00:00Z");
    CHECK_REFUSED("2024-01-32T00:00:00Z");
    CHECK_REFUSED("2024-01-00T00:00:00Z");
    CHECK_REFUSED("2024-12-99T00:00:00Z");
}

static void test_timestamp_rejects_month_00_and_13(void)
{
    CHECK_REFUSED("2024-00-10T00:00:00Z");
    CHECK_REFUSED("2024-13-01T00:00:00Z");
    CHECK_REFUSED("2024-99-01T00:00:00Z");
    CHECK_PARSES("2024-12-31T00:00:00Z", INT64_C(1735603200), 0);
}

static void test_timestamp_rejects_hour_24_minute_60_second_60(void)
{
    CHECK_PARSES("2024-05-11T23:59:59Z", INT64_C(1715471999), 0);
    CHECK_REFUSED("2024-05-11T24:00:00Z");
    CHECK_REFUSED("2024-05-11T12:60:00Z");
    CHECK_REFUSED("2024-05-11T12:50:60Z");
    CHECK_REFUSED("2024-06-30T23:59:60Z");   /* a real leap second */
    CHECK_REFUSED("2024-05-11T99:00:00Z");
}

static void test_timestamp_rejects_offsets_out_of_range(void)
{
    CHECK_REFUSED("2024-05-11T12:50:00+25:00");
    CHECK_REFUSED("2024-05-11T12:50:00+24:00");
    CHECK_REFUSED("2024-05-11T12:50:00-24:00");
    CHECK_REFUSED("2024-05-11T12:50:00+02:60");
    CHECK_PARSES("2024-05-11T12:50:00+23:59", T_EXAMPLE - 86340, 0);
}

static void test_timestamp_rejects_malformed_offsets(void)
{
    CHECK_REFUSED("2024-05-11T12:50:00+0200");
    CHECK_REFUSED("2024-05-11T12:50:00+02");
    CHECK_REFUSED("2024-05-11T12:50:00+2:00");
    CHECK_REFUSED("2024-05-11T12:50:00+02:0");
    CHECK_REFUSED("2024-05-11T12:50:00 +02:00");
    CHECK_REFUSED("2024-05-11T12:50:00Z+02:00");
    CHECK_REFUSED("2024-05-11T12:50:00UTC");
    CHECK_REFUSED("2024-05-11T12:50:00ZZ");
}

static void test_timestamp_rejects_malformed_text(void)
{
    CHECK_REFUSED("");
    CHECK_REFUSED("2024-05-11");
    CHECK_REFUSED("2024-05-11T12:50Z");
    CHECK_REFUSED("2024-05-11T12:50");
    CHECK_REFUSED("2024-5-11T12:50:00Z");
    CHECK_REFUSED("2024-05-1T12:50:00Z");
    CHECK_REFUSED("24-05-11T12:50:00Z");
    CHECK_REFUSED("2024/05/11T12:50:00Z");
    CHECK_REFUSED("11/05/2024");
    CHECK_REFUSED(" 2024-05-11T12:50:00Z");
    CHECK_REFUSED("2024-05-11T12:50:00Z ");
    CHECK_REFUSED("2024-05-11T1:50:00Z");
    CHECK_REFUSED("2024-05-11T12:5:00Z");
    CHECK_REFUSED("2024-05-11T12:50:0Z");
    CHECK_REFUSED("+2024-05-11T12:50:00Z");
    CHECK_REFUSED("2024-05-11T12:50:00\n");
    CHECK_REFUSED("1715431800000");
}

static void test_timestamp_years_must_be_1970_to_9999(void)
{
    CHECK_PARSES("1970-01-01T00:00:00Z", 0, 0);
    CHECK_PARSES("9999-12-31T23:59:59.999999999Z", WS_TIME_END_SEC - 1,
                 999999999);
    CHECK_REFUSED("1969-12-31T23:59:59Z");
    CHECK_REFUSED("1969-12-31T23:59:59.999999999Z");
    CHECK_REFUSED("0000-01-01T00:00:00Z");
    CHECK_REFUSED("1900-01-01T00:00:00Z");
    CHECK_REFUSED("10000-01-01T00:00:00Z");
}

static void test_timestamp_offset_that_leaves_the_range_is_rejected(void)
{
    /* 1970-01-01T00:30:00+01:00 is 1969-12-31T23:30:00Z. */
    CHECK_REFUSED("1970-01-01T00:30:00+01:00");
    CHECK_REFUSED("1970-01-01T00:00:00+00:01");
    /* 9999-12-31T23:30:00-01:00 is 10000-01-01T00:30:00Z. */
    CHECK_REFUSED("9999-12-31T23:30:00-01:00");
    CHECK_PARSES("1970-01-01T01:00:00+01:00", 0, 0);
}

/* timeutil.h: the range is of the UTC instant, whatever the local year. */
static void test_timestamp_range_applies_to_the_utc_instant(void)
{
    CHECK_PARSES("1969-12-31T23:30:00-01:00", 1800, 0);
}

/* ------------------------------------------------------ epoch millis */

static void test_epoch_milliseconds_are_read(void)
{
    ws_instant t;

    CHECK_EQ_INT(epoch("1715431800000", &t), 0);
    CHECK_EQ_INT(t.sec, T_EXAMPLE);
    CHECK_EQ_INT(t.nsec, 0);
    CHECK_EQ_INT(epoch("1715431800123", &t), 0);
    CHECK_EQ_INT(t.sec, T_EXAMPLE);
    CHECK_EQ_INT(t.nsec, 123000000);
    CHECK_EQ_INT(epoch("0", &t), 0);
    CHECK_EQ_INT(t.sec, 0);
    CHECK_EQ_INT(t.nsec, 0);
    CHECK_EQ_INT(epoch("999", &t), 0);
    CHECK_EQ_INT(t.sec, 0);
    CHECK_EQ_INT(t.nsec, 999000000);
}

static void test_epoch_milliseconds_range_ends_before_year_10000(void)
{
    ws_instant t;

    CHECK_EQ_INT(epoch("253402300799999", &t), 0);
    CHECK_EQ_INT(t.sec, WS_TIME_END_SEC - 1);
    CHECK_EQ_INT(t.nsec, 999000000);
    CHECK_EQ_INT(epoch("253402300800000", NULL), -1);
    CHECK_EQ_INT(epoch("999999999999999", NULL), -1);
    CHECK_EQ_INT(epoch("1000000000000000", NULL), -1);
    CHECK_EQ_INT(epoch("99999999999999999999999999999999", NULL), -1);
}

static void test_epoch_milliseconds_must_be_a_non_negative_integer(void)
{
    CHECK_EQ_INT(epoch("-1", NULL), -1);
    CHECK_EQ_INT(epoch("-0", NULL), -1);
    CHECK_EQ_INT(epoch("1715431800000.0", NULL), -1);
    CHECK_EQ_INT(epoch("1715431800000.5", NULL), -1);
    CHECK_EQ_INT(epoch("1.7154318e12", NULL), -1);
    CHECK_EQ_INT(epoch("1715431800e3", NULL), -1);
    CHECK_EQ_INT(epoch("1E3", NULL), -1);
    CHECK_EQ_INT(epoch("", NULL), -1);
    CHECK_EQ_INT(epoch("+1", NULL), -1);
    CHECK_EQ_INT(epoch("01", NULL), -1);
    CHECK_EQ_INT(epoch("true", NULL), -1);
    CHECK_EQ_INT(epoch("0x10", NULL), -1);
}

/* The digit-by-digit printer writes what printf would, over instants
 * spread across the whole range (every second of a day has its own
 * digits, fractions of every width). */
static void test_time_format_matches_printf_everywhere(void)
{
    char buf[WS_TIME_TEXT_MAX], want[64];
    uint64_t x = 88172645463325252ULL;
    int i, bad = 0;

    for (i = 0; i < 200000; i++) {
        int64_t sec;
        int32_t nsec, f, width = 9;
        int n;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sec = (int64_t)(x % (uint64_t)WS_TIME_END_SEC);
        nsec = (int32_t)((x >> 40) % 1000000000u);
        if (i % 3 == 0)
            nsec = (nsec / 1000000) * 1000000;
        if (i % 5 == 0)
            nsec = 0;
        /* the date: test_day_format_and_days_from_civil_agree_... */
        ws_day_format((int32_t)(sec / 86400), want);
        n = snprintf(want + 10, sizeof want - 10, "T%02d:%02d:%02d",
                     (int)(sec % 86400 / 3600), (int)(sec % 3600 / 60),
                     (int)(sec % 60));
        if (nsec > 0) {
            f = nsec;
            while (f % 10 == 0) {
                f /= 10;
                width--;
            }
            n += snprintf(want + 10 + n, sizeof want - 10 - (size_t)n,
                          ".%0*d", (int)width, (int)f);
        }
        snprintf(want + 10 + n, sizeof want - 10 - (size_t)n, "Z");
        ws_time_format(inst(sec, nsec), buf);
        if (strcmp(buf, want) != 0 && bad++ < 5)
            printf("  %lld.%09d: %s, want %s\n", (long long)sec, (int)nsec,
                   buf, want);
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    RUN(test_days_from_civil_known_values);
    RUN(test_day_format_known_values);
    RUN(test_time_format_matches_printf_everywhere);
    RUN(test_day_format_and_days_from_civil_agree_on_every_day);
    RUN(test_time_day_is_the_utc_calendar_day);
    RUN(test_time_format_without_fraction);
    RUN(test_time_format_trims_trailing_zeros_of_the_fraction);
    RUN(test_time_format_prints_nine_fraction_digits);
    RUN(test_time_format_round_trips_through_the_parser);
    RUN(test_time_cmp_orders_by_seconds_then_nanoseconds);
    RUN(test_timestamp_accepts_z_and_lower_case_z);
    RUN(test_timestamp_offsets_are_normalised_to_utc);
    RUN(test_timestamp_without_offset_is_utc);
    RUN(test_timestamp_accepts_space_or_lower_case_t_separator);
    RUN(test_timestamp_accepts_1_to_9_fraction_digits);
    RUN(test_timestamp_rejects_10_fraction_digits);
    RUN(test_timestamp_rejects_a_point_without_fraction_digits);
    RUN(test_timestamp_leap_days);
    RUN(test_timestamp_rejects_days_beyond_the_month);
    RUN(test_timestamp_rejects_month_00_and_13);
    RUN(test_timestamp_rejects_hour_24_minute_60_second_60);
    RUN(test_timestamp_rejects_offsets_out_of_range);
    RUN(test_timestamp_rejects_malformed_offsets);
    RUN(test_timestamp_rejects_malformed_text);
    RUN(test_timestamp_years_must_be_1970_to_9999);
    RUN(test_timestamp_offset_that_leaves_the_range_is_rejected);
    RUN(test_timestamp_range_applies_to_the_utc_instant);
    RUN(test_epoch_milliseconds_are_read);
    RUN(test_epoch_milliseconds_range_ends_before_year_10000);
    RUN(test_epoch_milliseconds_must_be_a_non_negative_integer);
    return WSTEST_END();
}
