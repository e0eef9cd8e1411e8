#!/usr/bin/env python3
"""The command line (SPEC §6): --version, help, usage errors exit 2, and
docs/CONFIGURATION.md generated from the option table and kept in step."""
import os
import re
import subprocess

import wslib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMANDS = ["run", "serve", "replay", "broker", "produce"]


def ws(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([wslib.require_binary()] + list(args), capture_output=True,
                          timeout=30, env=e)


@wslib.test
def version_names_the_data_format():
    p = ws("--version")
    wslib.check_eq(0, p.returncode, "exit code")
    wslib.check(p.stdout.startswith(b"walletstream "), "version line: %r" % p.stdout)
    wslib.check(b"data format" in p.stdout, "data format in %r" % p.stdout)


@wslib.test
def help_lists_every_command_and_each_has_its_help():
    p = ws("--help")
    wslib.check_eq(0, p.returncode, "exit code of --help")
    for c in COMMANDS:
        wslib.check(c.encode() in p.stdout, "%s in --help" % c)
        for args in (("help", c), (c, "--help")):
            h = ws(*args)
            wslib.check_eq(0, h.returncode, "exit code of %s" % " ".join(args))
            wslib.check(b"Usage: walletstream" in h.stdout, "usage in %s" % " ".join(args))
            wslib.check(b"--data-dir" in h.stdout, "options in %s" % " ".join(args))
    wslib.check(b"5 MiB" in ws("help", "run").stdout, "broker limits in help run")
    wslib.check(b"5 MiB" in ws("help", "broker").stdout, "broker limits in help broker")


@wslib.test
def usage_errors_exit_2_with_a_message():
    d = wslib.tempdir()
    data = os.path.join(d, "data")
    wslib.check_eq(0, ws("replay", "--data-dir", data, os.path.join(ROOT, "examples", "seed_transactions.jsonl")).returncode,
                   "replay of the seed")
    for args in (("nosuch",), ("serve", "--nope"), ("replay", "--batch-max", "ten"),
                 ("replay", "--batch-max", "0"), ("run", "--changelog", "maybe", "--data-dir", os.path.join(d, "r")),
                 ("serve", "--data-dir", data, "--listen", "nocolon"), ("help", "nosuch"),
                 ("serve", "--data-dir", data, "extra-arg"), ("--bogus",)):
        p = ws(*args)
        wslib.check_eq(2, p.returncode, "exit code of %r (stderr %r)" % (args, p.stderr[-300:]))
        wslib.check(p.stderr.strip() != b"", "a message for %r" % (args,))
    # a group's instance on any free port: the others could not reach it
    p = ws("run", "--assignment", "group", "--listen", "127.0.0.1:0", "--brokers", "127.0.0.1:1",
           "--data-dir", os.path.join(d, "g"))
    wslib.check_eq(2, p.returncode, "exit code of a group's run on port 0 (stderr %r)" % p.stderr[-300:])
    wslib.check(b"--advertise" in p.stderr and b"port 0" in p.stderr, "what to give instead: %r" % p.stderr)
    p = ws("replay", env={"WALLETSTREAM_BATCH_MAX": "-3"})
    wslib.check_eq(2, p.returncode, "bad environment value")
    wslib.check(b"WALLETSTREAM_BATCH_MAX" in p.stderr, "the variable is named: %r" % p.stderr)


@wslib.test
def usage_errors_name_the_problem_and_the_help():
    d = wslib.tempdir()
    for args, words in ((("serve", "--topic", "t"), b"--topic is not an option of this command"),
                        (("serve", "--log-format", "xml"), b'"xml" is not one of text|json'),
                        (("replay", "--log-level", "loud", "x.jsonl"), b'"loud" is not one of error|warn|info|debug'),
                        (("run", "--changelog", "maybe"), b'"maybe" is not one of auto|on|off'),
                        (("replay", "--data-dir=", "x.jsonl"), b"--data-dir: an empty value is not valid"),
                        (("broker", "--partitions", "-1"), b'"-1" is not a valid positive number'),
                        (("run", "--data-dir"), b"--data-dir needs a value"),
                        (("produce", "--bogus"), b"unknown option --bogus")):
        p = ws(*args, env={"WALLETSTREAM_DATA_DIR": os.path.join(d, "never")})
        wslib.check_eq(2, p.returncode, "exit code of %r" % (args,))
        wslib.check(words in p.stderr, "%r in the message for %r: %r" % (words, args, p.stderr))
        wslib.check(("walletstream help %s" % args[0]).encode() in p.stderr,
                    "the message for %r points to the command's help: %r" % (args, p.stderr))
        wslib.check(p.stdout == b"", "nothing on stdout for %r" % (args,))
    wslib.check(not os.path.exists(os.path.join(d, "never")), "no data directory made by a usage error")


@wslib.test
def help_forms_all_answer():
    top = ws("--help").stdout
    for args in (("-h",), ("help",), ("help", "help")):
        p = ws(*args)
        wslib.check_eq(0, p.returncode, "exit code of %r" % (args,))
        wslib.check_eq(top, p.stdout, "%r prints the usage" % (args,))
    for c in COMMANDS:
        p = ws(c, "-h")
        wslib.check_eq(0, p.returncode, "exit code of %s -h" % c)
        wslib.check_eq(ws("help", c).stdout, p.stdout, "%s -h is help %s" % (c, c))
        # every option of the command shows its variable and default
        for opt in (b"--log-level error|warn|info|debug", b"--log-format text|json",
                    b"WALLETSTREAM_LOG_FORMAT, default text"):
            wslib.check(opt in p.stdout, "%r in help %s" % (opt, c))
    p = ws("--version")
    wslib.check(re.match(rb"^walletstream \d+\.\d+\.\d+ \(data format \d+\)\n$", p.stdout),
                "--version prints one line: %r" % p.stdout)


@wslib.test
def configuration_doc_is_generated_from_the_code():
    p = ws("help", "--markdown")
    wslib.check_eq(0, p.returncode, "exit code")
    with open(os.path.join(ROOT, "docs", "CONFIGURATION.md"), "rb") as f:
        doc = f.read()
    wslib.check(doc == p.stdout, "docs/CONFIGURATION.md differs from `walletstream help "
                 "--markdown`: regenerate it")
    for c in COMMANDS:
        # every option of every command appears in the doc
        for line in ws("help", c).stdout.decode().splitlines():
            line = line.strip()
            if line.startswith("--"):
                flag = line.split()[0]
                wslib.check(("`%s " % flag).encode() in doc or ("`%s`" % flag).encode() in doc,
                            "%s of %s in the doc" % (flag, c))


@wslib.test
def environment_variables_set_options():
    d = wslib.tempdir()
    if True:
        data = os.path.join(d, "data")
        src = os.path.join(d, "in.jsonl")
        with open(src, "wb") as f:
            f.write(open(os.path.join(ROOT, "examples", "seed_transactions.jsonl"), "rb").read())
        p = ws("replay", src, env={"WALLETSTREAM_DATA_DIR": data})
        wslib.check_eq(0, p.returncode, "replay with WALLETSTREAM_DATA_DIR: %r" % p.stderr)
        wslib.check(os.path.exists(os.path.join(data, "walletstream.format")),
                     "the data dir came from the environment")


if __name__ == "__main__":
    wslib.main()
