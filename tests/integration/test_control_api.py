"""The control API over real sockets, with APNs traffic sent by httpx over HTTP/2."""
from __future__ import annotations

import json
import re
import threading

import httpx
import pytest

from _serve_helpers import (apns_client, consistent_scrape, ephemeral_config, funnel_of_metrics, promtool_check,
                            provider_token, push, summary_events, walk_routes)
from pushsim.control import ROUTES
from pushsim.server import run_in_thread
from tests.waiting import wait_until


IOS, ANDROID = 6, 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sim, stop = run_in_thread(ephemeral_config(tmp_path_factory.mktemp("state"), devices=f"ios={IOS},android={ANDROID}"))
    yield sim
    stop()


@pytest.fixture
def admin(server):
    with httpx.Client(base_url=server.endpoints["admin"]["url"], timeout=10) as c:
        assert c.post("/reset").status_code == 200
        yield c


@pytest.fixture(scope="module")
def jwt_token(server):
    # One provider token for the module: APNs answers 429 TooManyProviderTokenUpdates to a client
    # that changes tokens on a connection more often than every 20 minutes.
    return provider_token(server.endpoints)


@pytest.fixture
def apns(server):
    with apns_client(server.endpoints) as c:
        yield c


def _ios_token(admin: httpx.Client, i: int = 0) -> str:
    return admin.get("/devices", params={"platform": "ios", "offset": i, "limit": 1}).json()["devices"][0]["token"]


def test_every_route_of_the_table_is_served(admin):
    seen = walk_routes(admin, _ios_token(admin, 0))
    unrouted = {k: v for k, v in seen.items() if v in (404, 405)}
    assert not unrouted and len(seen) == len(ROUTES), seen


def test_health(admin):
    body = admin.get("/health").json()
    assert body["status"] == "ok" and body["devices"] >= IOS + ANDROID


def test_devices_paginate_over_the_whole_fleet(admin):
    all_ = admin.get("/devices", params={"limit": 1000}).json()
    total = all_["total"]
    assert total == len(all_["devices"]) >= IOS + ANDROID
    pages = [admin.get("/devices", params={"limit": 3, "offset": o}).json()["devices"] for o in range(0, total, 3)]
    assert [d["token"] for p in pages for d in p] == [d["token"] for d in all_["devices"]]
    assert admin.get("/devices", params={"offset": total}).json()["devices"] == []


def test_devices_filter_by_platform(admin):
    ios = admin.get("/devices", params={"platform": "ios", "limit": 2, "offset": 1}).json()
    android = admin.get("/devices", params={"platform": "android", "limit": 10000}).json()
    assert len(ios["devices"]) == 2 and all(d["platform"] == "ios" for d in ios["devices"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", d["token"]) for d in ios["devices"])
    assert ios["devices"][0]["token"] == _ios_token(admin, 1)
    assert android["total"] == len(android["devices"]) and all(":APA91b" in d["token"] for d in android["devices"])
    assert ios["total"] + android["total"] == admin.get("/devices").json()["total"]
    for d in ios["devices"]:
        assert {"token", "platform", "app"} <= set(d) and d["app"] == "com.example.app"


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "10001"}, {"limit": "x"}, {"offset": "-1"},
                                    {"platform": "windows"}])
def test_devices_bad_params_are_400_json(admin, params):
    r = admin.get("/devices", params=params)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]


def test_register_devices_then_look_them_up(admin):
    before = admin.get("/devices").json()["total"]
    r = admin.post("/devices", json={"platform": "android", "count": 2, "app": "org.example.other"})
    assert r.status_code == 201
    made = r.json()["devices"]
    assert len(made) == 2 and {d["app"] for d in made} == {"org.example.other"}
    assert admin.get("/devices").json()["total"] == before + 2
    got = admin.get(f"/devices/{made[1]['token']}").json()
    assert got["index"] == made[1]["index"] and got["deliveries"] == []


@pytest.mark.parametrize("body", [b"nope", b"[1]", b'{"platform":"pager"}', b'{"count":0}', b'{"count":"2"}',
                                  b'{"environment":"staging"}'])
def test_register_devices_rejects_bad_bodies(admin, body):
    r = admin.post("/devices", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()


def test_unknown_token_and_route_are_404_json(admin):
    assert admin.get("/devices/" + "ab" * 32).status_code == 404
    r = admin.get("/devices/not-a-token")
    assert r.status_code == 404 and r.json()["error"]
    assert admin.get("/nothing-here").json()["error"]


def test_pushes_show_in_device_journal_stats_and_metrics(server, admin, apns, jwt_token):
    token = _ios_token(admin, 2)
    ok = push(apns, server.endpoints, token, jwt_token, apns_id="8F1E3A4B-0000-4000-8000-00000000ABCD")
    assert ok.status_code == 200 and ok.http_version == "HTTP/2"
    assert ok.headers["apns-id"] == "8F1E3A4B-0000-4000-8000-00000000ABCD"
    bad = push(apns, server.endpoints, "00" * 31 + "zz", jwt_token)
    assert bad.status_code == 400 and bad.json()["reason"] == "BadDeviceToken"

    dev = admin.get(f"/devices/{token}").json()
    assert [d["id"] for d in dev["deliveries"]] == ["8F1E3A4B-0000-4000-8000-00000000ABCD"]

    stats = admin.get("/stats").json()
    assert stats["accepted"] == 1 and stats["rejected"] == {"BadDeviceToken": 1}
    assert stats["delivered"] + sum(stats["dropped"].values()) + sum(stats["pending"].values()) == 1

    entries = admin.get("/journal").json()["entries"]
    assert [(e["status"], e["reason"]) for e in entries] == [(200, None), (400, "BadDeviceToken")]
    mine = admin.get("/journal", params={"token": token}).json()
    assert [e["message_id"] for e in mine["entries"]] == ["8F1E3A4B-0000-4000-8000-00000000ABCD"]

    text = admin.get("/metrics").text
    assert re.search(r"^pushsim_accepted_total 1\.0$", text, re.M)
    assert re.search(r'^pushsim_rejected_total\{reason="BadDeviceToken"\} 1\.0$', text, re.M)
    assert re.search(r'^pushsim_service_accepted_total\{service="apns"\} 1\.0$', text, re.M)
    assert re.search(r'^pushsim_requests_total\{service="apns",status="400"\} 1\.0$', text, re.M)
    # Per-service settles: seeded from the ledger at the first scrape, followed live after it.
    assert push(apns, server.endpoints, token, jwt_token).status_code == 200
    stats, text = admin.get("/stats").json(), admin.get("/metrics").text
    m = re.search(r'^pushsim_service_delivered_total\{service="apns"\} (\d+)\.0$', text, re.M)
    assert (int(m.group(1)) if m else 0) == stats["delivered"]


def test_journal_pages_with_next_since(server, admin, apns, jwt_token):
    token = _ios_token(admin)
    for _ in range(5):
        assert push(apns, server.endpoints, token, jwt_token).status_code == 200
    first = admin.get("/journal", params={"limit": 2}).json()
    second = admin.get("/journal", params={"limit": 2, "since": first["next_since"]}).json()
    rest = admin.get("/journal", params={"limit": 100, "since": second["next_since"]}).json()
    ids = [e["id"] for page in (first, second, rest) for e in page["entries"]]
    assert len(ids) == 5 and ids == sorted(set(ids))
    again = admin.get("/journal", params={"since": rest["next_since"]}).json()
    assert again["entries"] == [] and again["next_since"] == rest["next_since"]
    assert admin.get("/journal", params={"since": "x"}).status_code == 400


def test_reset_forgets_traffic_but_keeps_the_fleet(server, admin, apns, jwt_token):
    total = admin.get("/devices").json()["total"]
    assert push(apns, server.endpoints, _ios_token(admin), jwt_token).status_code == 200
    assert admin.get("/stats").json()["accepted"] == 1
    assert admin.post("/reset").status_code == 200
    assert admin.get("/stats").json() == {"accepted": 0, "rejected": {}, "delivered": 0, "dropped": {}, "pending": {}}
    assert admin.get("/journal").json()["entries"] == []
    assert admin.get("/devices").json()["total"] == total
    assert re.search(r"^pushsim_accepted_total 0\.0$", admin.get("/metrics").text, re.M)


def test_events_stream_settled_notifications(server, admin, apns, jwt_token):
    token = _ios_token(admin, 3)
    # In the foreground and online, iOS shows an alert at once: the one outcome this push can have.
    assert admin.post(f"/devices/{token}/state", json={"app_state": "foreground", "online": True,
                                                       "low_power": False}).status_code == 200
    got: list[dict] = []
    opened = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=server.endpoints["admin"]["url"], timeout=10) as c:
            with c.stream("GET", "/events", params={"token": token}) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                opened.set()
                for line in r.iter_lines():
                    if line.startswith("data: "):   # settled, or re-pended (e.g. stored while offline)
                        got.append(json.loads(line[6:]))
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert opened.wait(5)   # headers seen → subscribed
    event_id = "A" * 8 + "-0000-4000-8000-" + "0" * 12
    assert push(apns, server.endpoints, _ios_token(admin, 0), jwt_token).status_code == 200
    assert push(apns, server.endpoints, token, jwt_token, apns_id=event_id).status_code == 200
    t.join(10)
    assert not t.is_alive() and got, "no event for the pushed token"
    last = got[-1]
    assert {"seq", "service", "token", "install", "message_id", "outcome", "reason", "t"} <= set(last)
    assert last["token"] == token and last["service"] == "apns"
    assert (last["outcome"], last["reason"]) == ("delivered", None), last
    assert last["message_id"] == event_id


def test_device_os_state_can_be_read_and_changed(server, admin):
    token = _ios_token(admin, 4)
    before = admin.get(f"/devices/{token}").json()
    assert "app_state" in before["os"]
    r = admin.post(f"/devices/{token}/state", json={"low_power": True, "online": False})
    assert r.status_code == 200, r.text
    after = r.json()["os"]
    assert after["low_power"] is True and after["online"] is False
    assert admin.get(f"/devices/{token}").json()["os"]["low_power"] is True
    bad = admin.post(f"/devices/{token}/state", json={"bucket": "nonsense"})
    assert bad.status_code == 400 and bad.json()["error"]
    assert admin.post(f"/devices/{token}/state", json={"wings": 2}).status_code == 400
    assert admin.post(f"/devices/{'ab' * 32}/state", json={"online": True}).status_code == 404


def test_fleet_stats_and_jsonl_export(server, admin, apns, jwt_token):
    assert push(apns, server.endpoints, _ios_token(admin), jwt_token).status_code == 200
    fleet = admin.get("/stats/fleet").json()
    assert fleet["funnel"]["accepted"] == 1
    r = admin.get("/journal", params={"format": "jsonl"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["accepted"] == 1


def test_metrics_pass_promtool_and_agree_with_stats(server, admin, apns, jwt_token):
    tokens = [_ios_token(admin, i) for i in range(3)]
    for i in range(9):
        assert push(apns, server.endpoints, tokens[i % 3], jwt_token).status_code == 200
    assert push(apns, server.endpoints, "00" * 31 + "zz", jwt_token).status_code == 400
    stats, text = consistent_scrape(admin)
    assert funnel_of_metrics(text) == stats and stats["accepted"] == 9
    promtool_check(text)
    # the delivery-delay histogram counts every delivery; process metrics are there
    m = re.search(r'^pushsim_delivery_delay_seconds_count\{service="apns"\} (\S+)$', text, re.M)
    assert m and float(m.group(1)) == stats["delivered"] > 0
    assert re.search(r"^process_cpu_seconds_total \S+$", text, re.M)
    settled = re.findall(r'^pushsim_settled_total\{[^}]*platform="ios"[^}]*\} (\S+)$', text, re.M)
    assert sum(float(v) for v in settled) == stats["delivered"] + sum(stats["dropped"].values())


def _sse(c: httpx.Client, n: int, headers: dict[str, str] | None = None, **params: str) -> list[tuple[str, dict]]:
    """The first n (id, data) events of /events."""
    out: list[tuple[str, dict]] = []
    ident = ""
    with c.stream("GET", "/events", params=params, headers=headers or {}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("data: "):
                out.append((ident, json.loads(line[6:])))
                if len(out) == n:
                    return out
    return out


def test_events_have_ids_and_resume_from_last_event_id(server, admin, apns, jwt_token):
    token = _ios_token(admin, 4)
    assert admin.post(f"/devices/{token}/state", json={"app_state": "foreground", "online": True,
                                                       "low_power": False}).status_code == 200
    url = server.endpoints["admin"]["url"]
    first: list[tuple[str, dict]] = []
    opened = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            with c.stream("GET", "/events", params={"token": token}) as r:
                opened.set()
                ident = ""
                for line in r.iter_lines():
                    if line.startswith("id: "):
                        ident = line[4:]
                    elif line.startswith("data: "):
                        first.append((ident, json.loads(line[6:])))
                        return           # the connection drops after one event

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert opened.wait(5)
    assert push(apns, server.endpoints, token, jwt_token).status_code == 200
    t.join(10)
    assert first and first[0][0].isdigit()
    # while nobody listens, two more settle; the browser comes back with the id it saw last
    for _ in range(2):
        assert push(apns, server.endpoints, token, jwt_token).status_code == 200
    with httpx.Client(base_url=url, timeout=10) as c:
        missed = _sse(c, 2, headers={"Last-Event-ID": first[0][0]}, token=token)
        ids = [int(i) for i, _ in missed]
        assert ids == sorted(ids) and ids[0] > int(first[0][0])
        assert {e["token"] for _, e in missed} == {token} and first[0][1]["seq"] < missed[0][1]["seq"] < missed[1][1]["seq"]
        bad = c.get("/events", headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]


def test_events_summary_pushes_the_funnel_once_a_second(server, admin, apns, jwt_token):
    assert push(apns, server.endpoints, _ios_token(admin, 5), jwt_token).status_code == 200
    assert push(apns, server.endpoints, "00" * 31 + "zz", jwt_token).status_code == 400
    got = summary_events(admin, 2)
    assert [i for i, _ in got] == ["1", "2"]
    assert got[-1][1] == admin.get("/stats").json() and got[-1][1]["rejected"] == {"BadDeviceToken": 1}
    assert admin.get("/events", params={"summary": "yes"}).status_code == 400


def test_the_grafana_dashboard_reads_series_metrics_exposes(server, admin, apns, jwt_token):
    from pathlib import Path
    token = _ios_token(admin, 2)
    # delivered for sure (the default fleet has offline windows): the delivery-delay histogram then has buckets
    assert admin.post(f"/devices/{token}/state", json={"app_state": "foreground", "online": True,
                                                       "low_power": False}).status_code == 200
    assert push(apns, server.endpoints, token, jwt_token).status_code == 200
    wait_until(lambda: "pushsim_delivery_delay_seconds_bucket" in admin.get("/metrics").text, what="a delivery")
    assert push(apns, server.endpoints, "00" * 31 + "zz", jwt_token).status_code == 400
    dash = json.loads((Path(__file__).parents[2] / "docs" / "grafana" / "pushsim.json").read_text())
    wanted = {name for p in dash["panels"] for t in p.get("targets", [])
              for name in re.findall(r"\b((?:pushsim|process)_[a-z_]+)\b", t["expr"])}
    assert len(wanted) > 10
    text = admin.get("/metrics").text
    exposed = set(re.findall(r"^([a-z_]+)[{ ]", text, re.M)) | set(re.findall(r"^# HELP ([a-z_]+) ", text, re.M))
    assert wanted <= exposed, sorted(wanted - exposed)


def test_response_latency_histogram_shows_a_delay_rule(server, admin, apns, jwt_token):
    token = _ios_token(admin, 1)
    assert push(apns, server.endpoints, token, jwt_token).status_code == 200
    assert admin.post("/faults", json={"id": "slow", "action": {"type": "delay", "fixed_ms": 60}}).status_code == 201
    try:
        for _ in range(2):
            assert push(apns, server.endpoints, token, jwt_token).status_code == 200
    finally:
        admin.delete("/faults")
    text = admin.get("/metrics").text
    promtool_check(text)

    def bucket(le: str) -> float:
        m = re.search(rf'^pushsim_response_latency_seconds_bucket\{{le="{re.escape(le)}",service="apns"\}} (\S+)$', text, re.M)
        assert m, text
        return float(m.group(1))
    assert bucket("0.05") == 1 and bucket("0.1") == 3 and bucket("+Inf") == 3
    m = re.search(r'^pushsim_response_latency_seconds_sum\{service="apns"\} (\S+)$', text, re.M)
    assert m and abs(float(m.group(1)) - 0.12) < 1e-6
