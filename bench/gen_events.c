/*
 * gen_events.c - writes benchmark events as JSON lines on stdout.
 *
 *   gen_events [-n EVENTS] [-w WALLETS] [-p PRODUCTS] [-s SEED] [-m] [-c]
 *
 * Clean events by default: unique transaction ids, one currency per
 * wallet, amounts with two decimals, timestamps over 84 days. -m mixes in
 * about 5% duplicates, 1% conflicting duplicates and 1% invalid records.
 * Wallets are drawn at random (about 63% of WALLETS are touched when
 * EVENTS = WALLETS); -c takes them in turn instead (event i goes to wallet
 * i mod WALLETS), so that EVENTS >= WALLETS touches every one; the other
 * fields stay random. Deterministic for a given seed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t state;

static uint64_t next(void)
{
    /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 2685821657736338717ULL;
}

static const char *const types[] = {"credit", "debit", "cancelCredit",
                                    "cancelDebit"};
static const char *const currencies[] = {"USD", "EUR", "GBP", "JPY"};

int main(int argc, char **argv)
{
    unsigned long long n = 1000000, wallets = 100000, products = 1000, i;
    unsigned long long seed = 42;
    int mixed = 0, cycle = 0, opt;
    static char out[1 << 16];

    while ((opt = getopt(argc, argv, "n:w:p:s:mc")) != -1) {
        switch (opt) {
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'w': wallets = strtoull(optarg, NULL, 10); break;
        case 'p': products = strtoull(optarg, NULL, 10); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'm': mixed = 1; break;
        case 'c': cycle = 1; break;
        default:
            fprintf(stderr, "usage: gen_events [-n EVENTS] [-w WALLETS] "
                            "[-p PRODUCTS] [-s SEED] [-m] [-c]\n");
            return 2;
        }
    }
    if (wallets == 0 || products == 0)
        return 2;
    state = seed * 0x9E3779B97F4A7C15ULL + 1;
    setvbuf(stdout, out, _IOFBF, sizeof out);
    for (i = 0; i < n; i++) {
        uint64_t r = next();
        unsigned long long w = cycle ? i % wallets : r % wallets;
        unsigned long long p = (r >> 20) % products;
        unsigned long long id = i;
        uint64_t r2 = next();
        unsigned t = (unsigned)(r2 % 10);
        const char *type = types[t < 5 ? 0 : t < 8 ? 1 : t < 9 ? 2 : 3];
        unsigned cents = (unsigned)((r2 >> 8) % 100000);
        unsigned day = (unsigned)((r2 >> 32) % 84), sec = (unsigned)((r2 >> 40) % 86400);
        unsigned month = 1 + day / 28, mday = 1 + day % 28;

        if (mixed) {
            unsigned m = (unsigned)((r2 >> 50) % 100);
            if (m < 1) {
                puts("{\"transaction_id\": \"broken\", \"amount\": ");
                continue;
            }
            if (m < 6 && i > 0)
                id = i - 1 - (r2 >> 56) % (i < 100 ? i : 100);
            else if (m < 7 && i > 0) {
                id = i - 1;
                cents += 1;
            }
        }
        printf("{\"transaction_id\":\"tx%llu\",\"wallet_id\":\"w%llu\","
               "\"product_id\":\"p%llu\",\"type\":\"%s\",\"amount\":%u.%02u,"
               "\"currency\":\"%s\",\"timestamp\":\"2024-%02u-%02uT%02u:%02u:%02uZ\"}\n",
               id, w, p, type, cents / 100, cents % 100,
               currencies[w % 4], month, mday, sec / 3600, sec / 60 % 60,
               sec % 60);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
