"""Each report rule against a small hand-made journal that must trigger it, and one that must not."""
from __future__ import annotations

from typing import Any

import pytest

from device_sim.cohorts import Experiment
from pushsim.report import BY_ID, DEFAULTS, RULES, build_report, failing, parse_policy

TOK = "ab" * 32
TOK2 = "cd" * 32
T0 = 1_700_000_000.0


_EXP = Experiment.from_dict({"arms": {"holdout": 0.5, "treated": 0.5}, "seed": 3})
_EXPERIMENT = _EXP.describe()
_HOLDOUT_INSTALL = next(i for i in range(100) if _EXP.arm_of(i) == "holdout")
_TREATED_INSTALL = next(i for i in range(100) if _EXP.arm_of(i) == "treated")


class J:
    """A hand-made journal: requests and accepted notifications, in the export's record shape."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._id = 0
        self._seq = 0

    def req(self, t: float, status: int = 200, reason: str | None = None, *, service: str = "apns",
            token: str = TOK, conn: int = 1, sender: str = "TEAM/KEY", digest: str = "d1", **kw: Any) -> int:
        rec = {"type": "request", "id": self._id, "t": T0 + t, "at": T0 + t, "service": service, "token": token,
               "status": status, "reason": reason, "conn": conn, "sender": sender, "digest": digest, **kw}
        self._id += 1
        self.records.append(rec)
        return int(rec["id"])

    def push(self, t: float, *, service: str = "apns", push_type: str = "alert", priority: int = 10,
             install: int = 0, token: str = TOK, size: int = 100, outcome: str = "delivered",
             reason: str | None = None, version: int = 1, ready: bool | None = None,
             conn: int = 1, digest: str | None = None, **kw: Any) -> int:
        seq = self._seq
        self._seq += 1
        rid = self.req(t, service=service, token=token, conn=conn, digest=digest or f"n{seq}", seq=seq,
                       push_type=push_type, priority=priority)
        self.records.append({"type": "accepted", "seq": seq, "service": service, "token": token,
                             "install": install, "at": T0 + t, "push_type": push_type, "priority": priority,
                             "content_available": push_type in ("background", "data"), "size": size,
                             "outcome": outcome, "outcome_reason": reason, "version": version,
                             "ready": ready, **kw})
        return rid

    def goaway(self, t: float, late: list[float], *, conn: int = 1, count: int | None = None, **kw: Any) -> None:
        """A GOAWAY sent at t and streams opened after it at `late` (seconds, like t)."""
        self.records.append({"type": "goaway", "t": T0 + t, "at": T0 + t, "service": "apns", "conn": conn,
                             "sender": "TEAM/KEY", "last_stream_id": 3, "code": 0,
                             "late": len(late) if count is None else count,
                             "late_t": [T0 + x for x in late], "late_at": [T0 + x for x in late], **kw})

    def install(self, index: int, **kw: Any) -> None:
        self.records.append({"type": "install", "install": index, **kw})

    def rules(self, **policy: Any) -> set[str]:
        rep = build_report(self.records, parse_policy(policy, DEFAULTS) if policy else None)
        return {str(f["rule"]) for f in rep["findings"]}  # type: ignore[index]

    def findings(self) -> list[dict[str, Any]]:
        return build_report(self.records)["findings"]  # type: ignore[return-value]


def bad(rule: str) -> J:
    j = J()
    if rule == "apns.send-after-unregistered":
        j.req(0, 410, "Unregistered")
        j.req(5, 410, "Unregistered")
    elif rule == "fcm.send-after-unregistered":
        j.req(0, 404, "UNREGISTERED", service="fcm")
        j.req(5, 404, "UNREGISTERED", service="fcm")
    elif rule == "apns.retry-too-soon":
        j.req(0, 429, "TooManyRequests")
        j.req(0.01, 200)
    elif rule == "fcm.retry-after-ignored":
        j.req(0, 429, "QUOTA_EXCEEDED", service="fcm", retry_after=30)
        j.req(2, 200, service="fcm")
    elif rule == "apns.retry-non-retryable":
        j.req(0, 413, "PayloadTooLarge")
        j.req(60, 413, "PayloadTooLarge")
    elif rule == "fcm.retry-non-retryable":
        j.req(0, 400, "INVALID_ARGUMENT", service="fcm")
        j.req(60, 400, "INVALID_ARGUMENT", service="fcm")
    elif rule == "apns.background-too-frequent":
        for i in range(4):
            j.push(i * 600, push_type="background", priority=5)
    elif rule == "apns.token-refresh-too-often":
        j.req(0, 429, "TooManyProviderTokenUpdates")
    elif rule == "apns.token-expired":
        j.req(0, 403, "ExpiredProviderToken")
    elif rule == "apns.connection-churn":
        for i in range(10):
            j.push(i, conn=i + 1, install=i, token=f"{i:02x}" * 32)
    elif rule == "apns.goaway-ignored":
        j.req(0, 200, goaway=True)
        j.goaway(0, [1.0])           # a stream opened a second after the GOAWAY
    elif rule == "silent.payload-large":
        j.push(0, push_type="background", priority=5, size=3000)
    elif rule == "fcm.high-priority-without-notification":
        j.push(0, service="fcm", push_type="data", priority=10)
    elif rule == "fcm.device-rate":
        for i in range(241):
            j.req(i * 0.1, service="fcm", digest=f"m{i}")
    elif rule == "fcm.too-many-pending":
        j.push(0, service="fcm", push_type="notification", outcome="dropped", reason="too-many-pending")
    elif rule == "fcm.collapse-key-limit":
        j.push(0, service="fcm", push_type="notification", outcome="dropped", reason="collapse-key-limit")
    elif rule == "guardrail.frequency-cap":
        for i in range(25):
            j.push(i * 3000, push_type="background", priority=5, version=i + 1)
    elif rule == "guardrail.quiet-hours":
        j.install(0, tz_minutes=60)
        # 22:30 UTC = 23:30 local at UTC+1
        j.push(22.5 * 3600 - T0 % 86400, push_type="alert")
    elif rule == "guardrail.inactive-install":
        j.install(0, opened_at=T0)
        j.push(31 * 86400)
    elif rule == "guardrail.micro-batching":
        for i in range(3):
            j.push(i * 10, push_type="background", priority=5, version=i + 1)
    elif rule == "guardrail.visible-before-ready":
        j.push(0, push_type="alert", ready=False)
    elif rule == "guardrail.no-effect":
        j.push(0, push_type="background", priority=5, version=3)
        j.push(4000, push_type="background", priority=5, version=3)
    elif rule == "experiment.send-to-holdout":
        j.records.append({"type": "header", "now": T0, "experiment": _EXPERIMENT | {"mode": "advertised"}})
        j.push(0, install=_HOLDOUT_INSTALL, push_type="background", priority=5)
    else:
        raise AssertionError(f"no bad journal for {rule}")
    return j


def good(rule: str) -> J:
    j = J()
    if rule == "apns.send-after-unregistered":
        j.req(0, 410, "Unregistered")
        j.push(5, token=TOK2)      # another token is fine
    elif rule == "guardrail.inactive-install":
        j.install(0, opened_at=T0 + 86400)
        j.push(0)
        j.push(20 * 86400)         # 19 days after the last open
    elif rule == "fcm.send-after-unregistered":
        j.req(0, 404, "UNREGISTERED", service="fcm")
        j.req(5, 200, service="fcm", token=TOK2)
    elif rule == "apns.retry-too-soon":
        j.req(0, 429, "TooManyRequests")
        j.req(2, 200)
    elif rule == "fcm.retry-after-ignored":
        j.req(0, 429, "QUOTA_EXCEEDED", service="fcm", retry_after=30)
        j.req(31, 200, service="fcm")
    elif rule == "apns.retry-non-retryable":
        j.req(0, 413, "PayloadTooLarge")
        j.req(1, 200, digest="smaller")       # fixed the payload
    elif rule == "fcm.retry-non-retryable":
        j.req(0, 400, "INVALID_ARGUMENT", service="fcm")
        j.req(1, 200, service="fcm", digest="fixed")
    elif rule == "apns.background-too-frequent":
        for i in range(4):
            j.push(i * 1300, push_type="background", priority=5, version=i + 1)
    elif rule in ("apns.token-refresh-too-often", "apns.token-expired"):
        j.req(0, 200)
        j.req(1, 403, "InvalidProviderToken", digest="x")
    elif rule == "apns.connection-churn":
        for i in range(30):
            j.push(i, conn=i % 10 + 1, install=i, token=f"{i:02x}" * 32)
    elif rule == "apns.goaway-ignored":
        j.req(0, 200, goaway=True)
        j.req(0.001, 200, digest="in-flight")   # answered: it was in flight (stream <= last-stream-id)
        j.goaway(0, [0.01])          # opened within the grace: it may have crossed the GOAWAY
        j.req(1, 200, conn=2, digest="other")   # the next request on a new connection
    elif rule == "silent.payload-large":
        j.push(0, push_type="background", priority=5, size=200)
        j.push(1, push_type="alert", size=3000)     # a visible push may be large
    elif rule == "fcm.high-priority-without-notification":
        j.push(0, service="fcm", push_type="data", priority=5)
        j.push(1, service="fcm", push_type="notification", priority=10)
    elif rule == "fcm.device-rate":
        for i in range(240):
            j.req(i * 0.1, service="fcm", digest=f"m{i}")
    elif rule in ("fcm.too-many-pending", "fcm.collapse-key-limit"):
        j.push(0, service="fcm", push_type="notification", outcome="dropped", reason="collapsed")
    elif rule == "guardrail.frequency-cap":
        for i in range(24):
            j.push(i * 3000, push_type="background", priority=5, version=i + 1)
    elif rule == "guardrail.quiet-hours":
        j.install(0, tz_minutes=60)
        j.push(12 * 3600 - T0 % 86400, push_type="alert")
        j.push(23 * 3600 - T0 % 86400, push_type="background", priority=5)   # silent: disturbs no one
    elif rule == "guardrail.micro-batching":
        for i in range(3):
            j.push(i * 31, push_type="background", priority=5, version=i + 1)
    elif rule == "guardrail.visible-before-ready":
        j.push(0, push_type="alert", ready=True)
        j.push(1, push_type="alert", ready=False, outcome="pending")    # has not landed yet
    elif rule == "guardrail.no-effect":
        j.push(0, push_type="background", priority=5, version=3)
        j.push(4000, push_type="background", priority=5, version=4)
    elif rule == "experiment.send-to-holdout":
        j.records.append({"type": "header", "now": T0, "experiment": _EXPERIMENT | {"mode": "advertised"}})
        j.push(0, install=_TREATED_INSTALL, push_type="background", priority=5)
        j2 = J()      # an enforced holdout: the sender is meant not to know
        j2.records.append({"type": "header", "now": T0, "experiment": _EXPERIMENT})
        j2.push(0, install=_HOLDOUT_INSTALL, push_type="background", priority=5)
        assert rule not in j2.rules()
    else:
        raise AssertionError(f"no good journal for {rule}")
    return j


RULE_IDS = [r.id for r in RULES]


@pytest.mark.parametrize("rule", RULE_IDS)
def test_a_bad_journal_triggers_the_rule(rule: str) -> None:
    assert rule in bad(rule).rules()


@pytest.mark.parametrize("rule", RULE_IDS)
def test_a_good_journal_does_not(rule: str) -> None:
    assert rule not in good(rule).rules()


def test_the_catalogue_has_the_issues_ids() -> None:
    issue = {"apns.send-after-unregistered", "fcm.send-after-unregistered", "apns.retry-too-soon",
             "fcm.retry-after-ignored", "apns.retry-non-retryable", "fcm.retry-non-retryable",
             "apns.background-too-frequent", "apns.token-refresh-too-often", "apns.token-expired",
             "apns.connection-churn", "apns.goaway-ignored", "silent.payload-large",
             "fcm.high-priority-without-notification", "fcm.device-rate", "fcm.too-many-pending",
             "fcm.collapse-key-limit", "guardrail.frequency-cap", "guardrail.quiet-hours",
             "guardrail.inactive-install", "guardrail.micro-batching", "guardrail.visible-before-ready",
             "guardrail.no-effect"}
    assert issue <= set(BY_ID)
    assert all(r.severity in ("error", "warning", "info") and r.advice and r.source for r in RULES)


def test_goaway_ignored_counts_every_late_stream_past_the_kept_times() -> None:
    j = J()
    j.goaway(0, [0.5 + i for i in range(20)], count=57)
    j.goaway(0, [0.01], conn=2, count=5)    # its kept stream is within the grace: the rest is unknown
    (f,) = [f for f in j.findings() if f["rule"] == "apns.goaway-ignored"]
    assert f["count"] == 57 and f["sender"] == "TEAM/KEY"
    assert {ev["conn"] for ev in f["evidence"]} == {1} and "id" not in f["evidence"][0]
    assert "57 stream(s)" in f["detail"] and "1 connection(s)" in f["detail"]
    assert "apns.goaway-ignored" in j.rules(**{"apns": {"goaway-ignored": {"grace": 0.001}}})
    strict = build_report(j.records, parse_policy({"apns": {"goaway-ignored": {"grace": 0.001}}}, DEFAULTS))
    (f,) = [f for f in strict["findings"] if f["rule"] == "apns.goaway-ignored"]   # type: ignore[index]
    assert f["count"] == 57 + 5


def test_a_finding_says_who_which_tokens_how_many_and_where() -> None:
    j = J()
    first = j.req(0, 410, "Unregistered")
    later = [j.req(10 * i, 410, "Unregistered") for i in range(1, 4)]
    f = next(f for f in j.findings() if f["rule"] == "apns.send-after-unregistered")
    assert f["sender"] == "TEAM/KEY" and f["tokens"] == [TOK] and f["count"] == 3
    assert [e["id"] for e in f["evidence"]] == later and first not in [e["id"] for e in f["evidence"]]
    assert "30 s" in f["detail"]


def test_findings_are_per_sender() -> None:
    j = J()
    j.req(0, 403, "ExpiredProviderToken", sender="A/1")
    j.req(1, 403, "ExpiredProviderToken", sender="B/2", digest="x")
    senders = [f["sender"] for f in j.findings() if f["rule"] == "apns.token-expired"]
    assert senders == ["A/1", "B/2"]


def test_policy_thresholds_severity_and_ignore() -> None:
    j = bad("apns.background-too-frequent")
    assert "apns.background-too-frequent" not in j.rules(**{"apns": {"background-too-frequent": {"max_per_hour": 4}}})
    assert "apns.background-too-frequent" not in j.rules(ignore=["apns.background-too-frequent"])
    rep = build_report(j.records, parse_policy({"severity": {"apns.background-too-frequent": "error"}}, DEFAULTS))
    sev = {f["rule"]: f["severity"] for f in rep["findings"]}  # type: ignore[index]
    assert sev["apns.background-too-frequent"] == "error"
    assert [f["rule"] for f in failing(rep["findings"], "error")] == ["apns.background-too-frequent"]  # type: ignore[arg-type]


@pytest.mark.parametrize("doc, message", [
    ({"ignore": ["no.such-rule"]}, "unknown rule 'no.such-rule'"),
    ({"apns": {"background-too-frequent": {"max_per_day": 2}}}, "has no threshold 'max_per_day'"),
    ({"apns": {"background-too-frequent": {"max_per_hour": "two"}}}, "must be a number"),
    ({"severity": {"guardrail.quiet-hours": "fatal"}}, "must be one of error, warning, info"),
    ({"guardrails": {"x": 1}}, "unknown rule or key"),
])
def test_a_bad_policy_is_a_clear_error(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_policy(doc, DEFAULTS)


def test_records_that_do_not_fit_are_counted_not_fatal() -> None:
    rep = build_report([1, "x", None, {"type": "request"}, {"type": "mystery"}, {"type": "accepted", "seq": "a"}])
    assert rep["summary"]["skipped_records"] == 6 and rep["findings"] == []  # type: ignore[index]
