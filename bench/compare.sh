#!/usr/bin/env bash
# bench/compare.sh - stream throughput by number of workers on a real broker,
# against `kcat -C` (docs/BENCHMARKS.md, "Stream throughput by workers").
#
#   bench/compare.sh [--worktree] [--keep]
#
# Builds walletstream from a clean export of REF (default HEAD; bench/lib.sh;
# --worktree: `make` in the working tree; WALLETSTREAM names a binary) and
# build/loadgen, starts a single-node Kafka (scripts/kafka; KAFKA_DIR: use
# that broker) and preloads COMPARE_EVENTS clean events over COMPARE_WALLETS
# wallets, keyed by wallet, into a fresh topic of COMPARE_PARTITIONS
# partitions (loadgen -n). Then, after one warm-up of kcat and of walletstream
# (not counted), COMPARE_RUNS rounds; each round runs, one after the other:
#
#   walletstream  `walletstream run --brokers` once for each N in
#                 COMPARE_WORKERS (`default`: no --workers option; N:
#                 --workers N), fresh data directory each, timed from its
#                 start until /metrics counts COMPARE_EVENTS records
#                 processed and committed (the helpers stream.sh uses:
#                 ws_tput in bench/lib.sh); counts in order in odd rounds,
#                 reversed in even ones
#   kcat          `kcat -C -b B -t T -o beginning -e -q > /dev/null` under
#                 /usr/bin/time: the raw-consume reference
#
# Ratios are taken per round (to kcat, and to the first count in
# COMPARE_WORKERS), medians over the rounds. The last round's stores are
# exported and must hold the same figures for every count.
#
# PEERS=1 then runs the peers' comparison (PEERS_DIR/compare.sh, by default
# ../shared/peers beside this repository: Flink at parallelism 2 on its own
# fresh topic of the same size and partitions on the same broker, with
# kcat and `walletstream run` (PEERS_WS_ARGS; default options) timed the
# same way there, Flink's figures checked against walletstream's); PEERS="flink
# spark kafka-streams" names other peers. The peers' first build downloads
# their dependencies (minutes); the step takes long: it is off by default.
#
# Prints one line per run and the medians; writes everything as JSON to
# bench/results/compare-<UTC time>.json (git-ignored).
#
# Environment (defaults): COMPARE_EVENTS (2000000), COMPARE_WALLETS (100000),
# COMPARE_PARTITIONS (6), COMPARE_RUNS (3), COMPARE_WORKERS ("1 default"),
# WS_ARGS (more options for every `walletstream run`), PEERS (0), PEERS_DIR,
# PEERS_WS_ARGS (""), REF (HEAD), WALLETSTREAM, BENCH_TMP, KAFKA_DIR.
# QUICK=1 (alone or from bench/run.sh): 100,000 events, 1 round (variables
# given in the environment win).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${QUICK:-0}" = 1 ]; then
    COMPARE_EVENTS=${COMPARE_EVENTS:-100000}
    COMPARE_RUNS=${COMPARE_RUNS:-1}
fi
TPUT_EVENTS=${COMPARE_EVENTS:-2000000}
TPUT_WALLETS=${COMPARE_WALLETS:-100000}
PARTITIONS=${COMPARE_PARTITIONS:-6}
ROUNDS=${COMPARE_RUNS:-3}
COMPARE_WORKERS=${COMPARE_WORKERS:-1 default}
WS_ARGS=${WS_ARGS:-}
PEERS=${PEERS:-0}
PEERS_WS_ARGS=${PEERS_WS_ARGS:-}

bench_args "$@"
bench_worker_counts compare.sh COMPARE_WORKERS "$COMPARE_WORKERS"
case $PEERS in
0 | "") PEER_LIST="" ;;
1) PEER_LIST=flink ;;
*) PEER_LIST=$PEERS ;;
esac

bench_init compare
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
[ -d "$PEERS_DIR" ] && PEERS_DIR=$(cd "$PEERS_DIR" && pwd)

# --- tools and build -----------------------------------------------------------
need_time
for t in jq curl kcat; do need $t; done
if [ -n "$PEER_LIST" ]; then
    [ -x "$PEERS_DIR/compare.sh" ] || die "PEERS=$PEERS: no $PEERS_DIR/compare.sh (set PEERS_DIR)"
    need python3; need bc
fi
build_walletstream "$WORKTREE"
build_loadgen
LG=$T/loadgen
cp build/loadgen "$LG"
RDKAFKA_VERSION=$(pkg-config --modversion rdkafka)
HAS_WORKERS=0
"$BIN" run --help 2>&1 | grep -q -- '--workers' && HAS_WORKERS=1
if [ "$HAS_WORKERS" = 0 ]; then
    for w in "${COUNTS[@]}"; do
        [ "$w" = default ] || die "this binary has no --workers option (COMPARE_WORKERS=default measures its one configuration)"
    done
fi

# --- machine, broker, topic ----------------------------------------------------
machine_describe
JAVA_VERSION=$(java -version 2>&1 | head -n 1 || true)
say "walletstream stream throughput by workers: $COMPARE_WORKERS  (binary from $BUILT_FROM, sha256 $BIN_SHA; librdkafka $RDKAFKA_VERSION${WS_ARGS:+; walletstream run $WS_ARGS})"
machine_line
kafka_up
say "real broker: Kafka ${KAFKA_VERSION_USED:-?} at $KAFKA ($KDIR, $JAVA_VERSION)"

RUNS=$T/runs.jsonl     # one JSON object per run (ws_tput, kcat_tput, tput_preload)
: >"$RUNS"
TPUT_TOPIC=compare-$$
say "throughput: $TPUT_EVENTS clean events over $TPUT_WALLETS wallets in a $PARTITIONS-partition topic:"
tput_preload "$PARTITIONS"

# wargs W: the options that select W workers
wargs() { [ "$1" = default ] || printf -- '--workers %s' "$1"; }

kcat_tput 0 warmup-kcat
ws_tput 0 warmup-walletstream
for r in $(seq 1 "$ROUNDS"); do
    order=("${COUNTS[@]}")
    if [ $((r % 2)) = 0 ]; then
        order=()
        for ((i = ${#COUNTS[@]} - 1; i >= 0; i--)); do order+=("${COUNTS[i]}"); done
    fi
    for w in "${order[@]}"; do
        ws_tput "$r" "workers=$w" "$(wargs "$w")" "$([ "$r" = "$ROUNDS" ] && echo "$T/export-$w")"
    done
    kcat_tput "$r"
done

# --- figures: the same state whatever the number of workers -------------------
FIGURES=$T/figures.tsv     # workers  sha256 of the sorted export
: >"$FIGURES"
for w in "${COUNTS[@]}"; do
    printf '%s\t%s\n' "$w" "$(for f in "$T/export-$w"/*.jsonl; do
        basename "$f"; LC_ALL=C sort "$f"; done | sha256sum | cut -c1-16)" >>"$FIGURES"
    [ "$KEEP" = 1 ] || rm -rf "$T/export-$w"
done
FIGURES_MATCH=$(if [ "$(cut -f2 "$FIGURES" | sort -u | wc -l)" = 1 ]; then echo true; else echo false; fi)
say "  figures of the last round's stores: $(if [ "$FIGURES_MATCH" = true ]; then echo "identical for every count"; else echo "DIFFER"; fi)"

# --- peers (PEERS=1) -----------------------------------------------------------
PEERS_JSON=null
if [ -n "$PEER_LIST" ]; then
    say "peers: $PEERS_DIR/compare.sh --peers \"$PEER_LIST\" -n $TPUT_EVENTS -w $TPUT_WALLETS -p $PARTITIONS on $KAFKA (its own topic; Flink at parallelism 2):"
    # compare.sh runs build/walletstream and scripts/kafka from its working
    # directory: a directory holding this run's binary and the repository's
    # scripts/
    PROOT=$T/peers-root
    mkdir -p "$PROOT/build"
    ln -s "$BIN" "$PROOT/build/walletstream"
    ln -s "$ROOT/scripts" "$PROOT/scripts"
    prc=0
    (cd "$PROOT" && "$PEERS_DIR/compare.sh" -n "$TPUT_EVENTS" -w "$TPUT_WALLETS" -p "$PARTITIONS" \
        --peers "$PEER_LIST" --bootstrap "$KAFKA" --out "$T/peers" --ws-args "$PEERS_WS_ARGS") \
        >"$T/peers.out" 2>"$T/peers.err" || prc=$?
    sed -n '/^system /,/^files: /p' "$T/peers.out" | sed '$d; s/^/  /'
    [ "$prc" = 0 ] || say "  peers' compare.sh exited $prc (a failed system or differing figures; see above)"
    # the table: name (34 columns), events/s (12), wall_s (9), cpu_s (9), note
    PEERS_JSON=$(sed -n '/^system /,/^files: /p' "$T/peers.out" | sed '1d; $d' |
        awk '{printf "%s\t%s\t%s\t%s\t%s\n", substr($0, 1, 34), substr($0, 36, 12), substr($0, 49, 9), substr($0, 59, 9), substr($0, 69)}' |
        jq -Rsc --argjson rc "$prc" --arg peers "$PEER_LIST" --arg args "$PEERS_WS_ARGS" '
            def trim: sub("^ +"; "") | sub(" +$"; "");
            def num: trim | if test("^[0-9.]+$") then tonumber else null end;
            {peers: $peers, ws_args: $args, exit_status: $rc,
             rows: (split("\n") | map(select(length > 0) | split("\t") |
                {system: (.[0] | trim), per_s: (.[1] | num), wall_s: (.[2] | num), cpu_s: (.[3] | num),
                 note: (.[4] | trim)}))}')
    if [ "$KEEP" != 1 ]; then rm -rf "$T/peers/kafka"; fi
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- summary -------------------------------------------------------------------
REFW=${COUNTS[0]}
jq -s --arg ref "workers=$REFW" --argjson counts "$(printf 'workers=%s\n' "${COUNTS[@]}" | jq -Rsc 'split("\n") | map(select(length > 0))')" \
    "$JQ_STATS"'
    . as $runs |
    def pairs_over($s; $b): [$runs[] | select(.series == $s) as $a | $runs[] | select(.series == $b and .n == $a.n) | $a.per_s / .per_s];
    {reference: $ref,
     preload: (map(select(.series == "preload")) | first),
     kcat: (map(select(.series == "kcat")) | {runs: length, per_s: stat(.per_s), wall_s: stat(.wall_s), cpu_s: stat(.cpu_s)}),
     walletstream: [$counts[] as $s | $runs | map(select(.series == $s)) |
        {series: $s, runs: length, per_s: stat(.per_s), wall_s: stat(.wall_s), cpu_s: stat(.cpu_s),
         batches: stat(.wait.batches), events_per_batch: stat(.wait.batch_events_sum / .wait.batches),
         ms_per_commit: stat(1000 * .wait.batch_commit_seconds_sum / .wait.batches),
         max_rss_kb: stat(.max_rss_kb), threads: (map(.threads | length) | max),
         over_kcat_pairs: pairs_over($s; "kcat"), over_reference_pairs: pairs_over($s; $ref)}
        | .over_kcat = (.over_kcat_pairs | {median: med, min: min, max: max})
        | .over_reference = (.over_reference_pairs | {median: med, min: min, max: max})]}' \
    "$RUNS" >"$T/summary.json"

say ""
say "medians (min-max) of $ROUNDS rounds; ratios per round:"
jq -r '(.walletstream[] | "  \(.series)\(" " * ([16 - (.series | length), 1] | max))\(.per_s.median | floor) events/s (\(.per_s.min | floor)-\(.per_s.max | floor))  wall \(.wall_s.median) s  cpu \(.cpu_s.median) s  \(.events_per_batch.median | floor) events per batch, \(.ms_per_commit.median * 10 | floor / 10) ms per commit  x kcat \(.over_kcat.median * 1000 | round / 1000)  x \($ref) \(.over_reference.median * 1000 | round / 1000) (\(.over_reference.min * 1000 | round / 1000)-\(.over_reference.max * 1000 | round / 1000))"),
    "  kcat -C          \(.kcat.per_s.median | floor) events/s (\(.kcat.per_s.min | floor)-\(.kcat.per_s.max | floor))  wall \(.kcat.wall_s.median) s  cpu \(.kcat.cpu_s.median * 100 | round / 100) s"' \
    --arg ref "workers=$REFW" "$T/summary.json"
say "  load average before $LOAD_BEFORE, after $LOAD_AFTER"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$T/result.json
jq -n --slurpfile runs "$RUNS" --slurpfile summary "$T/summary.json" \
    --arg stamp "$STAMP" --argjson machine "$(machine_json)" --arg commit "$COMMIT" --arg built "$BUILT_FROM" \
    --arg sha "$BIN_SHA" --arg rdkafka "$RDKAFKA_VERSION" --arg kafka "${KAFKA_VERSION_USED:-}" --arg java "$JAVA_VERSION" \
    --argjson has "$([ "$HAS_WORKERS" = 1 ] && echo true || echo false)" --argjson match "$FIGURES_MATCH" \
    --argjson figures "$(jq -Rsc 'split("\n") | map(select(length > 0) | split("\t") | {workers: .[0], sha256_prefix: .[1]})' "$FIGURES")" \
    --argjson peers "$PEERS_JSON" \
    --argjson config "$(jq -n --argjson ev "$TPUT_EVENTS" --argjson wal "$TPUT_WALLETS" --argjson p "$PARTITIONS" \
        --argjson r "$ROUNDS" --arg w "$COMPARE_WORKERS" --arg wa "$WS_ARGS" --arg peers "$PEER_LIST" \
        '{events: $ev, wallets: $wal, partitions: $p, rounds: $r, workers: $w, ws_args: $wa, peers: $peers}')" \
    '{benchmark: "compare", time: $stamp, commit: $commit, built_from: $built, binary_sha256_prefix: $sha,
      binary_has_workers_option: $has, librdkafka: $rdkafka, kafka: $kafka, java: $java, machine: $machine,
      config: $config, summary: ($summary[0] + {figures_match: $match, figures: $figures, peers: $peers}), runs: $runs}' >"$OUT"
result_write compare "$OUT"
bench_result "$(jq -r '.summary.reference as $ref | "run \(.config.events) events, \(.config.partitions) partitions: " +
    ([.summary.walletstream[] | "\(.series) \(.per_s.median | floor)/s (x\(.over_kcat.median * 1000 | round / 1000) kcat" +
        (if .series == $ref then "" else ", x\(.over_reference.median * 1000 | round / 1000) \($ref)" end) + ")"
        ] | join(", ")) + "; kcat \(.summary.kcat.per_s.median | floor)/s" +
    (if .summary.figures_match then "; figures identical" else "; FIGURES DIFFER" end) +
    (if .summary.peers == null then "" else "; peers: " + ([.summary.peers.rows[] | select(.system | test("^(kcat|walletstream)") | not) |
        "\(.system) \(.per_s // "FAILED")/s"] | join(", ")) end)' "$RESULT_PATH")"
[ "$FIGURES_MATCH" = true ] || die "the stores differ between worker counts"
