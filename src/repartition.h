/*
 * repartition.h - the input topic re-keyed by wallet, for the instances
 * of a group (run --assignment group; DESIGN "Many machines").
 *
 * Producers may spread one wallet over every partition of the input
 * topic; a group's instances share partitions, so each wallet must live
 * in one. Every instance runs a repartitioner: a member of the consumer
 * group "<group>.repartition" (static, cooperative-sticky) that reads its
 * share of the input topic and writes each record unchanged (key, value,
 * timestamp) to partition ws_shard_index(wallet_id, P) of
 * <topic>.by-wallet, with the header walletstream.source
 * (topic/partition/offset: dead letters, statements and the applied
 * topic name the original record). A record without a readable
 * wallet_id goes to partition (its partition mod P), to be rejected
 * there. When a reader waits for it (ws_repartition_want_marks), a
 * transaction also carries marks (WS_REPARTITION_MARK): to each
 * partition, how far it read an input partition. Each poll's records,
 * the marks and the input offsets after the records are
 * committed in one transaction (KIP-447: a member that lost its
 * partitions cannot commit): every input record is in <topic>.by-wallet
 * exactly once for read_committed readers.
 *
 * Ownership: the repartitioner owns its thread, consumer and producer.
 */
#ifndef WS_REPARTITION_H
#define WS_REPARTITION_H

#include "kafka_source.h"

typedef struct ws_repartition ws_repartition;

/* A mark's header (its value: the input topic). The mark's value is
 * "P:NEXT[,P:NEXT...]": every record of input partition P below offset
 * NEXT that belongs to this partition of <topic>.by-wallet is before the
 * mark. It has no key and is no transaction: readers take it apart. */
#define WS_REPARTITION_MARK "walletstream.mark"

/* Parses a mark's value into parts[i], nexts[i] (at most max): their
 * count, or -1 when it is malformed. */
int ws_repartition_mark_parse(const void *value, size_t len,
                              int32_t *parts, int64_t *nexts, int max);

/* Starts it: reads in->topic as a member of "<in->group>.repartition"
 * (in->instance_id), writes `out_topic` of `partitions` partitions with
 * transactional.id "walletstream.<group>.repartition.<instance>".
 * Returns 0, or an error with a sentence in err[0..WS_SOURCE_ERR_MAX). */
int ws_repartition_start(const ws_kafka_opts *in, const char *out_topic,
                         int partitions, ws_repartition **out, char *err);

/* A reader waits until every partition of <topic>.by-wallet holds the
 * records of input partition p below `offset` + 1 (a product's
 * min_offset in a group): if this member reads p, its next transaction
 * once it has read past `offset` carries a mark of p to every
 * partition. Any thread; NULL is accepted. */
void ws_repartition_want_marks(ws_repartition *r, int p, int64_t offset);

/* Commits what it read and stops. NULL is accepted. */
void ws_repartition_stop(ws_repartition *r);

/* Records written (committed) so far. */
unsigned long long ws_repartition_records(ws_repartition *r);

#endif
