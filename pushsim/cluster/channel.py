"""Framed messages between our own processes: 4-byte big-endian length, then a pickle.

Only pushsim's hub and workers speak on these sockets (socketpairs made before fork), so pickle is
safe here and the cheapest way to move a batch of plain tuples. `FrameDecoder` is sans-IO (bytes in,
objects out); `Channel` is the asyncio protocol around it, one per socket.
"""
from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from typing import Any, Callable

_LEN = struct.Struct(">I")
MAX_FRAME = 1 << 30


class FrameError(Exception):
    pass


def encode(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


class FrameDecoder:
    """Feed any slicing of the byte stream; get back every complete object, in order."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        out: list[Any] = []
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > MAX_FRAME:
                raise FrameError(f"frame of {n} bytes is over the limit")
            if end - pos - 4 < n:
                break
            out.append(pickle.loads(memoryview(buf)[pos + 4:pos + 4 + n]))
            pos += 4 + n
        if pos:
            del buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)


class Channel(asyncio.Protocol):
    """One end of a socketpair: `send(obj)` writes a frame; each received object goes to `on_message`."""

    def __init__(self, on_message: Callable[[Any], None], on_close: Callable[[Exception | None], None]) -> None:
        self._on_message, self._on_close = on_message, on_close
        self._decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for obj in self._decoder.feed(data):
            self._on_message(obj)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._on_close(exc)

    def send(self, obj: Any) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(encode(obj))

    def send_raw(self, frame: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(frame)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_channel(sock: socket.socket, on_message: Callable[[Any], None],
                       on_close: Callable[[Exception | None], None]) -> Channel:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    _, proto = await loop.create_unix_connection(lambda: Channel(on_message, on_close), sock=sock)
    return proto
