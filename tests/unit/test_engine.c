/*
 * test_engine.c - outcomes and figures (SPEC §3, §4): dedup, conflicting
 * duplicates, currency per wallet, exact aggregates and overflow, the top
 * 5 and its ties, several currencies per product, scale, and the order
 * independence of the average.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "wstest.h"

static char root[256];
static int dirs;
static ws_decoder *dec;

static ws_store *fresh_store(void)
{
    char dir[300], err[WS_STORE_ERR_MAX];
    ws_store *s = NULL;

    snprintf(dir, sizeof dir, "%s/s%d", root, dirs++);
    if (ws_store_open(dir, WS_STORE_WRITE, 0, &s, err) != WS_OK)
        printf("  cannot open %s: %s\n", dir, err);
    return s;
}

/* One event as a JSON line. */
static const char *ev(const char *id, const char *wallet, const char *product,
                      const char *type, const char *amount,
                      const char *currency, const char *ts)
{
    static char buf[1024];

    snprintf(buf, sizeof buf,
             "{\"transaction_id\":\"%s\",\"wallet_id\":\"%s\","
             "\"product_id\":\"%s\",\"type\":\"%s\",\"amount\":%s,"
             "\"currency\":\"%s\",\"timestamp\":\"%s\"}",
             id, wallet, product, type, amount, currency, ts);
    return buf;
}

/* Applies one record in its own committed batch. */
static ws_result apply(ws_store *s, const char *line)
{
    ws_batch *b;
    ws_result res;

    memset(&res, 0, sizeof res);
    res.outcome = WS_OUTCOME_COUNT;
    if (ws_store_begin(s, &b) != WS_OK)
        return res;
    if (ws_engine_record(b, dec, line, strlen(line), &res) != WS_OK) {
        ws_batch_abort(b);
        res.outcome = WS_OUTCOME_COUNT;
        return res;
    }
    if (ws_batch_commit(b) != WS_OK)
        res.outcome = WS_OUTCOME_COUNT;
    return res;
}

static ws_wallet wallet(ws_store *s, const char *id)
{
    ws_view *v;
    ws_wallet w;

    memset(&w, 0, sizeof w);
    if (ws_store_view(s, &v) == WS_OK) {
        if (ws_view_wallet(v, id, strlen(id), &w) != WS_OK)
            printf("  wallet %s not found\n", id);
        ws_view_end(v);
    }
    return w;
}

static const char *dec_text(ws_dec d, unsigned scale)
{
    static char buf[4][WS_DEC_TEXT_MAX];
    static int k;

    k = (k + 1) % 4;
    ws_dec_format(d, scale, buf[k]);
    return buf[k];
}

struct tops {
    int n;
    char line[16][600];
};

static int collect(const ws_top *t, void *arg)
{
    struct tops *c = arg;
    unsigned i;

    for (i = 0; i < t->n && c->n < 16; i++, c->n++)
        snprintf(c->line[c->n], sizeof c->line[0], "%.*s %s %.3s",
                 (int)t->e[i].tx_id_len, t->e[i].tx_id,
                 dec_text(t->e[i].amount, t->e[i].scale), t->currency);
    return 0;
}

static struct tops tops(ws_store *s, const char *product)
{
    struct tops c;
    ws_view *v;

    memset(&c, 0, sizeof c);
    if (ws_store_view(s, &v) == WS_OK) {
        ws_view_tops(v, product, strlen(product), collect, &c);
        ws_view_end(v);
    }
    return c;
}

#define T0 "2024-05-11T12:50:00Z"

static void test_balance_is_the_exact_signed_sum(void)
{
    ws_store *s = fresh_store();
    ws_wallet w;

    apply(s, ev("1", "b", "p", "credit", "15.00", "USD", T0));
    apply(s, ev("2", "b", "p", "debit", "10.00", "USD", T0));
    apply(s, ev("3", "b", "p", "cancelDebit", "5.00", "USD", T0));
    apply(s, ev("4", "b", "p", "cancelCredit", "0.1", "USD", T0));
    apply(s, ev("5", "b", "p", "credit", "0.2", "USD", T0));
    w = wallet(s, "b");
    CHECK_EQ_STR(dec_text(w.balance, w.scale), "10.10");
    CHECK_EQ_STR(dec_text(w.total_debit, w.scale), "5.00");
    CHECK_EQ_INT(w.transactions, 5);
    CHECK_EQ_INT(w.scale, 2);
    ws_store_close(s);
}

static void test_balance_may_go_negative(void)
{
    ws_store *s = fresh_store();
    ws_wallet w;

    apply(s, ev("1", "b", "p", "debit", "1.00", "USD", T0));
    w = wallet(s, "b");
    CHECK_EQ_STR(dec_text(w.balance, w.scale), "-1.00");
    ws_store_close(s);
}

static void test_exact_duplicate_is_skipped(void)
{
    ws_store *s = fresh_store();
    ws_result r;
    ws_wallet w;

    CHECK_EQ_INT(apply(s, ev("1", "b", "p", "credit", "10.00", "USD", T0)).outcome,
                 WS_APPLIED);
    r = apply(s, ev("1", "b", "p", "credit", "10.00", "USD", T0));
    CHECK_EQ_INT(r.outcome, WS_DUPLICATE);
    /* same value written differently, same instant written differently */
    r = apply(s, ev("1", "b", "p", "credit", "1.0e1", "usd",
                    "2024-05-11T14:50:00+02:00"));
    CHECK_EQ_INT(r.outcome, WS_DUPLICATE);
    w = wallet(s, "b");
    CHECK_EQ_STR(dec_text(w.balance, w.scale), "10.00");
    CHECK_EQ_INT(w.transactions, 1);
    ws_store_close(s);
}

static void test_same_id_other_content_is_a_conflicting_duplicate(void)
{
    ws_store *s = fresh_store();
    ws_result r;

    apply(s, ev("1", "b", "p", "credit", "10.00", "USD", T0));
    r = apply(s, ev("1", "b", "p", "credit", "11.00", "USD", T0));
    CHECK_EQ_INT(r.outcome, WS_REJECTED);
    CHECK_EQ_INT(r.reason, WS_R_CONFLICTING_DUPLICATE);
    CHECK_EQ_INT(apply(s, ev("1", "c", "p", "credit", "10.00", "USD", T0)).reason,
                 WS_R_CONFLICTING_DUPLICATE);
    CHECK_EQ_INT(apply(s, ev("1", "b", "q", "credit", "10.00", "USD", T0)).reason,
                 WS_R_CONFLICTING_DUPLICATE);
    CHECK_EQ_INT(apply(s, ev("1", "b", "p", "debit", "10.00", "USD", T0)).reason,
                 WS_R_CONFLICTING_DUPLICATE);
    CHECK_EQ_INT(apply(s, ev("1", "b", "p", "credit", "10.00", "USD",
                             "2024-05-11T12:50:00.000000001Z")).reason,
                 WS_R_CONFLICTING_DUPLICATE);
    ws_store_close(s);
}

static void test_rejected_transaction_id_is_not_remembered(void)
{
    ws_store *s = fresh_store();

    apply(s, ev("1", "b", "p", "credit", "10.00", "USD", T0));
    CHECK_EQ_INT(apply(s, ev("2", "b", "p", "credit", "1", "EUR", T0)).reason,
                 WS_R_CURRENCY_MISMATCH);
    /* id 2 was rejected, not applied: it is free to apply later */
    CHECK_EQ_INT(apply(s, ev("2", "b", "p", "credit", "1.00", "USD", T0)).outcome,
                 WS_APPLIED);
    ws_store_close(s);
}

static void test_wallet_currency_is_its_first_applied_currency(void)
{
    ws_store *s = fresh_store();
    ws_result r;
    ws_wallet w;

    apply(s, ev("1", "b", "p", "credit", "10.00", "usd", T0));
    r = apply(s, ev("2", "b", "p", "credit", "10.00", "EUR", T0));
    CHECK_EQ_INT(r.reason, WS_R_CURRENCY_MISMATCH);
    CHECK(strstr(r.detail, "USD") != NULL);
    w = wallet(s, "b");
    CHECK(memcmp(w.currency, "USD", 3) == 0);
    CHECK_EQ_INT(w.transactions, 1);
    /* another wallet may use another currency */
    CHECK_EQ_INT(apply(s, ev("3", "c", "p", "credit", "1", "EUR", T0)).outcome,
                 WS_APPLIED);
    ws_store_close(s);
}

static void test_balance_overflow_is_rejected_not_wrapped(void)
{
    ws_store *s = fresh_store();
    ws_batch *b;
    ws_wallet w;
    ws_result r;

    apply(s, ev("1", "b", "p", "credit", "1", "USD", T0));
    /* Put the wallet at the largest representable balance. */
    w = wallet(s, "b");
    w.balance.hi = INT64_MAX;
    w.balance.lo = UINT64_MAX;
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "b", 1, &w), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);

    r = apply(s, ev("2", "b", "p", "credit", "0.000000000000000001", "USD",
                    T0));
    CHECK_EQ_INT(r.outcome, WS_REJECTED);
    CHECK_EQ_INT(r.reason, WS_R_AGGREGATE_OVERFLOW);
    CHECK_EQ_INT(apply(s, ev("3", "b", "p", "cancelDebit", "1", "USD", T0)).reason,
                 WS_R_AGGREGATE_OVERFLOW);
    /* unchanged, and a debit still applies */
    CHECK_EQ_INT(wallet(s, "b").transactions, 1);
    CHECK_EQ_INT(apply(s, ev("4", "b", "p", "debit", "1", "USD", T0)).outcome,
                 WS_APPLIED);
    ws_store_close(s);
}

static void test_total_debit_overflow_is_rejected(void)
{
    ws_store *s = fresh_store();
    ws_batch *b;
    ws_wallet w;

    apply(s, ev("1", "b", "p", "credit", "1", "USD", T0));
    w = wallet(s, "b");
    w.total_debit.hi = INT64_MIN; /* most negative total debit */
    w.total_debit.lo = 0;
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_batch_wallet_put(b, "b", 1, &w), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    CHECK_EQ_INT(apply(s, ev("2", "b", "p", "cancelDebit", "1", "USD", T0)).reason,
                 WS_R_AGGREGATE_OVERFLOW);
    /* the rejected event left the balance alone too */
    w = wallet(s, "b");
    CHECK_EQ_STR(dec_text(w.balance, w.scale), "1");
    ws_store_close(s);
}

static void test_average_inputs_follow_days_and_debit_days(void)
{
    ws_store *s = fresh_store();
    ws_wallet w;

    apply(s, ev("1", "b", "p", "credit", "25.00", "USD", "2024-02-11T12:50:00Z"));
    apply(s, ev("2", "b", "p", "debit", "10.00", "USD", T0));
    apply(s, ev("3", "b", "p", "cancelDebit", "5.00", "USD",
                "2024-05-11T23:59:59.999999999Z"));
    apply(s, ev("4", "b", "p", "debit", "1.00", "USD", "2024-03-01T00:00:00Z"));
    /* UTC day: 23:30-01:00 is the next day in UTC */
    apply(s, ev("5", "b", "p", "credit", "1.00", "USD",
                "2024-05-11T23:30:00-01:00"));
    w = wallet(s, "b");
    CHECK_EQ_INT(w.debit_days, 2);
    CHECK_EQ_INT(w.last_day - w.first_day + 1, 92);
    CHECK_EQ_STR(dec_text(w.total_debit, w.scale), "6.00");
    ws_store_close(s);
}

static void test_average_does_not_depend_on_arrival_order(void)
{
    char copies[5][1024];
    ws_store *a = fresh_store(), *z = fresh_store();
    ws_wallet wa, wz;
    int i;

    /* ev() reuses one buffer: copy each line */
    snprintf(copies[0], sizeof copies[0], "%s",
             ev("1", "b", "p", "debit", "3.333", "USD", "2024-01-03T00:00:00Z"));
    snprintf(copies[1], sizeof copies[1], "%s",
             ev("2", "b", "p", "credit", "100", "USD", "2024-01-01T00:00:00Z"));
    snprintf(copies[2], sizeof copies[2], "%s",
             ev("3", "b", "p", "cancelDebit", "1.1", "USD", "2024-01-09T10:00:00Z"));
    snprintf(copies[3], sizeof copies[3], "%s",
             ev("4", "b", "p", "debit", "7", "USD", "2024-01-03T05:00:00Z"));
    snprintf(copies[4], sizeof copies[4], "%s",
             ev("5", "b", "p", "debit", "0.000001", "USD",
                "2024-01-05T00:00:00+05:00"));
    for (i = 0; i < 5; i++)
        apply(a, copies[i]);
    for (i = 4; i >= 0; i--)
        apply(z, copies[i]);
    wa = wallet(a, "b");
    wz = wallet(z, "b");
    CHECK(memcmp(&wa, &wz, sizeof wa) == 0);
    CHECK_EQ_INT(wa.debit_days, 3);
    CHECK_EQ_INT(wa.scale, 6);
    {
        char avg[WS_DEC_TEXT_MAX];
        /* (3.333 + 7 + 0.000001 - 1.1) / 9 days = 1.025889 */
        ws_dec_format_average(wa.total_debit,
                              (int64_t)wa.last_day - wa.first_day + 1,
                              wa.scale, avg);
        CHECK_EQ_STR(avg, "1.025889");
    }
    ws_store_close(a);
    ws_store_close(z);
}

static void test_scale_is_the_largest_applied_scale(void)
{
    ws_store *s = fresh_store();
    ws_wallet w;

    apply(s, ev("1", "b", "p", "credit", "5", "USD", T0));
    CHECK_EQ_INT(wallet(s, "b").scale, 0);
    apply(s, ev("2", "b", "p", "credit", "5e-3", "USD", T0));
    apply(s, ev("3", "b", "p", "credit", "1.50", "USD", T0));
    /* rejected amounts do not count */
    apply(s, ev("4", "b", "p", "credit", "1.0000", "EUR", T0));
    w = wallet(s, "b");
    CHECK_EQ_INT(w.scale, 3);
    CHECK_EQ_STR(dec_text(w.balance, w.scale), "6.505");
    ws_store_close(s);
}

static void test_top_keeps_the_five_largest_credits(void)
{
    ws_store *s = fresh_store();
    struct tops t;
    char id[8], amount[8];
    int i;

    for (i = 1; i <= 8; i++) {
        snprintf(id, sizeof id, "t%d", i);
        snprintf(amount, sizeof amount, "%d.0", (i * 37) % 11);
        apply(s, ev(id, "w", "p", "credit", amount, "USD", T0));
    }
    /* amounts: t1 4, t2 8, t3 1, t4 5, t5 9, t6 2, t7 6, t8 10 */
    apply(s, ev("d1", "w", "p", "debit", "100", "USD", T0));
    apply(s, ev("c1", "w", "p", "cancelCredit", "100", "USD", T0));
    t = tops(s, "p");
    CHECK_EQ_INT(t.n, 5);
    CHECK_EQ_STR(t.line[0], "t8 10.0 USD");
    CHECK_EQ_STR(t.line[1], "t5 9.0 USD");
    CHECK_EQ_STR(t.line[2], "t2 8.0 USD");
    CHECK_EQ_STR(t.line[3], "t7 6.0 USD");
    CHECK_EQ_STR(t.line[4], "t4 5.0 USD");
    ws_store_close(s);
}

static void test_top_ties_go_to_earlier_time_then_smaller_id(void)
{
    ws_store *s = fresh_store();
    struct tops t;

    apply(s, ev("t-b", "w", "p", "credit", "7.00", "USD", "2024-05-11T10:00:00Z"));
    apply(s, ev("t-c", "w", "p", "credit", "7.00", "USD", "2024-05-11T09:00:00Z"));
    apply(s, ev("t-a", "w", "p", "credit", "7.0", "USD", "2024-05-11T09:00:00Z"));
    apply(s, ev("t-", "w", "p", "credit", "7", "USD", "2024-05-11T09:00:00Z"));
    t = tops(s, "p");
    CHECK_EQ_INT(t.n, 4);
    CHECK_EQ_STR(t.line[0], "t- 7 USD");      /* prefix sorts first */
    CHECK_EQ_STR(t.line[1], "t-a 7.0 USD");
    CHECK_EQ_STR(t.line[2], "t-c 7.00 USD");
    CHECK_EQ_STR(t.line[3], "t-b 7.00 USD");
    ws_store_close(s);
}

static void test_top_is_kept_per_currency(void)
{
    ws_store *s = fresh_store();
    struct tops t;

    apply(s, ev("u1", "wu", "p", "credit", "1", "USD", T0));
    apply(s, ev("e1", "we", "p", "credit", "2", "EUR", T0));
    apply(s, ev("j1", "wj", "p", "credit", "300", "JPY", T0));
    apply(s, ev("e2", "we", "p", "credit", "3", "EUR", T0));
    t = tops(s, "p");
    CHECK_EQ_INT(t.n, 4);
    CHECK_EQ_STR(t.line[0], "e2 3 EUR");
    CHECK_EQ_STR(t.line[1], "e1 2 EUR");
    CHECK_EQ_STR(t.line[2], "j1 300 JPY");
    CHECK_EQ_STR(t.line[3], "u1 1 USD");
    ws_store_close(s);
}

static void test_product_without_credits_is_seen(void)
{
    ws_store *s = fresh_store();
    ws_view *v;

    apply(s, ev("1", "w", "debits-only", "debit", "1", "USD", T0));
    apply(s, ev("2", "w", "never", "debit", "1", "EUR", T0)); /* rejected */
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_product(v, "debits-only", 11), WS_OK);
    CHECK_EQ_INT(ws_view_product(v, "never", 5), WS_ERR_NOT_FOUND);
    ws_view_end(v);
    CHECK_EQ_INT(tops(s, "debits-only").n, 0);
    ws_store_close(s);
}

static void test_records_in_one_batch_see_each_other(void)
{
    ws_store *s = fresh_store();
    ws_batch *b;
    ws_result r1, r2, r3;
    char l1[1024], l2[1024], l3[1024];
    ws_counts c;
    ws_view *v;

    snprintf(l1, sizeof l1, "%s", ev("1", "b", "p", "credit", "1", "USD", T0));
    snprintf(l2, sizeof l2, "%s", ev("1", "b", "p", "credit", "1", "USD", T0));
    snprintf(l3, sizeof l3, "%s", ev("2", "b", "p", "credit", "1", "EUR", T0));
    CHECK_EQ_INT(ws_store_begin(s, &b), WS_OK);
    CHECK_EQ_INT(ws_engine_record(b, dec, l1, strlen(l1), &r1), WS_OK);
    CHECK_EQ_INT(ws_engine_record(b, dec, l2, strlen(l2), &r2), WS_OK);
    CHECK_EQ_INT(ws_engine_record(b, dec, l3, strlen(l3), &r3), WS_OK);
    CHECK_EQ_INT(ws_engine_record(b, dec, "x", 1, &r3), WS_OK);
    CHECK_EQ_INT(ws_batch_commit(b), WS_OK);
    CHECK_EQ_INT(r1.outcome, WS_APPLIED);
    CHECK_EQ_INT(r2.outcome, WS_DUPLICATE);
    CHECK_EQ_INT(r3.reason, WS_R_INVALID_JSON);
    CHECK_EQ_INT(ws_store_view(s, &v), WS_OK);
    CHECK_EQ_INT(ws_view_counts(v, &c), WS_OK);
    ws_view_end(v);
    CHECK_EQ_INT(c.outcome[WS_APPLIED], 1);
    CHECK_EQ_INT(c.outcome[WS_DUPLICATE], 1);
    CHECK_EQ_INT(c.outcome[WS_REJECTED], 2);
    CHECK_EQ_INT(c.reason[WS_R_CURRENCY_MISMATCH], 1);
    CHECK_EQ_INT(c.reason[WS_R_INVALID_JSON], 1);
    ws_store_close(s);
}

static void test_last_event_time_is_the_latest_timestamp(void)
{
    ws_store *s = fresh_store();
    ws_wallet w;

    apply(s, ev("1", "b", "p", "credit", "1", "USD", "2024-05-11T12:50:00.5Z"));
    apply(s, ev("2", "b", "p", "credit", "1", "USD", "2024-01-01T00:00:00Z"));
    w = wallet(s, "b");
    CHECK_EQ_INT(w.last_event.sec, 1715431800);
    CHECK_EQ_INT(w.last_event.nsec, 500000000);
    ws_store_close(s);
}

int main(void)
{
    char tmpl[] = "/tmp/ws-test-engine-XXXXXX";
    char cmd[300];
    int rc;

    if (!mkdtemp(tmpl) || ws_decoder_new(&dec) != WS_OK)
        return 2;
    snprintf(root, sizeof root, "%s", tmpl);
    RUN(test_balance_is_the_exact_signed_sum);
    RUN(test_balance_may_go_negative);
    RUN(test_exact_duplicate_is_skipped);
    RUN(test_same_id_other_content_is_a_conflicting_duplicate);
    RUN(test_rejected_transaction_id_is_not_remembered);
    RUN(test_wallet_currency_is_its_first_applied_currency);
    RUN(test_balance_overflow_is_rejected_not_wrapped);
    RUN(test_total_debit_overflow_is_rejected);
    RUN(test_average_inputs_follow_days_and_debit_days);
    RUN(test_average_does_not_depend_on_arrival_order);
    RUN(test_scale_is_the_largest_applied_scale);
    RUN(test_top_keeps_the_five_largest_credits);
    RUN(test_top_ties_go_to_earlier_time_then_smaller_id);
    RUN(test_top_is_kept_per_currency);
    RUN(test_product_without_credits_is_seen);
    RUN(test_records_in_one_batch_see_each_other);
    RUN(test_last_event_time_is_the_latest_timestamp);
    ws_decoder_free(dec);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        printf("  cannot remove %s\n", root);
    rc = WSTEST_END();
    return rc;
}
