"""docs/grafana/pushsim.json over N instances: every query parses (promtool), is scoped to the
`$instance` variable, and sums the instances unless it shows them one by one; and on series of
three instances the fleet panels evaluate to the sums (promtool test rules)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "pushsim.json"
ALL = ".*"                          # what Grafana puts in for "All" (the variable's allValue)
SELECTOR = re.compile(r"\b((?:pushsim|process)_[a-z_]+)(\{[^}]*\})?")


def _panels() -> list[dict[str, Any]]:
    out = []
    for p in json.loads(DASHBOARD.read_text())["panels"]:
        out += [p, *p.get("panels", [])]
    return out


def _targets() -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in _panels() for t in p.get("targets", [])]


def _expr(title: str, ref: str = "A", instance: str = ALL) -> str:
    for t_title, t in _targets():
        if t_title == title and t["refId"] == ref:
            return str(t["expr"]).replace("$instance", instance)
    raise AssertionError(f"no panel {title!r} target {ref}")


def _promtool(*args: str, cwd: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus; ./run.sh test installs it)")
    r = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_instance_variable_lists_the_scraped_instances() -> None:
    var = {v["name"]: v for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}["instance"]
    assert var["includeAll"] and var["multi"] and var["allValue"] == ALL
    assert var["query"]["query"] == "label_values(pushsim_accepted_total, instance)"


def test_every_query_is_scoped_to_the_chosen_instances_and_sums_them_or_shows_each() -> None:
    targets = _targets()
    assert len(targets) > 20
    for title, t in targets:
        expr = t["expr"]
        for m in SELECTOR.finditer(expr):
            assert 'instance=~"$instance"' in (m.group(2) or ""), f"{title}: {m.group(0)} ignores $instance"
        if "{{instance}}" in t["legendFormat"]:
            continue                       # one line per instance, on purpose
        assert re.match(r"(sum|histogram_quantile)\b", expr), f"{title}: {expr} is not summed over the instances"


def test_every_query_parses(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:{i}", "expr": t["expr"].replace("$instance", value)}
             for i, (_, t) in enumerate(_targets()) for value in (ALL, "(a:1|c:1)")]
    (tmp_path / "rules.json").write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool("check", "rules", "rules.json", cwd=tmp_path)


def _series(name: str, instance: str, per_minute: float, labels: str = "") -> dict[str, str]:
    extra = f",{labels}" if labels else ""
    return {"series": f'{name}{{instance="{instance}"{extra}}}', "values": f"0+{per_minute:g}x10"}


def test_on_three_instances_the_fleet_panels_are_the_sums(tmp_path: Path) -> None:
    # a: 60 accepted/min = 30 delivered + 15 dropped + 15 pending; b: 120 = 120 delivered (no
    # dropped or pending series at all); c: 30 = 30 dropped (no delivered traffic, no pending series)
    series = [
        _series("pushsim_accepted_total", "a:1", 60), _series("pushsim_delivered_total", "a:1", 30),
        _series("pushsim_dropped_total", "a:1", 15, 'reason="expired"'),
        _series("pushsim_pending", "a:1", 15, 'reason="stored-offline"'),
        _series("pushsim_accepted_total", "b:1", 120), _series("pushsim_delivered_total", "b:1", 120),
        _series("pushsim_accepted_total", "c:1", 30), _series("pushsim_delivered_total", "c:1", 0),
        _series("pushsim_dropped_total", "c:1", 30, 'reason="collapsed"'),
        _series("pushsim_rejected_total", "b:1", 12, 'reason="BadDeviceToken"'),
        _series("pushsim_rejected_total", "c:1", 18, 'reason="BadDeviceToken"'),
    ]

    def check(expr: str, *samples: tuple[str, float]) -> dict[str, Any]:
        return {"expr": expr, "eval_time": "5m",
                "exp_samples": [{"labels": labels, "value": value} for labels, value in samples]}

    unaccounted = "Unaccounted (accepted − delivered − dropped − pending), by instance"
    tests = [
        check(_expr("Traffic per second"), ("{}", 3.5)),                     # (60 + 120 + 30) / 60
        check(_expr("Traffic per second", "B"), ("{}", 2.5)),
        check(_expr("Traffic per second", "C"), ("{}", 0.5)),
        check(_expr("Traffic per second", instance="(a:1|c:1)"), ("{}", 1.5)),
        check(_expr("Receipt rate"), ("{}", 750 / 1050)),
        check(_expr("Dropped per second, by reason"), ('{reason="collapsed"}', 0.5), ('{reason="expired"}', 0.25)),
        check(_expr("Accepted per second, by instance"), ('{instance="a:1"}', 1), ('{instance="b:1"}', 2),
              ('{instance="c:1"}', 0.5)),
        check(_expr(unaccounted), ('{instance="a:1"}', 0), ('{instance="b:1"}', 0), ('{instance="c:1"}', 0)),
        check(_expr(unaccounted, "B"), ("{}", 0)),
        check(_expr("Pending, by instance"), ('{instance="a:1"}', 75)),
    ]
    doc = {"rule_files": [], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}]}
    (tmp_path / "fleet.json").write_text(json.dumps(doc))
    _promtool("test", "rules", "fleet.json", cwd=tmp_path)
