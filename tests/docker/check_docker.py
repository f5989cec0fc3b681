#!/usr/bin/env python3
"""check_docker.py ROOT [RUNTIME_PKG...]: what can be checked of docker/ without a container
engine. ROOT is the build context (the repository root). The packages named after it are the
Debian packages that provide the libraries tokend links to (the caller finds them with readelf
and dpkg -S); each must be installed by the Dockerfile's runtime stage. Prints one line per
problem and exits 1, or prints 'docker: N checks passed' and exits 0."""
import glob
import os
import re
import shlex
import sys

import yaml

ROOT = sys.argv[1]
NEEDED = sys.argv[2:]
problems = []
checks = 0


def check(ok, why):
    global checks
    checks += 1
    if not ok:
        problems.append(why)


# ---- the Dockerfile: instructions with their continuation lines joined -------------------------
text = open(os.path.join(ROOT, "docker/Dockerfile"), encoding="utf-8").read()
lines = []
for raw in re.sub(r"\\\n", " ", text).splitlines():
    s = raw.strip()
    if s and not s.startswith("#"):
        lines.append(s)

stages = []  # (name, base, [instructions])
for s in lines:
    word, _, rest = s.partition(" ")
    word = word.upper()
    if word == "FROM":
        m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
        check(m is not None, f"FROM not understood: {s}")
        stages.append((m.group(2) if m else None, m.group(1) if m else rest, []))
        continue
    check(bool(stages), f"an instruction before the first FROM: {s}")
    if stages:
        stages[-1][2].append((word, rest.strip()))
names = [n for n, _, _ in stages if n]

for i, (name, base, instrs) in enumerate(stages):
    if base not in names[:i] and base != "scratch":
        tag = base.split("@")[0].rpartition(":")
        check(tag[1] == ":" and tag[2] not in ("", "latest"), f"stage {name}: FROM {base} pins no tag")
        check(base.startswith("debian:12"), f"stage {name}: base {base} is not Debian 12")
    for word, rest in instrs:
        if word not in ("COPY", "ADD"):
            continue
        args = shlex.split(rest)
        frm = [a for a in args if a.startswith("--from=")]
        srcs = [a for a in args if not a.startswith("--")][:-1]
        check(word == "COPY", f"stage {name}: ADD (use COPY): {rest}")
        if frm:
            check(frm[0][7:] in names[:i], f"stage {name}: COPY {frm[0]} names no earlier stage")
            continue
        for src in srcs:
            check(bool(glob.glob(os.path.join(ROOT, src))), f"stage {name}: COPY {src}: no such path in the repository")

by_name = {n: (b, ins) for n, b, ins in stages}
final = stages[-1][0]
check(final == "tokend", f"the default (last) stage is {final}, not tokend")


def chain(name):  # the stage and the stages it is built FROM, innermost last
    out = []
    while name in by_name:
        out.append(name)
        name = by_name[name][0]
    return out


def apt_installed(stage_names):
    pkgs = set()
    for n in stage_names:
        for word, rest in by_name[n][1]:
            if word == "RUN":
                for m in re.finditer(r"apt-get install ((?:\s*(?:-\S+|[a-z0-9][a-z0-9.+-]*))+)", rest):
                    pkgs |= {p for p in m.group(1).split() if not p.startswith("-")}
    return pkgs


for stage in ("tokend", "gwsim"):
    if stage not in by_name:
        check(False, f"no stage {stage}")
        continue
    ch = chain(stage)
    check("build" not in ch, f"stage {stage} is built on the build stage")
    pkgs = apt_installed(ch)
    bad = sorted(p for p in pkgs if p.endswith("-dev") or p in ("build-essential", "gcc", "cc", "clang", "make", "g++"))
    check(not bad, f"stage {stage} installs build tools: {' '.join(bad)}")
    users = [rest for word, rest in by_name[stage][1] if word == "USER"]
    check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), f"stage {stage} runs as root")
    if stage == "tokend":
        missing = sorted(set(NEEDED) - pkgs)
        check(not missing, f"stage tokend lacks the runtime packages of libraries tokend links to: {' '.join(missing)}")
        hc = [rest for word, rest in by_name[stage][1] if word == "HEALTHCHECK"]
        check(bool(hc) and "/readyz" in hc[-1], "stage tokend: HEALTHCHECK is not on /readyz")
check("build" in by_name and "make" in " ".join(r for w, r in by_name["build"][1] if w == "RUN"),
      "the build stage does not run make")

# ---- compose.yaml ------------------------------------------------------------------------------
compose = yaml.safe_load(open(os.path.join(ROOT, "docker/compose.yaml"), encoding="utf-8"))
services = compose.get("services", {}) if isinstance(compose, dict) else {}
for s in ("postgres", "migrate", "gwsim", "tokend"):
    check(s in services, f"compose.yaml: no service {s}")
declared = set((compose.get("secrets") or {}).keys()) if isinstance(compose, dict) else set()
for sname, svc in services.items():
    for sec in svc.get("secrets", []) or []:
        check((sec if isinstance(sec, str) else sec.get("source")) in declared, f"compose.yaml: {sname} uses undeclared secret {sec}")
    for dep in (svc.get("depends_on") or {}):
        check(dep in services, f"compose.yaml: {sname} depends on unknown service {dep}")
    b = svc.get("build")
    if b:
        ctx = os.path.normpath(os.path.join(ROOT, "docker", b.get("context", ".")))
        check(os.path.samefile(ctx, ROOT), f"compose.yaml: {sname} builds from {ctx}, not the repository root")
        check(os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))), f"compose.yaml: {sname}: no {b.get('dockerfile')}")
        check(b.get("target") in by_name, f"compose.yaml: {sname} builds unknown target {b.get('target')}")
t = services.get("tokend", {})
hc = " ".join(t.get("healthcheck", {}).get("test", []))
check("/readyz" in hc, "compose.yaml: tokend's health check is not on /readyz")
check(t.get("read_only") is True, "compose.yaml: tokend's root file system is not read-only")
check(t.get("depends_on", {}).get("migrate", {}).get("condition") == "service_completed_successfully",
      "compose.yaml: tokend does not wait for migrate")
check((t.get("ulimits") or {}).get("core") == 0, "compose.yaml: tokend may dump core")
check("ALL" in (t.get("cap_drop") or []), "compose.yaml: tokend keeps capabilities")
check(bool(services.get("gwsim", {}).get("healthcheck")), "compose.yaml: gwsim has no health check")
check(bool(services.get("postgres", {}).get("healthcheck")), "compose.yaml: postgres has no health check")
for sname, svc in services.items():
    env = svc.get("environment") or {}
    vals = env.values() if isinstance(env, dict) else env
    check(not any("password=" in str(v).lower() for v in vals), f"compose.yaml: {sname} has a password in its environment")
for vol in services.get("postgres", {}).get("volumes", []):
    src = vol.split(":")[0]
    if src.startswith("./"):
        check(os.path.exists(os.path.join(ROOT, "docker", src)), f"compose.yaml: postgres mounts missing {src}")

for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"docker: {checks} checks passed")
