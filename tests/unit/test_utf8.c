/*
 * test_utf8.c - strict UTF-8 validation and encoding (src/utf8.c).
 *
 * The rules are RFC 3629 section 4: no overlong forms, no encoded
 * surrogates, nothing above U+10FFFF, no truncated sequence. Besides the
 * classic hand-picked cases, every 1-, 2- and 3-byte string is checked
 * against a second, independently written validator (decode the code
 * point, then check its range), and the truncation cases are run from
 * buffers of exactly their length so that AddressSanitizer catches a read
 * past the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "wstest.h"

/* ws_utf8_valid on a heap copy of exactly n bytes: a read past the end
 * is an AddressSanitizer error, not a silent pass. */
static int valid_exact(const char *s, size_t n)
{
    char *copy = malloc(n ? n : 1);
    int r;

    if (!copy)
        return -1;
    memcpy(copy, s, n);
    r = ws_utf8_valid(copy, n);
    free(copy);
    return r;
}

#define VALID(lit) valid_exact(lit, sizeof(lit) - 1)

/* A second reading of RFC 3629: returns 1 when s[0..n) is well formed. */
static int reference_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        unsigned long cp, min;
        size_t len, k;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* ------------------------------------------------------------ accepted */

static void test_utf8_accepts_empty_and_ascii(void)
{
    CHECK_EQ_INT(valid_exact("", 0), 1);
    CHECK_EQ_INT(VALID("hello, world"), 1);
    CHECK_EQ_INT(VALID("\x01\x1f\x7f"), 1);
    /* A NUL byte is ASCII; the length, not a terminator, bounds the text. */
    CHECK_EQ_INT(valid_exact("a\0b", 3), 1);
}

static void test_utf8_accepts_two_three_and_four_byte_sequences(void)
{
    CHECK_EQ_INT(VALID("caf\xC3\xA9"), 1);            /* U+00E9 */
    CHECK_EQ_INT(VALID("\xE2\x82\xAC"), 1);           /* U+20AC euro */
    CHECK_EQ_INT(VALID("\xF0\x9F\x98\x80"), 1);       /* U+1F600 */
    CHECK_EQ_INT(VALID("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"), 1);
}

static void test_utf8_accepts_the_boundaries_of_each_length(void)
{
    CHECK_EQ_INT(VALID("\xC2\x80"), 1);               /* U+0080 */
    CHECK_EQ_INT(VALID("\xDF\xBF"), 1);               /* U+07FF */
    CHECK_EQ_INT(VALID("\xE0\xA0\x80"), 1);           /* U+0800 */
    CHECK_EQ_INT(VALID("\xED\x9F\xBF"), 1);           /* U+D7FF */
    CHECK_EQ_INT(VALID("\xEE\x80\x80"), 1);           /* U+E000 */
    CHECK_EQ_INT(VALID("\xEF\xBF\xBF"), 1);           /* U+FFFF */
    CHECK_EQ_INT(VALID("\xF0\x90\x80\x80"), 1);       /* U+10000 */
    CHECK_EQ_INT(VALID("\xF4\x8F\xBF\xBF"), 1);       /* U+10FFFF */
}

/* ------------------------------------------------------------ rejected */

static void test_utf8_rejects_overlong_encodings(void)
{
    CHECK_EQ_INT(VALID("\xC0\x80"), 0);               /* U+0000 */
    CHECK_EQ_INT(VALID("\xC0\xAF"), 0);               /* '/' */
    CHECK_EQ_INT(VALID("\xC1\xBF"), 0);               /* U+007F */
    CHECK_EQ_INT(VALID("\xE0\x80\xAF"), 0);           /* '/' */
    CHECK_EQ_INT(VALID("\xE0\x9F\xBF"), 0);           /* U+07FF */
    CHECK_EQ_INT(VALID("\xF0\x80\x80\xAF"), 0);       /* '/' */
    CHECK_EQ_INT(VALID("\xF0\x8F\xBF\xBF"), 0);       /* U+FFFF */
}

static void test_utf8_rejects_encoded_surrogates(void)
{
    CHECK_EQ_INT(VALID("\xED\xA0\x80"), 0);           /* U+D800 */
    CHECK_EQ_INT(VALID("\xED\xAF\xBF"), 0);           /* U+DBFF */
    CHECK_EQ_INT(VALID("\xED\xB0\x80"), 0);           /* U+DC00 */
    CHECK_EQ_INT(VALID("\xED\xBF\xBF"), 0);           /* U+DFFF */
    /* CESU-8 pair for U+1F600. */
    CHECK_EQ_INT(VALID("\xED\xA0\xBD\xED\xB8\x80"), 0);
}

static void test_utf8_rejects_code_points_above_10ffff(void)
{
    CHECK_EQ_INT(VALID("\xF4\x90\x80\x80"), 0);       /* U+110000 */
    CHECK_EQ_INT(VALID("\xF4\xBF\xBF\xBF"), 0);
    CHECK_EQ_INT(VALID("\xF5\x80\x80\x80"), 0);
    CHECK_EQ_INT(VALID("\xF7\xBF\xBF\xBF"), 0);       /* U+1FFFFF */
    CHECK_EQ_INT(VALID("\xF8\x88\x80\x80\x80"), 0);   /* 5-byte form */
    CHECK_EQ_INT(VALID("\xFC\x84\x80\x80\x80\x80"), 0); /* 6-byte form */
}

static void test_utf8_rejects_bytes_that_never_appear(void)
{
    CHECK_EQ_INT(VALID("\xFF"), 0);
    CHECK_EQ_INT(VALID("\xFE"), 0);
    CHECK_EQ_INT(VALID("abc\xFF"), 0);
    CHECK_EQ_INT(VALID("\xC0"), 0);
    CHECK_EQ_INT(VALID("\xC1"), 0);
}

static void test_utf8_rejects_lone_continuation_bytes(void)
{
    CHECK_EQ_INT(VALID("\x80"), 0);
    CHECK_EQ_INT(VALID("\xBF"), 0);
    CHECK_EQ_INT(VALID("a\x80z"), 0);
    /* One continuation byte too many. */
    CHECK_EQ_INT(VALID("\xC3\xA9\xA9"), 0);
}

static void test_utf8_rejects_sequences_truncated_at_the_end(void)
{
    CHECK_EQ_INT(VALID("\xC3"), 0);
    CHECK_EQ_INT(VALID("a\xC3"), 0);
    CHECK_EQ_INT(VALID("\xE2"), 0);
    CHECK_EQ_INT(VALID("\xE2\x82"), 0);
    CHECK_EQ_INT(VALID("\xF0"), 0);
    CHECK_EQ_INT(VALID("\xF0\x9F"), 0);
    CHECK_EQ_INT(VALID("\xF0\x9F\x98"), 0);
    CHECK_EQ_INT(VALID("ok\xF0\x9F\x98"), 0);
    /* The length bounds the text even when valid bytes follow it. */
    CHECK_EQ_INT(ws_utf8_valid("\xC3\xA9", 1), 0);
    CHECK_EQ_INT(ws_utf8_valid("\xF0\x9F\x98\x80", 3), 0);
}

static void test_utf8_rejects_sequences_interrupted_by_a_non_continuation(void)
{
    CHECK_EQ_INT(VALID("\xC3\x41"), 0);
    CHECK_EQ_INT(VALID("\xC3\xC3\xA9"), 0);
    CHECK_EQ_INT(VALID("\xE2\x28\xA1"), 0);
    CHECK_EQ_INT(VALID("\xE2\x82\x28"), 0);
    CHECK_EQ_INT(VALID("\xF0\x9F\x98\x41"), 0);
    CHECK_EQ_INT(VALID("\xF0\x28\x98\x80"), 0);
    CHECK_EQ_INT(VALID("\xE2\x82\xF0\x9F\x98\x80"), 0);
}

/* Every string of one, two and three bytes: same answer as the
 * reference validator. */
static void test_utf8_agrees_with_a_reference_on_every_short_string(void)
{
    unsigned char b[3];
    unsigned long x, mismatches = 0;

    for (x = 0; x < 0x100; x++) {
        b[0] = (unsigned char)x;
        if (ws_utf8_valid((const char *)b, 1) != reference_valid(b, 1))
            mismatches++;
    }
    for (x = 0; x < 0x10000; x++) {
        b[0] = (unsigned char)(x >> 8);
        b[1] = (unsigned char)x;
        if (ws_utf8_valid((const char *)b, 2) != reference_valid(b, 2))
            mismatches++;
    }
    for (x = 0; x < 0x1000000; x++) {
        b[0] = (unsigned char)(x >> 16);
        b[1] = (unsigned char)(x >> 8);
        b[2] = (unsigned char)x;
        if (ws_utf8_valid((const char *)b, 3) != reference_valid(b, 3))
            mismatches++;
    }
    CHECK_EQ_INT(mismatches, 0);
}

/* Every 4-byte string whose first byte starts a 4-byte form (F0-F7) and
 * whose second byte varies fully, with the last two bytes drawn from the
 * interesting values. */
static void test_utf8_agrees_with_a_reference_on_four_byte_forms(void)
{
    static const unsigned char tail[] = {0x00, 0x41, 0x7F, 0x80, 0x8F,
                                         0x90, 0xBF, 0xC0, 0xF0, 0xFF};
    unsigned char b[4];
    unsigned lead, second, t3, t4;
    unsigned long mismatches = 0;

    for (lead = 0xF0; lead <= 0xFF; lead++)
        for (second = 0; second < 0x100; second++)
            for (t3 = 0; t3 < sizeof tail; t3++)
                for (t4 = 0; t4 < sizeof tail; t4++) {
                    b[0] = (unsigned char)lead;
                    b[1] = (unsigned char)second;
                    b[2] = tail[t3];
                    b[3] = tail[t4];
                    if (ws_utf8_valid((const char *)b, 4) !=
                        reference_valid(b, 4))
                        mismatches++;
                }
    CHECK_EQ_INT(mismatches, 0);
}

/* -------------------------------------------------------------- encode */

static void test_utf8_put_encodes_each_length(void)
{
    char out[4];

    CHECK_EQ_INT(ws_utf8_put(0x41, out), 1);
    CHECK(memcmp(out, "A", 1) == 0);
    CHECK_EQ_INT(ws_utf8_put(0x0, out), 1);
    CHECK(out[0] == 0);
    CHECK_EQ_INT(ws_utf8_put(0xE9, out), 2);
    CHECK(memcmp(out, "\xC3\xA9", 2) == 0);
    CHECK_EQ_INT(ws_utf8_put(0x7FF, out), 2);
    CHECK(memcmp(out, "\xDF\xBF", 2) == 0);
    CHECK_EQ_INT(ws_utf8_put(0x800, out), 3);
    CHECK(memcmp(out, "\xE0\xA0\x80", 3) == 0);
    CHECK_EQ_INT(ws_utf8_put(0x20AC, out), 3);
    CHECK(memcmp(out, "\xE2\x82\xAC", 3) == 0);
    CHECK_EQ_INT(ws_utf8_put(0xFFFF, out), 3);
    CHECK(memcmp(out, "\xEF\xBF\xBF", 3) == 0);
    CHECK_EQ_INT(ws_utf8_put(0x10000, out), 4);
    CHECK(memcmp(out, "\xF0\x90\x80\x80", 4) == 0);
    CHECK_EQ_INT(ws_utf8_put(0x1F600, out), 4);
    CHECK(memcmp(out, "\xF0\x9F\x98\x80", 4) == 0);
    CHECK_EQ_INT(ws_utf8_put(0x10FFFF, out), 4);
    CHECK(memcmp(out, "\xF4\x8F\xBF\xBF", 4) == 0);
}

/* Every scalar value encodes to the shortest valid form. */
static void test_utf8_put_output_is_valid_for_every_scalar_value(void)
{
    unsigned long cp, bad = 0;
    char out[4];

    for (cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n, want;

        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        n = ws_utf8_put(cp, out);
        if (n != want || !ws_utf8_valid(out, n))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    RUN(test_utf8_accepts_empty_and_ascii);
    RUN(test_utf8_accepts_two_three_and_four_byte_sequences);
    RUN(test_utf8_accepts_the_boundaries_of_each_length);
    RUN(test_utf8_rejects_overlong_encodings);
    RUN(test_utf8_rejects_encoded_surrogates);
    RUN(test_utf8_rejects_code_points_above_10ffff);
    RUN(test_utf8_rejects_bytes_that_never_appear);
    RUN(test_utf8_rejects_lone_continuation_bytes);
    RUN(test_utf8_rejects_sequences_truncated_at_the_end);
    RUN(test_utf8_rejects_sequences_interrupted_by_a_non_continuation);
    RUN(test_utf8_agrees_with_a_reference_on_every_short_string);
    RUN(test_utf8_agrees_with_a_reference_on_four_byte_forms);
    RUN(test_utf8_put_encodes_each_length);
    RUN(test_utf8_put_output_is_valid_for_every_scalar_value);
    return WSTEST_END();
}
