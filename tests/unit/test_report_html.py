"""The HTML report (pushsim/report/html.py) and the commands that write it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from device_sim.replay import export_jsonl
from device_sim.scenario import simulate
from pushsim import cli
from pushsim.cli.replay import trace_lines
from pushsim.report.html import PageInputs, page

PLOTS = ("traffic", "reasons", "budget", "freshness", "latency", "trace")
SCENARIO = {"name": "small", "duration": 6 * 3600, "fleet": {"devices": "ios=12,android=12"},
            "profile": {"ios": {"opens_per_day": 24.0}, "android": {"opens_per_day": 24.0}},
            "traffic": [{"platform": "ios", "push_type": "background", "per_hour": 6},
                        {"platform": "android", "push_type": "data", "per_hour": 2, "collapse_id": "k"},
                        {"platform": "ios", "push_type": "alert", "per_hour": 1}]}


def _records(doc: dict[str, Any] = SCENARIO, seed: int = 3) -> list[dict[str, Any]]:
    world, _ = simulate(doc, seed)
    return [orjson.loads(line) for line in export_jsonl(world)]


def plot_points(text: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"data-plot='([\w-]+)' data-points='(\d+)'", text)}


def assert_offline(text: str) -> None:
    """Nothing in the page can make a request: no script, link, image, frame or url()."""
    assert "default-src 'none'" in text
    for needle in ("<script", "<link", "<img", "<iframe", "url(", " src=", " href="):
        assert needle not in text.lower(), needle


def test_every_plot_has_data_for_a_small_fleet() -> None:
    text = page(PageInputs("t", _records(), response_latencies_ms=[1.0, 2.0, 30.0]))
    pts = plot_points(text)
    assert set(PLOTS) <= set(pts)
    assert all(pts[p] > 0 for p in PLOTS), pts
    assert "response p99" in text and "Findings" in text
    assert_offline(text)


def test_empty_records_give_empty_plots_not_a_crash() -> None:
    text = page(PageInputs("nothing", []))
    pts = plot_points(text)
    assert all(pts.get(p, 0) == 0 for p in PLOTS)
    assert "no findings" in text


def test_values_are_escaped() -> None:
    recs = _records()
    for r in recs:
        if r.get("type") == "accepted" and r["outcome"] == "dropped":
            r["outcome_reason"] = "<script>alert(1)</script>"
            break
    text = page(PageInputs("<b>title</b>", recs))
    assert "<script>" not in text and "&lt;script&gt;" in text and "<b>title" not in text
    assert_offline(text)


def test_funnel_rows_add_up() -> None:
    recs = _records()
    acc = [r for r in recs if r.get("type") == "accepted"]
    text = page(PageInputs("t", recs))
    for outcome in ("delivered", "dropped", "pending"):
        n = sum(1 for r in acc if r["outcome"] == outcome)
        assert f"<tr><td>{outcome}</td><td class='n'>{n:,}</td>" in text


def test_trace_of_a_named_notification() -> None:
    recs = _records()
    dropped = next(r for r in recs if r.get("type") == "accepted" and r["outcome"] == "dropped")
    text = page(PageInputs("t", recs, trace_seq=dropped["seq"]))
    assert f"notification seq {dropped['seq']}" in text
    assert f"dropped {dropped['outcome_reason']}" in text


def test_trace_lines_are_relative_and_name_the_replacement() -> None:
    lines = trace_lines([{"t": 100.0, "outcome": "pending", "reason": "queued"},
                         {"t": 700.5, "outcome": "dropped", "reason": "coalesced", "superseded_by": 42}])
    assert lines[0].startswith("+     0.000 s  pending")
    assert "+   600.500 s  dropped   coalesced  (replaced by notification 42)" == lines[1]


def _scenario_file(tmp_path: Path) -> Path:
    p = tmp_path / "s.toml"
    p.write_text('name = "small"\nduration = 21600\n[fleet]\ndevices = "ios=8,android=8"\n'
                 '[[traffic]]\nplatform = "ios"\npush_type = "background"\nper_hour = 6\n'
                 '[[traffic]]\nplatform = "android"\npush_type = "data"\nper_hour = 2\n')
    return p


def test_run_virtual_html_and_readable_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.html"
    assert cli.main(["run", str(_scenario_file(tmp_path)), "--mode", "virtual", "--html", str(out)]) == 0
    text = capsys.readouterr().out
    assert "{" not in text and "funnel" in text and "fleet metrics" in text and "background tasks started" in text
    pts = plot_points(out.read_text())
    assert all(pts[p] > 0 for p in ("traffic", "budget", "latency", "trace")), pts


def test_run_html_to_an_unwritable_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "no-such-dir" / "out.html"
    assert cli.main(["run", str(_scenario_file(tmp_path)), "--mode", "virtual", "--html", str(bad)]) == 2
    assert "cannot write" in capsys.readouterr().err


def _export(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    recs = _records()
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    return path, recs


def test_replay_refuses_an_unknown_seq(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, recs = _export(tmp_path)
    top = max(r["seq"] for r in recs if r.get("type") == "accepted")
    assert cli.main(["replay", str(path), "--trace", str(top + 1)]) == 2
    err = capsys.readouterr().err
    assert f"no notification with seq {top + 1}" in err and "Traceback" not in err


def test_replay_trace_names_the_notification_that_coalesced_it(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path, recs = _export(tmp_path)
    acc = [r for r in recs if r.get("type") == "accepted"]
    victim = next(r for r in acc if r["outcome_reason"] == "coalesced")
    # the replacement: the next push to the same install (what the iOS model coalesces with)
    after = next(r for r in acc if r["install"] == victim["install"] and r["seq"] > victim["seq"])
    out = tmp_path / "r.html"
    cli.main(["replay", str(path), "--trace", str(victim["seq"]), "--html", str(out)])
    text = capsys.readouterr().out
    assert f"coalesced  (replaced by notification {after['seq']})" in text
    assert "+     0.000 s  pending   queued" in text
    html_text = out.read_text()
    assert f"superseded by seq {after['seq']}" in html_text and plot_points(html_text)["trace"] >= 2


def test_report_format_html_from_a_journal_file(tmp_path: Path) -> None:
    path, _ = _export(tmp_path)
    out = tmp_path / "rep.html"
    assert cli.main(["report", str(path), "--format", "html", "--output", str(out), "--fail-on", "never"]) == 0
    text = out.read_text()
    assert all(plot_points(text)[p] > 0 for p in ("traffic", "reasons", "latency"))
    assert "<h2>Findings</h2>" in text
    assert_offline(text)
