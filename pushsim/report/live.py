"""Report inputs from a live world: the journal export's records, without a file in between."""
from __future__ import annotations

from typing import Any

import orjson

from device_sim.replay import export_jsonl
from device_sim.world import World

from . import build_report
from .policy import Policy


def records_of(world: World) -> list[dict[str, Any]]:
    """The world's export as dicts (a snapshot: traffic may go on after this returns)."""
    return [orjson.loads(line) for line in export_jsonl(world)]


def report_of_world(world: World, policy: Policy | None = None) -> dict[str, object]:
    return build_report(records_of(world), policy)
