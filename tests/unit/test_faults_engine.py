"""Matching and triggers: which requests a rule fires on, and that a seed fixes every draw."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pushsim.faults.engine import FaultEngine, RequestView
from pushsim.faults.rules import RuleError

NOW = 1_700_000_000.0
TOK = "ab" * 32


def fires(engine: FaultEngine, reqs: list[RequestView], now: float = NOW) -> list[str | None]:
    out = []
    for r in reqs:
        d = engine.decide(r, now)
        out.append(d.rule.id if d else None)
    return out


def apns(token: str = TOK, app: str = "com.example.app") -> RequestView:
    return RequestView("apns", f"/3/device/{token}", token, app)


def test_scope_service_token_app_path() -> None:
    e = FaultEngine()
    e.add({"scope": {"service": "apns", "tokens": [TOK], "app": "com.example.app"}, "action": {"type": "stall"}}, NOW)
    assert fires(e, [apns()]) == ["f1"]
    assert fires(e, [apns(app="com.example.app.voip")]) == ["f1"]      # push-type topic of the same app
    assert fires(e, [apns(app="com.example.apps")]) == [None]
    assert fires(e, [apns(token="cd" * 32)]) == [None]
    assert fires(e, [RequestView("fcm", "/v1/x", TOK, "com.example.app")]) == [None]
    e.clear()
    e.add({"scope": {"path": "/token"}, "action": {"type": "tcp_reset"}}, NOW)
    assert fires(e, [RequestView("fcm", "/token"), RequestView("fcm", "/v1/projects/p/messages:send")]) == ["f1", None]


def test_after_first_every_times() -> None:
    e = FaultEngine()
    e.add({"trigger": {"after": 2, "first": 2}, "action": {"type": "stall"}}, NOW)
    assert fires(e, [apns()] * 6) == [None, None, "f1", "f1", None, None]
    e = FaultEngine()
    e.add({"trigger": {"every": 3, "times": 2}, "action": {"type": "stall"}}, NOW)
    assert fires(e, [apns()] * 10) == [None, None, "f1", None, None, "f1", None, None, None, None]
    assert (e.rules[0].matched, e.rules[0].fired) == (10, 2)


def test_first_firing_rule_wins_and_later_rules_do_not_count_it() -> None:
    e = FaultEngine()
    e.add_many([{"trigger": {"first": 1}, "action": {"type": "stall"}},
                {"action": {"type": "tcp_reset"}}], NOW)
    assert fires(e, [apns(), apns()]) == ["f1", "f2"]
    assert e.rules[1].matched == 1


def test_window() -> None:
    e = FaultEngine()
    e.add({"trigger": {"window": {"start_s": 10, "end_s": 20}}, "action": {"type": "stall"}}, NOW)
    assert [fires(e, [apns()], NOW + dt)[0] for dt in (0, 9.9, 10, 19.9, 20)] == [None, None, "f1", "f1", None]


def test_add_many_is_all_or_nothing_and_ids_are_unique() -> None:
    e = FaultEngine()
    with pytest.raises(RuleError, match="rule 1: action.type"):
        e.add_many([{"action": {"type": "stall"}}, {"action": {"type": "nope"}}], NOW)
    assert e.rules == []
    e.add({"id": "x", "action": {"type": "stall"}}, NOW)
    with pytest.raises(RuleError, match="already exists"):
        e.add({"id": "x", "action": {"type": "stall"}}, NOW)
    assert e.remove("x") and not e.remove("x")


def test_probability_is_roughly_honoured() -> None:
    e = FaultEngine(seed=3)
    e.add({"trigger": {"probability": 0.3}, "action": {"type": "stall"}}, NOW)
    n = sum(1 for x in fires(e, [apns()] * 2000) if x)
    assert 480 < n < 720


def test_delay_distributions_are_in_range() -> None:
    e = FaultEngine(seed=1)
    e.add({"action": {"type": "delay", "uniform": {"lower_ms": 100, "upper_ms": 200}}}, NOW)
    ds = [e.decide(apns(), NOW).delay for _ in range(200)]
    assert all(0.1 <= d <= 0.2 for d in ds) and max(ds) - min(ds) > 0.05
    e = FaultEngine(seed=1)
    e.add({"action": {"type": "delay", "lognormal": {"median_ms": 50, "sigma": 0.5}}}, NOW)
    ds = sorted(e.decide(apns(), NOW).delay for _ in range(401))
    assert 0.04 < ds[200] < 0.06 and all(d > 0 for d in ds)
    e = FaultEngine()
    e.add({"action": {"type": "delay", "fixed_ms": 125}}, NOW)
    assert e.decide(apns(), NOW).delay == 0.125


def test_max_streams_values_cycle() -> None:
    e = FaultEngine()
    e.add({"action": {"type": "max_streams", "values": [1, 500]}}, NOW)
    assert [e.decide(apns(), NOW).max_streams for _ in range(4)] == [1, 500, 1, 500]


RULES = st.lists(st.fixed_dictionaries({
    "trigger": st.fixed_dictionaries({"probability": st.floats(0, 1)},
                                     optional={"after": st.integers(0, 3), "every": st.integers(1, 4)}),
    "action": st.sampled_from([{"type": "stall"}, {"type": "delay", "uniform": {"lower_ms": 0, "upper_ms": 50}},
                               {"type": "delay", "lognormal": {"median_ms": 10, "sigma": 1}}]),
    "scope": st.sampled_from([{}, {"tokens": [TOK]}, {"service": "fcm"}]),
}), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), rules=RULES, toks=st.lists(st.sampled_from([TOK, "cd" * 32]), max_size=40))
def test_same_seed_same_faults(seed: int, rules: list[dict], toks: list[str]) -> None:
    def run() -> list[tuple[str, float] | None]:
        e = FaultEngine(seed=seed)
        e.add_many(rules, NOW)
        out = []
        for t in toks:
            d = e.decide(apns(t), NOW)
            out.append((d.rule.id, d.delay) if d else None)
        return out
    assert run() == run()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 60))
def test_adding_a_rule_does_not_change_another_rules_draws(seed: int, n: int) -> None:
    # The other rule is scoped to FCM, so it never sees these requests; f1's draws must not move.
    def run(extra: bool) -> list[bool]:
        e = FaultEngine(seed=seed)
        e.add({"trigger": {"probability": 0.5}, "action": {"type": "stall"}}, NOW)
        if extra:
            e.add({"scope": {"service": "fcm"}, "trigger": {"probability": 0.5}, "action": {"type": "stall"}}, NOW)
        return [e.decide(apns(), NOW) is not None for _ in range(n)]
    assert run(False) == run(True)


def test_different_seeds_differ() -> None:
    def run(seed: int) -> list[bool]:
        e = FaultEngine(seed=seed)
        e.add({"trigger": {"probability": 0.5}, "action": {"type": "stall"}}, NOW)
        return [e.decide(apns(), NOW) is not None for _ in range(64)]
    assert run(1) != run(2)
