/*
 * peer.h - requests to the other instances of a group (run --assignment
 * group), over HTTP with libcurl: a wallet's answer from the instance
 * that owns its partition, a product's top lists from every instance
 * (merged by the API). They fill the hooks of ws_api_group (api.h).
 *
 * Any thread (each request has a curl handle of its own; idle handles
 * are kept for the next requests, with their connections open).
 */
#ifndef WS_PEER_H
#define WS_PEER_H

#include "api.h"
#include "members.h"
#include "repartition.h"

typedef struct ws_peer ws_peer;

/* The hooks for api->group, asking the members `m` knows (m must outlive
 * it). Returns 0 or WS_ERR_NOMEM. */
int ws_peer_new(ws_members *m, ws_peer **out, ws_api_group *hooks);
/* The bearer token the requests carry (the API's own: every instance of
 * a group has the same), once the API has read it. 0 or WS_ERR_NOMEM. */
int ws_peer_set_token(ws_peer *p, const char *token);
/* This instance's repartitioner, asked for marks (api.h, want_marks):
 * set once it runs, NULL before it stops. */
void ws_peer_set_repartition(ws_peer *p, ws_repartition *r);
void ws_peer_free(ws_peer *p);

/* Process-wide: before any thread starts, and at the end. */
int ws_peer_global_init(void);
void ws_peer_global_cleanup(void);

#endif
