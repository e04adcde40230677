"""The HTML page survives any records a user hands it (a saved export may be edited or truncated)."""
from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pushsim.report.html import PageInputs, page

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=8))
times = st.one_of(st.floats(0, 2e9), st.integers(0, 2 * 10**9), scalars)
accepted = st.fixed_dictionaries(
    {"type": st.just("accepted"), "seq": st.one_of(st.integers(0, 50), scalars), "at": times,
     "install": st.one_of(st.integers(0, 20), scalars), "service": st.sampled_from(["apns", "fcm", 3]),
     "token": st.text(max_size=4)},
    optional={"outcome": st.sampled_from(["pending", "delivered", "dropped", "weird", None]),
              "outcome_reason": scalars, "settled_at": times, "held": scalars,
              "push_type": st.sampled_from(["background", "alert", "data", "notification", None]),
              "priority": scalars})
request = st.fixed_dictionaries({"type": st.just("request"), "id": st.integers(0, 50), "t": times, "at": times,
                                 "status": st.one_of(st.sampled_from([200, 400, 410, 429]), scalars),
                                 "service": st.sampled_from(["apns", "fcm"])})
install = st.fixed_dictionaries({"type": st.just("install"), "install": st.one_of(st.integers(0, 20), scalars)},
                                optional={"opened_at": times, "tz_minutes": scalars})
header = st.fixed_dictionaries({"type": st.just("header")},
                               optional={"now": times, "params": st.one_of(scalars, st.just({"ios": {"budget_per_hour": 3}})),
                                         "metrics": st.one_of(scalars, st.just({"freshness": {"opens": 2, "fresh": 1}}))})
goaway = st.fixed_dictionaries({"type": st.just("goaway"), "t": times, "service": st.sampled_from(["apns", "fcm"]),
                                "last_stream_id": st.one_of(st.integers(0, 9), scalars)},
                               optional={"conn": scalars, "late": scalars, "late_t": st.lists(times, max_size=3),
                                         "late_at": st.lists(times, max_size=3), "sender": scalars})
records = st.lists(st.one_of(accepted, request, install, header, goaway, scalars), max_size=30)


@settings(max_examples=150, deadline=None)
@given(recs=records, trace=st.one_of(st.none(), st.integers(0, 60)))
@example(recs=[{"type": "accepted", "seq": "x", "at": 1.0, "install": "y", "service": "apns", "token": "t",
                "outcome": "delivered", "settled_at": 5.0, "push_type": "background"}], trace=None)
@example(recs=[{"type": "accepted", "seq": 0, "at": 1e9, "install": 0, "service": "apns", "token": "t",
                "outcome": "delivered", "settled_at": 1.0}], trace=0)
@example(recs=[{"type": "goaway", "t": 1.0, "service": "apns", "last_stream_id": 1, "conn": 4, "late": 3,
                "late_t": [2.0], "late_at": [20.0]}], trace=None)
def test_any_records_make_a_page(recs: list[object], trace: int | None) -> None:
    text = page(PageInputs("t", recs, trace_seq=trace))   # type: ignore[arg-type]
    assert text.startswith("<!doctype html>") and text.endswith("</html>\n")
    names = re.findall(r"data-plot='([\w-]+)'", text)
    assert {"traffic", "reasons", "budget", "freshness", "latency", "trace"} <= set(names)
    assert "<script" not in text
