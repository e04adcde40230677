"""The example sender, tested against pushsim through its pytest plugin only.

From a checkout:   python -m pytest -p pushsim.pytest_plugin examples/
Installed:         python -m pytest examples/          (the plugin loads through its pytest11 entry point)
"""
from __future__ import annotations

from typing import Iterator

import pytest
from sender import Sender


@pytest.fixture
def sender(pushsim) -> Iterator[Sender]:
    tokens = set(pushsim.tokens("ios", limit=5)) | set(pushsim.tokens("android", limit=5))
    s = Sender.from_endpoints(pushsim.endpoints, tokens=tokens, max_wait=5.0)
    yield s
    s.close()


def test_apns_push_is_delivered(pushsim, sender: Sender) -> None:
    token = pushsim.tokens("ios")[0]
    # The default fleet is realistic (offline windows, Low Power Mode, force-quit apps): pin the
    # install's situation so "delivered" is what this test may expect.
    pushsim.set_state(token, online=True, app_state="foreground", low_power=False)
    r = sender.send_apns(token, {"aps": {"alert": "hello"}})
    assert (r.ok, r.attempts) == (True, 1)
    pushsim.wait_for_delivery(token, timeout=5)
    pushsim.assert_request_made(token=token, status=200, count=1)


def test_fcm_push_is_delivered(pushsim, sender: Sender) -> None:
    token = pushsim.tokens("android")[0]
    pushsim.set_state(token, online=True, app_state="foreground", doze=False)
    r = sender.send_fcm(token, {"notification": {"title": "hello"}})
    assert r.ok, r
    pushsim.wait_for_delivery(token, timeout=5)


def test_429_with_retry_after_is_retried_after_the_wait(pushsim, sender: Sender) -> None:
    token, other = pushsim.tokens("ios")[:2]
    pushsim.set_state(token, online=True, app_state="foreground", low_power=False)   # see above
    pushsim.add_fault(scope={"service": "apns", "tokens": [token]}, trigger={"first": 1},
                      action={"type": "respond", "reason": "TooManyRequests", "retry_after": 1})
    r = sender.send_apns(token, {"aps": {"alert": "retry me"}})
    assert (r.ok, r.attempts) == (True, 2)
    first, second = pushsim.journal(token=token)
    assert (first["status"], first["reason"]) == (429, "TooManyRequests")
    assert second["status"] == 200
    assert second["t"] - first["t"] >= 0.9            # the sender waited for Retry-After
    # only that token was hit
    assert sender.send_apns(other, {"aps": {"alert": "x"}}).attempts == 1
    pushsim.wait_for_delivery(token, timeout=5)


def test_fcm_503_with_http_date_retry_after(pushsim, sender: Sender) -> None:
    token = pushsim.tokens("android")[0]
    pushsim.add_fault(scope={"service": "fcm", "tokens": [token]}, trigger={"first": 2},
                      action={"type": "respond", "reason": "UNAVAILABLE", "retry_after": 1,
                              "retry_after_format": "date"})
    r = sender.send_fcm(token, {"data": {"k": "v"}})
    assert (r.ok, r.attempts) == (True, 3)
    pushsim.assert_request_made(token=token, status=503, reason="UNAVAILABLE", count=2)


def test_unregistered_apns_token_is_cleaned_up(pushsim, sender: Sender) -> None:
    token = pushsim.tokens("ios")[1]
    pushsim.add_fault(scope={"service": "apns", "tokens": [token]},
                      action={"type": "respond", "reason": "Unregistered"})
    r = sender.send_apns(token, {"aps": {"alert": "bye"}})
    assert r.removed and r.status == 410 and token not in sender.tokens


def test_uninstalled_android_app_token_is_cleaned_up(pushsim, sender: Sender) -> None:
    token = pushsim.tokens("android")[1]
    pushsim.uninstall(token)
    r = sender.send_fcm(token, {"data": {"k": "v"}})
    assert (r.status, r.reason, r.removed) == (404, "UNREGISTERED", True)
    assert token not in sender.tokens


def test_the_sender_is_conformant(pushsim, sender: Sender) -> None:
    """The conformance report (docs/report.md): no error-level finding for this sender's traffic,
    a retry after a 503 and a dead token included."""
    ios, android = pushsim.tokens("ios", limit=2), pushsim.tokens("android", limit=1)
    pushsim.add_fault(scope={"service": "apns", "tokens": [ios[0]]}, trigger={"first": 1},
                      action={"type": "respond", "reason": "ServiceUnavailable"})
    assert sender.send_apns(ios[0], {"aps": {"alert": "hello"}}).ok
    assert sender.send_fcm(android[0], {"notification": {"title": "hello"}}).ok
    pushsim.uninstall(ios[1])
    assert sender.send_apns(ios[1], {"aps": {"alert": "bye"}}).removed
    assert ios[1] not in sender.tokens          # dropped after the 410: never sent to again
    report = pushsim.assert_conformant(fail_on="error")
    assert report["summary"]["requests"] >= 4
