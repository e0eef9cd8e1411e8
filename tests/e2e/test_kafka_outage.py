#!/usr/bin/env python3
"""Broker outages against a real Apache Kafka broker (scripts/kafka; SPEC §8,
issue 4 §3, §5 and §8 "Broker outage"):

- the broker stops while `run` is idle, then while it is consuming: /readyz
  turns 503 with a JSON reason, /metrics says so, the API keeps answering
  the last committed figures; when the broker is back (same address),
  readiness returns and every record, old and new, is applied with exact
  figures;
- the input topic does not exist yet: 503 with a reason, then the topic is
  created and processing starts by itself;
- the dead-letter topic does not exist (the real broker does not create
  topics on demand): progress stops at the first rejected record and
  /readyz says why, nothing is skipped; once the topic exists, processing
  resumes and every dead letter is there.

The mock cluster's own fault injection (rd_kafka_mock_broker_set_down) is
reachable only inside the process, so it is not used here.

Needs java and mvn (see wslib.require_real_kafka; WS_E2E_NO_KAFKA=1 skips)."""

import time

import wslib
from wslib import test, check, check_eq, check_no_diffs, Fail, Runner
from wslib import readyz, wait_not_ready, wait_ready_again, check_topic_state
import reference as ref
import gen_events

OUTAGE_TIMEOUT = 30.0   # broker gone -> /readyz 503
RESUME_TIMEOUT = 60.0   # broker back -> /readyz 200
DLQ_TIMEOUT = 90.0      # dead-letter topic missing -> /readyz 503 (a producer may wait out its message timeout)

_SHARED = {}


def shared_kafka():
    """One broker for the tests that do not stop it."""
    if "k" not in _SHARED:
        _SHARED["k"] = wslib.RealKafka(shared=True).start()
    return _SHARED["k"]


@test
def kafka_outage_broker_stops_and_comes_back():
    wslib.require_real_kafka()
    k = wslib.RealKafka().start()
    topic = "outage_in"
    k.create_topics(topic, 3)
    recs = wslib.keyed_for_kafka(gen_events.generate(8101, 16000, max_big=4))
    first, second, third = recs[:3000], recs[3000:6000], recs[6000:]
    r = Runner(wslib.data_dir(), brokers=k.bootstrap, topic=topic, batch_max=20).start()
    wslib.kcat_produce(k.bootstrap, topic, first)
    model1, n1, _ = check_topic_state(r, topic)

    # 1. outage while idle: the last figures stay readable
    k.stop()
    wait_not_ready(r, OUTAGE_TIMEOUT, "broker stopped while idle", reason_has=("broker", "kafka"))
    m = r.metrics()
    check_eq(0.0, m.get("walletstream_ready"), "walletstream_ready during the outage")
    check_eq(0.0, m.get("walletstream_broker_up"), "walletstream_broker_up during the outage")
    check_eq(200, r.get("/healthz")[0], "/healthz during the outage")
    diffs = wslib.check_all_figures(r, model1) + wslib.check_counters(r, model1)
    check_no_diffs(diffs, "figures served during the outage")
    k.start()
    wait_ready_again(r, RESUME_TIMEOUT, "broker back")
    check_eq(1.0, r.metrics().get("walletstream_broker_up"), "walletstream_broker_up after the outage")
    wslib.kcat_produce(k.bootstrap, topic, second)
    _, n2, _ = check_topic_state(r, topic)
    check_eq(len(first) + len(second), n2, "records after the first outage")

    # 2. outage while consuming (batches of 20 records): nothing lost or doubled
    wslib.kcat_produce(k.bootstrap, topic, third)
    wslib.wait_until(lambda: sum(r.counts().values()) > n2, wslib.CONSUME_TIMEOUT, "progress on the third part")
    k.stop()
    at_stop = sum(r.counts().values())
    wait_not_ready(r, OUTAGE_TIMEOUT, "broker stopped while consuming")
    m = r.metrics()
    check_eq(0.0, m.get("walletstream_ready"), "walletstream_ready during the outage while consuming")
    during = m.outcomes()
    late = []  # failures reported after the rest was checked
    try:
        wslib.wait_until(lambda: r.metrics().get("walletstream_broker_up") == 0.0, 10,
                         "walletstream_broker_up 0 (the broker has been down since /readyz turned 503)", interval=0.1)
    except Fail as e:
        late.append("%s; it says %s" % (e, r.metrics().get("walletstream_broker_up")))
    check(n2 <= sum(during.values()) <= len(recs), "events_total during the outage: %s" % during)
    check_eq(200, r.get("/balance/" + wslib.quote_id(first[0][0].decode()))[0], "a balance during the outage")
    wslib.log("stopped at events_total %d of %d (%d when /readyz said 503)" % (at_stop, len(recs), sum(during.values())))
    k.start()
    wait_ready_again(r, RESUME_TIMEOUT, "broker back while records wait")
    model, n3, n_dlq = check_topic_state(r, topic, dlq_exactly_once=False)
    check_eq(len(recs), n3, "records at the end")
    if n_dlq != model.counts["rejected"]:
        wslib.log("note: %d dead letters for %d rejected records (repeated across the outage)" % (
            n_dlq, model.counts["rejected"]))
    r.stop_ok()
    k.stop()
    check(not late, "; ".join(late))


@test
def kafka_outage_topic_missing_then_created():
    """No input topic (the real broker does not create it): 503 with a
    reason; once created (with its .dlq), processing starts by itself."""
    wslib.require_real_kafka()
    k = shared_kafka()
    topic = "late_topic"
    r = Runner(wslib.data_dir(), brokers=k.bootstrap, topic=topic).start(wait_ready=False)
    wait_not_ready(r, OUTAGE_TIMEOUT, "input topic missing", reason_has=(topic,))
    check_eq(200, r.get("/healthz")[0], "/healthz")
    k.create_topics(topic, 2)
    wait_ready_again(r, RESUME_TIMEOUT, "topic created")
    seed = ref.split_lines(wslib.read_bytes(wslib.example("seed_transactions.jsonl")))
    wslib.kcat_produce(k.bootstrap, topic, [(wslib.wallet_key(v, b"x"), v) for v in seed])
    r.wait_counted(len(seed))
    diffs = []
    for route, key, want in ref.figures_of(ref.parse_response(wslib.read_bytes(wslib.example("seed_expected.json")))):
        diffs += wslib.check_figure(r, route, key, want)
    check_no_diffs(diffs, "seed figures")
    r.stop_ok()


@test
def kafka_outage_dead_letter_topic_missing():
    """The input topic exists, its .dlq does not: the first rejected record
    stops progress (it cannot be dead-lettered, and skipping it is not
    allowed), /readyz says why; the records after it wait. Once the .dlq
    exists, everything is processed and every dead letter is there."""
    wslib.require_real_kafka()
    k = shared_kafka()
    topic = "nodlq_in"
    k.create_topic(topic, 1)
    good = [(b"w1", wslib.event("nd-%d" % i, "w1", "p1", "credit", "1.00")) for i in range(5)]
    bad = [(b"w1", b'{"transaction_id": "nd-bad", "wallet_id": "w1"}')]
    after = [(b"w1", wslib.event("nd-after-%d" % i, "w1", "p1", "debit", "0.25")) for i in range(3)]
    r = Runner(wslib.data_dir(), brokers=k.bootstrap, topic=topic).start(wait_ready=False)
    wslib.kcat_produce(k.bootstrap, topic, good)
    wslib.wait_until(lambda: readyz(r)[0] is not None, wslib.READY_TIMEOUT, "the HTTP API")
    r.wait_counted(5, what="valid records before the faulty one")
    wslib.kcat_produce(k.bootstrap, topic, bad + after)
    wait_not_ready(r, DLQ_TIMEOUT, "dead-letter topic missing", reason_has=("dlq", "dead"))
    c = r.counts()
    check_eq({"applied": 5, "duplicate": 0, "rejected": 0}, c,
             "events_total while the faulty record cannot be dead-lettered (nothing past it committed)")
    status, body = r.get_json("/balance/w1")
    check(status == 200 and body.get("balance") == ref.Num("5.00"), "/balance/w1 during the DLQ outage: %r" % body)
    k.create_topic(topic + ".dlq", 1)
    wait_ready_again(r, RESUME_TIMEOUT + DLQ_TIMEOUT, "dead-letter topic created")
    check_topic_state(r, topic, dlq_exactly_once=False)
    r.stop_ok()


if __name__ == "__main__":
    wslib.main()
