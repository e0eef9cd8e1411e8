/*
 * json_out.c - growable buffer and exact JSON writers.
 */
#include "json_out.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

void ws_buf_init(ws_buf *b)
{
    memset(b, 0, sizeof *b);
}

void ws_buf_free(ws_buf *b)
{
    free(b->p);
    ws_buf_init(b);
}

void ws_buf_reset(ws_buf *b)
{
    b->len = 0;
    b->oom = 0;
}

char *ws_buf_take(ws_buf *b, size_t *len)
{
    char *p = b->p;

    *len = b->len;
    ws_buf_init(b);
    return p;
}

/* Makes room for n more bytes and a NUL; 0 on success. */
static int reserve(ws_buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->oom)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void ws_buf_put(ws_buf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ws_buf_puts(ws_buf *b, const char *s)
{
    ws_buf_put(b, s, strlen(s));
}

void ws_buf_putc(ws_buf *b, char c)
{
    ws_buf_put(b, &c, 1);
}

void ws_buf_printf(ws_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ws_json_str(ws_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    ws_buf_putc(b, '"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t k = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        ws_buf_put(b, s + run, i - run);
        run = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        }
        ws_buf_put(b, esc, k);
    }
    ws_buf_put(b, s + run, n - run);
    ws_buf_putc(b, '"');
}

void ws_json_dec(ws_buf *b, ws_dec v, unsigned scale)
{
    char text[WS_DEC_TEXT_MAX];

    ws_buf_put(b, text, ws_dec_format(v, scale, text));
}

void ws_json_i64(ws_buf *b, int64_t v)
{
    char text[24];
    size_t n = sizeof text;
    /* Magnitude as unsigned: -INT64_MIN does not fit an int64_t. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    /* By hand, not snprintf: see ws_time_format. */
    do {
        text[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        text[--n] = '-';
    ws_buf_put(b, text + n, sizeof text - n);
}

void ws_json_time(ws_buf *b, ws_instant t)
{
    char text[WS_TIME_TEXT_MAX];

    ws_buf_putc(b, '"');
    ws_buf_put(b, text, ws_time_format(t, text));
    ws_buf_putc(b, '"');
}

void ws_json_day(ws_buf *b, int32_t day)
{
    char text[WS_DAY_TEXT_MAX];

    ws_buf_putc(b, '"');
    ws_buf_put(b, text, ws_day_format(day, text));
    ws_buf_putc(b, '"');
}

void ws_json_base64(ws_buf *b, const char *s, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s;
    size_t i;

    ws_buf_putc(b, '"');
    for (i = 0; i + 2 < n; i += 3) {
        char q[4] = {alphabet[p[i] >> 2],
                     alphabet[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                     alphabet[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)],
                     alphabet[p[i + 2] & 63]};
        ws_buf_put(b, q, 4);
    }
    if (n - i == 1) {
        char q[4] = {alphabet[p[i] >> 2], alphabet[(p[i] & 3) << 4], '=',
                     '='};
        ws_buf_put(b, q, 4);
    } else if (n - i == 2) {
        char q[4] = {alphabet[p[i] >> 2],
                     alphabet[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                     alphabet[(p[i + 1] & 15) << 2], '='};
        ws_buf_put(b, q, 4);
    }
    ws_buf_putc(b, '"');
}
