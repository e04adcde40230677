"""FCM's rate limits: the project's sliding minute and each device's per-minute and per-hour caps.

The project window counts into one-second buckets (the real quota "is not aligned to the clock"
and refills over the following minute). Per-device limits use GCRA, one float per limit per hot
device, so a million-device fleet costs nothing until devices are actually hammered.
"""
from __future__ import annotations

import math

DEVICE_PER_MINUTE = 240
DEVICE_PER_HOUR = 5000


class SlidingWindow:
    """Events in the last `window` seconds, at one-second resolution; O(1) amortised per call."""

    def __init__(self, limit: int, window: int = 60) -> None:
        self.limit = limit
        self.window = window
        self._counts = [0] * window
        self._last = -1 << 62                # the latest second seen; time never runs backwards here
        self._total = 0

    def _roll(self, now: float) -> int:
        sec = int(now)
        if sec <= self._last:
            return self._last
        steps = min(sec - self._last, self.window)
        for k in range(steps):               # the buckets of the seconds just begun held stale counts
            i = (sec - k) % self.window
            self._total -= self._counts[i]
            self._counts[i] = 0
        self._last = sec
        return sec

    def total(self, now: float) -> int:
        self._roll(now)
        return self._total

    def full(self, now: float) -> bool:
        return self.total(now) >= self.limit

    def add(self, now: float, n: int = 1) -> None:
        sec = self._roll(now)
        self._counts[sec % self.window] += n
        self._total += n

    def retry_after(self, now: float) -> int:
        """Whole seconds until the oldest counted second leaves the window (at least 1)."""
        sec = self._roll(now)
        for s in range(sec - self.window + 1, sec + 1):
            if self._counts[s % self.window]:
                return max(1, s + self.window - sec)
        return 1


class Gcra:
    """`limit` events per `period` seconds with a burst of `limit`, per key (a device)."""

    def __init__(self, limit: int, period: float) -> None:
        self.interval = period / limit
        self.burst = period - self.interval        # how far ahead of now the theoretical arrival may run
        self.tat: dict[int, float] = {}

    def wait(self, key: int, now: float) -> float:
        """0 if an event may happen now, else seconds until it may."""
        tat = self.tat.get(key, now)
        return max(0.0, tat - self.burst - now)

    def take(self, key: int, now: float) -> None:
        tat = self.tat.get(key, now)
        self.tat[key] = max(tat, now) + self.interval
        if len(self.tat) > 100_000:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        # A key whose TAT is in the past is indistinguishable from a fresh one.
        for k in [k for k, t in self.tat.items() if t <= now]:
            del self.tat[k]


class Quotas:
    def __init__(self, project_per_minute: int) -> None:
        self.project = SlidingWindow(project_per_minute)
        self.minute = Gcra(DEVICE_PER_MINUTE, 60.0)
        self.hour = Gcra(DEVICE_PER_HOUR, 3600.0)

    def reset(self) -> None:
        self.__init__(self.project.limit)   # type: ignore[misc]

    def project_wait(self, now: float) -> int | None:
        """Retry-After seconds if the project is over quota, else None."""
        return self.project.retry_after(now) if self.project.full(now) else None

    def count(self, now: float) -> None:
        self.project.add(now)

    def device_wait(self, install: int, now: float) -> tuple[int, str] | None:
        for gcra, name in ((self.minute, "minute"), (self.hour, "hour")):
            w = gcra.wait(install, now)
            if w > 0:
                return max(1, math.ceil(w)), name
        return None

    def device_take(self, install: int, now: float) -> None:
        self.minute.take(install, now)
        self.hour.take(install, now)
