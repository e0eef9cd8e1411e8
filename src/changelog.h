/*
 * changelog.h - the figures as compacted changelog topics, so that other
 * systems (Kafka Connect into Cassandra, say) can follow them.
 *
 * For every batch, one record per wallet or product whose figures changed,
 * keyed by wallet_id / product_id, with the API's JSON as value:
 *   <topic>.balances      /balance/{wallet_id}
 *   <topic>.avg_debits    /average_daily_debit/{wallet_id}
 *   <topic>.top_credits   /top_credits/{product_id}
 * They go through the confirmed producer and are delivered before the
 * batch commits: a crash can repeat a record, never skip one, and since a
 * record carries the whole current figure a repeat is harmless.
 *
 * Stream thread only.
 */
#ifndef WS_CHANGELOG_H
#define WS_CHANGELOG_H

#include <librdkafka/rdkafka.h>

#include "engine.h"
#include "producer.h"
#include "store.h"

enum ws_changelog_topic {
    WS_CL_BALANCES = 0,
    WS_CL_AVG_DEBITS,
    WS_CL_TOP_CREDITS,
    WS_CL_COUNT
};

/* The suffixes: "balances", "avg_debits", "top_credits". */
extern const char *const ws_changelog_suffixes[WS_CL_COUNT];

typedef struct ws_changelog ws_changelog;

/* Returns 0 or WS_ERR_NOMEM. */
int ws_changelog_new(const char *topic, ws_changelog **out);
void ws_changelog_free(ws_changelog *c);

/* Notes what an applied record changed. Returns 0 or WS_ERR_NOMEM. */
int ws_changelog_note(ws_changelog *c, const ws_result *res);

/* Queues the current figures of everything noted since the last publish,
 * read from the open batch, then forgets the notes. Returns 0, a store
 * error, or WS_ERR_IO with a sentence in why. */
int ws_changelog_publish(ws_changelog *c, ws_batch *b, ws_producer *p,
                         char *why);

/* Forgets the notes (the batch was dropped). */
void ws_changelog_reset(ws_changelog *c);

/* Whether a noted record changed a product's top credits. */
int ws_changelog_tops_changed(const ws_changelog *c);

/* Creates the three topics of `topic` with cleanup.policy=compact where
 * missing, and checks that they exist. Returns 0; WS_ERR_NOT_FOUND when
 * they are missing and cannot be created; WS_ERR_IO when the cluster does
 * not answer (the reason in why either way). A broker that refuses the
 * compaction setting but creates the topics is logged, not an error. */
int ws_changelog_create_topics(rd_kafka_t *rk, const char *topic, char *why);

#endif
