#!/usr/bin/env bash
# bench/forward.sh - a wallet's answer asked of the instance that owns its
# partition against the same answer asked of another instance of the
# group, which forwards it to the owner (`run --assignment group`;
# docs/BENCHMARKS.md, "Forwarded reads").
#
#   bench/forward.sh [--worktree] [--keep]
#
# Builds walletstream from a clean export of REF (bench/lib.sh; --worktree:
# the working tree; WALLETSTREAM: that binary) and loadgen. Starts a
# single-node Apache Kafka (scripts/kafka), preloads EVENTS clean events
# over WALLETS wallets (w0, w1, ...) into a topic of PARTITIONS partitions,
# starts two instances of a group and waits until they have counted every
# event and each serves some partitions. Then, RUNS times, bench/forward.py:
# ROUNDS rounds over up to 64 wallets the first instance owns, each asking
# GET /balance/{w} of the owner (local) and of the other instance
# (forwarded), then the same with ?min_offset= of an offset already
# applied (the read-your-writes path, answered at once), on keep-alive
# connections, in alternating order. Every answer must be 200 and a pair's
# two answers the same.
#
# Reports per kind the median over the runs of the p50 and p99, and the
# ratio forwarded / local of the p50s (measured in the same rounds);
# writes everything as JSON to bench/results/forward-<UTC time>.json.
#
# Environment (defaults): EVENTS (20000), WALLETS (1000), PARTITIONS (6),
# ROUNDS (2000), RUNS (3), SESSION_MS (6000), REF, BENCH_TMP, WALLETSTREAM,
# KAFKA_DIR (bench/lib.sh).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

TPUT_EVENTS=${EVENTS:-20000}
TPUT_WALLETS=${WALLETS:-1000}
PARTITIONS=${PARTITIONS:-6}
ROUNDS=${ROUNDS:-2000}
RUNS=${RUNS:-3}
SESSION_MS=${SESSION_MS:-6000}
bench_args "$@"

bench_init forward
for t in jq curl kcat python3; do need $t; done
group_bench_prepare "$WORKTREE" forwarded-read fw$$ "$PARTITIONS"
: >"$RUNS_FILE"          # the runs only

g_start "$T/a" fw-$$ a
g_start "$T/b" fw-$$ b
for _ in $(seq 1 12000); do
    [ "$(g_counted)" = "$TPUT_EVENTS" ] && [ "$(g_owned "${G_APIS[0]}")" -gt 0 ] &&
        [ "$(g_owned "${G_APIS[1]}")" -gt 0 ] && break
    sleep 0.05
done
[ "$(g_counted)" = "$TPUT_EVENTS" ] || die "the group counted $(g_counted) events, expected $TPUT_EVENTS"
say "kafka $KAFKA_VERSION_USED at $KAFKA; instances a at ${G_APIS[0]} ($(g_owned "${G_APIS[0]}") partitions), b at ${G_APIS[1]} ($(g_owned "${G_APIS[1]}"))"

for run in $(seq 1 "$RUNS"); do
    python3 bench/forward.py "${G_APIS[0]}" "${G_APIS[1]}" "$TPUT_WALLETS" "$ROUNDS" "r$run" |
        jq -c --argjson run "$run" '. + {run: $run}' >>"$RUNS_FILE" ||
        die "forward.py failed"
    tail -n 1 "$RUNS_FILE" | jq -r '"  run \(.run): p50/p99 ms local \(.local_ms.p50)/\(.local_ms.p99), forwarded \(.forwarded_ms.p50)/\(.forwarded_ms.p99); with min_offset local \(.local_min_offset_ms.p50)/\(.local_min_offset_ms.p99), forwarded \(.forwarded_min_offset_ms.p50)/\(.forwarded_min_offset_ms.p99)"'
done
g_stop

SUMMARY=$(jq -s "$JQ_STATS"' {runs: length,
    local_p50: stat(.local_ms.p50), local_p99: stat(.local_ms.p99),
    forwarded_p50: stat(.forwarded_ms.p50), forwarded_p99: stat(.forwarded_ms.p99),
    local_min_offset_p50: stat(.local_min_offset_ms.p50), local_min_offset_p99: stat(.local_min_offset_ms.p99),
    forwarded_min_offset_p50: stat(.forwarded_min_offset_ms.p50),
    forwarded_min_offset_p99: stat(.forwarded_min_offset_ms.p99),
    ratio_p50: stat(.forwarded_ms.p50 / .local_ms.p50),
    ratio_min_offset_p50: stat(.forwarded_min_offset_ms.p50 / .local_min_offset_ms.p50)}' "$RUNS_FILE")
printf '%s\n' "$SUMMARY" | jq -r '"medians of \(.runs) runs: local p50 \(.local_p50.median) p99 \(.local_p99.median) ms; forwarded p50 \(.forwarded_p50.median) p99 \(.forwarded_p99.median) ms (ratio \(.ratio_p50.median)); with min_offset local \(.local_min_offset_p50.median)/\(.local_min_offset_p99.median), forwarded \(.forwarded_min_offset_p50.median)/\(.forwarded_min_offset_p99.median) (ratio \(.ratio_min_offset_p50.median))"'
bench_result "$(printf '%s\n' "$SUMMARY" | jq -r '"forwarded p50 \(.forwarded_p50.median) ms against local \(.local_p50.median) (\(.ratio_p50.median)x)"')"
jq -n --arg commit "$COMMIT" --arg built "$BUILT_FROM" --argjson machine "$(machine_json)" \
    --arg kafka "$KAFKA_VERSION_USED" --argjson rounds "$ROUNDS" --argjson events "$TPUT_EVENTS" \
    --argjson wallets "$TPUT_WALLETS" --argjson partitions "$PARTITIONS" \
    --argjson summary "$SUMMARY" --slurpfile runs "$RUNS_FILE" \
    '{bench: "forward", commit: $commit, built_from: $built, machine: $machine, kafka: $kafka, events: $events,
      wallets: $wallets, partitions: $partitions, rounds: $rounds, summary: $summary, runs: $runs}' >"$T/result.json"
result_write forward "$T/result.json"
