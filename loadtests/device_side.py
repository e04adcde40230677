"""What the simulated devices made of a load run, for locust's own outputs.

At the end of a run the master (or the local runner) reads pushsim's funnel (`GET /stats`) and the
report (`GET /report`: findings and the silent-push primer's metrics), then adds them to locust's
HTML report (a section inserted before `</body>`: the report is a static file locust has already
written when `quitting` fires) and next to its JSON output (`<json-file>.pushsim.json`: locust's
`<json-file>.json` is a list of request statistics, whose shape other tools read, so it is left
as it is). Pure functions plus two small I/O ones, so the shapes are unit-tested.
"""
from __future__ import annotations

import html
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

MARKER = "<!-- pushsim device side -->"


def fetch(admin_url: str, timeout: float = 10.0) -> dict[str, Any]:
    """{"stats": /stats, "report": /report} with None for what could not be read (and why in "errors")."""
    out: dict[str, Any] = {"stats": None, "report": None, "errors": []}
    for key, path in (("stats", "/stats"), ("report", "/report")):
        try:
            with urllib.request.urlopen(admin_url.rstrip("/") + path, timeout=timeout) as r:
                out[key] = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            out["errors"].append(f"{path}: {getattr(e, 'reason', e)}")
    return out


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """The numbers the gates and the outputs use: funnel, receipt rate, findings, primer metrics."""
    st = data.get("stats") or {}
    rep = data.get("report") or {}
    accepted = int(st.get("accepted") or 0)
    delivered = int(st.get("delivered") or 0)
    findings = (rep.get("summary") or {}).get("findings") if rep else None
    fleet = (rep.get("metrics") or {}).get("fleet") if rep else None
    return {
        "accepted": accepted if data.get("stats") is not None else None,
        "delivered": delivered if data.get("stats") is not None else None,
        "dropped": dict(st.get("dropped") or {}), "pending": dict(st.get("pending") or {}),
        "rejected": dict(st.get("rejected") or {}),
        "receipt_rate": round(delivered / accepted, 6) if accepted else None,
        "findings": findings,                  # {"error": n, "warning": n, "info": n} or None
        "error_findings": findings.get("error") if isinstance(findings, dict) else None,
        "primer": fleet,                       # background success, freshness at open, ...
        "errors": list(data.get("errors") or []),
    }


def html_section(s: dict[str, Any], rules: list[dict[str, Any]] | None = None) -> str:
    esc = html.escape

    def rows(d: dict[str, Any]) -> str:
        return "".join(f"<tr><td>{esc(str(k))}</td><td style='text-align:right'>{esc(str(v))}</td></tr>"
                       for k, v in d.items())
    funnel = {"accepted": s["accepted"], "delivered": s["delivered"], "receipt rate": s["receipt_rate"]}
    funnel.update({f"dropped: {k}": v for k, v in sorted(s["dropped"].items())})
    funnel.update({f"pending: {k}": v for k, v in sorted(s["pending"].items())})
    funnel.update({f"rejected: {k}": v for k, v in sorted(s["rejected"].items())})
    parts = [MARKER, "<section id='pushsim-device-side' style='font-family:sans-serif;margin:24px;"
             "padding:12px;background:#fff;color:#222'><h2>pushsim: what the devices did</h2>",
             "<h3>Funnel (accepted → delivered / dropped / pending)</h3><table>", rows(funnel), "</table>"]
    if s["findings"] is not None:
        parts += ["<h3>Conformance findings</h3><table>", rows(s["findings"]), "</table>"]
    for f in rules or []:
        parts.append(f"<p>[{esc(str(f.get('severity')))}] {esc(str(f.get('rule')))} ×{esc(str(f.get('count')))}: "
                     f"{esc(str(f.get('detail') or f.get('title') or ''))}</p>")
    if s["primer"]:
        shown = {k: v for k, v in s["primer"].items() if not isinstance(v, dict)}
        parts += ["<h3>Silent-push primer metrics</h3><table>", rows(shown), "</table>"]
    if s["errors"]:
        parts.append(f"<p>could not read: {esc('; '.join(s['errors']))}</p>")
    parts.append("</section>")
    return "".join(parts)


def add_to_html(path: str | Path, section: str) -> bool:
    """Insert `section` before `</body>` of locust's HTML report (once); False if there is no file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        return False
    if MARKER in text:
        return True
    at = text.rfind("</body>")
    text = text[:at] + section + text[at:] if at >= 0 else text + section
    p.write_text(text, encoding="utf-8")
    return True


def write_json(json_file: str, s: dict[str, Any]) -> Path:
    p = Path(f"{json_file}.pushsim.json")
    p.write_text(json.dumps(s, indent=2) + "\n", encoding="utf-8")
    return p
