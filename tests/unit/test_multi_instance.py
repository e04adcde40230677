"""Merged views over several instances (pushsim/multi_instance.py) and the CLI's way of asking them
(pushsim/cli/instances.py): names, sums, cursors, namespaced ids, down instances."""
from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from pushsim import cli
from pushsim.multi_instance import (format_cursor, instance_names, merge_exports, merge_fleet, merge_journal_pages,
                                    merge_stats, name_evidence, parse_cursor, unbalanced)


def test_instances_are_named_by_host_and_port_unless_two_share_one() -> None:
    assert instance_names(["http://10.0.0.1:2199", "http://10.0.0.2:2199/"]) == ["10.0.0.1:2199", "10.0.0.2:2199"]
    assert instance_names(["http://h:1/a", "http://h:1/b/", "http://g:2"]) == ["http://h:1/a", "http://h:1/b", "g:2"]


def test_stats_are_summed_reason_by_reason_and_stay_balanced() -> None:
    a = {"accepted": 5, "rejected": {"BadDeviceToken": 2}, "delivered": 3, "dropped": {"expired": 1},
         "pending": {"in-transit": 1}, "workers": 2, "per_worker": []}
    b = {"accepted": 4, "rejected": {}, "delivered": 1, "dropped": {"expired": 1, "collapsed": 1},
         "pending": {"stored-offline": 1}}
    out = merge_stats([("a:1", a), ("b:1", b)])
    assert {k: out[k] for k in ("accepted", "delivered", "rejected", "dropped", "pending")} == {
        "accepted": 9, "delivered": 4, "rejected": {"BadDeviceToken": 2}, "dropped": {"expired": 2, "collapsed": 1},
        "pending": {"in-transit": 1, "stored-offline": 1}}
    assert out["instances"] == ["a:1", "b:1"] and unbalanced(out) == 0
    assert out["per_instance"][0] == {"instance": "a:1", **{k: a[k] for k in
                                                            ("accepted", "rejected", "delivered", "dropped", "pending")}}
    assert unbalanced({**out, "accepted": 10}) == 1


def test_partitions_hand_off_counters_are_summed_per_receiving_partition() -> None:
    def handoff(k: int, sent: dict[int, int], failed: int, received: int) -> dict[str, Any]:
        peers = {str(p): {"url": f"http://h{p}", "sent": n, "failed": failed if p == 2 else 0, "queued": 0,
                          "last_error": "PeerUnavailable" if failed and p == 2 else None} for p, n in sent.items()}
        return {"accepted": 1, "rejected": {}, "delivered": 1, "dropped": {}, "pending": {},
                "handoff": {"partition": f"{k}/3", "sent": sum(sent.values()), "failed": failed, "queued": 0,
                            "peers": peers, "received": {"messages": received, "subscriptions": 1}}}
    parts = [("a", handoff(0, {1: 2, 2: 3}, 1, 4)), ("b", handoff(1, {0: 5, 2: 1}, 0, 2)), ("c", handoff(2, {0: 1, 1: 1}, 0, 6))]
    out = merge_stats(parts)
    assert out["handoff"] == {"sent": 13, "failed": 1, "queued": 0, "received": {"messages": 12, "subscriptions": 3},
                              "peers": {"0": {"url": "http://h0", "sent": 6, "failed": 0, "queued": 0},
                                        "1": {"url": "http://h1", "sent": 3, "failed": 0, "queued": 0},
                                        "2": {"url": "http://h2", "sent": 4, "failed": 1, "queued": 0}}}
    assert out["per_instance"][0]["handoff"]["peers"]["2"]["last_error"] == "PeerUnavailable"
    assert "handoff" not in merge_stats([("a", {"accepted": 0})])


def test_fleet_stats_recompute_rates_over_the_sum() -> None:
    def part(acc: int, dlv: int) -> dict[str, Any]:
        return {"funnel": {"accepted": acc, "rejected": {}, "delivered": dlv, "dropped": {}, "pending": {"q": acc - dlv}},
                "background": {"started": 1, "succeeded": 1, "failed": 0, "killed": 0}, "active_installs": 2,
                "task_duration": {"count": 1, "mean": 1.0, "p50": 1.0, "p90": 1.0, "p99": 1.0}, "clock": "real"}
    exact = {**part(4, 0), "states": {"sampled": 3, "installs": 3, "exact": True, "ios": {"installs": 3}}}
    sampled = {**part(4, 4), "states": {"sampled": 2, "installs": 9, "exact": False, "ios": {"installs": 9}}}
    out = merge_fleet([("a:1", sampled), ("b:1", exact)])
    assert out["funnel"]["accepted"] == 8 and out["receipt_rate"] == 0.5 and out["active_installs"] == 4
    assert out["states"] == {"sampled": 5, "installs": 12, "exact": False, "ios": {"installs": 12}}
    assert out["instances"] == ["a:1", "b:1"]


def test_cursor_text_round_trips_and_bad_ones_are_refused() -> None:
    names = ["a:1", "b:2"]
    assert parse_cursor(None, names) == {"a:1": 0, "b:2": 0} and parse_cursor("7", names) == {"a:1": 7, "b:2": 7}
    cur = {"a:1": 3, "b:2": 11}
    assert parse_cursor(format_cursor(cur), names) == cur
    assert parse_cursor("b:2=5", names) == {"a:1": 0, "b:2": 5}
    for bad in ("x", "c:3=1", "a:1=-1", "a:1="):
        with pytest.raises(ValueError, match="--since"):
            parse_cursor(bad, names)


def test_a_merged_page_is_time_ordered_and_its_cursor_stops_where_it_stopped() -> None:
    a = {"entries": [{"id": 10, "t": 1.0}, {"id": 11, "t": 4.0}], "next_since": 12}
    b = {"entries": [{"id": 0, "t": 2.0}, {"id": 1, "t": 3.0}], "next_since": 2}
    out = merge_journal_pages([("a", a), ("b", b)], {"a": 10, "b": 0}, 3)
    assert [(e["instance"], e["id"]) for e in out["entries"]] == [("a", 10), ("b", 0), ("b", 1)]
    assert out["cursor"] == {"a": 11, "b": 2} and out["next_since"] == "a=11,b=2"
    empty = merge_journal_pages([("a", {"entries": [], "next_since": 12}), ("b", b)], {"a": 12, "b": 0}, 1)
    assert empty["cursor"] == {"a": 12, "b": 1}


def _export(*recs: dict[str, Any]) -> list[dict[str, Any]]:
    return list(recs)


def test_merged_export_keeps_two_instances_connection_7_apart_and_names_evidence() -> None:
    def inst(t: float, token: str) -> list[dict[str, Any]]:
        return _export({"type": "header", "accepted": 0, "now": 10.0},
                       *({"type": "request", "id": i, "t": t + i, "service": "apns", "token": token, "status": 400,
                          "reason": "BadTopic", "conn": 7, "sender": "T/K", "digest": "d"} for i in range(2)))
    merged = [orjson.loads(x) for x in merge_exports([("a:1", inst(1.0, "x")), ("b:1", inst(1.5, "y"))])]
    reqs = [r for r in merged if r["type"] == "request"]
    assert [(r["id"], r["instance"], r["instance_id"]) for r in reqs] == [(1, "a:1", 0), (2, "b:1", 0),
                                                                           (3, "a:1", 1), (4, "b:1", 1)]
    assert {r["conn"] for r in reqs} == {14, 15} and {r["instance_conn"] for r in reqs} == {7}
    assert merged[0]["instances"] == ["a:1", "b:1"] and "workers" not in merged[0]
    from pushsim.report import build_report
    report = name_evidence(build_report(merged), merged)
    found = [f for f in report["findings"] if f["rule"] == "apns.retry-non-retryable"]
    assert len(found) == 1 and found[0]["count"] == 2
    assert sorted((e["instance"], e["id"]) for e in found[0]["evidence"]) == [("a:1", 1), ("b:1", 1)]
    assert report["instances"] == ["a:1", "b:1"]


def test_two_instances_goaways_stay_apart_and_their_evidence_names_the_instance() -> None:
    def inst(late: int) -> list[dict[str, Any]]:
        return _export({"type": "header", "accepted": 0, "now": 10.0},
                       {"type": "goaway", "t": 1.0, "at": 1.0, "service": "apns", "conn": 7, "sender": "T/K",
                        "last_stream_id": 3, "code": 0, "late": late, "late_t": [2.0] * late, "late_at": [2.0] * late})
    merged = [orjson.loads(x) for x in merge_exports([("a:1", inst(1)), ("b:1", inst(2))])]
    gs = [r for r in merged if r["type"] == "goaway"]
    assert sorted((g["conn"], g["instance"], g["instance_conn"]) for g in gs) == [(14, "a:1", 7), (15, "b:1", 7)]
    from pushsim.report import build_report
    report = name_evidence(build_report(merged), merged)
    (f,) = [f for f in report["findings"] if f["rule"] == "apns.goaway-ignored"]
    assert f["count"] == 3
    assert sorted((e["instance"], e["conn"]) for e in f["evidence"]) == [("a:1", 7), ("b:1", 7), ("b:1", 7)]


def test_one_instance_export_keeps_its_connections_and_order() -> None:
    recs = _export({"type": "header", "accepted": 0}, {"type": "request", "id": 4, "t": 2.0, "conn": 3},
                   {"type": "request", "id": 9, "t": 1.0, "conn": 5})
    merged = [orjson.loads(x) for x in merge_exports([("a:1", recs)])]
    assert [(r["instance_id"], r["conn"]) for r in merged if r["type"] == "request"] == [(4, 3), (9, 5)]


def test_the_merged_header_carries_the_fleet_metrics_of_all_instances() -> None:
    def header(acc: int, dlv: int, opens: int) -> list[dict[str, Any]]:
        funnel = {"accepted": acc, "rejected": {}, "delivered": dlv, "dropped": {}, "pending": {"q": acc - dlv}}
        return _export({"type": "header", "accepted": acc, "digest": "x", "complete": True,
                        "metrics": {"funnel": funnel, "freshness": {"opens": opens, "fresh": opens, "ready": 0},
                                    "active_installs": 1, "clock": "real"}})
    head = orjson.loads(merge_exports([("a:1", header(4, 4, 1)), ("b:1", header(4, 0, 3))])[0])
    assert head["accepted"] == 8 and head["digest"] is None and head["complete"] is True
    m = head["metrics"]
    assert m["funnel"]["accepted"] == 8 and m["receipt_rate"] == 0.5 and m["freshness"]["opens"] == 4
    assert m["active_installs"] == 2


# the CLI --------------------------------------------------------------------------------------------------
UP = "http://127.0.0.1:9"           # the stand-in answers for this one; any other URL is down
ODD = "http://127.0.0.1:10"         # answers JSON that is no pushsim's
STATS = {"accepted": 2, "rejected": {}, "delivered": 1, "dropped": {}, "pending": {"queued": 1}}


@pytest.fixture
def one_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import pushsim.cli.instances as instances

    def get(url: str, timeout: float) -> bytes:
        if url == UP + "/stats":
            return json.dumps(STATS).encode()
        if url == ODD + "/stats":
            return b'{"accepted": {"not": "a count"}}'
        if url == UP + "/journal?format=jsonl":
            return b'{"type": "header"}\nnot json\n'
        raise OSError("[Errno 111] Connection refused")
    monkeypatch.setattr(instances, "_get", get)


def test_a_down_instance_is_a_usage_error_naming_it(one_up: None, capsys: pytest.CaptureFixture[str]) -> None:
    down = "http://127.0.0.1:7"
    assert cli.main(["stats", "--admin", f"{UP},{down}", "--json"]) == 2
    err = capsys.readouterr().err
    assert "instance 127.0.0.1:7 (http://127.0.0.1:7/stats) did not answer" in err and "--partial" in err
    assert "127.0.0.1:9" not in err
    assert cli.main(["stats", "--admin", UP, "--admin", down, "--json", "--partial"]) == 0
    got = capsys.readouterr()
    assert json.loads(got.out)["accepted"] == 2 and "merged 1 of 2 instances (127.0.0.1:9)" in got.err
    assert cli.main(["stats", "--admin", down, "--admin", "http://127.0.0.1:8", "--partial"]) == 2   # none answered
    assert "127.0.0.1:8" in capsys.readouterr().err


def test_an_export_that_is_not_jsonl_names_its_instance(one_up: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--admin", f"{UP},{UP}/"]) == 2
    err = capsys.readouterr().err
    assert "instance http://127.0.0.1:9 (http://127.0.0.1:9/journal?format=jsonl) answered, but not in JSON" in err
    assert "Traceback" not in err


def test_an_answer_of_the_wrong_shape_is_a_usage_error(one_up: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["stats", "--admin", f"{UP},{ODD}"]) == 2
    err = capsys.readouterr().err
    assert "do not merge" in err and "Traceback" not in err


def test_a_bad_cursor_is_a_usage_error(one_up: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["journal", "--admin", f"{UP},http://127.0.0.1:7", "--since", "what"]) == 2
    assert "--since" in capsys.readouterr().err


def test_admin_urls_flags_win_over_the_variable_and_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    from pushsim.cli.instances import admin_urls
    monkeypatch.setenv("PUSHSIM_STATS_ADMIN", "http://e1,http://e2")
    monkeypatch.setenv("PUSHSIM_ADMIN_URL", "http://u1,http://u2")

    def parse(argv: list[str]) -> Any:      # a new parser: defaults come from the variables as they are now
        return cli.build_parser().parse_args(argv)
    assert admin_urls(parse(["stats"])) == ["http://e1", "http://e2"]
    assert admin_urls(parse(["stats", "--admin", "http://f1", "--admin", "http://f2,http://f3"])) == \
        ["http://f1", "http://f2", "http://f3"]
    assert admin_urls(parse(["stats", "--endpoints", "e.json"])) == []
    monkeypatch.delenv("PUSHSIM_STATS_ADMIN")
    assert admin_urls(parse(["stats"])) == ["http://u1", "http://u2"]
    assert admin_urls(parse(["report"])) == ["http://u1", "http://u2"]
