"""A hand-written HTTP/2 server engine for the hot path (HEADERS [+CONTINUATION] → DATA → reply).

Same contract and the same answers on the wire as `pushsim.edge.h2_engine.H2Protocol` (checked by
differential tests), at several times its throughput: one frame loop, a lean HPACK decoder with a
Huffman memo, table-free response encoding, big receive windows announced once, and one
`transport.write` per `data_received`. Error handling follows RFC 9113 and, where the RFC leaves a
choice, does what the h2 library does (so the two engines agree). Anything odd is a connection error.
"""
from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from hpack.exceptions import HPACKError

from . import frames as F
from .hpack_fast import HpackDecoder, OversizedHeaderList, encode_block
from .types import ConnInfo, Reply, Service

DEFAULT_MAX_STREAMS = 100            # the h2 library's default when the service has no opinion
MAX_HEADER_LIST = 65536              # same limit as hpack's default decoder
STREAM_WINDOW = 1 << 24              # announced once in SETTINGS; bodies this large are rare
CONN_WINDOW = 1 << 30
MAX_CONTINUATIONS = 64
CLOSED_MEMORY = 4096                 # how many closed stream ids we remember (and how each closed)
_ENDED, _RESET = 1, 2
_U32 = struct.Struct(">L").unpack_from
_HDR = struct.Struct(">BHBBL").unpack_from
_INTERNAL = Reply(500, [(b"content-type", b"application/json")], b'{"reason":"InternalServerError"}')


class ConnectionError_(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Stream:
    __slots__ = ("sid", "method", "path", "headers", "body", "recv_open", "recv_window",
                 "send_window", "pending", "timer")

    def __init__(self, sid: int, method: bytes, path: bytes, headers: list, send_window: int) -> None:
        self.sid = sid
        self.method = method
        self.path = path
        self.headers = headers
        self.body: list[bytes] = []
        self.recv_open = True          # the client may still send (not half-closed remote)
        self.recv_window = STREAM_WINDOW
        self.send_window = send_window
        self.pending: bytes | None = None   # response body waiting for flow-control credit
        self.timer: asyncio.TimerHandle | None = None


def _request_line(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes] | None:
    """(:method, :path), or None when the pseudo-headers make the request malformed (RFC 9113 §8.3)."""
    method = path = None
    regular = False
    for name, value in headers:
        if name[:1] == b":":
            if regular:
                return None
            if name == b":method":
                if method is not None:
                    return None
                method = value
            elif name == b":path":
                if path is not None:
                    return None
                path = value
            elif name != b":scheme" and name != b":authority":
                return None
        else:
            regular = True
    if method is None or path is None:
        return None
    return method, path


class FastH2Protocol(asyncio.Protocol):
    def __init__(self, service: Service, conns: set) -> None:
        self.service = service
        self.conns = conns
        self.conn: ConnInfo | None = None
        self.transport: Any = None
        self.streams: dict[int, _Stream] = {}
        self._closed: dict[int, int] = {}
        self._out: list[bytes] = []
        self._buf = b""
        self._preface = False
        self._dead = False
        self._closing = False                  # GOAWAY sent or received: close once drained
        self._goaway_last: int | None = None
        self.highest = 0
        self._decoder = HpackDecoder(MAX_HEADER_LIST)
        self._hdr_sid = 0                      # stream whose header block is being continued
        self._hdr_parts: list[bytes] = []
        self._hdr_end_stream = False
        self._recv_conn = CONN_WINDOW
        self._send_conn = F.DEFAULT_WINDOW
        self._peer_window = F.DEFAULT_WINDOW
        self._peer_max_frame = F.DEFAULT_MAX_FRAME
        self._max_streams = DEFAULT_MAX_STREAMS
        self._announced = DEFAULT_MAX_STREAMS
        self._unacked: list[int | None] = []   # MAX_CONCURRENT_STREAMS in each SETTINGS not yet acked
        self._blocked: dict[int, _Stream] = {}

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        ssl_obj = transport.get_extra_info("ssl_object")
        alpn = cert = None
        if ssl_obj is not None:
            alpn = ssl_obj.selected_alpn_protocol()
            cert = ssl_obj.getpeercert(binary_form=True)
        self.conn = ConnInfo(tls=ssl_obj is not None, alpn=alpn, http2=True, peer_cert_der=cert,
                             peer=transport.get_extra_info("peername"))
        self.conn.state = self.service.open(self.conn)
        self.conns.add(self)
        initial = self.service.initial_max_streams(self.conn)
        self._max_streams = self._announced = DEFAULT_MAX_STREAMS if initial is None else initial
        self._unacked.append(None)
        transport.write(F.settings([(F.MAX_CONCURRENT_STREAMS, self._max_streams),
                                    (F.INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                                    (F.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST)])
                        + F.window_update(0, CONN_WINDOW - F.DEFAULT_WINDOW))

    def connection_lost(self, exc: Exception | None) -> None:
        self._dead = True
        self.conns.discard(self)
        for st in self.streams.values():
            if st.timer is not None:
                st.timer.cancel()
        self.streams.clear()
        self._blocked.clear()

    def shutdown(self, debug: bytes) -> None:
        """GOAWAY(last stream, NO_ERROR, debug); close once the in-flight streams are answered."""
        if self._dead:
            return
        self._goaway(debug)
        self._flush()
        self._maybe_close()

    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        buf = self._buf + data if self._buf else data
        pos = 0
        try:
            if not self._preface:
                if len(buf) < 24:
                    if not F.PREFACE.startswith(buf):
                        raise ConnectionError_(F.PROTOCOL_ERROR)
                    self._buf = buf
                    return
                if buf[:24] != F.PREFACE:
                    raise ConnectionError_(F.PROTOCOL_ERROR)
                self._preface = True
                pos = 24
            end = len(buf)
            while end - pos >= 9:
                hi, lo, ftype, flags, sid = _HDR(buf, pos)
                length = (hi << 16) | lo
                if length > F.DEFAULT_MAX_FRAME:
                    raise ConnectionError_(F.FRAME_SIZE_ERROR)
                stop = pos + 9 + length
                if stop > end:
                    break
                payload = buf[pos + 9:stop]
                pos = stop
                sid &= 0x7FFFFFFF
                if self._hdr_sid:
                    self._continuation(ftype, flags, sid, payload)
                elif ftype == F.HEADERS:
                    self._headers(flags, sid, payload)
                elif ftype == F.DATA:
                    self._data(flags, sid, payload)
                else:
                    self._control(ftype, flags, sid, payload)
                if self._dead:
                    return
        except ConnectionError_ as err:
            self._fail(err.code)
            return
        self._buf = buf[pos:] if pos < len(buf) else b""
        self._flush()
        self._maybe_close()

    # ---- frames ------------------------------------------------------------------------------

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0 or not sid & 1:
            raise ConnectionError_(F.PROTOCOL_ERROR)
        if flags & F.PADDED:
            payload = _unpad(payload)
        if flags & F.PRIORITY_FLAG:
            if len(payload) < 5:
                raise ConnectionError_(F.FRAME_SIZE_ERROR)
            if _U32(payload)[0] & 0x7FFFFFFF == sid:
                raise ConnectionError_(F.PROTOCOL_ERROR)
            payload = payload[5:]
        if flags & F.END_HEADERS:
            self._header_block(sid, payload, bool(flags & F.END_STREAM))
        else:
            self._hdr_sid = sid
            self._hdr_parts = [payload]
            self._hdr_end_stream = bool(flags & F.END_STREAM)

    def _continuation(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype != F.CONTINUATION or sid != self._hdr_sid:
            raise ConnectionError_(F.PROTOCOL_ERROR)
        self._hdr_parts.append(payload)
        if flags & F.END_HEADERS:
            self._hdr_sid = 0
            block = b"".join(self._hdr_parts)
            self._hdr_parts = []
            self._header_block(sid, block, self._hdr_end_stream)
        elif len(self._hdr_parts) > MAX_CONTINUATIONS:
            raise ConnectionError_(F.ENHANCE_YOUR_CALM)

    def _header_block(self, sid: int, block: bytes, end_stream: bool) -> None:
        try:
            headers = self._decoder.decode(block)     # always, to keep the HPACK context in step
        except OversizedHeaderList:
            raise ConnectionError_(F.ENHANCE_YOUR_CALM) from None
        except HPACKError:
            raise ConnectionError_(F.COMPRESSION_ERROR) from None
        st = self.streams.get(sid)
        if st is not None:
            if st.recv_open and end_stream:        # trailers: accepted and ignored
                st.recv_open = False
                self._dispatch(st)
            elif st.recv_open:
                raise ConnectionError_(F.PROTOCOL_ERROR)
            else:
                self._reset(st, F.STREAM_CLOSED)
            return
        if sid <= self.highest:
            how = self._closed.get(sid)
            if how == _RESET:
                self._out.append(F.rst_stream(sid, F.STREAM_CLOSED))
                return
            raise ConnectionError_(F.STREAM_CLOSED if how == _ENDED else F.PROTOCOL_ERROR)
        if self._closing:
            return                                   # beyond our GOAWAY (or after theirs): ignored
        self.highest = sid
        if len(self.streams) >= self._max_streams:
            self._out.append(F.rst_stream(sid, F.REFUSED_STREAM))
            self._remember(sid, _RESET)
            return
        line = _request_line(headers)
        if line is None:
            self._out.append(F.rst_stream(sid, F.PROTOCOL_ERROR))
            self._remember(sid, _RESET)
            return
        st = _Stream(sid, line[0], line[1], headers, self._peer_window)
        self.streams[sid] = st
        if end_stream:
            st.recv_open = False
            self._dispatch(st)

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise ConnectionError_(F.PROTOCOL_ERROR)
        flow = len(payload)
        if flags & F.PADDED:
            payload = _unpad(payload)
        self._recv_conn -= flow
        if self._recv_conn < 0:
            raise ConnectionError_(F.FLOW_CONTROL_ERROR)
        if self._recv_conn < CONN_WINDOW // 2:
            self._out.append(F.window_update(0, CONN_WINDOW - self._recv_conn))
            self._recv_conn = CONN_WINDOW
        st = self.streams.get(sid)
        if st is None or not st.recv_open:
            if sid > self.highest:
                if self._closing:
                    return                           # a stream beyond our GOAWAY: ignored
                raise ConnectionError_(F.PROTOCOL_ERROR)     # DATA on an idle stream
            if st is not None:
                self._reset(st, F.STREAM_CLOSED)
            else:
                self._out.append(F.rst_stream(sid, F.STREAM_CLOSED))
            return
        st.recv_window -= flow
        if st.recv_window < 0:
            raise ConnectionError_(F.FLOW_CONTROL_ERROR)
        if payload:
            st.body.append(payload)
        if flags & F.END_STREAM:
            st.recv_open = False
            self._dispatch(st)
        elif st.recv_window < STREAM_WINDOW // 2:
            self._out.append(F.window_update(sid, STREAM_WINDOW - st.recv_window))
            st.recv_window = STREAM_WINDOW

    def _control(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        n = len(payload)
        if ftype == F.SETTINGS:
            if sid:
                raise ConnectionError_(F.PROTOCOL_ERROR)
            if flags & F.ACK:
                if n:
                    raise ConnectionError_(F.FRAME_SIZE_ERROR)
                if self._unacked:
                    value = self._unacked.pop(0)
                    if value is not None:
                        self._max_streams = value
                return
            if n % 6:
                raise ConnectionError_(F.FRAME_SIZE_ERROR)
            self._peer_settings(payload)
            self._out.append(F.SETTINGS_ACK)
        elif ftype == F.PING:
            if sid:
                raise ConnectionError_(F.PROTOCOL_ERROR)
            if n != 8:
                raise ConnectionError_(F.FRAME_SIZE_ERROR)
            if not flags & F.ACK:
                self._out.append(F.ping_ack(payload))
        elif ftype == F.WINDOW_UPDATE:
            if n != 4:
                raise ConnectionError_(F.FRAME_SIZE_ERROR)
            inc = _U32(payload)[0] & 0x7FFFFFFF
            if inc == 0:
                raise ConnectionError_(F.PROTOCOL_ERROR)
            if sid == 0:
                self._send_conn += inc
                if self._send_conn > F.MAX_WINDOW:
                    raise ConnectionError_(F.FLOW_CONTROL_ERROR)
                self._unblock()
            elif sid > self.highest:
                if not self._closing:
                    raise ConnectionError_(F.PROTOCOL_ERROR)
            elif (st := self.streams.get(sid)) is not None:
                st.send_window += inc
                if st.send_window > F.MAX_WINDOW:
                    raise ConnectionError_(F.FLOW_CONTROL_ERROR)
                if st.pending is not None:
                    self._send_body(st)
        elif ftype == F.RST_STREAM:
            if n != 4:
                raise ConnectionError_(F.FRAME_SIZE_ERROR)
            if sid == 0 or (sid > self.highest and not self._closing):
                raise ConnectionError_(F.PROTOCOL_ERROR)
            st = self.streams.get(sid)
            if st is not None:
                self._end(st, _RESET)
        elif ftype == F.PRIORITY:                    # ignored, as APNs does; only checked
            if n != 5:
                raise ConnectionError_(F.FRAME_SIZE_ERROR)
            if sid == 0 or _U32(payload)[0] & 0x7FFFFFFF == sid:
                raise ConnectionError_(F.PROTOCOL_ERROR)
        elif ftype == F.GOAWAY:
            if sid:
                raise ConnectionError_(F.PROTOCOL_ERROR)
            if n < 8:
                raise ConnectionError_(F.FRAME_SIZE_ERROR)
            self._closing = True                     # answer what is in flight, then close
        elif ftype in (F.PUSH_PROMISE, F.CONTINUATION):
            raise ConnectionError_(F.PROTOCOL_ERROR)
        # unknown frame types are ignored (RFC 9113 §4.1)

    def _peer_settings(self, payload: bytes) -> None:
        for off in range(0, len(payload), 6):
            ident = (payload[off] << 8) | payload[off + 1]
            value = _U32(payload, off + 2)[0]
            if ident == F.INITIAL_WINDOW_SIZE:
                if value > F.MAX_WINDOW:
                    raise ConnectionError_(F.FLOW_CONTROL_ERROR)
                delta = value - self._peer_window
                self._peer_window = value
                for st in self.streams.values():
                    st.send_window += delta
                    if st.send_window > F.MAX_WINDOW:
                        raise ConnectionError_(F.FLOW_CONTROL_ERROR)
                if delta > 0:
                    self._unblock()
            elif ident == F.MAX_FRAME_SIZE:
                if not F.DEFAULT_MAX_FRAME <= value <= 0xFFFFFF:
                    raise ConnectionError_(F.PROTOCOL_ERROR)
                self._peer_max_frame = value
            elif ident == F.ENABLE_PUSH or ident == 8:     # 8 = ENABLE_CONNECT_PROTOCOL
                if value > 1:
                    raise ConnectionError_(F.PROTOCOL_ERROR)

    # ---- answering ---------------------------------------------------------------------------

    def _dispatch(self, st: _Stream) -> None:
        body = st.body[0] if len(st.body) == 1 else b"".join(st.body)
        st.body = []
        try:
            reply = self.service.handle(self.conn, st.method, st.path, st.headers, body)
        except Exception:                            # the contract: a raise becomes a 500
            reply = _INTERNAL
        if reply.delay > 0:
            st.timer = asyncio.get_event_loop().call_later(reply.delay, self._delayed, st, reply)
        else:
            self._answer(st, reply)

    def _delayed(self, st: _Stream, reply: Reply) -> None:
        st.timer = None
        if self._dead or self.streams.get(st.sid) is not st:
            return                                   # reset or connection gone meanwhile
        self._answer(st, reply)
        self._flush()
        self._maybe_close()

    def _answer(self, st: _Stream, reply: Reply) -> None:
        if reply.fault is not None and self._fault(st, reply):
            return
        body = reply.body
        self._out.append(F.headers_frames(st.sid, encode_block(reply.status, reply.headers),
                                          not body, self._peer_max_frame))
        if body:
            st.pending = body
            self._send_body(st)
        else:
            self._end(st, _ENDED)
        if reply.max_streams is not None and reply.max_streams != self._announced:
            self._announced = reply.max_streams
            self._unacked.append(reply.max_streams)
            self._out.append(F.settings([(F.MAX_CONCURRENT_STREAMS, reply.max_streams)]))
        if reply.goaway is not None:
            self._goaway(reply.goaway)

    def _fault(self, st: _Stream, reply: Reply) -> bool:
        """Apply an injected fault; True when it replaces the reply."""
        fault = reply.fault
        if fault == "rst_stream":
            self._reset(st, F.INTERNAL_ERROR)
        elif fault == "stall":
            pass                                     # never answered; the client's timeout decides
        elif fault == "tcp_reset":
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._dead = True
            self.transport.abort()
        elif fault == "goaway":
            self._goaway(reply.goaway or b"")
            self._flush()
            self._dead = True
            self.transport.close()
        else:
            return False                             # unknown fault: ignored safely
        return True

    def _send_body(self, st: _Stream) -> None:
        data = st.pending
        assert data is not None
        credit = min(self._send_conn, st.send_window)
        if credit <= 0:
            self._blocked[st.sid] = st
            return
        chunk = data if len(data) <= credit else data[:credit]
        last = len(chunk) == len(data)
        self._out.append(F.data_frames(st.sid, chunk, last, self._peer_max_frame))
        self._send_conn -= len(chunk)
        st.send_window -= len(chunk)
        if last:
            st.pending = None
            self._blocked.pop(st.sid, None)
            self._end(st, _ENDED)
        else:
            st.pending = data[len(chunk):]
            self._blocked[st.sid] = st

    def _unblock(self) -> None:
        for st in list(self._blocked.values()):
            if self._send_conn <= 0:
                break
            if st.send_window > 0:
                self._send_body(st)

    # ---- stream and connection ends ----------------------------------------------------------

    def _remember(self, sid: int, how: int) -> None:
        closed = self._closed
        closed[sid] = how
        if len(closed) > CLOSED_MEMORY:
            del closed[next(iter(closed))]

    def _end(self, st: _Stream, how: int) -> None:
        if self.streams.pop(st.sid, None) is None:
            return
        if st.timer is not None:
            st.timer.cancel()
            st.timer = None
        self._blocked.pop(st.sid, None)
        self._remember(st.sid, how)

    def _reset(self, st: _Stream, code: int) -> None:
        self._out.append(F.rst_stream(st.sid, code))
        self._end(st, _RESET)

    def _goaway(self, debug: bytes) -> None:
        if self._goaway_last is not None:
            return
        self._goaway_last = self.highest
        self._closing = True
        self._out.append(F.goaway(self.highest, F.NO_ERROR, debug))

    def _maybe_close(self) -> None:
        if self._closing and not self.streams and not self._dead:
            self._flush()
            self._dead = True
            self.transport.close()

    def _fail(self, code: int) -> None:
        self._out.append(F.goaway(self.highest, code))
        self._flush()
        self._dead = True
        self.transport.close()

    def _flush(self) -> None:
        if self._out:
            out = self._out
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()


def _unpad(payload: bytes) -> bytes:
    if not payload:
        raise ConnectionError_(F.FRAME_SIZE_ERROR)
    pad = payload[0]
    if pad >= len(payload):
        raise ConnectionError_(F.PROTOCOL_ERROR)
    return payload[1:len(payload) - pad]
