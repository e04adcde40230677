"""benchmarks.latency: nearest-rank percentiles agree with the definition on any sample."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from benchmarks.latency import percentile, rank, summarize

samples = st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=300)
points = st.one_of(st.sampled_from([0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]),
                   st.floats(min_value=0, max_value=100, allow_nan=False))


@given(samples, points)
def test_nearest_rank_matches_the_definition(values: list[int], p: float):
    """The smallest sample with at least p% of the samples <= it (the sorted-list reference)."""
    s = sorted(values)
    got = percentile(s, p)
    need = p / 100 * len(s)
    reference = next(v for v in s if sum(1 for x in s if x <= v) >= need - 1e-9)
    assert got == reference
    assert sum(1 for x in s if x <= got) >= need - 1e-9
    assert sum(1 for x in s if x < got) < max(need, 1e-9) or got == s[0]


@given(samples)
def test_summary_is_ordered_and_drawn_from_the_samples(values: list[int]):
    out = summarize(values)
    assert out["count"] == len(values) and out["max"] == max(values)
    assert min(values) <= out["p50"] <= out["p90"] <= out["p99"] <= out["max"]
    assert {out["p50"], out["p90"], out["p99"]} <= set(values)


def test_small_cases():
    assert summarize([]) == {}
    assert summarize([7]) == {"p50": 7, "p90": 7, "p99": 7, "max": 7, "count": 1}
    s = list(range(1, 101))                       # 1..100: the p-th percentile is p
    assert [percentile(s, p) for p in (1, 50, 90, 99, 100)] == [1, 50, 90, 99, 100]
    assert percentile(s, 0) == 1
    assert rank(100, 29) == 28                    # 0.29 * 100 is 28.999999999999996 in floats
    assert math.isclose(percentile([1.5, 2.5], 50), 1.5)
    with pytest.raises(ValueError):
        rank(0, 50)
    with pytest.raises(ValueError):
        rank(10, 101)
