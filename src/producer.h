/*
 * producer.h - the confirmed producer of `run`: records that must be
 * delivered before the batch that caused them commits (dead letters,
 * changelog records; DESIGN §1).
 *
 * Records are queued with ws_producer_send; ws_producer_flush waits for
 * every delivery report since the previous flush and says whether all
 * succeeded. Idempotent producer, so a retried send never duplicates
 * within one session; a crash between delivery and commit may repeat a
 * record after the restart, never lose one.
 *
 * Stream thread only.
 */
#ifndef WS_PRODUCER_H
#define WS_PRODUCER_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "kafka_source.h"

typedef struct ws_header {
    const char *name;
    const char *value;
} ws_header;

typedef struct ws_producer ws_producer;

/* Creates the producer. Returns 0, or an error with a sentence in
 * err[0..WS_SOURCE_ERR_MAX). */
int ws_producer_open(const ws_kafka_opts *opts, ws_producer **out, char *err);

/* Queues one record (key and value copied; key may be NULL). Returns 0,
 * or WS_ERR_IO with a sentence in why. */
int ws_producer_send(ws_producer *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     const ws_header *headers, int nheaders, char *why);

/* Waits until every record queued since the last flush is delivered.
 * Returns 0 when all were, else WS_ERR_IO with the reason in why. */
int ws_producer_flush(ws_producer *p, int timeout_ms, char *why);

/* Learns the leaders of `topic` now rather than at its first record, so
 * that the first batch after start commits as fast as the others. Waits
 * at most timeout_ms; failures are left for the first send to report. */
void ws_producer_warm(ws_producer *p, const char *topic, int timeout_ms);

/* The librdkafka handle (for admin requests). */
rd_kafka_t *ws_producer_handle(ws_producer *p);

/* Flushes what it can (a few seconds at most) and destroys the producer.
 * NULL is accepted. */
void ws_producer_close(ws_producer *p);

#endif
