"""fake_apns.pushtypes.body_facts: the memoised parse agrees with a direct parse, and stays bounded."""
from __future__ import annotations

import orjson
from hypothesis import given, strategies as st

from fake_apns import pushtypes as pt

json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=8)
aps = st.dictionaries(st.sampled_from(["alert", "sound", "badge", "content-available", "mutable-content", "x"]),
                      json_values, max_size=4)
bodies = st.one_of(
    st.builds(lambda a, extra: orjson.dumps({"aps": a, **extra}), aps,
              st.dictionaries(st.sampled_from(["data", "k"]), json_values, max_size=2)),
    st.builds(orjson.dumps, json_values),
    st.binary(max_size=40),
)


def _direct(body: bytes) -> tuple[bool, bool, bool]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    a = doc.get("aps") if isinstance(doc, dict) else None
    if not isinstance(a, dict):
        a = {}
    return (isinstance(doc, dict), a.get("content-available") == 1,
            any(k in a for k in ("alert", "sound", "badge")))


@given(bodies)
def test_facts_match_a_direct_parse_first_time_and_from_the_memo(body):
    for _ in range(2):                              # second call: from the memo
        f = pt.body_facts(bytes(body))
        assert (f.is_object, f.content_available, f.visible) == _direct(body)
        for push_type in ("background", "alert", "voip"):
            a = orjson.loads(body).get("aps") if f.is_object else None
            if isinstance(a, dict):
                assert pt.fits(push_type, f.content_available, f.visible) == pt.payload_fits(push_type, a)


def test_memo_is_bounded_and_skips_large_bodies():
    for i in range(pt._FACTS_MAX + 10):
        pt.body_facts(b'{"aps":{"alert":"%d"}}' % i)
    assert len(pt._FACTS) <= pt._FACTS_MAX
    big = b'{"aps":{"content-available":1},"d":"' + b"z" * pt._FACTS_MAX_BODY + b'"}'
    assert pt.body_facts(big).content_available and big not in pt._FACTS
