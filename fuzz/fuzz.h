/*
 * fuzz.h - what the libFuzzer harnesses of fuzz/ share.
 *
 * Each fuzz_NAME.c defines LLVMFuzzerTestOneInput and checks properties of
 * one module beyond "does not crash": a property that does not hold is
 * reported with PROPERTY() and aborts, which libFuzzer records as a crash
 * with the input saved (see docs/TESTING.md, "Fuzzing").
 */
#ifndef WS_FUZZ_H
#define WS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "decimal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef __int128 i128;

/* An amount as one 128-bit integer of units of 10^-18. */
static inline i128 wide(ws_dec d)
{
    return (i128)(((unsigned __int128)(uint64_t)d.hi << 64) | d.lo);
}

/* 10^k as a 128-bit integer (k <= 38). */
static inline i128 pow10i(unsigned k)
{
    i128 v = 1;

    while (k--)
        v *= 10;
    return v;
}

#define PROPERTY(cond)                                                     \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

#endif
