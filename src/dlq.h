/*
 * dlq.h - dead letters to `<topic>.dlq` (SPEC §3).
 *
 * A rejected record is produced with its original key and value byte for
 * byte and three headers: walletstream.reason (the code),
 * walletstream.detail (a sentence) and walletstream.source
 * (topic/partition/offset). The stream thread flushes the dead letters of
 * a batch, and checks every delivery, before that batch commits: a crash
 * between the two can repeat a dead letter, never lose one (DESIGN §1).
 *
 * Stream thread only.
 */
#ifndef WS_DLQ_H
#define WS_DLQ_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "engine.h"
#include "kafka_source.h"

typedef struct ws_dlq ws_dlq;

/* Creates the idempotent producer for dlq_topic. Returns 0, or an error
 * with a sentence in err[0..WS_SOURCE_ERR_MAX). */
int ws_dlq_open(const ws_kafka_opts *opts, const char *dlq_topic,
                ws_dlq **out, char *err);

/* Queues the dead letter of record m, rejected for res. Returns 0, or
 * WS_ERR_IO with a sentence in why. */
int ws_dlq_send(ws_dlq *d, const rd_kafka_message_t *m, const ws_result *res,
                char *why);

/* Waits until every dead letter queued since the last flush is delivered.
 * Returns 0 when all were, else WS_ERR_IO with the reason in why (the
 * caller must not commit past them). */
int ws_dlq_flush(ws_dlq *d, int timeout_ms, char *why);

/* Dead letters delivered since start. */
uint64_t ws_dlq_delivered(const ws_dlq *d);

/* Flushes what it can (a few seconds at most) and destroys the producer.
 * NULL is accepted. */
void ws_dlq_close(ws_dlq *d);

#endif
