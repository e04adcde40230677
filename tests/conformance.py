"""h2spec (HTTP/2 conformance, RFC 9113 / RFC 7541) against every HTTP/2 port of pushsim, both engines.

Used by tests/integration/test_h2spec.py and by `./run.sh conformance` (`python -m tests.conformance`):
a PushSim on ephemeral ports is started in-process per engine, h2spec runs against the APNs TLS,
APNs h2c, FCM TLS and FCM h2c ports, and its JUnit report is read for the outcome of each case.

The binary is looked up in this order: $PUSHSIM_H2SPEC, `h2spec` on PATH, then
`../shared/tools/h2spec` beside the repository (where CI and the development machines keep it) or,
in a git worktree, beside the main checkout the worktree belongs to.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ENGINES = ("fast", "h2")
# (service, endpoints.json key, TLS?) for every port that speaks HTTP/2
PORTS = (("apns", "url", True), ("apns", "h2c_url", False), ("fcm", "url", True), ("fcm", "h2c_url", False))
CASE_TIMEOUT = 2          # h2spec -o: seconds one case may wait for the server's answer
RUN_TIMEOUT = 60.0        # one whole h2spec run (146 cases take ~2 s against a healthy server)


def find_h2spec() -> Path | None:
    env = os.environ.get("PUSHSIM_H2SPEC")
    if env:
        return Path(env) if Path(env).is_file() else None
    on_path = shutil.which("h2spec")
    if on_path:
        return Path(on_path)
    for root in _checkouts():
        beside = root.parent / "shared" / "tools" / "h2spec"
        if beside.is_file() and os.access(beside, os.X_OK):
            return beside
    return None


def _checkouts() -> list[Path]:
    """This repository, and for a git worktree (`.git` is a file: "gitdir: MAIN/.git/worktrees/X")
    the main checkout too."""
    roots = [REPO]
    dot_git = REPO / ".git"
    if dot_git.is_file():
        text = dot_git.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text[len("gitdir:"):].strip())
            if gitdir.parent.name == "worktrees":
                roots.append(gitdir.parent.parent.parent)
    return roots


def port_name(service: str, key: str) -> str:
    return f"{service}-{'tls' if key == 'url' else 'h2c'}"


@dataclass
class Outcome:
    """One h2spec run against one port."""
    total: int = 0
    passed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)   # "section: case — message"
    error: str | None = None                            # h2spec itself did not complete

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures and self.total > 0


def parse_junit(path: Path) -> Outcome:
    """h2spec's JUnit report: one <testcase> per case, with a <failure>/<error>/<skipped> child."""
    out = Outcome()
    for suite in ET.parse(path).getroot().iter("testsuite"):
        for case in suite.iter("testcase"):
            out.total += 1
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if bad is not None:
                detail = (bad.get("message") or bad.text or "").strip().replace("\n", " ")
                out.failures.append(f"{case.get('package')}: {case.get('classname')} — {detail}")
            elif case.find("skipped") is not None:
                out.skipped += 1
            else:
                out.passed += 1
    return out


def run_h2spec(binary: Path, port: int, *, tls: bool, host: str = "127.0.0.1",
               strict: bool = False) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="h2spec-") as tmp:
        report = Path(tmp) / "report.xml"
        cmd = [str(binary), "-h", host, "-p", str(port), "-o", str(CASE_TIMEOUT), "-j", str(report)]
        if tls:
            cmd += ["-t", "-k"]       # the state dir's own CA: h2spec judges HTTP/2, not the PKI
        if strict:
            cmd.append("-S")          # the cases for SHOULDs too (one more in 2.0.0)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return Outcome(error=f"h2spec did not finish in {RUN_TIMEOUT:.0f} s")
        if not report.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return Outcome(error=f"h2spec exited {proc.returncode} without a report: {' | '.join(tail)}")
        return parse_junit(report)


@contextmanager
def serving(engine: str, state_dir: Path) -> Iterator[dict[str, Any]]:
    """A PushSim with `engine` on ephemeral ports (in-process); yields its endpoints."""
    from pushsim.config import Config
    from pushsim.server import run_in_thread

    cfg = Config(state_dir=state_dir, engine=engine, apns_port=0, apns_h2c_port=0, fcm_port=0,
                 fcm_h2c_port=0, admin_port=0, devices="ios=2,android=2")
    sim, stop = run_in_thread(cfg)
    try:
        yield sim.endpoints
    finally:
        stop()


def port_of(endpoints: dict[str, Any], service: str, key: str) -> int:
    return int(endpoints[service][key].rsplit(":", 1)[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run.sh conformance", description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=ENGINES, action="append", help="only this engine (repeatable)")
    ap.add_argument("--strict", action="store_true", help="h2spec -S: run the strict cases too")
    args = ap.parse_args(argv)
    binary = find_h2spec()
    if binary is None:
        print("h2spec not found: set PUSHSIM_H2SPEC, put h2spec on PATH, or keep it at "
              "../shared/tools/h2spec beside the repository", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, Outcome]] = []
    for engine in args.engine or ENGINES:
        with tempfile.TemporaryDirectory(prefix=f"pushsim-conformance-{engine}-") as tmp:
            with serving(engine, Path(tmp)) as endpoints:
                for service, key, tls in PORTS:
                    outcome = run_h2spec(binary, port_of(endpoints, service, key), tls=tls,
                                         strict=args.strict)
                    rows.append((engine, port_name(service, key), outcome))
                    status = outcome.error or f"{outcome.passed}/{outcome.total} passed"
                    print(f"{engine:5} {port_name(service, key):8} {status}", flush=True)
                    for line in outcome.failures:
                        print(f"      FAILED {line}")
    bad = [r for r in rows if not r[2].ok]
    passed = sum(r[2].passed for r in rows)
    failed = sum(len(r[2].failures) + (r[2].error is not None) for r in rows)
    print(f"h2spec {binary}: {len(rows)} runs ({', '.join(args.engine or ENGINES)} × "
          f"{len(PORTS)} ports), {len(bad)} with failures")
    print(f"conformance: {passed} passed, {failed} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
