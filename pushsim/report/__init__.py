"""The verdict on the sender: conformance findings and delivery metrics from a journal.

    from pushsim.report import build_report
    report = build_report(records)            # records: dicts of the journal export (JSONL lines)
    report["findings"], report["metrics"]

Sans-IO: records in, a JSON-able dict out. `pushsim report`, `GET /report` and the pytest plugin's
`pushsim.report()` all call this; see docs/report.md for the rules and the metrics.
"""
from __future__ import annotations

from typing import Iterable

from .metrics import fleet_metrics, group_metrics
from .policy import LEVELS, Policy, load_policy, parse_policy
from .records import Inputs, load
from .rules import BY_ID, DEFAULTS, RULES, analyse, failing

FORMAT = "pushsim-report/1"

__all__ = ["BY_ID", "DEFAULTS", "FORMAT", "LEVELS", "Policy", "RULES", "build_report", "failing", "load",
           "load_policy", "parse_policy", "report_of"]


def report_of(inp: Inputs, policy: Policy | None = None, sim_metrics: dict[str, object] | None = None
              ) -> dict[str, object]:
    findings = analyse(inp, policy)
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in ("error", "warning", "info")}
    return {
        "format": FORMAT,
        "findings": findings,
        "metrics": {"groups": group_metrics(inp), "fleet": fleet_metrics(sim_metrics)},
        "summary": {"requests": len(inp.requests), "accepted": len(inp.accepted), "installs": len(inp.installs),
                    "skipped_records": inp.skipped, "findings": counts,
                    "rules": [r.id for r in RULES if policy is None or r.id not in policy.ignore]},
    }


def build_report(records: Iterable[object], policy: Policy | None = None) -> dict[str, object]:
    """The report for journal-export records (header, request, accepted and install lines)."""
    recs = list(records)
    sim_metrics = None
    experiment = None
    for r in recs:
        if isinstance(r, dict) and r.get("type") == "header":
            if isinstance(r.get("metrics"), dict):
                sim_metrics = r["metrics"]
            if isinstance(r.get("experiment_outcomes"), dict):
                experiment = r["experiment_outcomes"]
    report = report_of(load(recs), policy, sim_metrics)
    if experiment is not None:      # per-arm outcomes and lifts (docs/experiments.md)
        report["experiment"] = experiment
    return report
