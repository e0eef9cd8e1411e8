/*
 * figures.c - JSON of a wallet's and a product's figures.
 */
#include "figures.h"

#include <string.h>

#include "decimal.h"
#include "decode.h"

void ws_figures_balance(ws_buf *b, const char *id, size_t n,
                        const ws_wallet *w)
{
    ws_buf_puts(b, "{\"wallet_id\":");
    ws_json_str(b, id, n);
    ws_buf_puts(b, ",\"balance\":");
    ws_json_dec(b, w->balance, w->scale);
    ws_buf_puts(b, ",\"currency\":\"");
    ws_buf_put(b, w->currency, 3);
    ws_buf_puts(b, "\",\"transactions\":");
    ws_json_i64(b, w->transactions);
    ws_buf_puts(b, ",\"last_event_time\":");
    ws_json_time(b, w->last_event);
    ws_buf_putc(b, '}');
}

int64_t ws_figures_days(const ws_wallet *w)
{
    return (int64_t)w->last_day - w->first_day + 1;
}

void ws_figures_average(ws_buf *b, const char *id, size_t n,
                        const ws_wallet *w)
{
    char text[WS_DEC_TEXT_MAX];
    int64_t days = ws_figures_days(w);

    ws_buf_puts(b, "{\"wallet_id\":");
    ws_json_str(b, id, n);
    ws_buf_puts(b, ",\"currency\":\"");
    ws_buf_put(b, w->currency, 3);
    ws_buf_puts(b, "\",\"average_daily_debit\":");
    ws_buf_put(b, text, ws_dec_format_average(w->total_debit, days, w->scale,
                                              text));
    ws_buf_puts(b, ",\"total_debit\":");
    ws_json_dec(b, w->total_debit, w->scale);
    ws_buf_puts(b, ",\"days\":");
    ws_json_i64(b, days);
    ws_buf_puts(b, ",\"debit_days\":");
    ws_json_i64(b, w->debit_days);
    ws_buf_puts(b, ",\"first_day\":");
    ws_json_day(b, w->first_day);
    ws_buf_puts(b, ",\"last_day\":");
    ws_json_day(b, w->last_day);
    ws_buf_putc(b, '}');
}

void ws_figures_tops_begin(ws_tops_writer *w, ws_buf *b, const char *id,
                           size_t n, const char *currency)
{
    w->b = b;
    w->currency = currency;
    w->first = 1;
    ws_buf_puts(b, "{\"product_id\":");
    ws_json_str(b, id, n);
    ws_buf_puts(b, ",\"top_credits\":[");
}

int ws_figures_tops_add(const ws_top *t, void *writer)
{
    ws_tops_writer *w = writer;
    unsigned i;

    if (w->currency && memcmp(w->currency, t->currency, 3) != 0)
        return 0;
    for (i = 0; i < t->n; i++) {
        const ws_top_entry *e = &t->e[i];

        if (!w->first)
            ws_buf_putc(w->b, ',');
        w->first = 0;
        ws_buf_puts(w->b, "{\"transaction_id\":");
        ws_json_str(w->b, e->tx_id, e->tx_id_len);
        ws_buf_puts(w->b, ",\"wallet_id\":");
        ws_json_str(w->b, e->wallet_id, e->wallet_id_len);
        ws_buf_puts(w->b, ",\"amount\":");
        ws_json_dec(w->b, e->amount, e->scale);
        ws_buf_puts(w->b, ",\"currency\":\"");
        ws_buf_put(w->b, t->currency, 3);
        ws_buf_puts(w->b, "\",\"timestamp\":");
        ws_json_time(w->b, e->ts);
        ws_buf_putc(w->b, '}');
    }
    return 0;
}

void ws_figures_tops_end(ws_tops_writer *w)
{
    ws_buf_puts(w->b, "]}");
}

void ws_figures_line_fields(ws_buf *b, const ws_history_entry *h)
{
    ws_buf_puts(b, "\"seq\":");
    ws_json_i64(b, h->seq);
    ws_buf_puts(b, ",\"transaction_id\":");
    ws_json_str(b, h->tx_id, h->tx_id_len);
    ws_buf_puts(b, ",\"type\":\"");
    ws_buf_puts(b, ws_type_name((enum ws_type)h->type));
    ws_buf_puts(b, "\",\"product_id\":");
    ws_json_str(b, h->product_id, h->product_id_len);
    ws_buf_puts(b, ",\"amount\":");
    ws_json_dec(b, h->amount, h->scale);
    ws_buf_puts(b, ",\"timestamp\":");
    ws_json_time(b, h->ts);
    ws_buf_puts(b, ",\"balance_after\":");
    ws_json_dec(b, h->balance, h->balance_scale);
    ws_buf_puts(b, ",\"partition\":");
    ws_json_i64(b, h->src.partition);
    ws_buf_puts(b, ",\"offset\":");
    ws_json_i64(b, h->src.offset);
}

void ws_figures_applied(ws_buf *b, const ws_txn *t, const char *topic,
                        int partition, int64_t offset, int64_t seq,
                        ws_dec balance, unsigned balance_scale)
{
    ws_buf_puts(b, "{\"transaction_id\":");
    ws_json_str(b, t->tx_id, t->tx_id_len);
    ws_buf_puts(b, ",\"wallet_id\":");
    ws_json_str(b, t->wallet_id, t->wallet_id_len);
    ws_buf_puts(b, ",\"product_id\":");
    ws_json_str(b, t->product_id, t->product_id_len);
    ws_buf_puts(b, ",\"type\":\"");
    ws_buf_puts(b, ws_type_name(t->type));
    ws_buf_puts(b, "\",\"amount\":");
    ws_json_dec(b, t->amount, t->scale);
    ws_buf_puts(b, ",\"currency\":\"");
    ws_buf_put(b, t->currency, 3);
    ws_buf_puts(b, "\",\"timestamp\":");
    ws_json_time(b, t->ts);
    /* topic, partition and offset as one JSON string: the topic needs
     * escaping like any string, the numbers do not */
    ws_buf_puts(b, ",\"source\":");
    ws_json_str(b, topic, strlen(topic));
    if (!b->oom)
        b->len--;   /* reopen the string for /partition/offset */
    ws_buf_putc(b, '/');
    ws_json_i64(b, partition);
    ws_buf_putc(b, '/');
    ws_json_i64(b, offset);
    ws_buf_puts(b, "\",\"seq\":");
    ws_json_i64(b, seq);
    ws_buf_puts(b, ",\"balance_after\":");
    ws_json_dec(b, balance, balance_scale);
    ws_buf_puts(b, ",\"committed_at\":");
}
