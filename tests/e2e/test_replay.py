#!/usr/bin/env python3
"""`walletstream replay` as a tool and its durability (SPEC §3, §6, §8):
idempotent replays, kill -9 in the middle of a replay then replay again,
exact 128-bit aggregates up to their limit, blank lines and line numbers,
data directories of another format or foreign ones refused and left
untouched, a second writer refused, a missing input file."""

import os
import shutil
import subprocess

import wslib
from wslib import test, check, check_eq, check_no_diffs, Fail, event
import reference as ref
import gen_events

SEED = int(os.environ.get("WS_E2E_SEED", "20240511"))
KILL_EVENTS = int(os.environ.get("WS_E2E_KILL_EVENTS", "200000"))
KILLS = 3  # successive kill -9, each after new progress


def _file(name, lines, final_newline=True):
    return wslib.write_lines(os.path.join(wslib.tempdir(), name), lines, final_newline)


# -------------------------------------------------------------------------
# Replay as a tool

@test
def replay_is_idempotent():
    lines = gen_events.generate(SEED + 1, 4000)
    path = _file("events.jsonl", lines)
    ddir = wslib.data_dir()
    model = ref.Model()
    first = model.process_lines(lines)
    wslib.replay_ok(ddir, [path], wslib.model_counts(first))
    second = model.process_lines(lines)
    counts = wslib.model_counts(second)
    check_eq(0, counts["applied"], "reference: nothing applied twice")
    wslib.replay_ok(ddir, [path], counts)
    with wslib.Server(ddir) as srv:
        check_no_diffs(wslib.check_all_figures(srv, model), "figures after two replays (seed %d)" % (SEED + 1))


@test
def replay_summary_is_last_stdout_line():
    """The interface: replay ends by printing its summary line on stdout."""
    path = _file("one.jsonl", [event("s1", "w", "p", "credit", "1.00"), b"not json"])
    r = wslib.replay_ok(wslib.data_dir(), [path], {"records": 2, "applied": 1, "duplicate": 0, "rejected": 1})
    last = r.stdout.decode("utf-8", "replace").rstrip("\n").split("\n")[-1]
    check(wslib.SUMMARY_RE.fullmatch(last), "last stdout line is %r, not the summary (stdout %r)" % (last, r.stdout))


@test
def blank_lines_skipped_and_lines_numbered_from_1():
    lines = [b"", event("b1", "w", "p", "credit", "1.00"), b"   ", b"\t", b"{bad", b"",
             event("b2", "w", "p", "debit", '"x"')]
    path = _file("blanks.jsonl", lines, final_newline=False)  # last line without newline
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [path], {"records": 3, "applied": 1, "duplicate": 0, "rejected": 2})
    got = [(d["source"], d["reason"]) for d in wslib.read_dead_letters(ddir)]
    check_eq([(path + ":5", "invalid_json"), (path + ":7", "invalid_amount")], got, "dead letters")


@test
def several_files_in_one_replay_share_state():
    a = _file("a.jsonl", [event("m1", "w", "p", "credit", "1.00", "EUR")])
    b = _file("b.jsonl", [event("m1", "w", "p", "credit", "1.0", "EUR"), event("m2", "w", "p", "credit", "1", "USD")])
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [a, b], {"records": 3, "applied": 1, "duplicate": 1, "rejected": 1})
    check_eq([(b + ":2", "currency_mismatch")], [(d["source"], d["reason"]) for d in wslib.read_dead_letters(ddir)],
             "dead letters name the file they come from")


@test
def replay_of_missing_file_fails_clearly():
    ddir = wslib.data_dir()
    missing = os.path.join(wslib.tempdir(), "no-such-file.jsonl")
    r = wslib.replay(ddir, [missing])
    check(r.rc != 0, "replay of a missing file exited 0: %s" % r.describe())
    err = r.stderr.decode("utf-8", "replace")
    check("no-such-file.jsonl" in err, "stderr does not name the missing file: %r" % err)


# -------------------------------------------------------------------------
# Exact aggregates at the 128-bit limit

OVF_N = 170142  # 170141 largest amounts fit in 2**127 units of 1e-18; one more does not


@test
def aggregate_overflow_at_the_int128_limit():
    """Balance and total_debit are exact up to +-2**127 units of 1e-18; the
    event that would cross is rejected with aggregate_overflow, and events
    that fit are still applied after it."""
    up = gen_events.overflow_lines("ovf-up", "ovf-p", OVF_N, "credit", "u")
    down = gen_events.overflow_lines("ovf-down", "ovf-q", OVF_N, "debit", "d",
                                     timestamp='"2024-05-01T00:00:00Z"')
    tail = [
        event("u-small", "ovf-up", "ovf-p", "credit", "100000000000000"),       # 1e14 still fits
        event("u-small2", "ovf-up", "ovf-p", "credit", "100000000000000"),      # this one does not
        event("u-back", "ovf-up", "ovf-p", "cancelCredit", "999999999999999.999999999999999999"),
        event("u-again", "ovf-up", "ovf-p", "credit", "100000000000000"),       # fits again
        event("d-cancel", "ovf-down", "ovf-q", "cancelDebit", "0.000000000000000001", ts="2024-05-11T00:00:00Z"),
        event("d-last", "ovf-down", "ovf-q", "debit", "999999999999999.999999999999999999"),
    ]
    lines = []
    for i in range(OVF_N):  # interleaved, as wallets would arrive
        lines.append(up[i])
        lines.append(down[i])
    lines += tail
    path = _file("overflow.jsonl", lines)
    model, outs = ref.run(lines)
    reasons = [(o.reason or o.outcome) for o in outs]
    check_eq(4, reasons.count("aggregate_overflow"), "reference: overflows in this file")
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [path], wslib.model_counts(outs))
    expected = wslib.expected_rejections(path, lines, outs)
    check_no_diffs(wslib.check_dead_letters(wslib.read_dead_letters(ddir), expected), "dead letters")
    with wslib.Server(ddir) as srv:
        check_no_diffs(wslib.check_all_figures(srv, model), "figures at the 128-bit limit")
        st, body = srv.get_json("/balance/ovf-up")
        check_eq(model.balance("ovf-up")["balance"].text, body["balance"].text, "balance near 2**127")


# -------------------------------------------------------------------------
# Crash safety

MARK = "kill-marker"


def _kill_lines():
    """Generated events with a marker credit every 1000 lines."""
    lines = gen_events.generate(SEED + 2, KILL_EVENTS, max_big=20)
    out = []
    for i, line in enumerate(lines):
        if i % 1000 == 0:
            out.append(event("mark-%d" % i, MARK, "mark-p", "credit", "1"))
        out.append(line)
    return out


def _marker_count(srv):
    st, _, body = srv.get("/balance/" + MARK)
    if st != 200:
        return 0
    return int(ref.parse_response(body)["transactions"].text)


@test
def kill_9_mid_replay_then_replay_again():
    """kill -9 while replay is committing batches, three times, each after
    new progress; replaying the file again gives exactly the figures of an
    uninterrupted replay (SPEC §8)."""
    lines = _kill_lines()
    head, rest = lines[:2000], lines[2000:]
    tmp = wslib.tempdir()
    head_path = wslib.write_lines(os.path.join(tmp, "head.jsonl"), head)
    rest_path = wslib.write_lines(os.path.join(tmp, "rest.jsonl"), rest)
    ddir = wslib.data_dir()
    model = ref.Model()
    wslib.replay_ok(ddir, [head_path], wslib.model_counts(model.process_lines(head)))
    rest_outs = model.process_lines(rest)
    head_marks = sum(1 for l in head if b'"mark-' in l)
    total_marks = sum(1 for l in lines if b'"mark-' in l)
    with wslib.Server(ddir) as srv:
        check_eq(head_marks, _marker_count(srv), "markers after the first file")
        kills = []
        seen = head_marks
        for _ in range(KILLS):
            proc = wslib.spawn([wslib.require_binary(), "replay", "--data-dir", ddir, "--batch-max", "2000",
                                rest_path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            # kill as soon as a new batch of the file is visible: the next
            # batch is then being written
            wslib.wait_until(lambda: proc.poll() is not None or _marker_count(srv) > seen, 120,
                             "a committed batch of the big replay", interval=0.001)
            if proc.poll() is not None:
                raise Fail("replay finished (exit %s) before a new batch was seen: make WS_E2E_KILL_EVENTS "
                           "larger" % proc.returncode)
            proc.kill()
            check_eq(-9, proc.wait(), "replay killed")
            at_kill = _marker_count(srv)
            check(seen < at_kill < total_marks, "markers went from %d to %d (of %d) at kill -9"
                  % (seen, at_kill, total_marks))
            kills.append(at_kill - head_marks)
            seen = at_kill
        wslib.log("kill -9 after %s of %d marker events were committed" % (kills, total_marks - head_marks))
        # the same file again, from its start, completes the work exactly once
        wslib.replay_ok(ddir, [rest_path])
        check_no_diffs(wslib.check_all_figures(srv, model), "figures after kill -9 and replay (seed %d)" % (SEED + 2))
    # every rejected line has its dead letter, at least once (a crash may
    # repeat some, and tear the one being written when it struck)
    want = set(wslib.expected_rejections(rest_path, rest, rest_outs))
    got, torn = set(), []
    for line in wslib.read_bytes(os.path.join(ddir, "dead-letters.jsonl")).split(b"\n"):
        if line:
            try:
                src = ref.json.loads(line).get("source")
            except ValueError:
                torn.append(line)
                continue
            if not src.startswith(head_path + ":"):
                got.add(src)
    check(len(torn) <= 1, "%d dead letters do not parse, e.g. %r" % (len(torn), torn[:1]))
    check(not (want - got), "dead letters lost after kill -9: %d, e.g. %s" % (len(want - got), sorted(want - got)[:3]))
    check(not (got - want), "unexpected dead letters: %s" % sorted(got - want)[:3])


@test
def serve_never_sees_half_a_batch():
    """Each batch of 1000 records holds 500 (credit 1.00, debit 1.00) pairs
    of one wallet: every committed state has balance 0.00 and an even
    count. A reader polling during the replay must see nothing else."""
    pairs = 50000
    lines = []
    for i in range(pairs):
        lines.append(event("pc%d" % i, "pair", "pp", "credit", "1.00"))
        lines.append(event("pd%d" % i, "pair", "pp", "debit", "1.00"))
    path = _file("pairs.jsonl", lines)
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [_file("init.jsonl", [event("p0", "pair", "pp", "credit", "0.00")])])
    with wslib.Server(ddir) as srv:
        # Batches of exactly 1000 lines: never committed on time (a busy
        # machine can stall the reader past the default linger, 1 s).
        proc = wslib.spawn([wslib.require_binary(), "replay", "--data-dir", ddir, "--batch-max", "1000",
                            "--batch-linger", "3600000", path],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen, bad = set(), []
        while True:
            done = proc.poll() is not None
            st, body = srv.get_json("/balance/pair")
            n = int(body["transactions"].text) - 1
            seen.add(n)
            if body["balance"].text != "0.00" or n % 2:
                bad.append("balance %s after %d records" % (body["balance"].text, n))
            if done:
                break
        err = proc.stderr.read()
        proc.stderr.close()
        check_eq(0, proc.returncode, "replay exit status (stderr %r)" % err[-500:])
        check_no_diffs(bad, "states seen by serve")
        check_eq(2 * pairs, max(seen), "final count")
        wslib.log("serve saw %d distinct committed states" % len(seen))


@test
def second_writer_refused_while_first_runs():
    """Two writers on one data directory: the second is refused clearly;
    the first finishes normally. A reader (serve) may run beside."""
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [_file("a.jsonl", [event("w1", "w", "p", "credit", "1")])])
    # --batch-max 1: replay commits each record without waiting for the end of input
    first = wslib.spawn([wslib.require_binary(), "replay", "--data-dir", ddir, "--batch-max", "1", "-"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first.stdin.write(event("w2", "w", "p", "credit", "2") + b"\n")
        first.stdin.flush()
        with wslib.Server(ddir) as srv:
            wslib.wait_until(lambda: srv.get_json("/balance/w")[1].get("transactions") == ref.Num("2"), 30,
                             "the first writer's batch to be visible")
            r = wslib.replay(ddir, [_file("b.jsonl", [event("w3", "w", "p", "credit", "3")])], timeout=30)
            check(r.rc != 0, "second writer was not refused: %s" % r.describe())
            check(r.stderr.strip(), "second writer refused without a message")
            check_eq(ref.Num("2"), srv.get_json("/balance/w")[1]["transactions"], "refused writer applied nothing")
    finally:
        out, err = first.communicate(timeout=wslib.REPLAY_TIMEOUT)
    check_eq(0, first.returncode, "first writer exit status (stderr %r)" % err[-500:])


# -------------------------------------------------------------------------
# Data directories that are not ours

def _unchanged(before, ddir, what, volatile=()):
    """Same files, same bytes; `volatile` files only need to exist."""
    after = wslib.snapshot_dir(ddir)
    check_eq(sorted(before), sorted(after), "files after %s" % what)
    changed = sorted(p for p in before if before[p] != after[p] and p not in volatile)
    check(not changed, "%s changed %s" % (what, ", ".join(changed)))


def _refused(ddir, what, volatile=()):
    """replay and serve both refuse ddir with a message; ddir untouched."""
    before = wslib.snapshot_dir(ddir)
    r = wslib.replay(ddir, [wslib.example("seed_transactions.jsonl")], timeout=30)
    check(r.rc != 0, "replay accepted %s: %s" % (what, r.describe()))
    check(r.stderr.strip(), "replay refused %s without a message" % what)
    check(b"replayed" not in r.stdout, "replay of %s printed a summary" % what)
    _unchanged(before, ddir, "replay refusing %s" % what, volatile)
    port = wslib.free_port()
    p = subprocess.run([wslib.require_binary(), "serve", "--data-dir", ddir, "--listen", "127.0.0.1:%d" % port],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(p.returncode != 0, "serve accepted %s" % what)
    check(p.stderr.strip(), "serve refused %s without a message" % what)
    _unchanged(before, ddir, "serve refusing %s" % what, volatile)
    return r.stderr.decode("utf-8", "replace")


@test
def foreign_directory_refused_and_untouched():
    ddir = os.path.join(wslib.tempdir(), "notours")
    os.makedirs(os.path.join(ddir, "sub"))
    with open(os.path.join(ddir, "notes.txt"), "w") as f:
        f.write("someone else's files\n")
    with open(os.path.join(ddir, "sub", "x.bin"), "wb") as f:
        f.write(b"\x00\x01")
    _refused(ddir, "a foreign directory")


@test
def incompatible_format_marker_refused_and_untouched():
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
    marker = os.path.join(ddir, "walletstream.format")
    check(os.path.isfile(marker), "no format marker in the data directory: %s" % sorted(os.listdir(ddir)))
    text = wslib.read_bytes(marker)
    check(b"format 4\n" in text, "format marker %r" % text)
    with open(marker, "wb") as f:
        f.write(text.replace(b"format 4", b"format 999"))
    err = _refused(ddir, "a data directory of format 999")
    check("format" in err, "message does not mention the format: %r" % err)


@test
def incompatible_format_inside_state_refused_and_untouched():
    """The format is also recorded inside the LMDB state (meta/format): a
    state of another format behind a current marker is refused too."""
    if not shutil.which("mdb_dump") or not shutil.which("mdb_load"):
        raise Fail("mdb_dump/mdb_load (lmdb-utils) not installed")
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
    state = os.path.join(ddir, "state", "0")
    dump = subprocess.run(["mdb_dump", "-p", "-s", "meta", state], stdout=subprocess.PIPE, check=True).stdout
    lines = dump.split(b"\n")
    try:
        i = lines.index(b" format")
    except ValueError:
        raise Fail("no `format` key in the meta database: %r" % dump[:500])
    lines[i + 1] = b" 999"
    subprocess.run(["mdb_load", "-s", "meta", state], input=b"\n".join(lines), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Reading the format inside the state means opening the LMDB
    # environment, which resets LMDB's lock file (reader table, no data).
    _refused(ddir, "a state of format 999",
             volatile={os.path.join("state", str(k), "lock.mdb") for k in range(64)})


if __name__ == "__main__":
    wslib.main()
