"""`python -m benchmarks apns`: h2load against pushsim's fast engine (h2c and TLS) and nghttpd.

Every server is started here and stopped by PID; every client run is bounded by -n.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt
import psutil
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TOPIC = "com.example.app"


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


def _setup(tmp: Path, tokens: int) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp / "auth_key.p8").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp / "pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    token = jwt.encode({"iss": "TEAM123456", "iat": int(time.time())}, key, algorithm="ES256",
                       headers={"kid": "KEY1234567"})
    payload = {"aps": {"content-available": 1}, "data": ""}
    payload["data"] = "z" * (200 - len(json.dumps(payload, separators=(",", ":"))))
    (tmp / "payload.json").write_text(json.dumps(payload, separators=(",", ":")))
    assert len((tmp / "payload.json").read_bytes()) == 200
    rnd = __import__("random").Random(7)
    toks = ["%064x" % rnd.getrandbits(256) for _ in range(tokens)]
    docroot = tmp / "docroot" / "3" / "device"
    docroot.mkdir(parents=True)
    for t in toks:
        (docroot / t).touch()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    return {"jwt": token, "tokens": toks}


def _headers(setup: dict) -> list[str]:
    return ["-H", "apns-push-type: background", "-H", "apns-priority: 5", "-H", f"apns-topic: {TOPIC}",
            "-H", f"authorization: bearer {setup['jwt']}"]


def _h2load(uris: Path, args: argparse.Namespace, setup: dict, n: int) -> tuple[dict, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = ["h2load", "-n", str(n), "-c", str(args.clients), "-m", str(args.streams),
           "-d", str(args.tmp / "payload.json"), *_headers(setup), "-i", str(uris)]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / wall
    rate = float(re.search(r"finished in [^,]+, ([\d.]+) req/s", out).group(1))
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    reqs = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    res = {"req_s": rate, "2xx": int(codes.group(1)), "non2xx": sum(map(int, codes.groups()[1:])),
           "failed": int(reqs.group(5)), "client_cpu": cpu}
    res["ok"] = res["2xx"] == n and res["failed"] == 0
    return res, wall


def _bench(name: str, server_cmd: list[str], scheme: str, args: argparse.Namespace, setup: dict) -> dict:
    port = None
    proc = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        if "--port-from-stdout" in server_cmd[-1:]:
            pass
        if server_cmd[0] == "nghttpd":
            port = int(server_cmd[server_cmd.index("-a") - 1])
        else:
            line = proc.stdout.readline()                  # "port N"
            port = int(line.split()[1])
        _wait_port(port)
        uris = args.tmp / f"uris-{name}.txt"
        uris.write_text("".join(f"{scheme}://127.0.0.1:{port}/3/device/{t}\n" for t in setup["tokens"]))
        _h2load(uris, args, setup, args.warmup)
        ps = psutil.Process(proc.pid)
        runs = []
        for _ in range(args.runs):
            c0 = ps.cpu_times()
            r, wall = _h2load(uris, args, setup, args.n)
            c1 = ps.cpu_times()
            r["server_cpu"] = (c1.user - c0.user + c1.system - c0.system) / wall
            runs.append(r)
            print(f"  {name}: {r['req_s']:.0f} req/s  2xx={r['2xx']} non2xx={r['non2xx']} failed={r['failed']}"
                  f"  server CPU {r['server_cpu']:.0%}  h2load CPU {r['client_cpu']:.0%}", flush=True)
        good = [r["req_s"] for r in runs if r["ok"]]
        return {"name": name, "runs": runs, "median": statistics.median(good) if good else None,
                "failed_runs": len(runs) - len(good)}
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def apns(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as d:
        args.tmp = Path(d)
        setup = _setup(args.tmp, args.tokens)
        srv = [PY, "-m", "benchmarks.server", "--engine", args.engine, "--pubkey", str(args.tmp / "pub.pem")]
        results = [_bench(f"pushsim-{args.engine}-h2c", srv, "http", args, setup)]
        if not args.no_tls:
            results.append(_bench(f"pushsim-{args.engine}-tls", srv + ["--cert", str(args.tmp / "cert.pem"),
                                  "--key", str(args.tmp / "key.pem")], "https", args, setup))
        port = _free_port()
        results.append(_bench("nghttpd-h2c", ["nghttpd", "--no-tls", "-d", str(args.tmp / "docroot"),
                                              str(port), "-a", "127.0.0.1"], "http", args, setup))
    print()
    for r in results:
        med = f"{r['median']:.0f}" if r["median"] else "FAILED"
        print(f"{r['name']:>24}: median {med} req/s over {len(r['runs'])} runs ({r['failed_runs']} failed)")
    ng, py = results[-1]["median"], results[0]["median"]
    if ng and py:
        print(f"{'ratio pushsim/nghttpd':>24}: {py / ng:.3f} (h2c)")
    return 0 if all(r["failed_runs"] == 0 for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("apns", help="h2load: pushsim fast APNs vs nghttpd, same POST workload")
    p.add_argument("-n", type=int, default=100_000, help="requests per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10_000)
    p.add_argument("--clients", "-c", type=int, default=8)
    p.add_argument("--streams", "-m", type=int, default=100)
    p.add_argument("--tokens", type=int, default=1000, help="distinct device tokens (paths)")
    p.add_argument("--engine", choices=["fast", "h2"], default="fast")
    p.add_argument("--no-tls", action="store_true")
    args = ap.parse_args(argv)
    return apns(args)


if __name__ == "__main__":
    sys.exit(main())
