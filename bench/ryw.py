#!/usr/bin/env python3
"""bench/ryw.py - read-your-writes round trips (bench/ryw.sh runs it).

  ryw.py BIN BROKERS TOPIC HOST:PORT ROUNDS LABEL [ROUTE]

Keeps one `walletstream produce --print-offsets` process (a librdkafka
producer that sends each line once the previous one is acknowledged and
prints its PARTITION:OFFSET) and one keep-alive HTTP/1.1 connection. Each
round: a credit of 0.01-0.97 USD to one of 16 wallets of this run is
written to the producer (t0), its acknowledgement read (t1), then
GET /balance/<wallet>?min_offset=P:O&wait_ms=10000 answered (t2), and, as
the reference, the same GET without min_offset at once (t3). A 200 answer
of t2 must be the balance including the write (counted as stale
otherwise: never expected); a 504 (not applied within 10 s) is counted as
a timeout.

ROUTE "top" (default "balance"): each round's credit, to the same 16
wallets, is of product ryw-top-LABEL and larger than every one before it,
and GET /top_credits/ryw-top-LABEL?min_offset=P:O&wait_ms=10000 must list
it first (a product's read-your-writes: every shard, every partition of a
group); the reference is the same GET without min_offset.

Prints one JSON object: rounds, stale, timeouts, and the p50/p90/p99/max
in ms of
ack (t1-t0), ryw_read (t2-t1), round_trip (t2-t0) and plain_read (t3-t2).
"""
import http.client
import json
import subprocess
import sys
import time


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else None


def main():
    binary, brokers, topic, api, rounds, label = sys.argv[1:7]
    top = len(sys.argv) > 7 and sys.argv[7] == "top"
    product = "ryw-top-%s" % label
    rounds = int(rounds)
    host, port = api.rsplit(":", 1)
    prod = subprocess.Popen([binary, "produce", "--print-offsets", "--brokers", brokers, "--topic", topic,
                             "--log-level", "warn"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    wallets = ["ryw-%s-%d" % (label, i) for i in range(16)]
    bal = {w: 0 for w in wallets}
    acks, reads, trips, plain, stale, timeouts = [], [], [], [], 0, 0
    for i in range(rounds):
        w = wallets[i % len(wallets)]
        cents = (1000 + i) * 100 if top else i % 97 + 1
        tid = "ryw-%s-%d" % (label, i)
        line = ('{"transaction_id":"%s","wallet_id":"%s","product_id":"%s","type":"credit",'
                '"amount":"%d.%02d","currency":"USD","timestamp":"2024-05-11T12:50:00Z"}\n' % (
                    tid, w, product if top else "p", cents // 100, cents % 100))
        path = "/top_credits/%s" % product if top else "/balance/%s" % w
        t0 = time.perf_counter()
        prod.stdin.write(line.encode())
        prod.stdin.flush()
        ack = prod.stdout.readline().decode().strip()
        t1 = time.perf_counter()
        if not ack:
            sys.exit("ryw.py: the producer ended")
        conn.request("GET", "%s?min_offset=%s&wait_ms=10000" % (path, ack))
        r = conn.getresponse()
        body = r.read()
        t2 = time.perf_counter()
        conn.request("GET", path)
        conn.getresponse().read()
        t3 = time.perf_counter()
        bal[w] += cents
        want = ('"top_credits":[{"transaction_id":"%s",' % tid if top
                else '"balance":%d.%02d,' % (bal[w] // 100, bal[w] % 100))
        if r.status == 504:
            timeouts += 1
        elif r.status != 200 or want.encode() not in body:
            stale += 1
        acks.append(t1 - t0)
        reads.append(t2 - t1)
        trips.append(t2 - t0)
        plain.append(t3 - t2)
    prod.stdin.close()
    prod.wait(timeout=60)

    def stats(xs):
        return {k: round(pct(xs, p) * 1000, 3) for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
    print(json.dumps({"label": label, "route": "top" if top else "balance", "rounds": rounds, "stale": stale, "timeouts": timeouts, "ack_ms": stats(acks),
                      "ryw_read_ms": stats(reads), "round_trip_ms": stats(trips), "plain_read_ms": stats(plain)}))


if __name__ == "__main__":
    main()
