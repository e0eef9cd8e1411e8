#!/usr/bin/env bash
# bench/replay.sh - replay throughput benchmark (docs/BENCHMARKS.md, "Replay").
#
#   bench/replay.sh [--profile] [--worktree] [--keep]
#
# Builds walletstream from a clean export of REF (default HEAD; bench/lib.sh;
# --worktree: `make` in the working tree) and build/gen_events, generates EVENTS
# clean events over WALLETS wallets and PRODUCTS products into a temporary
# file, then measures with /usr/bin/time (wall, user+sys CPU, peak RSS):
#
#   warm-up    one replay and one jq pass, not counted
#   replay     RUNS replays, each into a fresh data directory, alternating
#   jq         with RUNS passes of `jq -c . FILE >/dev/null` (reference:
#              a C JSON parser doing parse + print only); ratio = median of
#              the per-pair ratios replay events/s / jq lines/s
#   batch10k   SHORT_RUNS replays with --batch-max 10000, fresh directory each
#   duplicate  SHORT_RUNS replays of the same file into a directory that
#              already holds it (every record a duplicate)
#   checks     state bytes on disk (du of DIR/state, mdb_stat per database);
#              for one more replay: fsync-family calls and bytes written
#              (strace), heap allocations (LD_PRELOAD bench/alloc_count.c)
#   profile    with --profile: perf record -g of one replay, top 10
#              functions by self time (set PERF_LD_LIBRARY_PATH to a
#              directory holding an unstripped liblmdb.so.0 to name LMDB's
#              static functions; see docs/BENCHMARKS.md)
#
# Prints one line per step and the medians; writes everything as JSON to
# bench/results/replay-<UTC time>.json (git-ignored).
#
# Environment: WORKERS (1: `replay --workers`, the one-core figure),
# EVENTS (1000000), WALLETS (100000), PRODUCTS (1000), SEED (42),
# RUNS (5), SHORT_RUNS (3), BENCH_TMP (directory for the event file and the
# data directories; default: a new directory under ${TMPDIR:-/tmp}),
# REF (HEAD), WALLETSTREAM (benchmark this binary instead of building one).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

EVENTS=${EVENTS:-1000000}
WALLETS=${WALLETS:-100000}
PRODUCTS=${PRODUCTS:-1000}
SEED=${SEED:-42}
RUNS=${RUNS:-5}
WORKERS=${WORKERS:-1}
SHORT_RUNS=${SHORT_RUNS:-3}
PROFILE=0

bench_opt() { # this script's own options (bench_args)
    case $1 in
    --profile) PROFILE=1 ;;
    *) return 1 ;;
    esac
}
bench_args "$@"

bench_init replay

# --- tools -------------------------------------------------------------------
need_time
need jq
need strace
if [ "$PROFILE" = 1 ]; then need perf linux-perf; fi

# --- build -------------------------------------------------------------------
build_walletstream "$WORKTREE"
build_gen_events
if [ ! -f build/alloc_count.so ] || [ bench/alloc_count.c -nt build/alloc_count.so ]; then
    cc -O2 -std=c11 -D_GNU_SOURCE -shared -fPIC -o build/alloc_count.so bench/alloc_count.c
fi
DIRTY=$(git status --porcelain -- src Makefile 2>/dev/null | wc -l)
LIBLMDB=$(ldd "$BIN" | awk '/liblmdb/ {print $3}')
LMDB_PKG=$(dpkg-query -W -f='${Version}' liblmdb0 2>/dev/null || echo unknown)
JQ_VERSION=$(jq --version)

# --- machine -----------------------------------------------------------------
machine_describe
say "walletstream replay benchmark  (binary from $BUILT_FROM, sha256 $BIN_SHA)"
machine_line

# --- input -------------------------------------------------------------------
FILE=$T/events.jsonl
build/gen_events -n "$EVENTS" -w "$WALLETS" -p "$PRODUCTS" -s "$SEED" >"$FILE"
FILE_BYTES=$(stat -c %s "$FILE")
LINES=$(wc -l <"$FILE")
[ "$LINES" = "$EVENTS" ] || die "generator wrote $LINES lines, expected $EVENTS"
say "input: $EVENTS events, $WALLETS wallets, $PRODUCTS products, seed $SEED, $FILE_BYTES bytes"

# --- measurement -------------------------------------------------------------
RUNS_TSV=$T/runs.tsv   # series  n  wall  user  sys  rss_kb  rate
: >"$RUNS_TSV"

# timed SERIES N EXPECT CMD... : runs CMD under /usr/bin/time, appends a row
# to runs.tsv and prints the step's line. EXPECT is a regular expression
# that CMD's standard output must match (empty: anything).
timed() {
    local series=$1 n=$2 expect=$3 label
    shift 3
    sync
    if ! /usr/bin/time -f '%e %U %S %M' -o "$T/time.out" "$@" >"$T/cmd.out" 2>"$T/cmd.err"; then
        cat "$T/cmd.err" >&2
        die "$series: command failed: $*"
    fi
    if [ -n "$expect" ] && ! grep -Eq "$expect" "$T/cmd.out"; then
        cat "$T/cmd.out" "$T/cmd.err" >&2
        die "$series: unexpected output (wanted /$expect/)"
    fi
    read -r wall user sys rss <"$T/time.out"
    awk -v s="$series" -v n="$n" -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" \
        -v e="$EVENTS" 'BEGIN {
            rate = (w > 0) ? e / w : 0
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%.0f\n", s, n, w, u, y, r, rate
        }' >>"$RUNS_TSV"
    label=$series
    [ "$n" != 0 ] && label="$series $n"
    awk -v l="$label" -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" -v e="$EVENTS" \
        -v unit="$(case $series in *jq) echo lines/s ;; *) echo events/s ;; esac)" \
        'BEGIN { printf "  %-14s wall %7.2f s  cpu %7.2f s  rss %7.1f MiB  %9.0f %s\n",
                 l, w, u + y, r / 1024, (w > 0) ? e / w : 0, unit }'
}

fresh_dir() { rm -rf "$T/data"; printf '%s' "$T/data"; }
APPLIED="replayed $EVENTS records: $EVENTS applied, 0 duplicate, 0 rejected"
DUPLICATE="replayed $EVENTS records: 0 applied, $EVENTS duplicate, 0 rejected"

say "steps:"
timed warmup-replay 0 "$APPLIED" "$BIN" replay --workers "$WORKERS" --data-dir "$(fresh_dir)" "$FILE"
timed warmup-jq 0 "" sh -c 'exec jq -c . "$1" >/dev/null' jq "$FILE"

for i in $(seq 1 "$RUNS"); do
    timed replay "$i" "$APPLIED" "$BIN" replay --workers "$WORKERS" --data-dir "$(fresh_dir)" "$FILE"
    timed jq "$i" "" sh -c 'exec jq -c . "$1" >/dev/null' jq "$FILE"
done
# The last replay's directory holds the whole file: measure it, then
# replay into it again.
STATE_BYTES=$(du -s --block-size=1 "$T/data/state" | cut -f1)
STATE_APPARENT=$(du -s --apparent-size --block-size=1 "$T/data/state" | cut -f1)
mdb_state "$T/data/state" "$T/mdb_stat.out"
MDB_STAT=$MDB_DBS
for i in $(seq 1 "$SHORT_RUNS"); do
    timed duplicate "$i" "$DUPLICATE" "$BIN" replay --workers "$WORKERS" --data-dir "$T/data" "$FILE"
done
STATE_AFTER_DUP=$(du -s --block-size=1 "$T/data/state" | cut -f1)

for i in $(seq 1 "$SHORT_RUNS"); do
    timed batch10k "$i" "$APPLIED" "$BIN" replay --batch-max 10000 --data-dir "$(fresh_dir)" "$FILE"
done
STATE_BATCH10K=$(du -s --block-size=1 "$T/data/state" | cut -f1)

# --- checks: syscalls and allocations of one replay ----------------------------
SYNCS="" WRITES="" WRITE_BYTES="" ALLOCS=""
if command -v strace >/dev/null; then
    strace -f -qq -o "$T/strace.out" \
        -e trace=fsync,fdatasync,msync,sync_file_range,pwrite64,pwritev,writev,write \
        "$BIN" replay --workers "$WORKERS" --data-dir "$(fresh_dir)" "$FILE" >/dev/null
    SYNCS=$(grep -cE '^([0-9]+ +)?(fsync|fdatasync|msync|sync_file_range)\(' "$T/strace.out" || true)
    WRITES=$(grep -cE '^([0-9]+ +)?(pwrite64|pwritev|writev|write)\(' "$T/strace.out" || true)
    WRITE_BYTES=$(awk '/^([0-9]+ +)?(pwrite64|pwritev|writev|write)\(/ {n = $NF; if (n ~ /^[0-9]+$/) s += n}
        END {printf "%.0f", s}' "$T/strace.out")
fi
ALLOC_COUNT_OUT=$T/alloc.out LD_PRELOAD=$ROOT/build/alloc_count.so \
    "$BIN" replay --workers "$WORKERS" --data-dir "$(fresh_dir)" "$FILE" >/dev/null
ALLOCS=$(awk '{print $2 + $4 + $6 + $8}' "$T/alloc.out")

# --- profile -----------------------------------------------------------------
PERF_TOP=""
if [ "$PROFILE" = 1 ]; then
    env ${PERF_LD_LIBRARY_PATH:+LD_LIBRARY_PATH=$PERF_LD_LIBRARY_PATH} \
        perf record -q -g -o "$T/perf.data" "$BIN" replay --workers "$WORKERS" --data-dir "$(fresh_dir)" "$FILE" \
        >/dev/null 2>"$T/perf.err" || { cat "$T/perf.err" >&2; die "perf record failed"; }
    PERF_TOP=$(perf report -i "$T/perf.data" --no-children --sort dso,symbol -g none \
        --stdio 2>/dev/null | grep -v "^#" | grep "%" | awk "NR <= 10" |
        awk '{printf "%s %s", $1, $2; for (i = 4; i <= NF; i++) if ($i != "-") printf " %s", $i; printf "\n"}')
    PERF_DSO=$(perf report -i "$T/perf.data" --no-children --sort dso -g none \
        --stdio 2>/dev/null | grep -v "^#" | grep "%" | awk "NR <= 6 {print \$1, \$2}")
fi
rm -rf "$T/data"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- summary -----------------------------------------------------------------
# stats SERIES COLUMN: "median min max" (column 3 wall, 4 user, 5 sys,
# 6 rss KB, 7 rate by wall time; 8 = user + sys; 9 = rate by CPU time)
stats() {
    awk -F'\t' -v s="$1" -v c="$2" -v e="$EVENTS" '$1 == s {
            v[++n] = c == 8 ? $4 + $5 : c == 9 ? ($4 + $5 > 0 ? e / ($4 + $5) : 0) : $c
        }
        END {
            if (n == 0) { print "0 0 0"; exit }
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            print m, v[1], v[n]
        }' "$RUNS_TSV"
}
RATIOS=$(paste <(awk -F'\t' '$1 == "replay" {print $7}' "$RUNS_TSV") \
               <(awk -F'\t' '$1 == "jq" {print $7}' "$RUNS_TSV") |
         awk '{printf "%.3f\n", $1 / $2}' | sort -n)
RATIO=$(printf '%s\n' "$RATIOS" | awk '{v[++n] = $1} END {print n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2}')
RATIO_MIN=$(printf '%s\n' "$RATIOS" | sed -n 1p)
RATIO_MAX=$(printf '%s\n' "$RATIOS" | sed -n '$p')

say ""
say "medians (min-max) of $RUNS / $SHORT_RUNS runs:"
for s in replay jq batch10k duplicate; do
    read -r rm rlo rhi <<<"$(stats $s 7)"
    read -r wm wlo whi <<<"$(stats $s 3)"
    read -r cm clo chi <<<"$(stats $s 8)"
    read -r mm mlo mhi <<<"$(stats $s 6)"
    read -r pm plo phi <<<"$(stats $s 9)"
    unit=events/s; [ $s = jq ] && unit=lines/s
    printf '  %-10s %9.0f %s (%.0f-%.0f)  wall %.2f s  cpu %.2f s (%.0f/s of CPU)  rss %.1f MiB\n' \
        "$s" "$rm" "$unit" "$rlo" "$rhi" "$wm" "$cm" "$pm" "$(awk -v k="$mm" 'BEGIN {print k / 1024}')"
done
read -r REPLAY_MEDIAN _ <<<"$(stats replay 7)"
printf '  ratio replay/jq: %s (pairs %s-%s)\n' "$RATIO" "$RATIO_MIN" "$RATIO_MAX"
printf '  state: %s bytes on disk (%s apparent), %s bytes per wallet, %s bytes per event\n' \
    "$STATE_BYTES" "$STATE_APPARENT" "$((STATE_BYTES / WALLETS))" "$((STATE_BYTES / EVENTS))"
printf '  state after %s duplicate replays: %s bytes; after --batch-max 10000: %s bytes\n' \
    "$SHORT_RUNS" "$STATE_AFTER_DUP" "$STATE_BATCH10K"
if [ -n "$MDB_STAT" ]; then
    printf '    %s pages of 4096 bytes in the file, %s of them free (copy-on-write garbage awaiting reuse)\n' \
        "$PAGES_USED" "$PAGES_FREE"
    printf '%s\n' "$MDB_STAT" | awk '{printf "    db %-12s %8d pages %10d bytes %9d entries\n", $1, $2, $2 * 4096, $3}'
fi
printf '  one replay: %s fsync-family calls; %s write calls, %s bytes written (%s per event); %s heap allocations (%s per event)\n' \
    "${SYNCS:-?}" "${WRITES:-?}" "${WRITE_BYTES:-?}" \
    "$(awk -v b="${WRITE_BYTES:-0}" -v e="$EVENTS" 'BEGIN {printf "%.0f", b / e}')" \
    "$ALLOCS" "$(awk -v a="$ALLOCS" -v e="$EVENTS" 'BEGIN {printf "%.4f", a / e}')"
if [ -n "$PERF_TOP" ]; then
    say "  profile, top 10 by self time (liblmdb: $LIBLMDB${PERF_LD_LIBRARY_PATH:+, profiled with LD_LIBRARY_PATH=$PERF_LD_LIBRARY_PATH}):"
    printf '%s\n' "$PERF_TOP" | sed 's/^/    /'
    say "  by library:"
    printf '%s\n' "$PERF_DSO" | sed 's/^/    /'
fi
say "  load average before $LOAD_BEFORE, after $LOAD_AFTER"

# --- JSON --------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$T/result.json
{
    printf '{\n'
    printf '  "benchmark": "replay",\n  "time": "%s",\n' "$STAMP"
    printf '  "commit": %s, "built_from": %s, "dirty_paths": %s, "binary_sha256_prefix": %s,\n' \
        "$(jstr "$COMMIT")" "$(jstr "$BUILT_FROM")" "$DIRTY" "$(jstr "$BIN_SHA")"
    printf '  "liblmdb": %s, "liblmdb_package": %s, "jq": %s,\n' \
        "$(jstr "$LIBLMDB")" "$(jstr "$LMDB_PKG")" "$(jstr "$JQ_VERSION")"
    printf '  "machine": %s,\n' "$(machine_json)"
    printf '  "input": {"events": %s, "wallets": %s, "products": %s, "seed": %s, "bytes": %s},\n' \
        "$EVENTS" "$WALLETS" "$PRODUCTS" "$SEED" "$FILE_BYTES"
    printf '  "runs": ['
    awk -F'\t' 'BEGIN {sep = ""}
        {printf "%s\n    {\"series\": \"%s\", \"n\": %s, \"wall_s\": %s, \"user_s\": %s, \"sys_s\": %s, \"max_rss_kb\": %s, \"per_s\": %s}",
                sep, $1, $2, $3, $4, $5, $6, $7; sep = ","}' "$RUNS_TSV"
    printf '\n  ],\n  "summary": {\n'
    sep=""
    for s in replay jq batch10k duplicate; do
        read -r rm rlo rhi <<<"$(stats $s 7)"
        read -r wm wlo whi <<<"$(stats $s 3)"
        read -r cm clo chi <<<"$(stats $s 8)"
        read -r mm mlo mhi <<<"$(stats $s 6)"
        read -r pm plo phi <<<"$(stats $s 9)"
        printf '%s    "%s": {"per_s": [%s, %s, %s], "per_cpu_s": [%.0f, %.0f, %.0f], "wall_s": [%s, %s, %s], "cpu_s": [%s, %s, %s], "max_rss_kb": [%s, %s, %s]}' \
            "$sep" "$s" "$rm" "$rlo" "$rhi" "$pm" "$plo" "$phi" "$wm" "$wlo" "$whi" "$cm" "$clo" "$chi" "$mm" "$mlo" "$mhi"
        sep=$',\n'
    done
    printf ',\n    "stats_order": "median, min, max",\n'
    printf '    "ratio_replay_over_jq": [%s, %s, %s],\n' "$RATIO" "$RATIO_MIN" "$RATIO_MAX"
    printf '    "state_bytes": %s, "state_apparent_bytes": %s, "state_bytes_per_wallet": %s,\n' \
        "$STATE_BYTES" "$STATE_APPARENT" "$((STATE_BYTES / WALLETS))"
    printf '    "state_bytes_after_duplicates": %s, "state_bytes_batch10k": %s,\n' \
        "$STATE_AFTER_DUP" "$STATE_BATCH10K"
    printf '    "fsync_calls": %s, "write_calls": %s, "bytes_written": %s, "heap_allocations": %s\n  },\n' \
        "${SYNCS:-null}" "${WRITES:-null}" "${WRITE_BYTES:-null}" "$ALLOCS"
    printf '  "pages_used": %s, "pages_free": %s,\n' "${PAGES_USED:-null}" "${PAGES_FREE:-null}"
    printf '  "databases": %s,\n' "$(mdb_dbs_json)"
    printf '  "profile_top10": %s\n}\n' "$(printf '%s\n' "$PERF_TOP" | jq -Rsc 'split("\n") | map(select(length > 0))')"
} >"$OUT"
result_write replay "$OUT"
bench_result "$(printf 'replay %s events over %s wallets: %.0f events/s (median of %s), %s x jq; %s state bytes per wallet' \
    "$EVENTS" "$WALLETS" "$REPLAY_MEDIAN" "$RUNS" "$RATIO" "$((STATE_BYTES / WALLETS))")"
