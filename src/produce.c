/*
 * produce.c - a thin librdkafka producer, console-producer compatible
 * input (one record value per line).
 */
#include "produce.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "lines.h"
#include "log.h"

#define FLUSH_MS 60000

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    ws_produce_totals *t = opaque;

    (void)rk;
    if (m->err) {
        if (t->failed++ == 0)
            ws_log(WS_LOG_ERROR, "produce", "delivery failed: %s",
                   rd_kafka_err2str(m->err));
    } else {
        t->delivered++;
        if (t->print_offsets) {
            printf("%d:%lld\n", (int)m->partition, (long long)m->offset);
            fflush(stdout);
        }
    }
}

static int produce_stream(rd_kafka_t *rk, const char *topic, ws_decoder *d,
                          FILE *f, ws_produce_totals *t)
{
    char *line = NULL, key[WS_MAX_ID];
    size_t cap = 0, kn, n;
    int e = WS_OK;

    while (ws_lines_read(f, &line, &cap, &n) >= 0) {
        rd_kafka_resp_err_t rc;
        int has_key;

        if (ws_lines_blank(line, n)) {
            t->blank++;
            continue;
        }
        has_key = ws_decode_wallet_key(d, line, n, key, &kn) == 0;
        for (;;) {
            rc = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                   RD_KAFKA_V_KEY(has_key ? key : NULL,
                                                  has_key ? kn : 0),
                                   RD_KAFKA_V_VALUE(line, n), RD_KAFKA_V_END);
            if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            rd_kafka_poll(rk, 100);
        }
        if (rc) {
            ws_log(WS_LOG_ERROR, "produce", "cannot produce to %s: %s", topic,
                   rd_kafka_err2str(rc));
            e = WS_ERR_IO;
            break;
        }
        t->sent++;
        if (t->print_offsets && rd_kafka_flush(rk, FLUSH_MS)) {
            ws_log(WS_LOG_ERROR, "produce", "no acknowledgement in %d s",
                   FLUSH_MS / 1000);
            e = WS_ERR_IO;
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    if (e == WS_OK && ferror(f)) {
        ws_log(WS_LOG_ERROR, "produce", "read error: %s", strerror(errno));
        e = WS_ERR_IO;
    }
    free(line);
    return e;
}

int ws_produce_files(const ws_kafka_opts *opts, char *const *files, int n,
                     ws_produce_totals *t)
{
    char errstr[512], err[WS_SOURCE_ERR_MAX];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    ws_decoder *d = NULL;
    char *const stdin_only[] = {"-"};
    int i, e = WS_OK;

    i = t->print_offsets;
    memset(t, 0, sizeof *t);
    t->print_offsets = i;
    if (!conf || ws_decoder_new(&d) != WS_OK) {
        ws_log(WS_LOG_ERROR, "produce", "out of memory");
        e = WS_ERR_NOMEM;
        goto done;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", opts->brokers, errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr)) {
        ws_log(WS_LOG_ERROR, "produce", "%s", errstr);
        e = WS_ERR_USAGE;
        goto done;
    }
    if ((e = ws_kafka_conf_props(conf, opts, err)) != WS_OK) {
        ws_log(WS_LOG_ERROR, "produce", "%s", err);
        goto done;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, t);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        ws_log(WS_LOG_ERROR, "produce", "cannot create a producer: %s",
               errstr);
        e = WS_ERR_IO;
        goto done;
    }
    conf = NULL;
    if (n == 0) {
        files = stdin_only;
        n = 1;
    }
    for (i = 0; i < n && e == WS_OK; i++) {
        FILE *f = ws_lines_open(files[i]);

        if (!f) {
            ws_log(WS_LOG_ERROR, "produce", "cannot open %s: %s", files[i],
                   strerror(errno));
            e = WS_ERR_IO;
            break;
        }
        e = produce_stream(rk, opts->topic, d, f, t);
        ws_lines_close(f);
    }
    if (rd_kafka_flush(rk, FLUSH_MS)) {
        ws_log(WS_LOG_ERROR, "produce", "%d records still undelivered after "
               "%d s (is the broker at %s reachable?)", rd_kafka_outq_len(rk),
               FLUSH_MS / 1000, opts->brokers);
        if (e == WS_OK)
            e = WS_ERR_IO;
    }
    if (e == WS_OK && t->delivered != t->sent)
        e = WS_ERR_IO;
done:
    if (rk)
        rd_kafka_destroy(rk);
    if (conf)
        rd_kafka_conf_destroy(conf);
    ws_decoder_free(d);
    return e;
}
