/*
 * timeutil.c - RFC 3339 and epoch-millisecond timestamps, civil days.
 *
 * The calendar arithmetic is Howard Hinnant's days_from_civil /
 * civil_from_days (public domain algorithms), exact for every year here.
 */
#include "timeutil.h"

#include <stdio.h>
#include <time.h>

int64_t ws_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era, doe;
    unsigned yoe, doy;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    doe = (int64_t)yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, yy;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30,
                                          31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Reads exactly `width` digits at s[*i]; -1 when they are not digits. */
static int64_t fixed_digits(const char *s, size_t n, size_t *i, int width)
{
    int64_t v = 0;
    int k;

    if (*i + (size_t)width > n)
        return -1;
    for (k = 0; k < width; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)width;
    return v;
}

static int expect(const char *s, size_t n, size_t *i, char c)
{
    if (*i >= n || s[*i] != c)
        return -1;
    (*i)++;
    return 0;
}

#define FAIL(msg) do { *why = (msg); return -1; } while (0)

int ws_time_parse_rfc3339(const char *s, size_t n, ws_instant *out,
                          const char **why)
{
    size_t i = 0;
    int64_t year, month, day, hour, minute, second, sec;
    int32_t nsec = 0;
    int64_t offset = 0;

    year = fixed_digits(s, n, &i, 4);
    if (year < 0 || expect(s, n, &i, '-') ||
        (month = fixed_digits(s, n, &i, 2)) < 0 || expect(s, n, &i, '-') ||
        (day = fixed_digits(s, n, &i, 2)) < 0)
        FAIL("not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SSZ)");
    if (i >= n || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        FAIL("not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SSZ)");
    i++;
    if ((hour = fixed_digits(s, n, &i, 2)) < 0 || expect(s, n, &i, ':') ||
        (minute = fixed_digits(s, n, &i, 2)) < 0 || expect(s, n, &i, ':') ||
        (second = fixed_digits(s, n, &i, 2)) < 0)
        FAIL("not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SSZ)");
    if (i < n && s[i] == '.') {
        int digits = 0;

        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (++digits > 9)
                FAIL("more than 9 fractional second digits");
            nsec = nsec * 10 + (s[i] - '0');
            i++;
        }
        if (digits == 0)
            FAIL("no digits after the decimal point of the seconds");
        while (digits++ < 9)
            nsec *= 10;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int neg = s[i] == '-';
        int64_t oh, om;

        i++;
        if ((oh = fixed_digits(s, n, &i, 2)) < 0 || expect(s, n, &i, ':') ||
            (om = fixed_digits(s, n, &i, 2)) < 0)
            FAIL("malformed UTC offset (expected +HH:MM)");
        if (oh > 23 || om > 59)
            FAIL("UTC offset out of range");
        offset = (oh * 60 + om) * 60;
        if (neg)
            offset = -offset;
    }
    if (i != n)
        FAIL("unexpected text after the date-time");
    if (month < 1 || month > 12)
        FAIL("month out of range");
    if (day < 1 || (unsigned)day > days_in_month(year, (unsigned)month))
        FAIL("day out of range for its month");
    if (hour > 23 || minute > 59 || second > 59)
        FAIL("time of day out of range");

    sec = ws_days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 +
          hour * 3600 + minute * 60 + second - offset;
    if (sec < 0 || sec >= WS_TIME_END_SEC)
        FAIL("outside the years 1970-9999 (UTC)");
    out->sec = sec;
    out->nsec = nsec;
    return 0;
}

int ws_time_parse_epoch_ms(const char *s, size_t n, ws_instant *out,
                           const char **why)
{
    int64_t ms = 0;
    size_t i;

    if (n == 0)
        FAIL("empty timestamp");
    if (s[0] == '-')
        FAIL("negative epoch milliseconds");
    /* 15 digits reach past 9999-12-31 (253402300799999 ms). */
    if (n > 15)
        FAIL("epoch milliseconds outside the years 1970-9999");
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            FAIL("epoch milliseconds must be an integer");
        ms = ms * 10 + (s[i] - '0');
    }
    if (n > 1 && s[0] == '0')
        FAIL("epoch milliseconds must be an integer");
    if (ms / 1000 >= WS_TIME_END_SEC)
        FAIL("epoch milliseconds outside the years 1970-9999");
    out->sec = ms / 1000;
    out->nsec = (int32_t)(ms % 1000) * 1000000;
    return 0;
}

int32_t ws_time_day(ws_instant t)
{
    /* Instants are never negative: plain division floors. */
    return (int32_t)(t.sec / 86400);
}

int ws_time_cmp(ws_instant a, ws_instant b)
{
    if (a.sec != b.sec)
        return a.sec < b.sec ? -1 : 1;
    return (a.nsec > b.nsec) - (a.nsec < b.nsec);
}

/* Two decimal digits of v (< 100) at p. */
static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* Dates and times are written digit by digit rather than with snprintf,
 * which was 5 % of a stream's CPU in the changelog's figures
 * (docs/BENCHMARKS.md, "Per-core cost"). */
size_t ws_day_format(int32_t day, char *buf)
{
    int64_t y;
    unsigned m, d;

    civil_from_days(day, &y, &m, &d);
    if (y < 0 || y > 9999)      /* beyond any instant SPEC accepts */
        return (size_t)snprintf(buf, WS_DAY_TEXT_MAX, "%04d-%02u-%02u",
                                (int)y, m, d);
    put2(buf, (unsigned)(y / 100));
    put2(buf + 2, (unsigned)(y % 100));
    buf[4] = '-';
    put2(buf + 5, m);
    buf[7] = '-';
    put2(buf + 8, d);
    buf[10] = '\0';
    return 10;
}

size_t ws_time_format(ws_instant t, char *buf)
{
    unsigned secs = (unsigned)(t.sec % 86400);
    size_t n = ws_day_format(ws_time_day(t), buf);

    buf[n] = 'T';
    put2(buf + n + 1, secs / 3600);
    buf[n + 3] = ':';
    put2(buf + n + 4, secs / 60 % 60);
    buf[n + 6] = ':';
    put2(buf + n + 7, secs % 60);
    n += 9;
    if (t.nsec > 0) {
        uint32_t f = (uint32_t)t.nsec;
        int i;

        buf[n++] = '.';
        for (i = 8; i >= 0; i--, f /= 10)
            buf[n + (size_t)i] = (char)('0' + f % 10);
        n += 9;
        while (buf[n - 1] == '0')
            n--;
    }
    buf[n++] = 'Z';
    buf[n] = '\0';
    return n;
}

ws_instant ws_time_now_ms(void)
{
    struct timespec ts;
    ws_instant t;

    clock_gettime(CLOCK_REALTIME, &ts);
    t.sec = (int64_t)ts.tv_sec;
    t.nsec = (int32_t)(ts.tv_nsec / 1000000 * 1000000);
    return t;
}

int64_t ws_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double ws_clock_seconds(int wall)
{
    struct timespec ts;

    clock_gettime(wall ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ws_clock_deadline(struct timespec *out, int ms)
{
    clock_gettime(CLOCK_REALTIME, out);
    out->tv_sec += ms / 1000;
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}
