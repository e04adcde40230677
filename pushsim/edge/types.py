"""The contract between protocol engines (HTTP/2, HTTP/1.1) and the services behind them."""
from __future__ import annotations

from dataclasses import dataclass, field
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
    fault: str | None = None         # "rst_stream" | "tcp_reset" | "stall" | "goaway"


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
