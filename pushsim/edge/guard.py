"""Per-connection bounds shared by both HTTP/2 engines: timers, the reset budget, back-pressure.

A mixin, so each engine pays one attribute increment per read and one compare per reset; the
engine supplies `_owes_answers()` and `_calm(code, abort)` (GOAWAY with `code`, then close).

- preface: the client preface and a first SETTINGS must arrive within `handshake_timeout`;
- idle: no bytes read and nothing owed for `idle_timeout` → GOAWAY(NO_ERROR) and close. Checked
  by a timer every quarter of it, so a busy connection costs nothing per frame but a counter;
- resets: peer RST_STREAMs plus streams we refuse, per `budget_window` → ENHANCE_YOUR_CALM;
- control frames: PINGs and SETTINGS (each makes us queue an ack), per `budget_window`, likewise
  (both `limits.RateBudget`s; the fast engine spends its own inside the sans-IO
  `fast_conn.FastH2Connection`, on the loop's clock, and uses this mixin for the rest);
- writes: when the transport's buffer passes its high-water mark, reading pauses (asyncio flow
  control) so a peer that does not read cannot make us queue replies; a buffer that still grows
  past `max_write_buffer` (one read's worth of replies is already in it) ends the connection.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from .limits import DEFAULT_LIMITS, EdgeLimits, RateBudget

ENHANCE_YOUR_CALM = 0xB
NO_ERROR = 0x0
_IDLE_TICKS = 4                     # quiet ticks in a row (each a quarter of idle_timeout) → idle


class ConnGuard:
    limits: EdgeLimits = DEFAULT_LIMITS
    transport: Any
    _reads = 0                      # data_received calls since the last tick
    _quiet = 0
    _ready = False                  # client preface and first SETTINGS seen
    _paused = False                 # the transport asked us to stop writing
    _resets: RateBudget
    _controls: RateBudget
    _tick_handle: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def _guard_start(self) -> None:
        limits = self.limits
        self._resets = RateBudget(limits.reset_budget, limits.budget_window, time.monotonic)
        self._controls = RateBudget(limits.control_budget, limits.budget_window, time.monotonic)
        try:
            loop = self._loop = asyncio.get_running_loop()
        except RuntimeError:         # driven by hand (tests): no timers
            self._loop = None
            return
        self._tick_handle = loop.call_later(self.limits.handshake_timeout, self._tick)

    def _yield_reading(self) -> None:
        """After a big read, let the other connections have the loop before reading more.

        libuv (uvloop) reads a ready socket up to 32 times per loop turn, so a peer streaming
        PINGs or SETTINGS got 32 × 256 KiB processed before anyone else was served (1-2 s).
        """
        loop = self._loop
        if loop is not None and not self._guard_dead():
            self.transport.pause_reading()
            loop.call_soon(self._resume_reading)

    def _resume_reading(self) -> None:
        if not self._paused and not self._guard_dead():
            self.transport.resume_reading()

    def _guard_stop(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None

    def _tick(self) -> None:
        self._tick_handle = None
        if self._guard_dead():
            return
        if not self._ready:
            self._calm(ENHANCE_YOUR_CALM, abort=True)     # slowloris: no preface in time
            return
        if self._reads:
            self._reads = 0
            self._quiet = 0
        elif self._paused or not self._owes_answers():
            self._quiet += 1
            if self._quiet >= _IDLE_TICKS:
                # A peer that reads nothing has a full buffer: closing would wait on it forever.
                self._idle_close(abort=self._paused)
                return
        self._tick_handle = asyncio.get_running_loop().call_later(self.limits.idle_timeout / _IDLE_TICKS,
                                                                  self._tick)

    def _count_reset(self) -> bool:
        """One more peer reset or refused stream; True when the budget is spent."""
        return self._resets.spend()

    def _count_control(self) -> bool:
        """One more PING or SETTINGS from the peer; True when the budget is spent."""
        return self._controls.spend()

    def _write_overflow(self) -> bool:
        """Called after a write while paused: has the peer left more unread than we allow?"""
        return self.transport.get_write_buffer_size() > self.limits.max_write_buffer

    # asyncio flow control -------------------------------------------------------------------

    def pause_writing(self) -> None:
        self._paused = True
        if not self._guard_dead():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if not self._guard_dead():
            self.transport.resume_reading()

    # supplied by the engine -----------------------------------------------------------------

    def _guard_dead(self) -> bool:
        raise NotImplementedError

    def _owes_answers(self) -> bool:
        raise NotImplementedError

    def _calm(self, code: int, abort: bool = False) -> None:
        raise NotImplementedError

    def _idle_close(self, abort: bool) -> None:
        raise NotImplementedError
