#!/usr/bin/env python3
"""Bearer-token authentication (--api-token-file) and HTTPS (--tls-cert,
--tls-key) of `serve` and `run` (issue 8 §5, docs/TESTING.md "HTTP abuse
and limits"). The certificate is self-signed, made with openssl at test
time; the client is Python's ssl module, verifying it."""

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time

import wslib
from wslib import test, check, check_eq, Fail, event

TOKEN = "wS-t0ken.with~chars+/="
LINES = [event("t1", "w1", "p1", "credit", "10.00")]

_STATE = {}


def data():
    if "ddir" not in _STATE:
        ddir = wslib.data_dir()
        path = wslib.write_lines(os.path.join(os.path.dirname(ddir), "auth.jsonl"), LINES)
        wslib.replay_ok(ddir, [path])
        _STATE["ddir"] = ddir
    return _STATE["ddir"]


def token_file(content=TOKEN + "\r\n"):
    path = os.path.join(wslib.tempdir(), "token")
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, 0o600)
    return path


def certificate(name="127.0.0.1"):
    """(cert.pem, key.pem): a fresh self-signed certificate for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise Fail("openssl not found (scripts/install-deps installs it)")
    d = wslib.tempdir()
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    p = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=" + name, "-addext", "subjectAltName=IP:127.0.0.1"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise Fail("openssl req failed: %s" % p.stderr[-500:])
    return cert, key


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


def https_request(port, cafile, method, path, headers=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=wslib.HTTP_TIMEOUT, context=tls_context(cafile))
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def bearer(tok=TOKEN):
    return {"Authorization": "Bearer " + tok}


def usage_error(cmd, args, *needles):
    """`walletstream CMD ARGS` exits 2 within the deadline, with every
    needle in its standard error."""
    argv = [wslib.require_binary(), cmd, "--data-dir", data(), "--listen", "127.0.0.1:0"] + list(args)
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60, env=wslib.clean_env())
    except subprocess.TimeoutExpired:
        raise Fail("%s did not exit within 60 s" % " ".join(argv))
    err = p.stderr.decode("utf-8", "replace")
    check_eq(2, p.returncode, "exit status of %s %s (stderr %r)" % (cmd, " ".join(args), err[-300:]))
    for n in needles:
        check(n in err, "%s %s: %r not in stderr %r" % (cmd, " ".join(args), n, err[-300:]))


def start_tls(cmd, args, cafile):
    """`walletstream CMD` with HTTPS on a free port, ready when /healthz
    answers over TLS. Returns (proc, port)."""
    port = wslib.free_port()
    errf = open(os.path.join(wslib.tempdir(), "out"), "w+b")
    argv = [wslib.require_binary(), cmd, "--data-dir", args.pop(0), "--listen", "127.0.0.1:%d" % port] + args
    p = wslib.spawn(argv, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, env=wslib.clean_env())

    def ready():
        if p.poll() is not None:
            raise Fail("%s exited %s: %s" % (cmd, p.returncode, wslib.file_text(errf)[-1500:]))
        try:
            return https_request(port, cafile, "GET", "/healthz")[0] == 200
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return False
    wslib.wait_until(ready, wslib.READY_TIMEOUT, "%s answering /healthz over HTTPS" % cmd)
    return p, port


# --------------------------------------------------------------- tests

@test
def token_required_on_every_route_but_the_probes():
    with wslib.Server(data(), extra_args=["--api-token-file", token_file()]) as srv:
        p = srv.port
        st, h, body = wslib.http_request(p, "GET", "/balance/w1")
        check_eq(401, st, "no Authorization")
        check(h.get("www-authenticate", "").startswith("Bearer"), "WWW-Authenticate %r" % h.get("www-authenticate"))
        check(h.get("content-type", "").startswith("application/json"), "Content-Type %r" % h.get("content-type"))
        check_eq(b'{"error":"unauthorized"}', body, "401 body")
        for value in ("Bearer", "Bearer ", "Bearer wrong", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
                      "Bearer x" + TOKEN, "Basic " + TOKEN, TOKEN, "Bearer " + TOKEN.upper()):
            st, h, _ = wslib.http_request(p, "GET", "/balance/w1", headers={"Authorization": value})
            check_eq(401, st, "Authorization %r" % value)
            check("www-authenticate" in h, "no WWW-Authenticate with Authorization %r" % value)
        for path in ("/metrics", "/openapi.json", "/top_credits/p1", "/average_daily_debit/w1", "/nowhere",
                     "/balance/%zz"):
            check_eq(401, wslib.http_request(p, "GET", path)[0], "GET %s without token" % path)
        check_eq(401, wslib.http_request(p, "HEAD", "/balance/w1")[0], "HEAD without token")
        check_eq(401, wslib.http_request(p, "DELETE", "/balance/w1")[0], "DELETE without token")
        for path in ("/healthz", "/readyz"):
            check_eq(200, wslib.http_request(p, "GET", path)[0], "GET %s without token (a probe)" % path)

        st, _, body = wslib.http_request(p, "GET", "/balance/w1", headers=bearer())
        check_eq(200, st, "right token (body %r)" % body[:200])
        check(b'"balance":10.00' in body, "balance body %r" % body)
        st, _, _ = wslib.http_request(p, "GET", "/balance/w1", headers={"Authorization": "bearer  " + TOKEN})
        check_eq(200, st, "scheme is case-insensitive, extra spaces allowed")
        check_eq(200, wslib.http_request(p, "GET", "/metrics", headers=bearer())[0], "/metrics with token")
        check_eq(404, wslib.http_request(p, "GET", "/nowhere", headers=bearer())[0], "unknown route with token")
        check_eq(405, wslib.http_request(p, "DELETE", "/balance/w1", headers=bearer())[0], "DELETE with token")
        check_eq(400, wslib.http_request(p, "GET", "/balance/%zz", headers=bearer())[0], "bad id with token")
        m = wslib.Metrics(wslib.http_request(p, "GET", "/metrics", headers=bearer())[2].decode())
        n401 = m.get("walletstream_http_requests_total", route="/balance/{wallet_id}", status="401")
        check(n401 is not None and n401 >= 10, "401 answers of /balance in /metrics: %r" % n401)


@test
def token_file_errors_exit_2():
    d = wslib.tempdir()
    missing = os.path.join(d, "missing")
    for content, needle in (("", "empty"), ("  \n\n", "no token"), ("two words\n", "visible ASCII"),
                            ("a\nb\n", "visible ASCII")):
        for cmd in ("serve", "run"):
            usage_error(cmd, ["--api-token-file", token_file(content)], "--api-token-file", needle)
    for cmd in ("serve", "run"):
        usage_error(cmd, ["--api-token-file", missing], "cannot read --api-token-file", missing,
                    "No such file")
    usage_error("serve", ["--api-token-file", d], "--api-token-file")


@test
def https_with_token():
    cert, key = certificate()
    p, port = start_tls("serve", [data(), "--tls-cert", cert, "--tls-key", key, "--api-token-file", token_file()],
                        cert)
    st, h, body = https_request(port, cert, "GET", "/balance/w1", headers=bearer())
    check_eq(200, st, "HTTPS GET with token (body %r)" % body[:200])
    check(b'"wallet_id":"w1"' in body and b'"balance":10.00' in body, "body %r" % body)
    st, h, body = https_request(port, cert, "GET", "/balance/w1")
    check_eq(401, st, "HTTPS GET without token")
    check(h.get("www-authenticate", "").startswith("Bearer"), "WWW-Authenticate over HTTPS")
    check_eq(200, https_request(port, cert, "GET", "/readyz")[0], "HTTPS /readyz without token")
    # A client that does not trust the certificate refuses it.
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ssl.create_default_context())
        conn.request("GET", "/healthz")
        conn.getresponse()
        raise Fail("an untrusting client accepted the self-signed certificate")
    except ssl.SSLError:
        pass
    # Plain HTTP to the HTTPS port gets no HTTP answer.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        out = s.recv(100)
    except (ConnectionResetError, socket.timeout):
        out = b""
    s.close()
    check(not out.startswith(b"HTTP/"), "plain HTTP on the HTTPS port answered %r" % out[:60])
    check_eq(0, wslib.stop_process(p), "serve exit status")


@test
def run_serves_https():
    """The options apply to run too (embedded broker, empty data)."""
    cert, key = certificate()
    ddir = wslib.data_dir()
    p, port = start_tls("run", [ddir, "--embedded-broker", "--tls-cert", cert, "--tls-key", key,
                                "--api-token-file", token_file()], cert)
    st, _, body = https_request(port, cert, "GET", "/balance/w1", headers=bearer())
    check_eq(404, st, "run over HTTPS, empty state (body %r)" % body[:200])
    check_eq(401, https_request(port, cert, "GET", "/balance/w1")[0], "run over HTTPS without token")
    check_eq(0, wslib.stop_process(p), "run exit status")


@test
def tls_file_errors_exit_2():
    cert, key = certificate()
    cert2, key2 = certificate("other")
    d = wslib.tempdir()
    garbage = os.path.join(d, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    missing = os.path.join(d, "missing.pem")
    for cmd in ("serve", "run"):
        usage_error(cmd, ["--tls-cert", cert], "both --tls-cert and --tls-key")
        usage_error(cmd, ["--tls-key", key], "both --tls-cert and --tls-key")
        usage_error(cmd, ["--tls-cert", missing, "--tls-key", key], "cannot read --tls-cert", "No such file")
        usage_error(cmd, ["--tls-cert", cert, "--tls-key", missing], "cannot read --tls-key")
        usage_error(cmd, ["--tls-cert", cert, "--tls-key", key2], "cannot serve HTTPS", "do not match")
    usage_error("serve", ["--tls-cert", garbage, "--tls-key", key], "cannot serve HTTPS")
    usage_error("serve", ["--tls-cert", key, "--tls-key", cert], "cannot serve HTTPS")
    empty = os.path.join(d, "empty.pem")
    open(empty, "w").close()
    usage_error("serve", ["--tls-cert", empty, "--tls-key", key], "--tls-cert", "empty")


if __name__ == "__main__":
    wslib.main()
