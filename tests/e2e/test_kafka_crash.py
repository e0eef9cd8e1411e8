#!/usr/bin/env python3
"""Crash safety of `walletstream run` (SPEC §8, issue 4 §8 "Crash"): while
at least 50,000 mixed events (valid, duplicates, faulty; gen_events.py,
keyed by wallet) are produced with kcat, `run --brokers` is killed with
kill -9 several times, each once new progress shows in /metrics, and
started again at once. At the end every record is counted exactly once
(events_total == records in the topic), every wallet and product figure
equals reference.py fed the topic as kcat reads it back, and the
dead-letter topic holds every rejected record at least once (a crash may
repeat a dead letter, never lose one), byte for byte with its headers.

Once against a real Apache Kafka broker (scripts/kafka; needs java and
mvn, see wslib.require_real_kafka and WS_E2E_NO_KAFKA), once against a
separate `walletstream broker` with 20,000 events (its log is kept in
memory, about 5 MiB per partition: the events must fit).

Environment: WS_E2E_SEED (kill moments and batch sizes; random by
default, printed), WS_E2E_RESUME_LIMIT (seconds from kill -9 to /readyz
200 again, default 5: issue 4 §1 "a restart after kill -9 resumes at
once")."""

import wslib
from wslib import test, check

MOCK_RETENTION = 5 * 1024 * 1024


@test
def kafka_crash_real_broker_50k_events_4_kills():
    wslib.require_real_kafka()
    rng = wslib.crash_rng()
    k = wslib.RealKafka().start()
    topic = "crash_in"
    k.create_topics(topic, 3)
    recs = wslib.crash_events(7001, 50000, max_big=20)
    wslib.crash_and_check(k.bootstrap, topic, recs, kills=4, chunks=10, rng=rng)


@test
def kafka_crash_walletstream_broker_20k_events_3_kills():
    wslib.require_kcat()
    rng = wslib.crash_rng()
    topic = "crash_mock"
    broker = wslib.EmbeddedBroker(topic, 3).start()
    recs = wslib.crash_events(7002, 20000, max_big=2)
    per_key = {}
    for k, v in recs:
        per_key[k] = per_key.get(k, 0) + len(v) + len(k)
    check(sum(per_key.values()) < 3 * MOCK_RETENTION * 0.6, "events too large for the embedded broker's retention")
    wslib.crash_and_check(broker.bootstrap, topic, recs, kills=3, chunks=6, rng=rng, batch_sizes=(None, 2000, 200))
    parts = {}
    for rec in wslib.kcat_consume(broker.bootstrap, topic):
        parts[rec.partition] = parts.get(rec.partition, 0) + len(rec.value) + len(rec.key or b"")
    check(max(parts.values()) < MOCK_RETENTION * 0.9, "a partition holds %s bytes: too close to the retention" % parts)
    broker.stop_ok()


if __name__ == "__main__":
    wslib.main()
