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
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import reference as ref  # noqa: E402

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


# -------------------------------------------------------------------------
# Test registry and runner

class Fail(Exception):
    """A test failure with a one-line reason."""


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
    for t in selected:
        t0 = time.monotonic()
        try:
            t()
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
            _cleanup_procs()
        if os.environ.get("WS_E2E_VERBOSE"):
            log("%s took %.2f s" % (t.__name__, time.monotonic() - t0))
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
        self.errfile.seek(0)
        return self.errfile.read().decode("utf-8", "replace")

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
