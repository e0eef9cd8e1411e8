/*
 * produce.h - `walletstream produce`: JSON lines to the input topic,
 * keyed by wallet_id when it can be read (so that a wallet's events stay
 * in one partition, in order).
 */
#ifndef WS_PRODUCE_H
#define WS_PRODUCE_H

#include <stdint.h>

#include "kafka_source.h"

typedef struct ws_produce_totals {
    uint64_t sent;
    uint64_t delivered;
    uint64_t failed;
    uint64_t blank;         /* empty or whitespace-only lines skipped */
    int print_offsets;      /* in: each line acknowledged before the next
                               is read, its "partition:offset" printed on
                               stdout (read-your-writes, README) */
} ws_produce_totals;

/* Produces every non-blank line of files[0..n) ("-": stdin) to
 * opts->topic and waits for every delivery report. Returns 0 when all
 * were delivered, else an error (logged). t->print_offsets is read;
 * the rest of *t is set. */
int ws_produce_files(const ws_kafka_opts *opts, char *const *files, int n,
                     ws_produce_totals *t);

#endif
