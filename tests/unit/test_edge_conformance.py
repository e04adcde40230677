"""RFC 9113 conformance cases (the ones h2spec found) on both HTTP/2 engines, through `Wire`.

Malformed requests (§8.1.1, §8.2, §8.3) are stream errors: RST_STREAM(PROTOCOL_ERROR) on that
stream, the service never sees them, and the connection goes on serving. A stream window pushed
past 2^31-1 by WINDOW_UPDATE is a stream error too (§6.9.1). The shared field rules themselves are
tested in test_edge_fields.py.
"""
from __future__ import annotations

import asyncio

import h2.errors
import pytest

from pushsim.edge import frames as F
from pushsim.edge.fast_engine import FastH2Protocol
from pushsim.edge.h2_engine import H2Protocol
from pushsim.edge.listener import start_listener
from tests.engine_wire import ScriptService, Wire

E = h2.errors.ErrorCodes
ENGINES = pytest.mark.parametrize("engine", [H2Protocol, FastH2Protocol], ids=["h2", "fast"])

M, S, A, P = (b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/ok")
GOOD = [M, S, A, P]

MALFORMED = {
    "uppercase name": GOOD + [(b"X-Custom", b"1")],
    "space in name": GOOD + [(b"x custom", b"1")],
    "colon in regular name": GOOD + [(b"x:custom", b"1")],
    "empty name": GOOD + [(b"", b"1")],
    "LF in value": GOOD + [(b"x-custom", b"a\nb")],
    "CR in value": GOOD + [(b"x-custom", b"a\rb")],
    "NUL in value": GOOD + [(b"x-custom", b"a\0b")],
    "leading space in value": GOOD + [(b"x-custom", b" a")],
    "trailing tab in value": GOOD + [(b"x-custom", b"a\t")],
    "connection": GOOD + [(b"connection", b"keep-alive")],
    "keep-alive": GOOD + [(b"keep-alive", b"timeout=5")],
    "transfer-encoding": GOOD + [(b"transfer-encoding", b"chunked")],
    "upgrade": GOOD + [(b"upgrade", b"h2c")],
    "proxy-connection": GOOD + [(b"proxy-connection", b"close")],
    "te other than trailers": GOOD + [(b"te", b"gzip")],
    "unknown pseudo-header": GOOD + [(b":test", b"ok")],
    "response pseudo-header": GOOD + [(b":status", b"200")],
    "pseudo after regular": [M, S, A, (b"x-custom", b"1"), P],
    "regular first": [(b"x-custom", b"1"), M, S, A, P],
    "no :method": [S, A, P],
    "no :scheme": [M, A, P],
    "no :path": [M, S, A],
    "empty :path": [M, S, A, (b":path", b"")],
    "duplicated :method": [M, M, S, A, P],
    "duplicated :scheme": [M, S, S, A, P],
    "duplicated :path": [M, S, A, P, P],
    "duplicated :authority": [M, S, A, A, P],
    "content-length not digits": GOOD + [(b"content-length", b"1x")],
    "content-length negative": GOOD + [(b"content-length", b"-1")],
    "conflicting content-lengths": GOOD + [(b"content-length", b"0"), (b"content-length", b"1")],
    "CONNECT with :path": [(b":method", b"CONNECT"), A, P],
    "CONNECT without :authority": [(b":method", b"CONNECT")],
}


def _wire(engine: type) -> tuple[Wire, ScriptService]:
    svc = ScriptService(initial_max_streams=100)
    return Wire(engine, svc), svc


def _still_serving(w: Wire) -> None:
    sid = w.request(b"/ok")
    assert w.responses()[sid]["headers"][b":status"] == b"200"
    assert not any(e[0] == "goaway" for e in w.events) and not w.transport.closed


@ENGINES
@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_request_is_a_stream_error(engine: type, case: str) -> None:
    w, svc = _wire(engine)
    sid = w.request_unchecked(MALFORMED[case])
    assert w.responses()[sid] == {"headers": {}, "body": b"", "ended": False, "reset": E.PROTOCOL_ERROR}
    assert svc.seen == []
    _still_serving(w)


@ENGINES
async def test_malformed_request_with_a_body_is_reset_at_its_headers(engine: type) -> None:
    w, svc = _wire(engine)
    sid = w.send_headers_unchecked(GOOD + [(b"te", b"deflate")], end=False)
    w.pump()
    assert w.responses()[sid]["reset"] == E.PROTOCOL_ERROR
    assert svc.seen == []
    _still_serving(w)


@ENGINES
@pytest.mark.parametrize("headers", [
    GOOD + [(b"te", b"trailers")],
    [M, S, P, (b"host", b"localhost")],                     # host instead of :authority
    [M, S, P],                                              # neither
    GOOD + [(b"x-custom", b"")],                            # empty value
    GOOD + [(b"x-custom", b"a b\tc")],                      # inner whitespace
    GOOD + [(b"content-length", b"0")],
    GOOD + [(b"content-length", b"0"), (b"content-length", b"0")],
], ids=["te trailers", "host", "no authority", "empty value", "inner whitespace", "content-length 0",
        "same content-length twice"])
async def test_well_formed_edge_cases_are_served(engine: type, headers: list) -> None:
    w, svc = _wire(engine)
    sid = w.request_unchecked(headers)
    assert w.responses()[sid]["headers"][b":status"] == b"200"
    assert len(svc.seen) == 1


@ENGINES
async def test_connect_reaches_the_service_with_an_empty_path(engine: type) -> None:
    w, svc = _wire(engine)
    sid = w.request_unchecked([(b":method", b"CONNECT"), A])
    assert w.responses()[sid]["headers"][b":status"] == b"200"
    assert svc.seen[0][:2] == (b"CONNECT", b"")


@ENGINES
@pytest.mark.parametrize("declared, body, chunks", [
    (b"1", b"test", 1),          # h2spec 8.1.2.6 #1
    (b"1", b"test", 2),          # #2: the sum of several DATA frames
    (b"10", b"test", 2),         # fewer bytes than declared
    (b"4", b"", 1),              # END_STREAM on HEADERS, yet a length was declared
])
async def test_content_length_not_matching_the_body_is_a_stream_error(
        engine: type, declared: bytes, body: bytes, chunks: int) -> None:
    w, svc = _wire(engine)
    sid = w.request_unchecked(GOOD + [(b"content-length", declared)], body, chunks=chunks)
    assert w.responses()[sid]["reset"] == E.PROTOCOL_ERROR
    assert svc.seen == []
    _still_serving(w)


@ENGINES
async def test_content_length_matching_the_body_is_served(engine: type) -> None:
    w, svc = _wire(engine)
    sid = w.request_unchecked(GOOD + [(b"content-length", b"8")], b"testtest", chunks=2)
    assert w.responses()[sid]["headers"][b"x-body-len"] == b"8"
    assert svc.seen[0][3] == b"testtest"


@ENGINES
@pytest.mark.parametrize("trailers, ok", [
    ([(b"x-checksum", b"abc")], True),
    ([(b":method", b"POST")], False),            # h2spec 8.1.2.1 #3 (there without END_STREAM)
    ([(b"X-Checksum", b"abc")], False),
    ([(b"connection", b"close")], False),
], ids=["plain", "pseudo-header", "uppercase", "connection"])
async def test_trailers_follow_the_field_rules(engine: type, trailers: list, ok: bool) -> None:
    w, svc = _wire(engine)
    sid = w.send_headers_unchecked(GOOD, end=False)
    w.client.send_data(sid, b"body", end_stream=False)
    w.send_headers_unchecked(trailers, end=True, sid=sid)
    w.pump()
    r = w.responses()[sid]
    if ok:
        assert r["headers"][b":status"] == b"200" and svc.seen[0][3] == b"body"
    else:
        assert r["reset"] == E.PROTOCOL_ERROR and svc.seen == []
    _still_serving(w)


@ENGINES
async def test_stream_window_overflow_is_a_stream_error(engine: type) -> None:
    """RFC 9113 §6.9.1 (h2spec 6.9.1 #3): RST_STREAM(FLOW_CONTROL_ERROR), not GOAWAY."""
    w, svc = _wire(engine)
    sid = w.request(b"/ok", end=False)                 # open: the server may still send on it
    w.send_raw(F.window_update(sid, F.MAX_WINDOW))    # 65535 + 2^31-1 > 2^31-1
    assert w.responses()[sid]["reset"] == E.FLOW_CONTROL_ERROR
    _still_serving(w)


@ENGINES
async def test_connection_window_overflow_stays_a_connection_error(engine: type) -> None:
    w, _ = _wire(engine)
    w.send_raw(F.window_update(0, F.MAX_WINDOW))
    assert w.transport.closed
    assert [e[1] for e in w.events if e[0] == "goaway"] == [E.FLOW_CONTROL_ERROR]


@ENGINES
async def test_header_list_between_the_announced_8000_and_64k_is_served(engine: type) -> None:
    """SETTINGS_MAX_HEADER_LIST_SIZE is advisory (§6.5.2); h2spec 6.10 #1 sends 8260 bytes."""
    w, svc = _wire(engine)
    sid = w.request_unchecked(GOOD + [(b"x-dummy0", b"d" * 4000), (b"x-dummy0", b"d" * 4000)])
    assert w.responses()[sid]["headers"][b":status"] == b"200"


@pytest.mark.parametrize("engine", ["h2", "fast"])
async def test_invalid_preface_on_a_port_shared_with_http1_gets_goaway(engine: str) -> None:
    """h2spec 3.5 #2 on the FCM cleartext port: neither HTTP/2 nor HTTP/1.x → GOAWAY, close."""
    server = await start_listener("127.0.0.1", 0, service=ScriptService(), engine=engine, http1=True)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"INVALID CONNECTION PREFACE\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)      # up to EOF: the server closes
        writer.close()
        frames = []
        while len(data) >= 9:
            n = int.from_bytes(data[:3], "big")
            frames.append((data[3], data[9:9 + n]))
            data = data[9 + n:]
        assert frames and frames[-1][0] == F.GOAWAY
        assert int.from_bytes(frames[-1][1][4:8], "big") == E.PROTOCOL_ERROR
        # an HTTP/1.1 client on the same port is still answered in HTTP/1.1
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        assert line.startswith(b"HTTP/1.1 200")
    finally:
        server.close()
        await server.wait_closed()
