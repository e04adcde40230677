"""The example sender's retry and clean-up logic, against an httpx MockTransport (no server)."""
from __future__ import annotations

import json
import sys
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from sender import Sender, parse_retry_after  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402


def test_parse_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(formatdate(now + 12, usegmt=True), now) == pytest.approx(12.0)
    assert parse_retry_after(formatdate(now - 50, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def make_sender(handler, tokens: set[str]) -> tuple[Sender, list[float]]:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    slept: list[float] = []
    s = Sender(apns_url="https://apns.test", apns_topic="com.example.app", apns_key_pem=ec_pem,
               apns_key_id="KEY0000001", apns_team_id="TEAM000001", fcm_url="https://fcm.test",
               fcm_project_id="p", fcm_service_account={"client_email": "a@b", "token_uri": "https://fcm.test/token",
                                                        "private_key": rsa_pem, "private_key_id": "k1"},
               tokens=tokens, sleep=slept.append)
    s.http = httpx.Client(transport=httpx.MockTransport(handler))
    return s, slept


def test_apns_retries_after_429_with_the_same_apns_id() -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers["apns-id"])
        if len(seen) == 1:
            return httpx.Response(429, headers={"retry-after": "2"}, json={"reason": "TooManyRequests"})
        return httpx.Response(200)
    s, slept = make_sender(handler, {"t"})
    r = s.send_apns("t", {"aps": {"alert": "x"}})
    assert (r.ok, r.attempts, slept) == (True, 2, [2.0])
    assert seen[0] == seen[1]


def test_apns_410_removes_the_token_without_retrying() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(410, json={"reason": "Unregistered", "timestamp": 1})
    s, slept = make_sender(handler, {"t", "u"})
    r = s.send_apns("t", {"aps": {}})
    assert r.removed and r.reason == "Unregistered" and s.tokens == {"u"} and len(calls) == 1 and slept == []


def test_fcm_unregistered_removed_and_503_backs_off_until_give_up() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/token":
            return httpx.Response(200, json={"access_token": "at", "expires_in": 3599})
        assert req.headers["authorization"] == "Bearer at"
        tok = json.loads(req.content)["message"]["token"]
        if tok == "dead":
            return httpx.Response(404, json={"error": {"code": 404, "status": "NOT_FOUND",
                                                       "details": [{"errorCode": "UNREGISTERED"}]}})
        return httpx.Response(503, json={"error": {"code": 503, "status": "UNAVAILABLE"}})
    s, slept = make_sender(handler, {"dead", "busy"})
    r = s.send_fcm("dead", {"data": {"k": "v"}})
    assert r.removed and r.reason == "UNREGISTERED" and s.tokens == {"busy"}
    r = s.send_fcm("busy", {"data": {"k": "v"}})
    assert (r.ok, r.status, r.reason, r.attempts) == (False, 503, "UNAVAILABLE", 4)
    assert slept == [0.2, 0.4, 0.8]


def test_retry_after_beyond_max_wait_gives_up_at_once() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "3600"}, json={"reason": "TooManyRequests"})
    s, slept = make_sender(handler, {"t"})
    r = s.send_apns("t", {"aps": {}})
    assert (r.ok, r.attempts, slept) == (False, 1, [])


def test_transport_errors_are_retried() -> None:
    n = []

    def handler(req: httpx.Request) -> httpx.Response:
        n.append(1)
        if len(n) < 3:
            raise httpx.RemoteProtocolError("reset")
        return httpx.Response(200)
    s, slept = make_sender(handler, {"t"})
    assert s.send_apns("t", {"aps": {}}).attempts == 3 and slept == [0.2, 0.4]
