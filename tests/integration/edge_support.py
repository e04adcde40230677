"""Test doubles for the edge tests: a scriptable Service, a listener fixture and a raw h2 client.

The service answers by path, so each test picks the engine behaviour it wants from the client:
  /echo            200, JSON {"method", "path", "len", "authority", "host"} of the request
  /status/NNN      status NNN, body {"reason":"Status NNN"} (one DATA frame)
  /fault/NAME      Reply(200, fault=NAME); /fault/goaway?debug sends that debug data
  /delay/SECONDS   Reply(200, delay=SECONDS)
  /max/N           Reply(200, max_streams=N)
  /reject/N        400 BadDeviceToken with max_streams=N
  /goaway          Reply(200, goaway=b'{"reason":"IdleTimeout"}')
  /big/N           200 with an N-byte body
  /raise           the service raises
  /3/device/bad    400 BadDeviceToken (apns-id echoed)
  anything else    200, empty body, apns-id echoed
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.connection import ConnectionState
from h2.events import ConnectionTerminated, DataReceived, ResponseReceived, StreamEnded, StreamReset
from h2.settings import SettingCodes, Settings

from pushsim.edge.listener import start_listener
from pushsim.edge.types import ConnInfo, Headers, Reply

SHUTDOWN = b'{"reason":"Shutdown"}'


class ScriptedService:
    def __init__(self, initial_max_streams: int | None = None) -> None:
        self.max_streams = initial_max_streams
        self.opened: list[ConnInfo] = []
        self.handled: list[tuple[bytes, bytes, int]] = []

    def open(self, conn: ConnInfo) -> object:
        self.opened.append(conn)
        return {"requests": 0}

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return self.max_streams

    def closing_reason(self) -> bytes:
        return SHUTDOWN

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers,
               body: bytes) -> Reply:
        conn.state["requests"] += 1  # type: ignore[index]
        self.handled.append((method, path, len(body)))
        parts = path.split(b"?")[0].strip(b"/").split(b"/")
        head, arg = parts[0], (parts[1] if len(parts) > 1 else b"")
        if head == b"echo":
            got = dict(headers)
            return Reply(200, [(b"content-type", b"application/json")], json.dumps({
                "method": method.decode(), "path": path.decode(), "len": len(body),
                "authority": got.get(b":authority", b"").decode(),
                "host": got.get(b"host", b"").decode()}).encode())
        if head == b"status":
            return Reply(int(arg), [(b"content-type", b"application/json")],
                         b'{"reason":"Status %s"}' % arg)
        if head == b"fault":
            debug = path.partition(b"?")[2] or None
            return Reply(200, fault=arg.decode(), goaway=debug)
        if head == b"delay":
            return Reply(200, [(b"x-delayed", arg)], delay=float(arg))
        if head == b"max":
            return Reply(200, max_streams=int(arg))
        if head == b"reject":   # APNs: any rejection drops the stream limit (openradar 27870881)
            return Reply(400, [(b"content-type", b"application/json")],
                         b'{"reason":"BadDeviceToken"}', max_streams=int(arg))
        if head == b"goaway":
            return Reply(200, goaway=b'{"reason":"IdleTimeout"}')
        if head == b"big":
            return Reply(200, body=b"b" * int(arg))
        if head == b"raise":
            raise RuntimeError("service bug")
        apns_id = [(b"apns-id", v) for k, v in headers if k == b"apns-id"]
        if head == b"3" and path.endswith(b"/bad"):
            return Reply(400, apns_id + [(b"content-type", b"application/json")],
                         b'{"reason":"BadDeviceToken"}')
        return Reply(200, apns_id)


@dataclass
class Served:
    server: asyncio.AbstractServer
    port: int
    conns: set
    service: ScriptedService


@contextlib.asynccontextmanager
async def serving(service: ScriptedService | None = None, host: str = "127.0.0.1",
                  **kwargs: object) -> AsyncIterator[Served]:
    service = service or ScriptedService()
    # EDGE_TEST_ENGINE=fast runs the same wire checks against the fast engine.
    kwargs.setdefault("engine", os.environ.get("EDGE_TEST_ENGINE", "h2"))
    conns: set = set()
    server = await start_listener(host, 0, service=service, conns=conns, **kwargs)  # type: ignore
    try:
        yield Served(server, server.sockets[0].getsockname()[1], conns, service)
    finally:
        server.close()
        for proto in list(conns):
            proto.transport.abort()
        await server.wait_closed()


class _NoStreamLimit(Settings):
    """Lets the raw client exceed the server's stream limit on purpose."""

    @property
    def max_concurrent_streams(self) -> int:  # type: ignore[override]
        return 2**31


@dataclass
class Response:
    status: int | None = None
    headers: list = field(default_factory=list)
    data_frames: list[bytes] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None

    @property
    def body(self) -> bytes:
        return b"".join(self.data_frames)


class RawClient:
    """An h2 client over a real socket that keeps every event, for frame-level assertions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: H2Connection) -> None:
        self.reader, self.writer, self.conn = reader, writer, conn
        self.events: list[object] = []
        self.responses: dict[int, Response] = collections.defaultdict(Response)
        self.closed = False
        self.reset_by_peer = False

    @classmethod
    async def connect(cls, port: int, *, host: str = "127.0.0.1", ssl_ctx: ssl.SSLContext | None = None,
                      settings: dict[int, int] | None = None, limitless: bool = False) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx)
        conn = H2Connection(H2Configuration(client_side=True, header_encoding=None,
                                            validate_outbound_headers=False,
                                            validate_inbound_headers=False))
        if settings:
            conn.local_settings = Settings(client=True, initial_values=settings)
        conn.initiate_connection()
        if limitless:
            conn.remote_settings = _NoStreamLimit(client=False)
        client = cls(reader, writer, conn)
        await client.flush()
        return client

    def request(self, path: str, body: bytes = b"", *, method: bytes = b"POST",
                headers: Headers | None = None, authority: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs: Headers = [(b":method", method), (b":scheme", b"http"), (b":path", path.encode())]
        if authority:
            hdrs.append((b":authority", b"localhost"))
        hdrs += headers or []
        self.conn.send_headers(sid, hdrs, end_stream=not body)
        if body:
            self.conn.send_data(sid, body, end_stream=True)
        return sid

    def open_streams(self, paths: list[str], body: bytes = b"{}") -> list[int]:
        """All HEADERS first, then every body, as Node's http2 client writes a burst of requests:
        every stream is open before any request is complete."""
        sids = []
        for path in paths:
            sid = self.conn.get_next_available_stream_id()
            self.conn.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"),
                                         (b":path", path.encode()), (b":authority", b"localhost")])
            sids.append(sid)
        for sid in sids:
            self.conn.send_data(sid, body, end_stream=True)
        return sids

    async def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait(self, pred, timeout: float = 3.0) -> bool:
        """Read until `pred(self)` holds or the connection ends; False on timeout."""
        await self.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred(self):
            if self.closed:
                return False
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                data = await asyncio.wait_for(self.reader.read(65536), left)
            except asyncio.TimeoutError:
                return False
            except ConnectionResetError:
                self.closed = self.reset_by_peer = True
                continue
            if not data:
                self.closed = True
                continue
            events = self.conn.receive_data(data)
            if any(isinstance(e, ConnectionTerminated) and e.error_code == 0 for e in events):
                # h2 stops accepting frames after a GOAWAY, even the answers to streams below
                # its last-stream-id that a graceful GOAWAY promises; reopen it to see them.
                self.conn.state_machine.state = ConnectionState.CLIENT_OPEN
            self._absorb(events)
            out = self.conn.data_to_send()
            if out and not self.writer.is_closing():
                self.writer.write(out)
        return True

    def _absorb(self, events: list[object]) -> None:
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, ResponseReceived):
                r = self.responses[ev.stream_id]
                r.headers = list(ev.headers)
                r.status = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, DataReceived):
                self.responses[ev.stream_id].data_frames.append(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                self.responses[ev.stream_id].ended = True
            elif isinstance(ev, StreamReset):
                self.responses[ev.stream_id].reset = ev.error_code

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def done(self, *sids: int):
        return lambda c: all(c.responses[s].ended or c.responses[s].reset is not None for s in sids)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


MAX_STREAMS = SettingCodes.MAX_CONCURRENT_STREAMS
