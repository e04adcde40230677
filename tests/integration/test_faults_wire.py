"""Every fault action as a real client sees it: httpx over h2, and a raw h2 client for frame-level faults.

The server runs in-process on ephemeral ports, once per HTTP/2 engine; rules go in over the control API.
"""
from __future__ import annotations

import json
import socket
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Any, Iterator
from urllib.parse import urlparse

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key


from fake_apns.testing import make_jwt
from pushsim.config import Config
from pushsim.pytest_plugin import PushSimClient
from pushsim.server import run_in_thread


@pytest.fixture(scope="module", params=["fast", "h2"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushSimClient]:
    cfg = Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0, devices="ios=4,android=4",
                 state_dir=tmp_path_factory.mktemp("wire"), engine=request.param)
    sim, stop = run_in_thread(cfg)
    yield PushSimClient(sim.endpoints)
    stop()


@pytest.fixture
def ps(server: PushSimClient) -> PushSimClient:
    server.reset()
    return server


_JWTS: dict[str, str] = {}


def jwt(ep: dict[str, Any]) -> str:
    # One provider token per server, as real clients do: a fresh one per request on a connection
    # would (rightly) earn TooManyProviderTokenUpdates.
    a = ep["apns"]
    if a["key_file"] not in _JWTS:
        with open(a["key_file"], "rb") as f:
            key = load_pem_private_key(f.read(), None)
        _JWTS[a["key_file"]] = make_jwt(key, a["key_id"], a["team_id"], int(time.time())).decode()
    return _JWTS[a["key_file"]]


def apns_headers(ps: PushSimClient) -> dict[str, str]:
    return {"authorization": f"bearer {jwt(ps.endpoints)}", "apns-topic": ps.endpoints["apns"]["topic"],
            "apns-push-type": "alert", "apns-priority": "10"}


def h2c(timeout: float = 3.0) -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=timeout)   # h2 prior knowledge


def post_apns(ps: PushSimClient, token: str, client: httpx.Client | None = None) -> httpx.Response:
    c = client or h2c()
    try:
        return c.post(f"{ps.endpoints['apns']['h2c_url']}/3/device/{token}", content=b'{"aps":{"alert":"x"}}',
                      headers=apns_headers(ps))
    finally:
        if client is None:
            c.close()


class RawH2:
    """A bare h2 client on a socket: sees every frame-level event the server sends."""

    def __init__(self, url: str) -> None:
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=3)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.authority = u.netloc.encode()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def post(self, path: str, headers: dict[str, str], body: bytes = b'{"aps":{"alert":"x"}}') -> int:
        sid = self.conn.get_next_available_stream_id()
        hs = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", self.authority),
              (b":path", path.encode())] + [(k.encode(), v.encode()) for k, v in headers.items()]
        self.conn.send_headers(sid, hs)
        self.conn.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    def events(self, until: type, timeout: float = 3.0) -> list[h2.events.Event]:
        out: list[h2.events.Event] = []
        deadline = time.monotonic() + timeout
        while not any(isinstance(e, until) for e in out):
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                break
            out += self.conn.receive_data(data)
            self.flush()
        return out

    def close(self) -> None:
        self.sock.close()


# respond ---------------------------------------------------------------------------------------
def test_apns_429_with_retry_after_seconds(ps: PushSimClient) -> None:
    tok, other = ps.tokens("ios")[:2]
    ps.add_fault(scope={"service": "apns", "tokens": [tok]},
                 action={"type": "respond", "reason": "TooManyRequests", "retry_after": 7})
    r = post_apns(ps, tok)
    assert r.status_code == 429 and r.json() == {"reason": "TooManyRequests"}
    assert r.headers["retry-after"] == "7" and r.headers["content-type"] == "application/json"
    assert r.headers["apns-id"]
    assert post_apns(ps, other).status_code == 200          # scoped to one token
    ps.assert_request_made(token=tok, status=429, reason="TooManyRequests", count=1)
    assert ps.stats()["rejected"] == {"TooManyRequests": 1}


def test_apns_410_timestamp_and_http_date_retry_after(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    ps.add_fault(scope={"service": "apns"}, action={"type": "respond", "reason": "Unregistered",
                                                    "retry_after": 60, "retry_after_format": "date"})
    before = time.time()
    r = post_apns(ps, tok)
    assert r.status_code == 410
    body = r.json()
    assert body["reason"] == "Unregistered" and before * 1000 - 1000 <= body["timestamp"] <= time.time() * 1000 + 1000
    when = parsedate_to_datetime(r.headers["retry-after"]).timestamp()
    assert before + 58 <= when <= time.time() + 61


def test_fcm_error_is_byte_for_byte_the_fakes(ps: PushSimClient) -> None:
    from fake_fcm.errors import unregistered

    tok = ps.tokens("android")[0]
    ps.add_fault(scope={"service": "fcm", "tokens": [tok]}, action={"type": "respond", "reason": "UNREGISTERED"})
    url = f"{ps.endpoints['fcm']['h2c_url']}/v1/projects/{ps.endpoints['fcm']['project_id']}/messages:send"
    with httpx.Client(timeout=3) as c:                         # HTTP/1.1 to the cleartext FCM port
        r = c.post(url, json={"message": {"token": tok, "data": {"k": "v"}}})
    assert r.status_code == 404 and r.content == unregistered().body
    assert r.json()["error"]["details"][0]["errorCode"] == "UNREGISTERED"


def test_bad_rule_is_400(ps: PushSimClient) -> None:
    with pytest.raises(AssertionError, match="400.*unknown APNs reason 'TooMany'"):
        ps.add_fault(scope={"service": "apns"}, action={"type": "respond", "reason": "TooMany"})


# delay -----------------------------------------------------------------------------------------
def test_fixed_delay_is_measured_by_the_client(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    with h2c() as c:
        post_apns(ps, tok, c)                                   # warm the connection
        t = time.perf_counter()
        assert post_apns(ps, tok, c).status_code == 200
        base = time.perf_counter() - t
        ps.add_fault(scope={"service": "apns"}, action={"type": "delay", "fixed_ms": 400})
        t = time.perf_counter()
        r = post_apns(ps, tok, c)
        slow = time.perf_counter() - t
    assert r.status_code == 200                                 # the real answer, only later
    assert slow >= 0.4 and slow - base >= 0.3


# connection faults (raw h2) ---------------------------------------------------------------------
def test_goaway_with_reason_after_n_streams(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    ps.add_fault(scope={"service": "apns"}, trigger={"after": 2, "first": 1},
                 action={"type": "goaway", "reason": "Shutdown"})
    c = RawH2(ps.endpoints["apns"]["h2c_url"])
    try:
        for _ in range(2):
            c.post(f"/3/device/{tok}", apns_headers(ps))
            ev = c.events(h2.events.StreamEnded)
            assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in ev)
        sid = c.post(f"/3/device/{tok}", apns_headers(ps))
        ev = c.events(h2.events.ConnectionTerminated)
    finally:
        c.close()
    status = [e for e in ev if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid]
    assert status and dict(status[0].headers)[b":status"] == b"200"     # answered, then GOAWAY
    term = [e for e in ev if isinstance(e, h2.events.ConnectionTerminated)][0]
    assert term.error_code == 0 and json.loads(term.additional_data) == {"reason": "Shutdown"}


def test_goaway_before_answering_leaves_the_stream_unprocessed(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    ps.add_fault(scope={"service": "apns"}, action={"type": "goaway", "reason": "ServiceUnavailable",
                                                    "answer": False})
    c = RawH2(ps.endpoints["apns"]["h2c_url"])
    try:
        sid = c.post(f"/3/device/{tok}", apns_headers(ps))
        ev = c.events(h2.events.ConnectionTerminated)
    finally:
        c.close()
    term = [e for e in ev if isinstance(e, h2.events.ConnectionTerminated)][0]
    assert term.last_stream_id < sid and b"ServiceUnavailable" in term.additional_data
    assert not any(isinstance(e, h2.events.ResponseReceived) for e in ev)
    ps.assert_request_made(token=tok, status=0, reason="fault:goaway", count=1)


def test_rst_stream_refused_stream(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    ps.add_fault(scope={"service": "apns"}, trigger={"first": 1}, action={"type": "rst_stream"})
    c = RawH2(ps.endpoints["apns"]["h2c_url"])
    try:
        sid = c.post(f"/3/device/{tok}", apns_headers(ps))
        ev = c.events(h2.events.StreamReset)
        reset = [e for e in ev if isinstance(e, h2.events.StreamReset)][0]
        assert reset.stream_id == sid and reset.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
        sid2 = c.post(f"/3/device/{tok}", apns_headers(ps))           # the connection lives on
        ev = c.events(h2.events.StreamEnded)
        assert any(isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid2 for e in ev)
    finally:
        c.close()
    ps.assert_request_made(token=tok, status=0, reason="fault:rst_stream", count=1)


def test_tcp_reset_is_a_connection_error(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    ps.add_fault(scope={"service": "apns"}, trigger={"first": 1}, action={"type": "tcp_reset"})
    c = RawH2(ps.endpoints["apns"]["h2c_url"])
    try:
        c.post(f"/3/device/{tok}", apns_headers(ps))
        with pytest.raises(ConnectionResetError):
            c.events(h2.events.StreamEnded)
    finally:
        c.close()
    with h2c() as client, pytest.raises(httpx.TransportError):     # and as httpx reports it
        ps.add_fault(scope={"service": "apns"}, trigger={"first": 1}, action={"type": "tcp_reset"})
        post_apns(ps, tok, client)


def test_stall_makes_the_client_time_out(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    ps.add_fault(scope={"service": "apns"}, trigger={"first": 1}, action={"type": "stall"})
    with h2c(timeout=0.5) as c, pytest.raises(httpx.ReadTimeout):
        post_apns(ps, tok, c)
    assert post_apns(ps, tok).status_code == 200                   # only the first request stalls


def test_max_concurrent_streams_swing(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    c = RawH2(ps.endpoints["apns"]["h2c_url"])
    try:
        c.post(f"/3/device/{tok}", apns_headers(ps))
        c.events(h2.events.StreamEnded)
        ps.add_fault(scope={"service": "apns"}, action={"type": "max_streams", "values": [1, 500]})
        seen = []
        for _ in range(2):
            c.post(f"/3/device/{tok}", apns_headers(ps))
            for e in c.events(h2.events.StreamEnded):
                if isinstance(e, h2.events.RemoteSettingsChanged):
                    ch = e.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
                    if ch is not None:
                        seen.append(ch.new_value)
    finally:
        c.close()
    assert seen == [1, 500]


def test_tls_client_sees_faults_too(ps: PushSimClient) -> None:
    tok = ps.tokens("ios")[0]
    ps.add_fault(scope={"service": "apns"}, action={"type": "respond", "reason": "ServiceUnavailable"})
    ctx = ssl.create_default_context(cafile=ps.endpoints["ca_file"])
    with httpx.Client(http2=True, verify=ctx, timeout=3) as c:
        r = c.post(f"{ps.endpoints['apns']['url']}/3/device/{tok}", content=b'{"aps":{}}', headers=apns_headers(ps))
    assert r.http_version == "HTTP/2" and r.status_code == 503 and r.json() == {"reason": "ServiceUnavailable"}


@pytest.mark.parametrize("kind, exc", [("tcp_reset", httpx.TransportError), ("stall", httpx.ReadTimeout),
                                       ("rst_stream", httpx.TransportError)])
def test_connection_faults_on_fcm_http1(ps: PushSimClient, kind: str, exc: type) -> None:
    ps.add_fault(scope={"service": "fcm"}, trigger={"first": 1}, action={"type": kind})
    url = f"{ps.endpoints['fcm']['h2c_url']}/v1/projects/{ps.endpoints['fcm']['project_id']}/messages:send"
    body = {"message": {"token": ps.tokens("android")[0], "data": {"k": "v"}}}
    with httpx.Client(timeout=0.5) as c:
        with pytest.raises(exc):
            c.post(url, json=body)
        assert c.post(url, json=body).status_code == 401         # next request: the service again (no auth)
    ps.assert_request_made(service="fcm", status=0, reason=f"fault:{kind}", count=1)
