"""benchmarks.targets: issue 7's targets table and the quick mode's before/after comparison."""
from __future__ import annotations

import pytest

from benchmarks import targets
from benchmarks.runner import aggregate, half_load_plan, ratio


def _results(apns_ratio: float | None, p99_us: float | None) -> dict:
    half = None if p99_us is None else {"latency_us": {"p50": 800, "p99": p99_us}}
    return {"rows": {"apns-h2c": {"ratio": apns_ratio, "half_load": half},
                     "fcm-h1": {"ratio": 0.2, "half_load": {"latency_us": {"p99": 4999}}}},
            "memory": {"serve_rss_mib": 2048.0, "serve_ready_s": 3.0}}


def test_targets_for_rows_and_memory():
    ts = targets.targets_for(["apns-h2c", "fcm-h1"], memory=False)
    assert [(t.key, t.op, t.bound) for t in ts] == [
        ("ratio:apns-h2c", ">=", 0.25), ("ratio:fcm-h1", ">=", 0.15),
        ("half_p99_ms:apns-h2c", "<=", 5.0), ("half_p99_ms:fcm-h1", "<=", 5.0)]
    assert len(targets.targets_for(["apns-h2c"], memory=True)) == 2 + 4


def test_evaluate_met_short_over_and_missing():
    res = _results(0.125, 7500)
    ts = targets.targets_for(["apns-h2c", "fcm-h1"], memory=True)
    by = {j["target"]: j for j in targets.evaluate(res, ts)}
    a = by["apns-h2c / nghttpd (req/s ratio)"]
    assert a["measured"] == 0.125 and not a["met"] and a["distance"] == "needs x2.00"
    f = by["fcm-h1 / nghttpd (req/s ratio)"]
    assert f["met"] and f["distance"] == "margin x1.33"
    p = by["apns-h2c p99 at half load"]
    assert p["measured"] == pytest.approx(7.5) and not p["met"] and p["distance"] == "over by 2.5 ms"
    assert by["fcm-h1 p99 at half load"]["met"]
    rss = by["1M installs: pushsim serve RSS"]
    assert not rss["met"] and rss["distance"] == "over by 1.02e+03 MiB"
    assert by["1M installs: pushsim serve ready"]["met"]
    missing = by["1M installs: devsim_memory RSS"]
    assert missing["measured"] is None and not missing["met"] and missing["distance"] == "not measured"
    table = targets.format_table(list(by.values()))
    assert "NOT MET (needs x2.00)" in table and "MET (margin x1.33)" in table


def test_unmeasured_ratio_and_half_load():
    by = {j["target"]: j for j in targets.evaluate(_results(None, None), targets.targets_for(["apns-h2c"], False))}
    assert all(not j["met"] and j["distance"] == "not measured" for j in by.values())


def test_ratio_and_aggregate_drop_failed_runs():
    assert ratio(10.0, 40.0) == 0.25 and ratio(None, 40.0) is None and ratio(10.0, 0) is None
    run = {"ok": True, "req_s": 100.0, "server_cpu_us_per_req": 50.0, "server_cpu_share": 0.9,
           "client_cpu_us_per_req": 5.0, "client_cpu_share": 0.1, "latency_us": {"p50": 1, "p99": 9, "count": 3}}
    runs = [run, {**run, "req_s": 300.0, "latency_us": {"p50": 3, "p99": 7, "count": 3}},
            {**run, "ok": False, "req_s": 1e9}, {**run, "req_s": 200.0}]
    agg = aggregate(runs)
    assert agg["req_s"] == 200.0 and agg["failed_runs"] == 1 and agg["runs"] == 4
    assert agg["latency_us"] == {"p50": 1, "p99": 9}
    assert aggregate([{**run, "ok": False}])["req_s"] is None


def test_half_load_plan():
    assert half_load_plan(12000, 8, 4) == (750.0, 24000)
    assert half_load_plan(100, 64, 1) == (50 / 64, 500)          # never fewer than 500 requests


def test_compare_flags_changes_beyond_the_noise():
    before = {"rows": {"apns-h2c": {"ratio": 0.20, "ratio_spread": 0.01, "server_cpu_us_per_req": 80.0},
                       "fcm-h2c": {"ratio": 0.10, "ratio_spread": 0.02, "server_cpu_us_per_req": 90.0},
                       "nghttpd-h2c-apns": {"req_s": 1}}}
    after = {"rows": {"apns-h2c": {"ratio": 0.25, "ratio_spread": 0.01, "server_cpu_us_per_req": 64.0},
                      "fcm-h2c": {"ratio": 0.11, "ratio_spread": 0.01, "server_cpu_us_per_req": 88.0},
                      "gone": {"ratio": 1.0}}}
    rows = {r["row"]: r for r in targets.compare(before, after)}
    assert set(rows) == {"apns-h2c", "fcm-h2c"}
    a = rows["apns-h2c"]
    assert a["change"] == pytest.approx(0.25) and a["noise"] == pytest.approx(0.05) and a["beyond_noise"]
    assert a["cpu_change"] == pytest.approx(-0.2)
    f = rows["fcm-h2c"]                                   # +10% inside a ±20% scatter
    assert f["change"] == pytest.approx(0.1) and f["noise"] == pytest.approx(0.2) and not f["beyond_noise"]
    text = targets.format_compare(list(rows.values()))
    assert "(within noise)" in text and "+25.0%" in text


def test_compare_needs_separated_rounds_when_it_has_them():
    before = {"rows": {"r": {"ratio": 0.11, "ratio_spread": 0.03, "ratio_runs": [0.11, 0.10, 0.12, 0.05]}}}
    moved = {"rows": {"r": {"ratio": 0.17, "ratio_spread": 0.05, "ratio_runs": [0.20, 0.15, 0.10, 0.18, 0.17]}}}
    (r,) = targets.compare(before, moved)          # +55% on the medians, but the rounds overlap
    assert r["change"] == pytest.approx(0.17 / 0.11 - 1) and not r["beyond_noise"]
    clear = {"rows": {"r": {"ratio": 0.2, "ratio_spread": 0.01, "ratio_runs": [0.19, 0.2, 0.21]}}}
    assert targets.compare(before, clear)[0]["beyond_noise"]
    assert targets.separated([1, 2], [3]) and targets.separated([3], [1, 2]) and not targets.separated([1, 3], [2])
    assert not targets.separated([], [1])


def test_paired_ratios_and_spread():
    assert targets.paired_ratios([10, 0, 30], [100, 100, 100]) == [0.1, 0.3]
    assert targets.spread([0.1, 0.3, 0.2]) == pytest.approx(0.1) and targets.spread([0.5]) == 0.0
