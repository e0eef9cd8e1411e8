#!/usr/bin/env bash
# bench/scale.sh - replay at scale, restart and footprint (docs/BENCHMARKS.md,
# "Replay at scale", "Restart", "Footprint").
#
#   bench/scale.sh [--worktree] [--keep] [--skip-restart]
#
# Builds walletstream from a clean export of REF (bench/lib.sh), and
# build/gen_events, build/loadgen, build/mhd_fixed. Then:
#
#   input      gen_events -n EVENTS -w WALLETS -p PRODUCTS -s SEED
#              $SCALE_GEN_ARGS into a temporary file (deleted at the end);
#              wallets are drawn at random, so 20 M events touch about
#              86.5 % of 10 M wallets (SCALE_GEN_ARGS=-c: every one, twice)
#   replay     RUNS replays, each into a fresh data directory, under
#              /usr/bin/time (wall, CPU, peak RSS); meanwhile
#              /proc/PID/smaps is read every RSS_SAMPLE_S s and the Rss of
#              the mappings other than data.mdb (the LMDB map) is summed:
#              its peak is "RSS outside the map". The last run's store is
#              kept for the steps below.
#   reference  REF_RUNS replays of EVENTS events over REF_WALLETS wallets
#              (same generator and seed): what the wallet count costs
#   footprint  the store: bytes on disk (du), per database (mdb_stat -efa),
#              bytes per wallet (everything but the `seen` database over the
#              wallets) and per remembered transaction id (`seen` over its
#              entries); the targets (issue 14) are on disk <= 160 bytes
#              per wallet and <= 48 per remembered id
#   restart    RESTART_RUNS times, alternating: `walletstream run` (embedded
#              broker) and `walletstream serve` on the store, each timed from
#              just before its start until GET /readyz answers 200 (loadgen
#              -Y polls every READY_POLL_US us); references in the same run:
#              `mhd_fixed` (a minimal libmicrohttpd server) until it answers
#              200, and `mdb_stat -e` of the store. After each `run` is ready
#              it stays idle IDLE_S s, then its RSS outside the map is read.
#              As root and with COLD=1, the same again after
#              `sync; echo 3 > /proc/sys/vm/drop_caches` before every start
#              (cold page cache: the whole machine's cache is dropped).
#
# Prints one line per step and the medians; writes everything as JSON to
# bench/results/scale-<UTC time>.json (git-ignored).
#
# Environment (defaults): SCALE_EVENTS (20000000), SCALE_WALLETS (10000000),
# PRODUCTS (1000), SEED (42), RUNS (3), SCALE_REF_WALLETS (100000),
# WORKERS (1: `replay --workers`), SCALE_REF_RUNS (1; 0: none), SCALE_GEN_ARGS (""), RESTART_RUNS (3), COLD (1), IDLE_S (5),
# READY_POLL_US (1000), RSS_SAMPLE_S (0.2), REF, WALLETSTREAM, BENCH_TMP
# (the event file takes about 155 bytes per event, the store about 300 bytes
# per wallet: 3.1 GB + about 4 GB at the defaults).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

EVENTS=${SCALE_EVENTS:-20000000}
WALLETS=${SCALE_WALLETS:-10000000}
PRODUCTS=${PRODUCTS:-1000}
SEED=${SEED:-42}
RUNS=${RUNS:-3}
WORKERS=${WORKERS:-1}
REF_WALLETS=${SCALE_REF_WALLETS:-100000}
REF_RUNS=${SCALE_REF_RUNS:-1}
RESTART_RUNS=${RESTART_RUNS:-3}
COLD=${COLD:-1}
IDLE_S=${IDLE_S:-5}
READY_POLL_US=${READY_POLL_US:-1000}
GEN_ARGS=${SCALE_GEN_ARGS:-}
DO_RESTART=1

bench_opt() { # this script's own options (bench_args)
    case $1 in
    --skip-restart) DO_RESTART=0 ;;
    *) return 1 ;;
    esac
}
bench_args "$@"

bench_init scale
need_time
need jq
need curl
need mdb_stat lmdb-utils
need python3
build_walletstream "$WORKTREE"
build_gen_events
build_loadgen
build_mhd_fixed
LG=$T/loadgen MHD=$T/mhd_fixed
cp build/loadgen "$LG"
cp build/mhd_fixed "$MHD"
machine_describe
say "walletstream replay at scale, restart, footprint  (binary from $BUILT_FROM, sha256 $BIN_SHA)"
machine_line

RUNS_JSONL=$T/runs.jsonl
: >"$RUNS_JSONL"
fmt() { awk -v v="$1" 'BEGIN {printf "%.0f", v}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# gen FILE N WALLETS: the input file; prints its line
gen() {
    local file=$1 n=$2 w=$3 t0 t1 lines
    t0=$(now)
    # shellcheck disable=SC2086
    build/gen_events -n "$n" -w "$w" -p "$PRODUCTS" -s "$SEED" $GEN_ARGS >"$file"
    t1=$(now)
    lines=$(wc -l <"$file")
    [ "$lines" = "$n" ] || die "gen_events wrote $lines lines, expected $n"
    say "  input: $(fmt "$n") events over $(fmt "$w") wallets, $(fmt "$(stat -c %s "$file")") bytes, generated in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
}

# replay_run SERIES N FILE EVENTS WALLETS DIR: one timed replay into DIR
# (fresh), sampling the RSS outside the map; appends to runs.jsonl
replay_run() {
    local series=$1 n=$2 file=$3 ev=$4 w=$5 dir=$6 tpid cpid="" spid="" wall user sys rss
    local po=0 pm=0 ns=0 bytes load0
    rm -rf "$dir"
    load0=$(loadavg)
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$T/time.out" "$BIN" replay --workers "$WORKERS" --data-dir "$dir" "$file" \
        >"$T/cmd.out" 2>"$T/cmd.err" &
    tpid=$!
    bench_track "$tpid"
    for _ in $(seq 1 1000); do
        cpid=$(pgrep -P "$tpid" | head -n 1 || true)
        [ -n "$cpid" ] && break
        kill -0 "$tpid" 2>/dev/null || break
        sleep 0.005
    done
    rm -f "$T/rss.out.stop"
    if [ -n "$cpid" ]; then
        rss_sampler "$cpid" "$T/rss.out" &
        spid=$!
        bench_track "$spid"
    fi
    wait "$tpid" || { cat "$T/cmd.err" >&2; die "$series: replay failed"; }
    [ -z "$spid" ] || wait "$spid" || true
    [ -s "$T/rss.out" ] && read -r po pm ns <"$T/rss.out"
    grep -q "replayed $ev records: $ev applied, 0 duplicate, 0 rejected" "$T/cmd.out" ||
        { cat "$T/cmd.out" "$T/cmd.err" >&2; die "$series: unexpected replay summary"; }
    read -r wall user sys rss <"$T/time.out"
    bytes=$(du -s --block-size=1 "$dir/state" | cut -f1)
    awk -v l="$series $n" -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" -v e="$ev" -v po="$po" \
        -v pm="$pm" -v ns="$ns" -v b="$bytes" 'BEGIN {
        printf "  %-12s wall %7.2f s  cpu %7.2f s  %9.0f events/s  peak RSS %7.1f MiB (outside the map %.1f MiB, map %.1f MiB; %d samples)  state %.0f bytes\n",
            l, w, u + y, (w > 0 ? e / w : 0), r / 1024, po / 1024, pm / 1024, ns, b}'
    jq -nc --arg s "$series" --argjson n "$n" --argjson w "$wall" --argjson u "$user" --argjson y "$sys" \
        --argjson rss "$rss" --argjson po "$po" --argjson pm "$pm" --argjson ns "$ns" --argjson ev "$ev" \
        --argjson wallets "$w" --argjson bytes "$bytes" --arg l0 "$load0" --arg l1 "$(loadavg)" \
        '{series: $s, n: $n, events: $ev, wallets: $wallets, wall_s: $w, user_s: $u, sys_s: $y, cpu_s: ($u + $y),
          per_s: ($ev / $w), per_cpu_s: ($ev / ($u + $y)), max_rss_kb: $rss, peak_rss_outside_map_kb: $po,
          peak_rss_map_kb: $pm, rss_samples: $ns, state_bytes: $bytes, load_before: $l0, load_after: $l1}' >>"$RUNS_JSONL"
}

# --- replay at scale ------------------------------------------------------------
FILE=$T/events.jsonl
STORE=$T/store
say "replay at scale: $RUNS runs, fresh data directory each:"
gen "$FILE" "$EVENTS" "$WALLETS"
for i in $(seq 1 "$RUNS"); do
    replay_run replay "$i" "$FILE" "$EVENTS" "$WALLETS" "$STORE"
done
rm -f "$FILE"

if [ "$REF_RUNS" -gt 0 ]; then
    say "reference: the same number of events over $(fmt "$REF_WALLETS") wallets:"
    gen "$FILE" "$EVENTS" "$REF_WALLETS"
    for i in $(seq 1 "$REF_RUNS"); do
        replay_run reference "$i" "$FILE" "$EVENTS" "$REF_WALLETS" "$T/refdata"
    done
    rm -rf "$FILE" "$T/refdata"
fi

# --- footprint ------------------------------------------------------------------
say "footprint of the store of the last replay:"
STATE_BYTES=$(du -s --block-size=1 "$STORE/state" | cut -f1)
STATE_APPARENT=$(du -s --apparent-size --block-size=1 "$STORE/state" | cut -f1)
mdb_state "$STORE/state" "$T/mdb_stat.out"
read -r SEEN_PAGES SEEN_ENTRIES <<<"$(mdb_db seen)"
read -r _ WALLET_ENTRIES <<<"$(mdb_db wallets)"
PAGE=$(awk '/Page size:/ {print $3; exit}' "$T/mdb_stat.out")
PAGE=${PAGE:-4096}
FOOT=$(jq -nc --argjson bytes "$STATE_BYTES" --argjson apparent "$STATE_APPARENT" --argjson page "$PAGE" \
    --argjson sp "$SEEN_PAGES" --argjson se "$SEEN_ENTRIES" --argjson we "$WALLET_ENTRIES" \
    --argjson used "${PAGES_USED:-0}" --argjson free "${PAGES_FREE:-0}" --argjson dbs "$(mdb_dbs_json)" '
    ($sp * $page) as $seen |
    {state_bytes: $bytes, state_apparent_bytes: $apparent, page_size: $page, pages_used: $used, pages_free: $free,
     wallets: $we, transaction_ids: $se, seen_bytes: $seen,
     bytes_per_wallet: (if $we > 0 then ($bytes - $seen) / $we else null end),
     bytes_per_transaction_id: (if $se > 0 then $seen / $se else null end),
     budget_bytes: (160 * $we + 48 * $se),
     wallet_met: ($we > 0 and ($bytes - $seen) / $we <= 160), id_met: ($se > 0 and $seen / $se <= 48),
     met: ($we > 0 and $se > 0 and ($bytes - $seen) / $we <= 160 and $seen / $se <= 48), databases: $dbs}')
printf '%s\n' "$MDB_DBS" | awk -v p="$PAGE" '{printf "    db %-12s %10d pages %15.0f bytes %12d entries\n", $1, $2, $2 * p, $3}'
jq -r '"  \(.state_bytes) bytes on disk (\(.pages_used) pages, \(.pages_free) free): \(.bytes_per_wallet | floor) bytes per wallet over \(.wallets) wallets (all but seen) + \(.bytes_per_transaction_id | floor) per transaction id over \(.transaction_ids); targets <= 160 per wallet: \(if .wallet_met then "met" else "NOT met" end), <= 48 per id: \(if .id_met then "met" else "NOT met" end)"' <<<"$FOOT"

# --- restart --------------------------------------------------------------------
# ready_time SERIES N COLD CMD...: starts CMD (a server on 127.0.0.1:PORT,
# PORT substituted) and times it until GET /readyz (mhd_fixed: /) answers
# 200; stops it (after IDLE_S s and an RSS reading for `run`)
ready_time() {
    local series=$1 n=$2 cold=$3 port t0 pid path=/readyz rc=0 o=null m=null vm=null args=() a label
    shift 3
    port=$(free_port)
    for a in "$@"; do args+=("${a//PORT/$port}"); done
    [ "$series" = mhd_fixed ] && path=/
    if [ "$cold" = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
    t0=$(now)
    "${args[@]}" >"$T/srv.out" 2>"$T/srv.err" &
    pid=$!
    bench_track "$pid"
    "$LG" -a "127.0.0.1:$port" -Y "$path" -S "$t0" -i "$READY_POLL_US" -T 300 -o "$T/ready.json" \
        >"$T/ready.out" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        cat "$T/ready.out" "$T/srv.err" >&2
        die "$series did not answer 200 on $path"
    fi
    if [ "$series" = run ] && [ "$cold" = 0 ]; then
        sleep "$IDLE_S"
        read -r o m <<<"$(rss_split "$pid")"
        vm=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
    label="$series $n"
    [ "$cold" = 1 ] && label="$series cold $n"
    jq -r --arg l "$label" --arg o "$o" \
        '"  \($l | . + " " * ([16 - length, 1] | max)) ready after \(.elapsed_s * 1000 | floor) ms (first answer \(.first_answer_s * 1000 | floor) ms, status \(.first_status)\(if .first_status != 200 then ": " + (.first_body | .[0:80]) else "" end))" + (if $o != "null" then ", then idle: RSS outside the map \(($o | tonumber) / 1024 * 10 | floor / 10) MiB" else "" end)' "$T/ready.json"
    jq -c --arg s "$series" --argjson n "$n" --argjson cold "$cold" --argjson o "$o" --argjson m "$m" \
        --argjson vm "$vm" --argjson idle "$IDLE_S" \
        '{series: ("restart " + $s), n: $n, cold: ($cold == 1), ready_s: .elapsed_s, first_answer_s: .first_answer_s,
          first_status: .first_status, first_body: .first_body, requests: .requests, idle_s: (if $o != null then $idle else null end),
          idle_rss_outside_map_kb: $o, idle_rss_map_kb: $m, idle_vmrss_kb: $vm}' "$T/ready.json" >>"$RUNS_JSONL"
}

# mdb_stat_time N COLD: `mdb_stat -e` of the store, timed
mdb_stat_time() {
    local n=$1 cold=$2 t0 t1 env
    if [ "$cold" = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
    t0=$(now)
    for env in "$STORE"/state/*/; do mdb_stat -e "$env" >/dev/null; done
    t1=$(now)
    awk -v l="mdb_stat $n" -v c="$cold" -v a="$t0" -v b="$t1" \
        'BEGIN {if (c == 1) sub(/ /, " cold ", l); printf "  %-16s %d ms\n", l, (b - a) * 1000}'
    jq -nc --argjson n "$n" --argjson cold "$cold" --argjson a "$t0" --argjson b "$t1" \
        '{series: "restart mdb_stat", n: $n, cold: ($cold == 1), ready_s: ($b - $a)}' >>"$RUNS_JSONL"
}

restart_round() {
    local i=$1 cold=$2 env
    ready_time run "$i" "$cold" "$BIN" run --embedded-broker --data-dir "$STORE" --listen 127.0.0.1:PORT
    ready_time serve "$i" "$cold" "$BIN" serve --data-dir "$STORE" --listen 127.0.0.1:PORT
    ready_time mhd_fixed "$i" "$cold" "$MHD" PORT
    mdb_stat_time "$i" "$cold"
}

COLD_DONE=false
if [ "$DO_RESTART" = 1 ]; then
    say "restart with the store of $(fmt "$WALLET_ENTRIES") wallets, warm page cache ($RESTART_RUNS rounds; after each ready run, $IDLE_S s idle):"
    for i in $(seq 1 "$RESTART_RUNS"); do restart_round "$i" 0; done
    if [ "$COLD" = 1 ] && [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then
        say "restart, cold page cache (drop_caches before every start):"
        for i in $(seq 1 "$RESTART_RUNS"); do restart_round "$i" 1; done
        COLD_DONE=true
    else
        say "restart, cold page cache: left out (needs root and COLD=1)"
    fi
fi

# --- summary --------------------------------------------------------------------
jq -s "$JQ_STATS"'
    def series(s): map(select(.series == s));
    def restart(c): {run: (series("restart run") | map(select(.cold == c)) | stat(.ready_s)),
                     serve: (series("restart serve") | map(select(.cold == c)) | stat(.ready_s)),
                     mhd_fixed: (series("restart mhd_fixed") | map(select(.cold == c)) | stat(.ready_s)),
                     mdb_stat: (series("restart mdb_stat") | map(select(.cold == c)) | stat(.ready_s))};
    {replay: (series("replay") | {runs: length, per_s: stat(.per_s), per_cpu_s: stat(.per_cpu_s), wall_s: stat(.wall_s),
                cpu_s: stat(.cpu_s), max_rss_kb: stat(.max_rss_kb), peak_rss_outside_map_kb: stat(.peak_rss_outside_map_kb),
                peak_rss_map_kb: stat(.peak_rss_map_kb), state_bytes: stat(.state_bytes)}),
     reference: (series("reference") | {runs: length, per_s: stat(.per_s), wall_s: stat(.wall_s), max_rss_kb: stat(.max_rss_kb),
                peak_rss_outside_map_kb: stat(.peak_rss_outside_map_kb), state_bytes: stat(.state_bytes)}),
     restart_warm_s: restart(false), restart_cold_s: restart(true),
     idle: (series("restart run") | map(select(.cold | not)) | {runs: length, rss_outside_map_kb: stat(.idle_rss_outside_map_kb),
                rss_map_kb: stat(.idle_rss_map_kb), vmrss_kb: stat(.idle_vmrss_kb)})}
    | .ratio_replay_over_reference = (if .reference.per_s.median then .replay.per_s.median / .reference.per_s.median else null end)' \
    "$RUNS_JSONL" >"$T/summary.json"

say ""
say "medians (min-max):"
jq -r 'def r: . * 10 | floor / 10; def ms: if . == null then "-" else . * 1000 | r end;
    "  replay \(.replay.per_s.median | floor) events/s (\(.replay.per_s.min | floor)-\(.replay.per_s.max | floor)), wall \(.replay.wall_s.median) s, peak RSS \(.replay.max_rss_kb.median / 1024 | r) MiB, outside the map \(.replay.peak_rss_outside_map_kb.median / 1024 | r) MiB (max \(.replay.peak_rss_outside_map_kb.max / 1024 | r))",
    (if .reference.runs > 0 then "  reference (\(.reference.runs) runs) \(.reference.per_s.median | floor) events/s; replay / reference \(.ratio_replay_over_reference * 1000 | floor / 1000)" else empty end),
    (if .restart_warm_s.run.median then "  restart, warm: run \(.restart_warm_s.run.median | ms) ms (\(.restart_warm_s.run.min | ms)-\(.restart_warm_s.run.max | ms)), serve \(.restart_warm_s.serve.median | ms) ms; references mhd_fixed \(.restart_warm_s.mhd_fixed.median | ms) ms, mdb_stat \(.restart_warm_s.mdb_stat.median | ms) ms" else empty end),
    (if .restart_cold_s.run.median then "  restart, cold: run \(.restart_cold_s.run.median | ms) ms (\(.restart_cold_s.run.min | ms)-\(.restart_cold_s.run.max | ms)), serve \(.restart_cold_s.serve.median | ms) ms; references mhd_fixed \(.restart_cold_s.mhd_fixed.median | ms) ms, mdb_stat \(.restart_cold_s.mdb_stat.median | ms) ms" else empty end),
    (if .idle.runs > 0 then "  run idle after \('"$IDLE_S"') s: RSS outside the map \(.idle.rss_outside_map_kb.median / 1024 | r) MiB, map \(.idle.rss_map_kb.median / 1024 | r) MiB" else empty end)' "$T/summary.json"

jq -n --slurpfile runs "$RUNS_JSONL" --slurpfile summary "$T/summary.json" --argjson foot "$FOOT" \
    --argjson machine "$(machine_json)" --arg commit "$COMMIT" --arg built "$BUILT_FROM" --arg sha "$BIN_SHA" \
    --argjson ev "$EVENTS" --argjson w "$WALLETS" --argjson p "$PRODUCTS" --argjson seed "$SEED" --arg ga "$GEN_ARGS" \
    --argjson rw "$REF_WALLETS" --argjson cold "$COLD_DONE" --argjson idle "$IDLE_S" --argjson poll "$READY_POLL_US" \
    --arg lmdb "$(dpkg-query -W -f='${Version}' liblmdb0 2>/dev/null || echo unknown)" \
    '{benchmark: "scale", commit: $commit, built_from: $built, binary_sha256_prefix: $sha, liblmdb_package: $lmdb,
      machine: $machine,
      input: {events: $ev, wallets: $w, products: $p, seed: $seed, gen_args: $ga, reference_wallets: $rw},
      config: {cold_measured: $cold, idle_s: $idle, ready_poll_us: $poll},
      summary: ($summary[0] + {footprint: $foot}), runs: $runs}' >"$T/result.json"
result_write scale "$T/result.json"
bench_result "$(jq -r 'def r: . * 10 | floor / 10; def ms: if . == null then "-" else . * 1000 | r end; .summary |
    "replay \(.replay.per_s.median | floor) events/s at \('"$WALLETS"') wallets, peak RSS outside the map \(.replay.peak_rss_outside_map_kb.median / 1024 | r) MiB; state \(.footprint.bytes_per_wallet | floor) B/wallet + \(.footprint.bytes_per_transaction_id | floor) B/id (targets 160 + 48: \(if .footprint.met then "met" else "NOT met" end)); restart run \(.restart_warm_s.run.median | ms) ms warm, \(.restart_cold_s.run.median | ms) ms cold (mhd_fixed \(.restart_warm_s.mhd_fixed.median | ms) ms); idle RSS outside the map \(if .idle.runs > 0 then (.idle.rss_outside_map_kb.median / 1024 | r) else "-" end) MiB"' "$RESULT_PATH")"
