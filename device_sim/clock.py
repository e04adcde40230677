"""Time for the device fleet: one timer heap, three clock modes, and an asyncio driver.

Device-side OS time (budgets, Doze windows, TTLs as the device sees them) is what the scheduler
runs on. Protocol time (JWT `iat`, `apns-expiration`, the journal) stays on the wall clock,
except under the virtual clock, where both are the scheduler's time.

Timers fire at their logical deadline: a callback sees `sched.now == deadline` even when the real
event loop woke it late, so a live run and its virtual replay make the same decisions.
"""
from __future__ import annotations

import asyncio
import math
import time
from heapq import heapify, heappop, heappush
from typing import Any, Callable

Timer = list   # [deadline, order, callback | None, arg]; callback None = cancelled or fired
               # (a cancelled one's arg is None too)

_FAR = 1e18                # deadlines this late (or infinite) share one last bucket
_BUCKET = 60.0
_FAR_BUCKET = int(_FAR // _BUCKET) + 1


class Scheduler:
    """Timers in deadline order, with O(1) cancellation (a cancelled entry is skipped when popped).

    A calendar queue in two levels, because a fleet keeps a timer per active install (its next app
    open): at a million installs one binary heap is ~20 levels of scattered list comparisons per
    pop, which profiles as the top cost of a long run. Timers due before `_window_end` sit in a
    small heap (`_heap`); later ones wait unsorted in buckets of `BUCKET` seconds (`_later`, with a
    heap of the bucket numbers, `_buckets`) and are heapified a bucket at a time when the heap runs
    dry. Every timer still fires in exactly (deadline, order) order: the heap holds only timers
    earlier than every bucketed one.
    """

    __slots__ = ("now", "_heap", "_order", "fired", "on_head", "_later", "_buckets", "_window_end")
    BUCKET = _BUCKET   # seconds per bucket: a few thousand timers per bucket in a 1M-install week

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._heap: list[Timer] = []
        self._order = 0
        self.fired = 0
        self.on_head: Callable[[float], None] | None = None   # told when the earliest deadline moves up
        self._later: dict[int, list[Timer]] = {}
        self._buckets: list[int] = []
        self._window_end = (math.floor(now / _BUCKET) + 1) * _BUCKET

    def call_at(self, t: float, fn: Callable[[Any], None], arg: Any = None) -> Timer:
        if t < self.now:
            t = self.now
        order = self._order
        self._order = order + 1
        e = [t, order, fn, arg]
        if t < self._window_end:
            heap = self._heap
            heappush(heap, e)
            if self.on_head is not None and heap[0] is e:
                self.on_head(t)
            return e
        b = int(t // _BUCKET) if t < _FAR else _FAR_BUCKET
        try:
            self._later[b].append(e)
        except KeyError:               # the bucket's first timer
            self._later[b] = [e]
            heappush(self._buckets, b)
        if self.on_head is not None and not self._heap:
            self.on_head(t)    # may be the earliest; the driver ignores a deadline later than its own
        return e

    def _pull(self) -> bool:
        """Move the earliest bucket into the (empty) heap; False if there is none."""
        if not self._buckets:
            return False
        b = heappop(self._buckets)
        h = self._later.pop(b)
        heapify(h)
        self._heap = h
        self._window_end = (b + 1) * _BUCKET
        return True

    @staticmethod
    def cancel(timer: Timer | None) -> None:
        # Drop the argument too: a cancelled entry waits in its bucket until its deadline (an expiry
        # timer: up to 30 days), and its argument may be a notification that is otherwise gone.
        if timer is not None:
            timer[2] = timer[3] = None

    @staticmethod
    def active(timer: Timer | None) -> bool:
        return timer is not None and timer[2] is not None

    def run_until(self, t: float) -> None:
        """Fire every timer due at or before `t` in deadline order, then set the time to `t`."""
        h = self._heap
        pop = heappop
        while True:
            while h and h[0][0] <= t:
                e = pop(h)
                fn = e[2]
                if fn is None:
                    continue
                e[2] = None
                self.now = e[0]
                self.fired += 1
                fn(e[3])
                h = self._heap          # a callback may have moved on to a new bucket (next_deadline)
            if h or not self._buckets or self._buckets[0] * _BUCKET > t or not self._pull():
                break
            h = self._heap
        if t > self.now:
            self.now = t

    def next_deadline(self) -> float | None:
        while True:
            h = self._heap
            while h and h[0][2] is None:
                heappop(h)
            if h:
                return h[0][0]
            if not self._pull():
                return None

    def __len__(self) -> int:
        return (sum(1 for e in self._heap if e[2] is not None)
                + sum(1 for later in self._later.values() for e in later if e[2] is not None))

    def clear(self) -> None:
        for e in self._heap:
            e[2] = None
        for later in self._later.values():
            for e in later:
                e[2] = None
        self._heap.clear()
        self._later.clear()
        self._buckets.clear()


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
