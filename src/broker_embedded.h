/*
 * broker_embedded.h - librdkafka's mock cluster as walletstream's
 * embedded Kafka broker (SPEC §7).
 *
 * It speaks the Kafka protocol on loopback, so any client (kcat,
 * kafka-console-producer, librdkafka) can produce to it. Its log lives in
 * memory: it keeps about 5 MiB per partition (older records vanish), does
 * not compact, and accepts transactional requests without implementing
 * them. It is for trying walletstream out, demos and tests.
 */
#ifndef WS_BROKER_EMBEDDED_H
#define WS_BROKER_EMBEDDED_H

#define WS_BROKER_ERR_MAX 256
#define WS_BROKER_LIMITS                                                  \
    "The embedded broker keeps its records in memory only (about 5 MiB " \
    "per partition; older records vanish) and loses them when its "      \
    "process ends; use --brokers with a real Kafka cluster in production."

typedef struct ws_broker ws_broker;

/* Starts a one-broker mock cluster on loopback with `topic` (partitions
 * partitions), `topic`.dlq (1 partition) and the changelog topics
 * (partitions partitions; not compacted: the mock does not compact). Returns 0, or WS_ERR_IO
 * with a sentence in err[0..WS_BROKER_ERR_MAX). */
int ws_broker_start(const char *topic, int partitions, ws_broker **out,
                    char *err);

/* "127.0.0.1:PORT"; valid until ws_broker_stop. */
const char *ws_broker_bootstrap(const ws_broker *b);

/* Writes the bootstrap address to DIR/kafka.bootstrap (atomically, by
 * rename). Returns 0 or WS_ERR_IO with a sentence in err. */
int ws_broker_publish(const ws_broker *b, const char *dir, char *err);

/* Removes DIR/kafka.bootstrap when it still names this broker. */
void ws_broker_unpublish(const ws_broker *b, const char *dir);

/* Reads DIR/kafka.bootstrap into buf[0..cap). Returns 0, or WS_ERR_IO
 * with a sentence in err. */
int ws_broker_read_bootstrap(const char *dir, char *buf, size_t cap,
                             char *err);

/* Stops the cluster; its records are gone. NULL is accepted. */
void ws_broker_stop(ws_broker *b);

/* The mock cluster itself, for the fault injection of the test tool
 * tests/tools/fault_broker.c (rdkafka_mock.h). */
struct rd_kafka_mock_cluster_s *ws_broker_mock_cluster(const ws_broker *b);

#endif
