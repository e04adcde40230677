"""The glue between the services and the fault engine: one call at the top of `Service.handle()`.

    if self.testbed.faults.active:
        r = self.testbed.faults.intercept("apns", self, conn, method, path, headers, body)
        if r is not None:
            return r

A replacing action (respond, RST_STREAM, TCP reset, stall, GOAWAY before answering) is journaled and
counted as a rejection here, like any response. A modifying action (delay, GOAWAY after answering,
a MAX_CONCURRENT_STREAMS swing) lets the service answer — `intercept` calls `handle()` again with
itself switched off — and then changes that reply, so the service journals and counts it itself.
"""
from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterable

import orjson

from pushsim.edge.types import ConnInfo, Headers, Reply

from .actions import ErrorBuilders, modify, replacement
from .engine import FaultEngine, RequestView
from .rules import Rule

APNS_PREFIX = b"/3/device/"


class Faults:
    def __init__(self, *, seed: int = 0, journal: Any = None, ledger: Any = None, fleet: Any = None,
                 now: Callable[[], float] = time.time, builders: ErrorBuilders | None = None) -> None:
        self.journal, self.ledger, self.fleet, self.now = journal, ledger, fleet, now
        self._builders = builders
        self.engine = FaultEngine(seed, validator=self._validate)
        self._inside = False
        self.active = False      # a plain attribute: the services' hot path checks it before calling in

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
    def intercept(self, service_name: str, service: Any, conn: ConnInfo, method: bytes, path: bytes,
                  headers: Headers, body: bytes) -> Reply | None:
        if self._inside or not self.engine.rules or not self.engine.wants(service_name):
            return None
        now = self.now()
        view = self._view(service_name, path, headers, body)
        d = self.engine.decide(view, now)
        if d is None:
            return None
        if d.rule.action.replaces:
            rep = replacement(d, service_name, headers, self.builders)
            if self.journal is not None:
                reply = rep.reply
                state = conn.state    # the service's connection state, if it made one yet
                self.journal.add(now, service_name, method.decode("latin-1"), view.path, view.token,
                                 rep.status, rep.reason, None, None, getattr(state, "id", None),
                                 getattr(state, "sender", None), headers, body,
                                 _retry_after(reply.headers), reply.goaway is not None)
            if self.ledger is not None:
                self.ledger.reject(rep.reason)
            return rep.reply
        self._inside = True
        try:
            reply = service.handle(conn, method, path, headers, body)
        finally:
            self._inside = False
        reply = modify(reply, d)
        if reply.goaway is not None and self.journal is not None and self.journal.entries:
            # The service journaled this request just now (handle is synchronous): mark the GOAWAY.
            self.journal.entries[-1].goaway = True
        return reply

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
