/*
 * dlq.c - a dead letter: the original record plus three headers.
 */
#include "dlq.h"

#include <stdio.h>

int ws_dlq_send(ws_producer *p, const char *dlq_topic,
                const rd_kafka_message_t *m, const char *topic,
                const ws_source_pos *origin, const ws_result *res, char *why)
{
    char source[600];
    ws_header h[3];

    snprintf(source, sizeof source, "%s/%d/%lld", topic,
             (int)origin->partition, (long long)origin->offset);
    h[0].name = "walletstream.reason";
    h[0].value = ws_reason_name(res->reason);
    h[1].name = "walletstream.detail";
    h[1].value = res->detail;
    h[2].name = "walletstream.source";
    h[2].value = source;
    return ws_producer_send(p, dlq_topic, m->key, m->key_len, m->payload,
                            m->len, h, 3, why);
}
