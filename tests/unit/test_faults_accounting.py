"""Property: under any mix of fault rules, the real ApnsService journals every request exactly once,
never accepts a request a fault replaced, and the ledger's accounting invariant holds."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from fake_apns.auth import KeyStore
from fake_apns.testing import make_jwt, new_key
from pushsim.config import Config
from pushsim.edge.types import ConnInfo
from pushsim.faults import FaultingService
from pushsim.services.apns import ApnsService
from pushsim.testbed import Testbed

NOW = 1_700_000_000.0

ACTIONS = st.sampled_from([
    {"type": "respond", "reason": "TooManyRequests", "retry_after": 1},
    {"type": "respond", "reason": "Unregistered"},
    {"type": "rst_stream"}, {"type": "tcp_reset"}, {"type": "stall"},
    {"type": "goaway", "answer": False}, {"type": "goaway"},
    {"type": "delay", "fixed_ms": 5}, {"type": "max_streams", "values": [1, 500]},
])
RULES = st.lists(st.fixed_dictionaries({
    "scope": st.just({"service": "apns"}),
    "trigger": st.fixed_dictionaries({}, optional={"probability": st.floats(0, 1), "every": st.integers(1, 3),
                                                   "after": st.integers(0, 3)}),
    "action": ACTIONS}), max_size=4)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), rules=RULES, targets=st.lists(st.integers(0, 3), min_size=1, max_size=30))
def test_every_request_journaled_once_and_ledger_balanced(seed: int, rules: list, targets: list[int]) -> None:
    testbed = Testbed(Config(devices="ios=4", seed=seed, clock="virtual"), now=lambda: NOW)
    key = new_key()
    keys = KeyStore()
    keys.add("KEY0000001", "TEAM000001", key.public_key())
    svc = FaultingService(ApnsService(testbed, keys), "apns", testbed.faults)   # as the server serves it
    testbed.faults.add_many(rules)
    conn = ConnInfo(tls=False, alpn=None, http2=True)
    conn.state = svc.open(conn)
    auth = b"bearer " + make_jwt(key, "KEY0000001", "TEAM000001", NOW)
    replaced = 0
    for i in targets:
        token = testbed.fleet.apns_token(i).encode()
        headers = [(b":method", b"POST"), (b":path", b"/3/device/" + token), (b"authorization", auth),
                   (b"apns-topic", b"com.example.app"), (b"apns-push-type", b"alert")]
        before = testbed.ledger.accepted
        r = svc.handle(conn, b"POST", b"/3/device/" + token, headers, b'{"aps":{"alert":"x"}}')
        if r.fault is not None or r.status != 200:
            assert testbed.ledger.accepted == before         # nothing a fault replaced was accepted
            replaced += r.fault is not None
    testbed.dispatcher.flush()
    assert len(testbed.journal.entries) == len(targets)
    assert testbed.ledger.accepted + sum(testbed.ledger.rejected.values()) == len(targets)
    testbed.ledger.check()
