"""Matching and deciding, sans-IO: a request view and a clock reading in, a `Decision` (or None) out.

Rules are tried in the order they were added; the first one that fires wins and later rules do not
see the request. Each rule owns a `random.Random` seeded from (engine seed, rule id), so the same
seed, the same rules and the same request order give the same faults — and adding a rule never
changes the draws of another.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .rules import SERVICES, Delay, Rule, RuleError, parse_rule

Validator = Callable[[Rule], None]


@dataclass(slots=True)
class RequestView:
    service: str                 # "apns" | "fcm"
    path: str
    token: str | None = None
    app: str | None = None       # APNs topic / FCM app package, when known


@dataclass(slots=True)
class Decision:
    rule: Rule
    delay: float                 # seconds, already sampled
    max_streams: int | None      # max_streams action: the value for this firing
    now: float


def sample_delay(d: Delay, rng: random.Random) -> float:
    if d.kind == "fixed":
        ms = d.a
    elif d.kind == "uniform":
        ms = rng.uniform(d.a, d.b)
    else:
        ms = d.a * math.exp(rng.gauss(0.0, d.b)) if d.a > 0 else 0.0
    return max(0.0, ms) / 1000.0


def app_matches(rule_app: str, app: str | None) -> bool:
    # "com.example.app" also covers its push-type topics ("com.example.app.voip", ...).
    return app is not None and (app == rule_app or app.startswith(rule_app + "."))


class FaultEngine:
    def __init__(self, seed: int = 0, validator: Validator | None = None) -> None:
        self.seed = seed
        self.validator = validator      # checks service-specific parts (reasons) against the fakes
        self.rules: list[Rule] = []
        self._rngs: dict[str, random.Random] = {}
        self._next = 1
        self._wanted: dict[str, bool] = {}        # per service, recomputed when rules change (hot path)
        self._token_needed: dict[str, bool] = {}

    def _reindex(self) -> None:
        self._wanted = {svc: any(r.scope.service in (None, svc) for r in self.rules) for svc in SERVICES}
        self._token_needed = {svc: any(r.scope.service in (None, svc) and (r.scope.tokens is not None or r.scope.app)
                                       for r in self.rules) for svc in SERVICES}

    # rule management ------------------------------------------------------------------------
    def add(self, spec: dict[str, Any], now: float) -> Rule:
        return self.add_many([spec], now)[0]

    def add_many(self, specs: Iterable[Any], now: float) -> list[Rule]:
        """All or nothing: one bad rule and none is added."""
        parsed: list[Rule] = []
        taken = {r.id for r in self.rules}
        n = self._next
        for i, spec in enumerate(specs):
            try:
                rule = parse_rule(spec, rule_id=f"f{n}", now=now)
                if rule.id in taken:
                    raise RuleError(f"rule.id: {rule.id!r} already exists")
                if self.validator is not None:
                    self.validator(rule)
            except RuleError as e:
                raise RuleError(f"rule {i}: {e}" if i else str(e)) from None
            taken.add(rule.id)
            n += 1
            parsed.append(rule)
        self._next = n
        for rule in parsed:
            self._rngs[rule.id] = random.Random(f"{self.seed}/{rule.id}")
            self.rules.append(rule)
        self._reindex()
        return parsed

    def remove(self, rule_id: str) -> bool:
        for i, r in enumerate(self.rules):
            if r.id == rule_id:
                del self.rules[i]
                self._rngs.pop(rule_id, None)
                self._reindex()
                return True
        return False

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def clear(self) -> None:
        self.rules.clear()
        self._rngs.clear()
        self._next = 1
        self._reindex()

    def wants(self, service: str) -> bool:
        """Cheap pre-check for the hot path: could any rule apply to this service?"""
        return self._wanted.get(service, False)

    def needs_token(self, service: str) -> bool:
        """Whether matching needs the token/app (FCM must parse the body to know them)."""
        return self._token_needed.get(service, False)

    # deciding -------------------------------------------------------------------------------
    def decide(self, req: RequestView, now: float) -> Decision | None:
        for rule in self.rules:
            if self._in_scope(rule, req, now) and self._fires(rule):
                rng = self._rngs[rule.id]
                a = rule.action
                delay = sample_delay(a.delay, rng) if a.delay is not None else 0.0
                ms = a.max_streams[(rule.fired - 1) % len(a.max_streams)] if a.max_streams else None
                return Decision(rule, delay, ms, now)
        return None

    @staticmethod
    def _in_scope(rule: Rule, req: RequestView, now: float) -> bool:
        s, t = rule.scope, rule.trigger
        if s.service is not None and s.service != req.service:
            return False
        if s.tokens is not None and req.token not in s.tokens:
            return False
        if s.app is not None and not app_matches(s.app, req.app):
            return False
        if s.path is not None and not req.path.startswith(s.path):
            return False
        if t.not_before is not None and now < t.not_before:
            return False
        if t.not_after is not None and now >= t.not_after:
            return False
        return True

    def _fires(self, rule: Rule) -> bool:
        rule.matched += 1
        t = rule.trigger
        k = rule.matched - t.after
        if k <= 0:
            return False
        if t.first is not None and k > t.first:
            return False
        if t.every is not None and k % t.every:
            return False
        if t.times is not None and rule.fired >= t.times:
            return False
        if t.probability < 1.0 and self._rngs[rule.id].random() >= t.probability:
            return False
        rule.fired += 1
        return True
