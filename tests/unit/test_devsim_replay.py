"""Journal export and replay: a run on the real (or scaled) clock replays to the same digest."""
import io
import json
import random

import orjson
import pytest

from device_sim.notification import Notification
from device_sim.replay import export_jsonl, replay
from pushsim.config import Config
from pushsim.testbed import Testbed


def _live_run(clock: str = "real", n: int = 300, seed: int = 3) -> Testbed:
    wall = [1_700_000_000.0]
    b = Testbed(Config(devices="ios=15,android=15", seed=seed, clock=clock), now=lambda: wall[0])
    r = random.Random(1)
    for k in range(n):
        wall[0] += r.random() * 90
        i = r.randrange(30)
        ios = b.fleet.platform[i] == 0
        pt = r.choice(["background", "background", "alert"]) if ios else r.choice(["data", "notification"])
        exp = r.choice([None, 0.0, wall[0] + 900])
        note = Notification("apns" if ios else "fcm", "t", i, f"m{k}", wall[0], pt, r.choice([5, 10]), b"{}",
                            expiration=exp, collapse_id=r.choice([None, "a", "b"]))
        b.dispatcher.submit(note)
        if k == 100:
            b.device_sim.set_state(4, online=False)
        if k == 200:
            b.device_sim.set_state(4, online=True, open=True)
    wall[0] += 7200
    return b


@pytest.mark.parametrize("clock", ["real", "scaled:30"])
def test_replay_reproduces_the_live_outcomes(clock):
    live = _live_run(clock)
    lines = list(export_jsonl(live.world))
    assert json.loads(lines[0])["digest"]
    res = replay(lines)
    assert res.matches, (res.digest, res.live_digest)
    assert res.funnel == live.ledger.stats()
    assert res.notifications == 300


def test_a_different_seed_or_an_edited_journal_does_not_match():
    lines = list(export_jsonl(_live_run().world))
    assert not replay(lines, seed=4).matches
    edited = [lines[0]] + [l.replace('"priority":5', '"priority":10') for l in lines[1:]]
    assert not replay(edited).matches


def test_trace_follows_one_notification():
    lines = list(export_jsonl(_live_run().world))
    res = replay(lines, trace=7)
    assert res.trace[0]["outcome"] == "pending" and res.trace[0]["message_id"] == "m7"
    assert len(res.trace) >= 2


def test_not_an_export_is_a_clean_error():
    with pytest.raises(ValueError):
        replay(['{"type":"accepted"}'])


def test_replay_command(tmp_path, capsys):
    import argparse

    from pushsim.cli import replay as cmd_replay
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(export_jsonl(_live_run().world)))
    parser = argparse.ArgumentParser()
    cmd_replay.register(parser.add_subparsers())
    args = parser.parse_args(["replay", str(path), "--seed", "3", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matches"] is True and out["digest"] == out["live_digest"]
    args = parser.parse_args(["replay", str(path), "--seed", "9"])
    assert args.func(args) == 1
    assert "DIFFERENT" in capsys.readouterr().out
    args = parser.parse_args(["replay", str(tmp_path / "missing.jsonl")])
    assert args.func(args) == 2


def test_a_synchronous_caller_on_the_real_clock_sees_due_timers_fire_on_stats():
    wall = [1_700_000_000.0]
    b = Testbed(Config(devices="ios=1", seed=0, clock="real"), now=lambda: wall[0])
    b.device_sim.set_state(0, app_state="background", online=True, low_power=False, bar=True)
    notes = []
    for k in range(5):
        notes.append(Notification("apns", "t", 0, f"m{k}", wall[0], "background", 5, b"{}"))
        b.dispatcher.submit(notes[-1])
    assert b.ledger.pending == {"held-budget": 1}
    wall[0] += 1300                                   # one budget token later, no traffic, no loop
    assert b.stats()["funnel"]["pending"] == {}


def test_a_partition_export_replays_to_the_same_digest():
    """A partitioned instance's export describes the whole fleet (same install numbers), so it
    replays like any other: its own installs' outcomes come out the same."""
    wall = [1_700_000_000.0]
    b = Testbed(Config(devices="ios=15,android=15", seed=3, partition="1/3"), now=lambda: wall[0])
    r = random.Random(2)
    owned = list(b.fleet.owned())
    for k in range(200):
        wall[0] += r.random() * 90
        i = r.choice(owned)
        ios = b.fleet.is_ios(i)
        b.dispatcher.submit(Notification("apns" if ios else "fcm", "t", i, f"m{k}", wall[0],
                                         "background" if ios else "data", 5, b"{}"))
    wall[0] += 7200
    lines = list(export_jsonl(b.world))
    assert json.loads(lines[0])["platforms"] == [[0, 15], [1, 15]]
    res = replay(lines)
    assert res.matches and res.notifications == 200


def test_an_export_snapshot_keeps_the_moment_it_was_taken() -> None:
    """The control API copies on the loop and serializes in a thread while traffic goes on: what
    settles after the copy must not leak into it, and its digest is the one at copy time."""
    from device_sim.replay import export_lines, snapshot
    from device_sim.sim import outcome_digest
    from device_sim.testing import push, virtual_world

    w = virtual_world("ios=2")
    w.device_sim.set_state(0, online=False)
    n = push(w, 0)                       # stored for an offline device: pending
    digest_then = outcome_digest(w.ledger)
    snap = snapshot(w)
    w.device_sim.set_state(0, online=True)
    w.sched.run_until(w.sched.now + 60)  # now delivered
    assert w.ledger.records[n.seq].outcome.value == "delivered"
    lines = [orjson.loads(line) for line in export_lines(snap)]
    assert lines[0]["digest"] == digest_then != outcome_digest(w.ledger)
    accepted = [d for d in lines if d["type"] == "accepted"]
    assert [(d["seq"], d["outcome"], d["outcome_reason"]) for d in accepted] == [(n.seq, "pending", "stored-offline")]


def test_the_record_window_lists_its_notifications_in_seq_order_in_one_pass() -> None:
    from device_sim.testing import push, virtual_world

    w = virtual_world("ios=3,android=3")
    w.device_sim.set_state(0, online=False)      # install 0's pushes stay pending, so they outlive a slide
    for k in range(12):
        push(w, k % 6)
    recs = w.ledger.records
    recs.slide(6)                                # the oldest six leave the window; pending ones stay as old
    assert 0 < len(recs) < 12
    assert recs.values() == [recs[seq] for seq in recs]
    assert [n.seq for n in recs.values()] == sorted(n.seq for n in recs.values())
