"""A hand-written HTTP/2 server engine for the hot path (HEADERS [+CONTINUATION] → DATA → reply).

Same contract and the same answers on the wire as `pushsim.edge.h2_engine.H2Protocol` (checked by
differential tests), at several times its throughput: one frame loop, a lean HPACK decoder with a
Huffman memo, table-free response encoding, the connection window granted once, and one
`transport.write` per `data_received`.

Like h2 + the h2 engine, each `data_received` runs in two phases, so both engines agree even on
the order of frames: (1) the frame loop applies the protocol (stream states, flow control,
SETTINGS/PING acks, stream and connection errors) and queues events; (2) the events are handled
(stream limit, `Service.handle`, replies). A connection error in phase 1 drops the batch's events.
Where RFC 9113 leaves a choice we do what h2 does; anything odd is a connection error.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

from hpack.exceptions import HPACKError

from . import frames as F
from .hpack_fast import HpackDecoder, OversizedHeaderList, encode_block
from .types import ConnInfo, Reply, Service

log = logging.getLogger(__name__)

DEFAULT_MAX_STREAMS = 1000           # when the service has no opinion (as the h2 engine)
# Real APNs announces exactly these (pushy#356), plus MAX_CONCURRENT_STREAMS from the service.
APNS_SETTINGS = [(F.HEADER_TABLE_SIZE, 4096), (F.INITIAL_WINDOW_SIZE, 65535),
                 (F.MAX_FRAME_SIZE, 16384), (F.MAX_HEADER_LIST_SIZE, 8000)]
MAX_HEADER_LIST = 65536              # enforced limit: the h2 engine's (announcing 8000 is advisory)
STREAM_WINDOW = 65535                # as announced; topped up only for bodies above half of it
CONN_WINDOW = 1 << 30                # granted once by WINDOW_UPDATE, topped up every 512 MiB
MAX_HEADER_FRAMES = 64               # HEADERS + CONTINUATIONs per block (h2's backlog limit)
CLOSED_MEMORY = 4096                 # closed stream ids remembered with how they closed

_ENDED, _RESET = 1, 2                               # how a stream closed
_OPEN, _END, _PEER_RESET, _ACK, _WINDOW = range(5)  # phase-1 events
_NEW, _ACTIVE, _IDLE = 0, 1, 2                      # phase-2 view: not yet seen / owed an answer / not
_U32 = struct.Struct(">L").unpack_from
_HDR = struct.Struct(">BHBBL").unpack_from


class ConnError(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Stream:
    __slots__ = ("sid", "headers", "body", "recv_open", "open", "state", "recv_window",
                 "send_window", "pending", "timer")

    def __init__(self, sid: int, headers: list, send_window: int) -> None:
        self.sid = sid
        self.headers = headers
        self.body: list[bytes] = []
        self.recv_open = True          # the peer may still send (not half-closed remote)
        self.open = True               # protocol level: not closed by END_STREAM sent or RST
        self.state = _NEW
        self.recv_window = STREAM_WINDOW
        self.send_window = send_window
        self.pending: bytes | None = None   # response body waiting for flow-control credit
        self.timer: asyncio.TimerHandle | None = None


def _request_line(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes] | None:
    """(:method, :path) from the leading pseudo-headers, or None: a malformed request (RFC 9113 §8.3).

    Lenient on purpose, exactly like the h2 engine: the last duplicate wins, unknown pseudo-headers
    pass, and a pseudo-header after a regular field is not seen.
    """
    method = path = None
    for name, value in headers:
        if name[:1] != b":":
            break
        if name == b":method":
            method = value
        elif name == b":path":
            path = value
    if method is None or path is None:
        return None
    return method, path


class FastH2Protocol(asyncio.Protocol):
    drain_timeout: float = 5.0   # after our GOAWAY, close even if stalled streams never finish

    def __init__(self, service: Service, conns: set) -> None:
        self.service = service
        self.conns = conns
        self.conn: ConnInfo | None = None
        self.transport: Any = None
        self.streams: dict[int, _Stream] = {}  # protocol-open streams
        self._active = 0                       # streams owed an answer (what the limit counts)
        self._events: list[tuple[int, Any]] = []
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
        self._limit = self._announced = DEFAULT_MAX_STREAMS
        self._unacked: list[int | None] = []   # MAX_CONCURRENT_STREAMS of each SETTINGS not yet acked
        self._blocked: dict[int, _Stream] = {}
        self._drain_timer: asyncio.TimerHandle | None = None
        self._table_update = False             # owe the peer an HPACK table size update

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        conn = self.conn = conn_info(transport, http2=True)
        conn.state = self.service.open(conn)
        self.conns.add(self)
        initial = self.service.initial_max_streams(conn)
        self._limit = self._announced = DEFAULT_MAX_STREAMS if initial is None else initial
        self._unacked.append(None)
        transport.write(F.settings(APNS_SETTINGS + [(F.MAX_CONCURRENT_STREAMS, self._limit)])
                        + F.window_update(0, CONN_WINDOW - F.DEFAULT_WINDOW))

    def connection_lost(self, exc: Exception | None) -> None:
        self._dead = True
        self.conns.discard(self)
        for st in self.streams.values():
            if st.timer is not None:
                st.timer.cancel()
        self.streams.clear()
        self._blocked.clear()
        if self._drain_timer is not None:
            self._drain_timer.cancel()

    def shutdown(self, debug: bytes) -> None:
        """GOAWAY(last stream, NO_ERROR, debug); close once the in-flight streams are answered."""
        if self._dead:
            return
        self._goaway(debug)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        try:
            self._frames(self._buf + data if self._buf else data)
        except ConnError as err:
            self._events.clear()
            self._fail(err.code)
            return
        if self._events:
            self._handle_events()
        self._flush()

    # ---- phase 1: frames ---------------------------------------------------------------------

    def _frames(self, buf: bytes) -> None:
        pos = 0
        if not self._preface:
            if len(buf) < 24:
                if not F.PREFACE.startswith(buf):
                    raise ConnError(F.PROTOCOL_ERROR)
                self._buf = buf
                return
            if buf[:24] != F.PREFACE:
                raise ConnError(F.PROTOCOL_ERROR)
            self._preface = True
            pos = 24
        end = len(buf)
        while end - pos >= 9:
            hi, lo, ftype, flags, sid = _HDR(buf, pos)
            length = (hi << 16) | lo
            if length > F.DEFAULT_MAX_FRAME:
                raise ConnError(F.FRAME_SIZE_ERROR)
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
        self._buf = buf[pos:] if pos < end else b""

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0 or not sid & 1:
            raise ConnError(F.PROTOCOL_ERROR)
        if flags & F.PADDED:
            payload = _unpad(payload)
        if flags & F.PRIORITY_FLAG:
            if len(payload) < 5:
                raise ConnError(F.FRAME_SIZE_ERROR)
            if _U32(payload)[0] & 0x7FFFFFFF == sid:
                raise ConnError(F.PROTOCOL_ERROR)
            payload = payload[5:]
        if flags & F.END_HEADERS:
            self._header_block(sid, payload, bool(flags & F.END_STREAM))
        else:
            self._hdr_sid = sid
            self._hdr_parts = [payload]
            self._hdr_end_stream = bool(flags & F.END_STREAM)

    def _continuation(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype != F.CONTINUATION or sid != self._hdr_sid:
            raise ConnError(F.PROTOCOL_ERROR)
        self._hdr_parts.append(payload)
        if len(self._hdr_parts) > MAX_HEADER_FRAMES:
            raise ConnError(F.PROTOCOL_ERROR)
        if flags & F.END_HEADERS:
            self._hdr_sid = 0
            block = b"".join(self._hdr_parts)
            self._hdr_parts = []
            self._header_block(sid, block, self._hdr_end_stream)

    def _header_block(self, sid: int, block: bytes, end_stream: bool) -> None:
        try:
            headers = self._decoder.decode(block)     # always, to keep the HPACK context in step
        except OversizedHeaderList:
            raise ConnError(F.ENHANCE_YOUR_CALM) from None
        except HPACKError:      # RFC 9113 says COMPRESSION_ERROR; h2 (and so the h2 engine) says this
            raise ConnError(F.PROTOCOL_ERROR) from None
        st = self.streams.get(sid)
        if st is not None:
            if st.recv_open and end_stream:        # trailers: accepted and ignored
                st.recv_open = False
                self._events.append((_END, st))
            elif st.recv_open:
                raise ConnError(F.PROTOCOL_ERROR)
            else:
                self._reset(st, F.STREAM_CLOSED)
            return
        if sid <= self.highest:
            how = self._closed.get(sid)
            if how == _RESET:
                self._out.append(F.rst_stream(sid, F.STREAM_CLOSED))
                return
            raise ConnError(F.STREAM_CLOSED if how == _ENDED else F.PROTOCOL_ERROR)
        self.highest = sid
        st = self.streams[sid] = _Stream(sid, headers, self._peer_window)
        self._events.append((_OPEN, st))
        if end_stream:
            st.recv_open = False
            self._events.append((_END, st))

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise ConnError(F.PROTOCOL_ERROR)
        flow = len(payload)
        if flags & F.PADDED:
            payload = _unpad(payload)
        self._recv_conn -= flow
        if self._recv_conn < 0:
            raise ConnError(F.FLOW_CONTROL_ERROR)
        if self._recv_conn < CONN_WINDOW // 2:
            self._out.append(F.window_update(0, CONN_WINDOW - self._recv_conn))
            self._recv_conn = CONN_WINDOW
        st = self.streams.get(sid)
        if st is None or not st.recv_open:
            if sid > self.highest:
                raise ConnError(F.PROTOCOL_ERROR)     # DATA on an idle stream
            if st is not None:
                self._reset(st, F.STREAM_CLOSED)
            else:
                self._out.append(F.rst_stream(sid, F.STREAM_CLOSED))
            return
        st.recv_window -= flow
        if st.recv_window < 0:
            raise ConnError(F.FLOW_CONTROL_ERROR)
        if payload:
            st.body.append(payload)
        if flags & F.END_STREAM:
            st.recv_open = False
            self._events.append((_END, st))
        elif st.recv_window < STREAM_WINDOW // 2:
            self._out.append(F.window_update(sid, STREAM_WINDOW - st.recv_window))
            st.recv_window = STREAM_WINDOW

    def _control(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        n = len(payload)
        if ftype == F.SETTINGS:
            if sid:
                raise ConnError(F.PROTOCOL_ERROR)
            if flags & F.ACK:
                if n:
                    raise ConnError(F.FRAME_SIZE_ERROR)
                if self._unacked:
                    self._events.append((_ACK, self._unacked.pop(0)))
                return
            if n % 6:
                raise ConnError(F.FRAME_SIZE_ERROR)
            self._peer_settings(payload)
            self._out.append(F.SETTINGS_ACK)
            self._events.append((_WINDOW, None))
        elif ftype == F.PING:
            if sid:
                raise ConnError(F.PROTOCOL_ERROR)
            if n != 8:
                raise ConnError(F.FRAME_SIZE_ERROR)
            if not flags & F.ACK:
                self._out.append(F.ping_ack(payload))
        elif ftype == F.WINDOW_UPDATE:
            if n != 4:
                raise ConnError(F.FRAME_SIZE_ERROR)
            inc = _U32(payload)[0] & 0x7FFFFFFF
            if inc == 0:
                raise ConnError(F.PROTOCOL_ERROR)
            if sid == 0:
                self._send_conn += inc
                if self._send_conn > F.MAX_WINDOW:
                    raise ConnError(F.FLOW_CONTROL_ERROR)
                self._events.append((_WINDOW, None))
            elif sid > self.highest:
                raise ConnError(F.PROTOCOL_ERROR)
            elif (st := self.streams.get(sid)) is not None:
                st.send_window += inc
                if st.send_window > F.MAX_WINDOW:
                    raise ConnError(F.FLOW_CONTROL_ERROR)
                self._events.append((_WINDOW, None))
        elif ftype == F.RST_STREAM:
            if n != 4:
                raise ConnError(F.FRAME_SIZE_ERROR)
            # RFC 9113: RST_STREAM on an idle stream is a PROTOCOL_ERROR; h2 says so only before
            # the first stream (its connection state machine) and ignores it afterwards. As h2.
            if sid == 0 or self.highest == 0:
                raise ConnError(F.PROTOCOL_ERROR)
            st = self.streams.get(sid)
            if st is not None:
                self._close(st, _RESET)
                self._events.append((_PEER_RESET, st))
        elif ftype == F.PRIORITY:                    # ignored, as APNs does; only checked
            if n != 5:
                raise ConnError(F.FRAME_SIZE_ERROR)
            if sid == 0 or _U32(payload)[0] & 0x7FFFFFFF == sid:
                raise ConnError(F.PROTOCOL_ERROR)
        elif ftype == F.GOAWAY:
            if sid:
                raise ConnError(F.PROTOCOL_ERROR)
            if n < 8:
                raise ConnError(F.FRAME_SIZE_ERROR)
            self._closing = True                     # answer what is in flight, then close
        elif ftype in (F.PUSH_PROMISE, F.CONTINUATION):
            raise ConnError(F.PROTOCOL_ERROR)
        # unknown frame types are ignored (RFC 9113 §4.1)

    def _peer_settings(self, payload: bytes) -> None:
        for off in range(0, len(payload), 6):
            ident = (payload[off] << 8) | payload[off + 1]
            value = _U32(payload, off + 2)[0]
            if ident == F.INITIAL_WINDOW_SIZE:
                if value > F.MAX_WINDOW:
                    raise ConnError(F.FLOW_CONTROL_ERROR)
                delta = value - self._peer_window
                self._peer_window = value
                for st in self.streams.values():
                    st.send_window += delta
                    if st.send_window > F.MAX_WINDOW:
                        raise ConnError(F.FLOW_CONTROL_ERROR)
            elif ident == F.HEADER_TABLE_SIZE:
                # We never index, but a peer that lowers its table expects a size update (RFC 7541
                # §4.2) in our next block: announce size 0 once, valid for any later value too.
                self._table_update = True
            elif ident == F.MAX_FRAME_SIZE:
                if not F.DEFAULT_MAX_FRAME <= value <= 0xFFFFFF:
                    raise ConnError(F.PROTOCOL_ERROR)
                self._peer_max_frame = value
            elif ident == F.ENABLE_PUSH or ident == 8:     # 8 = ENABLE_CONNECT_PROTOCOL
                if value > 1:
                    raise ConnError(F.PROTOCOL_ERROR)

    # ---- phase 2: events ---------------------------------------------------------------------

    def _handle_events(self) -> None:
        events = self._events
        self._events = []
        for kind, st in events:
            if self._dead:
                return
            if kind == _OPEN:
                if self._goaway_last is not None and st.sid > self._goaway_last:
                    st.state = _IDLE                  # RFC 9113 §6.8: ignored, never answered
                elif self._active >= self._limit:
                    st.state = _IDLE
                    if st.open:
                        self._reset(st, F.REFUSED_STREAM)
                else:
                    st.state = _ACTIVE
                    self._active += 1
            elif kind == _END:
                if st.state == _ACTIVE:
                    self._dispatch(st)
            elif kind == _PEER_RESET:
                self._release(st)
            elif kind == _ACK:
                if st is not None:
                    self._limit = st
            elif self._blocked:                       # _WINDOW
                self._unblock()

    def _dispatch(self, st: _Stream) -> None:
        line = _request_line(st.headers)
        if line is None:
            self._release(st)
            if st.open:
                self._reset(st, F.PROTOCOL_ERROR)
            return
        body = st.body[0] if len(st.body) == 1 else b"".join(st.body)
        st.body = []
        try:
            reply = self.service.handle(self.conn, line[0], line[1], st.headers, body)
        except Exception:                            # the contract: a raise becomes a 500
            log.exception("service.handle raised for %r %r", line[0], line[1])
            reply = internal_error_reply()
        if reply.fault == "stall":
            return                                   # stays open (and counts) until the peer resets it
        if reply.delay > 0:
            st.timer = asyncio.get_running_loop().call_later(reply.delay, self._delayed, st, reply)
        else:
            self._answer(st, reply)

    def _delayed(self, st: _Stream, reply: Reply) -> None:
        st.timer = None
        if self._dead or st.state != _ACTIVE:
            return                                   # reset or forgotten meanwhile
        self._answer(st, reply)
        self._flush()

    def _answer(self, st: _Stream, reply: Reply) -> None:
        if reply.fault is not None and self._fault(st, reply):
            return
        if st.open:                                  # else the peer (or we) reset it meanwhile
            body = reply.body
            block = encode_block(reply.status, reply.headers)
            if self._table_update:
                self._table_update = False
                block = b"\x20" + block
            self._out.append(F.headers_frames(st.sid, block, not body, self._peer_max_frame))
            if body:
                st.pending = body
                self._send_body(st)
            else:
                self._close(st, _ENDED)
        if st.pending is None:
            self._release(st)
        self._announce(reply)
        if reply.goaway is not None:
            self._goaway(reply.goaway)

    def _announce(self, reply: Reply) -> None:
        n = reply.max_streams
        if n is not None and n != self._announced:
            self._announced = n
            self._unacked.append(n)
            self._out.append(F.settings([(F.MAX_CONCURRENT_STREAMS, n)]))

    def _fault(self, st: _Stream, reply: Reply) -> bool:
        """Apply an injected fault the way the h2 engine does; True when it replaces the reply."""
        fault = reply.fault
        if fault == "rst_stream":
            self._release(st)
            if st.open:
                self._reset(st, F.REFUSED_STREAM)    # refused = never processed: safe to retry
            self._announce(reply)
        elif fault == "tcp_reset":
            self._dead = True
            self._out.clear()
            reset_connection(self.transport)
        elif fault == "goaway":                      # this stream and later ones: unprocessed
            self._goaway(reply.goaway or b"", st.sid - 2)
        else:
            log.warning("ignoring unknown fault %r", fault)
            return False
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
            self._close(st, _ENDED)
        else:
            st.pending = data[len(chunk):]
            self._blocked[st.sid] = st

    def _unblock(self) -> None:
        for sid in sorted(self._blocked):
            st = self._blocked[sid]
            if not st.open or st.state != _ACTIVE:
                del self._blocked[sid]
                continue
            self._send_body(st)
            if st.pending is None:
                self._release(st)

    # ---- stream and connection ends ----------------------------------------------------------

    def _close(self, st: _Stream, how: int) -> None:
        """Protocol-level close (END_STREAM sent, or RST either way)."""
        if st.open:
            st.open = False
            del self.streams[st.sid]
            closed = self._closed
            closed[st.sid] = how
            if len(closed) > 2 * CLOSED_MEMORY:
                # Rebuilt in bulk: deleting a dict's oldest key one at a time makes the next
                # `next(iter(d))` scan the dead slots (py-spy: 10% of the request cost).
                self._closed = dict(list(closed.items())[-CLOSED_MEMORY:])

    def _release(self, st: _Stream) -> None:
        """We no longer owe this stream an answer (answered, refused, reset or forgotten)."""
        if st.state == _ACTIVE:
            self._active -= 1
        st.state = _IDLE
        if st.timer is not None:
            st.timer.cancel()
            st.timer = None
        st.pending = None
        self._blocked.pop(st.sid, None)

    def _reset(self, st: _Stream, code: int) -> None:
        self._out.append(F.rst_stream(st.sid, code))
        self._close(st, _RESET)

    def _goaway(self, debug: bytes, last: int | None = None) -> None:
        """GOAWAY(NO_ERROR); streams above `last` are dropped unanswered, the rest drain first."""
        last = max(self.highest if last is None else last, 0)
        if self._goaway_last is not None:
            last = min(last, self._goaway_last)      # RFC 9113 §6.8: must not increase
        self._goaway_last = last
        self._closing = True
        self._out.append(F.goaway(last, F.NO_ERROR, debug))
        for st in list(self.streams.values()):
            if st.sid > last:
                self._release(st)
        if self._drain_timer is None and not self._dead:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:                     # driven by hand (tests): no timer
                return
            self._drain_timer = loop.call_later(self.drain_timeout, self._close_now)

    def _close_now(self) -> None:
        self._drain_timer = None
        if not self._dead:
            self._out_and_close()

    def _fail(self, code: int) -> None:
        self._out.append(F.goaway(self.highest, code))
        self._out_and_close()

    def _out_and_close(self) -> None:
        self._dead = True
        if self._out:
            self.transport.write(b"".join(self._out))
            self._out.clear()
        self.transport.close()

    def _flush(self) -> None:
        """One write for everything queued; then close if drained after a GOAWAY."""
        if self._dead:
            return
        out = self._out
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if self._closing and not self._active:
            self._out_and_close()


def conn_info(transport: Any, *, http2: bool) -> ConnInfo:
    # TODO(merge): use pushsim.edge.conninfo (edge's branch) once it is in main; same behaviour.
    peername = transport.get_extra_info("peername")
    peer = (peername[0], peername[1]) if peername else None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return ConnInfo(tls=False, alpn=None, http2=http2, peer=peer)
    return ConnInfo(tls=True, alpn=ssl_object.selected_alpn_protocol(), http2=http2,
                    peer_cert_der=ssl_object.getpeercert(binary_form=True), peer=peer)


def internal_error_reply() -> Reply:
    return Reply(500, [(b"content-type", b"application/json")], b'{"reason":"InternalServerError"}')


def reset_connection(transport: Any) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:                                         # linger 0: close() sends RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def _unpad(payload: bytes) -> bytes:
    if not payload:
        raise ConnError(F.FRAME_SIZE_ERROR)
    pad = payload[0]
    if pad >= len(payload):
        raise ConnError(F.PROTOCOL_ERROR)
    return payload[1:len(payload) - pad]
