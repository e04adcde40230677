"""ApnsService: what an accepted request becomes, journal and ledger, ids, stream limits, mismatch modes."""
from __future__ import annotations

import uuid

import orjson
import pytest

from device_sim.notification import Outcome
from test_apns_reasons import sized
from test_apns_world import T0, TOPIC, World, header, reason_of

SENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def test_accepted_request_becomes_one_notification():
    w = World()
    body = b'{"aps":{"content-available":1},"k":"v"}'
    reply = w.send(w.conn(), body=body, id=SENT_ID, push_type="background", priority="5",
                   expiration=str(int(T0) + 600), collapse_id="grp-é")
    assert (reply.status, reply.body) == (200, b"")
    assert header(reply, b"apns-id") == SENT_ID.encode()
    assert header(reply, b"content-type") is None
    led = w.testbed.ledger
    assert led.accepted == 1 and led.delivered == 1       # DeliverAtOnce settles synchronously
    note = led.records[0].note
    assert (note.service, note.token, note.install, note.message_id) == ("apns", w.token(0), 0, SENT_ID)
    assert (note.push_type, note.priority, note.expiration) == ("background", 5, T0 + 600)
    assert (note.collapse_id, note.payload, note.content_available) == ("grp-é", body, True)
    assert note.received_at == T0 and note.drop_reason is None
    entry = w.testbed.journal.entries[-1]
    assert (entry.service, entry.method, entry.status, entry.reason, entry.token) == ("apns", "POST", 200, None, w.token(0))
    assert entry.note is note and entry.message_id == SENT_ID


def test_defaults_and_expiration_zero():
    w = World()
    assert w.send(w.conn(), expiration="0").status == 200
    assert w.send(w.conn()).status == 200
    first, second = (w.testbed.ledger.records[i].note for i in (0, 1))
    assert first.expiration == 0.0 and second.expiration is None
    assert (second.priority, second.push_type, second.collapse_id) == (10, "alert", None)


@pytest.mark.parametrize("topic,body,expected", [
    (TOPIC, b'{"aps":{"content-available":1}}', "background"),
    (TOPIC, b'{"aps":{"alert":"x","content-available":1}}', "alert"),
    (TOPIC + ".voip", b'{"x":1}', "voip"),
    (TOPIC + ".push-type.liveactivity", b'{"aps":{"event":"update"}}', "liveactivity"),
])
def test_push_type_is_inferred_when_the_header_is_absent(topic, body, expected):
    w = World()
    assert w.send(w.conn(), topic=topic, body=body, priority="5").status == 200
    assert w.testbed.ledger.records[0].note.push_type == expected


def test_generated_ids_are_distinct_lowercase_uuids_and_unique_ids_only_in_sandbox():
    w = World()
    c = w.conn()
    ids = set()
    for _ in range(50):
        reply = w.send(c)
        apns_id = header(reply, b"apns-id")
        unique = header(reply, b"apns-unique-id")
        assert apns_id is not None and unique is not None
        assert str(uuid.UUID(apns_id.decode())) == apns_id.decode()      # canonical lowercase
        assert str(uuid.UUID(unique.decode())) == unique.decode() and unique != apns_id
        ids.add(apns_id)
    assert len(ids) == 50
    prod = World(environment="production")
    assert header(prod.send(prod.conn()), b"apns-unique-id") is None
    assert header(prod.send(prod.conn(), path=b"/3/device/"), b"apns-unique-id") is None


def test_apns_id_is_echoed_byte_for_byte_even_in_upper_case():
    w = World()
    upper = SENT_ID.upper()
    assert header(w.send(w.conn(), id=upper), b"apns-id") == upper.encode()
    assert w.testbed.ledger.records[0].note.message_id == upper


@pytest.mark.parametrize("push_type,topic,size", [("alert", TOPIC, 4096), ("voip", TOPIC + ".voip", 5120)])
def test_payload_size_limits_are_inclusive(push_type, topic, size):
    w = World()
    assert w.send(w.conn(), push_type=push_type, topic=topic, body=sized(size)).status == 200
    assert reason_of(w.send(w.conn(), push_type=push_type, topic=topic, body=sized(size + 1))) == "PayloadTooLarge"


def test_collapse_id_limit_counts_utf8_bytes():
    w = World()
    assert w.send(w.conn(), collapse_id="é" * 32).status == 200       # 64 bytes
    assert w.send(w.conn(), collapse_id="x" * 64).status == 200
    assert reason_of(w.send(w.conn(), collapse_id="x" * 65)) == "BadCollapseId"


@pytest.mark.parametrize("priority", ["10", "5", "1"])
def test_documented_priorities_are_accepted(priority):
    w = World()
    assert w.send(w.conn(), priority=priority).status == 200
    assert w.testbed.ledger.records[0].note.priority == int(priority)


def test_token_auth_stream_limit_opens_after_the_first_valid_token():
    w = World(max_streams=777)
    c = w.conn()
    assert w.service.initial_max_streams(c) == 1 and c.state.max_streams == 1
    assert w.send(c, auth=b"nope").max_streams is None
    assert w.send(c, method=b"GET").max_streams is None
    first = w.send(c, install=w.other_app_install)        # valid token, rejected for another reason
    assert (reason_of(first), first.max_streams) == ("DeviceTokenNotForTopic", 777)
    assert w.send(c).max_streams is None


def test_cert_connection_starts_at_the_full_limit():
    w = World(max_streams=321)
    c = w.cert_conn()
    assert w.service.initial_max_streams(c) == 321
    assert w.send(c).max_streams is None


def test_throttle_on_reject_drops_to_one_and_recovers_on_acceptance():
    w = World(max_streams=500, throttle_on_reject=True)
    c = w.conn()
    assert w.send(c).max_streams == 500
    assert w.send(c, priority="9").max_streams == 1
    assert w.send(c, priority="9").max_streams is None
    assert w.send(c).max_streams == 500
    assert w.send(c).max_streams is None


def test_drop_mode_accepts_mismatches_and_the_device_side_drops_them():
    w = World(mismatch_mode="drop")
    silent = b'{"aps":{"content-available":1}}'
    cases = [
        (dict(push_type="background", priority="10", body=silent), "background-priority-10"),
        (dict(push_type="voip"), "push-type-topic-mismatch"),
        (dict(push_type="background", priority="5"), "push-type-payload-mismatch"),
        (dict(push_type="alert", body=silent), "push-type-payload-mismatch"),
    ]
    for kw, reason in cases:
        assert w.send(w.conn(), **kw).status == 200, kw
    notes = [w.testbed.ledger.records[i] for i in range(len(cases))]
    assert [r.note.drop_reason for r in notes] == [r for _, r in cases]
    assert all(r.outcome is Outcome.DROPPED for r in notes)
    assert w.testbed.ledger.dropped == {"background-priority-10": 1, "push-type-topic-mismatch": 1,
                                      "push-type-payload-mismatch": 2}


def test_non_json_body_is_accepted_but_never_delivered():
    w = World()
    assert w.send(w.conn(), body=b"hello").status == 200
    rec = w.testbed.ledger.records[0]
    assert (rec.outcome, rec.reason) == (Outcome.DROPPED, "payload-not-json-object")


def test_install_lookup_is_cached_but_uninstall_is_seen_at_once():
    w = World()
    calls: list[str] = []
    real = w.testbed.fleet.resolve_apns
    w.testbed.fleet.resolve_apns = lambda t: calls.append(t) or real(t)  # type: ignore[method-assign]
    c = w.conn()
    for _ in range(10):
        assert w.send(c).status == 200
    assert len(calls) == 1
    w.testbed.fleet.uninstall(0, 1234)
    reply = w.send(c)
    assert reply.status == 410 and orjson.loads(reply.body) == {"reason": "Unregistered", "timestamp": 1234}


def test_uppercase_hex_token_reaches_the_same_install():
    w = World()
    assert w.send(w.conn(), path=b"/3/device/" + w.token(0).upper().encode()).status == 200
    assert w.testbed.ledger.records[0].note.install == 0


def test_handle_tolerates_a_connection_without_state():
    w = World()
    c = w.conn()
    c.state = None
    assert w.send(c).status == 200


def test_journal_records_rejections_with_their_token():
    w = World()
    w.send(w.conn(), install=1, id=SENT_ID)
    e = w.testbed.journal.entries[-1]
    assert (e.status, e.reason, e.token, e.message_id, e.note) == (410, "Unregistered", w.token(1), SENT_ID, None)
    assert w.testbed.ledger.stats()["rejected"] == {"Unregistered": 1}
