# bench/lib.sh - what the bench/ scripts share. Sourced, not run:
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init NAME "$@"      # after the script's own option parsing
#
# Owns: the tools check and install (Debian packages, as root), the work
# directory and its cleanup (processes started here, a Kafka started here),
# the machine description, building walletstream from a clean export of
# REF (cached per commit under build/bench/), building the bench tools,
# starting and stopping walletstream and polling its API, resident memory
# outside the LMDB map (/proc/PID/smaps), quantiles of a /metrics
# histogram, medians, and writing results under bench/results/.
#
# Environment read here: REF (HEAD), WALLETSTREAM (measure this binary),
# BENCH_TMP (parent of the work directory; default ${TMPDIR:-/tmp}),
# KAFKA_DIR (use the scripts/kafka broker of this directory, start it if
# needed, leave it running), BENCH_SUMMARY (append each result line to
# this file: bench/run.sh collects them), NICE (unset: normal priority).
# shellcheck shell=bash
# shellcheck disable=SC2034   # variables set here are the callers' to read

# --- messages -------------------------------------------------------------------
say() { printf '%s\n' "$*"; }
die() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }
now() { printf '%s' "$EPOCHREALTIME"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
# jstr S: S as a JSON string
jstr() { jq -Rn --arg s "$1" '$s'; }

# bench_result TEXT: the script's one result line; also appended to
# $BENCH_SUMMARY for bench/run.sh.
bench_result() {
    say "result: $*"
    if [ -n "${BENCH_SUMMARY:-}" ]; then
        printf '%-8s %s\n' "$BENCH_NAME" "$*" >>"$BENCH_SUMMARY"
    fi
}

# --- set-up and cleanup ---------------------------------------------------------
BENCH_PIDS=""           # processes started by the script, killed at exit
KAFKA_STARTED=0 KDIR="" KAFKA="" KAFKA_VERSION_USED=""
KEEP=${KEEP:-0}
T=""

# bench_args ARGS...: the options every benchmark takes: --worktree
# (WORKTREE=1: build the working tree instead of a clean export of HEAD),
# --keep (KEEP=1: leave the work directory), -h/--help (the script's
# header comment, then exit 0). Any other argument goes to the script's
# own bench_opt function, if it has one, which returns non-zero for an
# argument it does not take: the script then ends with status 2.
WORKTREE=0
bench_args() {
    local arg
    for arg in "$@"; do
        case $arg in
        --worktree) WORKTREE=1 ;;
        --keep) KEEP=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *)
            if ! declare -F bench_opt >/dev/null || ! bench_opt "$arg"; then
                echo "$(basename "$0"): unknown argument $arg" >&2
                exit 2
            fi
            ;;
        esac
    done
}

# bench_init NAME: cd to the repository, a fresh work directory in $T,
# cleanup at exit.
bench_init() {
    BENCH_NAME=$1
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$ROOT" || exit 1
    mkdir -p build bench/results
    local parent=${BENCH_TMP:-${TMPDIR:-/tmp}}
    mkdir -p "$parent"
    T=$(mktemp -d "$parent/ws-$BENCH_NAME.XXXXXX")
    trap bench_cleanup EXIT
    trap 'echo "$BENCH_NAME: failed at line $LINENO" >&2' ERR
}

# bench_track PID: kill PID (if still running) when the script exits.
bench_track() { BENCH_PIDS="$BENCH_PIDS $1"; }

bench_cleanup() {
    local p
    if declare -F bench_on_exit >/dev/null; then bench_on_exit || true; fi
    for p in $BENCH_PIDS; do
        # only a child of this script still running: a pid that ended
        # long ago may belong to another process by now
        if [ "$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')" = "$$" ]; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    if [ "$KAFKA_STARTED" = 1 ]; then
        scripts/kafka stop --dir "$KDIR" --clean >/dev/null 2>&1 || true
    fi
    if [ -n "$T" ]; then
        if [ "$KEEP" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
    fi
}

# --- tools ----------------------------------------------------------------------
apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing Debian package(s) $*"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
    fi
}

# need COMMAND [PACKAGE]: install the Debian package if COMMAND is missing
need() {
    local cmd=$1 pkg=${2:-$1}
    if ! command -v "$cmd" >/dev/null; then apt_install "$pkg" || true; fi
    command -v "$cmd" >/dev/null || die "$cmd missing (Debian package $pkg)"
}

# need_time: GNU time (a shell keyword hides it from `command -v`)
need_time() {
    [ -x /usr/bin/time ] || apt_install time || true
    [ -x /usr/bin/time ] || die "/usr/bin/time missing (Debian package time)"
}

# --- machine --------------------------------------------------------------------
# machine_describe: CPU_MODEL NPROC MEM_KB DISK DISK_DEV ROTATIONAL KERNEL
# LOAD_BEFORE for the disk that holds $T.
machine_describe() {
    CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    NPROC=$(nproc)
    MEM_KB=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)
    DISK=$(df -h "$T" | awk 'NR==2 {print $1 " " $2 " size, " $4 " free, mounted on " $6}')
    DISK_DEV=$(df "$T" | awk 'NR==2 {print $1}' | sed 's|/dev/||; s|[0-9]*$||')
    ROTATIONAL=$(cat "/sys/block/$DISK_DEV/queue/rotational" 2>/dev/null || echo "?")
    KERNEL=$(uname -r)
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
}

machine_line() {
    say "machine: $NPROC cpus ($CPU_MODEL), $((MEM_KB / 1024)) MiB RAM, disk $DISK (rotational=$ROTATIONAL), kernel $KERNEL, load $LOAD_BEFORE"
}

# machine_json: the machine as a JSON object (load_after: now)
machine_json() {
    jq -nc --argjson nproc "$NPROC" --argjson mem "$MEM_KB" --arg cpu "$CPU_MODEL" \
        --arg kernel "$KERNEL" --arg disk "$DISK" --arg rot "$ROTATIONAL" \
        --arg l0 "$LOAD_BEFORE" --arg l1 "$(cut -d' ' -f1-3 /proc/loadavg)" \
        '{nproc: $nproc, mem_kb: $mem, cpu: $cpu, kernel: $kernel, disk: $disk, rotational: $rot,
          load_before: $l0, load_after: $l1}'
}

# --- walletstream binary --------------------------------------------------------
# build_walletstream WORKTREE: sets BIN (a private copy in $T), BIN_SHA,
# COMMIT, BUILT_FROM. WORKTREE=1: `make` in the working tree; otherwise a
# clean `git archive` export of REF (default HEAD), built into
# build/bench/<key>/ and reused while REF's src/, Makefile and scripts/
# are the same (the key hashes their trees); WALLETSTREAM: that binary.
build_walletstream() {
    local worktree=${1:-0} src full key dir
    REF=${REF:-HEAD}
    COMMIT=$(git rev-parse --short "$REF" 2>/dev/null || echo unknown)
    if [ -n "${WALLETSTREAM:-}" ]; then
        src=$WALLETSTREAM
        BUILT_FROM="given binary $WALLETSTREAM"
    elif [ "$worktree" = 1 ]; then
        make --no-print-directory >/dev/null || die "make failed"
        src=build/walletstream
        BUILT_FROM="working tree at $COMMIT ($(git status --porcelain -- src Makefile | wc -l) changed src/Makefile paths)"
    else
        full=$(git rev-parse --verify "$REF^{commit}") || die "no commit $REF"
        key=$(git ls-tree "$full" -- src Makefile scripts | sha1sum | cut -c1-16)
        dir=$ROOT/build/bench/$key
        if [ ! -x "$dir/build/walletstream" ]; then
            say "building walletstream from a clean export of $COMMIT into build/bench/$key"
            rm -rf "$dir"
            mkdir -p "$dir"
            git archive "$full" | tar -x -C "$dir"
            make --no-print-directory -j"$(nproc)" -C "$dir" >/dev/null 2>"$T/make.err" ||
                { cat "$T/make.err" >&2; rm -rf "$dir"; die "make failed"; }
        fi
        src=$dir/build/walletstream
        BUILT_FROM="clean export of $COMMIT (git archive $REF)"
    fi
    [ -x "$src" ] || die "$src not built"
    # A private copy: a rebuild by someone else during the run cannot
    # change what is measured.
    BIN=$T/walletstream
    cp "$src" "$BIN"
    BIN_SHA=$(sha256sum "$BIN" | cut -c1-16)
}

# build_tool NAME SOURCE [CC ARGS...]: build/NAME from bench/SOURCE when
# missing or older than its source
build_tool() {
    local name=$1 src=bench/$2
    shift 2
    if [ ! -x "build/$name" ] || [ "$src" -nt "build/$name" ]; then
        cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "build/$name" "$src" "$@" ||
            die "cannot build $src"
    fi
}
build_gen_events() { build_tool gen_events gen_events.c; }
build_loadgen() {
    pkg-config --exists rdkafka || die "librdkafka development files missing (librdkafka-dev)"
    # shellcheck disable=SC2046
    build_tool loadgen loadgen.c $(pkg-config --cflags --libs rdkafka) -lpthread
}
build_mhd_fixed() {
    pkg-config --exists libmicrohttpd || die "libmicrohttpd development files missing (libmicrohttpd-dev)"
    # shellcheck disable=SC2046
    build_tool mhd_fixed mhd_fixed.c $(pkg-config --cflags --libs libmicrohttpd)
}

# free_port: a TCP port on 127.0.0.1 nothing listens on now
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- walletstream process -------------------------------------------------------
# ws_start DIR MODE ARGS...: starts `walletstream MODE --listen
# 127.0.0.1:0 ARGS...` (MODE run or serve; run gets --data-dir DIR/data
# unless ARGS name one) with its output in DIR/stdout, DIR/stderr;
# returns once the API port is logged. Sets WS_PID, WS_PORT, WS_API,
# WS_T0 (just before the start, $EPOCHREALTIME).
ws_start() {
    local dir=$1 mode=$2 i
    shift 2
    mkdir -p "$dir"
    WS_T0=$(now)
    # shellcheck disable=SC2086
    "$BIN" "$mode" --listen 127.0.0.1:0 "$@" >"$dir/stdout" 2>"$dir/stderr" &
    WS_PID=$!
    bench_track "$WS_PID"
    WS_PORT=""
    for i in $(seq 1 5000); do
        WS_PORT=$(sed -n 's/.* on .*(port \([0-9]*\)).*/\1/p' "$dir/stderr" | head -n 1)
        [ -n "$WS_PORT" ] && break
        kill -0 "$WS_PID" 2>/dev/null || { cat "$dir/stderr" >&2; die "walletstream $mode exited at start"; }
        sleep 0.002
    done
    [ -n "$WS_PORT" ] || die "walletstream $mode printed no API port"
    WS_API=127.0.0.1:$WS_PORT
}

# ws_wait_ready [SECONDS]: polls /readyz until 200 (default 15 s)
ws_wait_ready() {
    local n=$((${1:-15} * 20))
    for _ in $(seq 1 "$n"); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$WS_API/readyz")" = 200 ] && return 0
        kill -0 "$WS_PID" 2>/dev/null || die "walletstream exited before it was ready"
        sleep 0.05
    done
    die "walletstream not ready after ${1:-15} s"
}

# ws_stop: SIGTERM, wait; the exit status into WS_RC
ws_stop() {
    WS_RC=0
    kill -TERM "$WS_PID" 2>/dev/null || true
    wait "$WS_PID" || WS_RC=$?
    WS_PID=""
}

metrics() { curl -s "http://$WS_API/metrics"; }

# counters FILE: "applied duplicate rejected" from a saved /metrics body
counters() {
    awk '/^walletstream_events_total\{outcome="applied"\}/ {a = $2}
         /^walletstream_events_total\{outcome="duplicate"\}/ {d = $2}
         /^walletstream_events_total\{outcome="rejected"\}/ {r = $2}
         END {printf "%d %d %d", a, d, r}' "$1"
}

# hist_json FILE NAME: a Prometheus histogram of a saved /metrics body as
# JSON: count, mean and p50/p90/p99/p99.9, interpolated linearly inside the
# bucket as Prometheus' histogram_quantile() does (so no finer than the
# buckets; a quantile in the +Inf bucket is the largest finite bound), all
# multiplied by SCALE (default 1000: seconds to ms).
hist_json() {
    awk -v name="$2" -v scale="${3:-1000}" '
        index($0, name "_bucket{le=\"") == 1 {
            le = $0; sub(/^[^"]*"/, "", le); sub(/".*/, "", le)
            n++; bound[n] = (le == "+Inf") ? -1 : le + 0; cum[n] = $NF + 0 }
        index($0, name "_sum ") == 1 {sum = $2}
        index($0, name "_count ") == 1 {count = $2}
        function q(p,   rank, i, lo, prev) {
            if (count == 0) return "null"
            rank = p * count; prev = 0; lo = 0
            for (i = 1; i <= n; i++) {
                if (cum[i] >= rank) {
                    if (bound[i] < 0) return sprintf("%.4f", lo * scale)
                    if (cum[i] == prev) return sprintf("%.4f", bound[i] * scale)
                    return sprintf("%.4f", (lo + (bound[i] - lo) * (rank - prev) / (cum[i] - prev)) * scale)
                }
                prev = cum[i]; if (bound[i] >= 0) lo = bound[i]
            }
            return "null"
        }
        END {
            printf "{\"count\": %d, \"mean\": %s, \"p50\": %s, \"p90\": %s, \"p99\": %s, \"p99_9\": %s}\n",
                count, count ? sprintf("%.4f", sum / count * scale) : "null",
                q(0.5), q(0.9), q(0.99), q(0.999)
        }' "$1"
}

# --- memory -------------------------------------------------------------------
# rss_split PID: "OUTSIDE_KB MAP_KB": resident kB of PID's mappings other
# than the LMDB map (any file named data.mdb), and of that map.
rss_split() {
    awk '/^[0-9a-f]+-[0-9a-f]+ / {inmap = ($6 ~ /\/data\.mdb$/); next}
         /^Rss:/ {if (inmap) m += $2; else o += $2}
         END {printf "%d %d\n", o, m}' "/proc/$1/smaps" 2>/dev/null || echo "0 0"
}

# rss_sampler PID OUT: samples rss_split every RSS_SAMPLE_S (0.2) s while
# PID runs (or until OUT.stop exists) and keeps "PEAK_OUTSIDE_KB
# PEAK_MAP_KB SAMPLES" in OUT. Run it in the background.
rss_sampler() {
    local pid=$1 out=$2 o m po=0 pm=0 n=0
    echo "0 0 0" >"$out"
    while kill -0 "$pid" 2>/dev/null && [ ! -e "$out.stop" ]; do
        read -r o m <<<"$(rss_split "$pid")"
        if [ "$o" -gt 0 ] || [ "$m" -gt 0 ]; then
            n=$((n + 1))
            [ "$o" -gt "$po" ] && po=$o
            [ "$m" -gt "$pm" ] && pm=$m
            echo "$po $pm $n" >"$out"
        fi
        sleep "${RSS_SAMPLE_S:-0.2}"
    done
}

# --- LMDB state ---------------------------------------------------------------
# mdb_state DIR OUT: `mdb_stat -efa DIR` into OUT; sets MDB_DBS (lines
# "DB PAGES ENTRIES": branch + leaf + overflow pages per database, sorted),
# PAGES_USED, PAGES_FREE (both empty without mdb_stat)
mdb_state() {
    MDB_DBS="" PAGES_USED="" PAGES_FREE=""
    local env
    command -v mdb_stat >/dev/null || return 0
    : >"$2"
    # A data directory's state/ holds one environment per shard (state/<k>/).
    for env in "$1" "$1"/*/; do
        [ -f "$env/data.mdb" ] && { mdb_stat -efa "$env" >>"$2" 2>/dev/null || true; }
    done
    MDB_DBS=$(awk '/^Status of / {db = $3; if (db == "Main") db = "(main)"}
        /^Freelist Status/ {db = ""}
        db != "" && /Branch pages:|Leaf pages:|Overflow pages:/ {pages[db] += $3}
        db != "" && /Entries:/ {entries[db] += $2}
        END {for (d in pages) printf "%s %d %d\n", d, pages[d], entries[d]}' "$2" | sort)
    PAGES_USED=$(awk '/Number of pages used:/ {n += $5} END {print n + 0}' "$2")
    PAGES_FREE=$(awk '/Free pages:/ {n += $3} END {print n + 0}' "$2")
}
# mdb_db NAME: "PAGES ENTRIES" of database NAME from MDB_DBS ("0 0" if absent)
mdb_db() { printf '%s\n' "$MDB_DBS" | awk -v d="$1" '$1 == d {print $2, $3; f = 1} END {if (!f) print 0, 0}'; }
# mdb_dbs_json: MDB_DBS as a JSON array
mdb_dbs_json() {
    printf '%s\n' "$MDB_DBS" | jq -Rsc 'split("\n") | map(select(length > 0) | split(" ") | {db: .[0], pages: (.[1] | tonumber), entries: (.[2] | tonumber)})'
}

# --- statistics -----------------------------------------------------------------
# med_min_max: numbers on stdin, one a line -> "MEDIAN MIN MAX" (0 0 0 if none)
med_min_max() {
    sort -g | awk '{v[++n] = $1}
        END {if (n == 0) {print "0 0 0"; exit}
             m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
             print m, v[1], v[n]}'
}

# jq definitions: med (median of an array), stat(f) ({median, min, max}
# of f over the array's elements, nulls left out)
# shellcheck disable=SC2034
JQ_STATS='def med: sort | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
     def stat(f): [.[] | f | select(. != null)] | {median: med, min: min, max: max};'

# --- Kafka ----------------------------------------------------------------------
# kafka_up: a single-node Kafka (scripts/kafka): the one of KAFKA_DIR
# (started if needed, left running), or a fresh one in $T/kafka, stopped
# and removed at exit. Sets KAFKA (bootstrap), KDIR, KAFKA_VERSION_USED.
kafka_up() {
    [ -n "$KAFKA" ] && return 0
    if [ -n "${KAFKA_DIR:-}" ]; then
        KDIR=$KAFKA_DIR
    else
        KDIR=$T/kafka
        KAFKA_STARTED=1
    fi
    KAFKA=$(scripts/kafka start --dir "$KDIR" 2>"$T/kafka-start.err") ||
        { cat "$T/kafka-start.err" >&2; die "cannot start Kafka"; }
    KAFKA_VERSION_USED=$(sed -n 's/.*starting Kafka \([0-9.]*\) .*/\1/p' "$T/kafka-start.err" | head -n 1)
    [ -n "$KAFKA_VERSION_USED" ] || KAFKA_VERSION_USED=$(basename "$(find .cache/kafka -maxdepth 1 -name '[0-9]*' | sort | tail -n 1)")
}

# kafka_topic NAME PARTITIONS: creates NAME and NAME.dlq
kafka_topic() {
    scripts/kafka create-topic --dir "$KDIR" "$1" "$2" >/dev/null 2>&1 || die "cannot create topic $1"
    scripts/kafka create-topic --dir "$KDIR" "$1.dlq" "$2" >/dev/null 2>&1 || die "cannot create topic $1.dlq"
}

# --- walletstream run against a real broker (stream.sh, compare.sh) -----------
# The caller sets BIN, KAFKA (kafka_up), LG (a copy of build/loadgen), RUNS
# (a JSON-lines file), WS_ARGS (options for every `walletstream run`;
# may be empty) and, for the throughput helpers, TPUT_TOPIC, TPUT_EVENTS,
# TPUT_WALLETS.
# start_ws_nowait DIR ARGS...: `walletstream run` (fresh DIR/data, WS_ARGS,
# ARGS) on a free port; returns once the port is known (WS_T0: the start)
start_ws_nowait() {
    local dir=$1
    shift
    rm -rf "$dir"
    # shellcheck disable=SC2086
    ws_start "$dir" run --data-dir "$dir/data" $WS_ARGS "$@"
}
# start_ws DIR ARGS...: the same, then waits until /readyz answers 200
start_ws() {
    start_ws_nowait "$@"
    ws_wait_ready 15
}

# ws_cpu: user+sys seconds of the running service
ws_cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$WS_PID/stat"; }
# ws_threads: by thread name, CPU seconds and seconds spent runnable but
# waiting for a CPU (/proc/PID/task/TID/schedstat), as JSON
ws_threads() {
    local t
    for t in /proc/"$WS_PID"/task/*; do
        printf '%s\t%s\t%s\n' "$(cat "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")" \
            "$(awk '{print $2}' "$t/schedstat" 2>/dev/null || echo 0)"
    done | awk -F'\t' -v tck="$(getconf CLK_TCK)" '{a[$1] += $2; w[$1] += $3}
        END {printf "{"; s = ""; for (k in a) {printf "%s\"%s\": {\"cpu_s\": %.2f, \"runq_wait_s\": %.2f}", s, k, a[k] / tck, w[k] / 1e9; s = ", "}; printf "}"}'
}
# ws_io: the service's /proc/PID/io as JSON (wchar = bytes passed to write
# calls, syscw = write calls; write_bytes counts whole page-cache folios
# dirtied, far more than wchar on this kernel, so it is not used)
ws_io() {
    awk -F': ' 'BEGIN {printf "{"} {printf "%s\"%s\": %s", (NR > 1 ? ", " : ""), $1, $2} END {printf "}"}' "/proc/$WS_PID/io"
}
# disk_written: bytes the state's block device has written so far (all
# processes: other work on the machine counts too)
disk_written() { awk '{printf "%.0f", $7 * 512}' "/sys/block/$DISK_DEV/stat" 2>/dev/null || echo 0; }
ws_rss_kb() { awk '/^VmHWM/ {print $2}' "/proc/$WS_PID/status"; }

# tput_preload PARTITIONS: creates TPUT_TOPIC (PARTITIONS partitions, and
# its .dlq) and loads TPUT_EVENTS clean events over TPUT_WALLETS wallets,
# keyed by wallet (loadgen -n, flat out); appends the "preload" object to
# RUNS, checks the record count with kcat; sets TOPIC_BYTES.
tput_preload() {
    local N
    kafka_topic "$TPUT_TOPIC" "$1"
    "$LG" -b "$KAFKA" -t "$TPUT_TOPIC" -n "$TPUT_EVENTS" -w "$TPUT_WALLETS" -p 1000 -s 42 \
        -o "$T/preload.json" -q >"$T/preload.out" 2>&1 || { cat "$T/preload.out" >&2; die "preload failed"; }
    jq -c '{series: "preload", events, delivered, failed, send_s, all_delivered_s, delivered_rate, linger_ms}' \
        "$T/preload.json" >>"$RUNS"
    jq -r '"  preload (loadgen -n, flat out): \(.delivered) delivered in \(.all_delivered_s) s (\(.delivered_rate | floor)/s)"' "$T/preload.json"
    TOPIC_BYTES=$(du -s --block-size=1 "$KDIR/data/$TPUT_TOPIC"-[0-9]* | awk '{s += $1} END {print s}')
    N=$(kcat -C -b "$KAFKA" -t "$TPUT_TOPIC" -o beginning -e -q | wc -l)
    [ "$N" = "$TPUT_EVENTS" ] || die "the topic holds $N records, expected $TPUT_EVENTS"
    say "  topic $TPUT_TOPIC: $N records, $TOPIC_BYTES bytes on disk (checked with kcat | wc -l)"
}
# ws_tput N [SERIES [ARGS [EXPORT]]]: one timed `walletstream run` over
# TPUT_TOPIC (fresh data directory, WS_ARGS then ARGS), from its start until
# /metrics counts TPUT_EVENTS records (loadgen -W polls every 10 ms); one
# line printed, one JSON object appended to RUNS. EXPORT: a directory to
# write the store's figures to (`walletstream export --format jsonl`).
ws_tput() {
    local n=$1 series=${2:-walletstream} args=${3:-} export=${4:-} dir=$T/tput wrc=0 rc cpu threads io rss load0 disk0 disk1
    load0=$(loadavg)
    sync
    disk0=$(disk_written)
    # shellcheck disable=SC2086
    start_ws_nowait "$dir" --brokers "$KAFKA" --topic "$TPUT_TOPIC" $args
    "$LG" -a "$WS_API" -W "$TPUT_EVENTS" -S "$WS_T0" -T 900 -o "$dir/wait.json" >"$dir/wait.out" 2>&1 || wrc=$?
    metrics >"$dir/metrics.txt"
    cpu=$(ws_cpu); threads=$(ws_threads); io=$(ws_io); rss=$(ws_rss_kb)
    ws_stop
    rc=$WS_RC
    sync
    disk1=$(disk_written)
    [ "$wrc" = 0 ] || { cat "$dir/wait.out" "$dir/stderr" >&2; die "walletstream did not reach $TPUT_EVENTS events"; }
    jq -r --arg s "$series" --arg n "$n" --arg cpu "$cpu" --arg ev "$TPUT_EVENTS" \
        '"  \($s) \($n)\(" " * ([22 - ($s | length) - ($n | length), 1] | max)) wall \(.elapsed_s) s  cpu \($cpu) s  \(($ev | tonumber) / .elapsed_s | floor) events/s  \(.batches) batches (\(.batch_events_sum / .batches | floor) events each, \(1000 * .batch_commit_seconds_sum / .batches * 10 | floor / 10) ms per commit)  applied \(.applied) duplicate \(.duplicate) rejected \(.rejected)"' "$dir/wait.json"
    [ "$(jq '.applied == '"$TPUT_EVENTS"' and .duplicate == 0 and .rejected == 0' "$dir/wait.json")" = true ] ||
        say "  WRONG COUNTS: expected $TPUT_EVENTS applied"
    jq -c --arg s "$series" --argjson n "$n" --arg args "$WS_ARGS $args" --argjson cpu "$cpu" \
        --argjson threads "$threads" --argjson io "$io" --argjson rss "$rss" --argjson rc "$rc" \
        --argjson ev "$TPUT_EVENTS" --arg load0 "$load0" --arg load1 "$(loadavg)" \
        --argjson disk "$((disk1 - disk0))" \
        '{series: $s, n: $n, args: $args, wall_s: .elapsed_s, disk_bytes_written: $disk,
          per_s: ($ev / .elapsed_s), cpu_s: $cpu, threads: $threads, io: $io, max_rss_kb: $rss,
          exit_status: $rc, load_before: $load0, load_after: $load1, wait: .}' "$dir/wait.json" >>"$RUNS"
    if [ -n "$export" ]; then
        rm -rf "$export"
        "$BIN" export --data-dir "$dir/data" --format jsonl --out "$export" >/dev/null 2>"$dir/export.err" ||
            { cat "$dir/export.err" >&2; die "walletstream export of the $series store failed"; }
    fi
    [ "$KEEP" = 1 ] || rm -rf "$dir"
}
# kcat_tput N [SERIES]: one timed `kcat -C` pass over TPUT_TOPIC under
# /usr/bin/time (the raw-consume reference); appends to RUNS
kcat_tput() {
    local n=$1 series=${2:-kcat} wall user sys rss load0
    load0=$(loadavg)
    /usr/bin/time -f '%e %U %S %M' -o "$T/time.out" \
        kcat -C -b "$KAFKA" -t "$TPUT_TOPIC" -o beginning -e -q >/dev/null 2>"$T/kcat.err" ||
        { cat "$T/kcat.err" >&2; die "kcat failed"; }
    read -r wall user sys rss <"$T/time.out"
    awk -v l="$series $n" -v w="$wall" -v u="$user" -v y="$sys" -v e="$TPUT_EVENTS" \
        'BEGIN {printf "  %-22s wall %s s  cpu %.2f s  %d events/s\n", l, w, u + y, e / w}'
    jq -nc --arg s "$series" --argjson n "$n" --argjson w "$wall" --argjson u "$user" --argjson y "$sys" \
        --argjson rss "$rss" --argjson ev "$TPUT_EVENTS" --arg load0 "$load0" --arg load1 "$(loadavg)" \
        '{series: $s, n: $n, wall_s: $w, per_s: ($ev / $w), cpu_s: ($u + $y), user_s: $u, sys_s: $y,
          max_rss_kb: $rss, load_before: $load0, load_after: $load1}' >>"$RUNS"
}

# --- results --------------------------------------------------------------------
# result_write NAME FILE: validates the JSON in FILE and stores it as
# bench/results/NAME-<UTC time>.json; the path in RESULT_PATH
result_write() {
    local stamp
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    RESULT_PATH=bench/results/$1-$stamp.json
    jq . "$2" >"$RESULT_PATH" || die "invalid JSON for $RESULT_PATH"
    say "results: $RESULT_PATH"
}

# bench_worker_counts SCRIPT NAME VALUE: the worker counts in VALUE (spaces
# or commas; each a count or `default`, no --workers at all) into the
# array COUNTS; exits 2 naming SCRIPT and NAME when empty or malformed.
bench_worker_counts() {
    local script=$1 name=$2 value=$3 w
    read -r -a COUNTS <<<"$(printf '%s' "$value" | tr ',' ' ')"
    [ "${#COUNTS[@]}" -ge 1 ] || { echo "$script: $name is empty" >&2; exit 2; }
    for w in "${COUNTS[@]}"; do
        [[ $w =~ ^([1-9][0-9]*|default)$ ]] || { echo "$script: $name: $w is not a count or default" >&2; exit 2; }
    done
}

# --- instances of one group (run --assignment group: group.sh, forward.sh,
# failover.sh) -------------------------------------------------------------
# group_bench_prepare WORKTREE WHAT TOPIC PARTITIONS: builds walletstream
# and loadgen (LG), prints the machine, starts Kafka and preloads
# TPUT_EVENTS events over TPUT_WALLETS wallets into TOPIC (TPUT_TOPIC, of
# PARTITIONS partitions); the preload's line goes to RUNS_FILE
# ($T/runs.jsonl, made here).
group_bench_prepare() {
    local runs=$RUNS
    build_walletstream "$1"
    build_loadgen
    LG=$T/loadgen
    cp build/loadgen "$LG"
    machine_describe
    say "walletstream $2 benchmark  (binary from $BUILT_FROM, sha256 $BIN_SHA)"
    machine_line
    RUNS_FILE=$T/runs.jsonl
    : >"$RUNS_FILE"
    RUNS=$RUNS_FILE     # tput_preload appends to $RUNS
    kafka_up
    TPUT_TOPIC=$3
    tput_preload "$4"
    RUNS=$runs
}

# The caller sets BIN, KAFKA, TPUT_TOPIC and SESSION_MS.
# The instances of the current group: pids, ports, directories.
G_PIDS=() G_APIS=() G_DIRS=()

# g_start DIR GROUP ID [ARGS...]: one instance (not waited for)
g_start() {
    local dir=$1 group=$2 id=$3
    rm -rf "$dir"
    # a port of its own (the last --listen counts): the others forward to it
    ws_start "$dir" run --data-dir "$dir/data" --brokers "$KAFKA" --topic "$TPUT_TOPIC" \
        --assignment group --group "$group" --instance-id "$id" --session-timeout "$SESSION_MS" \
        --listen "127.0.0.1:$(free_port)" "${@:4}"
    G_PIDS+=("$WS_PID") G_APIS+=("$WS_API") G_DIRS+=("$dir")
}

# g_counted: events counted over the instances
g_counted() {
    local a s=0
    for a in "${G_APIS[@]}"; do
        s=$((s + $(curl -s "http://$a/metrics" | awk '/^walletstream_events_total\{/ {s += $2} END {printf "%d", s}')))
    done
    echo "$s"
}

# g_cpu: user+sys seconds summed over the instances
g_cpu() {
    local p
    for p in "${G_PIDS[@]}"; do
        awk -v t="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / t}' "/proc/$p/stat"
    done | awk '{s += $1} END {printf "%.2f", s}'
}

# g_stop: SIGTERM every instance of the group, wait
g_stop() {
    local p
    for p in "${G_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${G_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    G_PIDS=() G_APIS=() G_DIRS=()
}

# g_owned API: how many partitions the instance serves
g_owned() { curl -s "http://$1/status" | jq '.partitions_owned | length' 2>/dev/null || echo 0; }
