/*
 * log.h - one line per event on stderr, with a level and a subsystem tag.
 *
 * The level is set once at start-up, before any thread starts, and only
 * read afterwards. decode and engine never log: they return reasons.
 */
#ifndef WS_LOG_H
#define WS_LOG_H

enum ws_log_level { WS_LOG_ERROR = 0, WS_LOG_WARN, WS_LOG_INFO, WS_LOG_DEBUG };

/* Sets the level from its name (error, warn, info, debug); -1 if unknown.
 * Main thread, before other threads start. */
int ws_log_set_level(const char *name);
int ws_log_enabled(enum ws_log_level level);

void ws_log_write(enum ws_log_level level, const char *subsys,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Checks the level first, so a disabled line costs one comparison. */
#define ws_log(level, subsys, ...)                                      \
    do {                                                                \
        if (ws_log_enabled(level))                                      \
            ws_log_write(level, subsys, __VA_ARGS__);                   \
    } while (0)

#endif
