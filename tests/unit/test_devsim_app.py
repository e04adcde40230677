"""The simulated app: task outcomes, content versions and freshness at open."""
from device_sim.testing import push, virtual_world


def test_failure_rate_fails_tasks_that_finish_in_time():
    b = virtual_world("ios=1", app={"failure_rate": 1.0, "task_median": 1.0, "task_sigma": 0.0})
    push(b, 0)
    b.sched.run_until(b.sched.now + 5)
    m = b.device_sim.stats()["background"]
    assert (m["succeeded"], m["failed"], m["killed"]) == (0, 1, 0)


def test_task_durations_follow_the_configured_distribution():
    b = virtual_world("ios=1", app={"task_median": 2.0, "task_sigma": 0.5}, ios={"throttle": False})
    for _ in range(400):
        push(b, 0, at=b.sched.now + 60)
    b.sched.run_until(b.sched.now + 60)
    d = b.device_sim.stats()["task_duration"]
    assert d["count"] == 400
    assert 1.6 < d["p50"] < 2.5 and d["p90"] > 3.0


def test_open_after_a_successful_background_task_is_fresh_and_ready():
    b = virtual_world("ios=1", app={"failure_rate": 0.0, "task_median": 1.0, "task_sigma": 0.0})
    push(b, 0)
    b.sched.run_until(b.sched.now + 10)
    b.device_sim.open_app(0)
    f = b.device_sim.stats()["freshness"]
    assert (f["opens"], f["fresh"], f["ready"]) == (1, 1, 1)


def test_open_while_the_push_is_held_is_stale_and_counts_staleness():
    b = virtual_world("ios=1", profile={"ios": {"low_power": 1.0}},
                      app={"failure_rate": 0.0, "task_median": 1.0, "task_sigma": 0.0})
    push(b, 0)
    b.sched.run_until(b.sched.now + 100)
    b.device_sim.open_app(0)                          # the held push is handed over only now: content not ready
    f = b.device_sim.stats()["freshness"]
    assert (f["opens"], f["fresh"]) == (1, 0) and f["mean_staleness"] == 100.0
    b.sched.run_until(b.sched.now + 10)
    b.device_sim.open_app(0)
    assert b.device_sim.stats()["freshness"]["fresh"] == 1


def test_explicit_content_version_in_the_payload_is_used():
    b = virtual_world("android=1", app={"failure_rate": 0.0, "task_median": 1.0, "task_sigma": 0.0})
    push(b, 0, payload=b'{"message":{"data":{"content_version":"7"}}}')
    b.sched.run_until(b.sched.now + 5)
    assert b.device_sim.describe(0)["content_version"] == 7
    push(b, 0, payload=b'{"message":{"data":{"content_version":"5"}}}')   # older content: no change
    b.sched.run_until(b.sched.now + 5)
    assert b.device_sim.describe(0)["content_version"] == 7


def test_users_open_apps_at_the_profile_rate():
    b = virtual_world("ios=1", profile={"ios": {"opens_per_day": 24.0}})
    push(b, 0)
    b.sched.run_until(b.sched.now + 10 * 86_400)
    opens = b.device_sim.metrics.opens
    assert 60 < opens < 600       # 24/day × 0.25..1.75 per-install factor × 10 days


def test_metrics_expose_receipt_rate_and_funnel():
    b = virtual_world("ios=1", ios={"budget_burst": 1})
    push(b, 0)
    push(b, 0)
    s = b.stats()
    assert s["receipt_rate"] == 0.5
    assert s["funnel"]["pending"] == {"held-budget": 1}


def test_declared_content_version_memo_answers_like_a_fresh_parse_and_stays_bounded(monkeypatch):
    from device_sim import app
    monkeypatch.setattr(app, "_DECLARED", {})
    monkeypatch.setattr(app, "_DECLARED_MAX", 3)
    cases = [(b'{"content_version":4}', 9, 4), (b'{"data":{"content_version":"12"}}', 0, 12),
             (b'{"message":{"data":{"content_version":2}}}', 5, 2), (b'{"content_version":"x"}', 5, 6),
             (b'not json, content_version', 1, 2), (b'{"k":"content_version"}', 3, 4)]
    for _ in range(2):                                  # second pass: answered from the memo
        for payload, cur, want in cases:
            assert app._explicit_version(payload, cur) == want
            assert app._explicit_version(payload, cur + 10) == (want if want != cur + 1 else cur + 11)
    assert len(app._DECLARED) <= 3                      # cleared wholesale when full
    big = b'{"content_version":3,"pad":"' + b"z" * 2000 + b'"}'
    assert app._explicit_version(big, 0) == 3 and big not in app._DECLARED   # large bodies not kept
