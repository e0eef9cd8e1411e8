/*
 * utf8.c - strict UTF-8 validation and encoding.
 *
 * Hand-written because it is a dozen lines and sits on the hot path of
 * every record; the rules are those of RFC 3629 section 4 (Table 3-7 of
 * the Unicode standard).
 */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

int ws_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        unsigned char lo = 0x80, hi = 0xBF;
        size_t need, k;

        if (c < 0x80) {
            /* ASCII runs, eight bytes at a time. */
            uint64_t word;

            while (i + 8 <= n) {
                memcpy(&word, s + i, 8);
                if (word & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            if (i < n && s[i] < 0x80)
                i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;      /* overlong */
            else if (c == 0xED)
                hi = 0x9F;      /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;      /* overlong */
            else if (c == 0xF4)
                hi = 0x8F;      /* above U+10FFFF */
        } else {
            return 0;
        }
        if (need >= n - i)
            return 0;           /* truncated sequence */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += need + 1;
    }
    return 1;
}

size_t ws_utf8_put(unsigned long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
