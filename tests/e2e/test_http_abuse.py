#!/usr/bin/env python3
"""HTTP abuse and limits (issue 8 §5, docs/TESTING.md "HTTP abuse and
limits"): thousands of idle connections, slow-loris headers, very long URLs
and headers, invalid percent-encoding, NUL and `..` in paths, pipelined
requests, unsupported methods and bodies. The server answers each with the
right status or closes the connection, its memory stays bounded, and a
normal request sent meanwhile is answered within a bound (NORMAL_BOUND)
that tells a slow machine from a request blocked behind the abuse.

Raw sockets, because http.client would refuse to send most of this."""

import os
import resource
import select
import socket
import time

import wslib
from wslib import test, check, check_eq, Fail, Skip, event

# A functional bound, not a benchmark: what it tells apart is a request
# answered (about 1 ms under ASan on a quiet 2-core VM; median 1-40 ms at
# load average 12-18 there) from a request blocked behind the abusive
# connections, which would wait for their --http-timeout (2 s in the
# slow-loris test, 60 s or never in the others). The bound is NORMAL_BOUND,
# or REFERENCE_FACTOR times the median of the same requests sent,
# interleaved, to a control server of the same data that nothing abuses
# (same run, same instant, same machine load) when that is larger, so
# that a machine busy enough to make every request slow does not fail the
# test; it never exceeds BLOCKED_BOUND, half the shortest --http-timeout
# used here, so a blocked request still fails it.
NORMAL_BOUND = 0.100
REFERENCE_FACTOR = 20
BLOCKED_BOUND = 1.0
HOST = b"Host: 127.0.0.1\r\n"
IDLE_CONNECTIONS = int(os.environ.get("WS_ABUSE_IDLE", "2000"))

LINES = [
    event("a1", "w1", "p1", "credit", "10.00"),
    event("a2", "w1", "p1", "debit", "2.50"),
    event("a3", "..", "p1", "credit", "1"),
]

_DATA = {}


def data():
    """A data directory holding LINES (shared by the servers of this script)."""
    if "ddir" not in _DATA:
        ddir = wslib.data_dir()
        path = wslib.write_lines(os.path.join(os.path.dirname(ddir), "abuse.jsonl"), LINES)
        wslib.replay_ok(ddir, [path])
        _DATA["ddir"] = ddir
    return _DATA["ddir"]


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 256)) if hard != resource.RLIM_INFINITY else max(soft, n + 256)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < n + 64:
        raise Skip("open-files limit %d is too low for %d connections" % (want, n))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Fail("no VmRSS for pid %d" % pid)


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_closed(s, timeout):
    """Everything the server sends until it closes (or `timeout` passes:
    then Fail). A reset counts as closed."""
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail("the server kept the connection open for %.0f s (got %r)" % (timeout, out[:200]))
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        except socket.timeout:
            continue
        if not chunk:
            return out
        out += chunk


def parse_responses(buf):
    """[(status, {header: value}, body)] of the complete responses in buf
    (Content-Length framing; HEAD answers have none: pass them separately)."""
    out = []
    while buf:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode("latin-1")
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        buf = rest[n:]
    return out


def exchange(port, raw, timeout=10.0):
    """Send raw bytes, half-close, return what came back until close. A
    request gets `Connection: close` unless raw already holds one
    (libmicrohttpd keeps a keep-alive connection open after a half-close)."""
    if b" HTTP/1.1" in raw.split(b"\r\n", 1)[0] and b"\r\n\r\n" in raw and b"Connection: close" not in raw:
        raw = raw.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
    s = connect(port)
    try:
        s.sendall(raw)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return read_until_closed(s, timeout)
    finally:
        s.close()


def status_of(port, raw):
    """The status of the answer to one request, or None when the server
    closed without answering."""
    out = exchange(port, raw)
    if not out:
        return None  # closed without an answer
    return int(out.split(b"\r\n", 1)[0].split()[1])


def normal_request(port):
    """A fresh connection's GET /balance/w1: (seconds, status)."""
    t0 = time.monotonic()
    st, _, body = wslib.http_request(port, "GET", "/balance/w1", timeout=10)
    dt = time.monotonic() - t0
    check_eq(200, st, "normal GET /balance/w1 (body %r)" % body[:200])
    return dt


def control_port():
    """The port of the control server (NORMAL_BOUND): `serve` of the same
    data, started once, never abused."""
    if "control" not in _DATA:
        _DATA["control"] = wslib.Server(data(), shared=True).start()
    return _DATA["control"].port


def normal_times(port, n=5):
    """n normal requests each to `port` and to the control server,
    interleaved: (sorted times, sorted control times)."""
    ctl = control_port()
    times, ctimes = [], []
    for _ in range(n):
        times.append(normal_request(port))
        ctimes.append(normal_request(ctl))
    return sorted(times), sorted(ctimes)


def normal_bound(control_seconds, floor=NORMAL_BOUND):
    """See NORMAL_BOUND."""
    return min(BLOCKED_BOUND, max(floor, REFERENCE_FACTOR * control_seconds))


def check_normal_fast(port, what):
    """The median of five fresh normal requests within normal_bound() of
    the control's median."""
    times, ctimes = normal_times(port)
    bound = normal_bound(ctimes[2])
    wslib.log("%s: normal requests took %s ms (control %s ms, bound %.0f ms)" % (
        what, ", ".join("%.1f" % (t * 1000) for t in times), ", ".join("%.1f" % (t * 1000) for t in ctimes),
        bound * 1000))
    check(times[2] < bound, "%s: a normal request took %.0f ms (median of 5; bound %.0f ms, control %.1f ms)" % (
        what, times[2] * 1000, bound * 1000, ctimes[2] * 1000))


def server(*extra):
    return wslib.Server(data(), extra_args=list(extra)).start()


def open_idle(port, n, prefix=b""):
    """n connections, each having sent `prefix` (maybe nothing)."""
    socks = []
    try:
        for _ in range(n):
            s = connect(port)
            if prefix:
                s.sendall(prefix)
            socks.append(s)
    except OSError as e:
        for s in socks:
            s.close()
        raise Fail("could not open connection %d of %d: %s" % (len(socks) + 1, n, e))
    return socks


def server_connections(pid, port):
    """How many TCP connections to `port` process `pid` holds open: its
    socket file descriptors that /proc/net/tcp{,6} lists with that local
    port in any state but LISTEN. A connection still waiting in the
    kernel's listen queue is not counted (the server has not accepted it),
    nor one the server has closed (libmicrohttpd releases a connection's
    per-address count before it closes the socket)."""
    inodes = set()
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            link = os.readlink(os.path.join(fddir, fd))
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = [l.split() for l in f.read().splitlines()[1:]]
        except OSError:
            continue
        for r in rows:
            if r[3] != "0A" and int(r[1].rsplit(":", 1)[1], 16) == port and r[9] in inodes:
                n += 1
    return n


def wait_server_connections(srv, n, what, timeout=30):
    """Poll until the server holds exactly n connections (accepted and
    counted, or released): the condition, not a guessed delay."""
    deadline = time.monotonic() + timeout
    while True:
        got = server_connections(srv.proc.pid, srv.port)
        if got == n:
            return
        if time.monotonic() > deadline:
            raise Fail("timed out after %.0f s waiting for %s: the server holds %d connections, want %d" % (
                timeout, what, got, n))
        time.sleep(wslib.POLL_INTERVAL)


def closed_by_server(socks, timeout):
    """Wait until the server has closed every socket in socks."""
    pending = list(socks)
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select(pending[:500], [], [], min(left, 0.5))
        for s in r:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                pending.remove(s)
    return True


# --------------------------------------------------------------- tests

@test
def listener_binds_loopback_by_default():
    """Without --listen, serve listens on 127.0.0.1:8000 only (checked in
    /proc/net/tcp: the listening socket's address is 127.0.0.1)."""
    p = wslib.spawn([wslib.require_binary(), "serve", "--data-dir", data()],
                    stdin=wslib.subprocess.DEVNULL, stdout=wslib.subprocess.PIPE, stderr=wslib.subprocess.STDOUT,
                    env={k: v for k, v in os.environ.items() if k != "WALLETSTREAM_LISTEN"})

    def listening():
        if p.poll() is not None:
            return "exited"
        with open("/proc/net/tcp") as f:
            rows = [l.split() for l in f.read().splitlines()[1:]]
        return [r[1] for r in rows if r[3] == "0A" and r[1].endswith(":1F40")] or None
    got = wslib.wait_until(listening, 30, "serve listening on port 8000")
    if got == "exited":
        out = p.stdout.read().decode("utf-8", "replace")
        if "in use" in out:
            raise Skip("port 8000 is taken on this machine: %s" % out.strip()[-200:])
        raise Fail("serve exited %s: %s" % (p.returncode, out[-500:]))
    wslib.stop_process(p)
    check_eq(["0100007F:1F40"], got, "listening sockets on port 8000 (hex address:port)")


@test
def thousands_of_idle_connections_do_not_block_a_normal_request():
    n = IDLE_CONNECTIONS
    raise_fd_limit(n + 100)
    srv = server("--max-connections", str(2 * n), "--http-timeout", "60")
    rss0 = rss_kib(srv.proc.pid)
    half = n // 2
    socks = open_idle(srv.port, half)  # silent
    socks += open_idle(srv.port, n - half, b"GET /balance/w1 HTTP/1.1\r\nHo")  # half a request
    try:
        # All of them accepted by the server (not still in the listen
        # queue, where they would cost it nothing) before measuring.
        wait_server_connections(srv, n, "%d idle connections accepted" % n, timeout=60)
        check_normal_fast(srv.port, "%d idle connections" % n)
        rss1 = rss_kib(srv.proc.pid)
        per = (rss1 - rss0) * 1024.0 / n
        wslib.log("RSS %d KiB -> %d KiB with %d idle connections (%.1f KiB each)" % (
            rss0, rss1, n, per / 1024))
        # Each connection may hold at most 32 KiB of request
        # (WS_HTTP_CONN_MEMORY); the idle ones hold far less.
        check(rss1 - rss0 < n * 32 + 64 * 1024, "RSS grew by %d KiB for %d connections" % (rss1 - rss0, n))
        check(srv.proc.poll() is None, "server died")
    finally:
        for s in socks:
            s.close()
    srv.stop_ok()


@test
def connection_limit_queues_new_connections_until_idle_ones_time_out():
    """At --max-connections, libmicrohttpd stops accepting: a new
    connection waits in the kernel's listen queue (holding no server
    memory) until an idle one is closed by --http-timeout, then it is
    answered."""
    # One thread: libmicrohttpd splits the limit between its threads.
    srv = server("--max-connections", "40", "--http-threads", "1", "--http-timeout", "2")
    # The readiness probe's connection counts until released.
    wait_server_connections(srv, 0, "the probe's connection released")
    socks = open_idle(srv.port, 40, b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Wait: ")
    # Until the 41st has been watched, each of the 40 sends one more byte
    # of its header every 0.5 s, so that none reaches --http-timeout
    # however slowly a busy machine lets this test run (on a loaded machine
    # accepting the 40 took longer than the timeout); then they fall
    # silent and time out.
    last = [time.monotonic()]

    def nudge():
        if time.monotonic() - last[0] >= 0.5:
            for s in socks:
                s.send(b"a")
            last[0] = time.monotonic()
    try:
        deadline = time.monotonic() + 30
        while server_connections(srv.proc.pid, srv.port) != 40:  # all accepted: the limit is reached
            check(time.monotonic() < deadline, "the server holds %d connections after 30 s, want 40" % (
                server_connections(srv.proc.pid, srv.port)))
            nudge()
            time.sleep(wslib.POLL_INTERVAL)
        extra = connect(srv.port)
        t0 = time.monotonic()
        extra.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
        while time.monotonic() - t0 < 1.0:  # the 41st watched for 1 s
            nudge()
            r, _, _ = select.select([extra], [], [], 0.1)
            check(not r, "a connection over the limit was answered while the 40 were open: %r" % (
                r and extra.recv(200)))
        # ... and the 40 were all still open meanwhile: the 41st waited
        # because of the limit (not accepted and held, not refused).
        check_eq(40, server_connections(srv.proc.pid, srv.port),
                 "connections the server holds after the 41st waited 1 s")
        t1 = time.monotonic()
        check(closed_by_server(socks, 30), "idle connections not closed after --http-timeout 2")
        out = read_until_closed(extra, 30)
        wslib.log("the queued connection was answered %.1f s after the 40 fell silent" % (time.monotonic() - t1))
        extra.close()
        check(out.startswith(b"HTTP/1.1 200"), "queued connection's answer: %r" % out[:80])
    finally:
        for s in socks:
            s.close()
    check_normal_fast(srv.port, "after the limit was reached")
    srv.stop_ok()


@test
def per_address_limit():
    """With --max-connections-per-ip 5 and five connections open from
    127.0.0.1, a sixth from the same address is refused: libmicrohttpd
    accepts it and closes it at once, without reading it and without an
    answer. What the client sees of that close depends on timing, and both
    forms are the refusal: an orderly close (EOF) when the close came
    before the request reached the server, a reset when the request was
    already there unread (the kernel resets a socket closed with unread
    data), also on the send. Any byte of an answer, or the connection kept
    open, fails. The five are released when closed, and the address is
    served again."""
    srv = server("--max-connections-per-ip", "5", "--http-threads", "1")
    # The readiness probe's connection counts for 127.0.0.1 until the
    # server has cleaned it up: under load that can come after the test's
    # own connections arrive, and one of the five would be refused.
    wait_server_connections(srv, 0, "the readiness probe's connection released")
    socks = open_idle(srv.port, 5)
    try:
        # The five must be accepted (and so counted) before the sixth is
        # tried: connections are accepted from the listen queue in order,
        # but wait until the server holds them rather than assume it.
        wait_server_connections(srv, 5, "five idle connections accepted")
        extra = connect(srv.port)
        forms = []
        try:
            extra.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n")
        except (ConnectionResetError, BrokenPipeError) as e:  # refused before the send
            forms.append("send: %s" % type(e).__name__)
        extra.settimeout(30)
        try:
            got = extra.recv(65536)
            forms.append("recv: EOF" if got == b"" else "recv: %r" % got[:200])
        except ConnectionResetError:
            got = b""
            forms.append("recv: reset")
        except socket.timeout:
            raise Fail("the 6th connection from one address was kept open for 30 s")
        extra.close()
        wslib.log("6th connection refused: %s" % ", ".join(forms))
        check_eq(b"", got, "answer on the 6th connection from one address")
        # Refused, not kept: the server holds the five and only them (its
        # socket of the 6th can outlive the close the client saw by a
        # moment: 1 run in 30 at load 15 counted it once).
        wait_server_connections(srv, 5, "the server to hold the five after refusing the 6th")
    finally:
        for s in socks:
            s.close()
    # Closing the five releases the address's count: once the server has
    # let them go, a new connection from it is answered (and not before,
    # when it could still be refused as the sixth).
    wait_server_connections(srv, 0, "the five closed connections released")
    st, _, body = wslib.http_request(srv.port, "GET", "/healthz")
    check_eq(200, st, "GET /healthz once the connections closed (body %r)" % body[:200])
    srv.stop_ok()


@test
def slow_loris_headers():
    """Connections that send a partial header and stall are closed after
    --http-timeout; connections trickling a header byte by byte do not
    delay other requests; a header grown past 32 KiB gets 431."""
    srv = server("--http-timeout", "2")
    stalled = open_idle(srv.port, 200, b"GET /balance/w1 HTTP/1.1\r\n" + HOST + b"X-Slow: ")
    trickle = open_idle(srv.port, 200, b"GET /balance/w1 HTTP/1.1\r\n" + HOST + b"X-Slow: ")
    try:
        deadline = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < deadline:  # one byte per trickling connection per round
            for s in trickle:
                s.send(b"a")
            if i % 5 == 0:
                (one,), (ctl,) = normal_times(srv.port, 1)  # a single request: five times the floor
                check(one < normal_bound(ctl, 5 * NORMAL_BOUND),
                      "a normal request stalled behind slow clients (%.0f ms, control %.1f ms)" % (
                          one * 1000, ctl * 1000))
            i += 1
            time.sleep(0.05)
        check_normal_fast(srv.port, "200 stalled + 200 trickling connections")
        check(closed_by_server(stalled, 30), "stalled connections not closed after --http-timeout 2")
    finally:
        for s in stalled + trickle:
            s.close()
    big = connect(srv.port)
    big.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Slow: ")
    try:
        for _ in range(40):
            big.sendall(b"a" * 1024)
    except OSError:
        pass
    out = read_until_closed(big, 10)
    big.close()
    check(out.startswith(b"HTTP/1.1 431"), "header past 32 KiB: %r" % out[:80])
    srv.stop_ok()


@test
def long_urls_and_headers():
    srv = server()
    p = srv.port
    check_eq(414, status_of(p, b"GET /balance/" + b"x" * 100000 + b" HTTP/1.1\r\n" + HOST + b"\r\n"), "100 kB URL")
    check_eq(414, status_of(p, b"GET /balance/" + b"%41" * 12000 + b" HTTP/1.1\r\n" + HOST + b"\r\n"), "36 kB URL")
    check_eq(400, status_of(p, b"GET /balance/" + b"x" * 257 + b" HTTP/1.1\r\n" + HOST + b"\r\n"), "257-byte id")
    check_eq(431, status_of(p, b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: " + b"a" * 40000 + b"\r\n\r\n"),
             "40 kB header")
    many = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 30) for i in range(2000))
    check_eq(431, status_of(p, b"GET /healthz HTTP/1.1\r\n" + HOST + many + b"\r\n"), "2000 headers")
    check_normal_fast(p, "after long requests")
    srv.stop_ok()


@test
def invalid_percent_encoding_nul_and_dot_dot():
    srv = server()
    p = srv.port

    def get(path):
        return parse_responses(exchange(p, b"GET " + path + b" HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"))

    for path in (b"/balance/%", b"/balance/%2", b"/balance/%zz", b"/balance/%G0", b"/balance/a%",
                 b"/balance/%00", b"/balance/a%00b", b"/balance/%0a", b"/balance/%C3", b"/balance/%FF",
                 b"/top_credits/%ZZ"):
        r = get(path)
        check(r and r[0][0] == 400 and b"invalid_id" in r[0][2], "GET %r: %r" % (path, r))
    r = get(b"/top_credits/p1?currency=%ZZ")
    check(r and r[0][0] == 400 and b"invalid_currency" in r[0][2], "bad ?currency=: %r" % r)
    # `..` is an ordinary id character sequence: no path is normalised,
    # nothing outside the routes is reachable.
    r = get(b"/balance/..")
    check(r and r[0][0] == 200 and b'"wallet_id":".."' in r[0][2], "/balance/..: %r" % r)
    for path in (b"/balance/../metrics", b"/balance/%2e%2e%2fmetrics", b"/balance/..%2F..%2Fetc%2Fpasswd"):
        r = get(path)
        check(r and r[0][0] == 404 and b"wallet_not_found" in r[0][2], "GET %r: %r" % (path, r))
    for path in (b"/x/../healthz", b"/../metrics", b"/%2e%2e/healthz", b"/healthz/..", b"//healthz"):
        r = get(path)
        check(r and r[0][0] == 404 and b'"not_found"' in r[0][2], "GET %r: %r" % (path, r))
    # A raw NUL byte: libmicrohttpd 0.9.75 hands the path over as a C
    # string, cut at the NUL; the answer is the one for the path before it
    # (docs/DECISIONS.md). No crash, no read past the cut.
    r = get(b"/balance/w\x001")
    check(r and r[0][0] == 404 and b'"wallet_id":"w"' in r[0][2], "raw NUL in path: %r" % r)
    r = get(b"/hea\x00lthz")
    check(r and r[0][0] == 404, "raw NUL in route: %r" % r)
    r = parse_responses(exchange(p, b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n"))
    check(r and r[0][0] == 200, "NUL in a header value: %r" % r)
    check_normal_fast(p, "after malformed paths")
    srv.stop_ok()


@test
def pipelined_requests_answered_in_order():
    srv = server()
    reqs = []
    for i in range(100):
        path = [b"/balance/w1", b"/average_daily_debit/w1", b"/top_credits/p1", b"/balance/nope", b"/healthz"][i % 5]
        reqs.append(b"GET " + path + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    reqs.append(b"GET /healthz HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
    got = parse_responses(exchange(srv.port, b"".join(reqs), timeout=30))
    check_eq(101, len(got), "responses to 101 pipelined requests")
    want = [200, 200, 200, 404, 200]
    check_eq([want[i % 5] for i in range(100)] + [200], [g[0] for g in got], "statuses in order")
    check(b'"wallet_id":"w1"' in got[0][2] and b'"balance":7.50' in got[0][2], "first answer: %r" % got[0][2])
    check(b"wallet_not_found" in got[3][2], "fourth answer: %r" % got[3][2])
    srv.stop_ok()


@test
def unsupported_methods_and_bodies():
    srv = server()
    p = srv.port
    for m in (b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"FOO", b"G@T"):
        r = parse_responses(exchange(p, m + b" /balance/w1 HTTP/1.1\r\n" + HOST + b"\r\n"))
        check(r and r[0][0] == 405 and r[0][1].get("allow") == "GET, HEAD", "%s: %r" % (m, r))
    # A body is never read: the answer comes at once and the connection
    # closes, even when the body announced never arrives.
    for raw in (b"POST /balance/w1 HTTP/1.1\r\n" + HOST + b"Content-Length: 1000000000\r\n\r\nabc",
                b"PUT /healthz HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"):
        s = connect(p)
        s.sendall(raw)  # no half-close: the client keeps "sending"
        t0 = time.monotonic()
        out = read_until_closed(s, 10)
        s.close()
        check(out.startswith(b"HTTP/1.1 405"), "request with an endless body: %r" % out[:80])
        check(time.monotonic() - t0 < 5, "answer to a request with an endless body took %.1f s" % (
            time.monotonic() - t0))
    s = connect(p)
    s.sendall(b"GET /balance/w1 HTTP/1.1\r\n" + HOST + b"Content-Length: 1000000000\r\n\r\nabc")
    out = read_until_closed(s, 10)
    s.close()
    check(out.startswith(b"HTTP/1.1 200"), "GET with an endless body: %r" % out[:80])
    check_eq(505, status_of(p, b"GET /healthz HTTP/2.0\r\n" + HOST + b"\r\n"), "HTTP/2.0 request line")
    check_eq(None, status_of(p, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 60 + b"\r\n\r\n"),
             "binary junk (a TLS hello) to the plain port: closed without an answer")
    check_normal_fast(p, "after unsupported methods")
    srv.stop_ok()


@test
def memory_stays_bounded_under_repeated_abuse():
    """Five rounds of 300 connections each sending 16 KiB of header and
    stalling, then closed by the client: RSS after the last round is within
    a bound of RSS after the first (no growth per round)."""
    # AddressSanitizer keeps freed memory in quarantine (256 MiB by
    # default), which would look like growth: keep it small here.
    asan = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=4"
    try:
        srv = server("--max-connections", "1000")
    finally:
        if asan is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = asan
    chunk = b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: " + b"a" * (16 * 1024)
    after = []
    for _ in range(5):
        socks = open_idle(srv.port, 300, chunk)
        check_normal_fast(srv.port, "300 connections holding 16 KiB each")
        for s in socks:
            s.close()
        wslib.wait_until(lambda: wslib.http_request(srv.port, "GET", "/healthz")[0] == 200, 10, "service")
        after.append(rss_kib(srv.proc.pid))
    wslib.log("RSS after each round (KiB): %s" % after)
    check(after[-1] - after[0] < 32 * 1024, "RSS grew from %d to %d KiB over the rounds" % (after[0], after[-1]))
    srv.stop_ok()


if __name__ == "__main__":
    wslib.main()
