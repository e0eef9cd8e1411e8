#!/usr/bin/env python3
"""The reference model and the generator, checked without the binary:
the model reproduces the SPEC's three examples exactly, decides the edge
cases the SPEC and its team settled, and the generator is deterministic and
covers every reason code."""

import collections
import time

import wslib
from wslib import test, check, check_eq, Fail
import reference as ref
import gen_events


@test
def reference_reproduces_spec_examples():
    errors = ref.selftest()
    if errors:
        raise Fail("; ".join(errors[:10]))


def _outcome(line):
    if isinstance(line, str):
        line = line.encode("utf-8")
    m = ref.Model()
    o = m.process(line)
    return o.reason or o.outcome


def _rec(**over):
    fields = {"transaction_id": '"t1"', "wallet_id": '"w"', "product_id": '"p"', "type": '"credit"',
              "amount": "1.00", "currency": '"USD"', "timestamp": '"2024-05-11T12:50:00Z"'}
    fields.update(over)
    return "{" + ", ".join('"%s": %s' % (k, v) for k, v in fields.items() if v is not None) + "}"


@test
def reference_amount_rules():
    cases = [
        ("1.00", "applied"), ('"5.00"', "applied"), ("-0", "applied"), ("-0.00", "applied"),
        ("1234E-2", "applied"), ("1e-18", "applied"), ("1.0e-18", "amount_out_of_range"),
        ("0e-19", "amount_out_of_range"), ("999999999999999.999999999999999999", "applied"),
        ("1e15", "amount_out_of_range"), ("0.1e16", "amount_out_of_range"), ("0.1e15", "applied"),
        ("00000", "invalid_json"), ('"00"', "invalid_amount"), ("1e999999999", "amount_out_of_range"),
        ("0e999999999", "applied"), ("1e-999999999", "amount_out_of_range"),
        ("-5", "invalid_amount"), ("-1e999999999", "invalid_amount"), ('"+5"', "invalid_amount"),
        ('" 5"', "invalid_amount"), ('"5e"', "invalid_amount"), ("true", "invalid_amount"),
        ("null", "missing_field"), ('"1E+0000000000000000000000015"', "amount_out_of_range"),
        ('"1E+0000000000000000000000014"', "applied"), ("12345678901234567890e-5", "applied"),
        ("NaN", "invalid_json"), ("Infinity", "invalid_json"), ("01", "invalid_json"),
    ]
    for amount, want in cases:
        check_eq(want, _outcome(_rec(amount=amount)), "amount %s" % amount)


@test
def reference_amount_scale_and_text():
    for text, printed in [("1234E-2", "12.34"), ("5e2", "500"), ("1.0e-18", None), ("0.50e1", "5.0"),
                          ("-0.00", "0.00"), ("1e-18", "0.000000000000000001"), ("7.00", "7.00"),
                          ("12.3400", "12.3400"), ("0.00012e2", "0.012")]:
        a = ref.parse_amount_text(text)
        if printed is None:
            check(a == "amount_out_of_range", "%s: %r" % (text, a))
        else:
            check_eq(printed, a.text(), "amount %s printed" % text)


@test
def reference_timestamp_rules():
    ok = ["2024-05-11T12:50:00Z", "2024-05-11t12:50:00z", "2024-05-11 12:50:00", "2024-05-11T12:50:00.1Z",
          "2024-05-11T12:50:00.123456789+23:59", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
          "1969-12-31T23:00:00-01:00", "2024-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2024-05-11T12:50:00-00:00"]
    bad = ["2024-05-11T12:50:60Z", "2024-05-11T24:00:00Z", "2100-02-29T00:00:00Z", "2024-05-11T12:50:00+24:00",
           "2024-05-11T12:50:00+05:60", "2024-05-11T12:50:00.Z", "2024-05-11T12:50:00.1234567890Z",
           "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00",
           "10000-01-01T00:00:00Z", "2024-05-11T12:50Z", "2024-05-11", "2024-05-11T12:50:00+0200",
           "1715431800000", " 2024-05-11T12:50:00Z", "2024-05-11T12:50:00Z ", "2024-05-11T12:50:00,5Z",
           "２024-05-11T12:50:00Z"]
    for s in ok:
        check_eq("applied", _outcome(_rec(timestamp='"%s"' % s)), "timestamp %s" % s)
    for s in bad:
        check_eq("invalid_timestamp", _outcome(_rec(timestamp='"%s"' % s)), "timestamp %s" % s)
    for tok, want in [("0", "applied"), ("1715431800000", "applied"), ("253402300799999", "applied"),
                      ("253402300800000", "invalid_timestamp"), ("-1", "invalid_timestamp"),
                      ("-0", "invalid_timestamp"), ("1715431800000.0", "invalid_timestamp"),
                      ("1715431800000e0", "invalid_timestamp"), ("1E3", "invalid_timestamp"),
                      ("99999999999999999999999999", "invalid_timestamp"), ("true", "invalid_timestamp")]:
        check_eq(want, _outcome(_rec(timestamp=tok)), "timestamp %s" % tok)
    check_eq((1715431800, 0), ref.parse_rfc3339("2024-05-11T14:50:00+02:00"), "offset normalised")
    check_eq((1715431800, 250000000), ref.parse_rfc3339("2024-05-11T14:50:00.25+02:00"), "fraction")


@test
def reference_id_rules():
    for tok, want in [('""', "invalid_field"), ('"%s"' % ("x" * 256), "applied"),
                      ('"%s"' % ("x" * 257), "invalid_field"), ('"%s"' % ("é" * 128), "applied"),
                      ('"%sx"' % ("é" * 128), "invalid_field"), ('"a\\u007fb"', "invalid_field"),
                      ('"a\\u0085b"', "invalid_field"), ('"a\\u00a0b"', "applied"), ('"\\ud800"', "invalid_field"),
                      ('"\\ud83d\\ude00"', "applied"), ('"a/b"', "applied"), ("17", "invalid_field"),
                      ('"a\\u0000b"', "invalid_field"), ('"tab\\there"', "invalid_field")]:
        check_eq(want, _outcome(_rec(wallet_id=tok)), "wallet_id %s" % tok)
    check_eq("invalid_json", _outcome(_rec(wallet_id='"tab\there"')), "raw control character")


@test
def reference_precedence():
    check_eq("message_too_large", _outcome(b"x" * 65537), "size first")
    check_eq("invalid_json", _outcome(b"x" * 65536), "then JSON")
    check_eq("not_an_object", _outcome("[1]"), "then object")
    check_eq("duplicate_field", _outcome('{"type": "credit", "type": "debit"}'), "duplicate before missing")
    check_eq("missing_field", _outcome(_rec(wallet_id="17", amount=None)), "missing before invalid")
    check_eq("invalid_field", _outcome(_rec(wallet_id="17", type='"x"')), "ids before type")
    check_eq("invalid_type", _outcome(_rec(type='"x"', amount='"x"')), "type before amount")
    check_eq("invalid_amount", _outcome(_rec(amount='"x"', currency='"x"')), "amount before currency")
    check_eq("invalid_currency", _outcome(_rec(currency='"x"', timestamp='"x"')), "currency before timestamp")
    m = ref.Model()
    m.process(_rec().encode())
    check_eq("conflicting_duplicate", m.process(_rec(currency='"EUR"').encode()).reason, "dup before currency")
    check_eq("currency_mismatch", m.process(_rec(transaction_id='"t2"', currency='"EUR"').encode()).reason,
             "currency")
    check_eq("duplicate", m.process(_rec(amount='"1.0"', currency='"usd"',
                                         timestamp='"2024-05-11T14:50:00+02:00"').encode()).outcome,
             "same content written differently")


@test
def reference_aggregate_overflow_at_int128_limit():
    m = ref.Model()
    lines = gen_events.overflow_lines("ovf", "p", 170142)
    outs = [m.process(l) for l in lines]
    check(all(o.outcome == "applied" for o in outs[:-1]), "170141 largest credits fit")
    check_eq("aggregate_overflow", outs[-1].reason, "the 170142nd overflows")
    check_eq(["o1", "o10", "o100", "o1000", "o10000"],
             [e["transaction_id"] for e in m.top_credits("p")["top_credits"]], "ties broken by id bytes")
    small = ('{"transaction_id":"s1","wallet_id":"ovf","product_id":"p","type":"credit","amount":1e14,'
             '"currency":"USD","timestamp":"2024-05-11T12:50:00Z"}')
    check_eq("applied", m.process(small.encode()).outcome, "a smaller credit still fits")
    b = m.balance("ovf")["balance"].text
    check_eq(170141 * (10 ** 33 - 1) + 10 ** 32, int(b.replace(".", "")), "balance exact")


@test
def generator_is_deterministic_and_covers_every_reason():
    t0 = time.process_time()  # CPU time: the machine's load does not count
    a = gen_events.generate(11, 10000)
    b = gen_events.generate(11, 10000)
    check(a == b, "same seed, same lines")
    check(a != gen_events.generate(12, 10000), "another seed, other lines")
    _, outs = ref.run(a)
    got = collections.Counter(o.reason or o.outcome for o in outs if o is not None)
    want = set(ref.REASONS) - {"aggregate_overflow"} | {"applied", "duplicate"}
    check(not (want - set(got)), "reasons never generated: %s" % sorted(want - set(got)))
    check(any(o is None for o in outs), "blank lines generated")
    check(any(not l.decode("utf-8", "replace").encode() == l for l in a), "invalid UTF-8 generated")
    cpu = time.process_time() - t0
    check(cpu < 30, "generator too slow: %.1f s of CPU" % cpu)


if __name__ == "__main__":
    wslib.main()
