"""What one peer may make the edge hold: the limits every engine and listener enforces.

Each limit is a mechanism (a budget, a timeout, a cap), never a special case, and each costs a
counter compare on the hot path. `EdgeLimits` is built once by `pushsim serve` (three of its
fields are flags) and passed to the listeners and from there to every engine; the engines default
to `DEFAULT_LIMITS` when driven by hand (tests). docs/edge.md "Limits" lists them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

MiB = 1 << 20


class Budget:
    """Bytes held across every connection that shares it (request bodies being buffered).

    Each engine adds what it buffers and takes back exactly what it added (at dispatch, reset or
    connection loss), so a bug in one connection's bookkeeping cannot starve the others for long.
    """
    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class RateBudget:
    """At most `limit` events per `window` seconds, on the clock it is given (sans-IO).

    Counted in windows that start at the first event past the limit once the last window is over,
    so the common case (well under the limit) is one increment and one compare.
    """
    __slots__ = ("limit", "window", "clock", "count", "start")

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.count = 0
        self.start = clock()

    def spend(self) -> bool:
        """One more event; True when the budget is spent."""
        self.count += 1
        if self.count <= self.limit:
            return False
        now = self.clock()
        if now - self.start > self.window:
            self.count, self.start = 1, now
            return False
        return True


@dataclass(slots=True)
class EdgeLimits:
    max_connections: int = 10_000        # per listener; past it a new connection is closed at once
    # TLS handshake, and then the HTTP/2 client preface + first SETTINGS, each within this (s).
    handshake_timeout: float = 10.0
    # No frame (bytes) read and no stream owed an answer for this long → GOAWAY and close. Apple
    # asks clients to PING "after an hour of inactivity" (shared/reference/apns.md): a little more.
    idle_timeout: float = 3900.0
    max_body: int = 4 * MiB              # per request, when the service names no limit of its own
    conn_body_bytes: int = 16 * MiB      # request bodies buffered on one connection
    global_body_bytes: int = 256 * MiB   # request bodies buffered on every connection together
    # Per connection and `budget_window` seconds, past each budget → GOAWAY(ENHANCE_YOUR_CALM):
    # streams the peer resets plus streams we refuse (rapid reset, CVE-2023-44487), and PING and
    # SETTINGS frames, whose acknowledgements a peer can make us queue without reading them.
    reset_budget: int = 1000
    control_budget: int = 5000
    budget_window: float = 10.0
    # Output queued for a peer that does not read, beyond what is in flight when reading pauses.
    max_write_buffer: int = 4 * MiB
    bodies: Budget = field(default=None)  # type: ignore[assignment]   # shared; made from the limit

    def __post_init__(self) -> None:
        if self.bodies is None:
            self.bodies = Budget(self.global_body_bytes)


DEFAULT_LIMITS = EdgeLimits()
