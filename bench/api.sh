#!/usr/bin/env bash
# bench/api.sh - HTTP API benchmark (docs/BENCHMARKS.md, "HTTP API").
#
#   bench/api.sh [--worktree] [--keep] [--skip-ingest]
#
# Builds walletstream from a clean export of REF (bench/lib.sh), and
# build/gen_events, build/loadgen, build/mhd_fixed. Installs wrk (Debian
# package wrk) if missing. Then:
#
#   store      gen_events -c -n API_WALLETS -w API_WALLETS (every wallet
#              gets one event), replayed into a data directory
#   servers    `walletstream run --http-threads HTTP_THREADS` on that
#              directory (against the real Kafka of scripts/kafka with
#              API_BROKER=real, the default, or its embedded broker with
#              API_BROKER=embedded) and the reference `mhd_fixed`: a minimal
#              libmicrohttpd server (bench/mhd_fixed.c, same threading
#              mode and pool size as src/http.c) answering a fixed JSON body
#   idle       for each connection count in API_CONNS, RUNS pairs,
#              alternating: `wrk -t WRK_THREADS -c C -d API_DURATION
#              --latency -s bench/wrk_balance.lua` against walletstream,
#              then against mhd_fixed; every request is GET /balance/w<n>
#              with n random in 0 .. API_WALLETS-1. Requests/s and latency
#              p50/p99/p99.9; ratio = median of the per-pair ratios
#              walletstream / mhd_fixed.
#   ingest     the same for each count in INGEST_CONNS while loadgen
#              produces INGEST_RATE events/s over the same wallets into the
#              topic walletstream consumes (started INGEST_WARMUP s before
#              the first pair); the events walletstream processed meanwhile
#              are read from /metrics.
#
# Prints one line per step and the medians; writes everything as JSON to
# bench/results/api-<UTC time>.json (git-ignored).
#
# Environment (defaults): API_WALLETS (1000000), API_DURATION (10, s per wrk
# run), RUNS (3), API_CONNS ("16 64"), INGEST_CONNS ("16 64"), WRK_THREADS
# (2), HTTP_THREADS (4, walletstream's default), INGEST_RATE (100000; 0:
# no ingest phase), INGEST_WARMUP (3), API_BROKER (real), REF,
# WALLETSTREAM, BENCH_TMP, KAFKA_DIR (bench/lib.sh).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

API_WALLETS=${API_WALLETS:-1000000}
API_DURATION=${API_DURATION:-10}
RUNS=${RUNS:-3}
API_CONNS=${API_CONNS-16 64}
INGEST_CONNS=${INGEST_CONNS-16 64}
WRK_THREADS=${WRK_THREADS:-2}
HTTP_THREADS=${HTTP_THREADS:-4}
INGEST_RATE=${INGEST_RATE:-100000}
INGEST_WARMUP=${INGEST_WARMUP:-3}
API_BROKER=${API_BROKER:-real}

bench_opt() { # this script's own options (bench_args)
    case $1 in
    --skip-ingest) INGEST_RATE=0 ;;
    *) return 1 ;;
    esac
}
bench_args "$@"
case $API_BROKER in real | embedded) ;; *) echo "api.sh: API_BROKER is real or embedded" >&2; exit 2 ;; esac

bench_init api
need_time
need jq
need curl
need wrk
need python3
build_walletstream "$WORKTREE"
build_gen_events
build_loadgen
build_mhd_fixed
LG=$T/loadgen MHD=$T/mhd_fixed
cp build/loadgen "$LG"
cp build/mhd_fixed "$MHD"
cp bench/wrk_balance.lua "$T/wrk_balance.lua"
machine_describe
say "walletstream API benchmark  (binary from $BUILT_FROM, sha256 $BIN_SHA; $(wrk -v 2>&1 | head -n 1 | cut -c1-40); libmicrohttpd $(pkg-config --modversion libmicrohttpd))"
machine_line

RUNS_JSONL=$T/runs.jsonl
: >"$RUNS_JSONL"

# --- store ----------------------------------------------------------------------
DATA=$T/data
t0=$(now)
build/gen_events -c -n "$API_WALLETS" -w "$API_WALLETS" -p 1000 -s 42 >"$T/events.jsonl"
"$BIN" replay --data-dir "$DATA" "$T/events.jsonl" >"$T/replay.out" 2>&1 ||
    { cat "$T/replay.out" >&2; die "replay failed"; }
grep -q "replayed $API_WALLETS records: $API_WALLETS applied" "$T/replay.out" ||
    { cat "$T/replay.out" >&2; die "unexpected replay summary"; }
rm -f "$T/events.jsonl"
say "store: $API_WALLETS wallets (one event each, gen_events -c) replayed in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') s"

# --- servers --------------------------------------------------------------------
if [ "$API_BROKER" = real ]; then
    kafka_up
    TOPIC=api-$$
    kafka_topic "$TOPIC" 3
    ws_start "$T/ws" run --data-dir "$DATA" --brokers "$KAFKA" --topic "$TOPIC" --http-threads "$HTTP_THREADS"
    BROKERS=$KAFKA
    say "walletstream run on $WS_API, real Kafka ${KAFKA_VERSION_USED:-?} at $KAFKA, topic $TOPIC"
else
    ws_start "$T/ws" run --embedded-broker --data-dir "$DATA" --http-threads "$HTTP_THREADS"
    TOPIC=transactions_topic
    for _ in $(seq 1 200); do [ -s "$DATA/kafka.bootstrap" ] && break; sleep 0.05; done
    BROKERS=$(cat "$DATA/kafka.bootstrap")
    say "walletstream run on $WS_API, embedded broker at $BROKERS"
fi
ws_wait_ready 60
for id in w0 "w$((API_WALLETS - 1))"; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$WS_API/balance/$id")" = 200 ] ||
        die "GET /balance/$id did not answer 200"
done
MHD_PORT=$(free_port)
"$MHD" "$MHD_PORT" "$HTTP_THREADS" >"$T/mhd.out" 2>&1 &
MHD_PID=$!
bench_track "$MHD_PID"
"$LG" -a "127.0.0.1:$MHD_PORT" -Y / -T 10 >/dev/null 2>&1 || { cat "$T/mhd.out" >&2; die "mhd_fixed does not answer"; }
say "reference mhd_fixed on 127.0.0.1:$MHD_PORT, $HTTP_THREADS threads"

# --- wrk ------------------------------------------------------------------------
# wrk_run PHASE SERVER CONNS N ADDR: one wrk run; appends to runs.jsonl
wrk_run() {
    local phase=$1 server=$2 conns=$3 n=$4 addr=$5 out=$T/wrk.out load0
    load0=$(loadavg)
    wrk -t "$WRK_THREADS" -c "$conns" -d "${API_DURATION}s" --latency -s "$T/wrk_balance.lua" \
        "http://$addr" -- "$API_WALLETS" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
    grep -q '^WRKJSON ' "$out" || { cat "$out" >&2; die "wrk printed no summary"; }
    sed -n 's/^WRKJSON //p' "$out" | jq -c --arg p "$phase" --arg s "$server" --argjson c "$conns" --argjson n "$n" \
        --arg l0 "$load0" --arg l1 "$(loadavg)" \
        '{series: "wrk", phase: $p, server: $s, conns: $c, n: $n} + . + {load_before: $l0, load_after: $l1}' >>"$RUNS_JSONL"
    tail -n 1 "$RUNS_JSONL" | jq -r '"  \(.phase) \(.server | . + " " * ([12 - length, 1] | max))\(.conns) conns run \(.n): \(.per_s | floor) requests/s, latency p50 \(.latency_us.p50 / 1000) p99 \(.latency_us.p99 / 1000) p99.9 \(.latency_us.p99_9 / 1000) ms" + (if (.errors | add) > 0 then ", ERRORS \(.errors)" else "" end)'
}

# pairs PHASE CONNS...: RUNS pairs (walletstream, mhd_fixed) per count
pairs() {
    local phase=$1 c i
    shift
    for c in "$@"; do
        for i in $(seq 1 "$RUNS"); do
            wrk_run "$phase" walletstream "$c" "$i" "$WS_API"
            wrk_run "$phase" mhd_fixed "$c" "$i" "127.0.0.1:$MHD_PORT"
        done
    done
}

processed() { metrics >"$T/m.txt"; read -r a d r <<<"$(counters "$T/m.txt")"; echo $((a + d + r)); }

# shellcheck disable=SC2086
{
    say "idle, $API_DURATION s per wrk run, $RUNS pairs per connection count:"
    pairs idle $API_CONNS
}

INGEST=null
if [ "$INGEST_RATE" -gt 0 ] && [ -n "$INGEST_CONNS" ]; then
    nconns=$(wc -w <<<"$INGEST_CONNS")
    dur=$((INGEST_WARMUP + nconns * RUNS * 2 * (API_DURATION + 1) + 5))
    say "while ingesting: loadgen -r $INGEST_RATE over the same $API_WALLETS wallets into $TOPIC ($API_BROKER broker), $INGEST_WARMUP s before the first run:"
    "$LG" -b "$BROKERS" -t "$TOPIC" -r "$INGEST_RATE" -d "$dur" -w "$API_WALLETS" -p 1000 -s 7 \
        -x "ingest$$-" -q -o "$T/ingest.json" >"$T/ingest.out" 2>&1 &
    LG_PID=$!
    bench_track "$LG_PID"
    sleep "$INGEST_WARMUP"
    p0=$(processed) t0=$(now)
    # shellcheck disable=SC2086
    pairs ingest $INGEST_CONNS
    p1=$(processed) t1=$(now)
    kill -TERM "$LG_PID" 2>/dev/null || true
    wait "$LG_PID" || true
    INGEST=$(jq -c --argjson p0 "$p0" --argjson p1 "$p1" --argjson t0 "$t0" --argjson t1 "$t1" \
        --argjson rate "$INGEST_RATE" --arg broker "$API_BROKER" \
        '{broker: $broker, target_rate: $rate, produced: .sent, delivered: .delivered, send_rate: .send_rate,
          service_processed: ($p1 - $p0), service_per_s: (($p1 - $p0) / ($t1 - $t0)), window_s: ($t1 - $t0)}' "$T/ingest.json" 2>/dev/null ||
        jq -nc --argjson p0 "$p0" --argjson p1 "$p1" --argjson t0 "$t0" --argjson t1 "$t1" --arg broker "$API_BROKER" \
            '{broker: $broker, service_processed: ($p1 - $p0), service_per_s: (($p1 - $p0) / ($t1 - $t0)), window_s: ($t1 - $t0)}')
    jq -r '"  during the runs walletstream processed \(.service_per_s | floor) events/s (\(.service_processed) in \(.window_s * 10 | floor / 10) s); loadgen sent \(.send_rate // "?" | tostring | .[0:9]) events/s"' <<<"$INGEST"
fi
ws_stop
kill -TERM "$MHD_PID" 2>/dev/null || true
wait "$MHD_PID" || true

# --- summary --------------------------------------------------------------------
jq -s "$JQ_STATS"'
    map(select(.series == "wrk")) | group_by([.phase, .conns]) | map(
        (map(select(.server == "walletstream"))) as $w | (map(select(.server == "mhd_fixed"))) as $m |
        {phase: .[0].phase, conns: .[0].conns,
         walletstream: ($w | {runs: length, per_s: stat(.per_s), p50_ms: stat(.latency_us.p50 / 1000),
                              p99_ms: stat(.latency_us.p99 / 1000), p99_9_ms: stat(.latency_us.p99_9 / 1000),
                              errors: (map(.errors | add) | add)}),
         mhd_fixed: ($m | {runs: length, per_s: stat(.per_s), p50_ms: stat(.latency_us.p50 / 1000),
                           p99_ms: stat(.latency_us.p99 / 1000), p99_9_ms: stat(.latency_us.p99_9 / 1000),
                           errors: (map(.errors | add) | add)}),
         ratio_pairs: [range(0; [$w, $m] | map(length) | min) | $w[.].per_s / $m[.].per_s]}
        | .ratio = (.ratio_pairs | {median: med, min: min, max: max}))' "$RUNS_JSONL" >"$T/summary.json"

say ""
say "medians (min-max):"
jq -r 'def r: . * 1000 | floor / 1000; .[] |
    "  \(.phase) \(.conns) conns: walletstream \(.walletstream.per_s.median | floor) requests/s (\(.walletstream.per_s.min | floor)-\(.walletstream.per_s.max | floor)), p50 \(.walletstream.p50_ms.median | r) p99 \(.walletstream.p99_ms.median | r) p99.9 \(.walletstream.p99_9_ms.median | r) ms; mhd_fixed \(.mhd_fixed.per_s.median | floor) requests/s, p99 \(.mhd_fixed.p99_ms.median | r) ms; ratio \(.ratio.median | r) (pairs \(.ratio.min | r)-\(.ratio.max | r))" + (if .walletstream.errors > 0 or .mhd_fixed.errors > 0 then "; ERRORS" else "" end)' "$T/summary.json"

jq -n --slurpfile runs "$RUNS_JSONL" --slurpfile summary "$T/summary.json" --argjson ingest "$INGEST" \
    --argjson machine "$(machine_json)" --arg commit "$COMMIT" --arg built "$BUILT_FROM" --arg sha "$BIN_SHA" \
    --arg wrk "$(wrk -v 2>&1 | head -n 1)" --arg mhd "$(pkg-config --modversion libmicrohttpd)" \
    --argjson cfg "$(jq -nc --argjson w "$API_WALLETS" --argjson d "$API_DURATION" --argjson r "$RUNS" \
        --arg c "$API_CONNS" --arg ic "$INGEST_CONNS" --argjson t "$WRK_THREADS" --argjson h "$HTTP_THREADS" \
        --argjson ir "$INGEST_RATE" --argjson iw "$INGEST_WARMUP" --arg b "$API_BROKER" \
        '{wallets: $w, duration_s: $d, runs: $r, conns: $c, ingest_conns: $ic, wrk_threads: $t, http_threads: $h,
          ingest_rate: $ir, ingest_warmup_s: $iw, broker: $b}')" \
    '{benchmark: "api", commit: $commit, built_from: $built, binary_sha256_prefix: $sha, wrk: $wrk,
      libmicrohttpd: $mhd, machine: $machine, config: $cfg,
      summary: {wrk: $summary[0], ingest: $ingest}, runs: $runs}' >"$T/result.json"
result_write api "$T/result.json"
bench_result "$(jq -r 'def r: . * 1000 | floor / 1000; [.summary.wrk[] |
    "\(.phase) \(.conns)c \(.walletstream.per_s.median | floor) req/s = \(.ratio.median | r) x mhd_fixed, p99 \(.walletstream.p99_ms.median | r) ms"] | join("; ")' "$RESULT_PATH")"
