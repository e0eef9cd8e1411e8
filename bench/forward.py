#!/usr/bin/env python3
"""bench/forward.py - a wallet's answer from its owner and from another
instance of the group, which forwards it (bench/forward.sh runs it).

  forward.py OWNER_API OTHER_API WALLETS ROUNDS LABEL

Finds up to 64 of the wallets w0..w<WALLETS-1> that OWNER_API owns (its
GET /balance/{w}?scope=local answers 200; another instance's partition
answers 503). Then ROUNDS rounds on two keep-alive HTTP/1.1 connections,
one per instance: GET /balance/{w} of the owner (local) and of the other
instance (forwarded), in alternating order; then the same pair for
GET /balance/{w}?min_offset=P:O&wait_ms=1000, where P:O is an offset the
wallet's partition has already applied (its Walletstream-Offsets header):
the read-your-writes path, answered at once. Every answer must be 200
and the two answers of a pair the same body, else it exits non-zero.

Prints one JSON object: rounds, wallets, and the p50/p90/p99/max in ms of
local, forwarded, local_min_offset and forwarded_min_offset.
"""
import http.client
import json
import sys
import time


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else None


def get(conn, path):
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    return time.perf_counter() - t0, r.status, r.getheader("Walletstream-Offsets") or "", body


def main():
    owner_api, other_api, nwallets, rounds, label = sys.argv[1:6]
    rounds = int(rounds)
    conns = []
    for api in (owner_api, other_api):
        host, port = api.rsplit(":", 1)
        conns.append(http.client.HTTPConnection(host, int(port), timeout=30))
    owner, other = conns
    owned = []
    for i in range(int(nwallets)):
        _, status, _, _ = get(owner, "/balance/w%d?scope=local" % i)
        if status == 200:
            owned.append("w%d" % i)
            if len(owned) == 64:
                break
    if not owned:
        sys.exit("forward.py: %s owns none of the wallets" % owner_api)
    times = {k: [] for k in ("local", "forwarded", "local_min_offset", "forwarded_min_offset")}
    for i in range(rounds):
        w = owned[i % len(owned)]
        _, status, hdr, _ = get(owner, "/balance/%s" % w)
        last = hdr.split(",")[0] if hdr else ""
        for suffix, key in (("", "local"), ("?min_offset=%s&wait_ms=1000" % last, "local_min_offset")):
            if key == "local_min_offset" and not last:
                sys.exit("forward.py: no Walletstream-Offsets header from the owner")
            pair = [(owner, key), (other, key.replace("local", "forwarded"))]
            if i % 2:
                pair.reverse()
            bodies = []
            for conn, k in pair:
                took, status, _, body = get(conn, "/balance/%s%s" % (w, suffix))
                if status != 200:
                    sys.exit("forward.py: %s /balance/%s%s answered %d: %r" % (k, w, suffix, status, body[:200]))
                times[k].append(took)
                bodies.append(body)
            if bodies[0] != bodies[1]:
                sys.exit("forward.py: local and forwarded answers differ for %s: %r %r" % (w, bodies[0], bodies[1]))

    def stats(xs):
        return {k: round(pct(xs, p) * 1000, 3) for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
    out = {"label": label, "rounds": rounds, "wallets": len(owned)}
    out.update({k + "_ms": stats(v) for k, v in times.items()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
