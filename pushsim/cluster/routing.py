"""Sans-IO routing between workers: ownership, per-peer batches, and consistent snapshots.

Install i is owned by worker i % N. Any worker may accept a request; a notification for an install
it does not own goes into that owner's outbox and is counted in `sent[owner]`; the owner counts it
in `recv[sender]` as it submits it to its own dispatcher (and so its ledger). The caller moves the
outboxes onto FIFO channels once per event-loop tick (`take_outbox`).

Snapshots follow Chandy-Lamport: a worker records (ledger stats, sent, recv) at the first of {the
hub's request k, marker k from any peer}, then puts marker k on every outgoing channel behind what
is already queued there. Because channels are FIFO, everything a receiver counted in `recv` before
its snapshot was counted in the sender's `sent` before its snapshot, so Σ sent − Σ recv is exactly
the number of notifications on the wire in that cut (never negative), and
accepted = Σ ledger.accepted + in transit balances.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

from device_sim.notification import Notification

from .merge import merge_funnels

# On a peer channel a notification is the tuple of the fields the sender set (the wire facts, in
# declaration order, then the extra dict or None); the owner's ledger gives it its seq and outcome.
# Every other message is a shorter tuple whose first item is its tag.
WIRE_FIELDS: tuple[str, ...] = ("service", "token", "install", "message_id", "received_at", "push_type",
                                "priority", "payload", "expiration", "collapse_id", "content_available",
                                "drop_reason")
NOTE_LEN = len(WIRE_FIELDS) + 1
MARKER = "m"              # (MARKER, k); any other short message goes to `on_control`


def note_to_tuple(n: Notification) -> tuple[Any, ...]:
    return (n.service, n.token, n.install, n.message_id, n.received_at, n.push_type, n.priority, n.payload,
            n.expiration, n.collapse_id, n.content_available, n.drop_reason, n.extra_or_none or None)


def note_from_tuple(t: tuple[Any, ...]) -> Notification:
    n = Notification(*t[:-1])
    if t[-1]:
        n.extra.update(t[-1])
    return n


assert tuple(f.name for f in fields(Notification))[:len(WIRE_FIELDS)] == WIRE_FIELDS, \
    "Notification changed: update note_to_tuple / note_from_tuple"


def owner_of(install: int, workers: int) -> int:
    return install % workers


@dataclass(slots=True)
class Snapshot:
    k: int
    worker: int
    ledger: dict[str, Any]      # Ledger.stats() at the snapshot
    sent: list[int]             # notifications handed to each peer so far (cumulative)
    recv: list[int]             # notifications taken from each peer so far (cumulative)
    extra: dict[str, Any]


class Router:
    """One worker's side. `submit` has the `Dispatcher.submit` signature, so it can stand in for it."""

    def __init__(self, me: int, workers: int, submit_local: Callable[[Notification], int],
                 ledger_stats: Callable[[], dict[str, Any]], *,
                 request_flush: Callable[[], None] = lambda: None,
                 on_snapshot: Callable[[Snapshot], None] = lambda s: None,
                 on_control: Callable[[int, tuple[Any, ...]], None] = lambda peer, msg: None,
                 snapshot_extra: Callable[[], dict[str, Any]] = dict) -> None:
        if not 0 <= me < workers:
            raise ValueError(f"worker {me} of {workers}")
        self.me, self.n = me, workers
        self.submit_local = submit_local
        self.ledger_stats = ledger_stats
        self.request_flush = request_flush
        self.on_snapshot = on_snapshot
        self.on_control = on_control
        self.snapshot_extra = snapshot_extra
        self.sent = [0] * workers
        self.recv = [0] * workers
        self.out: list[list[tuple[Any, ...]]] = [[] for _ in range(workers)]
        self.last_snapshot = 0
        self._flush_asked = False

    # the hot path ---------------------------------------------------------------------------
    def submit(self, note: Notification) -> int:
        owner = note.install % self.n
        if owner == self.me:
            return self.submit_local(note)
        self.out[owner].append(note_to_tuple(note))
        self.sent[owner] += 1
        if not self._flush_asked:
            self._flush_asked = True
            self.request_flush()
        return -1

    def receive(self, peer: int, messages: list[tuple[Any, ...]]) -> None:
        """A batch from `peer`, in the order it was sent."""
        submit, n_len = self.submit_local, NOTE_LEN
        received = 0
        for msg in messages:
            if len(msg) == n_len:
                received += 1
                submit(note_from_tuple(msg))
            else:
                self.recv[peer] += received     # counted before a marker can snapshot them
                received = 0
                if msg[0] == MARKER:
                    self._snapshot(msg[1])
                else:
                    self.on_control(peer, msg)
        self.recv[peer] += received

    def take_outbox(self) -> list[tuple[int, list[tuple[Any, ...]]]]:
        """(peer, messages) for every peer with something queued; the outboxes start empty again."""
        self._flush_asked = False
        out = []
        for peer, msgs in enumerate(self.out):
            if msgs:
                out.append((peer, msgs))
                self.out[peer] = []
        return out

    # replication and snapshots --------------------------------------------------------------
    def broadcast(self, msg: tuple[Any, ...]) -> None:
        """Queue a control message for every peer (same FIFO order as the notifications)."""
        for peer in range(self.n):
            if peer != self.me:
                self.out[peer].append(msg)
        if self.n > 1 and not self._flush_asked:
            self._flush_asked = True
            self.request_flush()

    def request_snapshot(self, k: int) -> Snapshot | None:
        """The hub asks for snapshot k; None when a peer's marker already made us take it."""
        return self._snapshot(k)

    def _snapshot(self, k: int) -> Snapshot | None:
        if k <= self.last_snapshot:
            return None
        self.last_snapshot = k
        snap = Snapshot(k, self.me, self.ledger_stats(), list(self.sent), list(self.recv), self.snapshot_extra())
        self.broadcast((MARKER, k))
        self.on_snapshot(snap)
        return snap


def combine(snaps: list[Snapshot]) -> dict[str, Any]:
    """Cluster-wide /stats from one consistent snapshot per worker (see the module docstring)."""
    in_transit = sum(sum(s.sent) for s in snaps) - sum(sum(s.recv) for s in snaps)
    if in_transit < 0:
        raise AssertionError(f"inconsistent snapshot: {in_transit} notifications in transit")
    out = merge_funnels([s.ledger for s in sorted(snaps, key=lambda s: s.worker)])
    out["accepted"] += in_transit
    if in_transit:
        out["pending"]["in-transit"] = out["pending"].get("in-transit", 0) + in_transit
    return out
