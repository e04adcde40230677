import asyncio
import time

import pytest

from device_sim.clock import Clock, LoopDriver, Scheduler, ScaledClock, VirtualClock, parse_clock


def test_timers_fire_in_deadline_order_at_their_deadline():
    s = Scheduler(100.0)
    seen = []
    s.call_at(105, lambda a: seen.append((a, s.now)), "b")
    s.call_at(103, lambda a: seen.append((a, s.now)), "a")
    s.call_at(103, lambda a: seen.append((a, s.now)), "a2")     # equal deadlines keep insertion order
    s.run_until(104)
    assert seen == [("a", 103), ("a2", 103)] and s.now == 104
    s.run_until(200)
    assert seen[-1] == ("b", 105) and s.now == 200


def test_cancelled_timers_never_fire_and_timers_in_the_past_fire_now():
    s = Scheduler(10.0)
    seen = []
    t = s.call_at(11, seen.append, 1)
    Scheduler.cancel(t)
    s.call_at(5, lambda a: seen.append(s.now), None)
    s.run_until(20)
    assert seen == [10.0]
    assert s.next_deadline() is None and len(s) == 0


def test_scaled_clock_runs_device_time_faster_and_converts_back():
    wall = [1000.0]
    c = ScaledClock(60.0, lambda: wall[0])
    wall[0] = 1001.0
    assert c.device_now() == 1060.0
    assert c.wall_at(1060.0) == 1001.0
    assert c.wall() == 1001.0          # protocol time stays on the wall clock


def test_parse_clock():
    s = Scheduler()
    assert isinstance(parse_clock("real", s), Clock) and parse_clock("real", s).mode == "real"
    assert isinstance(parse_clock("virtual", s), VirtualClock)
    assert parse_clock("scaled:10", s).factor == 10.0
    for bad in ("scaled", "scaled:x", "scaled:0", "fast"):
        with pytest.raises(ValueError):
            parse_clock(bad, s)


async def test_loop_driver_wakes_the_fleet_at_the_scaled_deadline():
    loop = asyncio.get_running_loop()
    clock = ScaledClock(1000.0)           # 60 device seconds = 60 ms of wall time
    s = Scheduler(clock.device_now())
    fired = asyncio.Event()
    LoopDriver(s, clock, lambda: s.run_until(clock.device_now()), loop)
    start = time.monotonic()
    s.call_at(s.now + 60.0, lambda _a: fired.set())
    await asyncio.wait_for(fired.wait(), 2.0)
    assert 0.04 < time.monotonic() - start < 1.5
