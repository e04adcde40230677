"""Scenario runs in virtual time: one per platform, and determinism."""
from pathlib import Path

from device_sim.scenario import run_virtual

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_ios_six_silent_pushes_an_hour_deliver_no_more_than_the_budget():
    s = run_virtual(SCENARIOS / "ios-silent-hourly.toml", seed=1)
    f = s.funnel
    assert f["accepted"] == 143                      # 6/h for 24 h (the first tick is at +10 min)
    # budget: a burst of 3 plus 3/h refill, and at most 40 wakes per device-day (two days touched)
    assert f["delivered"] <= min(3 + 3 * 24, 2 * 40)
    assert f["delivered"] >= 60                      # the budget is used, not starved
    rest = f["accepted"] - f["delivered"]
    assert sum(f["dropped"].values()) + sum(f["pending"].values()) == rest
    assert set(f["dropped"]) <= {"coalesced"} and set(f["pending"]) <= {"held-budget"}
    assert f["dropped"].get("coalesced", 0) >= rest - 1


def test_android_rare_bucket_in_doze_defers_demoted_high_priority():
    s = run_virtual(SCENARIOS / "android-data-doze.toml", seed=1)
    a = s.metrics["android"]
    assert a["bucket_capped"] + a["deprioritized"] > 0
    assert a["doze_deferred"] >= 4 * 23              # every normal-priority message waits for a window
    assert s.funnel["accepted"] == s.funnel["delivered"] + sum(s.funnel["pending"].values())


def test_offline_overflow_drops_all_android_and_keeps_the_newest_ios():
    s = run_virtual(SCENARIOS / "offline-overflow.toml", seed=1)
    assert s.funnel["dropped"]["too-many-pending"] == 101
    assert s.metrics["android"]["deleted_messages_events"] == 1
    # iOS pushes at 12, 24, ... 108 min while offline: APNs keeps only the newest of the nine
    assert s.funnel["dropped"]["superseded"] == 8


def test_same_seed_same_digest_different_seed_different_digest():
    import tomllib
    doc = tomllib.loads((SCENARIOS / "mixed-fleet.toml").read_text())
    doc["fleet"]["devices"] = "ios=60,android=60"
    doc["duration"] = 12 * 3600
    a = run_virtual(doc, seed=7)
    b = run_virtual(doc, seed=7)
    c = run_virtual(doc, seed=8)
    assert a.digest == b.digest and a.funnel == b.funnel
    assert a.digest != c.digest
    assert "digest " + a.digest in a.format()


def test_bad_scenarios_are_rejected_with_a_message():
    import pytest
    with pytest.raises(ValueError, match="unknown setting"):
        run_virtual({"ios": {"budget_per_day": 3}}, 0)
    with pytest.raises(ValueError, match="unknown app state"):
        run_virtual({"profile": {"ios": {"app_state": {"sleeping": 1.0}}}}, 0)


def test_module_command_prints_the_same_digest_twice_and_rejects_bad_files(capsys, tmp_path):
    from device_sim.scenario import main
    path = str(SCENARIOS / "ios-silent-hourly.toml")
    assert main([path, "--seed", "3"]) == 0 and main([path, "--seed", "3"]) == 0
    digests = [line for line in capsys.readouterr().out.splitlines() if line.startswith("digest ")]
    assert len(digests) == 2 and digests[0] == digests[1]
    bad = tmp_path / "bad.toml"
    bad.write_text("duration = [")
    assert main([str(bad)]) == 2
    assert main([str(tmp_path / "missing.toml")]) == 2
