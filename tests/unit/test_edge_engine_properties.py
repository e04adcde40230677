"""Invariants of H2Protocol under random input, on an in-memory transport (no sockets)."""
from __future__ import annotations

import asyncio

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, ResponseReceived, StreamEnded, StreamReset
from hypothesis import given, settings, strategies as st

from pushsim.edge.h2_engine import H2Protocol
from pushsim.edge.listener import PREFACE
from pushsim.edge.types import ConnInfo, Reply

from test_edge_engine import FakeTransport

KINDS = ["ok", "error", "raise", "rst_stream", "stall", "max"]


class ByPath:
    def __init__(self) -> None:
        self.handled = 0

    def open(self, conn: ConnInfo) -> object:
        return None

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return 1000

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: list, body: bytes) -> Reply:
        self.handled += 1
        kind = path.rsplit(b"/", 1)[-1].decode()
        if kind == "raise":
            raise ValueError("bug")
        if kind == "error":
            return Reply(400, [(b"content-type", b"application/json")], b'{"reason":"BadDeviceToken"}')
        if kind == "max":
            return Reply(200, max_streams=1000)   # same value: must not disturb anything
        if kind in ("rst_stream", "stall"):
            return Reply(200, fault=kind)
        return Reply(200)


def _engine() -> tuple[H2Protocol, FakeTransport, ByPath]:
    service, transport = ByPath(), FakeTransport()
    proto = H2Protocol(service, set())
    proto.connection_made(transport)
    return proto, transport, service


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.binary(max_size=3000)), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=4000))
def test_every_stream_gets_exactly_one_outcome(requests: list[tuple[str, bytes]], chunk: int) -> None:
    async def scenario() -> None:
        proto, transport, service = _engine()
        client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        client.initiate_connection()
        want: dict[int, str] = {}
        for kind, body in requests:
            sid = client.get_next_available_stream_id()
            client.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"),
                                      (b":path", b"/x/" + kind.encode()), (b":authority", b"h")],
                                end_stream=not body)
            if body:
                client.send_data(sid, body, end_stream=True)
            want[sid] = kind
        wire = client.data_to_send()
        for i in range(0, len(wire), chunk):   # any TCP segmentation
            proto.data_received(wire[i:i + chunk])
        events = client.receive_data(b"".join(transport.writes))
        assert not transport.closed and service.handled == len(requests)
        assert not any(isinstance(e, ConnectionTerminated) for e in events)
        answered = {e.stream_id: int(dict(e.headers)[b":status"])
                    for e in events if isinstance(e, ResponseReceived)}
        ended = {e.stream_id for e in events if isinstance(e, StreamEnded)}
        reset = {e.stream_id for e in events if isinstance(e, StreamReset)}
        for sid, kind in want.items():
            expect = {"ok": 200, "max": 200, "error": 400, "raise": 500}.get(kind)
            if expect is not None:
                assert answered.get(sid) == expect and sid in ended and sid not in reset
            elif kind == "rst_stream":
                assert sid in reset and sid not in answered
            else:   # stall
                assert sid not in answered and sid not in reset
        proto.connection_lost(None)

    asyncio.run(scenario())


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_arbitrary_bytes_after_the_preface_never_raise(junk: bytes) -> None:
    async def scenario() -> None:
        proto, transport, _ = _engine()
        proto.data_received(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + junk)
        proto.data_received(junk)
        if transport.closed:   # a protocol error: the last thing written is a GOAWAY frame
            assert transport.writes[-1][-17:][3] == 0x7   # error GOAWAYs carry no debug data
        proto.connection_lost(None)

    asyncio.run(scenario())
