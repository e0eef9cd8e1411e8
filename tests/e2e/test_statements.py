#!/usr/bin/env python3
"""Statements, <topic>.applied and read-your-writes on a real Apache Kafka
broker (SPEC §8a, issue 15).

1. The applied topic: generated events with duplicates and rejects of
   every kind, produced keyed by wallet while `run --workers 2` runs:
   <topic>.applied holds exactly one record per applied input record
   (count = walletstream_events_total{outcome="applied"}, distinct
   sources), each equal to the reference's line (normalised transaction,
   seq, balance after), and every wallet's statement over HTTP equals the
   reference's (paged newest first, with partition and offset).
2. Read-your-writes: 1,000 round trips of `walletstream produce
   --print-offsets` (one record, its acknowledged partition:offset) then
   GET /balance/{wallet}?min_offset=P:O: the answer never misses its own
   write (the balance is the running balance including it), and every
   answer's Walletstream-Offsets header includes it. The round trips'
   p50/p99 are logged (docs/BENCHMARKS.md has the measured figures,
   bench/ryw.sh; no timing is asserted).
3. min_offset's errors: malformed (400), a partition the topic does not
   have (409), an offset not yet written (504 after wait_ms, with how far
   the state is), wait_ms over 10000 (400); statements: limit and cursor
   errors (400), unknown wallet (404); `run --history off` answers 404
   statements_not_kept and drops the lines kept before.

Environment: WS_E2E_STATEMENT_EVENTS (default 6000), RYW_ROUNDS (default
1000), WS_E2E_NO_KAFKA=1 skips."""

import os
import time

import wslib
from wslib import test, check, check_eq, check_no_diffs
import reference as ref
import gen_events

EVENTS = int(os.environ.get("WS_E2E_STATEMENT_EVENTS", "6000"))
RYW_ROUNDS = int(os.environ.get("RYW_ROUNDS", "1000"))

_KAFKA = {}


def kafka():
    if "k" not in _KAFKA:
        wslib.require_real_kafka()
        _KAFKA["k"] = wslib.RealKafka(shared=True).start()
    return _KAFKA["k"]


@test
def applied_topic_and_statements_are_exact():
    k = kafka()
    topic = "stmt_in"
    k.create_topics(topic, 3)
    recs = wslib.keyed_for_kafka(gen_events.generate(20261206, EVENTS, max_big=3))
    r = wslib.Runner(wslib.data_dir(), brokers=k.bootstrap, topic=topic,
                     extra_args=["--workers", "2"]).start()
    wslib.kcat_produce(k.bootstrap, topic, recs)
    r.wait_counted(len(recs))
    records = wslib.kcat_consume(k.bootstrap, topic)
    model, _ = wslib.model_of_topic(records)
    counts = r.counts()
    check_eq(model.counts["applied"], counts["applied"], "applied records")
    check(counts["duplicate"] > 0 and counts["rejected"] > 0, "duplicates and rejects among the events: %s" % counts)
    diffs = wslib.check_statements(r, model, sorted(model.wallets))
    check_no_diffs(diffs, "statements of %d wallets" % len(model.wallets))
    # the applied records are delivered before their batch commits: all
    # there once events_total counts them
    applied = wslib.kcat_consume(k.bootstrap, topic + ".applied")
    check_eq(counts["applied"], len(applied), "records in %s.applied" % topic)
    check_no_diffs(wslib.check_applied_topic(applied, model, topic), "%s.applied" % topic)
    sources = {ref.parse_response(a.value)["source"] for a in applied}
    check_eq(len(applied), len(sources), "distinct sources in %s.applied" % topic)
    wslib.log("%d records: %s; %d wallets' statements and %d applied records equal the reference" % (
        len(records), counts, len(model.wallets), len(applied)))
    r.stop_ok()


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


@test
def read_your_writes_never_sees_the_balance_before_its_write():
    k = kafka()
    topic = "ryw_in"
    k.create_topics(topic, 3)
    ddir = wslib.data_dir()
    r = wslib.Runner(ddir, brokers=k.bootstrap, topic=topic, extra_args=["--workers", "2"]).start()
    writes = wslib.AckedWrites(k.bootstrap, topic, "ryw", 7)
    stale, rtts, header_misses = [], [], []
    try:
        for i in range(RYW_ROUNDS):
            t0 = time.monotonic()
            w, ack, want = writes.write(i)
            # wait_ms at its maximum: a busy machine may take over a second to
            # commit; a 504 would be reported below as a miss, never a pass
            status, _, body = r.get("/balance/%s?min_offset=%s&wait_ms=10000" % (w, ack))
            rtts.append(time.monotonic() - t0)
            if status != 200:
                stale.append("round %d: GET /balance/%s?min_offset=%s: %d %r" % (i, w, ack, status, body[:200]))
                continue
            got = ref.parse_response(body)["balance"].text
            if got != want:
                stale.append("round %d (%s at %s): balance %s, expected %s" % (i, w, ack, got, want))
            part, off = (int(x) for x in ack.split(":"))
            # The header is the smallest offset over the shards: it may lag
            # the wallet's own shard, which answered above; a product's
            # answer (every shard must hold the record) must include it.
            if i % 50 == 0:
                st, hd, _ = r.get("/top_credits/p%d?min_offset=%s" % (i % 5, ack))
                if st not in (200, 404) or wslib.offsets_header(hd).get(part, -1) < off:
                    header_misses.append("round %d: /top_credits %d, Walletstream-Offsets %r does not include %s" % (
                        i, st, hd.get("walletstream-offsets"), ack))
    finally:
        writes.close()
    check_no_diffs(stale, "read-your-writes over %d round trips" % RYW_ROUNDS)
    check_no_diffs(header_misses, "Walletstream-Offsets headers")
    wslib.log("read-your-writes: %d round trips (produce, ack, GET with min_offset), never stale; "
              "p50 %.1f ms, p99 %.1f ms (not asserted)" % (
                  RYW_ROUNDS, percentile(rtts, 50) * 1000, percentile(rtts, 99) * 1000))
    r.stop_ok()


@test
def min_offset_and_statement_errors():
    k = kafka()
    topic = "ryw_err"
    k.create_topics(topic, 2)
    ddir = wslib.data_dir()
    r = wslib.Runner(ddir, brokers=k.bootstrap, topic=topic).start()
    wslib.kcat_produce(k.bootstrap, topic, [(b"e1", wslib.event("t%d" % i, "e1", "p", "credit", "1.50"))
                                            for i in range(3)], partition=1)
    r.wait_counted(3)
    for q, code in (("min_offset=x", "invalid_min_offset"), ("min_offset=1", "invalid_min_offset"),
                    ("min_offset=1:2,", "invalid_min_offset"), ("min_offset=-1:2", "invalid_min_offset"),
                    ("min_offset=1:2&wait_ms=10001", "invalid_wait_ms"),
                    ("min_offset=1:2&wait_ms=abc", "invalid_wait_ms")):
        st, body = r.get_json("/balance/e1?" + q)
        check(st == 400 and body.get("error") == code, "?%s: %d %r" % (q, st, body))
    st, body = r.get_json("/balance/e1?min_offset=1:2,0:0&wait_ms=0")
    check(st == 504, "0:0 not written yet: %d %r" % (st, body))
    st, body = r.get_json("/balance/e1?min_offset=1:2")
    check(st == 200 and body["balance"].text == "4.50", "1:2 written: %d %r" % (st, body))
    st, body = r.get_json("/balance/e1?min_offset=1%3A2")
    check(st == 200, "a percent-encoded colon: %d %r" % (st, body))
    t0 = time.monotonic()
    st, headers, raw = r.get("/average_daily_debit/e1?min_offset=1:3&wait_ms=300")
    waited = time.monotonic() - t0
    body = ref.parse_response(raw)
    check(st == 504 and body.get("error") == "not_yet_applied", "1:3 not written: %d %r" % (st, raw))
    check(body.get("included", {}).get("1") == ref.Num("2") and body.get("wanted", {}).get("1") == ref.Num("3"),
          "504 says how far the state is: %r" % raw)
    check(waited >= 0.3, "504 after wait_ms=300, not before (%.3f s)" % waited)
    check(headers.get("walletstream-offsets") == "1:2", "Walletstream-Offsets %r" % headers.get("walletstream-offsets"))
    st, body = r.get_json("/top_credits/p?min_offset=5:0")
    check(st == 409 and body.get("error") == "partition_not_followed" and body.get("partitions") == ref.Num("2"),
          "partition 5 of a 2-partition topic: %d %r" % (st, body))
    # a read waiting for a record that arrives meanwhile answers with it
    wslib.kcat_produce(k.bootstrap, topic, [(b"e1", wslib.event("late", "e1", "p", "debit", "0.50"))],
                       partition=1, background=True)
    st, body = r.get_json("/wallets/e1/transactions?min_offset=1:3&wait_ms=10000")
    check(st == 200 and body["transactions"][0]["transaction_id"] == "late"
          and body["transactions"][0]["balance_after"].text == "4.00", "waited for 1:3: %d %r" % (st, body))
    # `serve` beside the writer (another process: it sees commits by
    # looking again, not by being told) waits the same way
    with wslib.Server(ddir) as srv:
        wslib.kcat_produce(k.bootstrap, topic, [(b"e1", wslib.event("served", "e1", "p", "credit", "0.25"))],
                           partition=1, background=True)
        st, _, raw = srv.get("/balance/e1?min_offset=1:4&wait_ms=10000")
        check(st == 200 and ref.parse_response(raw)["balance"].text == "4.25",
              "serve waited for 1:4: %d %r" % (st, raw))
    for q, code in (("limit=0", "invalid_limit"), ("limit=1001", "invalid_limit"), ("limit=x", "invalid_limit"),
                    ("before=zz", "invalid_cursor"), ("before=0", "invalid_cursor")):
        st, body = r.get_json("/wallets/e1/transactions?" + q)
        check(st == 400 and body.get("error") == code, "?%s: %d %r" % (q, st, body))
    st, body = r.get_json("/wallets/nobody/transactions")
    check(st == 404 and body.get("error") == "wallet_not_found", "unknown wallet: %d %r" % (st, body))
    st, body = r.get_json("/wallets/e1/transactions?limit=2")
    check(st == 200 and len(body["transactions"]) == 2 and isinstance(body["next"], str), "page 1: %r" % body)
    st, body2 = r.get_json("/wallets/e1/transactions?limit=2&before=" + body["next"])
    check(st == 200 and [t["seq"].text for t in body2["transactions"]] == ["3", "2"]
          and isinstance(body2["next"], str), "page 2: %r" % body2)
    r.stop_ok()
    # --history off: no statements, and the lines kept so far are dropped
    r = wslib.Runner(ddir, brokers=k.bootstrap, topic=topic, extra_args=["--history", "off"]).start()
    st, body = r.get_json("/wallets/e1/transactions")
    check(st == 404 and body.get("error") == "statements_not_kept", "--history off: %d %r" % (st, body))
    st, m = r.get_json("/status")
    check(m["state"]["statement_lines"] == ref.Num("0"), "lines dropped: %r" % m["state"])
    r.stop_ok()
    r = wslib.Runner(ddir, brokers=k.bootstrap, topic=topic).start()
    wslib.kcat_produce(k.bootstrap, topic, [(b"e1", wslib.event("after", "e1", "p", "credit", "1"))], partition=1)
    st, body = r.get_json("/wallets/e1/transactions?min_offset=1:5")
    check(st == 200 and [t["seq"].text for t in body["transactions"]] == ["6"] and body["next"] is None,
          "on again: the statement starts anew: %r" % body)
    r.stop_ok()


@test
def history_days_keeps_the_recent_days_only():
    """replay --history-days 2: at each commit, lines whose event day is
    more than 2 days before the batch's latest go, oldest applied first;
    the figures keep counting every transaction."""
    ddir = wslib.data_dir()
    days = ["2024-05-%02dT10:00:00Z" % d for d in (1, 2, 3, 4, 5)]
    for i, ts in enumerate(days):
        path = wslib.write_lines(os.path.join(wslib.tempdir(), "d%d.jsonl" % i),
                                 [wslib.event("hd-%d" % i, "hd", "p", "credit", "1.00", ts=ts)])
        wslib.replay_ok(ddir, [path], extra_args=["--history-days", "2"])
    with wslib.Server(ddir) as srv:
        st, body = srv.get_json("/wallets/hd/transactions")
        check_eq(200, st, "statement status")
        check_eq(["hd-4", "hd-3", "hd-2"], [t["transaction_id"] for t in body["transactions"]],
                 "lines kept with --history-days 2 (days 3, 4, 5 of 1..5)")
        st, bal = srv.get_json("/balance/hd")
        check_eq("5.00", bal["balance"].text, "the balance counts every transaction")
    r = wslib.replay(ddir, [wslib.example("seed_transactions.jsonl")], extra_args=["--history-days", "99999999"])
    check(r.rc == 2 and b"history-days" in r.stderr, "--history-days beyond its maximum: %s" % r.describe())


if __name__ == "__main__":
    wslib.main()
