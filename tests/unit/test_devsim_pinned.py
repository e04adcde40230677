"""Pinned outcomes: the example scenarios' digests and event counts at seed 1, as the code before the
issue-15 speed work produced them. A speed change to device_sim (clock, dispatch, policies, ledger,
draws) must leave every one unchanged; a digest that moves means an outcome moved, which is a
semantic change: update the pins only together with the OS-rule change that explains it."""
from __future__ import annotations

from pathlib import Path

import pytest

from device_sim.scenario import run_virtual

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

PINNED = {
    "ios-silent-hourly": ("197338677a711c6185c48e739e45ddd244a465a1a887455d4ceae96af3b1a1a0", 409),
    "android-data-doze": ("6878fd88daaabede58a9ced25d01acfcb8419bbe0a4600e7dfc2bbabde7229fd", 739),
    "offline-overflow": ("c5ae08ef38ef44d235d3c3ba4501c83b3962d01c79dfbe0f8f5ec9c978751ec4", 853),
    "mixed-fleet": ("7c40f7a361b392d6292983dc4282ceb2842834984911601ea11cb997b9449bb8", 58724),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_example_scenario_outcomes_are_the_pinned_ones(name):
    digest, events = PINNED[name]
    s = run_virtual(SCENARIOS / f"{name}.toml", 1, skip_faults=True)
    assert (s.digest, s.events) == (digest, events)
