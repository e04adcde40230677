"""Prometheus exposition of the testbed's accounting, through prometheus_client.

Nothing here runs per request. The counts live where they are kept anyway (the ledger's exact
counters, the journal, the device simulator's metrics) plus a few plain dicts and int lists kept by
this module; a custom Collector turns them into metric families only when someone scrapes:
- requests by (service, status) and rejections by (service, reason): read from the journal entries
  added since the previous scrape;
- settles by (service, outcome, reason, platform) and the delivery-delay histogram: a ledger
  subscription, which costs a call per settled notification, so it starts at the first scrape,
  seeded from the ledger's retained records: a server nobody scrapes pays nothing.

Under `serve --workers N` each worker exposes its own registry and the hub adds the workers'
expositions series by series (pushsim/cluster/merge.py merge_metrics): no multiprocess directory
of mmap files to manage, and the hub's /stats and /metrics come from the same workers.
"""
from __future__ import annotations

import bisect
from collections import Counter
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from device_sim.fleet import PLATFORMS
from device_sim.ledger import Record
from device_sim.notification import Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Delivery delay (edge accepted → the device settled it as delivered), seconds: an alert shown at
# once lands in the first buckets; a dozing Android device or a throttled iOS one in the last.
DELAY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Response latency as the fakes make it: their own work takes microseconds, so a reply is in the
# first bucket unless a fault rule delays it (docs/faults.md `delay`).
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_PLATFORM_NAMES = {code: name for name, code in PLATFORMS.items()}


class Metrics:
    def __init__(self, testbed: Any) -> None:
        self.testbed = testbed
        self._unsubscribe: Callable[[], None] | None = None
        # serve --partition: the hand-off counters (pushsim.partition.Partition.stats), else None
        self.handoff: Callable[[], dict[str, Any]] | None = None
        faults = getattr(testbed, "faults", None)
        if faults is not None:
            faults.on_delay = self._on_delay
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_TestbedCollector(self))
        ProcessCollector(registry=self.registry)      # process_cpu_seconds_total, memory, fds, start time
        self.reset()

    def reset(self) -> None:
        self.settled: Counter[tuple[str, str, str, str]] = Counter()   # (service, outcome, reason, platform)
        self.requests: Counter[tuple[str, int]] = Counter()            # (service, status)
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()            # (service, reason)
        self.delay_buckets: dict[str, list[int]] = {}                  # service → count per bucket (+Inf last)
        self.delay_sum: Counter[str] = Counter()
        self.latency_delayed: dict[str, list[int]] = {}                # service → delayed replies per bucket
        self.latency_sum: Counter[str] = Counter()
        self._journal_seen = self.testbed.journal.next_id

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _follow_settles(self) -> None:
        if self._unsubscribe is not None:
            return
        # Same thread as the ledger's writers (the event loop): nothing settles between the scan
        # and the subscription.
        for rec in self.testbed.ledger.records.values():
            self._on_settle(rec, None)
        self._unsubscribe = self.testbed.ledger.subscribe(self._on_settle)

    def _on_settle(self, rec: Record, at: float | None) -> None:
        outcome = rec.outcome
        if outcome is Outcome.PENDING:
            return
        n = rec.note
        fleet = self.testbed.fleet
        code = fleet.platform_code(n.install) if fleet.owns(n.install) else -1
        self.settled[(n.service, outcome.value, rec.reason or "", _PLATFORM_NAMES.get(code, "unknown"))] += 1
        if outcome is Outcome.DELIVERED and rec.settled_at is not None:
            delay = max(0.0, rec.settled_at - n.received_at)
            counts = self.delay_buckets.get(n.service)
            if counts is None:
                counts = self.delay_buckets[n.service] = [0] * (len(DELAY_BUCKETS) + 1)
            counts[bisect.bisect_left(DELAY_BUCKETS, delay)] += 1
            self.delay_sum[n.service] += delay

    def _on_delay(self, service: str, seconds: float) -> None:
        counts = self.latency_delayed.get(service)
        if counts is None:
            counts = self.latency_delayed[service] = [0] * (len(LATENCY_BUCKETS) + 1)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[service] += seconds

    def _catch_up(self) -> None:
        journal = self.testbed.journal
        start = self._journal_seen
        if journal.next_id == start:
            return
        if journal.next_id < start:   # the testbed was reset behind our back: start over
            self.reset()
            start = 0
        new = []
        for e in reversed(journal.entries):   # newest first; stop at what the last scrape saw
            if e.id < start:
                break
            new.append(e)
        for e in new:
            self.requests[(e.service, e.status)] += 1
            if e.note is not None:
                self.accepted[e.service] += 1
            elif e.status >= 400:
                self.rejected[(e.service, e.reason or str(e.status))] += 1
        self._journal_seen = journal.next_id

    def render(self) -> str:
        return generate_latest(self.registry).decode()


class _TestbedCollector(Collector):
    """Builds every pushsim_* family from the counts at scrape time (never per request)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        m._follow_settles()
        m._catch_up()
        led = m.testbed.ledger

        def counter(name: str, help_: str, labels: tuple[str, ...], samples: Any) -> CounterMetricFamily:
            fam = CounterMetricFamily(name, help_, labels=labels)
            for key, value in samples:
                fam.add_metric(list(key), value)
            return fam

        def gauge(name: str, help_: str, labels: tuple[str, ...], samples: Any) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(name, help_, labels=labels)
            for key, value in samples:
                fam.add_metric(list(key), value)
            return fam

        settled = sorted(m.settled.items())
        yield counter("pushsim_accepted", "Notifications accepted by the fakes.", (), [((), led.accepted)])
        yield counter("pushsim_rejected", "Requests rejected, by reason.", ("reason",),
                      [((r,), n) for r, n in sorted(led.rejected.items())])
        yield counter("pushsim_delivered", "Notifications delivered to the app.", (), [((), led.delivered)])
        yield counter("pushsim_dropped", "Accepted notifications dropped, by reason.", ("reason",),
                      [((r,), n) for r, n in sorted(led.dropped.items())])
        yield gauge("pushsim_pending", "Accepted notifications not yet settled, by reason.", ("reason",),
                    [((r,), n) for r, n in sorted(led.pending.items())])
        yield counter("pushsim_service_accepted", "Notifications accepted, by service.", ("service",),
                      [((s,), n) for s, n in sorted(m.accepted.items())])
        yield counter("pushsim_service_rejected", "Requests rejected, by service and reason.", ("service", "reason"),
                      [((s, r), n) for (s, r), n in sorted(m.rejected.items())])
        by_service: Counter[tuple[str, ...]] = Counter()
        dropped: Counter[tuple[str, ...]] = Counter()
        for (s, o, r, _), n in settled:
            if o == "delivered":
                by_service[(s,)] += n
            elif o == "dropped":
                dropped[(s, r)] += n
        yield counter("pushsim_service_delivered", "Notifications delivered, by service.", ("service",),
                      sorted(by_service.items()))
        yield counter("pushsim_service_dropped", "Notifications dropped, by service and reason.",
                      ("service", "reason"), sorted(dropped.items()))
        yield counter("pushsim_settled", "Notifications settled, by service, outcome, reason and the install's platform.",
                      ("service", "outcome", "reason", "platform"), settled)
        yield counter("pushsim_requests", "Requests answered, by service and HTTP status.", ("service", "status"),
                      [((s, str(st)), n) for (s, st), n in sorted(m.requests.items())])
        delay = HistogramMetricFamily("pushsim_delivery_delay_seconds",
                                      "Seconds from acceptance to delivery to the app, by service.",
                                      labels=("service",))
        for service, counts in sorted(m.delay_buckets.items()):
            cumulative, total = [], 0
            for bound, c in zip((*map(str, DELAY_BUCKETS), "+Inf"), counts):
                total += c
                cumulative.append((bound, total))
            delay.add_metric([service], cumulative, m.delay_sum[service])
        yield delay
        latency = HistogramMetricFamily(
            "pushsim_response_latency_seconds",
            "Seconds the fakes held a reply, by service: a fault rule's delay; otherwise under a millisecond.",
            labels=("service",))
        answered: Counter[str] = Counter()
        for (s, _), n in m.requests.items():
            answered[s] += n
        for service in sorted(answered):
            delayed = m.latency_delayed.get(service, [0] * (len(LATENCY_BUCKETS) + 1))
            # every reply not delayed by a rule went out at once: the first bucket
            counts = [max(0, answered[service] - sum(delayed)) + delayed[0], *delayed[1:]]
            cumulative, total = [], 0
            for bound, c in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts):
                total += c
                cumulative.append((bound, total))
            latency.add_metric([service], cumulative, m.latency_sum[service])
        yield latency
        yield gauge("pushsim_devices", "Installs in the simulated fleet.", (), [((), m.testbed.fleet.owned_count)])
        states = m.testbed.device_sim.census()
        yield gauge("pushsim_fleet_installs",
                    "Installs per platform in each state now (online, offline, dozing, throttled, ...; an install "
                    "counts in several). Estimated from a fixed sample of the fleet when it is large.",
                    ("platform", "state"),
                    [((platform, state), n) for platform in ("ios", "android")
                     for state, n in states[platform].items() if state != "installs"])  # type: ignore[attr-defined]
        yield gauge("pushsim_ios_budget_tokens", "Background budget tokens left, summed over iOS installs.", (),
                    [((), states["ios_budget_tokens"])])
        yield from _primer_families(m.testbed.stats(), counter, gauge)
        if m.handoff is not None:
            peers = sorted(m.handoff().get("peers", {}).items())
            yield counter("pushsim_peer_handoffs", "Hand-offs to other partitions' instances, by peer and result.",
                          ("peer", "result"), [((k, r), p[r]) for k, p in peers for r in ("sent", "failed")])
            yield gauge("pushsim_peer_handoffs_queued", "Hand-offs waiting to be sent, by peer.", ("peer",),
                        [((k,), p["queued"]) for k, p in peers])


def _primer_families(stats: dict[str, Any], counter: Any, gauge: Any) -> Iterator[Metric]:
    """The silent-push primer's metrics as counts that add up across workers (rates are ratios of
    them: receipt rate = delivered / accepted, background success = succeeded / finished tasks,
    freshness at open = fresh / opens, landing readiness = ready / opens)."""
    bg = stats.get("background", {})
    yield counter("pushsim_background_tasks", "Background tasks the app ran after a push, by result.", ("result",),
                  [((k,), bg.get(k, 0)) for k in ("succeeded", "failed", "killed")])
    yield gauge("pushsim_background_tasks_running", "Background tasks running now.", (), [((), bg.get("running", 0))])
    fr = stats.get("freshness", {})
    opens = fr.get("opens", 0)
    yield counter("pushsim_app_opens", "App opens by the simulated users.", (), [((), opens)])
    yield counter("pushsim_app_opens_fresh", "App opens that found the content already fetched (fresh at open).",
                  (), [((), fr.get("fresh", 0))])
    yield counter("pushsim_app_opens_ready", "App opens where the landing screen was ready.", (),
                  [((), fr.get("ready", 0))])
    yield gauge("pushsim_active_installs", "Installs the device simulator is tracking now.", (),
                [((), stats.get("active_installs", 0))])
