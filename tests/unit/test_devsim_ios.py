"""One test per iOS rule, under the virtual clock. Install 0 is the iOS install."""
from device_sim.testing import outcome, push, virtual_world

IOS = 0


def world(**kw):
    return virtual_world("ios=1", **kw)


def test_background_budget_holds_pushes_beyond_the_burst_and_releases_on_refill():
    b = world(ios={"budget_per_hour": 3, "budget_burst": 3})
    sent = [push(b, IOS, at=b.sched.now + 1) for _ in range(4)]
    assert [outcome(b, n)[0] for n in sent[:3]] == ["delivered"] * 3
    assert outcome(b, sent[3]) == ("pending", "held-budget")
    b.sched.run_until(b.sched.now + 1150)           # less than one token (1200 s at 3/h)
    assert outcome(b, sent[3]) == ("pending", "held-budget")
    b.sched.run_until(b.sched.now + 100)
    assert outcome(b, sent[3])[0] == "delivered"
    b.ledger.check()


def test_only_the_newest_held_push_survives():
    b = world(ios={"budget_burst": 1})
    first = push(b, IOS)
    held = push(b, IOS, at=b.sched.now + 1)
    newer = push(b, IOS, at=b.sched.now + 1)
    assert outcome(b, first)[0] == "delivered"
    assert outcome(b, held) == ("dropped", "coalesced")
    assert outcome(b, newer) == ("pending", "held-budget")


def test_device_wide_daily_budget_resets_after_24h():
    b = world(ios={"budget_per_hour": 3600, "budget_burst": 100, "daily_budget": 5})
    sent = [push(b, IOS, at=b.sched.now + 10) for _ in range(6)]
    assert [outcome(b, n)[0] for n in sent] == ["delivered"] * 5 + ["pending"]
    assert b.device_sim.devices[IOS].day_used == 5
    b.sched.run_until(b.sched.now + 86_400)
    assert outcome(b, sent[5])[0] == "delivered"


def test_force_quit_app_gets_no_background_push_and_loses_the_held_one():
    b = world(ios={"budget_burst": 1})
    push(b, IOS)
    held = push(b, IOS, at=b.sched.now + 1)
    b.device_sim.set_state(IOS, app_state="force_quit")
    assert outcome(b, held) == ("dropped", "force-quit")
    assert outcome(b, push(b, IOS, at=b.sched.now + 1)) == ("dropped", "force-quit")


def test_held_push_is_delivered_at_app_launch():
    b = world(ios={"budget_burst": 1})
    push(b, IOS)
    held = push(b, IOS, at=b.sched.now + 1)
    b.device_sim.set_state(IOS, open=True)
    assert outcome(b, held)[0] == "delivered"
    assert b.ledger.records[held.seq].settled_at == b.sched.now


def test_low_power_mode_and_background_app_refresh_off_hold_background_pushes():
    b = virtual_world("ios=2", profile={"ios": {"low_power": 1.0}})
    lpm = push(b, 0)
    assert outcome(b, lpm) == ("pending", "held-low-power")
    b.device_sim.set_state(1, bar=False, low_power=False)
    assert outcome(b, push(b, 1)) == ("pending", "held-background-refresh-off")
    b.device_sim.set_state(0, low_power=False)
    assert outcome(b, lpm)[0] == "delivered"


def test_alert_pushes_are_shown_without_spending_the_budget():
    b = world(ios={"budget_burst": 1})
    alerts = [push(b, IOS, "alert", priority=10, at=b.sched.now + 1) for _ in range(10)]
    assert all(outcome(b, n)[0] == "delivered" for n in alerts)
    assert b.device_sim.metrics.alerts_shown == 10
    assert outcome(b, push(b, IOS))[0] == "delivered"   # the one budget token is still there
    b.device_sim.set_state(IOS, app_state="force_quit")
    assert outcome(b, push(b, IOS, "alert", priority=10))[0] == "delivered"


def test_foreground_app_is_not_throttled():
    b = world(ios={"budget_burst": 1}, profile={"ios": {"app_state": {"foreground": 1.0}}})
    assert all(outcome(b, push(b, IOS))[0] == "delivered" for _ in range(5))


def test_throttle_off_is_the_attached_debugger():
    b = world(ios={"budget_burst": 1, "throttle": False})
    assert all(outcome(b, push(b, IOS))[0] == "delivered" for _ in range(5))


def test_offline_device_keeps_only_the_newest_push_until_reconnect():
    b = world()
    b.device_sim.set_state(IOS, online=False)
    old = push(b, IOS)
    new = push(b, IOS, at=b.sched.now + 5)
    assert outcome(b, old) == ("dropped", "superseded")
    assert outcome(b, new) == ("pending", "stored-offline")
    b.sched.run_until(b.sched.now + 60)
    b.device_sim.set_state(IOS, online=True)
    assert outcome(b, new)[0] == "delivered"


def test_expiration_zero_means_one_attempt_and_no_storage():
    b = world()
    b.device_sim.set_state(IOS, online=False)
    assert outcome(b, push(b, IOS, expiration=0.0)) == ("dropped", "expired")


def test_stored_push_expires_at_apns_expiration():
    b = world()
    b.device_sim.set_state(IOS, online=False)
    n = push(b, IOS, expiration=b.sched.now + 60)
    b.sched.run_until(b.sched.now + 59)
    assert outcome(b, n) == ("pending", "stored-offline")
    b.sched.run_until(b.sched.now + 2)
    assert outcome(b, n) == ("dropped", "expired")


def test_reconnect_happens_by_itself_when_connectivity_returns():
    b = virtual_world("ios=1", seed=5, profile={"ios": {"offline": 0.5}})
    d = b.device_sim.device(IOS)
    t = b.sched.now
    while b.device_sim.online(d, t):               # find an offline slot
        t += b.device_sim.params.connectivity_slot
    n = push(b, IOS, at=t, expiration=t + 30 * 86_400)
    assert outcome(b, n) == ("pending", "stored-offline")
    b.sched.run_until(b.device_sim.next_online(d, t))
    assert outcome(b, n)[0] == "delivered"


def test_overrunning_the_30s_window_is_killed_counted_and_shrinks_the_budget():
    slow = world(app={"task_median": 45.0, "task_sigma": 0.0}, ios={"budget_burst": 2})
    fast = world(app={"task_median": 5.0, "task_sigma": 0.0}, ios={"budget_burst": 2})
    for b in (slow, fast):
        push(b, IOS)
        b.sched.run_until(b.sched.now + 60)
    assert slow.device_sim.metrics.tasks_killed == 1 and fast.device_sim.metrics.tasks_killed == 0
    assert slow.device_sim.metrics.durations == [30.0]
    assert slow.device_sim.devices[IOS].tokens < fast.device_sim.devices[IOS].tokens - 0.9
    # the penalty is felt: the fast app still has a token, the slow one must wait
    assert outcome(fast, push(fast, IOS))[0] == "delivered"
    assert outcome(slow, push(slow, IOS)) == ("pending", "held-budget")


def test_drop_reason_from_the_fake_is_applied_at_delivery():
    b = world()
    n = push(b, IOS, priority=10, drop_reason="background-priority-10")
    assert outcome(b, n) == ("dropped", "background-priority-10")


def test_never_launched_app_gets_nothing():
    b = world(profile={"ios": {"app_state": {"never_launched": 1.0}}})
    assert outcome(b, push(b, IOS, "alert", priority=10)) == ("dropped", "never-launched")
