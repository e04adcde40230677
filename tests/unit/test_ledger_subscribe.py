from device_sim.ledger import Ledger
from device_sim.notification import Notification, Outcome


def _note(i: int) -> Notification:
    return Notification("apns", "t", i, f"id{i}", 0.0, "alert", 10, b"{}")


def test_subscribers_see_every_settle_and_repend_until_unsubscribed():
    led = Ledger()
    seen: list[tuple[int, Outcome, str | None, float | None]] = []
    unsubscribe = led.subscribe(lambda rec, at: seen.append((rec.note.seq, rec.outcome, rec.reason, at)))
    a, b, c = (led.accept(_note(i)) for i in range(3))
    led.repend(a, "held")
    led.deliver(a, 5.0)
    led.drop(b, "expired", 6.0)
    assert seen == [(a, Outcome.PENDING, "held", None), (a, Outcome.DELIVERED, None, 5.0),
                    (b, Outcome.DROPPED, "expired", 6.0)]
    unsubscribe()
    led.deliver(c, 7.0)
    assert len(seen) == 3
    led.reset()                       # subscriptions outlive a reset of the counters
    led.subscribe(lambda rec, at: seen.append((rec.note.seq, rec.outcome, rec.reason, at)))
    led.deliver(led.accept(_note(9)), 8.0)
    assert seen[-1][1] is Outcome.DELIVERED
    led.check()
