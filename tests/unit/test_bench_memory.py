"""benchmarks.memory: reading devsim_memory.py's JSON (its CLI output is the interface)."""
from __future__ import annotations

from benchmarks.memory import format_result, parse_devsim

# PYTHONPATH=. python benchmarks/devsim_memory.py (2026-11-26), funnel cut short
OUT = """{
  "installs": 1000000,
  "time_to_ready_s": 0.095,
  "rss_mib": {"python": 12.2, "imports": 25.3, "fleet": 33.1, "after_traffic": 51.2},
  "fleet_bytes_per_install": 8.2,
  "active_installs": 10000,
  "bytes_per_active_install": 1903,
  "traffic_seconds": 0.4, "funnel": {}
}
"""


def test_parse_devsim_output():
    m = parse_devsim(OUT)
    assert m == {"devsim_installs": 1000000, "devsim_ready_s": 0.095, "devsim_rss_fleet_mib": 33.1,
                 "devsim_rss_mib": 51.2, "devsim_active_installs": 10000}
    assert "ready in 0.10 s" in format_result(m)


def test_parse_devsim_tolerates_changes():
    assert parse_devsim('{"installs": 5, "rss_mib": {"fleet": 9.5}}') == {
        "devsim_installs": 5, "devsim_rss_fleet_mib": 9.5, "devsim_rss_mib": 9.5}
    assert "devsim_error" in parse_devsim("Traceback (most recent call last): boom")
    assert "devsim_error" in parse_devsim("")
