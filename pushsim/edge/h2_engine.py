"""HTTP/2 reference engine: an asyncio.Protocol around h2's sans-IO `H2Connection`.

The faithful engine: h2 owns framing, HPACK, stream states and flow control; this module owns the
mapping to `Service.handle`, the stream limit, GOAWAY draining and injected faults. The fast engine
is checked against it, so correctness wins over speed here; the speed tricks used are the ones that
change nothing observable (perf-notes: no validation pass, bytes headers, Huffman memo, one write
per `data_received`).
"""
from __future__ import annotations

import asyncio
import logging

from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingReceived,
    RemoteSettingsChanged,
    RequestReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError, StreamIDTooLowError
from hyperframe.frame import GoAwayFrame

from . import huffman
from .conninfo import body_limit, conn_info, idle_goaway_debug, internal_error_reply, reset_connection, \
    tell_goaway, tell_stream_after_goaway, \
    too_large_reply
from .fields import MAX_HEADER_LIST, RequestLine, body_fits, check_request, check_trailers
from .guard import ConnGuard
from .h2_adapted import CONFIG, DEFAULT_MAX_STREAMS, MAX_STREAMS, Connection, ServerSettings
from .limits import DEFAULT_LIMITS, EdgeLimits
from .types import GOAWAY, RST_STREAM, STALL, TCP_RESET, ConnInfo, Headers, Reply, Service

log = logging.getLogger(__name__)

huffman.install()

_STATUS = {code: str(code).encode() for code in range(100, 600)}
_SLICE = 16384   # input bytes handed to h2 per event-loop turn
# A stream h2 no longer knows (closed, or purged from its table): nothing to send on it.
_GONE = (StreamClosedError, StreamIDTooLowError)


class _Stream:
    __slots__ = ("headers", "line", "body", "timer", "out", "ended", "size", "over")

    def __init__(self, headers: Headers, line: RequestLine) -> None:
        self.headers = headers
        self.line = line
        self.body: list[bytes] = []
        self.ended = False                              # the request is complete (held streams)
        self.size = 0                                   # body bytes buffered (in the budgets)
        self.over = False                               # past the body limit: answered, dropped
        self.timer: asyncio.TimerHandle | None = None   # pending delayed reply
        self.out: bytes | None = None                   # response body waiting for flow-control credit


class H2Protocol(ConnGuard, asyncio.Protocol):
    """One HTTP/2 server connection (the engine contract: docs/ARCHITECTURE.md, "Contracts")."""

    drain_timeout: float = 5.0   # after our GOAWAY, close even if stalled streams never finish

    def __init__(self, service: Service, conns: set, limits: EdgeLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._max_body = limits.max_body
        self._body_bytes = 0                      # buffered request bodies (limits: per connection)
        self._over_budget = False
        self._backlog = bytearray()               # input not yet given to h2 (see data_received)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.service = service
        self.conns = conns
        self.conn: ConnInfo | None = None
        self.transport: asyncio.Transport | None = None
        self._h2: H2Connection | None = None
        self._streams: dict[int, _Stream] = {}   # open streams we owe an answer (the limit counts these)
        # Those of them waiting for a slot under the limit we last announced, in stream order: they
        # were opened before the peer acknowledged that limit, so they are held, not refused.
        self._held: dict[int, _Stream] = {}
        self._blocked: set[int] = set()           # streams whose body waits for WINDOW_UPDATE
        self._out = bytearray()                   # our raw frames, ordered after h2's earlier output
        self._limit = DEFAULT_MAX_STREAMS         # acknowledged MAX_CONCURRENT_STREAMS: refuse beyond
        self._announced = DEFAULT_MAX_STREAMS     # last value sent (may be unacknowledged): hold beyond
        self._goaway_last: int | None = None      # last-stream-id of the GOAWAY we sent
        self._closed = False
        self._flush_handle: asyncio.Handle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        conn = self.conn = conn_info(transport, http2=True)
        conn.state = self.service.open(conn)
        n = self.service.initial_max_streams(conn)
        n = DEFAULT_MAX_STREAMS if n is None else n
        # Until our first SETTINGS is acknowledged the peer cannot know the limit (RFC 9113 §6.5.3),
        # so what it opens meanwhile is held and answered in turn, up to DEFAULT_MAX_STREAMS.
        self._announced = n
        self._limit = max(n, DEFAULT_MAX_STREAMS)
        self._max_body = body_limit(self.service, conn, self.limits)
        self._guard_start()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:                      # driven by hand (tests): each read in one go
            self._loop = None
        h2 = self._h2 = Connection(CONFIG)
        h2.local_settings = ServerSettings(n)
        # The announced 8000 is advisory (RFC 9113 §6.5.2), and h2 would apply it on the first
        # SETTINGS ack; both engines enforce the fast engine's limit instead.
        h2.decoder.max_header_list_size = MAX_HEADER_LIST
        h2.initiate_connection()
        self.conns.add(self)
        transport.write(h2.data_to_send())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._reads += 1
        if self._backlog:                         # still working through an earlier read
            self._backlog += data
            return
        if len(data) > _SLICE and self._loop is not None:
            # h2 spends ~25 µs per frame: one 256 KiB read of PINGs or SETTINGS held the loop
            # 0.4 s. Work through it a slice per loop turn, reading nothing more meanwhile.
            self._backlog = bytearray(data[_SLICE:])
            data = data[:_SLICE]
            self.transport.pause_reading()  # type: ignore[union-attr]
            self._loop.call_soon(self._next_slice)
        self._receive(data)

    def _next_slice(self) -> None:
        if self._closed:
            return
        backlog = self._backlog
        data = bytes(backlog[:_SLICE])
        del backlog[:_SLICE]
        if backlog:
            self._loop.call_soon(self._next_slice)  # type: ignore[union-attr]
        self._receive(data)
        if not backlog and not self._closed and not self._paused:
            self.transport.resume_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self._paused = False
        if not self._closed and not self._backlog:
            self.transport.resume_reading()  # type: ignore[union-attr]

    def _receive(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)  # type: ignore[union-attr]
        except ProtocolError as exc:
            log.debug("HTTP/2 protocol error from %s: %s", self.conn and self.conn.peer, exc)
            # h2 queues GOAWAY itself for frame errors, but not for a bad client preface.
            if self._h2.state_machine.state is not ConnectionState.CLOSED:  # type: ignore
                self._emit_goaway(b"", exc.error_code)
            else:                                  # h2 queued it: note it all the same
                tell_goaway(self.service, self.conn, self._h2.highest_inbound_stream_id,  # type: ignore
                            int(exc.error_code or 0), b"")
            self._close_now()
            return
        except Exception:   # hpack/hyperframe errors h2 does not wrap: still the peer's fault
            log.debug("undecodable HTTP/2 input", exc_info=True)
            self._emit_goaway(b"", ErrorCodes.PROTOCOL_ERROR)
            self._close_now()
            return
        try:
            for event in events:
                if self._closed:
                    return
                self._on_event(event)
            if self._held:
                self._admit_held()
        except ProtocolError:   # e.g. the peer's GOAWAY closed h2 before we could answer
            log.debug("HTTP/2 connection closed while answering", exc_info=True)
            self._close_now()
            return
        except Exception:
            log.exception("HTTP/2 engine error")
            self._emit_goaway(b"", ErrorCodes.INTERNAL_ERROR)
            self._close_now()
            return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._guard_stop()
        self._backlog.clear()
        self.limits.bodies.used -= self._body_bytes
        self._body_bytes = 0
        for stream in self._streams.values():
            if stream.timer is not None:
                stream.timer.cancel()
        self._streams.clear()
        self._held.clear()
        self._blocked.clear()
        for handle in (self._drain_timer, self._flush_handle):
            if handle is not None:
                handle.cancel()
        self.conns.discard(self)

    # -- public -------------------------------------------------------------------------------

    def shutdown(self, debug: bytes) -> None:
        """GOAWAY(NO_ERROR, debug) naming the last stream we accepted; close once those finish."""
        if self._closed or self._h2 is None:
            return
        self._emit_goaway(debug, ErrorCodes.NO_ERROR)
        self._flush()

    # -- events -------------------------------------------------------------------------------

    def _on_event(self, event: object) -> None:
        kind = type(event)
        if kind is RequestReceived:
            line = check_request(event.headers)  # type: ignore[attr-defined]
            if line is None:
                self._malformed(event.stream_id, new=True)  # type: ignore[attr-defined]
            else:
                self._on_request(event.stream_id, event.headers, line)  # type: ignore[attr-defined]
        elif kind is DataReceived:
            sid = event.stream_id  # type: ignore[attr-defined]
            # Hand the credit back at once: the body is buffered in full anyway, and a client
            # sending 1 MB or many streams must never wait on us.
            if event.flow_controlled_length:  # type: ignore[attr-defined]
                self._h2.acknowledge_received_data(event.flow_controlled_length, sid)  # type: ignore
            stream = self._streams.get(sid)
            data = event.data  # type: ignore[attr-defined]
            if stream is not None and data and not stream.over:
                self._buffer(sid, stream, data)
        elif kind is StreamEnded:
            self._on_end(event.stream_id)  # type: ignore[attr-defined]
        elif kind is StreamReset:
            self._forget(event.stream_id)  # type: ignore[attr-defined]
            if self._count_reset():
                self._calm(ErrorCodes.ENHANCE_YOUR_CALM)
        elif kind is TrailersReceived:
            if not check_trailers(event.headers):  # type: ignore[attr-defined]
                self._malformed(event.stream_id, new=False)  # type: ignore[attr-defined]
        elif kind is WindowUpdated or kind is RemoteSettingsChanged:
            if kind is RemoteSettingsChanged:
                self._ready = True
                if self._count_control():
                    self._calm(ErrorCodes.ENHANCE_YOUR_CALM)
                    return
            if self._blocked:
                self._resume_bodies()
        elif kind is PingReceived:
            if self._count_control():
                self._calm(ErrorCodes.ENHANCE_YOUR_CALM)
        elif kind is SettingsAcknowledged:
            self._limit = self._h2.local_settings[MAX_STREAMS]  # type: ignore[union-attr]
        elif kind is ConnectionTerminated:
            # h2 cannot send anything after the peer's GOAWAY (its state machine is CLOSED),
            # so in-flight answers are lost; clients send GOAWAY only when done, in practice.
            self._close_now()
        # PING is acknowledged by h2 itself (flushed with this batch); the rest needs nothing.

    def _malformed(self, sid: int, *, new: bool) -> None:
        """RFC 9113 §8.1.1: a malformed request, or malformed trailers, is a stream error."""
        if new:
            if self._goaway_last is not None and sid > self._goaway_last:
                tell_stream_after_goaway(self.service, self.conn, sid)
                return   # ignored like any stream above our GOAWAY
        elif sid not in self._streams:
            return   # trailers of a stream refused or ignored
        self._forget(sid)
        self._reset(sid, ErrorCodes.PROTOCOL_ERROR)

    def _on_request(self, sid: int, headers: Headers, line: RequestLine) -> None:
        if self._goaway_last is not None and sid > self._goaway_last:
            # RFC 9113 §6.8: streams above last-stream-id are ignored, never answered (the
            # service notes the peer's disregard for the report's apns.goaway-ignored rule)
            tell_stream_after_goaway(self.service, self.conn, sid)
            return
        owed = len(self._streams)
        if owed >= max(self._limit, self._announced):
            self._reset(sid, ErrorCodes.REFUSED_STREAM)   # over a limit the peer has seen
            if self._count_reset():
                self._calm(ErrorCodes.ENHANCE_YOUR_CALM)
            return
        stream = self._streams[sid] = _Stream(headers, line)
        if self._held or owed >= self._announced:
            self._held[sid] = stream                      # behind earlier streams, or no slot yet

    def _admit_held(self) -> None:
        """Give held streams the slots the announced limit allows, oldest first."""
        held = self._held
        while held and not self._closed and len(self._streams) - len(held) < self._announced:
            sid = next(iter(held))
            stream = held.pop(sid)
            if stream.over:
                self._too_big(sid, stream)
            elif stream.ended:
                self._on_end(sid)

    def _buffer(self, sid: int, stream: _Stream, data: bytes) -> None:
        """Keep a body chunk, within the stream's limit and the connection's and edge's budgets."""
        n = len(data)
        stream.size += n
        self._body_bytes += n
        bodies = self.limits.bodies
        bodies.used += n
        stream.body.append(data)
        if stream.size > self._max_body:
            stream.over = True
            if sid not in self._held:                    # a held one is answered when admitted
                self._too_big(sid, stream)
        elif (self._body_bytes > self.limits.conn_body_bytes or bodies.used > bodies.limit) \
                and not self._over_budget:
            self._over_budget = True
            self._calm(ErrorCodes.ENHANCE_YOUR_CALM)

    def _unbuffer(self, stream: _Stream) -> None:
        n = stream.size
        stream.size = 0
        self._body_bytes -= n
        self.limits.bodies.used -= n

    def _too_big(self, sid: int, stream: _Stream) -> None:
        """Answer now from what arrived, then RST_STREAM(NO_ERROR) (RFC 9113 §8.1) so it stops."""
        body = b"".join(stream.body)
        stream.body = []
        self._unbuffer(stream)
        method, path, _ = stream.line                 # a malformed request never gets this far
        reply = too_large_reply(self.service, self.conn, method, path, stream.headers, body)  # type: ignore
        self._deliver(sid, reply)
        if sid not in self._streams:                 # answered in full: the rest is not wanted
            self._reset(sid, ErrorCodes.NO_ERROR)

    def _on_end(self, sid: int) -> None:
        stream = self._streams.get(sid)
        if stream is None:
            return
        if sid in self._held:
            stream.ended = True          # answered when it gets a slot (`_admit_held`)
            return
        if stream.over:
            return                       # answered already (`_too_big`)
        method, path, _ = line = stream.line
        chunks = stream.body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        stream.body = []
        if stream.size:
            self._unbuffer(stream)
        if not body_fits(line, len(body)):
            self._malformed(sid, new=False)
            return
        try:
            reply = self.service.handle(self.conn, method, path, stream.headers, body)  # type: ignore
        except Exception:
            log.exception("service.handle raised for %r %r", method, path)
            reply = internal_error_reply()
        if reply.fault == STALL:
            self._apply_effects(reply)
            return   # stays open (and counts against the limit) until the peer resets it
        if reply.delay > 0:
            loop = asyncio.get_running_loop()
            stream.timer = loop.call_later(reply.delay, self._deliver_later, sid, reply)
            return
        self._deliver(sid, reply)

    # -- replies ------------------------------------------------------------------------------

    def _deliver_later(self, sid: int, reply: Reply) -> None:
        stream = self._streams.get(sid)
        if self._closed or stream is None:
            return
        stream.timer = None
        try:
            self._deliver(sid, reply)
            if self._held:
                self._admit_held()
        except ProtocolError:
            self._close_now()
            return
        except Exception:   # same policy as in data_received: never leak into the event loop
            log.exception("HTTP/2 engine error in a delayed reply")
            self._emit_goaway(b"", ErrorCodes.INTERNAL_ERROR)
            self._close_now()
            return
        self._schedule_flush()

    def _deliver(self, sid: int, reply: Reply) -> None:
        fault = reply.fault
        if fault is not None:
            if fault == TCP_RESET:
                self._closed = True
                reset_connection(self.transport)  # type: ignore[arg-type]
                return
            if fault == RST_STREAM:
                del self._streams[sid]
                self._reset(sid, ErrorCodes.REFUSED_STREAM)
                self._apply_effects(reply)
                return
            if fault == GOAWAY:
                # This stream and every later one are declared unprocessed (safe to retry).
                self._emit_goaway(reply.goaway or b"", ErrorCodes.NO_ERROR, last=sid - 2)
                return
            log.warning("ignoring unknown fault %r", fault)
        stream = self._streams[sid]
        h2 = self._h2
        body = reply.body
        headers = [(b":status", _STATUS.get(reply.status) or str(reply.status).encode())]
        headers += reply.headers
        try:
            h2.send_headers(sid, headers, end_stream=not body)  # type: ignore[union-attr]
            if body:
                stream.out = body
                self._send_body(sid, stream)
        except _GONE:   # the peer reset it in the same batch
            stream.out = None
        if stream.out is None:
            self._streams.pop(sid, None)
        self._apply_effects(reply)

    def _send_body(self, sid: int, stream: _Stream) -> None:
        """Send as much of the body as flow control allows; one DATA frame when it fits.

        aioapns decodes each DATA frame as JSON on its own, so the body is split only when the
        peer's window or frame size forces it.
        """
        h2 = self._h2
        data = stream.out
        while data:
            room = min(h2.local_flow_control_window(sid), h2.max_outbound_frame_size)  # type: ignore
            if room <= 0:
                stream.out = data
                self._blocked.add(sid)
                return
            chunk, data = data[:room], data[room:]
            h2.send_data(sid, chunk, end_stream=not data)  # type: ignore[union-attr]
        stream.out = None
        self._blocked.discard(sid)

    def _resume_bodies(self) -> None:
        for sid in sorted(self._blocked):
            stream = self._streams.get(sid)
            if stream is None or stream.out is None:
                self._blocked.discard(sid)
                continue
            try:
                self._send_body(sid, stream)
            except _GONE:
                stream.out = None
                self._blocked.discard(sid)
            if stream.out is None:
                self._streams.pop(sid, None)

    def _apply_effects(self, reply: Reply) -> None:
        """The connection-level fields of a reply, applied right after the stream's outcome."""
        n = reply.max_streams
        if n is not None and n != self._announced:
            self._announced = n
            self._h2.update_settings({MAX_STREAMS: n})  # type: ignore[union-attr]
        if reply.goaway is not None:
            self._emit_goaway(reply.goaway, ErrorCodes.NO_ERROR)

    # -- connection management --------------------------------------------------------------

    def _reset(self, sid: int, code: ErrorCodes) -> None:
        try:
            self._h2.reset_stream(sid, code)  # type: ignore[union-attr]
        except _GONE:
            pass   # already closed by the peer: nothing to refuse

    def _forget(self, sid: int) -> None:
        self._held.pop(sid, None)
        stream = self._streams.pop(sid, None)
        if stream is not None:
            if stream.timer is not None:
                stream.timer.cancel()
            if stream.size:
                self._unbuffer(stream)
        self._blocked.discard(sid)

    def _emit_goaway(self, debug: bytes, code: ErrorCodes, last: int | None = None) -> None:
        """Queue a GOAWAY frame without telling h2.

        h2's `close_connection` moves its state machine to CLOSED, after which it refuses to send
        the answers for streams still in flight; a graceful GOAWAY needs them answered.
        """
        h2 = self._h2
        if last is None:
            last = h2.highest_inbound_stream_id  # type: ignore[union-attr]
        last = max(last, 0)
        if self._goaway_last is not None:
            last = min(last, self._goaway_last)   # RFC 9113 §6.8: must not increase
        self._goaway_last = last
        tell_goaway(self.service, self.conn, last, code, debug)
        frame = GoAwayFrame(0, last_stream_id=last, error_code=code, additional_data=debug)
        self._out += h2.data_to_send()  # type: ignore[union-attr]
        self._out += frame.serialize()
        for sid in [s for s in self._streams if s > last]:
            self._forget(sid)   # declared unprocessed: never answered
        if self._drain_timer is None and not self._closed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:                     # driven by hand (tests): no timer
                return
            self._drain_timer = loop.call_later(self.drain_timeout, self._close_now)

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and not self._closed:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write everything queued in one `transport.write`, then close if drained after GOAWAY."""
        self._flush_handle = None
        if self._closed:
            return
        data = self._h2.data_to_send()  # type: ignore[union-attr]
        if self._out:
            self._out += data
            data = bytes(self._out)
            self._out.clear()
        if data:
            self.transport.write(data)  # type: ignore[union-attr]
            if self._paused and self._write_overflow():
                self._calm(ErrorCodes.ENHANCE_YOUR_CALM, abort=True)
                return
        if self._goaway_last is not None and not self._streams:
            self._close_now()

    # -- guard (pushsim.edge.guard) ----------------------------------------------------------

    def _guard_dead(self) -> bool:
        return self._closed

    def _owes_answers(self) -> bool:
        return bool(self._streams)

    def _calm(self, code: int, abort: bool = False) -> None:
        if abort:
            self._closed = True
            self.transport.abort()  # type: ignore[union-attr]
            return
        self._emit_goaway(b"", ErrorCodes(code))
        self._close_now()

    def _idle_close(self, abort: bool) -> None:
        if abort:
            self._calm(ErrorCodes.NO_ERROR, abort=True)
        else:
            self._emit_goaway(idle_goaway_debug(self.service), ErrorCodes.NO_ERROR)
            self._close_now()

    def _close_now(self) -> None:
        """Flush what is queued (e.g. h2's error GOAWAY) and close the connection."""
        if self._closed:
            return
        self._closed = True
        data = bytes(self._out) + self._h2.data_to_send()  # type: ignore[union-attr]
        self._out.clear()
        if data:
            self.transport.write(data)  # type: ignore[union-attr]
        self.transport.close()  # type: ignore[union-attr]
