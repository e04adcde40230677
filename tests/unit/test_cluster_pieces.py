"""Cluster building blocks without processes: channel framing, merges, shared OAuth tokens, CLI."""
from __future__ import annotations

import orjson
import pytest

from fake_fcm.oauth import AccessToken
from pushsim.cluster.channel import FrameDecoder, FrameError, encode
from pushsim.cluster.merge import id_floor, merge_fleet_stats, merge_journal, merge_jsonl, merge_metrics
from pushsim.cluster.routing import WIRE_FIELDS, Router, Snapshot, combine, note_from_tuple, note_to_tuple
from pushsim.cluster.shared_auth import SharedTokens


# channel framing -----------------------------------------------------------------------------------
def test_frames_survive_any_split_and_several_per_read():
    objs = [[("n", (1, "a"))], ("snap", 3), {"k": b"x" * 1000}, []]
    stream = b"".join(encode(o) for o in objs)
    for step in (1, 3, 7, 64, len(stream)):
        d = FrameDecoder()
        got = []
        for i in range(0, len(stream), step):
            got += d.feed(stream[i:i + step])
        assert got == objs and d.buffered == 0


def test_partial_frame_waits_for_the_rest():
    d = FrameDecoder()
    frame = encode(("stop",))
    assert d.feed(frame[:2]) == [] and d.feed(frame[2:-1]) == [] and d.buffered == len(frame) - 1
    assert d.feed(frame[-1:] + frame) == [("stop",), ("stop",)]


def test_oversized_length_is_an_error():
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\xff\xff\xff\xff")


# stats -----------------------------------------------------------------------------------------------
def _snap(w: int, accepted: int, delivered: int, pending: dict, sent: list, recv: list) -> Snapshot:
    return Snapshot(1, w, {"accepted": accepted, "rejected": {"BadDeviceToken": w}, "delivered": delivered,
                           "dropped": {}, "pending": pending}, sent, recv, {})


def test_combine_counts_in_transit_as_accepted_and_pending():
    s = combine([_snap(0, 3, 2, {"queued": 1}, [0, 5], [0, 0]), _snap(1, 4, 4, {}, [0, 0], [3, 0])])
    assert s == {"accepted": 9, "rejected": {"BadDeviceToken": 1}, "delivered": 6, "dropped": {},
                 "pending": {"queued": 1, "in-transit": 2}}


def test_combine_refuses_an_inconsistent_cut():
    with pytest.raises(AssertionError):
        combine([_snap(0, 0, 0, {}, [0, 0], [0, 0]), _snap(1, 1, 1, {}, [0, 0], [1, 0])])


def test_router_sends_marker_behind_queued_notifications():
    from device_sim.notification import Notification
    r = Router(0, 2, lambda n: 7, lambda: {"accepted": 0})
    r.submit(Notification("apns", "t", 1, "m", 0.0, "alert", 10, b""))
    r.request_snapshot(1)
    (peer, msgs), = r.take_outbox()
    assert peer == 1 and len(msgs) == 2 and msgs[1] == ("m", 1) and r.request_snapshot(1) is None
    back = note_from_tuple(msgs[0])
    assert (back.install, back.message_id, back.seq) == (1, "m", -1)
    assert msgs[0] == note_to_tuple(back)


def test_note_round_trip_keeps_every_wire_field_and_extra():
    from device_sim.notification import Notification
    n = Notification("fcm", "tok", 5, "projects/p/messages/1", 12.5, "data", 5, b'{"x":1}', 99.0, "ck", True,
                     "BadPriority")
    n.extra["topic"] = "news"
    back = note_from_tuple(note_to_tuple(n))
    assert [getattr(back, f) for f in WIRE_FIELDS] == [getattr(n, f) for f in WIRE_FIELDS]
    assert back.extra == {"topic": "news"} and back.seq == -1
    assert note_from_tuple(note_to_tuple(Notification("apns", "t", 1, "m", 0.0, "alert", 10, b"")))._extra is None


# journal -----------------------------------------------------------------------------------------------
def test_merge_journal_pages_by_id_and_cursors_never_skip():
    pages = [{"entries": [{"id": 10, "t": 5.0, "seq": 3}, {"id": 12, "t": 6.0, "seq": -1}], "next_since": 13},
             {"entries": [{"id": 7, "t": 3.5}], "next_since": 8}]
    out = merge_journal(pages, 0, 2, 2, asked_at=0.00001)
    assert [(e["id"], e["worker"]) for e in out["entries"]] == [(7, 1), (10, 0)] and out["next_since"] == 11
    full = merge_journal(pages, 0, 10, 2, asked_at=0.00001)
    assert [e["id"] for e in full["entries"]] == [7, 10, 12] and "seq" not in full["entries"][2]
    assert full["next_since"] == id_floor(0.00001, 2) == 20      # short page: from the moment we asked


def test_worker_journal_ids_are_unique_and_follow_time():
    from device_sim.journal import Journal
    from pushsim.cluster.worker import WorkerRole

    journals = [Journal() for _ in range(3)]
    for me, j in enumerate(journals):
        j.allocate_ids(WorkerRole(me, 3, b"").journal_id)
    for k in range(20):                      # same instants on every worker, and bursts within one µs
        for j in journals:
            j.add(1000.0 + (k // 4) * 1e-6, "apns", "POST", "/3/device/x", None, 200, None, None)
    ids = [e.id for j in journals for e in j.entries]
    assert len(set(ids)) == len(ids)
    for me, j in enumerate(journals):
        mine = [e.id for e in j.entries]
        assert mine == sorted(mine) and all(i % 3 == me for i in mine) and mine[0] >= id_floor(1000.0, 3)
        assert j.next_id == mine[-1] + 1


def test_merge_jsonl_renumbers_and_keeps_one_uninstall():
    w0 = [b'{"type":"header","accepted":1,"complete":true,"digest":"a"}\n',
          b'{"type":"state","t":2.0,"pos":0,"install":3,"set":{"uninstall":true}}\n',
          b'{"type":"accepted","seq":0,"t":3.0,"install":0}\n']
    w1 = [b'{"type":"header","accepted":1,"complete":true,"digest":"b"}\n',
          b'{"type":"state","t":2.1,"pos":0,"install":3,"set":{"uninstall":true}}\n',
          b'{"type":"accepted","seq":0,"t":1.0,"install":1}\n']
    import orjson
    lines = [orjson.loads(x) for x in merge_jsonl([w0, w1])]
    assert lines[0]["accepted"] == 2 and lines[0]["digest"] is None
    assert [x["type"] for x in lines[1:]] == ["state", "accepted", "accepted"]
    assert [(x["seq"], x["install"]) for x in lines[2:]] == [(0, 1), (1, 0)]
    assert lines[1]["pos"] == 1           # one notification (t=1.0) was accepted before the change (t=2.0)


# metrics and fleet stats ---------------------------------------------------------------------------------
def test_merge_metrics_sums_series_but_not_fleet_size():
    a = "# HELP pushsim_accepted_total A.\n# TYPE pushsim_accepted_total counter\npushsim_accepted_total 3\n" \
        'pushsim_dropped_total{reason="Expired"} 1\npushsim_devices 10\n'
    b = "# HELP pushsim_accepted_total A.\n# TYPE pushsim_accepted_total counter\npushsim_accepted_total 4\n" \
        'pushsim_dropped_total{reason="Expired"} 2\npushsim_devices 10\n'
    out = merge_metrics([a, b])
    assert out.count("# HELP pushsim_accepted_total") == 1 and "pushsim_accepted_total 7\n" in out
    assert 'pushsim_dropped_total{reason="Expired"} 3' in out and "pushsim_devices 10\n" in out


def test_merge_fleet_stats_recomputes_rates():
    def part(done: int, ok: int, p50: float | None) -> dict:
        return {"background": {"started": done, "succeeded": ok, "failed": done - ok, "killed": 0, "running": 0,
                               "success_rate": None},
                "task_duration": {"count": done, "mean": p50, "p50": p50, "p90": p50, "p99": p50},
                "freshness": {"opens": 0, "fresh": 0, "ready": 0, "fresh_rate": None, "mean_staleness": 0.0},
                "ios": {"alerts_shown": 1}, "clock": "real", "active_installs": 2}
    funnel = {"accepted": 4, "rejected": {}, "delivered": 2, "dropped": {}, "pending": {"queued": 2}}
    out = merge_fleet_stats([part(2, 2, 1.0), part(2, 0, 3.0)], funnel)
    assert out["background"]["success_rate"] == 0.5 and out["receipt_rate"] == 0.5
    assert out["task_duration"] == {"count": 4, "mean": 2.0, "p50": 2.0, "p90": 2.0, "p99": 2.0}
    assert out["ios"] == {"alerts_shown": 2} and out["active_installs"] == 4 and out["clock"] == "real"


# shared OAuth tokens ---------------------------------------------------------------------------------------
def test_shared_tokens_verify_anywhere_and_reject_forgeries():
    a, b = SharedTokens(b"k" * 32), SharedTokens(b"k" * 32)
    grant = AccessToken(123.5, "sa@example.iam.gserviceaccount.com", True)
    tok = a.mint(grant)
    assert tok.startswith("ya29.c.") and b.read(tok) == grant
    assert SharedTokens(b"x" * 32).read(tok) is None
    assert b.read(tok[:-2] + ("A" if tok[-2] != "A" else "B") + tok[-1]) is None
    assert b.read("ya29.c.short") is None and b.read("nope") is None


def test_authorities_sharing_a_seal_accept_each_others_tokens():
    from fake_fcm.oauth import TokenAuthority
    issuer = TokenAuthority(sealer=SharedTokens(b"k" * 32))
    peer = TokenAuthority(sealer=SharedTokens(b"k" * 32))
    stranger = TokenAuthority()
    tok = issuer.issue("sa@example.iam.gserviceaccount.com", True, 100.0, ttl=60)
    header = b"Bearer " + tok.encode()
    assert isinstance(peer.check(header, 120.0), AccessToken) and tok in peer.tokens
    assert not isinstance(stranger.check(header, 120.0), AccessToken)
    assert not isinstance(peer.check(header, 161.0), AccessToken)      # the sealed expiry holds


# CLI ---------------------------------------------------------------------------------------------------------
def test_workers_flag_accepts_auto_and_rejects_zero():
    import os

    from pushsim.cli import UsageError, build_parser, config_from_args
    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["serve", "--workers", "auto"]), environ={})
    assert cfg.workers == (os.cpu_count() or 1)
    with pytest.raises(UsageError, match="workers"):
        config_from_args(parser.parse_args(["serve", "--workers", "0"]), environ={})
    with pytest.raises(UsageError, match="workers"):
        config_from_args(parser.parse_args(["serve", "--workers", "many"]), environ={})


def test_fcm_message_names_never_collide_across_workers():
    from fake_fcm.oauth import TokenAuthority
    from pushsim.testbed import Testbed
    from pushsim.config import Config
    from pushsim.services.fcm import FcmService

    names: list[set[str]] = []
    for me in range(3):
        svc = FcmService(Testbed(Config(devices="ios=1,android=1")), TokenAuthority())
        svc.set_name_lane(me, 3)
        got = {svc.namer.name("p", 1_700_000_000.0 + i * 1e-6) for i in range(50)}   # same clock everywhere
        got |= {svc.namer.name("p", 1_700_000_000.0) for _ in range(50)}              # a burst in one microsecond
        assert len(got) == 100
        names.append(got)
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])


def test_merged_export_keeps_the_reports_lines_and_renumbers_their_seqs() -> None:
    def lines(*recs: dict) -> list[bytes]:
        return [orjson.dumps(r) + b"\n" for r in recs]
    w0 = lines({"type": "header", "accepted": 1}, {"type": "accepted", "seq": 0, "t": 2.0, "at": 2.0},
               {"type": "request", "id": 20, "seq": 0, "t": 2.0}, {"type": "install", "install": 0})
    w1 = lines({"type": "header", "accepted": 1}, {"type": "accepted", "seq": 0, "t": 1.0, "at": 1.0},
               {"type": "request", "id": 11, "seq": 0, "t": 1.0}, {"type": "request", "id": 13, "seq": -1, "t": 1.5},
               {"type": "install", "install": 1}, {"type": "goaway", "t": 1.2, "conn": 2, "late": 1},
               {"type": "goaway", "t": 0.5, "conn": 4, "late": 0})
    out = [orjson.loads(x) for x in merge_jsonl([w0, w1])]
    # GOAWAY records pass through as they are (connection ids are unique cluster-wide), in time order,
    # and never count as accepted notifications
    assert [(r["conn"], r["late"]) for r in out if r["type"] == "goaway"] == [(4, 0), (2, 1)]
    reqs = {r["id"]: r for r in out if r["type"] == "request"}
    acc = {r["t"]: r["seq"] for r in out if r["type"] == "accepted"}
    assert acc == {1.0: 0, 2.0: 1}
    assert reqs[11]["seq"] == 0 and reqs[20]["seq"] == 1 and "seq" not in reqs[13]
    assert sorted(r["install"] for r in out if r["type"] == "install") == [0, 1]
