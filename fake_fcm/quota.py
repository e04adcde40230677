"""FCM's rate limits: the project's sliding minute and each device's per-minute and per-hour caps.

The project window counts into one-second buckets (the real quota "is not aligned to the clock"
and refills over the following minute). Per-device limits are sliding windows too, held only for
devices that received messages recently, so a million-device fleet costs nothing until devices
are actually hammered.
"""
from __future__ import annotations

import math
from collections import deque

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
        if now >= self._last + 1:             # a new second began: roll first (the hot path skips the call)
            self._roll(now)
        return self._total >= self.limit

    def add(self, now: float, n: int = 1) -> None:
        sec = self._last if now < self._last + 1 else self._roll(now)
        self._counts[sec % self.window] += n
        self._total += n

    def retry_after(self, now: float) -> int:
        """Whole seconds until the oldest counted second leaves the window (at least 1)."""
        sec = self._roll(now)
        for s in range(sec - self.window + 1, sec + 1):
            if self._counts[s % self.window]:
                return max(1, s + self.window - sec)
        return 1


class DeviceLimits:
    """At most `per_minute` messages to one device in any 60 s, and `per_hour` in any hour.

    A limit of 0 means none: that window is neither checked nor tracked.

    Exact for the minute (a deque of the last minute's timestamps, ≤ 240 per device) and at
    one-minute resolution for the hour (a deque of [minute, count], ≤ 60 per device): only devices
    that received something recently hold any state.
    """

    def __init__(self, per_minute: int = DEVICE_PER_MINUTE, per_hour: int = DEVICE_PER_HOUR) -> None:
        self.per_minute, self.per_hour = per_minute, per_hour
        self.minute: dict[int, deque[float]] = {}
        self.hour: dict[int, tuple[deque[list[int]], list[int]]] = {}   # install → (buckets, [total])

    def admit(self, key: int, now: float, take: bool = True) -> tuple[int, str] | None:
        """None (and counted, if `take`) when a message may go now; else (Retry-After s, "minute" | "hour")."""
        per_minute, per_hour = self.per_minute, self.per_hour
        recent = self.minute.get(key) if per_minute else None
        if recent is not None:
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            if len(recent) >= per_minute:
                return max(1, math.ceil(recent[0] + 60.0 - now)), "minute"
        cur = int(now // 60)
        hourly = self.hour.get(key) if per_hour else None
        if hourly is not None:
            buckets, total = hourly
            while buckets and buckets[0][0] <= cur - 60:
                total[0] -= buckets.popleft()[1]
            if total[0] >= per_hour:
                return max(1, math.ceil((buckets[0][0] + 60) * 60.0 - now)), "hour"
        if not take:
            return None
        if per_minute:
            if recent is None:
                if len(self.minute) >= 100_000:
                    self._sweep(now)
                recent = self.minute[key] = deque()
            recent.append(now)
        if not per_hour:
            return None
        if hourly is None:
            if len(self.hour) >= 100_000:
                self._sweep(now)
            hourly = self.hour[key] = (deque(), [0])
        buckets, total = hourly
        if buckets and buckets[-1][0] == cur:
            buckets[-1][1] += 1
        else:
            buckets.append([cur, 1])
        total[0] += 1
        return None

    def _sweep(self, now: float) -> None:
        # Devices with nothing left in either window hold no state.
        cur = int(now // 60)
        for k in [k for k, d in self.minute.items() if not d or d[-1] <= now - 60.0]:
            del self.minute[k]
        for k in [k for k, (b, _) in self.hour.items() if not b or b[-1][0] <= cur - 60]:
            del self.hour[k]


def _no_device_limit(install: int, now: float) -> None:
    return None


class Quotas:
    """The project's sliding minute and the per-device caps; a device cap of 0 means no such cap,
    and with both 0 the per-device checks are a no-op function (no state, no lookups)."""

    def __init__(self, project_per_minute: int, device_per_minute: int = DEVICE_PER_MINUTE,
                 device_per_hour: int = DEVICE_PER_HOUR) -> None:
        if device_per_minute < 0 or device_per_hour < 0:
            raise ValueError("per-device quotas must be >= 0 (0 = no limit)")
        self.project = SlidingWindow(project_per_minute)
        self.devices = DeviceLimits(device_per_minute, device_per_hour)
        if not device_per_minute and not device_per_hour:
            self.device_wait = self.device_admit = _no_device_limit   # type: ignore[method-assign]

    def reset(self) -> None:
        self.__init__(self.project.limit, self.devices.per_minute, self.devices.per_hour)   # type: ignore[misc]

    def project_wait(self, now: float) -> int | None:
        """Retry-After seconds if the project is over quota, else None."""
        return self.project.retry_after(now) if self.project.full(now) else None

    def count(self, now: float) -> None:
        self.project.add(now)

    def device_wait(self, install: int, now: float) -> tuple[int, str] | None:
        return self.devices.admit(install, now, take=False)

    def device_admit(self, install: int, now: float) -> tuple[int, str] | None:
        """Check and count one message to `install`: None if it may go, else (Retry-After, which limit)."""
        return self.devices.admit(install, now)
