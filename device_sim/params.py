"""Tunable OS and app rules, with defaults from the platforms' documentation (reference/apns.md §3,
reference/fcm.md §5). Every field can be set from a scenario's `[ios]`, `[android]` and `[app]` tables.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

DAY = 86_400.0


@dataclass(slots=True)
class IosParams:
    budget_per_hour: float = 3.0        # Apple: "don't try to send more than two or three per hour"
    budget_burst: float = 3.0           # tokens a rested app can spend at once
    daily_budget: int = 40              # device-wide background wakes per 24 h (Apple gives no number)
    background_window: float = 30.0     # seconds to call the fetch completion handler
    overrun_penalty: float = 1.0        # budget tokens lost each time the app is killed for overrunning
    store_max: float = 30 * DAY         # APNs keeps an offline device's push at most 30 days
    throttle: bool = True               # False = "debugger attached": no budget at all


@dataclass(slots=True)
class AndroidParams:
    handler_window: float = 10.0        # guaranteed onMessageReceived lifetime since Android O
    bucket_caps: dict[str, int] = field(default_factory=lambda: {"frequent": 10, "rare": 5, "restricted": 5})
    bucket_cap_max_os: int = 12         # caps apply on Android 12 (API 32) and below
    deprioritize_after: int = 10        # non-notifying high-priority data messages in the window ...
    deprioritize_window: float = 7 * DAY   # ... that make FCM treat further ones as normal
    max_pending: int = 100              # non-collapsible messages stored for an offline device
    max_collapse_keys: int = 4
    store_max: float = 28 * DAY         # FCM's maximum and default TTL
    doze_interval: float = 3600.0       # Doze maintenance window every ... seconds
    doze_window: float = 30.0           # ... lasting this long


@dataclass(slots=True)
class AppParams:
    task_median: float = 2.0            # background task duration: lognormal median, seconds
    task_sigma: float = 0.8             # lognormal sigma (0 = always the median)
    failure_rate: float = 0.02          # tasks that finish in time but fail
    data_shows_notification: float = 0.0   # share of Android data messages after which the app posts one
    session: float = 120.0              # seconds the app stays in the foreground per open
    fetch_url: str | None = None        # "make-ready": fetch this URL in the background task (real/scaled)
    fetch_timeout: float = 25.0


@dataclass(slots=True)
class SimParams:
    ios: IosParams = field(default_factory=IosParams)
    android: AndroidParams = field(default_factory=AndroidParams)
    app: AppParams = field(default_factory=AppParams)
    connectivity_slot: float = 900.0    # connectivity is decided per slot of this many seconds

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimParams:
        p = cls()
        for name, target in (("ios", p.ios), ("android", p.android), ("app", p.app)):
            _apply(target, d.get(name, {}), name)
        if "connectivity_slot" in d:
            p.connectivity_slot = float(d["connectivity_slot"])
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _apply(target: object, values: dict[str, Any], where: str) -> None:
    known = {f.name: f for f in fields(target)}   # type: ignore[arg-type]
    for k, v in values.items():
        if k not in known:
            raise ValueError(f"unknown setting [{where}] {k}")
        cur = getattr(target, k)
        if isinstance(cur, bool):
            v = bool(v)
        elif isinstance(cur, (int, float)) and not isinstance(v, bool) and isinstance(v, (int, float)):
            v = type(cur)(v)
        setattr(target, k, v)
