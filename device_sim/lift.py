"""Per-arm outcomes with 95% intervals and each arm's lift over the holdout, from a cohorts.Tally.

The unit of analysis is the install: each metric is first a value per install (its fresh rate at
open, its wakes per day, ...), then an arm's estimate is the mean over its installs with a
Student-t interval, and a lift is the difference of two arms' means with a Welch interval (the arms
differ in size and spread). scipy.stats gives the t quantiles; numpy does the per-install arrays.
Both are computed from [n, mean, M2] per arm and metric, which pool exactly across processes
(`serve --workers N`: each worker summarises the installs it owns; the hub merges).

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


def _r(x: float) -> float:
    return round(float(x), 6)


def _point(x: float | None) -> dict[str, Any]:
    return {"estimate": None if x is None else _r(x), "ci95": [None, None]}


def _interval(n: int, mean: float, m2: float) -> dict[str, Any]:
    """Mean of n per-install values (M2 = sum of squared deviations) with its Student-t 95% interval."""
    if n == 0:
        return {**_point(None), "n": 0}
    if n < 2:
        return {**_point(mean), "n": n}
    sem = math.sqrt(m2 / (n - 1) / n)
    if sem == 0.0:
        return {"estimate": _r(mean), "ci95": [_r(mean), _r(mean)], "n": n}
    lo, hi = sps.t.interval(0.95, n - 1, loc=mean, scale=sem)
    return {"estimate": _r(mean), "ci95": [_r(lo), _r(hi)], "n": n}


def _lift(a: list[float], b: list[float]) -> dict[str, Any]:
    """a − b with Welch's 95% interval (unequal sizes and variances; Welch–Satterthwaite df)."""
    (na, ma, m2a), (nb, mb, m2b) = a, b
    if na == 0 or nb == 0:
        return _point(None)
    diff = ma - mb
    if na < 2 or nb < 2:
        return _point(diff)
    va, vb = m2a / (na - 1) / na, m2b / (nb - 1) / nb       # squared standard errors
    se2 = va + vb
    if se2 == 0.0:
        return {"estimate": _r(diff), "ci95": [_r(diff), _r(diff)]}
    df = se2 * se2 / (va * va / (na - 1) + vb * vb / (nb - 1))
    half = float(sps.t.ppf(0.975, df)) * math.sqrt(se2)
    return {"estimate": _r(diff), "ci95": [_r(diff - half), _r(diff + half)]}


def per_install(tally: Tally, members: np.ndarray, days: float) -> dict[str, np.ndarray]:
    """Each metric's value per install of one arm (installs where the metric is undefined left out)."""
    def col(key: str) -> np.ndarray:
        src = tally.counts[key] if key in tally.counts else tally.sums[key]
        arr = np.frombuffer(src, dtype=np.uint32 if key in tally.counts else np.float32)
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


def moments(tally: Tally, installs: int, days: float) -> dict[str, Any]:
    """The sufficient statistics of every arm and metric — [n, mean, M2] over the installs this
    process owns (`tally.shard`) — so several processes' answers pool exactly (merge_moments)."""
    exp = tally.experiment
    tally.cover(installs)
    arms_of = arm_indices(exp, installs)
    me, workers = tally.shard
    owned = np.arange(installs) % workers == me
    arms: dict[str, Any] = {}
    for k, name in enumerate(exp.names):
        members = np.flatnonzero((arms_of == k) & owned)
        v = per_install(tally, members, days)
        stats = {}
        for m in METRICS:
            x = v[m]
            mean = float(x.mean()) if len(x) else 0.0
            stats[m] = [int(len(x)), mean, float(((x - mean) ** 2).sum()) if len(x) else 0.0]
        arms[name] = {"installs": int(len(members)), "metrics": stats, "drops": dict(tally.drops[k])}
    return {"days": days, "sent_to_holdout": tally.sent_to_holdout, "arms": arms}


def merge_moments(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool disjoint sets of installs (cluster workers): Chan et al.'s pairwise update of n, mean, M2."""
    out: dict[str, Any] = {"days": max(p["days"] for p in parts),
                           "sent_to_holdout": sum(p["sent_to_holdout"] for p in parts), "arms": {}}
    for p in parts:
        for name, arm in p["arms"].items():
            acc = out["arms"].setdefault(name, {"installs": 0, "metrics": {}, "drops": {}})
            acc["installs"] += arm["installs"]
            for reason, n in arm["drops"].items():
                acc["drops"][reason] = acc["drops"].get(reason, 0) + n
            for m, (nb, mb, m2b) in arm["metrics"].items():
                na, ma, m2a = acc["metrics"].get(m, (0, 0.0, 0.0))
                n = na + nb
                if n == 0:
                    acc["metrics"][m] = [0, 0.0, 0.0]
                    continue
                delta = mb - ma
                acc["metrics"][m] = [n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n]
    return out


def summarize(experiment: dict[str, Any], mom: dict[str, Any]) -> dict[str, Any]:
    """The `experiment` JSON: the design (Experiment.describe), `arms.{arm}.{metric}` and
    `lift.{arm}.{metric}` (arm minus holdout), each `{"estimate": x, "ci95": [low, high]}`, plus
    installs and drops by reason per arm, and the moments it came from."""
    holdout = experiment["holdout"]
    arms = {name: {"installs": a["installs"], **{m: _interval(*a["metrics"][m]) for m in METRICS},
                   "drops_by_reason": dict(sorted(a["drops"].items()))}
            for name, a in mom["arms"].items()}
    base = mom["arms"][holdout]["metrics"]
    lift = {name: {m: _lift(a["metrics"][m], base[m]) for m in METRICS}
            for name, a in mom["arms"].items() if name != holdout}
    return {**experiment, "days": round(mom["days"], 6), "sent_to_holdout": mom["sent_to_holdout"],
            "arms": arms, "lift": lift, "moments": mom}


def outcomes(tally: Tally, installs: int, days: float) -> dict[str, Any]:
    return summarize(tally.experiment.describe(), moments(tally, installs, days))


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
