"""Scenarios: a fleet, its OS/app settings, traffic and scripted events, in TOML; run in virtual time.

    name = "..."; duration = 86400; [fleet] devices = "ios=1"
    [profile.ios] / [profile.android]   distributions (see profile.PlatformMix)
    [ios] / [android] / [app]           rule settings (see params.py)
    [[traffic]] platform, push_type, priority, per_hour, poisson, expiration, collapse_id, payload, installs,
                arms (send only to installs of these experiment arms)
                strategies: trigger = "content", delay, batch_s, silent_lead_s, max_per_day, quiet_hours,
                only_when_changed (see _Traffic)
    [experiment] arms = { holdout = 0.1, treated = 0.9 }, holdout, mode, seed   (see cohorts.py)
    [content]   updates_per_day, poisson: when the sender publishes new content (see content.py)
    [[events]] at, install, set = {online = false, app_state = "force_quit", open = true, ...}
"""
from __future__ import annotations

import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cohorts import Experiment
from .content import ContentTimeline
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


def run_virtual(scenario: str | Path | dict[str, Any], seed: int, skip_faults: bool = False) -> Summary:
    """Run a scenario in virtual time; the same scenario and seed always give the same digest."""
    return simulate(scenario, seed, skip_faults)[1]


def simulate(scenario: str | Path | dict[str, Any], seed: int, skip_faults: bool = False,
             shard: tuple[int, int] = (0, 1)) -> tuple[World, Summary]:
    """`run_virtual`, keeping the world (for a journal export or an HTML report of the run).

    `shard = (me, workers)`: simulate only the installs with index % workers == me (their traffic
    and scripted events). Installs never affect each other, so each install's outcomes are the
    ones of the whole run, and the shards' experiment moments pool exactly
    (device_sim.lift.merge_moments); the digest is the shard's own (its seq numbers differ)."""
    doc = load(scenario) if isinstance(scenario, (str, Path)) else scenario
    world, start, duration = build_virtual(doc, seed, skip_faults, shard)
    sim, sched = world.device_sim, world.sched
    t0 = time.perf_counter()
    sched.run_until(start + duration)
    wall = time.perf_counter() - t0
    world.ledger.check()
    return world, Summary(str(doc.get("name", "scenario")), seed, duration, outcome_digest(world.ledger),
                          world.ledger.stats(), sim.stats(), sim.events + sched.fired, wall,
                          experiment=sim.experiment_outcomes())


def build_virtual(doc: dict[str, Any], seed: int, skip_faults: bool = False,
                  shard: tuple[int, int] = (0, 1)) -> tuple[World, float, float]:
    """The scenario's world with its traffic and events scheduled, not yet run: (world, start, duration).
    A scenario with `[[faults]]` is refused unless `skip_faults` (the run then has none).
    `shard`: see `simulate`."""
    me, workers = shard
    if not (isinstance(workers, int) and isinstance(me, int) and 0 <= me < workers):
        raise ValueError(f"bad shard {shard!r}: want (me, workers) with 0 <= me < workers")
    start = float(doc.get("start", VIRTUAL_EPOCH))
    duration = float(doc.get("duration", 86_400))
    fleet_doc = doc.get("fleet", {})
    if doc.get("faults") and not skip_faults:
        # Fault rules act on the HTTP edge (status codes, resets, latency), which a virtual run has
        # none of: running without them silently would report a funnel the scenario never meant.
        raise ValueError(f"{len(doc['faults'])} [[faults]] rule(s) act on the HTTP edge, which a virtual run "
                         "has none of: run it with --mode live, or pass --skip-faults to run without them")
    experiment = Experiment.from_dict(doc["experiment"]) if "experiment" in doc else None
    world = World(WorldSettings(devices=str(fleet_doc.get("devices", "ios=1")), seed=seed, clock="virtual",
                                start=start), rules=sim_settings(doc), experiment=experiment)
    sim, sched = world.device_sim, world.sched
    sim.shard = shard
    if sim.cohorts is not None:
        sim.cohorts.shard = shard
    if "content" in doc:
        sim.content = ContentTimeline.from_dict(doc["content"], seed, start, start + duration)
    for i, rule in enumerate(doc.get("traffic", [])):
        _Traffic(world, i, rule, seed, shard).start(start, start + duration)
    for ev in doc.get("events", []):
        if int(ev.get("install", 0)) % workers != me:
            continue
        changes = dict(ev.get("set", {}))
        sched.call_at(start + float(ev["at"]),
                      lambda _a, idx=int(ev.get("install", 0)), ch=changes: sim.set_state(idx, **ch))
    return world, start, duration


class _Traffic:
    """One `[[traffic]]` rule: every tick, one push to each target install.

    Strategy options (docs/experiments.md): `trigger = "content"` ticks on each `[content]` update
    (after `delay` s) instead of `per_hour`; `batch_s` coalesces the updates of a window into one
    tick; `silent_lead_s` sends a silent push that long before each visible one; `max_per_day` caps
    pushes per install per device day; `quiet_hours = [start, end]` skips ticks in those hours
    (device clock, UTC); `only_when_changed` skips installs already sent the current content."""

    def __init__(self, world: World, rule_no: int, rule: dict[str, Any], seed: int,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.world, self.rule_no, self.seed = world, rule_no, seed
        fleet = world.fleet
        platform = rule.get("platform", "ios")
        want = IOS if platform == "ios" else 1
        sel = rule.get("installs", "all")
        if isinstance(sel, list):
            self.targets = [int(i) for i in sel]
        else:
            every = fleet.owned_of(want)
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
        me, workers = shard
        if workers > 1:
            self.targets = [i for i in self.targets if i % workers == me]
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
        self._strategy(rule)

    def _strategy(self, rule: dict[str, Any]) -> None:
        where = f"[[traffic]] #{self.rule_no + 1}"
        self.content = self.world.device_sim.content
        self.trigger = rule.get("trigger", "schedule")
        if self.trigger not in ("schedule", "content"):
            raise ValueError(f"{where} trigger: must be schedule or content, got {self.trigger!r}")
        if self.trigger == "content" and self.content is None:
            raise ValueError(f"{where}: trigger = \"content\" needs a [content] table")

        def seconds(key: str) -> float:
            v = rule.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 30 * 86_400:
                raise ValueError(f"{where} {key}: must be seconds in [0, 2592000], got {v!r}")
            return float(v)
        self.delay, self.batch, self.lead = seconds("delay"), seconds("batch_s"), seconds("silent_lead_s")
        if self.lead and self.push_type not in ("alert", "notification"):
            raise ValueError(f"{where} silent_lead_s: only for visible pushes (alert / notification)")
        cap = rule.get("max_per_day")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"{where} max_per_day: must be an integer >= 1, got {cap!r}")
        self.cap = cap
        quiet = rule.get("quiet_hours")
        if quiet is not None and (not isinstance(quiet, list) or len(quiet) != 2
                                  or not all(isinstance(h, int) and 0 <= h <= 24 for h in quiet)):
            raise ValueError(f"{where} quiet_hours: must be [start_hour, end_hour], got {quiet!r}")
        self.quiet = quiet
        self.only_changed = bool(rule.get("only_when_changed", False))
        if self.only_changed and self.content is None:
            raise ValueError(f"{where}: only_when_changed needs a [content] table")
        self.sent_version = [-1] * len(self.targets)          # content version last sent, per target
        self.day_count = [0] * len(self.targets)
        self.day_of = [-1] * len(self.targets)
        self._batch_due = False

    def start(self, start: float, end: float) -> None:
        self.end = end
        if self.trigger == "content":
            self._await_update(start)
        else:
            self.world.sched.call_at(start + self._gap(), self._tick)

    # timing ------------------------------------------------------------------------------------------
    def _gap(self) -> float:
        if not self.poisson:
            return self.interval
        u = (mix64(self.seed, 1_000_003 + self.rule_no, self.k) >> 11) / 9007199254740992.0
        return -math.log(1.0 - u) * self.interval

    def _await_update(self, after: float) -> None:
        nxt = self.content.next_after(after)
        if nxt is not None and nxt < self.end:
            self.world.sched.call_at(nxt, self._on_update)

    def _on_update(self, _arg: object) -> None:
        t = self.world.sched.now
        if self.batch:
            if not self._batch_due:            # the window's first update opens it; the rest join it
                self._batch_due = True
                self.world.sched.call_at(t + self.delay + self.batch, self._batched)
        else:
            self.world.sched.call_at(t + self.delay, self._send_now)
        self._await_update(t)

    def _batched(self, _arg: object) -> None:
        self._batch_due = False
        self._send_now(None)

    def _tick(self, _arg: object) -> None:
        t = self.world.sched.now
        if t >= self.end:
            return
        self._send_now(None)
        self.world.sched.call_at(t + self._gap(), self._tick)

    # sending -----------------------------------------------------------------------------------------
    def _quiet(self, t: float) -> bool:
        if self.quiet is None:
            return False
        start, end = self.quiet
        hour = int(t % 86_400 // 3600)
        return start <= hour < end if start <= end else (hour >= start or hour < end)

    def _send_now(self, _arg: object) -> None:
        t = self.world.sched.now
        if t >= self.end or self._quiet(t):
            self.k += 1
            return
        version = self.content.version_at(t) if self.content is not None else None
        chosen = []
        for j in range(len(self.targets)):
            if self.only_changed and self.sent_version[j] == version:
                continue
            if self.cap is not None:
                day = int(t // 86_400)
                if self.day_of[j] != day:
                    self.day_of[j], self.day_count[j] = day, 0
                if self.day_count[j] >= self.cap:
                    continue
                self.day_count[j] += 1
            self.sent_version[j] = version if version is not None else -1
            chosen.append(j)
        if self.lead:
            silent = "background" if self.ios else "data"
            self._submit(chosen, t, silent, 5 if self.ios else 10, version, "s")
            self.world.sched.call_at(t + self.lead, self._visible_after_lead, chosen)
        else:
            self._submit(chosen, t, self.push_type, self.priority, version, "")
        self.k += 1

    def _visible_after_lead(self, chosen: list[int]) -> None:
        t = self.world.sched.now
        version = self.content.version_at(t) if self.content is not None else None
        self._submit(chosen, t, self.push_type, self.priority, version, "v")

    def _submit(self, chosen: list[int], t: float, push_type: str, priority: int, version: int | None,
                tag: str) -> None:
        b = self.world
        exp = None if self.expiration is None else (0.0 if float(self.expiration) == 0 else t + float(self.expiration))
        payload = self.payload if push_type == self.push_type else _DEFAULT_PAYLOAD.get(push_type, b"{}")
        body = payload.rstrip()
        if version is not None and body.startswith(b"{") and body.endswith(b"}"):
            # tell the app which content this push is about (app.AppModel.announce reads it)
            payload = body[:-1] + (b',' if body != b"{}" else b"") + b'"content_version":' + str(version).encode() + b"}"
        submit = b.dispatcher.submit
        for j in chosen:
            i = self.targets[j]
            n = Notification(self.service, self.tokens[j], i, f"r{self.rule_no}{tag}-{self.k}-{i}", t, push_type,
                             priority, payload, expiration=exp, collapse_id=self.collapse,
                             content_available=push_type in ("background", "data"))
            submit(n)      # the ledger keeps the note for export; no journal entry in scenario runs


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
