/*
 * log.c - stderr logging: "2024-05-11T12:50:00.123Z info  store: text".
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Written once by main before threads start (see log.h). */
static enum ws_log_level current = WS_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

int ws_log_set_level(const char *name)
{
    int i;

    for (i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            current = (enum ws_log_level)i;
            return 0;
        }
    }
    return -1;
}

int ws_log_enabled(enum ws_log_level level)
{
    return level <= current;
}

void ws_log_write(enum ws_log_level level, const char *subsys,
                  const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line,
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level],
                 subsys);
    if (n < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line keeps lines whole between threads. */
    fprintf(stderr, "%s\n", line);
}
