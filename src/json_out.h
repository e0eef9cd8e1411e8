/*
 * json_out.h - a growable output buffer and JSON writers for it.
 *
 * Writers never fail midway: on allocation failure the buffer remembers
 * it (`oom`) and ignores further writes, so a caller checks once at the
 * end. Numbers are written from exact decimals, never from a double.
 */
#ifndef WS_JSON_OUT_H
#define WS_JSON_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "decimal.h"
#include "ws.h"

typedef struct ws_buf {
    char *p;        /* owned; NUL-terminated when len < cap */
    size_t len;
    size_t cap;
    int oom;
} ws_buf;

/* An empty buffer; the first write allocates. */
void ws_buf_init(ws_buf *b);
/* Frees the storage and empties the buffer. */
void ws_buf_free(ws_buf *b);
/* Empties the buffer, keeping its storage. */
void ws_buf_reset(ws_buf *b);
/* Hands the storage to the caller (free() it) and empties the buffer. */
char *ws_buf_take(ws_buf *b, size_t *len);

void ws_buf_put(ws_buf *b, const char *s, size_t n);
void ws_buf_puts(ws_buf *b, const char *s);
void ws_buf_putc(ws_buf *b, char c);
void ws_buf_printf(ws_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A JSON string literal of s[0..n) (UTF-8 passed through; quote,
 * backslash and control characters escaped). */
void ws_json_str(ws_buf *b, const char *s, size_t n);
/* An exact decimal number with `scale` fractional digits. */
void ws_json_dec(ws_buf *b, ws_dec v, unsigned scale);
void ws_json_i64(ws_buf *b, int64_t v);
/* "2024-05-11T12:50:00Z" and "2024-05-11", quoted. */
void ws_json_time(ws_buf *b, ws_instant t);
void ws_json_day(ws_buf *b, int32_t day);
/* s[0..n) in standard base64 (RFC 4648), quoted. */
void ws_json_base64(ws_buf *b, const char *s, size_t n);

#endif
