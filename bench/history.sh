#!/usr/bin/env bash
# bench/history.sh - what keeping statements costs (docs/BENCHMARKS.md,
# "Statements: --history on against off").
#
#   bench/history.sh [--worktree] [--keep]
#
# Builds walletstream from a clean export of REF (default HEAD; bench/lib.sh;
# --worktree: `make` in the working tree) and build/gen_events, generates
# EVENTS clean events over WALLETS wallets and PRODUCTS products, then
# replays the file RUNS times with `--history off` and RUNS times with
# `--history on` (the default), alternating, each into a fresh data
# directory, with /usr/bin/time (wall, CPU, peak RSS). For the last
# directory of each: the pages of every LMDB database (mdb_stat, summed
# over the shards) and the bytes the state's files take.
#
# Reports the medians, the ratio on/off of events/s (median of the
# per-pair ratios), and the bytes per statement line: the pages of the
# `history` database times the page size, over its entries (every applied
# transaction is a line).
#
# Environment: WORKERS (1), EVENTS (1000000), WALLETS (100000),
# PRODUCTS (1000), SEED (42), RUNS (5), BENCH_TMP, REF, WALLETSTREAM (as
# bench/replay.sh).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

EVENTS=${EVENTS:-1000000}
WALLETS=${WALLETS:-100000}
PRODUCTS=${PRODUCTS:-1000}
SEED=${SEED:-42}
RUNS=${RUNS:-5}
WORKERS=${WORKERS:-1}

bench_args "$@"

bench_init history
need_time
need jq
build_walletstream "$WORKTREE"
build_gen_events
machine_describe
say "walletstream statements benchmark  (binary from $BUILT_FROM, sha256 $BIN_SHA)"
machine_line

FILE=$T/events.jsonl
build/gen_events -n "$EVENTS" -w "$WALLETS" -p "$PRODUCTS" -s "$SEED" >"$FILE"
say "input: $EVENTS events, $WALLETS wallets, $PRODUCTS products, seed $SEED; $WORKERS worker(s)"
APPLIED="replayed $EVENTS records: $EVENTS applied, 0 duplicate, 0 rejected"
RUNS_TSV=$T/runs.tsv    # history  n  wall  cpu  rss_kb  rate
: >"$RUNS_TSV"

# one HISTORY N: a replay into a fresh $T/data-HISTORY
one() {
    local h=$1 n=$2 dir=$T/data-$1 wall user sys rss
    rm -rf "$dir"
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$T/time.out" \
        "$BIN" replay --workers "$WORKERS" --history "$h" --data-dir "$dir" "$FILE" >"$T/cmd.out" 2>"$T/cmd.err" ||
        { cat "$T/cmd.err" >&2; die "replay --history $h failed"; }
    grep -q "$APPLIED" "$T/cmd.out" || { cat "$T/cmd.out" >&2; die "unexpected replay output"; }
    read -r wall user sys rss <"$T/time.out"
    awk -v h="$h" -v n="$n" -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" -v e="$EVENTS" 'BEGIN {
        printf "%s\t%s\t%s\t%.2f\t%s\t%.0f\n", h, n, w, u + y, r, e / w
        printf "  history %-3s %d  wall %6.2f s  cpu %6.2f s  rss %6.1f MiB  %8.0f events/s\n", h, n, w, u + y, r / 1024, e / w > "/dev/stderr" }' \
        >>"$RUNS_TSV"
}

one off 0   # warm-up, not counted
for i in $(seq 1 "$RUNS"); do
    one off "$i"
    one on "$i"
done

# state of the last directory of each
state_of() {
    local h=$1
    mdb_state "$T/data-$h/state" "$T/mdb_stat-$h.out"
    local bytes page
    bytes=$(du -s --block-size=1 "$T/data-$h/state" | cut -f1)
    page=$(awk '/Page size:/ {print $3; exit}' "$T/mdb_stat-$h.out")
    printf '%s %s %s\n' "$bytes" "${PAGES_USED:-0}" "${page:-4096}"
}
read -r BYTES_OFF PAGES_OFF PAGE_SIZE < <(state_of off)
read -r BYTES_ON PAGES_ON _ < <(state_of on)
mdb_state "$T/data-on/state" "$T/mdb_stat-on.out"
read -r HIST_PAGES HIST_ENTRIES < <(mdb_db history)

stat_of() { awk -v h="$1" -v c="$2" '$1 == h && $2 > 0 {print $c}' "$RUNS_TSV" | med_min_max; }
read -r RATE_OFF RATE_OFF_MIN RATE_OFF_MAX < <(stat_of off 6)
read -r RATE_ON RATE_ON_MIN RATE_ON_MAX < <(stat_of on 6)
read -r CPU_OFF _ _ < <(stat_of off 4)
read -r CPU_ON _ _ < <(stat_of on 4)
RATIO=$(awk '$2 > 0 {r[$1 " " $2] = $6} END {for (k in r) {split(k, a, " "); if (a[1] == "on") print r[k] / r["off " a[2]]}}' "$RUNS_TSV" | med_min_max)
read -r RATIO_MED RATIO_MIN RATIO_MAX <<<"$RATIO"
PER_LINE=$(awk -v p="$HIST_PAGES" -v s="$PAGE_SIZE" -v e="$HIST_ENTRIES" 'BEGIN {printf "%.1f", e ? p * s / e : 0}')
PER_LINE_TOTAL=$(awk -v a="$PAGES_ON" -v b="$PAGES_OFF" -v s="$PAGE_SIZE" -v e="$HIST_ENTRIES" 'BEGIN {printf "%.1f", e ? (a - b) * s / e : 0}')

say "history off: median $RATE_OFF events/s ($RATE_OFF_MIN-$RATE_OFF_MAX), cpu $CPU_OFF s, state $PAGES_OFF pages ($BYTES_OFF bytes on disk)"
say "history on:  median $RATE_ON events/s ($RATE_ON_MIN-$RATE_ON_MAX), cpu $CPU_ON s, state $PAGES_ON pages ($BYTES_ON bytes on disk)"
say "statement lines: $HIST_ENTRIES in $HIST_PAGES pages of $PAGE_SIZE bytes: $PER_LINE bytes a line (all pages on - off: $PER_LINE_TOTAL)"
bench_result "history on/off events/s ratio $RATIO_MED (min $RATIO_MIN, max $RATIO_MAX); $PER_LINE bytes per statement line"

jq -n --arg commit "$COMMIT" --arg built "$BUILT_FROM" --argjson machine "$(machine_json)" \
    --argjson events "$EVENTS" --argjson wallets "$WALLETS" --argjson workers "$WORKERS" \
    --argjson runs "$(jq -Rsc 'split("\n") | map(select(length > 0) | split("\t") | {history: .[0], n: (.[1] | tonumber), wall: (.[2] | tonumber), cpu: (.[3] | tonumber), rss_kb: (.[4] | tonumber), per_s: (.[5] | tonumber)})' "$RUNS_TSV")" \
    --argjson ratio "{\"median\": $RATIO_MED, \"min\": $RATIO_MIN, \"max\": $RATIO_MAX}" \
    --argjson state "{\"pages_off\": $PAGES_OFF, \"pages_on\": $PAGES_ON, \"page_size\": $PAGE_SIZE, \"bytes_off\": $BYTES_OFF, \"bytes_on\": $BYTES_ON, \"history_pages\": $HIST_PAGES, \"history_entries\": $HIST_ENTRIES, \"bytes_per_line\": $PER_LINE, \"bytes_per_line_all_pages\": $PER_LINE_TOTAL}" \
    '{bench: "history", commit: $commit, built_from: $built, machine: $machine, events: $events, wallets: $wallets,
      workers: $workers, runs: $runs, ratio_on_off: $ratio, state: $state}' >"$T/result.json"
result_write history "$T/result.json"
