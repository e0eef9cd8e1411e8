#!/usr/bin/env python3
"""Independent reference model of SPEC.md §2-§4 (input rules, outcomes, figures).

Written from the SPEC text, not from the C code, so that the end-to-end tests
compare the binary against a second reading of the contract. Python standard
library only; money is never a float: amounts are integers in units of 1e-18
parsed from the exact JSON number text.

Input: record values as raw bytes (one line of a replay file, without its
newline). Output: the outcome of each record (applied / duplicate / rejected
with a reason code) and the figures as SPEC §5 prints them, numbers kept as
their exact printed text (`Num`).

Decisions where SPEC is terse (each reproduces examples/conformance_*):
- precedence: message_too_large, invalid_json (invalid UTF-8, JSON syntax,
  NaN/Infinity, trailing text), not_an_object, duplicate_field, missing_field
  (absent or null), then per field in the table's order: transaction_id,
  wallet_id, product_id (invalid_field), type (invalid_type), amount
  (invalid_amount, amount_out_of_range), currency (invalid_currency),
  timestamp (invalid_timestamp); then against state: duplicate /
  conflicting_duplicate, currency_mismatch, aggregate_overflow.
- duplicate_field looks at the fields of the table and their aliases only.
- ids: 1-256 bytes of UTF-8 after unescaping, no C0 control, DEL or C1
  control, no lone surrogate (a `\\ud800` escape).
- amount: negative non-zero -> invalid_amount (checked first); scale =
  max(0, fraction digits - exponent) > 18 or integer digits (leading zeros
  ignored) > 15 -> amount_out_of_range.
- timestamp: `T`/`t`/space separator; `Z`/`z`, +-HH:MM (HH<=23, MM<=59) or
  nothing (UTC); seconds 00-59; 1-9 fraction digits; the UTC instant must lie
  in 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z. An integer is
  epoch milliseconds: plain non-negative integer token only.
- aggregates (balance, total_debit) are signed 128-bit integers of 1e-18.
"""

import json
import re
import sys

MAX_RECORD = 64 * 1024
UNIT_DIGITS = 18
UNIT = 10 ** UNIT_DIGITS
AGG_MIN = -(2 ** 127)
AGG_MAX = 2 ** 127 - 1
MAX_SCALE = 18
MAX_INT_DIGITS = 15
TOP_N = 5

TYPES = ("credit", "debit", "cancelCredit", "cancelDebit")
SIGN = {"credit": 1, "cancelDebit": 1, "debit": -1, "cancelCredit": -1}

# canonical field -> accepted keys (canonical first)
FIELD_KEYS = {
    "transaction_id": ("transaction_id", "transactionID", "transactionId"),
    "wallet_id": ("wallet_id", "walletID", "walletId"),
    "product_id": ("product_id", "productID", "productId"),
    "type": ("type",),
    "amount": ("amount",),
    "currency": ("currency",),
    "timestamp": ("timestamp",),
}
FIELDS = tuple(FIELD_KEYS)
KEY_TO_FIELD = {k: f for f, ks in FIELD_KEYS.items() for k in ks}

REASONS = (
    "invalid_json", "not_an_object", "message_too_large", "missing_field",
    "duplicate_field", "invalid_field", "invalid_type", "invalid_amount",
    "amount_out_of_range", "invalid_currency", "invalid_timestamp",
    "currency_mismatch", "conflicting_duplicate", "aggregate_overflow",
)

# -------------------------------------------------------------------------
# JSON values with exact number text


class Num:
    """A JSON number kept as its exact text (parsed or to be printed)."""
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Num) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return "Num(%s)" % self.text


class Obj:
    """A JSON object as its list of (key, value) pairs, duplicates kept."""
    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


class _Reject(Exception):
    pass


def _reject_constant(name):
    raise _Reject(name)


_DECODER = json.JSONDecoder(object_pairs_hook=Obj, parse_float=Num,
                            parse_int=Num, parse_constant=_reject_constant,
                            strict=True)


def parse_json_bytes(raw):
    """Strict JSON text parse of bytes. Returns the value or raises ValueError."""
    try:
        text = raw.decode("utf-8")  # strict: no overlong, no surrogates
    except UnicodeDecodeError as e:
        raise ValueError("invalid UTF-8: %s" % e)
    try:
        # json.loads would accept a leading BOM error message; decode() does
        # the same checks. Whitespace around the value is allowed by JSON.
        return _DECODER.decode(text)
    except (_Reject, RecursionError) as e:
        raise ValueError("invalid JSON: %r" % (e,))
    except json.JSONDecodeError as e:
        raise ValueError("invalid JSON: %s" % e)


_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NUMBER = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?)([0-9]+))?\Z")
_CURRENCY = re.compile(r"[A-Za-z]{3}\Z")
_INTEGER = re.compile(r"(0|[1-9][0-9]*)\Z")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})?\Z")

# -------------------------------------------------------------------------
# Calendar (proleptic Gregorian, Howard Hinnant's algorithms)


def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return (y + (m <= 2), m, d)


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_month(y, m):
    if m == 2:
        return 29 if is_leap(y) else 28
    return 30 if m in (4, 6, 9, 11) else 31


MIN_SEC = 0
MAX_SEC = days_from_civil(10000, 1, 1) * 86400 - 1  # 9999-12-31T23:59:59
MAX_EPOCH_MS = MAX_SEC * 1000 + 999


def parse_rfc3339(s):
    """Return (sec, nsec) of the UTC instant, or None if invalid per SPEC."""
    m = _RFC3339.match(s)
    if not m:
        return None
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    frac, off = m.group(7), m.group(8)
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo)):
        return None
    if h > 23 or mi > 59 or se > 59:
        return None
    offset = 0
    if off and off not in ("Z", "z"):
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (1 if off[0] == "+" else -1)
    sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset
    nsec = int((frac or "").ljust(9, "0")) if frac else 0
    if sec < MIN_SEC or sec > MAX_SEC:
        return None
    return (sec, nsec)


def format_instant(inst):
    """RFC 3339 UTC text with Z; fraction printed only if non-zero."""
    sec, nsec = inst
    days, rem = divmod(sec, 86400)
    y, m, d = civil_from_days(days)
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, m, d, rem // 3600, rem // 60 % 60, rem % 60)
    if nsec:
        text += "." + ("%09d" % nsec).rstrip("0")
    return text + "Z"


def format_day(day):
    return "%04d-%02d-%02d" % civil_from_days(day)


_RESPONSE_TS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?Z\Z")


def parse_response_instant(s):
    """Parse a timestamp as the API must print it (UTC, `T`, `Z`, any number
    of fraction digits). Returns (sec, nsec) or None."""
    if not isinstance(s, str):
        return None
    m = _RESPONSE_TS.match(s)
    if not m:
        return None
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo)) or h > 23 or mi > 59 or se > 59:
        return None
    frac = m.group(7) or ""
    if len(frac) > 9 and frac[9:].strip("0"):
        return None  # finer than a nanosecond: not an instant we can hold
    nsec = int(frac[:9].ljust(9, "0")) if frac else 0
    return (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se, nsec)


# -------------------------------------------------------------------------
# Amounts


class Amount:
    __slots__ = ("units", "scale")

    def __init__(self, units, scale):
        self.units = units  # integer, units of 1e-18
        self.scale = scale  # fractional digits as written (after exponent)

    def text(self):
        return format_units(self.units, self.scale)


def parse_amount_text(text):
    """Amount from JSON number text. Returns Amount or a reason string."""
    m = _NUMBER.match(text)
    if not m:
        return "invalid_amount"
    neg, ip, fp, esign, edigits = m.groups()
    fp = fp or ""
    digits = ip + fp
    sig = digits.lstrip("0")
    # exponent without converting a huge digit string (constant time)
    if edigits is None:
        exp = 0
    else:
        e = edigits.lstrip("0")
        if len(e) > 12:
            exp = 10 ** 13  # beyond any meaningful magnitude
        else:
            exp = int(e) if e else 0
        if esign == "-":
            exp = -exp
    if neg and sig:
        return "invalid_amount"
    scale = max(0, len(fp) - exp)
    if scale > MAX_SCALE:
        return "amount_out_of_range"
    if not sig:
        return Amount(0, scale)
    int_digits = len(sig) - len(fp) + exp
    if int_digits > MAX_INT_DIGITS:
        return "amount_out_of_range"
    # value = int(sig) * 10**(exp - len(fp)); in units: * 10**18
    shift = exp - len(fp) + UNIT_DIGITS
    assert shift >= 0 and len(sig) <= 40
    return Amount(int(sig) * 10 ** shift, scale)


def format_units(units, scale):
    """Exact decimal text of units (1e-18) with `scale` fraction digits."""
    q, r = divmod(abs(units), 10 ** (UNIT_DIGITS - scale))
    assert r == 0, "value has more digits than its scale"
    s = str(q)
    if scale:
        s = s.rjust(scale + 1, "0")
        s = s[:-scale] + "." + s[-scale:]
    if units < 0:
        s = "-" + s
    return s


def div_half_even(n, d):
    """round(n / d) half to even, d > 0, exact integers."""
    q, r = divmod(n, d)  # floor
    twice = 2 * r
    if twice > d or (twice == d and q % 2 == 1):
        q += 1
    return q


def format_average(total_units, days, scale):
    micro = div_half_even(total_units, days * 10 ** (UNIT_DIGITS - 6))
    digits = 6
    while digits > scale and micro % 10 == 0:
        micro //= 10
        digits -= 1
    neg = micro < 0
    s = str(abs(micro))
    if digits:
        s = s.rjust(digits + 1, "0")
        s = s[:-digits] + "." + s[-digits:]
    return ("-" + s) if neg else s


# -------------------------------------------------------------------------
# Decoding one record


class Txn:
    __slots__ = ("tid", "wallet", "product", "type", "amount", "currency", "instant")

    def content(self):
        return (self.wallet, self.product, self.type, self.amount.units,
                self.currency, self.instant)


class Rejection:
    __slots__ = ("reason", "field")

    def __init__(self, reason, field=None):
        self.reason = reason
        self.field = field  # the field concerned, when there is one


def _check_id(v):
    if not isinstance(v, str) or _SURROGATE.search(v) or _CONTROL.search(v):
        return None
    n = len(v.encode("utf-8"))
    if n < 1 or n > 256:
        return None
    return v


def id_is_valid(v):
    """SPEC §2 id rule on a decoded Python string (used for URL ids too)."""
    return _check_id(v) is not None


def decode(raw):
    """bytes -> Txn or Rejection (everything that needs no state)."""
    if len(raw) > MAX_RECORD:
        return Rejection("message_too_large")
    try:
        doc = parse_json_bytes(raw)
    except ValueError:
        return Rejection("invalid_json")
    if not isinstance(doc, Obj):
        return Rejection("not_an_object")
    found = {}
    for k, v in doc.pairs:
        f = KEY_TO_FIELD.get(k)
        if f is None:
            continue
        if f in found:
            return Rejection("duplicate_field", f)
        found[f] = v
    for f in FIELDS:
        if found.get(f) is None:
            return Rejection("missing_field", f)
    t = Txn()
    for f in ("transaction_id", "wallet_id", "product_id"):
        v = _check_id(found[f])
        if v is None:
            return Rejection("invalid_field", f)
        setattr(t, {"transaction_id": "tid", "wallet_id": "wallet", "product_id": "product"}[f], v)
    ty = found["type"]
    if not isinstance(ty, str) or ty not in TYPES:
        return Rejection("invalid_type", "type")
    t.type = ty
    a = found["amount"]
    if isinstance(a, Num):
        amt = parse_amount_text(a.text)
    elif isinstance(a, str):
        amt = parse_amount_text(a) if a.isascii() else "invalid_amount"
    else:
        amt = "invalid_amount"
    if isinstance(amt, str):
        return Rejection(amt, "amount")
    t.amount = amt
    c = found["currency"]
    if not isinstance(c, str) or not _CURRENCY.match(c):
        return Rejection("invalid_currency", "currency")
    t.currency = c.upper()
    ts = found["timestamp"]
    inst = None
    if isinstance(ts, Num):
        if _INTEGER.match(ts.text) and len(ts.text) <= 16:
            ms = int(ts.text)
            if ms <= MAX_EPOCH_MS:
                inst = (ms // 1000, ms % 1000 * 1000000)
    elif isinstance(ts, str):
        inst = parse_rfc3339(ts)
    if inst is None:
        return Rejection("invalid_timestamp", "timestamp")
    t.instant = inst
    return t


# -------------------------------------------------------------------------
# State and figures


class Wallet:
    __slots__ = ("currency", "scale", "balance", "total_debit", "count",
                 "last_event", "first_day", "last_day", "debit_days", "lines")

    def __init__(self, currency):
        self.currency = currency
        self.scale = 0
        self.balance = 0
        self.total_debit = 0
        self.count = 0
        self.last_event = None
        self.first_day = None
        self.last_day = None
        self.debit_days = set()
        self.lines = []     # statement: (Txn, balance after, scale, source)


class Outcome:
    __slots__ = ("outcome", "reason", "field")

    def __init__(self, outcome, reason=None, field=None):
        self.outcome = outcome
        self.reason = reason
        self.field = field

    def __repr__(self):
        return "Outcome(%s%s)" % (self.outcome, ", " + self.reason if self.reason else "")


APPLIED = Outcome("applied")
DUPLICATE = Outcome("duplicate")


def is_blank(line):
    return line.strip(b" \t\r") == b""


class Model:
    def __init__(self):
        self.wallets = {}
        self.products = {}  # product -> {currency -> sorted list of entries}
        self.seen = {}      # tid -> content of the applied transaction
        self.counts = {"records": 0, "applied": 0, "duplicate": 0, "rejected": 0}

    # -- processing -------------------------------------------------------

    def process(self, raw, src=None):
        """Process one record value (bytes) read from src (partition,
        offset), or None. Returns its Outcome."""
        self.counts["records"] += 1
        self._src = src
        o = self._process(raw)
        self.counts[o.outcome] += 1
        return o

    def _process(self, raw):
        t = decode(raw)
        if isinstance(t, Rejection):
            return Outcome("rejected", t.reason, t.field)
        prev = self.seen.get(t.tid)
        if prev is not None:
            if prev == t.content():
                return DUPLICATE
            return Outcome("rejected", "conflicting_duplicate")
        w = self.wallets.get(t.wallet)
        if w is not None and w.currency != t.currency:
            return Outcome("rejected", "currency_mismatch")
        units = t.amount.units
        bal = (w.balance if w else 0) + SIGN[t.type] * units
        td = w.total_debit if w else 0
        if t.type == "debit":
            td += units
        elif t.type == "cancelDebit":
            td -= units
        if not (AGG_MIN <= bal <= AGG_MAX and AGG_MIN <= td <= AGG_MAX):
            return Outcome("rejected", "aggregate_overflow")
        if w is None:
            w = self.wallets[t.wallet] = Wallet(t.currency)
        w.balance, w.total_debit = bal, td
        w.scale = max(w.scale, t.amount.scale)
        w.count += 1
        if w.last_event is None or t.instant > w.last_event:
            w.last_event = t.instant
        day = t.instant[0] // 86400
        if w.first_day is None or day < w.first_day:
            w.first_day = day
        if w.last_day is None or day > w.last_day:
            w.last_day = day
        if t.type in ("debit", "cancelDebit"):
            w.debit_days.add(day)
        w.lines.append((t, bal, w.scale, self._src))
        tops = self.products.setdefault(t.product, {})
        if t.type == "credit":
            lst = tops.setdefault(t.currency, [])
            key = (-units, t.instant, t.tid.encode("utf-8"))
            if len(lst) < TOP_N or key < lst[-1][0]:
                lst.append((key, t))
                lst.sort(key=lambda e: e[0])
                del lst[TOP_N:]
        self.seen[t.tid] = t.content()
        return APPLIED

    def process_lines(self, lines, file_index=None):
        """Process replay lines (bytes, no newline) of the replay's file
        number file_index (their source: that and the line number).
        Returns a list with one entry per line: an Outcome, or None for a
        blank (skipped) line."""
        out = []
        for i, line in enumerate(lines):
            src = None if file_index is None else (file_index, i + 1)
            out.append(None if is_blank(line) else self.process(line, src))
        return out

    def statement(self, wallet_id):
        """GET /wallets/{id}/transactions's lines, newest first, all of
        them (partition and offset only where the source is known)."""
        w = self.wallets.get(wallet_id)
        if w is None:
            return None
        out = []
        for seq, (t, bal, scale, src) in enumerate(w.lines, 1):
            line = {
                "seq": Num(str(seq)),
                "transaction_id": t.tid,
                "type": t.type,
                "product_id": t.product,
                "amount": Num(format_units(t.amount.units, t.amount.scale)),
                "timestamp": format_instant(t.instant),
                "balance_after": Num(format_units(bal, scale)),
            }
            if src is not None:
                line["partition"] = Num(str(src[0]))
                line["offset"] = Num(str(src[1]))
            out.append(line)
        out.reverse()
        return out

    # -- figures, as SPEC §5 prints them ---------------------------------

    def balance(self, wallet_id):
        w = self.wallets.get(wallet_id)
        if w is None:
            return None
        return {
            "wallet_id": wallet_id,
            "balance": Num(format_units(w.balance, w.scale)),
            "currency": w.currency,
            "transactions": Num(str(w.count)),
            "last_event_time": format_instant(w.last_event),
        }

    def average_daily_debit(self, wallet_id):
        w = self.wallets.get(wallet_id)
        if w is None:
            return None
        days = w.last_day - w.first_day + 1
        return {
            "wallet_id": wallet_id,
            "currency": w.currency,
            "average_daily_debit": Num(format_average(w.total_debit, days, w.scale)),
            "total_debit": Num(format_units(w.total_debit, w.scale)),
            "days": Num(str(days)),
            "debit_days": Num(str(len(w.debit_days))),
            "first_day": format_day(w.first_day),
            "last_day": format_day(w.last_day),
        }

    def top_credits(self, product_id, currency=None):
        tops = self.products.get(product_id)
        if tops is None:
            return None
        entries = []
        for cur in sorted(tops):
            if currency is not None and cur != currency:
                continue
            for _, t in tops[cur]:
                entries.append({
                    "transaction_id": t.tid,
                    "wallet_id": t.wallet,
                    "amount": Num(t.amount.text()),
                    "currency": cur,
                    "timestamp": format_instant(t.instant),
                })
        return {"product_id": product_id, "top_credits": entries}

    def currencies_of_product(self, product_id):
        return sorted(self.products.get(product_id, {}))


def run(lines):
    """Convenience: a fresh Model fed with lines. Returns (model, outcomes)."""
    m = Model()
    return m, m.process_lines(lines)


def split_lines(data):
    """Split file bytes into lines the way replay reads them."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


# -------------------------------------------------------------------------
# Rendering and comparing responses

INSTANT_KEYS = ("last_event_time", "timestamp")


def render(v):
    """Compact JSON text of a response value (Num printed as its text)."""
    if isinstance(v, Num):
        return v.text
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k) + ":" + render(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(render(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def parse_response(body):
    """Parse a response body (bytes or str) keeping number text."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return json.loads(body, parse_float=Num, parse_int=Num)


def compare(expected, actual, path="$"):
    """Differences between an expected response (Num for numbers) and an
    actual one parsed with parse_response. Numbers compare by printed text
    (which implies equal value); timestamps under INSTANT_KEYS compare as
    instants. Returns a list of human-readable differences."""
    diffs = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return ["%s: expected an object, got %r" % (path, actual)]
        for k in expected:
            if k not in actual:
                diffs.append("%s.%s: missing" % (path, k))
                continue
            if k in INSTANT_KEYS and isinstance(expected[k], str):
                ei, ai = parse_response_instant(expected[k]), parse_response_instant(actual[k])
                if ai is None or ei != ai:
                    diffs.append("%s.%s: expected instant %s, got %r" % (path, k, expected[k], actual[k]))
                continue
            diffs.extend(compare(expected[k], actual[k], "%s.%s" % (path, k)))
        for k in actual:
            if k not in expected:
                diffs.append("%s.%s: unexpected field" % (path, k))
        return diffs
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return ["%s: expected a list, got %r" % (path, actual)]
        if len(expected) != len(actual):
            diffs.append("%s: expected %d entries, got %d" % (path, len(expected), len(actual)))
        for i, (e, a) in enumerate(zip(expected, actual)):
            diffs.extend(compare(e, a, "%s[%d]" % (path, i)))
        return diffs
    if isinstance(expected, Num):
        if not isinstance(actual, Num):
            return ["%s: expected number %s, got %r" % (path, expected.text, actual)]
        if expected.text != actual.text:
            return ["%s: expected %s, got %s" % (path, expected.text, actual.text)]
        return []
    if expected != actual:
        return ["%s: expected %r, got %r" % (path, expected, actual)]
    return []


# -------------------------------------------------------------------------
# Self-test against the SPEC's examples

def _examples_dir():
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.environ.get("WALLETSTREAM_EXAMPLES"),
                 os.path.join(here, "..", "..", "examples"),
                 os.path.join(here, "..", "..", "..", "shared", "examples"),  # SPEC's own, beside the repo
                 "/work/shared/examples",
                 os.path.join(here, "..", "..", "examples")):  # the repository's copy
        if cand and os.path.isdir(cand):
            return os.path.abspath(cand)
    raise FileNotFoundError("examples directory not found (set WALLETSTREAM_EXAMPLES)")


def figures_of(expected_doc):
    """Yield (route, key, expected) from an examples/*_expected.json."""
    for w, v in expected_doc["balance"].items():
        yield "balance", w, v
    for w, v in expected_doc["average_daily_debit"].items():
        yield "average_daily_debit", w, v
    for p, v in expected_doc["top_credits"].items():
        yield "top_credits", p, v


def model_figure(model, route, key):
    return {"balance": model.balance,
            "average_daily_debit": model.average_daily_debit,
            "top_credits": model.top_credits}[route](key)


def selftest():
    """Check the model against the SPEC's examples. Returns a list of errors."""
    import os
    ex = _examples_dir()
    errors = []
    for inp, exp in (("seed_transactions.jsonl", "seed_expected.json"),
                     ("conformance_input.jsonl", "conformance_expected.json")):
        with open(os.path.join(ex, inp), "rb") as f:
            lines = split_lines(f.read())
        model, outcomes = run(lines)
        with open(os.path.join(ex, exp), "rb") as f:
            doc = parse_response(f.read())
        for route, key, want in figures_of(doc):
            got = model_figure(model, route, key)
            if got is None:
                errors.append("%s: %s/%s missing in model" % (exp, route, key))
                continue
            # the model's figures are the "actual" side here
            for d in compare(want, got):
                errors.append("%s %s/%s: %s" % (exp, route, key, d))
        n_exp = sum(1 for _ in figures_of(doc))
        n_model = len(model.wallets) * 2 + len(model.products)
        if n_exp != n_model:
            errors.append("%s: %d figures expected, model has %d" % (exp, n_exp, n_model))
        if inp == "seed_transactions.jsonl":
            if any(o.outcome != "applied" for o in outcomes):
                errors.append("seed: not every line applied: %r" % outcomes)
        else:
            with open(os.path.join(ex, "conformance_outcomes.jsonl"), "rb") as f:
                want_out = [json.loads(l) for l in f.read().splitlines() if l.strip()]
            if len(want_out) != len(outcomes):
                errors.append("conformance: %d outcomes expected, model has %d" % (len(want_out), len(outcomes)))
            for w in want_out:
                o = outcomes[w["line"] - 1]
                if o is None or o.outcome != w["outcome"] or o.reason != w.get("reason"):
                    errors.append("conformance line %d (%s): expected %s/%s, model %r" % (
                        w["line"], w["case"], w["outcome"], w.get("reason"), o))
    return errors


def main(argv):
    if len(argv) > 1 and argv[1] != "--selftest":
        model = Model()
        for path in argv[1:]:
            with open(path, "rb") as f:
                for i, o in enumerate(model.process_lines(split_lines(f.read())), 1):
                    if o is not None:
                        print("%s:%d %s %s" % (path, i, o.outcome, o.reason or ""))
        for w in sorted(model.wallets):
            print(render(model.balance(w)))
            print(render(model.average_daily_debit(w)))
        for p in sorted(model.products):
            print(render(model.top_credits(p)))
        return 0
    errs = selftest()
    for e in errs:
        print(e)
    print("reference selftest: %s" % ("OK" if not errs else "%d errors" % len(errs)))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
