"""FastH2Protocol against an h2 client through a fake transport: replies, flow control, errors."""
from __future__ import annotations

import asyncio

import h2.errors
import hpack
import pytest

from pushsim.edge import frames as F
from pushsim.edge.fast_engine import FastH2Protocol
from tests.engine_wire import ScriptService, Wire
from tests.waiting import until

E = h2.errors.ErrorCodes


def wire(**kw) -> tuple[Wire, ScriptService]:
    svc = ScriptService(**kw)
    return Wire(FastH2Protocol, svc), svc


def test_request_reaches_service_with_headers_and_body_and_reply_comes_back():
    w, svc = wire()
    sid = w.request(b"/ok", b'{"aps":{}}', [(b"apns-topic", b"com.example.app")])
    method, path, headers, body = svc.seen[0]
    assert (method, path, body) == (b"POST", b"/ok", b'{"aps":{}}')
    assert (b"apns-topic", b"com.example.app") in headers and headers[0] == (b":method", b"POST")
    r = w.responses()[sid]
    assert r["headers"] == {b":status": b"200", b"apns-id": b"id-1", b"x-body-len": b"10"}
    assert r["ended"] and r["body"] == b""
    assert svc.opened[0].http2 and not svc.opened[0].tls and svc.opened[0].peer == ("127.0.0.1", 40000)


def test_error_reply_has_body_in_data_frame():
    w, _ = wire()
    sid = w.request(b"/err/403")
    r = w.responses()[sid]
    assert r["headers"][b":status"] == b"403" and r["body"].startswith(b'{"reason":"BadDeviceToken"')
    assert r["ended"]


def test_one_write_per_data_received_for_many_requests():
    w, _ = wire()
    before = len(w.transport.writes)
    sids = []
    for _ in range(50):
        sid = w.client.get_next_available_stream_id()
        w.client.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"),
                                    (b":authority", b"x"), (b":path", b"/err/400")])
        w.client.send_data(sid, b"{}", end_stream=True)
        sids.append(sid)
    w.pump()
    assert len(w.transport.writes) == before + 1
    assert all(w.responses()[s]["ended"] for s in sids)


def test_body_larger_than_client_window_waits_for_window_update():
    w, _ = wire()
    sid = w.request(b"/big/200000")
    r = w.responses()[sid]
    assert r["ended"] and r["body"] == b"x" * 200000       # needed several client WINDOW_UPDATEs


def test_body_respects_small_client_frame_and_window_settings():
    w = Wire(FastH2Protocol, ScriptService(), client_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    sid = w.request(b"/big/1000")
    assert w.responses()[sid]["body"] == b"x" * 1000
    chunks = [e[2] for e in w.events if e[0] == "data"]
    assert max(map(len, chunks)) <= 10


def test_ping_is_acked_and_priority_ignored():
    w, _ = wire()
    w.client.ping(b"abcdefgh")
    w.client.prioritize(1, weight=32)
    w.pump()
    sid = w.request(b"/ok")
    assert ("pong", b"abcdefgh") in w.events and w.responses()[sid]["ended"]


def test_max_streams_reply_sends_settings_and_is_enforced_after_ack():
    w, _ = wire()
    w.request(b"/streams/1")
    assert ("max_streams", 1) in w.events
    s1 = w.request(b"/ok", end=False)                       # stays open
    # the client believes the limit is 1 and would refuse, so bypass its bookkeeping
    raw = w.client.encoder.encode([(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/ok")])
    w.send_raw(F.header(len(raw), F.HEADERS, F.END_HEADERS | F.END_STREAM, s1 + 2) + raw)
    assert w.transport.writes[-1] == F.rst_stream(s1 + 2, E.REFUSED_STREAM)
    w.client.end_stream(s1)
    w.pump()                                                # s1 done: room for one stream again
    assert w.responses()[s1]["ended"]
    w.send_raw(F.header(len(raw), F.HEADERS, F.END_HEADERS | F.END_STREAM, s1 + 4) + raw)
    last = w.server_frames()[-1]
    assert last[:3] == (F.HEADERS, F.END_HEADERS | F.END_STREAM, s1 + 4)


def test_goaway_reply_closes_after_in_flight_streams():
    w, _ = wire()
    open_sid = w.request(b"/ok", end=False)
    w.request(b"/goaway")
    assert ("goaway", 0, open_sid + 2, b'{"reason":"Test"}') in w.events
    assert not w.transport.closed                          # stream `open_sid` still in flight
    w.send_raw(F.header(0, F.DATA, F.END_STREAM, open_sid))  # (the h2 client refuses to send now)
    assert w.server_frames()[-1][:3] == (F.HEADERS, F.END_HEADERS | F.END_STREAM, open_sid)
    assert w.transport.closed


def test_shutdown_sends_goaway_and_closes_when_idle():
    w, _ = wire()
    w.request(b"/ok")
    w.proto.shutdown(b'{"reason":"Shutdown"}')
    w.pump()
    assert w.events[-1] == ("goaway", 0, 1, b'{"reason":"Shutdown"}') and w.transport.closed
    assert not w.conns or w.proto in w.conns                 # removed only on connection_lost
    w.proto.connection_lost(None)
    assert not w.conns


def test_service_raise_becomes_500():
    w, _ = wire()
    sid = w.request(b"/raise")
    assert w.responses()[sid]["headers"][b":status"] == b"500"


def test_fault_rst_stream_and_tcp_reset():
    w, _ = wire()
    sid = w.request(b"/fault/rst_stream")
    assert w.responses()[sid]["reset"] == E.REFUSED_STREAM
    w.request(b"/fault/tcp_reset")
    assert w.transport.aborted


@pytest.mark.parametrize("raw, code", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", E.PROTOCOL_ERROR),                    # no preface
])
def test_bad_preface_is_a_connection_error(raw, code):
    w, _ = wire()
    t = w.transport
    w2 = FastH2Protocol(ScriptService(), set())
    w2.connection_made(t)
    w2.data_received(raw)
    assert t.closed and t.writes[-1][3] == F.GOAWAY and t.writes[-1][-1] == code


def _last_goaway(w: Wire) -> tuple | None:
    return next((e for e in reversed(w.events) if e[0] == "goaway"), None)


@pytest.mark.parametrize("frame, code", [
    (F.header(20000, F.DATA, 0, 1) + b"\0" * 20000, E.FRAME_SIZE_ERROR),    # above our max frame
    (F.header(4, F.DATA, 0, 99) + b"abcd", E.PROTOCOL_ERROR),               # DATA on an idle stream
    (F.header(3, F.PING, 0, 0) + b"abc", E.FRAME_SIZE_ERROR),
    (F.header(8, F.PING, 0, 1) + b"abcdefgh", E.PROTOCOL_ERROR),
    (F.header(4, F.WINDOW_UPDATE, 0, 0) + b"\0\0\0\0", E.PROTOCOL_ERROR),
    (F.header(4, F.WINDOW_UPDATE, 0, 0) + b"\x7f\xff\xff\xff", E.FLOW_CONTROL_ERROR),
    (F.header(6, F.SETTINGS, 0, 0) + b"\0\x05\0\0\0\x01", E.PROTOCOL_ERROR),  # MAX_FRAME_SIZE 1
    (F.header(6, F.SETTINGS, 0, 0) + b"\0\x04\x80\0\0\0", E.FLOW_CONTROL_ERROR),
    (F.header(5, F.SETTINGS, 0, 0) + b"\0" * 5, E.FRAME_SIZE_ERROR),
    (F.header(2, F.HEADERS, F.END_HEADERS, 2) + b"\x82\x84", E.PROTOCOL_ERROR),  # even stream id
    (F.header(1, F.HEADERS, F.END_HEADERS, 1) + b"\xff", E.PROTOCOL_ERROR),     # as h2 (RFC: COMPRESSION_ERROR)
    (F.header(1, F.CONTINUATION, F.END_HEADERS, 1) + b"\x82", E.PROTOCOL_ERROR),
    (F.header(1, F.HEADERS, 0, 1) + b"\x82" + F.header(0, F.PING, 0, 0), E.PROTOCOL_ERROR),
    (F.header(5, F.PRIORITY, 0, 1) + b"\0\0\0\x01\x10", E.PROTOCOL_ERROR),    # depends on itself
    (F.header(4, F.RST_STREAM, 0, 0) + b"\0\0\0\x08", E.PROTOCOL_ERROR),       # stream 0
])
def test_connection_errors_send_goaway_and_close(frame, code):
    w, _ = wire()
    w.send_raw(frame)
    assert _last_goaway(w)[1] == code and w.transport.closed


def test_data_after_end_stream_is_stream_closed():
    w, _ = wire()
    sid = w.request(b"/ok")
    w.send_raw(F.header(2, F.DATA, F.END_STREAM, sid) + b"hi")
    assert w.server_frames()[-1] == (F.RST_STREAM, 0, sid, b"\0\0\0\x05")
    sid2 = w.request(b"/ok")                                 # the connection carries on
    assert w.responses()[sid2]["ended"]


def test_headers_reusing_a_finished_stream_is_connection_stream_closed():
    w, _ = wire()
    sid = w.request(b"/ok")
    raw = w.client.encoder.encode([(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/ok")])
    w.send_raw(F.header(len(raw), F.HEADERS, F.END_HEADERS | F.END_STREAM, sid) + raw)
    assert _last_goaway(w)[1] == E.STREAM_CLOSED


def test_malformed_request_is_reset_with_protocol_error():
    w, _ = wire()
    raw = hpack.Encoder().encode([(b":method", b"POST"), (b"x", b"y"), (b":path", b"/ok")])
    w.send_raw(F.header(len(raw), F.HEADERS, F.END_HEADERS | F.END_STREAM, 1) + raw)
    assert w.server_frames()[-1] == (F.RST_STREAM, 0, 1, b"\0\0\0\x01")


def test_padding_priority_and_continuation_are_understood():
    w, svc = wire()
    block = hpack.Encoder().encode([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/ok"),
                                    (b"x-pad", b"p" * 50)])
    head = bytes([3]) + b"\0\0\0\0\x10" + block[:10] + b"\0\0\0"           # pad 3, priority
    frames = (F.header(len(head), F.HEADERS, F.PADDED | F.PRIORITY_FLAG, 1) + head
              + F.header(len(block) - 10, F.CONTINUATION, F.END_HEADERS, 1) + block[10:]
              + F.header(6, F.DATA, F.PADDED | F.END_STREAM, 1) + b"\x02abc\0\0")
    w.send_raw(frames)
    assert svc.seen[0][1] == b"/ok" and svc.seen[0][3] == b"abc"
    assert w.server_frames()[-1][:3] == (F.HEADERS, F.END_HEADERS | F.END_STREAM, 1)


def test_rst_from_client_cancels_a_delayed_reply():
    async def run():
        svc = ScriptService()
        orig = svc.handle

        def slow(*a):
            r = orig(*a)
            r.delay = 0.05
            return r
        svc.handle = slow
        w = Wire(FastH2Protocol, svc)
        s1 = w.request(b"/ok")
        s2 = w.request(b"/ok")
        w.client.reset_stream(s1)
        w.pump()
        assert s2 not in w.responses()

        def s2_answered() -> bool:
            w.pump()
            return bool(w.responses().get(s2, {}).get("ended"))
        await until(s2_answered, "the delayed reply of the stream not reset")   # s1's timer was due first
        r = w.responses()
        assert r[s2]["ended"] and r.get(s1, {}).get("headers", {}) == {}
    asyncio.run(run())
