#!/usr/bin/env python3
"""Seeded generator of replay lines (record values) for walletstream tests.

Produces a mix of valid events written in every accepted form (amount as
number, string or exponent; timestamps with offsets, `t`/space separators,
fractions, epoch milliseconds; id aliases; unknown fields; shuffled keys)
and faulty ones covering every reason code of SPEC §3: invalid UTF-8,
oversized records, duplicates (exact and rewritten), conflicting duplicates,
currency mismatches, ties in top credits, products with only debits, and
optionally a wallet driven to the 128-bit aggregate limit.

The generator only writes lines; what each line's outcome is, is decided by
reference.py. Everything depends on the seed alone.

    python3 gen_events.py --seed 7 --count 10000 > events.jsonl
"""

import argparse
import json
import random
import sys

import reference as ref

MAX_AMOUNT_TEXT = "999999999999999.999999999999999999"
MAX_AMOUNT_UNITS = 10 ** 33 - 1

CURRENCIES = ("USD", "EUR", "JPY", "GBP", "CHF")
DAY = 86400
BASE_2024 = ref.days_from_civil(2024, 1, 1) * DAY
MIN_SEC = ref.MIN_SEC
MAX_SEC = ref.MAX_SEC


def jstr(s):
    """JSON string literal; non-ASCII left as UTF-8 or escaped at random by caller."""
    return json.dumps(s, ensure_ascii=False)


class ValidTxn:
    """The content of a generated valid event, to re-render it later."""
    __slots__ = ("tid", "wallet", "product", "type", "units", "scale", "currency", "instant")

    def __init__(self, tid, wallet, product, type_, units, scale, currency, instant):
        self.tid, self.wallet, self.product, self.type = tid, wallet, product, type_
        self.units, self.scale, self.currency, self.instant = units, scale, currency, instant


class Generator:
    def __init__(self, seed, n_wallets=200, n_products=60, max_big=40):
        self.rng = random.Random(seed)
        self.big_budget = max_big  # lines of 64 KiB and more: they make files large
        r = self.rng
        self.seq = 0
        self.wallets = [self._wallet_id(i) for i in range(n_wallets)]
        self.home = {w: r.choice(CURRENCIES[:3]) if r.random() < 0.9 else r.choice(CURRENCIES)
                     for w in self.wallets}
        # each wallet lives over a window of days; a few at the edges of time
        self.window = {}
        for w in self.wallets:
            x = r.random()
            if x < 0.03:
                start, span = MIN_SEC, r.randint(1, 3)
            elif x < 0.06:
                start, span = MAX_SEC + 1 - 3 * DAY, 3
            elif x < 0.15:
                start, span = BASE_2024 + r.randint(0, 365) * DAY, r.randint(100, 3000)
            else:
                start, span = BASE_2024 + r.randint(0, 365) * DAY, r.randint(1, 40)
            self.window[w] = (start, span)
        self.products = [self._product_id(i) for i in range(n_products)]
        self.debit_only = set(self.products[:max(1, n_products // 12)])
        self.tie_products = set(self.products[-max(1, n_products // 10):])
        self.emitted = []   # ValidTxn of every valid event emitted (content)

    # -- ids -------------------------------------------------------------

    def _wallet_id(self, i):
        r = self.rng
        x = r.random()
        if i == 0:
            return "w" * 256  # longest id
        if x < 0.6:
            return "w%d" % i
        return r.choice(["wal/%d", "café-%d", "w %d", "w%%%d", "w?%d#x", "w+%d", "ünï-%d",
                         "\U0001F4B0-%d", "a.b-%d", "日本-%d", "w\u00a0%d"]) % i

    def _product_id(self, i):
        r = self.rng
        if r.random() < 0.7:
            return "p%d" % i
        return r.choice(["prod/%d", "pröd-%d", "p %d", "p%%25-%d", "€-%d"]) % i

    def _tid(self):
        self.seq += 1
        r = self.rng
        x = r.random()
        if x < 0.8:
            return "t%07d" % self.seq
        if x < 0.9:
            return "tx-%d" % self.seq  # byte order differs from numeric order
        return r.choice(["é%d", "T/%d", "t %d", "\U0001F3B2%d"]) % self.seq

    # -- rendering ---------------------------------------------------------

    def amount_text(self, units, scale):
        """A JSON token (number or string) for the amount, as written with `scale`."""
        r = self.rng
        if units == 0 and r.random() < 0.3:
            tok = "-0" if scale == 0 else "-0." + "0" * scale
        else:
            d = str(units // 10 ** (18 - scale))  # value * 10**scale
            x = r.random()
            if x < 0.6:
                tok = ref.format_units(units, scale)
            elif scale == 0 and d != "0" and d.endswith("0") and x < 0.7:
                z = len(d) - len(d.rstrip("0"))
                k = r.randint(1, z)
                tok = d[:-k] + r.choice("eE") + r.choice(["", "+", "+0"]) + str(k)
            else:
                f = r.randint(0, len(d) + 2)
                e = f - scale
                digits = d.rjust(f + 1, "0") if f >= len(d) else d
                mant = digits[:len(digits) - f] + ("." + digits[len(digits) - f:] if f else "")
                if f == 0 and e == 0:
                    tok = mant
                else:
                    tok = mant + r.choice("eE") + ("-" if e < 0 else r.choice(["", "+"])) + str(abs(e))
        if r.random() < 0.25:
            return '"%s"' % tok
        return tok

    def timestamp_text(self, inst):
        r = self.rng
        sec, nsec = inst
        if nsec % 1000000 == 0 and r.random() < 0.15:
            return str(sec * 1000 + nsec // 1000000)
        x = r.random()
        if x < 0.5:
            off = 0
            zone = r.choice(["Z", "Z", "z", "", "+00:00", "-00:00"])
        else:
            off = r.randint(-(23 * 60 + 59), 23 * 60 + 59)
            zone = "%s%02d:%02d" % ("-" if off < 0 else "+", abs(off) // 60, abs(off) % 60)
        local = sec + off * 60
        days, rem = divmod(local, DAY)
        y, m, d = ref.civil_from_days(days)
        if not (0 <= y <= 9999):
            off, zone, local = 0, "Z", sec
            days, rem = divmod(local, DAY)
            y, m, d = ref.civil_from_days(days)
        frac = ""
        if nsec:
            need = 9 - (len("%09d" % nsec) - len(("%09d" % nsec).rstrip("0")))
            frac = "." + ("%09d" % nsec)[:r.randint(need, 9)]
        elif r.random() < 0.1:
            frac = "." + "0" * r.randint(1, 9)
        sep = r.choice("TTTTt ")
        return '"%04d-%02d-%02d%s%02d:%02d:%02d%s%s"' % (
            y, m, d, sep, rem // 3600, rem // 60 % 60, rem % 60, frac, zone)

    def render(self, t, fields_override=None, extra=None, alias=None, shuffle=None):
        """Render a ValidTxn as a JSON line (bytes), with random valid variation.
        fields_override: {canonical field: raw JSON token or None to drop}."""
        r = self.rng
        cur = t.currency
        if r.random() < 0.2:
            cur = "".join(c.lower() if r.random() < 0.5 else c for c in cur)
        toks = {
            "transaction_id": jstr(t.tid),
            "wallet_id": jstr(t.wallet),
            "product_id": jstr(t.product),
            "type": jstr(t.type),
            "amount": self.amount_text(t.units, t.scale),
            "currency": jstr(cur),
            "timestamp": self.timestamp_text(t.instant),
        }
        if r.random() < 0.1:  # escaped non-ASCII is the same id
            for f in ("transaction_id", "wallet_id", "product_id"):
                toks[f] = json.dumps(getattr(t, {"transaction_id": "tid", "wallet_id": "wallet",
                                                 "product_id": "product"}[f]))
        if fields_override:
            toks.update(fields_override)
        keys = {}
        for f in ref.FIELDS:
            aliases = ref.FIELD_KEYS[f]
            if alias is not None:
                keys[f] = aliases[min(alias, len(aliases) - 1)]
            else:
                keys[f] = aliases[0] if r.random() < 0.85 else r.choice(aliases)
        pairs = [(keys[f], toks[f]) for f in ref.FIELDS if toks.get(f) is not None]
        if extra is None and r.random() < 0.1:
            extra = [("source", jstr("gen")), ("meta", '{"a": [1, 2.5e3, null], "b": {"c": "\\u00e9"}}'),
                     ("Amount", '"not the amount"'), ("wallet", "null")][r.randint(0, 3):]
        pairs += extra or []
        if shuffle or (shuffle is None and r.random() < 0.2):
            r.shuffle(pairs)
        colon = r.choice([": ", ":", " : ", ":\t"])
        comma = r.choice([", ", ",", " , "])
        body = comma.join("%s%s%s" % (jstr(k), colon, v) for k, v in pairs)
        lead = r.choice(["", "", " ", "\t"])
        return ("%s{%s}%s" % (lead, body, r.choice(["", "", " "]))).encode("utf-8")

    # -- content ---------------------------------------------------------

    def _amount(self, product, type_):
        r = self.rng
        if type_ == "credit" and product in self.tie_products and r.random() < 0.7:
            return r.choice([(7 * ref.UNIT, 2), (7 * ref.UNIT, 0), (35 * ref.UNIT // 10, 1)])
        x = r.random()
        if x < 0.005:
            return (MAX_AMOUNT_UNITS, 18)
        if x < 0.5:
            scale = 2
        elif x < 0.7:
            scale = 0
        elif x < 0.85:
            scale = r.randint(1, 6)
        else:
            scale = r.randint(7, 18)
        int_digits = r.choice([0, 1, 1, 2, 2, 2, 3, 3, 4, 6, 9, 15]) if r.random() < 0.97 else 15
        ip = r.randint(0, 10 ** int_digits - 1) if int_digits else 0
        fp = r.randint(0, 10 ** scale - 1) if scale else 0
        if r.random() < 0.02:
            ip, fp = 0, 0
        return ((ip * 10 ** scale + fp) * 10 ** (18 - scale), scale)

    def _instant(self, wallet):
        r = self.rng
        start, span = self.window[wallet]
        sec = start + r.randint(0, span * DAY - 1)
        sec = min(max(sec, MIN_SEC), MAX_SEC)
        x = r.random()
        if x < 0.6:
            nsec = 0
        elif x < 0.85:
            nsec = r.randint(0, 999) * 1000000
        else:
            nsec = r.randint(0, 999999999)
        return (sec, nsec)

    def valid_txn(self, wallet=None, product=None, type_=None):
        r = self.rng
        wallet = wallet or r.choice(self.wallets)
        product = product or r.choice(self.products)
        if type_ is None:
            if product in self.debit_only:
                type_ = r.choice(["debit", "debit", "cancelDebit", "cancelCredit"])
            else:
                type_ = r.choices(ref.TYPES, weights=(40, 35, 10, 15))[0]
        units, scale = self._amount(product, type_)
        inst = self._instant(wallet)
        if type_ == "credit" and product in self.tie_products and self.emitted and r.random() < 0.5:
            same = [e for e in self.emitted[-50:] if e.product == product and e.type == "credit"]
            if same:
                inst = r.choice(same).instant  # same amount set and same instant: tie on id
        return ValidTxn(self._tid(), wallet, product, type_, units, scale, self.home[wallet], inst)

    # -- faults ----------------------------------------------------------

    def fault(self, reason):
        """A line meant to be rejected with `reason` (the reference decides)."""
        r = self.rng
        t = self.valid_txn()
        if r.random() < 0.2:  # ids seen only in rejected records must stay unknown
            t.wallet = "ghost-w%d" % r.randint(0, 30)
            t.product = "ghost-p%d" % r.randint(0, 30)
        O = lambda **kw: self.render(t, fields_override=kw)  # noqa: E731
        if reason == "invalid_json":
            line = self.render(t, extra=[])
            c = r.randint(0, 11)
            if c == 0:
                cut = line[:r.randint(1, len(line) - 1)].rstrip(b"}")
                return cut if not ref.is_blank(cut) else b"{"
            if c == 1:
                return line + b" x"
            if c == 2:
                return O(wallet_id='"bad@@FF@@utf8"').replace(b"@@FF@@", b"\xff")
            if c == 3:
                return line.replace(b'"', b"'", 2)
            if c == 4:
                return line[:-1].rstrip() + b",}" if line.endswith(b"}") else line + b",}"
            if c == 5:
                return O(amount="NaN")
            if c == 6:
                return O(amount=r.choice(["01", "1.", ".5", "+1", "Infinity", "-", "1e", "0x10", "1.5.2"]))
            if c == 7:
                return O(product_id='"tab\there"')  # raw control character in a string
            if c == 8:
                return b'{"transaction_id": "' + r.choice([b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82",
                                                            b"\xf8\x88\x80\x80\x80", b"\xf4\x90\x80\x80",
                                                            b"\x80"]) + b'", "wallet_id": "w1"}'
            if c == 9:
                return b"{" + line
            if c == 10:
                return O(wallet_id='"unterminated')
            return line + line
        if reason == "not_an_object":
            return r.choice([b"[]", b"[" + self.render(t) + b"]", b"42", b'"a string"', b"null",
                             b"true", b" false ", b"-0.5e3"])
        if reason == "message_too_large":
            pad = r.randint(1, 3000)
            return self._padded(t, ref.MAX_RECORD + pad)
        if reason == "missing_field":
            f = r.choice(ref.FIELDS)
            return O(**{f: None}) if r.random() < 0.5 else O(**{f: "null"})
        if reason == "duplicate_field":
            f = r.choice(ref.FIELDS)
            keys = ref.FIELD_KEYS[f]
            line = self.render(t, alias=0, shuffle=False, extra=[])
            second = r.choice(keys)
            again = jstr(getattr(t, {"transaction_id": "tid", "wallet_id": "wallet", "product_id": "product",
                                     "type": "type", "currency": "currency"}.get(f, "type")))
            if f == "amount":
                again = "1.00"
            if f == "timestamp":
                again = '"2024-05-11T12:50:00Z"'
            return line[:-1] + (', %s: %s}' % (jstr(second), again)).encode()
        if reason == "invalid_field":
            f = r.choice(("transaction_id", "wallet_id", "product_id"))
            bad = r.choice(['""', jstr("x" * 257), jstr("é" * 128 + "x"), '"a\\tb"', '"a\\u0000b"',
                            '"a\\u007fb"', '"a\\u0085b"', '"a\\u001fb"', '"\\ud800"', '"x\\udc00y"',
                            "17", "true", '["a"]', '{"id": "a"}', "1.5",
                            '"\u0085c1-raw"', '"del\x7fraw"'])
            return O(**{f: bad})
        if reason == "invalid_type":
            return O(type=r.choice(['"Credit"', '"CREDIT"', '""', "1", '"refund"', '"credit "',
                                    '"cancel_credit"', "true", '["credit"]', '"cancelcredit"']))
        if reason == "invalid_amount":
            return O(amount=r.choice(["-5.00", "-0.01", '"-1"', '"+5"', '".5"', '"5."', '"1e"', '"0x10"',
                                     '"NaN"', '"Infinity"', "true", "false", "[1]", '{"v": 1}', '" 5"',
                                     '"5 "', '""', '"01"', '"1,5"', '"five"', '"-1e-19"', "-1e999999999",
                                     '"١٢"']))
        if reason == "amount_out_of_range":
            return O(amount=r.choice(["0.0000000000000000001", "1.0e-18", "1e-19", "1000000000000000",
                                     "1e15", "1e999999999", '"1e999999999"', "9999999999999999.5",
                                     '"0.1234567890123456789"', "1e-999999999", "0e-19",
                                     "0.0000000000000000000", "123456789012345678e-2",
                                     "1" + "0" * 40, "1E+000000000000000000000000000015"]))
        if reason == "invalid_currency":
            return O(currency=r.choice(['"US"', '"USDT"', '"U$D"', '"12A"', "840", '""', '"ÜSD"',
                                        '" USD"', "true", '["USD"]', '"U\\u0000D"']))
        if reason == "invalid_timestamp":
            return O(timestamp=r.choice([
                '"2024-05-11T24:00:00Z"', '"2024-13-01T00:00:00Z"', '"2024-05-32T00:00:00Z"',
                '"2023-02-29T00:00:00Z"', '"2100-02-29T00:00:00Z"', '"2024-05-11T12:60:00Z"',
                '"2024-05-11T12:50:60Z"', '"2024-05-11T12:50:00+24:00"', '"2024-05-11T12:50:00+05:60"',
                '"2024-05-11T12:50:00.1234567891Z"', '"2024-05-11T12:50:00.Z"', '"1969-12-31T23:59:59Z"',
                '"1970-01-01T00:30:00+01:00"', '"9999-12-31T23:30:00-01:00"', '"0000-01-01T00:00:00Z"',
                "-1", "-0", "1715431800000.5", "1.7e12", "1715431800000e0", "253402300800000",
                "99999999999999999999999", '"1715431800000"', '"11/05/2024"', '"2024-05-11T12:50Z"',
                '"2024-05-11"', '"2024-05-11T12:50:00ZZ"', '"2024-05-11T12:50:00+0200"',
                '"2024-05-11T12:50:00+02"', '"2024-05-11X12:50:00Z"', '"24-05-11T12:50:00Z"',
                '" 2024-05-11T12:50:00Z"', '"2024-05-11T12:50:00Z "', "true", "[1]",
                '"2024-05-11T12:50:00UTC"', '"2024-5-11T12:50:00Z"', '"2024-05-11T1:50:00Z"',
                '"2024-05-11T12:50:00.Z"', '"2024-05-11T12:50:00,5Z"']))
        raise ValueError(reason)

    def _padded(self, t, size):
        """A valid event padded with an unknown field to exactly `size` bytes."""
        line = self.render(t, extra=[("padding", '""')], shuffle=False)
        i = line.rindex(b'""}')
        fill = size - len(line)
        assert fill >= 0
        return line[:i] + b'"' + b"p" * fill + line[i + 1:]

    # -- streams ---------------------------------------------------------

    FAULTS = ("invalid_json", "not_an_object", "message_too_large", "missing_field",
              "duplicate_field", "invalid_field", "invalid_type", "invalid_amount",
              "amount_out_of_range", "invalid_currency", "invalid_timestamp")

    def line(self):
        """One random line."""
        r = self.rng
        x = r.random()
        if x < 0.005:
            return r.choice([b"", b"  ", b"\t"])
        if x < 0.05 and self.emitted:          # exact or rewritten duplicate
            t = r.choice(self.emitted[-2000:])
            return self.render(t)
        if x < 0.07 and self.emitted:          # conflicting duplicate
            t = r.choice(self.emitted[-2000:])
            c = ValidTxn(t.tid, t.wallet, t.product, t.type, t.units, t.scale, t.currency, t.instant)
            what = r.randint(0, 5)
            if what == 0:
                step = 10 ** (18 - t.scale)
                c.units += step if c.units < step else -step
            elif what == 1:
                c.type = "debit" if t.type != "debit" else "credit"
            elif what == 2:
                c.product = r.choice(self.products)
            elif what == 3:
                c.instant = (t.instant[0], (t.instant[1] + 1) % 1000000000)
            elif what == 4:
                c.wallet = r.choice(self.wallets)
                c.currency = self.home[c.wallet]
            else:
                c.currency = "XXX"
            return self.render(c)
        if x < 0.09:                           # currency mismatch
            t = self.valid_txn()
            t.currency = r.choice([c for c in CURRENCIES if c != t.currency])
            return self.render(t)
        if x < 0.2:
            reason = r.choice(self.FAULTS)
            if reason == "message_too_large":
                if self.big_budget <= 0:
                    reason = "invalid_json"
                self.big_budget -= 1
            return self.fault(reason)
        if x < 0.2005 and self.big_budget > 0:  # exactly 64 KiB: still accepted
            self.big_budget -= 1
            t = self.valid_txn()
            self.emitted.append(t)
            return self._padded(t, ref.MAX_RECORD)
        t = self.valid_txn()
        self.emitted.append(t)
        return self.render(t)

    def lines(self, n):
        return [self.line() for _ in range(n)]


def overflow_lines(wallet, product, n, type_="credit", tid_prefix="o", currency="USD",
                   timestamp='"2024-05-11T12:50:00Z"'):
    """n events of the largest amount into one wallet: 170141 fit under 2**127
    units of 1e-18, the 170142nd overflows. Compact, to keep files small."""
    head = '{"transaction_id":"%s' % tid_prefix
    tail = '","wallet_id":%s,"product_id":%s,"type":"%s","amount":%s,"currency":"%s","timestamp":%s}' % (
        jstr(wallet), jstr(product), type_, MAX_AMOUNT_TEXT, currency, timestamp)
    return [(head + str(i) + tail).encode("utf-8") for i in range(1, n + 1)]


def generate(seed, count, n_wallets=None, n_products=None, max_big=40):
    """`count` lines from a generator seeded with `seed`."""
    n_wallets = n_wallets or max(5, min(400, count // 30))
    n_products = n_products or max(3, min(120, count // 100))
    return Generator(seed, n_wallets, n_products, max_big).lines(count)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=10000)
    a = ap.parse_args(argv[1:])
    out = sys.stdout.buffer
    for line in generate(a.seed, a.count):
        out.write(line + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
