"""The journal's richer entries: filters, count, redaction, and the byte budget for headers and bodies."""
from __future__ import annotations

import pytest

from device_sim.journal import HEADER_LIMIT, Journal, redacted_headers
from device_sim.notification import Notification

H = [(b":path", b"/3/device/aa"), (b"authorization", b"bearer SECRET"), (b"apns-push-type", b"background"),
     (b"apns-priority", b"5"), (b"apns-collapse-id", b"c1"), (b"apns-expiration", b"0")]


def test_filters_and_count() -> None:
    j = Journal()
    j.add(1.0, "apns", "POST", "/p", "aa", 200, None, "m1", Notification("apns", "aa", 0, "m1", 1.0, "alert", 10, b"{}"),
          conn=1, sender="T/K", headers=H)
    j.add(2.0, "apns", "POST", "/p", "bb", 410, "Unregistered", "m2", conn=2, sender="T/K", headers=H, body=b"{}")
    j.add(3.0, "fcm", "POST", "/f", "cc", 404, "UNREGISTERED", None, conn=1, sender="sa@x")
    assert [e.id for e in j.query(status="410")] == [1]
    assert [e.id for e in j.query(reason="ok")] == [0]
    assert [e.id for e in j.query(push_type="alert")] == [0]            # accepted: from the notification
    assert [e.id for e in j.query(push_type="background")] == [1]       # rejected: from its headers
    assert [e.id for e in j.query(sender="T/K", connection="1")] == [0]
    assert j.count(service="fcm") == 1 and j.count() == 3 and j.count(since=2) == 1
    with pytest.raises(ValueError, match="unknown filter.*bogus.*known: token"):
        j.query(bogus="1")
    with pytest.raises(ValueError, match="status must be an integer"):
        j.count(status="x")


def test_output_redacts_authorization_and_bounds_headers() -> None:
    j = Journal()
    e = j.add(1.0, "apns", "POST", "/p", "aa", 400, "BadTopic", "m", conn=3, sender="T/K", headers=H, body=b'{"a":1}')
    d = e.to_json(detail=True)
    assert ["authorization", "<redacted>"] in d["headers"] and "SECRET" not in str(d)
    assert (d["push_type"], d["priority"], d["collapse_id"], d["expiration"]) == ("background", 5, "c1", 0.0)
    assert d["size"] == 7 and d["payload"] == '{"a":1}' and len(str(d["digest"])) == 16
    assert "headers" not in e.to_json()                       # the page view stays small
    many = [(b"x-h", b"v" * 100)] * 100
    shown = redacted_headers(many)
    assert sum(len(n) + len(v) for n, v in shown[:-1]) <= HEADER_LIMIT and shown[-1] == ["...", "truncated"]


def test_headers_and_bodies_stay_within_the_byte_budget() -> None:
    j = Journal(limit=1000, detail_budget=10_000)
    body = b"x" * 1000
    for i in range(50):
        j.add(float(i), "apns", "POST", "/p", "aa", 400, "BadTopic", None, headers=H, body=body)
    assert j.detail_bytes <= 10_000
    kept = [e for e in j.entries if e.body is not None]
    assert 0 < len(kept) < 50 and kept == list(j.entries)[-len(kept):]      # the newest keep theirs
    old = j.entries[0]
    assert old.body is None and old.headers is None and old.to_json(True)["status"] == 400
    # more entries than the journal holds: the detail queue never outgrows the journal
    small = Journal(limit=10, detail_budget=1 << 30)
    for i in range(100):
        small.add(float(i), "fcm", "POST", "/f", None, 200, None, None, headers=[], body=b"")
    assert len(small._detailed) <= 10
