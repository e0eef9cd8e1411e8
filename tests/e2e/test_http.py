#!/usr/bin/env python3
"""SPEC §5 HTTP API details: percent-decoded ids and the id rule, error
answers (400/404/405), HEAD, ?currency=, Content-Type, operations routes.
One `serve` is shared by the tests of this script."""

import os
import signal
import threading

import wslib
from wslib import test, check, check_eq, check_no_diffs, Fail, event
import reference as ref

LONG = "x" * 256

LINES = [
    event("h1", "a/b", "multi", "credit", "10.00"),
    event("h2", "café", "p/ü", "credit", "1.5", "EUR"),
    event("h3", "w+1", "multi", "credit", "1", "USD"),
    event("h4", "w 1", "multi", "credit", "2.000", "USD"),
    event("h5", LONG, "multi", "credit", "3", "USD"),
    event("h6", "w%1", "multi", "debit", "0.5"),
    event("h7", "café", "multi", "credit", "7.5", "EUR"),
    event("h8", "gb", "multi", "credit", "9", "GBP"),
    event("h9", "a/b", "debits-only", "debit", "1.00"),
    event("h10", "\U0001F4B0", "multi", "credit", "4.25"),
]

_SRV = {}


def srv():
    """The shared server over a data directory holding LINES."""
    if "srv" not in _SRV:
        ddir = wslib.data_dir()
        path = wslib.write_lines(os.path.join(os.path.dirname(ddir), "http.jsonl"), LINES)
        wslib.replay_ok(ddir, [path], {"records": len(LINES), "applied": len(LINES), "duplicate": 0, "rejected": 0})
        _SRV["model"], _ = ref.run(LINES)
        _SRV["srv"] = wslib.Server(ddir, shared=True).start()
    return _SRV["srv"]


def model():
    srv()
    return _SRV["model"]


def get_error(path, status):
    s, headers, body = srv().get(path)
    check_eq(status, s, "GET %s status (body %r)" % (path, body[:200]))
    check(headers.get("content-type", "").startswith("application/json"),
          "GET %s: Content-Type %r" % (path, headers.get("content-type")))
    try:
        return ref.parse_response(body).get("error")
    except (ValueError, AttributeError):
        raise Fail("GET %s: error body is not a JSON object: %r" % (path, body[:200]))


@test
def all_figures_match_reference():
    m = model()
    check_no_diffs(wslib.check_all_figures(srv(), m), "figures")


@test
def percent_encoded_slash_finds_wallet():
    st, body = srv().get_json("/balance/a%2Fb")
    check_eq(200, st, "status")
    check_eq("a/b", body["wallet_id"], "wallet_id")
    check_eq("9.00", body["balance"].text, "balance")


@test
def percent_encoded_utf8_finds_wallet():
    for path in ("/balance/caf%C3%A9", "/balance/caf%c3%a9", "/average_daily_debit/caf%C3%A9",
                 "/balance/%F0%9F%92%B0"):
        st, body = srv().get_json(path)
        check_eq(200, st, "GET %s status" % path)
    st, body = srv().get_json("/balance/caf%C3%A9")
    check_eq("café", body["wallet_id"], "wallet_id")
    check_eq("EUR", body["currency"], "currency")


@test
def plus_and_space_and_percent_are_distinct_ids():
    for path, wallet, bal in (("/balance/w+1", "w+1", "1"), ("/balance/w%2B1", "w+1", "1"),
                              ("/balance/w%201", "w 1", "2.000"), ("/balance/w%251", "w%1", "-0.5")):
        st, body = srv().get_json(path)
        check_eq(200, st, "GET %s status" % path)
        check_eq(wallet, body["wallet_id"], "GET %s wallet_id" % path)
        check_eq(bal, body["balance"].text, "GET %s balance" % path)


@test
def id_of_256_bytes_accepted_and_longer_rejected():
    st, body = srv().get_json("/balance/" + LONG)
    check_eq(200, st, "256-byte id")
    check_eq(LONG, body["wallet_id"], "wallet_id")
    for path in ("/balance/" + "x" * 300, "/balance/" + "x" * 257, "/average_daily_debit/" + "y" * 300,
                 "/top_credits/" + "z" * 300, "/balance/" + "%C3%A9" * 129):
        check_eq("invalid_id", get_error(path, 400), "GET %s... error" % path[:40])
    s, _, body = srv().get("/balance/" + "x" * 300)
    check_eq(b'{"error":"invalid_id"}', body.strip(), "400 body as SPEC prints it")


@test
def invalid_percent_encoding_rejected():
    for path in ("/balance/%zz", "/balance/a%zzb", "/balance/%C3", "/balance/a%C3", "/balance/%", "/balance/a%2",
                 "/balance/%C3%28", "/balance/%C0%AF", "/balance/%ED%A0%80", "/balance/%FF",
                 "/top_credits/%zz", "/average_daily_debit/%C3"):
        check_eq("invalid_id", get_error(path, 400), "GET %s error" % path)


@test
def control_characters_in_ids_rejected():
    for path in ("/balance/%00", "/balance/a%00b", "/balance/%1F", "/balance/a%09b", "/balance/%7F",
                 "/balance/%C2%85", "/top_credits/%00"):
        check_eq("invalid_id", get_error(path, 400), "GET %s error" % path)


@test
def unknown_route_is_404_not_found():
    for path in ("/nope", "/index.html", "/balances/a", "/balance", "/top_credit/multi", "/healthz/x", "/BALANCE/gb"):
        check_eq("not_found", get_error(path, 404), "GET %s error" % path)


@test
def unknown_wallet_and_product_are_404():
    check_eq("wallet_not_found", get_error("/balance/nobody", 404), "balance")
    st, body = srv().get_json("/balance/caf%C3%A9x")
    check_eq("café" + "x", body.get("wallet_id", "café" + "x"), "a 404 that names the id names it decoded")
    check_eq("wallet_not_found", get_error("/average_daily_debit/nobody", 404), "average_daily_debit")
    check_eq("product_not_found", get_error("/top_credits/nothing", 404), "top_credits")
    check_eq("product_not_found", get_error("/top_credits/nothing?currency=USD", 404), "top_credits with currency")
    check_eq("wallet_not_found", get_error("/balance/multi", 404), "a product is not a wallet")
    check_eq("product_not_found", get_error("/top_credits/gb", 404), "a wallet is not a product")


@test
def other_methods_are_405_with_allow():
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/balance/a%2Fb", "/top_credits/multi", "/average_daily_debit/gb", "/healthz"):
            st, headers, body = srv().http.request(method, path, body=b"{}" if method != "DELETE" else None,
                                                   headers={"Content-Type": "application/json"})
            check_eq(405, st, "%s %s status" % (method, path))
            allow = [m.strip() for m in headers.get("allow", "").split(",")]
            check("GET" in allow and "HEAD" in allow, "%s %s: Allow %r" % (method, path, headers.get("allow")))
            if body.strip():
                check(headers.get("content-type", "").startswith("application/json"),
                      "%s %s: Content-Type %r" % (method, path, headers.get("content-type")))


@test
def other_methods_on_unknown_paths_are_404():
    for method in ("POST", "DELETE"):
        st, _, body = srv().http.request(method, "/nope")
        check_eq(404, st, "%s /nope status" % method)
        check_eq("not_found", ref.parse_response(body).get("error"), "%s /nope error" % method)


@test
def head_same_as_get_without_body():
    for path in ("/balance/a%2Fb", "/average_daily_debit/gb", "/top_credits/multi", "/balance/nobody",
                 "/nope", "/balance/%zz", "/healthz", "/readyz"):
        gs, gh, gb = srv().get(path)
        hs, hh, hb = srv().http.request("HEAD", path)
        check_eq(gs, hs, "HEAD %s status" % path)
        check_eq(b"", hb, "HEAD %s body" % path)
        for h in set(gh) | set(hh):
            if h in ("date", "connection", "keep-alive"):
                continue
            check_eq(gh.get(h), hh.get(h), "HEAD %s header %s" % (path, h))
        if "content-length" in gh:
            check_eq(str(len(gb)), gh["content-length"], "GET %s Content-Length" % path)


@test
def top_credits_currency_filter():
    m = model()
    full = m.top_credits("multi")
    check_eq(["EUR", "GBP", "USD"], sorted({e["currency"] for e in full["top_credits"]}), "model currencies")
    diffs = wslib.check_figure(srv(), "top_credits", "multi", full)
    for q, cur in (("?currency=USD", "USD"), ("?currency=usd", "USD"), ("?currency=Eur", "EUR"),
                   ("?currency=GBP", "GBP")):
        diffs += wslib.check_figure(srv(), "top_credits", "multi", m.top_credits("multi", cur), q)
    check_no_diffs(diffs, "currency filter")
    for q in ("?currency=US", "?currency=USDT", "?currency=", "?currency=U%24D", "?currency=12A"):
        check_eq("invalid_currency", get_error("/top_credits/multi" + q, 400), "GET /top_credits/multi%s" % q)
    st, body = srv().get_json("/top_credits/multi?currency=CHF")
    check_eq(200, st, "currency without credits")
    check_eq([], body["top_credits"], "currency without credits")
    st, body = srv().get_json("/top_credits/debits-only")
    check_eq(200, st, "product with only debits")
    check_eq({"product_id": "debits-only", "top_credits": []}, body, "product with only debits")


@test
def top_credits_grouped_by_currency_ascending():
    st, body = srv().get_json("/top_credits/multi")
    check_eq(200, st, "status")
    curs = [e["currency"] for e in body["top_credits"]]
    check_eq(sorted(curs), curs, "grouped by currency code ascending")
    usd = [e["amount"].text for e in body["top_credits"] if e["currency"] == "USD"]
    check_eq(["10.00", "4.25", "3", "2.000", "1"], usd, "USD amounts, each with its own scale")


@test
def content_type_json_everywhere():
    for path in ("/balance/gb", "/average_daily_debit/gb", "/top_credits/multi", "/balance/nobody",
                 "/top_credits/nothing", "/nope", "/balance/%00"):
        st, headers, body = srv().get(path)
        check(headers.get("content-type", "").startswith("application/json"),
              "GET %s: Content-Type %r" % (path, headers.get("content-type")))
        try:
            ref.parse_response(body)
        except ValueError:
            raise Fail("GET %s: body is not JSON: %r" % (path, body[:200]))


@test
def healthz_and_readyz():
    for path in ("/healthz", "/readyz"):
        st, _, body = srv().get(path)
        check_eq(200, st, "GET %s status (body %r)" % (path, body[:200]))


@test
def openapi_document():
    st, headers, body = srv().get("/openapi.json")
    check_eq(200, st, "status")
    doc = ref.parse_response(body)
    check(isinstance(doc, dict) and str(doc.get("openapi", "")).startswith("3."), "openapi version: %r" % body[:100])
    paths = doc.get("paths", {})
    for p in ("/balance/{wallet_id}", "/average_daily_debit/{wallet_id}", "/top_credits/{product_id}"):
        check(p in paths, "openapi paths lack %s (have %s)" % (p, sorted(paths)))


@test
def metrics_prometheus_text():
    st, headers, body = srv().get("/metrics")
    check_eq(200, st, "status")
    check(headers.get("content-type", "").startswith("text/plain"), "Content-Type %r" % headers.get("content-type"))
    text = body.decode("utf-8")
    check("# TYPE" in text, "no # TYPE line in %r" % text[:300])


@test
def concurrent_readers_get_exact_answers():
    """8 clients at once, each on its own keep-alive connection."""
    m = model()
    paths = [("balance", w) for w in sorted(m.wallets)] + [("top_credits", p) for p in sorted(m.products)]
    errors = []

    def client():
        h = wslib.Http(srv().port)
        try:
            for _ in range(25):
                for route, key in paths:
                    want = m.balance(key) if route == "balance" else m.top_credits(key)
                    st, _, body = h.request("GET", "/%s/%s" % (route, wslib.quote_id(key)))
                    if st != 200:
                        errors.append("%s/%s: status %d" % (route, key, st))
                    else:
                        errors.extend(ref.compare(want, ref.parse_response(body), "%s/%s" % (route, key)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("client: %r" % e)
        finally:
            h.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_no_diffs(errors, "concurrent reads")


@test
def serve_exits_0_on_sigint():
    s = wslib.Server(srv().ddir).start()
    check_eq(200, s.get("/healthz")[0], "healthz")
    rc = wslib.stop_process(s.proc, sig=signal.SIGINT)
    check_eq(0, rc, "exit status after SIGINT (output %r)" % s.output()[-1000:])


@test
def serve_exits_0_on_sigterm():
    s = srv()
    _SRV.pop("srv")
    s.stop_ok()


if __name__ == "__main__":
    wslib.main()
