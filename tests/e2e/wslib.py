"""Shared helpers for walletstream's end-to-end tests (Python 3 stdlib only).

- paths: the repository, the binary (`WALLETSTREAM_BIN`, default
  build/walletstream), the SPEC's examples;
- a tiny test registry and runner: `@test` functions, one `PASS name` or
  `FAIL name: reason` line each, then exactly one `N passed, M failed` line,
  exit status 1 when any failed (`python3 test_x.py [name-substring ...]`);
- processes: `replay()`, `Server` (`serve` on a free port, ready when
  `/readyz` answers 200, stopped with SIGTERM and its exit status checked),
  `stop_process()` with a deadline and kill -9 on timeout;
- HTTP: `Http` (keep-alive client) and `http_request()`, both returning
  (status, headers, body bytes);
- temporary data directories removed at exit (kept with WS_E2E_KEEP=1);
- exact comparisons of API answers and dead letters against reference.py.

Every wait polls a condition against a deadline; nothing sleeps a guessed time.
"""

import base64
import decimal
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import reference as ref  # noqa: E402
import gen_events  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

# Deadlines, generous because the binary may run under AddressSanitizer.
READY_TIMEOUT = float(os.environ.get("WS_E2E_READY_TIMEOUT", "30"))
STOP_TIMEOUT = float(os.environ.get("WS_E2E_STOP_TIMEOUT", "20"))
REPLAY_TIMEOUT = float(os.environ.get("WS_E2E_REPLAY_TIMEOUT", "300"))
HTTP_TIMEOUT = float(os.environ.get("WS_E2E_HTTP_TIMEOUT", "15"))
POLL_INTERVAL = 0.01

SUMMARY_RE = re.compile(r"replayed (\d+) records: (\d+) applied, (\d+) duplicate, (\d+) rejected")


# -------------------------------------------------------------------------
# Paths

def binary():
    """Absolute path of the walletstream binary under test."""
    p = os.environ.get("WALLETSTREAM_BIN", "build/walletstream")
    return p if os.path.isabs(p) else os.path.join(REPO, p)


def examples_dir():
    return ref._examples_dir()


def example(name):
    return os.path.join(examples_dir(), name)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-* packages live


def use_system_python_for(*modules):
    """Make `modules` importable: when the running interpreter (e.g. a pyenv
    one) lacks one of them, re-run this script under Debian's python3,
    where scripts/install-deps put python3-selenium, python3-jsonschema.
    Call at import time, before any test runs."""
    import importlib.util
    if all(importlib.util.find_spec(m) for m in modules):
        return
    if os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON) and os.path.exists(SYSTEM_PYTHON):
        sys.stdout.flush()
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)


# -------------------------------------------------------------------------
# Test registry and runner

class Fail(Exception):
    """A test failure with a one-line reason."""


class Skip(Exception):
    """Raised by a test that cannot run here and is allowed not to (printed
    as `SKIP name: reason`, counted neither passed nor failed)."""


_TESTS = []


def test(fn):
    """Register a test function (runs in definition order)."""
    _TESTS.append(fn)
    return fn


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def check_eq(expected, actual, what):
    if expected != actual:
        raise Fail("%s: expected %r, got %r" % (what, expected, actual))


def check_no_diffs(diffs, what, limit=8):
    """Fail listing at most `limit` differences (and how many there were)."""
    if diffs:
        more = "" if len(diffs) <= limit else " (and %d more)" % (len(diffs) - limit)
        raise Fail("%s: %d differences: %s%s" % (what, len(diffs), "; ".join(diffs[:limit]), more))


def require_binary():
    b = binary()
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise Fail("binary %s not found: build it with `make` (or set WALLETSTREAM_BIN)" % b)
    return b


def log(msg):
    """Progress note on stderr (stdout carries only the PASS/FAIL lines)."""
    sys.stderr.write("  %s\n" % msg)
    sys.stderr.flush()


def main(argv=None):
    """Run the registered tests (those whose name contains one of the
    arguments, if any). Prints one line per test and the summary last."""
    argv = sys.argv[1:] if argv is None else argv
    selected = [t for t in _TESTS if not argv or any(a in t.__name__ for a in argv)]
    passed = failed = 0
    _catch_termination()
    try:
        for t in selected:
            t0 = time.monotonic()
            try:
                t()
            except Skip as e:  # counted neither way (see Skip)
                print("SKIP %s: %s" % (t.__name__, _one_line(str(e))), flush=True)
            except Fail as e:
                failed += 1
                print("FAIL %s: %s" % (t.__name__, _one_line(str(e))), flush=True)
            except Exception as e:  # a bug in the test or an unexpected answer
                failed += 1
                tb = traceback.extract_tb(e.__traceback__)[-1]
                print("FAIL %s: %s: %s (at %s:%d)" % (t.__name__, type(e).__name__, _one_line(str(e)),
                                                     os.path.basename(tb.filename), tb.lineno), flush=True)
                if os.environ.get("WS_E2E_VERBOSE"):
                    traceback.print_exc()
            else:
                passed += 1
                print("PASS %s" % t.__name__, flush=True)
            finally:
                _run_cleanups(_CLEANUPS)
                _cleanup_procs()
            if os.environ.get("WS_E2E_VERBOSE"):
                log("%s took %.2f s" % (t.__name__, time.monotonic() - t0))
    finally:  # also on Ctrl-C or SIGTERM
        _run_cleanups(_CLEANUPS)
        _cleanup_procs()
        _run_cleanups(_SHARED_CLEANUPS)
        _cleanup_procs(_SHARED_PROCS)
        _cleanup_dirs()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed or not selected else 0)


def _one_line(s):
    s = " ".join(s.split())
    return s if len(s) <= 2000 else s[:2000] + "..."


# -------------------------------------------------------------------------
# Temporary directories

_DIRS = []


def tempdir(prefix="ws-e2e-"):
    """A fresh temporary directory, removed when the test script ends."""
    d = tempfile.mkdtemp(prefix=prefix)
    _DIRS.append(d)
    return d


def data_dir():
    """A path for a fresh data directory (not created: the binary creates it)."""
    return os.path.join(tempdir(), "data")


def event(tid, wallet, product, type_, amount, currency="USD", ts="2024-05-11T12:50:00Z"):
    """One record value (bytes). `amount` is the raw JSON token ("5.00" is a
    number, '"5.00"' a string); `ts` a string, or an int for epoch millis."""
    return ('{"transaction_id":%s,"wallet_id":%s,"product_id":%s,"type":"%s","amount":%s,'
            '"currency":"%s","timestamp":%s}' % (
                json.dumps(tid, ensure_ascii=False), json.dumps(wallet, ensure_ascii=False),
                json.dumps(product, ensure_ascii=False), type_, amount, currency,
                ts if isinstance(ts, int) else json.dumps(ts))).encode("utf-8")


def write_lines(path, lines, final_newline=True):
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))
        if final_newline and lines:
            f.write(b"\n")
    return path


def _cleanup_dirs():
    if os.environ.get("WS_E2E_KEEP"):
        if _DIRS:
            log("kept temporary directories: %s" % " ".join(_DIRS))
        return
    for d in _DIRS:
        shutil.rmtree(d, ignore_errors=True)
    _DIRS.clear()


def snapshot_dir(path):
    """{relative path: bytes or '<dir>'} of everything under path."""
    snap = {}
    for root, dirs, files in os.walk(path):
        for d in dirs:
            snap[os.path.relpath(os.path.join(root, d), path)] = "<dir>"
        for f in files:
            p = os.path.join(root, f)
            snap[os.path.relpath(p, path)] = read_bytes(p)
    return snap


# -------------------------------------------------------------------------
# Processes

_PROCS = []         # killed at the end of each test
_SHARED_PROCS = []  # shared by the tests of a script: killed at its end


_CLEANUPS = []         # callables run at the end of each test (last first)
_SHARED_CLEANUPS = []  # callables run at the end of the script


def on_cleanup(fn, shared=False):
    """Run fn() when the test ends (shared: when the script ends), pass or
    fail, before the processes of the test are killed. For things that are
    not a Popen of ours, such as a detached Kafka broker."""
    (_SHARED_CLEANUPS if shared else _CLEANUPS).append(fn)
    return fn


def _run_cleanups(fns):
    while fns:
        fn = fns.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning up
            log("cleanup %s failed: %s" % (getattr(fn, "__name__", fn), e))


def _catch_termination():
    """SIGTERM/SIGHUP end the script like Ctrl-C, so that finally blocks and
    atexit cleanups (detached brokers) still run."""
    def _raise(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, _raise)
        except (ValueError, OSError):
            pass


def _cleanup_procs(procs=_PROCS):
    """Kill what a test left running (only processes this module started)."""
    while procs:
        p = procs.pop()
        if p.poll() is None:
            p.kill()
            p.wait()


def stop_process(proc, timeout=STOP_TIMEOUT, sig=signal.SIGTERM):
    """Send `sig`, wait up to `timeout`; on timeout kill -9 and Fail.
    Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise Fail("process %d did not exit within %.0f s of signal %d (killed)" % (proc.pid, timeout, sig))
    for procs in (_PROCS, _SHARED_PROCS):
        if proc in procs:
            procs.remove(proc)
    return rc


def spawn(args, shared=False, **kw):
    """Popen killed at the end of the test (shared: of the script) if it is
    still running then."""
    p = subprocess.Popen(args, **kw)
    (_SHARED_PROCS if shared else _PROCS).append(p)
    return p


class ReplayResult:
    def __init__(self, rc, stdout, stderr):
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        m = SUMMARY_RE.search(stdout.decode("utf-8", "replace"))
        self.counts = None
        if m:
            n, a, d, r = (int(x) for x in m.groups())
            self.counts = {"records": n, "applied": a, "duplicate": d, "rejected": r}

    def describe(self):
        return "exit %s, stdout %r, stderr %r" % (self.rc, self.stdout[-500:], self.stderr[-1500:])


def replay(ddir, files, stdin=None, timeout=REPLAY_TIMEOUT, extra_args=()):
    """Run `walletstream replay --data-dir ddir FILE...`; returns ReplayResult."""
    args = [require_binary(), "replay", "--data-dir", ddir] + list(extra_args) + list(files)
    try:
        p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, stdin=None if stdin is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Fail("replay did not finish within %.0f s: %s" % (timeout, " ".join(args)))
    return ReplayResult(p.returncode, p.stdout, p.stderr)


def replay_ok(ddir, files, expected_counts=None, **kw):
    """replay() that must exit 0 with a summary line (and the given counts)."""
    r = replay(ddir, files, **kw)
    if r.rc != 0:
        raise Fail("replay failed: %s" % r.describe())
    if r.counts is None:
        raise Fail("replay printed no summary line: %s" % r.describe())
    if len(SUMMARY_RE.findall(r.stdout.decode("utf-8", "replace"))) != 1:
        raise Fail("replay printed more than one summary line: %r" % r.stdout[-500:])
    if expected_counts is not None and r.counts != expected_counts:
        raise Fail("replay summary: expected %s, got %s" % (expected_counts, r.counts))
    return r


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what, interval=POLL_INTERVAL):
    """Poll cond() until it returns a true value; Fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class Server:
    """`walletstream serve` on a free loopback port.

        with Server(ddir) as srv:
            status, headers, body = srv.get("/balance/b")
        # leaving the block stops it with SIGTERM and checks exit status 0
    """

    def __init__(self, ddir, extra_args=(), shared=False):
        self.ddir = ddir
        self.shared = shared  # outlives the test that started it
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.http = None
        self.errfile = None

    def start(self):
        last = ""
        for _ in range(3):  # a free port can be taken between pick and bind
            self.port = free_port()
            self.errfile = tempfile.TemporaryFile()
            self.proc = spawn([require_binary(), "serve", "--data-dir", self.ddir,
                               "--listen", "127.0.0.1:%d" % self.port] + self.extra_args,
                              shared=self.shared, stdin=subprocess.DEVNULL, stdout=self.errfile, stderr=self.errfile)
            self.http = Http(self.port)
            if self._wait_ready():
                return self
            last = self.output()
            if "in use" not in last.lower():
                break
        raise Fail("serve exited before it was ready (exit %s): %s" % (self.proc.returncode, last[-1500:]))

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _, _ = http_request(self.port, "GET", "/readyz", timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(POLL_INTERVAL)
        self.proc.kill()
        self.proc.wait()
        raise Fail("serve not ready within %.0f s: %s" % (READY_TIMEOUT, self.output()[-1500:]))

    def output(self):
        if self.errfile is None:
            return ""
        return file_text(self.errfile)

    def stop(self):
        """SIGTERM; returns the exit status (Fail on timeout)."""
        if self.http:
            self.http.close()
        return stop_process(self.proc)

    def stop_ok(self):
        rc = self.stop()
        if rc != 0:
            raise Fail("serve exited %s after SIGTERM (expected 0): %s" % (rc, self.output()[-2000:]))

    def get(self, path, **kw):
        return self.http.request("GET", path, **kw)

    def get_json(self, path):
        """GET; returns (status, parsed body with exact numbers)."""
        status, headers, body = self.get(path)
        try:
            return status, ref.parse_response(body)
        except ValueError:
            raise Fail("GET %s: body is not JSON: %r" % (path, body[:300]))

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop_ok()
        elif self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return False


# -------------------------------------------------------------------------
# HTTP

class Http:
    """Keep-alive HTTP/1.1 client; reconnects once if the server closed."""

    def __init__(self, port, host="127.0.0.1", timeout=HTTP_TIMEOUT):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers as {lower-case name: value}, body bytes)."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
                if resp.will_close:
                    self.close()
                return resp.status, hdrs, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                self.close()
                if attempt:
                    raise


def http_request(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh connection; (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read() if method != "HEAD" else b""
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def quote_id(s):
    """Percent-encode an id as one path segment (UTF-8, everything reserved)."""
    return urllib.parse.quote(s, safe="")


# -------------------------------------------------------------------------
# Comparing the API with the reference model

def check_figure(srv, route, key, expected, query=""):
    """GET /route/key and compare with the expected response (None = 404).
    Returns a list of differences."""
    path = "/%s/%s%s" % (route, quote_id(key), query)
    status, headers, body = srv.get(path)
    if expected is None:
        want = {"balance": "wallet_not_found", "average_daily_debit": "wallet_not_found",
                "top_credits": "product_not_found"}[route]
        if status != 404:
            return ["GET %s: expected 404, got %d %r" % (path, status, body[:200])]
        try:
            err = ref.parse_response(body).get("error")
        except (ValueError, AttributeError):
            err = None
        return [] if err == want else ["GET %s: expected error %s, got %r" % (path, want, body[:200])]
    if status != 200:
        return ["GET %s: expected 200, got %d %r" % (path, status, body[:300])]
    ctype = headers.get("content-type", "")
    diffs = []
    if not ctype.startswith("application/json"):
        diffs.append("GET %s: Content-Type %r" % (path, ctype))
    try:
        got = ref.parse_response(body)
    except ValueError:
        return diffs + ["GET %s: body is not JSON: %r" % (path, body[:300])]
    return diffs + ["GET %s: %s" % (path, d) for d in ref.compare(expected, got)]


def check_all_figures(srv, model, absent_wallets=(), absent_products=()):
    """Compare every wallet's and product's figures (and each currency of a
    product through ?currency=) with the model; absent ids must be 404."""
    diffs = []
    for w in sorted(model.wallets):
        diffs += check_figure(srv, "balance", w, model.balance(w))
        diffs += check_figure(srv, "average_daily_debit", w, model.average_daily_debit(w))
    for p in sorted(model.products):
        diffs += check_figure(srv, "top_credits", p, model.top_credits(p))
        curs = model.currencies_of_product(p)
        if len(curs) > 1:
            for c in curs:
                diffs += check_figure(srv, "top_credits", p, model.top_credits(p, c), "?currency=" + c)
    for w in absent_wallets:
        if w not in model.wallets:
            diffs += check_figure(srv, "balance", w, None)
            diffs += check_figure(srv, "average_daily_debit", w, None)
    for p in absent_products:
        if p not in model.products:
            diffs += check_figure(srv, "top_credits", p, None)
    return diffs


def get_statement(srv, wallet, page=7):
    """Every line of a wallet's statement, newest first, read page by page
    through the cursor. Returns (lines, differences)."""
    lines, diffs, before, pages = [], [], None, 0
    while True:
        path = "/wallets/%s/transactions?limit=%d" % (quote_id(wallet), page)
        if before is not None:
            path += "&before=" + urllib.parse.quote(before, safe="")
        status, _, body = srv.get(path)
        if status != 200:
            return lines, diffs + ["GET %s: %d %r" % (path, status, body[:200])]
        got = ref.parse_response(body)
        if got.get("wallet_id") != wallet:
            diffs.append("GET %s: wallet_id %r" % (path, got.get("wallet_id")))
        txs = got.get("transactions")
        if not isinstance(txs, list) or len(txs) > page:
            return lines, diffs + ["GET %s: transactions %r" % (path, txs)]
        lines += txs
        before = got.get("next")
        pages += 1
        if before is None:
            return lines, diffs
        if not txs or pages > 100000:
            return lines, diffs + ["GET %s: a cursor with no lines" % path]


def check_statements(srv, model, wallets, page=7):
    """Each wallet's statement against the model's: every applied
    transaction, newest first, seq n..1, each balance after equal to the
    one before it plus or minus its amount (and the last the balance).
    Returns a list of differences."""
    diffs = []
    for w in wallets:
        want = model.statement(w)
        if want is None:
            path = "/wallets/%s/transactions" % quote_id(w)
            status, _, body = srv.get(path)
            if status != 404 or b'"wallet_not_found"' not in body:
                diffs.append("GET %s: expected 404 wallet_not_found, got %d %r" % (path, status, body[:200]))
            continue
        lines, d = get_statement(srv, w, page)
        diffs += d
        if len(lines) != len(want):
            diffs.append("statement of %r: %d lines, expected %d" % (w, len(lines), len(want)))
            continue
        diffs += ["statement of %r: %s" % (w, x) for x in ref.compare(want, lines)]
        bal = None
        for line in reversed(lines):
            try:
                amt = decimal.Decimal(line["amount"].text)
                after = decimal.Decimal(line["balance_after"].text)
            except (KeyError, AttributeError, decimal.InvalidOperation) as e:
                diffs.append("statement of %r: %r" % (w, e))
                break
            sign = 1 if line["type"] in ("credit", "cancelDebit") else -1
            exact = decimal.Context(prec=100)   # balances have up to 34 digits
            prev = bal if bal is not None else decimal.Decimal(0)
            if after != (exact.add(prev, amt) if sign > 0 else exact.subtract(prev, amt)):
                diffs.append("statement of %r: seq %s balance_after %s does not follow" % (
                    w, line["seq"].text, line["balance_after"].text))
            bal = after
    return diffs


def check_applied_topic(applied, model, topic, at_least_once=False):
    """<topic>.applied (kcat records) against the model fed the input
    topic with sources: one record per applied input record (at least
    one, all alike but committed_at, when at_least_once), keyed by
    wallet_id, its value the transaction normalised with its source, seq
    and balance after. Returns a list of differences."""
    want = {}
    for w, wl in model.wallets.items():
        for seq, (t, bal, scale, src) in enumerate(wl.lines, 1):
            want["%s/%d/%d" % (topic, src[0], src[1])] = {
                "transaction_id": t.tid, "wallet_id": w, "product_id": t.product, "type": t.type,
                "amount": ref.Num(ref.format_units(t.amount.units, t.amount.scale)),
                "currency": t.currency, "timestamp": ref.format_instant(t.instant),
                "source": "%s/%d/%d" % (topic, src[0], src[1]), "seq": ref.Num(str(seq)),
                "balance_after": ref.Num(ref.format_units(bal, scale))}
    diffs, seen = [], {}
    for r in applied:
        try:
            v = ref.parse_response(r.value or b"")
            src = v["source"]
        except (ValueError, KeyError, TypeError):
            diffs.append("applied %d/%d: value %r" % (r.partition, r.offset, (r.value or b"")[:200]))
            continue
        exp = want.get(src)
        if exp is None:
            diffs.append("applied %d/%d: source %r is not an applied record" % (r.partition, r.offset, src))
            continue
        if r.key != exp["wallet_id"].encode("utf-8"):
            diffs.append("applied %s: key %r" % (src, r.key))
        at = v.pop("committed_at", None)
        if parse_committed_at(at) is None:
            diffs.append("applied %s: committed_at %r" % (src, at))
        diffs += ["applied %s: %s" % (src, d) for d in ref.compare(exp, v)]
        seen[src] = seen.get(src, 0) + 1
    missing = sorted(set(want) - set(seen))
    if missing:
        diffs.append("%d applied records missing from %s.applied, e.g. %s" % (len(missing), topic, missing[:5]))
    if not at_least_once:
        twice = sorted(s for s, n in seen.items() if n > 1)
        if twice:
            diffs.append("%d sources published more than once, e.g. %s" % (len(twice), twice[:5]))
    return diffs


def parse_committed_at(s):
    """A commit time: UTC, to the millisecond, within a day of now."""
    if not isinstance(s, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z", s):
        return None
    inst = ref.parse_response_instant(s)
    return inst if inst and abs(inst[0] - time.time()) < 86400 else None


def read_dead_letters(ddir):
    """Parsed lines of <ddir>/dead-letters.jsonl ([] when there is none)."""
    path = os.path.join(ddir, "dead-letters.jsonl")
    if not os.path.exists(path):
        return []
    out = []
    for i, line in enumerate(read_bytes(path).split(b"\n"), 1):
        if not line:
            continue
        try:
            out.append(json.loads(line.decode("utf-8")))
        except ValueError as e:
            raise Fail("dead-letters.jsonl line %d is not JSON (%s): %r" % (i, e, line[:200]))
    return out


def expected_rejections(label, lines, outcomes):
    """{"label:N": (reason, field, raw line)} for the rejected lines of one file."""
    exp = {}
    for i, (line, o) in enumerate(zip(lines, outcomes), 1):
        if o is not None and o.outcome == "rejected":
            exp["%s:%d" % (label, i)] = (o.reason, o.field, line)
    return exp


def dead_letter_value(d):
    """The original bytes carried by a dead letter, or None if malformed."""
    if "value" in d and isinstance(d["value"], str):
        try:
            return d["value"].encode("utf-8")
        except UnicodeEncodeError:
            return None
    if "value_base64" in d and isinstance(d["value_base64"], str):
        try:
            return base64.b64decode(d["value_base64"], validate=True)
        except ValueError:
            return None
    return None


def check_dead_letters(letters, expected):
    """Compare dead letters with expected_rejections() (merged over files).
    Each expected source exactly once; value byte for byte (`value` when the
    line is valid UTF-8, else `value_base64`); detail a non-empty sentence,
    naming the field for invalid_field. Returns a list of differences."""
    diffs = []
    seen = set()
    for d in letters:
        src = d.get("source")
        if src in seen:
            diffs.append("%s: dead letter repeated" % src)
            continue
        seen.add(src)
        if src not in expected:
            diffs.append("%s: unexpected dead letter (reason %s)" % (src, d.get("reason")))
            continue
        reason, field, raw = expected[src]
        if d.get("reason") != reason:
            diffs.append("%s: reason expected %s, got %s (line %r)" % (src, reason, d.get("reason"), raw[:160]))
        detail = d.get("detail")
        if not isinstance(detail, str) or not detail.strip():
            diffs.append("%s: no detail" % src)
        elif reason == "invalid_field" and field and not any(k in detail for k in ref.FIELD_KEYS[field]):
            diffs.append("%s: invalid_field detail %r does not name %s" % (src, detail, field))
        try:
            raw.decode("utf-8")
            want_key = "value"
        except UnicodeDecodeError:
            want_key = "value_base64"
        if want_key not in d:
            diffs.append("%s: expected %s, got keys %s" % (src, want_key, sorted(d)))
        elif dead_letter_value(d) != raw:
            diffs.append("%s: value differs from the line (%d bytes vs %d)" % (
                src, len(dead_letter_value(d) or b""), len(raw)))
    for src in sorted(set(expected) - seen):
        diffs.append("%s: missing dead letter (%s)" % (src, expected[src][0]))
    return diffs


def model_counts(outcomes):
    c = {"records": 0, "applied": 0, "duplicate": 0, "rejected": 0}
    for o in outcomes:
        if o is not None:
            c["records"] += 1
            c[o.outcome] += 1
    return c


# -------------------------------------------------------------------------
# Kafka: `walletstream run`, `walletstream broker`, the real broker of
# scripts/kafka, kcat as the outside client, /metrics

KAFKA_SCRIPT = os.path.join(REPO, "scripts", "kafka")
KAFKA_START_TIMEOUT = float(os.environ.get("WS_E2E_KAFKA_START_TIMEOUT", "180"))
# Resolving Kafka's jars from Maven Central into .cache/kafka, once per
# checkout: a download, not a start (96 s at load average 24 here).
KAFKA_FETCH_TIMEOUT = float(os.environ.get("WS_E2E_KAFKA_FETCH_TIMEOUT", "900"))
CONSUME_TIMEOUT = float(os.environ.get("WS_E2E_CONSUME_TIMEOUT", "120"))
KCAT_TIMEOUT = float(os.environ.get("WS_E2E_KCAT_TIMEOUT", "120"))


def clean_env():
    """os.environ without WALLETSTREAM_* variables (every flag of the binary
    reads one: a stray WALLETSTREAM_BROKERS would point a test elsewhere)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WALLETSTREAM_")}


def require_kcat():
    k = shutil.which("kcat")
    if not k:
        raise Fail("kcat not found (scripts/install-deps installs it)")
    return k


def require_real_kafka():
    """Fail (or Skip when WS_E2E_NO_KAFKA=1) unless scripts/kafka can run:
    java and mvn installed. WS_E2E_NO_KAFKA=1 skips the real-broker tests
    even where they could run."""
    missing = [t for t in ("java", "mvn") if not shutil.which(t)]
    if os.environ.get("WS_E2E_NO_KAFKA") == "1":
        raise Skip("real Kafka broker tests disabled (WS_E2E_NO_KAFKA=1)%s" % (
            "; missing: " + ", ".join(missing) if missing else ""))
    if missing:
        raise Fail("the real Kafka broker needs %s (set WS_E2E_NO_KAFKA=1 to skip these tests)"
                   % " and ".join(missing))
    require_kcat()


class RealKafka:
    """A single-node Apache Kafka broker from scripts/kafka, in its own
    directory, stopped when the test (shared: the script) ends, and at exit.

        k = RealKafka().start()
        k.create_topic("t", 3); k.create_topic("t.dlq", 3)
    """

    def __init__(self, shared=False, settings=()):
        self.dir = os.path.join(tempdir("ws-kafka-"), "broker")
        self.settings = list(settings)
        self.bootstrap = None
        self._stopped = True
        on_cleanup(self._cleanup, shared=shared)
        import atexit
        atexit.register(self._cleanup)

    _fetched = False

    def _script(self, args, timeout, env=None):
        try:
            p = subprocess.run([KAFKA_SCRIPT] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise Fail("scripts/kafka %s: no answer within %.0f s" % (" ".join(args), timeout))
        return p

    def start(self):
        if not RealKafka._fetched:
            # The jars first, under a download's deadline: a fresh checkout
            # resolved them inside the start's 180 s, which a loaded machine
            # did not meet (docs/TESTING.md "Under load").
            p = self._script(["fetch"], KAFKA_FETCH_TIMEOUT)
            if p.returncode != 0:
                raise Fail("scripts/kafka fetch failed: %s" % p.stderr.decode("utf-8", "replace")[-1500:])
            RealKafka._fetched = True
        args = ["start", "--dir", self.dir]
        for kv in self.settings:
            args += ["--set", kv]
        t0 = time.monotonic()
        self._stopped = False  # from here on a broker may run: stop it at cleanup
        # The script's own deadline for the broker's answer is the test's
        # (its failure shows the broker's log); the test's outer deadline
        # adds room for the storage format and kcat checks around it.
        env = dict(os.environ, KAFKA_START_TIMEOUT="%d" % KAFKA_START_TIMEOUT)
        p = self._script(args, KAFKA_START_TIMEOUT + 120, env=env)
        out = p.stdout.decode("utf-8", "replace").strip()
        if p.returncode != 0 or not re.match(r"^[0-9.]+:[0-9]+$", out):
            raise Fail("scripts/kafka start failed (exit %d): %s %s" % (
                p.returncode, out[-300:], p.stderr.decode("utf-8", "replace")[-1500:]))
        if self.bootstrap is not None and out != self.bootstrap:
            raise Fail("the restarted Kafka broker moved from %s to %s" % (self.bootstrap, out))
        self.bootstrap = out
        log("Kafka broker at %s (%.1f s)" % (out, time.monotonic() - t0))
        return self

    def create_topic(self, name, partitions, *configs):
        """configs: topic settings "key=value" (e.g. "retention.bytes=1048576")."""
        p = self._script(["create-topic", "--dir", self.dir, name, str(partitions)] + list(configs), 120)
        if p.returncode != 0:
            raise Fail("create-topic %s: %s" % (name, p.stderr.decode("utf-8", "replace")[-1500:]))

    def delete_topic(self, name):
        """Deletes a topic; returns once its metadata says it is gone."""
        p = self._script(["run-class", "--dir", self.dir, "org.apache.kafka.tools.TopicCommand",
                          "--bootstrap-server", self.bootstrap, "--delete", "--topic", name], 120)
        if p.returncode != 0:
            raise Fail("deleting topic %s: %s" % (name, p.stderr.decode("utf-8", "replace")[-1500:]))
        wait_until(lambda: not kcat_metadata_ok(self.bootstrap, name), 60, "topic %s to be gone" % name)

    def create_topics(self, topic, partitions, dlq_partitions=None):
        """The input topic and its dead-letter topic."""
        self.create_topic(topic, partitions)
        self.create_topic(topic + ".dlq", dlq_partitions or partitions)

    def stop(self):
        p = self._script(["stop", "--dir", self.dir], 90)
        self._stopped = True
        if p.returncode != 0:
            raise Fail("scripts/kafka stop failed: %s" % p.stderr.decode("utf-8", "replace")[-1500:])

    def kill9(self):
        """kill -9 of the broker process (the pid scripts/kafka recorded);
        returns once it is gone. start() brings it back on the same port."""
        pid = int(read_bytes(os.path.join(self.dir, "kafka.pid")).decode().strip())
        os.kill(pid, signal.SIGKILL)

        def gone():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            try:  # a zombie until scripts/kafka's shell reaps it
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().split(") ", 1)[1].startswith("Z")
            except OSError:
                return True
        wait_until(gone, 30, "the killed Kafka broker (pid %d) to be gone" % pid)
        log("Kafka broker pid %d killed with SIGKILL" % pid)

    def _cleanup(self):
        if not self._stopped:
            self._stopped = True
            self._script(["stop", "--dir", self.dir], 90)


class EmbeddedBroker:
    """`walletstream broker` alone (the mock cluster in its own process), so
    that a `run --brokers` can be stopped, killed and restarted while the
    topic keeps its records."""

    def __init__(self, topic="transactions_topic", partitions=3, shared=False):
        self.dir = os.path.join(tempdir(), "broker")
        self.topic, self.partitions, self.shared = topic, partitions, shared
        self.proc = self.bootstrap = self.outfile = None

    def command(self):
        return [require_binary(), "broker", "--data-dir", self.dir, "--topic", self.topic,
                "--partitions", str(self.partitions)]

    stdin = subprocess.DEVNULL

    def start(self):
        self.outfile = tempfile.TemporaryFile()
        self.proc = spawn(self.command(), shared=self.shared, env=clean_env(),
                          stdin=self.stdin, stdout=self.outfile, stderr=self.outfile)
        path = os.path.join(self.dir, "kafka.bootstrap")

        def ready():
            if self.proc.poll() is not None:
                raise Fail("walletstream broker exited %s: %s" % (self.proc.returncode, self.output()[-1500:]))
            if os.path.exists(path):
                b = read_bytes(path).decode().strip()
                if b and kcat_metadata_ok(b, self.topic):
                    return b
            return None
        self.bootstrap = wait_until(ready, READY_TIMEOUT, "walletstream broker", interval=0.05)
        check(self.bootstrap in self.output(), "walletstream broker did not print its address %s: %r" % (
            self.bootstrap, self.output()[-500:]))
        return self

    def output(self):
        return file_text(self.outfile)

    def stop_ok(self):
        rc = stop_process(self.proc)
        if rc != 0:
            raise Fail("walletstream broker exited %s after SIGTERM: %s" % (rc, self.output()[-1500:]))


class FaultBroker(EmbeddedBroker):
    """The embedded broker's mock cluster in the test tool
    tests/tools/fault_broker.c (built by `make unit` next to the binary
    under test), whose fault injection the test drives:

        b = FaultBroker("t", 3).start()
        b.down(); b.up(); b.rtt(500); b.errors("Fetch", 5, "NOT_LEADER_FOR_PARTITION")
    """

    API = {"Produce": 0, "Fetch": 1, "OffsetCommit": 8}
    ERR = {"LEADER_NOT_AVAILABLE": 5, "NOT_LEADER_FOR_PARTITION": 6, "REQUEST_TIMED_OUT": 7,
           "NETWORK_EXCEPTION": 13, "COORDINATOR_LOAD_IN_PROGRESS": 14, "NOT_COORDINATOR": 16,
           "NOT_ENOUGH_REPLICAS": 19, "UNKNOWN_MEMBER_ID": 25, "REBALANCE_IN_PROGRESS": 27,
           "TOPIC_AUTHORIZATION_FAILED": 29, "KAFKA_STORAGE_ERROR": 56}
    stdin = subprocess.PIPE

    def command(self):
        tool = os.path.join(os.path.dirname(require_binary()), "tools", "fault_broker")
        if not os.access(tool, os.X_OK):
            raise Fail("%s not found: build it with `make unit` (same SANITIZE as the binary)" % tool)
        return [tool, "--data-dir", self.dir, "--topic", self.topic, "--partitions", str(self.partitions)]

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.sent = 0
        return EmbeddedBroker.start(self)

    def send(self, cmd):
        """One command; returns when the tool has applied it."""
        self.sent += 1
        self.proc.stdin.write((cmd + "\n").encode())
        self.proc.stdin.flush()
        n = self.sent

        def done():
            out = self.output()
            if self.proc.poll() is not None:
                raise Fail("fault_broker exited %s before applying %r: %s" % (
                    self.proc.returncode, cmd, out[-1500:]))
            if "error %s:" % cmd in out:
                raise Fail("fault_broker refused %r: %s" % (cmd, out[-300:]))
            return out.count("\nok ") + out.count("\nerror ") >= n
        # The mock cluster applies a command on its own thread, between the
        # clients' requests: seen once at 10 s in a pristine root (issue 13's
        # fresh-check, 4 of 4 quick here), so the tool gets 30 s.
        try:
            wait_until(done, 30, "fault_broker to apply %r" % cmd)
        except Fail as e:
            raise Fail("%s; its output: %s" % (e, self.output()[-1500:]))
        log("broker fault: %s" % cmd)

    def down(self):
        self.send("down")

    def up(self):
        self.send("up")

    def rtt(self, ms):
        self.send("rtt %d" % ms)

    def errors(self, api, count, err):
        self.send("errors %d %d %d" % (self.API[api], count, self.ERR[err]))

    def clear(self, api):
        self.send("clear %d" % self.API[api])


class Runner:
    """`walletstream run` on a free loopback port.

    brokers=None passes --embedded-broker: the in-process test broker (its
    address is then read from DATA_DIR/kafka.bootstrap). start() waits for /readyz 200 unless
    wait_ready=False. kill9() simulates a crash; stop_ok() checks exit 0
    after SIGTERM."""

    def __init__(self, ddir, brokers=None, topic=None, group=None, partitions=None,
                 batch_max=None, batch_linger=None, extra_args=(), shared=False):
        self.ddir, self.brokers, self.topic, self.group = ddir, brokers, topic, group
        self.partitions, self.batch_max, self.batch_linger = partitions, batch_max, batch_linger
        self.extra_args, self.shared = list(extra_args), shared
        self.proc = self.port = self.http = self.outfile = self.errfile = None
        self.bootstrap = brokers
        self.starts = 0
        self.logs = []  # output of previous processes (kept across restarts)

    def args(self):
        a = [require_binary(), "run", "--data-dir", self.ddir, "--listen", "127.0.0.1:%d" % self.port]
        if self.brokers is None:
            a.append("--embedded-broker")
        for flag, v in (("--brokers", self.brokers), ("--topic", self.topic), ("--group", self.group),
                        ("--partitions", self.partitions), ("--batch-max", self.batch_max),
                        ("--batch-linger", self.batch_linger)):
            if v is not None:
                a += [flag, str(v)]
        return a + self.extra_args

    def start(self, wait_ready=True, timeout=READY_TIMEOUT):
        for _ in range(3):  # a free port can be taken between pick and bind
            self._keep_logs()
            self.port = free_port()
            self.outfile, self.errfile = tempfile.TemporaryFile(), tempfile.TemporaryFile()
            self.starts += 1
            self.proc = spawn(self.args(), shared=self.shared, stdin=subprocess.DEVNULL, env=clean_env(),
                              stdout=self.outfile, stderr=self.errfile)
            self.http = Http(self.port)
            if not wait_ready:
                return self
            if self.wait_ready(timeout, fail_on_exit=False):
                return self
            err = self.stderr()
            if "address already in use" not in err.lower():
                break
        raise Fail("run exited before it was ready (exit %s): %s" % (self.proc.returncode, self.output()[-2000:]))

    def _keep_logs(self):
        if self.errfile is not None:
            self.logs.append("--- run #%d (exit %s)\n%s" % (self.starts, self.proc.poll(), self.output()))

    def all_logs(self):
        self._keep_logs()
        text = "\n".join(self.logs)
        self.logs = self.logs[:-1]
        return text

    def wait_ready(self, timeout=READY_TIMEOUT, fail_on_exit=True):
        """Poll /readyz until 200; False if the process exited (or Fail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if fail_on_exit:
                    raise Fail("run exited (status %s): %s" % (self.proc.returncode, self.output()[-2000:]))
                return False
            try:
                status, _, _ = http_request(self.port, "GET", "/readyz", timeout=2)
                if status == 200:
                    if self.brokers is None and self.bootstrap is None:
                        self.bootstrap = self._embedded_bootstrap()
                    return True
            except OSError:
                pass
            time.sleep(POLL_INTERVAL)
        raise Fail("run not ready within %.0f s: %s" % (timeout, self.output()[-2000:]))

    def _embedded_bootstrap(self):
        path = os.path.join(self.ddir, "kafka.bootstrap")
        check(os.path.exists(path), "embedded broker: %s not written" % path)
        b = read_bytes(path).decode().strip()
        check(re.match(r"^[0-9.]+:[0-9]+$", b), "kafka.bootstrap holds %r" % b)
        return b

    def stdout(self):
        return file_text(self.outfile)

    def stderr(self):
        return file_text(self.errfile)

    def output(self):
        return self.stdout() + self.stderr()

    def stop(self):
        if self.http:
            self.http.close()
        return stop_process(self.proc)

    def stop_ok(self):
        rc = self.stop()
        if rc != 0:
            raise Fail("run exited %s after SIGTERM (expected 0): %s" % (rc, self.output()[-2000:]))

    def kill9(self):
        """kill -9 and reap; returns the status (-9)."""
        if self.http:
            self.http.close()
        self.proc.kill()
        rc = self.proc.wait()
        for procs in (_PROCS, _SHARED_PROCS):
            if self.proc in procs:
                procs.remove(self.proc)
        return rc

    def get(self, path, **kw):
        return self.http.request("GET", path, **kw)

    def get_json(self, path):
        status, headers, body = self.get(path)
        try:
            return status, ref.parse_response(body)
        except ValueError:
            raise Fail("GET %s: body is not JSON: %r" % (path, body[:300]))

    def metrics(self):
        status, _, body = self.get("/metrics")
        check(status == 200, "GET /metrics: %d %r" % (status, body[:200]))
        return Metrics(body.decode("utf-8", "replace"))

    def counts(self):
        """{"applied": n, "duplicate": n, "rejected": n} from /metrics."""
        return self.metrics().outcomes()

    def wait_counted(self, n, timeout=CONSUME_TIMEOUT, what="records"):
        """Poll /metrics until events_total sums to n (Fail beyond n)."""
        seen = [None]

        def done():
            c = self.counts()
            seen[0] = c
            total = sum(c.values())
            if total > n:
                raise Fail("%d %s produced, but events_total already counts %d: %s" % (n, what, total, c))
            if self.proc.poll() is not None:
                raise Fail("run exited %s: %s" % (self.proc.returncode, self.output()[-2000:]))
            return total == n
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise Fail("after %.0f s, events_total counts %s of %d %s (lag %s)" % (
                    timeout, seen[0], n, what, self.metrics().by_label("walletstream_consumer_lag", "partition")))
            time.sleep(0.02)
        return seen[0]

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop_ok()
        elif self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return False


class Metrics:
    """Prometheus text parsed into {name: {labels (sorted tuple): float}}."""

    LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
    LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

    def __init__(self, text):
        self.text = text
        self.samples = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = self.LINE.match(line)
            if not m:
                raise Fail("/metrics: unparsable line %r" % line)
            labels = tuple(sorted(self.LABEL.findall(m.group(2) or "")))
            try:
                v = float(m.group(3))
            except ValueError:
                raise Fail("/metrics: bad value in %r" % line)
            self.samples.setdefault(m.group(1), {})[labels] = v

    def get(self, name, **labels):
        """One sample's value, or None."""
        return self.samples.get(name, {}).get(tuple(sorted(labels.items())))

    def by_label(self, name, label):
        return {dict(k).get(label): v for k, v in self.samples.get(name, {}).items()}

    def outcomes(self):
        c = {o: 0 for o in ("applied", "duplicate", "rejected")}
        for k, v in self.by_label("walletstream_events_total", "outcome").items():
            c[k] = int(v)
        return c

    def reasons(self):
        """{reason: count} of the non-zero walletstream_rejected_total."""
        return {k: int(v) for k, v in self.by_label("walletstream_rejected_total", "reason").items() if v}


def check_counters(runner, model):
    """events_total by outcome and rejected_total by reason equal the model's
    counts. Returns a list of differences."""
    m = runner.metrics()
    diffs = []
    want = {o: model.counts[o] for o in ("applied", "duplicate", "rejected")}
    got = m.outcomes()
    if got != want:
        diffs.append("events_total: expected %s, got %s" % (want, got))
    if m.reasons() != model.reasons:
        diffs.append("rejected_total: expected %s, got %s" % (dict(sorted(model.reasons.items())),
                                                             dict(sorted(m.reasons().items()))))
    return diffs


class CountingModel(ref.Model):
    """reference.Model that also counts rejections by reason and keeps each
    record's outcome."""

    def __init__(self):
        ref.Model.__init__(self)
        self.reasons = {}

    def process(self, raw, src=None):
        o = ref.Model.process(self, raw, src)
        if o.outcome == "rejected":
            self.reasons[o.reason] = self.reasons.get(o.reason, 0) + 1
        return o


# -- kcat ------------------------------------------------------------------

class Record:
    """One Kafka record as kcat read it: partition, offset, key and value
    (bytes, None when null), headers [(name, value str)]."""
    __slots__ = ("partition", "offset", "key", "value", "headers")

    def __init__(self, partition, offset, key, value, headers=None):
        self.partition, self.offset, self.key, self.value = partition, offset, key, value
        self.headers = headers

    def header(self, name):
        vals = [v for k, v in (self.headers or []) if k == name]
        return vals[0] if len(vals) == 1 else (None if not vals else vals)

    def __repr__(self):
        return "Record(%d/%d key=%r value=%r)" % (self.partition, self.offset, self.key,
                                                 (self.value or b"")[:80])


def kcat_metadata_ok(bootstrap, topic):
    """True if the broker answers a metadata request listing topic."""
    try:
        p = subprocess.run([require_kcat(), "-L", "-b", bootstrap, "-t", topic, "-m", "2"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return p.returncode == 0 and ('topic "%s"' % topic).encode() in p.stdout and b"Broker:" not in p.stdout


def kcat_produce(bootstrap, topic, records, partition=None, background=False):
    """Produce [(key bytes or None, value bytes)] with `kcat -P -K<TAB>`, in
    order. Values must not hold a newline; keys neither a tab nor a newline;
    a None key is sent as a null key (the value must then hold no tab).
    Waits for kcat (it flushes: everything acknowledged) unless background,
    in which case the Popen is returned (see kcat_wait)."""
    buf = bytearray()
    for key, value in records:
        if b"\n" in value:
            raise ValueError("kcat_produce: newline in value %r" % value[:80])
        if key is None:
            if b"\t" in value:
                raise ValueError("kcat_produce: null key with a tab in the value")
            buf += value + b"\n"
        else:
            if b"\t" in key or b"\n" in key:
                raise ValueError("kcat_produce: tab or newline in key %r" % key)
            buf += key + b"\t" + value + b"\n"
    args = [require_kcat(), "-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-X", "message.max.bytes=10000000"]
    if partition is not None:
        args += ["-p", str(partition)]
    errf = tempfile.TemporaryFile()
    p = spawn(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errf)
    p.errf = errf
    p.count = len(records)
    if background:
        def feed():
            try:
                p.stdin.write(bytes(buf))
                p.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        th = threading.Thread(target=feed, daemon=True)
        th.start()
        p.feeder = th
        return p
    try:
        p.stdin.write(bytes(buf))
        p.stdin.close()
    except BrokenPipeError:
        pass
    return kcat_wait(p)


def kcat_wait(p, timeout=KCAT_TIMEOUT):
    """Wait for a kcat_produce(background=True); Fail unless all delivered."""
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise Fail("kcat -P did not finish within %.0f s" % timeout)
    if getattr(p, "feeder", None):
        p.feeder.join()
    if p in _PROCS:
        _PROCS.remove(p)
    err = file_text(p.errf)
    if rc != 0 or "ERROR" in err:
        raise Fail("kcat -P of %d records failed (exit %d): %s" % (p.count, rc, err[-1500:]))
    return p.count


_KCAT_FORMAT = "%p\\t%o\\t%K\\t%S\\t%k%s\\n"


def file_text(f):
    """What a child's output file (stdout or stderr, shared with the test)
    holds so far, read without moving the offset the child writes at: a
    seek(0) there, between two of its writes, made its next line overwrite
    the file's start (fault_broker's "ok up" over "bootstrap …", which the
    test then waited for in vain: test_broker_faults' rare failure)."""
    fd = f.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")


class AckedWrites:
    """The writing side of a read-your-writes test: `walletstream produce
    --print-offsets` (each line sent once the previous one is
    acknowledged), round i a credit (a debit every third) of 0.01-0.97 to
    one of `wallets` wallets named PREFIX-n, and each wallet's balance."""

    def __init__(self, bootstrap, topic, prefix, wallets):
        self.prefix = prefix
        self.wallets = ["%s-%d" % (prefix, i) for i in range(wallets)]
        self.balance = {w: 0 for w in self.wallets}
        self.proc = spawn([require_binary(), "produce", "--print-offsets", "--brokers", bootstrap,
                           "--topic", topic, "--data-dir", data_dir(), "--log-level", "warn"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=clean_env())

    def write(self, i):
        """Round i's record, once acknowledged: (wallet, its PARTITION:OFFSET,
        the wallet's balance after it as the API writes it)."""
        w = self.wallets[i % len(self.wallets)]
        kind = "credit" if i % 3 else "debit"
        units = (i % 97) + 1
        ack = self._send(event("%s-%d" % (self.prefix, i), w, "p%d" % (i % 5), kind,
                               "%d.%02d" % (units // 100, units % 100)))
        self.balance[w] += units if kind == "credit" else -units
        b = self.balance[w]
        return w, ack, "%s%d.%02d" % ("-" if b < 0 else "", abs(b) // 100, abs(b) % 100)

    def write_top(self, i, product):
        """Round i's credit to `product`, larger than any before it (so
        first among its top credits), once acknowledged: (its
        transaction_id, its PARTITION:OFFSET)."""
        w = self.wallets[i % len(self.wallets)]
        tid = "%s-top-%d" % (self.prefix, i)
        ack = self._send(event(tid, w, product, "credit", "%d.00" % (1000 + i)))
        self.balance[w] += (1000 + i) * 100
        return tid, ack

    def _send(self, line):
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()
        ack = self.proc.stdout.readline().decode().strip()
        if not ack:
            raise Fail("produce --print-offsets ended: %s" % self.proc.stderr.read()[-1000:])
        return ack

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def offsets_header(headers):
    """{partition: last offset} of an answer's Walletstream-Offsets header."""
    return dict(tuple(int(x) for x in kv.split(":"))
                for kv in (headers.get("walletstream-offsets") or "").split(",") if kv)


def kcat_consume(bootstrap, topic, headers=False, timeout=KCAT_TIMEOUT, committed=False):
    """Every record of topic now (kcat -C -e), sorted by (partition,
    offset), keys and values byte for byte; headers too if asked.
    committed: only what committed transactions wrote (read_committed:
    a group's outputs)."""
    args = [require_kcat(), "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-o", "beginning",
            "-X", "fetch.message.max.bytes=10000000"]
    if committed:
        args += ["-X", "isolation.level=read_committed"]
    try:
        p = subprocess.run(args + ["-f", _KCAT_FORMAT], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Fail("kcat -C -t %s did not finish within %.0f s" % (topic, timeout))
    if p.returncode != 0:
        raise Fail("kcat -C -t %s failed (exit %d): %s" % (topic, p.returncode, p.stderr[-1500:]))
    out = p.stdout
    recs = []
    i = 0
    while i < len(out):
        fields = []
        for _ in range(4):
            j = out.index(b"\t", i)
            fields.append(int(out[i:j]))
            i = j + 1
        part, off, klen, vlen = fields
        key = None if klen < 0 else out[i:i + klen]
        i += max(klen, 0)
        value = None if vlen < 0 else out[i:i + vlen]
        i += max(vlen, 0)
        if out[i:i + 1] != b"\n":
            raise Fail("kcat -C output out of frame at byte %d" % i)
        i += 1
        recs.append(Record(part, off, key, value))
    recs.sort(key=lambda r: (r.partition, r.offset))
    if headers:
        try:
            p = subprocess.run(args + ["-J"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Fail("kcat -C -J -t %s did not finish within %.0f s" % (topic, timeout))
        hdrs = {}
        for line in p.stdout.decode("utf-8", "replace").split("\n"):  # not splitlines(): U+0085, U+2028
            if not line.strip():
                continue
            try:
                j = json.loads(line)
            except ValueError:
                raise Fail("kcat -J line is not JSON: %r" % line[:300])
            h = j.get("headers") or []
            hdrs[(j["partition"], j["offset"])] = list(zip(h[0::2], h[1::2]))
        for r in recs:
            r.headers = hdrs.get((r.partition, r.offset))
            if r.headers is None:
                raise Fail("kcat -J did not return %s/%d/%d" % (topic, r.partition, r.offset))
    return recs


# -- events keyed for Kafka --------------------------------------------------

def wallet_key(value, fallback):
    """The record key a producer keyed by wallet_id would use: the wallet as
    the reference decodes it (UTF-8); else a readable string wallet_id; else
    `fallback`. Never a tab or newline (kcat's delimiters)."""
    t = ref.decode(value)
    if isinstance(t, ref.Txn):
        return t.wallet.encode("utf-8")
    try:
        doc = json.loads(value.decode("utf-8"))
        w = doc.get("wallet_id") if isinstance(doc, dict) else None
        if isinstance(w, str) and w and "\t" not in w and "\n" not in w:
            return w.encode("utf-8", "surrogatepass")
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    return fallback


def keyed_for_kafka(lines, drop_cross_wallet=True):
    """[(key, value)] for generated lines: keyed by wallet so that each
    wallet's events keep their order on one partition. Empty lines (which
    kcat cannot send) are dropped. With drop_cross_wallet, a line whose
    transaction_id was first seen valid on another wallet is dropped: its
    outcome would depend on how partitions interleave (SPEC §4 "Order"),
    and the tests compare outcomes exactly."""
    out = []
    first_wallet = {}
    for i, v in enumerate(lines):
        if not v:
            continue
        t = ref.decode(v)
        if isinstance(t, ref.Txn):
            w = first_wallet.setdefault(t.tid, t.wallet)
            if drop_cross_wallet and w != t.wallet:
                continue
        out.append((wallet_key(v, b"nokey-%d" % (i % 7)), v))
    return out


def model_of_topic(records):
    """A CountingModel fed the records of a topic partition by partition in
    offset order (any interleaving gives the same result when conflicting
    records share a key). Returns (model, {(partition, offset): Outcome})."""
    m = CountingModel()
    outs = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        outs[(r.partition, r.offset)] = m.process(r.value if r.value is not None else b"",
                                                  (r.partition, r.offset))
    return m, outs


def check_dlq(dlq_records, input_records, outcomes, topic, at_least_once=False):
    """Dead letters against the input topic: one per rejected input record
    (at_least_once: one or more, identical), none for the others; key and
    value byte for byte; headers walletstream.reason (the reference's),
    walletstream.detail (non-empty), walletstream.source (topic/p/o).
    Returns a list of differences."""
    by_src = {(r.partition, r.offset): r for r in input_records}
    diffs = []
    got = {}
    for d in dlq_records:
        src = d.header("walletstream.source")
        if not isinstance(src, str):
            diffs.append("dead letter %d/%d: walletstream.source header %r (headers %r)" % (
                d.partition, d.offset, src, d.headers))
            continue
        m = re.match(r"^(.*)/([0-9]+)/([0-9]+)$", src)
        if not m or m.group(1) != topic:
            diffs.append("dead letter %d/%d: source %r is not %s/PARTITION/OFFSET" % (d.partition, d.offset, src, topic))
            continue
        got.setdefault((int(m.group(2)), int(m.group(3))), []).append(d)
    for key in sorted(set(got) | {k for k, o in outcomes.items() if o.outcome == "rejected"}):
        o = outcomes.get(key)
        src = "%s/%d/%d" % ((topic,) + key)
        letters = got.get(key, [])
        if o is None or o.outcome != "rejected":
            diffs.append("%s: dead-lettered (%s) but its outcome is %s" % (
                src, letters[0].header("walletstream.reason"), o and o.outcome))
            continue
        if not letters:
            diffs.append("%s: no dead letter (expected reason %s, value %r)" % (src, o.reason, by_src[key].value[:120]))
            continue
        if len(letters) > 1 and not at_least_once:
            diffs.append("%s: %d dead letters, expected one" % (src, len(letters)))
        rec = by_src[key]
        for d in letters:
            if d.value != rec.value:
                diffs.append("%s: dead letter value differs (%d bytes %r vs %d bytes %r)" % (
                    src, len(d.value or b""), (d.value or b"")[:60], len(rec.value or b""), (rec.value or b"")[:60]))
            if d.key != rec.key:
                diffs.append("%s: dead letter key %r, the record's key is %r" % (src, d.key, rec.key))
            reason = d.header("walletstream.reason")
            if reason != o.reason:
                diffs.append("%s: walletstream.reason %r, expected %s (value %r)" % (src, reason, o.reason, rec.value[:120]))
            detail = d.header("walletstream.detail")
            if not isinstance(detail, str) or not detail.strip():
                diffs.append("%s: walletstream.detail %r" % (src, detail))
            elif o.reason == "invalid_field" and o.field and not any(k in detail for k in ref.FIELD_KEYS[o.field]):
                diffs.append("%s: invalid_field detail %r does not name %s" % (src, detail, o.field))
    return diffs


# -- readiness under faults and the state of a topic (broker outages,
#    broker faults, disk full) ------------------------------------------------

def readyz(runner):
    """(status, parsed body or raw bytes), or (None, None) if no answer."""
    try:
        s, _, b = http_request(runner.port, "GET", "/readyz", timeout=3)
    except OSError:
        return None, None
    try:
        return s, json.loads(b)
    except ValueError:
        return s, b


def wait_not_ready(runner, timeout, what, reason_has=()):
    """Poll until /readyz is 503 with a JSON reason (one naming any of
    reason_has, case-insensitive, if given). Returns the reason."""
    t0 = time.monotonic()
    last = [None]

    def cond():
        if runner.proc.poll() is not None:
            raise Fail("run exited (%s) during %s: %s" % (runner.proc.returncode, what, runner.output()[-2000:]))
        s, body = readyz(runner)
        last[0] = (s, body)
        if s != 503:
            return None
        if reason_has and not (isinstance(body, dict) and any(
                w.lower() in str(body.get("reason", "")).lower() for w in reason_has)):
            return None
        return (s, body)
    try:
        s, body = wait_until(cond, timeout, "/readyz 503 (%s)%s" % (
            what, " with a reason naming %s" % " or ".join(reason_has) if reason_has else ""), interval=0.05)
    except Fail as e:
        raise Fail("%s; last /readyz: %r" % (e, last[0]))
    check(isinstance(body, dict) and body.get("status") == "not_ready" and isinstance(body.get("reason"), str)
          and body["reason"].strip(), "%s: /readyz 503 body %r" % (what, body))
    log("%s: /readyz 503 after %.1f s: %s" % (what, time.monotonic() - t0, body["reason"]))
    return body["reason"]


def wait_ready_again(runner, timeout, what):
    t0 = time.monotonic()

    def cond():
        if runner.proc.poll() is not None:
            raise Fail("run exited (%s) during %s: %s" % (runner.proc.returncode, what, runner.output()[-2000:]))
        return readyz(runner)[0] == 200
    try:
        wait_until(cond, timeout, "/readyz 200 (%s)" % what, interval=0.05)
    except Fail as e:
        raise Fail("%s; last /readyz %r; log: %s" % (e, readyz(runner), runner.output()[-1500:]))
    log("%s: /readyz 200 after %.1f s" % (what, time.monotonic() - t0))


def check_topic_state(runner, topic, dlq_exactly_once=True, absent=()):
    """Counters, every figure and the dead letters against the topic as
    kcat reads it back. Returns (model, number of records)."""
    records = kcat_consume(runner.bootstrap, topic)
    model, outcomes = model_of_topic(records)
    runner.wait_counted(len(records))
    diffs = check_counters(runner, model)
    diffs += check_all_figures(runner, model, absent_wallets=absent)
    dlq = kcat_consume(runner.bootstrap, topic + ".dlq", headers=True)
    diffs += check_dlq(dlq, records, outcomes, topic, at_least_once=not dlq_exactly_once)
    check_no_diffs(diffs, "%d records of %s" % (len(records), topic))
    return model, len(records), len(dlq)


# -- kill -9 of `run` under load (test_kafka_crash.py, test_torture.py) -------

CRASH_RESUME_LIMIT = float(os.environ.get("WS_E2E_RESUME_LIMIT", "5"))


def crash_rng():
    seed = int(os.environ.get("WS_E2E_SEED") or random.SystemRandom().randrange(1, 10 ** 6))
    log("WS_E2E_SEED=%d" % seed)
    return random.Random(seed)


def crash_events(seed, count, max_big):
    """At least `count` keyed events (a few are left out by keyed_for_kafka)."""
    n = count
    while True:
        recs = keyed_for_kafka(gen_events.generate(seed, n, max_big=max_big))
        if len(recs) >= count:
            return recs[:count]
        n += count - len(recs) + 100


def events_counted(runner):
    return sum(runner.counts().values())


def wait_counted_past(r, point, errors):
    """Waits until run `r` has counted at least `point` records and one
    more than now (a kill point); fails on a producer thread's error
    (`errors`), on the run's exit, or with no progress within
    CONSUME_TIMEOUT. Returns events_total then."""
    target = max(point, events_counted(r) + 1)
    deadline = time.monotonic() + CONSUME_TIMEOUT
    while True:
        now = events_counted(r)
        if now >= target:
            return now
        if errors:
            raise errors[0]
        if r.proc.poll() is not None:
            raise Fail("run exited by itself (%s): %s" % (r.proc.returncode, r.output()[-2000:]))
        if time.monotonic() > deadline:
            raise Fail("no progress past %d (events_total %d) within %.0f s" % (target, now, CONSUME_TIMEOUT))
        time.sleep(0.003)


def crash_and_check(bootstrap, topic, recs, kills, chunks, rng, batch_sizes=(None, 5000, 500, 50)):
    """Produce recs with kcat in `chunks` parts from a background thread;
    meanwhile kill -9 the run `kills` times, each when events_total passes
    a random point of the stream (and has grown since the last restart),
    and start it again at once. Then check everything."""
    ddir = data_dir()

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
            status, _, body = http_request(current[0].port, "GET", "/metrics", timeout=5)
            if status != 200:
                return None
            return sum(Metrics(body.decode("utf-8", "replace")).outcomes().values())
        except (OSError, Fail, ValueError, http.client.HTTPException):  # killed or restarting
            return None

    def produce_all():
        """Each part once the run is halfway through the previous one, so
        that kills land while records are still being produced."""
        try:
            for part in parts:
                deadline = time.monotonic() + CONSUME_TIMEOUT
                while (counted() or 0) < produced[0] - size // 2:
                    if time.monotonic() > deadline:
                        raise Fail("the run did not get halfway through part of %d records" % size)
                    time.sleep(0.01)
                kcat_produce(bootstrap, topic, part)
                produced[0] += len(part)
        except Exception as e:  # reported by the main thread
            errors.append(e)
    th = threading.Thread(target=produce_all, daemon=True)
    th.start()
    n = len(recs)
    points = sorted(rng.sample(range(n // 20, n * 19 // 20), kills))
    resumes = []
    for point in points:
        now = wait_counted_past(r, point, errors)
        rc = r.kill9()
        check_eq(-9, rc, "exit status of the killed run")
        log("%.1f s: kill -9 at events_total %d (batch-max %s; %d produced)" % (
            time.monotonic() - t_start, now, bm, produced[0]))
        r, took, bm = start(last=len(resumes) + 1 == kills)
        current[0] = r
        resumes.append(took)
        after = events_counted(r)  # committed before the kill: never lost
        check(after >= now, "events_total went back from %d before kill -9 to %d after the restart" % (now, after))
    th.join(KCAT_TIMEOUT * chunks)
    if th.is_alive():
        raise Fail("kcat did not finish producing")
    if errors:
        raise errors[0]
    log("%.1f s: all produced; events_total %d" % (time.monotonic() - t_start, events_counted(r)))
    records = kcat_consume(bootstrap, topic)
    check_eq(len(recs), len(records), "records in the topic")
    r.wait_counted(len(records), what="records in the topic")
    log("%.1f s: all counted (batch-max %s)" % (time.monotonic() - t_start, bm))
    model, outcomes = model_of_topic(records)
    diffs = check_counters(r, model)
    diffs += check_all_figures(r, model, absent_wallets=["ghost-w3"], absent_products=["ghost-p3"])
    sample = sorted(model.wallets)
    sample = rng.sample(sample, min(len(sample), 40))
    diffs += check_statements(r, model, sample)
    applied = kcat_consume(bootstrap, topic + ".applied")
    diffs += check_applied_topic(applied, model, topic, at_least_once=True)
    dlq = kcat_consume(bootstrap, topic + ".dlq", headers=True)
    diffs += check_dlq(dlq, records, outcomes, topic, at_least_once=True)
    lag = r.metrics().by_label("walletstream_consumer_lag", "partition")
    if any(v != 0 for v in lag.values()) or not lag:
        diffs.append("consumer lag at the end: %s" % lag)
    check_no_diffs(diffs, "after %d kills and %d records" % (len(resumes), len(records)))
    r.stop_ok()
    log("%d records (%s), %d wallets, %d dead letters for %d rejected; resumed in %s s" % (
        len(records), {k: v for k, v in model.counts.items() if k != "records"}, len(model.wallets), len(dlq),
        model.counts["rejected"], ", ".join("%.2f" % t for t in resumes)))
    slow = [t for t in resumes if t > CRASH_RESUME_LIMIT]
    check(not slow, "restarts after kill -9 took %s s to be ready again (limit %.0f s)" % (
        ", ".join("%.1f" % t for t in resumes), CRASH_RESUME_LIMIT))
    return model


def shard_of_record(value, shards, partition):
    """The shard walletstream routes a record to (src/router.c): its
    wallet's, XXH3-64 of the wallet_id's UTF-8 bytes modulo the shard
    count; a record that does not decode goes to its partition's. Needs
    python3-xxhash (wslib.use_system_python_for("xxhash"))."""
    import xxhash
    if shards <= 1:
        return 0
    t = ref.decode(value if value is not None else b"")
    if isinstance(t, ref.Txn):
        return xxhash.xxh3_64_intdigest(t.wallet.encode("utf-8")) % shards
    return partition % shards


def records_held(records, manifest, topic):
    """The records an export's manifest says its state holds: per shard,
    those routed to it below that shard's offsets ("shards"; "offsets",
    the smallest, when the manifest has no shards)."""
    def nexts(offsets):
        nxt = {}
        for src, n in offsets.items():
            t, _, p = src.rpartition("/")
            if t != topic:
                raise Fail("offset source %r is not of topic %s" % (src, topic))
            nxt[int(p)] = n
        return nxt
    shards = manifest.get("shards") or [{"shard": 0, "offsets": manifest["offsets"]}]
    held = [nexts(s["offsets"]) for s in sorted(shards, key=lambda s: s["shard"])]
    return [r for r in records
            if r.offset < held[shard_of_record(r.value, len(held), r.partition)].get(r.partition, 0)]
