"""Sharded virtual runs (scenario.simulate(shard=(me, workers))): installs never affect each other, so
each shard reproduces its installs' outcomes of the whole run exactly, and the shards' experiment
moments pool to the whole run's per-arm outcomes and lifts (benchmarks/devsim_experiment.py
--workers 2 relies on it)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from device_sim.lift import merge_moments, summarize
from device_sim.scenario import load, simulate

ROOT = Path(__file__).resolve().parents[2]


def _doc(installs: int = 400, days: float = 3.0) -> dict:
    doc = load(ROOT / "scenarios" / "bench-1m-week.toml")
    doc["fleet"]["devices"] = f"ios={installs // 2},android={installs - installs // 2}"
    doc["duration"] = days * 86_400.0
    return doc


def test_two_shards_reproduce_every_install_and_pool_to_the_whole_runs_lift():
    whole_world, whole = simulate(_doc(), 3)
    parts = [simulate(_doc(), 3, shard=(me, 2)) for me in (0, 1)]
    whole_tally = whole_world.device_sim.cohorts
    assert sum(whole_tally.counts["opens"]) > 100 and sum(whole_tally.counts["wakes"]) > 100
    for me, (world, _s) in enumerate(parts):
        tally = world.device_sim.cohorts
        owned = range(me, 400, 2)
        for key, arr in tally.counts.items():                 # per install: the very same counts
            assert [arr[i] for i in owned] == [whole_tally.counts[key][i] for i in owned], key
            assert not any(arr[i] for i in range(1 - me, 400, 2)), key   # nothing for the other shard's
        for key, arr in tally.sums.items():
            assert [arr[i] for i in owned] == [whole_tally.sums[key][i] for i in owned], key
    f = [s.funnel for _w, s in parts]
    assert f[0]["accepted"] + f[1]["accepted"] == whole.funnel["accepted"]
    assert f[0]["delivered"] + f[1]["delivered"] == whole.funnel["delivered"]
    for key in ("dropped", "pending"):
        assert Counter(f[0][key]) + Counter(f[1][key]) == Counter(whole.funnel[key])
    assert whole.experiment is not None
    pooled = summarize(whole.experiment, merge_moments([s.experiment["moments"] for _w, s in parts]))
    assert pooled["arms"].keys() == whole.experiment["arms"].keys()
    for arm, a in whole.experiment["arms"].items():
        assert pooled["arms"][arm]["installs"] == a["installs"]
        assert pooled["arms"][arm]["drops_by_reason"] == a["drops_by_reason"]
        for metric in ("fresh_rate", "wakes_per_install_day", "mean_staleness_s"):
            assert pooled["arms"][arm][metric]["estimate"] == pytest.approx(a[metric]["estimate"], abs=1e-6)
    lift, got = whole.experiment["lift"]["treated"]["fresh_rate"], pooled["lift"]["treated"]["fresh_rate"]
    assert got["estimate"] == pytest.approx(lift["estimate"], abs=1e-6)
    assert got["ci95"] == pytest.approx(lift["ci95"], abs=1e-6)


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0)])
def test_a_bad_shard_is_refused(shard):
    with pytest.raises(ValueError, match="bad shard"):
        simulate(_doc(20, 1), 1, shard=shard)
