/*
 * fuzz_time.c - timestamps (src/timeutil.c).
 *
 * The input's first byte picks the parser (even: RFC 3339, odd: epoch
 * milliseconds); the rest is the text. Properties:
 *   - a parsed instant lies in [1970-01-01T00:00:00Z, 10000-01-01T00:00Z)
 *     with nanoseconds in [0, 10^9); a refusal always names a reason;
 *   - ws_time_format writes at most WS_TIME_TEXT_MAX bytes, and parsing
 *     its text gives the same instant back (RFC 3339 round trip);
 *   - epoch milliseconds equal the digits read as a number: the instant
 *     has no sub-millisecond part and sec * 1000 + ms is the text's value;
 *   - the day of the instant formats as the date prefix of its text, and
 *     ws_days_from_civil of that date gives the day back.
 */
#include <string.h>

#include "fuzz.h"
#include "timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data + 1;
    const char *why = NULL;
    char text[WS_TIME_TEXT_MAX + 8], day[WS_DAY_TEXT_MAX + 8];
    ws_instant t, back;
    size_t n, len, dlen;
    int epoch, rc;
    int32_t d;

    if (size == 0)
        return 0;
    epoch = data[0] & 1;
    n = size - 1;
    rc = epoch ? ws_time_parse_epoch_ms(s, n, &t, &why)
               : ws_time_parse_rfc3339(s, n, &t, &why);
    PROPERTY(rc == 0 || rc == -1);
    if (rc != 0) {
        PROPERTY(why != NULL && why[0] != '\0');
        return 0;
    }
    PROPERTY(t.sec >= 0 && t.sec < WS_TIME_END_SEC);
    PROPERTY(t.nsec >= 0 && t.nsec < 1000000000);

    if (epoch) {
        /* Digits only, below 2.6e14: they fit an int64. */
        int64_t v = 0;
        size_t i;

        PROPERTY(n > 0);
        for (i = 0; i < n; i++) {
            PROPERTY(s[i] >= '0' && s[i] <= '9');
            v = v * 10 + (s[i] - '0');
        }
        PROPERTY(t.nsec % 1000000 == 0);
        PROPERTY(t.sec * 1000 + t.nsec / 1000000 == v);
    }

    memset(text, 'X', sizeof text);
    len = ws_time_format(t, text);
    PROPERTY(len < WS_TIME_TEXT_MAX && strlen(text) == len);
    PROPERTY(text[WS_TIME_TEXT_MAX] == 'X');
    why = NULL;
    PROPERTY(ws_time_parse_rfc3339(text, len, &back, &why) == 0);
    PROPERTY(ws_time_cmp(back, t) == 0);

    d = ws_time_day(t);
    PROPERTY(d >= 0);
    dlen = ws_day_format(d, day);
    PROPERTY(dlen == 10 && memcmp(day, text, 10) == 0);
    {
        int64_t y = (day[0] - '0') * 1000 + (day[1] - '0') * 100 +
                    (day[2] - '0') * 10 + (day[3] - '0');
        unsigned m = (unsigned)((day[5] - '0') * 10 + (day[6] - '0'));
        unsigned dd = (unsigned)((day[8] - '0') * 10 + (day[9] - '0'));

        PROPERTY(ws_days_from_civil(y, m, dd) == d);
        PROPERTY(t.sec - (int64_t)d * 86400 >= 0 &&
                 t.sec - (int64_t)d * 86400 < 86400);
    }
    return 0;
}
