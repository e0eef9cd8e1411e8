/*
 * export.c - the three tables as CSV or JSON lines, from one view.
 *
 * Formatting is not repeated here: amounts and averages come from
 * decimal.c (ws_dec_format, ws_dec_format_average), instants and days
 * from timeutil.c, and the JSON lines from figures.c, the writer of the
 * API's bodies. This file only lays those texts out as rows.
 */
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "decimal.h"
#include "decode.h"
#include "figures.h"
#include "json_out.h"
#include "timeutil.h"

#define PATH_CAP 4096
#define CRLF "\r\n"

enum { T_BALANCES, T_AVG_DEBITS, T_TOP_CREDITS, T_TRANSACTIONS, T_COUNT };

static const char *const table_names[T_COUNT] = {
    "balances", "avg_debits", "top_credits", "transactions",
};

/* Columns as Cassandra lists them (partition key, then the others by
 * name), which is what `COPY table FROM` expects without a column list. */
static const char *const csv_headers[T_COUNT] = {
    "wallet_id,balance,currency,last_event_time,last_event_time_nanos,"
    "transactions",
    "wallet_id,avg_daily_debit,currency,days,debit_days,first_day,last_day,"
    "total_debit",
    "product_id,top_credits",
    "wallet_id,event_time,event_time_nanos,transaction_id,amount,"
    "balance_after,committed_at,committed_at_nanos,currency,product_id,seq,"
    "source,type",
};

struct out_file {
    FILE *f;
    char tmp[PATH_CAP];
    char path[PATH_CAP];
    int64_t rows;
};

struct export_ctx {
    enum ws_export_format format;
    ws_view *view;
    struct out_file file[T_COUNT];
    ws_buf row;     /* the row being written */
    ws_buf cell;    /* the top-credits list literal of a CSV row */
    int sys_errno;  /* errno of the first failed write */
    /* The statement lines' wallet (its currency), and the input topic
     * their sources name (none: lines of replayed files). */
    char wallet[WS_MAX_ID];
    size_t wallet_len;
    char currency[3];
    char topic[600];
    size_t topic_len;
};

int ws_export_format_parse(const char *name, enum ws_export_format *out)
{
    if (strcmp(name, "csv") == 0)
        *out = WS_EXPORT_CSV;
    else if (strcmp(name, "jsonl") == 0)
        *out = WS_EXPORT_JSONL;
    else
        return -1;
    return 0;
}

static const char *format_ext(enum ws_export_format f)
{
    return f == WS_EXPORT_CSV ? "csv" : "jsonl";
}

/* ------------------------------------------------------------ fields */

/* An RFC 4180 field: quoted when it holds a comma, quote, CR or LF. */
static void csv_field(ws_buf *b, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
            break;
    if (i == n) {
        ws_buf_put(b, s, n);
        return;
    }
    ws_buf_putc(b, '"');
    for (i = 0; i < n; i++) {
        if (s[i] == '"')
            ws_buf_putc(b, '"');
        ws_buf_putc(b, s[i]);
    }
    ws_buf_putc(b, '"');
}

/* A CQL string literal: single quotes, inner ones doubled. */
static void cql_string(ws_buf *b, const char *s, size_t n)
{
    size_t i;

    ws_buf_putc(b, '\'');
    for (i = 0; i < n; i++) {
        if (s[i] == '\'')
            ws_buf_putc(b, '\'');
        ws_buf_putc(b, s[i]);
    }
    ws_buf_putc(b, '\'');
}

static void put_dec(ws_buf *b, ws_dec v, unsigned scale)
{
    char text[WS_DEC_TEXT_MAX];

    ws_buf_put(b, text, ws_dec_format(v, scale, text));
}

static void put_day(ws_buf *b, int32_t day)
{
    char text[WS_DAY_TEXT_MAX];

    ws_buf_put(b, text, ws_day_format(day, text));
}

/* A CQL timestamp holds milliseconds: the instant truncated to the
 * millisecond as epoch milliseconds (the one form cqlsh COPY FROM reads
 * without going through a binary float); its nano-of-second goes beside
 * it, in the X_nanos column, so the exact instant survives. */
static long long epoch_ms(ws_instant t)
{
    return (long long)(t.sec * 1000 + t.nsec / 1000000);
}

/* -------------------------------------------------------------- rows */

/* Writes the finished row to its file. */
static int emit(struct export_ctx *x, int table)
{
    struct out_file *o = &x->file[table];

    if (x->row.oom)
        return WS_ERR_NOMEM;
    if (fwrite(x->row.p, 1, x->row.len, o->f) != x->row.len) {
        x->sys_errno = errno;
        return WS_ERR_IO;
    }
    o->rows++;
    return WS_OK;
}

static int wallet_rows(const char *id, size_t n, const ws_wallet *w,
                       void *arg)
{
    struct export_ctx *x = arg;
    ws_buf *b = &x->row;
    char avg[WS_DEC_TEXT_MAX];
    int64_t days = ws_figures_days(w);
    int e;

    ws_buf_reset(b);
    if (x->format == WS_EXPORT_JSONL) {
        ws_figures_balance(b, id, n, w);
    } else {
        csv_field(b, id, n);
        ws_buf_putc(b, ',');
        put_dec(b, w->balance, w->scale);
        ws_buf_putc(b, ',');
        ws_buf_put(b, w->currency, 3);
        ws_buf_putc(b, ',');
        ws_buf_printf(b, "%lld,%ld,%lld", epoch_ms(w->last_event),
                      (long)w->last_event.nsec, (long long)w->transactions);
    }
    ws_buf_puts(b, x->format == WS_EXPORT_JSONL ? "\n" : CRLF);
    if ((e = emit(x, T_BALANCES)) != WS_OK)
        return e;

    ws_buf_reset(b);
    if (x->format == WS_EXPORT_JSONL) {
        ws_figures_average(b, id, n, w);
    } else {
        csv_field(b, id, n);
        ws_buf_putc(b, ',');
        ws_buf_put(b, avg, ws_dec_format_average(w->total_debit, days,
                                                 w->scale, avg));
        ws_buf_putc(b, ',');
        ws_buf_put(b, w->currency, 3);
        ws_buf_printf(b, ",%lld,%ld,", (long long)days, (long)w->debit_days);
        put_day(b, w->first_day);
        ws_buf_putc(b, ',');
        put_day(b, w->last_day);
        ws_buf_putc(b, ',');
        put_dec(b, w->total_debit, w->scale);
    }
    ws_buf_puts(b, x->format == WS_EXPORT_JSONL ? "\n" : CRLF);
    return emit(x, T_AVG_DEBITS);
}

/* Appends one currency's top credits to the CQL list literal in x->cell:
 * {transaction_id:'…',wallet_id:'…',amount:35.00,currency:'USD',
 *  timestamp:<epoch ms>,timestamp_nanos:<nano-of-second>} */
static int cql_credits(const ws_top *t, void *arg)
{
    struct export_ctx *x = arg;
    ws_buf *b = &x->cell;
    unsigned i;

    for (i = 0; i < t->n; i++) {
        const ws_top_entry *e = &t->e[i];

        if (b->len > 1)
            ws_buf_putc(b, ',');
        ws_buf_puts(b, "{transaction_id:");
        cql_string(b, e->tx_id, e->tx_id_len);
        ws_buf_puts(b, ",wallet_id:");
        cql_string(b, e->wallet_id, e->wallet_id_len);
        ws_buf_puts(b, ",amount:");
        put_dec(b, e->amount, e->scale);
        ws_buf_puts(b, ",currency:");
        cql_string(b, t->currency, 3);
        ws_buf_printf(b, ",timestamp:%lld,timestamp_nanos:%ld}",
                      epoch_ms(e->ts), (long)e->ts.nsec);
    }
    return 0;
}

static int product_row(const char *id, size_t n, void *arg)
{
    struct export_ctx *x = arg;
    ws_buf *b = &x->row;
    int e;

    ws_buf_reset(b);
    if (x->format == WS_EXPORT_JSONL) {
        ws_tops_writer w;

        ws_figures_tops_begin(&w, b, id, n, NULL);
        e = ws_view_tops(x->view, id, n, ws_figures_tops_add, &w);
        ws_figures_tops_end(&w);
        ws_buf_putc(b, '\n');
    } else {
        ws_buf_reset(&x->cell);
        ws_buf_putc(&x->cell, '[');
        e = ws_view_tops(x->view, id, n, cql_credits, x);
        ws_buf_putc(&x->cell, ']');
        if (x->cell.oom)
            return WS_ERR_NOMEM;
        csv_field(b, id, n);
        ws_buf_putc(b, ',');
        csv_field(b, x->cell.p, x->cell.len);
        ws_buf_puts(b, CRLF);
    }
    return e != WS_OK ? e : emit(x, T_TOP_CREDITS);
}

/* One statement line of the wallet in x->wallet. CSV: the columns of
 * betting.transactions, with committed_at empty (null: a state keeps no
 * commit times) and source "<topic>/<partition>/<offset>" (empty for a
 * replayed file's line). JSON lines: {"wallet_id":…,"currency":…, and
 * the API's line fields}. */
static int history_row(const ws_history_entry *h, void *arg)
{
    struct export_ctx *x = arg;
    ws_buf *b = &x->row;
    const char *wallet = x->wallet;
    size_t n = x->wallet_len;

    ws_buf_reset(b);
    if (x->format == WS_EXPORT_JSONL) {
        ws_buf_puts(b, "{\"wallet_id\":");
        ws_json_str(b, wallet, n);
        ws_buf_puts(b, ",\"currency\":\"");
        ws_buf_put(b, x->currency, 3);
        ws_buf_puts(b, "\",");
        ws_figures_line_fields(b, h);
        ws_buf_puts(b, "}\n");
        return emit(x, T_TRANSACTIONS);
    }
    csv_field(b, wallet, n);
    ws_buf_printf(b, ",%lld,%ld,", epoch_ms(h->ts), (long)h->ts.nsec);
    csv_field(b, h->tx_id, h->tx_id_len);
    ws_buf_putc(b, ',');
    put_dec(b, h->amount, h->scale);
    ws_buf_putc(b, ',');
    put_dec(b, h->balance, h->balance_scale);
    ws_buf_puts(b, ",,,");
    ws_buf_put(b, x->currency, 3);
    ws_buf_putc(b, ',');
    csv_field(b, h->product_id, h->product_id_len);
    ws_buf_printf(b, ",%lld,", (long long)h->seq);
    if (x->topic_len && h->src.partition >= 0) {
        ws_buf_reset(&x->cell);
        ws_buf_put(&x->cell, x->topic, x->topic_len);
        ws_buf_printf(&x->cell, "/%ld/%lld", (long)h->src.partition,
                      (long long)h->src.offset);
        if (x->cell.oom)
            return WS_ERR_NOMEM;
        csv_field(b, x->cell.p, x->cell.len);
    }
    ws_buf_putc(b, ',');
    ws_buf_puts(b, ws_type_name((enum ws_type)h->type));
    ws_buf_puts(b, CRLF);
    return emit(x, T_TRANSACTIONS);
}

/* The statement of one wallet, newest first. */
static int wallet_lines(const char *id, size_t n, const ws_wallet *w,
                        void *arg)
{
    struct export_ctx *x = arg;

    memcpy(x->wallet, id, n);
    x->wallet_len = n;
    memcpy(x->currency, w->currency, 3);
    return ws_view_history(x->view, id, n, w->history_head, history_row, x);
}

/* The topic of the stored offsets ("<topic>/<partition>"). */
static int offsets_topic(const char *source, size_t n, int64_t next,
                         void *arg)
{
    struct export_ctx *x = arg;
    size_t topic_len;
    int32_t p;

    (void)next;
    if (ws_source_split(source, n, &topic_len, &p) == 0 &&
        topic_len < sizeof x->topic) {
        memcpy(x->topic, source, topic_len);
        x->topic_len = topic_len;
    }
    return 1;
}

/* ---------------------------------------------------------- manifest */

static int manifest_offset(const char *source, size_t n, int64_t next,
                           void *arg)
{
    ws_buf *b = arg;

    if (b->oom)
        return WS_ERR_NOMEM;
    if (b->p[b->len - 1] != '{')
        ws_buf_putc(b, ',');
    ws_json_str(b, source, n);
    ws_buf_printf(b, ":%lld", (long long)next);
    return 0;
}

/* One shard's offset of each source, for the manifest's "shards". */
struct shard_offsets {
    ws_view *view;
    ws_buf *b;
    int shard;
};

static int shard_offset(const char *source, size_t n, int64_t next,
                        void *arg)
{
    struct shard_offsets *so = arg;
    int e = ws_view_shard_offset(so->view, so->shard, source, n, &next);

    if (e == WS_ERR_NOT_FOUND)
        return WS_OK;
    if (e != WS_OK)
        return e;
    return manifest_offset(source, n, next, so->b);
}

/* {"walletstream":…,"data_format":…,"format":…,"exported_at":…,
 *  "tables":{"balances":{"file":…,"rows":…},…},
 *  "events":{"applied":…,"duplicate":…,"rejected":…},
 *  "rejected":{"<reason>":…},"offsets":{"<topic/partition>":<next>},
 *  "shards":[{"shard":k,"offsets":{"<topic/partition>":<next>}},…]}
 * "offsets" is the smallest over the shards (where reading resumes). */
static int manifest_text(struct export_ctx *x, const ws_counts *c,
                         ws_buf *b)
{
    struct timespec now;
    ws_instant t;
    int i, first = 1, e;

    clock_gettime(CLOCK_REALTIME, &now);
    t.sec = (int64_t)now.tv_sec;
    t.nsec = 0;
    ws_buf_printf(b, "{\"walletstream\":\"%s\",\"data_format\":%d,"
                     "\"format\":\"%s\",\"exported_at\":",
                  WS_VERSION, WS_STORE_FORMAT, format_ext(x->format));
    ws_json_time(b, t);
    ws_buf_puts(b, ",\"tables\":{");
    for (i = 0; i < T_COUNT; i++)
        ws_buf_printf(b, "%s\"%s\":{\"file\":\"%s.%s\",\"rows\":%lld}",
                      i ? "," : "", table_names[i], table_names[i],
                      format_ext(x->format), (long long)x->file[i].rows);
    ws_buf_puts(b, "},\"events\":{");
    for (i = 0; i < WS_OUTCOME_COUNT; i++)
        ws_buf_printf(b, "%s\"%s\":%lld", i ? "," : "",
                      ws_outcome_name((enum ws_outcome)i),
                      (long long)c->outcome[i]);
    ws_buf_puts(b, "},\"rejected\":{");
    for (i = 1; i < WS_R_COUNT; i++) {
        if (!c->reason[i])
            continue;
        ws_buf_printf(b, "%s\"%s\":%lld", first ? "" : ",",
                      ws_reason_name((enum ws_reason)i),
                      (long long)c->reason[i]);
        first = 0;
    }
    ws_buf_puts(b, "},\"offsets\":{");
    e = ws_view_each_offset(x->view, manifest_offset, b);
    /* Each shard's own: every one is exported as of its last commit, and
     * holds the records routed to it below its offsets. */
    ws_buf_puts(b, "},\"shards\":[");
    for (i = 0; e == WS_OK && i < ws_view_shards(x->view); i++) {
        struct shard_offsets so;

        so.view = x->view;
        so.b = b;
        so.shard = i;
        ws_buf_printf(b, "%s{\"shard\":%d,\"offsets\":{", i ? "," : "", i);
        e = ws_view_each_offset(x->view, shard_offset, &so);
        ws_buf_puts(b, "}}");
    }
    ws_buf_puts(b, "]}\n");
    if (e == WS_OK && b->oom)
        e = WS_ERR_NOMEM;
    return e;
}

/* ------------------------------------------------------------- files */

/* Flushes, fsyncs and closes o->f; 0 or -1 with errno set. */
static int finish_file(struct out_file *o)
{
    int ok = fflush(o->f) == 0 && fsync(fileno(o->f)) == 0;
    int saved = errno;

    if (fclose(o->f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    o->f = NULL;
    errno = saved;
    return ok ? 0 : -1;
}

static int open_tmp(struct out_file *o, const char *dir, const char *name,
                    const char *ext)
{
    int n = snprintf(o->path, sizeof o->path, "%s/%s.%s", dir, name, ext);

    if (n < 0 || (size_t)n >= sizeof o->path)
        return -1;
    n = snprintf(o->tmp, sizeof o->tmp, "%s/.%s.%s.%ld.tmp", dir, name, ext,
                 (long)getpid());
    if (n < 0 || (size_t)n >= sizeof o->tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    o->f = fopen(o->tmp, "wbx");
    return o->f ? 0 : -1;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd);    /* best effort: the files themselves are synced */
        close(fd);
    }
}

static int write_tables(struct export_ctx *x, const char *dir, char *err)
{
    int i, e;

    for (i = 0; i < T_COUNT; i++) {
        if (open_tmp(&x->file[i], dir, table_names[i],
                     format_ext(x->format)) != 0) {
            snprintf(err, WS_EXPORT_ERR_MAX, "cannot create a file in %s: %s",
                     dir, strerror(errno));
            return WS_ERR_IO;
        }
        if (x->format == WS_EXPORT_CSV &&
            fprintf(x->file[i].f, "%s" CRLF, csv_headers[i]) < 0) {
            snprintf(err, WS_EXPORT_ERR_MAX, "cannot write %s: %s",
                     x->file[i].tmp, strerror(errno));
            return WS_ERR_IO;
        }
    }
    e = ws_view_each_wallet(x->view, wallet_rows, x);
    if (e == WS_OK)
        e = ws_view_each_product(x->view, product_row, x);
    if (e == WS_OK && (e = ws_view_each_offset(x->view, offsets_topic, x)) == 1)
        e = WS_OK;
    if (e == WS_OK)
        e = ws_view_each_wallet(x->view, wallet_lines, x);
    if (e == WS_ERR_IO) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot write into %s: %s", dir,
                 strerror(x->sys_errno));
        return e;
    }
    if (e != WS_OK) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot read the state: %s",
                 ws_strerror(e));
        return e;
    }
    for (i = 0; i < T_COUNT; i++) {
        if (finish_file(&x->file[i]) != 0) {
            snprintf(err, WS_EXPORT_ERR_MAX, "cannot write %s: %s",
                     x->file[i].tmp, strerror(errno));
            return WS_ERR_IO;
        }
    }
    return WS_OK;
}

/* The manifest, under a temporary name, then renamed into place. */
static int write_manifest(struct export_ctx *x, const char *dir,
                          const ws_counts *c, struct out_file *m, char *err)
{
    ws_buf b;
    int e;

    ws_buf_init(&b);
    e = manifest_text(x, c, &b);
    if (e != WS_OK) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot read the state: %s",
                 ws_strerror(e));
        goto done;
    }
    e = WS_ERR_IO;
    if (open_tmp(m, dir, "manifest", "json") != 0) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot create a file in %s: %s",
                 dir, strerror(errno));
        goto done;
    }
    if (fwrite(b.p, 1, b.len, m->f) != b.len || finish_file(m) != 0 ||
        rename(m->tmp, m->path) != 0) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot write %s: %s", m->path,
                 strerror(errno));
        goto done;
    }
    m->tmp[0] = '\0';   /* renamed: nothing to clean up */
    e = WS_OK;
done:
    ws_buf_free(&b);
    return e;
}

int ws_export_write(ws_store *s, enum ws_export_format format,
                    const char *out_dir, ws_export_totals *totals,
                    char *err)
{
    struct export_ctx x;
    struct out_file manifest;
    char path[PATH_CAP];
    int i, e;

    memset(&x, 0, sizeof x);
    memset(&manifest, 0, sizeof manifest);
    memset(totals, 0, sizeof *totals);
    x.format = format;
    ws_buf_init(&x.row);
    ws_buf_init(&x.cell);
    err[0] = '\0';

    if (ws_store_mkdirs(out_dir) != 0) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot create %s: %s", out_dir,
                 strerror(errno));
        return WS_ERR_IO;
    }
    /* A manifest present means a complete export: not while we write. */
    snprintf(path, sizeof path, "%s/manifest.json", out_dir);
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot remove %s: %s", path,
                 strerror(errno));
        return WS_ERR_IO;
    }
    e = ws_store_view(s, &x.view);
    if (e != WS_OK) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot read the state: %s",
                 ws_strerror(e));
        goto done;
    }
    e = ws_view_counts(x.view, &totals->counts);
    if (e != WS_OK) {
        snprintf(err, WS_EXPORT_ERR_MAX, "cannot read the counters: %s",
                 ws_strerror(e));
        goto done;
    }
    e = write_tables(&x, out_dir, err);
    if (e != WS_OK)
        goto done;
    for (i = 0; i < T_COUNT; i++) {
        if (rename(x.file[i].tmp, x.file[i].path) != 0) {
            snprintf(err, WS_EXPORT_ERR_MAX, "cannot rename %s: %s",
                     x.file[i].tmp, strerror(errno));
            e = WS_ERR_IO;
            goto done;
        }
        x.file[i].tmp[0] = '\0';
    }
    e = write_manifest(&x, out_dir, &totals->counts, &manifest, err);
    if (e == WS_OK)
        sync_dir(out_dir);
    totals->wallets = x.file[T_BALANCES].rows;
    totals->products = x.file[T_TOP_CREDITS].rows;
    totals->lines = x.file[T_TRANSACTIONS].rows;
done:
    ws_view_end(x.view);
    for (i = 0; i < T_COUNT; i++) {
        if (x.file[i].f)
            fclose(x.file[i].f);
        if (x.file[i].tmp[0])
            unlink(x.file[i].tmp);
    }
    if (manifest.f)
        fclose(manifest.f);
    if (manifest.tmp[0])
        unlink(manifest.tmp);
    ws_buf_free(&x.row);
    ws_buf_free(&x.cell);
    return e;
}
