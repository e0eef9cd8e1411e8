#!/usr/bin/env bash
# bench/stream.sh - stream benchmarks of `walletstream run` (docs/BENCHMARKS.md,
# "Stream: produce-to-queryable latency" and "Stream: sustained throughput
# from a real broker").
#
#   bench/stream.sh [--worktree] [--keep] [--skip-embedded] [--skip-real]
#                   [--skip-throughput]
#
# Builds walletstream from a clean export of REF (default HEAD): `git
# archive`, then `make` in it, so that uncommitted edits in src/ are not
# measured (bench/lib.sh; --worktree runs `make` in the working tree
# instead; WALLETSTREAM names a binary to measure). Builds build/loadgen
# from bench/loadgen.c.
# Then:
#
#   freshness, embedded broker   for each rate in RATES_EMBEDDED, FRESH_RUNS
#       runs of DURATION s: `walletstream run --embedded-broker` (fresh data
#       directory), `loadgen -r RATE -d DURATION -k K` with one probe wallet
#       every K events (K = RATE / PROBES_PER_S), percentiles over the
#       probes sent after the first WARMUP s. Then the service's counters
#       are checked against what was delivered, and its own
#       walletstream_event_age_seconds histogram (commit time minus the
#       Kafka record timestamp, all records of the run) is read from
#       /metrics: p50/p90/p99/p99.9 interpolated within its buckets.
#   freshness, mixed             the same at MIXED_RATE with `loadgen -m`
#       (about 7 % rejected records, so dead letters are flushed before
#       commits); the counters are checked against `walletstream replay` of
#       the same records.
#   freshness, real broker       the same against a single-node Apache Kafka
#       (scripts/kafka), a fresh topic of 3 partitions (+ .dlq) per run, for
#       each rate in RATES_REAL and MIXED_RATE; after a warm-up run (JIT;
#       REAL_WARMUP=0 leaves it out).
#   throughput                   TPUT_EVENTS clean events over TPUT_WALLETS
#       wallets preloaded into a 3-partition topic (loadgen -n, flat out);
#       then TPUT_RUNS times, alternating: `walletstream run --brokers`
#       (fresh data directory) timed from its start until /metrics counts
#       applied + duplicate + rejected = TPUT_EVENTS (loadgen -W polls every
#       10 ms), and `kcat -C -b B -t T -o beginning -e -q > /dev/null` under
#       /usr/bin/time. Ratio = median of per-pair ratios. Then one run under
#       strace (fdatasync count and time) and EXTRA_RUNS runs for each set of
#       options in EXTRA_ARGS (what batching and changelog cost).
#
# Prints one line per step and the medians; writes everything as JSON to
# bench/results/stream-<UTC time>.json (git-ignored).
#
# Environment (defaults): RATES_EMBEDDED ("1000 10000 100000"), RATES_REAL
# ("1000 10000 100000"), MIXED_RATE (1000; 0 = none), FRESH_RUNS (3),
# DURATION (15), WARMUP (2), PROBES_PER_S (200), PROBE_WAIT (s loadgen
# waits for the last probes, 15), COUNT_WAIT (s to wait for the service's
# counters to reach what was delivered, 20), REAL_WARMUP (1), LINGER
# (producer linger.ms, 5),
# TPUT_EVENTS (2000000), TPUT_WALLETS (100000), TPUT_RUNS (5),
# EXTRA_ARGS ("--batch-linger 1000;--changelog off;--batch-linger 1000
# --changelog off": option sets separated by ";"), EXTRA_RUNS (3),
# WS_ARGS (more options for every `walletstream run`, e.g. "--changelog off"),
# REF (HEAD), BENCH_TMP (directory for data directories and the broker;
# default a new one under ${TMPDIR:-/tmp}), WALLETSTREAM (binary to measure),
# KAFKA_DIR (use the scripts/kafka broker of this directory instead of a
# fresh one, and leave it running; its topic names must be free).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RATES_EMBEDDED=${RATES_EMBEDDED-1000 10000 100000}
RATES_REAL=${RATES_REAL-1000 10000 100000}
MIXED_RATE=${MIXED_RATE:-1000}
FRESH_RUNS=${FRESH_RUNS:-3}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
PROBES_PER_S=${PROBES_PER_S:-200}
PROBE_WAIT=${PROBE_WAIT:-15}
COUNT_WAIT=${COUNT_WAIT:-20}
REAL_WARMUP=${REAL_WARMUP:-1}
LINGER=${LINGER:-5}
TPUT_EVENTS=${TPUT_EVENTS:-2000000}
TPUT_WALLETS=${TPUT_WALLETS:-100000}
TPUT_RUNS=${TPUT_RUNS:-5}
EXTRA_ARGS=${EXTRA_ARGS---batch-linger 1000;--changelog off;--batch-linger 1000 --changelog off}
WS_ARGS=${WS_ARGS:-}
EXTRA_RUNS=${EXTRA_RUNS:-3}
DO_EMBEDDED=1 DO_REAL=1 DO_TPUT=1

bench_opt() { # this script's own options (bench_args)
    case $1 in
    --skip-embedded) DO_EMBEDDED=0 ;;
    --skip-real) DO_REAL=0 ;;
    --skip-throughput) DO_TPUT=0 ;;
    *) return 1 ;;
    esac
}
bench_args "$@"

bench_init stream

# --- tools -------------------------------------------------------------------
need_time
for t in jq curl kcat strace; do need $t; done

# --- build -------------------------------------------------------------------
build_walletstream "$WORKTREE"
build_loadgen
LOADGEN_BUILD="cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o build/loadgen bench/loadgen.c $(pkg-config --cflags --libs rdkafka) -lpthread"
LG=$T/loadgen
cp build/loadgen "$LG"
RDKAFKA_VERSION=$(pkg-config --modversion rdkafka)

# --- machine -----------------------------------------------------------------
machine_describe
JAVA_VERSION=$(java -version 2>&1 | head -n 1 || true)
OTHERS=$(ps -eo comm= | grep -cE '^(java|walletstream)$' || true)

say "walletstream stream benchmark  (binary from $BUILT_FROM, sha256 $BIN_SHA; librdkafka $RDKAFKA_VERSION${WS_ARGS:+; walletstream run $WS_ARGS})"
machine_line
say "  $OTHERS java/walletstream processes already running"

RUNS=$T/runs.jsonl     # one JSON object per measured run
: >"$RUNS"

# --- helpers -----------------------------------------------------------------
# start_ws, ws_cpu, ws_threads, ws_io, disk_written, ws_rss_kb, tput_preload,
# ws_tput, kcat_tput: bench/lib.sh

# freshness BROKER_KIND RATE MIXED RUN [WARM]: one freshness run; appends
# to runs.jsonl unless WARM=1.
freshness() {
    local kind=$1 rate=$2 mixed=$3 run=$4 warm=${5:-0}
    local dir=$T/fresh-$kind-$rate-$mixed-$run every brokers topic prefix lgrc=0
    local mflag="" applied dup rej delivered exp_a exp_d exp_r ok resets rc cpu
    local threads io label load0 age
    every=$((rate / PROBES_PER_S))
    [ "$every" -ge 1 ] || every=1
    prefix="$kind$rate$mixed$run-"
    [ "$mixed" = mixed ] && mflag=-m
    load0=$(loadavg)
    if [ "$kind" = embedded ]; then
        start_ws "$dir" --embedded-broker
        for _ in $(seq 1 100); do [ -s "$dir/data/kafka.bootstrap" ] && break; sleep 0.05; done
        brokers=$(cat "$dir/data/kafka.bootstrap")
        topic=transactions_topic
    else
        brokers=$KAFKA
        topic=f$rate$mixed$run$warm-$$
        kafka_topic "$topic" 3
        start_ws "$dir" --brokers "$KAFKA" --topic "$topic"
    fi
    "$LG" -b "$brokers" -t "$topic" -r "$rate" -d "$DURATION" -k "$every" -u "$WARMUP" \
        -T "$PROBE_WAIT" -X "linger.ms=$LINGER" -x "$prefix" $mflag -a "$WS_API" \
        ${mflag:+-D "$dir/events.jsonl"} -o "$dir/loadgen.json" -q >"$dir/loadgen.out" 2>"$dir/loadgen.err" || lgrc=$?
    delivered=$(jq .delivered "$dir/loadgen.json")
    # wait until the service has counted every delivered record (or COUNT_WAIT s)
    "$LG" -a "$WS_API" -W "$delivered" -T "$COUNT_WAIT" -o "$dir/wait.json" >"$dir/wait.out" 2>&1 || true
    metrics >"$dir/metrics.txt"
    cpu=$(ws_cpu)
    threads=$(ws_threads)
    io=$(ws_io)
    ws_stop
    rc=$WS_RC
    read -r applied dup rej <<<"$(counters "$dir/metrics.txt")"
    age=$(hist_json "$dir/metrics.txt" walletstream_event_age_seconds)
    if [ "$mixed" = mixed ]; then
        read -r exp_a exp_d exp_r <<<"$("$BIN" replay --data-dir "$dir/replay" "$dir/events.jsonl" 2>/dev/null |
            sed -n 's/^replayed [0-9]* records: \([0-9]*\) applied, \([0-9]*\) duplicate, \([0-9]*\) rejected.*/\1 \2 \3/p')"
        rm -rf "$dir/replay"
    else
        exp_a=$delivered exp_d=0 exp_r=0
    fi
    ok=false
    [ "$applied $dup $rej" = "$exp_a $exp_d $exp_r" ] && [ "$rc" = 0 ] && ok=true
    resets=$(grep -c 'Offset out of range' "$dir/stderr" || true)
    label="$kind $mixed $rate/s run $run"
    [ "$warm" = 1 ] && label="$kind warm-up $rate/s"
    jq -r --arg l "$label" --arg ok "$ok" --arg a "$applied" --arg e "$exp_a" --arg lr "$lgrc" --argjson age "$age" '
        "  \($l | .[0:30] | . + " " * (30 - length)) p50 \(.probes.from_send.p50 // "-") p99 \(.probes.from_send.p99 // "-") p99.9 \(.probes.from_send.p99_9 // "-") ms from send; p50 \(.probes.from_delivery_report.p50 // "-") ms from delivery; service event age p50 \($age.p50 // "-") p99 \($age.p99 // "-") p99.9 \($age.p99_9 // "-") ms; \(.probes.answered)/\(.probes.sent) probes; counts " + (if $ok == "true" then "ok" else "WRONG (applied \($a), expected \($e) within the wait)" end)' \
        "$dir/loadgen.json"
    if [ "$warm" != 1 ]; then
        jq -c --arg kind "$kind" --argjson rate "$rate" --arg mixed "$mixed" --argjson run "$run" \
            --argjson every "$every" --argjson applied "$applied" --argjson dup "$dup" --argjson rej "$rej" \
            --argjson ea "$exp_a" --argjson ed "$exp_d" --argjson er "$exp_r" --argjson ok "$ok" \
            --argjson rc "$rc" --argjson lgrc "$lgrc" --argjson cpu "$cpu" --argjson threads "$threads" \
            --argjson io "$io" --argjson resets "$resets" --arg load0 "$load0" --arg load1 "$(loadavg)" \
            --arg topic "$topic" --argjson age "$age" \
            '{series: "freshness", broker: $kind, rate: $rate, mixed: ($mixed == "mixed"), run: $run,
              topic: $topic, probe_every: $every,
              service: {applied: $applied, duplicate: $dup, rejected: $rej, cpu_s: $cpu, threads: $threads,
                        io: $io, exit_status: $rc, offset_resets_logged: $resets},
              service_event_age_ms: $age,
              expected: {applied: $ea, duplicate: $ed, rejected: $er}, counts_ok: $ok,
              loadgen_exit_status: $lgrc, load_before: $load0, load_after: $load1, loadgen: .}' \
            "$dir/loadgen.json" >>"$RUNS"
    fi
    [ "$KEEP" = 1 ] || rm -rf "$dir/data" "$dir/events.jsonl"
}

# --- freshness: embedded broker ------------------------------------------------
if [ "$DO_EMBEDDED" = 1 ]; then
    say "freshness, embedded broker (fetch.wait.max.ms=5), $DURATION s per run, first $WARMUP s left out, producer linger.ms=$LINGER:"
    for rate in $RATES_EMBEDDED; do
        for run in $(seq 1 "$FRESH_RUNS"); do freshness embedded "$rate" clean "$run"; done
    done
    if [ "$MIXED_RATE" != 0 ]; then
        for run in $(seq 1 "$FRESH_RUNS"); do freshness embedded "$MIXED_RATE" mixed "$run"; done
    fi
fi

# --- real broker ---------------------------------------------------------------
if [ "$DO_REAL" = 1 ] || [ "$DO_TPUT" = 1 ]; then
    kafka_up
    say "real broker: Kafka ${KAFKA_VERSION_USED:-?} at $KAFKA ($KDIR, $JAVA_VERSION)"
fi

if [ "$DO_REAL" = 1 ]; then
    say "freshness, real broker, $DURATION s per run, first $WARMUP s left out, producer linger.ms=$LINGER:"
    if [ "$REAL_WARMUP" = 1 ]; then
        freshness real 10000 clean 0 1  # warm-up: JIT, page cache; not counted
    fi
    for rate in $RATES_REAL; do
        for run in $(seq 1 "$FRESH_RUNS"); do freshness real "$rate" clean "$run"; done
    done
    if [ "$MIXED_RATE" != 0 ]; then
        for run in $(seq 1 "$FRESH_RUNS"); do freshness real "$MIXED_RATE" mixed "$run"; done
    fi
fi

# --- throughput ----------------------------------------------------------------
TPUT_TOPIC=tput-$$
if [ "$DO_TPUT" = 1 ]; then
    say "throughput: $TPUT_EVENTS clean events over $TPUT_WALLETS wallets in a 3-partition topic:"
    tput_preload 3
    kcat_tput 0 warmup-kcat
    ws_tput 0 warmup-walletstream
    for i in $(seq 1 "$TPUT_RUNS"); do
        ws_tput "$i"
        kcat_tput "$i"
    done

    # one more run under strace: how many fdatasync calls, and how long
    dir=$T/tput-strace
    rm -rf "$dir"; mkdir -p "$dir"
    # shellcheck disable=SC2086
    strace -f -qq --seccomp-bpf -e trace=fdatasync,fsync,msync,sync_file_range -T -o "$dir/strace.out" \
        "$BIN" run --brokers "$KAFKA" --topic $TPUT_TOPIC --data-dir "$dir/data" --listen 127.0.0.1:0 $WS_ARGS \
        >"$dir/stdout" 2>"$dir/stderr" &
    SPID=$!
    bench_track "$SPID"
    for _ in $(seq 1 500); do
        WS_PORT=$(sed -n 's/.* API on .*(port \([0-9]*\)).*/\1/p' "$dir/stderr" | head -n 1)
        [ -n "$WS_PORT" ] && break
        sleep 0.01
    done
    "$LG" -a "127.0.0.1:$WS_PORT" -W "$TPUT_EVENTS" -T 900 -o "$dir/wait.json" >/dev/null 2>&1 || true
    WS_PID=$(pgrep -P "$SPID" -x walletstream || true)
    [ -n "$WS_PID" ] && kill -TERM "$WS_PID"
    WS_PID=""
    wait "$SPID" || true
    SYNC_CALLS=$(grep -cE '^[0-9]+ +(fdatasync|fsync|msync|sync_file_range)\(' "$dir/strace.out" || true)
    SYNC_S=$(grep -E '^[0-9]+ +(fdatasync|fsync|msync|sync_file_range)\(' "$dir/strace.out" |
        grep -oE '<[0-9.]+>$' | tr -d '<>' | awk '{s += $1} END {printf "%.3f", s}')
    jq -c --argjson calls "$SYNC_CALLS" --argjson s "$SYNC_S" \
        '{series: "strace", wall_s: .elapsed_s, sync_calls: $calls, sync_s: $s, batches: .batches}' \
        "$dir/wait.json" >>"$RUNS"
    say "  under strace: $SYNC_CALLS fdatasync-family calls taking $SYNC_S s in all ($(jq .elapsed_s "$dir/wait.json") s wall, strace slows the run)"
    rm -rf "$dir"

    IFS=';' read -r -a EXTRA_SETS <<<"$EXTRA_ARGS"
    for args in "${EXTRA_SETS[@]}"; do
        [ -n "$args" ] || continue
        for i in $(seq 1 "$EXTRA_RUNS"); do ws_tput "$i" "extra: $args" "$args"; done
    done
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- summary -------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$T/result.json
jq -s "$JQ_STATS"'
    {freshness: (map(select(.series == "freshness")) | group_by([.broker, .mixed, .rate]) | map({
        broker: .[0].broker, mixed: .[0].mixed, rate: .[0].rate, runs: length,
        counts_ok: all(.counts_ok),
        sent_rate: stat(.loadgen.send_rate),
        processed_per_run: map(.service.applied + .service.duplicate + .service.rejected),
        delivered_per_run: map(.loadgen.delivered),
        from_send: {p50: stat(.loadgen.probes.from_send.p50), p90: stat(.loadgen.probes.from_send.p90),
                    p99: stat(.loadgen.probes.from_send.p99), p99_9: stat(.loadgen.probes.from_send.p99_9),
                    max: stat(.loadgen.probes.from_send.max)},
        from_delivery_report: {p50: stat(.loadgen.probes.from_delivery_report.p50),
                    p90: stat(.loadgen.probes.from_delivery_report.p90),
                    p99: stat(.loadgen.probes.from_delivery_report.p99),
                    p99_9: stat(.loadgen.probes.from_delivery_report.p99_9),
                    max: stat(.loadgen.probes.from_delivery_report.max)},
        send_to_delivery_report_p50: stat(.loadgen.probes.send_to_delivery_report.p50),
        service_event_age_ms: {p50: stat(.service_event_age_ms.p50), p90: stat(.service_event_age_ms.p90),
                    p99: stat(.service_event_age_ms.p99), p99_9: stat(.service_event_age_ms.p99_9),
                    mean: stat(.service_event_age_ms.mean)},
        probes_answered: map(.loadgen.probes.answered), probes_sent: map(.loadgen.probes.sent),
        events_per_batch: stat(.loadgen.service_samples as $s | if ($s | length) > 1 and ($s[-1].batches - $s[0].batches) > 0
            then ($s[-1].batch_events - $s[0].batch_events) / ($s[-1].batches - $s[0].batches) else null end),
        ms_per_commit: stat(.loadgen.service_samples as $s | if ($s | length) > 1 and ($s[-1].batches - $s[0].batches) > 0
            then 1000 * ($s[-1].commit_s - $s[0].commit_s) / ($s[-1].batches - $s[0].batches) else null end),
        service_cpu_s: stat(.service.cpu_s), http_requests: stat(.loadgen.http.requests),
        gap_mean_ms: stat(.loadgen.http.gap_mean_ms)})),
     throughput: (
        (map(select(.series == "walletstream")) | map(.per_s)) as $w |
        (map(select(.series == "kcat")) | map(.per_s)) as $k |
        {walletstream: (map(select(.series == "walletstream")) | {runs: length, per_s: stat(.per_s), wall_s: stat(.wall_s),
            cpu_s: stat(.cpu_s), batches: stat(.wait.batches), events_per_batch: stat(.wait.batch_events_sum / .wait.batches),
            ms_per_commit: stat(1000 * .wait.batch_commit_seconds_sum / .wait.batches),
            written_bytes_per_event: stat(.io.wchar / .wait.applied), write_calls_per_event: stat(.io.syscw / .wait.applied),
            disk_bytes_per_event: stat(.disk_bytes_written / .wait.applied),
            max_rss_kb: stat(.max_rss_kb)}),
         kcat: (map(select(.series == "kcat")) | {runs: length, per_s: stat(.per_s), wall_s: stat(.wall_s), cpu_s: stat(.cpu_s)}),
         ratio_pairs: [range(0; [$w, $k] | map(length) | min) | $w[.] / $k[.]],
         extra: (map(select(.series | startswith("extra: "))) | group_by(.series) | map({args: (.[0].series | ltrimstr("extra: ")),
            runs: length, per_s: stat(.per_s), wall_s: stat(.wall_s), cpu_s: stat(.cpu_s), batches: stat(.wait.batches),
            ms_per_commit: stat(1000 * .wait.batch_commit_seconds_sum / .wait.batches),
            written_bytes_per_event: stat(.io.wchar / .wait.applied), disk_bytes_per_event: stat(.disk_bytes_written / .wait.applied),
            max_rss_kb: stat(.max_rss_kb)})),
         strace: (map(select(.series == "strace")) | first),
         preload: (map(select(.series == "preload")) | first)}
        | .ratio = (.ratio_pairs | {median: med, min: min, max: max}))}' "$RUNS" >"$T/summary.json"

say ""
say "medians (min-max) over runs:"
jq -r '.freshness[] | "  freshness \(.broker) \(if .mixed then "mixed" else "clean" end) \(.rate)/s (\(.runs) runs): from send p50 \(.from_send.p50.median) p99 \(.from_send.p99.median) p99.9 \(.from_send.p99_9.median) ms; from delivery p50 \(.from_delivery_report.p50.median) p99 \(.from_delivery_report.p99.median) p99.9 \(.from_delivery_report.p99_9.median) ms; service event age p50 \(.service_event_age_ms.p50.median) p99 \(.service_event_age_ms.p99.median) p99.9 \(.service_event_age_ms.p99_9.median) ms; \(.events_per_batch.median) events/batch, \(.ms_per_commit.median) ms/commit; counts \(if .counts_ok then "ok" else "WRONG" end)"' "$T/summary.json"
if [ "$DO_TPUT" = 1 ]; then
    jq -r '.throughput | "  walletstream \(.walletstream.per_s.median | floor) events/s (\(.walletstream.per_s.min | floor)-\(.walletstream.per_s.max | floor)), kcat \(.kcat.per_s.median | floor) events/s (\(.kcat.per_s.min | floor)-\(.kcat.per_s.max | floor)); ratio walletstream/kcat \(.ratio.median * 1000 | floor / 1000) (pairs \(.ratio.min * 1000 | floor / 1000)-\(.ratio.max * 1000 | floor / 1000)); \(.walletstream.events_per_batch.median | floor) events per batch, \(.walletstream.ms_per_commit.median * 10 | floor / 10) ms per commit, \(.walletstream.written_bytes_per_event.median | floor) bytes written per event (\(.walletstream.disk_bytes_per_event.median | floor) by the disk)",
        (.extra[] | "  \(.args): \(.per_s.median | floor) events/s (\(.per_s.min | floor)-\(.per_s.max | floor)), \(.batches.median) batches, \(.ms_per_commit.median * 10 | floor / 10) ms per commit, \(.written_bytes_per_event.median | floor) bytes written per event (\(.disk_bytes_per_event.median | floor) by the disk)")' "$T/summary.json"
fi
say "  load average before $LOAD_BEFORE, after $LOAD_AFTER"

jq -n --slurpfile runs "$RUNS" --slurpfile summary "$T/summary.json" \
    --arg stamp "$STAMP" --argjson machine "$(machine_json)" --arg commit "$COMMIT" --arg built "$BUILT_FROM" --arg sha "$BIN_SHA" \
    --arg rdkafka "$RDKAFKA_VERSION" --arg kafka "${KAFKA_VERSION_USED:-}" --arg java "$JAVA_VERSION" \
    --arg loadgen_build "$LOADGEN_BUILD" \
    --argjson config "$(jq -n --arg re "$RATES_EMBEDDED" --arg rr "$RATES_REAL" --argjson mr "$MIXED_RATE" \
        --argjson fr "$FRESH_RUNS" --argjson d "$DURATION" --argjson w "$WARMUP" --argjson pp "$PROBES_PER_S" \
        --argjson lg "$LINGER" --argjson te "$TPUT_EVENTS" --argjson tw "$TPUT_WALLETS" --argjson tr "$TPUT_RUNS" \
        --arg el "$EXTRA_ARGS" --argjson er "$EXTRA_RUNS" --arg wa "$WS_ARGS" \
        '{rates_embedded: $re, rates_real: $rr, mixed_rate: $mr, fresh_runs: $fr, duration_s: $d, warmup_s: $w,
          probes_per_s: $pp, producer_linger_ms: $lg, tput_events: $te, tput_wallets: $tw, tput_runs: $tr,
          extra_args: $el, extra_runs: $er, ws_args: $wa}')" \
    '{benchmark: "stream", time: $stamp, commit: $commit, built_from: $built, binary_sha256_prefix: $sha,
      librdkafka: $rdkafka, kafka: $kafka, java: $java, loadgen_build: $loadgen_build,
      machine: $machine,
      config: $config, summary: $summary[0], runs: $runs}' >"$OUT"
result_write stream "$OUT"
bench_result "$(jq -r '[(.summary.freshness[] | select(.mixed | not) |
        def r: if . == null then "-" else . * 10 | floor / 10 end;
        "freshness \(.broker) \(.rate)/s p50/p99/p99.9 \(.from_send.p50.median | r)/\(.from_send.p99.median | r)/\(.from_send.p99_9.median | r) ms (service p99 \(.service_event_age_ms.p99.median | r) ms)\(if .counts_ok then "" else " COUNTS WRONG" end)"),
      (.summary.throughput | select(.ratio.median != null) |
        "throughput \(.walletstream.per_s.median | floor)/s = \(.ratio.median * 1000 | floor / 1000) x kcat")] | join("; ")' "$RESULT_PATH")"
