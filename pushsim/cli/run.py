"""`pushsim run SCENARIO`: fakes + fleet + the scenario's traffic, a progress bar, a funnel summary.

Modes
  live (default)  start the fakes in-process on ephemeral ports, send the scenario's `[[traffic]]` to
                  them over real HTTP/2 (bounded by --max-requests), apply `[[events]]` and `[[faults]]`,
                  then print the funnel: sent → accepted → delivered / dropped / pending, rejections.
  virtual         device_sim's discrete-event run of the same scenario (no sockets; same seed, same digest).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any, TextIO

import orjson

from pushsim.report.html import PageInputs, page

from .config_flags import validate
from .options import UsageError, option

SIM_NAMES = {"online": "connectivity", "bar": "background_app_refresh", "bucket": "standby_bucket"}


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a scenario: fakes + fleet + its traffic, then a funnel summary",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", help="scenario TOML, e.g. examples/scenario.toml")
    option(p, "run", "--mode", "live: real sockets and HTTP/2; virtual: device_sim's discrete-event time",
           default="live", choices=("live", "virtual"))
    # the same seed as `serve --seed`, so one variable gives a run and a server the same fleet
    option(p, "run", "--seed", "seed for tokens, faults and every random choice", env="PUSHSIM_SEED", default="0")
    option(p, "run", "--max-requests", "live: send at most this many requests", default="2000")
    option(p, "run", "--concurrency", "live: requests in flight", default="32")
    option(p, "run", "--clock", "live: the fleet's clock, real or scaled:N (N device seconds per second); "
           "with scaled:N, traffic is paced on the device clock (a 24 h scenario at scaled:1440 takes a "
           "minute); with real, sent as fast as the fakes answer", default="real")
    option(p, "run", "--settle", "live: seconds to wait for queued notifications to settle", default="3")
    option(p, "run", "--faults", "live: JSON file of fault rules to install first")
    option(p, "run", "--state-dir", "live: where credentials are kept (default: a fresh temporary dir, so a "
           "running `pushsim serve` is never disturbed)")
    option(p, "run", "--skip-faults", "virtual: run a scenario that has [[faults]] without them (they act on "
           "the HTTP edge, which a virtual run has none of); without this flag such a scenario is refused",
           action="store_true")
    option(p, "run", "--json", "print the summary as JSON", action="store_true")
    option(p, "run", "--html", "also write a self-contained HTML report with plots to FILE", metavar="FILE")
    option(p, "run", "--trace", "the notification (seq) whose timeline the HTML report shows (default: "
           "one that was held or dropped)", metavar="SEQ")
    option(p, "run", "--no-progress", "no progress bar on stderr", action="store_true")
    p.set_defaults(func=run)


def _int(args: argparse.Namespace, name: str, lo: int) -> int:
    raw = getattr(args, name)
    try:
        v = int(str(raw))
    except ValueError:
        v = lo - 1
    if v < lo:
        raise UsageError(f"--{name.replace('_', '-')} must be an integer >= {lo}, got {raw!r}")
    return v


def load_scenario(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e}") from None
    doc.setdefault("name", Path(path).stem)
    if not doc.get("traffic"):
        raise UsageError(f"{path}: the scenario has no [[traffic]]")
    return doc


class Progress:
    """A bar redrawn in place on a terminal; on a pipe, one line per 10 % so logs stay readable."""

    def __init__(self, total: int, out: TextIO, enabled: bool = True) -> None:
        self.total, self.out, self.enabled = max(1, total), out, enabled
        self.tty = out.isatty()
        self.t0 = time.perf_counter()
        self._last = -1

    def update(self, n: int) -> None:
        if not self.enabled:
            return
        frac = n / self.total
        step = int(frac * (100 if self.tty else 10))
        if step == self._last and n != self.total:
            return
        self._last = step
        bar = "#" * int(frac * 30)
        rate = n / max(1e-9, time.perf_counter() - self.t0)
        line = f"[{bar:<30}] {frac * 100:5.1f}% {n}/{self.total} requests  {rate:,.0f}/s"
        self.out.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and n >= self.total:
            self.out.write("\n")
        self.out.flush()


def run(args: argparse.Namespace) -> int:
    if args.mode not in ("live", "virtual"):      # a PUSHSIM_RUN_MODE default bypasses argparse's choices
        raise UsageError(f"--mode / PUSHSIM_RUN_MODE must be live or virtual, got {args.mode!r}")
    doc = load_scenario(args.scenario)
    seed = _int(args, "seed", 0)
    if args.mode == "virtual":
        return _virtual(args, seed, doc)
    try:
        return _live(args, doc, seed)
    except (ValueError, TypeError, KeyError) as e:   # a scenario value of the wrong shape
        raise UsageError(f"{args.scenario}: bad scenario: {e}") from None


def _trace_seq(args: argparse.Namespace) -> int | None:
    return None if args.trace in (None, "") else _int(args, "trace", 0)


def _virtual(args: argparse.Namespace, seed: int, doc: dict[str, Any]) -> int:
    from device_sim.replay import export_jsonl
    from device_sim.scenario import simulate
    trace = _trace_seq(args)
    if doc.get("faults") and args.skip_faults:
        print(f"pushsim run: virtual mode: skipping {len(doc['faults'])} [[faults]] rule(s) (--skip-faults)",
              file=sys.stderr)
    try:
        world, summary = simulate(args.scenario, seed, skip_faults=bool(args.skip_faults))
    except (ValueError, KeyError) as e:
        raise UsageError(f"{args.scenario}: {e}") from None
    print(json.dumps(summary.to_json(), indent=2, sort_keys=True) if args.json else format_virtual(summary))
    if args.html:
        records = [orjson.loads(line) for line in export_jsonl(world)]
        write_html(args.html, PageInputs(
            f"pushsim run {summary.name}", records, trace_seq=trace,
            facts=[("scenario", summary.name), ("mode", "virtual"), ("seed", str(seed)),
                   ("duration", f"{summary.duration:g} s of device time"), ("digest", summary.digest)]))
    return 0


def write_html(path: str, inputs: PageInputs) -> None:
    try:
        Path(path).write_text(page(inputs), encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    print(f"HTML report written to {path}", file=sys.stderr)


def format_virtual(s: Any) -> str:
    from .stats import funnel_table, metrics_rows, table
    lines = [f"scenario {s.name}  seed {s.seed}  {s.duration:g} s virtual  "
             f"({s.events:,} events in {s.wall_seconds:.3f} s)", "", "funnel",
             *("  " + ln for ln in funnel_table(s.funnel).splitlines()), "", "fleet metrics",
             *table(metrics_rows(s.metrics))]
    if s.experiment:
        from device_sim.lift import format_outcomes
        lines += ["", format_outcomes(s.experiment)]
    lines += ["", f"digest {s.digest}"]
    return "\n".join(lines)


def _live(args: argparse.Namespace, doc: dict[str, Any], seed: int) -> int:
    from pushsim.config import Config

    max_requests, concurrency = _int(args, "max_requests", 1), _int(args, "concurrency", 1)
    try:
        settle = float(args.settle)
    except ValueError:
        raise UsageError(f"--settle must be a number of seconds, got {args.settle!r}") from None
    rules = list(doc.get("faults", []))
    if args.faults:
        try:
            extra = json.loads(Path(args.faults).read_text())
        except FileNotFoundError:
            raise UsageError(f"{args.faults}: no such faults file") from None
        except ValueError as e:
            raise UsageError(f"{args.faults}: not valid JSON: {e}") from None
        rules += extra if isinstance(extra, list) else [extra]
    devices = str(doc.get("fleet", {}).get("devices", "ios=10,android=10"))
    with tempfile.TemporaryDirectory(prefix="pushsim-run-") as tmp:
        cfg = Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0,
                     state_dir=Path(args.state_dir or tmp), devices=devices, seed=seed, clock=str(args.clock))
        cfg.extra["scenario"] = str(Path(args.scenario).absolute())
        if "experiment" in doc:
            cfg.extra["experiment"] = cfg.extra["scenario"]
        validate(cfg)
        res, stats, records, experiment = _drive(args, cfg, doc, rules, max_requests, concurrency, settle)
    summary = _summary(doc, seed, res, stats)
    if experiment is not None:
        summary["experiment"] = experiment
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_format(summary))
        if experiment is not None:
            from device_sim.lift import format_outcomes
            print("\n" + format_outcomes(experiment))
    if args.html:
        write_html(args.html, PageInputs(
            f"pushsim run {summary['scenario']}", records, trace_seq=_trace_seq(args),
            response_latencies_ms=[x * 1000 for x in res.latencies],
            facts=[("scenario", str(summary["scenario"])), ("mode", "live"), ("seed", str(seed)),
                   ("requests", f"{res.sent:,} in {res.elapsed:.2f} s")]))
    return 0


def _drive(args: argparse.Namespace, cfg: Any, doc: dict[str, Any], rules: list[Any], max_requests: int,
           concurrency: int, settle: float) -> tuple[Any, dict[str, Any], list[Any], dict[str, Any] | None]:
    from .run_live import plan_jobs, send_all
    from pushsim.pytest_plugin import PushSimClient
    from pushsim.server import run_in_thread

    sim, stop = run_in_thread(cfg)
    try:
        client = PushSimClient(sim.endpoints)
        if rules:
            try:
                client.request("POST", "/faults", rules)
            except AssertionError as e:
                raise UsageError(f"fault rules rejected: {e}") from None
        jobs, planned = plan_jobs(doc, sim.testbed.fleet, max_requests)
        if planned > len(jobs):
            print(f"pushsim run: the scenario has {planned} requests; sending the first {len(jobs)} in device-time "
                  f"order (--max-requests {max_requests})", file=sys.stderr)
        pace = sim.testbed.clock.factor if sim.testbed.clock.mode == "scaled" else None
        if pace is None:
            print("pushsim run: traffic is sent as fast as the fakes answer, not on the scenario's clock "
                  "(--clock scaled:N paces it)", file=sys.stderr)
        events = sorted(doc.get("events", []), key=lambda e: float(e.get("at", 0)))
        duration = float(doc.get("duration", 86_400))
        bar = Progress(len(jobs), sys.stderr, enabled=not args.no_progress)

        def at_share(share: float) -> None:
            while events and float(events[0].get("at", 0)) / duration <= share:
                _apply_event(client, sim.testbed.fleet, events.pop(0))

        res = asyncio.run(send_all(sim.endpoints, jobs, concurrency=concurrency, timeout=10.0,
                                   progress=bar.update, at_share=at_share, pace=pace, duration=duration))
        at_share(1.0)
        stats = _settled_stats(client, settle)
        records = _journal_records(sim.endpoints) if args.html else []
        experiment = client.request("GET", "/experiment")["experiment"] if "experiment" in doc else None
    finally:
        stop()
    return res, stats, records, experiment


def _journal_records(endpoints: dict[str, Any]) -> list[Any]:
    """The server's journal export (what `pushsim report` and the HTML report read)."""
    import urllib.request
    url = endpoints["admin"]["url"].rstrip("/") + "/journal?format=jsonl"
    with urllib.request.urlopen(url, timeout=60) as r:
        return [orjson.loads(line) for line in r.read().splitlines() if line.strip()]


def _apply_event(client: Any, fleet: Any, ev: dict[str, Any]) -> None:
    i = int(ev.get("install", 0))
    token = fleet.apns_token(i) if fleet.is_ios(i) else fleet.fcm_token(i)
    change = {SIM_NAMES.get(k, k): v for k, v in dict(ev.get("set", {})).items()}
    if "connectivity" in change:
        change["connectivity"] = "online" if change["connectivity"] else "offline"
    opened = change.pop("open", False)
    quoted = urllib.parse.quote(token, safe="")
    try:
        if change:
            client.request("POST", f"/devices/{quoted}/state", change)
        if opened:
            client.request("POST", f"/devices/{quoted}/open", {})
    except AssertionError as e:     # an event the control API refuses is reported, not fatal
        print(f"pushsim run: event at {ev.get('at')} not applied: {e}", file=sys.stderr)


def _settled_stats(client: Any, settle: float) -> dict[str, Any]:
    deadline = time.monotonic() + settle
    while True:
        stats = client.stats()
        if not (stats.get("pending") or {}).get("queued") or time.monotonic() >= deadline:
            return stats
        time.sleep(0.05)


def _summary(doc: dict[str, Any], seed: int, res: Any, stats: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(res.latencies)
    pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2)) if lat else (lambda q: None)
    return {"scenario": doc.get("name"), "seed": seed, "mode": "live", "sent": res.sent,
            "responses": dict(sorted(res.statuses.items())), "elapsed_s": round(res.elapsed, 3),
            "requests_per_s": round(res.sent / res.elapsed, 1) if res.elapsed else None,
            "latency_ms": {"p50": round(statistics.median(lat) * 1000, 2) if lat else None, "p99": pct(0.99)},
            "funnel": stats}


def _format(s: dict[str, Any]) -> str:
    from .stats import funnel_table

    lines = [f"scenario {s['scenario']}  seed {s['seed']}  {s['sent']} requests in {s['elapsed_s']:.2f} s "
             f"({s['requests_per_s']}/s, p50 {s['latency_ms']['p50']} ms, p99 {s['latency_ms']['p99']} ms)", "",
             "responses"]
    w = max((len(k) for k in s["responses"]), default=0)
    lines += [f"  {k:<{w}}  {n}" for k, n in s["responses"].items()]
    lines += ["", "funnel", *("  " + ln for ln in funnel_table(s["funnel"], sent=s["sent"]).splitlines())]
    return "\n".join(lines)
