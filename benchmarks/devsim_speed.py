"""device_sim speed in virtual time: device events per second.

    PYTHONPATH=. python benchmarks/devsim_speed.py [--repeat 5]

Three measures, each the median of --repeat rounds (one round runs each measure once, interleaved),
and the pipeline / scheduler ratio (issue 15 target: >= 0.5):
  scheduler   the timer queue alone, 10,000 timers outstanding, each fired one re-arming (the floor)
  pipeline    accepted notifications through dispatch → OS policy → ledger, plus the app task
              timer each delivery starts (events = notifications handled + timers fired)
  scenario    scenarios/mixed-fleet.toml (1,000 installs, 24 h, opens, Doze, budgets, offline)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_sim.clock import Scheduler  # noqa: E402
from device_sim.notification import Notification  # noqa: E402
from device_sim.scenario import run_virtual  # noqa: E402
from device_sim.testing import virtual_world  # noqa: E402


def scheduler(n: int = 500_000, outstanding: int = 10_000) -> float:
    """Hold model: `outstanding` timers pending; each one fired schedules the next."""
    s = Scheduler(0.0)
    left = [n]

    def fire(_a: object) -> None:
        if left[0] > 0:
            left[0] -= 1
            s.call_at(s.now + 1.0 + (left[0] % 97) * 0.01, fire)

    for i in range(outstanding):
        s.call_at(i * 0.0001, fire)
    t0 = time.perf_counter()
    s.run_until(float("inf"))
    return s.fired / (time.perf_counter() - t0)


def pipeline(n: int = 100_000, installs: int = 10_000) -> float:
    b = virtual_world(f"ios={installs // 2},android={installs // 2}", ios={"throttle": False})
    submit, sim, sched = b.dispatcher.submit, b.device_sim, b.sched
    notes = []
    t = sched.now
    for k in range(n):
        i = k % installs
        ios = i < installs // 2
        notes.append(Notification("apns" if ios else "fcm", "t", i, "m", t + k * 0.01,
                                  "background" if ios else "data", 5 if ios else 10, b"{}"))
    t0 = time.perf_counter()
    for note in notes:
        submit(note)
    sched.run_until(t + n * 0.01 + 60)
    wall = time.perf_counter() - t0
    return (sim.events + sched.fired) / wall


def scenario() -> float:
    s = run_virtual(Path(__file__).resolve().parents[1] / "scenarios" / "mixed-fleet.toml", 1)
    return s.events / s.wall_seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=("scheduler", "pipeline", "scenario"), action="append",
                    help="run only these measures (repeatable; default: all three)")
    args = ap.parse_args()
    measures = [(name, fn) for name, fn in (("scheduler", scheduler), ("pipeline", pipeline), ("scenario", scenario))
                if not args.only or name in args.only]
    # Rounds interleave the measures, so a burst of load from other jobs on this shared box lands on
    # all of them alike and the pipeline/scheduler ratio of one round compares like with like.
    runs: dict[str, list[float]] = {name: [] for name, _ in measures}
    for _ in range(args.repeat):
        for name, fn in measures:
            runs[name].append(fn())
    out: dict[str, object] = {name: {"events_per_s_median": round(statistics.median(r)), "runs": [round(x) for x in r]}
                              for name, r in runs.items()}
    if "scheduler" in runs and "pipeline" in runs:
        ratios = [p / s for p, s in zip(runs["pipeline"], runs["scheduler"])]
        out["pipeline_to_scheduler"] = {
            "median_of_round_ratios": round(statistics.median(ratios), 3),
            "ratio_of_medians": round(statistics.median(runs["pipeline"]) / statistics.median(runs["scheduler"]), 3),
            "rounds": [round(r, 3) for r in ratios], "target": 0.5}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
