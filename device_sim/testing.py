"""Helpers for driving the fleet by hand in virtual time (tests, notebooks, bug reproductions)."""
from __future__ import annotations

from typing import Any

from .notification import Notification

IDEAL_IOS = {"app_state": {"background": 1.0}, "low_power": 0.0, "bar_off": 0.0, "charging": 0.0,
             "offline": 0.0, "opens_per_day": 0.0}
IDEAL_ANDROID = {"app_state": {"background": 1.0}, "charging": 0.0, "doze": 0.0, "offline": 0.0,
                 "opens_per_day": 0.0, "bucket": {"active": 1.0}, "os_version": {"14": 1.0}}


def virtual_bench(devices: str = "ios=1,android=1", seed: int = 0, **settings: Any) -> Any:
    """A Bench on the virtual clock whose installs start ideal: background, online, no power saving.

    `settings` are scenario tables, e.g. ios={"budget_per_hour": 1}, profile={"ios": {...}}.
    """
    from pushsim.bench import Bench
    from pushsim.config import Config

    from .scenario import sim_settings
    doc: dict[str, Any] = {k: v for k, v in settings.items()}
    prof = doc.setdefault("profile", {})
    prof["ios"] = {**IDEAL_IOS, **prof.get("ios", {})}
    prof["android"] = {**IDEAL_ANDROID, **prof.get("android", {})}
    return Bench(Config(devices=devices, seed=seed, clock="virtual"), settings=sim_settings(doc))


def push(bench: Any, install: int, push_type: str | None = None, *, priority: int | None = None,
         at: float | None = None, payload: bytes = b"{}", expiration: float | None = None,
         collapse_id: str | None = None, drop_reason: str | None = None) -> Notification:
    """Submit one accepted notification at virtual time `at` (default: now), as a fake would."""
    if at is not None:
        bench.sched.run_until(at)
    ios = bench.fleet.platform[install] == 0
    pt = push_type or ("background" if ios else "data")
    prio = priority if priority is not None else (5 if pt == "background" else 10)
    t = bench.sched.now
    n = Notification("apns" if ios else "fcm", "tok", install, f"m{bench.ledger.accepted}", t, pt, prio, payload,
                     expiration=expiration, collapse_id=collapse_id,
                     content_available=pt in ("background", "data"), drop_reason=drop_reason)
    bench.dispatcher.submit(n)
    return n


def outcome(bench: Any, n: Notification) -> tuple[str, str | None]:
    rec = bench.ledger.records[n.seq]
    return rec.outcome.value, rec.reason
