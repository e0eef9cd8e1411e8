#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/corpus/NAME/ (checked in; run again
after changing this file): each file one input, named by its SHA-1 as
libFuzzer names the inputs it keeps.

  decode   every line of examples/conformance_input.jsonl and
           seed_transactions.jsonl, plus edge cases (aliases, escapes,
           nesting, epoch milliseconds, BOM, huge exponents)
  decimal  amount texts from those records and edge cases, as "a\\0b"
  time     timestamps (first byte 0: RFC 3339, 1: epoch milliseconds)
  percent  request paths and ids (first byte: output capacity)
  api      requests: first byte method/authorization/currency bits (see
           fuzz_api.c), then "path\\0currency"
"""
import hashlib
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")


def write(name, inputs):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.remove(os.path.join(d, old))
    for data in sorted(set(inputs)):
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)


def lines(fname):
    with open(os.path.join(EXAMPLES, fname), "rb") as f:
        return [l.rstrip(b"\n") for l in f if l.strip()]


def rec(**over):
    base = {"transaction_id": "t1", "wallet_id": "w1", "product_id": "p1", "type": "credit",
            "amount": "RAW:5.00", "currency": "USD", "timestamp": "2024-05-11T12:50:00Z"}
    base.update(over)
    parts = []
    for k, v in base.items():
        if isinstance(v, str) and v.startswith("RAW:"):
            parts.append('"%s":%s' % (k, v[4:]))
        else:
            parts.append('"%s":%s' % (k, json.dumps(v, ensure_ascii=False)))
    return ("{" + ",".join(parts) + "}").encode("utf-8")


records = lines("conformance_input.jsonl") + lines("seed_transactions.jsonl")
edge = [
    rec(), rec(amount="RAW:1e-18"), rec(amount="RAW:999999999999999.999999999999999999"),
    rec(amount="RAW:1E+14"), rec(amount="RAW:-0.0"), rec(amount="0.10"),
    rec(amount="RAW:1e999999999999"), rec(timestamp="RAW:1715431800123"),
    rec(timestamp="2024-05-11t12:50:00.123456789+05:30"), rec(timestamp="9999-12-31T23:59:59.999999999Z"),
    rec(type="cancelDebit"), rec(type="cancelCredit"), rec(currency="eur"),
    rec(wallet_id="caf\u00e9 \U0001F4B0"), rec(wallet_id="x" * 256),
    b'{"transaction_id":"t\\u00e9\\ud83d\\udcb0","wallet_id":"w\\n","product_id":"p","type":"debit",'
    b'"amount":"2","currency":"USD","timestamp":"2024-01-01T00:00:00Z"}',
    b'{"transactionId":"t","walletId":"w","productId":"p","type":"credit","amount":1,'
    b'"currency":"USD","timestamp":0}',
    b'\xef\xbb\xbf' + rec(), b'[' * 40 + b']' * 40, b'{"a":' * 10 + b'1' + b'}' * 10,
    b'', b'null', b'"x"', b'{}', b'{"amount":1,"amount":2}', rec()[:-1],
]
write("decode", records + edge)

amounts = set()
for r in records:
    for m in re.finditer(rb'"amount"\s*:\s*("?)([^,}"]*)', r):
        amounts.add(m.group(2).strip())
amounts |= {b"0", b"-0", b"0.000000000000000000", b"1e-18", b"1E15", b"999999999999999",
            b"1000000000000000", b"0.0000000000000000001", b"12.5e-3", b"1e+2", b"00", b"1.",
            b".5", b"+1", b"1e", b"-1", b"123456789012345.123456789012345678",
            b"1e-999999999999999999999", b"0e99999999999"}
amounts = sorted(amounts)
write("decimal", [a + b"\0" + b for a, b in zip(amounts, amounts[1:] + amounts[:1])] + amounts)

stamps = {b"2024-05-11T12:50:00Z", b"1970-01-01T00:00:00Z", b"9999-12-31T23:59:59.999999999Z",
          b"2024-02-29T00:00:00+01:00", b"2023-02-29T00:00:00Z", b"2024-05-11 12:50:00.5-23:59",
          b"2024-05-11T12:50:60Z", b"1969-12-31T23:59:59Z", b"2024-05-11T12:50:00"}
for r in records:
    for m in re.finditer(rb'"timestamp"\s*:\s*"([^"]*)"', r):
        stamps.add(m.group(1))
epochs = {b"0", b"1715431800123", b"253402300799999", b"253402300800000", b"-1", b"1.5", b"1e3"}
write("time", [b"\0" + s for s in stamps] + [b"\1" + e for e in epochs])

paths = [b"/balance/w1", b"caf%C3%A9", b"a%2Fb", b"%F0%9F%92%B0", b"%", b"%4", b"%zz", b"%00",
         b"..%2F..", b"x" * 256, b"%41" * 100, b"w+1", b"w%201"]
write("percent", [bytes([cap]) + p for cap in (0, 3, 255) for p in paths])

routes = [b"/balance/w1", b"/balance/a%2Fb", b"/average_daily_debit/w1", b"/top_credits/p1",
          b"/healthz", b"/readyz", b"/metrics", b"/openapi.json", b"/balance/", b"/balance/%zz",
          b"/top_credits/nope", b"/x/../healthz", b"/balance/" + b"x" * 257, b"/balance/%00"]
api = [bytes([flags]) + r for r in routes for flags in (0, 1, 2, 8, 9)]
api += [bytes([16]) + b"/top_credits/p1\0" + c for c in (b"usd", b"EUR", b"%55SD", b"US", b"%zz", b"")]
write("api", api)
