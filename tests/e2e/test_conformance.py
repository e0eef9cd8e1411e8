#!/usr/bin/env python3
"""SPEC §9 conformance example: replay examples/conformance_input.jsonl
(read as bytes: one line is over 64 KiB, some are not UTF-8); every line's
outcome shows in dead-letters.jsonl and the summary; the figures of
examples/conformance_expected.json are served over HTTP."""

import json

import wslib
from wslib import test, check, check_eq, check_no_diffs
import reference as ref

INPUT = wslib.example("conformance_input.jsonl")

_STATE = {}


def _replayed():
    """Replay once per script run; tests share the data directory read-only."""
    if "ddir" not in _STATE:
        lines = ref.split_lines(wslib.read_bytes(INPUT))
        outcomes = [json.loads(l) for l in wslib.read_bytes(wslib.example("conformance_outcomes.jsonl")).splitlines()
                    if l.strip()]
        ddir = wslib.data_dir()
        counts = {"records": len(outcomes), "applied": 0, "duplicate": 0, "rejected": 0}
        for o in outcomes:
            counts[o["outcome"]] += 1
        wslib.replay_ok(ddir, [INPUT], counts)
        _STATE.update(ddir=ddir, lines=lines, outcomes=outcomes)
    return _STATE["ddir"]


@test
def conformance_summary_counts():
    _replayed()  # replay_ok checks the summary against conformance_outcomes.jsonl


@test
def conformance_dead_letters_match_outcomes():
    ddir = _replayed()
    lines, outcomes = _STATE["lines"], _STATE["outcomes"]
    _, model_outcomes = ref.run(lines)
    expected = {}
    for o in outcomes:
        if o["outcome"] == "rejected":
            mo = model_outcomes[o["line"] - 1]
            expected["%s:%d" % (INPUT, o["line"])] = (o["reason"], mo.field, lines[o["line"] - 1])
    letters = wslib.read_dead_letters(ddir)
    check_no_diffs(wslib.check_dead_letters(letters, expected), "dead letters")


@test
def conformance_dead_letter_encodings():
    """Lines 63 and 64 are not UTF-8: value_base64; line 67 (over 64 KiB)
    is carried whole; a valid line is carried as text in `value`."""
    ddir = _replayed()
    by_line = {int(d["source"].rsplit(":", 1)[1]): d for d in wslib.read_dead_letters(ddir)}
    lines = _STATE["lines"]
    for n in (63, 64):
        check("value_base64" in by_line[n] and "value" not in by_line[n],
              "line %d: expected value_base64 only, got keys %s" % (n, sorted(by_line[n])))
    check_eq(len(lines[66]), len(wslib.dead_letter_value(by_line[67]) or b""), "line 67 length carried")
    check("value" in by_line[13] and "value_base64" not in by_line[13], "line 13 as text")
    check(set(by_line[13]) >= {"source", "reason", "detail", "value"}, "dead letter keys %s" % sorted(by_line[13]))


@test
def conformance_figures_over_http():
    ddir = _replayed()
    doc = ref.parse_response(wslib.read_bytes(wslib.example("conformance_expected.json")))
    model, _ = ref.run(_STATE["lines"])
    with wslib.Server(ddir) as srv:
        diffs = []
        for route, key, want in ref.figures_of(doc):
            diffs += wslib.check_figure(srv, route, key, want)
        # nothing else exists: ids of rejected lines are unknown
        diffs += wslib.check_all_figures(srv, model, absent_wallets=["tab", "c907", "cw5"],
                                         absent_products=["cp9", "product1"])
        for c in ("USD", "JPY"):
            diffs += wslib.check_figure(srv, "top_credits", "cp2", model.top_credits("cp2", c), "?currency=" + c)
        check_no_diffs(diffs, "conformance figures")


@test
def conformance_replay_again_changes_nothing():
    """A second replay of the same file: valid lines are duplicates, rejected
    lines rejected again, figures unchanged."""
    src = wslib.data_dir()
    wslib.replay_ok(src, [INPUT])
    lines = ref.split_lines(wslib.read_bytes(INPUT))
    model = ref.Model()
    model.process_lines(lines)
    second = model.process_lines(lines)
    r = wslib.replay_ok(src, [INPUT], wslib.model_counts(second))
    check_eq(0, r.counts["applied"], "applied on the second replay")
    with wslib.Server(src) as srv:
        check_no_diffs(wslib.check_all_figures(srv, model), "figures after a second replay")


@test
def conformance_from_stdin():
    """`-` reads the same lines from standard input."""
    ddir = wslib.data_dir()
    lines = ref.split_lines(wslib.read_bytes(INPUT))
    model, outs = ref.run(lines)
    wslib.replay_ok(ddir, ["-"], wslib.model_counts(outs), stdin=wslib.read_bytes(INPUT))
    letters = wslib.read_dead_letters(ddir)
    want = [i for i, o in enumerate(outs, 1) if o and o.outcome == "rejected"]
    got = [int(d["source"].rsplit(":", 1)[1]) for d in letters]
    check_eq(want, got, "line numbers of the dead letters from stdin")
    with wslib.Server(ddir) as srv:
        check_no_diffs(wslib.check_all_figures(srv, model), "figures after replay from stdin")


if __name__ == "__main__":
    wslib.main()
