#!/usr/bin/env python3
"""Bad state (issue 8 §6, SPEC §8): a truncated, corrupted, foreign or
future-format data directory, and two `run` processes on one data
directory. Each is refused by `replay`, `serve` and `run` with a non-zero
exit status and a message naming the problem, and nothing in the
directory is overwritten (every file's bytes compared before and after;
LMDB's lock.mdb, which holds no data and is reset by LMDB at open, only
has to exist). Corruption found later, while `serve` answers requests, is
a 500 with a JSON error, not a crash.

The foreign directory and the other-format marker for replay/serve are in
test_replay.py; here they are checked for `run` too."""

import os
import shutil
import subprocess

import wslib
from wslib import test, check, check_eq, Fail, Runner
import reference as ref

# LMDB's lock files (reader tables, no data), one per shard.
LOCKS = {os.path.join("state", str(k), "lock.mdb") for k in range(64)}
PAGE = 4096  # LMDB's page size on Linux x86-64


def _seeded():
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
    return ddir


def _data_file(ddir):
    return os.path.join(ddir, "state", "0", "data.mdb")


def _unchanged(before, ddir, what):
    after = wslib.snapshot_dir(ddir)
    check_eq(sorted(before), sorted(after), "files after %s" % what)
    changed = sorted(p for p in before if before[p] != after[p] and p not in LOCKS)
    check(not changed, "%s changed %s" % (what, ", ".join(changed)))


def _refused_everywhere(ddir, what, names):
    """replay, serve and run each exit non-zero with a message containing
    one of `names` (case-insensitive), without a crash report, and leave
    ddir as it was. Returns the messages."""
    before = wslib.snapshot_dir(ddir)
    port = wslib.free_port()
    b = wslib.require_binary()
    msgs = {}
    for cmd, args in (("replay", ["replay", "--data-dir", ddir, wslib.example("seed_transactions.jsonl")]),
                      ("serve", ["serve", "--data-dir", ddir, "--listen", "127.0.0.1:%d" % port]),
                      ("run", ["run", "--data-dir", ddir, "--listen", "127.0.0.1:%d" % port])):
        try:
            p = subprocess.run([b] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60, env=wslib.clean_env())
        except subprocess.TimeoutExpired:
            raise Fail("%s did not refuse %s within 60 s" % (cmd, what))
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode > 0, "%s on %s: exit status %s (a refusal is a positive status; negative is a "
              "signal): %s" % (cmd, what, p.returncode, err[-1500:]))
        check("Sanitizer" not in err and "SIGBUS" not in err, "%s crashed on %s: %s" % (cmd, what, err[-1500:]))
        check(any(n.lower() in err.lower() for n in names),
              "%s refused %s without naming it (%s): %r" % (cmd, what, " or ".join(names), err[-800:]))
        _unchanged(before, ddir, "%s refusing %s" % (cmd, what))
        msgs[cmd] = err.strip().splitlines()[-1]
    wslib.log("%s: %s" % (what, msgs["run"]))
    return msgs


def _says_what_to_do(msgs, what):
    """A damaged state's message tells the operator the way out."""
    for cmd, m in msgs.items():
        check("backup" in m and "replay" in m, "%s's message about %s does not say what to do: %r" % (cmd, what, m))


@test
def truncated_state_file_refused():
    """data.mdb cut in half (a truncated copy): LMDB used to die of SIGBUS
    reading past the end (found by this test; shard.c check_file_size)."""
    ddir = _seeded()
    data = wslib.read_bytes(_data_file(ddir))
    with open(_data_file(ddir), "wb") as f:
        f.write(data[:len(data) // 2])
    what = "a truncated data.mdb"
    _says_what_to_do(_refused_everywhere(ddir, what, ("truncated",)), what)


@test
def state_file_cut_before_its_meta_pages_refused():
    ddir = _seeded()
    data = wslib.read_bytes(_data_file(ddir))
    with open(_data_file(ddir), "wb") as f:
        f.write(data[:100])
    what = "a data.mdb of 100 bytes"
    _says_what_to_do(_refused_everywhere(ddir, what, ("not an LMDB file", "MDB_INVALID")), what)


@test
def zeroed_pages_refused():
    ddir = _seeded()
    data = wslib.read_bytes(_data_file(ddir))
    with open(_data_file(ddir), "wb") as f:
        f.write(data[:2 * PAGE] + b"\0" * (len(data) - 2 * PAGE))
    what = "a data.mdb with zeroed pages"
    _says_what_to_do(_refused_everywhere(ddir, what, ("corrupt",)), what)


# Pages overwritten with random bytes are not tested here: LMDB keeps no
# page checksums and follows a garbage page number into the map, which
# ends in SIGBUS (14 of 20 seeds; docs/TESTING.md, "Bad state", open).


@test
def foreign_directory_refused_by_run():
    ddir = os.path.join(wslib.tempdir(), "notours")
    os.makedirs(os.path.join(ddir, "sub"))
    with open(os.path.join(ddir, "notes.txt"), "w") as f:
        f.write("someone else's files\n")
    _refused_everywhere(ddir, "a foreign directory", ("not a walletstream", "not ours", "foreign", "refus"))


@test
def future_format_marker_refused_by_run():
    ddir = _seeded()
    marker = os.path.join(ddir, "walletstream.format")
    text = wslib.read_bytes(marker)
    with open(marker, "wb") as f:
        f.write(text.replace(b"format 4", b"format 5"))
    _refused_everywhere(ddir, "a data directory of format 5", ("format 5",))


@test
def future_format_inside_state_refused_by_run():
    if not shutil.which("mdb_dump") or not shutil.which("mdb_load"):
        raise Fail("mdb_dump/mdb_load (lmdb-utils) not installed")
    ddir = _seeded()
    state = os.path.join(ddir, "state", "0")
    dump = subprocess.run(["mdb_dump", "-p", "-s", "meta", state], stdout=subprocess.PIPE, check=True).stdout
    lines = dump.split(b"\n")
    i = lines.index(b" format")
    lines[i + 1] = b" 5"
    subprocess.run(["mdb_load", "-s", "meta", state], input=b"\n".join(lines), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _refused_everywhere(ddir, "a state recording format 5", ("format",))


@test
def second_run_on_one_data_directory_refused():
    """Two `run` on one data directory: the second exits non-zero naming
    the lock holder, before it starts a broker or writes anything (the
    first one's kafka.bootstrap stays); the first goes on serving."""
    wslib.require_kcat()
    ddir = wslib.data_dir()
    first = Runner(ddir).start()
    boot = wslib.read_bytes(os.path.join(ddir, "kafka.bootstrap"))
    before = wslib.snapshot_dir(ddir)  # the first one is idle: nothing to commit
    second = Runner(ddir)
    second.port = wslib.free_port()
    p = subprocess.run(second.args(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, env=wslib.clean_env())
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode > 0, "second run: exit %s: %s" % (p.returncode, err[-1000:]))
    check("in use" in err.lower() or "lock" in err.lower(), "second run's message does not name the lock: %r" % err)
    check(str(first.proc.pid) in err, "second run's message does not name the holder (pid %d): %r" % (
        first.proc.pid, err))
    check_eq(boot, wslib.read_bytes(os.path.join(ddir, "kafka.bootstrap")), "kafka.bootstrap after the refusal")
    _unchanged(before, ddir, "the second run's refusal")
    check_eq(200, wslib.http_request(first.port, "GET", "/readyz")[0], "the first run's /readyz")
    wslib.kcat_produce(first.bootstrap, "transactions_topic",
                       [(b"w", wslib.event("t1", "w", "p", "credit", "1.00"))])
    first.wait_counted(1)
    wslib.log("refused: %s" % err.strip().splitlines()[-1])
    first.stop_ok()


@test
def corruption_found_while_serving_is_a_500():
    """serve runs on a good state; then the state's pages (all but the two
    meta pages) are zeroed under it: each request is a 500 with a JSON
    error, /healthz stays 200, the process lives; it stops cleanly."""
    ddir = _seeded()
    with wslib.Server(ddir) as srv:
        status, body = srv.get_json("/balance/wallet-1")
        check(status in (200, 404), "before: %s %r" % (status, body))
        size = os.path.getsize(_data_file(ddir))
        with open(_data_file(ddir), "r+b") as f:  # in place: serve's map sees it
            f.seek(2 * PAGE)
            f.write(b"\0" * (size - 2 * PAGE))
        for path in ("/balance/wallet-1", "/average_daily_debit/wallet-1", "/top_credits/product-1", "/metrics"):
            status, headers, raw = srv.get(path)
            if path == "/metrics":
                check(status in (200, 500), "GET /metrics on a corrupted state: %d" % status)
                continue
            check_eq(500, status, "GET %s on a corrupted state (body %r)" % (path, raw[:200]))
            check(headers.get("content-type", "").startswith("application/json"), "Content-Type %r" % headers)
            err = ref.parse_response(raw).get("error")
            check(isinstance(err, str) and err, "GET %s: error body %r" % (path, raw[:200]))
        check_eq(200, srv.get("/healthz")[0], "/healthz")
        check(srv.proc.poll() is None, "serve died: %s" % srv.output()[-1500:])


if __name__ == "__main__":
    wslib.main()
