/*
 * test_wset.c - the batch working set: lookup, values, write-back order,
 * clearing, keeping entries over a clear.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wset.h"
#include "ws.h"
#include "wstest.h"

static void test_wset_finds_what_was_added_per_table(void)
{
    ws_wset *w = NULL;
    ws_wentry *e;

    CHECK_EQ_INT(ws_wset_new(&w), WS_OK);
    CHECK(ws_wset_find(w, 1, "k", 1) == NULL);
    e = ws_wset_add(w, 1, "k", 1, WS_WE_CLEAN, "v1", 2, 0);
    CHECK(e != NULL);
    CHECK(ws_wset_find(w, 1, "k", 1) == e);
    /* the same key in another table is another record */
    CHECK(ws_wset_find(w, 2, "k", 1) == NULL);
    CHECK(ws_wset_find(w, 1, "k\0", 2) == NULL);
    CHECK(ws_wset_add(w, 2, "k", 1, WS_WE_ABSENT, NULL, 0, 0) != NULL);
    CHECK_EQ_INT(ws_wset_count(w), 2);
    CHECK_EQ_INT(e->vlen, 2);
    CHECK(memcmp(e->val, "v1", 2) == 0);
    ws_wset_free(w);
}

static void test_wset_set_grows_a_value_and_marks_it_dirty(void)
{
    ws_wset *w = NULL;
    ws_wentry *e, **d;
    char big[5000];
    size_t n;

    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(ws_wset_new(&w), WS_OK);
    e = ws_wset_add(w, 3, "p", 1, WS_WE_CLEAN, "ab", 2, 0);
    CHECK_EQ_INT(ws_wset_dirty(w, &d, &n), WS_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(ws_wset_set(w, e, WS_WE_DIRTY, big, sizeof big), WS_OK);
    CHECK_EQ_INT(e->vlen, sizeof big);
    CHECK(memcmp(e->val, big, sizeof big) == 0);
    CHECK_EQ_INT(ws_wset_dirty(w, &d, &n), WS_OK);
    CHECK_EQ_INT(n, 1);
    CHECK(d[0] == e);
    ws_wset_free(w);
}

/* LMDB's default order: table first, then bytes (unsigned), then the
 * shorter key first; keys longer than the 15-byte sort prefix too. */
static void test_wset_dirty_entries_come_in_lmdb_key_order(void)
{
    static const char *const keys[] = {
        "b", "a", "ab", "", "a\xff", "aa", "abcdefghijklmnopq",
        "abcdefghijklmnop", "abcdefghijklmnopa", "abcdefghijklmno",
    };
    static const char *const want[] = {
        "", "a", "aa", "ab", "abcdefghijklmno", "abcdefghijklmnop",
        "abcdefghijklmnopa", "abcdefghijklmnopq", "a\xff", "b",
    };
    const size_t nk = sizeof keys / sizeof keys[0];
    ws_wset *w = NULL;
    ws_wentry **d;
    size_t n, i;

    CHECK_EQ_INT(ws_wset_new(&w), WS_OK);
    for (i = 0; i < nk; i++) {
        CHECK(ws_wset_add(w, 5, keys[i], strlen(keys[i]), WS_WE_DIRTY, "", 0,
                          0) != NULL);
        CHECK(ws_wset_add(w, 4, keys[i], strlen(keys[i]), WS_WE_DIRTY, "", 0,
                          0) != NULL);
    }
    CHECK(ws_wset_add(w, 4, "zz", 2, WS_WE_CLEAN, "", 0, 0) != NULL);
    CHECK_EQ_INT(ws_wset_dirty(w, &d, &n), WS_OK);
    CHECK_EQ_INT(n, 2 * nk);
    for (i = 0; i < n && i < 2 * nk; i++) {
        const char *k = want[i % nk];

        CHECK_EQ_INT(d[i]->table, i < nk ? 4 : 5);
        CHECK(d[i]->klen == strlen(k) && memcmp(d[i]->key, k, d[i]->klen) == 0);
    }
    ws_wset_free(w);
}

static void test_wset_holds_many_entries_and_clears_for_the_next_batch(void)
{
    ws_wset *w = NULL;
    char key[32];
    size_t i, found = 0;
    int round;

    CHECK_EQ_INT(ws_wset_new(&w), WS_OK);
    for (round = 0; round < 3; round++) {
        size_t count = round == 1 ? 10 : 200000;

        for (i = 0; i < count; i++) {
            int n = snprintf(key, sizeof key, "w%zu", i);

            CHECK(ws_wset_add(w, 1, key, (size_t)n, WS_WE_DIRTY, &i, sizeof i,
                              72) != NULL);
        }
        CHECK_EQ_INT(ws_wset_count(w), count);
        for (i = 0, found = 0; i < count; i++) {
            int n = snprintf(key, sizeof key, "w%zu", i);
            ws_wentry *e = ws_wset_find(w, 1, key, (size_t)n);

            found += e && e->vlen == sizeof i && memcmp(e->val, &i, sizeof i) == 0;
        }
        CHECK_EQ_INT(found, count);
        ws_wset_clear(w);
        CHECK_EQ_INT(ws_wset_count(w), 0);
        CHECK(ws_wset_find(w, 1, "w0", 2) == NULL);
    }
    ws_wset_free(w);
}


/* The write-back takes what was dirtied since the last one, once each,
 * and only while it is still dirty. */
static void test_wset_write_back_lists_each_dirtied_entry_once(void)
{
    ws_wset *w = NULL;
    ws_wentry *a, *b, **d;
    size_t n;

    CHECK_EQ_INT(ws_wset_new(&w), WS_OK);
    a = ws_wset_add(w, 2, "a", 1, WS_WE_CLEAN, "1", 1, 8);
    b = ws_wset_add(w, 2, "b", 1, WS_WE_ABSENT, NULL, 0, 8);
    CHECK(a && b);
    CHECK_EQ_INT(ws_wset_set(w, a, WS_WE_DIRTY, "2", 1), WS_OK);
    CHECK_EQ_INT(ws_wset_set(w, a, WS_WE_DIRTY, "3", 1), WS_OK);
    CHECK_EQ_INT(ws_wset_set(w, b, WS_WE_DIRTY, "x", 1), WS_OK);
    b->state = WS_WE_ABSENT;            /* released, as a seen id is */
    CHECK_EQ_INT(ws_wset_written(w, 2), 2);
    CHECK_EQ_INT(ws_wset_dirty(w, &d, &n), WS_OK);
    CHECK_EQ_INT(n, 1);
    CHECK(n == 1 && d[0] == a && a->val[0] == '3');
    a->state = WS_WE_CLEAN;             /* written back */
    CHECK_EQ_INT(ws_wset_dirty(w, &d, &n), WS_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(ws_wset_set(w, a, WS_WE_DIRTY, "4", 1), WS_OK);
    CHECK_EQ_INT(ws_wset_dirty(w, &d, &n), WS_OK);
    CHECK(n == 1 && d[0] == a);
    CHECK_EQ_INT(ws_wset_written(w, 2), 3);
    CHECK_EQ_INT(ws_wset_written(w, 3), 0);
    ws_wset_clear(w);
    CHECK_EQ_INT(ws_wset_written(w, 2), 0);
    ws_wset_free(w);
}

/* LMDB's order over the whole key, as a reference for the radix sort. */
static int ref_cmp(const void *pa, const void *pb)
{
    const ws_wentry *a = *(ws_wentry *const *)pa, *b = *(ws_wentry *const *)pb;
    size_t m = a->klen < b->klen ? a->klen : b->klen;
    int c;

    if (a->table != b->table)
        return a->table < b->table ? -1 : 1;
    if ((c = memcmp(a->key, b->key, m)) != 0)
        return c;
    return (a->klen > b->klen) - (a->klen < b->klen);
}

/* Many keys of many shapes (long shared prefixes, zero bytes, 0xff,
 * several tables) come back in exactly the reference order. */
static void test_wset_write_back_order_matches_a_reference_sort(void)
{
    enum { N = 20000 };
    ws_wset *w = NULL;
    ws_wentry **d, **ref = malloc(N * sizeof *ref);
    unsigned seed = 12345;
    size_t n, i, bad = 0, added = 0;

    CHECK(ref != NULL);
    CHECK_EQ_INT(ws_wset_new(&w), WS_OK);
    for (i = 0; i < N && ref; i++) {
        unsigned char key[40];
        size_t len, j;
        ws_wentry *e;

        seed = seed * 1103515245u + 12345u;
        len = (seed >> 8) % 24;
        /* a shared prefix of 0..19 bytes, then few distinct bytes */
        for (j = 0; j < len; j++) {
            seed = seed * 1103515245u + 12345u;
            key[j] = j < (seed >> 20) % 20 ? (unsigned char)'p'
                                            : (unsigned char)((seed >> 9) % 3 == 0
                                                                  ? 0xff
                                                                  : (seed >> 12) % 4);
        }
        e = ws_wset_find(w, (unsigned)(seed >> 28) % 3, key, len);
        if (e)
            continue;
        e = ws_wset_add(w, (unsigned)(seed >> 28) % 3, key, len, WS_WE_DIRTY,
                        "", 0, 0);
        CHECK(e != NULL);
        if (e)
            ref[added++] = e;
    }
    CHECK(added > 1000);
    qsort(ref, added, sizeof *ref, ref_cmp);
    CHECK_EQ_INT(ws_wset_dirty(w, &d, &n), WS_OK);
    CHECK_EQ_INT(n, added);
    for (i = 0; i < n && i < added; i++)
        bad += d[i] != ref[i];
    CHECK_EQ_INT(bad, 0);
    free(ref);
    ws_wset_free(w);
}

/* After a commit, clean and absent entries of the chosen tables stay for
 * the next batch with their values; the rest is forgotten. */
static void test_wset_keeps_clean_entries_of_chosen_tables(void)
{
    ws_wset *w = NULL;
    ws_wentry *e;
    char key[16];
    int i, round;

    CHECK_EQ_INT(ws_wset_new(&w), WS_OK);
    CHECK(ws_wset_add(w, 2, "wallet", 6, WS_WE_CLEAN, "balance", 7, 72));
    CHECK(ws_wset_add(w, 2, "gone", 4, WS_WE_ABSENT, NULL, 0, 72));
    CHECK(ws_wset_add(w, 2, "dirty", 5, WS_WE_DIRTY, "d", 1, 72));
    CHECK(ws_wset_add(w, 6, "tx1", 3, WS_WE_CLEAN, "fp", 2, 16));
    ws_wset_clear_keeping(w, 1u << 2, (size_t)1 << 20);
    CHECK_EQ_INT(ws_wset_count(w), 2);
    e = ws_wset_find(w, 2, "wallet", 6);
    CHECK(e && e->state == WS_WE_CLEAN && e->vlen == 7 &&
          memcmp(e->val, "balance", 7) == 0);
    e = ws_wset_find(w, 2, "gone", 4);
    CHECK(e && e->state == WS_WE_ABSENT && e->vlen == 0);
    CHECK(ws_wset_find(w, 2, "dirty", 5) == NULL);
    CHECK(ws_wset_find(w, 6, "tx1", 3) == NULL);
    /* a kept entry can be written by the next batch */
    e = ws_wset_find(w, 2, "gone", 4);
    CHECK(e && ws_wset_set(w, e, WS_WE_DIRTY, "new", 3) == WS_OK);

    /* a bound keeps fewer */
    for (i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof key, "w%d", i);

        CHECK(ws_wset_add(w, 3, key, (size_t)n, WS_WE_CLEAN, "0123456789",
                          10, 72));
    }
    ws_wset_clear_keeping(w, 1u << 3, 4096);
    CHECK(ws_wset_count(w) > 10 && ws_wset_count(w) < 1000);

    /* kept entries the next batch does not use: nothing kept for 8
     * clears, then keeping again */
    for (round = 0; round < 9; round++) {
        for (i = 0; i < 100; i++) {
            int n = snprintf(key, sizeof key, "r%d-%d", round, i);

            if (!ws_wset_find(w, 3, key, (size_t)n))
                CHECK(ws_wset_add(w, 3, key, (size_t)n, WS_WE_CLEAN, "v", 1,
                                  8));
        }
        ws_wset_clear_keeping(w, 1u << 3, (size_t)1 << 20);
        CHECK_EQ_INT(ws_wset_count(w), round < 8 ? 0 : 100);
    }
    ws_wset_free(w);
}

int main(void)
{
    RUN(test_wset_finds_what_was_added_per_table);
    RUN(test_wset_set_grows_a_value_and_marks_it_dirty);
    RUN(test_wset_dirty_entries_come_in_lmdb_key_order);
    RUN(test_wset_holds_many_entries_and_clears_for_the_next_batch);
    RUN(test_wset_write_back_lists_each_dirtied_entry_once);
    RUN(test_wset_write_back_order_matches_a_reference_sort);
    RUN(test_wset_keeps_clean_entries_of_chosen_tables);
    return WSTEST_END();
}
