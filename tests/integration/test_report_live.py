"""The report against a running server: the example sender gets no error, a bad sender gets every
error rule, `pushsim report --fail-on error` sets the exit code, and the JUnit file parses."""
from __future__ import annotations

import json
import socket
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import h2.config
import h2.connection
import httpx
import pytest

from _serve_helpers import ephemeral_config
from bad_sender import BadSender
from pushsim.cli import main as cli_main
from pushsim.pytest_plugin import PushSimClient, PushSimError
from pushsim.report import RULES
from pushsim.server import run_in_thread
from tests.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from sender import Sender  # noqa: E402

ERROR_RULES = sorted(r.id for r in RULES if r.severity == "error")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sim, stop = run_in_thread(ephemeral_config(tmp_path_factory.mktemp("state"), devices="ios=12,android=12"))
    yield sim
    stop()


@pytest.fixture
def client(server: Any) -> PushSimClient:
    c = PushSimClient(server.endpoints)
    c.reset()
    return c


def _report(client: PushSimClient) -> dict[str, Any]:
    return client.report()


def test_the_example_sender_has_no_error_finding(client: PushSimClient, server: Any) -> None:
    ios, android = client.tokens("ios", limit=4), client.tokens("android", limit=4)
    s = Sender.from_endpoints(server.endpoints, tokens=set(ios) | set(android), max_wait=5.0)
    try:
        for t in ios[:2]:
            assert s.send_apns(t, {"aps": {"alert": "hi"}}).ok
        for t in android[:2]:
            assert s.send_fcm(t, {"notification": {"title": "hi"}}).ok
        # a 429 with Retry-After and a 503: the example waits before it retries
        client.add_fault(scope={"service": "apns", "tokens": [ios[2]]}, trigger={"first": 1},
                         action={"type": "respond", "reason": "TooManyRequests", "retry_after": 1})
        assert s.send_apns(ios[2], {"aps": {"alert": "again"}}).attempts == 2
        client.add_fault(scope={"service": "fcm", "tokens": [android[2]]}, trigger={"first": 1},
                         action={"type": "respond", "reason": "UNAVAILABLE"})
        assert s.send_fcm(android[2], {"data": {"k": "v"}}).ok
        # a dead token is dropped after the first 410 / UNREGISTERED, never sent to again
        client.uninstall(ios[3])
        client.uninstall(android[3])
        assert s.send_apns(ios[3], {"aps": {"alert": "bye"}}).removed
        assert s.send_fcm(android[3], {"data": {"k": "v"}}).removed
    finally:
        s.close()
    rep = client.assert_conformant(fail_on="error")
    assert rep["summary"]["requests"] >= 10
    assert not [f for f in rep["findings"] if f["severity"] == "error"]
    groups = {(g["service"], g["push_type"]) for g in rep["metrics"]["groups"]}
    assert ("apns", "alert") in groups and ("fcm", "notification") in groups


def _misbehave(server: Any, client: PushSimClient) -> dict[str, list[int]]:
    ios, android = client.tokens("ios", limit=8), client.tokens("android", limit=8)
    b = BadSender(server.endpoints)
    try:
        return {
            "apns.send-after-unregistered": b.keep_sending_after_410(ios[0]),
            "fcm.send-after-unregistered": b.keep_sending_after_unregistered(android[0]),
            "apns.retry-too-soon": b.retry_429_at_once(ios[1]),
            "fcm.retry-after-ignored": b.ignore_retry_after(android[1]),
            "apns.retry-non-retryable": b.resend_payload_too_large(ios[2]),
            "fcm.retry-non-retryable": b.resend_invalid_argument(android[2]),
            "apns.token-refresh-too-often": b.refresh_token_on_every_push(ios[3]),
            "apns.token-expired": b.use_a_stale_token(ios[4]),
            "fcm.device-rate": b.flood_one_device(android[3]),
        }
    finally:
        b.close()


def test_a_bad_sender_gets_every_error_rule_and_the_exit_code(client: PushSimClient, server: Any,
                                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    statuses = _misbehave(server, client)
    assert sorted(statuses) == ERROR_RULES       # the bad sender covers the whole error catalogue
    assert statuses["apns.send-after-unregistered"] == [410, 410, 410]
    assert statuses["apns.token-refresh-too-often"] == [200, 429]
    assert statuses["apns.token-expired"] == [403]
    assert 429 in statuses["fcm.device-rate"]

    admin = server.endpoints["admin"]["url"]
    capsys.readouterr()
    assert cli_main(["report", "--admin", admin, "--format", "json", "--fail-on", "error"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert set(rep) >= {"findings", "metrics"}
    errors = {f["rule"] for f in rep["findings"] if f["severity"] == "error"}
    assert errors == set(ERROR_RULES)
    journal_ids = {e["id"] for e in httpx.get(admin + "/journal", params={"limit": 10_000}).json()["entries"]}
    for f in rep["findings"]:
        assert {ev["id"] for ev in f["evidence"] if "id" in ev} <= journal_ids
    assert cli_main(["report", "--admin", admin, "--fail-on", "never", "--format", "text"]) == 0
    assert "apns.send-after-unregistered" in capsys.readouterr().out

    # JUnit: one test case per rule, the error rules failed, parseable by a JUnit reader
    out = tmp_path / "report.xml"
    assert cli_main(["report", "--admin", admin, "--format", "junit", "--output", str(out)]) == 1
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [r.id for r in RULES]
    assert all(c.get("classname") and c.get("time") is not None for c in cases)
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == set(ERROR_RULES)
    assert int(suite.get("tests", "0")) == len(RULES) and int(suite.get("failures", "0")) == len(failed)

    # the same journal, exported and reported offline, gives the same findings
    export = tmp_path / "journal.jsonl"
    export.write_bytes(httpx.get(admin + "/journal", params={"format": "jsonl"}, timeout=30).content)
    assert cli_main(["report", str(export), "--format", "json"]) == 1
    offline = json.loads(capsys.readouterr().out)
    assert {(f["rule"], f["count"]) for f in offline["findings"]} == {(f["rule"], f["count"]) for f in rep["findings"]}

    client_email = json.loads(Path(server.endpoints["fcm"]["service_account_file"]).read_text())["client_email"]
    senders = {f["rule"]: f["sender"] for f in rep["findings"]}
    assert senders["fcm.send-after-unregistered"] == client_email
    assert senders["apns.send-after-unregistered"] == (f"{server.endpoints['apns']['team_id']}/"
                                                       f"{server.endpoints['apns']['key_id']}")

    with pytest.raises(PushSimError) as e:
        client.assert_conformant(ignore=["fcm.device-rate"])
    assert "apns.token-expired" in str(e.value) and "evidence: journal #" in str(e.value)
    assert "fcm.device-rate" not in str(e.value)


def test_journal_filters_and_count(client: PushSimClient, server: Any) -> None:
    ios = client.tokens("ios", limit=2)
    b = BadSender(server.endpoints)
    try:
        b.apns_send(ios[0])
        b.resend_payload_too_large(ios[1])
    finally:
        b.close()
    admin = server.endpoints["admin"]["url"]
    get = lambda path, **q: httpx.get(admin + path, params=q)   # noqa: E731
    assert get("/journal/count").json()["count"] == 3
    assert get("/journal/count", status="413").json()["count"] == 2
    assert get("/journal/count", reason="PayloadTooLarge", service="apns").json()["count"] == 2
    assert get("/journal/count", push_type="alert").json()["count"] == 3
    ok = get("/journal", status="200", detail="1").json()["entries"]
    (e,) = ok
    assert e["push_type"] == "alert" and e["priority"] == 10 and e["size"] == len(b'{"aps":{"alert":"hi"}}')
    assert e["sender"] == f"{server.endpoints['apns']['team_id']}/{server.endpoints['apns']['key_id']}"
    assert ["authorization", "<redacted>"] in e["headers"] and "bearer" not in json.dumps(e["headers"])
    assert get("/journal/count", sender=e["sender"]).json()["count"] == 3
    assert get("/journal/count", connection=str(e["conn"])).json()["count"] >= 1
    r = get("/journal", statuss="200")
    assert r.status_code == 400 and "statuss" in r.json()["error"] and "allowed: connection" in r.json()["error"]
    assert get("/journal/count", status="abc").status_code == 400
    assert get("/report", bogus="1").status_code == 400
    assert get("/report", ignore="no.such-rule").status_code == 400


@pytest.mark.parametrize("clock, triggered", [("real", True), ("scaled:7200", False)])
def test_frequency_rules_count_in_device_time(tmp_path: Path, clock: str, triggered: bool) -> None:
    """Four background pushes: back to back on a real clock (all within an hour: over Apple's 2-3 an
    hour); on a clock 7200 times as fast, each sent once the device clock moved on by over an hour
    (about half a second of wall time), so no hour holds more than one."""
    sim, stop = run_in_thread(ephemeral_config(tmp_path, devices="ios=2,android=0", clock=clock))
    try:
        client = PushSimClient(sim.endpoints)
        token = client.tokens("ios", limit=1)[0]
        device_now = sim.testbed.clock.device_now
        b = BadSender(sim.endpoints)
        try:
            for i in range(4):
                if i and not triggered:
                    last = sent_at
                    wait_until(lambda: device_now() - last > 3700, "an hour of device time passed")
                sent_at = device_now()
                r = b.apns.post(f"/3/device/{token}", content=b'{"aps":{"content-available":1}}', headers={
                    "authorization": f"bearer {b._jwt}", "apns-topic": b.topic, "apns-push-type": "background",
                    "apns-priority": "5"})
                assert r.status_code == 200
        finally:
            b.close()
        rules = {f["rule"] for f in client.report()["findings"]}
        assert ("apns.background-too-frequent" in rules) is triggered
    finally:
        stop()


@pytest.mark.parametrize("engine", ["fast", "h2"])
def test_streams_opened_after_a_goaway_are_counted_on_either_engine(tmp_path: Path, engine: str) -> None:
    """The server ignores streams above its GOAWAY's last-stream-id (never answered, so never
    journal requests); the GOAWAY record counts them and apns.goaway-ignored reports them. A
    client that takes the GOAWAY as the end of the connection (httpx) gets no finding."""
    sim, stop = run_in_thread(ephemeral_config(tmp_path, devices="ios=4,android=0", engine=engine))
    try:
        client = PushSimClient(sim.endpoints)
        ios = client.tokens("ios", limit=4)
        admin = sim.endpoints["admin"]["url"]
        b = BadSender(sim.endpoints)
        try:
            # well-behaved first: httpx answers a GOAWAY by opening a new connection
            b.fault_once("apns", ios[3], type="goaway", reason="Shutdown")      # answered, then GOAWAY
            assert [b.apns_send(ios[3]).status_code for _ in range(2)] == [200, 200]
            assert "apns.goaway-ignored" not in {f["rule"] for f in client.report()["findings"]}
            last = b.keep_sending_after_goaway(ios[0], ios[1], ios[2], late=3)
        finally:
            b.close()
        assert last == 3
        lines = [json.loads(x) for x in httpx.get(admin + "/journal", params={"format": "jsonl"}).text.splitlines()]
        goaways = [r for r in lines if r["type"] == "goaway"]
        assert len(goaways) == 2 and all(g["service"] == "apns" and g["code"] == 0 for g in goaways)
        (g,) = [g for g in goaways if g["late"]]
        assert g["late"] == 3 and len(g["late_t"]) == 3 and g["last_stream_id"] == 3
        assert json.loads(g["debug"]) == {"reason": "Shutdown"} and g["late_t"][0] - g["t"] > 0.1
        journal = httpx.get(admin + "/journal", params={"token": ios[2]}).json()["entries"]
        assert len(journal) == 1 and journal[0]["conn"] == g["conn"]   # stream 1 only: the late ones were ignored
        (f,) = [f for f in client.report()["findings"] if f["rule"] == "apns.goaway-ignored"]
        assert f["count"] == 3 and f["severity"] == "warning"
        # a connection error's GOAWAY is recorded too (here PROTOCOL_ERROR: DATA on stream 0)
        url = urlsplit(sim.endpoints["apns"]["h2c_url"])
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            h2c.initiate_connection()
            sock.sendall(h2c.data_to_send() + b"\x00\x00\x00\x00\x00\x00\x00\x00\x00")
            while sock.recv(65536):
                pass                                   # until the server closes it
        wait_until(lambda: any(json.loads(x).get("code") == 1 for x in httpx.get(
            admin + "/journal", params={"format": "jsonl"}).text.splitlines() if '"goaway"' in x),
            "the PROTOCOL_ERROR GOAWAY is in the export")
        assert f["sender"] == f"{sim.endpoints['apns']['team_id']}/{sim.endpoints['apns']['key_id']}"
        assert {ev["conn"] for ev in f["evidence"]} == {g["conn"]}
    finally:
        stop()
