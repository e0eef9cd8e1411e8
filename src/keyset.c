/*
 * keyset.c - open addressing over an arena of length-prefixed keys.
 */
#include "keyset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ws.h"

struct entry {
    size_t offset;      /* of the key's bytes in the arena */
    size_t len;
};

struct ws_keyset {
    char *arena;
    size_t used, cap;
    struct entry *keys;     /* insertion order */
    size_t count, keys_cap;
    uint32_t *slots;        /* index + 1 into keys; 0 is empty */
    size_t nslots;          /* a power of two, at least twice count */
};

int ws_keyset_new(ws_keyset **out)
{
    ws_keyset *s = calloc(1, sizeof *s);

    if (!s)
        return WS_ERR_NOMEM;
    s->nslots = 64;
    s->slots = calloc(s->nslots, sizeof *s->slots);
    if (!s->slots) {
        free(s);
        return WS_ERR_NOMEM;
    }
    *out = s;
    return WS_OK;
}

void ws_keyset_free(ws_keyset *s)
{
    if (!s)
        return;
    free(s->arena);
    free(s->keys);
    free(s->slots);
    free(s);
}

static size_t slot_of(const ws_keyset *s, const char *key, size_t n)
{
    return (size_t)XXH3_64bits(key, n) & (s->nslots - 1);
}

static int grow_slots(ws_keyset *s)
{
    size_t nslots = s->nslots * 2, i;
    uint32_t *slots = calloc(nslots, sizeof *slots);

    if (!slots)
        return WS_ERR_NOMEM;
    free(s->slots);
    s->slots = slots;
    s->nslots = nslots;
    for (i = 0; i < s->count; i++) {
        size_t j = slot_of(s, s->arena + s->keys[i].offset, s->keys[i].len);

        while (s->slots[j])
            j = (j + 1) & (nslots - 1);
        s->slots[j] = (uint32_t)(i + 1);
    }
    return WS_OK;
}

int ws_keyset_add(ws_keyset *s, const char *key, size_t n)
{
    size_t j = slot_of(s, key, n);

    while (s->slots[j]) {
        const struct entry *e = &s->keys[s->slots[j] - 1];

        if (e->len == n && memcmp(s->arena + e->offset, key, n) == 0)
            return WS_OK;
        j = (j + 1) & (s->nslots - 1);
    }
    if (s->used + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        char *a;

        while (cap < s->used + n)
            cap *= 2;
        if (!(a = realloc(s->arena, cap)))
            return WS_ERR_NOMEM;
        s->arena = a;
        s->cap = cap;
    }
    if (s->count == s->keys_cap) {
        size_t cap = s->keys_cap ? s->keys_cap * 2 : 64;
        struct entry *k = realloc(s->keys, cap * sizeof *k);

        if (!k)
            return WS_ERR_NOMEM;
        s->keys = k;
        s->keys_cap = cap;
    }
    memcpy(s->arena + s->used, key, n);
    s->keys[s->count].offset = s->used;
    s->keys[s->count].len = n;
    s->used += n;
    s->slots[j] = (uint32_t)(++s->count);
    if (s->count * 2 > s->nslots)
        return grow_slots(s);
    return WS_OK;
}

size_t ws_keyset_count(const ws_keyset *s)
{
    return s->count;
}

const char *ws_keyset_key(const ws_keyset *s, size_t i, size_t *n)
{
    *n = s->keys[i].len;
    return s->arena + s->keys[i].offset;
}

void ws_keyset_clear(ws_keyset *s)
{
    if (s->count)
        memset(s->slots, 0, s->nslots * sizeof *s->slots);
    s->count = 0;
    s->used = 0;
}
