/*
 * dlq.h - dead letters to `<topic>.dlq` (SPEC §3).
 *
 * A rejected record is produced with its original key and value byte for
 * byte and three headers: walletstream.reason (the code),
 * walletstream.detail (a sentence) and walletstream.source
 * (topic/partition/offset). It goes through the confirmed producer, so the
 * batch that passes it commits only after its delivery (DESIGN §1).
 */
#ifndef WS_DLQ_H
#define WS_DLQ_H

#include <librdkafka/rdkafka.h>

#include "engine.h"
#include "producer.h"

/* Queues the dead letter of record m, rejected for res, to dlq_topic;
 * its source is `topic` at `origin` (where m was first read, m itself
 * when not repartitioned). Returns 0, or WS_ERR_IO with a sentence in
 * why. Stream thread only. */
int ws_dlq_send(ws_producer *p, const char *dlq_topic,
                const rd_kafka_message_t *m, const char *topic,
                const ws_source_pos *origin, const ws_result *res,
                char *why);

#endif
