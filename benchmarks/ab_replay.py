"""In-process full APNs path without sockets: replay bytes recorded by `ab_record.py` into the fast
engine + the real ApnsService + Bench (as `pushsim serve` builds them, GC tuned as serve does), one
fresh connection per replay; CPU µs per request. Less noisy than h2load on a shared machine.

    python benchmarks/ab_replay.py REC.pkl --pairs 40 --warm 4 A=DIR B=DIR ...

One child process per tree (PYTHONPATH=DIR), stepped in lockstep, order alternating each turn;
prints each tree's median and the median of the per-turn ratios to the first tree.
"""
import argparse, asyncio, gc, json, os, pickle, statistics, subprocess, sys, time
from pathlib import Path

class T:
    def __init__(self): self.n = 0; self.writes = 0
    def write(self, b): self.n += len(b); self.writes += 1
    def get_extra_info(self, k, d=None): return d
    def close(self): pass
    def is_closing(self): return False

async def child(a):
    rec = pickle.load(open(a.rec, "rb"))
    from pushsim.config import Config
    from pushsim.credentials import ensure_credentials
    from pushsim.bench import Bench
    from pushsim.server import build_plans
    from pushsim.edge.fast_engine import FastH2Protocol
    loop = asyncio.get_running_loop()
    cfg = Config(devices="ios=2000,android=2000", state_dir=rec["state"])
    creds = ensure_credentials(Path(rec["state"]), cfg)
    bench = Bench(cfg, schedule=loop.call_soon)
    plans = build_plans(bench, creds)
    svc = [p.service for p in plans if p.name == "apns"][0]
    if a.gc == "off":
        gc.disable()
    if a.gc == "serve":
        gc.collect(); gc.freeze(); gc.set_threshold(50_000, 20, 100)
    chunks = rec["chunks"]
    reader = sys.stdin
    print("ready", flush=True)
    while True:
        line = await loop.run_in_executor(None, reader.readline)
        if not line or line.strip() != "go":
            break
        tr = T()
        p = FastH2Protocol(svc, set())
        p.connection_made(tr)
        t0 = time.process_time()
        for c in chunks:
            p.data_received(c)
            await asyncio.sleep(0)
        dt = time.process_time() - t0
        print(json.dumps({"us": dt / rec["n"] * 1e6, "stats": bench.ledger.stats() if a.stats else None,
                          "writes": tr.writes}), flush=True)

def parent(a):
    procs = {}
    for v in a.variants:
        name, src = v.split("=", 1)
        env = {**os.environ, "PYTHONPATH": src}
        procs[name] = subprocess.Popen([sys.executable, __file__, a.rec, "--child", "--gc", a.gc] + (["--stats"] if a.stats else []),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    for p in procs.values():
        assert p.stdout.readline().strip() == "ready"
    names = list(procs)
    res = {n: [] for n in names}
    for i in range(a.warm + a.pairs):
        order = names if i % 2 == 0 else names[::-1]
        for n in order:
            procs[n].stdin.write("go\n"); procs[n].stdin.flush()
            out = json.loads(procs[n].stdout.readline())
            if i >= a.warm:
                res[n].append(out["us"])
            if a.stats and i == a.warm + a.pairs - 1:
                print(n, out["stats"], "writes", out["writes"])
    for p in procs.values():
        p.stdin.close(); p.wait()
    base = names[0]
    for n in names:
        line = f"{n}: median {statistics.median(res[n]):.2f} µs/req  min {min(res[n]):.2f}  runs {[round(x, 1) for x in res[n]]}"
        if n != base:
            ratios = [b / x for x, b in zip(res[base], res[n])]
            line += f"\n   {n}/{base}: median paired ratio {statistics.median(ratios):.3f}"
        print(line)

ap = argparse.ArgumentParser()
ap.add_argument("rec"); ap.add_argument("--child", action="store_true"); ap.add_argument("--gc", default="serve")
ap.add_argument("--pairs", type=int, default=15); ap.add_argument("--warm", type=int, default=2)
ap.add_argument("--stats", action="store_true")
ap.add_argument("variants", nargs="*")
a = ap.parse_intermixed_args()
if a.child:
    import uvloop
    uvloop.run(child(a))
else:
    parent(a)
