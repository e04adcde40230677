"""A fleet-scale experiment in virtual time: wall time, peak RSS and the lift (issue 15 item 4).

    PYTHONPATH=. .venv/bin/python benchmarks/devsim_experiment.py [--installs 1000000] [--days 7]
        [--seed 1] [--workers 1] [--scenario scenarios/bench-1m-week.toml] [--json]

Runs the scenario (default scenarios/bench-1m-week.toml: a daily silent push against a 10%
enforced holdout, Poisson opens, the default device mix) in a fresh child process — `--installs`
and `--days` override its fleet size (half iOS, half Android) and duration. `--workers N` runs N
children side by side, child k simulating the installs with index % N == k (installs never affect
each other: each one's outcomes are those of the one-process run, and the experiment is pooled
from the children's moments; tests/unit/test_devsim_shard.py). It prints:
  wall_s        the child's wall time: build the world, run it, summarise (digest, lift intervals)
  run_s         the virtual-time run alone (Summary.wall_seconds), and events / events_per_s
  peak_rss_sum_mib  the children's peak RSS added up (each its own ru_maxrss: they run at the same
                time); peak_rss_mib the largest child's (getrusage(RUSAGE_CHILDREN).ru_maxrss);
                cpu_s their CPU seconds
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


def child(scenario: Path, installs: int | None, days: float | None, seed: int,
          shard: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """The measured work, in this (child) process: build, run and summarise the scenario (or one
    shard of its installs: device_sim.scenario.simulate)."""
    t0 = time.perf_counter()
    from device_sim.scenario import load, simulate
    doc = load(scenario)
    if installs is not None:
        doc.setdefault("fleet", {})["devices"] = f"ios={installs // 2},android={installs - installs // 2}"
    if days is not None:
        doc["duration"] = days * 86_400.0
    _world, s = simulate(doc, seed, shard=shard)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"scenario": str(doc.get("name")), "devices": doc["fleet"]["devices"], "days": s.duration / 86_400.0,
            "seed": seed, "shard": list(shard), "wall_s": round(wall, 2), "run_s": round(s.wall_seconds, 2),
            "events": s.events, "events_per_s": round(s.events / s.wall_seconds) if s.wall_seconds else None,
            "funnel": s.funnel, "digest": s.digest, "rss_mib": round(ru.ru_maxrss / 1024, 1),
            **headline(s.experiment), "experiment": s.experiment}


def headline(exp: dict[str, Any] | None) -> dict[str, Any]:
    """The part of an experiment's outcomes this benchmark prints: fresh-rate lift and arm sizes."""
    exp = exp or {}
    return {"lift_fresh_rate": {arm: v["fresh_rate"] for arm, v in exp.get("lift", {}).items()},
            "arms": {arm: {"installs": v["installs"], "fresh_rate": v["fresh_rate"]["estimate"],
                           "wakes_per_install_day": v["wakes_per_install_day"]["estimate"]}
                     for arm, v in exp.get("arms", {}).items()}}


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from the shards' (disjoint installs, run side by side): sums, the slowest shard's
    times, and the experiment pooled from the shards' moments."""
    from device_sim.lift import merge_moments, summarize
    first = parts[0]
    funnel: dict[str, Any] = {"accepted": 0, "delivered": 0, "rejected": {}, "dropped": {}, "pending": {}}
    for p in parts:
        funnel["accepted"] += p["funnel"]["accepted"]
        funnel["delivered"] += p["funnel"]["delivered"]
        for key in ("rejected", "dropped", "pending"):
            for reason, n in p["funnel"][key].items():
                funnel[key][reason] = funnel[key].get(reason, 0) + n
    exp = None
    if first["experiment"] is not None:
        exp = summarize(first["experiment"], merge_moments([p["experiment"]["moments"] for p in parts]))
    run_s = max(p["run_s"] for p in parts)
    events = sum(p["events"] for p in parts)
    return {"scenario": first["scenario"], "devices": first["devices"], "days": first["days"], "seed": first["seed"],
            "wall_s": max(p["wall_s"] for p in parts), "run_s": run_s, "events": events,
            "events_per_s": round(events / run_s) if run_s else None, "funnel": funnel,
            "digest": [p["digest"] for p in parts], "shard_rss_mib": [p["rss_mib"] for p in parts],
            **headline(exp), "experiment": exp}


def format_text(res: dict[str, Any]) -> str:
    lines = [f"{res['scenario']}: {res['devices']}, {res['days']:g} device days, seed {res['seed']}, "
             f"{res.get('workers', 1)} process(es)",
             f"  wall {res['process_wall_s']:.1f} s (run {res['run_s']:.1f} s: {res['events']:,} events, "
             f"{res['events_per_s']:,}/s; CPU {res['cpu_s']:.1f} s)   peak RSS {res['peak_rss_sum_mib']:,.0f} MiB"
             f"{'' if res.get('workers', 1) == 1 else ' (' + ' + '.join(f'{x:,.0f}' for x in res['shard_rss_mib']) + ')'}   "
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
    ap.add_argument("--workers", type=int, default=1,
                    help="child processes side by side, each simulating installs with index %% workers == k")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)    # "k/N": run shard k of N
    args = ap.parse_args(argv)
    if args.child is not None:
        me, workers = (int(x) for x in args.child.split("/"))
        print(json.dumps(child(args.scenario, args.installs, args.days, args.seed, (me, workers))))
        return 0
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    base = [sys.executable, str(Path(__file__).resolve()), "--scenario", str(args.scenario), "--seed", str(args.seed)]
    if args.installs is not None:
        base += ["--installs", str(args.installs)]
    if args.days is not None:
        base += ["--days", str(args.days)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*base, "--child", f"{k}/{args.workers}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for k in range(args.workers)]
    outs = [p.communicate() for p in procs]
    for p, (_out, err) in zip(procs, outs):
        if p.returncode != 0:
            sys.stderr.write(err)
            return p.returncode or 1
    parts = [json.loads(out.strip().splitlines()[-1]) for out, _err in outs]
    res = parts[0] if args.workers == 1 else merge(parts)
    res.pop("experiment", None)      # (the full outcomes: `pushsim run FILE --mode virtual --json`)
    res["workers"] = args.workers
    res["process_wall_s"] = round(time.perf_counter() - t0, 2)      # with interpreter start and imports
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    res["peak_rss_mib"] = round(ru.ru_maxrss / 1024, 1)              # the largest child's peak
    res["peak_rss_sum_mib"] = round(sum(p["rss_mib"] for p in parts), 1)   # all children side by side
    res["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 1)     # on a shared box, wall - cpu = time waiting for a core
    res["targets"] = {"wall_s": TARGET_WALL_S, "peak_rss_mib": TARGET_RSS_MIB,
                      "met": res["process_wall_s"] <= TARGET_WALL_S and res["peak_rss_sum_mib"] <= TARGET_RSS_MIB}
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(format_text(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
