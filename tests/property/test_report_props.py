"""The report never raises on any records, and every finding's evidence points at entries that exist."""
from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pushsim.report import build_report
from pushsim.report.render import FORMATS, render

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=3))
_tokens = st.sampled_from(["aa", "bb", "cc", None])
_reason = st.sampled_from([None, "Unregistered", "TooManyRequests", "PayloadTooLarge", "UNREGISTERED",
                           "QUOTA_EXCEEDED", "INVALID_ARGUMENT", "ExpiredProviderToken",
                           "TooManyProviderTokenUpdates", "too-many-pending", "collapse-key-limit", "collapsed"])
_service = st.sampled_from(["apns", "fcm", "oauth"])
_time = st.one_of(st.floats(0, 200_000, allow_nan=False), st.integers(0, 200_000))

request = st.fixed_dictionaries({
    "type": st.just("request"), "id": st.integers(0, 60), "t": _time, "service": _service,
    "status": st.sampled_from([200, 400, 403, 404, 410, 413, 429, 500, 503]),
}, optional={"at": _time, "token": _tokens, "reason": _reason, "conn": st.integers(0, 4),
             "sender": st.sampled_from(["A", "B", ""]), "digest": st.sampled_from(["x", "y"]),
             "retry_after": st.one_of(_time, _scalar), "goaway": st.booleans(), "seq": st.integers(0, 30),
             "push_type": st.sampled_from(["alert", "background", "data", "notification"]),
             "size": st.integers(0, 5000), "priority": st.sampled_from([5, 10])})
accepted = st.fixed_dictionaries({
    "type": st.just("accepted"), "seq": st.integers(0, 30), "service": _service, "token": st.sampled_from(["aa", "bb"]),
    "install": st.integers(0, 3), "at": _time,
}, optional={"push_type": st.sampled_from(["alert", "background", "data", "notification", "voip"]),
             "priority": st.sampled_from([1, 5, 10]), "content_available": st.booleans(),
             "size": st.integers(0, 5000), "outcome": st.sampled_from(["pending", "delivered", "dropped"]),
             "outcome_reason": _reason, "version": st.integers(-1, 5), "ready": st.one_of(st.booleans(), _scalar),
             "held": st.sampled_from([None, "stored-offline", "deferred-doze"]), "label": st.sampled_from([None, "x"])})
install = st.fixed_dictionaries({"type": st.just("install"), "install": st.integers(0, 3)},
                                optional={"tz_minutes": st.integers(-2000, 2000), "opened_at": st.one_of(_time, _scalar),
                                          "uninstalled": st.booleans()})
goaway = st.fixed_dictionaries({"type": st.just("goaway"), "t": _time, "service": _service,
                                "last_stream_id": st.integers(0, 9)},
                               optional={"at": _time, "conn": st.integers(0, 4), "sender": st.sampled_from(["A", ""]),
                                         "code": st.integers(0, 11), "late": st.one_of(st.integers(-3, 10**12), _scalar),
                                         "late_t": st.lists(st.one_of(_time, _scalar), max_size=3),
                                         "late_at": st.lists(st.one_of(_time, _scalar), max_size=3)})
junk = st.one_of(_scalar, st.dictionaries(st.sampled_from(["type", "id", "t", "seq", "status"]), _scalar, max_size=4),
                 st.lists(_scalar, max_size=2))
records = st.lists(st.one_of(request, accepted, install, goaway, junk), max_size=60)


@settings(max_examples=200, deadline=None)
@given(records)
@example([{"type": "request", "id": 0, "t": 0, "service": "fcm", "status": 429, "token": "aa", "retry_after": float("nan")},
          {"type": "request", "id": 1, "t": 0.5, "service": "fcm", "status": 200, "token": "aa"}])
@example([{"type": "accepted", "seq": 0, "service": "apns", "token": "aa", "install": 0, "at": 1e300}])
@example([{"type": "goaway", "t": 0, "service": "apns", "last_stream_id": 1, "conn": 2, "late": 10**12,
           "late_t": [1.0]}])     # a huge count costs one offence, not a trillion
def test_the_report_never_raises_and_its_evidence_exists(recs: list[Any]) -> None:
    rep = build_report(recs)
    ids = {r["id"] for r in recs if isinstance(r, dict) and r.get("type") == "request"
           and isinstance(r.get("id"), int) and not isinstance(r.get("id"), bool)}
    seqs = {r["seq"] for r in recs if isinstance(r, dict) and r.get("type") == "accepted"
            and isinstance(r.get("seq"), int) and not isinstance(r.get("seq"), bool)}
    conns = {r.get("conn") for r in recs if isinstance(r, dict) and r.get("type") == "goaway"}
    for f in rep["findings"]:  # type: ignore[union-attr]
        assert f["severity"] in ("error", "warning", "info")
        assert 0 < len(f["evidence"]) <= f["count"]
        for ev in f["evidence"]:
            assert "id" in ev or "seq" in ev or f["rule"] == "apns.goaway-ignored"
            if "id" in ev:
                assert ev["id"] in ids
            elif "seq" in ev:
                assert ev["seq"] in seqs
            else:                   # a stream the server ignored: it names its GOAWAY's connection
                assert ev.get("conn") in conns
    for g in rep["metrics"]["groups"]:  # type: ignore[index]
        assert g["primer"]["receipt_rate"] is None or 0 <= g["primer"]["receipt_rate"] <= 1
    for fmt in FORMATS:            # every format renders whatever the analysis found
        assert render(rep, fmt)  # type: ignore[arg-type]
