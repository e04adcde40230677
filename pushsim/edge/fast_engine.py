"""The fast HTTP/2 server engine: an asyncio adapter around the sans-IO `FastH2Connection`.

Same contract and the same answers on the wire as `pushsim.edge.h2_engine.H2Protocol` (checked by
differential tests), at several times its throughput. The protocol lives in fast_conn.py (and its
frame loop in fast_frames.py); this module only moves bytes between the transport and the
connection (one `transport.write` per `data_received`), carries out the connection's effects
(timers on the loop, close, abort, TCP reset) and keeps the per-connection guard
(pushsim.edge.guard: handshake and idle timers, back-pressure, the read yield).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .conninfo import conn_info, reset_connection
from .fast_conn import ABORT, ARM, CANCEL, CLOSE, FastH2Connection, Timer
from .fast_frames import ConnError
from .guard import ConnGuard
from .limits import DEFAULT_LIMITS, EdgeLimits
from .types import ConnInfo, Service

log = logging.getLogger(__name__)
__all__ = ["FastH2Protocol", "ConnError"]
YIELD_READ = 65536   # a read this big is followed by one loop turn without reading (guard.py)
ENHANCE_YOUR_CALM = 0xB


class FastH2Protocol(ConnGuard, asyncio.Protocol):
    def __init__(self, service: Service, conns: set, limits: EdgeLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.service = service
        self.conns = conns
        self.transport: Any = None
        self.connection: FastH2Connection | None = None   # made in connection_made (it needs the peer)

    @property
    def conn(self) -> ConnInfo | None:
        return None if self.connection is None else self.connection.conn

    @property
    def _ready(self) -> bool:                      # read by the guard's handshake timer
        return self.connection is not None and self.connection.ready

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.conns.add(self)
        self._guard_start()                          # sets `_loop` (None when driven by hand)
        clock = time.monotonic if self._loop is None else self._loop.time
        connection = self.connection = FastH2Connection(self.service, conn_info(transport, http2=True), clock, self.limits)
        connection.initiate()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self)
        self._guard_stop()
        if self.connection is not None:
            self.connection.close()
            self._carry_out()

    def shutdown(self, debug: bytes) -> None:
        """GOAWAY(last stream, NO_ERROR, debug); close once the in-flight streams are answered."""
        if self.connection is not None:
            self.connection.shutdown(debug)
            self._flush()

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        assert connection is not None
        if connection.dead:
            return
        self._reads += 1
        connection.receive_data(data)
        self._flush()
        if len(data) >= YIELD_READ:
            self._yield_reading()

    # ---- effects -----------------------------------------------------------------------------

    def _flush(self) -> None:
        """One write for everything queued, then the connection's other effects."""
        connection = self.connection
        assert connection is not None
        out = connection.data_to_send()
        if out:
            self.transport.write(out)
            if self._paused and self._write_overflow():
                self._calm(ENHANCE_YOUR_CALM, abort=True)
                return
        if connection.effects:
            self._carry_out()

    def _carry_out(self) -> None:
        connection = self.connection
        assert connection is not None
        effects = connection.effects
        while effects:
            batch = effects[:]
            effects.clear()
            for kind, timer in batch:
                if kind == ARM:
                    assert timer is not None
                    if self._loop is not None:        # driven by hand (tests): no timers
                        timer.handle = self._loop.call_at(timer.deadline, self._fire, timer)
                elif kind == CANCEL:
                    assert timer is not None
                    if timer.handle is not None:
                        timer.handle.cancel()
                        timer.handle = None
                elif kind == CLOSE:
                    self.transport.close()
                elif kind == ABORT:
                    self.transport.abort()
                else:                                 # TCP_RESET_NOW
                    reset_connection(self.transport)

    def _fire(self, timer: Timer) -> None:
        timer.handle = None
        connection = self.connection
        assert connection is not None
        connection.fire(timer)
        self._flush()

    # ---- guard (pushsim.edge.guard) ----------------------------------------------------------

    def _guard_dead(self) -> bool:
        return self.connection is None or self.connection.dead

    def _owes_answers(self) -> bool:
        return self.connection is not None and self.connection.owes_answers()

    def _calm(self, code: int, abort: bool = False) -> None:
        connection = self.connection
        assert connection is not None
        if abort:
            connection.abort()
            self._carry_out()
        else:
            connection.fail(code)
            self._flush()

    def _idle_close(self, abort: bool) -> None:
        connection = self.connection
        assert connection is not None
        if abort:
            self._calm(ENHANCE_YOUR_CALM, abort=True)
        else:
            connection.idle_close()
            self._flush()
