"""Issue 7's memory target: 1,000,000 installs in <= 1 GiB RSS, ready in <= 15 s. Measured two ways:

- `pushsim serve --devices ios=500000,android=500000` (the shipped process, with `--workers`): spawn
  to its `pushsim ready:` line, RSS of its process tree when ready and after `--memory-pushes` APNs
  pushes over 1000 of its fleet tokens.
- benchmarks/devsim_memory.py, run by its CLI in a fresh process (its internals belong to device_sim's
  owner; only its JSON output is read): a Testbed with 1M installs, then one push to 10,000 of them.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import h2load, workloads
from benchmarks.processes import ROOT, start_pushsim, stop, tree_rss

MIB = 2**20


def serve(installs: int, workers: int, engine: str, pushes: int) -> dict:
    half = installs // 2
    with tempfile.TemporaryDirectory(prefix="pushsim-mem-") as d:
        tmp = Path(d)
        ps = start_pushsim(tmp / "state", f"ios={half},android={installs - half}", engine, workers, timeout=120)
        try:
            out = {"serve_installs": installs, "serve_ready_s": ps.ready_s,
                   "serve_rss_idle_mib": tree_rss(ps.pid) / MIB}
            if pushes:
                w = workloads.apns(ps.endpoints, tmp, 1000)
                load = h2load.Load(w.uri_file(tmp, ps.endpoints["apns"]["h2c_url"], "mem"), w.body, w.headers, 8, 100,
                                   rps=10_000.0)   # paced like the APNs rows: see full.Session
                r = h2load.run(load, pushes, timeout=120)
                out["serve_pushes"] = r.summary.ok2xx
            out["serve_rss_mib"] = tree_rss(ps.pid) / MIB
            return out
        finally:
            stop(ps.proc, signal.SIGINT)


def devsim(installs: int, timeout: float = 300) -> dict:
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "devsim_memory.py"), "--installs", str(installs)],
                       capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return parse_devsim(p.stdout)


def parse_devsim(text: str) -> dict:
    """The fields this benchmark needs from devsim_memory.py's JSON; what is missing stays out."""
    try:
        data = json.loads(text[text.index("{"):])
    except ValueError:
        return {"devsim_error": text[-300:] or "no output"}
    rss = data.get("rss_mib") or {}
    out = {"devsim_installs": data.get("installs"), "devsim_ready_s": data.get("time_to_ready_s"),
           "devsim_rss_fleet_mib": rss.get("fleet"), "devsim_rss_mib": rss.get("after_traffic", rss.get("fleet")),
           "devsim_active_installs": data.get("active_installs")}
    return {k: v for k, v in out.items() if v is not None}


def measure(args: argparse.Namespace) -> dict:
    out = serve(args.memory_installs, args.workers, args.engine, args.memory_pushes)
    out.update(devsim(args.memory_installs))
    return out


def format_result(m: dict) -> str:
    lines = []
    if "serve_ready_s" in m:
        lines.append(f"  pushsim serve, {m['serve_installs']:,} installs: ready in {m['serve_ready_s']:.2f} s,"
                     f" RSS {m['serve_rss_idle_mib']:.0f} MiB idle, {m['serve_rss_mib']:.0f} MiB after"
                     f" {m.get('serve_pushes', 0):,} pushes")
    if "devsim_ready_s" in m:
        lines.append(f"  devsim_memory.py, {m.get('devsim_installs', 0):,} installs: ready in {m['devsim_ready_s']:.2f} s,"
                     f" RSS {m.get('devsim_rss_fleet_mib', 0):.0f} MiB with the fleet, {m.get('devsim_rss_mib', 0):.0f} MiB"
                     f" after a push to {m.get('devsim_active_installs', 0):,} installs")
    if "devsim_error" in m:
        lines.append(f"  devsim_memory.py: output not understood: {m['devsim_error']!r}")
    return "\n".join(lines)
