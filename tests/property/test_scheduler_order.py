"""The calendar-queue Scheduler fires exactly what a plain binary heap of (deadline, order) fires, in
the same order, whatever mix of near and far deadlines, cancellations, nested arming and partial
runs: its buckets are a speed change only (device_sim/clock.py)."""
from __future__ import annotations

import heapq
import math

from hypothesis import example, given, settings, strategies as st

from device_sim.clock import Scheduler

T0 = 1_700_000_000.0
BUCKET = Scheduler.BUCKET

# offsets around bucket edges and far apart: within a bucket, exactly on an edge, several buckets on
delays = st.one_of(st.floats(0.0, 5.0), st.sampled_from([0.0, BUCKET, BUCKET * 2, BUCKET - 1e-3, 3600.0, math.inf]),
                   st.floats(0.0, 3 * 86_400.0))
ops = st.lists(st.one_of(
    st.tuples(st.just("arm"), delays, st.integers(0, 3)),       # arm a timer; when it fires it arms k children
    st.tuples(st.just("cancel"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("run"), st.floats(0.0, 2 * 86_400.0), st.just(0)),
    st.tuples(st.just("peek"), st.just(0.0), st.just(0)),
), max_size=120)


class Reference:
    """The old Scheduler: one heap, lazy cancellation."""

    def __init__(self, now: float) -> None:
        self.now, self.heap, self.order = now, [], 0

    def call_at(self, t, fn, arg=None):
        t = max(t, self.now)
        e = [t, self.order, fn, arg]
        self.order += 1
        heapq.heappush(self.heap, e)
        return e

    def run_until(self, t):
        while self.heap and self.heap[0][0] <= t:
            e = heapq.heappop(self.heap)
            if e[2] is None:
                continue
            fn, e[2] = e[2], None
            self.now = e[0]
            fn(e[3])
        self.now = max(self.now, t)

    def next_deadline(self):
        while self.heap and self.heap[0][2] is None:
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None

    def __len__(self):
        return sum(1 for e in self.heap if e[2] is not None)


def _drive(sched, steps):
    fired: list[tuple[int, float]] = []
    timers: list[list] = []
    counter = [0]

    def arm(delay: float, children: int) -> None:
        name = counter[0]
        counter[0] += 1

        def fire(_arg: object) -> None:
            fired.append((name, sched.now))
            for c in range(children):
                arm(delay / 2 + c, children - 1)       # nested arming from inside a callback
        timers.append(sched.call_at(sched.now + delay, fire))

    seen: list[object] = []
    for op, x, k in steps:
        if op == "arm":
            arm(x, k)
        elif op == "cancel" and timers:
            Scheduler.cancel(timers[k % len(timers)])
        elif op == "run":
            sched.run_until(sched.now + x)
        elif op == "peek":
            seen.append((sched.next_deadline(), len(sched)))
    sched.run_until(math.inf)
    return fired, seen, sched.now


@settings(max_examples=200, deadline=None)
@given(ops)
@example([("arm", BUCKET, 0), ("arm", 0.0, 0), ("peek", 0.0, 0), ("run", BUCKET, 0), ("arm", BUCKET - 1e-3, 2)])
@example([("arm", 3600.0, 3), ("cancel", 0, 0), ("arm", 3600.0, 1), ("run", 10.0, 0), ("peek", 0.0, 0)])
@example([("arm", math.inf, 1), ("arm", 1.0, 0), ("peek", 0.0, 0), ("run", 5.0, 0), ("peek", 0.0, 0)])
def test_calendar_queue_fires_what_one_heap_fires_in_the_same_order(steps):
    ref_fired, ref_seen, _ = _drive(Reference(T0), steps)
    got_fired, got_seen, _ = _drive(Scheduler(T0), steps)
    assert got_fired == ref_fired
    assert got_seen == ref_seen


def test_now_moved_after_construction_and_timers_beyond_the_window_still_fire_in_order():
    s = Scheduler()          # World sets `now` after construction (the virtual epoch)
    s.now = T0
    seen = []
    for d in (7200.0, 5.0, 61.0, 59.999, 86_400.0, 5.0):
        s.call_at(T0 + d, lambda _a, d=d: seen.append(d))
    assert s.next_deadline() == T0 + 5.0 and len(s) == 6
    s.run_until(T0 + 100.0)
    assert seen == [5.0, 5.0, 59.999, 61.0] and s.now == T0 + 100.0
    s.clear()
    assert len(s) == 0 and s.next_deadline() is None
    s.run_until(T0 + 100_000.0)
    assert seen == [5.0, 5.0, 59.999, 61.0]
