"""The `/events` stream's numbering and short memory: every settle / re-pend event gets an `id:`,
and the newest RESUME_WINDOW of them are kept so a browser that lost its connection and comes back
with `Last-Event-ID` gets what it missed (EventSource does that by itself).

One ledger subscription serves every `/events` client. It exists only while someone listens, plus
RESUME_GRACE seconds after the last one left (the time a browser takes to reconnect): a server
nobody watches pays nothing per notification.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable

import orjson

from device_sim.ledger import Ledger, Record

RESUME_WINDOW = 10_000    # events kept for resuming (bounded: ~300 bytes each)
RESUME_GRACE = 30.0       # seconds the log keeps listening after its last client left


def event_json(rec: Record, at: float | None) -> dict[str, Any]:
    n = rec.note
    return {"seq": n.seq, "service": n.service, "token": n.token, "install": n.install,
            "message_id": n.message_id, "outcome": rec.outcome.value, "reason": rec.reason,
            "t": at if at is not None else time.time()}


Client = Callable[[int, str, str | None, bytes], None]   # (id, service, token, SSE frame)


class EventLog:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.next_id = 1
        self.recent: deque[tuple[int, str, str | None, bytes]] = deque(maxlen=RESUME_WINDOW)
        self.clients: set[Client] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._idle: asyncio.TimerHandle | None = None

    def attach(self, client: Client) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._unsubscribe is None:
            self._unsubscribe = self.ledger.subscribe(self._on_event)
        self.clients.add(client)

    def detach(self, client: Client) -> None:
        self.clients.discard(client)
        if not self.clients and self._unsubscribe is not None and self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(RESUME_GRACE, self._stop)

    def _stop(self) -> None:
        self._idle = None
        if not self.clients and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self.clients.clear()
        self._stop()

    def since(self, last_id: int) -> tuple[list[tuple[int, str, str | None, bytes]], bool]:
        """The kept events after `last_id`, and whether some after it are no longer kept."""
        if last_id >= self.next_id:      # an id from before a restart: nothing of ours follows it
            return [], False
        kept = [e for e in self.recent if e[0] > last_id]
        oldest = kept[0][0] if kept else self.next_id
        return kept, oldest > last_id + 1

    def _on_event(self, rec: Record, at: float | None) -> None:
        i = self.next_id
        self.next_id = i + 1
        n = rec.note
        frame = b"id: %d\ndata: " % i + orjson.dumps(event_json(rec, at)) + b"\n\n"
        self.recent.append((i, n.service, n.token, frame))
        for client in tuple(self.clients):
            client(i, n.service, n.token, frame)
