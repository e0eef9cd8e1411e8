#!/usr/bin/env python3
"""Packaging (issue 7 §5), checked without a container engine or a running
systemd: compose.yaml through `docker-compose config` (Debian package
docker-compose), the Dockerfile statically (stages, non-root user, health
check on /readyz, the packages it installs exist in Debian 12 and cover
every library the binary links), .dockerignore, the systemd unit through
`systemd-analyze verify` and `systemd-analyze security --offline`, its
environment file, and docs/OPERATIONS.md against the readiness reasons in
the code."""

import os
import re
import shutil
import subprocess
import tempfile

import wslib
from wslib import test, check, check_eq, Fail

ROOT = wslib.REPO
TOPIC = "transactions_topic"


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=120, stdin=subprocess.DEVNULL, **kw)


def require(tool, package):
    path = shutil.which(tool)
    if not path:
        raise Fail("%s not found (Debian package %s; scripts/install-deps installs it)" % (tool, package))
    return path


# -------------------------------------------------------------------------
# compose.yaml


def compose_config(path):
    """`docker-compose -f path config` parsed (yaml comes with docker-compose)."""
    p = run([require("docker-compose", "docker-compose"), "-f", path, "config"], cwd=ROOT)
    if p.returncode != 0:
        raise Fail("docker-compose config of %s exited %d: %s" % (path, p.returncode, p.stderr.decode()[-1500:]))
    import yaml
    return yaml.safe_load(p.stdout)


@test
def compose_file_is_valid_and_runs_against_kraft_kafka_with_topics():
    cfg = compose_config(os.path.join(ROOT, "compose.yaml"))
    svcs = cfg["services"]
    check({"kafka", "kafka-init", "walletstream"} <= set(svcs), "services: %s" % sorted(svcs))
    kafka = svcs["kafka"]
    check(kafka["image"].startswith("apache/kafka:"), "kafka image %r" % kafka["image"])
    env = kafka["environment"]
    check_eq("broker,controller", env.get("KAFKA_PROCESS_ROLES"), "KRaft combined node")
    check(re.match(r"^1@kafka:\d+$", env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")), "one voter: %r" %
          env.get("KAFKA_CONTROLLER_QUORUM_VOTERS"))
    check("healthcheck" in kafka, "kafka has a health check")
    advertised = env.get("KAFKA_ADVERTISED_LISTENERS", "")

    init = svcs["kafka-init"]
    check_eq({"condition": "service_healthy"}, init["depends_on"]["kafka"], "kafka-init waits for a healthy kafka")
    script = " ".join(init.get("command") or []) + " ".join(init.get("entrypoint") or [])
    check("kafka-topics.sh" in script and "--create" in script, "kafka-init runs kafka-topics.sh --create")
    check("--if-not-exists" in script, "topic creation is idempotent")
    check_eq(TOPIC, init["environment"]["TOPIC"], "kafka-init topic")
    for suffix in ('"$$TOPIC.dlq"', "balances avg_debits top_credits", "cleanup.policy=compact"):
        check(suffix in script, "kafka-init creates %s" % suffix)

    ws = svcs["walletstream"]
    check_eq({"condition": "service_completed_successfully"}, ws["depends_on"]["kafka-init"],
             "walletstream starts after the topics exist")
    wenv = ws["environment"]
    brokers = wenv.get("WALLETSTREAM_BROKERS", "")
    check(brokers and "PLAINTEXT://" + brokers in advertised, "WALLETSTREAM_BROKERS %r is kafka's advertised "
          "listener %r" % (brokers, advertised))
    check_eq(TOPIC, wenv.get("WALLETSTREAM_TOPIC"), "walletstream topic")
    check_eq(["run", "--listen", "0.0.0.0:8000"], ws["command"], "walletstream command")
    check(any(str(p).endswith(":8000:8000/tcp") or str(p).endswith(":8000:8000") for p in ws.get("ports", [])),
          "port 8000 published: %r" % ws.get("ports"))
    vols = [v for v in ws.get("volumes", []) if v.startswith("walletstream-data:")]
    check(vols, "a named volume for the data: %r" % ws.get("volumes"))
    mount = vols[0].split(":")[1]
    check(wenv.get("WALLETSTREAM_DATA_DIR", "").startswith(mount), "WALLETSTREAM_DATA_DIR %r inside the volume %s"
          % (wenv.get("WALLETSTREAM_DATA_DIR"), mount))
    check("walletstream-data" in cfg.get("volumes", {}), "volume declared")
    check_eq(".", os.path.relpath(ws["build"]["context"], ROOT), "built from the repository's Dockerfile")
    grace = ws.get("stop_grace_period", "10s")
    check(int(grace.rstrip("s")) >= 30, "stop_grace_period %s leaves time to commit a batch" % grace)
    # every WALLETSTREAM_* variable in the file is an option of its command
    for name, svc in svcs.items():
        if not str(svc.get("image", "")).startswith("walletstream"):
            continue
        cmd = (svc.get("command") or ["run"])[0]
        known = option_variables(cmd)
        for var in svc.get("environment", {}):
            if var.startswith("WALLETSTREAM_"):
                check(var in known, "%s: %s is not an option of `walletstream %s`" % (name, var, cmd))


@test
def docker_compose_config_rejects_a_broken_file():
    """The validator the test relies on does reject errors."""
    d = wslib.tempdir()
    bad = os.path.join(d, "compose.yaml")
    with open(bad, "w") as f:
        f.write("services:\n  x:\n    image: debian:12\n    depends_on:\n      y:\n        condition: service_healthy\n")
    p = run([require("docker-compose", "docker-compose"), "-f", bad, "config"], cwd=d)
    check(p.returncode != 0, "docker-compose config accepted a dependency on a missing service")


def option_variables(cmd):
    """The WALLETSTREAM_* variables `walletstream help CMD` lists."""
    p = run([wslib.require_binary(), "help", cmd])
    check_eq(0, p.returncode, "help %s" % cmd)
    return set(re.findall(r"\[(WALLETSTREAM_[A-Z_]+)", p.stdout.decode()))


# -------------------------------------------------------------------------
# Dockerfile


def dockerfile_stages():
    """[(FROM line, [instruction lines])], continuation lines joined."""
    text = re.sub(r"\\\n", " ", read("Dockerfile"))
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append((line, []))
        else:
            check(stages, "instruction before FROM: %r" % line)
            stages[-1][1].append(line)
    return stages


def apt_packages(instructions):
    pkgs = []
    for ins in instructions:
        for m in re.finditer(r"apt-get install ([^&;]*)", ins):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def debian_12():
    try:
        with open("/etc/os-release") as f:
            osr = f.read()
    except OSError:
        return False
    return 'ID=debian' in osr and 'VERSION_ID="12"' in osr


def check_packages_exist(pkgs, what):
    if not debian_12():
        raise Fail("apt-cache here is not Debian 12's: cannot check %s" % what)
    for pkg in pkgs:
        p = run(["apt-cache", "show", "--no-all-versions", pkg])
        out = p.stdout.decode("utf-8", "replace")
        check(p.returncode == 0 and ("Package: %s" % pkg) in out,
              "%s: Debian 12 has no package %s (%s)" % (what, pkg, p.stderr.decode()[-300:]))


@test
def dockerfile_builds_in_debian_12_and_runs_slim_as_non_root_with_a_readiness_check():
    stages = dockerfile_stages()
    check_eq(2, len(stages), "stages")
    (build_from, build), (run_from, runtime) = stages
    check(re.match(r"^FROM debian:12 AS build$", build_from, re.I), "build stage: %r" % build_from)
    check(re.match(r"^FROM debian:12-slim( AS \w+)?$", run_from, re.I), "runtime stage: %r" % run_from)
    check(any(re.search(r"\bmake build/walletstream\b", i) for i in build), "the build stage runs make")
    check(any(i.startswith("COPY --from=build ") and "walletstream" in i for i in runtime),
          "the runtime stage copies the binary from the build stage")

    users = [i.split(None, 1)[1] for i in runtime if i.upper().startswith("USER ")]
    check(users, "the runtime stage sets USER")
    user = users[-1].split(":")[0]
    check(user not in ("root", "0"), "USER %s is root" % user)
    check(any(re.search(r"useradd .*--system.* %s$" % re.escape(user), i) or
              re.search(r"useradd\b.*\b%s\b" % re.escape(user), i) for i in runtime),
          "the user %s is created in the image" % user)

    hc = [i for i in runtime if i.upper().startswith("HEALTHCHECK ")]
    check(len(hc) == 1 and "/readyz" in hc[0] and "8000" in hc[0], "HEALTHCHECK on /readyz: %r" % hc)
    check("EXPOSE 8000" in runtime, "EXPOSE 8000")
    cmd = [i for i in runtime if i.upper().startswith("CMD ")]
    check(cmd and '"--listen", "0.0.0.0:8000"' in cmd[-1], "CMD listens on 0.0.0.0:8000: %r" % cmd)
    check(any(i.startswith("ENTRYPOINT") and "walletstream" in i for i in runtime), "ENTRYPOINT walletstream")
    check(any(i.startswith("VOLUME") for i in runtime), "a VOLUME for the data")
    env = " ".join(i for i in runtime if i.startswith("ENV "))
    m = re.search(r"WALLETSTREAM_DATA_DIR=(\S+)", env)
    vol = re.search(r'VOLUME \["([^"]+)"\]', " ".join(runtime))
    check(m and vol and m.group(1).startswith(vol.group(1)), "WALLETSTREAM_DATA_DIR inside the VOLUME")

    build_pkgs, run_pkgs = apt_packages(build), apt_packages(runtime)
    check(not [p for p in run_pkgs if p.endswith("-dev") or p in ("build-essential", "gcc", "make")],
          "runtime stage installs build tools: %s" % run_pkgs)
    check_packages_exist(build_pkgs, "build stage")
    check_packages_exist(run_pkgs, "runtime stage")
    # every -dev package the build needs is in the build stage
    deps = read("scripts/install-deps")
    for dev in re.findall(r"\b(lib[a-z0-9]+-dev)\b", deps):
        check(dev in build_pkgs, "build stage lacks %s (scripts/install-deps has it)" % dev)
    # every library the binary links comes from a runtime-stage package
    elf = run(["readelf", "-d", wslib.require_binary()]).stdout.decode()
    for soname in re.findall(r"NEEDED\).*\[(.+)\]", elf):
        if soname.startswith(("libc.so", "libm.so", "libpthread", "libdl.so", "libasan", "libubsan")):
            continue  # libc6 is in debian:12-slim; sanitizer runtimes only in test builds
        path = run(["sh", "-c", "ldconfig -p | awk '$1 == \"%s\" {print $NF; exit}'" % soname]).stdout.decode().strip()
        check(path, "%s not found by ldconfig" % soname)
        owner = run(["dpkg", "-S", os.path.realpath(path)]).stdout.decode().split(":")[0]
        check(owner in run_pkgs, "%s (package %s) is not installed by the runtime stage %s" % (soname, owner, run_pkgs))


@test
def dockerignore_sends_only_the_sources():
    lines = [l.strip() for l in read(".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
    check(lines and lines[0] == "*", ".dockerignore starts by excluding everything: %r" % lines[:1])
    for keep in ("!Makefile", "!src/"):
        check(keep in lines, ".dockerignore keeps %s" % keep)
    for i in dockerfile_stages()[0][1]:
        if i.startswith("COPY ") and "--from" not in i:
            for src in i.split()[1:-1]:
                check("!" + src in lines or "!" + src.rstrip("/") + "/" in lines,
                      "COPY %s is excluded by .dockerignore" % src)


# -------------------------------------------------------------------------
# systemd


def unit_settings(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


@test
def systemd_unit_is_hardened_and_verifies():
    text = read("packaging/walletstream.service")
    s = unit_settings(text)
    one = lambda k: (s.get(k) or [None])[-1]
    check(one("DynamicUser") == "yes" or one("User") not in (None, "root"), "runs as a non-root user")
    check_eq("walletstream", one("StateDirectory"), "StateDirectory")
    check_eq("strict", one("ProtectSystem"), "ProtectSystem")
    check_eq("yes", one("NoNewPrivileges"), "NoNewPrivileges")
    check_eq("on-failure", one("Restart"), "Restart")
    check(int(one("TimeoutStopSec") or 0) >= 30, "TimeoutStopSec %s: a batch commit waits up to 10 s for "
          "its output and the exit 5 s more" % one("TimeoutStopSec"))
    check(one("EnvironmentFile") and one("EnvironmentFile").lstrip("-").startswith("/etc/walletstream/"),
          "EnvironmentFile: %r" % one("EnvironmentFile"))
    check(one("ExecStart").endswith("walletstream run"), "ExecStart: %r" % one("ExecStart"))
    data = [e.split("=", 1)[1] for e in s.get("Environment", []) if e.startswith("WALLETSTREAM_DATA_DIR=")]
    check_eq(["/var/lib/walletstream"], data, "the data directory is the state directory")
    known = option_variables("run")
    for e in s.get("Environment", []):
        check(e.split("=", 1)[0] in known, "Environment=%s is not an option of run" % e)

    sa = shutil.which("systemd-analyze")
    if not sa:
        wslib.log("systemd-analyze not installed: static checks only")
        return
    d = tempfile.mkdtemp(prefix="ws-unit-")
    try:
        unit = os.path.join(d, "walletstream.service")
        with open(unit, "w") as f:  # the built binary stands in for /usr/local/bin/walletstream
            f.write(text.replace("/usr/local/bin/walletstream", wslib.require_binary()))
        # --man=no: the man pages named by Documentation= exist only where
        # man-db is installed (not on a fresh Debian 12: "Command 'man
        # systemd.exec(5)' failed"); they say nothing of the unit itself
        p = run([sa, "verify", "--man=no", unit])
        out = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
        check(p.returncode == 0 and not out, "systemd-analyze verify: exit %d: %s" % (p.returncode, out[-1500:]))
        p = run([sa, "security", "--offline=yes", unit])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout.decode("utf-8", "replace"))
        check(m, "systemd-analyze security: %r" % (p.stdout + p.stderr)[-500:])
        check(float(m.group(1)) <= 2.5, "exposure level %s (expected at most 2.5)" % m.group(1))
        wslib.log("systemd-analyze verify: clean; security --offline: exposure %s" % m.group(1))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def environment_file_names_only_real_options():
    known = option_variables("run") | {"WALLETSTREAM_X"}
    seen = 0
    for line in read("packaging/walletstream.env").splitlines():
        line = line.strip().lstrip("#")
        m = re.match(r"^(WALLETSTREAM_[A-Z_]+)=", line)
        if m:
            seen += 1
            check(m.group(1) in known, "%s is not an option of run" % m.group(1))
    check(seen >= 3, "the example environment file shows options")


# -------------------------------------------------------------------------
# docs/OPERATIONS.md against the code

# Readiness reasons set outside snprintf(why, …) calls.
EXTRA_REASONS = (("src/stream.c", "starting"), ("src/stream.c", "partitions not assigned yet"),
                 ("src/worker.c", " (raise --max-state-size)"), ("src/main.c", "connecting to Kafka at %s"))
REASON_FILES = ("src/stream.c", "src/worker.c", "src/kafka_source.c", "src/producer.c", "src/changelog.c",
                "src/dlq.c")
STRERRORS = ("out of memory", "input/output error", "state store error", "state store is full")


def readiness_reasons():
    """(file, format string) of every readiness reason the code can set."""
    out = []
    for f in REASON_FILES:
        src = read(f)
        for m in re.finditer(r'snprintf\(\s*(why|l->\w+_err|l\.\w+_err)\s*,[^,]*,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)', src):
            fmt = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2)))
            if fmt.strip("%s"):
                out.append((f, fmt))
    for f, lit in EXTRA_REASONS:
        check(('"%s"' % lit) in read(f) or ('"%s' % lit) in read(f),
              "%r is no longer in %s: update EXTRA_REASONS and docs/OPERATIONS.md" % (lit, f))
        out.append((f, lit))
    return out


@test
def operations_doc_lists_every_readiness_reason_of_the_code():
    doc = read("docs/OPERATIONS.md")
    reasons = readiness_reasons()
    check(len(reasons) >= 15, "found only %d reasons in the code" % len(reasons))
    missing = []
    for f, fmt in reasons:
        for part in re.split(r"%[-0-9.]*l*[sdu]", fmt):
            part = part.strip()
            if len(part) >= 3 and part not in doc:
                missing.append("%s: %r (from %r)" % (f, part, fmt))
    for s in STRERRORS:
        if s not in doc:
            missing.append("ws_strerror: %r" % s)
    check(not missing, "docs/OPERATIONS.md lacks readiness reasons: %s" % "; ".join(missing))


@test
def readme_links_the_operations_docs_and_containers_and_keeps_its_first_screen():
    readme = read("README.md")
    for link in ("docs/OPERATIONS.md", "Dockerfile", "compose.yaml", "packaging/walletstream.service"):
        check(link in readme, "README links %s" % link)
    first = readme.split("\n## ", 1)[0]
    cmds = re.findall(r"^make \w+", first, re.M)
    check_eq(["make run", "make test"], cmds, "the README's first screen shows exactly make run and make test")


if __name__ == "__main__":
    wslib.main()
