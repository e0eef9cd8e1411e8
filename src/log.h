/*
 * log.h - one line per event on stderr, with a level and a subsystem tag.
 *
 * Text lines read "2024-05-11T12:50:00.123Z info  store: text"; JSON lines
 * {"time":"2024-05-11T12:50:00.123Z","level":"info","subsystem":"store",
 * "message":"text"}. The level and format are set once at start-up,
 * before any thread starts, and only read afterwards. decode and engine never log: they return reasons.
 */
#ifndef WS_LOG_H
#define WS_LOG_H

enum ws_log_level { WS_LOG_ERROR = 0, WS_LOG_WARN, WS_LOG_INFO, WS_LOG_DEBUG };

/* Sets the level from its name (error, warn, info, debug); -1 if unknown.
 * Main thread, before other threads start. */
int ws_log_set_level(const char *name);
int ws_log_enabled(enum ws_log_level level);

/* Sets the format from its name (text, json); -1 if unknown. Main thread,
 * before other threads start. */
int ws_log_set_format(const char *name);

void ws_log_write(enum ws_log_level level, const char *subsys,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A command's failure, shown to whoever started it: in text format
 * "walletstream CMD: message" without a time (as command-line tools
 * write), in JSON format an error line with subsystem CMD. */
void ws_log_fail(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Checks the level first, so a disabled line costs one comparison. */
#define ws_log(level, subsys, ...)                                      \
    do {                                                                \
        if (ws_log_enabled(level))                                      \
            ws_log_write(level, subsys, __VA_ARGS__);                   \
    } while (0)

#endif
