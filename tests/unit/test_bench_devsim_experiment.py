"""benchmarks/devsim_experiment.py on a tiny fleet (the 1M-install week is a manual run, not a test):
the one command still builds, runs and summarises its scenario, in a child process it measures."""
from __future__ import annotations

import json

import pytest

from benchmarks import devsim_experiment


def test_tiny_fleet_run_in_two_processes_reports_time_memory_balanced_funnel_and_a_lift(capsys):
    assert devsim_experiment.main(["--installs", "600", "--days", "3", "--workers", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["devices"] == "ios=300,android=300" and res["days"] == 3.0 and res["workers"] == 2
    assert len(res["digest"]) == 2 and len(res["shard_rss_mib"]) == 2
    assert res["peak_rss_mib"] <= res["peak_rss_sum_mib"] == pytest.approx(sum(res["shard_rss_mib"]), abs=0.2)
    assert res["events"] > 600 and res["events_per_s"] > 0
    assert 0 < res["run_s"] <= res["wall_s"] <= res["process_wall_s"]
    assert 0 < res["cpu_s"] and 20 < res["peak_rss_mib"] < 2048
    assert res["targets"]["met"] is True
    f = res["funnel"]
    assert f["accepted"] == 2 * 600        # the daily content push, day 2 and day 3, to every install
    assert f["accepted"] == f["delivered"] + sum(f["dropped"].values()) + sum(f["pending"].values())
    assert f["dropped"].get("holdout", 0) > 0          # enforced holdout: its pushes never reach the app
    assert set(res["arms"]) == {"holdout", "treated"}
    assert sum(a["installs"] for a in res["arms"].values()) == 600
    assert res["arms"]["holdout"]["wakes_per_install_day"] == 0.0 < res["arms"]["treated"]["wakes_per_install_day"]
    lift = res["lift_fresh_rate"]["treated"]
    lo, hi = lift["ci95"]
    assert lo <= lift["estimate"] <= hi and lift["estimate"] > 0


def test_text_output_names_time_memory_and_the_lift():
    # in-process (the child's work) plus what the parent adds, formatted as the command prints it
    res = devsim_experiment.child(devsim_experiment.DEFAULT_SCENARIO, 200, 2, 1)
    assert res["shard"] == [0, 1] and res["rss_mib"] > 20 and res["experiment"]["lift"]
    res.update(process_wall_s=res["wall_s"], cpu_s=1.0, peak_rss_sum_mib=99.0, targets={"met": True})
    text = devsim_experiment.format_text(res)
    assert text.startswith("bench-1m-week: ios=100,android=100, 2 device days, seed 1, 1 process(es)")
    assert "peak RSS 99 MiB" in text and "CPU 1.0 s" in text
    assert f"lift treated - holdout, fresh rate at open: {res['lift_fresh_rate']['treated']['estimate']}" in text
