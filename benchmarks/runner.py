"""Rows and runs: one h2load run against one server, measured; several runs, summarised by medians.

A row is one server endpoint under one load. Every number of a run comes from the same h2load run:
req/s from its summary, latency percentiles from its --log-file, server CPU from the server's process
tree (psutil, so `--workers N` counts every worker), client CPU from RUSAGE_CHILDREN.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks import h2load
from benchmarks.latency import summarize
from benchmarks.processes import cpu_between, tree_cpu


@dataclass
class Row:
    name: str
    server: str                    # "pushsim" | "nghttpd" | "engine-only"
    pid: int                       # root of the server's process tree
    load: h2load.Load
    n: int                         # requests per max-throughput run
    ref: str | None = None         # the nghttpd row this one is compared with
    note: str = ""
    retries: int = 0               # repeats of a run whose only failures are first-flight refusals
    tolerate_refused: bool = False # after the repeats, count such a run as clean (refusals reported)
    gap_ms: float | None = None    # APNs, paced runs: one request per connection, then the script after this gap
    timed: bool = False            # max-throughput runs as h2load -D (about n requests), see h2load.Load
    rate_hint: float = 5000.0      # req/s expected: a timed run lasts n / rate_hint seconds
    runs: list[dict] = field(default_factory=list)
    half: dict | None = None


def measure(row: Row, n: int, tmp: Path, tag: str, rps: float | None = None,
            offsets_ms: list[float] | None = None) -> dict:
    """One bounded h2load run of about n requests against the row's server.

    With offsets_ms (a paced run) every client replays that timing script, so n is ignored and the
    run has len(offsets_ms) x clients requests. req/s is computed from the --log-file (2xx responses
    over the span from the first start to the last end; for a row with gap_ms, from the first start
    after the lone first requests), so a gap is not counted; h2load's own figure is kept as h2load_req_s.

    For rows with `retries` (APNs), a run whose only failures are streams refused at connection start
    (see h2load.first_flight_refusals) is repeated, at most `retries` times; the repeats are counted in
    "first_flight_retries" and a run still failing after them counts as failed."""
    load, skip_us = row.load, 0
    if offsets_ms is not None:
        script = h2load.timing_script(tmp / f"script-{row.name}-{tag}.tsv", load.uris.read_text().split(), offsets_ms)
        load = replace(load, script=script, rps=None)
        n = len(offsets_ms)
        if row.gap_ms is not None:
            skip_us = int(row.gap_ms * 500)         # half the gap: after the lone first requests
    elif row.timed:
        load = replace(load, duration_s=max(1.0, n / row.rate_hint), rps=None)
    total = n * load.clients if load.script else n
    log = tmp / f"log-{row.name}-{tag}.tsv"
    refused: list[int] = []
    first_flight = False
    while True:
        c0 = tree_cpu(row.pid)
        r = h2load.run(load, n, log, rps)
        c1 = tree_cpu(row.pid)
        stats = h2load.read_log(log)
        log.unlink()
        s = r.summary
        if load.duration_s:
            total = s.total or -1                   # a timed run: whatever was sent in the duration
        first_flight = (not s.clean(total) and row.retries > 0
                        and h2load.first_flight_refusals(s, stats, total, load.clients, load.streams))
        if first_flight and len(refused) < row.retries:
            refused.append(s.errored)
            continue
        break
    done = max(1, s.done)
    server_cpu = cpu_between(c0, c1)
    if row.timed and offsets_ms is None and s.req_s:
        row.rate_hint = s.req_s
    return {
        "n": total, "req_s": stats.rate(skip_us) or s.req_s, "h2load_req_s": s.req_s, "seconds": s.seconds,
        "ok": s.clean(total) or (first_flight and row.tolerate_refused),
        "refused_tolerated": s.errored if first_flight and row.tolerate_refused else 0,
        "2xx": s.ok2xx, "non2xx": s.non2xx, "failed": s.failed, "errored": s.errored, "timeout": s.timeout,
        "first_flight_retries": len(refused), "first_flight_refused": refused,
        "server_cpu_us_per_req": server_cpu / done * 1e6,
        "server_cpu_share": server_cpu / r.wall_s,          # 1.0 = one core busy for the whole run
        "client_cpu_us_per_req": r.client_cpu_s / done * 1e6,
        "client_cpu_share": r.client_cpu_s / r.wall_s,
        "latency_us": summarize(stats.latencies_us),
        "log_rows": stats.count, "log_failed": stats.statuses.get(-1, 0),
        "start_rate": stats.start_rate(skip_us),
        "rps_per_client": None if load.script else (rps if rps is not None else load.rps),
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def aggregate(runs: list[dict]) -> dict:
    """Medians over the clean runs (every request 2xx); a run with any failure is left out and counted."""
    good = [r for r in runs if r["ok"]]
    lat_keys = sorted({k for r in good for k in r["latency_us"]})
    return {
        "runs": len(runs), "failed_runs": len(runs) - len(good),
        "req_s": _median([r["req_s"] for r in good]),
        "req_s_runs": [round(r["req_s"], 1) for r in runs],
        "server_cpu_us_per_req": _median([r["server_cpu_us_per_req"] for r in good]),
        "server_cpu_share": _median([r["server_cpu_share"] for r in good]),
        "client_cpu_us_per_req": _median([r["client_cpu_us_per_req"] for r in good]),
        "client_cpu_share": _median([r["client_cpu_share"] for r in good]),
        "latency_us": {k: _median([r["latency_us"][k] for r in good if k in r["latency_us"]])
                       for k in lat_keys if k != "count"},
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def half_load_plan(median_req_s: float, clients: int, seconds: float, min_n: int = 500) -> tuple[float, int]:
    """(rate per client, total requests) offering half the measured maximum for about `seconds`."""
    half = median_req_s / 2
    return half / clients, max(min_n, int(half * seconds))


def fmt_run(row: Row, r: dict) -> str:
    lat = r["latency_us"]
    p = "/".join(f"{lat[k] / 1000:.1f}" for k in ("p50", "p90", "p99", "max")) if lat else "-"
    bad = "" if r["ok"] else (f"  FAILED: 2xx={r['2xx']}/{r['n']} non2xx={r['non2xx']} failed={r['failed']}"
                              f" errored={r['errored']} timeout={r['timeout']}")
    if r.get("refused_tolerated"):
        bad += f"  ({r['refused_tolerated']} first-flight REFUSED_STREAM tolerated)"
    if r.get("first_flight_retries"):
        bad += f"  (repeated {r['first_flight_retries']}x: first-flight REFUSED_STREAM {r['first_flight_refused']})"
    return (f"  {row.name:<22} {r['req_s']:>9.0f} req/s  lat p50/p90/p99/max {p} ms"
            f"  server {r['server_cpu_us_per_req']:.1f} µs/req ({r['server_cpu_share']:.0%})"
            f"  h2load {r['client_cpu_us_per_req']:.1f} µs/req ({r['client_cpu_share']:.0%}){bad}")
