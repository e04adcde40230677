"""The dispatch core: accepted notifications in, device outcomes out, in batches.

The edge calls `submit()` for each accepted notification; that only records it (pending) and
appends it to the current batch. `flush()` hands the batch to the fleet's OS policies once per
event-loop tick, so there is no task and no timer per notification.
"""
from __future__ import annotations

from typing import Callable, Protocol

from .ledger import Ledger
from .notification import Notification


_SHARE_MAX = 4096          # distinct payloads shared (cleared wholesale when full)
_SHARE_MAX_BODY = 1024     # larger payloads are kept as they came


class Policy(Protocol):
    def handle(self, batch: list[Notification]) -> None: ...


class DeliverAtOnce:
    """The simplest policy: every accepted notification reaches its app at once (ledger and dispatch tests)."""

    def __init__(self, ledger: Ledger, now: Callable[[], float]) -> None:
        self.ledger, self.now = ledger, now

    def handle(self, batch: list[Notification]) -> None:
        t = self.now()
        for n in batch:
            if n.drop_reason:
                self.ledger.drop(n.seq, n.drop_reason, t)
            else:
                self.ledger.deliver(n.seq, t)


class Dispatcher:
    def __init__(self, ledger: Ledger, policy: Policy,
                 schedule: Callable[[Callable[[], None]], object] | None = None) -> None:
        self.ledger = ledger
        self.policy = policy
        self._schedule = schedule      # e.g. loop.call_soon; None = flush synchronously
        self._batch: list[Notification] = []
        self._scheduled = False
        self._payloads: dict[bytes, bytes] = {}

    def submit(self, note: Notification) -> int:
        # Senders repeat payloads (one body to many installs, load tests): retained notifications
        # share one bytes object per distinct small body instead of each keeping its own copy.
        payload = note.payload
        if len(payload) <= _SHARE_MAX_BODY:
            payloads = self._payloads
            shared = payloads.get(payload)
            if shared is None:
                if len(payloads) >= _SHARE_MAX:
                    payloads.clear()
                payloads[payload] = payload
            elif shared is not payload:
                note.payload = shared
        seq = self.ledger.accept(note)
        if self._schedule is None:
            # Synchronous: the batch is this one notification (a timer that submits while a batch is
            # being handled gets its own nested call, as a flush would give it), so skip the list swap.
            self.policy.handle([note])
            return seq
        self._batch.append(note)
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.flush)
        return seq

    def flush(self) -> None:
        self._scheduled = False
        batch, self._batch = self._batch, []
        if batch:
            self.policy.handle(batch)
