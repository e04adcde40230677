"""Pure functions that make N workers' control-API answers look like one server's.

The control-API table (pushsim/control.py `ROUTES`) names a merged route's function here: `journal`,
`fleet_stats`, `metrics`. Each takes the workers' `Answers` and returns (content type, body); the
`merge_*` functions under them do the work on parsed data.
"""
from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

JSON = "application/json"


@dataclass(frozen=True)
class Answers:
    """Every worker's 200 answer to the same GET, in worker order."""
    bodies: list[bytes]
    content_type: str              # worker 0's
    query: Mapping[str, str]       # the request's (the workers have validated it)
    workers: int
    asked_at: float                # wall time the hub started asking
    stats: dict[str, Any] | None   # the hub's consistent /stats, for a merge in NEEDS_STATS


NEEDS_STATS = {"fleet_stats"}


def journal(a: Answers) -> tuple[str, bytes]:
    if a.query.get("format") == "jsonl":
        return "application/x-ndjson", b"".join(merge_jsonl([b.splitlines(keepends=True) for b in a.bodies]))
    pages = [orjson.loads(b) for b in a.bodies]
    since = int(a.query.get("since") or 0)
    limit = int(a.query.get("limit") or 100)
    return JSON, orjson.dumps(merge_journal(pages, since, limit, a.workers, a.asked_at))


def journal_count(a: Answers) -> tuple[str, bytes]:
    return JSON, orjson.dumps({"count": sum(int(orjson.loads(b)["count"]) for b in a.bodies)})


def fleet_stats(a: Answers) -> tuple[str, bytes]:
    assert a.stats is not None
    funnel = {k: a.stats[k] for k in ("accepted", "rejected", "delivered", "dropped", "pending")}
    return JSON, orjson.dumps(merge_fleet_stats([orjson.loads(b) for b in a.bodies], funnel),
                              option=orjson.OPT_NON_STR_KEYS)


def experiment(a: Answers) -> tuple[str, bytes]:
    """Each worker's /experiment covers the installs it owns: pool their moments, summarise once."""
    return JSON, orjson.dumps({"experiment": _pooled_experiment([orjson.loads(b)["experiment"] for b in a.bodies])})


def _pooled_experiment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    from device_sim.lift import merge_moments, summarize

    design = {k: v for k, v in docs[0].items()
              if k in ("name", "mode", "holdout", "seed", "withhold", "weights", "arm_weights")}
    return summarize(design, merge_moments([d["moments"] for d in docs]))


def metrics(a: Answers) -> tuple[str, bytes]:
    return a.content_type, merge_metrics([b.decode() for b in a.bodies]).encode()


# /journal ----------------------------------------------------------------------------------------
def id_floor(t: float, workers: int) -> int:
    """The smallest journal id any worker can give an entry that arrives at wall time `t` or later."""
    return int(t * 1_000_000) * workers


def merge_journal(pages: list[dict[str, Any]], since: int, limit: int, workers: int,
                  asked_at: float) -> dict[str, Any]:
    """Each worker's `/journal` page for the same `since` → one page.

    Worker journal ids are time-ordered and unique across workers (microseconds × N + worker, see
    worker.WorkerRole.journal_id). The page is the first `limit` entries by id. A full page's
    `next_since` is its last id + 1. A short page returned everything up to the moment each worker
    answered, and anything later gets an id of at least `id_floor(asked_at)`: that is the cursor (an
    entry that arrived while the hub was asking may show again on the next page; none is skipped).
    """
    entries = [{**e, "worker": e["id"] % workers} for page in pages for e in page["entries"]]
    for e in entries:
        if e.get("seq") == -1:      # accepted here, owned (and numbered) by another worker
            del e["seq"]
    entries.sort(key=lambda e: e["id"])
    page = entries[:limit]
    nxt = page[-1]["id"] + 1 if len(page) >= limit else max(since, id_floor(asked_at, workers))
    return {"entries": page, "next_since": nxt}


def merge_jsonl(exports: list[list[bytes]], header_extra: Mapping[str, Any] | None = None) -> list[bytes]:
    """Exports (header, state, accepted, and the report's request, goaway and install lines) → one: state
    and notifications by time, notifications renumbered, each request's `seq` following its notification.
    `header_extra` goes into the merged header (default: `{"workers": len(exports)}`)."""
    header: dict[str, Any] | None = None
    fleet_parts: list[dict[str, Any]] = []
    states: list[tuple[float, dict[str, Any]]] = []
    accepted: list[tuple[float, int, dict[str, Any]]] = []
    requests: list[tuple[int, dict[str, Any]]] = []
    installs: dict[Any, dict[str, Any]] = {}
    goaways: list[dict[str, Any]] = []
    total, complete = 0, True
    experiments: list[dict[str, Any]] = []
    for w, lines in enumerate(exports):
        for raw in lines:
            if not raw.strip():
                continue
            rec = orjson.loads(raw)
            kind = rec.get("type")
            if kind == "header":
                header = header or rec
                total += int(rec.get("accepted", 0))
                complete = complete and bool(rec.get("complete", True))
                if isinstance(rec.get("experiment_outcomes"), dict):
                    experiments.append(rec["experiment_outcomes"])
                if isinstance(rec.get("metrics"), dict):
                    fleet_parts.append(rec["metrics"])
            elif kind == "state":
                states.append((rec["t"], rec))
            elif kind == "request":
                requests.append((w, rec))
            elif kind == "install":
                installs[rec.get("install")] = rec     # an install lives on its owner worker only
            elif kind == "goaway":
                goaways.append(rec)                    # connection ids are unique cluster-wide
            else:
                accepted.append((rec.get("t", 0.0), w, rec))
    out: list[bytes] = []
    if header is not None:
        # Each worker's outcome digest covers its own installs only; there is no cluster-wide one.
        merged = {**header, "accepted": total, "complete": complete, "digest": None,
                  **(header_extra if header_extra is not None else {"workers": len(exports)})}
        if fleet_parts and all(isinstance(p.get("funnel"), dict) for p in fleet_parts):
            # each part counts its own installs' app metrics: the report's fleet metrics are their sum
            merged["metrics"] = merge_fleet_stats(fleet_parts, merge_funnels([p["funnel"] for p in fleet_parts]))
        if experiments:
            merged["experiment_outcomes"] = _pooled_experiment(experiments)
        out.append(orjson.dumps(merged) + b"\n")
    accepted.sort(key=lambda x: x[0])
    times = [rec.get("at", t) for t, _, rec in accepted]   # device time, like a state change's t
    seen_states: set[bytes] = set()
    for t, rec in sorted(states, key=lambda x: x[0]):
        key = orjson.dumps({k: v for k, v in rec.items() if k not in ("t", "pos")})
        if rec.get("set", {}).get("uninstall") and key in seen_states:
            continue   # an uninstall reaches every worker; keep it once
        seen_states.add(key)
        # `pos`: how many notifications were accepted before the change, now counted cluster-wide.
        out.append(orjson.dumps({**rec, "pos": bisect.bisect_left(times, t)}) + b"\n")
    renumber: dict[tuple[int, Any], int] = {}
    for seq, (_, w, rec) in enumerate(accepted):
        renumber[(w, rec.get("seq"))] = seq
        out.append(orjson.dumps({**rec, "seq": seq}) + b"\n")
    for w, rec in sorted(requests, key=lambda x: x[1].get("id", 0)):   # ids are unique cluster-wide
        if "seq" in rec:
            seq = renumber.get((w, rec["seq"]))       # None: accepted and numbered by another worker
            rec = {k: v for k, v in rec.items() if k != "seq"} if seq is None else {**rec, "seq": seq}
        out.append(orjson.dumps(rec) + b"\n")
    for rec in sorted(goaways, key=lambda r: r.get("t", 0.0)):
        out.append(orjson.dumps(rec) + b"\n")
    for rec in installs.values():
        out.append(orjson.dumps(rec) + b"\n")
    return out


# /metrics ----------------------------------------------------------------------------------------
# Not summed across workers (the largest is the cluster's): every worker holds the whole fleet;
# per-process limits and start times are not amounts. CPU seconds and memory do add up.
NOT_SUMMED = {"pushsim_devices", "process_max_fds", "process_start_time_seconds"}


def merge_metrics(texts: list[str]) -> str:
    """Prometheus text from each worker → one, each series summed (NOT_SUMMED: the largest).

    Samples are grouped under their family (a counter `x` has samples `x_total`, a histogram
    `x_bucket`, `x_sum`, `x_count`), so a family a later worker is the first to fill still comes out
    under its own HELP/TYPE lines, as promtool requires."""
    families: dict[str, list[str]] = {}          # family → HELP/TYPE lines, in first-seen order
    values: dict[str, dict[str, float]] = {}     # family → series (name+labels) → value
    for text in texts:
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    meta = families.setdefault(parts[2], [])
                    if line not in meta:
                        meta.append(line)
                    values.setdefault(parts[2], {})
                continue
            series, _, raw = line.rpartition(" ")
            name = series.split("{", 1)[0]
            try:
                v = float(raw)
            except ValueError:
                continue
            family = _family_of(name, families)
            fam = values.setdefault(family, {})
            families.setdefault(family, [])
            if name in NOT_SUMMED:
                fam[series] = max(fam.get(series, v), v)
            else:
                fam[series] = fam.get(series, 0.0) + v
    out: list[str] = []
    for name, meta in families.items():
        out.extend(meta)
        for series, v in values.get(name, {}).items():
            out.append(f"{series} {int(v) if v == int(v) else v}")
    return "\n".join(out) + "\n"


_SAMPLE_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def _family_of(sample: str, families: dict[str, list[str]]) -> str:
    if sample in families:
        return sample
    for suffix in _SAMPLE_SUFFIXES:
        if sample.endswith(suffix) and sample[: -len(suffix)] in families:
            return sample[: -len(suffix)]
    return sample


# /stats -------------------------------------------------------------------------------------------
FUNNEL_COUNTS = ("accepted", "delivered")
FUNNEL_REASONS = ("rejected", "dropped", "pending")


def merge_funnels(funnels: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Ledger funnels (`/stats`: accepted, delivered, and rejected / dropped / pending by reason) →
    their sum. Each part balances (accepted = delivered + dropped + pending), so the sum does too."""
    out: dict[str, Any] = {"accepted": 0, "rejected": {}, "delivered": 0, "dropped": {}, "pending": {}}
    for f in funnels:
        for key in FUNNEL_COUNTS:
            out[key] += int(f.get(key) or 0)
        for key in FUNNEL_REASONS:
            acc = out[key]
            for reason, n in (f.get(key) or {}).items():
                acc[reason] = acc.get(reason, 0) + int(n)
    return out


def unbalanced(funnel: Mapping[str, Any]) -> int:
    """accepted − (delivered + dropped + pending): 0 when the accounting invariant holds."""
    return int(funnel.get("accepted") or 0) - int(funnel.get("delivered") or 0) - sum(
        int(n) for key in ("dropped", "pending") for n in (funnel.get(key) or {}).values())


# /stats/fleet ------------------------------------------------------------------------------------
def _sum(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _sum(a.get(k), b.get(k)) for k in {**a, **b}}
    if a is None:
        return b
    if b is None or isinstance(a, (str, bool)):
        return a
    return a + b


def _ratio(num: float, den: float, digits: int = 6) -> float | None:
    return round(num / den, digits) if den else None


def merge_fleet_stats(parts: list[dict[str, Any]], funnel: dict[str, Any]) -> dict[str, Any]:
    """Counters are summed; rates and means are recomputed from the sums; each duration percentile is
    the count-weighted mean of the workers' percentiles (an approximation: the workers keep their
    samples). `funnel` is the consistent cluster-wide /stats."""
    out: dict[str, Any] = {}
    for p in parts:
        out = _sum(out, {k: v for k, v in p.items() if k not in ("task_duration", "clock")})
    out["funnel"] = funnel
    out["receipt_rate"] = _ratio(funnel["delivered"], funnel["accepted"])
    bg = out.get("background")
    if isinstance(bg, dict):
        done = bg.get("succeeded", 0) + bg.get("failed", 0) + bg.get("killed", 0)
        bg["success_rate"] = _ratio(bg.get("succeeded", 0), done)
    fr = out.get("freshness")
    if isinstance(fr, dict):
        fr["fresh_rate"] = _ratio(fr.get("fresh", 0), fr.get("opens", 0))
        stale_s = sum((p["freshness"].get("mean_staleness") or 0.0) * (p["freshness"]["opens"] - p["freshness"]["fresh"])
                      for p in parts if isinstance(p.get("freshness"), dict))
        fr["mean_staleness"] = round(stale_s / (fr["opens"] - fr["fresh"]), 3) if fr.get("opens", 0) - fr.get("fresh", 0) else 0.0
    durs = [p["task_duration"] for p in parts if isinstance(p.get("task_duration"), dict)]
    count = sum(d.get("count", 0) for d in durs)
    td: dict[str, Any] = {"count": count}
    for key, digits in (("mean", 4), ("p50", 4), ("p90", 4), ("p99", 4)):
        weighted = [(d[key], d["count"]) for d in durs if d.get(key) is not None and d.get("count")]
        td[key] = round(sum(v * c for v, c in weighted) / count, digits) if weighted and count else None
    out["task_duration"] = td
    if parts and "clock" in parts[0]:
        out["clock"] = parts[0]["clock"]
    if parts and "active_installs" in parts[0]:
        out["active_installs"] = sum(p.get("active_installs", 0) for p in parts)
    states = [p["states"] for p in parts if isinstance(p.get("states"), dict)]
    if states and isinstance(out.get("states"), dict):     # the census: counts add up, exact only if every part is
        out["states"]["exact"] = all(bool(s.get("exact")) for s in states)
    return out
