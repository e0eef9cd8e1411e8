/*
 * utf8.h - strict UTF-8 validation (RFC 3629).
 */
#ifndef WS_UTF8_H
#define WS_UTF8_H

#include <stddef.h>

/* 1 when s[0..n) is well-formed UTF-8: no overlong forms, no encoded
 * surrogates (U+D800-U+DFFF), nothing above U+10FFFF; else 0. Any
 * thread. */
int ws_utf8_valid(const char *s, size_t n);

/* Appends the UTF-8 encoding of code point cp (<= U+10FFFF, not a
 * surrogate) at out; returns the byte count (1-4). */
size_t ws_utf8_put(unsigned long cp, char *out);

#endif
