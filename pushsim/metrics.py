"""Prometheus text exposition of the testbed's accounting, overall and per service.

Overall counters come straight from the ledger (exact). Per-service counts are kept here: requests
by reading new journal entries at scrape time (only the entries added since the previous scrape),
settles by a ledger subscription. That subscription costs a call per settled notification, so it
starts at the first scrape, seeded from the ledger's records: a server nobody scrapes pays nothing.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from device_sim.ledger import Record
from device_sim.notification import Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kv: object) -> str:
    inner = ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items())
    return "{" + inner + "}" if inner else ""


class Metrics:
    def __init__(self, testbed: Any) -> None:
        self.testbed = testbed
        self._unsubscribe: Callable[[], None] | None = None
        self.reset()

    def reset(self) -> None:
        self.settled: Counter[tuple[str, str, str]] = Counter()     # (service, outcome, reason)
        self.requests: Counter[tuple[str, int]] = Counter()         # (service, status)
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()         # (service, reason)
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
            if rec.outcome is not Outcome.PENDING:
                self.settled[(rec.note.service, rec.outcome.value, rec.reason or "")] += 1
        self._unsubscribe = self.testbed.ledger.subscribe(self._on_settle)

    def _on_settle(self, rec: Record, at: float | None) -> None:
        if rec.outcome is not Outcome.PENDING:
            self.settled[(rec.note.service, rec.outcome.value, rec.reason or "")] += 1

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
        self._follow_settles()
        self._catch_up()
        led = self.testbed.ledger
        out: list[str] = []

        def family(name: str, kind: str, help_: str, samples: list[tuple[str, object]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value}" for labels, value in samples)

        settled = sorted(self.settled.items())
        family("pushsim_accepted_total", "counter", "Notifications accepted by the fakes.", [("", led.accepted)])
        family("pushsim_rejected_total", "counter", "Requests rejected, by reason.",
               [(_labels(reason=r), n) for r, n in sorted(led.rejected.items())])
        family("pushsim_delivered_total", "counter", "Notifications delivered to the app.", [("", led.delivered)])
        family("pushsim_dropped_total", "counter", "Accepted notifications dropped, by reason.",
               [(_labels(reason=r), n) for r, n in sorted(led.dropped.items())])
        family("pushsim_pending", "gauge", "Accepted notifications not yet settled, by reason.",
               [(_labels(reason=r), n) for r, n in sorted(led.pending.items())])
        family("pushsim_service_accepted_total", "counter", "Notifications accepted, by service.",
               [(_labels(service=s), n) for s, n in sorted(self.accepted.items())])
        family("pushsim_service_rejected_total", "counter", "Requests rejected, by service and reason.",
               [(_labels(service=s, reason=r), n) for (s, r), n in sorted(self.rejected.items())])
        family("pushsim_service_delivered_total", "counter", "Notifications delivered, by service.",
               [(_labels(service=s), n) for (s, o, _), n in settled if o == "delivered"])
        family("pushsim_service_dropped_total", "counter", "Notifications dropped, by service and reason.",
               [(_labels(service=s, reason=r), n) for (s, o, r), n in settled if o == "dropped"])
        family("pushsim_requests_total", "counter", "Requests answered, by service and HTTP status.",
               [(_labels(service=s, status=st), n) for (s, st), n in sorted(self.requests.items())])
        family("pushsim_devices", "gauge", "Installs in the simulated fleet.", [("", len(self.testbed.fleet))])
        return "\n".join(out) + "\n"
