/*
 * timeutil.h - instants and calendar days (SPEC §2, §4).
 *
 * Timestamps are RFC 3339 date-times or integer epoch milliseconds,
 * normalised to UTC seconds + nanoseconds. Days are counted from
 * 1970-01-01 (day 0) in the proleptic Gregorian calendar. The accepted
 * range is 1970-01-01T00:00:00Z up to 9999-12-31T23:59:59.999999999Z.
 */
#ifndef WS_TIMEUTIL_H
#define WS_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ws.h"

/* "9999-12-31T23:59:59.123456789Z" and a NUL fit. */
#define WS_TIME_TEXT_MAX 40
/* "9999-12-31" and a NUL fit. */
#define WS_DAY_TEXT_MAX 12

/* Seconds of 10000-01-01T00:00:00Z: instants must stay below. */
#define WS_TIME_END_SEC INT64_C(253402300800)

/* Days from 1970-01-01 to y-m-d (m 1-12, d 1-31). */
int64_t ws_days_from_civil(int64_t y, unsigned m, unsigned d);

/* Parses an RFC 3339 date-time: YYYY-MM-DD, then 'T', 't' or ' ', then
 * HH:MM:SS with 1-9 optional fraction digits, then 'Z', 'z', +-HH:MM
 * (hours <= 23, minutes <= 59) or nothing (UTC). Seconds 60 (leap
 * seconds) are refused. Returns 0, or -1 with a reason in *why. */
int ws_time_parse_rfc3339(const char *s, size_t n, ws_instant *out,
                          const char **why);

/* Parses integer epoch milliseconds from the text of a JSON number:
 * digits only (no sign, fraction or exponent), within the range above.
 * Returns 0, or -1 with a reason in *why. */
int ws_time_parse_epoch_ms(const char *s, size_t n, ws_instant *out,
                           const char **why);

/* The UTC day of an instant. */
int32_t ws_time_day(ws_instant t);

/* <0, 0, >0 as a is earlier than, equal to, later than b. */
int ws_time_cmp(ws_instant a, ws_instant b);

/* Writes "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (fraction without trailing
 * zeros, omitted when zero) and a NUL; returns the length. buf holds at
 * least WS_TIME_TEXT_MAX bytes. */
size_t ws_time_format(ws_instant t, char *buf);

/* The wall clock now, to the millisecond (a commit time). Any thread. */
ws_instant ws_time_now_ms(void);

/* The monotonic clock in milliseconds, for deadlines. Any thread. */
int64_t ws_clock_ms(void);

/* A clock in seconds, for metrics only (never on the path of an amount):
 * the monotonic clock, or the wall clock when `wall` is non-zero (to
 * compare with Kafka record timestamps). Any thread. */
double ws_clock_seconds(int wall);

/* The CLOCK_REALTIME instant ms milliseconds from now, for
 * pthread_cond_timedwait. */
struct timespec;
void ws_clock_deadline(struct timespec *out, int ms);

/* Writes "YYYY-MM-DD" and a NUL; returns the length (10). */
size_t ws_day_format(int32_t day, char *buf);

#endif
