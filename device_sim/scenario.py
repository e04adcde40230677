"""Scenarios: a fleet, its OS/app settings, traffic and scripted events, in TOML; run in virtual time.

    name = "..."; duration = 86400; [fleet] devices = "ios=1"
    [profile.ios] / [profile.android]   distributions (see profile.PlatformMix)
    [ios] / [android] / [app]           rule settings (see params.py)
    [[traffic]] platform, push_type, priority, per_hour, poisson, expiration, collapse_id, payload, installs,
                arms (send only to installs of these experiment arms)
    [experiment] arms = { holdout = 0.1, treated = 0.9 }, holdout, mode, seed   (see cohorts.py)
    [[events]] at, install, set = {online = false, app_state = "force_quit", open = true, ...}
"""
from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cohorts import Experiment
from .fleet import IOS
from .notification import Notification
from .params import SimParams
from .profile import FleetMix, mix64
from .sim import outcome_digest
from .world import VIRTUAL_EPOCH, World, WorldSettings

_DEFAULT_PAYLOAD = {"background": b'{"aps":{"content-available":1}}',
                    "alert": b'{"aps":{"alert":"hello"}}',
                    "data": b'{"message":{"data":{"k":"v"}}}',
                    "notification": b'{"message":{"notification":{"title":"hi"}}}'}


def load(path: str | Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    doc.setdefault("name", Path(path).stem)
    return doc


def sim_settings(scenario: str | Path | dict[str, Any] | None) -> tuple[SimParams, FleetMix]:
    """The OS/app rule settings and fleet distributions of a scenario (defaults when None)."""
    if scenario is None:
        return SimParams(), FleetMix()
    doc = load(scenario) if isinstance(scenario, (str, Path)) else scenario
    return SimParams.from_dict(doc), FleetMix.from_dict(doc.get("profile", {}))


@dataclass(slots=True)
class Summary:
    name: str
    seed: int
    duration: float
    digest: str
    funnel: dict[str, object]
    metrics: dict[str, object]
    events: int
    wall_seconds: float
    outcomes: list[str] = field(default_factory=list)
    experiment: dict[str, Any] | None = None       # device_sim.lift.outcomes, when the scenario has one

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "seed": self.seed, "duration": self.duration, "digest": self.digest,
                "funnel": self.funnel, "metrics": self.metrics, "events": self.events,
                "wall_seconds": round(self.wall_seconds, 4),
                "events_per_second": round(self.events / self.wall_seconds) if self.wall_seconds else None,
                **({"experiment": self.experiment} if self.experiment is not None else {})}

    def format(self) -> str:
        f = self.funnel
        lines = [f"scenario {self.name}  seed {self.seed}  {self.duration:g} s virtual",
                 f"  accepted   {f['accepted']}", f"  delivered  {f['delivered']}"]
        for title, key in (("dropped", "dropped"), ("pending", "pending")):
            parts = f[key]
            assert isinstance(parts, dict)
            lines.append(f"  {title:<10} {sum(parts.values())}" +
                         ("  (" + ", ".join(f"{k}={v}" for k, v in sorted(parts.items())) + ")" if parts else ""))
        m = self.metrics
        lines.append(f"  receipt rate {m['receipt_rate']}  background {m['background']}")
        lines.append(f"  freshness {m['freshness']}")
        lines.append(f"  events {self.events} in {self.wall_seconds:.3f} s")
        if self.experiment is not None:
            from .lift import format_outcomes
            lines.append(format_outcomes(self.experiment))
        lines.append(f"digest {self.digest}")
        return "\n".join(lines)


def run_virtual(scenario: str | Path | dict[str, Any], seed: int) -> Summary:
    """Run a scenario in virtual time; the same scenario and seed always give the same digest."""
    doc = load(scenario) if isinstance(scenario, (str, Path)) else scenario
    start = float(doc.get("start", VIRTUAL_EPOCH))
    duration = float(doc.get("duration", 86_400))
    fleet_doc = doc.get("fleet", {})
    if doc.get("faults"):
        # Fault rules act on the HTTP edge (status codes, resets, latency), which a virtual run has none of.
        raise ValueError("[[faults]] act on the HTTP edge and a virtual run has none: run it with "
                         "--mode live, or remove the [[faults]] tables")
    experiment = Experiment.from_dict(doc["experiment"]) if "experiment" in doc else None
    world = World(WorldSettings(devices=str(fleet_doc.get("devices", "ios=1")), seed=seed, clock="virtual",
                                start=start), rules=sim_settings(doc), experiment=experiment)
    sim, sched = world.device_sim, world.sched
    for i, rule in enumerate(doc.get("traffic", [])):
        _Traffic(world, i, rule, seed).start(start, start + duration)
    for ev in doc.get("events", []):
        changes = dict(ev.get("set", {}))
        sched.call_at(start + float(ev["at"]),
                      lambda _a, idx=int(ev.get("install", 0)), ch=changes: sim.set_state(idx, **ch))
    t0 = time.perf_counter()
    sched.run_until(start + duration)
    wall = time.perf_counter() - t0
    world.ledger.check()
    return Summary(str(doc.get("name", "scenario")), seed, duration, outcome_digest(world.ledger),
                   world.ledger.stats(), sim.stats(), sim.events + sched.fired, wall,
                   experiment=sim.experiment_outcomes())


class _Traffic:
    """One `[[traffic]]` rule: every tick, one push to each target install."""

    def __init__(self, world: World, rule_no: int, rule: dict[str, Any], seed: int) -> None:
        self.world, self.rule_no, self.seed = world, rule_no, seed
        fleet = world.fleet
        platform = rule.get("platform", "ios")
        want = IOS if platform == "ios" else 1
        sel = rule.get("installs", "all")
        if isinstance(sel, list):
            self.targets = [int(i) for i in sel]
        else:
            every = [i for i in range(len(fleet)) if fleet.platform[i] == want]
            self.targets = every if sel == "all" else every[: int(sel)]
        arms = rule.get("arms")
        if arms is not None:
            exp = world.experiment
            if exp is None:
                raise ValueError(f"[[traffic]] #{rule_no + 1}: arms = {arms!r} but the scenario has no [experiment]")
            unknown = sorted(set(arms) - set(exp.names))
            if unknown:
                raise ValueError(f"[[traffic]] #{rule_no + 1}: unknown arm(s) {', '.join(unknown)}")
            self.targets = [i for i in self.targets if exp.arm_of(i) in arms]
        self.ios = want == IOS
        self.service = rule.get("service", "apns" if self.ios else "fcm")
        self.push_type = rule.get("push_type", "background" if self.ios else "data")
        self.priority = int(rule.get("priority", 5 if self.push_type == "background" else 10))
        self.interval = 3600.0 / float(rule.get("per_hour", 1))
        self.poisson = bool(rule.get("poisson", False))
        self.expiration = rule.get("expiration")
        self.collapse = rule.get("collapse_id")
        payload = rule.get("payload")
        tok = fleet.apns_token if self.service == "apns" else fleet.fcm_token
        self.tokens = [tok(i) or "" for i in self.targets]
        self.payload = payload.encode() if isinstance(payload, str) else _DEFAULT_PAYLOAD.get(self.push_type, b"{}")
        self.k = 0

    def start(self, start: float, end: float) -> None:
        self.end = end
        self.world.sched.call_at(start + self._gap(), self._tick)

    def _gap(self) -> float:
        if not self.poisson:
            return self.interval
        u = (mix64(self.seed, 1_000_003 + self.rule_no, self.k) >> 11) / 9007199254740992.0
        import math
        return -math.log(1.0 - u) * self.interval

    def _tick(self, _arg: object) -> None:
        b = self.world
        t = b.sched.now
        if t >= self.end:
            return
        exp = None if self.expiration is None else (0.0 if float(self.expiration) == 0 else t + float(self.expiration))
        submit = b.dispatcher.submit
        for i, token in zip(self.targets, self.tokens):
            n = Notification(self.service, token, i, f"r{self.rule_no}-{self.k}-{i}", t, self.push_type,
                             self.priority, self.payload, expiration=exp, collapse_id=self.collapse,
                             content_available=self.push_type in ("background", "data"))
            submit(n)      # the ledger keeps the note for export; no journal entry in scenario runs
        self.k += 1
        b.sched.call_at(t + self._gap(), self._tick)


def main(argv: list[str] | None = None) -> int:
    """`python -m device_sim.scenario SCENARIO [--seed S] [--json]` (also `pushsim run --mode virtual`)."""
    import argparse
    import json
    import sys
    ap = argparse.ArgumentParser(prog="python -m device_sim.scenario")
    ap.add_argument("scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        s = run_virtual(args.scenario, args.seed)
    except (OSError, ValueError, KeyError) as e:
        print(f"{args.scenario}: {e}", file=sys.stderr)
        return 2
    print(json.dumps(s.to_json(), indent=2, sort_keys=True) if args.json else s.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
