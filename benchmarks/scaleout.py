"""`python -m benchmarks scaleout`: APNs h2c (or TLS, `--tls`) through HAProxy in front of 1, 2 and 3
pushsim instances, and one instance without the proxy, all in the same run (issue 16). With `--tls`
the sender's TLS ends at HAProxy (the direct row: at the instance); HAProxy to instances is h2c.

Every setup is up for the whole run (1 + 2 + 3 instances, 3 HAProxy processes, each configured by
`pushsim proxy-config`); rounds run every row once, the order reversed every other round, so a busy
phase of the machine hits every row; medians over the rounds. The partitioned setups run
`serve --partition K/N --peers ...` on copies of one state dir; the 1-instance setup is one
unpartitioned instance (`proxy-config --partitions 1`), which is also the direct row's server.

Load: h2load -c 8 -m 100, POST /3/device/TOKEN over a URI file (`-i`) whose tokens go round the
partitions (h2load cannot vary the path otherwise), a 200-byte background payload, one ES256 JWT.
Runs are timed (-D, 1 s warm-up left out), as the APNs rows of `full` (benchmarks/README.md).
Server CPU is every instance's and HAProxy's, summed. On one machine everything shares the same
cores, so the numbers say what the proxy costs here, not what N machines would serve.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import h2load
from benchmarks.processes import PUSHSIM, cpu_between, fixed_free_port, start_pushsim, stop, tree_cpu, wait_port
from benchmarks.workloads import apns_payload, fcm_payload
from device_sim.tokens import token_partition
from pushsim.cli.sender_auth import apns_provider_token, fcm_access_token

PROXY_PORTS = ("apns", "apns-h2c", "fcm", "fcm-h2c", "stats")
_TAKEN: set[int] = set()             # ports handed out in this run (none is handed out twice)


@dataclass
class Setup:
    name: str                       # "direct", "proxy-1", "proxy-2", "proxy-3"
    url: str                        # APNs h2c base URL the row's h2load targets
    pids: list[int]                 # every server process of the row (HAProxy first, then the instances)
    proxy: bool = False
    uris: Path | None = None
    body: Path | None = None        # FCM: each deployment's own install in the body
    headers: tuple[str, ...] | None = None   # FCM: an access token its deployment grants
    runs: list[dict] = field(default_factory=list)


def _instances(stack: ExitStack, tmp: Path, state: Path, n: int, devices: str) -> list[dict]:
    """n instances of one deployment: n = 1 unpartitioned, else `--partition K/n --peers ...`."""
    admin = [fixed_free_port(_TAKEN) for _ in range(n)]
    peers = ",".join(f"http://127.0.0.1:{p}" for p in admin)
    out = []
    for k in range(n):
        d = tmp / f"n{n}" / f"instance{k}"
        shutil.copytree(state, d)
        # FCM rows hammer one install, and the single instance serves two rows: no quota may interfere
        extra = ["--admin-port", str(admin[k]), "--fcm-device-quota-minute", "0", "--fcm-device-quota-hour", "0",
                 "--fcm-project-quota", "1000000000"]
        if n > 1:
            extra += ["--partition", f"{k}/{n}", "--peers", peers]
        ps = start_pushsim(d, devices, extra=extra)
        stack.callback(stop, ps.proc)
        ep_file = tmp / f"n{n}" / f"endpoints-{k}.json"      # what proxy-config reads (@PATH)
        ep_file.write_text(json.dumps(ps.endpoints))
        out.append({"endpoints": ps.endpoints, "pid": ps.pid, "dir": d, "ep_file": ep_file})
    return out


def _haproxy(stack: ExitStack, tmp: Path, instances: list[dict], http_reuse: str, tls: bool,
             service: str) -> tuple[int, str]:
    n = len(instances)
    ports = {name: fixed_free_port(_TAKEN) for name in PROXY_PORTS}
    out = tmp / f"n{n}" / "proxy"
    specs = ",".join(f"@{i['ep_file']}" for i in instances)
    cmd = [PUSHSIM, "proxy-config", "--partitions", str(n), "--instances", specs, "--out", str(out),
           "--state-dir", str(instances[0]["dir"]), "--http-reuse", http_reuse, "--maxconn", "200",
           *(a for name, p in ports.items() for a in (f"--{name}-port", str(p)))]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    log = (tmp / f"haproxy-{n}.log").open("wb")
    stack.callback(log.close)
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(out / "haproxy.cfg")], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    stack.callback(stop, proc, signal.SIGUSR1)
    for p in ports.values():
        wait_port(p)
    return proc.pid, f"https://127.0.0.1:{ports[service]}" if tls else f"http://127.0.0.1:{ports[service + '-h2c']}"


def _tokens(instances: list[dict], want: int) -> list[str]:
    """`want` iOS tokens taken round the partitions (0, 1, 2, 0, 1, 2, ...)."""
    import urllib.request
    by_part: dict[int | None, list[str]] = {}
    for inst in instances:                     # each instance may list only its own installs
        url = inst["endpoints"]["admin"]["url"]
        with urllib.request.urlopen(f"{url}/devices?platform=ios&limit=10000", timeout=10) as r:
            for d in json.load(r)["devices"]:
                part = by_part.setdefault(token_partition(d["token"]) if len(instances) > 1 else 0, [])
                if d["token"] not in part:
                    part.append(d["token"])
    parts = [by_part.get(k, []) for k in range(len(instances))]
    if any(len(p) < want // len(instances) for p in parts):
        raise RuntimeError(f"too few iOS tokens per partition for {want}: {[len(p) for p in parts]}")
    return [parts[i % len(parts)][i // len(parts)] for i in range(want)]


def _fcm_rows(setups: list[Setup], deployments: dict[int, list[dict]], tmp: Path) -> None:
    """FCM carries the token in the body and h2load sends one body: each row sends to one Android
    install of its deployment's partition 0 (per-device quotas are off on the instances), with an
    access token from that deployment (an unpartitioned instance's tokens are not sealed)."""
    import urllib.request
    for s in setups:
        n = 1 if s.name == "direct" else int(s.name.split("-")[1])
        ep = deployments[n][0]["endpoints"]
        with urllib.request.urlopen(f"{ep['admin']['url']}/devices?platform=android&limit=1", timeout=10) as r:
            token = json.load(r)["devices"][0]["fcm_token"]
        (tmp / s.name).mkdir()
        s.body = fcm_payload(tmp / s.name, token)
        s.uris = tmp / f"uris-{s.name}.txt"
        s.uris.write_text(f"{s.url}/v1/projects/{ep['fcm']['project_id']}/messages:send\n")
        s.headers = (f"authorization: Bearer {fcm_access_token(ep)}", "content-type: application/json")


def _measure(s: Setup, load: h2load.Load, seconds: float, tmp: Path) -> dict:
    from dataclasses import replace
    ld = replace(load, uris=s.uris, duration_s=seconds, body=s.body or load.body, headers=s.headers or load.headers)
    c0 = {pid: tree_cpu(pid) for pid in s.pids}
    r = h2load.run(ld, 0)
    c1 = {pid: tree_cpu(pid) for pid in s.pids}
    sm = r.summary
    cpu = sum(cpu_between(c0[p], c1[p]) for p in s.pids)
    proxy_cpu = cpu_between(c0[s.pids[0]], c1[s.pids[0]]) if s.proxy else 0.0
    done = max(1, sm.done)
    return {"req_s": sm.req_s, "ok": sm.clean(sm.total) and sm.total > 0, "total": sm.total, "2xx": sm.ok2xx,
            "non2xx": sm.non2xx, "failed": sm.failed, "errored": sm.errored,
            "server_cpu_us_per_req": cpu / done * 1e6, "server_cpu_share": cpu / r.wall_s,
            "haproxy_cpu_us_per_req": proxy_cpu / done * 1e6}


def run(args: argparse.Namespace) -> int:
    if shutil.which("haproxy") is None:
        print("haproxy is not installed (Debian package haproxy; ./run.sh bench installs it)")
        return 1
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pushsim-scaleout-") as d, ExitStack() as stack:
        tmp = Path(d)
        state = tmp / "state"
        subprocess.run([PUSHSIM, "creds", "--state-dir", str(state)], check=True, capture_output=True, timeout=60)
        devices = f"ios={args.devices},android=10"
        service = "fcm" if args.fcm else "apns"
        setups: list[Setup] = []
        deployments = {n: _instances(stack, tmp, state, n, devices) for n in (1, 2, 3)}
        single = deployments[1][0]
        direct_url = single["endpoints"][service]["url" if args.tls else "h2c_url"]
        setups.append(Setup("direct", direct_url, [single["pid"]]))
        for n, inst in deployments.items():
            pid, url = _haproxy(stack, tmp, inst, args.http_reuse, args.tls, service)
            setups.append(Setup(f"proxy-{n}", url, [pid, *(i["pid"] for i in inst)], proxy=True))
        if args.fcm:
            _fcm_rows(setups, deployments, tmp)
            headers, body = setups[0].headers, setups[0].body
        else:
            toks = {n: _tokens(inst, args.tokens) for n, inst in deployments.items()}
            for s in setups:
                n = 1 if s.name == "direct" else int(s.name.split("-")[1])
                s.uris = tmp / f"uris-{s.name}.txt"
                s.uris.write_text("".join(f"{s.url}/3/device/{t}\n" for t in toks[n]))
            a = single["endpoints"]["apns"]
            headers = ("apns-push-type: background", "apns-priority: 5", f"apns-topic: {a['topic']}",
                       f"authorization: bearer {apns_provider_token(a)}")
            body = apns_payload(tmp)
        load = h2load.Load(uris=setups[0].uris, body=body, headers=headers,   # type: ignore[arg-type]
                           clients=args.clients, streams=args.streams)
        what = (f"FCM {'TLS' if args.tls else 'h2c'} (one install per row, of partition 0)" if args.fcm else
                f"APNs {'TLS' if args.tls else 'h2c'}")
        print(f"scaleout: {what}, h2load -c {args.clients} -m {args.streams}, "
              f"{args.seconds:g} s timed runs "
              f"(+1 s warm-up), {args.runs} rounds, {args.tokens} tokens round the partitions, http-reuse "
              f"{args.http_reuse}; load average {os.getloadavg()[0]:.2f}")
        for s in setups:                                          # warm-up: caches, JIT-free but first flights
            _measure(s, load, 1.0, tmp)
        for i in range(args.runs):
            order = setups if i % 2 == 0 else list(reversed(setups))
            for s in order:
                r = _measure(s, load, args.seconds, tmp)
                s.runs.append(r)
                bad = "" if r["ok"] else (f"  FAILED 2xx={r['2xx']}/{r['total']} non2xx={r['non2xx']} "
                                          f"failed={r['failed']}")
                print(f"  round {i + 1} {s.name:<8} {r['req_s']:>9.0f} req/s  server {r['server_cpu_us_per_req']:.1f} "
                      f"µs/req ({r['server_cpu_share']:.0%}; HAProxy {r['haproxy_cpu_us_per_req']:.1f}){bad}",
                      flush=True)
        results = {"utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "loadavg_end": os.getloadavg(),
                   "clients": args.clients, "streams": args.streams, "seconds": args.seconds,
                   "http_reuse": args.http_reuse, "tls": args.tls, "service": service, "rows": {}}
        direct = None
        print(f"\n{'row':<10} {'median req/s':>12} {'vs direct':>10} {'server µs/req':>14} {'of it HAProxy':>14}"
              "  per round")
        for s in setups:
            good = [r for r in s.runs if r["ok"]]
            med = statistics.median(r["req_s"] for r in good) if good else None
            cpu = statistics.median(r["server_cpu_us_per_req"] for r in good) if good else None
            hcpu = statistics.median(r["haproxy_cpu_us_per_req"] for r in good) if good else None
            direct = med if s.name == "direct" else direct
            ratio = med / direct if med and direct else None
            results["rows"][s.name] = {"req_s": med, "ratio_to_direct": ratio, "server_cpu_us_per_req": cpu,
                                       "haproxy_cpu_us_per_req": hcpu,
                                       "req_s_runs": [round(r["req_s"]) for r in s.runs],
                                       "failed_runs": len(s.runs) - len(good)}
            print(f"{s.name:<10} {med or 0:>12.0f} {ratio or 0:>10.2f} {cpu or 0:>14.1f} {hcpu or 0:>14.1f}  "
                  + " ".join(f"{r['req_s']:.0f}" for r in s.runs))
    results["wall_s"] = time.monotonic() - t0
    print(f"\nwall {results['wall_s']:.0f} s; load average {results['loadavg_end'][0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(not r["failed_runs"] for r in results["rows"].values()) else 1
