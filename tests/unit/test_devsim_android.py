"""One test per Android/FCM rule, under the virtual clock. Install 0 is the Android install."""
from device_sim.testing import outcome, push, virtual_world

AND = 0
DAY = 86_400


def world(profile=None, **kw):
    return virtual_world("android=1", profile={"android": profile or {}}, **kw)


def test_force_stopped_app_gets_nothing():
    b = world({"app_state": {"force_stopped": 1.0}})
    assert outcome(b, push(b, AND, "notification")) == ("dropped", "force-stopped")
    assert outcome(b, push(b, AND, "data")) == ("dropped", "force-stopped")


def test_doze_defers_normal_priority_to_the_maintenance_window_but_not_high():
    b = world({"doze": 1.0})
    d = b.device_sim.device(AND)
    t = b.sched.now
    while not b.device_sim.android.dozing(d, t):
        t += 10
    normal = push(b, AND, priority=5, at=t)
    high = push(b, AND, priority=10)
    assert outcome(b, normal) == ("pending", "deferred-doze")
    assert outcome(b, high)[0] == "delivered"
    window = b.device_sim.android.next_window(d, t)
    b.sched.run_until(window - 0.001)
    assert outcome(b, normal) == ("pending", "deferred-doze")
    b.sched.run_until(window)
    assert outcome(b, normal)[0] == "delivered"


def test_no_doze_while_charging():
    b = world({"doze": 1.0, "charging": 1.0})
    assert outcome(b, push(b, AND, priority=5))[0] == "delivered"


def _dozing_bench(profile, **kw):
    b = world({"doze": 1.0, **profile}, **kw)
    d = b.device_sim.device(AND)
    # keep the device in Doze for the whole test: maintenance windows far away
    b.device_sim.params.android.doze_interval = 10 * DAY
    while not b.device_sim.android.dozing(d, b.sched.now):
        b.sched.run_until(b.sched.now + 10)
    return b


def test_standby_bucket_caps_high_priority_on_android_12_and_below():
    rare12 = _dozing_bench({"bucket": {"rare": 1.0}, "os_version": {"12": 1.0}},
                           app={"data_shows_notification": 1.0})
    sent = [push(rare12, AND, priority=10, at=rare12.sched.now + 60) for _ in range(6)]
    assert [outcome(rare12, n)[0] for n in sent] == ["delivered"] * 5 + ["pending"]
    assert outcome(rare12, sent[5]) == ("pending", "deferred-doze")   # over the cap = normal priority
    assert rare12.device_sim.metrics.bucket_capped == 1
    rare13 = _dozing_bench({"bucket": {"rare": 1.0}, "os_version": {"13": 1.0}},
                           app={"data_shows_notification": 1.0})
    assert all(outcome(rare13, push(rare13, AND, priority=10))[0] == "delivered" for _ in range(6))
    frequent = _dozing_bench({"bucket": {"frequent": 1.0}, "os_version": {"11": 1.0}},
                             app={"data_shows_notification": 1.0})
    sent = [push(frequent, AND, priority=10) for _ in range(11)]
    assert [outcome(frequent, n)[0] for n in sent] == ["delivered"] * 10 + ["pending"]


def test_high_priority_data_that_never_notifies_is_deprioritized_for_7_days():
    quiet = _dozing_bench({}, android={"deprioritize_after": 3})
    sent = [push(quiet, AND, priority=10, at=quiet.sched.now + 1) for _ in range(4)]
    assert [outcome(quiet, n)[0] for n in sent] == ["delivered"] * 3 + ["pending"]
    assert quiet.device_sim.metrics.deprioritized == 1
    quiet.device_sim.set_state(AND, charging=True)                       # flush the deferred one
    quiet.device_sim.set_state(AND, charging=False)
    quiet.sched.run_until(quiet.sched.now + 7 * DAY + 10)
    assert outcome(quiet, push(quiet, AND, priority=10))[0] == "delivered"   # the window has passed
    noisy = _dozing_bench({}, android={"deprioritize_after": 3}, app={"data_shows_notification": 1.0})
    assert all(outcome(noisy, push(noisy, AND, priority=10))[0] == "delivered" for _ in range(6))


def test_ttl_expiry_while_offline():
    b = world()
    b.device_sim.set_state(AND, online=False)
    n = push(b, AND, expiration=b.sched.now + 60)
    b.sched.run_until(b.sched.now + 61)
    assert outcome(b, n) == ("dropped", "ttl-expired")


def test_ttl_zero_is_now_or_never():
    b = world()
    assert outcome(b, push(b, AND, expiration=0.0))[0] == "delivered"
    b.device_sim.set_state(AND, online=False)
    assert outcome(b, push(b, AND, expiration=0.0)) == ("dropped", "ttl-zero")


def test_more_than_100_pending_drops_all_and_reports_deleted_messages():
    b = world()
    b.device_sim.set_state(AND, online=False)
    sent = [push(b, AND) for _ in range(100)]
    assert all(outcome(b, n) == ("pending", "stored-offline") for n in sent)
    sent.append(push(b, AND))
    assert all(outcome(b, n) == ("dropped", "too-many-pending") for n in sent)
    assert b.device_sim.metrics.deleted_messages_events == 0
    b.device_sim.set_state(AND, online=True)
    assert b.device_sim.metrics.deleted_messages_events == 1
    b.ledger.check()


def test_at_most_four_collapse_keys_are_stored_and_a_key_keeps_its_newest():
    b = world()
    b.device_sim.set_state(AND, online=False)
    first_a = push(b, AND, collapse_id="a")
    newest_a = push(b, AND, collapse_id="a")
    assert outcome(b, first_a) == ("dropped", "collapsed")
    others = [push(b, AND, collapse_id=k) for k in "bcde"]
    dropped = [n for n in [newest_a, *others] if outcome(b, n)[0] == "dropped"]
    assert len(dropped) == 1 and outcome(b, dropped[0])[1] == "collapse-key-limit"
    b.device_sim.set_state(AND, online=True)
    assert b.ledger.delivered == 4


def test_on_message_received_has_10_seconds():
    b = world(app={"task_median": 12.0, "task_sigma": 0.0})
    push(b, AND, "data")
    b.sched.run_until(b.sched.now + 30)
    assert b.device_sim.metrics.tasks_killed == 1 and b.device_sim.metrics.durations == [10.0]
    ok = world(app={"task_median": 8.0, "task_sigma": 0.0, "failure_rate": 0.0})
    push(ok, AND, "data")
    ok.sched.run_until(ok.sched.now + 30)
    assert ok.device_sim.metrics.tasks_succeeded == 1


def test_notification_messages_go_to_the_tray_without_running_app_code():
    b = world()
    push(b, AND, "notification")
    assert b.device_sim.metrics.notifications_shown == 1 and b.device_sim.metrics.tasks_started == 0


def test_stored_messages_arrive_in_no_guaranteed_but_seeded_order():
    # the delivery order is visible through the ledger's settle events
    def settled(seed):
        b = virtual_world("android=1", seed=seed)
        seen = []
        b.ledger.subscribe(lambda rec, at: seen.append(rec.note.seq) if rec.outcome.value == "delivered" else None)
        b.device_sim.set_state(AND, online=False)
        for _ in range(20):
            push(b, AND)
        b.device_sim.set_state(AND, online=True)
        return seen
    a, again, other = settled(1), settled(1), settled(2)
    assert sorted(a) == list(range(20)) and a != list(range(20))
    assert a == again and a != other


def test_drop_reason_from_the_fake_is_applied():
    b = world()
    assert outcome(b, push(b, AND, drop_reason="scripted")) == ("dropped", "scripted")
