"""The contract between protocol engines (HTTP/2, HTTP/1.1) and the services behind them."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

Headers = list[tuple[bytes, bytes]]   # lowercase names, raw values, in wire order, pseudo-headers included


@dataclass(slots=True)
class ConnInfo:
    """What a service may know about the connection a request came on."""
    tls: bool
    alpn: str | None                     # "h2", "http/1.1" or None (no ALPN offered / cleartext)
    http2: bool
    peer_cert_der: bytes | None = None   # client certificate (APNs certificate auth)
    peer: tuple[str, int] | None = None
    state: object = None                 # the service's per-connection state, from Service.open()


class Fault(StrEnum):
    """A connection-level misbehaviour a reply can ask the engine for (injected by pushsim.faults).
    str-valued: a comparison with an engine's constant costs what a string comparison did."""
    RST_STREAM = "rst_stream"     # reset this stream (HTTP/1.1: close the connection)
    TCP_RESET = "tcp_reset"       # abort the connection (RST)
    STALL = "stall"               # never answer this request
    GOAWAY = "goaway"             # GOAWAY naming this stream unprocessed, then close once drained


# The members as module names: engines compare with these per request, and a module global is
# read in a few ns where `Fault.STALL` (an enum attribute on Python 3.11) costs ~100 ns.
RST_STREAM, TCP_RESET, STALL, GOAWAY = Fault.RST_STREAM, Fault.TCP_RESET, Fault.STALL, Fault.GOAWAY


@dataclass(slots=True)
class Reply:
    status: int
    headers: Headers = field(default_factory=list)   # excluding :status
    body: bytes = b""
    # Connection-level effects, applied by the engine right after this reply is queued.
    max_streams: int | None = None   # HTTP/2: announce SETTINGS_MAX_CONCURRENT_STREAMS = this
    goaway: bytes | None = None      # HTTP/2: GOAWAY(NO_ERROR, debug data = this), then close once drained
    close: bool = False              # HTTP/1.1: Connection: close after this reply
    # Injected faults (fault-injection issue). Engines must honour them or ignore them safely.
    delay: float = 0.0               # seconds to hold the reply before writing it
    fault: Fault | None = None


class Service(Protocol):
    """One fake service (APNs, FCM, OAuth/IID) as the engines see it. No I/O inside."""

    def open(self, conn: ConnInfo) -> object:
        """Called once per connection; the return value is stored in `conn.state`."""
        ...

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        """SETTINGS_MAX_CONCURRENT_STREAMS to announce at connection start (None = engine default)."""
        ...

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        """Answer one request. Must never raise for any input (engines turn a raise into a 500)."""
        ...

    def closing_reason(self) -> bytes:
        """GOAWAY debug data sent on shutdown, e.g. b'{"reason":"Shutdown"}'."""
        ...

    # Optional (pushsim.edge.conninfo supplies defaults when a service lacks them) ------------

    def request_body_limit(self, conn: ConnInfo) -> int | None:
        """The largest request body worth buffering (None = the edge's `EdgeLimits.max_body`).

        Called once per connection. A longer body is never buffered in full: the engine calls
        `body_too_large` with what has arrived so far, stops granting window, and answers at once.
        """
        ...

    def body_too_large(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers,
                       prefix: bytes) -> Reply:
        """Answer a request whose body passed `request_body_limit` (`prefix` is already longer)."""
        ...

    def idle_reason(self) -> bytes:
        """GOAWAY debug data when a connection idles out, e.g. b'{"reason":"IdleTimeout"}'."""
        ...

    def goaway_sent(self, conn: ConnInfo, last_stream_id: int, code: int, debug: bytes) -> None:
        """The engine wrote a GOAWAY on this connection (any cause: shutdown, fault, idle, error)."""
        ...

    def stream_after_goaway(self, conn: ConnInfo, stream_id: int) -> None:
        """The peer opened a stream above our GOAWAY's last-stream-id; the engine ignores it."""
        ...
