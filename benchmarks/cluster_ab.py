"""A/B: `pushsim serve --workers 1` vs `--workers W` under h2load on the APNs h2c port, alternating.

Standalone (not part of `python -m benchmarks`): per run, a fresh server, a 10k warm-up, then
`h2load -n N -c 8 -m 100` over 1000 fleet iOS tokens with the README's background payload and JWT.
Prints req/s and the server's CPU-seconds per 1000 requests (hub + workers, from /proc; robust to
other load on the machine), then medians and the W/1 ratios.

    PYTHONPATH=. .venv/bin/python benchmarks/cluster_ab.py -n 60000 --runs 3 --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from pushsim.cli.sender_auth import apns_provider_token

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])      # utime + stime
    return total / TICK


def one(workers: int, n: int, state: Path) -> tuple[float, float, int]:
    shutil.rmtree(state, ignore_errors=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushsim", "serve", "--workers", str(workers), "--state-dir", str(state),
         "--apns-port", "0", "--apns-h2c-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0", "--admin-port", "0",
         "--devices", "ios=2000,android=2000"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()   # type: ignore[union-attr]
        ep = json.loads(Path(line.split(":", 1)[1].strip()).read_text())
        a, admin = ep["apns"], ep["admin"]["url"]
        devices = httpx.get(admin + "/devices", params={"platform": "ios", "limit": 1000}).json()["devices"]
        uris = state / "uris.txt"
        uris.write_text("".join(f"{a['h2c_url']}/3/device/{d['token']}\n" for d in devices))
        body = state / "body.json"
        body.write_text('{"aps":{"content-available":1},"data":"' + "z" * 160 + '"}')
        token = apns_provider_token(a)

        def h2load(count: int) -> str:
            return subprocess.run(
                ["h2load", "-n", str(count), "-c", "8", "-m", "100", "-i", str(uris), "-d", str(body),
                 "-H", f"authorization: bearer {token}", "-H", f"apns-topic: {a['topic']}",
                 "-H", "apns-push-type: background", "-H", "apns-priority: 5"],
                capture_output=True, text=True, timeout=600).stdout

        h2load(10_000)
        stats = httpx.get(admin + "/stats", timeout=30).json()
        pids = [proc.pid] + [w["pid"] for w in stats.get("per_worker", [])]
        before = _cpu(pids)
        out = h2load(n)
        used = _cpu(pids) - before
        rps = float(re.search(r"finished in .*?, ([\d.]+) req/s", out).group(1))   # type: ignore[union-attr]
        ok = int(re.search(r"status codes: (\d+) 2xx", out).group(1))             # type: ignore[union-attr]
        return rps, used / max(ok, 1) * 1000, ok
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=60_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    rps: dict[int, list[float]] = {1: [], args.workers: []}
    cpu: dict[int, list[float]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            for w in rps:
                x, c, ok = one(w, args.n, Path(tmp) / f"w{w}")
                rps[w].append(x)
                cpu[w].append(c)
                print(f"run {r} workers={w}: {x:.0f} req/s, {c:.3f} CPU-s per 1000 req, 2xx={ok}", flush=True)
    for w in rps:
        print(f"workers={w}: median {statistics.median(rps[w]):.0f} req/s, {statistics.median(cpu[w]):.3f} CPU-s/1000")
    w = args.workers
    print(f"ratio workers={w}/1: req/s {statistics.median(rps[w]) / statistics.median(rps[1]):.2f}, "
          f"CPU per request {statistics.median(cpu[w]) / statistics.median(cpu[1]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
