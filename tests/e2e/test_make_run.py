#!/usr/bin/env python3
"""`make run` (scripts/run, issue 12): the README's first command on a real
Kafka. It starts a single-node Apache Kafka whose log lives in the data
directory and `walletstream run` against it; Kafka's own console producer
sends the seed example (its figures checked), then kcat sends 20,000
mixed valid and invalid records to one partition in one burst (the backfill
that lost 13,048 records on the embedded broker); every wallet's and
product's figures and every reject reason must equal the reference model's.
Ctrl-C (SIGINT to the process group, as a terminal sends it) stops both
cleanly; a second start goes on where the first stopped.

The script runs on its own ports and data directory (KAFKA_PORT,
WALLETSTREAM_LISTEN, WALLETSTREAM_DATA_DIR) with the binary under test
(WALLETSTREAM_BIN); `make run` itself only adds the build before it."""

import json
import os
import signal
import subprocess
import tempfile
import time

import wslib
from wslib import test, check, check_eq, check_no_diffs, Fail
import gen_events
import reference as ref

SCRIPT = os.path.join(wslib.REPO, "scripts", "run")
SEED = int(os.environ.get("WS_E2E_SEED", "20261205"))
RECORDS = 20000
# scripts/run starts a JVM broker, and one more per topic it creates: on a
# busy two-core machine that is well over a minute.
START_TIMEOUT = max(wslib.KAFKA_START_TIMEOUT, 240.0)
STOP_TIMEOUT = 120.0


class MakeRun:
    """scripts/run in a session of its own, on free ports."""

    def __init__(self, ddir, kafka_port, api_port):
        self.ddir, self.kafka_port, self.api_port = ddir, kafka_port, api_port
        self.proc = self.out = None
        self.http = wslib.Http(api_port)
        wslib.on_cleanup(self._cleanup)

    def start(self):
        env = wslib.clean_env()
        env.update(WALLETSTREAM_DATA_DIR=self.ddir, KAFKA_PORT=str(self.kafka_port),
                   WALLETSTREAM_LISTEN="127.0.0.1:%d" % self.api_port,
                   WALLETSTREAM_BIN=wslib.require_binary())
        self.out = tempfile.TemporaryFile()
        t0 = time.monotonic()
        # a session of its own: the group gets SIGINT as from a terminal
        self.proc = wslib.spawn([SCRIPT], stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out,
                                env=env, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise Fail("scripts/run exited %s: %s" % (self.proc.returncode, self.output()[-3000:]))
            try:
                return wslib.http_request(self.api_port, "GET", "/readyz", timeout=2)[0] == 200
            except OSError:
                return False
        wslib.wait_until(ready, START_TIMEOUT, "scripts/run ready (/readyz 200)", interval=0.2)
        took = time.monotonic() - t0
        wslib.log("scripts/run ready in %.1f s" % took)
        return took

    def output(self):
        return wslib.file_text(self.out)

    def kafka_pid(self):
        try:
            return int(wslib.read_bytes(os.path.join(self.ddir, "kafka", "kafka.pid")).decode().strip())
        except (OSError, ValueError):
            return None

    def interrupt(self):
        """SIGINT to the process group, as Ctrl-C; returns the exit status."""
        kpid = self.kafka_pid()
        check(kpid is not None, "no Kafka pid in %s/kafka/kafka.pid" % self.ddir)
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Fail("scripts/run still running %.0f s after Ctrl-C: %s" % (STOP_TIMEOUT, self.output()[-2000:]))
        check(not _alive(kpid), "Kafka (pid %d) still runs after scripts/run exited" % kpid)
        return rc

    def _cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=STOP_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                pass
        # a broker left by a failed test: stop it through its pid file
        subprocess.run([wslib.KAFKA_SCRIPT, "stop", "--dir", os.path.join(self.ddir, "kafka")],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=STOP_TIMEOUT)
        self.http.close()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return not f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return False


def _get_json(h, path):
    st, _, body = h.request("GET", path)
    check_eq(200, st, "GET %s (body %r)" % (path, body[:200]))
    return json.loads(body)


class _Served:
    """What wslib's figure checks need of a server: get() and metrics()."""

    def __init__(self, mr):
        self.mr = mr

    def get(self, path, **kw):
        return self.mr.http.request("GET", path, **kw)

    def metrics(self):
        st, _, body = self.get("/metrics")
        check_eq(200, st, "GET /metrics")
        return wslib.Metrics(body.decode("utf-8", "replace"))


@test
def make_run_backfill_on_one_partition_is_exact_and_survives_a_restart():
    wslib.require_real_kafka()
    ddir = os.path.join(wslib.tempdir("ws-make-run-"), "data")
    kport, aport = wslib.free_port(), wslib.free_port()
    mr = MakeRun(ddir, kport, aport)
    first = mr.start()
    bootstrap = "127.0.0.1:%d" % kport
    check_eq(bootstrap, wslib.read_bytes(os.path.join(ddir, "kafka.bootstrap")).decode().strip(),
             "data/kafka.bootstrap")
    check(os.path.isdir(os.path.join(ddir, "kafka", "data")), "Kafka's log is not under the data directory")
    status = _get_json(mr.http, "/status")
    check_eq({"bootstrap": bootstrap, "kind": "kafka"}, status.get("broker"), "/status broker")
    served = _Served(mr)
    check_eq(1.0, served.metrics().get("walletstream_broker_info", bootstrap=bootstrap, kind="kafka"),
             "walletstream_broker_info")
    for t in ("transactions_topic", "transactions_topic.dlq"):
        check(wslib.kcat_metadata_ok(bootstrap, t), "topic %s missing" % t)

    # The README's habit: the seed through Kafka's own console producer
    # (kafka-console-producer, from the jars make run resolved), then every
    # seed figure; the seed's ids are disjoint from the generated ones.
    seed = wslib.example("seed_transactions.jsonl")
    with open(seed, "rb") as f:
        p = subprocess.run([wslib.KAFKA_SCRIPT, "console-producer", "--dir", os.path.join(ddir, "kafka"),
                            "--topic", "transactions_topic"], stdin=f, capture_output=True, timeout=180)
    check_eq(0, p.returncode, "scripts/kafka console-producer exit status (%r)" % p.stderr[-800:])
    seed_lines = [l for l in wslib.read_bytes(seed).split(b"\n") if l]
    wslib.wait_until(lambda: served.metrics().outcomes()["applied"] == len(seed_lines), wslib.CONSUME_TIMEOUT,
                     "the seed applied")
    doc = ref.parse_response(wslib.read_bytes(wslib.example("seed_expected.json")))
    diffs = []
    for route, key, want in ref.figures_of(doc):
        diffs += wslib.check_figure(served, route, key, want)
    check_no_diffs(diffs, "seed figures after kafka-console-producer")
    check_eq(b'{"wallet_id":"b","balance":75.00,"currency":"USD","transactions":6,'
             b'"last_event_time":"2024-05-11T12:50:00Z"}', mr.http.request("GET", "/balance/b")[2],
             "GET /balance/b, byte for byte")

    # one partition: one order; empty lines (kcat cannot send them) dropped
    recs = wslib.keyed_for_kafka(gen_events.generate(SEED, RECORDS + 500), drop_cross_wallet=False)[:RECORDS]
    check_eq(RECORDS, len(recs), "records generated")
    model = wslib.CountingModel()
    for v in seed_lines:
        model.process(v)
    for _, v in recs:
        model.process(v)
    size = sum(len(v) for _, v in recs)
    wslib.log("%d records (%.1f MB; %d rejected, %d duplicate) to partition 0 in one burst" % (
        len(recs), size / 1e6, model.counts["rejected"], model.counts["duplicate"]))
    check(model.counts["rejected"] > 500 and len(model.reasons) >= 8, "generated too few rejects: %s" % model.reasons)
    t0 = time.monotonic()
    wslib.kcat_produce(bootstrap, "transactions_topic", recs, partition=0)

    def counted():
        c = served.metrics().outcomes()
        total = sum(c.values()) - len(seed_lines)
        if total > len(recs):
            raise Fail("%d records sent, %d counted: %s" % (len(recs), total, c))
        return total == len(recs)
    wslib.wait_until(counted, wslib.CONSUME_TIMEOUT, "every record counted", interval=0.1)
    wslib.log("all %d counted %.1f s after the burst began" % (len(recs), time.monotonic() - t0))
    m = served.metrics()
    lost = sum(m.by_label("walletstream_records_lost_total", "partition").values())
    check_eq(0, int(lost), "walletstream_records_lost_total")
    check_no_diffs(wslib.check_all_figures(served, model) + wslib.check_counters(served, model),
                   "figures and counters after the burst (seed %d)" % SEED)

    check_eq(0, mr.interrupt(), "scripts/run exit status after Ctrl-C")
    check("run: stopped" in mr.output() or "stopped" in mr.output(), "walletstream did not say it stopped")

    second = mr.start()
    check_no_diffs(wslib.check_all_figures(served, model) + wslib.check_counters(served, model),
                   "figures and counters after the second start (seed %d)" % SEED)
    # the broker kept its log: more records go on from where it stopped
    more = [(b"w-after", ('{"transaction_id":"after-1","wallet_id":"w-after","product_id":"p-after",'
                          '"type":"credit","amount":"1.50","currency":"EUR",'
                          '"timestamp":"2026-12-05T10:00:00Z"}').encode())]
    wslib.kcat_produce(bootstrap, "transactions_topic", more, partition=0)
    model.process(more[0][1])
    wslib.wait_until(lambda: sum(served.metrics().outcomes().values()) == len(seed_lines) + len(recs) + 1,
                     wslib.CONSUME_TIMEOUT,
                     "the record sent after the restart counted")
    check_no_diffs(wslib.check_figure(served, "balance", "w-after", model.balance("w-after")),
                   "balance of the wallet sent after the restart")
    check_no_diffs(wslib.check_counters(served, model), "counters after the restart")
    check_eq(0, mr.interrupt(), "scripts/run exit status after the second Ctrl-C")
    wslib.log("first start %.1f s to ready, second %.1f s" % (first, second))


@test
def run_without_brokers_names_the_default_broker_and_never_starts_the_test_broker():
    """`walletstream run` with no --brokers reads localhost:9092 (SPEC §6):
    with nothing there it keeps trying, /readyz says whom it waits for, and
    no kafka.bootstrap (the embedded broker's mark) appears."""
    ddir = wslib.data_dir()
    port = wslib.free_port()
    env = wslib.clean_env()  # no WALLETSTREAM_BROKERS either
    out = tempfile.TemporaryFile()
    p = wslib.spawn([wslib.require_binary(), "run", "--data-dir", ddir, "--listen", "127.0.0.1:%d" % port],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)

    def reason():
        if p.poll() is not None:
            raise Fail("run exited %s: %s" % (p.returncode, wslib.file_text(out)[-1500:]))
        try:
            st, _, body = wslib.http_request(port, "GET", "/readyz", timeout=2)
        except OSError:
            return None
        if st == 200:  # something answers on localhost:9092 on this machine
            return "ready"
        doc = json.loads(body)
        return doc["reason"] if "localhost:9092" in doc.get("reason", "") else None
    r = wslib.wait_until(reason, 60, "/readyz naming localhost:9092")
    if r == "ready":
        wslib.log("a broker answers on localhost:9092 here: only the broker's name is checked")
    st, _, body = wslib.http_request(port, "GET", "/status")
    check_eq({"bootstrap": "localhost:9092", "kind": "kafka"}, json.loads(body).get("broker"), "/status broker")
    check(not os.path.exists(os.path.join(ddir, "kafka.bootstrap")),
          "run without --brokers started a broker of its own (kafka.bootstrap written)")
    wslib.log("no broker: /readyz reason %r" % r)
    check_eq(0, wslib.stop_process(p), "exit status after SIGTERM")


@test
def embedded_broker_only_by_choice_and_says_so():
    """--embedded-broker: the test broker, announced with its limits; /status
    and /metrics name it; --brokers with it is a usage error."""
    with wslib.Runner(wslib.data_dir()) as r:  # brokers=None passes --embedded-broker
        check("--embedded-broker" in r.args(), "Runner without brokers did not ask for the test broker")
        check("5 MiB per partition" in r.output(), "the embedded broker's limits were not announced: %r" %
              r.output()[-800:])
        st, _, body = r.get("/status")
        doc = json.loads(body)
        check_eq({"bootstrap": r.bootstrap, "kind": "embedded"}, doc.get("broker"), "/status broker")
        check_eq(1.0, r.metrics().get("walletstream_broker_info", bootstrap=r.bootstrap, kind="embedded"),
                 "walletstream_broker_info")
    p = subprocess.run([wslib.require_binary(), "run", "--embedded-broker", "--brokers", "127.0.0.1:1",
                        "--data-dir", wslib.data_dir()], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30, env=wslib.clean_env())
    check_eq(2, p.returncode, "exit status of run --embedded-broker --brokers")
    check(b"exclude each other" in p.stderr, "usage error %r" % p.stderr[-300:])


if __name__ == "__main__":
    wslib.main()
