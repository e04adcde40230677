"""`python -m benchmarks quick`: a regression guard in under a minute.

pushsim APNs h2c and FCM h2c beside nghttpd (the same POSTs over h2c), short interleaved rounds.
What it reports is the ratio to nghttpd, round by round: a row's round i over its nghttpd row's round
i, taken seconds apart, so a busy phase of the machine slows both. Run it before a change with
`--save before.json` and after it with `--compare before.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks import targets
from benchmarks.full import Session, header, rounds, warm_up
from benchmarks.runner import aggregate

ROWS = ("apns-h2c", "fcm-h2c")


def results_of(s: Session) -> dict:
    by = {r.name: r for r in s.rows}
    out: dict[str, dict] = {}
    for row in s.rows:
        agg = aggregate(row.runs)
        entry = {"server": row.server, "ref": row.ref, "req_s": agg["req_s"], "req_s_runs": agg["req_s_runs"],
                 "failed_runs": agg["failed_runs"], "server_cpu_us_per_req": agg["server_cpu_us_per_req"],
                 "latency_us": agg["latency_us"]}
        if row.ref:
            ref = by[row.ref]
            pairs = targets.paired_ratios([r["req_s"] if r["ok"] else 0 for r in row.runs],
                                          [r["req_s"] if r["ok"] else 0 for r in ref.runs])
            entry.update(ratio=targets.median_or_none(pairs), ratio_runs=[round(p, 4) for p in pairs],
                         ratio_spread=targets.spread(pairs))
        out[row.name] = entry
    return out


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pushsim-quick-") as d, ExitStack() as stack:
        s = Session(args, ROWS, stack, Path(d))
        results = header(args, s, "quick")
        warm_up(s, args.warmup)
        results["rounds"] = rounds(s, args.runs, args.budget, t0)
        results["rows"] = results_of(s)
    results["wall_s"] = time.monotonic() - t0
    results["loadavg_end"] = os.getloadavg()
    print(f"\n{'row':<20} {'median req/s':>12} {'ratio':>8} {'± spread':>9}  {'server µs/req':>13}  ratio per round")
    for name, r in results["rows"].items():
        rate = f"{r['req_s']:.0f}" if r["req_s"] else "FAILED"
        cpu = f"{r['server_cpu_us_per_req']:.1f}" if r["server_cpu_us_per_req"] else "-"
        if r.get("ratio") is not None:
            print(f"{name:<20} {rate:>12} {r['ratio']:>8.4f} {r['ratio_spread']:>9.4f}  {cpu:>13}  "
                  + " ".join(f"{x:.4f}" for x in r["ratio_runs"]))
        else:
            print(f"{name:<20} {rate:>12} {'-':>8} {'':>9}  {cpu:>13}")
    bad = [n for n, r in results["rows"].items() if r["failed_runs"]]
    results["ok"] = not bad
    print(f"\nwall {results['wall_s']:.0f} s, {results['rounds']} rounds; load average {results['loadavg_start'][0]:.2f}"
          f" -> {results['loadavg_end'][0]:.2f}" + (f"; FAILED runs in: {', '.join(bad)}" if bad else ""))
    for path in filter(None, (args.save, args.json)):
        Path(path).write_text(json.dumps(results, indent=1, default=float))
        print(f"saved: {path}")
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        print(f"\ncompared with {args.compare} ({before.get('utc', '?')} UTC, workers {before.get('workers', '?')}):")
        print(targets.format_compare(targets.compare(before, results)))
        print("noise: ± is the larger relative half-range of the per-round ratios of the two runs. A change\n"
              "counts only when every round of one run beats every round of the other (5 vs 5 rounds: 1 in\n"
              "126 by chance); otherwise \"(within noise)\". Repeat both sides or use `full` before trusting\n"
              "it; server µs/req is CPU per request, less sensitive to contention than req/s.")
    return 0 if not bad else 1
