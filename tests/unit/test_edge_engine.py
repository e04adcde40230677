"""The edge without sockets: protocol choice, the Huffman memo, and H2Protocol on a fake transport."""
from __future__ import annotations

import asyncio

import hpack.hpack
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import PingAckReceived, ResponseReceived, StreamEnded
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman as stock_decode
from hypothesis import given, strategies as st

from pushsim.edge import huffman
from pushsim.edge.h2_engine import H2Protocol
from pushsim.edge.listener import PREFACE, choose, is_http2_start
from pushsim.edge.types import ConnInfo, Reply

_encoder = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


_starts = st.sampled_from([b"", PREFACE[:10], PREFACE, b"GET", b"POST /p HTTP/1.1", b"PRI * HTTP/1.1",
                           b"INVALID CONNECTION PREFACE", b"\x16\x03\x01"])


@given(_starts, st.binary(max_size=40), st.binary(max_size=40))
def test_sniffing_decides_only_when_certain(start: bytes, data: bytes, more: bytes) -> None:
    data = start + data
    verdict = is_http2_start(data)
    if verdict is None:
        assert b"\n" not in data or PREFACE.startswith(data)
    else:
        assert is_http2_start(data + more) is verdict            # never changes its mind
    if PREFACE.startswith(data[:len(PREFACE)]):
        assert verdict is (True if len(data) >= len(PREFACE) else None)


def test_sniffing_examples() -> None:
    assert is_http2_start(PREFACE + b"\x00\x00") is True
    assert is_http2_start(PREFACE[:10]) is None
    assert is_http2_start(b"POST /v1/projects/p/messages:send HTTP/1.1\r\n") is False
    assert is_http2_start(b"GET / HTTP/1.0\n") is False
    assert is_http2_start(b"PRI * HTTP/1.1") is None                    # a line end decides
    assert is_http2_start(b"PRI * HTTP/1.1\r\n") is False
    # neither HTTP/2 nor HTTP/1.x: the HTTP/2 engine answers GOAWAY (h2spec 3.5 #2)
    assert is_http2_start(b"INVALID CONNECTION PREFACE\r\n\r\n") is True
    assert is_http2_start(b"\x16\x03\x01\x02\x00") is True               # TLS on a cleartext port
    assert is_http2_start(b"GET /" + b"a" * 9000) is False               # HTTP/1.1 answers 414/431


class _Ssl:
    def __init__(self, alpn: str | None) -> None:
        self.alpn = alpn

    def selected_alpn_protocol(self) -> str | None:
        return self.alpn

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return None


class FakeTransport(asyncio.Transport):
    def __init__(self, alpn: str | None = None, tls: bool = False) -> None:
        super().__init__()
        self.ssl = _Ssl(alpn) if tls else None
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"ssl_object": self.ssl, "peername": ("127.0.0.1", 5000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_choose_by_alpn_and_http1_flag() -> None:
    assert choose(FakeTransport(), http1=False) is True            # h2c prior knowledge
    assert choose(FakeTransport(), http1=True) is None             # cleartext: sniff
    assert choose(FakeTransport("h2", tls=True), http1=True) is True
    assert choose(FakeTransport("http/1.1", tls=True), http1=True) is False
    assert choose(FakeTransport(None, tls=True), http1=False) is True   # aioapns: no ALPN
    assert choose(FakeTransport(None, tls=True), http1=True) is None


@given(st.binary(max_size=300))
def test_memoised_huffman_matches_hpack(raw: bytes) -> None:
    encoded = _encoder.encode(raw)
    assert huffman.decode_huffman(encoded) == stock_decode(encoded) == raw
    assert huffman.decode_huffman(encoded) == raw   # second call answered from the cache


def test_memo_is_installed_and_used_by_the_decoder() -> None:
    assert hpack.hpack.decode_huffman is huffman.decode_huffman
    value = b"bearer " + b"e" * 150
    block = hpack.Encoder().encode([(b"authorization", value)], huffman=True)
    before = huffman.cache_info().hits
    for _ in range(2):
        assert hpack.Decoder().decode(block, raw=True) == [(b"authorization", value)]
    assert huffman.cache_info().hits > before


class Counting:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def open(self, conn: ConnInfo) -> object:
        return None

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return None

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: list, body: bytes) -> Reply:
        self.seen.append(path)
        return Reply(200, [(b"apns-id", path[-4:])])

    def closing_reason(self) -> bytes:
        return b""


async def test_one_write_per_data_received_for_a_batch() -> None:
    service, conns, transport = Counting(), set(), FakeTransport()
    proto = H2Protocol(service, conns)
    proto.connection_made(transport)
    assert conns == {proto} and len(transport.writes) == 1     # server SETTINGS

    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    sids = []
    for i in range(20):
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"),
                                  (b":path", b"/3/device/%04d" % i), (b":authority", b"x")])
        client.send_data(sid, b'{"aps":{}}', end_stream=True)
        sids.append(sid)
    client.ping(b"pingpong")
    proto.data_received(client.data_to_send())

    assert len(transport.writes) == 2    # 20 responses, SETTINGS ack and PING ack: one write
    events = client.receive_data(transport.writes[0] + transport.writes[1])
    ended = {e.stream_id for e in events if isinstance(e, StreamEnded)}
    assert ended == set(sids) and any(isinstance(e, PingAckReceived) for e in events)
    ids = {dict(e.headers)[b"apns-id"] for e in events if isinstance(e, ResponseReceived)}
    assert ids == {b"%04d" % i for i in range(20)}
    proto.connection_lost(None)
    assert not conns
