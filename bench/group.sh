#!/usr/bin/env bash
# bench/group.sh - instances of one group sharing a topic (`run
# --assignment group`, issue 16; docs/BENCHMARKS.md, "Many instances").
#
#   bench/group.sh [--worktree] [--keep]
#
# Builds walletstream from a clean export of REF (bench/lib.sh; --worktree:
# the working tree; WALLETSTREAM: that binary) and loadgen. Starts a
# single-node Apache Kafka (scripts/kafka), preloads TPUT_EVENTS clean
# events over TPUT_WALLETS wallets into a topic of PARTITIONS partitions
# (loadgen -n, keyed by wallet). Then, RUNS times, in this order:
#
#   all       one `walletstream run` (--assignment all, the reference),
#             timed from its start until /metrics counts TPUT_EVENTS
#   group N   for N in INSTANCES: N instances of a new group (fresh data
#             directories, a new group name, so fresh <T>.<G>.by-wallet
#             and <T>.<G>.state topics), timed from the first start until
#             the counts summed over the instances reach TPUT_EVENTS; CPU
#             seconds summed over the instances (user+sys), so CPU per
#             event reads the scaling on a machine whose cores are the
#             limit
#
# After the last run of `group 1`: its state topic's size on disk and
# record count (kcat), per applied event and per wallet; then the instance
# is stopped, a new one with an empty data directory joins the group, and
# once the first's session has timed out it restores every partition from
# the state topic: records/s and MB/s from its walletstream_restored_*
# counters, and the time from its start until it serves every partition.
#
# Prints one line per run and the medians; writes everything as JSON to
# bench/results/group-<UTC time>.json (git-ignored).
#
# Environment (defaults): TPUT_EVENTS (1000000), TPUT_WALLETS (100000),
# PARTITIONS (6), INSTANCES ("1 2 3"), RUNS (3), SESSION_MS (6000), REF,
# BENCH_TMP, WALLETSTREAM, KAFKA_DIR (bench/lib.sh).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

TPUT_EVENTS=${TPUT_EVENTS:-1000000}
TPUT_WALLETS=${TPUT_WALLETS:-100000}
PARTITIONS=${PARTITIONS:-6}
INSTANCES=${INSTANCES:-1 2 3}
RUNS=${RUNS:-3}
SESSION_MS=${SESSION_MS:-6000}
WS_ARGS=""          # ws_tput (bench/lib.sh) reads it

bench_args "$@"

bench_init group
need_time
for t in jq curl kcat; do need $t; done
group_bench_prepare "$WORKTREE" group gb$$ "$PARTITIONS"

# group_run N RUN: N instances of a new group over the preloaded topic
group_run() {
    local n=$1 run=$2 group=gb-$1-$2-$$ t0 i wall cpu counted load0
    load0=$(loadavg)
    t0=$(now)
    for i in $(seq 1 "$n"); do g_start "$T/g$n-$run-$i" "$group" "i$i"; done
    for _ in $(seq 1 90000); do
        counted=$(g_counted)
        [ "$counted" -ge "$TPUT_EVENTS" ] && break
        sleep 0.01
    done
    wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
    cpu=$(g_cpu)
    [ "$counted" = "$TPUT_EVENTS" ] || die "group $n: $counted events counted, expected $TPUT_EVENTS"
    awk -v n="$n" -v w="$wall" -v c="$cpu" -v e="$TPUT_EVENTS" \
        'BEGIN {printf "  group %d            wall %s s  cpu %s s  %d events/s  %.2f us cpu per event\n", n, w, c, e / w, c / e * 1e6}'
    jq -nc --argjson n "$n" --argjson w "$wall" --argjson c "$cpu" --argjson ev "$TPUT_EVENTS" \
        --arg group "$group" --arg load0 "$load0" --arg load1 "$(loadavg)" \
        '{series: "group", n: $n, group: $group, wall_s: $w, per_s: ($ev / $w), cpu_s: $c,
          cpu_us_per_event: ($c / $ev * 1e6), load_before: $load0, load_after: $load1}' >>"$RUNS_FILE"
    LAST_GROUP=$group
}

# state_and_restore GROUP: the state topic's size, then a fresh instance
# restores everything (the current instance is stopped first)
state_and_restore() {
    local group=$1 st=$TPUT_TOPIC.$1.state bytes records t0 ready_s restored rbytes rsec wallets
    g_stop
    bytes=$(du -s --block-size=1 "$KDIR/data/$st"-[0-9]* | awk '{s += $1} END {print s}')
    records=$(kcat -C -b "$KAFKA" -t "$st" -o beginning -e -q -X isolation.level=read_committed -f '%o\n' | wc -l)
    wallets=$TPUT_WALLETS
    say "  state topic $st: $bytes bytes on disk, $records records (uncompacted): $((bytes / TPUT_EVENTS)) bytes per event, $((bytes / wallets)) per wallet"
    t0=$(now)
    g_start "$T/restore" "$group" "fresh"
    for _ in $(seq 1 60000); do
        [ "$(g_owned "${G_APIS[0]}")" = "$PARTITIONS" ] && [ "$(g_counted)" = "$TPUT_EVENTS" ] && break
        sleep 0.01
    done
    ready_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
    metrics() { curl -s "http://${G_APIS[0]}/metrics"; }
    restored=$(metrics | awk '/^walletstream_restored_records_total / {print $2}')
    rbytes=$(metrics | awk '/^walletstream_restored_bytes_total / {print $2}')
    rsec=$(metrics | awk '/^walletstream_restore_seconds_total / {print $2}')
    [ -n "$restored" ] && [ "$(g_counted)" = "$TPUT_EVENTS" ] || die "the fresh instance did not restore the state"
    awk -v r="$restored" -v b="$rbytes" -v s="$rsec" -v t="$ready_s" -v ses="$SESSION_MS" \
        'BEGIN {printf "  restore: %d records, %.1f MB in %.2f s: %d records/s, %.1f MB/s; all %s partitions served %.1f s after the start (the first instance'"'"'s session: %.1f s)\n", r, b / 1e6, s, r / s, b / 1e6 / s, "'"$PARTITIONS"'", t, ses / 1000}'
    jq -nc --argjson bytes "$bytes" --argjson records "$records" --argjson r "$restored" --argjson rb "$rbytes" \
        --argjson rs "$rsec" --argjson ready "$ready_s" --argjson ev "$TPUT_EVENTS" --argjson w "$wallets" \
        '{series: "state", state_topic_bytes: $bytes, state_topic_records: $records,
          bytes_per_event: ($bytes / $ev), bytes_per_wallet: ($bytes / $w),
          restored_records: $r, restored_bytes: $rb, restore_s: $rs,
          restore_records_per_s: ($r / $rs), restore_mb_per_s: ($rb / 1e6 / $rs),
          all_served_after_start_s: $ready}' >>"$RUNS_FILE"
    g_stop
}

RUNS_FILE_TPUT=$RUNS_FILE
for run in $(seq 1 "$RUNS"); do
    RUNS=$RUNS_FILE_TPUT ws_tput "$run" all
    for n in $INSTANCES; do
        group_run "$n" "$run"
        if [ "$n" = 1 ] && [ "$run" = "$RUNS" ]; then
            state_and_restore "$LAST_GROUP"
        else
            g_stop
        fi
    done
done

say "medians of $RUNS runs:"
for s in all $(printf 'group%s ' $INSTANCES); do
    case $s in
    all) sel='.series == "walletstream" or .series == "all"' ;;
    *) sel=".series == \"group\" and .n == ${s#group}" ;;
    esac
    jq -s -r "[.[] | select($sel)] | (map(.per_s) | sort) as \$p | (map(.cpu_s) | sort) as \$c |
        \"  $s: \(\$p[(\$p | length) / 2 | floor] | floor) events/s, cpu \(\$c[(\$c | length) / 2 | floor]) s\"" "$RUNS_FILE"
done
jq -s -r '[.[] | select(.series == "group" and .n == 1)] as $g | [.[] | select(.series == "all")] as $a |
    [range(0; [$g, $a] | map(length) | min)] | map($g[.].per_s / $a[.].per_s) | sort |
    "  group 1 / all (paired per run): \(.[length / 2 | floor] * 1000 | floor / 1000)"' "$RUNS_FILE"

jq -s --argjson machine "$(machine_json)" --arg bin "$BUILT_FROM" --arg sha "$BIN_SHA" \
    --argjson events "$TPUT_EVENTS" --argjson wallets "$TPUT_WALLETS" --argjson parts "$PARTITIONS" \
    '{bench: "group", binary: $bin, sha256: $sha, machine: $machine, events: $events, wallets: $wallets,
      partitions: $parts, runs: .}' "$RUNS_FILE" >"$T/result.json"
result_write group "$T/result.json"
bench_result "see $RESULT_PATH"
