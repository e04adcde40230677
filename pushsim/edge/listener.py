"""One listening socket that serves HTTP/2 (and optionally HTTP/1.1) on TLS or cleartext.

The engine is chosen per connection: over TLS by the negotiated ALPN protocol (no ALPN → HTTP/2,
because aioapns offers none), in cleartext by sniffing the HTTP/2 client preface when HTTP/1.1 is
also served. The chosen engine takes over the transport with `set_protocol` and gets the bytes
read so far replayed.

Bounds (pushsim.edge.limits): at most `max_connections` live connections per listener (counting
those still being sniffed; one more is closed at once), the TLS handshake within
`handshake_timeout`, and the limits object handed to every engine.
"""
from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import re
import ssl
from collections.abc import Callable, Iterable
from typing import Literal

from .h2_engine import H2Protocol
from .limits import DEFAULT_LIMITS, EdgeLimits
from .types import Service

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

EngineFactory = Callable[[Service, set], asyncio.Protocol]


def resolve_engine(engine: Literal["fast", "h2"]) -> EngineFactory:
    """The HTTP/2 engine class for `engine`. A fast engine that fails to import is an error, never
    a quiet fallback to h2 (which would change every measurement without a word)."""
    if engine == "h2":
        return H2Protocol
    if engine != "fast":
        raise ValueError(f"unknown HTTP/2 engine {engine!r} (expected 'fast' or 'h2')")
    # imported on demand: a process serving `--engine h2` never loads the fast engine
    return importlib.import_module("pushsim.edge.fast_engine").FastH2Protocol


def resolve_http1() -> EngineFactory:
    return importlib.import_module("pushsim.edge.http1").Http1Protocol


def choose(transport: asyncio.BaseTransport, *, http1: bool) -> bool | None:
    """True = HTTP/2, False = HTTP/1.1, None = cannot tell yet (sniff the first bytes)."""
    ssl_object = transport.get_extra_info("ssl_object")
    alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
    if alpn == "h2" or not http1:
        return True
    if alpn == "http/1.1":
        return False
    return None   # cleartext, or TLS without ALPN: the preface decides


# What may open an HTTP/1.x request: a method token (RFC 9110 §9.1, tchar) and a space. A
# connection opening with anything else (TLS to a cleartext port, h2spec's invalid preface) is no
# HTTP/1.1 client, and the HTTP/2 engine answers it GOAWAY(PROTOCOL_ERROR) as RFC 9113 §3.4 asks.
_METHOD = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}"
_METHOD_START = re.compile(_METHOD + rb"( |\Z)")
_HTTP1_LINE = re.compile(_METHOD + rb" [^ ]+ HTTP/1\.[0-9]\r?\n")
MAX_FIRST_LINE = 8192   # past this without a line end, the HTTP/1.1 engine answers the client


def is_http2_start(data: bytes) -> bool | None:
    """Does a connection starting with `data` go to the HTTP/2 engine? None until certain.

    True for the HTTP/2 client preface, and for anything that is not an HTTP/1.x request line
    either (the HTTP/2 engine then rejects the preface); False for an HTTP/1.x request line.
    """
    n = min(len(data), len(PREFACE))
    if data[:n] == PREFACE[:n]:
        return True if n == len(PREFACE) else None
    end = data.find(b"\n", 0, MAX_FIRST_LINE)
    if end >= 0:
        return _HTTP1_LINE.match(data, 0, end + 1) is None
    if not _METHOD_START.match(data):
        return True
    return False if len(data) >= MAX_FIRST_LINE else None


class ProtocolSniffer(asyncio.Protocol):
    """Holds a new connection until its protocol is known, then hands it to the right engine."""

    def __init__(self, service: Service, conns: set, h2: EngineFactory,
                 h1: EngineFactory | None, timeout: float = DEFAULT_LIMITS.handshake_timeout) -> None:
        self._timeout = timeout
        self._service = service
        self._conns = conns
        self._h2 = h2
        self._h1 = h1
        self._transport: asyncio.BaseTransport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._conns.add(self)       # counts against the connection cap while undecided
        decision = choose(transport, http1=self._h1 is not None)
        if decision is not None:
            self._hand_over(decision)
        else:                       # a peer that never says which protocol is not held forever
            self._timer = asyncio.get_running_loop().call_later(self._timeout, transport.abort)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        decision = is_http2_start(self._buffer)
        if decision is not None:
            self._hand_over(decision)

    def eof_received(self) -> bool | None:
        return None   # closed before saying anything useful

    def connection_lost(self, exc: Exception | None) -> None:
        self._conns.discard(self)
        if self._timer is not None:
            self._timer.cancel()

    def shutdown(self, debug: bytes) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def transport(self) -> asyncio.BaseTransport | None:
        return self._transport

    def _hand_over(self, http2: bool) -> None:
        self._conns.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        factory = self._h2 if http2 else self._h1
        assert factory is not None
        engine = factory(self._service, self._conns)
        transport = self._transport
        assert transport is not None
        transport.set_protocol(engine)  # type: ignore[attr-defined]
        engine.connection_made(transport)
        if self._buffer:
            data, self._buffer = self._buffer, b""
            engine.data_received(data)


def _with_limits(factory: EngineFactory, limits: EdgeLimits) -> EngineFactory:
    """`factory` bound to `limits`, for engines that take them (test stand-ins may not)."""
    try:
        takes = "limits" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    return functools.partial(factory, limits=limits) if takes else factory


class _Refused(asyncio.Protocol):
    """A connection past the listener's cap: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()


async def start_listener(
    host: str | Iterable[str] | None,
    port: int,
    *,
    service: Service,
    ssl_context: ssl.SSLContext | None = None,
    engine: Literal["fast", "h2"] = "h2",
    http1: bool = False,
    reuse_port: bool = False,
    conns: set | None = None,
    limits: EdgeLimits = DEFAULT_LIMITS,
) -> asyncio.Server:
    """Listen on `host:port` (port 0 = ephemeral) and serve `service`.

    `conns` collects the live engine protocols (each has `shutdown(debug)`); pass your own set to
    drain them on stop, or read `server.pushsim_conns` (see `shutdown_connections`).
    """
    h2_factory = _with_limits(resolve_engine(engine), limits)
    h1_factory = _with_limits(resolve_http1(), limits) if http1 else None
    live: set = set() if conns is None else conns
    loop = asyncio.get_running_loop()
    cap = limits.max_connections

    if ssl_context is None and h1_factory is None:
        def factory() -> asyncio.Protocol:   # h2c prior knowledge: nothing to decide
            if len(live) >= cap:
                return _Refused()
            return h2_factory(service, live)
    else:
        def factory() -> asyncio.Protocol:
            if len(live) >= cap:
                return _Refused()
            return ProtocolSniffer(service, live, h2_factory, h1_factory, limits.handshake_timeout)

    tls = {} if ssl_context is None else {"ssl_handshake_timeout": limits.handshake_timeout}
    server = await loop.create_server(factory, host, port, ssl=ssl_context,
                                      reuse_port=reuse_port or None, **tls)
    try:
        server.pushsim_conns = live  # type: ignore[attr-defined]
    except AttributeError:   # uvloop's Server is a C type without a __dict__
        pass
    return server


async def shutdown_connections(conns: set, debug: bytes, timeout: float = 5.0) -> None:
    """GOAWAY every live connection, wait up to `timeout` for them to drain, then abort the rest."""
    for proto in list(conns):
        proto.shutdown(debug)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while conns and loop.time() < deadline:
        await asyncio.sleep(0.01)
    for proto in list(conns):
        transport = getattr(proto, "transport", None)
        if transport is not None:
            transport.abort()
        conns.discard(proto)
