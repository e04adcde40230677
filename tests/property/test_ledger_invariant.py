from hypothesis import given, strategies as st

from device_sim.ledger import Ledger
from device_sim.notification import Notification, Outcome


def _note(i: int) -> Notification:
    return Notification("apns", "t", i % 7, f"id{i}", 0.0, "background", 5, b"{}")


ops = st.lists(st.tuples(st.sampled_from(["accept", "deliver", "drop", "repend", "reject"]),
                         st.integers(0, 50), st.sampled_from(["a", "b", "c"])), max_size=200)


@given(ops)
def test_accounting_invariant_holds_under_any_sequence(seq_ops):
    led = Ledger(record_limit=30)
    for op, k, reason in seq_ops:
        pending = [s for s, r in led.records.items() if r.outcome is Outcome.PENDING]
        if op == "accept":
            led.accept(_note(k), reason)
        elif op == "reject":
            led.reject(reason)
        elif pending:
            s = pending[k % len(pending)]
            {"deliver": lambda: led.deliver(s), "drop": lambda: led.drop(s, reason),
             "repend": lambda: led.repend(s, reason)}[op]()
        led.check()
        assert all(v > 0 for v in led.pending.values())


def test_settled_notification_cannot_move_again():
    led = Ledger()
    s = led.accept(_note(0))
    led.deliver(s)
    try:
        led.drop(s, "late")
    except ValueError:
        pass
    else:
        raise AssertionError("a delivered notification was dropped too")
    led.check()
    assert led.stats()["dropped"] == {}
