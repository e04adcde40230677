"""Report inputs from a live world: the journal export's records, without a file in between."""
from __future__ import annotations

from typing import Any

import orjson

from device_sim.replay import ExportSnapshot, analytics_label, export_lines, snapshot
from device_sim.world import World

from .records import Accepted

_LABEL = b"analytics_label"


def records_of(world: World) -> list[dict[str, Any]]:
    """The world's export as dicts (a snapshot: traffic may go on after this returns). Call it on
    the world's event loop; or take `snapshot(world)` there and `records_of_snapshot` anywhere."""
    return records_of_snapshot(snapshot(world))


def records_of_snapshot(snap: ExportSnapshot) -> list[dict[str, Any]]:
    """The export of a snapshot as dicts; safe off the world's loop (device_sim.replay.export_lines)."""
    return [orjson.loads(line) for line in export_lines(snap)]


def fcm_accepted(world: World) -> list[Accepted]:
    """The ledger's retained FCM notifications as report inputs, read from the records directly:
    what `deliveryData` needs, without exporting (and parsing back) the journal, the installs and
    every APNs notification. O(retained notifications): the ledger keeps at most ~1.1 × its
    `record_limit` (100,000 by default). The same values as `load(records_of(world)).accepted`."""
    sim, clock = world.device_sim, world.clock
    if clock.mode != "virtual":
        sim.advance()
    device = clock.device
    out: list[Accepted] = []
    for n in world.ledger.records.values():
        if n.service != "fcm":
            continue
        payload = n.payload
        out.append(Accepted(
            n.seq, "fcm", n.token, n.install, n.at if n.at is not None else device(n.received_at), n.push_type,
            n.priority, n.content_available, len(payload), n.collapse_id, n.outcome.value, n.reason or n.drop_reason,
            n.settled_at, n.version, n.ready,
            analytics_label(payload) if _LABEL in payload else None,     # parse only what can have one
            n.held))
    return out


def ledger_version(world: World) -> tuple[object, ...]:
    """What changes whenever a notification is accepted, settles or waits for another reason (after
    catching the fleet up to now): equal versions, equal `fcm_accepted` outcomes. A reset makes a
    new record window, so its identity is part of it."""
    sim, clock, ledger = world.device_sim, world.clock, world.ledger
    if clock.mode != "virtual":
        sim.advance()
    return (id(ledger.records), ledger.accepted, ledger.delivered, ledger.forgotten,
            tuple(sorted(ledger.dropped.items())), tuple(sorted(ledger.pending.items())))
