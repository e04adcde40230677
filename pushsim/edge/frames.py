"""HTTP/2 frame constants and builders (RFC 9113 §4, §6) for the fast engine. Bytes only, no state."""
from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)

# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# settings identifiers
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)

# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM, \
    INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = range(14)

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384

_HDR = struct.Struct(">BHBBL")        # 24-bit length split as (high byte, low 16 bits), type, flags, stream
_U32 = struct.Struct(">L")
_U32x2 = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")

SETTINGS_ACK = _HDR.pack(0, 0, SETTINGS, ACK, 0)


def header(length: int, ftype: int, flags: int, stream_id: int) -> bytes:
    return _HDR.pack(length >> 16, length & 0xFFFF, ftype, flags, stream_id)


def settings(values: list[tuple[int, int]]) -> bytes:
    body = b"".join(_SETTING.pack(k, v) for k, v in values)
    return header(len(body), SETTINGS, 0, 0) + body


def window_update(stream_id: int, increment: int) -> bytes:
    return header(4, WINDOW_UPDATE, 0, stream_id) + _U32.pack(increment)


def rst_stream(stream_id: int, code: int) -> bytes:
    return header(4, RST_STREAM, 0, stream_id) + _U32.pack(code)


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return header(8 + len(debug), GOAWAY, 0, 0) + _U32x2.pack(last_stream_id, code) + debug


def ping_ack(payload: bytes) -> bytes:
    return header(8, PING, ACK, 0) + payload


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """HEADERS (+ CONTINUATION when the block exceeds the peer's SETTINGS_MAX_FRAME_SIZE)."""
    flags = END_STREAM if end_stream else 0
    n = len(block)
    if n <= max_frame:
        return _HDR.pack(n >> 16, n & 0xFFFF, HEADERS, flags | END_HEADERS, stream_id) + block
    parts = [header(max_frame, HEADERS, flags, stream_id), block[:max_frame]]
    pos = max_frame
    while pos < n:
        chunk = block[pos:pos + max_frame]
        pos += len(chunk)
        parts.append(header(len(chunk), CONTINUATION, END_HEADERS if pos >= n else 0, stream_id))
        parts.append(chunk)
    return b"".join(parts)


def data_frames(stream_id: int, data: bytes, end_stream: bool, max_frame: int) -> bytes:
    """DATA frames for `data` (already within the flow-control windows), END_STREAM on the last."""
    n = len(data)
    if n <= max_frame:
        return _HDR.pack(n >> 16, n & 0xFFFF, DATA, END_STREAM if end_stream else 0, stream_id) + data
    parts = []
    pos = 0
    while pos < n:
        chunk = data[pos:pos + max_frame]
        pos += len(chunk)
        parts.append(header(len(chunk), DATA, END_STREAM if end_stream and pos >= n else 0, stream_id))
        parts.append(chunk)
    return b"".join(parts)
