#!/usr/bin/env python3
"""Differential test: seeded generated events (valid and faulty of every
kind) replayed in several files and invocations; every wallet's and
product's figures over HTTP, the dead letters and the summary counts must
equal reference.py's, and so must sampled wallets' statements (every
applied transaction, in order, with its balance after and its file and
line). Also: the same events in two halves while `serve` is already
running (it sees each committed batch).

WS_E2E_SEED picks the seed (printed on stderr), WS_E2E_EVENTS the count."""

import os
import threading

import wslib
from wslib import test, check, check_no_diffs
import reference as ref
import gen_events

SEED = int(os.environ.get("WS_E2E_SEED", "20240511"))
COUNT = int(os.environ.get("WS_E2E_EVENTS", "12000"))

_DATA = {}


def data():
    """Generated lines, split in files, with the reference's verdicts."""
    if not _DATA:
        wslib.log("differential: seed %d, %d events (WS_E2E_SEED / WS_E2E_EVENTS to change)" % (SEED, COUNT))
        lines = gen_events.generate(SEED, COUNT)
        d = wslib.tempdir()
        cuts = [0, COUNT // 3, COUNT // 2, COUNT * 5 // 6, COUNT]
        files = []
        for i in range(4):
            part = lines[cuts[i]:cuts[i + 1]]
            files.append((wslib.write_lines(os.path.join(d, "events-%d.jsonl" % i), part), part))
        _DATA.update(lines=lines, files=files)
        # the generator puts these ids in rejected lines only
        full, _ = ref.run(lines)
        ghosts_w = ["ghost-w%d" % i for i in range(31)]
        ghosts_p = ["ghost-p%d" % i for i in range(31)]
        assert any(g.encode() in l for g in ghosts_w for l in lines[:2000])
        _DATA.update(absent_w=[w for w in ghosts_w if w not in full.wallets],
                     absent_p=[p for p in ghosts_p if p not in full.products])
    return _DATA


def _replay_groups(ddir, groups, model):
    """Replay groups of files (one invocation per group), checking each
    summary against the model; returns the expected dead letters."""
    expected = {}
    for group in groups:
        outs_all = []
        for index, (path, part) in enumerate(group):
            outs = model.process_lines(part, index)
            outs_all += outs
            expected.update(wslib.expected_rejections(path, part, outs))
        wslib.replay_ok(ddir, [p for p, _ in group], wslib.model_counts(outs_all))
    return expected


@test
def differential_figures_and_dead_letters():
    d = data()
    files = d["files"]
    ddir = wslib.data_dir()
    model = ref.Model()
    # two files in one invocation, then one, then one
    expected = _replay_groups(ddir, [files[0:2], files[2:3], files[3:4]], model)
    check(len(model.wallets) > 100 and len(model.products) > 50, "generated enough ids")
    with wslib.Server(ddir) as srv:
        diffs = wslib.check_all_figures(srv, model, absent_wallets=d["absent_w"][:50],
                                        absent_products=d["absent_p"][:50])
        check_no_diffs(diffs, "figures (seed %d)" % SEED)
        sample = sorted(model.wallets)[::7] + d["absent_w"][:3]
        check_no_diffs(wslib.check_statements(srv, model, sample), "statements (seed %d)" % SEED)
    check_no_diffs(wslib.check_dead_letters(wslib.read_dead_letters(ddir), expected),
                   "dead letters (seed %d)" % SEED)


@test
def differential_dense_few_ids():
    """Few wallets and products: top-5 lists churn, currencies collide,
    duplicates and conflicts meet the same ids again and again."""
    seed = SEED + 7
    lines = gen_events.Generator(seed, n_wallets=6, n_products=3, max_big=5).lines(8000)
    path = wslib.write_lines(os.path.join(wslib.tempdir(), "dense.jsonl"), lines)
    model = ref.Model()
    outs = model.process_lines(lines, 0)
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [path], wslib.model_counts(outs))
    with wslib.Server(ddir) as srv:
        check_no_diffs(wslib.check_all_figures(srv, model), "dense figures (seed %d)" % seed)
        check_no_diffs(wslib.check_statements(srv, model, sorted(model.wallets), page=50),
                       "dense statements (seed %d)" % seed)
    check_no_diffs(wslib.check_dead_letters(wslib.read_dead_letters(ddir),
                                            wslib.expected_rejections(path, lines, outs)),
                   "dense dead letters (seed %d)" % seed)


@test
def differential_serve_sees_new_batches():
    d = data()
    lines = d["lines"]
    half = len(lines) // 2
    tmp = wslib.tempdir()
    first = (wslib.write_lines(os.path.join(tmp, "first.jsonl"), lines[:half]), lines[:half])
    second = (wslib.write_lines(os.path.join(tmp, "second.jsonl"), lines[half:]), lines[half:])
    ddir = wslib.data_dir()
    model = ref.Model()
    _replay_groups(ddir, [[first]], model)
    with wslib.Server(ddir) as srv:
        check_no_diffs(wslib.check_all_figures(srv, model), "figures after the first half (seed %d)" % SEED)
        # read while the second half is being written: every answer is a
        # committed state (200 or 404 with a JSON body), never an error
        probe = sorted(model.wallets)[:20]
        stop = threading.Event()
        errors = []

        def reader():
            h = wslib.Http(srv.port)
            try:
                while not stop.is_set():
                    for w in probe:
                        st, _, body = h.request("GET", "/balance/" + wslib.quote_id(w))
                        if st != 200:
                            errors.append("GET /balance/%s during replay: %d %r" % (w, st, body[:200]))
                        else:
                            ref.parse_response(body)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("reader: %r" % e)
            finally:
                h.close()

        th = threading.Thread(target=reader)
        th.start()
        try:
            _replay_groups(ddir, [[second]], model)
        finally:
            stop.set()
            th.join()
        check_no_diffs(errors, "reads during replay")
        check_no_diffs(wslib.check_all_figures(srv, model, absent_wallets=d["absent_w"][:20]),
                       "figures after the second half, same serve (seed %d)" % SEED)


if __name__ == "__main__":
    wslib.main()
