#!/usr/bin/env python3
"""A small cqlsh stand-in on Debian's python3-cassandra driver (cqlsh itself
is not packaged in Debian 12). Used by scripts/cassandra-pipeline and
tests/e2e/test_cassandra.py.

    scripts/cassandra_cql.py --port P wait [SECONDS]   until a CQL session opens
    scripts/cassandra_cql.py --port P load FILE.cql    run each statement of FILE
    scripts/cassandra_cql.py --port P query 'CQL'      rows as JSON lines

`query` prints decimals as their exact text (75.00 stays 75.00), dates as
YYYY-MM-DD, timestamps as RFC 3339 UTC with milliseconds, UDTs as objects.
Exit status: 0 ok, 1 CQL or connection error, 2 usage, 3 no driver.
"""

import datetime
import decimal
import json
import os
import sys
import time

SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-cassandra lives


def import_driver():
    """Import the driver, re-running this program under Debian's python3
    when the current interpreter (e.g. a pyenv one) lacks it."""
    try:
        import cassandra.cluster  # noqa: F401
        return True
    except ImportError:
        if os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON) and os.path.exists(SYSTEM_PYTHON):
            os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
        return False


def session(port, host="127.0.0.1", timeout=10.0):
    """A session to the node at host:port (raises on failure)."""
    import logging
    import warnings
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from cassandra.cluster import Cluster
    from cassandra.policies import DCAwareRoundRobinPolicy
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    cluster = Cluster([host], port=port, protocol_version=5, connect_timeout=timeout,
                      load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"))
    try:
        return cluster.connect()
    except Exception:
        cluster.shutdown()
        raise


def close(sess):
    sess.cluster.shutdown()


def statements(text):
    """The statements of a CQL file: comments dropped, split at ';' that end
    a statement outside quotes."""
    out, cur, quote, i = [], [], None, 0
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            cur.append(c)
        elif text.startswith("--", i) or text.startswith("//", i):
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
            continue
        elif c == ";":
            s = "".join(cur).strip()
            if s:
                out.append(s)
            cur = []
        else:
            cur.append(c)
        i += 1
    s = "".join(cur).strip()
    if s:
        out.append(s)
    return out


def load(sess, path):
    with open(path, encoding="utf-8") as f:
        for st in statements(f.read()):
            sess.execute(st, timeout=30)


def wait(port, seconds):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            # a node that listens but is slow to answer (a loaded machine:
            # 10 s seen) gets most of the time left, not a fixed 2 s
            s = session(port, timeout=max(2.0, min(30.0, deadline - time.monotonic())))
            close(s)
            return True
        except Exception as e:  # not up yet
            last = e
            time.sleep(0.2)  # poll interval, bounded by the deadline
    sys.stderr.write("cassandra_cql: no CQL session on port %d after %ss: %s\n" % (port, seconds, last))
    return False


def plain(v):
    """A CQL value as JSON-ready data, exact."""
    if isinstance(v, decimal.Decimal):
        return format(v, "f")  # plain notation, scale kept: 75.00, 0.000000000000000001
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if hasattr(v, "date") and type(v).__name__ == "Date":  # cassandra.util.Date
        return str(v)
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, (list, tuple, set)) and not hasattr(v, "_fields"):
        return [plain(x) for x in v]
    if hasattr(v, "_fields"):  # a UDT value
        return {k: plain(getattr(v, k)) for k in v._fields}
    return v


def main(argv):
    port = 9042
    args = list(argv)
    if len(args) >= 2 and args[0] == "--port":
        port = int(args[1])
        args = args[2:]
    if not args or args[0] not in ("wait", "load", "query"):
        sys.stderr.write(__doc__)
        return 2
    if not import_driver():
        sys.stderr.write("cassandra_cql: the Cassandra driver is missing (Debian: apt-get install python3-cassandra)\n")
        return 3
    if args[0] == "wait":
        return 0 if wait(port, float(args[1]) if len(args) > 1 else 60) else 1
    if len(args) != 2:
        sys.stderr.write(__doc__)
        return 2
    try:
        s = session(port, timeout=30.0)
    except Exception as e:
        sys.stderr.write("cassandra_cql: cannot connect to 127.0.0.1:%d: %s\n" % (port, e))
        return 1
    try:
        if args[0] == "load":
            load(s, args[1])
        else:
            for row in s.execute(args[1], timeout=30):
                print(json.dumps({k: plain(v) for k, v in row._asdict().items()}, ensure_ascii=False))
    except Exception as e:
        sys.stderr.write("cassandra_cql: %s: %s\n" % (type(e).__name__, e))
        return 1
    finally:
        close(s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
