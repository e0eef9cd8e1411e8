#!/usr/bin/env bash
# bench/workers.sh - replay throughput by number of workers (docs/BENCHMARKS.md,
# "Replay by workers").
#
#   bench/workers.sh [--worktree] [--keep]
#
# Builds walletstream from a clean export of REF (default HEAD; bench/lib.sh;
# --worktree: `make` in the working tree; WALLETSTREAM names a binary) and
# build/gen_events, generates WORKERS_EVENTS clean events over
# WORKERS_WALLETS wallets (as bench/replay.sh does), then measures
# `walletstream replay --workers N` for each N in WORKERS under /usr/bin/time
# (wall, user+sys CPU, peak RSS), each replay into a fresh data directory:
#
#   warm-up    one replay per N, not counted
#   rounds     WORKERS_RUNS rounds; each round replays once per N, in the
#              order of WORKERS in odd rounds and reversed in even ones, so
#              that the counts are paired under the same machine conditions
#   ratios     per round, events/s of N over events/s of the first count in
#              WORKERS (the reference, 1 by default); median of the rounds
#   figures    the last round's stores are exported (`walletstream export
#              --format jsonl`) and must be identical for every N
#
# An element of WORKERS may be `default`: no --workers option at all (the
# binary's own default, the number of cores). A binary without --workers
# (before it existed) can be measured with WORKERS=default only.
#
# Prints one line per replay and the medians; writes everything as JSON to
# bench/results/workers-<UTC time>.json (git-ignored).
#
# Environment: WORKERS ("1 2 4"), WORKERS_EVENTS (1000000), WORKERS_WALLETS
# (100000), WORKERS_RUNS (5), PRODUCTS (1000), SEED (42), WORKERS_ARGS (more
# options for every replay), BENCH_TMP (directory for the event file and the
# data directories), REF (HEAD), WALLETSTREAM (binary to measure).
# QUICK=1 (alone or from bench/run.sh): 100,000 events over 10,000 wallets,
# 2 rounds (variables given in the environment win).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${QUICK:-0}" = 1 ]; then
    WORKERS_EVENTS=${WORKERS_EVENTS:-100000}
    WORKERS_WALLETS=${WORKERS_WALLETS:-10000}
    WORKERS_RUNS=${WORKERS_RUNS:-2}
fi
WORKERS=${WORKERS:-1 2 4}
EVENTS=${WORKERS_EVENTS:-1000000}
WALLETS=${WORKERS_WALLETS:-100000}
RUNS=${WORKERS_RUNS:-5}
PRODUCTS=${PRODUCTS:-1000}
SEED=${SEED:-42}
WORKERS_ARGS=${WORKERS_ARGS:-}

bench_args "$@"
bench_worker_counts workers.sh WORKERS "$WORKERS"

bench_init workers

# --- tools and build -----------------------------------------------------------
need_time
need jq
build_walletstream "$WORKTREE"
build_gen_events
HAS_WORKERS=0
"$BIN" replay --help 2>&1 | grep -q -- '--workers' && HAS_WORKERS=1
if [ "$HAS_WORKERS" = 0 ]; then
    for w in "${COUNTS[@]}"; do
        [ "$w" = default ] || die "this binary has no --workers option (WORKERS=default measures its one configuration)"
    done
fi

# --- machine and input ---------------------------------------------------------
machine_describe
say "walletstream replay by workers: $WORKERS  (binary from $BUILT_FROM, sha256 $BIN_SHA${WORKERS_ARGS:+; replay $WORKERS_ARGS})"
machine_line
FILE=$T/events.jsonl
build/gen_events -n "$EVENTS" -w "$WALLETS" -p "$PRODUCTS" -s "$SEED" >"$FILE"
FILE_BYTES=$(stat -c %s "$FILE")
LINES=$(wc -l <"$FILE")
[ "$LINES" = "$EVENTS" ] || die "generator wrote $LINES lines, expected $EVENTS"
say "input: $EVENTS events, $WALLETS wallets, $PRODUCTS products, seed $SEED, $FILE_BYTES bytes"

# --- measurement ---------------------------------------------------------------
RUNS_JSONL=$T/runs.jsonl
: >"$RUNS_JSONL"
APPLIED="replayed $EVENTS records: $EVENTS applied, 0 duplicate, 0 rejected"

# wargs W: the options that select W workers
wargs() { [ "$1" = default ] || printf -- '--workers %s' "$1"; }

# replay_once W ROUND: one replay with W workers into a fresh directory
# $T/data-W (kept until the next replay with W); ROUND 0 = warm-up, not
# recorded
replay_once() {
    local w=$1 round=$2 dir=$T/data-$1 wall user sys rss
    rm -rf "$dir"
    sync
    # shellcheck disable=SC2046,SC2086
    if ! /usr/bin/time -f '%e %U %S %M' -o "$T/time.out" \
        "$BIN" replay $(wargs "$w") $WORKERS_ARGS --data-dir "$dir" "$FILE" >"$T/cmd.out" 2>"$T/cmd.err"; then
        cat "$T/cmd.err" >&2
        die "replay with workers=$w failed"
    fi
    grep -Fq "$APPLIED" "$T/cmd.out" || { cat "$T/cmd.out" "$T/cmd.err" >&2; die "workers=$w: unexpected output (wanted: $APPLIED)"; }
    read -r wall user sys rss <"$T/time.out"
    awk -v l="workers=$w $([ "$round" = 0 ] && echo warm-up || echo "round $round")" \
        -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" -v e="$EVENTS" \
        'BEGIN {printf "  %-22s wall %7.2f s  cpu %7.2f s (user %.2f, sys %.2f)  rss %7.1f MiB  %9.0f events/s\n",
                l, w, u + y, u, y, r / 1024, (w > 0) ? e / w : 0}'
    [ "$round" = 0 ] && return 0
    jq -nc --arg w "$w" --argjson round "$round" --argjson wall "$wall" --argjson user "$user" \
        --argjson sys "$sys" --argjson rss "$rss" --argjson ev "$EVENTS" --arg load "$(loadavg)" \
        '{workers: $w, round: $round, wall_s: $wall, user_s: $user, sys_s: $sys, cpu_s: ($user + $sys),
          max_rss_kb: $rss, per_s: (if $wall > 0 then $ev / $wall else null end),
          per_cpu_s: (if $user + $sys > 0 then $ev / ($user + $sys) else null end), load_after: $load}' >>"$RUNS_JSONL"
}

say "replays (fresh data directory each):"
for w in "${COUNTS[@]}"; do replay_once "$w" 0; done
for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) = 1 ]; then
        for w in "${COUNTS[@]}"; do replay_once "$w" "$r"; done
    else
        for ((i = ${#COUNTS[@]} - 1; i >= 0; i--)); do replay_once "${COUNTS[i]}" "$r"; done
    fi
done

# --- figures: the same state whatever the number of workers -------------------
FIGURES=$T/figures.tsv     # workers  sha256 of the sorted export
: >"$FIGURES"
for w in "${COUNTS[@]}"; do
    rm -rf "$T/export"
    "$BIN" export --data-dir "$T/data-$w" --format jsonl --out "$T/export" >/dev/null 2>"$T/export.err" ||
        { cat "$T/export.err" >&2; die "export of the workers=$w store failed"; }
    printf '%s\t%s\n' "$w" "$(for f in "$T"/export/*.jsonl; do
        basename "$f"; LC_ALL=C sort "$f"; done | sha256sum | cut -c1-16)" >>"$FIGURES"
    [ "$KEEP" = 1 ] || rm -rf "$T/data-$w"
done
rm -rf "$T/export"
FIGURES_MATCH=$(if [ "$(cut -f2 "$FIGURES" | sort -u | wc -l)" = 1 ]; then echo true; else echo false; fi)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- summary -------------------------------------------------------------------
REFW=${COUNTS[0]}
jq -s --arg ref "$REFW" --argjson counts "$(printf '%s\n' "${COUNTS[@]}" | jq -Rsc 'split("\n") | map(select(length > 0))')" \
    "$JQ_STATS"'
    . as $runs |
    {reference: $ref,
     series: [$counts[] as $w | $runs | map(select(.workers == $w)) |
        {workers: $w, runs: length, per_s: stat(.per_s), wall_s: stat(.wall_s), cpu_s: stat(.cpu_s),
         user_s: stat(.user_s), sys_s: stat(.sys_s), per_cpu_s: stat(.per_cpu_s), max_rss_kb: stat(.max_rss_kb),
         # per round: this count over the reference, events/s and CPU seconds
         ratio_pairs: [.[] as $a | $runs[] | select(.workers == $ref and .round == $a.round) | $a.per_s / .per_s],
         cpu_ratio_pairs: [.[] as $a | $runs[] | select(.workers == $ref and .round == $a.round) | $a.cpu_s / .cpu_s]}
        | .ratio = (.ratio_pairs | {median: med, min: min, max: max})
        | .cpu_ratio = (.cpu_ratio_pairs | {median: med, min: min, max: max})]}' \
    "$RUNS_JSONL" >"$T/summary.json"

say ""
say "medians (min-max) of $RUNS rounds; ratios per round against workers=$REFW:"
jq -r '.series[] | "  workers=\(.workers)\(" " * ([8 - (.workers | length), 1] | max))\(.per_s.median | floor) events/s (\(.per_s.min | floor)-\(.per_s.max | floor))  wall \(.wall_s.median) s  cpu \(.cpu_s.median * 100 | round / 100) s (user \(.user_s.median * 100 | round / 100), sys \(.sys_s.median * 100 | round / 100); \(.per_cpu_s.median | floor)/s of CPU)  rss \(.max_rss_kb.median / 1024 * 10 | round / 10) MiB  ratio \(.ratio.median * 1000 | round / 1000) (\(.ratio.min * 1000 | round / 1000)-\(.ratio.max * 1000 | round / 1000)), cpu ratio \(.cpu_ratio.median * 1000 | round / 1000)"' "$T/summary.json"
say "  figures of the last round's stores: $(if [ "$FIGURES_MATCH" = true ]; then echo "identical for every count"; else echo "DIFFER:"; sed 's/^/    workers=/' "$FIGURES"; fi)"
say "  load average before $LOAD_BEFORE, after $LOAD_AFTER"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$T/result.json
jq -n --slurpfile runs "$RUNS_JSONL" --slurpfile summary "$T/summary.json" \
    --arg stamp "$STAMP" --argjson machine "$(machine_json)" --arg commit "$COMMIT" --arg built "$BUILT_FROM" \
    --arg sha "$BIN_SHA" --argjson ev "$EVENTS" --argjson wal "$WALLETS" --argjson prod "$PRODUCTS" --argjson seed "$SEED" \
    --argjson bytes "$FILE_BYTES" --argjson rounds "$RUNS" --arg workers "$WORKERS" --arg wargs "$WORKERS_ARGS" \
    --argjson has "$([ "$HAS_WORKERS" = 1 ] && echo true || echo false)" --argjson match "$FIGURES_MATCH" \
    --argjson figures "$(jq -Rsc 'split("\n") | map(select(length > 0) | split("\t") | {workers: .[0], sha256_prefix: .[1]})' "$FIGURES")" \
    '{benchmark: "workers", time: $stamp, commit: $commit, built_from: $built, binary_sha256_prefix: $sha,
      binary_has_workers_option: $has, machine: $machine,
      input: {events: $ev, wallets: $wal, products: $prod, seed: $seed, bytes: $bytes},
      config: {workers: $workers, rounds: $rounds, replay_args: $wargs},
      summary: ($summary[0] + {figures_match: $match, figures: $figures}), runs: $runs}' >"$OUT"
result_write workers "$OUT"
bench_result "$(jq -r '"replay \(.input.events) events over \(.input.wallets) wallets by workers: " +
    ([.summary.series[] | "\(.workers) \(.per_s.median | floor)/s cpu \(.cpu_s.median * 100 | round / 100) s" +
        (if .workers == $ref then "" else " (x\(.ratio.median * 1000 | round / 1000))" end)] | join(", ")) +
    (if .summary.figures_match then "; figures identical" else "; FIGURES DIFFER" end)' --arg ref "$REFW" "$RESULT_PATH")"
[ "$FIGURES_MATCH" = true ] || die "the stores differ between worker counts"
