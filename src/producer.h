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
#include <stdint.h>

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

/* The same into one partition (RD_KAFKA_PARTITION_UA: the partitioner's
 * choice). */
int ws_producer_send_to(ws_producer *p, const char *topic, int32_t partition,
                        const void *key, size_t key_len, const void *value,
                        size_t value_len, const ws_header *headers,
                        int nheaders, char *why);
/* Waits until every record queued since the last flush is delivered.
 * Returns 0 when all were, else WS_ERR_IO with the reason in why. A
 * transactional producer then commits the transaction those records are
 * in: WS_ERR_FENCED when a newer producer of its id took over (the
 * producer is done: close it), WS_ERR_IO for any other failure (the
 * transaction was aborted). */
int ws_producer_flush(ws_producer *p, int timeout_ms, char *why);

/* --------------------------------- transactions (run --assignment group) */

/* A transactional producer, transactional.id txn_id: its first act
 * fences every earlier producer of that id (a former owner of the
 * partition that comes back late can commit nothing more) and aborts
 * its open transaction. Each send opens a transaction if none is;
 * ws_producer_flush commits it. Returns 0, or an error with a sentence
 * in err. */
int ws_producer_open_txn(const ws_kafka_opts *opts, const char *txn_id,
                         int timeout_ms, ws_producer **out, char *err);
/* Aborts the open transaction, if any (its records are never seen by
 * read_committed consumers). */
void ws_producer_abort(ws_producer *p);
/* Adds the consumer's next offsets to the open transaction (committed to
 * its group with the records: KIP-447, fenced by the group's
 * generation). Returns 0 or an error as ws_producer_flush. */
int ws_producer_send_offsets(ws_producer *p, rd_kafka_t *consumer,
                             const rd_kafka_topic_partition_list_t *offsets,
                             char *why);
/* Follows one topic partition: ws_producer_tracked is the largest offset
 * delivered into it in the current transaction (-1: none). */
void ws_producer_track(ws_producer *p, const char *topic, int32_t partition);
int64_t ws_producer_tracked(const ws_producer *p);
/* Non-zero once fenced. */
int ws_producer_fenced(const ws_producer *p);

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
