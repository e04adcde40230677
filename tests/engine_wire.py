"""Drive an HTTP/2 engine protocol with an `h2` client through a fake transport (no sockets).

Shared by the fast-engine unit tests and the h2-vs-fast differential tests. What a client can
observe is reduced to plain tuples (`Wire.events`), so two engines can be compared for equality.
"""
from __future__ import annotations

from typing import Any, Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from pushsim.edge.types import ConnInfo, Headers, Reply


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)


class ScriptService:
    """A deterministic Service: the request path picks the reply; the body is echoed back.

    /ok → 200 + apns-id; /err/<code> → code + JSON body; /big/<n> → 200 with an n-byte body;
    /streams/<n> → 200 and max_streams=n; /goaway → 200 and goaway; /raise → handle raises;
    /fault/<name> → 200 with that fault.
    """

    def __init__(self, initial_max_streams: int | None = 100) -> None:
        self.seen: list[tuple[bytes, bytes, Headers, bytes]] = []
        self.opened: list[ConnInfo] = []
        self._initial = initial_max_streams

    def open(self, conn: ConnInfo) -> object:
        self.opened.append(conn)
        return {"n": 0}

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return self._initial

    def closing_reason(self) -> bytes:
        return b'{"reason":"Shutdown"}'

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        self.seen.append((method, path, headers, body))
        conn.state["n"] += 1                                 # type: ignore[index]
        n = conn.state["n"]                                  # type: ignore[index]
        parts = path.split(b"/")
        kind = parts[1] if len(parts) > 1 else b""
        arg = parts[2] if len(parts) > 2 else b""
        rid = b"id-%d" % n
        if kind == b"raise":
            raise RuntimeError("service bug")
        if kind == b"err":
            return Reply(int(arg or b"400"), [(b"content-type", b"application/json"), (b"apns-id", rid)],
                         b'{"reason":"BadDeviceToken","len":%d}' % len(body))
        if kind == b"big":
            return Reply(200, [(b"x-len", arg)], b"x" * int(arg or b"0"))
        if kind == b"streams":
            return Reply(200, [(b"apns-id", rid)], max_streams=int(arg or b"1"))
        if kind == b"goaway":
            return Reply(200, [(b"apns-id", rid)], goaway=b'{"reason":"Test"}')
        if kind == b"fault":
            return Reply(200, [(b"apns-id", rid)], fault=arg.decode())
        return Reply(200, [(b"apns-id", rid), (b"x-body-len", b"%d" % len(body))])


class Wire:
    """One client connection to one engine instance."""

    def __init__(self, engine: Callable[..., Any], service: Any, *,
                 client_settings: dict[int, int] | None = None) -> None:
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.client = h2.connection.H2Connection(cfg)
        if client_settings:
            self.client.local_settings = h2.settings.Settings(client=True, initial_values=client_settings)
        self.client.initiate_connection()
        self.transport = FakeTransport()
        self.conns: set = set()
        self.proto = engine(service, self.conns)
        self.proto.connection_made(self.transport)
        self.events: list[tuple] = []
        self.client_error: str | None = None
        self._seen_writes = 0
        self.pump()

    def pump(self) -> None:
        """Send what the client has queued, then feed every server write back to the client."""
        out = self.client.data_to_send()
        if out and not self.transport.closed:
            self.proto.data_received(out)
        self._drain()

    def send_raw(self, data: bytes) -> None:
        if not self.transport.closed:
            self.proto.data_received(data)
        self._drain()

    def _drain(self) -> None:
        while self._seen_writes < len(self.transport.writes):
            data = self.transport.writes[self._seen_writes]
            self._seen_writes += 1
            if self.client_error is not None:
                continue
            try:
                events = self.client.receive_data(data)
            except h2.exceptions.ProtocolError as err:
                self.client_error = type(err).__name__
                continue
            for ev in events:
                self._record(ev)
            more = self.client.data_to_send()           # SETTINGS/PING acks, window updates
            if more and not self.transport.closed:
                self.proto.data_received(more)

    def _record(self, ev: Any) -> None:
        E = h2.events
        if isinstance(ev, E.ResponseReceived):
            self.events.append(("headers", ev.stream_id, tuple(ev.headers)))
        elif isinstance(ev, E.DataReceived):
            self.events.append(("data", ev.stream_id, ev.data))
            if ev.flow_controlled_length and ev.stream_id in self.client.streams:
                self.client.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, E.StreamEnded):
            self.events.append(("end", ev.stream_id))
        elif isinstance(ev, E.StreamReset):
            self.events.append(("reset", ev.stream_id, int(ev.error_code)))
        elif isinstance(ev, E.ConnectionTerminated):
            self.events.append(("goaway", int(ev.error_code), ev.last_stream_id, ev.additional_data))
        elif isinstance(ev, E.RemoteSettingsChanged):
            mcs = ev.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
            if mcs is not None:
                self.events.append(("max_streams", mcs.new_value))
        elif isinstance(ev, E.PingAckReceived):
            self.events.append(("pong", ev.ping_data))

    def server_frames(self) -> list[tuple[int, int, int, bytes]]:
        """Every frame the server wrote, as (type, flags, stream id, payload), after the preface."""
        raw = b"".join(self.transport.writes)
        out, pos = [], 0
        while pos + 9 <= len(raw):
            n = int.from_bytes(raw[pos:pos + 3], "big")
            sid = int.from_bytes(raw[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            out.append((raw[pos + 3], raw[pos + 4], sid, raw[pos + 9:pos + 9 + n]))
            pos += 9 + n
        return out

    # convenience ---------------------------------------------------------------------------

    def request(self, path: bytes, body: bytes = b"", extra: Headers | None = None,
                end: bool = True) -> int:
        sid = self.client.get_next_available_stream_id()
        hdrs = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost"),
                (b":path", path)] + list(extra or [])
        self.client.send_headers(sid, hdrs, end_stream=end and not body)
        if body:
            self.client.send_data(sid, body, end_stream=end)
        self.pump()
        return sid

    def request_unchecked(self, headers: Headers, body: bytes = b"", *, end: bool = True,
                          chunks: int = 1) -> int:
        """Send `headers` exactly as given, malformed or not (the h2 client's own validation and
        normalisation are off for this request), then `body` in `chunks` DATA frames."""
        sid = self.send_headers_unchecked(headers, end=end and not body)
        step = -(-len(body) // chunks) if body else 0
        for i in range(0, len(body), step or 1):
            self.client.send_data(sid, body[i:i + step], end_stream=end and i + step >= len(body))
        self.pump()
        return sid

    def send_headers_unchecked(self, headers: Headers, *, end: bool, sid: int | None = None) -> int:
        """HEADERS (a request, or trailers when `sid` is an open stream) without client checks."""
        c = self.client
        cfg = c.config
        saved = cfg.validate_outbound_headers, cfg.normalize_outbound_headers
        cfg.validate_outbound_headers = cfg.normalize_outbound_headers = False
        try:
            if sid is None:
                sid = c.get_next_available_stream_id()
            c.send_headers(sid, headers, end_stream=end)
        finally:
            cfg.validate_outbound_headers, cfg.normalize_outbound_headers = saved
        return sid

    def responses(self) -> dict[int, dict]:
        """stream id → {"headers": {...}, "body": bytes, "ended": bool, "reset": code|None}."""
        out: dict[int, dict] = {}
        for ev in self.events:
            if ev[0] in ("headers", "data", "end", "reset"):
                r = out.setdefault(ev[1], {"headers": {}, "body": b"", "ended": False, "reset": None})
                if ev[0] == "headers":
                    r["headers"] = dict(ev[2])
                elif ev[0] == "data":
                    r["body"] += ev[2]
                elif ev[0] == "end":
                    r["ended"] = True
                else:
                    r["reset"] = ev[2]
        return out
