"""device_sim memory per install and time to ready.

    PYTHONPATH=. python benchmarks/devsim_memory.py [--installs 1000000] [--active N] [--record-limit R]

Builds a Testbed with N installs (half iOS, half Android) on the virtual clock, reports the time
until it is ready and the process RSS; then sends one push through the dispatcher to `--active`
installs (default: every install), lets an hour of virtual time pass (the pushes settle, or wait
where the OS holds them), and reports RSS again. Each push looks like one the fakes make: the
install's own token string, a distinct 36-character message id and a fresh 200-byte payload.
`--record-limit` overrides the ledger's retention bound (default: the Ledger's); `--gc default`
keeps CPython's default collector thresholds. Run it in a fresh process.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAYLOAD = b'{"aps":{"content-available":1},"data":"' + b"z" * 159 + b'"}'


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--installs", type=int, default=1_000_000)
    ap.add_argument("--active", type=int, default=None, help="installs that get one push (default: all)")
    ap.add_argument("--record-limit", type=int, default=None)
    ap.add_argument("--gc", choices=("serve", "default"), default="serve",
                    help="serve: freeze start-up objects and raise the thresholds as `pushsim serve` does")
    args = ap.parse_args()
    active = args.installs if args.active is None else args.active
    base = rss_mib()
    from device_sim.ledger import Ledger
    from device_sim.notification import Notification
    from pushsim.testbed import Testbed
    from pushsim.config import Config
    imported = rss_mib()
    t0 = time.perf_counter()
    testbed = Testbed(Config(devices=str(args.installs), seed=1, clock="virtual"))
    ready = time.perf_counter() - t0
    after_fleet = rss_mib()
    if args.gc == "serve":   # as pushsim.server.tune_gc: RSS is the same, the traffic phase much faster
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    if args.record_limit is not None:
        testbed.ledger.record_limit = args.record_limit
    limit = testbed.ledger.record_limit if "record_limit" in Ledger.__init__.__code__.co_varnames else None
    step = max(1, args.installs // max(1, active))
    t = testbed.sched.now
    fleet, submit = testbed.fleet, testbed.dispatcher.submit
    t1 = time.perf_counter()
    for k, i in enumerate(range(0, args.installs, step)):
        ios = fleet.is_ios(i)
        token = fleet.apns_token(i) if ios else fleet.fcm_token(i)
        mid = "%08x-0000-4000-8000-%012x" % (k >> 48, k & 0xFFFFFFFFFFFF)
        submit(Notification("apns" if ios else "fcm", token, i, mid, t + k * 0.001,
                            "background" if ios else "data", 5 if ios else 10, bytes(PAYLOAD)))
    testbed.sched.run_until(t + k * 0.001 + 3600)
    push_s = time.perf_counter() - t1
    gc.collect()
    after_traffic = rss_mib()
    print(json.dumps({
        "installs": args.installs, "time_to_ready_s": round(ready, 3),
        "rss_mib": {"python": round(base, 1), "imports": round(imported, 1), "fleet": round(after_fleet, 1),
                    "after_traffic": round(after_traffic, 1)},
        "fleet_bytes_per_install": round((after_fleet - imported) * 1048576 / args.installs, 1),
        "active_installs": len(testbed.device_sim.devices),
        "bytes_per_active_install": round((after_traffic - after_fleet) * 1048576 / max(1, len(testbed.device_sim.devices))),
        "record_limit": limit, "records_retained": len(testbed.ledger.records),
        "forgotten": getattr(testbed.ledger, "forgotten", None),
        "traffic_seconds": round(push_s, 3), "funnel": testbed.ledger.stats(),
    }, indent=2))


if __name__ == "__main__":
    main()
