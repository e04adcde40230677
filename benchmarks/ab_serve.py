"""A/B of whole source trees on the full APNs path: one `pushsim serve` per tree (PYTHONPATH=DIR),
h2load runs alternating between them (same flags as `python -m benchmarks apns`, h2c), medians of
the 2xx rate and, with --nghttpd, the ratio to nghttpd measured in the same session.

    python benchmarks/ab_serve.py [--runs 5] [-n 60000] [--nghttpd] [--profile SECONDS] A=DIR B=DIR

A tree is e.g. `git archive COMMIT | tar -x -C DIR`. --profile: py-spy (raw) of each server under
load first, written to prof-NAME.txt in the current directory.
"""
from __future__ import annotations
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchmarks.__main__ as H  # noqa
from pushsim.cli.sender_auth import apns_provider_token

PY = sys.executable

def start(name, src, tmp, devices, extra=()):
    state = tmp / f"state-{name}"
    cmd = [PY, "-m", "pushsim", "serve", "--state-dir", str(state), "--apns-port", "0", "--apns-h2c-port", "0",
           "--fcm-port", "0", "--fcm-h2c-port", "0", "--admin-port", "0",
           "--devices", f"ios={devices},android={devices}", "--engine", "fast", *extra]
    env = {**os.environ, "PYTHONPATH": src}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=src,
                            env=env, start_new_session=True)
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited")
        if line.startswith("pushsim ready:"):
            ep = json.loads(Path(line.split(":", 1)[1].strip()).read_text())
            return proc, ep

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("-n", type=int, default=60000)
    ap.add_argument("--warmup", type=int, default=10000)
    ap.add_argument("--nghttpd", action="store_true")
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--profile", type=float, default=0)
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ab-"))
    payload = H._payload(tmp)
    args = argparse.Namespace(clients=8, streams=100)
    servers = {}
    try:
        for v in a.variants:
            name, src = v.split("=", 1)
            proc, ep = start(name, src, tmp, a.devices)
            apns = ep["apns"]
            toks = H._fleet_tokens(ep["admin"]["url"], 1000)
            w = {"payload": payload, "topic": apns["topic"], "jwt": apns_provider_token(apns), "tokens": toks}
            uris = tmp / f"uris-{name}.txt"
            uris.write_text("".join(f"{apns['h2c_url']}/3/device/{t}\n" for t in toks))
            servers[name] = (proc, w, uris)
            print(f"{name}: pid {proc.pid} {apns['h2c_url']}", flush=True)
        if a.nghttpd:
            docroot = tmp / "docroot"
            w0 = next(iter(servers.values()))[1]
            for t in w0["tokens"]:
                p = docroot / "3" / "device" / t
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"")
            port = H._free_port()
            ng = subprocess.Popen(["nghttpd", "--no-tls", "-d", str(docroot), str(port), "-a", "127.0.0.1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            H._wait_port(port)
            uris = tmp / "uris-ng.txt"
            uris.write_text("".join(f"http://127.0.0.1:{port}/3/device/{t}\n" for t in w0["tokens"]))
            servers["nghttpd"] = (ng, w0, uris)
        for name, (proc, w, uris) in servers.items():
            H._h2load(uris, args, w, a.warmup, [])
        if a.profile:
            for name, (proc, w, uris) in servers.items():
                if name == "nghttpd":
                    continue
                out = Path(f"prof-{name}.txt").absolute()
                load = subprocess.Popen(["h2load", "-n", "400000", "-c", "8", "-m", "100", "-d", str(w["payload"]),
                                         "-H", "apns-push-type: background", "-H", "apns-priority: 5",
                                         "-H", f"apns-topic: {w['topic']}", "-H", f"authorization: bearer {w['jwt']}",
                                         "-i", str(uris)], stdout=subprocess.DEVNULL)
                time.sleep(0.5)
                subprocess.run([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(proc.pid), "-d", str(int(a.profile)), "-r", "250",
                                "-f", "raw", "-o", str(out)], capture_output=False)
                load.kill()
                load.wait()
                print(f"profile {name}: {out}", flush=True)
            time.sleep(1)
        res = {n: [] for n in servers}
        for r in range(a.runs):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                proc, w, uris = servers[name]
                x, wall = H._h2load(uris, args, w, a.n, [])
                res[name].append(x["accepted_s"])
                print(f"  run {r} {name}: {x['req_s']:.0f} req/s  2xx/s {x['accepted_s']:.0f} failed={x['failed']} non2xx={x['non2xx']}", flush=True)
        meds = {n: statistics.median(v) for n, v in res.items()}
        names = list(servers)
        for n in names:
            extra = f"  ratio vs nghttpd {meds[n] / meds['nghttpd']:.3f}" if "nghttpd" in meds and n != "nghttpd" else ""
            print(f"{n}: median 2xx/s {meds[n]:.0f}  runs {[round(x) for x in res[n]]}{extra}")
        base = names[0]
        for n in names[1:]:
            if n != "nghttpd":
                print(f"{n}/{base}: {meds[n] / meds[base]:.3f}")
    finally:
        for name, (proc, *_r) in servers.items():
            H._stop(proc, signal.SIGINT if name != "nghttpd" else signal.SIGTERM)

if __name__ == "__main__":
    main()
