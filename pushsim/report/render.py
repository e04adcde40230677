"""The report as text, JSON, JUnit XML (one test case per rule) or plain HTML."""
from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from typing import Any

from .policy import LEVELS
from .rules import RULES

FORMATS = ("text", "json", "junit", "html")


def _evidence(f: dict[str, Any], limit: int = 5) -> str:
    parts = []
    for ev in f["evidence"][:limit]:
        if "id" in ev:
            where = f"journal #{ev['id']}"
        elif "seq" in ev:
            where = f"notification seq {ev['seq']}"
        else:       # a stream the server ignored (apns.goaway-ignored): no journal entry
            where = f"connection {ev.get('conn')}"
        if "instance" in ev:     # a merged report (pushsim/multi_instance.py): the instance's own number
            where = f"{ev['instance']} {where}"
        parts.append(f"{where} at {ev['at']:.3f}")
    more = f["count"] - min(limit, len(f["evidence"]))
    return ", ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def finding_line(f: dict[str, Any]) -> str:
    """One finding in one paragraph: what, who, how many, where, what to do, on whose word."""
    who = f" sender {f['sender']}" if f["sender"] else ""
    tokens = f"; tokens: {', '.join(t[:16] + '…' if len(t) > 16 else t for t in f['tokens'][:3])}" \
        + (f" (+{f['tokens_total'] - 3})" if f["tokens_total"] > 3 else "") if f["tokens"] else ""
    detail = f" — {f['detail']}" if f["detail"] else ""
    return (f"[{f['severity']}] {f['rule']}{who}: {f['title']} ×{f['count']}{detail}{tokens}\n"
            f"    evidence: {_evidence(f)}\n    advice: {f['advice']} (source: {f['source']})")


def text(report: dict[str, Any]) -> str:
    s = report["summary"]
    c = s["findings"]
    lines = [f"pushsim report: {s['requests']} requests, {s['accepted']} accepted, {s['installs']} installs; "
             f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info"]
    if s.get("skipped_records"):
        lines.append(f"({s['skipped_records']} record(s) not in the journal export's shape were skipped)")
    lines += [finding_line(f) for f in report["findings"]] or ["no findings: the sender behaved"]
    groups = report["metrics"]["groups"]
    if groups:
        lines.append("\ndelivery (per service, sender, push type, priority, label):")
    for g in groups:
        key = f"  {g['service']} {g['sender'] or '-'} {g['push_type']} p{g['priority']}" + (
            f" label={g['analytics_label']}" if g["analytics_label"] else "")
        if "apple" in g:
            a = g["apple"]
            body = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in a.items() if isinstance(v, int) and v)
        else:
            d = g["fcm"]
            body = f"accepted {d['countMessagesAccepted']}, " + ", ".join(
                f"{k} {v}%" for k, v in d["messageOutcomePercents"].items() if v)
        p = g["primer"]
        lines.append(f"{key}: {body or 'nothing accepted'}; receipt rate {p['receipt_rate']}, "
                     f"landing readiness {p['landing_readiness']}")
    fleet = report["metrics"]["fleet"]
    if any(v is not None for v in fleet.values()):
        lines.append(f"fleet: background success {fleet['background_success_rate']}, content fresh at open "
                     f"{fleet['content_freshness_at_open']}, receipt rate {fleet['receipt_rate']}")
    return "\n".join(lines)


def junit(report: dict[str, Any], fail_on: str = "warning") -> str:
    """JUnit XML: one <testcase> per rule; it fails when the rule has findings at or above `fail_on`
    (with `never`, at or above warning, so the file still shows them), skipped when not run."""
    level = LEVELS["warning" if fail_on == "never" else fail_on]
    ran = set(report["summary"]["rules"])
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for f in report["findings"]:
        by_rule.setdefault(f["rule"], []).append(f)
    suite = ET.Element("testsuite", name="pushsim.report", tests=str(len(RULES)), time="0")
    failures = skipped = 0
    for rule in RULES:
        case = ET.SubElement(suite, "testcase", classname=f"pushsim.report.{rule.id.split('.')[0]}",
                             name=rule.id, time="0")
        found = by_rule.get(rule.id, [])
        bad = [f for f in found if LEVELS[f["severity"]] >= level]
        if rule.id not in ran:
            ET.SubElement(case, "skipped", message="ignored by the policy")
            skipped += 1
        elif bad:
            failures += 1
            el = ET.SubElement(case, "failure", type=bad[0]["severity"],
                               message=f"{sum(f['count'] for f in bad)} × {rule.title}")
            el.text = "\n\n".join(finding_line(f) for f in bad)
        if found and not bad:
            ET.SubElement(case, "system-out").text = "\n\n".join(finding_line(f) for f in found)
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", name="pushsim", tests=str(len(RULES)), failures=str(failures),
                      errors="0", skipped=str(skipped), time="0")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def html_page(report: dict[str, Any]) -> str:
    """A plain page from the report alone: the findings table and the delivery groups. With the journal
    records at hand, html.page() draws the plots (what `pushsim report --format html` writes)."""
    esc = html.escape
    rows = "".join(
        f"<tr class='{esc(f['severity'])}'><td>{esc(f['severity'])}</td><td>{esc(f['rule'])}</td>"
        f"<td>{esc(f['sender'])}</td><td>{f['count']}</td><td>{esc(f['detail'] or f['title'])}</td>"
        f"<td>{esc(_evidence(f))}</td><td>{esc(f['advice'])}<br><small>{esc(f['source'])}</small></td></tr>"
        for f in report["findings"])
    groups = "".join(f"<tr><td>{esc(json.dumps({k: g[k] for k in ('service', 'sender', 'push_type', 'priority', 'analytics_label')}))}"
                     f"</td><td><pre>{esc(json.dumps(g.get('apple') or g.get('fcm'), indent=1))}</pre></td>"
                     f"<td><pre>{esc(json.dumps(g['primer'], indent=1))}</pre></td></tr>"
                     for g in report["metrics"]["groups"])
    s = report["summary"]["findings"]
    experiment = experiment_html(report["experiment"]) if report.get("experiment") else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>pushsim report</title><style>"
            "body{font-family:sans-serif}td{vertical-align:top;border-top:1px solid #ccc;padding:4px}"
            ".error td:first-child{color:#b00}.warning td:first-child{color:#a60}</style></head><body>"
            f"<h1>pushsim report</h1><p>{s['error']} error(s), {s['warning']} warning(s), {s['info']} info</p>"
            "<h2>Findings</h2><table><tr><th>severity</th><th>rule</th><th>sender</th><th>count</th>"
            f"<th>what</th><th>evidence</th><th>advice</th></tr>{rows}</table>"
            "<h2>Delivery</h2><table><tr><th>group</th><th>Apple / FCM Data API</th><th>primer §11</th></tr>"
            f"{groups}</table>{experiment}</body></html>\n")


def experiment_html(doc: dict[str, Any]) -> str:
    """Per-arm outcomes and lifts, each an estimate with its 95% interval."""
    from device_sim.lift import METRICS

    esc = html.escape

    def cell(x: dict[str, Any]) -> str:
        lo, hi = x["ci95"]
        est = "–" if x["estimate"] is None else f"{x['estimate']:.4g}"
        return esc(est if lo is None else f"{est} [{lo:.4g}, {hi:.4g}]")
    head = "".join(f"<th>{esc(m)}</th>" for m in METRICS)
    rows = "".join(f"<tr><td>{esc(arm)} ({a['installs']} installs)</td>" + "".join(f"<td>{cell(a[m])}</td>" for m in METRICS)
                   + "</tr>" for arm, a in doc["arms"].items())
    rows += "".join(f"<tr><td>lift {esc(arm)} − {esc(doc['holdout'])}</td>"
                    + "".join(f"<td>{cell(lf[m])}</td>" for m in METRICS) + "</tr>" for arm, lf in doc["lift"].items())
    return (f"<h2>Experiment {esc(doc['name'])} ({esc(doc['mode'])} holdout)</h2>"
            f"<p>95% intervals; the unit is the install.</p><table><tr><th>arm</th>{head}</tr>{rows}</table>")


def render(report: dict[str, Any], fmt: str, fail_on: str = "warning") -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if fmt == "junit":
        return junit(report, fail_on)
    if fmt == "html":
        return html_page(report)
    if fmt == "text":
        out = text(report) + "\n"
        if report.get("experiment"):
            from device_sim.lift import format_outcomes
            out += "\n" + format_outcomes(report["experiment"]) + "\n"
        return out
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
