/*
 * members.h - a group's members and the partitions each owns, as the
 * group's coordinator reports them (Kafka's DescribeConsumerGroups), so
 * that an instance can send a request to the owner of what it does not
 * hold (run --assignment group). Each member names its API in its
 * client.id: "walletstream <URL>".
 *
 * A thread asks the coordinator every second (sooner after
 * ws_members_refresh); readers get the last answer. Any thread.
 */
#ifndef WS_MEMBERS_H
#define WS_MEMBERS_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "json_out.h"

#define WS_MEMBERS_URL_MAX 512

typedef struct ws_members ws_members;

/* Starts following `group` through the client `admin` (which must
 * outlive it); `topic` is the topic whose partitions are owned, `self`
 * this instance's URL. Returns 0 or WS_ERR_NOMEM. */
int ws_members_start(rd_kafka_t *admin, const char *group, const char *topic,
                     const char *self, ws_members **out);
void ws_members_stop(ws_members *m);

/* Asks the coordinator again now (a request met a former owner); the
 * second waits (at most timeout_ms) for an answer asked after the call. */
void ws_members_refresh(ws_members *m);
void ws_members_refresh_wait(ws_members *m, int timeout_ms);

/* The URL of the member owning partition p into url[0..cap): 0, 1 when
 * it is this instance, or WS_ERR_NOT_FOUND (no member owns it as far as
 * known). */
int ws_members_owner(ws_members *m, int p, char *url, size_t cap);

/* The other members' URLs (at most cap of them) into urls; returns how
 * many, or -1 when the group has not been described yet. */
int ws_members_peers(ws_members *m, char urls[][WS_MEMBERS_URL_MAX],
                     int cap);

/* The partitions this instance (instance id `self`) keeps warm with
 * `replicas` standby copies each: for every partition, the `replicas`
 * members after its owner in the order of their instance ids (not the
 * owner itself). Bit p of the mask; 0 before the group is described. */
uint64_t ws_members_standby(ws_members *m, const char *self, int replicas);

/* The group as JSON into b: {"group":…,"state":…,"members":[{"instance":…,
 * "url":…,"partitions":[…]},…],"described_ms_ago":…}. */
void ws_members_json(ws_members *m, ws_buf *b);

#endif
