"""Experiment cohorts: arms partition the fleet by the seeded hash (the same in every process), and
the accounting invariant holds with the `holdout` drop reason."""
from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings, strategies as st

from device_sim.cohorts import HOLDOUT_REASON, Experiment, Tally
from device_sim.lift import arm_indices
from device_sim.testing import push, virtual_world

weights = st.lists(st.floats(0.001, 100.0), min_size=1, max_size=5)


def _experiment(ws: list[float], seed: int, mode: str = "enforced") -> Experiment:
    arms = {f"a{k}": w for k, w in enumerate(ws)}
    return Experiment.from_dict({"arms": arms, "holdout": "a0", "seed": seed, "mode": mode})


@given(ws=weights, seed=st.integers(0, 2**64 - 1), n=st.integers(0, 3000))
@example(ws=[1.0, 1e-3], seed=0, n=2000)
@settings(max_examples=60, deadline=None)
def test_arms_partition_the_fleet_and_assignment_is_stable(ws, seed, n):
    exp = _experiment(ws, seed)
    scalar = [exp.arm_index(i) for i in range(n)]
    # a second process parsing the same table (a cluster worker, the next run) agrees install by install
    again = _experiment(list(ws), seed)
    assert [again.arm_index(i) for i in range(n)] == scalar
    # the vectorised assignment (used for paging and per-arm outcomes) is the same function
    assert arm_indices(exp, n).tolist() == scalar
    # every install in exactly one arm; each arm's share near its weight
    counts = np.bincount(np.array(scalar, dtype=np.int64), minlength=len(ws))
    assert counts.sum() == n and all(0 <= k < len(ws) for k in scalar)
    if n >= 1000:
        share = np.array(ws) / sum(ws)
        assert np.all(np.abs(counts / n - share) < 5 * np.sqrt(share * (1 - share) / n) + 0.01)


@given(pushes=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["quiet", "loud"]),
                                 st.sampled_from([0.0, 1.0, 40.0, 4000.0])), max_size=40),
       seed=st.integers(0, 1000), mode=st.sampled_from(["enforced", "advertised"]))
@settings(max_examples=40, deadline=None)
def test_accounting_holds_with_the_holdout_reason(pushes, seed, mode):
    exp = _experiment([0.5, 0.5], seed, mode)
    w = virtual_world("ios=3,android=3", seed=seed, experiment=exp, app={"task_median": 8.0})
    tally = w.device_sim.cohorts
    assert isinstance(tally, Tally)
    to_holdout = 0
    for install, kind, dt in pushes:
        ios = install < 3
        pt = ("background" if kind == "quiet" else "alert") if ios else ("data" if kind == "quiet" else "notification")
        push(w, install, pt, at=w.sched.now + dt)
        to_holdout += exp.arm_of(install) == "a0"
        w.ledger.check()
    w.sched.run_until(w.sched.now + 86_400)
    w.ledger.check()
    held_out = w.ledger.dropped.get(HOLDOUT_REASON, 0)
    if mode == "enforced":
        assert held_out == to_holdout and tally.sent_to_holdout == 0
        assert tally.drops[0].get(HOLDOUT_REASON, 0) == to_holdout
    else:
        assert held_out == 0 and tally.sent_to_holdout == to_holdout
    # no install of the enforced holdout ever ran a background task for a push
    if mode == "enforced":
        assert all(tally.counts["wakes"][i] == 0 for i in range(6) if exp.arm_of(i) == "a0")
