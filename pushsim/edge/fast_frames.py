"""The fast engine's frame loop: phase 1 of `FastH2Connection` (see fast_conn.py).

Parses frames and applies the protocol (stream states, flow control, SETTINGS/PING acks, stream
and connection errors), queuing output bytes in `_out` and events for phase 2 in `_events`. No I/O,
no clock of its own. The names below without an underscore are shared with fast_conn.py.
"""
from __future__ import annotations

import struct
from typing import Any, Callable

from hpack.exceptions import HPACKError

from . import frames as F
from .fields import MAX_HEADER_LIST, RequestLine, check_request, check_trailers
from .hpack_fast import HpackDecoder, OversizedHeaderList
from .limits import DEFAULT_LIMITS, Budget, EdgeLimits, RateBudget

DEFAULT_MAX_STREAMS = 1000           # when the service has no opinion (as the h2 engine)
# Real APNs announces exactly these (pushy#356), plus MAX_CONCURRENT_STREAMS from the service.
APNS_SETTINGS = [(F.HEADER_TABLE_SIZE, 4096), (F.INITIAL_WINDOW_SIZE, 65535),
                 (F.MAX_FRAME_SIZE, 16384), (F.MAX_HEADER_LIST_SIZE, 8000)]
STREAM_WINDOW = 65535                # as announced; topped up only for bodies above half of it
CONN_WINDOW = 1 << 30                # granted once by WINDOW_UPDATE, topped up every 512 MiB
MAX_HEADER_FRAMES = 64               # HEADERS + CONTINUATIONs per block (h2's backlog limit)
CLOSED_MEMORY = 4096                 # closed stream ids remembered with how they closed

BY_END, BY_RESET = 1, 2                               # how a stream closed
# Phase-1 events. EV_PEER_RESET: the stream was reset (by the peer, or by us while parsing): nothing owed.
# EV_TOO_BIG: its body passed the service's limit; EV_CALM: bodies passed the connection's budget.
EV_OPEN, EV_END, EV_PEER_RESET, EV_ACK, EV_WINDOW, EV_PEER_GOAWAY, EV_MALFORMED, EV_TOO_BIG, EV_CALM = range(9)
# Phase-2 view of a stream: not yet seen / being answered / owed an answer but waiting for the
# stream limit (opened before the peer acknowledged a lowered limit) / owed nothing.
NEW, ACTIVE, IDLE, HELD = 0, 1, 2, 3
_U32 = struct.Struct(">L").unpack_from
_HDR = struct.Struct(">BHBBL").unpack_from


class ConnError(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class PeerFailed(Exception):
    """The peer sent GOAWAY with an error code: it closes the connection (RFC 9113 §5.4.1), so
    nothing after that frame matters and nothing more can reach it."""

    def __init__(self, code: int) -> None:
        self.code = code


class Stream:
    __slots__ = ("sid", "headers", "line", "body", "recv_open", "open", "state", "recv_window",
                 "send_window", "pending", "timer", "size", "over")

    def __init__(self, sid: int, headers: list, line: RequestLine | None, send_window: int) -> None:
        self.sid = sid
        self.headers = headers
        self.line = line               # None: malformed (RFC 9113 §8.1.1), answered RST_STREAM
        self.body: list[bytes] = []
        self.recv_open = True          # the peer may still send (not half-closed remote)
        self.open = True               # protocol level: not closed by END_STREAM sent or RST
        self.state = NEW
        self.recv_window = STREAM_WINDOW
        self.send_window = send_window
        self.pending: bytes | None = None   # response body waiting for flow-control credit
        self.timer: Any = None         # fast_conn.Timer of a delayed reply
        self.size = 0                  # body bytes buffered (counted in the connection's budgets)
        self.over = False              # the body passed the service's limit: answered, not buffered


class FrameLoop:
    """Protocol state of one server connection; subclasses handle the queued events."""

    def __init__(self, limits: EdgeLimits = DEFAULT_LIMITS, clock: Callable[[], float] = lambda: 0.0) -> None:
        self.limits = limits
        self.streams: dict[int, Stream] = {}  # protocol-open streams
        self._events: list[tuple[int, Any]] = []
        self._closed: dict[int, int] = {}
        self._out: list[bytes] = []
        self._buf = b""
        self._preface = False
        self.highest = 0
        self._decoder = HpackDecoder(MAX_HEADER_LIST)
        self._hdr_sid = 0                      # stream whose header block is being continued
        self._hdr_parts: list[bytes] = []
        self._hdr_end_stream = False
        self._recv_conn = CONN_WINDOW
        self._send_conn = F.DEFAULT_WINDOW
        self._peer_window = F.DEFAULT_WINDOW
        self._peer_max_frame = F.DEFAULT_MAX_FRAME
        self._unacked: list[int | None] = []   # MAX_CONCURRENT_STREAMS of each SETTINGS not yet acked
        self._table_update = False             # owe the peer an HPACK table size update
        self._ready = False                    # a first SETTINGS arrived (the preface timer stops)
        # Request-body budgets (pushsim.edge.limits): per stream, per connection, all connections.
        self._max_body = limits.max_body       # the subclass narrows it to the service's limit
        self._conn_body_max = limits.conn_body_bytes
        self._bodies: Budget = limits.bodies
        self._body_bytes = 0
        self._over_budget = False
        # Rate budgets per `budget_window` (pushsim.edge.limits): PING/SETTINGS we must ack here,
        # resets and refusals in phase 2 (rapid reset).
        self._control_budget = RateBudget(limits.control_budget, limits.budget_window, clock)
        self._reset_budget = RateBudget(limits.reset_budget, limits.budget_window, clock)

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
            if st.recv_open and end_stream:        # trailers: checked, then ignored
                st.recv_open = False
                self._events.append((EV_END if check_trailers(headers) else EV_MALFORMED, st))
            elif st.recv_open:
                raise ConnError(F.PROTOCOL_ERROR)
            else:
                self._reset_in_frame_loop(st, F.STREAM_CLOSED)
            return
        if sid <= self.highest:
            how = self._closed.get(sid)
            if how == BY_RESET:
                self._out.append(F.rst_stream(sid, F.STREAM_CLOSED))
                return
            raise ConnError(F.STREAM_CLOSED if how == BY_END else F.PROTOCOL_ERROR)
        self.highest = sid
        line = check_request(headers)
        st = self.streams[sid] = Stream(sid, headers, line, self._peer_window)
        self._events.append((EV_OPEN if line is not None else EV_MALFORMED, st))
        if end_stream:
            st.recv_open = False
            self._events.append((EV_END, st))

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
                self._reset_in_frame_loop(st, F.STREAM_CLOSED)
            else:
                self._out.append(F.rst_stream(sid, F.STREAM_CLOSED))
            return
        st.recv_window -= flow
        if st.recv_window < 0:
            raise ConnError(F.FLOW_CONTROL_ERROR)
        if payload and not st.over:
            n = len(payload)
            size = st.size = st.size + n
            total = self._body_bytes = self._body_bytes + n
            bodies = self._bodies
            bodies.used += n
            st.body.append(payload)
            if size > self._max_body:
                st.over = True                       # answered in phase 2; the rest is dropped
                self._events.append((EV_TOO_BIG, st))
            elif (total > self._conn_body_max or bodies.used > bodies.limit) and not self._over_budget:
                self._over_budget = True
                self._events.append((EV_CALM, None))
        if flags & F.END_STREAM:
            st.recv_open = False
            self._events.append((EV_END, st))
        elif st.recv_window < STREAM_WINDOW // 2 and not st.over:
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
                    self._events.append((EV_ACK, self._unacked.pop(0)))
                return
            if n % 6:
                raise ConnError(F.FRAME_SIZE_ERROR)
            self._ready = True
            self._control_frame()
            self._peer_settings(payload)
            self._out.append(F.SETTINGS_ACK)
            self._events.append((EV_WINDOW, None))
        elif ftype == F.PING:
            if sid:
                raise ConnError(F.PROTOCOL_ERROR)
            if n != 8:
                raise ConnError(F.FRAME_SIZE_ERROR)
            if not flags & F.ACK:
                self._out.append(F.ping_ack(payload))
                self._control_frame()
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
                self._events.append((EV_WINDOW, None))
            elif sid > self.highest:
                raise ConnError(F.PROTOCOL_ERROR)
            elif (st := self.streams.get(sid)) is not None:
                st.send_window += inc
                if st.send_window > F.MAX_WINDOW:       # RFC 9113 §6.9.1: a stream error
                    self._reset_in_frame_loop(st, F.FLOW_CONTROL_ERROR)
                    return
                self._events.append((EV_WINDOW, None))
        elif ftype == F.RST_STREAM:
            if n != 4:
                raise ConnError(F.FRAME_SIZE_ERROR)
            # RFC 9113: RST_STREAM on an idle stream is a PROTOCOL_ERROR; h2 says so only before
            # the first stream (its connection state machine) and ignores it afterwards. As h2.
            if sid == 0 or self.highest == 0:
                raise ConnError(F.PROTOCOL_ERROR)
            st = self.streams.get(sid)
            if st is not None:
                self._close(st, BY_RESET)
                self._events.append((EV_PEER_RESET, st))
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
            code = _U32(payload, 4)[0]
            if code != F.NO_ERROR:
                raise PeerFailed(code)
            # A graceful GOAWAY only says the peer opens no more streams: the ones in flight are
            # still answered (§6.8), then we close.
            self._events.append((EV_PEER_GOAWAY, None))
        elif ftype in (F.PUSH_PROMISE, F.CONTINUATION):
            raise ConnError(F.PROTOCOL_ERROR)
        # unknown frame types are ignored (RFC 9113 §4.1)

    def _control_frame(self) -> None:
        """A PING or SETTINGS we must acknowledge: past the budget, the connection ends in phase 2
        (in order with the other events, as the h2 engine does)."""
        if self._control_budget.spend() and not self._over_budget:
            self._over_budget = True
            self._events.append((EV_CALM, None))

    def _peer_settings(self, payload: bytes) -> None:
        window = None
        for off in range(0, len(payload), 6):
            ident = (payload[off] << 8) | payload[off + 1]
            value = _U32(payload, off + 2)[0]
            if ident == F.INITIAL_WINDOW_SIZE:
                if value > F.MAX_WINDOW:
                    raise ConnError(F.FLOW_CONTROL_ERROR)
                window = value
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
        if window is not None:
            # Once per frame, last value wins (as h2 does): a frame repeating it thousands of
            # times over many open streams must not cost entries × streams.
            delta = window - self._peer_window
            self._peer_window = window
            if delta:
                for st in self.streams.values():
                    st.send_window += delta
                    if st.send_window > F.MAX_WINDOW:
                        raise ConnError(F.FLOW_CONTROL_ERROR)

    def _close(self, st: Stream, how: int) -> None:
        """Protocol-level close (END_STREAM sent, or RST either way)."""
        if st.size:
            self._unbuffer(st)
        if st.open:
            st.open = False
            del self.streams[st.sid]
            closed = self._closed
            closed[st.sid] = how
            if len(closed) > 2 * CLOSED_MEMORY:
                # Rebuilt in bulk: deleting a dict's oldest key one at a time makes the next
                # `next(iter(d))` scan the dead slots (py-spy: 10% of the request cost).
                self._closed = dict(list(closed.items())[-CLOSED_MEMORY:])

    def _unbuffer(self, st: Stream) -> None:
        """The stream's buffered body left our hands: give its bytes back to the budgets."""
        n = st.size
        st.size = 0
        self._body_bytes -= n
        self._bodies.used -= n

    def _reset(self, st: Stream, code: int) -> None:
        self._out.append(F.rst_stream(st.sid, code))
        self._close(st, BY_RESET)

    def _reset_in_frame_loop(self, st: Stream, code: int) -> None:
        """A stream error found while parsing: the stream is closed, so phase 2 must stop owing it
        an answer too (else a stalled stream reset this way would keep a GOAWAY from draining)."""
        self._reset(st, code)
        self._events.append((EV_PEER_RESET, st))


def _unpad(payload: bytes) -> bytes:
    if not payload:
        raise ConnError(F.FRAME_SIZE_ERROR)
    pad = payload[0]
    if pad >= len(payload):
        raise ConnError(F.PROTOCOL_ERROR)
    return payload[1:len(payload) - pad]
