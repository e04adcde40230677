"""One ledger split over k instances merges back to the unsplit one (pushsim/multi_instance.py).

A ledger is drawn as a sequence of sends; each install belongs to one instance (its partition), a
request for an unknown token to any instance, and a connection is what one instance saw (the same
connection number on two instances is two connections). The unsplit ledger numbers the
connections (instance, number) once; the split gives each instance its own numbering from 1, its
own journal ids and seqs. Merging the k exports must give the same funnel, the same report
summary and metrics, and the same findings, with every piece of evidence named back to the
instance (and the instance's own id) it came from. And paging the merged journal never skips or
repeats an entry, whatever the instances' pages look like.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pushsim.multi_instance import merge_exports, merge_journal_pages, merge_stats, name_evidence, unbalanced
from pushsim.report import build_report

INSTALLS = 8
SLOTS = 3          # connections per instance
T0 = 1_796_000_000.0

# status, reason, retry_after per service; 200 is an accepted notification
_APNS = [(200, None, None), (200, None, None), (410, "Unregistered", None), (429, "TooManyRequests", 0.5),
         (400, "BadTopic", None), (503, "ServiceUnavailable", None), (403, "ExpiredProviderToken", None)]
_FCM = [(200, None, None), (200, None, None), (404, "UNREGISTERED", None), (429, "QUOTA_EXCEEDED", 1.0),
        (400, "INVALID_ARGUMENT", None), (503, "UNAVAILABLE", None)]
_OUTCOMES = [("delivered", None), ("dropped", "expired"), ("dropped", "collapsed"), ("pending", "stored-offline"),
             ("pending", "in-transit")]

send = st.tuples(
    st.integers(-1, INSTALLS - 1),            # install (-1: a token no install has)
    st.integers(0, 6),                        # index into the service's statuses
    st.integers(0, SLOTS - 1),                # connection on the owner instance
    st.floats(0.0, 900.0),                    # gap to the previous send (s)
    st.sampled_from(["A/K1", "B/K2"]),        # sender
    st.sampled_from(["alert", "background", "data", "notification"]),
    st.integers(0, 2),                        # body (same body + target = a resend)
    st.integers(0, len(_OUTCOMES) - 1),
    st.integers(0, 50),                       # instance of a request for an unknown token
)


@dataclass
class Split:
    unsplit: list[dict[str, Any]]
    exports: list[tuple[str, list[dict[str, Any]]]]
    funnels: list[dict[str, Any]]


def _funnel(accepted: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"accepted": len(accepted), "rejected": {}, "delivered": 0, "dropped": {}, "pending": {}}
    for a in accepted:
        if a["outcome"] == "delivered":
            out["delivered"] += 1
        else:
            out[a["outcome"]][a["outcome_reason"]] = out[a["outcome"]].get(a["outcome_reason"], 0) + 1
    for r in rejected:
        out["rejected"][r["reason"]] = out["rejected"].get(r["reason"], 0) + 1
    return out


def build(sends: list[tuple[Any, ...]], owners: list[int], k: int) -> Split:
    t = T0
    rows = []    # (instance, slot, request, accepted | None)
    for install, status_i, slot, gap, sender, push_type, body, outcome_i, stray in sends:
        t += gap + 0.001        # strictly increasing: evidence is compared by time
        service = "apns" if install < 0 or install % 2 == 0 else "fcm"
        status, reason, retry = (_APNS if service == "apns" else _FCM)[status_i % len(_APNS if service == "apns" else _FCM)]
        token = f"tok{install}" if install >= 0 else "stranger"
        if install < 0 and status == 200:
            status, reason, retry = 400, "BadDeviceToken", None
        inst = owners[install] if install >= 0 else stray % k
        req = {"type": "request", "t": t, "at": t, "service": service, "token": token, "status": status,
               "reason": reason, "sender": sender, "push_type": push_type, "priority": 10, "size": 10 + body,
               "digest": f"body{body}"}
        if retry is not None:
            req["retry_after"] = retry
        acc = None
        if status == 200:
            outcome, why = _OUTCOMES[outcome_i]
            acc = {"type": "accepted", "service": service, "token": token, "install": install, "t": t, "at": t,
                   "push_type": push_type, "priority": 10, "content_available": push_type == "background",
                   "size": 10 + body, "collapse_id": None, "outcome": outcome, "outcome_reason": why,
                   "settled_at": None if outcome == "pending" else t + 1, "version": 0, "ready": True,
                   "label": None, "held": None}
        rows.append((inst, slot, req, acc))
    installs = [{"type": "install", "install": i, "tz_minutes": 60 * i, "opened_at": T0 - 86400.0 * i,
                 "uninstalled": i == 3} for i in range(INSTALLS)]

    def export(mine: list[tuple[int, int, dict[str, Any], dict[str, Any] | None]], conn_of: Any,
               owned: list[int]) -> list[dict[str, Any]]:
        accepted = []
        lines: list[dict[str, Any]] = [{}]
        reqs = []
        for n, (inst, slot, req, acc) in enumerate(mine):
            r = {**req, "id": n, "conn": conn_of(inst, slot)}
            if acc is not None:
                r["seq"] = len(accepted)
                accepted.append({**acc, "seq": len(accepted)})
            reqs.append(r)
        lines[0] = {"type": "header", "accepted": len(accepted), "now": t + 10, "complete": True}
        return lines + accepted + reqs + [installs[i] for i in owned]

    unsplit = export(rows, lambda inst, slot: inst * SLOTS + slot + 1, list(range(INSTALLS)))
    exports, funnels = [], []
    for j in range(k):
        mine = [row for row in rows if row[0] == j]
        recs = export(mine, lambda inst, slot: slot + 1, [i for i in range(INSTALLS) if owners[i] == j])
        exports.append((f"10.0.0.{j}:2199", recs))
        funnels.append(_funnel([r for r in recs if r["type"] == "accepted"],
                               [r for r in recs if r["type"] == "request" and r["status"] != 200]))
    return Split(unsplit, exports, funnels)


def _comparable(findings: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(f["rule"], f["severity"], f["sender"], tuple(f["tokens"]), f["tokens_total"], f["count"], f["detail"],
             tuple((ev.get("t"), ev["at"]) for ev in f["evidence"])) for f in findings]


@settings(max_examples=150, deadline=None)
@given(sends=st.lists(send, max_size=60), k=st.integers(1, 4),
       owners=st.lists(st.integers(0, 3), min_size=INSTALLS, max_size=INSTALLS))
@example(sends=[(0, 0, s, 0.1, "A/K1", "alert", 0, 0, 0) for s in range(3)] * 4, k=2, owners=[0, 1] * 4)
@example(sends=[(0, 3, 0, 0.01, "A/K1", "alert", 1, 0, 0), (0, 3, 0, 0.01, "A/K1", "alert", 1, 0, 0)], k=3,
         owners=[2] * INSTALLS)
def test_a_split_ledger_merges_to_the_unsplit_one(sends: list[tuple[Any, ...]], k: int, owners: list[int]) -> None:
    owners = [o % k for o in owners]
    split = build(sends, owners, k)
    merged = [orjson.loads(line) for line in merge_exports(split.exports)]
    whole = build_report(split.unsplit)
    got = name_evidence(build_report(merged), merged)

    assert got["summary"] == whole["summary"]
    assert got["metrics"] == whole["metrics"]
    assert _comparable(got["findings"]) == _comparable(whole["findings"])
    # every piece of evidence names the instance that holds that id (and seq) at that time (here at = t)
    held: dict[tuple[str, str, int], float] = {}
    for name, recs in split.exports:
        for rec in recs:
            if rec["type"] in ("request", "accepted"):
                held[(name, rec["type"], rec["id" if rec["type"] == "request" else "seq"])] = rec["t"]
    for f in got["findings"]:
        for ev in f["evidence"]:
            if "id" in ev:
                assert held[(ev["instance"], "request", ev["id"])] == ev["at"]
            if "seq" in ev:
                assert held[(ev["instance"], "accepted", ev["seq"])] == ev["at"]
    # totals: the header and the funnel
    assert merged[0]["accepted"] == sum(1 for r in split.unsplit if r["type"] == "accepted")
    assert merged[0]["instances"] == [name for name, _ in split.exports]
    total = merge_stats(list(zip([n for n, _ in split.exports], split.funnels)))
    accepted = [r for r in split.unsplit if r["type"] == "accepted"]
    assert {k_: v for k_, v in total.items() if k_ not in ("instances", "per_instance")} == \
        _funnel(accepted, [r for r in split.unsplit if r["type"] == "request" and r["status"] != 200])
    assert unbalanced(total) == 0
    # connections of different instances never merge: as many as the instances saw between them
    conns = {(r["instance"], r["instance_conn"]) for r in merged if r["type"] == "request"}
    assert len({r["conn"] for r in merged if r["type"] == "request"}) == len(conns)


# the journal: paging a merged view ---------------------------------------------------------------------------
class FakeJournal:
    """An instance's GET /journal: ids from 0 up, a page of entries with id ≥ since."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, t: float) -> None:
        self.entries.append({"id": len(self.entries), "t": t})

    def page(self, since: int, limit: int) -> dict[str, Any]:
        got = [e for e in self.entries if e["id"] >= since][:limit]
        nxt = got[-1]["id"] + 1 if len(got) >= limit else max(since, len(self.entries))
        return {"entries": got, "next_since": nxt}


@settings(max_examples=150, deadline=None)
@given(k=st.integers(1, 4), limit=st.integers(1, 7),
       steps=st.lists(st.tuples(st.integers(0, 3), st.floats(0.0, 5.0), st.booleans()), max_size=80))
@example(k=2, limit=1, steps=[(0, 1.0, False), (1, 0.0, False), (0, 0.0, True), (1, 3.0, True)])
def test_paging_a_merged_journal_shows_every_entry_once(k: int, limit: int,
                                                       steps: list[tuple[int, float, bool]]) -> None:
    journals = [FakeJournal() for _ in range(k)]
    names = [f"i{j}" for j in range(k)]
    cursor = {n: 0 for n in names}
    seen: list[tuple[str, int]] = []
    clocks = [0.0] * k

    def poll() -> int:
        nonlocal cursor
        pages = [(n, j.page(cursor[n], limit)) for n, j in zip(names, journals)]
        out = merge_journal_pages(pages, cursor, limit)
        assert len(out["entries"]) <= limit
        assert [e["t"] for e in out["entries"]] == sorted(e["t"] for e in out["entries"])
        seen.extend((e["instance"], e["id"]) for e in out["entries"])
        cursor = out["cursor"]
        return len(out["entries"])

    for who, dt, do_poll in steps:      # entries arrive on the instances while a reader polls
        j = who % k
        clocks[j] += dt
        journals[j].add(clocks[j])
        if do_poll:
            poll()
    for _ in range(sum(len(j.entries) for j in journals) + 1):
        if poll() == 0:
            break
    want = [(n, e["id"]) for n, j in zip(names, journals) for e in j.entries]
    assert sorted(seen) == sorted(want) and len(seen) == len(set(seen))
