"""The fast engine's HTTP/2 connection, sans-IO: bytes in, bytes and effects out.

`FastH2Connection` is the whole protocol of one server connection: the frame loop (phase 1,
fast_frames.py) and what follows from it (phase 2 here: stream limit, `Service.handle`, replies,
faults, GOAWAY drain). It never touches a socket, a loop or the wall clock, so tests drive it
directly (tests/unit/test_fast_conn.py) and `pushsim.edge.fast_engine.FastH2Protocol` is only an
adapter that moves bytes and carries out effects:

- `initiate()`, `receive_data(data)`, `shutdown(debug)`, `fire(timer)` and `close()` are what
  happens to the connection; after each, `data_to_send()` is what to write (one bytes, so one
  write per read) and `effects` what else to do, in order:
  `(ARM, timer)` call `fire(timer)` at `timer.deadline` (the injected clock's time base);
  `(CANCEL, timer)` that timer is void; `(CLOSE, None)` close once written;
  `(ABORT, None)` drop unsent output and abort; `(TCP_RESET_NOW, None)` the same, with a TCP RST.
- time comes from the `clock` passed in (the adapter passes the loop's clock).

Like h2 + the h2 engine, each read runs in two phases, so both engines agree even on the order of
frames: (1) the frame loop applies the protocol (stream states, flow control, SETTINGS/PING acks,
stream and connection errors) and queues events; (2) the events are handled. A connection error
in phase 1 drops the batch's events. Where RFC 9113 leaves a choice we do what h2 does.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from . import frames as F
from .conninfo import body_limit, idle_goaway_debug, internal_error_reply, tell_goaway, tell_stream_after_goaway, \
    too_large_reply
from .fast_frames import (ACTIVE, APNS_SETTINGS, BY_END, BY_RESET, CONN_WINDOW, DEFAULT_MAX_STREAMS,
                          EV_ACK, EV_CALM, EV_END, EV_MALFORMED, EV_OPEN, EV_PEER_GOAWAY,
                          EV_PEER_RESET, EV_TOO_BIG, HELD, IDLE, NEW, ConnError, FrameLoop,
                          PeerFailed, Stream)
from .fields import body_fits
from .hpack_fast import encode_block
from .limits import DEFAULT_LIMITS, EdgeLimits
from .types import GOAWAY, RST_STREAM, STALL, TCP_RESET, ConnInfo, Reply, Service

log = logging.getLogger(__name__)
__all__ = ["FastH2Connection", "Timer", "ARM", "CANCEL", "CLOSE", "ABORT", "TCP_RESET_NOW"]

# Effects the adapter carries out (see the module docstring).
ARM, CANCEL, CLOSE, ABORT, TCP_RESET_NOW = range(5)


class Timer:
    """A deadline the connection wants to hear about: a delayed reply (`stream`, `reply`) or the
    GOAWAY drain (both None). `handle` belongs to the adapter (its loop's timer)."""
    __slots__ = ("deadline", "stream", "reply", "handle")

    def __init__(self, deadline: float, stream: Stream | None = None, reply: Reply | None = None) -> None:
        self.deadline = deadline
        self.stream = stream
        self.reply = reply
        self.handle: Any = None


class FastH2Connection(FrameLoop):
    drain_timeout: float = 5.0   # after our GOAWAY, close even if stalled streams never finish

    def __init__(self, service: Service, conn: ConnInfo, clock: Callable[[], float],
                 limits: EdgeLimits = DEFAULT_LIMITS) -> None:
        super().__init__(limits, clock)
        self.service = service
        self.conn = conn
        self.clock = clock
        self.effects: list[tuple[int, Timer | None]] = []
        self.dead = False                      # closed or closing: nothing more is read or sent
        self._active = 0                       # streams owed an answer (what the limit counts)
        # Streams owed an answer that wait for a free slot under the limit we last announced, in
        # stream order (they were opened before the peer had acknowledged that limit).
        self._held: dict[int, Stream] = {}
        self._closing = False                  # GOAWAY sent or received: close once drained
        self._goaway_last: int | None = None
        # `_limit` is the MAX_CONCURRENT_STREAMS the peer has acknowledged: beyond it a new stream
        # is refused. `_announced` is the one we last sent: beyond it a new stream waits.
        self._limit = self._announced = DEFAULT_MAX_STREAMS
        self._blocked: dict[int, Stream] = {}
        self._drain_timer: Timer | None = None

    # ---- what happens to the connection ------------------------------------------------------

    def initiate(self) -> None:
        """The connection is open: ask the service about it and queue our SETTINGS."""
        conn = self.conn
        conn.state = self.service.open(conn)
        self._max_body = body_limit(self.service, conn, self.limits)
        initial = self.service.initial_max_streams(conn)
        # Until the peer acknowledges our first SETTINGS it cannot know the limit (RFC 9113 §6.5.3:
        # it starts unlimited), so what it opens meanwhile is held and answered in turn, not
        # refused; DEFAULT_MAX_STREAMS bounds what it may open before the acknowledgement.
        self._announced = DEFAULT_MAX_STREAMS if initial is None else initial
        self._limit = max(self._announced, DEFAULT_MAX_STREAMS)
        self._unacked.append(self._announced)
        self._out.append(F.settings(APNS_SETTINGS + [(F.MAX_CONCURRENT_STREAMS, self._announced)])
                         + F.window_update(0, CONN_WINDOW - F.DEFAULT_WINDOW))

    def receive_data(self, data: bytes) -> None:
        if self.dead:
            return
        try:
            self._frames(self._buf + data if self._buf else data)
        except ConnError as err:
            self._events.clear()
            self.fail(err.code)
            return
        except PeerFailed:
            self._handle_events()                     # what came before the peer's GOAWAY
            if not self.dead:
                self._finish()
            return
        if self._events:
            self._handle_events()
        if self._closing and not self._active and not self.dead:
            self._finish()

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def fire(self, timer: Timer) -> None:
        """A timer armed through `(ARM, timer)` is due."""
        if self.dead:
            return
        st = timer.stream
        if st is None:                               # the GOAWAY drain ran out
            if timer is self._drain_timer:
                self._drain_timer = None
                self._finish()
            return
        if st.timer is not timer:
            return                                   # cancelled meanwhile
        st.timer = None
        if st.state != ACTIVE:
            return                                   # reset or forgotten meanwhile
        assert timer.reply is not None
        self._answer(st, timer.reply)
        if self._held:
            self._admit_held()
        if self._closing and not self._active and not self.dead:
            self._finish()

    def shutdown(self, debug: bytes) -> None:
        """GOAWAY(last stream, NO_ERROR, debug); close once the in-flight streams are answered."""
        if self.dead:
            return
        self._goaway(debug)
        if self._closing and not self._active:
            self._finish()

    def fail(self, code: int) -> None:
        """GOAWAY(code) and close (a connection error, or a budget spent)."""
        tell_goaway(self.service, self.conn, self.highest, code, b"")
        self._out.append(F.goaway(self.highest, code))
        self._finish()

    def idle_close(self) -> None:
        debug = idle_goaway_debug(self.service)
        tell_goaway(self.service, self.conn, self.highest, F.NO_ERROR, debug)
        self._out.append(F.goaway(self.highest, F.NO_ERROR, debug))
        self._finish()

    def abort(self) -> None:
        """Drop what is unsent and abort (a peer that does not read, or no preface in time)."""
        self._die(ABORT)

    def close(self) -> None:
        """The transport is gone: give back what we hold, void every timer."""
        self.dead = True
        self._bodies.used -= self._body_bytes
        self._body_bytes = 0
        effects = self.effects
        for st in self.streams.values():
            if st.timer is not None:
                effects.append((CANCEL, st.timer))
                st.timer = None
        self.streams.clear()
        self._blocked.clear()
        self._held.clear()
        if self._drain_timer is not None:
            effects.append((CANCEL, self._drain_timer))
            self._drain_timer = None

    @property
    def ready(self) -> bool:
        """The client preface and a first SETTINGS arrived (the handshake timer may stop)."""
        return self._ready

    def owes_answers(self) -> bool:
        return self._active > 0

    # ---- phase 2: events ---------------------------------------------------------------------

    def _handle_events(self) -> None:
        events = self._events
        self._events = []
        for kind, st in events:
            if self.dead:
                return
            if kind == EV_OPEN:
                if self._goaway_last is not None and st.sid > self._goaway_last:
                    st.state = IDLE                   # RFC 9113 §6.8: ignored, never answered
                    tell_stream_after_goaway(self.service, self.conn, st.sid)
                elif self._active >= max(self._limit, self._announced):
                    st.state = IDLE                   # over a limit the peer has seen
                    if st.open:
                        self._reset(st, F.REFUSED_STREAM)
                    if self._reset_budget.spend():
                        self.fail(F.ENHANCE_YOUR_CALM)
                        return
                elif self._held or self._active >= self._announced:
                    st.state = HELD                   # behind earlier streams, or no free slot yet
                    self._held[st.sid] = st
                    self._active += 1
                else:
                    st.state = ACTIVE
                    self._active += 1
            elif kind == EV_END:
                if st.state == ACTIVE and not st.over:    # an over one was answered (`_too_big`)
                    self._dispatch(st)
                # a held stream is dispatched when it gets a slot (`_admit_held`)
            elif kind == EV_PEER_RESET:
                self._release(st)
                if self._reset_budget.spend():
                    self.fail(F.ENHANCE_YOUR_CALM)
                    return
            elif kind == EV_MALFORMED:
                self._malformed(st)
            elif kind == EV_ACK:
                if st is not None:
                    self._limit = st
            elif kind == EV_PEER_GOAWAY:
                self._closing = True                  # answer what is in flight, then close
            elif kind == EV_TOO_BIG:
                if st.state == ACTIVE:
                    self._too_big(st)
                elif st.state != HELD:                # a held one is answered when admitted
                    st.body = []
                    if st.size:
                        self._unbuffer(st)
            elif kind == EV_CALM:                     # request bodies over the connection's budget
                self.fail(F.ENHANCE_YOUR_CALM)
                return
            elif self._blocked:                       # EV_WINDOW
                self._unblock()
        if self._held:
            self._admit_held()

    def _admit_held(self) -> None:
        """Give held streams the slots the announced limit allows, oldest first."""
        held = self._held
        while held and not self.dead and self._active - len(held) < self._announced:
            st = held.pop(next(iter(held)))
            st.state = ACTIVE
            if st.over:
                self._too_big(st)
            elif not st.recv_open:
                self._dispatch(st)

    def _malformed(self, st: Stream) -> None:
        """RFC 9113 §8.1.1: a malformed request, or malformed trailers, is a stream error."""
        if st.state == NEW:                          # the request itself
            st.state = IDLE
            if self._goaway_last is not None and st.sid > self._goaway_last:
                tell_stream_after_goaway(self.service, self.conn, st.sid)
                return                               # ignored like any stream above our GOAWAY
        elif st.state != ACTIVE and st.state != HELD:
            return                                   # trailers of a stream refused or ignored
        self._release(st)
        if st.open:
            self._reset(st, F.PROTOCOL_ERROR)

    def _dispatch(self, st: Stream) -> None:
        line = st.line
        assert line is not None                      # a malformed request never becomes ACTIVE
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
            timer = st.timer = Timer(self.clock() + reply.delay, st, reply)
            self.effects.append((ARM, timer))
        else:
            self._answer(st, reply)

    def _too_big(self, st: Stream) -> None:
        """The body passed the service's limit: answer now from what we have, ask the peer to stop.

        RFC 9113 §8.1: a server may answer before the request is complete, then RST_STREAM with
        NO_ERROR; no more stream window is granted meanwhile (see `FrameLoop._data`).
        """
        line = st.line
        assert line is not None                      # a malformed request never becomes ACTIVE
        body = b"".join(st.body)
        st.body = []
        self._unbuffer(st)
        reply = too_large_reply(self.service, self.conn, line[0], line[1], st.headers, body)
        self._answer(st, reply)
        if st.recv_open and not st.open and st.sid in self._closed:
            self._out.append(F.rst_stream(st.sid, F.NO_ERROR))
            self._closed[st.sid] = BY_RESET

    def _answer(self, st: Stream, reply: Reply) -> None:
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
                self._close(st, BY_END)
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

    def _fault(self, st: Stream, reply: Reply) -> bool:
        """Apply an injected fault the way the h2 engine does; True when it replaces the reply."""
        fault = reply.fault
        if fault == RST_STREAM:
            self._release(st)
            if st.open:
                self._reset(st, F.REFUSED_STREAM)    # refused = never processed: safe to retry
            self._announce(reply)
        elif fault == TCP_RESET:
            self._die(TCP_RESET_NOW)
        elif fault == GOAWAY:                        # this stream and later ones: unprocessed
            self._goaway(reply.goaway or b"", st.sid - 2)
        else:
            log.warning("ignoring unknown fault %r", fault)
            return False
        return True

    def _send_body(self, st: Stream) -> None:
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
            self._close(st, BY_END)
        else:
            st.pending = data[len(chunk):]
            self._blocked[st.sid] = st

    def _unblock(self) -> None:
        for sid in sorted(self._blocked):
            st = self._blocked[sid]
            if not st.open or st.state != ACTIVE:
                del self._blocked[sid]
                continue
            self._send_body(st)
            if st.pending is None:
                self._release(st)

    # ---- stream and connection ends ----------------------------------------------------------

    def _release(self, st: Stream) -> None:
        """We no longer owe this stream an answer (answered, refused, reset or forgotten)."""
        if st.state == ACTIVE:
            self._active -= 1
        elif st.state == HELD:
            self._active -= 1
            del self._held[st.sid]
        st.state = IDLE
        if st.timer is not None:
            self.effects.append((CANCEL, st.timer))
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
        tell_goaway(self.service, self.conn, last, F.NO_ERROR, debug)
        self._out.append(F.goaway(last, F.NO_ERROR, debug))
        for st in list(self.streams.values()):
            if st.sid > last:
                self._release(st)
        if self._drain_timer is None and not self.dead:
            timer = self._drain_timer = Timer(self.clock() + self.drain_timeout)
            self.effects.append((ARM, timer))

    def _finish(self) -> None:
        """Close once what is queued is written."""
        self.dead = True
        self.effects.append((CLOSE, None))

    def _die(self, how: int) -> None:
        self.dead = True
        self._out.clear()
        effects = self.effects                   # in place: the adapter may be iterating a copy
        effects[:] = [e for e in effects if e[0] != CLOSE]   # an abort replaces a pending close
        effects.append((how, None))
