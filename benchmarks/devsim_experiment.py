"""A fleet-scale experiment in virtual time: wall time, peak RSS and the lift (issue 15 item 4).

    PYTHONPATH=. .venv/bin/python benchmarks/devsim_experiment.py [--installs 1000000] [--days 7]
        [--seed 1] [--scenario scenarios/bench-1m-week.toml] [--json]

Runs the scenario (default scenarios/bench-1m-week.toml: a daily silent push against a 10%
enforced holdout, Poisson opens, the default device mix) in a fresh child process — `--installs`
and `--days` override its fleet size (half iOS, half Android) and duration — and prints:
  wall_s        the child's wall time: build the world, run it, summarise (digest, lift intervals)
  run_s         the virtual-time run alone (Summary.wall_seconds), and events / events_per_s
  peak_rss_mib  the child's peak RSS (getrusage(RUSAGE_CHILDREN).ru_maxrss); cpu_s its CPU seconds
  lift          treated - holdout fresh rate at open, with its 95% interval, and each arm's rate
Targets for 1,000,000 installs x 7 days: wall <= 10 minutes, peak RSS <= 2 GiB on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SCENARIO = ROOT / "scenarios" / "bench-1m-week.toml"
TARGET_WALL_S, TARGET_RSS_MIB = 600.0, 2048.0


def child(scenario: Path, installs: int | None, days: float | None, seed: int) -> dict[str, object]:
    """The measured work, in this (child) process: build, run and summarise the scenario."""
    t0 = time.perf_counter()
    from device_sim.scenario import load, simulate
    doc = load(scenario)
    if installs is not None:
        doc.setdefault("fleet", {})["devices"] = f"ios={installs // 2},android={installs - installs // 2}"
    if days is not None:
        doc["duration"] = days * 86_400.0
    _world, s = simulate(doc, seed)
    wall = time.perf_counter() - t0
    exp = s.experiment or {}
    lift = {arm: v["fresh_rate"] for arm, v in exp.get("lift", {}).items()}
    arms = {arm: {"installs": v["installs"], "fresh_rate": v["fresh_rate"]["estimate"],
                  "wakes_per_install_day": v["wakes_per_install_day"]["estimate"]}
            for arm, v in exp.get("arms", {}).items()}
    return {"scenario": str(doc.get("name")), "devices": doc["fleet"]["devices"], "days": s.duration / 86_400.0,
            "seed": seed, "wall_s": round(wall, 2), "run_s": round(s.wall_seconds, 2), "events": s.events,
            "events_per_s": round(s.events / s.wall_seconds) if s.wall_seconds else None,
            "funnel": s.funnel, "digest": s.digest, "lift_fresh_rate": lift, "arms": arms}


def format_text(res: dict[str, Any]) -> str:
    lines = [f"{res['scenario']}: {res['devices']}, {res['days']:g} device days, seed {res['seed']}",
             f"  wall {res['process_wall_s']:.1f} s (run {res['run_s']:.1f} s: {res['events']:,} events, "
             f"{res['events_per_s']:,}/s; CPU {res['cpu_s']:.1f} s)   peak RSS {res['peak_rss_mib']:,.0f} MiB   "
             f"targets <= {TARGET_WALL_S:.0f} s, <= {TARGET_RSS_MIB:.0f} MiB: {'met' if res['targets']['met'] else 'NOT met'}",
             f"  funnel accepted {res['funnel']['accepted']:,}  delivered {res['funnel']['delivered']:,}  "
             f"dropped {sum(res['funnel']['dropped'].values()):,}  pending {sum(res['funnel']['pending'].values()):,}"]
    for arm, a in res["arms"].items():
        lines.append(f"  arm {arm:<8} {a['installs']:>9,} installs  fresh rate at open {a['fresh_rate']}  "
                     f"wakes/install/day {a['wakes_per_install_day']}")
    for arm, lf in res["lift_fresh_rate"].items():
        lines.append(f"  lift {arm} - holdout, fresh rate at open: {lf['estimate']} (95% CI {lf['ci95'][0]} .. {lf['ci95'][1]})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    ap.add_argument("--installs", type=int, default=None, help="fleet size (default: the scenario's, 1,000,000)")
    ap.add_argument("--days", type=float, default=None, help="device days (default: the scenario's, 7)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.scenario, args.installs, args.days, args.seed)))
        return 0
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--scenario", str(args.scenario),
           "--seed", str(args.seed)]
    if args.installs is not None:
        cmd += ["--installs", str(args.installs)]
    if args.days is not None:
        cmd += ["--days", str(args.days)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = round(time.perf_counter() - t0, 2)      # with interpreter start and imports
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    res["peak_rss_mib"] = round(ru.ru_maxrss / 1024, 1)
    res["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 1)     # on a shared box, wall - cpu = time waiting for a core
    res["targets"] = {"wall_s": TARGET_WALL_S, "peak_rss_mib": TARGET_RSS_MIB,
                      "met": res["process_wall_s"] <= TARGET_WALL_S and res["peak_rss_mib"] <= TARGET_RSS_MIB}
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(format_text(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
