#!/usr/bin/env python3
"""Shards (`--workers N`): the same answers whatever the worker count, the
upgrade of a format-1 data directory made by the last release, re-sharding
a directory to another worker count, and the refusals that protect it.

Replay is deterministic (one file, routed in line order), so every worker
count must give byte-identical exports, dead letters (as a set: shards
append their own) and summaries, equal to the reference model's."""

import csv
import io
import json
import os
import shutil
import subprocess

import wslib
from wslib import test, check, check_eq, check_no_diffs
import reference as ref
import gen_events

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "format1")
FIXTURE2 = os.path.join(HERE, "..", "fixtures", "format2")
FIXTURE3 = os.path.join(HERE, "..", "fixtures", "format3")
SEED = int(os.environ.get("WS_E2E_SEED", "20240511"))
COUNT = int(os.environ.get("WS_E2E_EVENTS", "8000"))


def run(args, timeout=120):
    p = subprocess.run([wslib.require_binary()] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def export(ddir, statements=False):
    """The CSV export of ddir: {table: sorted rows} (the statements too if
    asked), and the manifest."""
    out = os.path.join(wslib.tempdir(), "export")
    rc, so, se = run(["export", "--data-dir", ddir, "--out", out])
    check_eq(0, rc, "export exit status (stderr %r)" % se[-500:])
    tables = {}
    for name in ("balances", "avg_debits", "top_credits") + (("transactions",) if statements else ()):
        with open(os.path.join(out, name + ".csv"), newline="") as f:
            rows = list(csv.reader(f))
        tables[name] = (rows[0], sorted(rows[1:]))
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    return tables, manifest


def same_exports(a, b, what):
    ta, ma = a
    tb, mb = b
    for name in ta:
        check_eq(ta[name][0], tb[name][0], "%s: %s columns" % (what, name))
        diffs = ["%s only in the first: %s" % (name, r) for r in sorted(set(map(tuple, ta[name][1])) - set(map(tuple, tb[name][1])))]
        diffs += ["%s only in the second: %s" % (name, r) for r in sorted(set(map(tuple, tb[name][1])) - set(map(tuple, ta[name][1])))]
        check_no_diffs(diffs, "%s: %s" % (what, name))
    for key in ("events", "rejected", "offsets"):
        check_eq(ma.get(key), mb.get(key), "%s: manifest %s" % (what, key))


def fixture_copy(fixture=FIXTURE):
    d = os.path.join(wslib.tempdir(), "data")
    shutil.copytree(os.path.join(fixture, "data"), d)
    return d


def fixture_export(fixture=FIXTURE):
    tables = {}
    for name in ("balances", "avg_debits", "top_credits"):
        with open(os.path.join(fixture, "export", name + ".csv"), newline="") as f:
            rows = list(csv.reader(f))
        tables[name] = (rows[0], sorted(rows[1:]))
    with open(os.path.join(fixture, "export", "manifest.json")) as f:
        manifest = json.load(f)
    return tables, manifest


# -------------------------------------------------------------------------
# Format 1 (the release before shards) -> format 4 (reshard); formats 2
# (the release with shards) and 3 (compact wallet records) -> format 4 (in
# place, by the first writer)

@test
def format1_directory_is_refused_untouched_with_the_upgrade_command():
    ddir = fixture_copy()
    before = wslib.snapshot_dir(ddir)
    for args in (["replay", "--data-dir", ddir, wslib.example("seed_transactions.jsonl")],
                 ["export", "--data-dir", ddir, "--out", os.path.join(wslib.tempdir(), "x")]):
        rc, so, se = run(args)
        check(rc != 0, "%s accepted a format-1 directory: %r" % (args[0], so))
        check("format 1" in se and "walletstream reshard --data-dir" in se,
              "%s's refusal does not say how to upgrade: %r" % (args[0], se))
    check_eq(sorted(before), sorted(wslib.snapshot_dir(ddir)), "files after the refusals")
    changed = [p for p, v in wslib.snapshot_dir(ddir).items() if before.get(p) != v]
    check(not changed, "refusals changed %s" % changed)


@test
def format1_directory_upgrades_with_every_figure_count_and_offset():  # -> format 4
    """The release's own export of the directory equals ours after the
    upgrade, for 1 and 3 shards; the old state is gone, the new serves."""
    want = fixture_export()
    for shards in (1, 3):
        ddir = fixture_copy()
        rc, so, se = run(["reshard", "--data-dir", ddir, "--workers", str(shards)])
        check_eq(0, rc, "reshard exit status (stderr %r)" % se[-800:])
        check("from 1 to %d shards" % shards in so, "reshard said %r" % so)
        check_eq(sorted(["LOCK", "state", "walletstream.format"]), sorted(os.listdir(ddir)),
                 "data directory entries after the upgrade")
        check_eq(sorted(str(k) for k in range(shards)), sorted(os.listdir(os.path.join(ddir, "state"))),
                 "shard directories")
        same_exports(want, export(ddir), "format-1 release export vs upgraded (%d shards)" % shards)
        # and it goes on: a new record applies on top, a replayed seed is
        # all duplicates (the remembered ids came along)
        r = wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
        check_eq(0, r.counts["applied"], "seed records applied again after the upgrade")


def _marker(ddir):
    with open(os.path.join(ddir, "walletstream.format")) as f:
        return f.read()


def _upgraded_in_place(fixture, fmt):
    """A directory of an older release (format `fmt`) is served and
    exported unchanged; the first writer records format 4 without
    rewriting anything, applies on top of it exactly, and the release's
    own figures hold throughout. Statements start after the upgrade: the
    one line of the record applied on top, with the wallet's whole count
    as its seq."""
    want = fixture_export(fixture)
    ddir = fixture_copy(fixture)
    check("format %d\n" % fmt in _marker(ddir), "fixture marker %r" % _marker(ddir))
    same_exports(want, export(ddir), "format-%d release export vs ours, read as is" % fmt)
    check("format %d\n" % fmt in _marker(ddir), "a reader changed the marker: %r" % _marker(ddir))
    # a writer: the seed again (all duplicates), then a wallet of the seed
    # changes (its record is rewritten in the new layout)
    r = wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
    check_eq(0, r.counts["applied"], "seed records applied again on the format-%d state" % fmt)
    check("format 4\nshards 2\n" in _marker(ddir), "marker after a writer: %r" % _marker(ddir))
    tables, manifest = export(ddir)
    same_exports(want, (tables, want[1]), "format-%d release export vs ours, upgraded" % fmt)
    check_eq(want[1]["events"]["duplicate"] + r.counts["duplicate"], manifest["events"]["duplicate"],
             "duplicates after the seed again")
    extra = os.path.join(wslib.tempdir(), "extra.jsonl")
    with open(wslib.example("seed_transactions.jsonl")) as f:
        first = json.loads(f.readline())
    more = dict(first, transaction_id="after-upgrade-1", type="credit", amount=1.25)
    with open(extra, "w") as f:
        f.write(json.dumps(more) + "\n")
    r = wslib.replay_ok(ddir, [extra])
    check_eq(1, r.counts["applied"], "a new record on the upgraded state")
    # the reference: this build from scratch, same inputs, same shards
    ref = wslib.data_dir()
    wslib.replay_ok(ref, [wslib.example("seed_transactions.jsonl"),
                          wslib.example("conformance_input.jsonl")], extra_args=["--workers", "2"])
    wslib.replay_ok(ref, [wslib.example("seed_transactions.jsonl")])
    wslib.replay_ok(ref, [extra])
    same_exports(export(ref), export(ddir), "fresh format 4 vs upgraded format %d" % fmt)
    out = os.path.join(wslib.tempdir(), "lines")
    rc, _, se = run(["export", "--data-dir", ddir, "--format", "jsonl", "--out", out])
    check_eq(0, rc, "export (stderr %r)" % se[-300:])
    with open(os.path.join(out, "transactions.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    with open(os.path.join(out, "balances.jsonl")) as f:
        count = {b["wallet_id"]: b["transactions"] for b in map(json.loads, f)}
    check_eq([("after-upgrade-1", first["wallet_id"], count[first["wallet_id"]])],
             [(x["transaction_id"], x["wallet_id"], x["seq"]) for x in lines], "statement lines after the upgrade")


@test
def format2_directory_is_read_as_is_and_upgraded_in_place_by_a_writer():
    _upgraded_in_place(FIXTURE2, 2)


@test
def format3_directory_is_read_as_is_and_upgraded_in_place_by_a_writer():
    _upgraded_in_place(FIXTURE3, 3)


@test
def interrupted_reshard_is_refused_then_finished():
    """A reshard cut off while writing state.new/ leaves the old state
    whole: the directory is refused (saying how to finish) and a second
    reshard completes it."""
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")], extra_args=["--workers", "2"])
    want = export(ddir)
    os.makedirs(os.path.join(ddir, "state.new", "0"))
    with open(os.path.join(ddir, "state.new", "0", "data.mdb"), "wb") as f:
        f.write(b"\0" * 4096)       # a half-written environment
    rc, so, se = run(["replay", "--data-dir", ddir, "--workers", "2", wslib.example("seed_transactions.jsonl")])
    check(rc != 0 and "interrupted reshard" in se, "interrupted reshard not refused: rc %d, %r" % (rc, se))
    rc, so, se = run(["reshard", "--data-dir", ddir, "--workers", "3"])
    check_eq(0, rc, "reshard exit status (stderr %r)" % se[-800:])
    check(not os.path.exists(os.path.join(ddir, "state.new")), "state.new left behind")
    same_exports(want, export(ddir), "before vs after the finished reshard")


# -------------------------------------------------------------------------
# Worker counts

_DATA = {}


def events():
    if not _DATA:
        lines = gen_events.generate(SEED, COUNT)
        path = wslib.write_lines(os.path.join(wslib.tempdir(), "events.jsonl"), lines)
        model = ref.Model()
        outs = model.process_lines(lines)
        _DATA.update(lines=lines, path=path, model=model, counts=wslib.model_counts(outs), outs=outs)
    return _DATA


def letters(ddir):
    return sorted(json.dumps(d, sort_keys=True) for d in wslib.read_dead_letters(ddir))


@test
def every_worker_count_gives_the_same_exact_answers():
    """workers 1, 2, 4 (and a 7th, odd count): the reference's summary,
    byte-identical exports and the same dead letters; the served figures
    equal the reference's for the 4-worker directory."""
    d = events()
    base = None
    for n in (1, 2, 4, 7):
        ddir = wslib.data_dir()
        wslib.replay_ok(ddir, [d["path"]], d["counts"], extra_args=["--workers", str(n)])
        got = (export(ddir), letters(ddir))
        if base is None:
            base = got
        else:
            same_exports(base[0], got[0], "workers 1 vs %d" % n)
            check_eq(len(base[1]), len(got[1]), "dead letters with workers %d" % n)
            check(base[1] == got[1], "dead letters differ between workers 1 and %d" % n)
        if n == 4:
            with wslib.Server(ddir) as srv:
                wslib.check_all_figures(srv, d["model"])


@test
def conflicting_duplicates_across_shards_follow_the_file_order():
    """One transaction_id used by records of wallets in different shards:
    the first (in file order) applies, the next with other content is
    conflicting, an exact copy is a duplicate; a record rejected for its
    wallet (currency) does not take the id, so a later one still applies."""
    E = wslib.event
    lines = [
        E("t1", "wa", "p", "credit", "5.00"),
        E("t1", "wb", "p", "credit", "5.00"),          # other wallet: conflicting
        E("t1", "wa", "p", "credit", "5.00"),          # same content: duplicate
        E("t2", "wc", "p", "credit", "1.00", "EUR"),   # wallet wc is EUR
        E("t3", "wc", "p", "credit", "2.00", "USD"),   # currency mismatch: t3 not taken
        E("t3", "wd", "p", "credit", "3.00", "USD"),   # so this one applies
        E("t3", "we", "p", "credit", "3.00", "USD"),   # and this conflicts
    ]
    path = wslib.write_lines(os.path.join(wslib.tempdir(), "conflicts.jsonl"), lines)
    model = ref.Model()
    want = wslib.model_counts(model.process_lines(lines))
    check_eq({"records": 7, "applied": 3, "duplicate": 1, "rejected": 3}, want, "the reference's own counts")
    for n in (1, 2, 3, 5):
        ddir = wslib.data_dir()
        wslib.replay_ok(ddir, [path], want, extra_args=["--workers", str(n)])
        reasons = sorted(d["reason"] for d in wslib.read_dead_letters(ddir))
        check_eq(["conflicting_duplicate", "conflicting_duplicate", "currency_mismatch"],
                 reasons, "dead-letter reasons with workers %d" % n)
        with wslib.Server(ddir) as srv:
            wslib.check_all_figures(srv, model)


@test
def another_worker_count_is_refused_until_resharded():
    d = events()
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [d["path"]], d["counts"], extra_args=["--workers", "3"])
    with open(os.path.join(ddir, "walletstream.format")) as f:
        check("shards 3" in f.read(), "format marker does not name 3 shards")
    want = export(ddir)
    before = wslib.snapshot_dir(ddir)
    rc, so, se = run(["replay", "--data-dir", ddir, "--workers", "2", d["path"]])
    check(rc != 0, "replay --workers 2 accepted a 3-shard directory")
    check("walletstream reshard --data-dir" in se and "--workers 2" in se,
          "refusal does not say how to reshard: %r" % se)
    check(not [p for p, v in wslib.snapshot_dir(ddir).items() if before.get(p) != v and not p.endswith("lock.mdb")],
          "the refused replay changed the directory")
    # without --workers the directory's own count is used
    r = wslib.replay_ok(ddir, [d["path"]])
    check_eq(0, r.counts["applied"], "records applied twice")
    for n in (2, 1, 4):
        want = export(ddir, statements=True)
        check(len(want[0]["transactions"][1]) == d["counts"]["applied"], "a statement line per applied record")
        rc, so, se = run(["reshard", "--data-dir", ddir, "--workers", str(n)])
        check_eq(0, rc, "reshard to %d exit status (stderr %r)" % (n, se[-800:]))
        # statements too: every line, its seq, balance after and source
        same_exports(want, export(ddir, statements=True), "before vs after resharding to %d" % n)
        # the remembered ids moved to their new shards: all duplicates
        r = wslib.replay_ok(ddir, [d["path"]], extra_args=["--workers", str(n)])
        check_eq(0, r.counts["applied"], "records applied twice after resharding to %d" % n)
    rc, so, se = run(["reshard", "--data-dir", ddir, "--workers", "4"])
    check(rc == 0 and "nothing to do" in so, "reshard to the same count: rc %d, %r %r" % (rc, so, se))


if __name__ == "__main__":
    wslib.main()
