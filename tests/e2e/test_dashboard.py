#!/usr/bin/env python3
"""The dashboard at / (issue 7), in a real headless Chromium driven by
Selenium: the page loads without console errors, shows readiness and the
event counters, looks up the seed example's wallet `b` and product1 with
their exact figures, and its counters move when events are produced.

Set WS_DASHBOARD_SCREENSHOT=path.png to keep a screenshot of the page."""
import json
import os
import subprocess

import wslib
from wslib import Fail, check, check_eq

wslib.use_system_python_for("selenium")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30  # seconds; the page refreshes every second

_state = {}


def browser():
    """One headless Chromium for the whole file (closed at exit)."""
    if "driver" in _state:
        return _state["driver"]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise Fail("python3-selenium is missing: run scripts/install-deps")
    for p in (CHROMIUM, CHROMEDRIVER):
        check(os.path.exists(p), "%s is missing: run scripts/install-deps" % p)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1440,1250", "--hide-scrollbars", "--no-first-run",
              "--user-data-dir=" + wslib.tempdir("ws-chromium-")):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    _state["driver"] = driver
    wslib.on_cleanup(driver.quit, shared=True)
    return driver


def runner():
    """`walletstream run` on the embedded broker with the seed example
    produced to it (shared by the tests of this file)."""
    if "runner" in _state:
        return _state["runner"]
    r = wslib.Runner(wslib.data_dir(), shared=True).start()
    wslib.on_cleanup(r.stop_ok, shared=True)
    produce(r, wslib.example("seed_transactions.jsonl"))
    r.wait_counted(9, what="seed records")
    _state["runner"] = r
    return r


def produce(r, path):
    p = subprocess.run([wslib.require_binary(), "produce", "--data-dir", r.ddir, path],
                       capture_output=True, timeout=60, env=wslib.clean_env())
    check(p.returncode == 0, "produce %s: %r" % (path, p.stderr[-500:]))


def console_errors(driver):
    """Console entries of level SEVERE since the last call (failed loads
    included: Chromium logs those too)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_for(driver, what, fn, timeout=WAIT):
    """Poll fn(driver) until it returns a true value."""
    return wslib.wait_until(lambda: fn(driver), timeout, what, interval=0.1)


def text_of(driver, element_id):
    from selenium.webdriver.common.by import By
    els = driver.find_elements(By.ID, element_id)
    return els[0].text if els else None


def open_dashboard():
    r = runner()
    d = browser()
    d.get("http://127.0.0.1:%d/" % r.port)
    wait_for(d, "the dashboard's first refresh",
             lambda d: int(d.find_element("tag name", "body").get_attribute("data-updates") or 0) >= 1)
    return r, d


def seed_expected():
    with open(wslib.example("seed_expected.json"), "rb") as f:
        return f.read().decode()


def exact(doc_text, route, key, field):
    """A figure of seed_expected.json as written there (75.00, not 75.0)."""
    import re
    doc = json.loads(doc_text)
    want = doc[route][key]
    # the printed text of the number, read from the file itself
    start = doc_text.index('"%s":' % key, doc_text.index('"%s"' % route))
    m = re.compile(r'"%s":\s*(-?[0-9.]+)' % field).search(doc_text, start)
    check(m is not None, "%s of %s/%s in seed_expected.json" % (field, route, key))
    return m.group(1), want


@wslib.test
def page_loads_without_console_errors():
    r, d = open_dashboard()
    errors = console_errors(d)
    check(not errors, "console errors: %s" % errors)
    check_eq("walletstream", d.title, "page title")
    wait_for(d, "readiness shown", lambda d: text_of(d, "ready-text") == "ready")
    wait_for(d, "the applied counter of the seed", lambda d: text_of(d, "count-applied") == "9")
    check_eq("embedded test broker %s connected" % r.bootstrap, text_of(d, "broker-text"), "broker state")
    # the test broker loses records: the page says so in its banner
    banner = text_of(d, "banner")
    check("5 MiB per partition" in banner and "--embedded-broker" in banner,
          "the embedded broker's banner: %r" % banner)
    for el in ("chart-events", "chart-commit", "chart-age", "reasons", "lag", "tables"):
        check(d.find_elements("id", el), "the page has #%s" % el)
    lag = text_of(d, "lag")
    for p in range(3):
        check("partition %d" % p in lag, "lag of partition %d shown: %r" % (p, lag))
    check("Wallets" in text_of(d, "tables"), "state tables shown")
    # every resource the page loaded came from this server
    urls = d.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    base = "http://127.0.0.1:%d/" % r.port
    check(all(u.startswith(base) for u in urls), "resources from elsewhere: %s" % urls)


@wslib.test
def wallet_lookup_shows_the_seed_balance():
    r, d = open_dashboard()
    doc = seed_expected()
    balance, want = exact(doc, "balance", "b", "balance")
    average, _ = exact(doc, "average_daily_debit", "b", "average_daily_debit")
    box = d.find_element("id", "wallet-input")
    box.clear()
    box.send_keys("b")
    d.find_element("id", "wallet-go").click()
    got = wait_for(d, "the balance of b", lambda d: text_of(d, "wallet-balance"))
    check_eq("%s %s" % (balance, want["currency"]), got, "balance shown for b")
    figures = text_of(d, "wallet-figures")
    check("%s USD" % average in figures, "average daily debit %s in %r" % (average, figures))
    check(str(want["transactions"]) in figures, "transactions in %r" % figures)
    # its statement: 6 lines, newest first, balances after exact; 10 a page
    rows = wait_for(d, "the statement of b", lambda d: [
        tr.text for tr in d.find_elements("css selector", "#wallet-statement tr")][1:])
    check_eq(want["transactions"], len(rows), "statement lines of b")
    check(rows[0].startswith("6 ") and rows[0].endswith("75.00 USD") and "+5.00" in rows[0],
          "newest line first with its balance after: %r" % rows[0])
    check(rows[-1].startswith("1 ") and rows[-1].endswith("15.00 USD"), "oldest line last: %r" % rows[-1])
    check(not d.find_elements("id", "wallet-older"), "no older page for 6 lines")
    # an unknown wallet: a message, not an exception
    box.clear()
    box.send_keys("no such wallet")
    d.find_element("id", "wallet-go").click()
    wait_for(d, "the not-found message", lambda d: "No such wallet" in (text_of(d, "wallet-result") or ""))
    console_errors(d)  # the 404 of that lookup is logged by Chromium; expected


@wslib.test
def product_lookup_shows_top_credits():
    r, d = open_dashboard()
    want = json.loads(seed_expected())["top_credits"]["product1"]["top_credits"]
    box = d.find_element("id", "product-input")
    box.clear()
    box.send_keys("product1")
    d.find_element("id", "product-go").click()
    wait_for(d, "the top credits of product1", lambda d: d.find_elements("css selector", "#product-table tr"))
    rows = [tr.text for tr in d.find_elements("css selector", "#product-table tr")][1:]
    check_eq(len(want), len(rows), "rows of product1")
    check(rows[0].startswith("35.00 USD") and "txfnv03" in rows[0], "best credit first: %r" % rows[0])


@wslib.test
def counters_move_after_producing_events():
    r, d = open_dashboard()
    console_errors(d)
    before = int(text_of(d, "count-applied").replace(",", ""))
    src = os.path.join(wslib.tempdir(), "more.jsonl")
    lines = [wslib.event("dash-%d" % i, "dash-wallet", "dash-product", "credit", "1.50")
             for i in range(20)] + [b'{"not json']
    wslib.write_lines(src, lines)
    produce(r, src)
    wait_for(d, "applied counter at %d" % (before + 20),
             lambda d: text_of(d, "count-applied") == str(before + 20))
    wait_for(d, "the rejected counter", lambda d: text_of(d, "count-rejected") == "1")
    wait_for(d, "invalid_json among the reject reasons", lambda d: "invalid_json" in text_of(d, "reasons"))
    # the events chart draws the burst (a line per outcome)
    wait_for(d, "a line in the events chart",
             lambda d: d.find_elements("css selector", "#chart-events path"))
    shot = os.environ.get("WS_DASHBOARD_SCREENSHOT")
    if shot:  # with both lookups filled in
        for box, button, value, shown in (("wallet-input", "wallet-go", "b", "wallet-balance"),
                                          ("product-input", "product-go", "product1", "product-table")):
            d.find_element("id", box).send_keys(value)
            d.find_element("id", button).click()
            wait_for(d, "lookup of %s" % value, lambda d: d.find_elements("id", shown))
        d.save_screenshot(shot)
    check(not console_errors(d), "console errors after refreshes: %s" % console_errors(d))


if __name__ == "__main__":
    wslib.main()
