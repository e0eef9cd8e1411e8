/*
 * changelog.h - the figures as compacted changelog topics, so that other
 * systems (Kafka Connect into Cassandra, say) can follow them.
 *
 * For every batch, one record per wallet or product whose figures changed,
 * keyed by wallet_id / product_id, with the API's JSON as value:
 *   <topic>.balances      /balance/{wallet_id}
 *   <topic>.avg_debits    /average_daily_debit/{wallet_id}
 *   <topic>.top_credits   /top_credits/{product_id}
 * and, not compacted, one record per applied transaction, keyed by
 * wallet_id, in the order applied (SPEC 8a):
 *   <topic>.applied       {"transaction_id":…,"wallet_id":…,"product_id":…,
 *                          "type":…,"amount":…,"currency":…,"timestamp":…,
 *                          "source":"topic/partition/offset","seq":…,
 *                          "balance_after":…,"committed_at":…}
 * They go through the confirmed producer and are delivered before the
 * batch commits: a crash can repeat a record, never skip one. A repeated
 * figure is harmless (it carries the whole current figure); a repeated
 * applied transaction carries the same source (and seq), by which its
 * consumers drop it.
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
    WS_CL_APPLIED,
    WS_CL_COUNT
};

/* The compacted ones come first. */
#define WS_CL_COMPACTED WS_CL_APPLIED

/* The suffixes: "balances", "avg_debits", "top_credits", "applied". */
extern const char *const ws_changelog_suffixes[WS_CL_COUNT];

typedef struct ws_changelog ws_changelog;

/* Returns 0 or WS_ERR_NOMEM. */
int ws_changelog_new(const char *topic, ws_changelog **out);
void ws_changelog_free(ws_changelog *c);

/* Notes what an applied record changed, and the record itself (read
 * from partition/offset of the input topic). Returns 0 or
 * WS_ERR_NOMEM. */
int ws_changelog_note(ws_changelog *c, int partition, int64_t offset,
                      const ws_result *res);

/* Queues the current figures of everything noted since the last publish,
 * read from the open batch, then forgets the notes. Returns 0, a store
 * error, or WS_ERR_IO with a sentence in why. */
int ws_changelog_publish(ws_changelog *c, ws_batch *b, ws_producer *p,
                         char *why);

/* Forgets the notes (the batch was dropped). */
void ws_changelog_reset(ws_changelog *c);

/* Publishes no top-credit lists (a group's partition holds only its own
 * part of a product's). */
void ws_changelog_skip_tops(ws_changelog *c);
/* Whether a noted record changed a product's top credits. */
int ws_changelog_tops_changed(const ws_changelog *c);

/* Creates the four topics of `topic` where missing (the three figure
 * topics with cleanup.policy=compact, .applied with the broker's default
 * policy), and checks that they exist. Returns 0; WS_ERR_NOT_FOUND when
 * they are missing and cannot be created; WS_ERR_IO when the cluster does
 * not answer (the reason in why either way). A broker that refuses the
 * compaction setting but creates the topics is logged, not an error. */
int ws_changelog_create_topics(rd_kafka_t *rk, const char *topic, char *why);

#endif
