"""The request journal: every request the fakes answered, with its response, in arrival order.

Non-consuming (reading never removes), bounded (oldest entries go first), and queryable by token and
by entry id, WireMock-style. Accepted entries keep their Notification so a run can be replayed.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

from .notification import Notification


@dataclass(slots=True)
class Entry:
    id: int
    t: float                 # wall seconds at arrival
    service: str             # "apns" | "fcm" | "oauth" | "iid"
    method: str
    path: str
    token: str | None
    status: int
    reason: str | None       # APNs reason / FCM errorCode / OAuth error; None on success
    message_id: str | None
    note: Notification | None = None

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {"id": self.id, "t": self.t, "service": self.service, "method": self.method,
                                "path": self.path, "token": self.token, "status": self.status,
                                "reason": self.reason, "message_id": self.message_id}
        if self.note is not None:
            d["seq"] = self.note.seq
        return d


IdAllocator = Callable[[float, int], int]     # (entry time, next free id) → the id to give the entry


class Journal:
    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._ids: IdAllocator | None = None
        self.reset()

    def allocate_ids(self, ids: IdAllocator) -> None:
        """Take entry ids from `ids` instead of counting 0, 1, 2, ... It must return an id at least
        the next free one (ids stay increasing); e.g. a cluster worker's time-ordered ids."""
        self._ids = ids

    def reset(self) -> None:
        self.entries: deque[Entry] = deque(maxlen=self.limit)
        self.next_id = 0

    def add(self, t: float, service: str, method: str, path: str, token: str | None, status: int,
            reason: str | None, message_id: str | None, note: Notification | None = None) -> Entry:
        ids = self._ids
        eid = self.next_id if ids is None else ids(t, self.next_id)
        e = Entry(eid, t, service, method, path, token, status, reason, message_id, note)
        self.next_id = eid + 1
        self.entries.append(e)
        return e

    def query(self, token: str | None = None, since: int = 0, limit: int = 100,
              service: str | None = None) -> list[Entry]:
        out: list[Entry] = []
        for e in self.entries:
            if e.id < since or (token is not None and e.token != token):
                continue
            if service is not None and e.service != service:
                continue
            out.append(e)
            if len(out) >= limit:
                break
        return out
