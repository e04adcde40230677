"""The accounting invariant under random pushes, app states, connectivity and time jumps."""
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from device_sim.notification import Outcome
from device_sim.testing import push, virtual_world

N = 4   # installs 0,1 iOS; 2,3 Android


class FleetMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.b = virtual_world("ios=2,android=2", seed=11,
                               profile={"ios": {"opens_per_day": 3.0}, "android": {"opens_per_day": 3.0,
                                                                                  "doze": 0.5}},
                               ios={"budget_burst": 2}, android={"max_pending": 3, "deprioritize_after": 2},
                               app={"task_median": 8.0, "task_sigma": 1.0, "failure_rate": 0.1})
        self.sent = 0

    @rule(i=st.integers(0, N - 1), kind=st.sampled_from(["quiet", "loud"]), prio=st.sampled_from([5, 10]),
          exp=st.sampled_from([None, 0.0, 30.0, 3600.0]), key=st.sampled_from([None, None, None, "a", "b", "c", "d", "e"]),
          bad=st.booleans())
    def send(self, i, kind, prio, exp, key, bad):
        ios = i < 2
        pt = ("background" if kind == "quiet" else "alert") if ios else ("data" if kind == "quiet" else "notification")
        t = self.b.sched.now
        push(self.b, i, pt, priority=prio, expiration=None if exp is None else (0.0 if exp == 0 else t + exp),
             collapse_id=key, drop_reason="scripted" if bad and prio == 10 and kind == "quiet" else None)
        self.sent += 1

    @rule(i=st.integers(0, N - 1), k=st.integers(1, 8))
    def burst(self, i, k):
        for _ in range(k):
            push(self.b, i)
            self.sent += 1

    @rule(i=st.integers(0, N - 1), state=st.sampled_from(["foreground", "background", "force_quit"]))
    def app_state(self, i, state):
        self.b.device_sim.set_state(i, app_state=state)

    @rule(i=st.integers(0, N - 1), up=st.sampled_from([True, False, None]))
    def connectivity(self, i, up):
        self.b.device_sim.set_state(i, online=up)

    @rule(i=st.integers(0, N - 1), which=st.sampled_from(["low_power", "bar", "charging", "doze"]), on=st.booleans())
    def power(self, i, which, on):
        self.b.device_sim.set_state(i, **{which: on})

    @rule(i=st.integers(0, N - 1))
    def open_app(self, i):
        self.b.device_sim.open_app(i)

    @rule(dt=st.sampled_from([0.5, 10.0, 31.0, 900.0, 3600.0, 86_400.0, 8 * 86_400.0]))
    def time_passes(self, dt):
        self.b.sched.run_until(self.b.sched.now + dt)

    @invariant()
    def accounting_holds(self):
        led = self.b.ledger
        led.check()
        assert led.accepted == self.sent
        counted = {o: 0 for o in Outcome}
        for rec in led.records.values():
            counted[rec.outcome] += 1
            assert (rec.reason is None) == (rec.outcome is Outcome.DELIVERED)
        assert counted[Outcome.DELIVERED] == led.delivered
        assert counted[Outcome.DROPPED] == sum(led.dropped.values())
        assert counted[Outcome.PENDING] == led.pending_total()

    @invariant()
    def every_pending_one_is_somewhere(self):
        # a pending notification is held, stored, deferred or not yet handled — never lost
        places = set()
        for d in self.b.device_sim.devices.values():
            for n in [d.held, d.stored, *d.stored_list, *d.collapse.values(), *d.deferred]:
                if n is not None:
                    places.add(n.seq)
        for seq, rec in self.b.ledger.records.items():
            if rec.outcome is Outcome.PENDING:
                assert seq in places, (seq, rec.reason)


TestFleetInvariant = FleetMachine.TestCase
TestFleetInvariant.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
