#!/usr/bin/env bash
# bench/run.sh - the benchmark suite of docs/BENCHMARKS.md (`make bench`).
#
#   bench/run.sh [STEP...]
#
# Steps, in this order (default: all):
#   replay   bench/replay.sh   1,000,000 events over 100,000 wallets, jq reference
#   workers  bench/workers.sh  the same replay with --workers 1, 2 and 4, paired
#   history  bench/history.sh  the same replay with --history on against off:
#                              events/s and bytes per statement line
#   scale    bench/scale.sh    20,000,000 events over 10,000,000 wallets; restart
#                              and footprint with that store
#   stream   bench/stream.sh   freshness at 1,000 / 10,000 / 100,000 events/s
#                              (embedded and real Kafka); throughput vs kcat
#   ryw      bench/ryw.sh      read-your-writes round trips on real Kafka, idle
#                              and at 10,000 events/s
#   api      bench/api.sh      wrk on /balance over 1,000,000 wallets, 16 and 64
#                              connections, idle and while ingesting 100,000/s,
#                              against a minimal libmicrohttpd server
#   compare  bench/compare.sh  only when named: `run` on 2,000,000 events in 6
#                              partitions by workers, against kcat (PEERS=1:
#                              and Flink, from ../shared/peers)
#
# BENCH="api stream" (spaces or commas) selects steps as arguments do.
# QUICK=1 runs every step at small sizes (a smoke test of the scripts,
# about 3 minutes; its figures mean nothing); any variable set in the
# environment wins over the QUICK sizes. Each step's own variables (see
# the scripts' headers) pass through, as do REF, WALLETSTREAM, BENCH_TMP.
#
# walletstream is built once from a clean export of REF (bench/lib.sh),
# one Kafka (scripts/kafka) is started before the first step that needs it
# (unless KAFKA_DIR names one) and stopped at the end. Prints a progress
# line before each step, the step's own lines and its result line, then
# every result line and the JSON files written under bench/results/.
# Exit status 1 if any step failed (the others still run).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ALL="replay workers history scale stream ryw api"
OPTIONAL="compare"      # run only when named
STEPS=""
for arg in "$@"; do
    case $arg in
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) STEPS="$STEPS $arg" ;;
    esac
done
[ -n "$STEPS" ] || STEPS=${BENCH:-}
STEPS=$(printf '%s' "$STEPS" | tr ',' ' ' | xargs)
if [ -z "$STEPS" ] || [ "$STEPS" = all ]; then STEPS=$ALL; fi
for s in $STEPS; do
    case " $ALL $OPTIONAL " in *" $s "*) ;; *) echo "run.sh: unknown step $s (steps: $ALL $OPTIONAL)" >&2; exit 2 ;; esac
done

# qdef VAR VALUE: VAR=VALUE (exported) unless VAR is set
qdef() { [ -n "${!1+x}" ] || export "$1=$2"; }
if [ "${QUICK:-0}" = 1 ]; then
    qdef RUNS 1
    # replay
    qdef EVENTS 100000; qdef WALLETS 10000; qdef SHORT_RUNS 1
    # workers
    qdef WORKERS_EVENTS 100000; qdef WORKERS_WALLETS 10000; qdef WORKERS_RUNS 2
    # scale
    qdef SCALE_EVENTS 400000; qdef SCALE_WALLETS 200000; qdef SCALE_REF_WALLETS 10000
    qdef RESTART_RUNS 1; qdef IDLE_S 1
    # stream
    qdef FRESH_RUNS 1; qdef DURATION 3; qdef WARMUP 1; qdef MIXED_RATE 0; qdef PROBE_WAIT 5
    qdef COUNT_WAIT 5; qdef REAL_WARMUP 0; qdef TPUT_EVENTS 100000; qdef TPUT_RUNS 1; qdef EXTRA_ARGS ""
    # ryw
    qdef ROUNDS 100; qdef RATE 2000
    # api
    qdef API_WALLETS 100000; qdef API_DURATION 2; qdef INGEST_WARMUP 1
    # compare
    qdef COMPARE_EVENTS 100000; qdef COMPARE_RUNS 1
fi

bench_init run
export BENCH_SUMMARY=$T/summary.txt
: >"$BENCH_SUMMARY"
machine_describe
build_walletstream 0        # once; the steps reuse build/bench/<key>
say "walletstream benchmark suite: $STEPS$([ "${QUICK:-0}" = 1 ] && echo " (QUICK=1: small sizes)"); binary from $BUILT_FROM"
machine_line

n=$(wc -w <<<"$STEPS")
k=0 FAILED=0 START=$(now)
for s in $STEPS; do
    k=$((k + 1))
    if [ "$s" = stream ] || [ "$s" = ryw ] || [ "$s" = compare ] ||
        { [ "$s" = api ] && [ "${API_BROKER:-real}" = real ]; }; then
        if [ -z "$KAFKA" ]; then
            say "starting one Kafka for the steps that need it (scripts/kafka)"
            kafka_up
            export KAFKA_DIR=$KDIR
        fi
    fi
    say ""
    say "[$k/$n] $s: bench/$s.sh  (started $(date -u +%H:%M:%S) UTC, load $(loadavg))"
    t0=$(now)
    rc=0
    "bench/$s.sh" 2>&1 | tee "$T/$s.log" || rc=$?
    secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}')
    if [ "$rc" = 0 ]; then
        say "[$k/$n] $s: done in $secs s"
    else
        FAILED=1
        say "[$k/$n] $s: FAILED (exit $rc) after $secs s"
        printf '%-8s FAILED (exit %s)\n' "$s" "$rc" >>"$BENCH_SUMMARY"
    fi
done

say ""
say "summary ($(awk -v a="$START" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}') s; load now $(loadavg)):"
sed 's/^/  /' "$BENCH_SUMMARY"
say "JSON:"
cat "$T"/*.log | sed -n 's/^results: /  /p'
exit "$FAILED"
