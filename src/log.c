/*
 * log.c - stderr logging, one line per event, as text or JSON (log.h).
 */
#include "log.h"

#include "json_out.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Written once by main before threads start (see log.h). */
static enum ws_log_level current = WS_LOG_INFO;
static int json_format;

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

int ws_log_set_format(const char *name)
{
    if (strcmp(name, "text") != 0 && strcmp(name, "json") != 0)
        return -1;
    json_format = strcmp(name, "json") == 0;
    return 0;
}

int ws_log_enabled(enum ws_log_level level)
{
    return level <= current;
}

/* One JSON object: the text of a line made safe to parse (quotes,
 * backslashes and control characters escaped). Falls back to text when
 * out of memory. */
static void write_json(const char *when, enum ws_log_level level,
                       const char *subsys, const char *msg)
{
    ws_buf b;

    ws_buf_init(&b);
    ws_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"subsystem\":",
                  when, names[level]);
    ws_json_str(&b, subsys, strlen(subsys));
    ws_buf_puts(&b, ",\"message\":");
    ws_json_str(&b, msg, strlen(msg));
    ws_buf_puts(&b, "}\n");
    if (b.oom)
        fprintf(stderr, "%s %-5s %s: %s\n", when, names[level], subsys, msg);
    else
        fwrite(b.p, 1, b.len, stderr);  /* one write keeps lines whole */
    ws_buf_free(&b);
}

/* A line break inside a message (a broker's error text, say) would make
 * two lines of one event in text format: it becomes a space. */
static void one_line(char *msg)
{
    for (; *msg; msg++)
        if (*msg == '\n' || *msg == '\r')
            *msg = ' ';
}

static void now_text(char *when, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(when, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

void ws_log_write(enum ws_log_level level, const char *subsys,
                  const char *fmt, ...)
{
    char when[32], msg[2048];
    va_list ap;

    now_text(when, sizeof when);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    one_line(msg);
    if (json_format)
        write_json(when, level, subsys, msg);
    else    /* one write per line keeps lines whole between threads */
        fprintf(stderr, "%s %-5s %s: %s\n", when, names[level], subsys, msg);
}

void ws_log_fail(const char *cmd, const char *fmt, ...)
{
    char when[32], msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    one_line(msg);
    if (json_format) {
        now_text(when, sizeof when);
        write_json(when, WS_LOG_ERROR, cmd, msg);
    } else {
        fprintf(stderr, "walletstream %s: %s\n", cmd, msg);
    }
}
