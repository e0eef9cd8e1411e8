#!/usr/bin/env bash
# bench/ryw.sh - read-your-writes round trips on a real Kafka broker
# (docs/BENCHMARKS.md, "Read-your-writes").
#
#   bench/ryw.sh [--worktree] [--keep]
#
# Builds walletstream from a clean export of REF (bench/lib.sh), starts a
# single-node Kafka (scripts/kafka; KAFKA_DIR: use that one) and
# `walletstream run --brokers B --topic ryw` (its defaults plus WS_ARGS) on
# a fresh topic of 3 partitions, then, RUNS times, alternating:
#
#   idle   bench/ryw.py: ROUNDS round trips (produce one record with
#          `walletstream produce --print-offsets`, read its acknowledged
#          partition:offset, GET /balance/{wallet}?min_offset=P:O with
#          wait_ms=10000), nothing else running
#   load   the same while build/loadgen produces RATE events/s (gen_events'
#          records, keyed by wallet) into the same topic
#
# ROUTE=top: the rounds read a product instead (bench/ryw.py: each credit
# the product's largest, GET /top_credits/{product}?min_offset=P:O must
# list it first), which waits for every shard, and in a group for every
# partition.
#
# Reports per phase the medians over the runs of the round trip's p50 and
# p99 (produce -> acknowledged -> answer including the write), its parts
# (ack; the read with min_offset) and, measured in the same round, a plain
# GET /balance without min_offset (the reference). Every 200 answer must
# include its own write (stale = 0), else the script fails; answers that
# waited 10 s in vain (504) are counted as timeouts.
#
# Environment: RUNS (3), ROUNDS (1000), RATE (10000), ROUTE (balance),
# WS_ARGS, KAFKA_DIR, BENCH_TMP, REF, WALLETSTREAM (as bench/stream.sh).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-1000}
RATE=${RATE:-10000}
WS_ARGS=${WS_ARGS:-}
ROUTE=${ROUTE:-balance}
bench_args "$@"

bench_init ryw
need jq
need python3
build_walletstream "$WORKTREE"
build_loadgen
LG=$T/loadgen
cp build/loadgen "$LG"
machine_describe
say "walletstream read-your-writes benchmark  (binary from $BUILT_FROM, sha256 $BIN_SHA)"
machine_line
kafka_up
kafka_topic ryw 3
# A group's instance tells the others its URL: a port of its own, not 0.
case " $WS_ARGS " in
*" --assignment group "*) LISTEN=(--listen "127.0.0.1:$(free_port)") ;;
*) LISTEN=() ;;
esac
# shellcheck disable=SC2086
start_ws "$T/ws" --brokers "$KAFKA" --topic ryw "${LISTEN[@]}"
say "kafka $KAFKA_VERSION_USED at $KAFKA; walletstream run at $WS_API ${WS_ARGS:+($WS_ARGS)}; route $ROUTE"
RUNS_JSONL=$T/runs.jsonl
: >"$RUNS_JSONL"

phase() { # phase LABEL RUN
    python3 bench/ryw.py "$BIN" "$KAFKA" ryw "$WS_API" "$ROUNDS" "$1$2" "$ROUTE" |
        jq -c --arg phase "$1" --argjson run "$2" '. + {phase: $phase, run: $run}' >>"$RUNS_JSONL"
    tail -n 1 "$RUNS_JSONL" | jq -r '"  \(.phase) run \(.run): round trip p50 \(.round_trip_ms.p50) p99 \(.round_trip_ms.p99) ms (ack p50 \(.ack_ms.p50), read with min_offset p50 \(.ryw_read_ms.p50) p99 \(.ryw_read_ms.p99), plain read p50 \(.plain_read_ms.p50) p99 \(.plain_read_ms.p99)); stale \(.stale), timeouts \(.timeouts)"'
    [ "$(tail -n 1 "$RUNS_JSONL" | jq .stale)" = 0 ] || die "a read missed its own write"
}

for run in $(seq 1 "$RUNS"); do
    phase idle "$run"
    "$LG" -b "$KAFKA" -t ryw -r "$RATE" -d 3600 -x "load$run-" -q >"$T/loadgen.out" 2>&1 &
    LG_PID=$!
    bench_track "$LG_PID"
    sleep 3     # the load reaches its rate (a warm-up, not a guess at a result)
    phase load "$run"
    kill "$LG_PID" 2>/dev/null || true
    wait "$LG_PID" 2>/dev/null || true
done
LOAD_APPLIED=$(metrics | awk '/^walletstream_events_total\{outcome="applied"\}/ {print $2}')
ws_stop

SUMMARY=$(jq -s "$JQ_STATS"' group_by(.phase) | map({phase: .[0].phase, runs: length,
    round_trip_p50: stat(.round_trip_ms.p50), round_trip_p99: stat(.round_trip_ms.p99),
    ack_p50: stat(.ack_ms.p50), ack_p99: stat(.ack_ms.p99),
    ryw_read_p50: stat(.ryw_read_ms.p50), ryw_read_p99: stat(.ryw_read_ms.p99),
    plain_read_p50: stat(.plain_read_ms.p50), plain_read_p99: stat(.plain_read_ms.p99), stale: (map(.stale) | add),
    timeouts: (map(.timeouts) | add)})' "$RUNS_JSONL")
printf '%s\n' "$SUMMARY" | jq -r '.[] | "\(.phase): round trip p50 \(.round_trip_p50.median) ms, p99 \(.round_trip_p99.median) ms (medians of \(.runs) runs); ack p50 \(.ack_p50.median); read with min_offset p50 \(.ryw_read_p50.median) p99 \(.ryw_read_p99.median); plain read p50 \(.plain_read_p50.median) p99 \(.plain_read_p99.median); stale \(.stale), timeouts \(.timeouts)"'
bench_result "$(printf '%s\n' "$SUMMARY" | jq -r 'map("\(.phase) p50 \(.round_trip_p50.median) p99 \(.round_trip_p99.median) ms") | join(", ")') (produce -> ack -> read with min_offset)"
jq -n --arg commit "$COMMIT" --arg built "$BUILT_FROM" --argjson machine "$(machine_json)" \
    --arg kafka "$KAFKA_VERSION_USED" --arg ws_args "$WS_ARGS" --arg route "$ROUTE" --argjson rate "$RATE" --argjson rounds "$ROUNDS" \
    --argjson summary "$SUMMARY" --slurpfile runs "$RUNS_JSONL" --arg applied "${LOAD_APPLIED:-0}" \
    '{bench: "ryw", commit: $commit, built_from: $built, machine: $machine, kafka: $kafka, ws_args: $ws_args, route: $route,
      load_rate: $rate, rounds: $rounds, applied_at_end: ($applied | tonumber), summary: $summary, runs: $runs}' >"$T/result.json"
result_write ryw "$T/result.json"
