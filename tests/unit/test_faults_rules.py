"""Rule JSON → Rule: what is accepted, and the clear message for what is not."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pushsim.faults.rules import RuleError, parse_rule

NOW = 1_700_000_000.0


def rule(d: dict) -> object:
    return parse_rule(d, rule_id="f1", now=NOW)


def test_respond_rule_roundtrips_to_json() -> None:
    r = rule({"scope": {"service": "apns", "tokens": ["ab" * 32]},
              "trigger": {"first": 1},
              "action": {"type": "respond", "reason": "TooManyRequests", "retry_after": 2}})
    j = r.to_json()
    assert j["id"] == "f1"
    assert j["scope"] == {"service": "apns", "tokens": ["ab" * 32]}
    assert j["trigger"]["first"] == 1 and j["trigger"]["probability"] == 1.0
    assert j["action"] == {"type": "respond", "reason": "TooManyRequests", "retry_after": 2.0,
                           "retry_after_format": "seconds"}
    assert r.action.replaces


@pytest.mark.parametrize("bad, words", [
    ({"action": {"type": "explode"}}, ["action.type", "explode"]),
    ({"scope": {"service": "gcm"}, "action": {"type": "stall"}}, ["scope.service", "gcm"]),
    ({"action": {"type": "respond", "reason": "X"}}, ["scope.service", "respond"]),
    ({"scope": {"service": "apns"}, "action": {"type": "respond"}}, ["action.reason"]),
    ({"trigger": {"probability": 1.5}, "action": {"type": "stall"}}, ["trigger.probability", "0..1"]),
    ({"trigger": {"first": 0}, "action": {"type": "stall"}}, ["trigger.first"]),
    ({"trigger": {"first": 1, "every": 2}, "action": {"type": "stall"}}, ["first or every"]),
    ({"trigger": {"window": {"start_s": 5, "end_s": 1}}, "action": {"type": "stall"}}, ["window"]),
    ({"action": {"type": "delay"}}, ["fixed_ms, uniform or lognormal"]),
    ({"action": {"type": "delay", "uniform": {"lower_ms": 9, "upper_ms": 1}}}, ["upper_ms"]),
    ({"action": {"type": "stall", "colour": 1}}, ["unknown field", "colour"]),
    ({"scope": {"tokens": []}, "action": {"type": "stall"}}, ["scope.tokens"]),
    ({"action": {"type": "max_streams"}}, ["value"]),
    ({"action": {"type": "goaway", "answer": "yes"}}, ["action.answer"]),
    ({"scope": {"service": "fcm"}, "action": {"type": "respond", "reason": "X", "retry_after_format": "ms"}},
     ["retry_after_format"]),
    ([1, 2], ["rule", "JSON object"]),
    ({}, ["missing action"]),
])
def test_bad_rules_name_the_field(bad: object, words: list[str]) -> None:
    with pytest.raises(RuleError) as e:
        parse_rule(bad, rule_id="f1", now=NOW)
    for w in words:
        assert w in str(e.value)


def test_window_is_relative_to_creation_and_absolute_forms_win() -> None:
    r = rule({"trigger": {"window": {"start_s": 10, "end_s": 20}}, "action": {"type": "tcp_reset"}})
    assert (r.trigger.not_before, r.trigger.not_after) == (NOW + 10, NOW + 20)
    r = rule({"trigger": {"window": {"not_before": 5, "not_after": 6}}, "action": {"type": "tcp_reset"}})
    assert (r.trigger.not_before, r.trigger.not_after) == (5.0, 6.0)


def test_delay_forms() -> None:
    assert rule({"action": {"type": "delay", "fixed_ms": 250}}).action.delay.to_json() == {"fixed_ms": 250.0}
    u = rule({"action": {"type": "delay", "uniform": {"lower_ms": 1, "upper_ms": 3}}}).action.delay
    assert (u.kind, u.a, u.b) == ("uniform", 1.0, 3.0)
    ln = rule({"action": {"type": "delay", "lognormal": {"median_ms": 80, "sigma": 0.4}}}).action.delay
    assert (ln.kind, ln.a, ln.b) == ("lognormal", 80.0, 0.4)
    # a delay may ride on any other action
    r = rule({"scope": {"service": "fcm"}, "action": {"type": "respond", "reason": "UNAVAILABLE", "delay": 40}})
    assert r.action.delay.to_json() == {"fixed_ms": 40.0}


def test_goaway_modes_and_toxicity_alias() -> None:
    after = rule({"action": {"type": "goaway", "reason": "Shutdown"}})
    assert not after.action.replaces            # answer this request, then GOAWAY
    before = rule({"trigger": {"toxicity": 0.25}, "action": {"type": "goaway", "answer": False}})
    assert before.action.replaces and before.trigger.probability == 0.25
    assert rule({"action": {"type": "max_streams", "values": [1, 500]}}).action.max_streams == (1, 500)


def test_user_id_and_single_token_and_topic_alias() -> None:
    r = rule({"id": "slow-one", "scope": {"token": "t", "topic": "com.x"}, "action": {"type": "stall"}})
    assert r.id == "slow-one" and r.scope.tokens == frozenset({"t"}) and r.scope.app == "com.x"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                    max_leaves=12)
KEYS = st.sampled_from(["scope", "trigger", "action", "id", "description", "type", "reason", "service", "tokens",
                        "probability", "first", "every", "after", "window", "delay", "fixed_ms", "uniform",
                        "values", "retry_after", "answer", "start_s", "end_s"])
RULEISH = st.recursive(JSON, lambda kids: st.dictionaries(KEYS, kids, max_size=4), max_leaves=16)


@settings(max_examples=300, deadline=None)
@given(raw=RULEISH)
def test_any_json_is_a_rule_or_a_rule_error(raw: object) -> None:
    try:
        r = parse_rule(raw, rule_id="f1", now=NOW)
    except RuleError as e:
        assert str(e)
    else:
        assert r.to_json()["action"]["type"] in ("respond", "delay", "goaway", "rst_stream", "tcp_reset",
                                                  "stall", "max_streams")
