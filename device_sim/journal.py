"""The request journal: every request the fakes answered, with its response, in arrival order.

Non-consuming (reading never removes), bounded (oldest entries go first), and queryable by token,
status, reason, push type, sender, connection and entry id, WireMock-style. Accepted entries keep
their Notification so a run can be replayed.

What the conformance report needs (pushsim/report) is recorded as references to objects the
request already made — the header list, the body, the connection's id and sender — never as new
dicts on the hot path; `to_json` does the formatting. Headers and bodies are kept within a byte
budget: past it, the oldest entries lose them (the entry itself stays, with the body's size).
"""
from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .notification import Notification

HEADER_LIMIT = 4096        # bytes of request headers an entry shows
PAYLOAD_LIMIT = 4096       # bytes of payload an entry shows
DETAIL_BUDGET = 64 << 20   # bytes of headers + bodies the whole journal may hold
_HEADER_COST = 160         # bytes a (name, value) tuple of two short bytes objects costs, roughly
_ENTRY_COST = 64           # what keeping an entry's detail costs at least (its place in the queue)
_REDACTED = "<redacted>"
GOAWAY_LIMIT = 10_000      # GOAWAY records kept (one per connection that got one; the oldest go first)
LATE_TIMES = 20            # arrival times kept per GOAWAY of the streams opened after it (the count is exact)
_SECRET = (b"authorization", b"proxy-authorization")

Headers = Sequence[tuple[bytes, bytes]]


def _text(b: bytes, limit: int) -> str:
    return b[:limit].decode("utf-8", "replace")


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
    conn: int | None = None          # the connection's id (one per TCP connection, per service)
    sender: str | None = None        # APNs "team_id/key_id" or the certificate subject; FCM client_email
    headers: Headers | None = None   # as received (authorization redacted on output)
    body: bytes | None = None
    retry_after: float | None = None # the Retry-After the reply carried
    goaway: bool = False             # the reply came with a GOAWAY on its connection

    def size(self) -> int | None:
        if self.note is not None:
            return len(self.note.payload)
        return None if self.body is None else len(self.body)

    def facts(self) -> dict[str, object]:
        """What the request asked for: push type, priority, collapse id, expiration (from the
        notification when accepted, else from the apns-* headers when the journal still has them)."""
        n = self.note
        if n is not None:
            return {"push_type": n.push_type, "priority": n.priority, "collapse_id": n.collapse_id,
                    "expiration": n.expiration, "content_available": n.content_available}
        out: dict[str, object] = {}
        for name, value in self.headers or ():
            if name == b"apns-push-type":
                out["push_type"] = value.decode("latin-1")
            elif name == b"apns-priority" and value.isdigit():
                out["priority"] = int(value)
            elif name == b"apns-collapse-id":
                out["collapse_id"] = value.decode("utf-8", "replace")
            elif name == b"apns-expiration" and value.isdigit():
                out["expiration"] = float(int(value))
        return out

    def to_json(self, detail: bool = False, digest: bool = False) -> dict[str, object]:
        """The entry as JSON. `digest`: add the body's digest (how the report tells a resend);
        `detail`: also the headers (authorization redacted) and payload text, each bounded."""
        d: dict[str, object] = {"id": self.id, "t": self.t, "service": self.service, "method": self.method,
                                "path": self.path, "token": self.token, "status": self.status,
                                "reason": self.reason, "message_id": self.message_id,
                                "conn": self.conn, "sender": self.sender}
        if self.note is not None:
            d["seq"] = self.note.seq
        d.update(self.facts())
        d["size"] = self.size()
        if self.retry_after is not None:
            d["retry_after"] = self.retry_after
        if self.goaway:
            d["goaway"] = True
        if detail or digest:
            body = self.note.payload if self.note is not None else self.body
            if body is not None:
                d["digest"] = hashlib.blake2b(body, digest_size=8).hexdigest()
                if detail:
                    d["payload"] = _text(body, PAYLOAD_LIMIT)
            if detail and self.headers is not None:
                d["headers"] = redacted_headers(self.headers)
        return d


def redacted_headers(headers: Headers, limit: int = HEADER_LIMIT) -> list[list[str]]:
    """Headers as [name, value] strings, authorization redacted, at most `limit` bytes in all."""
    out: list[list[str]] = []
    left = limit
    for name, value in headers:
        shown = _REDACTED.encode() if name.lower() in _SECRET else value
        left -= len(name) + len(shown)
        if left < 0:
            out.append(["...", "truncated"])
            break
        out.append([name.decode("latin-1"), shown.decode("latin-1")])
    return out


def _cost(e: Entry) -> int:
    """What keeping an entry's headers and body costs, roughly (the byte budget counts this)."""
    body, headers = e.body, e.headers
    return _ENTRY_COST + (len(body) if body is not None else 0) + (_HEADER_COST * len(headers) if headers else 0)


@dataclass(slots=True)
class Goaway:
    """A GOAWAY the server sent on a connection, and the streams the client opened after it.

    Streams above `last_stream_id` are ignored on the wire (RFC 9113 §6.8: never answered, so
    never journaled as requests); the engines count them here, which is all that can be observed
    of a client that did not take the GOAWAY as the end of the connection."""
    t: float                  # wall seconds it was sent
    service: str
    conn: int | None          # the connection's id (as journal entries show it)
    sender: str | None
    last_stream_id: int
    code: int                 # HTTP/2 error code (0 NO_ERROR, 11 ENHANCE_YOUR_CALM, ...)
    debug: str                # the debug data, e.g. {"reason":"Shutdown"} (bounded)
    late: int = 0             # streams opened above last_stream_id after it
    late_t: list[float] = field(default_factory=list)   # wall times of the first LATE_TIMES of them

    def stream_after(self, t: float) -> None:
        self.late += 1
        if len(self.late_t) < LATE_TIMES:
            self.late_t.append(t)

    def to_json(self) -> dict[str, object]:
        return {"t": self.t, "service": self.service, "conn": self.conn, "sender": self.sender,
                "last_stream_id": self.last_stream_id, "code": self.code, "debug": self.debug,
                "late": self.late, "late_t": list(self.late_t)}


FILTERS = ("token", "service", "status", "reason", "push_type", "sender", "connection")


def matcher(**filters: str | None) -> Callable[[Entry], bool]:
    """A predicate for the given filters (names in FILTERS; None or "" = not filtered)."""
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise ValueError(f"unknown filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}")
    tests: list[Callable[[Entry], bool]] = []
    f = {k: v for k, v in filters.items() if v not in (None, "")}
    if "token" in f:
        tests.append(lambda e, v=f["token"]: e.token == v)
    if "service" in f:
        tests.append(lambda e, v=f["service"]: e.service == v)
    if "status" in f:
        tests.append(lambda e, v=_integer(f, "status"): e.status == v)
    if "reason" in f:
        want = f["reason"]
        tests.append(lambda e, v=want: (e.reason or ("ok" if e.status < 300 else "")) == v)
    if "push_type" in f:
        tests.append(lambda e, v=f["push_type"]: e.facts().get("push_type") == v)
    if "sender" in f:
        tests.append(lambda e, v=f["sender"]: e.sender == v)
    if "connection" in f:
        tests.append(lambda e, v=_integer(f, "connection"): e.conn == v)
    return lambda e: all(t(e) for t in tests)


def _integer(filters: dict[str, str | None], name: str) -> int:
    try:
        return int(str(filters[name]))
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {filters[name]!r}") from None


IdAllocator = Callable[[float, int], int]     # (entry time, next free id) → the id to give the entry


class Journal:
    def __init__(self, limit: int = 200_000, detail_budget: int = DETAIL_BUDGET) -> None:
        self.limit = limit
        self.detail_budget = detail_budget
        self._ids: IdAllocator | None = None
        self.reset()

    def allocate_ids(self, ids: IdAllocator) -> None:
        """Take entry ids from `ids` instead of counting 0, 1, 2, ... It must return an id at least
        the next free one (ids stay increasing); e.g. a cluster worker's time-ordered ids."""
        self._ids = ids

    def reset(self) -> None:
        self.entries: deque[Entry] = deque(maxlen=self.limit)
        self.next_id = 0
        self._detailed: deque[Entry] = deque()   # entries holding headers/body, oldest first
        self.detail_bytes = 0
        self.goaways: deque[Goaway] = deque(maxlen=GOAWAY_LIMIT)

    def add(self, t: float, service: str, method: str, path: str, token: str | None, status: int,
            reason: str | None, message_id: str | None, note: Notification | None = None,
            conn: int | None = None, sender: str | None = None, headers: Headers | None = None,
            body: bytes | None = None, retry_after: float | None = None, goaway: bool = False) -> Entry:
        ids = self._ids
        eid = self.next_id if ids is None else ids(t, self.next_id)
        e = Entry(eid, t, service, method, path, token, status, reason, message_id, note,
                  conn, sender, headers, body, retry_after, goaway)
        self.next_id = eid + 1
        self.entries.append(e)
        if headers is not None or body is not None:
            # The queue holds the entry alone; its cost is recomputed (the same way) when it is shed.
            detailed = self._detailed
            if len(detailed) >= self.limit:
                # The steady state of a full journal: the oldest detail goes as this one comes.
                old = detailed.popleft()
                self.detail_bytes -= _cost(old)
                old.headers = old.body = None
            detailed.append(e)
            # _cost(e), inlined: this runs once per request
            self.detail_bytes += _ENTRY_COST + (len(body) if body is not None else 0) + (
                _HEADER_COST * len(headers) if headers else 0)
            if self.detail_bytes > self.detail_budget:
                self._shed()
        return e

    def goaway(self, t: float, service: str, conn: int | None, sender: str | None, last_stream_id: int,
               code: int, debug: bytes) -> Goaway:
        """Record a GOAWAY sent on a connection (rare: at most one record per connection)."""
        g = Goaway(t, service, conn, sender, last_stream_id, code, debug[:PAYLOAD_LIMIT].decode("utf-8", "replace"))
        self.goaways.append(g)
        return g

    def _shed(self) -> None:
        """Over budget: the oldest entries give up their headers and body (their size stays known)."""
        detailed = self._detailed
        while detailed and self.detail_bytes > self.detail_budget:
            old = detailed.popleft()
            self.detail_bytes -= _cost(old)
            old.headers = old.body = None

    def query(self, token: str | None = None, since: int = 0, limit: int = 100,
              service: str | None = None, **filters: str | None) -> list[Entry]:
        match = matcher(token=token, service=service, **filters)
        out: list[Entry] = []
        for e in self.entries:
            if e.id < since or not match(e):
                continue
            out.append(e)
            if len(out) >= limit:
                break
        return out

    def count(self, since: int = 0, **filters: str | None) -> int:
        match = matcher(**filters)
        return sum(1 for e in self.entries if e.id >= since and match(e))
