/*
 * topics.c - topics created where missing, then checked in the metadata.
 */
#include "topics.h"

#include <stdio.h>
#include <string.h>

#include "kafka_source.h"
#include "log.h"
#include "timeutil.h"

#define ADMIN_TIMEOUT_MS 5000
/* Short, so that a stop is noticed while the broker is away. */
#define METADATA_TIMEOUT_MS 1000
/* Between metadata requests that wait for created topics to show. */
#define METADATA_RETRY_MS 100
#define MAX_TOPICS 8

/* WS_OK when every topic of specs[0..n) exists on the cluster (with its
 * partition count recorded), WS_ERR_NOT_FOUND when some do not,
 * WS_ERR_IO when the cluster does not answer. */
static int topics_exist(rd_kafka_t *rk, ws_topic_spec *specs, int n,
                        const char *what, char *why)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t rc = rd_kafka_metadata(rk, 1, NULL, &md,
                                               METADATA_TIMEOUT_MS);
    int i, j, found = 0;

    if (rc) {
        snprintf(why, WS_SOURCE_ERR_MAX, "Kafka broker unreachable: %s",
                 rd_kafka_err2str(rc));
        return WS_ERR_IO;
    }
    for (i = 0; i < n; i++) {
        specs[i].partitions_found = 0;
        for (j = 0; j < md->topic_cnt; j++)
            if (strcmp(md->topics[j].topic, specs[i].name) == 0 &&
                !md->topics[j].err && md->topics[j].partition_cnt > 0) {
                specs[i].partitions_found = md->topics[j].partition_cnt;
                found++;
                break;
            }
    }
    rd_kafka_metadata_destroy(md);
    if (found < n) {
        snprintf(why, WS_SOURCE_ERR_MAX, "%d of the %d %s topics are "
                 "missing and could not be created", n - found, n, what);
        return WS_ERR_NOT_FOUND;
    }
    return WS_OK;
}

int ws_topics_ensure(rd_kafka_t *rk, ws_topic_spec *specs, int n,
                     const char *what, char *why)
{
    char errstr[256];
    rd_kafka_NewTopic_t *nt[MAX_TOPICS] = {0};
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev = NULL;
    int64_t deadline;
    int i, e, made = 0, refused = 0;

    if (n > MAX_TOPICS)
        return WS_ERR_USAGE;
    e = topics_exist(rk, specs, n, what, why);
    if (e != WS_ERR_NOT_FOUND)
        return e;
    q = rd_kafka_queue_new(rk);
    for (i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions, -1,
                                      errstr, sizeof errstr);
        if (nt[i] && specs[i].compact)
            rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "compact");
        made += nt[i] != NULL;
    }
    if (q && made == n) {
        rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
        ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS + 1000);
    }
    if (ev && rd_kafka_event_error(ev)) {
        ws_log(WS_LOG_WARN, what, "cannot create the %s topics: %s", what,
               rd_kafka_event_error_string(ev));
        refused = 1;
    } else if (ev) {
        const rd_kafka_CreateTopics_result_t *res =
            rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0, k;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;

        for (k = 0; k < cnt; k++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(tr[k]);

            if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
                ws_log(WS_LOG_INFO, what, "created topic %s",
                       rd_kafka_topic_result_name(tr[k]));
            else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                ws_log(WS_LOG_WARN, what, "cannot create %s: %s",
                       rd_kafka_topic_result_name(tr[k]),
                       rd_kafka_topic_result_error_string(tr[k]));
                refused = 1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    for (i = 0; i < n; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    if (q)
        rd_kafka_queue_destroy(q);
    /* A broker answers CreateTopics before every broker's metadata lists
     * the new topics (seen on a fresh single-node Kafka 4.4: all three
     * created, none in the next metadata answer): ask again for a while. */
    deadline = ws_clock_ms() + ADMIN_TIMEOUT_MS;
    while ((e = topics_exist(rk, specs, n, what, why)) == WS_ERR_NOT_FOUND &&
           !refused && ws_clock_ms() < deadline)
        rd_kafka_poll(rk, METADATA_RETRY_MS);   /* the producer's events */
    if (e != WS_OK)
        return e;
    if (refused)
        ws_log(WS_LOG_WARN, what, "the %s topics exist but walletstream "
               "could not ensure their settings on them", what);
    return WS_OK;
}
