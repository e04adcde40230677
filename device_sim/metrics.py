"""Delivery and app metrics: receipt rate, background processing success, task duration, freshness."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from .ledger import Ledger

_SAMPLE_CAP = 100_000   # task durations kept for percentiles; counters stay exact beyond it


@dataclass(slots=True)
class Metrics:
    tasks_started: int = 0
    tasks_succeeded: int = 0
    tasks_failed: int = 0
    tasks_killed: int = 0            # ran past the OS window (iOS 30 s, Android 10 s)
    task_seconds: float = 0.0
    durations: list[float] = field(default_factory=list)
    fetches: int = 0
    fetch_errors: int = 0
    alerts_shown: int = 0
    notifications_shown: int = 0     # Android notification messages put in the tray
    opens: int = 0
    fresh_opens: int = 0
    ready_opens: int = 0             # the last background task before the open succeeded
    staleness_seconds: float = 0.0   # summed over stale opens
    deprioritized: int = 0           # high-priority FCM messages treated as normal (7-day rule)
    bucket_capped: int = 0           # high-priority FCM messages over the standby-bucket cap
    doze_deferred: int = 0
    overflows: int = 0               # offline installs that went over 100 pending messages
    deleted_messages_events: int = 0 # onDeletedMessages calls made on reconnect

    def task_done(self, seconds: float, ok: bool, killed: bool) -> None:
        self.task_seconds += seconds
        if killed:
            self.tasks_killed += 1
        elif ok:
            self.tasks_succeeded += 1
        else:
            self.tasks_failed += 1
        if len(self.durations) < _SAMPLE_CAP:
            self.durations.append(seconds)

    def as_dict(self, ledger: Ledger) -> dict[str, object]:
        done = self.tasks_succeeded + self.tasks_failed + self.tasks_killed
        d = sorted(self.durations)

        def pct(q: float) -> float | None:
            return round(d[min(len(d) - 1, int(q * len(d)))], 4) if d else None

        stale = self.opens - self.fresh_opens
        return {
            "funnel": ledger.stats(),
            "receipt_rate": round(ledger.delivered / ledger.accepted, 6) if ledger.accepted else None,
            "background": {
                "started": self.tasks_started, "succeeded": self.tasks_succeeded,
                "failed": self.tasks_failed, "killed": self.tasks_killed,
                "running": self.tasks_started - done,
                "success_rate": round(self.tasks_succeeded / done, 6) if done else None,
            },
            "task_duration": {"count": done, "mean": round(self.task_seconds / done, 4) if done else None,
                              "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)},
            "freshness": {
                "opens": self.opens, "fresh": self.fresh_opens, "ready": self.ready_opens,
                "fresh_rate": round(self.fresh_opens / self.opens, 6) if self.opens else None,
                "mean_staleness": round(self.staleness_seconds / stale, 3) if stale else 0.0,
            },
            "android": {"deprioritized": self.deprioritized, "bucket_capped": self.bucket_capped,
                        "doze_deferred": self.doze_deferred, "overflows": self.overflows,
                        "deleted_messages_events": self.deleted_messages_events,
                        "notifications_shown": self.notifications_shown},
            "ios": {"alerts_shown": self.alerts_shown},
            "fetch": {"count": self.fetches, "errors": self.fetch_errors},
        }

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, [] if f.name == "durations" else type(getattr(self, f.name))())
