"""The compact ledger: counters stay exact, and the retained detail is exactly what the bound promises."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from device_sim.ledger import Ledger
from device_sim.notification import Notification, Outcome


def _note(install: int, k: int) -> Notification:
    return Notification("apns", "t", install, f"id{k}", float(k), "background", 5, b"{}")


ops = st.lists(st.tuples(st.sampled_from(["accept", "accept", "deliver", "drop", "repend"]),
                         st.integers(0, 5), st.integers(0, 10_000)), max_size=300)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(1, 40))
def test_counters_exact_and_retained_detail_matches_a_reference(seq_ops, limit):
    led = Ledger(record_limit=limit)
    ref: dict[int, tuple[int, Outcome, str | None]] = {}      # seq -> (install, outcome, reason), never forgets
    for k, (op, install, pick) in enumerate(seq_ops):
        pending = [s for s, (_i, o, _r) in ref.items() if o is Outcome.PENDING]
        if op == "accept":
            s = led.accept(_note(install, k), "queued")
            ref[s] = (install, Outcome.PENDING, "queued")
        elif pending:
            s = pending[pick % len(pending)]
            i = ref[s][0]
            if op == "deliver":
                led.deliver(s, float(k))
                ref[s] = (i, Outcome.DELIVERED, None)
            elif op == "drop":
                led.drop(s, "gone", float(k))
                ref[s] = (i, Outcome.DROPPED, "gone")
            else:
                led.repend(s, f"r{pick % 3}")
                ref[s] = (i, Outcome.PENDING, f"r{pick % 3}")
        led.check()
        # counters are exact whatever was forgotten
        assert led.accepted == len(ref)
        assert led.delivered == sum(o is Outcome.DELIVERED for _i, o, _r in ref.values())
        assert sum(led.dropped.values()) == sum(o is Outcome.DROPPED for _i, o, _r in ref.values())
        assert led.pending_total() == sum(o is Outcome.PENDING for _i, o, _r in ref.values())

    recs = led.records
    keys = list(recs)
    assert keys == sorted(keys) and len(keys) == len(recs)
    # what is retained is what was recorded
    for s in keys:
        i, o, r = ref[s]
        n = recs[s]
        assert (n.seq, n.install, n.outcome, n.reason) == (s, i, o, r) and n.note is n
    # every pending one is retained; the newest `limit` are retained; only settled ones are forgotten
    assert {s for s, (_i, o, _r) in ref.items() if o is Outcome.PENDING} <= set(keys)
    assert set(range(max(0, len(ref) - limit), len(ref))) <= set(keys)
    assert led.forgotten == len(ref) - len(keys)
    # deliveries(install): the install's retained ones, oldest first, back to the first forgotten one
    for install in range(6):
        got = [d["seq"] for d in led.deliveries(install)]
        mine = [s for s in sorted(ref) if ref[s][0] == install]
        assert got == mine[len(mine) - len(got):] if got else True
        newest_retained = [s for s in mine if s in recs]
        if mine and mine[-1] in recs:
            assert got and got[-1] == mine[-1]
        assert set(got) <= set(newest_retained)
        for d in led.deliveries(install):
            assert d["outcome"] == ref[d["seq"]][1].value and d["reason"] == ref[d["seq"]][2]


def test_deliveries_within_the_bound_list_everything_in_order():
    led = Ledger(record_limit=1000)
    seqs = [led.accept(_note(k % 3, k)) for k in range(30)]
    led.deliver(seqs[0], 1.0)
    led.drop(seqs[3], "x", 2.0)
    got = led.deliveries(0)
    assert [d["seq"] for d in got] == seqs[0::3]
    assert (got[0]["outcome"], got[0]["settled_at"]) == ("delivered", 1.0)
    assert (got[1]["outcome"], got[1]["reason"]) == ("dropped", "x")
    assert led.deliveries(7) == []


def test_old_pending_notification_survives_the_window_and_settles_later():
    led = Ledger(record_limit=10)
    first = led.accept(_note(0, 0))
    for k in range(1, 200):
        led.deliver(led.accept(_note(1, k)))
    assert first in led.records and led.records[first].outcome is Outcome.PENDING
    led.drop(first, "late", 5.0)
    for k in range(200, 400):
        led.deliver(led.accept(_note(1, k)))
    assert first not in led.records          # settled and outside the window: forgotten
    assert led.dropped["late"] == 1 and led.accepted == 400
    led.check()


def test_dispatcher_shares_identical_payloads_and_keeps_their_bytes():
    from device_sim.dispatch import DeliverAtOnce, Dispatcher
    led = Ledger()
    disp = Dispatcher(led, DeliverAtOnce(led, lambda: 0.0))
    body = b'{"aps":{"alert":"hi"}}'
    notes = [_note(k, k) for k in range(3)]
    for n in notes:
        n.payload = bytes(bytearray(body))         # equal, distinct objects
        disp.submit(n)
    assert all(n.payload == body for n in notes) and notes[1].payload is notes[0].payload is notes[2].payload
    big = _note(9, 9)
    big.payload = b"x" * 5000
    disp.submit(big)
    assert big.payload == b"x" * 5000 and led.delivered == 4
