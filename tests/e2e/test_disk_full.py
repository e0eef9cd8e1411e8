#!/usr/bin/env python3
"""Disk full (issue 8 §4, SPEC §8): the state cannot grow any more while
`run` consumes mixed events (valid, duplicate, faulty) from a separate
`walletstream broker`:

- with a `--max-state-size` cap (LMDB's map size): ingest stops with a
  log line naming the cap, /readyz is 503 with the reason, reads keep
  being served, no progress once the other shards have committed what
  they could (each shard has its share of the cap); after a restart
  with the cap raised it
  resumes and every counter, figure and dead letter is exact;
- with the data directory on a small tmpfs (only as root; SKIP otherwise):
  the same with "no space left"; once space is freed (a filler file on
  the same tmpfs removed) it resumes by itself, without a restart.

Nothing is lost or half-applied: the final comparison with reference.py
covers every record, and a batch is one LMDB transaction."""

import os
import subprocess
import time

import wslib
from wslib import test, check, check_eq, Skip, Runner
from wslib import readyz, wait_not_ready, wait_ready_again, check_topic_state
import gen_events

FULL_TIMEOUT = 120.0
RESUME_TIMEOUT = 60.0
EVENTS = 20000


def _broker_with_events(topic, seed):
    wslib.require_kcat()
    b = wslib.EmbeddedBroker(topic, 3).start()
    recs = wslib.keyed_for_kafka(gen_events.generate(seed, EVENTS, max_big=2))
    return b, recs


def _stopped_at_full(r, reasons, log_words):
    """503 with the reason, the log line, reads served, no progress."""
    reason = wait_not_ready(r, FULL_TIMEOUT, "state cannot grow", reason_has=reasons)
    out = r.output()
    check(any(w in out for w in log_words), "no log line naming %s: %s" % (" or ".join(log_words), out[-1500:]))
    counted = r.counts()
    total = sum(counted.values())
    check(0 < total < EVENTS, "events_total when the state is full: %s" % counted)
    status, _, body = r.get("/balance/%s" % wslib.quote_id("w0"))
    check(status in (200, 404), "a read while the state is full: %d %r" % (status, body[:200]))
    # each wallet's figures answer (whatever was committed)
    status, _, body = r.get("/metrics")
    check_eq(200, status, "/metrics while the state is full")
    s2, _ = readyz(r)
    check_eq(503, s2, "/readyz still 503")
    # The full shard stops; another shard may still commit what it holds
    # of each retry (every second) until it is full too or has nothing
    # left: the count settles, short of every record.
    last = [counted]

    def settled():
        time.sleep(2.5)
        now = r.counts()
        same = now == last[0]
        last[0] = now
        return same
    wslib.wait_until(settled, FULL_TIMEOUT, "events_total to stay while the state is full")
    counted = last[0]
    total = sum(counted.values())
    check(0 < total < EVENTS, "events_total when the state is full: %s" % counted)
    wslib.log("state full at events_total %d: %s" % (total, reason))
    return total


@test
def max_state_size_cap_then_raised():
    b, recs = _broker_with_events("df_cap", 9101)
    ddir = wslib.data_dir()
    r = Runner(ddir, brokers=b.bootstrap, topic=b.topic, extra_args=["--max-state-size", "1M"]).start()
    wslib.kcat_produce(b.bootstrap, b.topic, recs)
    _stopped_at_full(r, ("full",), ("--max-state-size",))
    size = sum(os.path.getsize(os.path.join(ddir, "state", k, "data.mdb"))
               for k in os.listdir(os.path.join(ddir, "state")))
    check(size <= 1 << 20, "the shards' data.mdb files hold %d bytes, above the 1M cap" % size)
    r.stop_ok()
    r.extra_args = ["--max-state-size", "64M"]
    r.start()
    model, n, n_dlq = check_topic_state(r, b.topic, dlq_exactly_once=False)
    check_eq(len(recs), n, "records")
    wslib.log("%d records, %d rejected, %d dead letters" % (n, model.counts["rejected"], n_dlq))
    r.stop_ok()


@test
def small_tmpfs_then_space_freed():
    if os.geteuid() != 0:
        raise Skip("a size-limited tmpfs needs root (mount -t tmpfs)")
    mnt = os.path.join(wslib.tempdir(), "tmpfs")
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", mnt], stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise Skip("cannot mount a tmpfs: %s" % p.stderr.decode(errors="replace").strip())
    wslib.on_cleanup(lambda: subprocess.run(["umount", "-l", mnt]))
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * (3 << 20))
    b, recs = _broker_with_events("df_tmpfs", 9102)
    ddir = os.path.join(mnt, "data")
    r = Runner(ddir, brokers=b.bootstrap, topic=b.topic).start()
    wslib.kcat_produce(b.bootstrap, b.topic, recs)
    _stopped_at_full(r, ("space",), ("No space left", "no space left"))
    os.unlink(filler)
    wait_ready_again(r, RESUME_TIMEOUT, "space freed")
    model, n, n_dlq = check_topic_state(r, b.topic, dlq_exactly_once=False)
    check_eq(len(recs), n, "records")
    wslib.log("%d records, %d rejected, %d dead letters" % (n, model.counts["rejected"], n_dlq))
    r.stop_ok()


if __name__ == "__main__":
    wslib.main()
