"""Fault rules as data: parse and validate the JSON users send (control API or Python dicts).

A rule is scope (which requests), trigger (which of those, when, how often) and action (what the
fake does instead). Every validation failure is a `RuleError` whose message names the field, so the
control API can answer 400 with something a human can act on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pushsim.edge.types import Fault

SERVICES = ("apns", "fcm")
# Action types are the rule vocabulary; the connection-level ones are the engines' `Fault` kinds.
REPLACING = ("respond", Fault.RST_STREAM, Fault.TCP_RESET, Fault.STALL)   # the service never sees the request
MODIFYING = ("delay", Fault.GOAWAY, "max_streams")                      # the service answers, then this applies
ACTION_TYPES = REPLACING + MODIFYING
DELAY_KINDS = ("fixed", "uniform", "lognormal")


class RuleError(ValueError):
    """A rule the engine cannot accept; the message is meant for the user as is."""


@dataclass(frozen=True, slots=True)
class Scope:
    service: str | None = None                 # "apns" | "fcm"; None = both
    tokens: frozenset[str] | None = None       # device / registration tokens; None = any
    app: str | None = None                     # APNs topic (bundle id, push-type suffix ignored) / FCM package
    path: str | None = None                    # request path prefix, e.g. "/token" for the OAuth endpoint

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.service:
            d["service"] = self.service
        if self.tokens is not None:
            d["tokens"] = sorted(self.tokens)
        if self.app:
            d["app"] = self.app
        if self.path:
            d["path"] = self.path
        return d


@dataclass(frozen=True, slots=True)
class Trigger:
    probability: float = 1.0                   # Toxiproxy's "toxicity": chance a counted match fires
    after: int = 0                             # let the first N matching requests through
    first: int | None = None                   # then fire only on the next N
    every: int | None = None                   # or only on every Nth (N, 2N, ...)
    times: int | None = None                   # never fire more than this many times in all
    not_before: float | None = None            # wall-clock window (absolute epoch seconds)
    not_after: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class Delay:
    kind: str                                  # fixed | uniform | lognormal (WireMock's three)
    a: float                                   # fixed: ms; uniform: lower ms; lognormal: median ms
    b: float = 0.0                             # uniform: upper ms; lognormal: sigma

    def to_json(self) -> dict[str, Any]:
        if self.kind == "fixed":
            return {"fixed_ms": self.a}
        if self.kind == "uniform":
            return {"uniform": {"lower_ms": self.a, "upper_ms": self.b}}
        return {"lognormal": {"median_ms": self.a, "sigma": self.b}}


@dataclass(frozen=True, slots=True)
class Action:
    type: str
    reason: str | None = None                  # respond: APNs reason / FCM errorCode; goaway: debug reason
    status: int | None = None                  # respond: override the status the reason implies
    message: str | None = None                 # respond (FCM): override the error message text
    retry_after: float | None = None           # respond: seconds, sent as given or as an HTTP date
    retry_after_format: str = "seconds"        # "seconds" | "date"
    timestamp_ms: int | None = None            # respond 410 (APNs): fixed timestamp instead of now
    delay: Delay | None = None                 # any action: hold the reply this long first
    answer: bool = True                        # goaway: answer this request, then GOAWAY
    max_streams: tuple[int, ...] = ()          # max_streams: values announced in turn, one per firing

    @property
    def replaces(self) -> bool:
        return self.type in REPLACING or (self.type == "goaway" and not self.answer)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type}
        for k in ("reason", "status", "message", "retry_after", "timestamp_ms"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.retry_after is not None:
            d["retry_after_format"] = self.retry_after_format
        if self.delay is not None:
            d["delay"] = self.delay.to_json()
        if self.type == "goaway":
            d["answer"] = self.answer
        if self.max_streams:
            d["values"] = list(self.max_streams)
        return d


@dataclass(slots=True)
class Rule:
    id: str
    scope: Scope
    trigger: Trigger
    action: Action
    created_at: float
    description: str = ""
    matched: int = 0                           # requests in scope (counted for the trigger)
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description, "scope": self.scope.to_json(),
                "trigger": self.trigger.to_json(), "action": self.action.to_json(),
                "created_at": self.created_at, "matched": self.matched, "fired": self.fired}


# parsing ------------------------------------------------------------------------------------------
def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise RuleError(f"{where}: expected a JSON object, got {type(v).__name__}")
    return v


def _unknown(d: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise RuleError(f"{where}: unknown field(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")


def _num(v: Any, where: str, *, lo: float = 0.0, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        bounds = f"{lo:g}..{hi:g}" if hi != math.inf else f">= {lo:g}"
        raise RuleError(f"{where}: expected a number {bounds}, got {v!r}")
    return float(v)


def _int(v: Any, where: str, *, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise RuleError(f"{where}: expected an integer >= {lo}, got {v!r}")
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v:
        raise RuleError(f"{where}: expected a non-empty string, got {v!r}")
    return v


def parse_scope(raw: Any) -> Scope:
    d = _obj(raw if raw is not None else {}, "scope")
    _unknown(d, {"service", "tokens", "token", "app", "topic", "path"}, "scope")
    service = d.get("service")
    if service is not None and service not in SERVICES:
        raise RuleError(f"scope.service: expected one of {', '.join(SERVICES)}, got {service!r}")
    tokens: frozenset[str] | None = None
    if "token" in d:
        tokens = frozenset([_str(d["token"], "scope.token")])
    if "tokens" in d:
        if not isinstance(d["tokens"], list) or not d["tokens"]:
            raise RuleError("scope.tokens: expected a non-empty list of token strings")
        tokens = (tokens or frozenset()) | frozenset(_str(t, "scope.tokens[]") for t in d["tokens"])
    app = d.get("app", d.get("topic"))
    path = d.get("path")
    return Scope(service=service, tokens=tokens,
                 app=_str(app, "scope.app") if app is not None else None,
                 path=_str(path, "scope.path") if path is not None else None)


def parse_trigger(raw: Any, now: float) -> Trigger:
    d = _obj(raw if raw is not None else {}, "trigger")
    _unknown(d, {"probability", "toxicity", "after", "first", "every", "times", "window"}, "trigger")
    p = d.get("probability", d.get("toxicity", 1.0))
    nb = na = None
    if "window" in d:
        w = _obj(d["window"], "trigger.window")
        _unknown(w, {"start_s", "end_s", "not_before", "not_after"}, "trigger.window")
        if "start_s" in w:
            nb = now + _num(w["start_s"], "trigger.window.start_s")
        if "end_s" in w:
            na = now + _num(w["end_s"], "trigger.window.end_s")
        if "not_before" in w:
            nb = _num(w["not_before"], "trigger.window.not_before")
        if "not_after" in w:
            na = _num(w["not_after"], "trigger.window.not_after")
        if nb is not None and na is not None and na <= nb:
            raise RuleError("trigger.window: the end must come after the start")
    first = _int(d["first"], "trigger.first", lo=1) if "first" in d else None
    every = _int(d["every"], "trigger.every", lo=1) if "every" in d else None
    if first is not None and every is not None:
        raise RuleError("trigger: use either first or every, not both")
    return Trigger(probability=_num(p, "trigger.probability", hi=1.0),
                   after=_int(d.get("after", 0), "trigger.after"), first=first, every=every,
                   times=_int(d["times"], "trigger.times", lo=1) if "times" in d else None,
                   not_before=nb, not_after=na)


def parse_delay(raw: Any, where: str) -> Delay:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return Delay("fixed", _num(raw, where))
    d = _obj(raw, where)
    _unknown(d, {"fixed_ms", "uniform", "lognormal"}, where)
    if len(d) != 1:
        raise RuleError(f"{where}: give exactly one of fixed_ms, uniform, lognormal")
    if "fixed_ms" in d:
        return Delay("fixed", _num(d["fixed_ms"], f"{where}.fixed_ms"))
    if "uniform" in d:
        u = _obj(d["uniform"], f"{where}.uniform")
        _unknown(u, {"lower_ms", "upper_ms"}, f"{where}.uniform")
        lo = _num(u.get("lower_ms"), f"{where}.uniform.lower_ms")
        hi = _num(u.get("upper_ms"), f"{where}.uniform.upper_ms")
        if hi < lo:
            raise RuleError(f"{where}.uniform: upper_ms must be >= lower_ms")
        return Delay("uniform", lo, hi)
    ln = _obj(d["lognormal"], f"{where}.lognormal")
    _unknown(ln, {"median_ms", "sigma"}, f"{where}.lognormal")
    return Delay("lognormal", _num(ln.get("median_ms"), f"{where}.lognormal.median_ms"),
                 _num(ln.get("sigma"), f"{where}.lognormal.sigma", hi=10.0))


_ACTION_FIELDS = {
    "respond": {"reason", "status", "message", "retry_after", "retry_after_format", "timestamp_ms", "delay"},
    "delay": {"delay", "fixed_ms", "uniform", "lognormal"},
    "goaway": {"reason", "answer", "delay"},
    "rst_stream": {"delay"},
    "tcp_reset": {"delay"},
    "stall": set(),
    "max_streams": {"value", "values", "delay"},
}


def parse_action(raw: Any) -> Action:
    d = _obj(raw, "action")
    t = d.get("type")
    if t not in ACTION_TYPES:
        raise RuleError(f"action.type: expected one of {', '.join(ACTION_TYPES)}, got {t!r}")
    _unknown(d, _ACTION_FIELDS[t] | {"type"}, f"action ({t})")
    delay = parse_delay(d["delay"], "action.delay") if "delay" in d else None
    if t == "delay":
        if delay is None:
            inline = {k: d[k] for k in ("fixed_ms", "uniform", "lognormal") if k in d}
            if not inline:
                raise RuleError("action (delay): give fixed_ms, uniform or lognormal")
            delay = parse_delay(inline, "action")
        return Action("delay", delay=delay)
    if t == "respond":
        fmt = d.get("retry_after_format", "seconds")
        if fmt not in ("seconds", "date"):
            raise RuleError(f"action.retry_after_format: expected seconds or date, got {fmt!r}")
        return Action("respond", reason=_str(d.get("reason"), "action.reason"),
                      status=_int(d["status"], "action.status", lo=100) if "status" in d else None,
                      message=_str(d["message"], "action.message") if "message" in d else None,
                      retry_after=_num(d["retry_after"], "action.retry_after") if "retry_after" in d else None,
                      retry_after_format=fmt,
                      timestamp_ms=_int(d["timestamp_ms"], "action.timestamp_ms") if "timestamp_ms" in d else None,
                      delay=delay)
    if t == "goaway":
        answer = d.get("answer", True)
        if not isinstance(answer, bool):
            raise RuleError(f"action.answer: expected true or false, got {answer!r}")
        return Action("goaway", reason=_str(d.get("reason", "Shutdown"), "action.reason"), answer=answer,
                      delay=delay)
    if t == "max_streams":
        vals = d.get("values", [d["value"]] if "value" in d else None)
        if not isinstance(vals, list) or not vals:
            raise RuleError("action (max_streams): give value (an integer) or values (a list of integers)")
        return Action("max_streams", max_streams=tuple(_int(v, "action.values[]") for v in vals), delay=delay)
    return Action(t, delay=delay)


def parse_rule(raw: Any, *, rule_id: str, now: float) -> Rule:
    d = _obj(raw, "rule")
    _unknown(d, {"id", "description", "scope", "trigger", "action"}, "rule")
    if "action" not in d:
        raise RuleError("rule: missing action (e.g. {\"type\": \"respond\", \"reason\": \"TooManyRequests\"})")
    if "id" in d:
        rule_id = _str(d["id"], "rule.id")
    desc = d.get("description", "")
    if not isinstance(desc, str):
        raise RuleError("rule.description: expected a string")
    scope = parse_scope(d.get("scope"))
    action = parse_action(d["action"])
    if action.type == "respond" and scope.service is None:
        raise RuleError("scope.service: a respond action needs service apns or fcm (its reasons differ)")
    return Rule(rule_id, scope, parse_trigger(d.get("trigger"), now), action, now, desc)
