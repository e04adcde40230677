"""A small synchronous HTTP/2 client for gevent: many greenlets share one connection.

Locust runs users as greenlets on one OS thread, so an asyncio client does not fit. This client
keeps the protocol in `h2` (sans-IO) and the I/O on gevent sockets: callers write under a lock, one
reader greenlet parses frames and wakes the greenlet waiting for each stream. It honours what an
APNs-like server does to a client: MAX_CONCURRENT_STREAMS starting at 1 and changing at any time,
connection- and stream-level flow control, RST_STREAM, GOAWAY (streams above last-stream-id fail as
retryable, the next request opens a new connection), and PING (h2 answers it).

It uses gevent's socket and ssl modules explicitly, so it also works in a process that gevent did
not monkey-patch (the unit tests).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gevent
import gevent.event
import gevent.lock
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from gevent import socket as gsocket
from gevent import ssl as gssl


def _code_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


class H2Error(Exception):
    """A request failed without a response. `retryable` means it never reached the application."""

    retryable = False


class ConnectionClosed(H2Error):
    pass


class GoAway(H2Error):
    def __init__(self, error_code: int, debug: bytes) -> None:
        super().__init__(f"GOAWAY {_code_name(error_code)} {debug[:200]!r}")
        self.error_code = error_code
        self.debug = debug
        self.retryable = True


class StreamReset(H2Error):
    def __init__(self, error_code: int) -> None:
        super().__init__(f"RST_STREAM {_code_name(error_code)}")
        self.error_code = error_code
        self.retryable = error_code == h2.errors.ErrorCodes.REFUSED_STREAM


class RequestTimeout(H2Error):
    pass


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Stream:
    result: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


def client_context(ca_file: str | None, cert: tuple[str, str] | None = None,
                   verify: bool = True) -> gssl.SSLContext:
    ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    if verify:
        if ca_file:
            ctx.load_verify_locations(ca_file)
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = gssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    ctx.set_alpn_protocols(["h2"])
    return ctx


class _DrainAfterGoaway(h2.connection.H2ConnectionStateMachine):
    """h2 closes its state machine on GOAWAY and then rejects the frames of streams the server
    still answers (those at or below last-stream-id), which RFC 9113 §6.8 says complete normally.
    Stay open instead; the client itself stops opening streams on that connection."""

    def process_input(self, input_: h2.connection.ConnectionInputs) -> list:
        if input_ is h2.connection.ConnectionInputs.RECV_GOAWAY and \
                self.state is not h2.connection.ConnectionState.CLOSED:
            return []
        return super().process_input(input_)


class _Connection:
    """One socket and its h2 state. Dead once closed or after GOAWAY; never reopened."""

    def __init__(self, sock: gsocket.socket, authority: str, scheme: str, settings_timeout: float) -> None:
        self.sock = sock
        self.authority = authority
        self.scheme = scheme
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_inbound_headers=False))
        self.h2.state_machine = _DrainAfterGoaway()
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
        })
        self.streams: dict[int, _Stream] = {}
        self.send_lock = gevent.lock.RLock()
        self.changed = gevent.event.Event()       # a slot, window or settings may have changed
        self.settings_seen = gevent.event.Event()
        self.closed: H2Error | None = None
        self.goaway = False
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window((1 << 24) - 65535)
        self._flush()
        self.reader = gevent.spawn(self._read_loop)
        # Open no stream before the server said how many it allows: APNs starts at 1.
        self.settings_seen.wait(settings_timeout)

    @property
    def usable(self) -> bool:
        return self.closed is None and not self.goaway

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def _wake(self) -> None:
        # A fresh Event per generation: set-then-clear on one Event may never wake its waiters.
        old, self.changed = self.changed, gevent.event.Event()
        old.set()

    def _wait_change(self, deadline: float, what: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.changed.wait(remaining) and time.monotonic() >= deadline:
            raise RequestTimeout(f"timed out waiting for {what}")

    def open_stream(self, headers: list[tuple[bytes, bytes]], body: bytes, deadline: float) -> tuple[int, _Stream]:
        while True:
            if not self.usable:
                raise self.closed or GoAway(0, b"connection is going away")
            # Check the limit under the lock that opens the stream: taking the lock may yield, and
            # another greenlet could take the last slot in between.
            with self.send_lock:
                if self.usable and self.h2.open_outbound_streams < self.h2.remote_settings.max_concurrent_streams:
                    sid = self.h2.get_next_available_stream_id()
                    stream = _Stream()
                    self.streams[sid] = stream
                    self.h2.send_headers(sid, headers, end_stream=not body)
                    self._flush()
                    break
            self._wait_change(deadline, "a free stream slot")
        if body:
            self._send_body(sid, body, deadline)
        return sid, stream

    def _send_body(self, sid: int, body: bytes, deadline: float) -> None:
        view = memoryview(body)
        while view:
            with self.send_lock:
                if self.closed:
                    raise self.closed
                window = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
                if window > 0:
                    chunk, view = view[:window], view[window:]
                    self.h2.send_data(sid, bytes(chunk), end_stream=not view)
                    self._flush()
                    continue
            self._wait_change(deadline, "flow-control window")

    def cancel(self, sid: int) -> None:
        self.streams.pop(sid, None)
        with self.send_lock:
            try:
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                self._flush()
            except (h2.exceptions.H2Error, OSError):
                pass
        self._wake()

    def _read_loop(self) -> None:
        error: H2Error = ConnectionClosed("connection closed by peer")
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                with self.send_lock:
                    events = self.h2.receive_data(data)
                    for event in events:
                        self._handle(event)
                    self._flush()
                self._wake()
                if self.goaway and not self.streams:
                    error = ConnectionClosed("closed after GOAWAY once its last streams finished")
                    break
        except (OSError, h2.exceptions.H2Error) as exc:
            error = ConnectionClosed(f"connection error: {exc!r}")
        self._fail_all(error)

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                for name, value in event.headers:
                    if name == b":status":
                        stream.status = int(value)
                    else:
                        stream.headers[name.decode()] = value.decode("latin-1")
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.body += event.data
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.result.set(Response(stream.status, stream.headers, bytes(stream.body)))
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.result.set_exception(StreamReset(event.error_code))
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = True
            error = GoAway(event.error_code, event.additional_data or b"")
            last = event.last_stream_id if event.last_stream_id is not None else 0
            for sid in [s for s in self.streams if s > last]:
                self.streams.pop(sid).result.set_exception(error)
            if not self.streams:
                self.closed = error

    def _fail_all(self, error: H2Error) -> None:
        if self.closed is None:
            self.closed = error
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            if not stream.result.ready():
                stream.result.set_exception(error)
        self.settings_seen.set()
        self._wake()
        try:
            self.sock.close()
        except OSError:
            pass

    def close(self) -> None:
        with self.send_lock:
            try:
                self.h2.close_connection()
                self._flush()
            except (h2.exceptions.H2Error, OSError):
                pass
        self._fail_all(ConnectionClosed("closed by client"))
        self.reader.kill(block=False)


class H2Client:
    """`request()` from any number of greenlets; they share one connection (reopened when dead).

    `url` is `https://host:port` (TLS, ALPN h2) or `http://host:port` (h2c, prior knowledge).
    """

    def __init__(self, url: str, *, ca_file: str | None = None, cert: tuple[str, str] | None = None,
                 verify: bool = True, connect_timeout: float = 5.0, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.authority = f"{self.host}:{self.port}"
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._ctx = client_context(ca_file, cert, verify) if self.scheme == "https" else None
        self._conn: _Connection | None = None
        self._connect_lock = gevent.lock.Semaphore()
        self.connections_opened = 0

    def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        with self._connect_lock:
            conn = self._conn
            if conn is not None and conn.usable:
                return conn
            sock = gsocket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
            if self._ctx is not None:
                sock = self._ctx.wrap_socket(sock, server_hostname=self.host)
                alpn = sock.selected_alpn_protocol()
                if alpn not in (None, "h2"):
                    sock.close()
                    raise ConnectionClosed(f"server chose ALPN {alpn!r}, not h2")
            sock.settimeout(None)
            self._conn = _Connection(sock, self.authority, self.scheme, self.connect_timeout)
            self.connections_opened += 1
            return self._conn

    def request(self, method: str, path: str, headers: list[tuple[str, str]] | None = None,
                body: bytes = b"", timeout: float | None = None) -> Response:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        try:
            conn = self._connection()
        except OSError as exc:          # refused, TLS handshake (ssl.SSLError is an OSError)
            raise ConnectionClosed(f"connect failed: {exc!r}") from exc
        wire = [(b":method", method.encode()), (b":scheme", conn.scheme.encode()),
                (b":authority", conn.authority.encode()), (b":path", path.encode())]
        wire += [(k.lower().encode(), v.encode()) for k, v in headers or ()]
        try:
            sid, stream = conn.open_stream(wire, body, deadline)
        except (OSError, h2.exceptions.ProtocolError) as exc:
            error = ConnectionClosed(f"send failed: {exc!r}")
            conn._fail_all(error)
            raise error from exc
        try:
            return stream.result.get(timeout=max(0.0, deadline - time.monotonic()))
        except gevent.Timeout:
            conn.cancel(sid)
            raise RequestTimeout(f"no response within {timeout or self.timeout:.1f}s") from None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
