"""Accounting: every accepted notification is exactly one of pending(reason), delivered, dropped(reason).

Counters are exact at all times. Per-notification detail (for the journal export, replay and
`/devices/{token}`) is kept for at least the newest `record_limit` notifications (at most 10% more)
plus every older one that is still pending; older settled ones are forgotten (`forgotten` counts
them; one that settles after the window passed it goes at the window's next move).

Compact by design, since a million-install run may retain hundreds of thousands of them: the
notification object carries its own outcome and reason (no record object per notification), the
retained ones sit in a list indexed by seq (no dict entry, no int key), and the per-install index
is one int per install plus a `prev` link in each notification (no list per install).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Callable

from .notification import Notification, Outcome

# What the ledger keeps per notification is the notification itself; `Record` stays as the name
# observers and older callers use (`rec.note`, `rec.outcome`, `rec.reason`, `rec.settled_at`).
Record = Notification

_PENDING, _DELIVERED, _DROPPED = Outcome.PENDING, Outcome.DELIVERED, Outcome.DROPPED


class RecordWindow(Mapping[int, Notification]):
    """seq → notification for the retained ones: a window [base, base + len) of consecutive seqs in
    a list (None = forgotten), plus the older ones still retained (pending when the window moved)."""

    __slots__ = ("_items", "base", "_old")

    def __init__(self) -> None:
        self._items: list[Notification | None] = []
        self.base = 0
        self._old: dict[int, Notification] = {}

    def append(self, note: Notification) -> None:
        self._items.append(note)

    def get(self, seq: int, default: Notification | None = None) -> Notification | None:  # type: ignore[override]
        i = seq - self.base
        if i >= 0:
            try:
                n = self._items[i]
            except IndexError:
                return default
            return default if n is None else n
        return self._old.get(seq, default)

    def __getitem__(self, seq: int) -> Notification:
        n = self.get(seq)
        if n is None:
            raise KeyError(seq)
        return n

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and self.get(seq) is not None

    def __iter__(self) -> Iterator[int]:
        yield from sorted(self._old)
        base = self.base
        for i, n in enumerate(self._items):
            if n is not None:
                yield base + i

    def __len__(self) -> int:
        return len(self._old) + sum(1 for n in self._items if n is not None)

    def values(self) -> list[Notification]:  # type: ignore[override]
        """The retained notifications in seq order, as a list: one pass, not a lookup per seq
        (an export copies 100k of them on the event loop)."""
        old = self._old
        return [old[k] for k in sorted(old)] + [n for n in self._items if n is not None]

    def window(self) -> int:
        return len(self._items)

    def slide(self, count: int) -> list[Notification]:
        """Move the window's oldest `count` slots out: pending ones stay (as old), settled ones go.
        Returns the notifications forgotten."""
        head = self._items[:count]
        del self._items[:count]
        self.base += len(head)
        gone = []
        old = self._old
        for n in head:
            if n is None:
                continue
            if n.outcome is _PENDING:
                old[n.seq] = n
            else:
                gone.append(n)
        return gone

    def purge_old(self) -> list[Notification]:
        """Forget the old ones that have settled since the window moved past them."""
        gone = [n for n in self._old.values() if n.outcome is not _PENDING]
        for n in gone:
            del self._old[n.seq]
        return gone

    def old_count(self) -> int:
        return len(self._old)


class Ledger:
    def __init__(self, record_limit: int = 100_000) -> None:
        # 100k: at a million active installs each retained notification (~600 bytes with its token,
        # id and payload) counts; 100k keeps a 1M-install fleet that got a push each under 1 GiB.
        self.record_limit = max(1, record_limit)
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
        self.records = RecordWindow()
        self.by_install: dict[int, int] = {}      # install → seq of its newest retained notification
        self._next_seq = 0
        self.forgotten = 0
        self._old_settled = 0

    @property
    def next_seq(self) -> int:
        """The seq the next accepted notification gets: a position in the traffic (replays use it)."""
        return self._next_seq

    # transitions ---------------------------------------------------------------------------
    # accept / repend_note / deliver_note / drop_note run once or twice per notification: they use
    # plain dict operations (Counter's own methods are Python code) and no helper calls.
    def accept(self, note: Notification, pending_reason: str = "queued") -> int:
        seq = self._next_seq
        note.seq = seq
        self._next_seq = seq + 1
        self.accepted += 1
        pending = self.pending
        pending[pending_reason] = pending.get(pending_reason, 0) + 1
        note.outcome = _PENDING
        note.reason = pending_reason
        by_install = self.by_install
        install = note.install
        note.prev = by_install.get(install, -1)
        by_install[install] = seq
        items = self.records._items     # RecordWindow.append, without the call
        items.append(note)
        limit = self.record_limit
        if len(items) > limit + (limit // 10 or 1):
            self._forget()
        return seq

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def _note(self, seq: int) -> Notification:
        note = self.records.get(seq)
        if note is None:
            raise KeyError(seq)
        return note

    # By notification: what the fleet calls (no lookup). The seq forms below are the stable API.
    def repend_note(self, note: Notification, reason: str) -> None:
        """Still pending, now for another reason (e.g. queued → held-by-budget)."""
        if note.outcome is not _PENDING:
            raise ValueError(f"notification {note.seq} already {note.outcome.value}")
        key, pending = note.reason or "", self.pending
        left = pending[key] - 1
        if left:
            pending[key] = left
        else:
            dict.__delitem__(pending, key)
        note.reason = reason
        pending[reason] = pending.get(reason, 0) + 1
        if self._subscribers:
            self._emit(note, None)

    # deliver_note and drop_note each inline the same "leave pending" steps: they run once per
    # notification, and a shared helper call costs more than the lines it would save.
    def deliver_note(self, note: Notification, at: float | None = None) -> None:
        if note.outcome is not _PENDING:
            raise ValueError(f"notification {note.seq} already {note.outcome.value}")
        key, pending = note.reason or "", self.pending
        left = pending[key] - 1
        if left:
            pending[key] = left
        else:
            dict.__delitem__(pending, key)
        note.outcome = _DELIVERED
        note.reason = None
        note.settled_at = at
        self.delivered += 1
        if note.seq < self.records.base:
            self._old_settle()
        if self._subscribers:
            self._emit(note, at)

    def drop_note(self, note: Notification, reason: str, at: float | None = None) -> None:
        if note.outcome is not _PENDING:
            raise ValueError(f"notification {note.seq} already {note.outcome.value}")
        key, pending = note.reason or "", self.pending
        left = pending[key] - 1
        if left:
            pending[key] = left
        else:
            dict.__delitem__(pending, key)
        note.outcome = _DROPPED
        note.reason = reason
        note.settled_at = at
        if note.seq < self.records.base:
            self._old_settle()
        dropped = self.dropped
        dropped[reason] = dropped.get(reason, 0) + 1
        if self._subscribers:
            self._emit(note, at)

    def repend(self, seq: int, reason: str) -> None:
        self.repend_note(self._note(seq), reason)

    def deliver(self, seq: int, at: float | None = None) -> None:
        self.deliver_note(self._note(seq), at)

    def drop(self, seq: int, reason: str, at: float | None = None) -> None:
        self.drop_note(self._note(seq), reason, at)

    def _forget(self) -> None:
        # Move the window past its oldest tenth; settled ones there are forgotten (counters stay
        # exact, only the detail goes), pending ones stay until they settle.
        records = self.records
        gone = records.slide(self.record_limit // 10 or 1)
        if self._old_settled:                    # some that outlived the window as pending have settled
            gone += records.purge_old()          # (at most one scan of the old ones per slide)
            self._old_settled = 0
        self._gone(gone)

    def _old_settle(self) -> None:
        # One that outlived the window as pending has settled: forget such ones in bulk, without
        # waiting for new traffic to move the window (one scan of the old ones per 10% of the bound).
        self._old_settled += 1
        if self._old_settled >= (self.record_limit // 10 or 1):
            self._old_settled = 0
            self._gone(self.records.purge_old())

    def _gone(self, gone: list[Notification]) -> None:
        by_install = self.by_install
        for n in gone:
            if by_install.get(n.install) == n.seq:
                del by_install[n.install]
        self.forgotten += len(gone)

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
        """The install's retained notifications, oldest first. The per-install chain ends at the
        first forgotten one, so this lists the install's traffic within the retention bound."""
        out = []
        get = self.records.get
        seq = self.by_install.get(install, -1)
        while seq >= 0:
            n = get(seq)
            if n is None or n.install != install:
                break
            out.append({"seq": seq, "service": n.service, "id": n.message_id, "push_type": n.push_type,
                        "priority": n.priority, "received_at": n.received_at,
                        "outcome": n.outcome.value, "reason": n.reason, "settled_at": n.settled_at})
            seq = n.prev
        out.reverse()
        return out
