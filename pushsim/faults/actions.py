"""Decisions → `Reply`: what the client sees on the wire when a rule fires.

Error bodies come from the fakes' own builders (passed in as `ErrorBuilders`), so an injected
`Unregistered` or `UNREGISTERED` is byte-for-byte what the fake would send for the real thing.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.utils import formatdate
from typing import Callable

from pushsim.edge.types import Fault, Headers, Reply

from .engine import Decision
from .rules import Rule, RuleError


@dataclass(frozen=True, slots=True)
class ErrorBuilders:
    apns_status: Callable[[str], int | None]                          # reason → its real status, None if unknown
    apns_body: Callable[[str, int | None], bytes]                     # reason, timestamp_ms → JSON body
    fcm_status: Callable[[str], int | None]                           # errorCode → status, None if unknown
    fcm_error: Callable[[str, str | None], tuple[int, bytes, Headers]]   # errorCode, message → status, body, headers

    def validate(self, rule: Rule) -> None:
        a, service = rule.action, rule.scope.service
        if a.type != "respond":
            return
        known = self.apns_status if service == "apns" else self.fcm_status
        if known(a.reason or "") is None:
            what = "APNs reason" if service == "apns" else "FCM error code"
            raise RuleError(f"action.reason: unknown {what} {a.reason!r}")


FAULT_REASONS = {kind: f"fault:{kind.value}" for kind in Fault}     # as the journal and ledger name them


def retry_after_value(seconds: float, fmt: str, now: float) -> bytes:
    if fmt == "date":
        return formatdate(now + seconds, usegmt=True).encode()
    return (str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}").encode()


def header(headers: Headers, name: bytes) -> bytes | None:
    for k, v in headers:
        if k == name:
            return v
    return None


def goaway_debug(reason: str) -> bytes:
    return b'{"reason":"' + reason.replace('"', "").encode() + b'"}'


@dataclass(slots=True)
class Replacement:
    reply: Reply
    status: int          # as journaled: 0 when the client got no HTTP status at all
    reason: str


def replacement(d: Decision, service: str, req_headers: Headers, b: ErrorBuilders) -> Replacement:
    """The reply for a rule whose action stands in for the service's own answer."""
    a = d.rule.action
    if a.type == "respond":
        reason = a.reason or ""
        if service == "apns":
            status = a.status or b.apns_status(reason) or 400
            ts = a.timestamp_ms if a.timestamp_ms is not None else int(d.now * 1000)
            body = b.apns_body(reason, ts if status == 410 else None)
            apns_id = header(req_headers, b"apns-id") or str(uuid.uuid4()).encode()
            headers: Headers = [(b"content-type", b"application/json"), (b"apns-id", apns_id)]
        else:
            status, body, extra = b.fcm_error(reason, a.message)
            status = a.status or status
            headers = [(b"content-type", b"application/json; charset=UTF-8")]
            headers += [(k, v) for k, v in extra if k != b"content-type"
                        and not (k == b"retry-after" and a.retry_after is not None)]
        if a.retry_after is not None:
            headers.append((b"retry-after", retry_after_value(a.retry_after, a.retry_after_format, d.now)))
        return Replacement(Reply(status, headers, body, delay=d.delay), status, reason)
    if a.type == "goaway":     # refuse this stream: GOAWAY before it is answered
        return Replacement(Reply(503, fault=Fault.GOAWAY, goaway=goaway_debug(a.reason or "Shutdown"),
                                 delay=d.delay), 0, FAULT_REASONS[Fault.GOAWAY])
    kind = Fault(a.type)           # rst_stream | tcp_reset | stall: the engine misbehaves, no status
    return Replacement(Reply(503, fault=kind, delay=d.delay), 0, FAULT_REASONS[kind])


def modify(reply: Reply, d: Decision) -> Reply:
    """Apply a modifying action to the service's own reply (delay, GOAWAY after it, SETTINGS swing)."""
    a = d.rule.action
    reply.delay = max(reply.delay, d.delay)
    if a.type == "goaway":
        reply.goaway = goaway_debug(a.reason or "Shutdown")
    elif a.type == "max_streams":
        reply.max_streams = d.max_streams
    return reply
