"""Edge bounds (pushsim.edge.limits) on both HTTP/2 engines, without sockets (tests/engine_wire.py)."""
from __future__ import annotations

import functools
import time

import h2.connection
import h2.errors
import h2.settings
import pytest
from hyperframe.frame import DataFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame

from fake_apns.auth import KeyStore, MAX_TOKEN_BYTES
from pushsim.edge import hpack_fast
from pushsim.edge.fast_engine import FastH2Protocol
from pushsim.edge.h2_engine import H2Protocol
from pushsim.edge.limits import EdgeLimits
from pushsim.edge.types import ConnInfo, Headers, Reply
from tests.engine_wire import ScriptService, Wire

ENGINES = {"fast": FastH2Protocol, "h2": H2Protocol}
CALM = int(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)


class CappedService(ScriptService):
    """ScriptService with a body limit and its own too-large answer."""

    def __init__(self, limit: int) -> None:
        super().__init__(initial_max_streams=100)
        self.limit = limit
        self.too_large: list[tuple[bytes, int]] = []

    def request_body_limit(self, conn: ConnInfo) -> int:
        return self.limit

    def body_too_large(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers,
                       prefix: bytes) -> Reply:
        self.too_large.append((path, len(prefix)))
        return Reply(413, [(b"content-type", b"application/json")], b'{"reason":"PayloadTooLarge"}')


def _wire(name: str, service: object, limits: EdgeLimits | None = None) -> Wire:
    engine = ENGINES[name] if limits is None else functools.partial(ENGINES[name], limits=limits)
    return Wire(engine, service)


def _goaways(w: Wire) -> list[tuple]:
    """GOAWAY frames the server wrote, as ("goaway", code, last stream id)."""
    return [("goaway", int.from_bytes(p[4:8], "big"), int.from_bytes(p[:4], "big") & 0x7FFFFFFF)
            for t, _, _, p in w.server_frames() if t == 7]


def _send_body(w: Wire, body: bytes, end: bool = False) -> int:
    """A POST /ok whose body goes out in frame-sized chunks, pumping between them."""
    sid = w.request(b"/ok", end=False)
    for i in range(0, len(body), 16384):
        if w.transport.closed:
            break
        last = end and i + 16384 >= len(body)
        w.client.send_data(sid, body[i:i + 16384], end_stream=last)
        w.pump()
    return sid


def _raw_requests(w: Wire, sids: range, end: bool) -> None:
    """HEADERS straight onto the wire (past the client's own view of the stream limit)."""
    enc = w.client.encoder
    head = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/ok")]
    flags = ["END_HEADERS", "END_STREAM"] if end else ["END_HEADERS"]
    w.send_raw(b"".join(HeadersFrame(sid, enc.encode(head), flags=flags).serialize() for sid in sids))


@pytest.mark.parametrize("name", ENGINES)
def test_body_past_the_service_limit_is_answered_at_once(name: str) -> None:
    svc = CappedService(limit=1000)
    limits = EdgeLimits()
    w = _wire(name, svc, limits)
    sid = w.request(b"/ok", b"x" * 5000, end=False)        # no END_STREAM: the client would go on
    r = w.responses()[sid]
    assert r["headers"][b":status"] == b"413" and r["ended"]
    assert r["body"] == b'{"reason":"PayloadTooLarge"}'
    assert svc.too_large and 1000 < svc.too_large[0][1] <= 1000 + 16384
    assert not svc.seen                                     # never handled as a whole request
    assert (3, 0, sid, (0).to_bytes(4, "big")) in w.server_frames()   # RST_STREAM(NO_ERROR)
    assert limits.bodies.used == 0
    ok = w.request(b"/ok", b"y" * 100)                      # the connection still serves
    assert w.responses()[ok]["headers"][b":status"] == b"200"
    assert not _goaways(w)


@pytest.mark.parametrize("name", ENGINES)
def test_bodies_past_the_connection_budget_end_the_connection(name: str) -> None:
    limits = EdgeLimits(conn_body_bytes=50_000)
    w = _wire(name, ScriptService(), limits)
    for _ in range(3):
        if not w.transport.closed:
            _send_body(w, b"z" * 30_000)                     # each under the per-stream limit
    assert _goaways(w)[-1][1] == CALM
    assert w.transport.closed
    w.proto.connection_lost(None)
    assert limits.bodies.used == 0                          # every buffered byte given back


@pytest.mark.parametrize("name", ENGINES)
def test_bodies_past_the_shared_budget_end_the_connection_that_crosses_it(name: str) -> None:
    limits = EdgeLimits(global_body_bytes=70_000)
    first = _wire(name, ScriptService(), limits)
    _send_body(first, b"a" * 40_000)
    assert limits.bodies.used == 40_000 and not _goaways(first)
    second = _wire(name, ScriptService(), limits)
    _send_body(second, b"b" * 40_000)
    assert _goaways(second)[-1][1] == CALM
    second.proto.connection_lost(None)
    first.proto.connection_lost(None)
    assert limits.bodies.used == 0


@pytest.mark.parametrize("name", ENGINES)
def test_answered_bodies_leave_the_budget(name: str) -> None:
    limits = EdgeLimits(conn_body_bytes=50_000)
    w = _wire(name, ScriptService(), limits)
    for _ in range(10):                                      # 10 × 30 kB in turn: never 50 kB at once
        sid = _send_body(w, b"q" * 30_000, end=True)
        assert w.responses()[sid]["headers"][b":status"] == b"200"
    assert limits.bodies.used == 0 and not _goaways(w)


@pytest.mark.parametrize("name", ENGINES)
def test_rapid_reset_spends_the_reset_budget(name: str) -> None:
    limits = EdgeLimits(reset_budget=20)
    svc = ScriptService()
    w = _wire(name, svc, limits)
    c = w.client
    for _ in range(40):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"x"),
                             (b":path", b"/ok")], end_stream=True)
        c.reset_stream(sid)
    w.pump()
    goaways = _goaways(w)
    assert goaways and goaways[-1][1] == CALM
    assert len(svc.seen) <= 40 and w.transport.closed


@pytest.mark.parametrize("name", ENGINES)
def test_refused_streams_count_against_the_reset_budget(name: str) -> None:
    limits = EdgeLimits(reset_budget=5)
    w = _wire(name, ScriptService(initial_max_streams=1), limits)
    _raw_requests(w, range(1, 21, 2), end=False)             # the first held open, the rest refused
    assert _goaways(w)[-1][1] == CALM


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("frame", ["ping", "settings"])
def test_control_frames_past_the_budget_end_the_connection(name: str, frame: str) -> None:
    w = _wire(name, ScriptService(), EdgeLimits(control_budget=50))
    sid = w.request(b"/ok")
    raw = PingFrame(0, b"12345678").serialize() if frame == "ping" else SettingsFrame(0).serialize()
    w.send_raw(raw * 40)
    assert not _goaways(w)                                   # 40 (+1 at start) is within 50
    w.send_raw(raw * 40)
    assert _goaways(w)[-1][1:] == (CALM, sid)
    assert w.transport.closed


@pytest.mark.parametrize("name", ENGINES)
def test_next_stream_served_after_reset_in_the_same_read(name: str) -> None:
    """HEADERS + DATA + RST_STREAM + the next HEADERS in one read (issue 11): stream 3 is answered."""
    w = _wire(name, ScriptService())
    enc = w.client.encoder
    head = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/ok")]
    frames = []
    h = HeadersFrame(1, enc.encode(head), flags=["END_HEADERS"])
    d = DataFrame(1, b"body", flags=["END_STREAM"])
    r = RstStreamFrame(1)
    r.error_code = 8
    h3 = HeadersFrame(3, enc.encode(head), flags=["END_HEADERS", "END_STREAM"])
    frames = [h, d, r, h3]
    w.send_raw(b"".join(f.serialize() for f in frames))
    assert not _goaways(w) and not w.transport.closed
    raw = w.server_frames()
    assert any(t == 1 and sid == 3 for t, _, sid, _ in raw)   # HEADERS answering stream 3


@pytest.mark.parametrize("name", ENGINES)
def test_many_initial_window_entries_in_one_settings_frame_are_cheap(name: str) -> None:
    w = _wire(name, ScriptService(initial_max_streams=1000))
    for _ in range(500):
        w.request(b"/ok", end=False)                        # 500 open streams
    entries = [(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE, 1000 + i) for i in range(2700)]
    frame = SettingsFrame(0)
    frame.settings = dict(entries)
    payload = b"".join(int(k).to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in entries)
    raw = len(payload).to_bytes(3, "big") + b"\x04\x00\x00\x00\x00\x00" + payload
    start = time.perf_counter()
    for _ in range(5):
        w.proto.data_received(raw)
    assert time.perf_counter() - start < 1.0                 # was entries × streams
    assert not w.transport.closed
    if name == "fast":
        assert w.proto.connection._peer_window == 1000 + 2699          # the last value won
        assert all(st.send_window == 3699 for st in w.proto.connection.streams.values())


def _open_in_one_read(n: int) -> float:
    """Seconds the h2 engine takes to open n streams that arrive in one read (best of two)."""
    best = float("inf")
    for _ in range(2):
        w = _wire("h2", ScriptService(initial_max_streams=100_000), EdgeLimits(reset_budget=10**9))
        block = w.client.encoder.encode([(b":method", b"POST"), (b":scheme", b"https"),
                                         (b":authority", b"x"), (b":path", b"/ok")])
        data = b"".join(HeadersFrame(1 + 2 * i, block, flags=["END_HEADERS"]).serialize() for i in range(n))
        start = time.perf_counter()
        w.proto.data_received(data)
        best = min(best, time.perf_counter() - start)
        assert len(w.proto._streams) == n
    return best


def test_h2_engine_opens_many_streams_in_one_read_in_linear_time() -> None:
    # A ratio, not a wall-clock bound, so a busy machine cannot fail it: 8x the streams costs ~8x
    # when linear (up to ~16x seen on a busy machine); h2's own per-stream scan made it ~150x (8k streams ~4 s, 16k ~16 s).
    small, large = _open_in_one_read(1000), _open_in_one_read(8000)
    assert large < 40 * small, (small, large)


def test_fast_hpack_memo_keeps_no_long_literals() -> None:
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

    enc = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
    dec = hpack_fast.HpackDecoder(max_header_list_size=1 << 24)
    long = enc.encode(b"a" * 100_000)
    assert dec._huffman(long) == b"a" * 100_000
    assert long not in hpack_fast._HUFFMAN_MEMO
    short = enc.encode(b"bearer abc")
    dec._huffman(short)
    assert short in hpack_fast._HUFFMAN_MEMO


def test_absurd_provider_tokens_are_rejected_unparsed_and_never_cached() -> None:
    keys = KeyStore()
    assert keys.verify(b"a" * (MAX_TOKEN_BYTES + 1)) == "InvalidProviderToken"
    for i in range(200):                                    # distinct garbage, 3 kB each
        keys.verify(b"%d." % i + b"x" * 3000 + b".y")
    assert not keys._verified and keys._verified_bytes == 0
    keys.verify(b"short.garbage.token")
    assert len(keys._verified) == 1
