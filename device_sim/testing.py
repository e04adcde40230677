"""Helpers for driving the fleet by hand in virtual time (tests, notebooks, bug reproductions)."""
from __future__ import annotations

from typing import Any

from .cohorts import Experiment
from .notification import Notification
from .scenario import sim_settings
from .world import World, WorldSettings

IDEAL_IOS = {"app_state": {"background": 1.0}, "low_power": 0.0, "bar_off": 0.0, "charging": 0.0,
             "offline": 0.0, "opens_per_day": 0.0}
IDEAL_ANDROID = {"app_state": {"background": 1.0}, "charging": 0.0, "doze": 0.0, "offline": 0.0,
                 "opens_per_day": 0.0, "bucket": {"active": 1.0}, "os_version": {"14": 1.0}}


def virtual_world(devices: str = "ios=1,android=1", seed: int = 0, experiment: Experiment | None = None,
                  **settings: Any) -> World:
    """A world on the virtual clock whose installs start ideal: background, online, no power saving.

    `settings` are scenario tables, e.g. ios={"budget_per_hour": 1}, profile={"ios": {...}}.
    """
    doc: dict[str, Any] = {k: v for k, v in settings.items()}
    prof = doc.setdefault("profile", {})
    prof["ios"] = {**IDEAL_IOS, **prof.get("ios", {})}
    prof["android"] = {**IDEAL_ANDROID, **prof.get("android", {})}
    return World(WorldSettings(devices=devices, seed=seed, clock="virtual"), rules=sim_settings(doc),
                 experiment=experiment)


def push(world: World, install: int, push_type: str | None = None, *, priority: int | None = None,
         at: float | None = None, payload: bytes = b"{}", expiration: float | None = None,
         collapse_id: str | None = None, drop_reason: str | None = None) -> Notification:
    """Submit one accepted notification at virtual time `at` (default: now), as a fake would."""
    if at is not None:
        world.sched.run_until(at)
    ios = world.fleet.is_ios(install)
    pt = push_type or ("background" if ios else "data")
    prio = priority if priority is not None else (5 if pt == "background" else 10)
    t = world.sched.now
    n = Notification("apns" if ios else "fcm", "tok", install, f"m{world.ledger.accepted}", t, pt, prio, payload,
                     expiration=expiration, collapse_id=collapse_id,
                     content_available=pt in ("background", "data"), drop_reason=drop_reason)
    world.dispatcher.submit(n)
    return n


def outcome(world: World, n: Notification) -> tuple[str, str | None]:
    rec = world.ledger.records[n.seq]
    return rec.outcome.value, rec.reason
