"""In-process full APNs path without sockets: replay bytes recorded by `ab_record.py` into the fast
engine + the real ApnsService + Testbed (as `pushsim serve` builds them, GC tuned as serve does), one
fresh connection per replay; CPU µs per request. Less noisy than h2load on a shared machine.

    python benchmarks/ab_replay.py REC.pkl --pairs 40 --warm 4 A=DIR B=DIR ...

One child process per tree (PYTHONPATH=DIR), stepped in lockstep, order alternating each turn;
prints each tree's median and the median of the per-turn ratios to the first tree.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from pathlib import Path


class _Transport:
    """Counts what the engine writes; the replay never reads the answers."""

    def __init__(self) -> None:
        self.n = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.n += len(data)
        self.writes += 1

    def get_extra_info(self, key: str, default: object = None) -> object:
        return default

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


async def child(a: argparse.Namespace) -> None:
    rec = pickle.load(open(a.rec, "rb"))
    from pushsim.testbed import Testbed
    from pushsim.config import Config
    from pushsim.credentials import ensure_credentials
    from pushsim.edge.fast_engine import FastH2Protocol
    from pushsim.server import build_plans
    loop = asyncio.get_running_loop()
    cfg = Config(devices="ios=2000,android=2000", state_dir=rec["state"])
    creds = ensure_credentials(Path(rec["state"]), cfg)
    testbed = Testbed(cfg, schedule=loop.call_soon)
    svc = [p.service for p in build_plans(testbed, creds) if p.name == "apns"][0]
    if a.gc == "off":
        gc.disable()
    elif a.gc == "serve":                 # as pushsim.server.tune_gc
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    chunks = rec["chunks"]
    print("ready", flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            break
        tr = _Transport()
        proto = FastH2Protocol(svc, set())
        proto.connection_made(tr)
        t0 = time.process_time()
        for c in chunks:
            proto.data_received(c)
            await asyncio.sleep(0)        # one loop tick per read, as a socket would give: the dispatcher flushes
        dt = time.process_time() - t0
        print(json.dumps({"us": dt / rec["n"] * 1e6, "stats": testbed.ledger.stats() if a.stats else None,
                          "writes": tr.writes}), flush=True)


def parent(a: argparse.Namespace) -> None:
    procs: dict[str, subprocess.Popen] = {}
    for v in a.variants:
        name, src = v.split("=", 1)
        cmd = [sys.executable, __file__, a.rec, "--child", "--gc", a.gc] + (["--stats"] if a.stats else [])
        procs[name] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env={**os.environ, "PYTHONPATH": src})
    for p in procs.values():
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    names = list(procs)
    res: dict[str, list[float]] = {n: [] for n in names}
    for i in range(a.warm + a.pairs):
        for n in (names if i % 2 == 0 else names[::-1]):
            p = procs[n]
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write("go\n")
            p.stdin.flush()
            out = json.loads(p.stdout.readline())
            if i >= a.warm:
                res[n].append(out["us"])
            if a.stats and i == a.warm + a.pairs - 1:
                print(n, out["stats"], "writes", out["writes"])
    for p in procs.values():
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    base = names[0]
    for n in names:
        print(f"{n}: median {statistics.median(res[n]):.2f} µs/req  min {min(res[n]):.2f}  "
              f"runs {[round(x, 1) for x in res[n]]}")
        if n != base:
            ratios = [b / x for x, b in zip(res[base], res[n])]
            print(f"   {n}/{base}: median paired ratio {statistics.median(ratios):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rec")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--gc", choices=("serve", "default", "off"), default="serve")
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--stats", action="store_true")
    ap.add_argument("variants", nargs="*")
    a = ap.parse_intermixed_args()
    if a.child:
        import uvloop
        uvloop.run(child(a))
    else:
        parent(a)


if __name__ == "__main__":
    main()
