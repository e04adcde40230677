"""`python -m benchmarks full`: every full-path row beside nghttpd serving the same POSTs, in one run.

Rows (pushsim serve, one server process tree for all of them):
  apns-h2c   APNs over h2c            apns-tls  APNs over TLS (ALPN h2)
  fcm-h2c    FCM v1 send over h2c     fcm-tls   FCM over TLS (ALPN h2)     fcm-h1  FCM over HTTP/1.1
Each has a reference row: nghttpd with the same workload (paths, body, headers) and the same -c/-m,
over h2c or TLS; nghttpd speaks no plain HTTP/1.1, so fcm-h1's reference is nghttpd h2c at fcm-h1's
concurrency (-c 64 -m 1). Runs are interleaved (every row once per round, the order reversed every
other round) so slow phases of a shared machine hit every row.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from benchmarks import h2load, memory, targets, workloads
from benchmarks.processes import ROOT, start_nghttpd, start_pushsim, stop, tree_rss
from benchmarks.runner import Row, aggregate, fmt_run, half_load_plan, measure, ratio

PUSHSIM_ROWS = ("apns-h2c", "apns-tls", "fcm-h2c", "fcm-tls", "fcm-h1")


def fcm_quota_off() -> list[str]:
    # h2load sends one body, i.e. one device: FCM's 240/min per-device cap would refuse nearly all of it
    return ["--fcm-device-quota-minute", "0", "--fcm-device-quota-hour", "0"]


def _ref_name(row: str, h1_clients: int) -> str:
    proto = "tls" if row.endswith("-tls") else "h2c"
    wl = row.split("-")[0]
    suffix = f"-c{h1_clients}m1" if row.endswith("-h1") else ""
    return f"nghttpd-{proto}-{wl}{suffix}"


def _start_engine_only(tmp: Path, state: Path, topic: str, engine: str) -> tuple[subprocess.Popen, str]:
    """benchmarks/server.py: the engine with a lean stand-in service; verifies this run's JWT."""
    key = serialization.load_pem_private_key((state / "apns_auth_key.p8").read_bytes(), None)
    pub = tmp / "pub.pem"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.server", "--engine", engine, "--pubkey", str(pub),
                             "--topic", topic], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    port = int(proc.stdout.readline().split()[1])     # type: ignore[union-attr]  # "port N"
    return proc, f"http://127.0.0.1:{port}"


class Session:
    """The servers and rows of one benchmark invocation; everything started here is stopped on exit."""

    def __init__(self, args: argparse.Namespace, rows: tuple[str, ...], stack: ExitStack, tmp: Path) -> None:
        self.args, self.tmp, self.rows = args, tmp, []
        state = tmp / "state"
        self.pushsim = start_pushsim(state, f"ios={args.devices},android={args.devices}", args.engine,
                                     args.workers, fcm_quota_off())
        stack.callback(stop, self.pushsim.proc, signal.SIGINT)
        ep = self.pushsim.endpoints
        wl = {"apns": workloads.apns(ep, tmp, args.tokens)}
        if any(r.startswith("fcm") for r in rows):
            wl["fcm"] = workloads.fcm(ep, tmp)
        root = workloads.docroot(tmp, list(wl.values()))
        ng = {"h2c": start_nghttpd(root)}
        stack.callback(stop, ng["h2c"].proc, signal.SIGTERM)
        if any(r.endswith("-tls") for r in rows):
            # the state dir's own server certificate: throwaway, and nghttpd accepts its EC key
            ng["tls"] = start_nghttpd(root, (state / "server.key", state / "server.pem"))
            stack.callback(stop, ng["tls"].proc, signal.SIGTERM)
        urls = {"apns-h2c": ep["apns"]["h2c_url"], "apns-tls": ep["apns"]["url"],
                "fcm-h2c": ep["fcm"]["h2c_url"], "fcm-tls": ep["fcm"]["url"], "fcm-h1": ep["fcm"]["h2c_url"]}
        refs: dict[str, Row] = {}
        for name in rows:
            w = wl[name.split("-")[0]]
            h1 = name.endswith("-h1")
            clients, streams = (args.h1_clients, 1) if h1 else (args.clients, args.streams)
            load = h2load.Load(w.uri_file(tmp, urls[name], name), w.body, w.headers, clients, streams, h1)
            note = ""
            if name.startswith("apns") and args.apns_timed:
                # A token-auth APNs connection starts at SETTINGS_MAX_CONCURRENT_STREAMS 1. h2load's first
                # flight (-m streams) can leave before the server's SETTINGS arrive, and then streams - 1 per
                # connection are refused: on TLS nearly every run, on h2c on a busy machine too. A timed
                # run's warm-up is left out of h2load's counts and log: the refusals land there, unseen.
                load = replace(load, warmup_s=args.apns_timed)
                note = f"h2load -D, first {args.apns_timed:g} s not counted"
            elif name.startswith("apns") and args.apns_rps:
                # --apns-timed 0: in --rps mode h2load sends its first requests one 10 ms tick after
                # connecting, which usually wins the race (what loses is repeated, see Row.retries); the
                # cap clients x apns_rps is far above what the server does, so it does not bind.
                load = replace(load, rps=float(args.apns_rps))
                note = f"--rps {args.apns_rps}/conn"
            ref = _ref_name(name, args.h1_clients)
            if ref not in refs:
                proto = "tls" if name.endswith("-tls") else "h2c"
                rload = h2load.Load(w.uri_file(tmp, ng[proto].url, ref), w.body, w.headers, clients, streams)
                refs[ref] = Row(ref, "nghttpd", ng[proto].pid, rload, args.ref_n,
                                note="h2c at the HTTP/1.1 row's concurrency" if h1 else "")
                self.rows.append(refs[ref])
            apns_row = name.startswith("apns")
            self.rows.append(Row(name, "pushsim", self.pushsim.pid, load, args.n, ref, note,
                                 retries=args.first_flight_retries if apns_row else 0,
                                 tolerate_refused=args.tolerate_first_flight,
                                 gap_ms=args.apns_gap_ms if apns_row else None,
                                 timed=apns_row and args.apns_timed > 0))
        if getattr(args, "engine_only", False):
            proc, url = _start_engine_only(tmp, state, ep["apns"]["topic"], args.engine)
            stack.callback(stop, proc, signal.SIGTERM)
            w = wl["apns"]
            load = h2load.Load(w.uri_file(tmp, url, "engine-only"), w.body, w.headers, args.clients, args.streams)
            self.rows.append(Row("engine-only-h2c", "engine-only", proc.pid, load, args.n, "nghttpd-h2c-apns",
                                 "benchmarks/server.py: engine + lean stand-in service"))  # starts at 1000 streams


def warm_up(s: Session, n: int) -> None:
    for row in s.rows:
        if n <= 0:
            return
        r = measure(row, n, s.tmp, "warm")
        if not r["ok"]:
            print(f"  warm-up {row.name}: not all 2xx: 2xx={r['2xx']}/{n} non2xx={r['non2xx']}"
                  f" failed={r['failed']} errored={r['errored']}", flush=True)


def rounds(s: Session, count: int, budget_s: float | None = None, t0: float | None = None) -> int:
    """Every row once per round, the order reversed every other round; stops early (after at least one
    round) when the next round would not fit in budget_s. Returns the rounds done."""
    done, last = 0, 0.0
    for i in range(count):
        if budget_s is not None and done and time.monotonic() - (t0 or 0) + last > budget_s:
            print(f"  (stopping after {done} rounds: the next would pass the {budget_s:.0f} s budget)", flush=True)
            break
        start = time.monotonic()
        print(f"round {i + 1}/{count}", flush=True)
        for row in (s.rows if i % 2 == 0 else reversed(s.rows)):
            r = measure(row, row.n, s.tmp, f"r{i}")
            row.runs.append(r)
            print(fmt_run(row, r), flush=True)
        done, last = done + 1, time.monotonic() - start
    return done


def half_load(s: Session, seconds: float, pacing: str) -> None:
    """A paced run per row at half its median maximum rate: the latency a sender sees with headroom."""
    print(f"half load: median req/s / 2, about {seconds:g} s per row, paced by "
          + ("an h2load timing script (evenly spaced starts per client)" if pacing == "script"
             else "h2load --rps per client (bursts every 10 ms)"), flush=True)
    for row in s.rows:
        agg = aggregate(row.runs)
        if not agg["req_s"]:
            continue
        per_client, total = half_load_plan(agg["req_s"], row.load.clients, seconds)
        target = per_client * row.load.clients
        param = per_client
        for attempt in range(3):
            if pacing == "script":
                offsets = h2load.evenly(max(2, total // row.load.clients), param, first_alone_ms=row.gap_ms)
                r = measure(row, total, s.tmp, "half", offsets_ms=offsets)
            else:
                r = measure(row, total, s.tmp, "half", rps=param)
            # h2load's timers fire late (libev waits whole milliseconds in epoll), so the script's spacing
            # comes out slower than asked, by 15-35% here: measure the real start rate, correct twice at most
            if attempt == 2 or pacing != "script" or not r["start_rate"] or abs(r["start_rate"] / target - 1) < 0.1:
                break
            param *= target / r["start_rate"]
        r["pacing"] = pacing
        r["offered_req_s"] = r["start_rate"] or target
        r["offered_share_of_max"] = r["offered_req_s"] / agg["req_s"]
        r["p99_ok"] = bool(r["latency_us"]) and r["latency_us"]["p99"] <= targets.HALF_LOAD_P99_MS * 1000
        row.half = r
        print(fmt_run(row, r) + f"  offered {r['offered_req_s']:.0f}/s ({r['offered_share_of_max']:.2f} of max)",
              flush=True)


def row_results(s: Session) -> dict:
    out: dict[str, dict] = {}
    for row in s.rows:
        out[row.name] = {"server": row.server, "ref": row.ref, "note": row.note, "clients": row.load.clients,
                         "streams": row.load.streams, "h1": row.load.h1, "gap_ms": row.gap_ms,
                         "rps_per_client": row.load.rps,
                         "n": row.n, **aggregate(row.runs), "run_details": row.runs, "half_load": row.half}
    for name, r in out.items():
        if r["ref"]:
            r["ratio"] = ratio(r["req_s"], out[r["ref"]]["req_s"])
        cap = r["rps_per_client"] and r["rps_per_client"] * r["clients"]
        if cap and r["req_s"] and r["req_s"] > 0.7 * cap:
            r["note"] += f"; WARNING: near the --rps cap {cap:.0f}/s, raise --apns-rps"
    return out


def header(args: argparse.Namespace, s: Session, mode: str) -> dict:
    info = {"mode": mode, "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "argv": sys.argv[1:],
            "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
            "workers": args.workers, "engine": args.engine, "pushsim_pid": s.pushsim.pid,
            "pushsim_ready_s": s.pushsim.ready_s, "devices_per_platform": args.devices, "tokens": args.tokens,
            "clients": args.clients, "streams": args.streams, "h1_clients": args.h1_clients,
            "n": args.n, "ref_n": args.ref_n, "warmup": args.warmup, "h2load": _h2load_version()}
    print(f"pushsim {mode} benchmark {info['utc']} UTC: pushsim serve --workers {args.workers} --engine {args.engine}"
          f" (pid {s.pushsim.pid}, ready in {s.pushsim.ready_s:.1f} s, fleet {args.devices} iOS + {args.devices} Android)\n"
          f"  h2load -c {args.clients} -m {args.streams} (HTTP/1.1: --h1 -c {args.h1_clients} -m 1), -n {args.n} per"
          f" pushsim run, {args.ref_n} per nghttpd run, {args.warmup} warm-up; {info['cpus']} CPUs,"
          f" load average {info['loadavg_start'][0]:.2f}", flush=True)
    for w in s.pushsim.warnings():
        print(f"  {w}", flush=True)
    return info


def _h2load_version() -> str:
    try:
        return subprocess.run(["h2load", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"


def print_summary(rows: dict) -> None:
    print(f"\n{'row':<24} {'median req/s':>12} {'ratio':>7}  {'lat p50/p90/p99/max ms':>24}"
          f"  {'server µs/req':>13} {'h2load µs/req':>13}  runs")
    for name, r in rows.items():
        lat = r["latency_us"]
        p = "/".join(f"{lat[k] / 1000:.1f}" for k in ("p50", "p90", "p99", "max")) if lat else "-"
        rate = f"{r['req_s']:.0f}" if r["req_s"] else "FAILED"
        rt = f"{r['ratio']:.3f}" if r.get("ratio") else "-"
        sc = f"{r['server_cpu_us_per_req']:.1f}" if r["server_cpu_us_per_req"] else "-"
        cc = f"{r['client_cpu_us_per_req']:.1f}" if r["client_cpu_us_per_req"] else "-"
        fails = f" ({r['failed_runs']} failed)" if r["failed_runs"] else ""
        print(f"{name:<24} {rate:>12} {rt:>7}  {p:>24}  {sc:>13} {cc:>13}  {r['runs']}{fails}"
              + (f"   vs {r['ref']}" if r["ref"] else "") + (f"  [{r['note']}]" if r["note"] else ""))
    halves = [(n, r["half_load"]) for n, r in rows.items() if r.get("half_load")]
    if halves:
        print(f"\n{'half load':<24} {'offered/s':>10} {'of max':>7} {'p50 ms':>8} {'p99 ms':>8}"
              f"  p99 <= {targets.HALF_LOAD_P99_MS:g} ms")
        for n, h in halves:
            lat = h["latency_us"]
            verdict = ("PASS" if h["p99_ok"] else "FAIL") if h["ok"] else "FAILED RUN"
            print(f"{n:<24} {h['offered_req_s']:>10.0f} {h['offered_share_of_max']:>7.2f} {lat.get('p50', 0) / 1000:>8.2f}"
                  f" {lat.get('p99', 0) / 1000:>8.2f}  {verdict}")


def run(args: argparse.Namespace, mode: str = "full") -> int:
    rows = tuple(args.rows)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pushsim-bench-") as d, ExitStack() as stack:
        tmp = Path(d)
        s = Session(args, rows, stack, tmp)
        results = header(args, s, mode)
        warm_up(s, args.warmup)
        rounds(s, args.runs)
        if args.half_load:
            half_load(s, args.half_seconds, args.half_pacing)
        results["pushsim_rss_mib_end"] = tree_rss(s.pushsim.pid) / 2**20
        results["pushsim_warnings"] = s.pushsim.warnings()
        results["rows"] = row_results(s)
    if args.memory:
        print(f"\nmemory: {args.memory_installs:,} installs", flush=True)
        results["memory"] = memory.measure(args)
        print(memory.format_result(results["memory"]), flush=True)
    results["loadavg_end"] = os.getloadavg()
    results["wall_s"] = time.monotonic() - t0
    print_summary(results["rows"])
    judged = targets.evaluate(results, targets.targets_for(list(rows), args.memory, args.half_load))
    results["targets"] = judged
    if judged:
        print("\n" + targets.format_table(judged))
    bad = [n for n, r in results["rows"].items()
           if r["failed_runs"] or (r["half_load"] and not r["half_load"]["ok"])]
    results["ok"] = not bad
    print(f"\nwall {results['wall_s']:.0f} s; load average at the end {results['loadavg_end'][0]:.2f}"
          + (f"; FAILED runs (non-2xx or failed requests) in: {', '.join(bad)}" if bad else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
        print(f"results: {args.json}")
    return 0 if not bad else 1
