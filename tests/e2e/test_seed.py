#!/usr/bin/env python3
"""SPEC §9 worked example: replay examples/seed_transactions.jsonl and find
every figure of examples/seed_expected.json over real HTTP, as exact
decimals and as printed text."""

import decimal
import json

import wslib
from wslib import test, check, check_eq, check_no_diffs, Fail
import reference as ref

SEED = wslib.example("seed_transactions.jsonl")


def _seeded():
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [SEED], {"records": 9, "applied": 9, "duplicate": 0, "rejected": 0})
    return ddir


@test
def seed_figures_over_http():
    doc = ref.parse_response(wslib.read_bytes(wslib.example("seed_expected.json")))
    ddir = _seeded()
    with wslib.Server(ddir) as srv:
        diffs = []
        for route, key, want in ref.figures_of(doc):
            diffs += wslib.check_figure(srv, route, key, want)
        check_no_diffs(diffs, "seed figures")


@test
def seed_numbers_printed_with_their_scale():
    ddir = _seeded()
    with wslib.Server(ddir) as srv:
        for path, fragments in [
            ("/balance/b", ['"balance":75.00', '"transactions":6']),
            ("/balance/b2", ['"balance":15.00']),
            ("/average_daily_debit/b", ['"average_daily_debit":0.054945', '"total_debit":5.00', '"days":91',
                                        '"debit_days":1', '"first_day":"2024-02-11"', '"last_day":"2024-05-11"']),
            ("/average_daily_debit/b2", ['"average_daily_debit":20.00', '"total_debit":20.00']),
            ("/top_credits/product1", ['"amount":35.00', '"amount":25.00', '"amount":15.00', '"amount":5.00']),
        ]:
            status, _, body = srv.get(path)
            check_eq(200, status, "GET %s status" % path)
            text = body.decode("utf-8")
            compact = "".join(text.split())  # whitespace between tokens is allowed
            for frag in fragments:
                check(frag in compact, "GET %s: %s not printed in %s" % (path, frag, text))


@test
def seed_balance_body_byte_exact():
    ddir = _seeded()
    want = (b'{"wallet_id":"b","balance":75.00,"currency":"USD","transactions":6,'
            b'"last_event_time":"2024-05-11T12:50:00Z"}')
    with wslib.Server(ddir) as srv:
        status, headers, body = srv.get("/balance/b")
        check_eq(200, status, "status")
        check(headers.get("content-type", "").startswith("application/json"),
              "Content-Type %r" % headers.get("content-type"))
        if body != want:
            raise Fail("GET /balance/b body:\n  want %s\n  got  %s" % (want.decode(), body.decode("utf-8", "replace")))


@test
def seed_values_compare_as_decimals():
    """The same figures read as decimal.Decimal: 75.00 == 75.0 and exact."""
    ddir = _seeded()
    with wslib.Server(ddir) as srv:
        _, _, body = srv.get("/average_daily_debit/b")
        d = json.loads(body, parse_float=decimal.Decimal)
        check_eq(decimal.Decimal("0.054945"), d["average_daily_debit"], "average_daily_debit")
        check_eq(decimal.Decimal("5"), d["total_debit"], "total_debit")
        check(not isinstance(d["days"], float), "days is an integer")
        _, _, body = srv.get("/top_credits/product1")
        d = json.loads(body, parse_float=decimal.Decimal)
        amounts = [e["amount"] for e in d["top_credits"]]
        check_eq([decimal.Decimal(x) for x in ("35", "25", "15", "5")], amounts, "top credit amounts")


if __name__ == "__main__":
    wslib.main()
