"""Per-arm outcomes with 95% intervals and each arm's lift over the holdout, from a cohorts.Tally.

The unit of analysis is the install: each metric is first a value per install (its fresh rate at
open, its wakes per day, ...), then an arm's estimate is the mean over its installs with a
Student-t interval, and a lift is the difference of two arms' means with a Welch interval (the arms
differ in size and spread). scipy.stats does the distributions; numpy does the per-install arrays.

Metrics (per install; "per day" divides by the observed device days):
  fresh_rate               fresh opens / opens             (installs with at least one open)
  mean_staleness_s         staleness at open, fresh = 0 s  (installs with at least one open)
  landing_readiness        visible pushes that found the app ready / visible pushes delivered
                                                           (installs with a visible push)
  wakes_per_install_day    background wakes (tasks started) per day        (every install)
  task_s_per_install_day   background task seconds per day                 (every install)
  fetches_per_install_day  make-ready fetches per day                      (every install)
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from .cohorts import Experiment, Tally

METRICS = ("fresh_rate", "mean_staleness_s", "landing_readiness", "wakes_per_install_day",
           "task_s_per_install_day", "fetches_per_install_day")
_M64 = np.uint64((1 << 64) - 1)


def arm_indices(experiment: Experiment, installs: int) -> np.ndarray:
    """Every install's arm index at once; the same numbers as `Experiment.arm_index` (splitmix64 in
    wrapping uint64 arithmetic), so a million installs take milliseconds, not a Python loop."""
    c = np.uint64(0x9E3779B97F4A7C15)
    m1, m2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    x = np.full(installs, c, dtype=np.uint64)
    parts = (np.full(installs, np.uint64(experiment.seed)), np.full(installs, np.uint64(0x5EED_C0407)),
             np.arange(installs, dtype=np.uint64))
    with np.errstate(over="ignore"):
        for p in parts:
            x ^= p
            x += c
            x = (x ^ (x >> np.uint64(30))) * m1
            x = (x ^ (x >> np.uint64(27))) * m2
            x ^= x >> np.uint64(31)
    u = (x >> np.uint64(11)).astype(np.float64) / 9007199254740992.0
    bounds = np.array(experiment._bounds[:-1], dtype=np.float64)
    return np.searchsorted(bounds, u, side="right").astype(np.int64)


def _interval(values: np.ndarray) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"estimate": None, "ci95": [None, None], "n": 0}
    mean = float(values.mean())
    if n < 2:
        return {"estimate": _r(mean), "ci95": [None, None], "n": n}
    sem = float(values.std(ddof=1)) / math.sqrt(n)
    if sem == 0.0:
        return {"estimate": _r(mean), "ci95": [_r(mean), _r(mean)], "n": n}
    lo, hi = sps.t.interval(0.95, n - 1, loc=mean, scale=sem)
    return {"estimate": _r(mean), "ci95": [_r(lo), _r(hi)], "n": n}


def _lift(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    if len(a) == 0 or len(b) == 0:
        return {"estimate": None, "ci95": [None, None]}
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return {"estimate": _r(diff), "ci95": [None, None]}
    if a.var(ddof=1) == 0.0 and b.var(ddof=1) == 0.0:
        return {"estimate": _r(diff), "ci95": [_r(diff), _r(diff)]}
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return {"estimate": _r(diff), "ci95": [_r(ci.low), _r(ci.high)]}


def _r(x: float) -> float:
    return round(float(x), 6)


def per_install(tally: Tally, members: np.ndarray, days: float) -> dict[str, np.ndarray]:
    """Each metric's value per install of one arm (installs where the metric is undefined left out)."""
    def col(key: str) -> np.ndarray:
        src = tally.counts[key] if key in tally.counts else tally.sums[key]
        arr = np.frombuffer(src, dtype=np.int64 if key in tally.counts else np.float64)
        return arr[members].astype(np.float64)
    opens, visible = col("opens"), col("visible")
    has_open, has_visible = opens > 0, visible > 0
    per_day = max(days, 1e-9)
    return {
        "fresh_rate": col("fresh_opens")[has_open] / opens[has_open],
        "mean_staleness_s": col("staleness_s")[has_open] / opens[has_open],
        "landing_readiness": col("ready_visible")[has_visible] / visible[has_visible],
        "wakes_per_install_day": col("wakes") / per_day,
        "task_s_per_install_day": col("task_s") / per_day,
        "fetches_per_install_day": col("fetches") / per_day,
    }


def outcomes(tally: Tally, installs: int, days: float) -> dict[str, Any]:
    """The `experiment` JSON: the design, `arms.{arm}.{metric}` and `lift.{arm}.{metric}` (arm minus
    holdout), each `{"estimate": x, "ci95": [low, high]}`, plus installs and drops per arm."""
    exp = tally.experiment
    installs = min(installs, len(tally.counts["opens"]))
    arms_of = arm_indices(exp, installs)
    values = []
    arms: dict[str, Any] = {}
    for k, name in enumerate(exp.names):
        members = np.flatnonzero(arms_of == k)
        v = per_install(tally, members, days)
        values.append(v)
        arms[name] = {"installs": int(len(members)), **{m: _interval(v[m]) for m in METRICS},
                      "drops_by_reason": dict(sorted(tally.drops[k].items()))}
    base = values[tally.holdout_index]
    lift = {name: {m: _lift(values[k][m], base[m]) for m in METRICS}
            for k, name in enumerate(exp.names) if k != tally.holdout_index}
    return {**exp.describe(), "days": round(days, 6), "sent_to_holdout": tally.sent_to_holdout,
            "arms": arms, "lift": lift}


def format_outcomes(doc: dict[str, Any]) -> str:
    """The text form `pushsim run` prints."""
    def iv(x: dict[str, Any]) -> str:
        lo, hi = x["ci95"]
        est = "-" if x["estimate"] is None else f"{x['estimate']:.4g}"
        return est if lo is None else f"{est} [{lo:.4g}, {hi:.4g}]"
    lines = [f"experiment {doc['name']}  mode {doc['mode']}  holdout {doc['holdout']}  "
             f"{doc['days']:.3g} device days  (95% intervals; unit: install)"]
    w = max(len(m) for m in METRICS)
    for arm, a in doc["arms"].items():
        drops = ", ".join(f"{k}={v}" for k, v in a["drops_by_reason"].items()) or "none"
        lines.append(f"  arm {arm}  ({a['installs']} installs; drops: {drops})")
        lines += [f"    {m:<{w}}  {iv(a[m])}" for m in METRICS]
    for arm, lf in doc["lift"].items():
        lines.append(f"  lift {arm} - {doc['holdout']}")
        lines += [f"    {m:<{w}}  {iv(lf[m])}" for m in METRICS]
    if doc.get("sent_to_holdout"):
        lines.append(f"  sent to holdout installs: {doc['sent_to_holdout']} (advertised holdout: the sender should skip them)")
    return "\n".join(lines)
