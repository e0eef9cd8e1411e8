/*
 * dlq.c - the dead-letter producer.
 */
#include "dlq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct ws_dlq {
    rd_kafka_t *rk;
    char *topic;
    uint64_t pending;       /* queued since the last flush */
    uint64_t failed;        /* of those, delivery failed */
    uint64_t delivered;
    char error[256];
};

/* Runs on the stream thread, inside rd_kafka_poll / rd_kafka_flush. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    ws_dlq *d = opaque;

    (void)rk;
    if (m->err) {
        d->failed++;
        snprintf(d->error, sizeof d->error, "%s", rd_kafka_err2str(m->err));
    } else {
        d->delivered++;
    }
}

int ws_dlq_open(const ws_kafka_opts *opts, const char *dlq_topic,
                ws_dlq **out, char *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ws_dlq *d = calloc(1, sizeof *d);
    int e = WS_ERR_NOMEM;

    *out = NULL;
    if (!d || !conf || !(d->topic = strdup(dlq_topic))) {
        snprintf(err, WS_SOURCE_ERR_MAX, "out of memory");
        goto fail;
    }
    e = WS_ERR_USAGE;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", opts->brokers, errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "linger.ms", "1", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr,
                          sizeof errstr) ||
        rd_kafka_conf_set(conf, "client.id", "walletstream-dlq", errstr,
                          sizeof errstr)) {
        snprintf(err, WS_SOURCE_ERR_MAX, "dead-letter producer: %s", errstr);
        goto fail;
    }
    if ((e = ws_kafka_conf_props(conf, opts, err)) != WS_OK)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, d);
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!d->rk) {
        snprintf(err, WS_SOURCE_ERR_MAX,
                 "cannot create the dead-letter producer: %s", errstr);
        e = WS_ERR_IO;
        goto fail;
    }
    *out = d;
    return WS_OK;
fail:
    if (conf && !(d && d->rk))
        rd_kafka_conf_destroy(conf);
    if (d) {
        free(d->topic);
        free(d);
    }
    return e;
}

int ws_dlq_send(ws_dlq *d, const rd_kafka_message_t *m, const ws_result *res,
                char *why)
{
    char source[600];
    const char *reason = ws_reason_name(res->reason);
    rd_kafka_resp_err_t rc;
    int tries;

    snprintf(source, sizeof source, "%s/%d/%lld", rd_kafka_topic_name(m->rkt),
             (int)m->partition, (long long)m->offset);
    for (tries = 0; tries < 600; tries++) {
        rc = rd_kafka_producev(
            d->rk, RD_KAFKA_V_TOPIC(d->topic),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_HEADER("walletstream.reason", reason,
                              (ssize_t)strlen(reason)),
            RD_KAFKA_V_HEADER("walletstream.detail", res->detail,
                              (ssize_t)strlen(res->detail)),
            RD_KAFKA_V_HEADER("walletstream.source", source,
                              (ssize_t)strlen(source)),
            RD_KAFKA_V_END);
        if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(d->rk, 100);  /* make room */
    }
    if (rc) {
        snprintf(why, WS_SOURCE_ERR_MAX,
                 "dead-letter topic %s cannot be written: %s", d->topic,
                 rd_kafka_err2str(rc));
        return WS_ERR_IO;
    }
    d->pending++;
    rd_kafka_poll(d->rk, 0);
    return WS_OK;
}

int ws_dlq_flush(ws_dlq *d, int timeout_ms, char *why)
{
    rd_kafka_resp_err_t rc = RD_KAFKA_RESP_ERR_NO_ERROR;
    int e = WS_OK;

    if (d->pending > 0)
        rc = rd_kafka_flush(d->rk, timeout_ms);
    else
        rd_kafka_poll(d->rk, 0);
    if (rc) {
        snprintf(why, WS_SOURCE_ERR_MAX,
                 "dead-letter topic %s cannot be written: %s", d->topic,
                 rc == RD_KAFKA_RESP_ERR__TIMED_OUT ? "delivery timed out"
                                                    : rd_kafka_err2str(rc));
        e = WS_ERR_IO;
    } else if (d->failed > 0) {
        snprintf(why, WS_SOURCE_ERR_MAX,
                 "dead-letter topic %s cannot be written: %s", d->topic,
                 d->error);
        e = WS_ERR_IO;
    }
    d->pending = 0;
    d->failed = 0;
    return e;
}

uint64_t ws_dlq_delivered(const ws_dlq *d)
{
    return d->delivered;
}

void ws_dlq_close(ws_dlq *d)
{
    if (!d)
        return;
    if (rd_kafka_flush(d->rk, 5000))
        ws_log(WS_LOG_WARN, "dlq", "%d dead letters were still undelivered "
               "at exit (they are sent again after restart)",
               rd_kafka_outq_len(d->rk));
    rd_kafka_destroy(d->rk);
    free(d->topic);
    free(d);
}
