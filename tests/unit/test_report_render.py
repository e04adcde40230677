"""The report's formats and the CLI on a saved export: text, JSON, JUnit, HTML, --policy, exit codes."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pushsim.cli import main as cli_main
from pushsim.report import RULES, build_report
from pushsim.report.render import render

T0 = 1_700_000_000.0
RECS = [
    {"type": "request", "id": 0, "t": T0, "service": "apns", "token": "aa", "status": 410, "reason": "Unregistered",
     "sender": "T/K"},
    {"type": "request", "id": 1, "t": T0 + 5, "service": "apns", "token": "aa", "status": 410,
     "reason": "Unregistered", "sender": "T/K"},
    {"type": "request", "id": 2, "t": T0 + 6, "service": "fcm", "token": "bb", "status": 200, "seq": 0,
     "sender": "sa@x"},
    {"type": "accepted", "seq": 0, "service": "fcm", "token": "bb", "install": 1, "at": T0 + 6, "push_type": "data",
     "priority": 10, "content_available": True, "size": 30, "outcome": "delivered", "version": 1},
]


def test_text_json_html_and_junit() -> None:
    rep = build_report(RECS)
    text = render(rep, "text")
    assert "[error] apns.send-after-unregistered sender T/K" in text and "journal #1" in text
    assert "[warning] fcm.high-priority-without-notification sender sa@x" in text
    assert json.loads(render(rep, "json"))["findings"] == rep["findings"]
    page = render(rep, "html")
    assert page.startswith("<!doctype html>") and "apns.send-after-unregistered" in page
    root = ET.fromstring(render(rep, "junit", "error").split("\n", 1)[1])
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == [r.id for r in RULES]
    assert cases["apns.send-after-unregistered"].find("failure") is not None
    # below --fail-on: shown, not failed
    hp = cases["fcm.high-priority-without-notification"]
    assert hp.find("failure") is None and "sa@x" in (hp.findtext("system-out") or "")
    assert render(rep, "junit", "warning").count("<failure") == 3     # + guardrail.inactive-install (the 410s)
    with pytest.raises(ValueError, match="format must be one of"):
        render(rep, "yaml")


def test_the_cli_on_an_export_with_a_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "j.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in RECS))
    assert cli_main(["report", str(export)]) == 1
    assert cli_main(["report", str(export), "--fail-on", "never"]) == 0
    policy = tmp_path / "p.toml"
    policy.write_text('ignore = ["apns.send-after-unregistered", "guardrail.inactive-install"]\n'
                      '[severity]\n"fcm.high-priority-without-notification" = "error"\n')
    capsys.readouterr()
    assert cli_main(["report", str(export), "--policy", str(policy), "--format", "json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert [(f["rule"], f["severity"]) for f in rep["findings"]] == [("fcm.high-priority-without-notification", "error")]
    policy.write_text("[apns.background-too-frequent]\nmax_per_day = 1\n")
    assert cli_main(["report", str(export), "--policy", str(policy)]) == 2
    assert "has no threshold 'max_per_day'" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    assert cli_main(["report", str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:1: not JSON" in capsys.readouterr().err
    assert cli_main(["report", str(tmp_path / "missing.jsonl")]) == 2
