"""Strategies in virtual time (scenario traffic rules) and the make-ready experiment example."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_sim.scenario import build_virtual, run_virtual
from pushsim.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "scenarios" / "experiment-make-ready.toml"
DAY = 86_400.0


def _sent(doc: dict, seed: int = 1) -> list[tuple[float, str, int]]:
    """(device time, push type, install) of every push the scenario's traffic sent."""
    world, start, duration = build_virtual(doc, seed)
    world.sched.run_until(start + duration)
    world.ledger.check()
    return [(n.received_at - start, n.push_type, n.install) for n in world.ledger.records.values()]


def _doc(rule: dict, content: dict | None = None, duration: float = DAY, **extra) -> dict:
    doc = {"duration": duration, "start": 0.0, "fleet": {"devices": "ios=2"},
           "profile": {"ios": {"opens_per_day": 0.0}}, "traffic": [rule], **extra}
    if content is not None:
        doc["content"] = content
    return doc


def test_content_trigger_sends_once_per_update_after_the_delay():
    content = {"updates_per_day": 24, "poisson": False}
    sent = _sent(_doc({"platform": "ios", "trigger": "content", "delay": 60}, content))
    times = sorted({t for t, _, _ in sent})
    assert times == [h * 3600.0 + 60 for h in range(1, 24)] and len(sent) == 2 * 23


def test_batching_window_coalesces_updates_into_one_push():
    content = {"updates_per_day": 96, "poisson": False}      # every 15 minutes
    sent = _sent(_doc({"platform": "ios", "trigger": "content", "batch_s": 3600, "installs": [0]}, content))
    gaps = {round(b - a) for (a, _, _), (b, _, _) in zip(sent, sent[1:])}
    # a window opens at an update and sends an hour later; the update due then opens the next one
    assert gaps == {3600} and len(sent) == 23


def test_frequency_cap_limits_pushes_per_install_per_day():
    sent = _sent(_doc({"platform": "ios", "per_hour": 6, "max_per_day": 5}, duration=2 * DAY))
    per = {}
    for t, _, i in sent:
        per[(i, int(t // DAY))] = per.get((i, int(t // DAY)), 0) + 1
    assert set(per.values()) == {5} and len(per) == 4


def test_quiet_hours_skip_sends_including_across_midnight():
    sent = _sent(_doc({"platform": "ios", "per_hour": 1, "quiet_hours": [22, 6], "installs": [0]}))
    hours = sorted(int(t % DAY // 3600) for t, _, _ in sent)
    assert hours == list(range(6, 22))


def test_only_when_changed_skips_installs_already_sent_this_content():
    content = {"updates_per_day": 4, "poisson": False}        # every 6 hours
    sent = _sent(_doc({"platform": "ios", "per_hour": 1, "only_when_changed": True, "installs": [0]}, content))
    # hourly ticks, but one push per content version: v0 (first tick) and v1, v2, v3
    assert len(sent) == 4


def test_silent_before_visible_sends_the_silent_push_lead_seconds_first():
    sent = _sent(_doc({"platform": "ios", "push_type": "alert", "per_hour": 1, "silent_lead_s": 300,
                       "installs": [0]}, duration=3 * 3600 + 400))
    assert [(round(t), pt) for t, pt, _ in sent] == [(3600, "background"), (3900, "alert"), (7200, "background"),
                                                     (7500, "alert"), (10800, "background"), (11100, "alert")]


@pytest.mark.parametrize("rule, message", [
    ({"trigger": "content"}, r"\[content\]"),
    ({"trigger": "sometimes"}, "trigger"),
    ({"only_when_changed": True}, r"\[content\]"),
    ({"max_per_day": 0}, "max_per_day"),
    ({"quiet_hours": [22]}, "quiet_hours"),
    ({"batch_s": -1}, "batch_s"),
    ({"silent_lead_s": 60}, "visible"),
    ({"arms": ["treated"]}, "no \\[experiment\\]"),
])
def test_bad_strategy_settings_are_refused_by_name(rule, message):
    with pytest.raises(ValueError, match=message):
        build_virtual(_doc({"platform": "ios", **rule}), 0)


def test_virtual_runs_refuse_faults_clearly():
    with pytest.raises(ValueError, match="--mode live"):
        build_virtual(_doc({"platform": "ios"}, faults=[{"action": {"type": "stall"}}]), 0)


def test_make_ready_example_shows_a_fresh_rate_lift_whose_interval_excludes_zero(capsys):
    assert main(["run", str(EXAMPLE), "--mode", "virtual", "--seed", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    exp = doc["experiment"]
    assert set(exp["arms"]) == {"holdout", "eager", "batched"}
    for arm in ("eager", "batched"):
        lift = exp["lift"][arm]["fresh_rate"]
        assert lift["estimate"] > 0 and lift["ci95"][0] > 0, lift
        assert exp["lift"][arm]["wakes_per_install_day"]["ci95"][0] > 0     # and it costs wakes
    assert exp["sent_to_holdout"] == 0
    # the same seed gives the same numbers
    again = run_virtual(EXAMPLE, 1)
    assert again.experiment is not None
    assert again.digest == doc["digest"]
    strip = lambda e: json.loads(json.dumps(e))
    assert strip(again.experiment)["arms"] == exp["arms"] and strip(again.experiment)["lift"] == exp["lift"]
    text = again.format()            # what `pushsim run` prints without --json
    assert "arm holdout" in text and "lift eager - holdout" in text
    fresh = next(ln for ln in text.split("lift eager - holdout")[1].splitlines() if "fresh_rate" in ln)
    assert "[" in fresh and "]" in fresh
