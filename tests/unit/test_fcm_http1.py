"""The HTTP/1.1 engine over a real loopback socket, with a recording service behind it."""
from __future__ import annotations

import asyncio

import pytest

from pushsim.edge.http1 import Http1Protocol
from pushsim.edge.types import ConnInfo, Headers, Reply


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes, Headers, bytes]] = []
        self.replies: dict[bytes, Reply] = {}

    def open(self, conn: ConnInfo) -> object:
        return "state"

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return None

    def closing_reason(self) -> bytes:
        return b""

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        assert conn.state == "state" and not conn.http2
        self.requests.append((method, path, headers, body))
        if path == b"/boom":
            raise RuntimeError("bug")
        return self.replies.get(path, Reply(200, [(b"x-path", path)], body or path))


class Server:
    def __init__(self) -> None:
        self.svc = Recorder()
        self.conns: set = set()

    async def __aenter__(self) -> "Server":
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Http1Protocol(self.svc, self.conns), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def exchange(self, raw: bytes, expect_close: bool = True, until: bytes | None = None) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(raw)
        await writer.drain()
        data = b""
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), 2.0)
                if not chunk:
                    break
                data += chunk
                if until is not None and data.count(until) and not expect_close:
                    break
        finally:
            writer.close()
        return data


async def test_pipelined_requests_answered_in_order_in_one_write() -> None:
    async with Server() as s:
        raw = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5))
        data = await s.exchange(raw + b"GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert [r[1] for r in s.svc.requests] == [b"/0", b"/1", b"/2", b"/3", b"/4", b"/last"]
        assert data.count(b"HTTP/1.1 200 OK") == 6
        assert data.index(b"x-path: /3") < data.index(b"x-path: /4")
        last = data[data.rindex(b"HTTP/1.1 200 OK"):]
        assert last.endswith(b"\r\n\r\n/last") and b"connection: close\r\n" in last
        assert data.count(b"connection: close") == 1


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_one_write_per_data_received() -> None:
    svc, conns, t = Recorder(), set(), FakeTransport()
    p = Http1Protocol(svc, conns)
    p.connection_made(t)
    assert p in conns and p.conn is not None and p.conn.tls is False
    p.data_received(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(10)))
    assert len(t.writes) == 1 and t.writes[0].count(b"HTTP/1.1 200 OK") == 10
    p.data_received(b"GET /split HTTP/1.1\r\nHo")                 # half a request: nothing to write yet
    assert len(t.writes) == 1
    p.data_received(b"st: h\r\n\r\n")
    assert len(t.writes) == 2 and b"x-path: /split" in t.writes[1]
    p.connection_lost(None)
    assert p not in conns


async def test_headers_shape_matches_http2() -> None:
    async with Server() as s:
        await s.exchange(b"POST /p?q=1 HTTP/1.1\r\nHost: ex.com\r\nX-Foo: Bar\r\nContent-Length: 3\r\n"
                         b"Connection: close\r\n\r\nabc")
        method, path, headers, body = s.svc.requests[0]
        assert (method, path, body) == (b"POST", b"/p?q=1", b"abc")
        assert headers[:4] == [(b":method", b"POST"), (b":path", b"/p?q=1"), (b":scheme", b"http"),
                               (b":authority", b"ex.com")]
        assert (b"x-foo", b"Bar") in headers


async def test_chunked_body_and_expect_continue() -> None:
    async with Server() as s:
        data = await s.exchange(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
                                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
        assert s.svc.requests[0][3] == b"abcde"
        assert data.endswith(b"abcde")


@pytest.mark.parametrize("raw", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
                                 b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00"])
async def test_malformed_request_gets_400_and_close(raw: bytes) -> None:
    async with Server() as s:
        data = await s.exchange(raw)
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"connection: close" in data


async def test_body_limit_413() -> None:
    async with Server() as s:
        data = await s.exchange(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
        assert data.startswith(b"HTTP/1.1 413 ")
        assert s.svc.requests == []


async def test_service_exception_is_a_500_not_a_dead_connection() -> None:
    async with Server() as s:
        data = await s.exchange(b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\n"
                                b"Connection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 500 ") and b"x-path: /ok" in data


async def test_reply_close_delay_and_head() -> None:
    async with Server() as s:
        s.svc.replies[b"/slow"] = Reply(200, [], b"slow", delay=0.2)
        s.svc.replies[b"/bye"] = Reply(200, [], b"bye", close=True)
        data = await s.exchange(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nHEAD /fast HTTP/1.1\r\nHost: h\r\n\r\n"
                                b"GET /bye HTTP/1.1\r\nHost: h\r\n\r\nGET /never HTTP/1.1\r\nHost: h\r\n\r\n")
        assert data.index(b"slow") < data.index(b"x-path: /fast") < data.index(b"bye")
        assert b"content-length: 5\r\n\r\nHTTP/1.1" in data       # HEAD: length but no body
        assert [r[1] for r in s.svc.requests] == [b"/slow", b"/fast", b"/bye"]


async def test_tcp_reset_fault_and_http10() -> None:
    async with Server() as s:
        s.svc.replies[b"/rst"] = Reply(200, [], b"x", fault="tcp_reset")
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET /rst HTTP/1.1\r\nHost: h\r\n\r\n")
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2.0)
        writer.close()
        data = await s.exchange(b"GET /old HTTP/1.0\r\n\r\n")      # no keep-alive: answered then closed
        assert data.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in data


async def test_shutdown_closes_idle_and_marks_busy() -> None:
    async with Server() as s:
        s.svc.replies[b"/slow"] = Reply(200, [], b"slow", delay=0.3)
        r1, w1 = await asyncio.open_connection("127.0.0.1", s.port)       # idle
        r2, w2 = await asyncio.open_connection("127.0.0.1", s.port)       # busy
        w2.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        await w2.drain()
        for _ in range(100):
            if len(s.conns) == 2 and s.svc.requests:
                break
            await asyncio.sleep(0.01)
        for p in list(s.conns):
            p.shutdown(b"")
        assert await asyncio.wait_for(r1.read(), 2.0) == b""
        busy = await asyncio.wait_for(r2.read(), 2.0)
        assert busy.startswith(b"HTTP/1.1 200 OK") and busy.endswith(b"slow")
        w1.close(), w2.close()


async def test_upgrade_h2c_is_ignored() -> None:
    async with Server() as s:
        data = await s.exchange(b"GET /u HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
                                b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 OK") and b"x-path: /after" in data


async def test_absolute_form_target() -> None:
    async with Server() as s:
        await s.exchange(b"GET http://fcm.example:1/v1/x?y=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
        _, path, headers, _ = s.svc.requests[0]
        assert path == b"/v1/x?y=1" and (b":authority", b"fcm.example:1") in headers


async def test_half_close_still_gets_delayed_replies() -> None:
    async with Server() as s:
        s.svc.replies[b"/slow"] = Reply(200, [], b"late", delay=0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 2.0)
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"late")
        writer.close()


def test_cached_reply_heads_render_like_the_general_path() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pushsim.edge import http1

    def general(status: int, headers: Headers, body: bytes, close: bool, head: bool) -> bytes:
        parts = [http1._status_line(status)]
        for k, v in headers:
            parts += (k, b": ", v, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(body))
        if close:
            parts.append(b"connection: close\r\n")
        return b"".join([*parts, b"\r\n", b"" if head else body])

    names = st.sampled_from([b"content-type", b"retry-after", b"www-authenticate"])
    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from([200, 400, 401, 404, 429, 500, 599]),
           st.lists(st.tuples(names, st.binary(max_size=8)), max_size=2), st.binary(max_size=20),
           st.booleans(), st.booleans())
    def check(status: int, headers: Headers, body: bytes, close: bool, head: bool) -> None:
        for _ in range(2):            # the second time from the cache
            assert http1.render(status, headers, body, close, head) == general(status, headers, body, close, head)

    check()
