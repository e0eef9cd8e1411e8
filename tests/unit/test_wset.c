/*
 * test_wset.c - the batch working set: lookup, values, write-back order,
 * clearing.
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

int main(void)
{
    RUN(test_wset_finds_what_was_added_per_table);
    RUN(test_wset_set_grows_a_value_and_marks_it_dirty);
    RUN(test_wset_dirty_entries_come_in_lmdb_key_order);
    RUN(test_wset_holds_many_entries_and_clears_for_the_next_batch);
    return WSTEST_END();
}
