/*
 * test_store.c - the data directory and the LMDB store (SPEC §8,
 * DESIGN §3): format marker, refusal of foreign or incompatible
 * directories, the writer lock, atomic batches, record round trips,
 * shards read as one state, the outbox of ids of other shards.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "store.h"
#include "wstest.h"

static char root[256];

static void fresh_dir(char *out, size_t cap, const char *name)
{
    char cmd[600];

    snprintf(out, cap, "%s/%s", root, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    if (system(cmd) != 0)
        printf("  cannot clean %s\n", out);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static ws_wallet sample_wallet(void)
{
    ws_wallet w;
    uint8_t scale;

    memset(&w, 0, sizeof w);
    memcpy(w.currency, "USD", 3);
    ws_dec_parse_amount("75.00", 5, &w.balance, &scale);
    ws_dec_parse_amount("5.00", 4, &w.total_debit, &scale);
    w.scale = scale;
    w.transactions = 6;
    w.first_day = 19764;
    w.last_day = 19854;
    w.debit_days = 1;
    w.last_event.sec = 1715431800;
    w.last_event.nsec = 123456789;
    return w;
}

static void test_new_directory_gets_a_format_marker(void)
{
    char dir[300], path[400], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    struct stat st;

    fresh_dir(dir, sizeof dir, "new/nested");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    ws_store_close(s);
    snprintf(path, sizeof path, "%s/walletstream.format", dir);
    CHECK(stat(path, &st) == 0);
    snprintf(path, sizeof path, "%s/state/0/data.mdb", dir);
    CHECK(stat(path, &st) == 0);
    /* and it opens again, for reading and for writing */
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_READ, 0, &s, err), WS_OK);
    ws_store_close(s);
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    ws_store_close(s);
}

static void test_foreign_directory_is_refused_untouched(void)
{
    char dir[300], path[400], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;

    fresh_dir(dir, sizeof dir, "foreign");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_text(path, "not ours\n");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err),
                 WS_ERR_FORMAT);
    CHECK(s == NULL);
    CHECK(strstr(err, "not a walletstream data directory") != NULL);
    CHECK_EQ_INT(count_entries(dir), 1);
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_READ, 0, &s, err),
                 WS_ERR_FORMAT);
    CHECK_EQ_INT(count_entries(dir), 1);
}

/* `make run` writes its broker's address and keeps Kafka's log in the
 * data directory before walletstream first opens it. */
static void test_directory_with_only_the_brokers_files_is_new(void)
{
    char dir[300], path[400], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;

    fresh_dir(dir, sizeof dir, "broker-files");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/kafka.bootstrap", dir);
    write_text(path, "127.0.0.1:9092\n");
    snprintf(path, sizeof path, "%s/kafka", dir);
    mkdir(path, 0755);
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    ws_store_close(s);
    fresh_dir(dir, sizeof dir, "broker-files-and-more");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/kafka", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/kafka.log", dir);
    write_text(path, "x\n");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err),
                 WS_ERR_FORMAT);
    CHECK(s == NULL);
}

static void test_other_format_version_is_refused_untouched(void)
{
    char dir[300], path[400], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    struct stat before, after;

    fresh_dir(dir, sizeof dir, "future");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    ws_store_close(s);
    snprintf(path, sizeof path, "%s/walletstream.format", dir);
    unlink(path);
    write_text(path, "walletstream data directory\nformat 99\n");
    snprintf(path, sizeof path, "%s/state/0/data.mdb", dir);
    CHECK(stat(path, &before) == 0);
    s = NULL;
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err),
                 WS_ERR_FORMAT);
    CHECK(s == NULL);
    CHECK(strstr(err, "format 99") != NULL);
    CHECK(stat(path, &after) == 0);
    CHECK(before.st_mtime == after.st_mtime && before.st_size == after.st_size);
    snprintf(path, sizeof path, "%s/LOCK", dir);
    CHECK(access(path, F_OK) == 0); /* from the first, compatible open */
}

static void test_garbled_marker_is_refused(void)
{
    char dir[300], path[400], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;

    fresh_dir(dir, sizeof dir, "garbled");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/walletstream.format", dir);
    write_text(path, "something else\n");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err),
                 WS_ERR_FORMAT);
}

static void test_second_writer_is_refused(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *a = NULL, *b = NULL, *r = NULL;

    fresh_dir(dir, sizeof dir, "locked");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &a, err), WS_OK);
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &b, err),
                 WS_ERR_LOCKED);
    CHECK(strstr(err, "in use by another walletstream process") != NULL);
    /* readers are welcome beside the writer */
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_READ, 0, &r, err), WS_OK);
    ws_store_close(r);
    ws_store_close(a);
    /* the lock goes with the writer */
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &b, err), WS_OK);
    ws_store_close(b);
}

static void test_reader_of_missing_directory_fails_clearly(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;

    fresh_dir(dir, sizeof dir, "missing");
    CHECK(ws_store_open(dir, WS_STORE_READ, 0, &s, err) != WS_OK);
    CHECK(strstr(err, "no data directory") != NULL);
    CHECK(access(dir, F_OK) != 0);
}

static void test_batch_is_visible_only_after_commit(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    ws_wallet w = sample_wallet(), got;

    fresh_dir(dir, sizeof dir, "atomic");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "b", 1, &w), WS_OK);
    /* the batch reads its own writes */
    CHECK_EQ_INT(ws_batch_wallet_get(b, "b", 1, &got), WS_OK);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_wallet(v, "b", 1, &got), WS_ERR_NOT_FOUND);
    ws_view_end(v);
    ws_batch_abort(b);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_wallet(v, "b", 1, &got), WS_ERR_NOT_FOUND);
    ws_view_end(v);

    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "b", 1, &w), WS_OK);
    CHECK_EQ_INT(ws_batch_offset_set(b, "t/0", 3, 42), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_wallet(v, "b", 1, &got), WS_OK);
    {
        int64_t off = 0;
        CHECK_EQ_INT(ws_view_offset(v, "t/0", 3, &off), WS_OK);
        CHECK_EQ_INT(off, 42);
        CHECK_EQ_INT(ws_view_offset(v, "t/1", 3, &off), WS_ERR_NOT_FOUND);
    }
    ws_view_end(v);
    ws_store_close(s);
}

static void test_wallet_record_round_trips(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    ws_wallet w = sample_wallet(), got;

    w.balance.hi = -1; /* negative */
    w.balance.lo = 0xFFFFFFFFFFFFFFF0ULL;
    fresh_dir(dir, sizeof dir, "wallet");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "w", 1, &w), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    ws_store_close(s);
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_READ, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_wallet(v, "w", 1, &got), WS_OK);
    ws_view_end(v);
    ws_store_close(s);
    CHECK(memcmp(got.currency, "USD", 3) == 0);
    CHECK_EQ_INT(got.scale, 2);
    CHECK(ws_dec_cmp(got.balance, w.balance) == 0);
    CHECK(ws_dec_cmp(got.total_debit, w.total_debit) == 0);
    CHECK_EQ_INT(got.transactions, 6);
    CHECK_EQ_INT(got.first_day, 19764);
    CHECK_EQ_INT(got.last_day, 19854);
    CHECK_EQ_INT(got.debit_days, 1);
    CHECK_EQ_INT(got.last_event.sec, 1715431800);
    CHECK_EQ_INT(got.last_event.nsec, 123456789);
}

struct collected {
    int calls;
    char currencies[8][4];
    ws_top last;
};

static int collect(const ws_top *t, void *arg)
{
    struct collected *c = arg;

    if (c->calls < 8) {
        memcpy(c->currencies[c->calls], t->currency, 3);
        c->currencies[c->calls][3] = '\0';
    }
    c->calls++;
    c->last = *t;
    return 0;
}

static void test_top_records_iterate_by_currency_and_product(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    ws_top t;
    struct collected c;
    uint8_t scale;

    fresh_dir(dir, sizeof dir, "top");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    memset(&t, 0, sizeof t);
    t.n = 1;
    ws_dec_parse_amount("7.50", 4, &t.e[0].amount, &scale);
    t.e[0].scale = scale;
    t.e[0].ts.sec = 100;
    t.e[0].tx_id_len = 2;
    memcpy(t.e[0].tx_id, "t1", 2);
    t.e[0].wallet_id_len = 1;
    memcpy(t.e[0].wallet_id, "w", 1);
    memcpy(t.currency, "USD", 3);
    CHECK_EQ_INT(ws_batch_top_put(b, "p", 1, &t), WS_OK);
    memcpy(t.currency, "EUR", 3);
    CHECK_EQ_INT(ws_batch_top_put(b, "p", 1, &t), WS_OK);
    /* a product whose id extends "p" must not leak into p's list */
    CHECK_EQ_INT(ws_batch_top_put(b, "p2", 2, &t), WS_OK);
    {
        int added = -1;
        CHECK_EQ_INT(ws_batch_product_mark(b, "p", 1, &added), WS_OK);
        CHECK_EQ_INT(added, 1);
        CHECK_EQ_INT(ws_batch_product_mark(b, "p", 1, &added), WS_OK);
        CHECK_EQ_INT(added, 0);
    }
    CHECK_EQ_INT(ws_batch_top_get(b, "p", 1, "GBP", &t), WS_ERR_NOT_FOUND);
    CHECK_EQ_INT(t.n, 0);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);

    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(ws_view_tops(v, "p", 1, collect, &c), WS_OK);
    CHECK_EQ_INT(c.calls, 2);
    CHECK_EQ_STR(c.currencies[0], "EUR");
    CHECK_EQ_STR(c.currencies[1], "USD");
    CHECK_EQ_INT(c.last.n, 1);
    CHECK_EQ_INT(c.last.e[0].scale, 2);
    CHECK(memcmp(c.last.e[0].tx_id, "t1", 2) == 0);
    CHECK_EQ_INT(ws_view_product(v, "p", 1), WS_OK);
    CHECK_EQ_INT(ws_view_product(v, "p2", 2), WS_ERR_NOT_FOUND);
    ws_view_end(v);
    ws_store_close(s);
}

static void test_counters_accumulate_across_batches_and_restarts(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    ws_counts c;
    int round;

    fresh_dir(dir, sizeof dir, "counters");
    for (round = 0; round < 2; round++) {
        CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
        CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
        ws_batch_count(b, WS_APPLIED, WS_R_NONE);
        ws_batch_count(b, WS_REJECTED, WS_R_INVALID_JSON);
        ws_batch_count(b, WS_REJECTED, WS_R_INVALID_JSON);
        CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
        /* an aborted batch counts nothing */
        CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
        ws_batch_count(b, WS_DUPLICATE, WS_R_NONE);
        ws_batch_abort(b);
        ws_store_close(s);
    }
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_READ, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_counts(v, &c), WS_OK);
    ws_view_end(v);
    ws_store_close(s);
    CHECK_EQ_INT(c.outcome[WS_APPLIED], 2);
    CHECK_EQ_INT(c.outcome[WS_DUPLICATE], 0);
    CHECK_EQ_INT(c.outcome[WS_REJECTED], 4);
    CHECK_EQ_INT(c.reason[WS_R_INVALID_JSON], 4);
}

/* Records lost before they were read: per source, added up across
 * batches, committed with the offset that skips them, none when absent. */
static void test_lost_counts_commit_with_the_offset(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    int64_t lost = -1, off = -1;

    fresh_dir(dir, sizeof dir, "lost");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_offset_set(b, "t/0", 3, 1948), WS_OK);
    CHECK_EQ_INT(ws_batch_lost_add(b, "t/0", 3, 1648), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_lost_add(b, "t/0", 3, 2), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    /* an aborted batch adds nothing */
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_lost_add(b, "t/0", 3, 1000), WS_OK);
    ws_batch_abort(b);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_lost(v, "t/0", 3, &lost), WS_OK);
    CHECK_EQ_INT(lost, 1650);
    CHECK_EQ_INT(ws_view_offset(v, "t/0", 3, &off), WS_OK);
    CHECK_EQ_INT(off, 1948);
    CHECK_EQ_INT(ws_view_lost(v, "t/1", 3, &lost), WS_OK);
    CHECK_EQ_INT(lost, 0);
    ws_view_end(v);
    ws_store_close(s);
}

static void test_debit_days_are_a_set(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    int added = -1;

    fresh_dir(dir, sizeof dir, "days");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_debit_day_add(b, "w", 1, 100, &added), WS_OK);
    CHECK_EQ_INT(added, 1);
    CHECK_EQ_INT(ws_batch_debit_day_add(b, "w", 1, 100, &added), WS_OK);
    CHECK_EQ_INT(added, 0);
    CHECK_EQ_INT(ws_batch_debit_day_add(b, "w", 1, 101, &added), WS_OK);
    CHECK_EQ_INT(added, 1);
    CHECK_EQ_INT(ws_batch_debit_day_add(b, "w2", 2, 100, &added), WS_OK);
    CHECK_EQ_INT(added, 1);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    ws_store_close(s);
}

static int count_tops(const ws_top *t, void *arg)
{
    (void)t;
    ++*(int *)arg;
    return 0;
}

/* The batch's working set: a claim released in the batch leaves no trace,
 * a second claim sees the first, tops written in the batch are seen by the
 * batch's cursor (the changelog's read) and committed once. */
static void test_batch_working_set_claims_and_tops(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    unsigned char fp[16], other[16], got[16];
    ws_top t;
    int claimed = -1, n = 0;

    memset(fp, 1, sizeof fp);
    memset(other, 2, sizeof other);
    fresh_dir(dir, sizeof dir, "wset");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_seen_claim(b, "t1", 2, fp, &claimed, got), WS_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(ws_batch_seen_release(b, "t1", 2), WS_OK);
    CHECK_EQ_INT(ws_batch_seen_claim(b, "t1", 2, other, &claimed, got), WS_OK);
    CHECK_EQ_INT(claimed, 1);
    CHECK_EQ_INT(ws_batch_seen_claim(b, "t1", 2, fp, &claimed, got), WS_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK(memcmp(got, other, 16) == 0);
    CHECK_EQ_INT(ws_batch_seen_claim(b, "t2", 2, fp, &claimed, got), WS_OK);
    CHECK_EQ_INT(ws_batch_seen_release(b, "t2", 2), WS_OK);

    CHECK_EQ_INT(ws_batch_top_get(b, "p", 1, "USD", &t), WS_ERR_NOT_FOUND);
    t.n = 0;
    CHECK_EQ_INT(ws_batch_top_put(b, "p", 1, &t), WS_OK);
    CHECK_EQ_INT(ws_batch_tops(b, "p", 1, count_tops, &n), WS_OK);
    CHECK_EQ_INT(n, 1);
    /* after the write-back the batch goes on reading its own records */
    CHECK_EQ_INT(ws_batch_seen_claim(b, "t1", 2, fp, &claimed, got), WS_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);

    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_seen_claim(b, "t1", 2, fp, &claimed, got), WS_OK);
    CHECK_EQ_INT(claimed, 0);
    CHECK(memcmp(got, other, 16) == 0);
    CHECK_EQ_INT(ws_batch_seen_claim(b, "t2", 2, fp, &claimed, got), WS_OK);
    CHECK_EQ_INT(claimed, 1);
    ws_batch_abort(b);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    n = 0;
    CHECK_EQ_INT(ws_view_tops(v, "p", 1, count_tops, &n), WS_OK);
    CHECK_EQ_INT(n, 1);
    ws_view_end(v);
    ws_store_close(s);
}

static void test_map_limit_is_reported_as_full(void)
{
    char dir[300], err[WS_STORE_ERR_MAX], id[32];
    ws_store *s = NULL;
    ws_batch *b;
    ws_wallet w = sample_wallet();
    int i, e = WS_OK;

    fresh_dir(dir, sizeof dir, "full");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 256 * 1024, &s, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    /* The batch changes its working set in memory; LMDB meets the limit
     * when the batch is written back at commit. */
    for (i = 0; i < 100000 && e == WS_OK; i++) {
        int n = snprintf(id, sizeof id, "wallet-%d", i);
        e = ws_batch_wallet_put(b, id, (size_t)n, &w);
    }
    CHECK_EQ_INT(e, WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_ERR_MAP_FULL);
    /* the store stays usable */
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "one", 3, &w), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    ws_store_close(s);
}

/* ws_view_each_*: every key once, in byte order, stopping on request. */
struct keys_seen {
    int calls;
    char keys[8][16];
    int64_t values[8];
    int stop_after;
};

static int note_key(struct keys_seen *k, const char *id, size_t n,
                    int64_t value)
{
    if (k->calls < 8 && n < 16) {
        memcpy(k->keys[k->calls], id, n);
        k->keys[k->calls][n] = '\0';
        k->values[k->calls] = value;
    }
    k->calls++;
    return k->stop_after && k->calls == k->stop_after ? 7 : 0;
}

static int seen_wallet(const char *id, size_t n, const ws_wallet *w,
                       void *arg)
{
    return note_key(arg, id, n, w->transactions);
}

static int seen_product(const char *id, size_t n, void *arg)
{
    return note_key(arg, id, n, 0);
}

static int seen_offset(const char *id, size_t n, int64_t next, void *arg)
{
    return note_key(arg, id, n, next);
}

static void test_whole_tables_iterate_in_key_order(void)
{
    static const char *const ids[] = {"b", "a,\"q\"", "ab", "a"};
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    ws_wallet w = sample_wallet();
    struct keys_seen k;
    int i, added;

    fresh_dir(dir, sizeof dir, "each");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    for (i = 0; i < 4; i++) {
        w.transactions = i + 1;
        CHECK_EQ_INT(ws_batch_wallet_put(b, ids[i], strlen(ids[i]), &w), WS_OK);
        CHECK_EQ_INT(ws_batch_product_mark(b, ids[i], strlen(ids[i]), &added),
                     WS_OK);
    }
    CHECK_EQ_INT(ws_batch_offset_set(b, "t/1", 3, 42), WS_OK);
    CHECK_EQ_INT(ws_batch_offset_set(b, "t/0", 3, 7), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);

    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    memset(&k, 0, sizeof k);
    CHECK_EQ_INT(ws_view_each_wallet(v, seen_wallet, &k), WS_OK);
    CHECK_EQ_INT(k.calls, 4);
    CHECK_EQ_STR(k.keys[0], "a");
    CHECK_EQ_STR(k.keys[1], "a,\"q\"");
    CHECK_EQ_STR(k.keys[2], "ab");
    CHECK_EQ_STR(k.keys[3], "b");
    CHECK_EQ_INT(k.values[0], 4);
    CHECK_EQ_INT(k.values[3], 1);
    memset(&k, 0, sizeof k);
    CHECK_EQ_INT(ws_view_each_product(v, seen_product, &k), WS_OK);
    CHECK_EQ_INT(k.calls, 4);
    CHECK_EQ_STR(k.keys[2], "ab");
    memset(&k, 0, sizeof k);
    k.stop_after = 2;
    CHECK_EQ_INT(ws_view_each_product(v, seen_product, &k), 7);
    CHECK_EQ_INT(k.calls, 2);
    memset(&k, 0, sizeof k);
    CHECK_EQ_INT(ws_view_each_offset(v, seen_offset, &k), WS_OK);
    CHECK_EQ_INT(k.calls, 2);
    CHECK_EQ_STR(k.keys[0], "t/0");
    CHECK_EQ_INT(k.values[0], 7);
    CHECK_EQ_INT(k.values[1], 42);
    ws_view_end(v);
    ws_store_close(s);
}

/* A top entry of `amount` (whole units) by wallet/tx `id`. */
static ws_top_entry top_entry(const char *id, const char *amount)
{
    ws_top_entry e;
    uint8_t scale;

    memset(&e, 0, sizeof e);
    ws_dec_parse_amount(amount, strlen(amount), &e.amount, &scale);
    e.scale = scale;
    e.ts.sec = 1715431800;
    e.tx_id_len = e.wallet_id_len = (uint16_t)strlen(id);
    memcpy(e.tx_id, id, strlen(id));
    memcpy(e.wallet_id, id, strlen(id));
    return e;
}

struct tops_seen {
    int calls;
    unsigned n;
    char ids[WS_TOP_N][8];
};

static int seen_tops(const ws_top *t, void *arg)
{
    struct tops_seen *ts = arg;
    unsigned i;

    ts->calls++;
    ts->n = t->n;
    for (i = 0; i < t->n; i++) {
        memcpy(ts->ids[i], t->e[i].tx_id, t->e[i].tx_id_len);
        ts->ids[i][t->e[i].tx_id_len] = '\0';
    }
    return 0;
}

/* Three shards: a wallet is read from its own shard, top lists are the
 * merge of the shards' own, counters add up, a source's offset is the
 * smallest (none until every shard has one), tables iterate as one. */
static void test_shards_read_as_one_state(void)
{
    static const char *const wallets[] = {"w1", "w2", "w3", "w4", "w5",
                                          "w6"};
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    ws_wallet w = sample_wallet(), got;
    ws_counts c;
    ws_top t;
    struct tops_seen ts;
    struct keys_seen k;
    int64_t next;
    int i, added, shard;

    fresh_dir(dir, sizeof dir, "shards");
    CHECK_EQ_INT(ws_store_open_shards(dir, WS_STORE_WRITE, 0, 3, &s, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_shards(s), 3);
    for (i = 0; i < 6; i++) {
        shard = ws_store_shard_of(s, wallets[i], 2);
        CHECK_EQ_INT(ws_store_begin_shard(s, shard, &b), WS_OK);
        w.transactions = i + 1;
        CHECK_EQ_INT(ws_batch_wallet_put(b, wallets[i], 2, &w), WS_OK);
        CHECK_EQ_INT(ws_batch_product_mark(b, "p", 1, &added), WS_OK);
        ws_batch_count(b, WS_APPLIED, WS_R_NONE);
        CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    }
    /* Shard k's own top list of product p: credits 10+k, 20+k, ... */
    for (shard = 0; shard < 3; shard++) {
        static const char *const amounts[3][3] = {
            {"10", "40", "70"}, {"20", "50", "80"}, {"30", "60", "90"}};
        static const char *const ids[3][3] = {
            {"a", "d", "g"}, {"b", "e", "h"}, {"c", "f", "i"}};
        ws_top_entry e;

        CHECK_EQ_INT(ws_store_begin_shard(s, shard, &b), WS_OK);
        memset(&t, 0, sizeof t);
        memcpy(t.currency, "USD", 3);
        for (i = 0; i < 3; i++) {
            e = top_entry(ids[shard][i], amounts[shard][i]);
            ws_top_insert(&t, &e);
        }
        CHECK_EQ_INT(ws_batch_top_put(b, "p", 1, &t), WS_OK);
        if (shard < 2)
            CHECK_EQ_INT(ws_batch_offset_set(b, "t/0", 3, 10 + shard),
                         WS_OK);
        CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    }
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_shards(v), 3);
    for (i = 0; i < 6; i++) {
        CHECK_EQ_INT(ws_view_wallet(v, wallets[i], 2, &got), WS_OK);
        CHECK_EQ_INT(got.transactions, i + 1);
    }
    CHECK_EQ_INT(ws_view_wallet(v, "zz", 2, &got), WS_ERR_NOT_FOUND);
    memset(&ts, 0, sizeof ts);
    CHECK_EQ_INT(ws_view_tops(v, "p", 1, seen_tops, &ts), WS_OK);
    CHECK_EQ_INT(ts.calls, 1);
    CHECK_EQ_INT(ts.n, 5);
    CHECK_EQ_STR(ts.ids[0], "i");
    CHECK_EQ_STR(ts.ids[1], "h");
    CHECK_EQ_STR(ts.ids[2], "g");
    CHECK_EQ_STR(ts.ids[3], "f");
    CHECK_EQ_STR(ts.ids[4], "e");
    CHECK_EQ_INT(ws_view_counts(v, &c), WS_OK);
    CHECK_EQ_INT(c.outcome[WS_APPLIED], 6);
    /* shard 2 has no offset of t/0 yet: nothing committed everywhere */
    CHECK_EQ_INT(ws_view_offset(v, "t/0", 3, &next), WS_ERR_NOT_FOUND);
    CHECK_EQ_INT(ws_view_shard_offset(v, 1, "t/0", 3, &next), WS_OK);
    CHECK_EQ_INT(next, 11);
    memset(&k, 0, sizeof k);
    CHECK_EQ_INT(ws_view_each_wallet(v, seen_wallet, &k), WS_OK);
    CHECK_EQ_INT(k.calls, 6);
    for (i = 0; i < 6; i++)
        CHECK_EQ_STR(k.keys[i], wallets[i]);
    memset(&k, 0, sizeof k);
    CHECK_EQ_INT(ws_view_each_product(v, seen_product, &k), WS_OK);
    CHECK_EQ_INT(k.calls, 1);   /* marked in every shard, listed once */
    ws_view_end(v);
    CHECK_EQ_INT(ws_store_begin_shard(s, 2, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_offset_set(b, "t/0", 3, 12), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_offset(v, "t/0", 3, &next), WS_OK);
    CHECK_EQ_INT(next, 10);
    ws_view_end(v);
    ws_store_close(s);
    /* the directory keeps its count: another is refused, 0 takes it */
    s = NULL;
    CHECK_EQ_INT(ws_store_open_shards(dir, WS_STORE_WRITE, 0, 2, &s, err),
                 WS_ERR_FORMAT);
    CHECK(strstr(err, "walletstream reshard") != NULL);
    CHECK_EQ_INT(ws_store_open_shards(dir, WS_STORE_WRITE, 0, -5, &s, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_shards(s), 3);
    ws_store_close(s);
}

/* An id applied by shard 0's record for shard 1 is in shard 0's outbox;
 * a crash before shard 1 remembered it loses nothing: the next open
 * delivers it and empties the outbox. */
static void test_outbox_is_delivered_at_open(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    unsigned char fp[16], got[16];
    ws_source_pos src = {2, 41}, src_got;
    ws_store *s = NULL;
    ws_batch *b;
    int found;

    memset(fp, 0xab, sizeof fp);
    fresh_dir(dir, sizeof dir, "outbox");
    CHECK_EQ_INT(ws_store_open_shards(dir, WS_STORE_WRITE, 0, 2, &s, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_outbox_next(s, 0, 1), 1);
    CHECK_EQ_INT(ws_store_begin_shard(s, 0, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_outbox_add(b, 1, 1, "tx-9", 4, fp, &src), WS_OK);
    CHECK_EQ_INT(ws_batch_outbox_add(b, 1, 2, "tx-10", 5, fp, NULL), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    ws_store_close(s);      /* "crash": shard 1 never saw them */
    s = NULL;
    CHECK_EQ_INT(ws_store_open_shards(dir, WS_STORE_WRITE, 0, 2, &s, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_outbox_next(s, 0, 1), 3);
    CHECK_EQ_INT(ws_store_begin_shard(s, 1, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_seen_get(b, "tx-9", 4, got, &src_got, &found),
                 WS_OK);
    CHECK_EQ_INT(found, 1);
    CHECK(memcmp(got, fp, 16) == 0);
    CHECK_EQ_INT(src_got.partition, 2);
    CHECK_EQ_INT(src_got.offset, 41);
    CHECK_EQ_INT(ws_batch_seen_get(b, "tx-10", 5, got, &src_got, &found),
                 WS_OK);
    CHECK_EQ_INT(found, 1);
    CHECK_EQ_INT(src_got.partition, -1);
    ws_batch_abort(b);
    /* delivered once: a second open finds the outbox empty */
    ws_store_close(s);
    s = NULL;
    CHECK_EQ_INT(ws_store_open_shards(dir, WS_STORE_WRITE, 0, 2, &s, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_outbox_next(s, 0, 1), 3);
    ws_store_close(s);
}

/* The wallets a batch kept from the last commit are the committed ones:
 * an aborted batch's changes are never read by the next batch. */
static void test_next_batch_never_reads_an_aborted_batch(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_batch *b;
    ws_wallet w = sample_wallet(), got;

    fresh_dir(dir, sizeof dir, "kept");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    w.transactions = 1;
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "k", 1, &w), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);

    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_get(b, "k", 1, &got), WS_OK);
    CHECK_EQ_INT(got.transactions, 1);
    got.transactions = 2;
    CHECK_EQ_INT(ws_batch_wallet_put(b, "k", 1, &got), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "new", 3, &got), WS_OK);
    CHECK_EQ_INT(ws_batch_flush(b), WS_OK);
    ws_batch_abort(b);

    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_get(b, "k", 1, &got), WS_OK);
    CHECK_EQ_INT(got.transactions, 1);
    CHECK_EQ_INT(ws_batch_wallet_get(b, "new", 3, &got), WS_ERR_NOT_FOUND);
    got.transactions = 3;
    CHECK_EQ_INT(ws_batch_wallet_put(b, "k", 1, &got), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_get(b, "k", 1, &got), WS_OK);
    CHECK_EQ_INT(got.transactions, 3);
    ws_batch_abort(b);
    ws_store_close(s);

    /* and what the next process reads is what was committed */
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_get(b, "k", 1, &got), WS_OK);
    CHECK_EQ_INT(got.transactions, 3);
    ws_batch_abort(b);
    ws_store_close(s);
}

/* A batch's page estimate grows with the keys it writes, and stops
 * growing with keys that land on pages it already counted. */
static void test_batch_pages_estimate_bounds_the_write_set(void)
{
    char dir[300], err[WS_STORE_ERR_MAX], key[32];
    ws_store *s = NULL;
    ws_batch *b;
    ws_wallet w = sample_wallet();
    size_t fresh, again;
    int i;

    fresh_dir(dir, sizeof dir, "pages");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_pages(b), 0);
    for (i = 0; i < 3200; i++) {
        int n = snprintf(key, sizeof key, "wallet-%06d", i);

        CHECK_EQ_INT(ws_batch_wallet_put(b, key, (size_t)n, &w), WS_OK);
    }
    /* an empty table: only what the inserts add, a page per 16 keys */
    fresh = ws_batch_pages(b);
    CHECK_EQ_INT(fresh, 200);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    /* the same 3,200 keys again: no more than the table's pages + 200 */
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    for (i = 0; i < 3200; i++) {
        int n = snprintf(key, sizeof key, "wallet-%06d", i);

        CHECK_EQ_INT(ws_batch_wallet_put(b, key, (size_t)n, &w), WS_OK);
    }
    again = ws_batch_pages(b);
    CHECK(again > 200 && again < 200 + 3200 / 10);
    ws_batch_abort(b);
    ws_store_close(s);
}

/* Wallets at the edges of every field survive the varint layout. */
/* A list merged twice, or with a list that holds some of its entries
 * (a group's instances both answering for a partition that moves), keeps
 * each entry once: before the fix an equal entry was inserted again next
 * to itself (test_group's paused-owner test: 17 entries for 16). */
static void test_top_merge_keeps_each_entry_once(void)
{
    static const char *const ids[6] = {"a", "b", "c", "d", "e", "f"};
    static const char *const amounts[6] = {"9", "8", "7", "7", "5", "1"};
    ws_top t, part;
    ws_top_set *set = calloc(1, sizeof *set);
    ws_top_entry e;
    unsigned i;

    CHECK(set != NULL);
    if (!set)
        return;
    memset(&t, 0, sizeof t);
    memcpy(t.currency, "EUR", 3);
    for (i = 0; i < 6; i++) {
        e = top_entry(ids[i], amounts[i]);
        CHECK_EQ_INT(ws_top_insert(&t, &e), i < 5);
        e = top_entry(ids[i], amounts[i]);
        CHECK_EQ_INT(ws_top_insert(&t, &e), 0);     /* already there */
    }
    CHECK_EQ_INT(t.n, 5);
    part = t;
    part.n = 2;                                     /* a, b only */
    CHECK_EQ_INT(ws_top_set_add(&t, set), 0);
    CHECK_EQ_INT(ws_top_set_add(&part, set), 0);
    CHECK_EQ_INT(ws_top_set_add(&t, set), 0);
    CHECK_EQ_INT(set->n, 1);
    CHECK_EQ_INT(set->t[0].n, 5);
    for (i = 0; i < 5; i++)
        CHECK_EQ_INT(memcmp(set->t[0].e[i].tx_id, ids[i], 1), 0);
    free(set);
}

static void test_wallet_record_edges_round_trip(void)
{
    char dir[300], err[WS_STORE_ERR_MAX], key[8];
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    ws_wallet w[6], got;
    uint8_t scale;
    int i;

    for (i = 0; i < 6; i++)
        w[i] = sample_wallet();
    ws_dec_parse_amount("-999999999999999.999999999999999999", 35, &w[0].balance,
                        &scale);
    ws_dec_parse_amount("999999999999999.999999999999999999", 34,
                        &w[0].total_debit, &scale);
    w[0].scale = 18;
    w[0].transactions = INT64_MAX;
    w[0].debit_days = INT32_MAX;
    w[0].history_head = UINT64_MAX;     /* the longest record */
    w[1].history_head = 1;
    w[1].balance.hi = 0;
    w[1].balance.lo = 0;
    w[1].transactions = INT64_MAX;
    w[1].debit_days = INT32_MAX;
    w[2].first_day = -719162;           /* 0001-01-01 */
    w[2].last_day = 2932896;            /* 9999-12-31 */
    w[2].last_event.sec = -62135596800;
    w[2].last_event.nsec = 999999999;
    w[3].balance.hi = -1;
    w[3].balance.lo = ~(uint64_t)0;     /* -1 unit */
    w[3].last_event.sec = (int64_t)w[3].first_day * 86400 - 1;
    w[4].balance.hi = INT64_MAX >> 20;  /* beyond 64 bits */
    w[4].balance.lo = 0x8000000000000000ULL;
    w[5].balance.hi = -(INT64_MAX >> 20);
    w[5].balance.lo = 1;
    fresh_dir(dir, sizeof dir, "edges");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    for (i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "e%d", i);
        CHECK_EQ_INT(ws_batch_wallet_put(b, key, 2, &w[i]), WS_OK);
    }
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    ws_store_close(s);
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_READ, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    for (i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "e%d", i);
        CHECK_EQ_INT(ws_view_wallet(v, key, 2, &got), WS_OK);
        CHECK(ws_dec_cmp(got.balance, w[i].balance) == 0);
        CHECK(ws_dec_cmp(got.total_debit, w[i].total_debit) == 0);
        CHECK_EQ_INT(got.scale, w[i].scale);
        CHECK_EQ_INT(got.transactions, w[i].transactions);
        CHECK_EQ_INT(got.first_day, w[i].first_day);
        CHECK_EQ_INT(got.last_day, w[i].last_day);
        CHECK_EQ_INT(got.debit_days, w[i].debit_days);
        CHECK_EQ_INT(got.last_event.sec, w[i].last_event.sec);
        CHECK_EQ_INT(got.last_event.nsec, w[i].last_event.nsec);
        CHECK(got.history_head == w[i].history_head);
        CHECK(memcmp(got.currency, w[i].currency, 3) == 0);
    }
    ws_view_end(v);
    ws_store_close(s);
}

/* A wallet record of data format 2 (72 fixed bytes, version 1) is read
 * as it was written, and rewritten in the new layout when it changes. */
static void test_wallet_record_of_format_2_is_read(void)
{
    char dir[300], path[400], err[WS_STORE_ERR_MAX];
    unsigned char rec[72] = {0};
    ws_store *s = NULL;
    ws_batch *b;
    ws_view *v;
    ws_wallet got;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {2, (void *)"v1"}, d = {sizeof rec, rec};
    int i;

    fresh_dir(dir, sizeof dir, "v1");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    ws_store_close(s);
    rec[0] = 1;
    memcpy(rec + 1, "EUR", 3);
    rec[4] = 2;
    rec[8] = 0x39;                      /* balance 12345 units: 123.45 */
    rec[9] = 0x30;
    for (i = 24; i < 40; i++)           /* total_debit -1 unit */
        rec[i] = 0xff;
    rec[40] = 7;                        /* transactions */
    rec[48] = 0x10;                     /* first_day 0x4d10 */
    rec[49] = 0x4d;
    rec[52] = 0x20;                     /* last_day 0x4d20 */
    rec[53] = 0x4d;
    rec[56] = 3;                        /* debit days */
    rec[60] = 5;                        /* nsec */
    rec[64] = 0x40;                     /* sec 0x40 */
    snprintf(path, sizeof path, "%s/state/0", dir);
    CHECK_EQ_INT(mdb_env_create(&env), 0);
    CHECK_EQ_INT(mdb_env_set_maxdbs(env, 16), 0);
    CHECK_EQ_INT(mdb_env_open(env, path, 0, 0644), 0);
    CHECK_EQ_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
    CHECK_EQ_INT(mdb_dbi_open(txn, "wallets", 0, &dbi), 0);
    CHECK_EQ_INT(mdb_put(txn, dbi, &k, &d, 0), 0);
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_wallet(v, "v1", 2, &got), WS_OK);
    ws_view_end(v);
    CHECK(memcmp(got.currency, "EUR", 3) == 0);
    CHECK_EQ_INT(got.scale, 2);
    CHECK_EQ_INT(got.balance.lo, 12345);
    CHECK_EQ_INT(got.balance.hi, 0);
    CHECK_EQ_INT(got.total_debit.hi, -1);
    CHECK_EQ_INT(got.transactions, 7);
    CHECK_EQ_INT(got.first_day, 0x4d10);
    CHECK_EQ_INT(got.last_day, 0x4d20);
    CHECK_EQ_INT(got.debit_days, 3);
    CHECK_EQ_INT(got.last_event.sec, 0x40);
    CHECK_EQ_INT(got.last_event.nsec, 5);
    got.transactions = 8;
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "v1", 2, &got), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_wallet(v, "v1", 2, &got), WS_OK);
    ws_view_end(v);
    CHECK_EQ_INT(got.transactions, 8);
    CHECK_EQ_INT(got.balance.lo, 12345);
    ws_store_close(s);

    /* the new layout is smaller */
    CHECK_EQ_INT(mdb_env_create(&env), 0);
    CHECK_EQ_INT(mdb_env_set_maxdbs(env, 16), 0);
    CHECK_EQ_INT(mdb_env_open(env, path, MDB_RDONLY, 0644), 0);
    CHECK_EQ_INT(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    CHECK_EQ_INT(mdb_dbi_open(txn, "wallets", 0, &dbi), 0);
    CHECK_EQ_INT(mdb_get(txn, dbi, &k, &d), 0);
    CHECK(d.mv_size < 32);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* ------------------------------------------------------- statements */

static ws_history_entry line_of(int64_t seq, int64_t sec, const char *tx)
{
    ws_history_entry h;

    memset(&h, 0, sizeof h);
    h.seq = seq;
    h.type = (int)(seq % 4);
    h.amount.lo = (uint64_t)seq * 1000000000000000000ull;
    h.amount.hi = 0;
    h.scale = 2;
    h.balance.lo = (uint64_t)-(int64_t)seq;     /* negative: -seq units */
    h.balance.hi = -1;
    h.balance_scale = 18;
    h.ts.sec = sec;
    h.ts.nsec = 123456789;
    h.src.partition = (int32_t)(seq % 3) - 1;   /* -1 included */
    h.src.offset = seq * 1000 - 1;
    h.tx_id_len = (uint16_t)strlen(tx);
    memcpy(h.tx_id, tx, h.tx_id_len);
    h.product_id_len = 255;
    memset(h.product_id, 'p', 255);
    return h;
}

static int same_line(const ws_history_entry *a, const ws_history_entry *b)
{
    return a->seq == b->seq && a->type == b->type &&
           a->amount.lo == b->amount.lo && a->amount.hi == b->amount.hi &&
           a->scale == b->scale && a->balance.lo == b->balance.lo &&
           a->balance.hi == b->balance.hi &&
           a->balance_scale == b->balance_scale && a->ts.sec == b->ts.sec &&
           a->ts.nsec == b->ts.nsec &&
           a->src.partition == b->src.partition &&
           a->src.offset == b->src.offset && a->tx_id_len == b->tx_id_len &&
           memcmp(a->tx_id, b->tx_id, a->tx_id_len) == 0 &&
           a->product_id_len == b->product_id_len &&
           memcmp(a->product_id, b->product_id, a->product_id_len) == 0;
}

struct lines {
    int64_t seq[16];
    uint64_t pos[16];
    ws_history_entry first;
    int n, stop_at;
};

static int collect_line(const ws_history_entry *h, void *arg)
{
    struct lines *l = arg;

    if (l->n == 0)
        l->first = *h;
    if (l->n < 16) {
        l->seq[l->n] = h->seq;
        l->pos[l->n] = h->pos;
    }
    l->n++;
    return l->stop_at && l->n == l->stop_at;
}

/* Appends line seq of wallet id in its shard's batch: its head moves. */
static void add_line(ws_store *s, const char *id, uint64_t *head,
                     ws_history_entry h, int commit)
{
    ws_batch *b;

    CHECK_EQ_INT(ws_store_begin_shard(s, ws_store_shard_of(s, id, strlen(id)),
                                      &b), WS_OK);
    CHECK_EQ_INT(ws_batch_history_add(b, id, strlen(id), &h, head), WS_OK);
    if (commit) {
        CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    } else {
        CHECK_EQ_INT(ws_batch_flush(b), WS_OK);
        ws_batch_abort(b);
    }
}

/* Lines round-trip exactly, link back newest to oldest, page from any
 * line, stay with their wallet (a line of another wallet is refused as
 * a start), and an aborted batch leaves none (nor moves the next
 * position). */
static void test_statement_lines_round_trip_and_link(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_view *v;
    struct lines l;
    ws_history_entry h;
    uint64_t head = 0, other = 0, aborted;
    int days, i;

    fresh_dir(dir, sizeof dir, "history");
    CHECK_EQ_INT(ws_store_open_shards(dir, WS_STORE_WRITE, 0, 2, &s, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_set_history(s, WS_HISTORY_ALL), WS_OK);
    for (i = 1; i <= 5; i++)
        add_line(s, "w", &head, line_of(i, 1700000000 + i, "tx"), 1);
    add_line(s, "ww", &other, line_of(1, 1700000000, "other"), 1);
    aborted = head;
    add_line(s, "w", &aborted, line_of(6, 1700000006, "aborted"), 0);
    CHECK(aborted != head);

    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_history_kept(v, &days), WS_OK);
    CHECK_EQ_INT(days, WS_HISTORY_ALL);
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(ws_view_history(v, "w", 1, head, collect_line, &l), WS_OK);
    CHECK_EQ_INT(l.n, 5);
    CHECK_EQ_INT(l.seq[0], 5);
    CHECK_EQ_INT(l.seq[4], 1);
    CHECK(l.pos[0] == head && l.pos[4] < l.pos[3]);
    h = line_of(5, 1700000005, "tx");
    CHECK(same_line(&l.first, &h));
    memset(&l, 0, sizeof l);
    l.stop_at = 2;
    CHECK_EQ_INT(ws_view_history(v, "w", 1, head, collect_line, &l), 1);
    memset(&l, 0, sizeof(l));
    CHECK_EQ_INT(ws_view_history(v, "w", 1, 2, collect_line, &l), WS_OK);
    CHECK_EQ_INT(l.n, 2);       /* from position 2 back: seq 2, then 1 */
    CHECK_EQ_INT(l.seq[0], 2);
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(ws_view_history(v, "ww", 2, other, collect_line, &l), WS_OK);
    CHECK_EQ_INT(l.n, 1);
    if (ws_store_shard_of(s, "w", 1) == ws_store_shard_of(s, "ww", 2)) {
        /* a start that is another wallet's line */
        CHECK_EQ_INT(ws_view_history(v, "w", 1, other, collect_line, &l),
                     WS_ERR_NOT_FOUND);
    }
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(ws_view_history(v, "w", 1, aborted, collect_line, &l), WS_OK);
    CHECK_EQ_INT(l.n, 0);       /* the aborted line is not there */
    ws_view_end(v);
    /* the next position did not move with the aborted batch */
    aborted = head;
    add_line(s, "w", &aborted, line_of(6, 1700000006, "again"), 1);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(ws_view_history(v, "w", 1, aborted, collect_line, &l), WS_OK);
    CHECK_EQ_INT(l.n, 6);
    ws_view_end(v);
    ws_store_close(s);
}

/* --history-days drops, at commit, the oldest lines whose day is more
 * than D before the batch's latest; off drops them all and says so, and
 * positions go on after it (a wallet's old head never names a new line). */
static void test_statement_days_and_off(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;
    ws_view *v;
    struct lines l;
    uint64_t head = 0, before;
    int days, i;

    fresh_dir(dir, sizeof dir, "history-days");
    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_set_history(s, 2), WS_OK);
    for (i = 1; i <= 4; i++)    /* days 0, 1, 2, 3: one batch each */
        add_line(s, "w", &head, line_of(i, (int64_t)(i - 1) * 86400, "tx"), 1);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_history_kept(v, &days), WS_OK);
    CHECK_EQ_INT(days, 2);
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(ws_view_history(v, "w", 1, head, collect_line, &l), WS_OK);
    CHECK_EQ_INT(l.n, 3);       /* day 0 went when day 3 came */
    CHECK_EQ_INT(l.seq[2], 2);
    ws_view_end(v);
    ws_store_close(s);

    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_set_history(s, WS_HISTORY_OFF), WS_OK);
    before = head;
    add_line(s, "w", &head, line_of(5, 4 * 86400, "tx"), 1);
    CHECK(head == before);      /* off: nothing appended */
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_history_kept(v, &days), WS_OK);
    CHECK_EQ_INT(days, WS_HISTORY_OFF);
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(ws_view_history(v, "w", 1, head, collect_line, &l), WS_OK);
    CHECK_EQ_INT(l.n, 0);
    ws_view_end(v);
    ws_store_close(s);

    CHECK_EQ_INT(ws_store_open(dir, WS_STORE_WRITE, 0, &s, err), WS_OK);
    CHECK_EQ_INT(ws_store_set_history(s, WS_HISTORY_ALL), WS_OK);
    add_line(s, "w", &head, line_of(6, 5 * 86400, "tx"), 1);
    CHECK(head > before);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(ws_view_history(v, "w", 1, head, collect_line, &l), WS_OK);
    CHECK_EQ_INT(l.n, 1);       /* on again: from the next line on */
    ws_view_end(v);
    ws_store_close(s);
}

/* Applies each change of a sealed batch to another store's batch. */
static int copy_change(void *arg, const void *key, size_t kn,
                       const void *value, size_t vn)
{
    return ws_batch_apply_change(arg, key, kn, value, vn);
}

/* A group's instance (issue 16): a journaled shard's batches, applied
 * change by change to another directory's shard, give the same state
 * (wallets, tops, counters, offsets, statement lines and their next
 * position, a released claim); a wipe empties it; marks stay outside
 * the journal; views read only the owned shards. */
static void test_journal_copies_a_shard_exactly(void)
{
    char a[300], c[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL, *t = NULL;
    ws_batch *b, *tb;
    ws_view *v;
    ws_wallet w = sample_wallet(), got;
    ws_counts cn;
    ws_top top;
    ws_top_entry te;
    struct tops_seen ts;
    struct lines l;
    unsigned char fp[16], existing[16];
    uint64_t head = 0, mark;
    int64_t next;
    int round, added, claimed;
    size_t changes;

    fresh_dir(a, sizeof a, "journal-a");
    fresh_dir(c, sizeof c, "journal-c");
    CHECK_EQ_INT(ws_store_open_shards(a, WS_STORE_WRITE, 0, 2, &s, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_open_shards(c, WS_STORE_WRITE, 0, 2, &t, err),
                 WS_OK);
    CHECK_EQ_INT(ws_store_set_history(s, WS_HISTORY_ALL), WS_OK);
    CHECK_EQ_INT(ws_store_set_history(t, WS_HISTORY_ALL), WS_OK);
    ws_store_journal(s, 1);
    memset(fp, 7, sizeof fp);
    for (round = 0; round < 3; round++) {
        int k = ws_store_shard_of(s, "w1", 2);
        ws_history_entry h;

        CHECK_EQ_INT(ws_store_begin_shard(s, k, &b), WS_OK);
        w.transactions = round + 1;
        memset(&h, 0, sizeof h);
        h.seq = round + 1;
        h.ts.sec = 1715431800 + round;
        h.tx_id_len = 2;
        memcpy(h.tx_id, round == 0 ? "t0" : round == 1 ? "t1" : "t2", 2);
        CHECK_EQ_INT(ws_batch_history_add(b, "w1", 2, &h, &head), WS_OK);
        w.history_head = head;
        CHECK_EQ_INT(ws_batch_wallet_put(b, "w1", 2, &w), WS_OK);
        CHECK_EQ_INT(ws_batch_product_mark(b, "p", 1, &added), WS_OK);
        CHECK_EQ_INT(ws_batch_debit_day_add(b, "w1", 2, 19000 + round % 2,
                                            &added), WS_OK);
        memset(&top, 0, sizeof top);
        memcpy(top.currency, "USD", 3);
        te = top_entry(round == 0 ? "a" : round == 1 ? "b" : "c",
                       round == 0 ? "10" : round == 1 ? "30" : "20");
        CHECK_EQ_INT(ws_batch_top_get(b, "p", 1, "USD", &top) == WS_OK ||
                         1, 1);
        ws_top_insert(&top, &te);
        CHECK_EQ_INT(ws_batch_top_put(b, "p", 1, &top), WS_OK);
        fp[0] = (unsigned char)round;
        CHECK_EQ_INT(ws_batch_seen_claim(b, round == 2 ? "x" : "y", 1, fp,
                                         &claimed, existing), WS_OK);
        if (round == 2)     /* claimed, then released: no longer there */
            CHECK_EQ_INT(ws_batch_seen_release(b, "x", 1), WS_OK);
        ws_batch_count(b, WS_APPLIED, WS_R_NONE);
        CHECK_EQ_INT(ws_batch_offset_set(b, "t/1", 3, 100 + round), WS_OK);
        CHECK_EQ_INT(ws_batch_seal(b), WS_OK);
        changes = ws_batch_changes(b);
        CHECK(changes >= 6);
        CHECK_EQ_INT(ws_store_begin_shard(t, k, &tb), WS_OK);
        CHECK_EQ_INT(ws_batch_each_change(b, copy_change, tb), WS_OK);
        CHECK_EQ_INT(ws_batch_mark_set(tb, "state_next", 42 + round), WS_OK);
        CHECK_EQ_INT(ws_batch_commit(tb), WS_OK);
        CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    }
    CHECK_EQ_INT(ws_store_view(t, &v), WS_OK);
    CHECK_EQ_INT(ws_view_wallet(v, "w1", 2, &got), WS_OK);
    CHECK_EQ_INT(got.transactions, 3);
    CHECK(got.history_head == head);
    /* key-only records (a product, debit days) are records, not
     * deletions */
    CHECK_EQ_INT(ws_view_product(v, "p", 1), WS_OK);
    {
        ws_state_sizes z;

        CHECK_EQ_INT(ws_view_sizes(v, &z), WS_OK);
        CHECK(z.entries[3] == 2);   /* debit_days */
        CHECK(z.entries[1] == 1);   /* products */
    }
    CHECK_EQ_INT(ws_dec_cmp(got.balance, w.balance), 0);
    memset(&ts, 0, sizeof ts);
    CHECK_EQ_INT(ws_view_tops(v, "p", 1, seen_tops, &ts), WS_OK);
    CHECK_EQ_INT(ts.n, 3);
    CHECK_EQ_STR(ts.ids[0], "b");
    CHECK_EQ_INT(ws_view_counts(v, &cn), WS_OK);
    CHECK_EQ_INT(cn.outcome[WS_APPLIED], 3);
    CHECK_EQ_INT(ws_view_offset(v, "t/1", 3, &next), WS_ERR_NOT_FOUND);
    CHECK_EQ_INT(ws_view_shard_offset(v, ws_store_shard_of(t, "w1", 2),
                                      "t/1", 3, &next), WS_OK);
    CHECK_EQ_INT(next, 102);
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(ws_view_history(v, "w1", 2, head, collect_line, &l),
                 WS_OK);
    CHECK_EQ_INT(l.n, 3);
    ws_view_end(v);
    CHECK_EQ_INT(ws_store_mark_get(t, ws_store_shard_of(t, "w1", 2),
                                   "state_next", &mark), WS_OK);
    CHECK(mark == 44);
    /* the copy's next statement line continues the log */
    {
        int k = ws_store_shard_of(t, "w1", 2);
        ws_history_entry h;

        memset(&h, 0, sizeof h);
        h.seq = 4;
        CHECK_EQ_INT(ws_store_begin_shard(t, k, &tb), WS_OK);
        CHECK_EQ_INT(ws_batch_history_add(tb, "w1", 2, &h, &head), WS_OK);
        CHECK(h.pos == 4);
        ws_batch_abort(tb);
        /* the released claim is gone, the other one there */
        CHECK_EQ_INT(ws_store_begin_shard(t, k, &tb), WS_OK);
        CHECK_EQ_INT(ws_batch_seen_claim(tb, "x", 1, fp, &claimed,
                                         existing), WS_OK);
        CHECK_EQ_INT(claimed, 1);
        CHECK_EQ_INT(ws_batch_seen_claim(tb, "y", 1, fp, &claimed,
                                         existing), WS_OK);
        CHECK_EQ_INT(claimed, 0);
        ws_batch_abort(tb);
        /* a shard not owned is not read; a wipe empties it */
        ws_store_set_owned(t, (uint64_t)1 << (1 - k));
        CHECK_EQ_INT(ws_store_view(t, &v), WS_OK);
        CHECK_EQ_INT(ws_view_wallet(v, "w1", 2, &got), WS_ERR_NOT_OWNED);
        CHECK_EQ_INT(ws_view_counts(v, &cn), WS_OK);
        CHECK_EQ_INT(cn.outcome[WS_APPLIED], 0);
        ws_view_end(v);
        ws_store_set_owned(t, 3);
        CHECK_EQ_INT(ws_store_begin_shard(t, k, &tb), WS_OK);
        CHECK_EQ_INT(ws_batch_wipe(tb), WS_OK);
        CHECK_EQ_INT(ws_batch_commit(tb), WS_OK);
        CHECK_EQ_INT(ws_store_view(t, &v), WS_OK);
        CHECK_EQ_INT(ws_view_wallet(v, "w1", 2, &got), WS_ERR_NOT_FOUND);
        CHECK_EQ_INT(ws_view_counts(v, &cn), WS_OK);
        CHECK_EQ_INT(cn.outcome[WS_APPLIED], 0);
        ws_view_end(v);
    }
    /* a change of no table is refused */
    CHECK_EQ_INT(ws_store_begin_shard(t, 0, &tb), WS_OK);
    CHECK_EQ_INT(ws_batch_apply_change(tb, "\x7fk", 2, "v", 1),
                 WS_ERR_CORRUPT);
    ws_batch_abort(tb);
    ws_store_close(s);
    ws_store_close(t);
}

int main(void)
{
    char tmpl[] = "/tmp/ws-test-store-XXXXXX";
    char cmd[300];

    if (!mkdtemp(tmpl))
        return 2;
    snprintf(root, sizeof root, "%s", tmpl);
    RUN(test_new_directory_gets_a_format_marker);
    RUN(test_foreign_directory_is_refused_untouched);
    RUN(test_directory_with_only_the_brokers_files_is_new);
    RUN(test_other_format_version_is_refused_untouched);
    RUN(test_garbled_marker_is_refused);
    RUN(test_second_writer_is_refused);
    RUN(test_reader_of_missing_directory_fails_clearly);
    RUN(test_batch_is_visible_only_after_commit);
    RUN(test_wallet_record_round_trips);
    RUN(test_wallet_record_edges_round_trip);
    RUN(test_wallet_record_of_format_2_is_read);
    RUN(test_top_records_iterate_by_currency_and_product);
    RUN(test_top_merge_keeps_each_entry_once);
    RUN(test_counters_accumulate_across_batches_and_restarts);
    RUN(test_lost_counts_commit_with_the_offset);
    RUN(test_debit_days_are_a_set);
    RUN(test_batch_working_set_claims_and_tops);
    RUN(test_map_limit_is_reported_as_full);
    RUN(test_whole_tables_iterate_in_key_order);
    RUN(test_shards_read_as_one_state);
    RUN(test_outbox_is_delivered_at_open);
    RUN(test_next_batch_never_reads_an_aborted_batch);
    RUN(test_batch_pages_estimate_bounds_the_write_set);
    RUN(test_statement_lines_round_trip_and_link);
    RUN(test_statement_days_and_off);
    RUN(test_journal_copies_a_shard_exactly);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        printf("  cannot remove %s\n", root);
    return WSTEST_END();
}
