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

import http.client
import os
import random
import threading
import time

import wslib
from wslib import test, check, check_eq, check_no_diffs, Fail, Runner
import gen_events

RESUME_LIMIT = float(os.environ.get("WS_E2E_RESUME_LIMIT", "5"))
MOCK_RETENTION = 5 * 1024 * 1024


def _rng():
    seed = int(os.environ.get("WS_E2E_SEED") or random.SystemRandom().randrange(1, 10 ** 6))
    wslib.log("WS_E2E_SEED=%d" % seed)
    return random.Random(seed)


def _events(seed, count, max_big):
    """At least `count` keyed events (a few are left out by keyed_for_kafka)."""
    n = count
    while True:
        recs = wslib.keyed_for_kafka(gen_events.generate(seed, n, max_big=max_big))
        if len(recs) >= count:
            return recs[:count]
        n += count - len(recs) + 100


def _total(runner):
    return sum(runner.counts().values())


def crash_and_check(bootstrap, topic, recs, kills, chunks, rng, batch_sizes=(None, 5000, 500, 50)):
    """Produce recs with kcat in `chunks` parts from a background thread;
    meanwhile kill -9 the run `kills` times, each when events_total passes
    a random point of the stream (and has grown since the last restart),
    and start it again at once. Then check everything."""
    ddir = wslib.data_dir()

    def start(last=False):
        # small batches make more commits to land in; the last run drains
        # the rest with the default
        bm = None if last else rng.choice(batch_sizes)
        r = Runner(ddir, brokers=bootstrap, topic=topic, batch_max=bm)
        t0 = time.monotonic()
        r.start()
        return r, time.monotonic() - t0, bm

    t_start = time.monotonic()
    r, _, bm = start()
    size = (len(recs) + chunks - 1) // chunks
    parts = [recs[i:i + size] for i in range(0, len(recs), size)]
    produced = [0]
    errors = []
    current = [r]  # the run of the moment (the main thread replaces it)

    def counted():
        """events_total, on a connection of this thread's own."""
        try:
            status, _, body = wslib.http_request(current[0].port, "GET", "/metrics", timeout=5)
            if status != 200:
                return None
            return sum(wslib.Metrics(body.decode("utf-8", "replace")).outcomes().values())
        except (OSError, Fail, ValueError, http.client.HTTPException):  # killed or restarting
            return None

    def produce_all():
        """Each part once the run is halfway through the previous one, so
        that kills land while records are still being produced."""
        try:
            for part in parts:
                deadline = time.monotonic() + wslib.CONSUME_TIMEOUT
                while (counted() or 0) < produced[0] - size // 2:
                    if time.monotonic() > deadline:
                        raise Fail("the run did not get halfway through part of %d records" % size)
                    time.sleep(0.01)
                wslib.kcat_produce(bootstrap, topic, part)
                produced[0] += len(part)
        except Exception as e:  # reported by the main thread
            errors.append(e)
    th = threading.Thread(target=produce_all, daemon=True)
    th.start()
    n = len(recs)
    points = sorted(rng.sample(range(n // 20, n * 19 // 20), kills))
    resumes = []
    for point in points:
        base = _total(r)
        target = max(point, base + 1)
        deadline = time.monotonic() + wslib.CONSUME_TIMEOUT
        while True:
            now = _total(r)
            if now >= target:
                break
            if errors:
                raise errors[0]
            if r.proc.poll() is not None:
                raise Fail("run exited by itself (%s): %s" % (r.proc.returncode, r.output()[-2000:]))
            if time.monotonic() > deadline:
                raise Fail("no progress past %d (events_total %d) within %.0f s" % (
                    target, now, wslib.CONSUME_TIMEOUT))
            time.sleep(0.003)
        rc = r.kill9()
        check_eq(-9, rc, "exit status of the killed run")
        wslib.log("%.1f s: kill -9 at events_total %d (batch-max %s; %d produced)" % (
            time.monotonic() - t_start, now, bm, produced[0]))
        r, took, bm = start(last=len(resumes) + 1 == kills)
        current[0] = r
        resumes.append(took)
        after = _total(r)  # committed before the kill: never lost
        check(after >= now, "events_total went back from %d before kill -9 to %d after the restart" % (now, after))
    th.join(wslib.KCAT_TIMEOUT * chunks)
    if th.is_alive():
        raise Fail("kcat did not finish producing")
    if errors:
        raise errors[0]
    wslib.log("%.1f s: all produced; events_total %d" % (time.monotonic() - t_start, _total(r)))
    records = wslib.kcat_consume(bootstrap, topic)
    check_eq(len(recs), len(records), "records in the topic")
    r.wait_counted(len(records), what="records in the topic")
    wslib.log("%.1f s: all counted (batch-max %s)" % (time.monotonic() - t_start, bm))
    model, outcomes = wslib.model_of_topic(records)
    diffs = wslib.check_counters(r, model)
    diffs += wslib.check_all_figures(r, model, absent_wallets=["ghost-w3"], absent_products=["ghost-p3"])
    dlq = wslib.kcat_consume(bootstrap, topic + ".dlq", headers=True)
    diffs += wslib.check_dlq(dlq, records, outcomes, topic, at_least_once=True)
    lag = r.metrics().by_label("walletstream_consumer_lag", "partition")
    if any(v != 0 for v in lag.values()) or not lag:
        diffs.append("consumer lag at the end: %s" % lag)
    check_no_diffs(diffs, "after %d kills and %d records" % (len(resumes), len(records)))
    r.stop_ok()
    wslib.log("%d records (%s), %d wallets, %d dead letters for %d rejected; resumed in %s s" % (
        len(records), {k: v for k, v in model.counts.items() if k != "records"}, len(model.wallets), len(dlq),
        model.counts["rejected"], ", ".join("%.2f" % t for t in resumes)))
    slow = [t for t in resumes if t > RESUME_LIMIT]
    check(not slow, "restarts after kill -9 took %s s to be ready again (limit %.0f s)" % (
        ", ".join("%.1f" % t for t in resumes), RESUME_LIMIT))
    return model


@test
def kafka_crash_real_broker_50k_events_4_kills():
    wslib.require_real_kafka()
    rng = _rng()
    k = wslib.RealKafka().start()
    topic = "crash_in"
    k.create_topics(topic, 3)
    recs = _events(7001, 50000, max_big=20)
    crash_and_check(k.bootstrap, topic, recs, kills=4, chunks=10, rng=rng)


@test
def kafka_crash_walletstream_broker_20k_events_3_kills():
    wslib.require_kcat()
    rng = _rng()
    topic = "crash_mock"
    broker = wslib.EmbeddedBroker(topic, 3).start()
    recs = _events(7002, 20000, max_big=2)
    per_key = {}
    for k, v in recs:
        per_key[k] = per_key.get(k, 0) + len(v) + len(k)
    check(sum(per_key.values()) < 3 * MOCK_RETENTION * 0.6, "events too large for the embedded broker's retention")
    crash_and_check(broker.bootstrap, topic, recs, kills=3, chunks=6, rng=rng, batch_sizes=(None, 2000, 200))
    parts = {}
    for rec in wslib.kcat_consume(broker.bootstrap, topic):
        parts[rec.partition] = parts.get(rec.partition, 0) + len(rec.value) + len(rec.key or b"")
    check(max(parts.values()) < MOCK_RETENTION * 0.9, "a partition holds %s bytes: too close to the retention" % parts)
    broker.stop_ok()


if __name__ == "__main__":
    wslib.main()
