#!/usr/bin/env python3
"""The benchmark suite's tools (bench/, docs/BENCHMARKS.md) still parse,
build and do what the scripts rely on. No benchmark is run and nothing is
timed: `make bench QUICK=1` is the smoke test of the measurements."""
import json
import os
import shutil
import subprocess

import wslib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
SCRIPTS = sorted(f for f in os.listdir(BENCH) if f.endswith(".sh"))
RUNNABLE = [s for s in SCRIPTS if s != "lib.sh"]
CFLAGS = ["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"]


def run(args, **kw):
    kw.setdefault("timeout", 60)
    return subprocess.run(args, capture_output=True, cwd=ROOT, **kw)


def pkg(*names):
    p = run(["pkg-config", "--cflags", "--libs"] + list(names))
    wslib.check_eq(0, p.returncode, "pkg-config %s" % " ".join(names))
    return p.stdout.decode().split()


_built = {}


def tool(name):
    """bench/NAME.c built into a temporary directory, as bench/lib.sh builds it."""
    if name not in _built:
        out = os.path.join(wslib.tempdir("ws-bench-"), name)
        libs = {"loadgen": pkg("rdkafka") + ["-lpthread"], "mhd_fixed": pkg("libmicrohttpd")}.get(name, [])
        p = run(["cc"] + CFLAGS + ["-o", out, "bench/%s.c" % name] + libs, timeout=120)
        wslib.check(p.returncode == 0, "cc bench/%s.c: %s" % (name, p.stderr.decode()[-800:]))
        _built[name] = out
    return _built[name]


@wslib.test
def scripts_parse():
    wslib.check(len(RUNNABLE) >= 5, "bench scripts found: %s" % SCRIPTS)
    for s in SCRIPTS:
        p = run(["bash", "-n", "bench/" + s])
        wslib.check(p.returncode == 0, "bash -n bench/%s: %s" % (s, p.stderr.decode()))


@wslib.test
def scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        raise wslib.Skip("shellcheck not installed")
    p = run(["shellcheck", "-x", "-S", "warning"] + ["bench/" + s for s in SCRIPTS])
    wslib.check(p.returncode == 0, "shellcheck: %s" % p.stdout.decode()[-1500:])


@wslib.test
def scripts_answer_help_and_refuse_unknown_arguments():
    for s in RUNNABLE:
        p = run(["bench/" + s, "--help"])
        wslib.check_eq(0, p.returncode, "exit code of bench/%s --help" % s)
        wslib.check(b"bench/" + s.encode() in p.stdout, "usage of bench/%s: %r" % (s, p.stdout[:200]))
        p = run(["bench/" + s, "--no-such-option" if s != "run.sh" else "no-such-step"])
        wslib.check_eq(2, p.returncode, "exit code of bench/%s with an unknown argument" % s)


@wslib.test
def c_tools_build_without_warnings():
    for name in ("gen_events", "loadgen", "mhd_fixed"):
        tool(name)
    out = os.path.join(wslib.tempdir("ws-bench-"), "alloc_count.so")
    p = run(["cc"] + CFLAGS[:3] + ["-shared", "-fPIC", "-o", out, "bench/alloc_count.c"])
    wslib.check(p.returncode == 0, "cc bench/alloc_count.c: %s" % p.stderr.decode())


@wslib.test
def gen_events_cycle_touches_every_wallet_and_keeps_the_rest():
    g = tool("gen_events")
    plain = run([g, "-n", "12", "-w", "4"]).stdout.decode().splitlines()
    cyc = run([g, "-n", "12", "-w", "4", "-c"]).stdout.decode().splitlines()
    wslib.check_eq(12, len(cyc), "lines")
    wallets = [line.split('"wallet_id":"')[1].split('"')[0] for line in cyc]
    wslib.check_eq(["w%d" % (i % 4) for i in range(12)], wallets, "wallets taken in turn")
    for a, b in zip(plain, cyc):
        wslib.check_eq(a.split('"product_id"')[1].split('"currency"')[0],
                       b.split('"product_id"')[1].split('"currency"')[0], "product, type and amount")


@wslib.test
def mhd_fixed_answers_and_loadgen_times_it_to_200():
    port = wslib.free_port()
    srv = wslib.spawn([tool("mhd_fixed"), str(port), "2"], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
    p = run([tool("loadgen"), "-a", "127.0.0.1:%d" % port, "-Y", "/balance/w1", "-i", "2000", "-T", "10"])
    wslib.check(p.returncode == 0 and p.stdout.startswith(b"ready: "), "loadgen -Y: %r" % p.stdout)
    p = run(["curl", "-s", "-i", "http://127.0.0.1:%d/balance/w7" % port])
    wslib.check(b"200 OK" in p.stdout and b"application/json" in p.stdout and b'"balance"' in p.stdout,
                "mhd_fixed answer: %r" % p.stdout[:300])
    wslib.stop_process(srv)


def lib(snippet):
    p = run(["bash", "-c", '. bench/lib.sh; ' + snippet])
    wslib.check(p.returncode == 0, "bench/lib.sh: %s" % p.stderr.decode())
    return p.stdout.decode()


@wslib.test
def lib_histogram_quantiles_interpolate_in_buckets():
    path = os.path.join(wslib.tempdir("ws-bench-"), "metrics.txt")
    wslib.write_lines(path, [line.encode() for line in [
        '# TYPE walletstream_event_age_seconds histogram',
        'walletstream_event_age_seconds_bucket{le="0.001"} 0',
        'walletstream_event_age_seconds_bucket{le="0.002"} 50',
        'walletstream_event_age_seconds_bucket{le="0.005"} 100',
        'walletstream_event_age_seconds_bucket{le="+Inf"} 100',
        'walletstream_event_age_seconds_sum 0.25',
        'walletstream_event_age_seconds_count 100']])
    h = json.loads(lib("hist_json %s walletstream_event_age_seconds" % path))
    wslib.check_eq(100, h["count"], "count")
    wslib.check_eq(2.5, h["mean"], "mean in ms")
    wslib.check_eq(2.0, h["p50"], "p50 in ms")
    wslib.check(abs(h["p99"] - 4.94) < 1e-9, "p99 in ms: %r" % h["p99"])


@wslib.test
def lib_median_and_rss_split():
    wslib.check_eq("3 1 10", lib("printf '10\\n1\\n3\\n' | med_min_max").strip(), "odd count")
    wslib.check_eq("2.5 1 10", lib("printf '10\\n1\\n3\\n2\\n' | med_min_max").strip(), "even count")
    outside, inmap = lib("rss_split $$").split()
    wslib.check(int(outside) > 0 and int(inmap) == 0, "rss_split of a shell: %s %s" % (outside, inmap))


if __name__ == "__main__":
    wslib.main()
