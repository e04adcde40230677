"""The fault rules of one server, and what they say about one request (`Faults.consult`).

`FaultingService` (service.py) asks before the service it wraps sees a request. A replacing action
(respond, RST_STREAM, TCP reset, stall, GOAWAY before answering) comes back as the `Reply`, journaled
and counted as a rejection here, like any response. A modifying action (delay, GOAWAY after
answering, a MAX_CONCURRENT_STREAMS swing) comes back as a `Modifier`: the service answers (and
journals and counts that itself), then the wrapper applies it to the service's reply.
"""
from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterable

import orjson

from pushsim.edge.types import Headers, Reply

from .actions import ErrorBuilders, modify, replacement
from .engine import Decision, FaultEngine, RequestView
from .rules import Rule

APNS_PREFIX = b"/3/device/"


class Modifier:
    """A fired modifying rule: changes the service's own reply (delay, GOAWAY after, SETTINGS swing)."""
    __slots__ = ("decision",)

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    def __call__(self, reply: Reply) -> Reply:
        return modify(reply, self.decision)


class Faults:
    def __init__(self, *, seed: int = 0, journal: Any = None, ledger: Any = None, fleet: Any = None,
                 now: Callable[[], float] = time.time, builders: ErrorBuilders | None = None) -> None:
        self.journal, self.ledger, self.fleet, self.now = journal, ledger, fleet, now
        self._builders = builders
        self.engine = FaultEngine(seed, validator=self._validate)
        self.active = False      # a plain attribute: the services' hot path checks it before calling in
        # told (service, seconds) for each reply a rule holds back: the response-latency histogram
        # of /metrics (pushsim/metrics.py), the only latency the fakes add on purpose
        self.on_delay: Callable[[str, float], None] | None = None

    @property
    def builders(self) -> ErrorBuilders:
        if self._builders is None:
            from .errors import default_builders   # the fakes, imported only once a rule needs them
            self._builders = default_builders()
        return self._builders

    def _validate(self, rule: Rule) -> None:
        if rule.action.type == "respond":
            self.builders.validate(rule)

    # Python API (the control API and the pytest plugin use these) ---------------------------
    def add(self, spec: dict[str, Any]) -> Rule:
        return self.add_many([spec])[0]

    def add_many(self, specs: Iterable[Any]) -> list[Rule]:
        rules = self.engine.add_many(specs, self.now())
        self.active = bool(self.engine.rules)
        return rules

    def remove(self, rule_id: str) -> bool:
        found = self.engine.remove(rule_id)
        self.active = bool(self.engine.rules)
        return found

    def list(self) -> list[Rule]:
        return list(self.engine.rules)

    def clear(self) -> None:
        self.engine.clear()
        self.active = False

    # the hook -------------------------------------------------------------------------------
    def consult(self, service_name: str, method: bytes, path: bytes, headers: Headers,
                body: bytes, conn: ConnInfo | None = None) -> Reply | Modifier | None:
        """None: no rule fires, the service answers alone. A `Reply`: the answer instead of the
        service's (already journaled and counted). A `Modifier`: apply it to the service's answer."""
        if not self.engine.rules or not self.engine.wants(service_name):
            return None
        now = self.now()
        view = self._view(service_name, path, headers, body)
        d = self.engine.decide(view, now)
        if d is None:
            return None
        if d.delay > 0 and self.on_delay is not None:
            self.on_delay(service_name, d.delay)
        if not d.rule.action.replaces:
            return Modifier(d)
        rep = replacement(d, service_name, headers, self.builders)
        if self.journal is not None:
            reply = rep.reply
            state = conn.state if conn is not None else None   # the service's connection state, if any yet
            self.journal.add(now, service_name, method.decode("latin-1"), view.path, view.token,
                             rep.status, rep.reason, None, None, getattr(state, "id", None),
                             getattr(state, "sender", None), headers, body,
                             _retry_after(reply.headers), reply.goaway is not None)
        if self.ledger is not None:
            self.ledger.reject(rep.reason)
        return rep.reply

    def mark_goaway(self) -> None:
        """A Modifier put a GOAWAY on the reply the service just journaled (handle is synchronous,
        so it is the newest entry): note it for the report's apns.goaway-ignored rule."""
        if self.journal is not None and self.journal.entries:
            self.journal.entries[-1].goaway = True

    def _view(self, service_name: str, path: bytes, headers: Headers, body: bytes) -> RequestView:
        spath = path.decode("latin-1")
        view = RequestView(service_name, spath)
        if service_name == "apns":
            if path.startswith(APNS_PREFIX):
                view.token = spath[len(APNS_PREFIX):].split("?", 1)[0] or None
            for k, v in headers:
                if k == b"apns-topic":
                    view.app = v.decode("latin-1")
                    break
        elif self.engine.needs_token(service_name) and body:
            view.token, view.app = self._fcm_target(body)
        return view

    def _fcm_target(self, body: bytes) -> tuple[str | None, str | None]:
        try:
            msg = orjson.loads(body).get("message") or {}
            token = msg.get("token") or msg.get("fid")
            app = (msg.get("android") or {}).get("restricted_package_name")
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            return None, None
        if not isinstance(token, str):
            return None, None
        if app is None and self.fleet is not None:
            i = self.fleet.resolve_fcm(token)
            if i is not None:
                a = self.fleet.app_of(i)
                app = a.bundle_id if self.fleet.platform_of(i) == "ios" else a.package
        return token, app if isinstance(app, str) else None


def _retry_after(headers: Headers) -> float | None:
    """The reply's Retry-After in seconds (delta-seconds or an HTTP date), for the journal."""
    for name, value in headers:
        if name != b"retry-after":
            continue
        if value.isdigit():
            return float(int(value))
        try:
            return max(0.0, parsedate_to_datetime(value.decode("latin-1")).timestamp() - time.time())
        except (TypeError, ValueError, IndexError):
            return None
    return None
