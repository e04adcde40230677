"""device_sim memory per install and time to ready.

    PYTHONPATH=. python benchmarks/devsim_memory.py [--installs 1000000] [--active 10000]

Builds a Bench with N installs (half iOS, half Android) on the virtual clock, reports the time
until it is ready and the process RSS; then sends one push to `--active` installs (each then
gets lazily created device state) and reports RSS again. Run it in a fresh process.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--installs", type=int, default=1_000_000)
    ap.add_argument("--active", type=int, default=10_000)
    args = ap.parse_args()
    base = rss_mib()
    from device_sim.notification import Notification
    from pushsim.bench import Bench
    from pushsim.config import Config
    imported = rss_mib()
    t0 = time.perf_counter()
    bench = Bench(Config(devices=str(args.installs), seed=1, clock="virtual"))
    ready = time.perf_counter() - t0
    after_fleet = rss_mib()
    step = max(1, args.installs // max(1, args.active))
    t = bench.sched.now
    t1 = time.perf_counter()
    for k, i in enumerate(range(0, args.installs, step)):
        ios = bench.fleet.platform[i] == 0
        bench.dispatcher.submit(Notification("apns" if ios else "fcm", "t", i, "m", t + k * 0.001,
                                             "background" if ios else "data", 5 if ios else 10, b"{}"))
    bench.sched.run_until(t + 3600)
    push_s = time.perf_counter() - t1
    after_traffic = rss_mib()
    print(json.dumps({
        "installs": args.installs, "time_to_ready_s": round(ready, 3),
        "rss_mib": {"python": round(base, 1), "imports": round(imported, 1), "fleet": round(after_fleet, 1),
                    "after_traffic": round(after_traffic, 1)},
        "fleet_bytes_per_install": round((after_fleet - imported) * 1048576 / args.installs, 1),
        "active_installs": len(bench.sim.devices),
        "bytes_per_active_install": round((after_traffic - after_fleet) * 1048576 / max(1, len(bench.sim.devices))),
        "traffic_seconds": round(push_s, 3), "funnel": bench.ledger.stats(),
    }, indent=2))


if __name__ == "__main__":
    main()
