"""fake_apns.provider.decide() driven directly: request + clock reading → decision, no pushsim, no fleet."""
from __future__ import annotations

import pytest

from fake_apns.auth import KeyStore
from fake_apns.connection import ApnsConnection
from fake_apns.provider import Decision, Rules, Target, decide
from fake_apns.testing import make_jwt, new_key

NOW = 1_800_000_000.0
TOKEN = "ab" * 32
OTHER_ENV = "cd" * 32
GONE = "ef" * 32
KEY = new_key()
TARGETS = {TOKEN: Target(0, "com.example.app", "sandbox", None),
           OTHER_ENV: Target(1, "com.example.app", "production", None),
           GONE: Target(2, "com.example.app", "sandbox", 1_799_000_000_000)}


@pytest.fixture
def rules() -> Rules:
    keys = KeyStore()
    keys.add("KEY1234567", "TEAM123456", KEY.public_key())
    return Rules(keys, TARGETS.get)


def _send(rules: Rules, token: str = TOKEN, body: bytes = b'{"aps":{"alert":"hi"}}', **headers: str) -> Decision:
    hdrs = [(b"authorization", b"bearer " + make_jwt(KEY, "KEY1234567", "TEAM123456", NOW - 10)),
            (b"apns-topic", b"com.example.app")]
    hdrs += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return decide(ApnsConnection(None, 1000), b"POST", b"/3/device/" + token.encode(), hdrs, body, NOW, rules)


def test_an_alert_is_accepted_with_what_the_device_side_needs(rules: Rules) -> None:
    d = _send(rules, apns_priority="5", apns_expiration="1800000100", apns_collapse_id="c1")
    assert d.reason is None and d.auth_ok
    assert (d.install, d.push_type, d.priority, d.expiration, d.collapse_id) == (0, "alert", 5, 1_800_000_100.0, "c1")


def test_a_silent_push_without_push_type_is_inferred_background(rules: Rules) -> None:
    d = _send(rules, body=b'{"aps":{"content-available":1}}', apns_priority="5")
    assert d.reason is None and d.push_type == "background" and d.content_available


def test_registry_answers_follow_auth(rules: Rules) -> None:
    assert _send(rules, OTHER_ENV).reason == "BadDeviceToken"          # a production token on sandbox
    gone = _send(rules, GONE)
    assert gone.reason == "Unregistered" and gone.timestamp == 1_799_000_000_000
    assert _send(rules, "00" * 32).reason == "BadDeviceToken"          # never issued


def test_syntax_errors_come_before_auth(rules: Rules) -> None:
    assert _send(rules, "xyz").reason == "BadDeviceToken"
    assert _send(rules, apns_priority="7").reason == "BadPriority"
    d = decide(ApnsConnection(None, 1000), b"POST", b"/3/device/" + TOKEN.encode(),
               [(b"apns-topic", b"com.example.app")], b"{}", NOW, rules)
    assert d.reason == "MissingProviderToken" and not d.auth_ok


def test_background_with_priority_10_follows_the_mismatch_mode(rules: Rules) -> None:
    body = b'{"aps":{"content-available":1}}'
    assert _send(rules, body=body, apns_push_type="background", apns_priority="10").reason == "BadPriority"
    rules.mismatch_mode = "drop"
    d = _send(rules, body=body, apns_push_type="background", apns_priority="10")
    assert d.reason is None and d.drop_reason == "background-priority-10"


def test_payload_limits(rules: Rules) -> None:
    assert _send(rules, body=b"").reason == "PayloadEmpty"
    assert _send(rules, body=b'{"aps":{"alert":"' + b"x" * 4096 + b'"}}').reason == "PayloadTooLarge"
