"""One view over N independent pushsim instances (issue 16: partitions behind a proxy, or simply
several servers): their control-API answers merged as if one server had given them. Sans-IO: parsed
answers in, one answer out; `pushsim/cli/instances.py` does the asking.

Each instance is named by its control API's `host:port` (what Prometheus calls the scrape's
`instance`, so the CLI and the dashboard name an instance alike). What is merged:

- `/stats`: the funnels summed (every reason of rejected / dropped / pending, `in-transit` included),
  so accepted = delivered + dropped + pending holds for the sum because it holds for each part;
  partitions' hand-off counters summed (`merge_handoffs`); `per_instance` keeps the parts.
- `/stats/fleet`: counters summed, rates recomputed (cluster/merge.py `merge_fleet_stats`).
- `/journal` pages: time-ordered, every entry tagged with its `instance` (its `id` stays the
  instance's own, so `GET /journal` on that instance finds it); the cursor is one `since` per
  instance, advanced only past the entries this page shows, so a merged poll never skips one.
- The JSONL export: one export whose request ids, connection numbers and notification seqs are
  unique across instances (two instances' connection 7 never merge), each line tagged with its
  `instance` and its number there (`instance_id`, `instance_seq`), then cluster/merge.py
  `merge_jsonl` (time order, state changes, installs, the header's counts and fleet metrics).
- The report: `build_report` over the merged export, then each finding's evidence named back to
  its instance and that instance's journal id / seq (`name_evidence`).
"""
from __future__ import annotations

import heapq
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from pushsim.cluster.merge import merge_fleet_stats, merge_funnels, merge_jsonl, unbalanced

__all__ = ["Cursor", "format_cursor", "instance_names", "merge_exports", "merge_fleet", "merge_handoffs",
           "merge_journal_pages", "merge_stats", "name_evidence", "parse_cursor", "unbalanced"]

Cursor = dict[str, int]        # instance name → the `since` to ask it for next


def instance_names(urls: Sequence[str]) -> list[str]:
    """`host:port` of each control-API URL; the whole URL where two share one (distinct paths)."""
    nets = [urllib.parse.urlsplit(u).netloc or u for u in urls]
    return [n if nets.count(n) == 1 else u.rstrip("/") for n, u in zip(nets, urls)]


# /stats, /stats/fleet -----------------------------------------------------------------------------
def merge_stats(parts: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Each instance's `/stats` → their sum, with `instances` (names) and `per_instance` (the parts'
    funnels). An instance that is itself a `--workers` cluster brings its consistent cut."""
    out = merge_funnels([p for _, p in parts])
    handoffs = [p["handoff"] for _, p in parts if isinstance(p.get("handoff"), Mapping)]
    if handoffs:
        out["handoff"] = merge_handoffs(handoffs)
    out["instances"] = [name for name, _ in parts]
    out["per_instance"] = [{"instance": name, **merge_funnels([p]),
                            **({"handoff": p["handoff"]} if "handoff" in p else {})} for name, p in parts]
    return out


HANDOFF_COUNTS = ("sent", "failed", "queued")


def merge_handoffs(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`serve --partition` instances' `/stats` "handoff" counters (topic messages and subscriptions
    posted to peers) → the deployment's: sent / failed / queued in total and per receiving partition
    (summed over the senders), and what the instances received. Each instance's `last_error` stays
    in `per_instance`."""
    out: dict[str, Any] = {k: 0 for k in HANDOFF_COUNTS}
    peers: dict[str, dict[str, Any]] = {}
    received: dict[str, int] = {}
    for h in parts:
        for k in HANDOFF_COUNTS:
            out[k] += int(h.get(k) or 0)
        for target, link in (h.get("peers") or {}).items():
            acc = peers.setdefault(str(target), {"url": link.get("url"), **{k: 0 for k in HANDOFF_COUNTS}})
            for k in HANDOFF_COUNTS:
                acc[k] += int(link.get(k) or 0)
        for k, n in (h.get("received") or {}).items():
            received[k] = received.get(k, 0) + int(n)
    out["peers"] = dict(sorted(peers.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0))
    out["received"] = received
    return out


def merge_fleet(parts: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Each instance's `/stats/fleet` (which carries its own funnel) → one, over the whole fleet."""
    docs = [dict(p) for _, p in parts]
    out = merge_fleet_stats(docs, merge_funnels([d.get("funnel") or {} for d in docs]))
    out["instances"] = [name for name, _ in parts]
    return out


# /journal pages ------------------------------------------------------------------------------------
def parse_cursor(text: str | None, names: Sequence[str]) -> Cursor:
    """`--since`: empty (from the start), one number (for every instance), or `NAME=ID,...` as a merged
    page's `next_since` gives it (instances it does not name start at 0). ValueError when malformed."""
    cur = {n: 0 for n in names}
    text = (text or "").strip()
    if not text:
        return cur
    if text.isdigit():
        return {n: int(text) for n in names}
    for part in text.split(","):
        name, sep, value = part.strip().rpartition("=")
        if not sep or name not in cur or not value.isdigit():
            raise ValueError(f"--since: expected a number or NAME=ID,... with NAME one of {', '.join(names)}; "
                             f"got {part.strip()!r}")
        cur[name] = int(value)
    return cur


def format_cursor(cur: Mapping[str, int]) -> str:
    return ",".join(f"{name}={since}" for name, since in cur.items())


def merge_journal_pages(pages: Sequence[tuple[str, Mapping[str, Any]]], since: Mapping[str, int],
                        limit: int) -> dict[str, Any]:
    """Each instance's `/journal` page (asked with its own `since` and this `limit`) → one page of at
    most `limit` entries in time order, each tagged with its `instance`.

    The merge keeps each instance's own order, so what the page shows of an instance is a prefix of
    that instance's page. Its next `since` is then that instance's `next_since` when the page shows
    all of it, else one past the last entry shown (ids grow within an instance): nothing is skipped,
    and an entry is shown once."""
    streams = [[(float(e.get("t") or 0.0), i, n, e) for n, e in enumerate(page.get("entries") or [])]
               for i, (_, page) in enumerate(pages)]
    shown = list(heapq.merge(*streams))[:limit]          # (t, instance index, position): a total order
    taken = [0] * len(pages)
    entries = []
    for _, i, _, e in shown:
        taken[i] += 1
        entries.append({**e, "instance": pages[i][0]})
    nxt: Cursor = {}
    for i, (name, page) in enumerate(pages):
        mine = page.get("entries") or []
        if taken[i] == len(mine):
            nxt[name] = int(page.get("next_since", since.get(name, 0)))
        else:
            nxt[name] = int(mine[taken[i] - 1]["id"]) + 1 if taken[i] else int(since.get(name, 0))
    return {"entries": entries, "next_since": format_cursor(nxt), "cursor": nxt}


# the JSONL export and the report -------------------------------------------------------------------------
def merge_exports(exports: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> list[bytes]:
    """Each instance's `GET /journal?format=jsonl` records (parsed lines) → one export's lines,
    time-ordered (see the module doc).

    Request ids are renumbered 1, 2, … in wall-time order (each instance's own order kept);
    connection numbers become `conn × N + instance index`, unique per instance and unchanged for
    one instance; seqs are renumbered by `merge_jsonl`. Install indices stay: with `--partition`
    an install lives on one instance only (independent instances sharing a seed share tokens too,
    so their install i is one device to the sender)."""
    n = len(exports)
    names = [name for name, _ in exports]
    parsed = [[dict(r) for r in recs] for _, recs in exports]
    requests = [[(float(r.get("t") or 0.0), w, pos, r) for pos, r in enumerate(recs) if r.get("type") == "request"]
                for w, recs in enumerate(parsed)]
    new_id: dict[tuple[int, int], int] = {}
    for number, (_, w, pos, _) in enumerate(heapq.merge(*requests), 1):
        new_id[(w, pos)] = number
    out: list[list[bytes]] = []
    for w, recs in enumerate(parsed):
        lines: list[bytes] = []
        for pos, rec in enumerate(recs):
            kind = rec.get("type")
            if kind == "request":
                rec = {**rec, "instance": names[w], "instance_id": rec.get("id"), "id": new_id[(w, pos)]}
                if isinstance(rec.get("conn"), int):
                    rec["instance_conn"], rec["conn"] = rec["conn"], rec["conn"] * n + w
            elif kind == "accepted":
                rec = {**rec, "instance": names[w], "instance_seq": rec.get("seq")}
            elif kind == "goaway":               # numbered like the requests on its connection
                rec = {**rec, "instance": names[w]}
                if isinstance(rec.get("conn"), int):
                    rec["instance_conn"], rec["conn"] = rec["conn"], rec["conn"] * n + w
            elif kind == "install":
                rec = {**rec, "instance": names[w]}
            lines.append(orjson.dumps(rec))
        out.append(lines)
    return merge_jsonl(out, header_extra={"instances": names})


def name_evidence(report: dict[str, Any], records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The report of a merged export with each finding's evidence pointing into its instance: `id`
    and `seq` become that instance's journal id and notification seq, beside `instance` (and a
    GOAWAY's `conn`, for streams the server ignored, that instance's connection number)."""
    by_id: dict[int, tuple[str, Any]] = {}
    by_seq: dict[int, tuple[str, Any]] = {}
    by_conn: dict[int, tuple[str, Any]] = {}
    names: list[str] = []
    for r in records:
        kind = r.get("type")
        if kind == "request" and "instance" in r and isinstance(r.get("id"), int):    # a saved file may be anything
            by_id[r["id"]] = (r["instance"], r.get("instance_id"))
        elif kind == "accepted" and "instance" in r and isinstance(r.get("seq"), int):
            by_seq[r["seq"]] = (r["instance"], r.get("instance_seq"))
        elif kind == "goaway" and "instance" in r and isinstance(r.get("conn"), int):
            by_conn[r["conn"]] = (r["instance"], r.get("instance_conn"))
        elif kind == "header" and isinstance(r.get("instances"), list):
            names = [str(x) for x in r["instances"]]
    for f in report.get("findings") or []:
        named = []
        for ev in f.get("evidence") or []:
            ev = dict(ev)
            where = by_id.get(ev["id"]) if "id" in ev else None
            if where is not None:
                ev["instance"], ev["id"] = where
            if "seq" in ev and ev["seq"] in by_seq:
                inst, ev["seq"] = by_seq[ev["seq"]]
                ev.setdefault("instance", inst)
            if "id" not in ev and "seq" not in ev and ev.get("conn") in by_conn:   # apns.goaway-ignored
                inst, ev["conn"] = by_conn[ev["conn"]]
                ev.setdefault("instance", inst)
            named.append(ev)
        f["evidence"] = named
    if names:
        report["instances"] = names
    return report
