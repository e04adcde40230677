"""Journal export and replay: re-run a live session's accepted notifications in virtual time.

The export is JSONL: a header (seed, fleet, rule settings, the device time of the export and the
outcome digest at that moment), then every state change made from outside, then one line per
accepted notification with its arrival time on the device clock. Replaying it with the same seed
re-creates every install from (seed, index) and makes every decision again; since a live run's
timers fire at their logical deadlines, the replay's digest equals the live one.
"""
from __future__ import annotations

import base64
import gc
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator

import orjson

from .fleet import PLATFORM_NAMES, App
from .ledger import Record
from .notification import Notification, Outcome
from .params import SimParams
from .profile import FleetMix, utc_offset_minutes
from .sim import digest_of, outcome_digest
from .world import World, WorldSettings

FORMAT = "pushsim-journal/1"


@dataclass(slots=True)
class ExportSnapshot:
    """What an export needs, copied from a live world on its event loop: the containers, and the
    fields of each notification that can still change. Copying is cheap (no serialization, no
    hashing); `export_lines` then does the expensive part anywhere — another thread while the fakes
    keep serving (a 200k-request journal took the loop 2.5 s to serialize where it stood)."""
    header: dict[str, Any]
    interventions: list[tuple[float, int, int, dict[str, Any]]]
    # (notification, outcome, reason, settled_at, held, ready, version, at): the mutable fields as copied
    notes: list[tuple[Notification, Outcome, str | None, float | None, Any, Any, Any, float | None]]
    entries: list[Any]                              # journal entries (not changed once journaled)
    goaways: list[tuple[Any, int, list[float]]]     # (record, late, late_t) as copied
    installs: list[tuple[int, float | None, bool]]  # (install, last open, uninstalled)
    device: Any                                     # the clock's wall → device time (pure)


def snapshot(world: World) -> ExportSnapshot:
    """Copy what `export_lines` needs from the world. Call it on the world's event loop."""
    sim, ledger, fleet, clock = world.device_sim, world.ledger, world.fleet, world.clock
    if clock.mode != "virtual":
        sim.advance()
    cfg = world.settings
    header = {
        "type": "header", "format": FORMAT, "seed": cfg.seed, "clock": clock.spec(),
        "now": sim.sched.now, "digest": None, "complete": ledger.forgotten == 0,   # digest: export_lines
        "accepted": ledger.accepted, "environment": cfg.environment,
        "apps": [[a.bundle_id, a.package] for a in fleet.apps],
        **fleet.runs(),
        "params": sim.params.to_dict(), "mix": asdict(sim.mix),
        "metrics": sim.stats(),      # the fleet's app metrics at export time (for the report)
    }
    if world.experiment is not None:     # arms are derived from it, install by install, by a reader
        header["experiment"] = world.experiment.describe()
        header["experiment_outcomes"] = sim.experiment_outcomes()   # per-arm outcomes (device_sim.lift)
    app = sim.app
    # The copy makes ~100k tuples of existing objects and no cycles, but in a big heap the
    # collections those allocations trigger cost 10x the copy itself (364 ms against 30 ms for 110k
    # notifications): the collector waits until it is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return ExportSnapshot(
            header, list(sim.interventions),
            [(n, n.outcome, n.reason, n.settled_at, n.held, n.ready, n.version, n.at)
             for n in ledger.records.values()],         # in seq order
            list(world.journal.entries),
            [(g, g.late, list(g.late_t)) for g in world.journal.goaways],
            [(index, app.last_open(sim.devices[index]), index in fleet.uninstalled) for index in sorted(sim.devices)],
            clock.device)
    finally:
        if collecting:
            gc.enable()


def export_jsonl(world: World) -> Iterator[str]:
    """The world's accepted notifications as JSONL lines (each ends with a newline), for replay."""
    return export_lines(snapshot(world))


def export_lines(snap: ExportSnapshot) -> Iterator[str]:
    """The JSONL lines of a snapshot; safe off the world's loop (reads only what the snapshot copied
    and fields that never change once set)."""
    device = snap.device
    header = dict(snap.header)
    header["digest"] = digest_of((n.seq, outcome.value, reason, settled_at)
                                 for n, outcome, reason, settled_at, *_ in snap.notes)
    yield orjson.dumps(header).decode() + "\n"
    for t, pos, index, changes in snap.interventions:
        yield orjson.dumps({"type": "state", "t": t, "pos": pos, "install": index, "set": changes}).decode() + "\n"
    for n, outcome, reason, settled_at, held, ready, version, at in snap.notes:
        exp = n.expiration
        yield orjson.dumps({
            "type": "accepted", "seq": n.seq, "service": n.service, "token": n.token, "install": n.install,
            "message_id": n.message_id, "t": n.received_at,
            "at": at if at is not None else device(n.received_at),
            "push_type": n.push_type, "priority": n.priority,
            "expiration": exp, "exp_at": exp if exp in (None, 0.0) else device(exp),
            "collapse_id": n.collapse_id, "content_available": n.content_available,
            "drop_reason": n.drop_reason, "payload": base64.b64encode(n.payload).decode(),
            # what the ledger and the device made of it (the report reads these; replay ignores them)
            "outcome": outcome.value, "outcome_reason": reason, "settled_at": settled_at,
            "held": held, "ready": ready, "version": version, "size": len(n.payload),
            "label": analytics_label(n.payload) if n.service == "fcm" else None,
        }).decode() + "\n"
    # The report's inputs beside the replay's: the journal (every request, rejected ones too) and
    # the installs that got traffic (time zone, last open, uninstalled).
    for e in snap.entries:
        d = e.to_json(digest=True)     # headers and payload text stay out: the export stays small
        d["type"], d["at"] = "request", device(e.t)
        yield orjson.dumps(d).decode() + "\n"
    for g, late, late_t in snap.goaways:     # GOAWAYs sent, and the streams opened after them
        d = g.to_json()
        d["late"], d["late_t"] = late, late_t
        d["type"], d["at"] = "goaway", device(g.t)
        d["late_at"] = [device(x) for x in late_t]
        yield orjson.dumps(d).decode() + "\n"
    seed = snap.header["seed"]
    for index, opened_at, uninstalled in snap.installs:
        yield orjson.dumps({"type": "install", "install": index, "tz_minutes": utc_offset_minutes(seed, index),
                            "opened_at": opened_at, "uninstalled": uninstalled}).decode() + "\n"


def analytics_label(payload: bytes) -> str | None:
    """The FCM message's analytics label (fcm_options, or android.fcm_options), if it has one."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    msg = doc.get("message") if isinstance(doc, dict) else None
    if not isinstance(msg, dict):
        return None
    for scope in (msg, msg.get("android")):
        opts = scope.get("fcm_options") if isinstance(scope, dict) else None
        if isinstance(opts, dict) and isinstance(opts.get("analytics_label"), str):
            return str(opts["analytics_label"])
    return None


@dataclass(slots=True)
class ReplayResult:
    digest: str
    live_digest: str | None
    complete: bool
    funnel: dict[str, object]
    metrics: dict[str, object]
    notifications: int
    wall_seconds: float
    trace: list[dict[str, object]] = field(default_factory=list)
    world: World | None = field(default=None, repr=False)    # the replayed world (for an HTML report)

    @property
    def matches(self) -> bool:
        return self.live_digest is not None and self.digest == self.live_digest

    def to_json(self) -> dict[str, object]:
        return {"digest": self.digest, "live_digest": self.live_digest, "matches": self.matches,
                "complete": self.complete, "notifications": self.notifications, "funnel": self.funnel,
                "metrics": self.metrics, "wall_seconds": round(self.wall_seconds, 4), "trace": self.trace}


def _mix_from(d: dict[str, Any]) -> FleetMix:
    return FleetMix.from_dict({k: v for k, v in d.items()})


def replay(lines: Iterable[str], seed: int | None = None, trace: int | None = None) -> ReplayResult:
    """Re-run an exported journal in virtual time; `trace` = a seq whose every transition to record."""
    header: dict[str, Any] | None = None
    states: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for line in lines:
        if not line.strip():
            continue
        doc = orjson.loads(line)
        kind = doc.get("type")
        if kind == "header":
            header = doc
        elif kind == "state":
            states.append(doc)
        elif kind == "accepted":
            notes.append(doc)
    if header is None or header.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} export (no header line)")
    seed = int(header["seed"]) if seed is None else seed
    first = min([n["at"] for n in notes] + [s["t"] for s in states] + [float(header["now"])])
    apps = header.get("apps") or [["com.example.app", "com.example.app"]]
    # The same world the live run used, on the virtual clock.
    settings = WorldSettings(devices="0", seed=seed, clock="virtual", environment=header.get("environment", "sandbox"),
                             bundle_id=apps[0][0], start=first)
    world = World(settings, rules=(SimParams.from_dict(header["params"]), _mix_from(header["mix"])))
    fleet = world.fleet
    for a in apps[1:]:
        fleet.add_app(App(a[0], a[1]))
    envs = [e for e, c in header["env_of"] for _ in range(c)]
    app_of = [a for a, c in header["app_of"] for _ in range(c)]
    i = 0
    for platform, count in header["platforms"]:
        for _ in range(count):
            fleet.add(PLATFORM_NAMES[platform], app=app_of[i], environment=("sandbox", "production")[envs[i]])
            i += 1

    steps: list[dict[str, object]] = []
    export_seqs = [int(nd["seq"]) for nd in sorted(notes, key=lambda n: n["seq"])]
    if trace is not None and trace not in set(export_seqs):
        span = f"{export_seqs[0]}..{export_seqs[-1]}" if export_seqs else "none"
        raise LookupError(f"no notification with seq {trace} in this export (its seqs: {span})")
    target = -1                   # the traced notification's seq in the replay's own ledger
    last_on_install: list[int] = [-1]
    waiting_for_successor = [False]
    if trace is not None:
        def on_event(rec: Record, at: float | None) -> None:
            note = rec.note
            if note.seq != target:
                if target >= 0 and note.install == traced_install[0]:
                    if waiting_for_successor[0]:     # the push whose arrival coalesced the traced one
                        steps[-1]["superseded_by"] = export_seqs[note.seq]
                        waiting_for_successor[0] = False
                    last_on_install[0] = note.seq
                return
            step: dict[str, object] = {"t": world.sched.now, "outcome": rec.outcome.value, "reason": rec.reason}
            steps.append(step)
            if rec.reason in ("collapsed", "collapse-key-limit") and last_on_install[0] >= 0:
                # FCM: the newer message with the key was stored just before the old one went
                step["superseded_by"] = export_seqs[last_on_install[0]]
            elif rec.reason in ("coalesced", "superseded"):
                waiting_for_successor[0] = True      # iOS: the newer push is handled right after
        world.ledger.subscribe(on_event)
    traced_install = [-1]

    sim, sched = world.device_sim, world.sched
    states.sort(key=lambda s: (s["pos"], s["t"]))
    notes.sort(key=lambda n: n["seq"])
    k = 0
    t0 = time.perf_counter()
    for nd in notes:
        while k < len(states) and states[k]["pos"] <= world.ledger.accepted:
            sched.run_until(states[k]["t"])
            sim.set_state(int(states[k]["install"]), **states[k]["set"])
            k += 1
        n = Notification(nd["service"], nd["token"], int(nd["install"]), nd["message_id"], float(nd["at"]),
                         nd["push_type"], int(nd["priority"]), base64.b64decode(nd["payload"]),
                         expiration=nd["exp_at"], collapse_id=nd["collapse_id"],
                         content_available=bool(nd["content_available"]), drop_reason=nd["drop_reason"])
        if trace is not None and nd["seq"] == trace:
            target, traced_install[0] = world.ledger.next_seq, n.install
            steps.insert(0, {"t": n.received_at, "outcome": "pending", "reason": "queued",
                             "message_id": n.message_id, "install": n.install})
        world.dispatcher.submit(n)
    for s in states[k:]:
        sched.run_until(s["t"])
        sim.set_state(int(s["install"]), **s["set"])
    sched.run_until(float(header["now"]))
    wall = time.perf_counter() - t0
    world.ledger.check()
    return ReplayResult(outcome_digest(world.ledger), header.get("digest"), bool(header.get("complete", True)),
                        world.ledger.stats(), sim.stats(), len(notes), wall, steps, world)
