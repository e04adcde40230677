"""Accounting: every accepted notification is exactly one of pending(reason), delivered, dropped(reason).

Counters are exact at all times; per-notification records are kept for the journal, replay and
`/devices/{token}`, up to a cap beyond which only settled records are forgotten.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from .notification import Notification, Outcome


@dataclass(slots=True)
class Record:
    note: Notification
    outcome: Outcome
    reason: str | None
    settled_at: float | None = None


class Ledger:
    def __init__(self, record_limit: int = 1_000_000) -> None:
        self.record_limit = record_limit
        # Observers of settle / re-pend events (e.g. the control API's /events stream). An empty list
        # keeps the hot path to one truthiness test per transition.
        self._subscribers: list[Callable[[Record, float | None], None]] = []
        self.reset()

    def subscribe(self, callback: Callable[[Record, float | None], None]) -> Callable[[], None]:
        """Call `callback(record, at)` after each deliver, drop or re-pend; returns an unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    def _emit(self, rec: Record, at: float | None) -> None:
        for cb in tuple(self._subscribers):
            cb(rec, at)

    def reset(self) -> None:
        self.accepted = 0
        self.delivered = 0
        self.rejected: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.pending: Counter[str] = Counter()
        self.records: dict[int, Record] = {}
        self.by_install: dict[int, list[int]] = {}
        self._next_seq = 0
        self.forgotten = 0

    # transitions ---------------------------------------------------------------------------
    def accept(self, note: Notification, pending_reason: str = "queued") -> int:
        seq = note.seq = self._next_seq
        self._next_seq += 1
        self.accepted += 1
        self.pending[pending_reason] += 1
        self.records[seq] = Record(note, Outcome.PENDING, pending_reason)
        self.by_install.setdefault(note.install, []).append(seq)
        if len(self.records) > self.record_limit:
            self._forget()
        return seq

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def _leave_pending(self, seq: int) -> Record:
        rec = self.records[seq]
        if rec.outcome is not Outcome.PENDING:
            raise ValueError(f"notification {seq} already {rec.outcome.value}")
        # Plain dict operations: Counter's own __delitem__ is Python code, and this runs per settle.
        key, pending = rec.reason or "", self.pending
        left = pending[key] - 1
        if left:
            pending[key] = left
        else:
            dict.__delitem__(pending, key)
        return rec

    def repend(self, seq: int, reason: str) -> None:
        """Still pending, now for another reason (e.g. queued → held-by-budget)."""
        rec = self._leave_pending(seq)
        rec.reason = reason
        self.pending[reason] += 1
        if self._subscribers:
            self._emit(rec, None)

    def deliver(self, seq: int, at: float | None = None) -> None:
        rec = self._leave_pending(seq)
        rec.outcome, rec.reason, rec.settled_at = Outcome.DELIVERED, None, at
        self.delivered += 1
        if self._subscribers:
            self._emit(rec, at)

    def drop(self, seq: int, reason: str, at: float | None = None) -> None:
        rec = self._leave_pending(seq)
        rec.outcome, rec.reason, rec.settled_at = Outcome.DROPPED, reason, at
        self.dropped[reason] += 1
        if self._subscribers:
            self._emit(rec, at)

    def _forget(self) -> None:
        # Drop the oldest settled records; counters stay exact, only the detail is lost.
        for seq in list(self.records)[: max(1, self.record_limit // 10)]:
            if self.records[seq].outcome is not Outcome.PENDING:
                del self.records[seq]
                self.forgotten += 1

    # views ---------------------------------------------------------------------------------
    def pending_total(self) -> int:
        return sum(self.pending.values())

    def check(self) -> None:
        """The accounting invariant; cheap enough to call from tests after every step."""
        total = self.delivered + sum(self.dropped.values()) + self.pending_total()
        if total != self.accepted:
            raise AssertionError(f"accepted {self.accepted} != delivered+dropped+pending {total}")

    def stats(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "delivered": self.delivered,
            "dropped": dict(self.dropped),
            "pending": dict(self.pending),
        }

    def deliveries(self, install: int) -> list[dict[str, object]]:
        out = []
        for seq in self.by_install.get(install, ()):
            rec = self.records.get(seq)
            if rec is None:
                continue
            n = rec.note
            out.append({"seq": seq, "service": n.service, "id": n.message_id, "push_type": n.push_type,
                        "priority": n.priority, "received_at": n.received_at,
                        "outcome": rec.outcome.value, "reason": rec.reason, "settled_at": rec.settled_at})
        return out
