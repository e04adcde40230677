"""Pure pieces of the locust load tests: provider-token refresh, gates, shapes, token ranges, SSE."""
from __future__ import annotations

import random

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from loadtests import device_side, fleet
from loadtests.auth import MIN_REFRESH_S, ProviderTokens
from loadtests.events_stream import Waiters, parse_sse_line
from loadtests.gates import GATE_EXIT_CODE, Thresholds, Totals, evaluate, exit_code
from loadtests.shapes import Ramp, Soak, Spike, make_plan


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _key() -> tuple[bytes, ec.EllipticCurvePublicKey]:
    k = ec.generate_private_key(ec.SECP256R1())
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    return pem, k.public_key()


def test_provider_token_is_an_es256_jwt_apns_accepts() -> None:
    pem, pub = _key()
    clock = Clock()
    tokens = ProviderTokens(pem, "ABCDE12345", "TEAM123456", clock=clock)
    header = tokens.header()
    assert header.startswith("bearer ")
    raw = header.removeprefix("bearer ")
    assert jwt.get_unverified_header(raw)["kid"] == "ABCDE12345"
    assert jwt.get_unverified_header(raw)["alg"] == "ES256"
    claims = jwt.decode(raw, pub, algorithms=["ES256"], options={"verify_iat": False})
    assert claims == {"iss": "TEAM123456", "iat": int(clock.t)}


@given(seed=st.integers(0, 2**32), steps=st.lists(st.floats(1, 600), min_size=1, max_size=60),
       expiries=st.lists(st.booleans(), min_size=60, max_size=60))
def test_refresh_stays_in_apples_window(seed: int, steps: list[float], expiries: list[bool]) -> None:
    pem = _PEM
    clock = Clock()
    tokens = ProviderTokens(pem, "K", "T", clock=clock, rng=random.Random(seed))
    issued_at = [clock.t]
    last = tokens.token()
    for step, force in zip(steps, expiries):
        clock.t += step
        if force:
            tokens.expire()
        tok = tokens.token()
        if tok != last:
            issued_at.append(clock.t)
            last = tok
    gaps = [b - a for a, b in zip(issued_at, issued_at[1:])]
    # Never two new tokens within 20 min; without a forced refresh never sooner than 30 min.
    assert all(g >= MIN_REFRESH_S for g in gaps)
    # And never older than 50 min while in use (a step is at most 10 min).
    assert all(g <= 50 * 60 + 600 for g in gaps)


_PEM = _key()[0]


def test_expire_is_refused_for_a_young_token() -> None:
    clock = Clock()
    tokens = ProviderTokens(_PEM, "K", "T", clock=clock)
    first = tokens.token()
    clock.t += 19 * 60
    assert tokens.expire() is False and tokens.token() == first
    clock.t += 2 * 60
    assert tokens.expire() is True
    clock.t += 1    # iat is whole seconds: make the new token differ
    assert tokens.token() != first and tokens.issued_count == 2


def test_gates() -> None:
    ok = Totals(requests=1000, failures=0, p95_ms=40, rps=500)
    assert evaluate(Thresholds(), ok) == []                       # no gate configured: no verdict
    th = Thresholds(max_fail_ratio=0.01, max_p95_ms=50, min_rps=100)
    assert evaluate(th, ok) == [] and exit_code([]) == 0
    bad = evaluate(th, Totals(requests=1000, failures=20, p95_ms=80, rps=50))
    assert len(bad) == 3 and exit_code(bad) == GATE_EXIT_CODE
    assert any("no requests" in v for v in evaluate(Thresholds(max_fail_ratio=1.0), Totals(0, 0, 0, 0)))
    assert evaluate(Thresholds(max_fail_ratio=0.02), Totals(1000, 20, 0, 1)) == []   # boundary passes


def test_device_side_gates() -> None:
    th = Thresholds(min_receipt_rate=0.9, max_findings=0)
    assert th.active
    assert evaluate(th, Totals(10, 0, 1, 1, receipt_rate=0.95, error_findings=0)) == []
    bad = evaluate(th, Totals(10, 0, 1, 1, receipt_rate=0.5, error_findings=2))
    assert bad == ["receipt rate 0.5000 < 0.9", "2 error-level conformance finding(s) > 0"]
    unknown = evaluate(th, Totals(10, 0, 1, 1))      # pushsim not reachable: the gate fails, saying why
    assert len(unknown) == 2 and all("unknown" in v for v in unknown)


def test_device_side_summary_and_html_section(tmp_path) -> None:
    data = {"stats": {"accepted": 10, "delivered": 8, "dropped": {"expired": 1}, "pending": {"queued": 1},
                      "rejected": {}},
            "report": {"summary": {"findings": {"error": 1, "warning": 0, "info": 0}},
                       "metrics": {"fleet": {"receipt_rate": 0.8, "background_success_rate": None}},
                       "findings": [{"severity": "error", "rule": "apns.x", "count": 3, "title": "<t>"}]},
            "errors": []}
    s = device_side.summary(data)
    assert s["receipt_rate"] == 0.8 and s["error_findings"] == 1 and s["accepted"] == 10
    assert device_side.summary({"stats": None, "report": None, "errors": ["/stats: refused"]})["receipt_rate"] is None
    page = tmp_path / "r.html"
    page.write_text("<html><body><div id=root></div></body></html>")
    section = device_side.html_section(s, data["report"]["findings"])
    assert device_side.add_to_html(page, section) and device_side.add_to_html(page, section)
    text = page.read_text()
    assert text.count(device_side.MARKER) == 1 and text.index("pushsim: what") < text.index("</body>")
    assert "dropped: expired" in text and "&lt;t&gt;" in text
    assert not device_side.add_to_html(tmp_path / "missing.html", section)


@given(users=st.integers(1, 500), duration=st.floats(1, 3600), t=st.floats(0, 4000),
       name=st.sampled_from(["ramp", "spike", "soak"]))
def test_shapes_stay_within_peak_and_stop_at_duration(users: int, duration: float, t: float, name: str) -> None:
    plan = make_plan(name, users=users, duration=duration)
    got = plan.tick(t)
    if t >= duration:
        assert got is None
    else:
        assert got is not None and 0 <= got[0] <= users and got[1] > 0


def test_ramp_climbs_in_stairs_then_holds() -> None:
    ramp = Ramp(users=100, duration=100, ramp_s=50, steps=5)
    seen = [ramp.tick(t)[0] for t in range(0, 100, 5)]
    assert seen == sorted(seen) and seen[0] == 20 and seen[-1] == 100
    assert len(set(seen)) == 5


def test_spike_and_soak_profiles() -> None:
    spike = Spike(users=100, duration=90, base=10, at_s=30, length_s=30)
    assert [spike.tick(t)[0] for t in (0, 29, 30, 59, 60, 89)] == [10, 10, 100, 100, 10, 10]
    soak = Soak(users=40, duration=3600, warmup_s=60)
    assert soak.tick(0) == soak.tick(3599) and soak.tick(0)[0] == 40 and soak.tick(3600) is None
    with pytest.raises(ValueError):
        make_plan("stairs", users=1, duration=1)


@given(total=st.integers(0, 10_000), parts=st.integers(1, 16))
def test_split_range_is_a_disjoint_cover(total: int, parts: int) -> None:
    covered: list[int] = []
    for i in range(parts):
        off, n = fleet.split_range(total, parts, i)
        covered += range(off, off + n)
    assert covered == list(range(total))
    sizes = [fleet.split_range(total, parts, i)[1] for i in range(parts)]
    assert max(sizes) - min(sizes) <= 1


class FakeAdmin:
    """Stands in for httpx against `/devices` paging (the real API is tested live)."""

    def __init__(self, n: int) -> None:
        self.tokens = [f"{i:064x}" for i in range(n)]
        self.calls: list[dict] = []

    def get(self, url: str, params: dict):
        self.calls.append(params)
        page = self.tokens[params["offset"]:params["offset"] + params["limit"]]
        body = {"devices": [{"token": t, "platform": params["platform"]} for t in page], "total": len(self.tokens)}

        class R:
            def raise_for_status(self) -> None: ...
            def json(self) -> dict: return body
        return R()


def test_fetch_tokens_pages_through_its_range() -> None:
    admin = FakeAdmin(2500)
    got = fleet.fetch_tokens(admin, "http://x", "ios", 700, 1500)
    assert got == admin.tokens[700:2200]
    assert len(admin.calls) == 2 and admin.calls[1]["offset"] == 1700
    assert fleet.fetch_tokens(admin, "http://x", "ios", 2400, 500) == admin.tokens[2400:]
    assert fleet.device_total(admin, "http://x", "ios") == 2500


def test_sse_lines_and_waiters() -> None:
    assert parse_sse_line(': keep-alive') is None
    assert parse_sse_line('event: x') is None
    assert parse_sse_line('data: {not json') is None
    ev = parse_sse_line('data: {"token": "t1", "outcome": "delivered", "seq": 3}')
    assert ev == {"token": "t1", "outcome": "delivered", "seq": 3}
    w = Waiters()
    r1, r2 = w.add("t1"), w.add("t2")
    assert w.dispatch({"token": "t1", "outcome": "pending", "reason": "throttled"}) is False
    assert not r1.ready()                                   # a re-pend is not the end
    assert w.dispatch(ev) is True and r1.get(timeout=0) == ev and not r2.ready()
    assert w.busy("t2") and not w.busy("t1")
    w.discard("t2", r2)
    assert not w.busy("t2") and w.dispatch({"token": "t2", "outcome": "dropped"}) is False


def test_racing_threads_share_one_provider_token() -> None:
    import threading
    tokens = ProviderTokens(_PEM, "K", "T")
    seen: set[str] = set()
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        seen.add(tokens.token())
    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 1 and tokens.issued_count == 1


EXPIRED = (b'{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":'
           b'"UNAUTHENTICATED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",'
           b'"reason":"ACCESS_TOKEN_EXPIRED","domain":"googleapis.com"}]}}')
UNREGISTERED = (b'{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",'
                b'"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}')


class FakeAuth:
    def __init__(self) -> None:
        self.current, self.refreshes = "tok-1", 0

    def token(self) -> str:
        return self.current

    def invalidate(self, stale: str) -> None:
        if stale == self.current:
            self.refreshes += 1
            self.current = f"tok-{self.refreshes + 1}"


class ScriptedTransport:
    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        self.answers, self.seen = answers, []

    def post(self, path: str, headers: list, body: bytes) -> tuple[int, bytes]:
        self.seen.append((path, dict(headers)["authorization"], body))
        return self.answers.pop(0)


def test_fcm_error_codes() -> None:
    from loadtests.fcm_client import fcm_error
    assert fcm_error(404, UNREGISTERED) == ("UNREGISTERED", "")
    assert fcm_error(401, EXPIRED) == ("UNAUTHENTICATED", "ACCESS_TOKEN_EXPIRED")
    assert fcm_error(401, b"<html>Unauthorized</html>") == ("HTTP 401", "")


def test_fcm_sender_refreshes_once_on_access_token_expired() -> None:
    from loadtests.fcm_client import FcmSender
    auth = FakeAuth()
    transport = ScriptedTransport([(401, EXPIRED), (200, b'{"name":"projects/p/messages/0:1"}')])
    sender = FcmSender(transport, auth, "p")
    assert sender.send("T", silent=False)[0] == 200
    assert [a for _p, a, _b in transport.seen] == ["Bearer tok-1", "Bearer tok-2"]
    assert transport.seen[0][0] == "/v1/projects/p/messages:send" and auth.refreshes == 1
    # Another 401 reason is the answer, not a reason to refresh; a second expiry is not retried forever.
    other = ScriptedTransport([(401, b'{"error":{"code":401,"status":"UNAUTHENTICATED"}}')])
    assert FcmSender(other, auth, "p").send("T", silent=True)[0] == 401 and len(other.seen) == 1
    twice = ScriptedTransport([(401, EXPIRED), (401, EXPIRED)])
    assert FcmSender(twice, auth, "p").send("T", silent=True)[0] == 401 and len(twice.seen) == 2


def test_fcm_messages_silent_vs_visible() -> None:
    import orjson

    from loadtests.fcm_client import message
    silent = orjson.loads(message("T", True, 3))["message"]
    visible = orjson.loads(message("T", False, 3))["message"]
    assert "notification" not in silent and silent["data"]["n"] == "3" and silent["token"] == "T"
    assert visible["notification"]["title"] and visible["android"]["priority"] == "high"
