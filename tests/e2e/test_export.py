#!/usr/bin/env python3
"""`walletstream export` (issue 7 §4): the figures as the original
pipeline's three tables, and the wallets' statements as a fourth
(transactions, issue 15), in CSV for `cqlsh COPY ... FROM` and in JSON
lines.

Expected files are computed here from reference.py (the independent model),
with Python's own csv module as the RFC 4180 writer, and compared with the
exported bytes exactly:
- the seed and conformance examples, both formats;
- ids that need quoting (commas, quotes, apostrophes, backslashes, spaces at
  the ends, any UTF-8), extreme amounts and nanosecond instants; the CSV is
  also read back the way cqlsh COPY FROM reads it;
- export while `run` ingests from the embedded broker: every export is ONE
  committed batch: its figures equal the reference model fed exactly the
  records below the input offsets recorded in its manifest.json, and the
  wallets' transactions add up to its applied counter;
- a live backup with mdb_copy while `run` ingests (docs/OPERATIONS.md):
  `serve` on the copy answers the reference figures of the copy's offsets;
- bad arguments exit 2 with a message; a missing or foreign data directory
  or an unwritable --out exit 1 with a message and leave nothing behind.
"""

import csv
import io
import json
import os
import shutil
import subprocess
from decimal import Decimal

import wslib
from wslib import test, check, check_eq, check_no_diffs, Fail

wslib.use_system_python_for("xxhash")
import reference as ref
import gen_events

TOPIC = "transactions_topic"
TABLES = ("balances", "avg_debits", "top_credits", "transactions")

# -------------------------------------------------------------------------
# Expected files, from the reference model


def epoch_ms(inst):
    return inst[0] * 1000 + inst[1] // 1000000


def cql_str(s):
    return "'" + s.replace("'", "''") + "'"


def byte_order(keys):
    return sorted(keys, key=lambda s: s.encode("utf-8"))


def expected_csv(model):
    """{table: bytes}: RFC 4180 (Python's csv writer, CRLF), the columns of
    deploy/cassandra/schema.cql in Cassandra's order."""
    out = {}
    rows = {t: [] for t in TABLES}
    for wid in byte_order(model.wallets):
        w = model.wallets[wid]
        days = w.last_day - w.first_day + 1
        rows["balances"].append([wid, ref.format_units(w.balance, w.scale), w.currency,
                                 str(epoch_ms(w.last_event)), str(w.last_event[1]), str(w.count)])
        rows["avg_debits"].append([wid, ref.format_average(w.total_debit, days, w.scale), w.currency,
                                   str(days), str(len(w.debit_days)), ref.format_day(w.first_day),
                                   ref.format_day(w.last_day), ref.format_units(w.total_debit, w.scale)])
    for pid in byte_order(model.products):
        credits = []
        for cur in sorted(model.products[pid]):
            for _, t in model.products[pid][cur]:
                credits.append("{transaction_id:%s,wallet_id:%s,amount:%s,currency:%s,timestamp:%d,"
                               "timestamp_nanos:%d}" % (cql_str(t.tid), cql_str(t.wallet), t.amount.text(),
                                                        cql_str(cur), epoch_ms(t.instant), t.instant[1]))
        rows["top_credits"].append([pid, "[" + ",".join(credits) + "]"])
    for wid in byte_order(model.wallets):
        w = model.wallets[wid]
        # newest first, as the API pages them
        for seq, (t, bal, scale, _) in reversed(list(enumerate(w.lines, 1))):
            # committed_at empty (not kept), source empty (replayed files)
            rows["transactions"].append([wid, str(epoch_ms(t.instant)), str(t.instant[1]), t.tid, t.amount.text(),
                                         ref.format_units(bal, scale), "", "", w.currency, t.product, str(seq),
                                         "", t.type])
    headers = {
        "balances": ["wallet_id", "balance", "currency", "last_event_time", "last_event_time_nanos",
                     "transactions"],
        "avg_debits": ["wallet_id", "avg_daily_debit", "currency", "days", "debit_days", "first_day",
                       "last_day", "total_debit"],
        "top_credits": ["product_id", "top_credits"],
        "transactions": ["wallet_id", "event_time", "event_time_nanos", "transaction_id", "amount",
                         "balance_after", "committed_at", "committed_at_nanos", "currency", "product_id", "seq",
                         "source", "type"],
    }
    for t in TABLES:
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\r\n")
        wr.writerow(headers[t])
        wr.writerows(rows[t])
        out[t] = buf.getvalue().encode("utf-8")
    return out


def expected_jsonl(model):
    """{table: bytes}: the API's body of each wallet / product, one a line."""
    wallets = byte_order(model.wallets)
    return {
        "balances": "".join(ref.render(model.balance(w)) + "\n" for w in wallets).encode("utf-8"),
        "avg_debits": "".join(ref.render(model.average_daily_debit(w)) + "\n" for w in wallets).encode("utf-8"),
        "top_credits": "".join(ref.render(model.top_credits(p)) + "\n"
                               for p in byte_order(model.products)).encode("utf-8"),
        "transactions": "".join(ref.render(dict([("wallet_id", w), ("currency", model.wallets[w].currency)],
                                                **line)) + "\n"
                                for w in wallets for line in model.statement(w)).encode("utf-8"),
    }


EXPECTED = {"csv": expected_csv, "jsonl": expected_jsonl}

# -------------------------------------------------------------------------
# Running export


def ws(*args, env=None):
    e = wslib.clean_env()
    e.update(env or {})
    return subprocess.run([wslib.require_binary()] + list(args), capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=e)


def export(ddir, fmt, out=None):
    """Runs export (must exit 0); returns (out dir, {table: bytes}, manifest)."""
    out = out or os.path.join(wslib.tempdir(), "export")
    p = ws("export", "--data-dir", ddir, "--format", fmt, "--out", out)
    if p.returncode != 0:
        raise Fail("export --format %s exited %d: %r" % (fmt, p.returncode, p.stderr[-1500:]))
    files = {t: wslib.read_bytes(os.path.join(out, "%s.%s" % (t, fmt))) for t in TABLES}
    manifest = json.loads(wslib.read_bytes(os.path.join(out, "manifest.json")))
    leftovers = [f for f in os.listdir(out) if f.startswith(".")]
    check(not leftovers, "temporary files left in %s: %s" % (out, leftovers))
    return out, files, manifest


def diff_files(want, got, what):
    """Differences between expected and exported files, line by line."""
    diffs = []
    for t in TABLES:
        if want[t] == got[t]:
            continue
        wl, gl = want[t].split(b"\n"), got[t].split(b"\n")
        for i, (a, b) in enumerate(zip(wl, gl)):
            if a != b:
                diffs.append("%s %s line %d: expected %r, got %r" % (what, t, i + 1, a[:300], b[:300]))
                break
        if len(wl) != len(gl):
            diffs.append("%s %s: expected %d lines, got %d" % (what, t, len(wl), len(gl)))
    return diffs


def check_export_equals_model(ddir, model, what):
    manifests = {}
    diffs = []
    for fmt in ("csv", "jsonl"):
        _, files, manifest = export(ddir, fmt)
        diffs += diff_files(EXPECTED[fmt](model), files, "%s %s" % (what, fmt))
        manifests[fmt] = manifest
    check_no_diffs(diffs, what)
    return manifests


def check_manifest(manifest, model, fmt):
    want_events = {o: model.counts[o] for o in ("applied", "duplicate", "rejected")}
    check_eq(want_events, manifest["events"], "manifest events")
    check_eq(fmt, manifest["format"], "manifest format")
    check_eq({"balances": len(model.wallets), "avg_debits": len(model.wallets),
              "top_credits": len(model.products), "transactions": model.counts["applied"]},
             {t: manifest["tables"][t]["rows"] for t in TABLES}, "manifest rows")
    check_eq({t: "%s.%s" % (t, fmt) for t in TABLES},
             {t: manifest["tables"][t]["file"] for t in TABLES}, "manifest files")


# -------------------------------------------------------------------------
# The examples


@test
def seed_example_exports_exactly_as_the_reference():
    ddir = wslib.data_dir()
    lines = ref.split_lines(wslib.read_bytes(wslib.example("seed_transactions.jsonl")))
    wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
    model = wslib.CountingModel()
    model.process_lines(lines, 0)
    manifests = check_export_equals_model(ddir, model, "seed")
    for fmt, m in manifests.items():
        check_manifest(m, model, fmt)
    # the SPEC's own expected figures, for good measure
    doc = ref.parse_response(wslib.read_bytes(wslib.example("seed_expected.json")))
    _, files, _ = export(ddir, "jsonl")
    got = [ref.parse_response(l) for l in files["balances"].splitlines()]
    check_eq(sorted(doc["balance"]), [g["wallet_id"] for g in got], "wallets exported")
    for g in got:
        check_no_diffs(ref.compare(doc["balance"][g["wallet_id"]], g), "seed balance %s" % g["wallet_id"])


@test
def conformance_example_exports_exactly_as_the_reference():
    ddir = wslib.data_dir()
    path = wslib.example("conformance_input.jsonl")
    wslib.replay_ok(ddir, [path])
    model = wslib.CountingModel()
    model.process_lines(ref.split_lines(wslib.read_bytes(path)), 0)
    check(model.counts["rejected"] > 0 and model.counts["duplicate"] > 0, "conformance has all outcomes")
    manifests = check_export_equals_model(ddir, model, "conformance")
    for fmt, m in manifests.items():
        check_manifest(m, model, fmt)
        check_eq(model.reasons, m["rejected"], "manifest rejected reasons")


# -------------------------------------------------------------------------
# Quoting, and reading the CSV back as cqlsh COPY FROM does

AWKWARD_IDS = ["a,b", 'q"uote', "it's", "back\\slash", " lead", "trail ", "é-ü", "😀", "x\u2028y",
               "[{k:v}]", "''", '"', ",", "a'b,c\"d", "-", "0", "NULL", "\u00a0nbsp"]


def awkward_lines():
    lines = []
    stamps = ["2024-05-11T12:50:00.123456789Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
              "2024-02-29T23:59:59.9995Z", 1715431800001]
    amounts = ["999999999999999.999999999999999999", "0.000000000000000001", "5.00", "1E2", '"12.3400"']
    for i, wid in enumerate(AWKWARD_IDS):
        pid = AWKWARD_IDS[(i + 3) % len(AWKWARD_IDS)]
        tid = AWKWARD_IDS[(i + 7) % len(AWKWARD_IDS)] + "#%d" % i
        lines.append(wslib.event(tid, wid, pid, "credit", amounts[i % len(amounts)], ts=stamps[i % len(stamps)]))
        lines.append(wslib.event(tid + "d", wid, pid, "debit", "7.5", ts=stamps[(i + 1) % len(stamps)]))
        lines.append(wslib.event(tid + "e", wid, "only-debits " + wid, "debit", "0.25",
                                 ts=stamps[(i + 2) % len(stamps)]))
    return lines


def cqlsh_split(val, sep=","):
    """The parts of a CQL collection or UDT literal as cqlsh COPY FROM cuts
    them: at `sep` at nesting depth 1, brackets and separators inside single
    quotes ignored (Apache Cassandra pylib/cqlshlib/copyutil.py, split)."""
    check(len(val) >= 2 and val[0] in "[{(" and val[-1] in "]})", "composite literal %r" % val[:80])
    out, start, depth, quoted = [], 1, 0, False
    for i, c in enumerate(val):
        if c == "'":
            quoted = not quoted
        elif not quoted:
            if c in "[{(":
                depth += 1
            elif c in "]})":
                depth -= 1
            elif c == sep and depth == 1:
                out.append(val[start:i])
                start = i + 1
    if start < len(val) - 1:
        out.append(val[start:-1])
    return out


def cqlsh_dequote(v):
    """cqlsh's dequote_value: strip, then 'x''y' -> x'y."""
    v = v.strip()
    if len(v) >= 2 and v[0] == "'" and v[-1] == "'":
        v = v[1:-1].replace("''", "'")
    return v


def cqlsh_credit(lit):
    """One `credit` literal as cqlsh COPY FROM binds it: {field: text}."""
    fields = {}
    for part in cqlsh_split(lit):
        kv = cqlsh_split("{%s}" % part, sep=":")
        check(len(kv) == 2, "UDT field %r cut into %r" % (part, kv))
        fields[cqlsh_dequote(kv[0])] = cqlsh_dequote(kv[1])
    return fields


@test
def csv_quotes_any_id_and_reads_back_as_cqlsh_copy_from_does():
    ddir = wslib.data_dir()
    src = wslib.write_lines(os.path.join(wslib.tempdir(), "awkward.jsonl"), awkward_lines())
    wslib.replay_ok(ddir, [src])
    model = wslib.CountingModel()
    model.process_lines(ref.split_lines(wslib.read_bytes(src)), 0)
    check_eq(0, model.counts["rejected"], "every awkward line is valid")
    check_export_equals_model(ddir, model, "awkward ids")

    _, files, _ = export(ddir, "csv")
    # COPY ... WITH HEADER=true AND ESCAPE='"': RFC 4180 (quote doubled, no
    # escape character), columns by position, header skipped.
    def rows(t):
        text = files[t].decode("utf-8")
        check(text.endswith("\r\n") and "\n" not in text.replace("\r\n", ""), "%s: CRLF line ends" % t)
        r = list(csv.reader(io.StringIO(text, newline=""), quotechar='"', doublequote=True, strict=True))
        return r[0], r[1:]
    head, bal = rows("balances")
    check_eq(byte_order(model.wallets), [r[0] for r in bal], "wallet ids read back")
    for r in bal:
        w = model.wallets[r[0]]
        check_eq(Decimal(ref.format_units(w.balance, w.scale)), Decimal(r[1]), "balance of %r" % r[0])
        check_eq(w.last_event, (int(r[3]) // 1000, int(r[4])), "last_event_time(_nanos) of %r" % r[0])
    head, tops = rows("top_credits")
    check_eq(byte_order(model.products), [r[0] for r in tops], "product ids read back")
    for pid, cell in tops:
        want = [t for cur in sorted(model.products[pid]) for _, t in model.products[pid][cur]]
        got = [cqlsh_credit(c) for c in cqlsh_split(cell)] if cell != "[]" else []
        check_eq(len(want), len(got), "credits of %r" % pid)
        for t, g in zip(want, got):
            check_eq({"transaction_id": t.tid, "wallet_id": t.wallet, "amount": t.amount.text(),
                      "currency": t.currency, "timestamp": str(epoch_ms(t.instant)),
                      "timestamp_nanos": str(t.instant[1])}, g, "credit of %r" % pid)


# -------------------------------------------------------------------------
# Consistency while `run` ingests


def events_for_kafka(seed, count):
    lines = gen_events.generate(seed, count, n_wallets=60, n_products=12, max_big=0)
    return wslib.keyed_for_kafka(lines)


def model_below(records, manifest, topic=TOPIC):
    """The reference fed exactly the records each shard holds: those routed
    to it below its stored next offsets (what its committed batch
    reflects). The events carry no id shared by two wallets, so each
    shard's records have the outcomes they have in the whole topic."""
    kept = wslib.records_held(records, manifest, topic)
    model, _ = wslib.model_of_topic(kept)
    return model, len(kept)


def check_snapshot(out, records, what):
    """One export directory against the reference of its own offsets."""
    manifest = json.loads(wslib.read_bytes(os.path.join(out, "manifest.json")))
    files = {t: wslib.read_bytes(os.path.join(out, "%s.jsonl" % t)) for t in TABLES}
    model, n = model_below(records, manifest)
    ev = manifest["events"]
    check_eq(n, ev["applied"] + ev["duplicate"] + ev["rejected"],
             "%s: records below the offsets vs events counted" % what)
    tx = sum(json.loads(l)["transactions"] for l in files["balances"].splitlines())
    check_eq(ev["applied"], tx, "%s: transactions across wallets vs the applied counter" % what)
    check_no_diffs(diff_files(expected_jsonl(model), files, what), what)
    return ev["applied"] + ev["duplicate"] + ev["rejected"]


@test
def export_while_run_ingests_is_one_committed_batch():
    wslib.require_kcat()
    ddir = wslib.data_dir()
    keyed = events_for_kafka(71, 12000)
    chunks = [keyed[i:i + 1500] for i in range(0, len(keyed), 1500)]
    snaps = []
    with wslib.Runner(ddir, batch_max=200) as runner:
        sent = 0
        for chunk in chunks:
            p = wslib.kcat_produce(runner.bootstrap, TOPIC, chunk, background=True)
            # export over and over while kcat sends and run commits, then
            # once more after the chunk is all counted
            while True:
                snaps.append(export(ddir, "jsonl", out=os.path.join(wslib.tempdir(), "s%d" % len(snaps)))[0])
                if p.poll() is not None:
                    break
            wslib.kcat_wait(p)
            sent += len(chunk)
            runner.wait_counted(sent)
            snaps.append(export(ddir, "jsonl", out=os.path.join(wslib.tempdir(), "s%d" % len(snaps)))[0])
        records = wslib.kcat_consume(runner.bootstrap, TOPIC)
        check_eq(len(keyed), len(records), "records in the topic")
        totals = [check_snapshot(s, records, "export #%d" % i) for i, s in enumerate(snaps)]
    check(totals == sorted(totals), "exports went back in time: %s" % totals)
    mid = sorted({t for t in totals if 0 < t < len(keyed)})
    wslib.log("%d exports, %d distinct states between empty and complete" % (len(snaps), len(mid)))
    check(len(mid) >= len(chunks) - 1, "too few intermediate states: %s" % mid)
    check_eq(len(keyed), totals[-1], "the last export holds every record")


@test
def live_backup_with_mdb_copy_serves_the_figures_of_its_batch():
    """docs/OPERATIONS.md: copy walletstream.format, then `mdb_copy -c
    DIR/state/K BACKUP/state/K` for each shard K while run writes (each
    shard copied at its own instant); serve the copy."""
    mdb_copy = shutil.which("mdb_copy")
    if not mdb_copy:
        raise Fail("mdb_copy not found (Debian package lmdb-utils; scripts/install-deps installs it)")
    wslib.require_kcat()
    ddir = wslib.data_dir()
    keyed = events_for_kafka(72, 6000)
    backups = []
    with wslib.Runner(ddir, batch_max=100) as runner:
        p = wslib.kcat_produce(runner.bootstrap, TOPIC, keyed, background=True)
        while True:
            b = os.path.join(wslib.tempdir(), "backup")
            os.makedirs(b)
            shutil.copy(os.path.join(ddir, "walletstream.format"), b)
            for k in sorted(os.listdir(os.path.join(ddir, "state"))):
                os.makedirs(os.path.join(b, "state", k))
                c = subprocess.run([mdb_copy, "-c", os.path.join(ddir, "state", k), os.path.join(b, "state", k)],
                                   capture_output=True, timeout=120)
                check_eq(0, c.returncode, "mdb_copy exit (stderr %r)" % c.stderr[-500:])
            backups.append(b)
            if p.poll() is not None:
                break
        wslib.kcat_wait(p)
        runner.wait_counted(len(keyed))
        records = wslib.kcat_consume(runner.bootstrap, TOPIC)
    wslib.log("%d backups taken while run ingested" % len(backups))
    for i in sorted({0, len(backups) // 2, len(backups) - 1}):
        b = backups[i]
        out = export(b, "jsonl")[0]
        check_snapshot(out, records, "backup #%d" % i)
        manifest = json.loads(wslib.read_bytes(os.path.join(out, "manifest.json")))
        model, _ = model_below(records, manifest)
        with wslib.Server(b) as srv:
            check_no_diffs(wslib.check_all_figures(srv, model), "serve on backup #%d" % i)


# -------------------------------------------------------------------------
# Errors


@test
def bad_arguments_exit_2_with_a_message():
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
    out = os.path.join(wslib.tempdir(), "never")
    for args in (("--format", "xml"), ("--format", "CSV"), ("--nope",), ("extra",), ("--out",),
                 ("--brokers", "x:1"), ("--listen", "127.0.0.1:1")):
        a = ("export", "--data-dir", ddir, "--out", out) + args
        p = ws(*a)
        check_eq(2, p.returncode, "exit code of %r (stderr %r)" % (args, p.stderr[-300:]))
        check(p.stderr.startswith(b"walletstream export: "), "message for %r: %r" % (args, p.stderr))
        check(not os.path.exists(out), "%r created the output directory" % (args,))
    p = ws("export", "--data-dir", ddir, "--out", out, env={"WALLETSTREAM_FORMAT": "parquet"})
    check_eq(2, p.returncode, "exit code with WALLETSTREAM_FORMAT=parquet")
    check(b"parquet" in p.stderr, "the bad value is named: %r" % p.stderr)
    h = ws("help", "export")
    check_eq(0, h.returncode, "help export")
    for flag in (b"--format", b"--out", b"--data-dir"):
        check(flag in h.stdout, "%s in help export" % flag.decode())
    check(b"export" in ws("--help").stdout, "export in --help")


@test
def missing_or_foreign_data_directory_fails_cleanly():
    base = wslib.tempdir()
    out = os.path.join(base, "out")
    p = ws("export", "--data-dir", os.path.join(base, "missing"), "--out", out)
    check_eq(1, p.returncode, "exit code for a missing data dir (stderr %r)" % p.stderr)
    check(b"no data directory at" in p.stderr and b"missing" in p.stderr, "message: %r" % p.stderr)
    check(not os.path.exists(os.path.join(base, "missing")), "export created the data directory")
    check(not os.path.exists(out), "export created its output for a missing data dir")
    foreign = os.path.join(base, "foreign")
    os.makedirs(foreign)
    with open(os.path.join(foreign, "walletstream.format"), "w") as f:
        f.write("walletstream data directory\nformat 99\n")
    p = ws("export", "--data-dir", foreign, "--out", out)
    check_eq(1, p.returncode, "exit code for another data format (stderr %r)" % p.stderr)
    check(b"format 99" in p.stderr, "the format is named: %r" % p.stderr)
    check(not os.path.exists(out), "export wrote output for a foreign data dir")


@test
def unwritable_output_fails_and_leaves_no_partial_export():
    ddir = wslib.data_dir()
    wslib.replay_ok(ddir, [wslib.example("seed_transactions.jsonl")])
    base = wslib.tempdir()
    blocker = os.path.join(base, "file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    p = ws("export", "--data-dir", ddir, "--out", os.path.join(blocker, "sub"))
    check_eq(1, p.returncode, "exit code for an --out under a file (stderr %r)" % p.stderr)
    check(b"cannot create" in p.stderr, "message: %r" % p.stderr)
    # an earlier export's manifest is removed before the files are replaced,
    # and a failed export leaves neither a manifest nor temporary files
    out = export(ddir, "csv")[0]
    os.remove(os.path.join(out, "balances.csv"))
    os.makedirs(os.path.join(out, "balances.csv", "in-the-way"))
    p = ws("export", "--data-dir", ddir, "--format", "csv", "--out", out)
    check_eq(1, p.returncode, "exit code when the files cannot be replaced (stderr %r)" % p.stderr)
    check(p.stderr.startswith(b"walletstream export: "), "message: %r" % p.stderr)
    left = sorted(os.listdir(out))
    check("manifest.json" not in left, "a failed export left manifest.json: %s" % left)
    check(not [f for f in left if f.startswith(".")], "temporary files left: %s" % left)


if __name__ == "__main__":
    wslib.main()
