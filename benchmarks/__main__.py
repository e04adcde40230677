"""`python -m benchmarks apns`: h2load against the real `pushsim serve` (h2c and TLS) and nghttpd.

The pushsim side is the full path: `pushsim serve` as a subprocess (PushSim + ApnsService + the
device_sim fleet and ledger), its state dir's .p8 key for the JWT, 1000 fleet iOS tokens from the
admin API. The old stand-in (`benchmarks/server.py`: engine + lean service) stays as a separate
"engine-only" row (`--no-engine-only` skips it). Every server is started here and stopped by PID;
every client run is bounded by -n.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import jwt
import psutil
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PUSHSIM = str(Path(PY).with_name("pushsim"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _payload(tmp: Path) -> Path:
    payload = {"aps": {"content-available": 1}, "data": ""}
    payload["data"] = "z" * (200 - len(json.dumps(payload, separators=(",", ":"))))
    path = tmp / "payload.json"
    path.write_text(json.dumps(payload, separators=(",", ":")))
    assert len(path.read_bytes()) == 200
    return path


def _start_pushsim(tmp: Path, args: argparse.Namespace,
                   extra: list[str] | None = None) -> tuple[subprocess.Popen, dict]:
    state = tmp / "state"
    cmd = [PUSHSIM, "serve", "--state-dir", str(state), "--apns-port", "0", "--apns-h2c-port", "0",
           "--fcm-port", "0", "--fcm-h2c-port", "0", "--admin-port", "0",
           "--devices", f"ios={args.devices},android={args.devices}", "--engine", args.engine, *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"pushsim serve exited with {proc.wait()} before ready")
            if line.startswith("pushsim ready:"):
                endpoints = json.loads(Path(line.split(":", 1)[1].strip()).read_text())
                return proc, endpoints
        raise RuntimeError("pushsim serve never printed 'pushsim ready:'")
    except BaseException:
        _stop(proc)
        raise


def _fleet_tokens(admin_url: str, n: int, platform: str = "ios") -> list[str]:
    with urllib.request.urlopen(f"{admin_url}/devices?platform={platform}&limit={n}", timeout=10) as r:
        toks = [d["token"] for d in json.load(r)["devices"]]
    if len(toks) < n:
        raise RuntimeError(f"fleet has {len(toks)} {platform} tokens, wanted {n}")
    return toks


def _apns_jwt(apns: dict) -> str:
    key = serialization.load_pem_private_key(Path(apns["key_file"]).read_bytes(), None)
    return jwt.encode({"iss": apns["team_id"], "iat": int(time.time())}, key, algorithm="ES256",
                      headers={"kid": apns["key_id"]})


def _h2load(uris: Path, args: argparse.Namespace, w: dict, n: int,
            extra: list[str]) -> tuple[dict, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "headers" in w:
        hdrs = w["headers"]
    else:
        hdrs = ["apns-push-type: background", "apns-priority: 5", f"apns-topic: {w['topic']}",
                f"authorization: bearer {w['jwt']}"]
    cmd = ["h2load", "-n", str(n), "-c", str(w.get("clients", args.clients)),
           "-m", str(w.get("streams", args.streams)), "-d", str(w["payload"]),
           *[a for h in hdrs for a in ("-H", h)], "-i", str(uris), *extra]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / wall
    fin = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    secs = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    rate = float(fin.group(3))
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    reqs = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    res = {"req_s": rate, "2xx": int(codes.group(1)), "non2xx": sum(map(int, codes.groups()[1:])),
           "failed": int(reqs.group(5)), "client_cpu": cpu,
           "accepted_s": int(codes.group(1)) / secs}
    res["ok"] = res["2xx"] == n and res["failed"] == 0 and res["non2xx"] == 0
    return res, wall


def _measure(name: str, pid: int, base_url: str, args: argparse.Namespace, w: dict,
             extra: list[str] | None = None) -> dict:
    extra = extra or []
    uris = args.tmp / f"uris-{name}.txt"
    paths = w.get("paths") or [f"/3/device/{t}" for t in w["tokens"]]
    uris.write_text("".join(f"{base_url}{p}\n" for p in paths))
    warm, _ = _h2load(uris, args, w, args.warmup, extra)
    if not warm["ok"]:
        print(f"  {name}: warm-up not 100% 2xx: 2xx={warm['2xx']} non2xx={warm['non2xx']}"
              f" failed={warm['failed']}", flush=True)
    ps = psutil.Process(pid)
    runs = []
    for _ in range(args.runs):
        c0 = ps.cpu_times()
        r, wall = _h2load(uris, args, w, args.n, extra)
        c1 = ps.cpu_times()
        r["server_cpu"] = (c1.user - c0.user + c1.system - c0.system) / wall
        runs.append(r)
        print(f"  {name}: {r['req_s']:.0f} req/s ({r['accepted_s']:.0f} 2xx/s)  2xx={r['2xx']} non2xx={r['non2xx']} failed={r['failed']}"
              f"  server CPU {r['server_cpu']:.0%}  h2load CPU {r['client_cpu']:.0%}", flush=True)
    good = [r["req_s"] for r in runs if r["ok"]]
    return {"name": name, "runs": runs, "median": statistics.median(good) if good else None,
            "accepted_median": statistics.median(r["accepted_s"] for r in runs),
            "failed_runs": len(runs) - len(good)}


def _bench_pushsim(args: argparse.Namespace) -> list[dict]:
    proc, ep = _start_pushsim(args.tmp, args)
    try:
        apns = ep["apns"]
        w = {"payload": args.payload, "topic": apns["topic"], "jwt": _apns_jwt(apns),
             "tokens": _fleet_tokens(ep["admin"]["url"], args.tokens)}
        args.fleet = w
        print(f"pushsim serve pid {proc.pid}: apns h2c {apns['h2c_url']}, tls {apns['url']}", flush=True)
        out = [_measure(f"pushsim-{args.engine}-h2c", proc.pid, apns["h2c_url"], args, w)]
        if not args.no_tls:
            # APNs starts a token-auth connection at SETTINGS_MAX_CONCURRENT_STREAMS 1 and raises it
            # after the first valid JWT. Over TLS, h2load's first flight (-m streams, sent before the
            # server's SETTINGS arrive) gets 99 RST_STREAM(REFUSED_STREAM) per connection; pacing the
            # start with --rps (per connection; 8 x 4000 = 32k/s offered, ~3x what TLS serves) avoids it.
            rps = ["--rps", str(args.tls_rps)] if args.tls_rps else []
            out.append(_measure(f"pushsim-{args.engine}-tls", proc.pid, apns["url"], args, w, rps))
        return out
    finally:
        _stop(proc, signal.SIGINT)


def _bench_port_server(name: str, cmd: list[str], port: int | None, args: argparse.Namespace,
                       w: dict, extra: list[str] | None = None) -> dict:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        if port is None:
            port = int(proc.stdout.readline().split()[1])        # "port N"
        _wait_port(port)
        return _measure(name, proc.pid, f"http://127.0.0.1:{port}", args, w, extra)
    finally:
        _stop(proc, signal.SIGTERM)


def apns(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as d:
        args.tmp = Path(d)
        args.payload = _payload(args.tmp)
        results = _bench_pushsim(args)
        w = args.fleet
        if not args.no_engine_only:
            # the stand-in: engine + lean APNs-like service, verifying this run's JWT with the .p8's key
            key = serialization.load_pem_private_key(
                Path(args.tmp / "state" / "apns_auth_key.p8").read_bytes(), None)
            (args.tmp / "pub.pem").write_bytes(key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
            srv = [PY, "-m", "benchmarks.server", "--engine", args.engine, "--pubkey",
                   str(args.tmp / "pub.pem"), "--topic", w["topic"]]
            results.append(_bench_port_server(f"engine-only-{args.engine}-h2c", srv, None, args, w))
        docroot = args.tmp / "docroot" / "3" / "device"
        docroot.mkdir(parents=True)
        for t in w["tokens"]:
            (docroot / t).touch()
        port = _free_port()
        results.append(_bench_port_server("nghttpd-h2c", ["nghttpd", "--no-tls", "-d", str(args.tmp / "docroot"),
                                                          str(port), "-a", "127.0.0.1"], port, args, w))
    print()
    for r in results:
        med = f"{r['median']:.0f}" if r["median"] else "FAILED"
        print(f"{r['name']:>24}: median {med} req/s over {len(r['runs'])} runs ({r['failed_runs']} failed;"
              f" median 2xx/s over all runs {r['accepted_median']:.0f})")
    ng = results[-1]["median"]
    for r in results[:-1]:
        if ng and r["median"]:
            print(f"{'ratio ' + r['name'] + '/nghttpd-h2c':>40}: {r['median'] / ng:.3f}")
    return 0 if all(r["failed_runs"] == 0 for r in results) else 1


# FCM ---------------------------------------------------------------------------------------
def _fcm_access_token(ep: dict) -> str:
    """A Bearer token from the fake's OAuth endpoint: the JWT-bearer grant, as google-auth does it."""
    from fake_fcm.testing import sign_assertion
    fcm = ep["fcm"]
    info = json.loads(Path(fcm["service_account_file"]).read_text())
    assertion = sign_assertion(info, time.time(), aud=fcm["token_uri"])
    form = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                   "assertion": assertion}).encode()
    ctx = ssl.create_default_context(cafile=ep.get("ca_file") or fcm.get("ca_file"))
    req = urllib.request.Request(fcm["token_uri"], data=form,
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        return json.load(r)["access_token"]


def _fcm_payload(tmp: Path, token: str, size: int = 200) -> Path:
    msg = {"message": {"token": token, "data": {"k": ""}, "android": {"priority": "high"}}}
    pad = size - len(json.dumps(msg, separators=(",", ":")))
    msg["message"]["data"]["k"] = "v" * max(pad, 1)
    path = tmp / "fcm-payload.json"
    path.write_text(json.dumps(msg, separators=(",", ":")))
    return path


def _summary(results: list[dict], refs: dict[str, str]) -> int:
    print()
    for r in results:
        med = f"{r['median']:.0f}" if r["median"] else "FAILED"
        print(f"{r['name']:>28}: median {med} req/s over {len(r['runs'])} runs ({r['failed_runs']} failed;"
              f" median 2xx/s over all runs {r['accepted_median']:.0f})")
    by = {r["name"]: r for r in results}
    for name, ref in refs.items():
        a, b = by.get(name), by.get(ref)
        if a and b and a["median"] and b["median"]:
            print(f"{'ratio ' + name + '/' + ref:>52}: {a['median'] / b['median']:.3f}")
    return 0 if all(r["failed_runs"] == 0 for r in results) else 1


def fcm(args: argparse.Namespace) -> int:
    """FCM HTTP v1 send over h2c and cleartext HTTP/1.1: one Bearer token, one Android fleet token.

    The per-device quota (240/min by default) is switched off with --fcm-device-quota-minute 0
    --fcm-device-quota-hour 0, since h2load sends one body (one device token) for every request."""
    h2 = {"clients": args.clients, "streams": args.streams}
    h1 = {"clients": args.h1_clients, "streams": 1}
    with tempfile.TemporaryDirectory() as d:
        args.tmp = Path(d)
        proc, ep = _start_pushsim(args.tmp, args, ["--fcm-device-quota-minute", "0",
                                                    "--fcm-device-quota-hour", "0"])
        results = []
        try:
            f = ep["fcm"]
            bearer = _fcm_access_token(ep)
            token = _fleet_tokens(ep["admin"]["url"], 1, "android")[0]
            path = f"/v1/projects/{f['project_id']}/messages:send"
            w = {"payload": _fcm_payload(args.tmp, token), "paths": [path],
                 "headers": [f"authorization: Bearer {bearer}", "content-type: application/json"]}
            print(f"pushsim serve pid {proc.pid}: fcm h2c {f['h2c_url']}{path}, body "
                  f"{len(w['payload'].read_bytes())} bytes", flush=True)
            results.append(_measure(f"pushsim-{args.engine}-fcm-h2c", proc.pid, f["h2c_url"], args, {**w, **h2}))
            results.append(_measure(f"pushsim-{args.engine}-fcm-h1", proc.pid, f["h2c_url"], args,
                                    {**w, **h1}, ["--h1"]))
        finally:
            _stop(proc, signal.SIGINT)
        docroot = args.tmp / "docroot" / path.lstrip("/")
        docroot.parent.mkdir(parents=True)
        docroot.touch()                               # "messages:send": ':' is fine in a file name
        ng = ["nghttpd", "--no-tls", "-d", str(args.tmp / "docroot")]
        port = _free_port()
        results.append(_bench_port_server("nghttpd-h2c", [*ng, str(port), "-a", "127.0.0.1"], port, args, {**w, **h2}))
        # nghttpd speaks no plain HTTP/1.1 (only h2c, or an HTTP/1.1 Upgrade), so the HTTP/1.1 row's
        # reference is nghttpd over h2c at the HTTP/1.1 row's concurrency: 64 connections x 1 stream.
        port = _free_port()
        results.append(_bench_port_server(f"nghttpd-h2c-c{h1['clients']}m1", [*ng, str(port), "-a", "127.0.0.1"],
                                          port, args, {**w, **h1}))
    return _summary(results, {f"pushsim-{args.engine}-fcm-h2c": "nghttpd-h2c",
                              f"pushsim-{args.engine}-fcm-h1": f"nghttpd-h2c-c{h1['clients']}m1"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("apns", help="h2load: pushsim serve (full APNs path) vs nghttpd, same POST workload")
    p.add_argument("-n", type=int, default=100_000, help="requests per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10_000)
    p.add_argument("--clients", "-c", type=int, default=8)
    p.add_argument("--streams", "-m", type=int, default=100)
    p.add_argument("--tokens", type=int, default=1000, help="distinct fleet device tokens (paths)")
    p.add_argument("--devices", type=int, default=2000, help="fleet size per platform for pushsim serve")
    p.add_argument("--engine", choices=["fast", "h2"], default="fast")
    p.add_argument("--no-tls", action="store_true")
    p.add_argument("--tls-rps", type=int, default=4000,
                   help="h2load --rps (per connection) for the pushsim TLS row; 0 = unpaced")
    p.add_argument("--no-engine-only", action="store_true",
                   help="skip the engine-only row (benchmarks/server.py: engine + lean stand-in service, h2c)")
    q = sub.add_parser("fcm", help="h2load: pushsim serve (full FCM send path, h2c and HTTP/1.1) vs nghttpd")
    q.add_argument("-n", type=int, default=60_000, help="requests per run")
    q.add_argument("--runs", type=int, default=3)
    q.add_argument("--warmup", type=int, default=5_000)
    q.add_argument("--clients", "-c", type=int, default=8, help="HTTP/2 connections")
    q.add_argument("--streams", "-m", type=int, default=100, help="HTTP/2 streams per connection")
    q.add_argument("--h1-clients", type=int, default=64, help="HTTP/1.1 connections (1 request in flight each)")
    q.add_argument("--devices", type=int, default=2000, help="fleet size per platform for pushsim serve")
    q.add_argument("--engine", choices=["fast", "h2"], default="fast")
    args = ap.parse_args(argv)
    return apns(args) if args.cmd == "apns" else fcm(args)


if __name__ == "__main__":
    sys.exit(main())
