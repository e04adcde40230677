"""CI gates: thresholds a headless run must meet. Pure, so the decision is unit-tested."""
from __future__ import annotations

from dataclasses import dataclass

GATE_EXIT_CODE = 3     # locust itself uses 1 (failures, when no gate decides) and 2 (crash)


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_fail_ratio: float | None = None
    max_p95_ms: float | None = None
    min_rps: float | None = None
    min_receipt_rate: float | None = None    # device side: delivered / accepted, from pushsim's /stats
    max_findings: int | None = None          # error-level conformance findings, from pushsim's /report

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_fail_ratio, self.max_p95_ms, self.min_rps,
                                           self.min_receipt_rate, self.max_findings))


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    failures: int
    p95_ms: float
    rps: float
    receipt_rate: float | None = None        # None: pushsim's /stats could not be read (or nothing accepted)
    error_findings: int | None = None        # None: pushsim's /report could not be read

    @property
    def fail_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def evaluate(th: Thresholds, t: Totals) -> list[str]:
    """Human-readable violations; empty means the run passes."""
    if not th.active:
        return []
    out: list[str] = []
    if t.requests == 0:
        out.append("no requests were made")
    if th.max_fail_ratio is not None and t.fail_ratio > th.max_fail_ratio:
        out.append(f"failure ratio {t.fail_ratio:.4f} > {th.max_fail_ratio}")
    if th.max_p95_ms is not None and t.p95_ms > th.max_p95_ms:
        out.append(f"p95 {t.p95_ms:.0f} ms > {th.max_p95_ms:g} ms")
    if th.min_rps is not None and t.rps < th.min_rps:
        out.append(f"throughput {t.rps:.1f} req/s < {th.min_rps:g} req/s")
    if th.min_receipt_rate is not None:
        if t.receipt_rate is None:
            out.append("receipt rate unknown: pushsim's /stats was not read or accepted nothing")
        elif t.receipt_rate < th.min_receipt_rate:
            out.append(f"receipt rate {t.receipt_rate:.4f} < {th.min_receipt_rate:g}")
    if th.max_findings is not None:
        if t.error_findings is None:
            out.append("findings unknown: pushsim's /report was not read")
        elif t.error_findings > th.max_findings:
            out.append(f"{t.error_findings} error-level conformance finding(s) > {th.max_findings}")
    return out


def exit_code(violations: list[str]) -> int:
    return GATE_EXIT_CODE if violations else 0
