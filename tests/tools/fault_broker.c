/*
 * fault_broker.c - test tool: walletstream's embedded broker (the
 * librdkafka mock cluster of src/broker_embedded.c) with its fault
 * injection driven from stdin, for tests/e2e/test_broker_faults.py.
 *
 *   fault_broker --data-dir DIR --topic T --partitions N
 *
 * Creates the same topics as `walletstream broker`, writes
 * DIR/kafka.bootstrap and prints "bootstrap ADDRESS". Then reads one
 * command per line from stdin, applies it to the mock cluster and prints
 * "ok COMMAND" (or "error COMMAND: why"), flushed, when it took effect:
 *
 *   down                  broker 1 closes its connections, refuses new ones
 *   up                    broker 1 accepts connections again
 *   rtt MS                broker 1 answers every request MS ms late
 *   errors API N CODE     the next N requests of Kafka API key API (0
 *                         Produce, 1 Fetch, 8 OffsetCommit, ...) fail with
 *                         error CODE (a Kafka protocol error number)
 *   clear API             drops the errors still queued for API
 *
 * End of input stops the cluster. Test-only: not part of the product, so
 * production code carries no fault switches (docs/TESTING.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "broker_embedded.h"
#include "ws.h"

#define BROKER_ID 1

static int apply(rd_kafka_mock_cluster_t *mc, const char *line, char *why,
                 size_t cap)
{
    int a, b, c;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (strcmp(line, "down") == 0) {
        err = rd_kafka_mock_broker_set_down(mc, BROKER_ID);
    } else if (strcmp(line, "up") == 0) {
        err = rd_kafka_mock_broker_set_up(mc, BROKER_ID);
    } else if (sscanf(line, "rtt %d", &a) == 1 && a >= 0) {
        err = rd_kafka_mock_broker_set_rtt(mc, BROKER_ID, a);
    } else if (sscanf(line, "errors %d %d %d", &a, &b, &c) == 3 && a >= 0 &&
               a < 32768 && b > 0 && b <= 100000) {
        rd_kafka_resp_err_t *codes = calloc((size_t)b, sizeof *codes);
        int i;

        if (!codes) {
            snprintf(why, cap, "out of memory");
            return -1;
        }
        for (i = 0; i < b; i++)
            codes[i] = (rd_kafka_resp_err_t)c;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)b,
                                                codes);
        free(codes);
    } else if (sscanf(line, "clear %d", &a) == 1 && a >= 0 && a < 32768) {
        rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
    } else {
        snprintf(why, cap, "unknown command");
        return -1;
    }
    if (err) {
        snprintf(why, cap, "%s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *topic = "transactions_topic";
    char err[WS_BROKER_ERR_MAX], line[256], why[256];
    int partitions = 3, i;
    ws_broker *b;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--data-dir") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--topic") == 0)
            topic = argv[i + 1];
        else if (strcmp(argv[i], "--partitions") == 0)
            partitions = atoi(argv[i + 1]);
    }
    if (!dir || i != argc || partitions < 1) {
        fprintf(stderr, "usage: fault_broker --data-dir DIR [--topic T] "
                        "[--partitions N]\n");
        return 2;
    }
    if (ws_broker_start(topic, partitions, &b, err) != WS_OK ||
        ws_broker_publish(b, dir, err) != WS_OK) {
        fprintf(stderr, "fault_broker: %s\n", err);
        return 1;
    }
    printf("bootstrap %s\n", ws_broker_bootstrap(b));
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (apply(ws_broker_mock_cluster(b), line, why, sizeof why) == 0)
            printf("ok %s\n", line);
        else
            printf("error %s: %s\n", line, why);
        fflush(stdout);
    }
    ws_broker_unpublish(b, dir);
    ws_broker_stop(b);
    return 0;
}
