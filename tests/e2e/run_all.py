#!/usr/bin/env python3
"""Run every tests/e2e/test_*.py (or those whose file name contains one of
the arguments) one after the other, then print the summed
`N passed, M failed`. Exit status 1 if any script failed or printed no
summary. tests/run does the same for the whole suite; this is for running
the end-to-end tests alone:

    WALLETSTREAM_BIN=build/san/walletstream python3 tests/e2e/run_all.py [seed replay ...]
"""

import glob
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)


def main(argv):
    scripts = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    if argv:
        scripts = [s for s in scripts if any(a in os.path.basename(s) for a in argv)]
    passed = failed = 0
    broken = []
    for s in scripts:
        name = os.path.basename(s)
        print("== %s" % name, flush=True)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, s], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.decode("utf-8", "replace")
        sys.stdout.write(out)
        found = SUMMARY.findall(out)
        print("   (%s: %.1f s, exit %d)" % (name, time.monotonic() - t0, p.returncode), flush=True)
        if not found:
            failed += 1
            broken.append(name)
            continue
        p_, f_ = (int(x) for x in found[-1])
        passed += p_
        failed += f_
        if f_ or p.returncode:
            broken.append(name)
            if not f_:
                failed += 1
    if broken:
        print("failing: %s" % " ".join(broken))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
