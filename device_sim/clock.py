"""Time for the device fleet: one timer heap, three clock modes, and an asyncio driver.

Device-side OS time (budgets, Doze windows, TTLs as the device sees them) is what the scheduler
runs on. Protocol time (JWT `iat`, `apns-expiration`, the journal) stays on the wall clock,
except under the virtual clock, where both are the scheduler's time.

Timers fire at their logical deadline: a callback sees `sched.now == deadline` even when the real
event loop woke it late, so a live run and its virtual replay make the same decisions.
"""
from __future__ import annotations

import asyncio
import time
from heapq import heappop, heappush
from typing import Any, Callable

Timer = list   # [deadline, order, callback | None, arg]; callback None = cancelled or fired


class Scheduler:
    """A min-heap of timers with O(1) cancellation (a cancelled entry is skipped when popped)."""

    __slots__ = ("now", "_heap", "_order", "fired", "on_head")

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._heap: list[Timer] = []
        self._order = 0
        self.fired = 0
        self.on_head: Callable[[float], None] | None = None   # told when the earliest deadline moves up

    def call_at(self, t: float, fn: Callable[[Any], None], arg: Any = None) -> Timer:
        if t < self.now:
            t = self.now
        order = self._order
        self._order = order + 1
        e = [t, order, fn, arg]
        heap = self._heap
        heappush(heap, e)
        if self.on_head is not None and heap[0] is e:
            self.on_head(t)
        return e

    @staticmethod
    def cancel(timer: Timer | None) -> None:
        if timer is not None:
            timer[2] = None

    @staticmethod
    def active(timer: Timer | None) -> bool:
        return timer is not None and timer[2] is not None

    def run_until(self, t: float) -> None:
        """Fire every timer due at or before `t` in deadline order, then set the time to `t`."""
        h = self._heap
        pop = heappop
        while h and h[0][0] <= t:
            e = pop(h)
            fn = e[2]
            if fn is None:
                continue
            e[2] = None
            self.now = e[0]
            self.fired += 1
            fn(e[3])
        if t > self.now:
            self.now = t

    def next_deadline(self) -> float | None:
        h = self._heap
        while h and h[0][2] is None:
            heappop(h)
        return h[0][0] if h else None

    def __len__(self) -> int:
        return sum(1 for e in self._heap if e[2] is not None)

    def clear(self) -> None:
        for e in self._heap:
            e[2] = None
        self._heap.clear()


class Clock:
    """Real time: device time is wall time."""
    mode = "real"
    factor = 1.0

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall

    def wall(self) -> float:
        """Protocol time (seconds since the epoch)."""
        return self._wall()

    def device(self, wall_t: float) -> float:
        """The device-side OS time at wall instant `wall_t`."""
        return wall_t

    def wall_at(self, device_t: float) -> float:
        return device_t

    def device_now(self) -> float:
        return self.device(self.wall())

    def spec(self) -> str:
        return self.mode


class ScaledClock(Clock):
    """Device OS time runs `factor` times faster than the wall clock, from `origin` on."""
    mode = "scaled"

    def __init__(self, factor: float, wall: Callable[[], float] = time.time, origin: float | None = None) -> None:
        if not factor > 0:
            raise ValueError("clock scale factor must be > 0")
        super().__init__(wall)
        self.factor = float(factor)
        self.origin = wall() if origin is None else origin

    def device(self, wall_t: float) -> float:
        return self.origin + (wall_t - self.origin) * self.factor

    def wall_at(self, device_t: float) -> float:
        return self.origin + (device_t - self.origin) / self.factor

    def spec(self) -> str:
        return f"scaled:{self.factor:g}"


class VirtualClock(Clock):
    """Discrete-event time: whatever the scheduler says, for protocol and device alike."""
    mode = "virtual"

    def __init__(self, sched: Scheduler) -> None:
        super().__init__(lambda: sched.now)
        self.sched = sched


def parse_clock(spec: str, sched: Scheduler, wall: Callable[[], float] = time.time) -> Clock:
    """`real`, `scaled:FACTOR` or `virtual`."""
    text = (spec or "real").strip().lower()
    if text == "real":
        return Clock(wall)
    if text == "virtual":
        return VirtualClock(sched)
    name, sep, factor = text.partition(":")
    if name == "scaled" and sep:
        try:
            return ScaledClock(float(factor), wall)
        except ValueError:
            pass
    raise ValueError(f"bad clock {spec!r}: use real, scaled:FACTOR or virtual")


class LoopDriver:
    """Wakes the fleet when its next timer is due, with one loop timer handle (not a task)."""

    def __init__(self, sched: Scheduler, clock: Clock, advance: Callable[[], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.sched, self.clock, self.advance, self.loop = sched, clock, advance, loop
        self._handle: asyncio.TimerHandle | None = None
        self._due = float("inf")
        sched.on_head = self.wake
        nd = sched.next_deadline()
        if nd is not None:
            self.wake(nd)

    def wake(self, device_t: float) -> None:
        if device_t >= self._due or self.loop.is_closed():
            return
        if self._handle is not None:
            self._handle.cancel()
        self._due = device_t
        delay = max(0.0, self.clock.wall_at(device_t) - self.clock.wall())
        self._handle = self.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle, self._due = None, float("inf")
        self.advance()
        nd = self.sched.next_deadline()
        if nd is not None:
            self.wake(nd)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._due = None, float("inf")
        if self.sched.on_head == self.wake:
            self.sched.on_head = None
