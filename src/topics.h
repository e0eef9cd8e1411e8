/*
 * topics.h - the topics walletstream writes, created where missing
 * (Kafka's Admin API) and checked.
 *
 * Stream thread (or before it starts).
 */
#ifndef WS_TOPICS_H
#define WS_TOPICS_H

#include <librdkafka/rdkafka.h>

typedef struct ws_topic_spec {
    const char *name;
    int partitions;         /* -1: the broker's default */
    int compact;            /* cleanup.policy=compact */
    int partitions_found;   /* set by ws_topics_ensure: what it has */
} ws_topic_spec;

/* Creates the topics of specs[0..n) that are missing, then waits until
 * every one is in the cluster's metadata and records its partition
 * count. `what` names them in messages ("changelog"). Returns 0;
 * WS_ERR_NOT_FOUND when some are missing and cannot be created; WS_ERR_IO
 * when the cluster does not answer (the reason in why[0..
 * WS_SOURCE_ERR_MAX) either way). A broker that creates a topic but
 * refuses its compaction setting is logged, not an error. */
int ws_topics_ensure(rd_kafka_t *rk, ws_topic_spec *specs, int n,
                     const char *what, char *why);

#endif
