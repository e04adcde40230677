"""Report inputs from a live world: the journal export's records, without a file in between."""
from __future__ import annotations

from typing import Any

import orjson

from device_sim.replay import export_jsonl
from device_sim.world import World


def records_of(world: World) -> list[dict[str, Any]]:
    """The world's export as dicts (a snapshot: traffic may go on after this returns). Call it on
    the world's event loop; the analysis of the records may then run anywhere."""
    return [orjson.loads(line) for line in export_jsonl(world)]
