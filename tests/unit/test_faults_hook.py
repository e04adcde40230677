"""Decisions → replies, and the service hook: journaled, counted, and modifiers wrap the real answer."""
from __future__ import annotations

import json
from email.utils import parsedate_to_datetime

import pytest
from faults_standins import BUILDERS

from device_sim.journal import Journal
from device_sim.ledger import Ledger
from pushsim.edge.types import ConnInfo, Reply
from pushsim.faults import FaultingService, Faults, RuleError

NOW = 1_700_000_000.0
TOK = "ab" * 32
APNS_PATH = f"/3/device/{TOK}".encode()
HDRS = [(b":method", b"POST"), (b":path", APNS_PATH), (b"apns-topic", b"com.example.app"),
        (b"apns-id", b"0f8e4a3c-1111-2222-3333-444455556666")]


class EchoService:
    """Stand-in service: answers 200 and journals it, the way the real ones do. It knows nothing
    of faults: `call()` puts it behind a FaultingService, as the server does."""

    def __init__(self, faults: Faults, name: str = "apns") -> None:
        self.faults, self.name, self.calls = faults, name, 0

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: list, body: bytes) -> Reply:
        self.calls += 1
        self.faults.journal.add(NOW, self.name, "POST", path.decode(), None, 200, None, "m")
        return Reply(200, [(b"apns-id", b"x")])


@pytest.fixture
def faults() -> Faults:
    return Faults(seed=7, journal=Journal(), ledger=Ledger(), now=lambda: NOW, builders=BUILDERS)


def call(svc: EchoService, path: bytes = APNS_PATH, headers: list = HDRS, body: bytes = b"{}") -> Reply:
    return FaultingService(svc, svc.name, svc.faults).handle(ConnInfo(tls=True, alpn="h2", http2=True), b"POST", path, headers, body)


def test_no_rules_passes_through_and_active_tracks_rules(faults: Faults) -> None:
    svc = EchoService(faults)
    assert call(svc).status == 200 and svc.calls == 1 and not faults.active
    rule = faults.add({"action": {"type": "stall"}})
    assert faults.active
    faults.remove(rule.id)
    assert not faults.active


def test_apns_429_with_retry_after_echoes_apns_id_and_is_journaled(faults: Faults) -> None:
    faults.add({"scope": {"service": "apns", "tokens": [TOK]}, "trigger": {"first": 1},
                "action": {"type": "respond", "reason": "TooManyRequests", "retry_after": 3}})
    svc = EchoService(faults)
    r = call(svc)
    assert r.status == 429 and json.loads(r.body) == {"reason": "TooManyRequests"}
    h = dict(r.headers)
    assert h[b"apns-id"] == b"0f8e4a3c-1111-2222-3333-444455556666" and h[b"retry-after"] == b"3"
    assert h[b"content-type"] == b"application/json"
    assert svc.calls == 0
    e = faults.journal.entries[-1]
    assert (e.service, e.token, e.status, e.reason) == ("apns", TOK, 429, "TooManyRequests")
    assert faults.ledger.rejected["TooManyRequests"] == 1
    assert call(svc).status == 200                        # first: 1 → the retry goes through
    assert faults.list()[0].fired == 1


def test_410_carries_timestamp_ms_and_date_retry_after(faults: Faults) -> None:
    faults.add({"scope": {"service": "apns"}, "action": {"type": "respond", "reason": "Unregistered"}})
    body = json.loads(call(EchoService(faults)).body)
    assert body == {"reason": "Unregistered", "timestamp": int(NOW * 1000)}
    faults.clear()
    faults.add({"scope": {"service": "fcm"}, "action": {"type": "respond", "reason": "UNAVAILABLE",
                                                        "retry_after": 30, "retry_after_format": "date"}})
    r = call(EchoService(faults, "fcm"), b"/v1/projects/p/messages:send")
    assert r.status == 503
    when = parsedate_to_datetime(dict(r.headers)[b"retry-after"].decode())
    assert when.timestamp() == NOW + 30


def test_fcm_token_scope_reads_the_body(faults: Faults) -> None:
    faults.add({"scope": {"service": "fcm", "tokens": ["tokA"]},
                "action": {"type": "respond", "reason": "UNREGISTERED"}})
    svc = EchoService(faults, "fcm")
    path = b"/v1/projects/p/messages:send"
    assert call(svc, path, [], json.dumps({"message": {"token": "tokB"}}).encode()).status == 200
    r = call(svc, path, [], json.dumps({"message": {"token": "tokA"}}).encode())
    assert r.status == 404 and json.loads(r.body)["error"]["status"] == "UNREGISTERED"
    assert call(svc, path, [], b"not json").status == 200
    assert faults.journal.entries[-2].token == "tokA"


@pytest.mark.parametrize("kind", ["rst_stream", "tcp_reset", "stall"])
def test_connection_faults_replace_and_journal_without_status(faults: Faults, kind: str) -> None:
    faults.add({"action": {"type": kind}})
    r = call(EchoService(faults))
    assert r.fault == kind
    e = faults.journal.entries[-1]
    assert (e.status, e.reason) == (0, f"fault:{kind}")


def test_goaway_before_or_after_answering(faults: Faults) -> None:
    faults.add({"trigger": {"first": 1}, "action": {"type": "goaway", "reason": "Shutdown", "answer": False}})
    faults.add({"action": {"type": "goaway", "reason": "IdleTimeout"}})
    svc = EchoService(faults)
    r = call(svc)
    assert r.fault == "goaway" and r.goaway == b'{"reason":"Shutdown"}' and svc.calls == 0
    r = call(svc)
    assert r.status == 200 and r.fault is None and r.goaway == b'{"reason":"IdleTimeout"}' and svc.calls == 1


def test_modifiers_wrap_the_service_answer(faults: Faults) -> None:
    faults.add({"trigger": {"first": 1}, "action": {"type": "delay", "fixed_ms": 300}})
    faults.add({"action": {"type": "max_streams", "values": [1, 500]}})
    svc = EchoService(faults)
    r = call(svc)
    assert (r.status, r.delay, r.max_streams) == (200, 0.3, None)
    assert [call(svc).max_streams for _ in range(3)] == [1, 500, 1]
    assert svc.calls == 4 and len(faults.journal.entries) == 4     # journaled once each, by the service


def test_unknown_reason_is_rejected_at_rule_time(faults: Faults) -> None:
    with pytest.raises(RuleError, match="unknown APNs reason 'Nope'"):
        faults.add({"scope": {"service": "apns"}, "action": {"type": "respond", "reason": "Nope"}})
    with pytest.raises(RuleError, match="unknown FCM error code"):
        faults.add({"scope": {"service": "fcm"}, "action": {"type": "respond", "reason": "Unregistered"}})
    assert faults.list() == []


def test_fcm_builder_headers_kept_unless_retry_after_given(faults: Faults) -> None:
    faults.add({"scope": {"service": "fcm"}, "trigger": {"first": 1},
                "action": {"type": "respond", "reason": "QUOTA_EXCEEDED"}})
    faults.add({"scope": {"service": "fcm"}, "action": {"type": "respond", "reason": "QUOTA_EXCEEDED",
                                                        "retry_after": 5}})
    svc = EchoService(faults, "fcm")
    h1 = call(svc, b"/v1/projects/p/messages:send").headers
    h2 = call(svc, b"/v1/projects/p/messages:send").headers
    assert [v for k, v in h1 if k == b"retry-after"] == [b"60"]
    assert [v for k, v in h2 if k == b"retry-after"] == [b"5"]


def test_a_modifying_rule_lets_the_service_answer_exactly_once(faults: Faults) -> None:
    faults.add({"action": {"type": "delay", "fixed_ms": 250}})
    svc = EchoService(faults)
    r = call(svc)
    assert r.status == 200 and r.delay == 0.25 and svc.calls == 1
    assert len(faults.journal.entries) == 1                  # journaled by the service alone


def test_the_wrapper_passes_the_connection_calls_through(faults: Faults) -> None:
    class Inner(EchoService):
        def open(self, conn: ConnInfo) -> object:
            return "state"

        def initial_max_streams(self, conn: ConnInfo) -> int | None:
            return 7

        def closing_reason(self) -> bytes:
            return b"bye"

    wrapped = FaultingService(Inner(faults), "apns", faults)
    conn = ConnInfo(tls=False, alpn=None, http2=True)
    assert (wrapped.open(conn), wrapped.initial_max_streams(conn), wrapped.closing_reason()) == ("state", 7, b"bye")


def test_the_journal_notes_connection_sender_retry_after_and_goaway_for_the_report(faults: Faults) -> None:
    class State:      # what a service keeps per connection (ApnsConnection has these two)
        id, sender = 7, "TEAM/KEY"
    conn = ConnInfo(tls=True, alpn="h2", http2=True, state=State())
    svc = EchoService(faults)
    faults.add({"scope": {"service": "apns"}, "trigger": {"first": 1},
                "action": {"type": "respond", "reason": "TooManyRequests", "retry_after": 3}})
    FaultingService(svc, "apns", faults).handle(conn, b"POST", APNS_PATH, HDRS, b"{}")
    e = faults.journal.entries[-1]
    assert (e.status, e.conn, e.sender, e.retry_after, e.goaway) == (429, 7, "TEAM/KEY", 3.0, False)
    assert e.headers is HDRS and e.body == b"{}"
    faults.clear()
    faults.add({"scope": {"service": "apns"}, "trigger": {"first": 1}, "action": {"type": "goaway"}})
    FaultingService(svc, "apns", faults).handle(conn, b"POST", APNS_PATH, HDRS, b"{}")
    assert faults.journal.entries[-1].goaway is True
