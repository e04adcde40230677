"""HTTP/1.1 engine on httptools (llhttp): keep-alive, pipelining, chunked bodies, 100-continue.

Services see the same request shape as over HTTP/2: lowercase header names as bytes, with
`:method`, `:path`, `:scheme`, `:authority` pseudo entries first. Responses go out in request
order; everything produced while handling one `data_received` leaves in a single write. A reply
delayed (fault injection) holds back the ones pipelined behind it, as HTTP/1.1 requires.
"""
from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from http import HTTPStatus

import httptools

from .guard import ConnGuard
from .limits import DEFAULT_LIMITS, EdgeLimits
from .types import GOAWAY, RST_STREAM, STALL, TCP_RESET, ConnInfo, Headers, Reply, Service

MAX_BODY = 4 * 1024 * 1024            # Google's front ends refuse request bodies far below this too
MAX_HEADER_BYTES = 64 * 1024
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ERROR_PAGE = b"<!DOCTYPE html>\n<title>Error %d</title>\n<p><b>%d.</b> That's an error.\n"


def error_reply(status: int) -> Reply:
    """Google's front-end error page (what FCM's edge answers before FCM sees a request)."""
    return Reply(status, [(b"content-type", b"text/html; charset=UTF-8")], _ERROR_PAGE % (status, status))


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d Unknown\r\n" % status


_HEADS: dict[tuple, bytes] = {}      # (status, header tuple) → encoded head up to the content-length value
_HEADS_MAX = 256


def render(status: int, headers: Headers, body: bytes, close: bool, head: bool = False) -> bytes:
    if not close and len(headers) == 1:
        # The usual reply (one constant content-type): its head is encoded once.
        key = (status, headers[0])
        start = _HEADS.get(key)
        if start is None:
            k, v = headers[0]
            start = _status_line(status) + k + b": " + v + b"\r\ncontent-length: "
            if len(_HEADS) < _HEADS_MAX:
                _HEADS[key] = start
        return start + b"%d\r\n\r\n" % len(body) + (b"" if head else body)
    parts = [_status_line(status)]
    for k, v in headers:
        parts += (k, b": ", v, b"\r\n")
    parts.append(b"content-length: %d\r\n" % len(body))
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if not head:
        parts.append(body)
    return b"".join(parts)


class Http1Protocol(ConnGuard, asyncio.Protocol):
    """One HTTP/1.1 connection. Bounds (pushsim.edge.guard): the first request head within
    `handshake_timeout`, idle keep-alive connections closed after `idle_timeout`, reading paused
    while the peer does not read our replies."""
    max_body = MAX_BODY

    def __init__(self, service: Service, conns: set, limits: EdgeLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.max_body = min(self.max_body, limits.max_body)
        self.service = service
        self.conns = conns
        self.transport: asyncio.Transport | None = None
        self.conn: ConnInfo | None = None
        self.parser = httptools.HttpRequestParser(self)
        self._queue: deque[list] = deque()   # [bytes | None (not ready yet), close after it]
        self._done = False                   # a reply decided to close: ignore further requests
        self._closing = False                # shutdown(): close once idle
        self._in_message = False
        self._eof = False
        self._scheme = b"http"
        self._reset_message()

    # connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport          # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        cert = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self._scheme = b"https" if ssl_object is not None else b"http"
        self.conn = ConnInfo(tls=ssl_object is not None, alpn=alpn, http2=False, peer_cert_der=cert,
                             peer=transport.get_extra_info("peername"))
        self.conn.state = self.service.open(self.conn)
        self.conns.add(self)
        limit_of = getattr(self.service, "request_body_limit", None)
        limit = limit_of(self.conn) if limit_of is not None else None
        if limit is not None:
            self.max_body = min(self.max_body, limit)
        self._guard_start()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self)
        self._done = True
        self._guard_stop()

    def eof_received(self) -> bool:
        # The client half-closed after its requests: answer what is still owed, then close.
        self._eof = True
        if not self._queue:
            return False
        return True

    # guard (pushsim.edge.guard: pause_writing / resume_writing come from there) -----------
    def _guard_dead(self) -> bool:
        return self._done or self.transport is None or self.transport.is_closing()

    def _owes_answers(self) -> bool:
        return bool(self._queue) or self._in_message

    def _calm(self, code: int, abort: bool = False) -> None:
        self._done = True
        t = self.transport
        if t is not None:
            t.abort() if abort else t.close()

    def _idle_close(self, abort: bool) -> None:
        self._calm(0, abort)

    def shutdown(self, debug: bytes = b"") -> None:
        """Close now if idle; otherwise the next reply carries `Connection: close`."""
        self._closing = True
        if not self._in_message and not self._queue and self.transport is not None:
            self._done = True
            self.transport.close()

    # parsing ------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._reads += 1
        if self._in_message and not self._head_done:
            # llhttp buffers header bytes without bound; refuse an endless request head.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._error(431)
                self._flush()
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            # An `Upgrade: h2c` request was answered over HTTP/1.1 (RFC 9113 lets us ignore it); keep going.
            offset = e.args[0] if e.args and isinstance(e.args[0], int) else len(data)
            self.parser = httptools.HttpRequestParser(self)
            self._in_message = False
            if offset < len(data):
                return self.data_received(data[offset:])
        except httptools.HttpParserError:
            self._error(400)
        if self._reject:
            self._error(self._reject)
        self._flush()
        if len(data) >= 65536:                # let other connections have the loop (guard.py)
            self._yield_reading()

    def _reset_message(self) -> None:
        self._url: list[bytes] = []
        self._headers: Headers = []
        self._authority: bytes | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._head_bytes = 0
        self._head_done = False
        self._reject = 0

    def on_message_begin(self) -> None:
        self._in_message = True
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))    # hot: one call per header, keep it bare

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._ready = True
        for name, value in self._headers:
            if name == b"host":
                if self._authority is None:
                    self._authority = value
            elif name == b"content-length":
                if value.strip().isdigit() and int(value) > self.max_body:
                    self._reject = 413
            elif name == b"expect" and value.lower() == b"100-continue" and not self._reject and not self._done:
                self._queue.append([_CONTINUE, False])

    def on_body(self, chunk: bytes) -> None:
        if self._reject:
            return
        self._size += len(chunk)
        if self._size > self.max_body:
            self._reject = 413
            self._body = []
        else:
            self._body.append(chunk)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._done or self._reject:
            return
        method = self.parser.get_method()
        path = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        if path[:1] != b"/" and path[:4].lower() == b"http":
            # absolute-form target (as sent to proxies): keep the path, the authority wins over Host
            _, sep, rest = path.partition(b"://")
            if sep:
                authority, slash, tail = rest.partition(b"/")
                self._authority, path = authority, slash + tail if slash else b"/"
        headers: Headers = [(b":method", method), (b":path", path), (b":scheme", self._scheme)]
        if self._authority is not None:
            headers.append((b":authority", self._authority))
        headers += self._headers
        body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        try:
            reply = self.service.handle(self.conn, method, path, headers, body)  # type: ignore[arg-type]
        except Exception:
            reply = Reply(500, [(b"content-type", b"text/html; charset=UTF-8")], _ERROR_PAGE % (500, 500))
        keep = self.parser.should_keep_alive()
        self._respond(reply, not keep or self._closing, method == b"HEAD")

    # replies ------------------------------------------------------------------------------
    def _respond(self, reply: Reply, close: bool, head: bool) -> None:
        close = close or reply.close or reply.goaway is not None or reply.fault == GOAWAY
        fault = reply.fault
        if fault in (TCP_RESET, RST_STREAM):
            self._done = True
            self._queue.append([None, True])     # nothing behind this request will be answered
            self._abort(fault == TCP_RESET)
            return
        if close:
            self._done = True
        if fault == STALL:
            self._queue.append([None, close])    # never filled: this and every later reply hang
            return
        data = render(reply.status, reply.headers, reply.body, close, head)
        if reply.delay > 0:
            slot: list = [None, close]
            self._queue.append(slot)
            asyncio.get_running_loop().call_later(reply.delay, self._fill, slot, data)
        else:
            self._queue.append([data, close])

    def _fill(self, slot: list, data: bytes) -> None:
        slot[0] = data
        self._flush()

    def _error(self, status: int) -> None:
        self._done = True
        self._reject = 0
        body = _ERROR_PAGE % (status, status)
        self._queue.append([render(status, [(b"content-type", b"text/html; charset=UTF-8")], body, True), True])

    def _flush(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        out: list[bytes] = []
        close = False
        q = self._queue
        while q and q[0][0] is not None:
            data, close = q.popleft()
            out.append(data)
            if close:
                q.clear()
                break
        if out:
            t.write(out[0] if len(out) == 1 else b"".join(out))
            if self._paused and self._write_overflow():
                self._calm(0, abort=True)
                return
        if close or (not q and (self._eof or (self._closing and not self._in_message))):
            t.close()

    def _abort(self, reset: bool) -> None:
        t = self.transport
        if t is None:
            return
        self._flush_ready_only()
        if reset:
            sock = t.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            t.abort()
        else:
            t.close()

    def _flush_ready_only(self) -> None:
        # Replies already decided before the fault still go out (a reset may discard them anyway).
        t = self.transport
        out = []
        while self._queue and self._queue[0][0] is not None:
            out.append(self._queue.popleft()[0])
        self._queue.clear()
        if out and t is not None and not t.is_closing():
            t.write(b"".join(out))
