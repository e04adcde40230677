"""The send fast path answers only where the general validator accepts, and then with an equal request."""
from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_fcm.message import SendRequest, _check, fast_path, validate
from fake_fcm.schema import ParseError, parse_obj

scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=8) | st.sampled_from(
    ["high", "HIGH", "normal", "NORMAL", "High", "3s", "0s", "-0s", "-1s", "1.5s", "2419200s", "2419201s",
     "tok:en", "google.x", "x" * 1100])
small_maps = st.dictionaries(st.text(max_size=6) | st.sampled_from(["from", "gcm", "google", "googly", "k"]),
                             scalars, max_size=4)
notifications = st.dictionaries(st.sampled_from(["title", "body", "image", "color", "Title"]), scalars, max_size=3)
androids = st.dictionaries(st.sampled_from(["priority", "ttl", "collapse_key", "collapseKey", "data",
                                            "restricted_package_name", "notification"]),
                           scalars | small_maps, max_size=3)
messages = st.fixed_dictionaries(
    {"token": st.text(min_size=0, max_size=12) | st.sampled_from(["x" * 4097, "a:b"]) | st.none() | st.integers()},
    optional={"data": small_maps | st.none() | scalars, "notification": notifications | st.none() | scalars,
              "android": androids | st.none() | scalars, "topic": st.sampled_from(["news", ""]),
              "fcmOptions": small_maps, "apns": small_maps})
# Near the accepted shape, so most examples reach the fast path's own decisions.
near = st.fixed_dictionaries({"message": st.fixed_dictionaries(
    {"token": st.text(min_size=1, max_size=12) | st.sampled_from(["", "x" * 4097])},
    optional={"data": st.dictionaries(st.text(max_size=6) | st.just("google.a"),
                                      st.text(max_size=6) | st.just("z" * 1100), max_size=3),
              "notification": st.dictionaries(st.sampled_from(["title", "body", "image"]), st.text(max_size=6),
                                              max_size=3),
              "android": st.fixed_dictionaries({}, optional={
                  "priority": st.sampled_from(["high", "normal", "HIGH", "NORMAL", "High", 1, None]),
                  "ttl": st.sampled_from(["3s", "0s", "1.5s", "2419200s", "-1s", "2419201s", "x", None]),
                  "collapse_key": st.text(max_size=4) | st.none()})})})
bodies = st.one_of(near, near, near,st.fixed_dictionaries({"message": messages}),
                   st.fixed_dictionaries({"message": messages, "validate_only": st.booleans()}),
                   scalars, small_maps)


def general(obj: Any) -> object:
    try:
        return _check(parse_obj(obj))
    except ParseError as e:
        return e.failure


@settings(max_examples=1500, deadline=None)
@given(bodies)
def test_fast_path_agrees_with_the_general_validator(obj: Any) -> None:
    fast = fast_path(obj)
    if fast is not None:
        slow = general(obj)
        assert isinstance(slow, SendRequest)
        assert fast == slow
        assert validate(orjson.dumps(obj)) == slow


def test_the_common_bodies_take_the_fast_path() -> None:
    tok = "f" * 22 + ":" + "A" * 140
    for msg in ({"token": tok},
                {"token": tok, "data": {"k": "v"}, "android": {"priority": "high"}},
                {"token": tok, "notification": {"title": "t", "body": "b"},
                 "android": {"priority": "NORMAL", "ttl": "3600s", "collapse_key": "c"}}):
        fast = fast_path({"message": msg})
        assert fast is not None and fast == general({"message": msg})
    r = fast_path({"message": {"token": tok, "android": {"priority": "high", "ttl": "1.9s"}}})
    assert r is not None and r.android_priority == "HIGH" and r.ttl == 1
    assert r.message["android"]["priority"] == "HIGH" and not r.has_notification


def test_what_the_fast_path_leaves_to_the_general_one() -> None:
    tok = "f" * 22 + ":" + "A" * 140
    for msg in ({"token": ""}, {"token": tok, "data": {"google.x": "1"}}, {"token": tok, "topic": "a"},
                {"token": tok, "android": {"ttl": "2419201s"}}, {"token": tok, "android": {"priority": "High"}},
                {"token": tok, "data": None}, {"token": tok, "data": {"k": "v" * 5000}},
                {"token": tok, "android": {"collapseKey": "c"}}, {"token": "x" * 4097}):
        assert fast_path({"message": msg}) is None
    assert fast_path({"message": {"token": tok}, "validate_only": True}) is None
