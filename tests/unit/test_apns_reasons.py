"""Every rejection the fake APNs can produce: one row per reason, asserting status, body and apns-id echo."""
from __future__ import annotations

from typing import Callable

import orjson
import pytest

from fake_apns import reasons
from pushsim.edge.types import Reply
from fake_apns.testing import make_jwt
from test_apns_world import OTHER_TEAM, T0, TEAM, TOPIC, UNINSTALLED_MS, World, header

SENT_ID = "4e1f9b1c-2a3d-4c5e-8f70-0123456789ab"


def sized(n: int) -> bytes:
    """A JSON alert payload of exactly n bytes."""
    head, tail = b'{"aps":{"alert":"', b'"}}'
    return head + b"x" * (n - len(head) - len(tail)) + tail


def second_token(w: World, first: str, second: str) -> Reply:
    c = w.conn()
    assert w.send(c, auth=w.jwt(first), id=SENT_ID).status == 200
    return w.send(c, auth=w.jwt(second), id=SENT_ID)


def refresh_too_soon(w: World) -> Reply:
    c = w.conn()
    assert w.send(c, id=SENT_ID).status == 200
    w.clock.t += 60
    return w.send(c, auth=w.jwt(iat=w.clock.t), id=SENT_ID)


def internal_error(w: World) -> Reply:
    def boom(token: str) -> int:
        raise RuntimeError("fleet is on fire")
    w.testbed.fleet.resolve_apns = boom  # type: ignore[method-assign]
    return w.send(w.conn(), id=SENT_ID)


Row = tuple[str, str, Callable[[World], Reply]]
ROWS: list[Row] = [
    ("bad apns-id", "BadMessageId", lambda w: w.send(w.conn(), id="not-a-uuid")),
    ("GET", "MethodNotAllowed", lambda w: w.send(w.conn(), method=b"GET", id=SENT_ID)),
    ("other path", "BadPath", lambda w: w.send(w.conn(), path=b"/3/devices/abcd", id=SENT_ID)),
    ("empty token", "MissingDeviceToken", lambda w: w.send(w.conn(), path=b"/3/device/", id=SENT_ID)),
    ("non-hex token", "BadDeviceToken", lambda w: w.send(w.conn(), path=b"/3/device/zz11", id=SENT_ID)),
    ("odd-length hex token", "BadDeviceToken", lambda w: w.send(w.conn(), path=b"/3/device/abc", id=SENT_ID)),
    ("unknown token", "BadDeviceToken", lambda w: w.send(w.conn(), path=b"/3/device/" + b"ab" * 32, id=SENT_ID)),
    ("other environment", "BadDeviceToken", lambda w: w.send(w.conn(), install=w.other_env_install, id=SENT_ID)),
    ("repeated header", "DuplicateHeaders",
     lambda w: w.send(w.conn(), headers=w.headers(auth=w.jwt(), id=SENT_ID) + [(b"apns-topic", TOPIC.encode())])),
    ("no topic, token auth", "MissingTopic", lambda w: w.send(w.conn(), topic=None, id=SENT_ID)),
    ("no topic, multi-topic cert", "MissingTopic", lambda w: w.send(w.cert_conn(), topic=None, id=SENT_ID)),
    ("malformed topic", "BadTopic", lambda w: w.send(w.conn(), topic="com example", id=SENT_ID)),
    ("collapse id 66 UTF-8 bytes", "BadCollapseId", lambda w: w.send(w.conn(), collapse_id="é" * 33, id=SENT_ID)),
    ("priority 7", "BadPriority", lambda w: w.send(w.conn(), priority="7", id=SENT_ID)),
    ("background at priority 10", "BadPriority",
     lambda w: w.send(w.conn(), push_type="background", priority="10", body=b'{"aps":{"content-available":1}}',
                      id=SENT_ID)),
    ("unknown push type", "InvalidPushType", lambda w: w.send(w.conn(), push_type="banner", id=SENT_ID)),
    ("voip to the bundle topic", "InvalidPushType", lambda w: w.send(w.conn(), push_type="voip", id=SENT_ID)),
    ("alert to the .voip topic", "InvalidPushType",
     lambda w: w.send(w.conn(), push_type="alert", topic=TOPIC + ".voip", id=SENT_ID)),
    ("background with an alert", "InvalidPushType",
     lambda w: w.send(w.conn(), push_type="background", priority="5", id=SENT_ID)),
    ("expiration not a number", "BadExpirationDate", lambda w: w.send(w.conn(), expiration="tomorrow", id=SENT_ID)),
    ("garbage client cert", "BadCertificate", lambda w: w.send(w.conn(b"\x30\x03junk"), id=SENT_ID)),
    ("production-only cert", "BadCertificateEnvironment",
     lambda w: w.send(w.cert_conn(envs=("production",)), id=SENT_ID)),
    ("cert without the topic", "TopicDisallowed",
     lambda w: w.send(w.cert_conn(["com.other.app"]), id=SENT_ID)),
    ("key restricted to other topics", "TopicDisallowed",
     lambda w: w.send(w.conn(), auth=w.jwt("ktopic"), id=SENT_ID)),
    ("no authorization, no cert", "MissingProviderToken", lambda w: w.send(w.conn(), auth=None, id=SENT_ID)),
    ("signed by another key", "InvalidProviderToken",
     lambda w: w.send(w.conn(), auth=make_jwt(w.pk["k2"], w.kid["k1"], TEAM, T0), id=SENT_ID)),
    ("unknown kid", "InvalidProviderToken",
     lambda w: w.send(w.conn(), auth=make_jwt(w.pk["k1"], "UNKNOWNKEY", TEAM, T0), id=SENT_ID)),
    ("alg other than ES256", "InvalidProviderToken",
     lambda w: w.send(w.conn(), auth=make_jwt(w.pk["k1"], w.kid["k1"], TEAM, T0, alg="ES384"), id=SENT_ID)),
    ("iss is not the key's team", "InvalidProviderToken",
     lambda w: w.send(w.conn(), auth=make_jwt(w.pk["k1"], w.kid["k1"], OTHER_TEAM, T0), id=SENT_ID)),
    ("not a JWT", "InvalidProviderToken", lambda w: w.send(w.conn(), auth=b"hello.world", id=SENT_ID)),
    ("basic instead of bearer", "MissingProviderToken",
     lambda w: w.send(w.conn(), headers=w.headers(id=SENT_ID) + [(b"authorization", b"basic abc")])),
    ("iat one hour and one second old", "ExpiredProviderToken",
     lambda w: w.send(w.conn(), auth=w.jwt(iat=T0 - 3601), id=SENT_ID)),
    ("iat in the future", "InvalidProviderToken",
     lambda w: w.send(w.conn(), auth=w.jwt(iat=T0 + 3600), id=SENT_ID)),
    ("another key of the team", "UnrelatedKeyIdInToken", lambda w: second_token(w, "k1", "k2")),
    ("another team", "InvalidProviderToken", lambda w: second_token(w, "k1", "k3")),
    ("key of the other environment", "BadEnvironmentKeyInToken",
     lambda w: w.send(w.conn(), auth=w.jwt("kenv"), id=SENT_ID)),
    ("new token within 20 minutes", "TooManyProviderTokenUpdates", refresh_too_soon),
    ("token of another app", "DeviceTokenNotForTopic",
     lambda w: w.send(w.conn(), install=w.other_app_install, id=SENT_ID)),
    ("uninstalled", "Unregistered", lambda w: w.send(w.conn(), install=1, id=SENT_ID)),
    ("empty body", "PayloadEmpty", lambda w: w.send(w.conn(), body=b"", id=SENT_ID)),
    ("4097-byte alert", "PayloadTooLarge", lambda w: w.send(w.conn(), body=sized(4097), id=SENT_ID)),
    ("5121-byte voip", "PayloadTooLarge",
     lambda w: w.send(w.conn(), push_type="voip", topic=TOPIC + ".voip", body=sized(5121), id=SENT_ID)),
    ("internal failure", "InternalServerError", internal_error),
]


@pytest.mark.parametrize("case,reason,make", ROWS, ids=[r[0] for r in ROWS])
def test_rejection(case: str, reason: str, make: Callable[[World], Reply]) -> None:
    w = World()
    reply = make(w)
    assert reply.status == reasons.STATUS[reason], (case, reply)
    body = orjson.loads(reply.body)
    assert body["reason"] == reason
    assert header(reply, b"content-type") == b"application/json"
    sent = b"not-a-uuid" if reason == "BadMessageId" else SENT_ID.encode()
    assert header(reply, b"apns-id") == sent
    if reply.status == 410:
        assert body == {"reason": reason, "timestamp": UNINSTALLED_MS}
    else:
        assert set(body) == {"reason"}
    assert header(reply, b"apns-unique-id") is None
    assert w.testbed.ledger.accepted == w.accepted_before
    assert w.testbed.ledger.rejected[reason] >= 1
    last = w.testbed.journal.entries[-1]
    assert (last.status, last.reason, last.message_id) == (reply.status, reason, sent.decode())


def test_every_documented_reason_has_its_documented_status():
    assert len(reasons.DOCUMENTED) == 32
    by_status: dict[int, set[str]] = {}
    for r in reasons.DOCUMENTED:
        by_status.setdefault(reasons.STATUS[r], set()).add(r)
    assert by_status[404] == {"BadPath"} and by_status[405] == {"MethodNotAllowed"}
    assert by_status[410] == {"ExpiredToken", "Unregistered"}
    assert by_status[429] == {"TooManyProviderTokenUpdates", "TooManyRequests"}
    assert by_status[503] == {"ServiceUnavailable", "Shutdown"}
    assert len(by_status[400]) == 14 and len(by_status[403]) == 8
    assert reasons.STATUS[reasons.ENV_KEY_WIRE] == 403


def test_rows_cover_every_reason_the_pipeline_can_produce():
    produced = {r[1] for r in ROWS}
    # These come from elsewhere: fault injection, connection management, shutdown.
    not_from_validation = {"IdleTimeout", "Forbidden", "ExpiredToken", "TooManyRequests", "ServiceUnavailable",
                           "Shutdown", reasons.ENV_KEY_DOC}
    assert produced == (set(reasons.STATUS) - not_from_validation)


def test_environment_key_reason_can_use_the_documented_spelling():
    w = World(extra={"apns_env_key_reason": "doc"})
    from pushsim.services.apns import ApnsService
    w.service = ApnsService(w.testbed, w.keys)
    reply = w.send(w.conn(), auth=w.jwt("kenv"))
    assert (reply.status, orjson.loads(reply.body)) == (403, {"reason": "BadEnvironmentKeyIdInToken"})


def test_closing_reason_is_shutdown_json():
    assert orjson.loads(World().service.closing_reason()) == {"reason": "Shutdown"}


def test_bad_apns_id_with_unsafe_bytes_is_not_echoed():
    w = World()
    reply = w.send(w.conn(), id="bad id\t")
    assert orjson.loads(reply.body) == {"reason": "BadMessageId"}
    generated = header(reply, b"apns-id")
    assert generated is not None and generated != b"bad id\t" and len(generated) == 36
