"""Latency percentiles by the nearest-rank rule.

The p-th percentile is the smallest sample such that at least p% of the samples are <= it. It is
always one of the measured values (no interpolation), so a p99 of 4,812 µs means a real request
took 4,812 µs and 99% took no longer.
"""
from __future__ import annotations

import math
from typing import Sequence

POINTS = (50.0, 90.0, 99.0)


def rank(n: int, p: float) -> int:
    """0-based index of the p-th percentile in n sorted samples."""
    if n <= 0:
        raise ValueError("no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0..100")
    # round first: p/100*n is e.g. 0.29*100 = 28.999999999999996 in floating point
    return max(0, math.ceil(round(p * n / 100, 9)) - 1)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    return sorted_values[rank(len(sorted_values), p)]


def summarize(values: Sequence[float], points: Sequence[float] = POINTS) -> dict[str, float]:
    """{"p50": .., "p90": .., "p99": .., "max": .., "count": n}; an empty dict for no samples."""
    if not values:
        return {}
    s = sorted(values)
    out = {f"p{p:g}": s[rank(len(s), p)] for p in points}
    out["max"] = s[-1]
    out["count"] = len(s)
    return out
