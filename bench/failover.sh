#!/usr/bin/env bash
# bench/failover.sh - how long the partitions of a killed instance take to
# be served again (`run --assignment group`, issue 16; docs/BENCHMARKS.md,
# "Many instances"), with and without a standby copy.
#
#   bench/failover.sh [--worktree] [--keep]
#
# Builds walletstream (bench/lib.sh: a clean export of REF; --worktree:
# the working tree; WALLETSTREAM: that binary) and loadgen; starts a
# single-node Apache Kafka (scripts/kafka) and preloads FO_EVENTS clean
# events over as many wallets (one event each) into a topic of 2
# partitions: about FO_EVENTS / 2 wallets per partition. Then, for
# STANDBY in 1 0, RUNS times: two instances of a new group
# (--session-timeout SESSION_MS, --standby-replicas STANDBY) apply
# everything; once both serve their partition, the counts are complete
# and (with a standby) the copies have caught up, the instance owning
# partition 1 is killed with kill -9; the time from the kill until the
# other one serves both partitions is measured (polling /status every
# 20 ms), with its restore (records, seconds) from its log.
#
# Prints one line per run and the medians; writes the runs as JSON to
# bench/results/failover-<UTC time>.json.
#
# Environment (defaults): FO_EVENTS (2000000), RUNS (3), SESSION_MS
# (6000), REF, BENCH_TMP, WALLETSTREAM, KAFKA_DIR (bench/lib.sh).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

FO_EVENTS=${FO_EVENTS:-2000000}
RUNS=${RUNS:-3}
SESSION_MS=${SESSION_MS:-6000}

bench_args "$@"

bench_init failover
need_time
for t in jq curl kcat; do need $t; done
TPUT_EVENTS=$FO_EVENTS TPUT_WALLETS=$FO_EVENTS
group_bench_prepare "$WORKTREE" failover fo$$ 2

# owned API: the partitions an instance serves, as "0 1"
owned() { curl -s "http://$1/status" | jq -r '(.partitions_owned // []) | map(tostring) | join(" ")' 2>/dev/null || true; }
counted() { curl -s "http://$1/metrics" | awk '/^walletstream_events_total\{/ {s += $2} END {printf "%d", s}'; }

# one_run STANDBY RUN
one_run() {
    local standby=$1 run=$2 group=fo-$1-$2-$$ i pids=() apis=() t0 t1 took victim=-1 other=-1 line
    for i in 0 1; do
        ws_start "$T/i$i-$standby-$run" run --data-dir "$T/i$i-$standby-$run/data" --brokers "$KAFKA" \
            --topic "$TPUT_TOPIC" --assignment group --group "$group" --instance-id "i$i" \
            --session-timeout "$SESSION_MS" --standby-replicas "$standby" --listen "127.0.0.1:$(free_port)"
        pids+=("$WS_PID") apis+=("$WS_API")
    done
    for _ in $(seq 1 60000); do
        [ -n "$(owned "${apis[0]}")" ] && [ -n "$(owned "${apis[1]}")" ] &&
            [ $(($(counted "${apis[0]}") + $(counted "${apis[1]}"))) -ge "$FO_EVENTS" ] && break
        sleep 0.05
    done
    [ $(($(counted "${apis[0]}") + $(counted "${apis[1]}"))) = "$FO_EVENTS" ] || die "not all counted"
    # the copies catch up with the owners' last commits
    sleep 5
    for i in 0 1; do
        case " $(owned "${apis[$i]}") " in *" 1 "*) victim=$i ;; *) other=$i ;; esac
    done
    [ "$victim" -ge 0 ] && [ "$other" -ge 0 ] || die "partitions not split between the instances"
    t0=$(now)
    kill -9 "${pids[$victim]}"
    for _ in $(seq 1 30000); do
        [ "$(owned "${apis[$other]}")" = "0 1" ] && break
        sleep 0.02
    done
    t1=$(now)
    [ "$(owned "${apis[$other]}")" = "0 1" ] || die "the survivor never served both partitions"
    took=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
    line=$(grep "partition 1 restored" "$T/i$other-$standby-$run/stderr" | tail -n 1 | sed 's/.*restored from //')
    say "  standby $standby run $run: both partitions served $took s after kill -9 (session $((SESSION_MS / 1000)) s); restore: $line"
    jq -nc --argjson standby "$standby" --argjson run "$run" --argjson took "$took" --arg restore "$line" \
        '{standby: $standby, run: $run, kill_to_served_s: $took, restore: $restore}' >>"$RUNS_FILE"
    kill -TERM "${pids[$other]}" 2>/dev/null || true
    wait "${pids[$other]}" 2>/dev/null || true
    wait "${pids[$victim]}" 2>/dev/null || true
}

for standby in 1 0; do
    for run in $(seq 1 "$RUNS"); do one_run "$standby" "$run"; done
done
for standby in 1 0; do
    jq -s -r --argjson s "$standby" '[.[] | select(.standby == $s) | .kill_to_served_s] | sort |
        "  standby \($s): median \(.[length / 2 | floor]) s from kill -9 to both partitions served (runs: \(map(tostring) | join(", ")))"' "$RUNS_FILE"
done
jq -s --argjson machine "$(machine_json)" --arg bin "$BUILT_FROM" --argjson events "$FO_EVENTS" \
    --argjson session "$SESSION_MS" \
    '{bench: "failover", binary: $bin, machine: $machine, events: $events, wallets: $events, partitions: 2,
      session_timeout_ms: $session, runs: [.[] | select(has("standby"))]}' "$RUNS_FILE" >"$T/result.json"
result_write failover "$T/result.json"
bench_result "see $RESULT_PATH"
