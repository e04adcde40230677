"""The gevent HTTP/2 client against a tiny in-test h2 server (gevent, real sockets)."""
from __future__ import annotations

import time
from collections import Counter

import gevent
import gevent.lock
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import trustme
from gevent import server as gserver
from gevent import ssl as gssl
from hyperframe.frame import GoAwayFrame

from loadtests.h2client import ConnectionClosed, GoAway, H2Client, RequestTimeout, StreamReset
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(20)


class TinyH2Server:
    """Answers every POST with 200 and a body `<bytes received>`; knobs via request headers:
    x-delay (seconds), x-status, x-rst (send RST_STREAM REFUSED_STREAM instead)."""

    def __init__(self, *, initial_streams: int = 100, raise_to: int | None = None,
                 goaway_after: int | None = None, tls: trustme.CA | None = None,
                 rst_every: int | None = None) -> None:
        self.initial_streams = initial_streams
        self.raise_to = raise_to
        self.goaway_after = goaway_after      # per connection: GOAWAY at its Nth request
        self.rst_every = rst_every            # every Nth request overall: RST_STREAM REFUSED_STREAM
        self.goaways = 0
        self.rsts = 0
        self.authorizations: set[bytes] = set()
        self.unprocessed: Counter[bytes] = Counter()     # apns-id → times refused or left unanswered
        self.answered: set[bytes] = set()
        self.paths: list[bytes] = []
        self.active = 0
        self.max_active = 0
        self.requests = 0
        self.connections = 0
        self.connections_closed = 0
        ssl_args = {}
        if tls is not None:
            cert = tls.issue_cert("127.0.0.1")
            ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
            cert.configure_cert(ctx)
            ctx.set_alpn_protocols(["h2"])
            ssl_args = {"ssl_context": ctx}
        self.server = gserver.StreamServer(("127.0.0.1", 0), self._handle, **ssl_args)
        self.server.start()
        self.port = self.server.server_port

    def stop(self) -> None:
        self.server.stop(timeout=1)

    def _handle(self, sock, _addr) -> None:
        self.connections += 1
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.initial_streams})
        lock = gevent.lock.RLock()
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        bodies: dict[int, bytearray] = {}
        headers: dict[int, dict[bytes, bytes]] = {}
        answered = 0
        goaway_last: int | None = None
        conn_requests = 0

        def respond(sid: int) -> None:
            nonlocal answered
            h = headers.pop(sid)
            gevent.sleep(float(h.get(b"x-delay", b"0")))
            with lock:
                self.active -= 1
                if h.get(b"x-rst") or h.get(b"x-refuse"):
                    self.rsts += 1
                    self.unprocessed[h.get(b"apns-id", b"")] += 1
                    conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                else:
                    self.answered.add(h.get(b"apns-id", b""))
                    body = str(len(bodies.pop(sid))).encode()
                    conn.send_headers(sid, [(b":status", h.get(b"x-status", b"200"))])
                    conn.send_data(sid, body, end_stream=True)
                answered += 1
                if self.raise_to and answered == 1:
                    conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.raise_to})
                sock.sendall(conn.data_to_send())

        while True:
            data = sock.recv(65536)
            if not data:
                self.connections_closed += 1
                return
            with lock:
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        self.requests += 1
                        conn_requests += 1
                        self.active += 1
                        self.max_active = max(self.max_active, self.active)
                        headers[ev.stream_id] = dict(ev.headers)
                        self.authorizations.add(headers[ev.stream_id].get(b"authorization", b""))
                        self.paths.append(headers[ev.stream_id][b":path"])
                        if self.rst_every and self.requests % self.rst_every == 0:
                            headers[ev.stream_id][b"x-refuse"] = b"1"
                        bodies[ev.stream_id] = bytearray()
                        if goaway_last is not None:
                            headers[ev.stream_id][b"x-ignore"] = b"1"   # above last-stream-id
                            self.unprocessed[headers[ev.stream_id].get(b"apns-id", b"")] += 1
                        elif self.goaway_after and conn_requests == self.goaway_after:
                            self.goaways += 1
                            # Written by hand: h2 refuses to answer open streams once it sent GOAWAY.
                            goaway_last = ev.stream_id
                            sock.sendall(conn.data_to_send() + GoAwayFrame(
                                0, last_stream_id=ev.stream_id, error_code=0,
                                additional_data=b'{"reason":"Shutdown"}').serialize())
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        bodies[ev.stream_id] += ev.data
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in headers:
                        if headers[ev.stream_id].get(b"x-ignore"):
                            continue
                        gevent.spawn(respond, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamReset):
                        self.active -= 1
                        headers.pop(ev.stream_id, None)
                sock.sendall(conn.data_to_send())


@pytest.fixture
def server():
    servers: list[TinyH2Server] = []

    def make(**kw) -> TinyH2Server:
        servers.append(TinyH2Server(**kw))
        return servers[-1]
    yield make
    for s in servers:
        s.stop()


def run_many(client: H2Client, n: int, headers=(), body: bytes = b"x") -> list:
    def one(_i: int):
        try:
            return client.request("POST", "/p", list(headers), body)
        except Exception as exc:  # noqa: BLE001 - the tests inspect what came back
            return exc
    jobs = [gevent.spawn(one, i) for i in range(n)]
    gevent.joinall(jobs, timeout=15)
    return [j.value for j in jobs]


def test_greenlets_multiplex_on_one_connection(server) -> None:
    srv = server()
    client = H2Client(f"http://127.0.0.1:{srv.port}")
    t0 = time.monotonic()
    results = run_many(client, 50, headers=[("x-delay", "0.3")])
    elapsed = time.monotonic() - t0
    assert all(r.status == 200 and r.body == b"1" for r in results), results[:3]
    # 50 sequential 0.3 s requests would take 15 s; concurrent streams finish in about one delay.
    assert elapsed < 3.0
    assert client.connections_opened == 1 and srv.connections == 1
    assert srv.max_active > 10
    client.close()


def test_respects_a_stream_limit_that_starts_at_one_and_rises(server) -> None:
    srv = server(initial_streams=1, raise_to=8)
    client = H2Client(f"http://127.0.0.1:{srv.port}")
    results = run_many(client, 30, headers=[("x-delay", "0.05")])
    assert all(r.status == 200 for r in results), [r for r in results if not hasattr(r, "status")][:3]
    assert 1 < srv.max_active <= 8
    client.close()


def test_flow_control_for_bodies_larger_than_the_windows(server) -> None:
    srv = server()
    client = H2Client(f"http://127.0.0.1:{srv.port}")
    body = b"z" * 150_000   # > the 65,535-byte initial stream and connection windows
    results = run_many(client, 6, body=body)
    assert [r.body for r in results] == [b"150000"] * 6
    client.close()


def test_error_status_and_body_come_back(server) -> None:
    srv = server()
    client = H2Client(f"http://127.0.0.1:{srv.port}")
    r = client.request("POST", "/p", [("x-status", "410")], b"abc")
    assert (r.status, r.body) == (410, b"3")
    client.close()


def test_rst_stream_is_a_retryable_error(server) -> None:
    srv = server()
    client = H2Client(f"http://127.0.0.1:{srv.port}")
    with pytest.raises(StreamReset) as info:
        client.request("POST", "/p", [("x-rst", "1")], b"x")
    assert info.value.retryable and "REFUSED_STREAM" in str(info.value)
    assert client.request("POST", "/p", [], b"x").status == 200   # the connection survives
    client.close()


def test_goaway_fails_newer_streams_and_the_next_request_reconnects(server) -> None:
    srv = server(goaway_after=5)
    client = H2Client(f"http://127.0.0.1:{srv.port}")
    results = run_many(client, 12, headers=[("x-delay", "0.2")])
    ok = [r for r in results if getattr(r, "status", None) == 200]
    refused = [r for r in results if isinstance(r, GoAway)]
    assert len(ok) >= 5 and refused and all(r.retryable for r in refused)
    assert len(ok) + len(refused) == 12
    assert client.request("POST", "/p", [], b"x").status == 200
    assert client.connections_opened == 2
    # the old connection is closed once drained, not left open
    wait_until(lambda: srv.connections_closed >= 1, "the drained connection closed", sleep=gevent.sleep)
    client.close()


def test_timeout_cancels_the_stream_and_frees_its_slot(server) -> None:
    srv = server(initial_streams=1)
    client = H2Client(f"http://127.0.0.1:{srv.port}")
    with pytest.raises(RequestTimeout):
        client.request("POST", "/p", [("x-delay", "5")], b"x", timeout=0.3)
    t0 = time.monotonic()
    assert client.request("POST", "/p", [], b"x", timeout=2).status == 200
    assert time.monotonic() - t0 < 1.5
    client.close()


def test_tls_with_alpn_h2(server, tmp_path) -> None:
    ca = trustme.CA()
    srv = server(tls=ca)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = H2Client(f"https://127.0.0.1:{srv.port}", ca_file=str(ca_file))
    results = run_many(client, 20, headers=[("x-delay", "0.1")])
    assert all(r.status == 200 for r in results)
    assert client.connections_opened == 1
    client.close()


def test_refused_connection_is_a_connection_error() -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # nothing listens here once closed
    client = H2Client(f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectionClosed, match="connect failed"):
        client.request("POST", "/p", [], b"x")


def test_server_closing_mid_request_fails_waiters_and_reconnects(server) -> None:
    srv = server()
    client = H2Client(f"http://127.0.0.1:{srv.port}")
    assert client.request("POST", "/p", [], b"x").status == 200
    job = gevent.spawn(client.request, "POST", "/p", [("x-delay", "5")], b"x")
    wait_until(lambda: srv.active >= 1, "the slow request reached the server", sleep=gevent.sleep)
    client._conn.sock.shutdown(2)           # the transport dies under an open stream
    job.join(3)
    assert isinstance(job.exception, ConnectionClosed)
    assert client.request("POST", "/p", [], b"x").status == 200 and client.connections_opened == 2
    client.close()
