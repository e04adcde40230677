"""The report's policy: which rules run, at which severity, with which thresholds (a TOML file).

    ignore = ["fcm.high-priority-without-notification"]     # rules not to report at all

    [severity]                                               # override a rule's severity
    "guardrail.quiet-hours" = "error"

    [apns.background-too-frequent]                           # a rule's thresholds, by its id
    max_per_hour = 2

Every threshold has a documented default (docs/report.md); a file names only what it changes.
Unknown rule ids or threshold names are errors listing the known ones, so a typo never silently
turns a guardrail off.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SEVERITIES = ("error", "warning", "info")
LEVELS = {"error": 3, "warning": 2, "info": 1, "never": 99}


@dataclass
class Policy:
    ignore: set[str] = field(default_factory=set)
    severity: dict[str, str] = field(default_factory=dict)
    params: dict[str, dict[str, float]] = field(default_factory=dict)

    def param(self, rule: str, name: str, default: float) -> float:
        return self.params.get(rule, {}).get(name, default)


def _flatten(prefix: str, table: dict[str, object], out: dict[str, dict[str, object]]) -> None:
    """TOML reads `[apns.background-too-frequent]` as nested tables: join them back into rule ids."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if scalars:
        out[prefix] = scalars
    for k, v in table.items():
        if isinstance(v, dict):
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)


def parse_policy(doc: dict[str, object], defaults: dict[str, dict[str, float]]) -> Policy:
    """A Policy from a parsed TOML document; `defaults` = each rule's thresholds (rule id → name → value)."""
    known = sorted(defaults)
    p = Policy()
    ignore = doc.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
        raise ValueError("policy: ignore must be a list of rule ids")
    for rule in ignore:
        if rule not in defaults:
            raise ValueError(f"policy: unknown rule {rule!r} in ignore; known: {', '.join(known)}")
    p.ignore = set(ignore)
    sev = doc.get("severity", {})
    if not isinstance(sev, dict):
        raise ValueError("policy: [severity] must be a table of rule id = severity")
    flat_sev: dict[str, dict[str, object]] = {}
    _flatten("", sev, flat_sev)
    for prefix, names in flat_sev.items():
        for name, level in names.items():
            rule = f"{prefix}.{name}" if prefix else name
            if rule not in defaults:
                raise ValueError(f"policy: unknown rule {rule!r} in [severity]; known: {', '.join(known)}")
            if level not in SEVERITIES:
                raise ValueError(f"policy: severity of {rule} must be one of {', '.join(SEVERITIES)}, not {level!r}")
            p.severity[rule] = str(level)
    rest = {k: v for k, v in doc.items() if k not in ("ignore", "severity")}
    flat: dict[str, dict[str, object]] = {}
    _flatten("", rest, flat)
    for rule, values in flat.items():
        if rule not in defaults:
            raise ValueError(f"policy: unknown rule or key {rule!r}; known rules: {', '.join(known)}")
        for name, value in values.items():
            if name not in defaults[rule]:
                names = ", ".join(sorted(defaults[rule])) or "(none)"
                raise ValueError(f"policy: {rule} has no threshold {name!r}; it has: {names}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"policy: {rule}.{name} must be a number >= 0, not {value!r}")
            p.params.setdefault(rule, {})[name] = float(value)
    return p


def load_policy(path: str | Path | None, defaults: dict[str, dict[str, float]]) -> Policy:
    if path is None:
        return Policy()
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"policy {path}: {e}") from None
    return parse_policy(doc, defaults)
