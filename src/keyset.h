/*
 * keyset.h - a set of byte-string keys, filled during one batch and
 * emptied after it (the wallets and products a batch changed).
 *
 * Keys are copied into an arena; clearing keeps the memory, so a steady
 * stream of batches allocates nothing. Stream thread only.
 */
#ifndef WS_KEYSET_H
#define WS_KEYSET_H

#include <stddef.h>

typedef struct ws_keyset ws_keyset;

int ws_keyset_new(ws_keyset **out);
void ws_keyset_free(ws_keyset *s);

/* Adds key[0..n) unless present. Returns 0 or WS_ERR_NOMEM. */
int ws_keyset_add(ws_keyset *s, const char *key, size_t n);

/* Number of keys, and the i-th in insertion order (0 <= i < count). */
size_t ws_keyset_count(const ws_keyset *s);
const char *ws_keyset_key(const ws_keyset *s, size_t i, size_t *n);

/* Empties the set, keeping its memory. */
void ws_keyset_clear(ws_keyset *s);

#endif
