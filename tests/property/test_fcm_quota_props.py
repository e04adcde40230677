"""Quota invariants: the one-call admit equals wait-then-take; windows never over-admit."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fake_fcm.quota import DEVICE_PER_MINUTE, Quotas, SlidingWindow

steps = st.lists(st.tuples(st.integers(0, 2), st.floats(0, 2.0)), max_size=600)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_wait_predicts_admit(seq: list[tuple[int, float]]) -> None:
    q = Quotas(10**9)
    t = 1000.0
    for install, dt in seq:
        t += dt
        assert q.device_wait(install, t) == q.device_admit(install, t)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.01, 0.1, 0.3, 1.0, 5.0]) | st.floats(0, 2.0), min_size=1, max_size=800))
def test_device_never_exceeds_240_in_any_minute(gaps: list[float]) -> None:
    q = Quotas(10**9)
    t, admitted = 0.0, []
    for g in gaps:
        t += g
        if q.device_admit(7, t) is None:
            admitted.append(t)
    for k, start in enumerate(admitted):
        in_window = sum(1 for x in admitted[k:] if x < start + 60.0)
        assert in_window <= DEVICE_PER_MINUTE


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.lists(st.floats(0, 3.0), max_size=300))
def test_sliding_window_counts_exactly_the_last_minute(limit: int, gaps: list[float]) -> None:
    w = SlidingWindow(limit)
    t, events = 100.0, []
    for g in gaps:
        t += g
        if not w.full(t):
            w.add(t)
            events.append(int(t))
        assert w.total(t) == sum(1 for e in events if e > int(t) - 60)
        assert w.total(t) <= limit


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 10.0, 59.0, 61.0, 600.0]), min_size=1, max_size=300))
def test_hourly_cap(gaps: list[float]) -> None:
    from fake_fcm.quota import DeviceLimits

    d = DeviceLimits(per_minute=10**6, per_hour=20)
    t, admitted = 0.0, []
    for g in gaps:
        t += g
        if d.admit(1, t) is None:
            admitted.append(t)
    for k, start in enumerate(admitted):
        assert sum(1 for x in admitted[k:] if x < start + 3600.0) <= 20
