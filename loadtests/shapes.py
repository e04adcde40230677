"""Load shapes as pure plans: `tick(elapsed_s) -> (users, spawn_rate) | None` (None = stop).

`loadtests/locustfile_shape.py` wraps the selected plan in a locust `LoadTestShape`; keeping the
arithmetic here lets tests drive it with any clock readings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


class Plan(Protocol):
    duration: float

    def tick(self, t: float) -> tuple[int, float] | None: ...


@dataclass(frozen=True, slots=True)
class Ramp:
    """Linear ramp from 0 to `users` over `ramp_s`, in `steps` stairs, then hold until `duration`."""
    users: int
    duration: float
    ramp_s: float
    steps: int = 10

    def tick(self, t: float) -> tuple[int, float] | None:
        if t >= self.duration:
            return None
        if t >= self.ramp_s or self.ramp_s <= 0:
            return self.users, max(1.0, self.users / max(self.ramp_s, 1.0))
        step = min(self.steps, math.floor(t / (self.ramp_s / self.steps)) + 1)
        target = max(1, math.ceil(self.users * step / self.steps))
        return target, max(1.0, self.users / self.ramp_s)


@dataclass(frozen=True, slots=True)
class Spike:
    """`base` users, a jump to `users` at `at_s` for `length_s` (spawned as fast as possible), back."""
    users: int
    duration: float
    base: int
    at_s: float
    length_s: float

    def tick(self, t: float) -> tuple[int, float] | None:
        if t >= self.duration:
            return None
        fast = float(max(self.users, 1))      # whole spike within about a second
        if self.at_s <= t < self.at_s + self.length_s:
            return self.users, fast
        return self.base, fast


@dataclass(frozen=True, slots=True)
class Soak:
    """Warm up to `users` over `warmup_s`, then hold them steady until `duration`."""
    users: int
    duration: float
    warmup_s: float

    def tick(self, t: float) -> tuple[int, float] | None:
        if t >= self.duration:
            return None
        return self.users, max(1.0, self.users / max(self.warmup_s, 1.0))


SHAPES = ("ramp", "spike", "soak")


def make_plan(name: str, *, users: int, duration: float, ramp_s: float | None = None,
              steps: int = 10, spike_base: int | None = None, spike_at: float | None = None,
              spike_length: float | None = None) -> Plan:
    if users < 1 or duration <= 0:
        raise ValueError("a shape needs users >= 1 and duration > 0")
    if name == "ramp":
        return Ramp(users, duration, ramp_s if ramp_s is not None else duration / 2, max(1, steps))
    if name == "spike":
        base = spike_base if spike_base is not None else max(1, users // 10)
        at = spike_at if spike_at is not None else duration / 3
        length = spike_length if spike_length is not None else duration / 3
        return Spike(users, duration, min(base, users), at, length)
    if name == "soak":
        return Soak(users, duration, ramp_s if ramp_s is not None else min(60.0, duration / 10))
    raise ValueError(f"unknown shape {name!r}; choose one of {', '.join(SHAPES)}")
