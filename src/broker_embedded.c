/*
 * broker_embedded.c - the mock cluster, its topics and its address file.
 */
#include <stddef.h>

#include "broker_embedded.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "changelog.h"
#include "ws.h"

#define BOOTSTRAP_FILE "kafka.bootstrap"

struct ws_broker {
    rd_kafka_t *owner;      /* the handle the mock cluster lives in */
    rd_kafka_mock_cluster_t *cluster;
};

/* Creates a topic of the mock cluster. The mock's thread in librdkafka
 * 2.0.2 can miss the wake-up of a request sent right after the previous
 * one was answered and then sleeps out its 1 s poll: half the starts took
 * 1-2 s more (measured: 1,009-2,010 ms to a published bootstrap address,
 * 2-12 ms with a 2 ms pause between requests, 8 of 8 runs). */
static rd_kafka_resp_err_t create_topic(rd_kafka_mock_cluster_t *cluster,
                                        const char *name, int partitions)
{
    struct timespec pause = {0, 2 * 1000 * 1000};
    rd_kafka_resp_err_t rc =
        rd_kafka_mock_topic_create(cluster, name, partitions, 1);

    nanosleep(&pause, NULL);
    return rc;
}

int ws_broker_start(const char *topic, int partitions, ws_broker **out,
                    char *err)
{
    char dlq[512], errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ws_broker *b = calloc(1, sizeof *b);
    rd_kafka_resp_err_t rc;
    int i;

    *out = NULL;
    if (!b || !conf) {
        snprintf(err, WS_BROKER_ERR_MAX, "out of memory");
        goto fail;
    }
    /* The owner never talks to a broker: keep it quiet about that. */
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    b->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    conf = NULL;
    if (!b->owner) {
        snprintf(err, WS_BROKER_ERR_MAX, "cannot start the embedded broker: %s",
                 errstr);
        goto fail;
    }
    b->cluster = rd_kafka_mock_cluster_new(b->owner, 1);
    if (!b->cluster) {
        snprintf(err, WS_BROKER_ERR_MAX,
                 "cannot start the embedded broker (mock cluster)");
        goto fail;
    }
    snprintf(dlq, sizeof dlq, "%s.dlq", topic);
    rc = create_topic(b->cluster, topic, partitions);
    if (!rc)
        rc = create_topic(b->cluster, dlq, 1);
    for (i = 0; !rc && i < WS_CL_COUNT; i++) {
        char name[600];

        snprintf(name, sizeof name, "%s.%s", topic, ws_changelog_suffixes[i]);
        rc = create_topic(b->cluster, name, partitions);
    }
    if (rc) {
        snprintf(err, WS_BROKER_ERR_MAX, "cannot create topic %s: %s", topic,
                 rd_kafka_err2str(rc));
        goto fail;
    }
    *out = b;
    return WS_OK;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    ws_broker_stop(b);
    return WS_ERR_IO;
}

const char *ws_broker_bootstrap(const ws_broker *b)
{
    return rd_kafka_mock_cluster_bootstraps(b->cluster);
}

int ws_broker_publish(const ws_broker *b, const char *dir, char *err)
{
    char path[4200], tmp[4300];
    FILE *f;
    int ok;

    snprintf(path, sizeof path, "%s/%s", dir, BOOTSTRAP_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, WS_BROKER_ERR_MAX, "cannot write %s: %s", tmp,
                 strerror(errno));
        return WS_ERR_IO;
    }
    ok = fprintf(f, "%s\n", ws_broker_bootstrap(b)) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, WS_BROKER_ERR_MAX, "cannot write %s: %s", path,
                 strerror(errno));
        unlink(tmp);
        return WS_ERR_IO;
    }
    return WS_OK;
}

void ws_broker_unpublish(const ws_broker *b, const char *dir)
{
    char path[4200], buf[256], err[WS_BROKER_ERR_MAX];

    snprintf(path, sizeof path, "%s/%s", dir, BOOTSTRAP_FILE);
    if (ws_broker_read_bootstrap(dir, buf, sizeof buf, err) == WS_OK &&
        strcmp(buf, ws_broker_bootstrap(b)) == 0)
        unlink(path);
}

int ws_broker_read_bootstrap(const char *dir, char *buf, size_t cap,
                             char *err)
{
    char path[4200];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/%s", dir, BOOTSTRAP_FILE);
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, WS_BROKER_ERR_MAX,
                 "cannot read %s (%s): start `walletstream run` or "
                 "`walletstream broker` with this --data-dir, or give "
                 "--brokers", path, strerror(errno));
        return WS_ERR_IO;
    }
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        snprintf(err, WS_BROKER_ERR_MAX, "%s is empty", path);
        return WS_ERR_IO;
    }
    return WS_OK;
}

void ws_broker_stop(ws_broker *b)
{
    if (!b)
        return;
    if (b->cluster)
        rd_kafka_mock_cluster_destroy(b->cluster);
    if (b->owner)
        rd_kafka_destroy(b->owner);
    free(b);
}

rd_kafka_mock_cluster_t *ws_broker_mock_cluster(const ws_broker *b)
{
    return b->cluster;
}
