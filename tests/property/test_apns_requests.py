"""Any request sequence on one connection → each request gets exactly one documented outcome.

Accepted: 200, empty body, the ledger's accepted count +1. Rejected: a documented reason with its
documented status, the rejected count +1. Never an exception, never a 500, and the accounting
invariant holds after every request.
"""
from __future__ import annotations

import uuid

import orjson
from hypothesis import HealthCheck, event, given, settings, strategies as st

from device_sim.tokens import TokenCodec
from fake_apns import reasons
from fake_apns.auth import KeyStore
from fake_apns.testing import make_jwt, make_push_cert, new_key
from pushsim.config import Config
from pushsim.edge.types import ConnInfo
from pushsim.services.apns import ApnsService
from pushsim.testbed import Testbed

T0 = 1_700_000_000.0
TOPIC = "com.example.app"
TEAM = "TEAMAAAAAA"
_K1, _K2, _K3 = new_key(), new_key(), new_key()
JWTS = [make_jwt(_K1, "KEY1AAAAAA", TEAM, T0), make_jwt(_K1, "KEY1AAAAAA", TEAM, T0 + 1500.5),
        make_jwt(_K1, "KEY1AAAAAA", TEAM, T0 - 4000), make_jwt(_K2, "KEY2AAAAAA", TEAM, T0),
        make_jwt(_K3, "KEY3BBBBBB", "TEAMBBBBBB", T0), make_jwt(_K2, "KEY1AAAAAA", TEAM, T0),
        make_jwt(_K1, "UNKNOWNKEY", TEAM, T0), b"a.b.c", b""]
CERTS = [None, None, make_push_cert([TOPIC, TOPIC + ".voip"]), make_push_cert([TOPIC], ("sandbox",)),
         make_push_cert([TOPIC], ("production",)), b"\x30\x03bad"]
TOKENS = [TokenCodec(0).apns_token(i) for i in range(9)]

uuids = st.uuids().map(lambda u: str(u).encode())


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Valid values most of the time, so that requests get past the early checks and reach the deep ones."""
    return st.one_of(good, good, good, bad)


header_values = {
    b"apns-id": mostly(st.one_of(uuids, uuids.map(bytes.upper)), st.binary(max_size=40)),
    b"apns-topic": mostly(st.sampled_from([TOPIC, TOPIC + ".voip", TOPIC + ".complication",
                                           TOPIC + ".push-type.liveactivity"]).map(str.encode),
                          st.one_of(st.sampled_from([b"com.other.app", b"", b"bad topic"]), st.binary(max_size=20))),
    b"apns-priority": mostly(st.sampled_from([b"10", b"5", b"1"]), st.sampled_from([b"0", b"x", b"", b"05"])),
    b"apns-push-type": mostly(st.sampled_from([b"alert", b"background", b"voip", b"mdm", b"liveactivity",
                                               b"complication"]), st.binary(max_size=10)),
    b"apns-expiration": mostly(st.sampled_from([b"0", b"1700003600"]),
                               st.one_of(st.sampled_from([b"-5", b"soon", b""]),
                                         st.integers(0, 2**70).map(lambda n: str(n).encode()))),
    b"apns-collapse-id": st.text(max_size=70).map(str.encode),
    b"authorization": mostly(st.sampled_from(JWTS).map(lambda j: b"bearer " + j), st.binary(max_size=30)),
}
junk_header = st.one_of(
    st.sampled_from(sorted(header_values)).flatmap(lambda n: header_values[n].map(lambda v: (n, v))),
    st.tuples(st.binary(max_size=12), st.binary(max_size=12)),
)
headers = st.tuples(st.fixed_dictionaries({}, optional=header_values), st.lists(junk_header, max_size=2)).map(
    lambda t: list(t[0].items()) + t[1])
paths = mostly(
    st.sampled_from(TOKENS).map(lambda t: b"/3/device/" + t.encode()),
    st.one_of(st.sampled_from([b"/3/device/", b"/3/device", b"/", b"", b"/3/device/abc",
                               b"/3/device/" + b"0" * 64]), st.binary(max_size=80)),
)
bodies = mostly(
    st.sampled_from([b'{"aps":{"alert":"hi"}}', b'{"aps":{"content-available":1}}', b'{"x":1}',
                     b'{"aps":{"content-available":1,"sound":"x"}}']),
    st.one_of(st.sampled_from([b"", b"[]", b"{"]), st.binary(max_size=64),
              st.sampled_from([4096, 4097, 5120, 5121]).map(lambda n: b'{"aps":{"alert":"' + b"x" * (n - 20) + b'"}}')),
)
COHERENT = [  # push type, topic, body, priority: requests a real sender gets accepted
    (b"alert", TOPIC, b'{"aps":{"alert":"hi"}}', b"10"),
    (b"background", TOPIC, b'{"aps":{"content-available":1}}', b"5"),
    (b"voip", TOPIC + ".voip", b'{"call":1}', b"10"),
    (b"liveactivity", TOPIC + ".push-type.liveactivity", b'{"aps":{"event":"update"}}', b"10"),
    (b"complication", TOPIC + ".complication", b'{"aps":{}}', b"5"),
]
coherent = st.tuples(st.sampled_from(COHERENT), st.sampled_from(TOKENS), uuids, st.sampled_from(JWTS[:3]),
                     st.lists(junk_header, max_size=1)).map(
    lambda t: (b"POST", b"/3/device/" + t[1].encode(),
               [(b"apns-push-type", t[0][0]), (b"apns-topic", t[0][1].encode()), (b"apns-priority", t[0][3]),
                (b"apns-id", t[2]), (b"authorization", b"bearer " + t[3])] + t[4], t[0][2]))
methods = st.sampled_from([b"POST"] * 6 + [b"GET", b"PUT", b""])
request = st.tuples(st.one_of(coherent, st.tuples(methods, paths, headers, bodies)), st.floats(0, 4000)).map(
    lambda t: (*t[0], t[1]))


def world(mode: str, throttle: bool) -> ApnsService:
    testbed = Testbed(Config(devices="ios=5,android=2", mismatch_mode=mode, throttle_on_reject=throttle),
                  now=lambda: clock[0])
    testbed.fleet.add("ios", 1, environment="production")
    testbed.fleet.uninstall(1, 123)
    keys = KeyStore()
    keys.add("KEY1AAAAAA", TEAM, _K1.public_key())
    keys.add("KEY2AAAAAA", TEAM, _K2.public_key(), environments=frozenset({"sandbox"}))
    keys.add("KEY3BBBBBB", "TEAMBBBBBB", _K3.public_key())
    return ApnsService(testbed, keys)


clock = [T0]


def _canonical_uuid(value: bytes) -> bool:
    try:
        return len(value) == 36 and str(uuid.UUID(value.decode())) == value.decode().lower()
    except ValueError:
        return False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["reject", "drop"]), st.booleans(), st.sampled_from(CERTS), st.lists(request, min_size=1, max_size=6))
def test_every_request_has_exactly_one_documented_outcome(mode, throttle, cert, requests):
    clock[0] = T0
    service = world(mode, throttle)
    ledger, journal = service.testbed.ledger, service.testbed.journal
    conn = ConnInfo(tls=True, alpn="h2", http2=True, peer_cert_der=cert)
    conn.state = service.open(conn)
    announced = service.initial_max_streams(conn)
    for method, path, headers, body, dt in requests:
        clock[0] += dt
        accepted, rejected, logged = ledger.accepted, sum(ledger.rejected.values()), journal.next_id
        reply = service.handle(conn, method, path, [(b":method", method), (b":path", path)] + headers, body)
        ledger.check()
        event(f"status {reply.status}")
        assert journal.next_id == logged + 1
        sent_ids = [v for k, v in headers if k == b"apns-id"]
        got_ids = [v for k, v in reply.headers if k == b"apns-id"]
        assert len(got_ids) == 1
        if sent_ids and _canonical_uuid(sent_ids[0]):
            assert got_ids[0] == sent_ids[0]            # echoed byte for byte, whatever the outcome
        else:
            assert _canonical_uuid(got_ids[0]) or got_ids[0] == sent_ids[0]
        if reply.status == 200:
            assert reply.body == b""
            assert (ledger.accepted, sum(ledger.rejected.values())) == (accepted + 1, rejected)
        else:
            body_json = orjson.loads(reply.body)
            reason = body_json["reason"]
            assert reason in reasons.STATUS and reason != "InternalServerError"
            assert reply.status == reasons.STATUS[reason]
            assert set(body_json) == ({"reason", "timestamp"} if reply.status == 410 else {"reason"})
            assert (b"content-type", b"application/json") in reply.headers
            assert (ledger.accepted, sum(ledger.rejected.values())) == (accepted, rejected + 1)
        if reply.max_streams is not None:
            assert reply.max_streams != announced and reply.max_streams in (1, service.limit)
            announced = reply.max_streams
        if throttle:
            assert announced == (service.limit if reply.status == 200 else 1)
        elif reply.status == 200:
            assert announced == service.limit
