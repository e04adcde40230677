"""Per-arm intervals and lifts (device_sim.lift) and the experiment table's validation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from device_sim.cohorts import Experiment, Tally
from device_sim.lift import _interval, _lift, merge_moments, moments, outcomes


def _mom(x: np.ndarray) -> list[float]:
    return [len(x), float(x.mean()), float(((x - x.mean()) ** 2).sum())]


def test_lift_interval_is_welchs_as_scipy_computes_it():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.8, 0.2, 300), rng.normal(0.6, 0.4, 70)
    ours = _lift(_mom(a), _mom(b))
    ref = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert ours["estimate"] == pytest.approx(a.mean() - b.mean(), abs=1e-6)
    assert ours["ci95"] == pytest.approx([ref.low, ref.high], abs=1e-5)


def test_arm_interval_is_the_student_t_interval_of_the_mean():
    x = np.array([0.0, 1.0, 1.0, 0.5, 0.25])
    ours = _interval(*_mom(x))
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert ours["ci95"] == pytest.approx([lo, hi], abs=1e-6) and ours["n"] == 5


def test_degenerate_samples_give_points_not_nans():
    assert _interval(0, 0.0, 0.0)["estimate"] is None
    assert _interval(1, 3.0, 0.0) == {"estimate": 3.0, "ci95": [None, None], "n": 1}
    assert _interval(4, 2.0, 0.0)["ci95"] == [2.0, 2.0]
    assert _lift([3, 1.0, 0.0], [5, 0.0, 0.0]) == {"estimate": 1.0, "ci95": [1.0, 1.0]}
    assert _lift([0, 0.0, 0.0], [5, 0.0, 0.0])["estimate"] is None


def _filled_tally(n: int) -> Tally:
    exp = Experiment.from_dict({"arms": {"holdout": 1, "a": 2, "b": 1}, "seed": 5})
    t = Tally(exp, n)
    rng = np.random.default_rng(9)
    for i in range(n):
        opens = int(rng.integers(0, 4))
        t.add("opens", i, opens)
        t.add("fresh_opens", i, int(rng.integers(0, opens + 1)))
        t.add("wakes", i, int(rng.integers(0, 30)))
        t.add_seconds("task_s", i, float(rng.random() * 60))
    return t


def test_worker_shards_pool_to_the_whole_fleets_answer():
    t = _filled_tally(500)
    whole = outcomes(t, 500, 2.0)
    parts = []
    for me in range(3):
        t.shard = (me, 3)
        parts.append(moments(t, 500, 2.0))
    pooled = merge_moments(parts)
    for arm, a in whole["moments"]["arms"].items():
        assert pooled["arms"][arm]["installs"] == a["installs"]
        for m, v in a["metrics"].items():
            assert pooled["arms"][arm]["metrics"][m] == pytest.approx(v, rel=1e-9, abs=1e-9)


def test_outcomes_have_the_documented_shape():
    doc = outcomes(_filled_tally(200), 200, 1.0)
    assert set(doc["arms"]) == {"holdout", "a", "b"} and set(doc["lift"]) == {"a", "b"}
    assert sum(a["installs"] for a in doc["arms"].values()) == 200
    for block in (doc["arms"]["a"], doc["lift"]["b"]):
        for m in ("fresh_rate", "mean_staleness_s", "landing_readiness", "wakes_per_install_day",
                  "task_s_per_install_day", "fetches_per_install_day"):
            assert set(block[m]) >= {"estimate", "ci95"} and len(block[m]["ci95"]) == 2
    assert doc["weights"] == {"holdout": 0.25, "a": 0.5, "b": 0.25}


@pytest.mark.parametrize("table, message", [
    ({}, "arms"),
    ({"arms": {}}, "arms"),
    ({"arms": {"holdout": 0}}, "positive"),
    ({"arms": {"holdout": True}}, "positive"),
    ({"arms": {"holdout": float("nan")}}, "positive"),
    ({"arms": {"treated": 1}}, "holdout"),
    ({"arms": {"holdout": 1}, "mode": "sometimes"}, "mode"),
    ({"arms": {"holdout": 1}, "seed": -1}, "seed"),
    ({"arms": {"holdout": 1}, "colour": "red"}, "unknown key"),
    ({"arms": {f"a{k}": 1 for k in range(17)} | {"holdout": 1}}, "at most"),
])
def test_bad_experiment_tables_are_refused_by_name(table, message):
    with pytest.raises(ValueError, match=message):
        Experiment.from_dict(table)


def test_the_report_shows_the_experiment_in_json_text_and_html():
    from pushsim.report import build_report
    from pushsim.report.render import render

    doc = outcomes(_filled_tally(120), 120, 1.0)
    report = build_report([{"type": "header", "now": 0.0, "experiment": doc, "experiment_outcomes": doc}])
    assert report["experiment"]["lift"]["a"]["fresh_rate"] == doc["lift"]["a"]["fresh_rate"]
    page = render(report, "html")
    assert "<h2>Experiment" in page and "lift a − holdout" in page and "fresh_rate" in page
    assert "lift b - holdout" in render(report, "text")
    assert "experiment" not in build_report([{"type": "header", "now": 0.0}])


def test_a_grown_fleet_counts_installs_that_never_got_traffic():
    t = _filled_tally(10)
    doc = outcomes(t, 25, 1.0)                 # 15 installs registered later, silent so far
    assert sum(a["installs"] for a in doc["arms"].values()) == 25


def test_the_plotted_html_report_has_the_experiment_table():
    from pushsim.report.html import PageInputs, page

    doc = outcomes(_filled_tally(60), 60, 1.0)
    text = page(PageInputs("t", [{"type": "header", "now": 0.0, "experiment_outcomes": doc}]))
    assert "<h2>Experiment" in text and "lift a − holdout" in text
