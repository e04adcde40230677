"""CI gates: thresholds a headless run must meet. Pure, so the decision is unit-tested."""
from __future__ import annotations

from dataclasses import dataclass

GATE_EXIT_CODE = 3     # locust itself uses 1 (failures, when no gate decides) and 2 (crash)


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_fail_ratio: float | None = None
    max_p95_ms: float | None = None
    min_rps: float | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_fail_ratio, self.max_p95_ms, self.min_rps))


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    failures: int
    p95_ms: float
    rps: float

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
    return out


def exit_code(violations: list[str]) -> int:
    return GATE_EXIT_CODE if violations else 0
