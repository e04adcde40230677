"""FastH2Connection driven directly: bytes in, bytes and effects out, time from the test. No event
loop, no transport: an h2 client talks to the connection and the test carries out its effects."""
from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

from pushsim.edge import frames as F
from pushsim.edge.fast_conn import ABORT, ARM, CANCEL, CLOSE, TCP_RESET_NOW, FastH2Connection, Timer
from pushsim.edge.limits import EdgeLimits
from pushsim.edge.types import ConnInfo, Headers, Reply

E = h2.errors.ErrorCodes
REQUEST = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"x")]


class DelayService:
    """/ok → 200 at once; /delay/<s> → 200 after s seconds; the body's length comes back."""

    def __init__(self, initial_max_streams: int | None = 100) -> None:
        self.seen: list[bytes] = []
        self.initial = initial_max_streams

    def open(self, conn: ConnInfo) -> object:
        return None

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return self.initial

    def closing_reason(self) -> bytes:
        return b"bye"

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        self.seen.append(path)
        parts = path.split(b"/")
        delay = float(parts[2]) if parts[1] == b"delay" else 0.0
        return Reply(200, [(b"x-len", b"%d" % len(body))], delay=delay)


class Peer:
    """An h2 client wired to one FastH2Connection; `now` is the connection's clock."""

    def __init__(self, service: DelayService | None = None, limits: EdgeLimits | None = None,
                 *, exchange: bool = True) -> None:
        self.now = 100.0
        self.service = service or DelayService()
        self.conn = FastH2Connection(self.service, ConnInfo(tls=False, alpn=None, http2=True),
                                     lambda: self.now, limits or EdgeLimits())
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.client.initiate_connection()
        self.events: list = []
        self.timers: list[Timer] = []            # armed and not cancelled
        self.closed = self.aborted = self.tcp_reset = False
        self.conn.initiate()
        if exchange:
            self.exchange()

    def exchange(self) -> None:
        """Move bytes both ways until neither side has anything to say; carry out effects."""
        while True:
            out = self.client.data_to_send()
            if out and not self.conn.dead:
                self.conn.receive_data(out)
            back = self.conn.data_to_send()
            self._effects()
            if back:
                self.events.extend(self.client.receive_data(back))
            if not back and not out:
                return

    def _effects(self) -> None:
        for kind, timer in self.conn.effects:
            if kind == ARM:
                self.timers.append(timer)
            elif kind == CANCEL:
                self.timers.remove(timer)
            elif kind == CLOSE:
                self.closed = True
            elif kind == ABORT:
                self.aborted = True
            elif kind == TCP_RESET_NOW:
                self.tcp_reset = True
        self.conn.effects.clear()

    def fire(self, timer: Timer) -> None:
        """Advance the clock to the timer's deadline and fire it, as the adapter's loop would."""
        self.timers.remove(timer)
        self.now = max(self.now, timer.deadline)
        self.conn.fire(timer)
        self.exchange()

    def request(self, path: bytes, body: bytes = b"", end: bool = True) -> int:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, REQUEST + [(b":path", path)], end_stream=not body and end)
        if body:
            self.client.send_data(sid, body, end_stream=end)
        return sid

    def of(self, cls: type) -> list:
        return [e for e in self.events if isinstance(e, cls)]

    def status(self, sid: int) -> bytes | None:
        for e in self.of(h2.events.ResponseReceived):
            if e.stream_id == sid:
                return dict(e.headers)[b":status"]
        return None


def test_initiate_queues_settings_and_the_connection_window_before_any_read():
    p = Peer(exchange=False)
    data = p.conn.data_to_send()
    assert data[3] == F.SETTINGS and data[4] == 0           # our SETTINGS frame comes first
    events = p.client.receive_data(data)
    changed = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged))
    assert changed.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 100
    update = next(e for e in events if isinstance(e, h2.events.WindowUpdated))
    assert update.stream_id == 0 and update.delta > 1 << 29
    assert p.conn.data_to_send() == b"" and not p.conn.effects


def test_preface_and_settings_are_acked_and_make_the_connection_ready():
    p = Peer(exchange=False)
    assert not p.conn.ready
    p.exchange()
    assert p.conn.ready and p.of(h2.events.SettingsAcknowledged)
    assert not p.closed and not p.timers


def test_a_bad_preface_is_a_goaway_and_a_close_effect():
    p = Peer(exchange=False)
    p.conn.data_to_send()
    p.conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    out = p.conn.data_to_send()
    assert out[3] == F.GOAWAY and out[-1] == E.PROTOCOL_ERROR
    assert p.conn.effects == [(CLOSE, None)] and p.conn.dead


def test_request_reaches_the_service_and_the_reply_is_one_write():
    p = Peer()
    sid = p.request(b"/ok", b'{"aps":{}}')
    p.conn.receive_data(p.client.data_to_send())
    out = p.conn.data_to_send()
    assert p.conn.data_to_send() == b""                      # everything came in one bytes
    p.events.extend(p.client.receive_data(out))
    assert p.service.seen == [b"/ok"] and p.status(sid) == b"200"
    response = p.of(h2.events.ResponseReceived)[0]
    assert (b"x-len", b"10") in response.headers
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in p.events)


def test_a_delayed_reply_waits_for_the_timer_the_test_fires():
    p = Peer()
    sid = p.request(b"/delay/2.5")
    p.exchange()
    assert p.status(sid) is None and p.conn.owes_answers()
    [timer] = p.timers
    assert timer.deadline == 102.5                           # the injected clock + the delay
    p.fire(timer)
    assert p.status(sid) == b"200" and not p.conn.owes_answers()


def test_a_peer_reset_cancels_the_pending_timer():
    p = Peer()
    sid = p.request(b"/delay/1")
    p.exchange()
    assert len(p.timers) == 1
    p.client.reset_stream(sid, E.CANCEL)
    p.exchange()                                             # `_effects` removes the cancelled one
    assert p.timers == [] and not p.conn.owes_answers()


def test_streams_opened_before_the_settings_ack_are_held_and_answered_in_turn():
    p = Peer(DelayService(initial_max_streams=1), exchange=False)
    ours = p.conn.data_to_send()                             # our SETTINGS (limit 1), not yet read
    sids = [p.request(b"/delay/1") for _ in range(3)]        # so the client opens three at once
    p.conn.receive_data(p.client.data_to_send())
    out = ours + p.conn.data_to_send()
    assert F.RST_STREAM not in _frame_types(out)             # held, not refused
    p._effects()
    p.events.extend(p.client.receive_data(out))
    p.exchange()
    assert p.service.seen == [b"/delay/1"] and len(p.timers) == 1   # one slot: one dispatched
    for n in (2, 3):
        p.fire(p.timers[0])
        assert len(p.service.seen) == n                      # the next held one got the slot
    p.fire(p.timers[0])
    assert [p.status(s) for s in sids] == [b"200"] * 3 and not p.conn.owes_answers()


def test_goaway_drains_the_streams_in_flight_then_closes():
    p = Peer()
    sid = p.request(b"/delay/1")
    p.exchange()
    p.conn.shutdown(b"bye")
    p.exchange()
    goaway = p.of(h2.events.ConnectionTerminated)[0]
    assert goaway.last_stream_id == sid and goaway.error_code == E.NO_ERROR
    assert not p.closed and len(p.timers) == 2               # the delayed reply and the drain
    reply = next(t for t in p.timers if t.stream is not None)
    p.timers.remove(reply)
    p.now = reply.deadline
    p.conn.fire(reply)                                       # (h2 reads nothing after a GOAWAY)
    out = p.conn.data_to_send()
    assert _frame_types(out) == [F.HEADERS] and int.from_bytes(out[5:9], "big") == sid
    p._effects()
    assert p.closed                                          # drained: closed after the write
    p.conn.close()                                           # the transport's connection_lost
    p._effects()
    assert p.timers == []                                    # the drain timer is void too


def test_goaway_drain_timeout_closes_with_a_stream_still_owed():
    p = Peer()
    p.request(b"/delay/60")
    p.exchange()
    p.conn.shutdown(b"bye")
    p.exchange()
    drain = next(t for t in p.timers if t.stream is None)
    assert drain.deadline == p.now + p.conn.drain_timeout
    p.fire(drain)
    assert p.closed


def test_a_body_over_the_cap_is_answered_413_and_the_stream_reset():
    p = Peer(limits=EdgeLimits(max_body=100))
    sid = p.request(b"/ok", b"x" * 150, end=False)
    p.exchange()
    assert p.status(sid) == b"413" and p.service.seen == []
    resets = p.of(h2.events.StreamReset)
    assert [(r.stream_id, r.error_code) for r in resets] == [(sid, E.NO_ERROR)]
    assert p.conn._bodies.used == 0                          # nothing stays counted


def test_rapid_reset_budget_ends_the_connection_within_its_window_only():
    limits = EdgeLimits(reset_budget=5, budget_window=10.0)
    p = Peer(limits=limits)
    for _ in range(5):
        p.client.reset_stream(p.request(b"/delay/1"), E.CANCEL)
        p.exchange()
    p.now += 11.0                                            # a new window: the count restarts
    for _ in range(5):
        p.client.reset_stream(p.request(b"/delay/1"), E.CANCEL)
        p.exchange()
    assert not p.closed
    p.client.reset_stream(p.request(b"/delay/1"), E.CANCEL)  # the 6th in this window
    p.exchange()
    goaway = p.of(h2.events.ConnectionTerminated)[0]
    assert goaway.error_code == E.ENHANCE_YOUR_CALM and p.closed and p.timers == []


def test_close_gives_back_buffered_bodies_and_voids_timers():
    p = Peer()
    p.request(b"/delay/1")
    p.request(b"/ok", b"x" * 500, end=False)                 # a body buffered, not yet ended
    p.exchange()
    assert p.conn._bodies.used == 500 and len(p.timers) == 1
    p.conn.close()
    p._effects()
    assert p.conn._bodies.used == 0 and p.timers == []


def _frame_types(data: bytes) -> list[int]:
    types, pos = [], 0
    while pos + 9 <= len(data):
        n = int.from_bytes(data[pos:pos + 3], "big")
        types.append(data[pos + 3])
        pos += 9 + n
    return types
