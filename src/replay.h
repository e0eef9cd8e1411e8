/*
 * replay.h - `walletstream replay`: JSON lines through the same decode ->
 * engine -> store path as the Kafka service, without a broker.
 */
#ifndef WS_REPLAY_H
#define WS_REPLAY_H

#include <stdint.h>

#include "store.h"

typedef struct ws_replay_totals {
    int64_t records;
    int64_t outcome[WS_OUTCOME_COUNT];
    int64_t blank;          /* empty or whitespace-only lines skipped */
} ws_replay_totals;

/* Replays files[0..nfiles) ("-" is stdin) into the open store, committing
 * every `batch_max` records, when a batch has waited `linger_ms` for
 * more lines (0: WS_REPLAY_LINGER_MS), and at the end of each file.
 * Rejected lines are appended to dead_letters_path, flushed and fsynced
 * before the batch that passes them commits. Returns 0, or an error
 * after logging it; the totals count what was committed. */
#define WS_REPLAY_LINGER_MS 1000
int ws_replay_files(ws_store *s, const char *dead_letters_path,
                    char *const *files, int nfiles, uint64_t batch_max,
                    uint64_t linger_ms, ws_replay_totals *totals);

#endif
