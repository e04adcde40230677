"""Locust glue shared by every pushsim locustfile: options, endpoints, token ranges, CI gates.

Importing this module registers the event listeners (locust imports each locustfile once).
Token ranges: in distributed mode the master splits each platform's installs into disjoint
ranges, one per worker, and sends them with a custom worker message on test start (before the
spawn messages, so a worker knows its range before its first user starts). A local run takes the
whole range.
"""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.lock
import httpx
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from . import device_side, fleet
from .gates import Thresholds, Totals, evaluate, exit_code

log = logging.getLogger("pushsim.loadtests")
logging.getLogger("httpx").setLevel(logging.WARNING)     # one INFO line per request otherwise

RANGE_MESSAGE = "pushsim_token_range"
PLATFORMS = ("ios", "android")


def _float_or_none(v: Any) -> float | None:
    return None if v in (None, "") else float(v)


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    g = parser.add_argument_group("pushsim")
    g.add_argument("--pushsim-endpoints", env_var="PUSHSIM_ENDPOINTS", default=".pushsim/endpoints.json",
                   help="endpoints.json written by `pushsim serve` (or its state dir)")
    g.add_argument("--silent-ratio", env_var="PUSHSIM_SILENT_RATIO", type=float, default=0.5,
                   help="share of silent (background / data-only) pushes, 0..1")
    g.add_argument("--bad-token-ratio", env_var="PUSHSIM_BAD_TOKEN_RATIO", type=float, default=0.0,
                   help="share of pushes to tokens the fleet never issued (fault injection)")
    g.add_argument("--token-limit", env_var="PUSHSIM_TOKEN_LIMIT", type=int, default=0,
                   help="use at most this many installs per platform (0 = all)")
    g.add_argument("--request-timeout", env_var="PUSHSIM_REQUEST_TIMEOUT", type=float, default=10.0)
    g.add_argument("--apns-transport", env_var="PUSHSIM_APNS_TRANSPORT", choices=["tls", "h2c"], default="tls")
    g.add_argument("--apns-auth", env_var="PUSHSIM_APNS_AUTH", choices=["token", "cert"], default="token",
                   help="token: ES256 provider token; cert: TLS client certificate (needs --apns-transport tls)")
    g.add_argument("--apns-topic", env_var="PUSHSIM_APNS_TOPIC", default="",
                   help="apns-topic header (default: the topic in endpoints.json)")
    g.add_argument("--apns-connections", env_var="PUSHSIM_APNS_CONNECTIONS", type=int, default=1,
                   help="HTTP/2 connections per locust process; users share them round-robin")
    g.add_argument("--fcm-http", env_var="PUSHSIM_FCM_HTTP", choices=["1.1", "2"], default="2")
    g.add_argument("--fcm-transport", env_var="PUSHSIM_FCM_TRANSPORT", choices=["tls", "h2c"], default="tls")
    g.add_argument("--fcm-project", env_var="PUSHSIM_FCM_PROJECT", default="",
                   help="project id in the send URL (default: the one in endpoints.json)")
    g.add_argument("--gate-max-fail-ratio", env_var="PUSHSIM_GATE_MAX_FAIL_RATIO", default=None,
                   help="CI gate: highest acceptable failures/requests")
    g.add_argument("--gate-max-p95-ms", env_var="PUSHSIM_GATE_MAX_P95_MS", default=None,
                   help="CI gate: highest acceptable 95th percentile response time, ms")
    g.add_argument("--gate-min-rps", env_var="PUSHSIM_GATE_MIN_RPS", default=None,
                   help="CI gate: lowest acceptable average requests per second")
    g.add_argument("--gate-min-receipt-rate", env_var="PUSHSIM_GATE_MIN_RECEIPT_RATE", default=None,
                   help="CI gate: lowest acceptable delivered/accepted on the simulated devices (pushsim /stats)")
    g.add_argument("--gate-max-findings", env_var="PUSHSIM_GATE_MAX_FINDINGS", default=None,
                   help="CI gate: most error-level conformance findings allowed (pushsim /report)")


def options(environment: Environment) -> Any:
    return environment.parsed_options


_endpoints: dict[str, Any] | None = None


def endpoints(environment: Environment) -> dict[str, Any]:
    global _endpoints
    if _endpoints is None:
        _endpoints = fleet.load_endpoints(options(environment).pushsim_endpoints)
    return _endpoints


# --- token ranges -----------------------------------------------------------------------------

@dataclass
class TokenPool:
    """This process's tokens for one platform; users take them round-robin."""
    platform: str
    offset: int
    tokens: list[str]
    _next: Any = field(default_factory=itertools.count)

    def next(self) -> str:
        return self.tokens[next(self._next) % len(self.tokens)]


class _Ranges:
    def __init__(self) -> None:
        self.assigned: dict[str, tuple[int, int]] | None = None
        self.worker: tuple[int, int] | None = None     # (index, of)
        self.ready = gevent.event.Event()
        self.pools: dict[str, TokenPool] = {}
        self.lock = gevent.lock.Semaphore()


_ranges = _Ranges()


def _admin(environment: Environment) -> str:
    return endpoints(environment)["admin"]["url"].rstrip("/")


def _limited_total(environment: Environment, http: httpx.Client, platform: str) -> int:
    total = fleet.device_total(http, _admin(environment), platform)
    limit = options(environment).token_limit
    return min(total, limit) if limit else total


def _on_range_message(environment: Environment, msg: Any, **_kw: Any) -> None:
    data = msg.data
    _ranges.assigned = {p: tuple(v) for p, v in data["ranges"].items()}
    _ranges.worker = (data["index"], data["of"])
    log.info("pushsim token range: worker %d/%d %s", data["index"], data["of"],
             " ".join(f"{p}=[{o},{o + n})" for p, (o, n) in sorted(_ranges.assigned.items())))
    _ranges.ready.set()


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    # gevent's loop caches "now" and has not turned since before the locustfile's imports, and
    # locust arms the --run-time timer right after this event: on a busy machine a `-t 3s` run
    # ended before its first request. A fresh reading makes the run last what was asked.
    gevent.get_hub().loop.update_now()
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(RANGE_MESSAGE, _on_range_message)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kw: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    workers = sorted(runner.clients.ready + runner.clients.spawning + runner.clients.running,
                     key=lambda c: runner.get_worker_index(c.id))
    if not workers:
        return
    with httpx.Client(timeout=10) as http:
        totals = {p: _limited_total(environment, http, p) for p in PLATFORMS}
    for i, client in enumerate(workers):
        ranges = {p: fleet.split_range(totals[p], len(workers), i) for p in PLATFORMS}
        runner.send_message(RANGE_MESSAGE, {"ranges": ranges, "index": i, "of": len(workers)}, client.id)
        log.info("pushsim token range sent: worker %d/%d (%s) %s", i, len(workers), client.id, ranges)


def token_pool(environment: Environment, platform: str) -> TokenPool:
    """This process's pool for `platform`, fetched once from the control API."""
    pool = _ranges.pools.get(platform)
    if pool is not None:
        return pool
    with _ranges.lock:
        if platform in _ranges.pools:
            return _ranges.pools[platform]
        with httpx.Client(timeout=30) as http:
            if isinstance(environment.runner, WorkerRunner):
                if not _ranges.ready.wait(60):
                    raise RuntimeError("no token range from the master within 60 s")
                offset, count = _ranges.assigned[platform]
            else:
                offset, count = 0, _limited_total(environment, http, platform)
            tokens = fleet.fetch_tokens(http, _admin(environment), platform, offset, count)
        if not tokens:
            raise RuntimeError(f"no {platform} installs in range [{offset}, {offset + count})")
        _ranges.pools[platform] = TokenPool(platform, offset, tokens)
        return _ranges.pools[platform]


# --- per-process accounting, reported at test stop (distributed tests read it from the logs) ----

sent_by_platform: dict[str, int] = {p: 0 for p in PLATFORMS}


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kw: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    for platform, pool in sorted(_ranges.pools.items()):
        log.info("pushsim tokens used: worker %s %s offset=%d count=%d requests=%d",
                 _ranges.worker or "local", platform, pool.offset, len(pool.tokens),
                 sent_by_platform.get(platform, 0))


# --- the device side -------------------------------------------------------------------------

_device: dict[str, Any] | None = None     # pushsim's /stats and /report, read once at the end of the run


@events.test_stop.add_listener
def _read_device_side(environment: Environment, **_kw: Any) -> None:
    global _device
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    try:
        admin = _admin(environment)
    except Exception as e:      # no endpoints.json: say so in the outputs, do not crash the shutdown
        _device = {"stats": None, "report": None, "errors": [f"endpoints: {e}"]}
        return
    _device = device_side.fetch(admin)


def device_summary(environment: Environment) -> dict[str, Any]:
    if _device is None:
        _read_device_side(environment)
    return device_side.summary(_device or {})


@events.quitting.add_listener
def _device_side_outputs(environment: Environment, **_kw: Any) -> None:
    """Add the device side to locust's HTML report (already written) and beside its JSON file."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    s = device_summary(environment)
    log.info("pushsim device side: accepted %s, delivered %s, receipt rate %s, findings %s",
             s["accepted"], s["delivered"], s["receipt_rate"], s["findings"])
    o = options(environment)
    if getattr(o, "html_file", None):
        rules = ((_device or {}).get("report") or {}).get("findings") or []
        device_side.add_to_html(o.html_file, device_side.html_section(s, rules[:20]))
    if getattr(o, "json_file", None):
        device_side.write_json(o.json_file, s)


# --- CI gates -------------------------------------------------------------------------------

def thresholds(environment: Environment) -> Thresholds:
    o = options(environment)
    max_findings = getattr(o, "gate_max_findings", None)
    return Thresholds(_float_or_none(o.gate_max_fail_ratio), _float_or_none(o.gate_max_p95_ms),
                      _float_or_none(o.gate_min_rps), _float_or_none(getattr(o, "gate_min_receipt_rate", None)),
                      None if max_findings in (None, "") else int(max_findings))


@events.quitting.add_listener
def _apply_gates(environment: Environment, **_kw: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    th = thresholds(environment)
    if not th.active:
        return
    total = environment.stats.total
    dev = device_summary(environment) if th.min_receipt_rate is not None or th.max_findings is not None else {}
    totals = Totals(total.num_requests, total.num_failures,
                    float(total.get_response_time_percentile(0.95) or 0), float(total.total_rps),
                    dev.get("receipt_rate"), dev.get("error_findings"))
    violations = evaluate(th, totals)
    for v in violations:
        log.error("pushsim gate failed: %s", v)
    if not violations:
        log.info("pushsim gates passed: %d requests, fail ratio %.4f, p95 %.0f ms, %.1f req/s",
                 totals.requests, totals.fail_ratio, totals.p95_ms, totals.rps)
    environment.process_exit_code = exit_code(violations)


# --- reporting ------------------------------------------------------------------------------

class PushRejected(Exception):
    """A push the service answered with an error; str() is what locust groups failures by."""


def report(environment: Environment, request_type: str, name: str, started: float, length: int,
           exc: BaseException | None) -> None:
    environment.events.request.fire(request_type=request_type, name=name,
                                    response_time=(time.perf_counter() - started) * 1000.0,
                                    response_length=length, exception=exc, context={})
