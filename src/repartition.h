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
 * there. Each poll's records and the input offsets after them are
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

/* Starts it: reads in->topic as a member of "<in->group>.repartition"
 * (in->instance_id), writes `out_topic` of `partitions` partitions with
 * transactional.id "walletstream.<group>.repartition.<instance>".
 * Returns 0, or an error with a sentence in err[0..WS_SOURCE_ERR_MAX). */
int ws_repartition_start(const ws_kafka_opts *in, const char *out_topic,
                         int partitions, ws_repartition **out, char *err);

/* Commits what it read and stops. NULL is accepted. */
void ws_repartition_stop(ws_repartition *r);

/* Records written (committed) so far. */
unsigned long long ws_repartition_records(ws_repartition *r);

#endif
