#!/usr/bin/env python3
"""Crash torture (issue 8 §3, SPEC §8): ROUNDS rounds (default 5; the long
form is ROUNDS=20, see docs/TESTING.md "Crash torture") of kill -9 of
`walletstream run --brokers` at random moments while kcat keeps producing
mixed events (valid, duplicate, faulty: gen_events.py, keyed by wallet) to
a real Apache Kafka broker (scripts/kafka); the run is started again at
once each time, with a random --batch-max. At the end events_total by
outcome, rejected_total by reason, every wallet and product figure, the
consumer lag and the dead-letter topic (every rejected record at least
once, byte for byte with its headers; a kill may repeat one, never lose
one) equal reference.py fed the topic as kcat reads it back
(wslib.crash_and_check, shared with test_kafka_crash.py).

Environment: ROUNDS, EVENTS_PER_ROUND (default 3000), WS_E2E_SEED (kill
moments and batch sizes; printed), WS_E2E_NO_KAFKA=1 skips."""

import os
import time

import wslib
from wslib import test

ROUNDS = int(os.environ.get("ROUNDS", "5"))
PER_ROUND = int(os.environ.get("EVENTS_PER_ROUND", "3000"))


@test
def crash_torture_kill_9_under_load():
    wslib.require_real_kafka()
    rng = wslib.crash_rng()
    k = wslib.RealKafka().start()
    topic = "torture_in"
    k.create_topics(topic, 3)
    recs = wslib.crash_events(9301, ROUNDS * PER_ROUND, max_big=ROUNDS)
    t0 = time.monotonic()
    model = wslib.crash_and_check(k.bootstrap, topic, recs, kills=ROUNDS, chunks=max(4, ROUNDS),
                                  rng=rng, batch_sizes=(None, 2000, 500, 50, 5))
    wslib.log("crash torture: %d rounds (kill -9), %d events (%s), %.0f s: final figures, counters and "
              "dead letters equal the reference" % (
                  ROUNDS, len(recs), {o: model.counts[o] for o in ("applied", "duplicate", "rejected")},
                  time.monotonic() - t0))
    k.stop()


if __name__ == "__main__":
    wslib.main()
