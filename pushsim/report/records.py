"""The report's input: journal entries, accepted notifications with their outcome, and installs.

Records are dicts in the journal export's shape (device_sim/replay.py `export_jsonl`: lines of type
"request", "accepted", "goaway" and "install"; the header and "state" lines are ignored here), so a report can be
made from a live server and from a saved JSONL file alike. A record that is not in that shape is
skipped and counted, never an error: the analysis must survive any file a user hands it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable


def _num(d: dict[str, object], key: str) -> float | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _int(d: dict[str, object], key: str) -> int | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    return v


def _str(d: dict[str, object], key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


@dataclass(slots=True)
class Request:
    """One journal entry: a request the fakes answered."""
    id: int
    t: float                  # wall seconds (what a sender's backoff is measured in)
    at: float                 # device seconds (what frequency rules count in)
    service: str
    token: str | None
    status: int
    reason: str | None
    conn: int | None
    sender: str
    push_type: str | None
    priority: int | None
    size: int | None
    digest: str | None        # hash of the whole body, when the journal still had it
    retry_after: float | None
    goaway: bool
    seq: int | None

    @property
    def key(self) -> tuple[object, ...]:
        """The notification this request carries: same target and same body = a resend."""
        if self.digest is not None:
            return (self.service, self.token, self.digest)
        return (self.service, self.token, self.size, self.push_type)


@dataclass(slots=True)
class Accepted:
    """One accepted notification with the ledger's outcome and what the device made of it."""
    seq: int
    service: str
    token: str
    install: int
    at: float                 # device time it was handled at
    push_type: str
    priority: int
    content_available: bool
    size: int
    collapse_id: str | None
    outcome: str              # pending | delivered | dropped
    reason: str | None
    settled_at: float | None  # device time
    version: int
    ready: bool | None        # visible pushes: was the announced content ready when it landed
    label: str | None
    held: str | None = None   # delivered: the reason it was held for first (None = at once)
    sender: str = ""
    journal_id: int | None = None

    @property
    def background(self) -> bool:
        """A silent push: APNs background, or an FCM data-only message."""
        return self.push_type in ("background", "data") or (self.content_available and self.push_type != "alert")

    @property
    def visible(self) -> bool:
        return self.push_type in ("alert", "notification")


@dataclass(slots=True)
class Install:
    index: int
    tz_minutes: int = 0        # the install's UTC offset
    opened_at: float | None = None    # device time of the last open (or of install, if never opened)
    uninstalled: bool = False


@dataclass(slots=True)
class Goaway:
    """A GOAWAY the server sent on a connection, with the streams the client opened after it
    (ignored on the wire, so not requests in the journal: only their count and first times)."""
    service: str
    conn: int | None
    sender: str
    t: float                  # wall seconds it was sent
    at: float                 # device seconds
    last_stream_id: int
    code: int
    late: int                 # streams opened above last_stream_id afterwards
    late_t: list[float]       # wall times of the first of them (bounded; `late` is the count)
    late_at: list[float]      # the same, in device time


@dataclass(slots=True)
class Inputs:
    requests: list[Request] = field(default_factory=list)          # in id order
    accepted: list[Accepted] = field(default_factory=list)         # in seq order
    installs: dict[int, Install] = field(default_factory=dict)
    goaways: list[Goaway] = field(default_factory=list)            # in time order
    skipped: int = 0
    now: float | None = None       # device time of the export
    experiment: dict[str, Any] | None = None   # the export header's (device_sim.cohorts Experiment.describe)

    def request_ids(self) -> set[int]:
        return {r.id for r in self.requests}


def _request(d: dict[str, object]) -> Request | None:
    rid, t, status, service = _int(d, "id"), _num(d, "t"), _int(d, "status"), _str(d, "service")
    if rid is None or t is None or status is None or service is None:
        return None
    at = _num(d, "at")
    return Request(rid, t, t if at is None else at, service, _str(d, "token"), status, _str(d, "reason"),
                   _int(d, "conn"), _str(d, "sender") or "", _str(d, "push_type"), _int(d, "priority"),
                   _int(d, "size"), _str(d, "digest"), _num(d, "retry_after"), d.get("goaway") is True,
                   _int(d, "seq"))


def _accepted(d: dict[str, object]) -> Accepted | None:
    seq, at, install = _int(d, "seq"), _num(d, "at"), _int(d, "install")
    service, token = _str(d, "service"), _str(d, "token")
    if seq is None or at is None or install is None or service is None or token is None:
        return None
    ready = d.get("ready")
    return Accepted(seq, service, token, install, at, _str(d, "push_type") or "alert", _int(d, "priority") or 10,
                    d.get("content_available") is True, _int(d, "size") or 0, _str(d, "collapse_id"),
                    _str(d, "outcome") or "pending", _str(d, "outcome_reason") or _str(d, "drop_reason"),
                    _num(d, "settled_at"), _int(d, "version") or 0, ready if isinstance(ready, bool) else None,
                    _str(d, "label"), _str(d, "held"))


def _times(d: dict[str, object], key: str) -> list[float]:
    v = d.get(key)
    if not isinstance(v, list):
        return []
    return [float(x) for x in v if not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)]


def _goaway(d: dict[str, object]) -> Goaway | None:
    t, service, last = _num(d, "t"), _str(d, "service"), _int(d, "last_stream_id")
    if t is None or service is None or last is None:
        return None
    at = _num(d, "at")
    late = _int(d, "late") or 0
    late_t = _times(d, "late_t")
    late_at = _times(d, "late_at")
    if len(late_at) != len(late_t):
        late_at = list(late_t)
    return Goaway(service, _int(d, "conn"), _str(d, "sender") or "", t, t if at is None else at, last,
                  _int(d, "code") or 0, max(late, len(late_t)), late_t, late_at)


def _install(d: dict[str, object]) -> Install | None:
    index = _int(d, "install")
    if index is None:
        return None
    tz = _int(d, "tz_minutes")
    return Install(index, tz if tz is not None and -24 * 60 < tz < 24 * 60 else 0, _num(d, "opened_at"),
                   d.get("uninstalled") is True)


def load(records: Iterable[object]) -> Inputs:
    """Sort records into requests, accepted notifications and installs; count what does not fit."""
    inp = Inputs()
    seen_ids: set[int] = set()
    seen_seqs: set[int] = set()
    for rec in records:
        if not isinstance(rec, dict):
            inp.skipped += 1
            continue
        kind = rec.get("type")
        if kind == "header":
            inp.now = _num(rec, "now")
            exp = rec.get("experiment")
            inp.experiment = exp if isinstance(exp, dict) else None
            continue
        if kind == "state":
            continue
        if kind == "request" or (kind is None and "status" in rec):
            r = _request(rec)
            if r is None or r.id in seen_ids:
                inp.skipped += 1
                continue
            seen_ids.add(r.id)
            inp.requests.append(r)
        elif kind == "accepted":
            a = _accepted(rec)
            if a is None or a.seq in seen_seqs:
                inp.skipped += 1
                continue
            seen_seqs.add(a.seq)
            inp.accepted.append(a)
        elif kind == "goaway":
            g = _goaway(rec)
            if g is None:
                inp.skipped += 1
                continue
            inp.goaways.append(g)
        elif kind == "install":
            i = _install(rec)
            if i is None:
                inp.skipped += 1
                continue
            inp.installs[i.index] = i
        else:
            inp.skipped += 1
    inp.requests.sort(key=lambda r: r.id)
    inp.accepted.sort(key=lambda a: a.seq)
    inp.goaways.sort(key=lambda g: g.t)
    by_seq = {r.seq: r for r in inp.requests if r.seq is not None}
    for a in inp.accepted:
        r = by_seq.get(a.seq)
        if r is not None:
            a.sender, a.journal_id = r.sender, r.id
    return inp
