"""Issue 7's targets, checked against measured values, and the quick mode's before/after comparison.

Pure functions over plain dicts (the same dicts `--json` writes), so they are unit-tested without
running anything.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    what: str          # shown in the table
    key: str           # where the value is found in the results (see `value_of`)
    op: str            # ">=" or "<="
    bound: float
    unit: str = ""


# Ratios are the row's median req/s over its nghttpd row's median req/s, in the same run.
RATIO_TARGETS = {"apns-h2c": 0.25, "apns-tls": 0.25, "fcm-h2c": 0.15, "fcm-tls": 0.15, "fcm-h1": 0.15}
HALF_LOAD_P99_MS = 5.0
MEMORY_MIB = 1024.0
READY_S = 15.0


def targets_for(rows: list[str], memory: bool, half_load: bool = True) -> list[Target]:
    out = [Target(f"{r} / nghttpd (req/s ratio)", f"ratio:{r}", ">=", RATIO_TARGETS[r])
           for r in rows if r in RATIO_TARGETS]
    if half_load:
        out += [Target(f"{r} p99 at half load", f"half_p99_ms:{r}", "<=", HALF_LOAD_P99_MS, " ms")
                for r in rows if r in RATIO_TARGETS]
    if memory:
        out += [Target("1M installs: pushsim serve RSS", "memory:serve_rss_mib", "<=", MEMORY_MIB, " MiB"),
                Target("1M installs: pushsim serve ready", "memory:serve_ready_s", "<=", READY_S, " s"),
                Target("1M installs: devsim_memory RSS", "memory:devsim_rss_mib", "<=", MEMORY_MIB, " MiB"),
                Target("1M installs: devsim_memory ready", "memory:devsim_ready_s", "<=", READY_S, " s")]
    return out


def value_of(results: dict, key: str) -> float | None:
    kind, name = key.split(":", 1)
    if kind == "ratio":
        return (results.get("rows", {}).get(name) or {}).get("ratio")
    if kind == "half_p99_ms":
        half = (results.get("rows", {}).get(name) or {}).get("half_load") or {}
        p99 = (half.get("latency_us") or {}).get("p99")
        return None if p99 is None else p99 / 1000
    if kind == "memory":
        return (results.get("memory") or {}).get(name)
    raise KeyError(key)


def judge(t: Target, value: float | None) -> dict:
    """measured, target, met, and how far it is: a factor for ratios, a difference otherwise."""
    row = {"target": t.what, "op": t.op, "bound": t.bound, "unit": t.unit, "measured": value}
    if value is None:
        return {**row, "met": False, "distance": "not measured"}
    met = value >= t.bound if t.op == ">=" else value <= t.bound
    if t.key.startswith("ratio:"):
        factor = t.bound / value if value else float("inf")
        distance = f"margin x{1 / factor:.2f}" if met else f"needs x{factor:.2f}"
    else:
        diff = value - t.bound
        distance = (f"margin {abs(diff):.3g}{t.unit}" if met
                    else f"{'short' if t.op == '>=' else 'over'} by {abs(diff):.3g}{t.unit}")
    return {**row, "met": met, "distance": distance}


def evaluate(results: dict, targets: list[Target]) -> list[dict]:
    return [judge(t, value_of(results, t.key)) for t in targets]


def format_table(judged: list[dict]) -> str:
    lines = [f"{'target':<40} {'measured':>12} {'goal':>14}  result"]
    for j in judged:
        m = j["measured"]
        ms = "-" if m is None else (f"{m:.3f}" if j["unit"] == "" else f"{m:.2f}{j['unit']}")
        goal = f"{j['op']} {j['bound']:g}{j['unit']}"
        lines.append(f"{j['target']:<40} {ms:>12} {goal:>14}  {'MET' if j['met'] else 'NOT MET'} ({j['distance']})")
    return "\n".join(lines)


# quick mode: before/after ------------------------------------------------------------------------
def paired_ratios(row_runs: list[float], ref_runs: list[float]) -> list[float]:
    """Round i of a row over round i of its reference: neighbours in time share the machine's load."""
    return [a / b for a, b in zip(row_runs, ref_runs) if a and b]


def spread(values: list[float]) -> float:
    """Half the range of the per-round values: how much one round's ratio moved around the median."""
    return (max(values) - min(values)) / 2 if len(values) > 1 else 0.0


def separated(a: list[float], b: list[float]) -> bool:
    """Every round of one run above every round of the other. With 5 rounds each that happens by
    chance with probability 2/252 when nothing changed; a shift of the medians alone does not count,
    because on a busy machine medians of 5 rounds move by tens of percent between identical runs."""
    return bool(a and b) and (min(a) > max(b) or max(a) < min(b))


def compare(before: dict, after: dict) -> list[dict]:
    """Per row in both results: ratio before, after, relative change, the noise (the larger relative
    half-range of the two runs' per-round ratios) and whether the change is beyond it: the per-round
    ratios of the two runs do not overlap (see `separated`; without them, |change| > noise)."""
    out = []
    for name, a in after.get("rows", {}).items():
        b = before.get("rows", {}).get(name)
        if not b or a.get("ratio") is None or b.get("ratio") is None:
            continue
        change = a["ratio"] / b["ratio"] - 1
        noise = max(b.get("ratio_spread", 0.0) / b["ratio"], a.get("ratio_spread", 0.0) / a["ratio"])
        cpu_b, cpu_a = b.get("server_cpu_us_per_req"), a.get("server_cpu_us_per_req")
        ra, rb = a.get("ratio_runs") or [], b.get("ratio_runs") or []
        beyond = separated(ra, rb) if ra and rb else abs(change) > noise
        out.append({"row": name, "before": b["ratio"], "after": a["ratio"], "change": change,
                    "noise": noise, "beyond_noise": beyond,
                    "cpu_us_before": cpu_b, "cpu_us_after": cpu_a,
                    "cpu_change": (cpu_a / cpu_b - 1) if cpu_a and cpu_b else None})
    return out


def format_compare(rows: list[dict]) -> str:
    lines = [f"{'row':<12} {'ratio before':>12} {'after':>8} {'change':>8} {'noise ±':>8}  "
             f"{'server µs/req before → after':>30}"]
    for r in rows:
        cpu = (f"{r['cpu_us_before']:.1f} → {r['cpu_us_after']:.1f} ({r['cpu_change']:+.0%})"
               if r["cpu_change"] is not None else "-")
        verdict = "" if r["beyond_noise"] else "  (within noise)"
        lines.append(f"{r['row']:<12} {r['before']:>12.4f} {r['after']:>8.4f} {r['change']:>+8.1%} "
                     f"{r['noise']:>8.1%}  {cpu:>30}{verdict}")
    return "\n".join(lines)


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
