"""One self-contained HTML page with plots, for `pushsim run --html`, `pushsim replay --html` and
`pushsim report --format html`.

Fed by what all three have: the journal export's records (header, accepted notifications with the
ledger's outcome, requests, installs) and the report built from them; optionally the steps of one
traced notification and the live run's response latencies. The plots are SVG drawn here, in Python,
and the page carries a Content-Security-Policy that forbids every fetch, so it opens offline and
cannot make a request even if a value in it tried to. Each plot is an `<svg data-plot=NAME
data-points=N>`: N counts the values it shows, so a test (or a reader) can tell an empty plot.

Memory: the binned series are fixed-size (BINS buckets); per-install budget counts are
BINS × installs-with-background-traffic, the same order as the records already in memory.
"""
from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from . import build_report
from .render import experiment_html

BINS = 96                      # time buckets per series: a day in 15-minute steps
PALETTE = ("#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 760, 250, 56, 16, 26, 34
# Content age at an install's last open: bucket upper bounds (seconds) and their labels.
AGE_BUCKETS = ((60, "< 1 min"), (300, "1–5 min"), (900, "5–15 min"), (3600, "15–60 min"),
               (6 * 3600, "1–6 h"), (24 * 3600, "6–24 h"), (math.inf, "> 24 h"))
COALESCING = frozenset({"coalesced", "superseded", "collapsed", "collapse-key-limit"})

esc = html.escape


@dataclass(slots=True)
class Plot:
    name: str
    title: str
    svg: str
    points: int
    note: str = ""


@dataclass(slots=True)
class PageInputs:
    """What the page is made of. `records`: journal-export dicts; the rest is optional."""
    title: str
    records: list[dict[str, Any]]
    facts: list[tuple[str, str]] = field(default_factory=list)       # shown at the top, in order
    report: dict[str, Any] | None = None
    trace_seq: int | None = None
    trace_steps: list[dict[str, Any]] | None = None                  # replay's transitions of trace_seq
    response_latencies_ms: Sequence[float] | None = None


# ---------------------------------------------------------------------------------------------------
# small SVG pieces

def _nice_ceiling(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag:
            return m * mag
    return 10 * mag


def _num(v: float) -> str:
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:,.2f}" if abs(v) < 10 else f"{v:,.1f}"


def _time_unit(span: float) -> tuple[float, str]:
    if span <= 2 * 3600:
        return (60.0, "min") if span > 120 else (1.0, "s")
    return (3600.0, "h") if span <= 4 * 86400 else (86400.0, "d")


def _svg_open(name: str, points: int, height: int = H, title: str = "") -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' data-plot='{esc(name)}' data-points='{points}' "
            f"viewBox='0 0 {W} {height}' width='{W}' height='{height}' role='img' aria-label='{esc(title)}'>")


def _legend(names: Sequence[str], y: int) -> str:
    out, x = [], PAD_L
    for i, n in enumerate(names):
        out.append(f"<rect x='{x}' y='{y - 9}' width='10' height='10' fill='{PALETTE[i % len(PALETTE)]}'/>"
                   f"<text x='{x + 14}' y='{y}' class='lg'>{esc(n)}</text>")
        x += 24 + 7 * len(n)
    return "".join(out)


def line_chart(name: str, title: str, x0: float, x1: float, series: dict[str, list[float]],
               x_unit: tuple[float, str], y_label: str, ref: tuple[str, float] | None = None) -> Plot:
    """Series of equal length over [x0, x1] (one value per bucket), drawn as polylines."""
    n = max((len(v) for v in series.values()), default=0)
    points = sum(1 for v in series.values() for y in v if y)
    top = _nice_ceiling(max([y for v in series.values() for y in v] + [ref[1] if ref else 0.0] + [0.0]))
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    sx = (lambda i: PAD_L + iw * (i + 0.5) / n) if n else (lambda i: PAD_L)
    sy = lambda y: PAD_T + ih * (1 - y / top)    # noqa: E731
    parts = [_svg_open(name, points, title=title)]
    for k in range(5):                            # y grid and ticks
        y = top * k / 4
        parts.append(f"<line x1='{PAD_L}' x2='{W - PAD_R}' y1='{sy(y):.1f}' y2='{sy(y):.1f}' class='grid'/>"
                     f"<text x='{PAD_L - 4}' y='{sy(y) + 4:.1f}' class='yt'>{_num(y)}</text>")
    div, unit = x_unit
    for k in range(7):                            # x ticks: device time relative to the start
        x = x0 + (x1 - x0) * k / 6
        px = PAD_L + iw * k / 6
        parts.append(f"<text x='{px:.1f}' y='{H - PAD_B + 14}' class='xt'>{_num(round((x - x0) / div, 2))}</text>")
    parts.append(f"<text x='{W - PAD_R}' y='{H - 4}' class='xt' text-anchor='end'>device time, {unit} from start"
                 f"</text><text x='4' y='12' class='yl'>{esc(y_label)}</text>")
    for i, (label, vals) in enumerate(series.items()):
        pts = " ".join(f"{sx(j):.1f},{sy(v):.1f}" for j, v in enumerate(vals))
        parts.append(f"<polyline fill='none' stroke='{PALETTE[i % len(PALETTE)]}' stroke-width='1.6' "
                     f"points='{pts}'><title>{esc(label)}</title></polyline>")
    if ref:
        parts.append(f"<line x1='{PAD_L}' x2='{W - PAD_R}' y1='{sy(ref[1]):.1f}' y2='{sy(ref[1]):.1f}' "
                     f"class='ref'/><text x='{W - PAD_R}' y='{sy(ref[1]) - 3:.1f}' class='xt' "
                     f"text-anchor='end'>{esc(ref[0])}</text>")
    parts.append(_legend(list(series), H - 4))
    parts.append("</svg>")
    return Plot(name, title, "".join(parts), points)


def bar_chart(name: str, title: str, bars: list[tuple[str, float, int]], unit: str = "",
              zero_is_data: bool = False) -> Plot:
    """Horizontal bars: (label, value, colour index). Points = the non-zero bars, or every bar when
    a zero is a measurement (a delivery delay of 0 s), not an empty bucket."""
    row = 20
    height = PAD_T + row * max(1, len(bars)) + 20
    top = _nice_ceiling(max([v for _, v, _ in bars] + [0.0]))
    label_w = 230
    iw = W - label_w - PAD_R - 70
    points = len(bars) if zero_is_data else sum(1 for _, v, _ in bars if v)
    parts = [_svg_open(name, points, height, title)]
    for i, (label, v, c) in enumerate(bars):
        y = PAD_T + i * row
        bw = iw * v / top if top else 0
        parts.append(f"<text x='{label_w - 6}' y='{y + 13}' class='yt'>{esc(label)}</text>"
                     f"<rect x='{label_w}' y='{y + 2}' width='{bw:.1f}' height='{row - 6}' "
                     f"fill='{PALETTE[c % len(PALETTE)]}'><title>{esc(label)}: {_num(v)}{esc(unit)}</title></rect>"
                     f"<text x='{label_w + bw + 4:.1f}' y='{y + 13}' class='lg'>{_num(v)}{esc(unit)}</text>")
    if not bars:
        parts.append(f"<text x='{W / 2}' y='{PAD_T + 14}' class='xt'>nothing to show</text>")
    parts.append("</svg>")
    return Plot(name, title, "".join(parts), points)


# ---------------------------------------------------------------------------------------------------
# the data

MAX_TIME = 1e13     # device seconds (~year 318,000): beyond it a value is not a time, and spans would overflow


def _f(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > MAX_TIME:
        return None
    return float(v)


def _i(d: dict[str, Any], key: str) -> int | None:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class Sorted:
    """The records sorted by type; a record without the fields the plots need is left out (an
    edited or truncated export must still give a page)."""

    def __init__(self, records: Iterable[Any]) -> None:
        self.header: dict[str, Any] = {}
        self.accepted: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.installs: list[dict[str, Any]] = []
        for r in records:
            if not isinstance(r, dict):
                continue
            kind = r.get("type")
            if kind == "header":
                self.header = r
            elif kind == "accepted" and _f(r, "at") is not None and _i(r, "seq") is not None \
                    and _i(r, "install") is not None:
                self.accepted.append(r)
            elif kind == "request" and _f(r, "at") is not None:
                self.requests.append(r)
            elif kind == "install" and _i(r, "install") is not None:
                self.installs.append(r)
        times = [_f(a, "at") for a in self.accepted] + [_f(r, "at") for r in self.requests]
        times += [_f(a, "settled_at") for a in self.accepted]
        ts = [t for t in times if t is not None]
        now = _f(self.header, "now")
        if now is not None:
            ts.append(now)
        self.t0 = min(ts) if ts else 0.0
        self.t1 = max(ts) if ts else 1.0
        if self.t1 <= self.t0:
            self.t1 = self.t0 + 1.0

    def bin_of(self, t: float) -> int:
        return min(BINS - 1, max(0, int((t - self.t0) / (self.t1 - self.t0) * BINS)))


def traffic_plot(s: Sorted) -> Plot:
    acc, dlv, drp, rej = ([0.0] * BINS for _ in range(4))
    for a in s.accepted:
        acc[s.bin_of(float(a["at"]))] += 1
        t = _f(a, "settled_at")
        if t is not None:
            if a.get("outcome") == "delivered":
                dlv[s.bin_of(t)] += 1
            elif a.get("outcome") == "dropped":
                drp[s.bin_of(t)] += 1
    for r in s.requests:
        st = r.get("status")
        if isinstance(st, int) and st >= 300:
            rej[s.bin_of(float(r["at"]))] += 1
    width = (s.t1 - s.t0) / BINS
    series = {"accepted (sends)": acc, "delivered": dlv, "dropped": drp}
    if any(rej):
        series["rejected"] = rej
    return line_chart("traffic", "Sends vs deliveries over device time", s.t0, s.t1, series,
                      _time_unit(s.t1 - s.t0), f"per {_num(round(width / 60, 1))} min")


def reasons_plot(s: Sorted) -> Plot:
    dropped: Counter[str] = Counter()
    pending: Counter[str] = Counter()
    for a in s.accepted:
        why = a.get("outcome_reason") or a.get("drop_reason") or "unknown"
        if a.get("outcome") == "dropped":
            dropped[str(why)] += 1
        elif a.get("outcome") == "pending":
            pending[str(why)] += 1
    bars = [(f"dropped: {k}", float(v), 2) for k, v in dropped.most_common()]
    bars += [(f"pending: {k}", float(v), 3) for k, v in pending.most_common()]
    return bar_chart("reasons", "Drop and pending reasons", bars)


def budget_plot(s: Sorted) -> Plot:
    """Background wakes per iOS install per hour of device time (what the budget is spent on), in
    buckets of at least an hour, so a rate compares with `budget_per_hour`."""
    span = s.t1 - s.t0
    nb = max(1, min(BINS, int(span // 3600)))
    width = span / nb
    per: dict[int, Counter[int]] = defaultdict(Counter)       # bucket → install → background wakes
    for a in s.accepted:
        t = _f(a, "settled_at")
        if a.get("outcome") == "delivered" and a.get("push_type") == "background" and t is not None:
            per[min(nb - 1, max(0, int((t - s.t0) / width)))][int(a.get("install", -1))] += 1
    hours = width / 3600.0
    mean, peak = [0.0] * nb, [0.0] * nb
    for b, counts in per.items():
        peak[b] = round(max(counts.values()) / hours, 3)
        mean[b] = round(sum(counts.values()) / len(counts) / hours, 3)
    params = s.header.get("params") if isinstance(s.header.get("params"), dict) else {}
    ios = params.get("ios") if isinstance(params, dict) and isinstance(params.get("ios"), dict) else {}
    rate = ios.get("budget_per_hour") if isinstance(ios, dict) else None
    ref = (f"budget {rate}/h", float(rate)) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else None
    plot = line_chart("budget", "Per-install background budget use over device time", s.t0, s.t1,
                      {"mean per woken install": mean, "busiest install": peak}, _time_unit(span),
                      f"background wakes per hour (buckets of {_num(round(hours, 2))} h)", ref)
    if not per:
        plot.note = "no background push was delivered"
    return plot


def freshness_plot(s: Sorted) -> Plot:
    """Age of the newest delivered background content at each install's last open."""
    last_delivery: dict[int, list[float]] = defaultdict(list)
    for a in s.accepted:
        t = _f(a, "settled_at")
        if a.get("outcome") == "delivered" and t is not None and a.get("push_type") in ("background", "data"):
            last_delivery[int(a.get("install", -1))].append(t)
    counts = Counter()
    for inst in s.installs:
        opened = _f(inst, "opened_at")
        if opened is None:
            continue
        before = [t for t in last_delivery.get(int(inst.get("install", -1)), ()) if t <= opened]
        if not before:
            counts["no content before the open"] += 1
            continue
        age = opened - max(before)
        counts[next(label for bound, label in AGE_BUCKETS if age < bound)] += 1
    order = [label for _, label in AGE_BUCKETS] + ["no content before the open"]
    bars = [(label, float(counts[label]), 1 if i < 3 else 3 if i < 7 else 2) for i, label in enumerate(order)]
    plot = bar_chart("freshness", "Freshness at open: content age at each install's last open", bars, " installs")
    metrics = s.header.get("metrics") if isinstance(s.header.get("metrics"), dict) else {}
    fresh = metrics.get("freshness") if isinstance(metrics, dict) else None
    if isinstance(fresh, dict) and fresh.get("opens"):
        plot.note = (f"fleet, every open: {fresh.get('fresh')} of {fresh.get('opens')} opens found fresh content "
                     f"(rate {fresh.get('fresh_rate')}), mean staleness {fresh.get('mean_staleness')} s")
    return plot


def _pcts(values: list[float]) -> list[tuple[str, float]]:
    v = sorted(values)
    if not v:
        return []
    at = lambda q: v[min(len(v) - 1, int(q * len(v)))]   # noqa: E731
    return [("p50", at(0.5)), ("p90", at(0.9)), ("p99", at(0.99)), ("max", v[-1])]


def latency_plot(s: Sorted, response_ms: Sequence[float] | None) -> Plot:
    delays: dict[str, list[float]] = defaultdict(list)
    for a in s.accepted:
        t = _f(a, "settled_at")
        if a.get("outcome") == "delivered" and t is not None:
            delays[str(a.get("service", "?"))].append(max(0.0, t - float(a["at"])))
    bars: list[tuple[str, float, int]] = []
    for i, (svc, vals) in enumerate(sorted(delays.items())):
        bars += [(f"{svc} delivery delay {q}", round(x, 3), i) for q, x in _pcts(vals)]
    plot = bar_chart("latency", "Latency percentiles (delivery delay in device seconds)", bars, " s", True)
    if response_ms:
        extra = bar_chart("latency-response", "", [(f"response {q}", round(x, 3), 4)
                                                   for q, x in _pcts(list(response_ms))], " ms", True)
        plot = Plot(plot.name, "Latency percentiles: delivery delay (device s) and response time (wall ms)",
                    plot.svg + extra.svg, plot.points + extra.points)
    return plot


def _pick_trace(s: Sorted, seq: int | None) -> dict[str, Any] | None:
    if seq is not None:
        return next((a for a in s.accepted if a.get("seq") == seq), None)
    # the most telling one: held first, then dropped, else the first
    for pred in (lambda a: a.get("held") and a.get("outcome") == "delivered",
                 lambda a: a.get("outcome") == "dropped", lambda a: True):
        hit = next((a for a in s.accepted if pred(a)), None)
        if hit is not None:
            return hit
    return None


def trace_steps_of(s: Sorted, a: dict[str, Any]) -> list[dict[str, Any]]:
    """What the export tells about one notification: accepted, held (why), its outcome."""
    steps: list[dict[str, Any]] = [{"t": float(a["at"]), "outcome": "pending", "reason": "queued"}]
    if a.get("held"):
        steps.append({"t": float(a["at"]), "outcome": "pending", "reason": a["held"]})
    settled = _f(a, "settled_at")
    if a.get("outcome") == "pending":
        if a.get("outcome_reason") and a.get("outcome_reason") != "queued":
            steps.append({"t": float(a["at"]), "outcome": "pending", "reason": a.get("outcome_reason")})
        steps.append({"t": s.t1, "outcome": "pending", "reason": "(end of run)"})
    elif settled is not None:
        steps.append({"t": settled, "outcome": a.get("outcome"), "reason": a.get("outcome_reason")})
    return steps


def trace_plot(s: Sorted, seq: int | None, given: list[dict[str, Any]] | None) -> tuple[Plot, str]:
    a = _pick_trace(s, seq)
    if given:
        steps = given
        seq_shown = seq
    elif a is not None:
        steps = trace_steps_of(s, a)
        seq_shown = int(a["seq"])
    else:
        return bar_chart("trace", "Timeline of one notification", []), "no notification to trace"
    t_first = float(steps[0]["t"])
    span = max(1e-9, float(steps[-1]["t"]) - t_first)
    height = 70 + 18 * len(steps)
    parts = [_svg_open("trace", len(steps), height, "timeline")]
    iw = W - PAD_L - PAD_R - 120
    parts.append(f"<line x1='{PAD_L}' x2='{PAD_L + iw}' y1='30' y2='30' class='axis'/>")
    colours = {"delivered": 1, "dropped": 2, "pending": 3}
    for i, st in enumerate(steps):
        rel = float(st["t"]) - t_first
        x = PAD_L + iw * rel / span
        c = PALETTE[colours.get(str(st.get("outcome")), 0)]
        label = f"+{_num(round(rel, 3))} s  {st.get('outcome')} {st.get('reason') or ''}".rstrip()
        if st.get("superseded_by") is not None:
            label += f" (superseded by seq {st['superseded_by']})"
        anchor = "end" if x > PAD_L + iw / 2 else "start"     # keep a late step's label inside the plot
        parts.append(f"<circle cx='{x:.1f}' cy='30' r='5' fill='{c}'/>"
                     f"<line x1='{x:.1f}' x2='{x:.1f}' y1='35' y2='{52 + 18 * i}' class='grid'/>"
                     f"<text x='{x:.1f}' y='{56 + 18 * i}' text-anchor='{anchor}'>{esc(label)}</text>")
    parts.append("</svg>")
    who = f"notification seq {seq_shown}"
    if a is not None:
        who += f" ({a.get('service')} {a.get('push_type')} p{a.get('priority')} to install {a.get('install')})"
    return Plot("trace", "Timeline of one notification", "".join(parts), len(steps)), who


# ---------------------------------------------------------------------------------------------------
# the page

CSS = ("body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:900px}"
       "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}"
       "table{border-collapse:collapse}td,th{text-align:left;vertical-align:top;border-top:1px solid #ddd;"
       "padding:3px 8px}td.n{text-align:right;font-variant-numeric:tabular-nums}"
       ".error td:first-child{color:#b00;font-weight:bold}.warning td:first-child{color:#a60}"
       "svg text{font-size:11px;fill:#333}.yt{text-anchor:end}.xt{text-anchor:middle;fill:#666}"
       ".lg{text-anchor:start}.grid{stroke:#e4e4e4}.axis{stroke:#888}.ref{stroke:#d62728;stroke-dasharray:4 3}"
       ".note{color:#555;font-size:.9em}")


def _funnel_rows(s: Sorted) -> str:
    c = Counter(str(a.get("outcome")) for a in s.accepted)
    total = len(s.accepted)
    rows = [("accepted", total), ("delivered", c["delivered"]), ("dropped", c["dropped"]), ("pending", c["pending"])]
    rej = sum(1 for r in s.requests if isinstance(r.get("status"), int) and r["status"] >= 300)
    if s.requests:
        rows.insert(1, ("rejected requests", rej))
    return "".join(f"<tr><td>{k}</td><td class='n'>{v:,}</td><td class='n'>"
                   f"{f'{100 * v / total:.1f}%' if total and k != 'rejected requests' else ''}</td></tr>"
                   for k, v in rows)


def _findings_table(report: dict[str, Any]) -> str:
    from .render import _evidence
    rows = "".join(
        f"<tr class='{esc(f['severity'])}'><td>{esc(f['severity'])}</td><td>{esc(f['rule'])}</td>"
        f"<td>{esc(f['sender'] or '')}</td><td class='n'>{f['count']}</td><td>{esc(f['detail'] or f['title'])}</td>"
        f"<td>{esc(_evidence(f, 3))}</td><td>{esc(f['advice'])}<br><small>{esc(f['source'])}</small></td></tr>"
        for f in report["findings"])
    c = report["summary"]["findings"]
    head = f"<p>{c['error']} error(s), {c['warning']} warning(s), {c['info']} info</p>"
    if not rows:
        return head + "<p data-findings='0'>no findings: the sender behaved</p>"
    return (head + f"<table data-findings='{len(report['findings'])}'><tr><th>severity</th><th>rule</th>"
            "<th>sender</th><th>count</th><th>what</th><th>evidence</th><th>advice</th></tr>" + rows + "</table>")


def _groups_table(report: dict[str, Any]) -> str:
    rows = []
    for g in report["metrics"]["groups"]:
        key = f"{g['service']} {g['sender'] or '-'} {g['push_type']} p{g['priority']}"
        if g.get("analytics_label"):
            key += f" label={g['analytics_label']}"
        p = g["primer"]
        rows.append(f"<tr><td>{esc(key)}</td><td class='n'>{p['receipt_rate']}</td>"
                    f"<td class='n'>{p['landing_readiness']}</td></tr>")
    if not rows:
        return ""
    return ("<h3>Per group (primer §11)</h3><table><tr><th>group</th><th>receipt rate</th>"
            "<th>landing readiness</th></tr>" + "".join(rows) + "</table>")


def page(inp: PageInputs) -> str:
    s = Sorted(inp.records)
    report = inp.report if inp.report is not None else build_report(inp.records)
    trace, trace_who = trace_plot(s, inp.trace_seq, inp.trace_steps)
    plots = [traffic_plot(s), reasons_plot(s), budget_plot(s), freshness_plot(s),
             latency_plot(s, inp.response_latencies_ms)]
    facts = list(inp.facts) + [("device time", f"{_num(round((s.t1 - s.t0) / 3600, 2))} h from the first record"),
                               ("installs with traffic", f"{len({a.get('install') for a in s.accepted}):,}")]
    fleet = report["metrics"]["fleet"]
    body = [f"<h1>{esc(inp.title)}</h1><table>",
            *(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts), "</table>",
            "<h2>Funnel</h2><table><tr><th>outcome</th><th>count</th><th>of accepted</th></tr>",
            _funnel_rows(s), "</table>",
            f"<p class='note'>fleet: receipt rate {fleet['receipt_rate']}, background success "
            f"{fleet['background_success_rate']}, content fresh at open {fleet['content_freshness_at_open']}</p>"]
    for p in plots:
        body.append(f"<h2>{esc(p.title)}</h2>{p.svg}")
        if p.note:
            body.append(f"<p class='note'>{esc(p.note)}</p>")
    body.append(f"<h2>Findings</h2>{_findings_table(report)}{_groups_table(report)}")
    if report.get("experiment"):         # per-arm outcomes and lifts (docs/experiments.md)
        body.append(experiment_html(report["experiment"]))
    body.append(f"<h2>{esc(trace.title)}: {esc(trace_who)}</h2>{trace.svg}")
    # default-src 'none': no script, font, image or fetch from anywhere; the inline style is all there is
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{esc(inp.title)}</title><style>{CSS}</style></head><body>" + "".join(body) + "</body></html>\n")
