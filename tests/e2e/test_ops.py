#!/usr/bin/env python3
"""Operations (SPEC §5, issue 7): /metrics is complete and passes
`promtool check metrics`; /openapi.json is a valid OpenAPI 3.0 document
(checked against the official JSON Schema of the OpenAPI Initiative) that
describes every route the server answers, every response and error body;
/status matches its schema; logs are one line per event, as text or JSON,
starting with a banner."""
import json
import os
import re
import subprocess

import wslib
from wslib import Fail, check, check_eq

wslib.use_system_python_for("jsonschema")

OAS_SCHEMA = "/usr/share/openapi-specification/schemas/v3.0/schema.json"
API_C = os.path.join(wslib.REPO, "src", "api.c")

_state = {}


def runner():
    """`walletstream run` (embedded broker) holding the seed example plus
    one rejected record, shared by the tests of this file."""
    if "runner" not in _state:
        r = wslib.Runner(wslib.data_dir(), shared=True).start()
        wslib.on_cleanup(r.stop_ok, shared=True)
        src = os.path.join(wslib.tempdir(), "in.jsonl")
        with open(wslib.example("seed_transactions.jsonl"), "rb") as f:
            seed = f.read()
        with open(src, "wb") as f:
            f.write(seed.rstrip(b"\n") + b"\n{\"broken\n")
        p = subprocess.run([wslib.require_binary(), "produce", "--data-dir", r.ddir, src],
                           capture_output=True, timeout=60, env=wslib.clean_env())
        check(p.returncode == 0, "produce: %r" % p.stderr[-500:])
        r.wait_counted(10, what="seed records and one broken line")
        _state["runner"] = r
    return _state["runner"]


def openapi(r=None):
    st, _, body = (r or runner()).get("/openapi.json")
    check_eq(200, st, "GET /openapi.json")
    return json.loads(body)


def promtool(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60)
    check(p.returncode == 0, "promtool check metrics failed (exit %d): %s" % (
        p.returncode, (p.stdout + p.stderr).decode()[-1500:]))


def json_schema(doc, schema):
    """An OpenAPI 3.0 schema object as a JSON Schema (draft 4) that resolves
    its #/components refs inside doc: `nullable` becomes a null type."""
    def conv(s):
        if isinstance(s, dict):
            s = {k: conv(v) for k, v in s.items()}
            if s.pop("nullable", False) and "type" in s:
                s["type"] = [s["type"], "null"]
            return s
        if isinstance(s, list):
            return [conv(v) for v in s]
        return s
    out = conv(schema)
    out["components"] = conv(doc["components"])
    return out


def check_body(doc, path, method, status, body, ctype):
    """The answer matches what the document says of (path, method, status)."""
    import jsonschema
    op = doc["paths"][path][method]
    check(str(status) in op["responses"], "%s %s: status %d undocumented (have %s)" % (
        method.upper(), path, status, sorted(op["responses"])))
    resp = op["responses"][str(status)]
    if "$ref" in resp:
        resp = doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
    if method == "head":
        return
    content = resp.get("content", {})
    media = [m for m in content if m.split(";")[0] == ctype.split(";")[0]]
    check(media, "%s %s %d: Content-Type %s undocumented (have %s)" % (method.upper(), path, status, ctype, list(content)))
    schema = content[media[0]]["schema"]
    if ctype.startswith("application/json"):
        jsonschema.validate(json.loads(body), json_schema(doc, schema))


def api_routes():
    """The route table of src/api.c: (path matched, prefix?, name)."""
    with open(API_C) as f:
        src = f.read()
    table = src[src.index("} routes[] = {"):]
    table = table[:table.index("};")]
    rows = re.findall(r'\{"([^"]+)", ([01]), R_\w+, "([^"]+)"\}', table)
    check(len(rows) >= 9, "route table of src/api.c not understood: %r" % table[:300])
    return [(p, m == "1", n) for p, m, n in rows]


def sample_path(template):
    return template.replace("{wallet_id}", "b").replace("{product_id}", "product1")


@wslib.test
def metrics_are_complete():
    r = runner()
    for path in ("/balance/b", "/balance/nobody", "/balance/%zz", "/nope"):
        r.get(path)
    r.http.request("POST", "/balance/b")
    m = r.metrics()
    check_eq(9.0, m.get("walletstream_events_total", outcome="applied"), "applied")
    check_eq(1.0, m.get("walletstream_rejected_total", reason="invalid_json"), "invalid_json")
    lag = m.by_label("walletstream_consumer_lag", "partition")
    check_eq(["0", "1", "2"], sorted(lag), "lag per partition")
    for name in ("walletstream_batch_commit_seconds_count", "walletstream_event_age_seconds_count"):
        check(m.get(name) >= 1, "%s counts the committed batches" % name)
    check(m.get("walletstream_state_bytes") > 0, "state bytes")
    check(m.get("walletstream_state_limit_bytes") >= m.get("walletstream_state_bytes"), "map limit")
    for table, n in (("wallets", 2), ("products", 2), ("transaction_ids", 9)):
        check_eq(float(n), m.get("walletstream_state_entries", table=table), "entries of %s" % table)
    check_eq(1.0, m.get("walletstream_broker_up"), "broker connection state")
    check_eq(1.0, m.get("walletstream_ready"), "ready")
    version = subprocess.run([wslib.require_binary(), "--version"], capture_output=True).stdout.split()[1].decode()
    check(('walletstream_build_info{version="%s"' % version) in m.text, "build info with version %s" % version)
    for route, status in (("/balance/{wallet_id}", "200"), ("/balance/{wallet_id}", "404"),
                          ("/balance/{wallet_id}", "400"), ("/balance/{wallet_id}", "405"), ("other", "404")):
        check(m.get("walletstream_http_requests_total", route=route, status=status) >= 1,
              "http requests of %s %s" % (route, status))


@wslib.test
def metrics_pass_promtool_in_run_and_serve():
    r = runner()
    promtool(r.metrics().text)
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
    with wslib.Server(ddir) as srv:
        srv.get("/balance/b")
        st, _, body = srv.get("/metrics")
        check_eq(200, st, "serve /metrics")
        promtool(body.decode())
        check(b"walletstream_ready 1" in body, "serve is ready")


@wslib.test
def openapi_is_valid_against_the_official_schema():
    import jsonschema
    doc = openapi()
    with open(OAS_SCHEMA) as f:
        oas = json.load(f)
    errors = sorted(jsonschema.Draft4Validator(oas).iter_errors(doc), key=lambda e: list(e.path))
    check(not errors, "%d errors, first: %s at %s" % (
        len(errors), errors[0].message[:300] if errors else "", list(errors[0].path) if errors else ""))
    # every $ref resolves inside the document
    refs = re.findall(r'"\$ref": ?"#/([^"]+)"', json.dumps(doc))
    for ref in refs:
        node = doc
        for part in ref.split("/"):
            check(isinstance(node, dict) and part in node, "unresolved $ref #/%s" % ref)
            node = node[part]
    version = subprocess.run([wslib.require_binary(), "--version"], capture_output=True).stdout.split()[1].decode()
    check_eq(version, doc["info"]["version"], "info.version is the binary's version")


@wslib.test
def every_route_answered_is_documented():
    r = runner()
    doc = openapi(r)
    documented = set(doc["paths"])
    routes = api_routes()
    names = {n for _, _, n in routes}
    check_eq(sorted(names), sorted(documented), "routes of src/api.c vs paths of /openapi.json")
    for path, prefix, name in routes:
        # the matched path and its documented template agree
        check(name == path or (prefix and name.startswith(path) and name[len(path):].startswith("{")),
              "route %s is documented as %s" % (path, name))
    # every route answers GET and HEAD as documented
    for template in sorted(documented):
        path = sample_path(template)
        for method in ("GET", "HEAD"):
            st, headers, body = r.http.request(method, path)
            check_body(doc, template, method.lower(), st, body, headers.get("content-type", ""))
            check(st == 200, "%s %s: %d %r" % (method, path, st, body[:200]))
    # and the route labels of the metrics are the documented paths
    labels = set(r.metrics().by_label("walletstream_http_requests_total", "route"))
    check(labels - {"other"} <= documented, "undocumented route labels: %s" % (labels - {"other"} - documented))


@wslib.test
def error_bodies_match_the_document():
    r = runner()
    doc = openapi(r)
    for method, path, template, status, code in (
            ("GET", "/balance/nobody", "/balance/{wallet_id}", 404, "wallet_not_found"),
            ("GET", "/average_daily_debit/nobody", "/average_daily_debit/{wallet_id}", 404, "wallet_not_found"),
            ("GET", "/top_credits/nothing", "/top_credits/{product_id}", 404, "product_not_found"),
            ("GET", "/balance/%zz", "/balance/{wallet_id}", 400, "invalid_id"),
            ("GET", "/top_credits/product1?currency=US", "/top_credits/{product_id}", 400, "invalid_currency"),
            ("GET", "/wallets/nobody/transactions", "/wallets/{wallet_id}/transactions", 404, "wallet_not_found"),
            ("GET", "/wallets/b/transactions?limit=0", "/wallets/{wallet_id}/transactions", 400, "invalid_limit"),
            ("GET", "/wallets/b/transactions?before=x", "/wallets/{wallet_id}/transactions", 400, "invalid_cursor"),
            ("GET", "/balance/b?min_offset=0", "/balance/{wallet_id}", 400, "invalid_min_offset"),
            ("GET", "/balance/b?min_offset=0:0&wait_ms=20000", "/balance/{wallet_id}", 400, "invalid_wait_ms"),
            ("GET", "/balance/b?min_offset=0:99999999&wait_ms=0", "/balance/{wallet_id}", 504, "not_yet_applied"),
            ("GET", "/top_credits/product1?min_offset=7:0", "/top_credits/{product_id}", 409,
             "partition_not_followed"),
            ("DELETE", "/readyz", "/readyz", 405, "method_not_allowed"),
            ("POST", "/status", "/status", 405, "method_not_allowed"),
            ("PUT", "/", "/", 405, "method_not_allowed")):
        st, headers, body = r.http.request(method, path)
        check_eq(status, st, "%s %s" % (method, path))
        check_eq(code, json.loads(body)["error"], "%s %s error code" % (method, path))
        check_body(doc, template, "get", st, body, headers.get("content-type", ""))
        if status == 405:
            check_eq("GET, HEAD", headers.get("allow"), "Allow of %s %s" % (method, path))
    st, headers, body = r.get("/no/such/route")
    check_eq(404, st, "unknown route")
    import jsonschema
    nf = doc["components"]["responses"]["NotFound"]["content"]["application/json"]["schema"]
    jsonschema.validate(json.loads(body), json_schema(doc, nf))


@wslib.test
def status_reports_figures_and_history():
    r = runner()
    st, _, body = r.get("/status")
    check_eq(200, st, "GET /status")
    s = json.loads(body)
    check_eq({"applied": 9, "duplicate": 0, "rejected": 1}, s["events"], "events")
    check_eq(1, s["rejected"]["invalid_json"], "rejected by reason")
    check(s["ready"] is True and "reason" not in s, "ready: %r" % s)
    check_eq(2, s["state"]["wallets"], "wallets")
    check_eq([0, 1, 2], [p["partition"] for p in s["consumer_lag"]], "lag partitions")
    # the sampler records the totals once a second
    def sampled():
        h = json.loads(r.get("/status")[2])["history"]
        return len(h["samples"]) >= 2 and h["samples"][-1][1] == 9
    wslib.wait_until(sampled, 30, "two samples of the history")


@wslib.test
def json_logs_are_one_object_per_line_with_a_banner():
    r = wslib.Runner(wslib.data_dir(), topic="ops_topic", group="ops-group",
                     extra_args=["--log-format", "json", "--log-level", "debug"]).start()
    r.stop_ok()
    lines = [l for l in r.stderr().splitlines() if l.strip()]
    check(lines, "no log lines")
    objs = []
    for line in lines:
        try:
            o = json.loads(line)
        except ValueError:
            raise Fail("not a JSON line: %r" % line)
        check(set(o) == {"time", "level", "subsystem", "message"}, "keys of %r" % o)
        check(o["level"] in ("error", "warn", "info", "debug"), "level of %r" % o)
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", o["time"]), "time of %r" % o)
        objs.append(o)
    banner = [o["message"] for o in objs if o["subsystem"] == "run" and "ops_topic" in o["message"]]
    check(banner, "no banner in %s" % [o["message"] for o in objs])
    version = subprocess.run([wslib.require_binary(), "--version"], capture_output=True).stdout.split()[1].decode()
    for part in (version, r.ddir, r.bootstrap + " (embedded)", "ops_topic", "ops-group", "127.0.0.1:%d" % r.port):
        check(part in banner[0], "%r in the banner %r" % (part, banner[0]))


@wslib.test
def text_logs_and_log_level():
    r = wslib.Runner(wslib.data_dir(), extra_args=["--log-level", "warn"]).start()
    r.stop_ok()
    for line in r.stderr().splitlines():
        check(re.match(r"^\S+Z (error|warn ) \w+: ", line), "a warn or error line: %r" % line)
    r = wslib.Runner(wslib.data_dir()).start()
    r.stop_ok()
    banner = [l for l in r.stderr().splitlines() if " info  run: walletstream " in l]
    check(banner and "(embedded)" in banner[0] and "transactions_topic" in banner[0],
          "text banner: %r" % r.stderr()[-800:])


@wslib.test
def failures_are_json_lines_in_json_format():
    p = subprocess.run([wslib.require_binary(), "serve", "--log-format", "json", "--data-dir",
                        os.path.join(wslib.tempdir(), "missing")], capture_output=True, timeout=30,
                       env=wslib.clean_env())
    check_eq(1, p.returncode, "exit code")
    lines = p.stderr.decode().splitlines()
    check_eq(1, len(lines), "one line: %r" % p.stderr)
    o = json.loads(lines[0])
    check_eq(("error", "serve"), (o["level"], o["subsystem"]), "level and subsystem")
    check("no data directory" in o["message"], "message: %r" % o)
    # replay's notes on stderr are log lines too
    src = os.path.join(wslib.tempdir(), "in.jsonl")
    wslib.write_lines(src, [b"", b'{"broken'])
    p = subprocess.run([wslib.require_binary(), "replay", "--log-format", "json", "--data-dir",
                        wslib.data_dir(), src], capture_output=True, timeout=60, env=wslib.clean_env())
    check_eq(0, p.returncode, "replay exit code: %r" % p.stderr)
    msgs = [json.loads(line)["message"] for line in p.stderr.decode().splitlines()]
    check(any("blank" in m for m in msgs) and any("dead-letters.jsonl" in m for m in msgs),
          "replay's notes as JSON lines: %r" % msgs)


if __name__ == "__main__":
    wslib.main()
