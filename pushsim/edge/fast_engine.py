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
from typing import Any

from . import frames as F
from .fast_frames import (_ACK, _ACTIVE, _CALM, _END, _HELD, _IDLE, _MALFORMED, _NEW, _OPEN,
                          _PEER_GOAWAY, _PEER_RESET, _RESET, _TOO_BIG, DEFAULT_MAX_STREAMS, FrameLoop,
                          ConnError, CONN_WINDOW, APNS_SETTINGS, PeerFailed, _ENDED, _Stream)
from .fields import body_fits
from .guard import ConnGuard
from .hpack_fast import encode_block
from .conninfo import body_limit, conn_info, idle_goaway_debug, internal_error_reply, reset_connection, \
    too_large_reply
from .limits import DEFAULT_LIMITS, EdgeLimits
from .types import GOAWAY, RST_STREAM, STALL, TCP_RESET, ConnInfo, Reply, Service

log = logging.getLogger(__name__)
__all__ = ["FastH2Protocol", "ConnError"]
YIELD_READ = 65536   # a read this big is followed by one loop turn without reading (guard.py)


class FastH2Protocol(ConnGuard, FrameLoop, asyncio.Protocol):
    drain_timeout: float = 5.0   # after our GOAWAY, close even if stalled streams never finish

    def __init__(self, service: Service, conns: set, limits: EdgeLimits = DEFAULT_LIMITS) -> None:
        super().__init__()
        self.limits = limits
        self._conn_body_max = limits.conn_body_bytes
        self._bodies = limits.bodies
        self.service = service
        self.conns = conns
        self.conn: ConnInfo | None = None
        self.transport: Any = None
        self._active = 0                       # streams owed an answer (what the limit counts)
        # Streams owed an answer that wait for a free slot under the limit we last announced, in
        # stream order (they were opened before the peer had acknowledged that limit).
        self._held: dict[int, _Stream] = {}
        self._dead = False
        self._closing = False                  # GOAWAY sent or received: close once drained
        self._goaway_last: int | None = None
        # `_limit` is the MAX_CONCURRENT_STREAMS the peer has acknowledged: beyond it a new stream
        # is refused. `_announced` is the one we last sent: beyond it a new stream waits.
        self._limit = self._announced = DEFAULT_MAX_STREAMS
        self._blocked: dict[int, _Stream] = {}
        self._drain_timer: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        conn = self.conn = conn_info(transport, http2=True)
        conn.state = self.service.open(conn)
        self.conns.add(self)
        self._max_body = body_limit(self.service, conn, self.limits)
        self._guard_start()
        initial = self.service.initial_max_streams(conn)
        # Until the peer acknowledges our first SETTINGS it cannot know the limit (RFC 9113 §6.5.3:
        # it starts unlimited), so what it opens meanwhile is held and answered in turn, not
        # refused; DEFAULT_MAX_STREAMS bounds what it may open before the acknowledgement.
        self._announced = DEFAULT_MAX_STREAMS if initial is None else initial
        self._limit = max(self._announced, DEFAULT_MAX_STREAMS)
        self._unacked.append(self._announced)
        transport.write(F.settings(APNS_SETTINGS + [(F.MAX_CONCURRENT_STREAMS, self._announced)])
                        + F.window_update(0, CONN_WINDOW - F.DEFAULT_WINDOW))

    def connection_lost(self, exc: Exception | None) -> None:
        self._dead = True
        self.conns.discard(self)
        self._guard_stop()
        self._bodies.used -= self._body_bytes
        self._body_bytes = 0
        for st in self.streams.values():
            if st.timer is not None:
                st.timer.cancel()
        self.streams.clear()
        self._blocked.clear()
        self._held.clear()
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
        self._reads += 1
        try:
            self._frames(self._buf + data if self._buf else data)
        except ConnError as err:
            self._events.clear()
            self._fail(err.code)
            return
        except PeerFailed:
            self._handle_events()                     # what came before the peer's GOAWAY
            if not self._dead:
                self._out_and_close()
            return
        if self._events:
            self._handle_events()
        self._flush()
        if len(data) >= YIELD_READ:
            self._yield_reading()

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
                elif self._active >= max(self._limit, self._announced):
                    st.state = _IDLE                  # over a limit the peer has seen
                    if st.open:
                        self._reset(st, F.REFUSED_STREAM)
                    if self._count_reset():
                        self._fail(F.ENHANCE_YOUR_CALM)
                        return
                elif self._held or self._active >= self._announced:
                    st.state = _HELD                  # behind earlier streams, or no free slot yet
                    self._held[st.sid] = st
                    self._active += 1
                else:
                    st.state = _ACTIVE
                    self._active += 1
            elif kind == _END:
                if st.state == _ACTIVE and not st.over:   # an over one was answered (`_too_big`)
                    self._dispatch(st)
                # a held stream is dispatched when it gets a slot (`_admit_held`)
            elif kind == _PEER_RESET:
                self._release(st)
                if self._count_reset():
                    self._fail(F.ENHANCE_YOUR_CALM)
                    return
            elif kind == _MALFORMED:
                self._malformed(st)
            elif kind == _ACK:
                if st is not None:
                    self._limit = st
            elif kind == _PEER_GOAWAY:
                self._closing = True                  # answer what is in flight, then close
            elif kind == _TOO_BIG:
                if st.state == _ACTIVE:
                    self._too_big(st)
                elif st.state != _HELD:               # a held one is answered when admitted
                    st.body = []
                    if st.size:
                        self._unbuffer(st)
            elif kind == _CALM:                       # request bodies over the connection's budget
                self._fail(F.ENHANCE_YOUR_CALM)
                return
            elif self._blocked:                       # _WINDOW
                self._unblock()
        if self._held:
            self._admit_held()

    def _admit_held(self) -> None:
        """Give held streams the slots the announced limit allows, oldest first."""
        held = self._held
        while held and not self._dead and self._active - len(held) < self._announced:
            st = held.pop(next(iter(held)))
            st.state = _ACTIVE
            if st.over:
                self._too_big(st)
            elif not st.recv_open:
                self._dispatch(st)

    def _malformed(self, st: _Stream) -> None:
        """RFC 9113 §8.1.1: a malformed request, or malformed trailers, is a stream error."""
        if st.state == _NEW:                         # the request itself
            st.state = _IDLE
            if self._goaway_last is not None and st.sid > self._goaway_last:
                return                               # ignored like any stream above our GOAWAY
        elif st.state != _ACTIVE and st.state != _HELD:
            return                                   # trailers of a stream refused or ignored
        self._release(st)
        if st.open:
            self._reset(st, F.PROTOCOL_ERROR)

    def _dispatch(self, st: _Stream) -> None:
        line = st.line
        assert line is not None                      # a malformed request never becomes _ACTIVE
        body = st.body[0] if len(st.body) == 1 else b"".join(st.body)
        st.body = []
        n = st.size
        if n:                                        # `_unbuffer`, inline: once per request
            st.size = 0
            self._body_bytes -= n
            self._bodies.used -= n
        if not body_fits(line, len(body)):
            self._malformed(st)
            return
        try:
            reply = self.service.handle(self.conn, line[0], line[1], st.headers, body)
        except Exception:                            # the contract: a raise becomes a 500
            log.exception("service.handle raised for %r %r", line[0], line[1])
            reply = internal_error_reply()
        if reply.fault == STALL:
            return                                   # stays open (and counts) until the peer resets it
        if reply.delay > 0:
            st.timer = asyncio.get_running_loop().call_later(reply.delay, self._delayed, st, reply)
        else:
            self._answer(st, reply)

    def _too_big(self, st: _Stream) -> None:
        """The body passed the service's limit: answer now from what we have, ask the peer to stop.

        RFC 9113 §8.1: a server may answer before the request is complete, then RST_STREAM with
        NO_ERROR; no more stream window is granted meanwhile (see `_data`).
        """
        line = st.line
        assert line is not None                      # a malformed request never becomes _ACTIVE
        body = b"".join(st.body)
        st.body = []
        self._unbuffer(st)
        reply = too_large_reply(self.service, self.conn, line[0], line[1], st.headers, body)
        self._answer(st, reply)
        if st.recv_open and not st.open and st.sid in self._closed:
            self._out.append(F.rst_stream(st.sid, F.NO_ERROR))
            self._closed[st.sid] = _RESET

    def _delayed(self, st: _Stream, reply: Reply) -> None:
        st.timer = None
        if self._dead or st.state != _ACTIVE:
            return                                   # reset or forgotten meanwhile
        self._answer(st, reply)
        if self._held:
            self._admit_held()
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
        if fault == RST_STREAM:
            self._release(st)
            if st.open:
                self._reset(st, F.REFUSED_STREAM)    # refused = never processed: safe to retry
            self._announce(reply)
        elif fault == TCP_RESET:
            self._dead = True
            self._out.clear()
            reset_connection(self.transport)
        elif fault == GOAWAY:                      # this stream and later ones: unprocessed
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

    def _release(self, st: _Stream) -> None:
        """We no longer owe this stream an answer (answered, refused, reset or forgotten)."""
        if st.state == _ACTIVE:
            self._active -= 1
        elif st.state == _HELD:
            self._active -= 1
            del self._held[st.sid]
        st.state = _IDLE
        if st.timer is not None:
            st.timer.cancel()
            st.timer = None
        st.pending = None
        self._blocked.pop(st.sid, None)

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

    # ---- guard (pushsim.edge.guard) ----------------------------------------------------------

    def _guard_dead(self) -> bool:
        return self._dead

    def _owes_answers(self) -> bool:
        return self._active > 0

    def _calm(self, code: int, abort: bool = False) -> None:
        if abort:
            self._dead = True
            self._out.clear()
            self.transport.abort()
        else:
            self._fail(code)

    def _idle_close(self, abort: bool) -> None:
        if abort:
            self._calm(F.NO_ERROR, abort=True)
        else:
            self._out.append(F.goaway(self.highest, F.NO_ERROR, idle_goaway_debug(self.service)))
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
            if self._paused and self._write_overflow():
                self._calm(F.ENHANCE_YOUR_CALM, abort=True)
                return
        if self._closing and not self._active:
            self._out_and_close()

