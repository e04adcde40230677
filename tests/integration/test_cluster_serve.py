"""`pushsim serve --workers 2` as a subprocess: real HTTP/2 clients on many connections (the kernel
spreads them over both workers), exact cluster-wide accounting, owner routing, uninstall and topic
replication across workers, and a clean SIGINT shutdown with no child left behind."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import h2.connection
import h2.events
import httpx
import jwt
import pytest

from _serve_helpers import (consistent_scrape, funnel_of_metrics, promtool_check, provider_token, summary_events,
                            walk_routes)
from tests.waiting import wait_until
from pushsim.control import ROUTES

pytestmark = pytest.mark.timeout(120)
CONNS = 16
ROUNDS = 8
FOREGROUND = {"app_state": "foreground", "online": True, "low_power": False}


def _balanced(s: dict[str, Any]) -> bool:
    return s["accepted"] == s["delivered"] + sum(s["dropped"].values()) + sum(s["pending"].values())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("cluster")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushsim", "serve", "--workers", "2", "--state-dir", str(state),
         "--apns-port", "0", "--apns-h2c-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0",
         "--admin-port", "0", "--devices", "ios=200,android=200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)   # its own group: see Ctrl-C
    line = proc.stdout.readline()
    if not line.startswith("pushsim ready:"):
        proc.kill()
        pytest.fail(f"no ready line: {line!r} {proc.stderr.read()}")
    ep = json.loads(Path(line.split(":", 1)[1].strip()).read_text())
    yield proc, ep
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def _admin(ep: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=ep["admin"]["url"], timeout=10)


def _fcm_token(ep: dict[str, Any], url: str) -> str:
    sa = json.loads(Path(ep["fcm"]["service_account_file"]).read_text())
    now = int(time.time())
    assertion = jwt.encode({"iss": sa["client_email"], "scope": "https://www.googleapis.com/auth/firebase.messaging",
                            "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600},
                           sa["private_key"], algorithm="RS256")
    r = httpx.post(url + "/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                         "assertion": assertion}, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


def _h2c(url: str) -> httpx.Client:
    # One client, one connection: SO_REUSEPORT picks a worker per connection.
    return httpx.Client(http1=False, http2=True, base_url=url, timeout=10, verify=False)   # cleartext: no CA to load


def _apns(c: httpx.Client, ep: dict[str, Any], token: str, jwt_token: str) -> int:
    return c.post(f"/3/device/{token}", content=b'{"aps":{"alert":"hi"}}',
                  headers={"authorization": f"bearer {jwt_token}", "apns-topic": ep["apns"]["topic"],
                           "apns-push-type": "alert", "apns-priority": "10"}).status_code


def _fcm(c: httpx.Client, ep: dict[str, Any], bearer: str, message: dict[str, Any]) -> httpx.Response:
    return c.post(f"/v1/projects/{ep['fcm']['project_id']}/messages:send", json={"message": message},
                  headers={"authorization": f"Bearer {bearer}"})


def _devices(admin: httpx.Client, platform: str, n: int) -> list[dict[str, Any]]:
    return admin.get("/devices", params={"platform": platform, "limit": n}).json()["devices"]


def test_load_is_accounted_exactly_across_workers(cluster):
    proc, ep = cluster
    admin = _admin(ep)
    admin.post("/reset").raise_for_status()
    ios, android = _devices(admin, "ios", 40), _devices(admin, "android", 40)
    assert {d["index"] % 2 for d in ios} == {0, 1} and {d["index"] % 2 for d in android} == {0, 1}
    pinned = [ios[0], ios[1], android[0], android[1]]          # owned by worker 0 and by worker 1
    for d in pinned:
        admin.post(f"/devices/{d['token']}/state", json=FOREGROUND).raise_for_status()
    jwt_token = provider_token(ep)
    bearer = _fcm_token(ep, ep["fcm"]["h2c_url"])
    apns = [_h2c(ep["apns"]["h2c_url"]) for _ in range(CONNS)]
    fcm = [_h2c(ep["fcm"]["h2c_url"]) for _ in range(CONNS)]

    snaps: list[dict[str, Any]] = []
    done = threading.Event()

    def poll() -> None:
        with _admin(ep) as a:
            while not done.is_set():
                snaps.append(a.get("/stats").json())

    poller = threading.Thread(target=poll)
    poller.start()
    ok = 0
    sends_to_pinned = {d["token"]: 0 for d in pinned}
    names: list[str] = []
    try:
        for rnd in range(ROUNDS):
            for k in range(CONNS):
                d = ios[(rnd * CONNS + k) % len(ios)]
                ok += _apns(apns[k], ep, d["token"], jwt_token) == 200
                if d["token"] in sends_to_pinned:
                    sends_to_pinned[d["token"]] += 1
                a = android[(rnd * CONNS + k) % len(android)]
                r = _fcm(fcm[k], ep, bearer, {"token": a["token"], "data": {"k": str(k)}})
                ok += r.status_code == 200
                names.append(r.json().get("name"))
                if a["token"] in sends_to_pinned:
                    sends_to_pinned[a["token"]] += 1
    finally:
        done.set()
        poller.join(30)
        for c in apns + fcm:
            c.close()
    assert ok == 2 * ROUNDS * CONNS
    assert len(set(names)) == len(names)                 # FCM message names are unique across workers
    assert len(snaps) >= 2
    for s in snaps:
        assert _balanced(s), s
        assert s["pending"].get("in-transit", 0) >= 0
    final = admin.get("/stats").json()
    assert final["accepted"] == ok and _balanced(final)
    per = final["per_worker"]
    assert [p["worker"] for p in per] == [0, 1] and final["workers"] == 2
    assert all(p["accepted_here"] > 0 for p in per), per            # both workers served connections
    assert all(sum(p["sent"]) > 0 for p in per), per                # and both routed to the other
    for d in pinned:          # sent on connections to both workers, so some requests reached the non-owner
        deadline = time.time() + 10
        while True:
            got = admin.get(f"/devices/{d['token']}").json()["deliveries"]
            if len(got) == sends_to_pinned[d["token"]] and all(g["outcome"] == "delivered" for g in got):
                break
            assert time.time() < deadline, got
            time.sleep(0.05)
    metrics = admin.get("/metrics").text
    assert f"pushsim_accepted_total {ok}" in metrics and "pushsim_devices 400" in metrics
    # the hub's sum of the workers' scrapes is the cluster's /stats, and still valid exposition
    stats_now, metrics = consistent_scrape(admin)
    assert funnel_of_metrics(metrics) == stats_now
    promtool_check(metrics)
    page = admin.get("/journal", params={"limit": 10_000}).json()
    everything = [e["id"] for e in page["entries"]]
    assert len(everything) >= ok and len(set(everything)) == len(everything) and everything == sorted(everything)
    paged, since = [], 0
    while True:        # a poller that follows next_since sees every entry once
        p = admin.get("/journal", params={"since": since, "limit": 37}).json()
        paged += [e["id"] for e in p["entries"]]
        if len(p["entries"]) < 37:
            break
        since = p["next_since"]
    assert paged == everything


def test_uninstall_through_the_hub_reaches_every_worker(cluster):
    _, ep = cluster
    admin = _admin(ep)
    ios = _devices(admin, "ios", 3)[2]
    android = _devices(admin, "android", 3)[2]
    for d in (ios, android):
        assert admin.post(f"/devices/{d['token']}/state", json={"uninstall": True}).status_code == 200
    before = {p["worker"]: p["requests"] for p in admin.get("/stats").json()["per_worker"]}
    jwt_token = provider_token(ep)
    bearer = _fcm_token(ep, ep["fcm"]["h2c_url"])
    for _ in range(CONNS):
        with _h2c(ep["apns"]["h2c_url"]) as c:
            r = c.post(f"/3/device/{ios['token']}", content=b'{"aps":{"alert":"hi"}}',
                       headers={"authorization": f"bearer {jwt_token}", "apns-topic": ep["apns"]["topic"]})
            assert r.status_code == 410 and r.json()["reason"] == "Unregistered"
        with _h2c(ep["fcm"]["h2c_url"]) as c:
            r = _fcm(c, ep, bearer, {"token": android["token"]})
            assert r.status_code == 404 and "UNREGISTERED" in r.text
    after = {p["worker"]: p["requests"] for p in admin.get("/stats").json()["per_worker"]}
    assert all(after[w] > before[w] for w in (0, 1)), (before, after)   # both workers answered


def test_topic_subscriptions_replicate_to_every_worker(cluster):
    _, ep = cluster
    admin = _admin(ep)
    admin.post("/reset").raise_for_status()
    subs = _devices(admin, "android", 8)[4:8]          # two owned by each worker
    assert {d["index"] % 2 for d in subs} == {0, 1}
    for d in subs:
        admin.post(f"/devices/{d['token']}/state", json=FOREGROUND).raise_for_status()
    bearer = _fcm_token(ep, ep["fcm"]["h2c_url"])
    project = ep["fcm"]["project_id"]
    for d in subs[:2]:   # the v1 API, each on its own connection
        with _h2c(ep["fcm"]["h2c_url"]) as c:
            r = c.post(f"/v1/projects/{project}/registrations/{d['token']}/topicSubscriptions",
                       params={"topic_name": "news"}, headers={"authorization": f"Bearer {bearer}"})
            assert r.status_code == 200, r.text
    with _h2c(ep["fcm"]["h2c_url"]) as c:   # IID batchAdd: both other installs through one worker
        r = c.post("/iid/v1:batchAdd", json={"to": "/topics/news", "registration_tokens": [d["token"] for d in subs[2:]]},
                   headers={"authorization": f"Bearer {bearer}", "access_token_auth": "true"})
        assert r.status_code == 200 and r.json() == {"results": [{}, {}]}, r.text
    # replication is asynchronous (as in FCM): every worker knows all four subscriptions first
    wait_until(lambda: [p["topic_subscriptions"] for p in admin.get("/stats").json()["per_worker"]] == [4, 4],
               "topic subscriptions replicated to both workers")
    for _ in range(4):   # topic sends on several connections: each worker fans out to every subscriber
        with _h2c(ep["fcm"]["h2c_url"]) as c:
            assert _fcm(c, ep, bearer, {"topic": "news", "data": {"x": "1"}}).status_code == 200
    deadline = time.time() + 10
    for d in subs:
        while len(admin.get(f"/devices/{d['token']}").json()["deliveries"]) != 4:
            assert time.time() < deadline, (d["index"], admin.get(f"/devices/{d['token']}").json()["deliveries"], admin.get("/stats").json())
            time.sleep(0.05)
    s = admin.get("/stats").json()
    assert s["accepted"] == 4 * len(subs) and _balanced(s)


def _raw_h2(url: str) -> tuple[socket.socket, h2.connection.H2Connection]:
    host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    conn.receive_data(sock.recv(65536))     # the server's SETTINGS: the connection is being served
    sock.sendall(conn.data_to_send())
    return sock, conn


def test_the_report_covers_every_worker(cluster):
    """Sends to an uninstalled token on connections the kernel spreads over both workers: the hub's
    /report merges the workers' exports, so the finding counts every resend and its evidence ids
    are the merged journal's."""
    proc, ep = cluster
    admin = _admin(ep)
    admin.post("/reset").raise_for_status()
    token = _devices(admin, "ios", 1)[0]["token"]
    admin.post(f"/devices/{token}/state", json={"uninstall": True}).raise_for_status()
    jwt_token = provider_token(ep)
    clients = [_h2c(ep["apns"]["h2c_url"]) for _ in range(6)]
    try:
        statuses = [_apns(c, ep, token, jwt_token) for c in clients]
    finally:
        for c in clients:
            c.close()
    assert statuses == [410] * 6
    rep = admin.get("/report").json()
    (f,) = [f for f in rep["findings"] if f["rule"] == "apns.send-after-unregistered"]
    assert f["count"] == 5 and f["tokens"] == [token]
    ids = {e["id"] for e in admin.get("/journal", params={"limit": 1000}).json()["entries"]}
    assert {ev["id"] for ev in f["evidence"]} <= ids
    assert admin.get("/journal/count", params={"status": "410"}).json()["count"] == 6
    assert admin.get("/report", params={"ignore": "nope"}).status_code == 400


def test_every_route_of_the_table_is_served_by_the_hub(cluster):
    _, ep = cluster
    with _admin(ep) as admin:
        token = _devices(admin, "ios", 2)[1]["token"]          # owned by worker 1
        seen = walk_routes(admin, token)
        unrouted = {k: v for k, v in seen.items() if v in (404, 405)}
        assert not unrouted and len(seen) == len(ROUTES), seen
        r = admin.get("/devices", params={"bogus": "1"})    # a worker's validation reaches the client
        assert r.status_code == 400 and "bogus" in r.json()["error"]
        r = admin.get("/stats", params={"bogus": "1"})      # so does the hub's own
        assert r.status_code == 400 and "bogus" in r.json()["error"]
        r = admin.get("/journal", params={"since": "9" * 30})
        assert r.status_code == 400 and "since" in r.json()["error"]
        deep = b"[" * 100_000 + b"]" * 100_000
        for path in (f"/devices/{token}/state", "/faults", "/devices"):   # owner-routed and broadcast
            r = admin.post(path, content=deep, headers={"content-type": "application/json"})
            assert r.status_code == 400 and "JSON" in r.json()["error"], (path, r.text)
        r = admin.post("/faults", content=b"[" + b"1," * (1 << 20) + b"1]")
        assert r.status_code == 413 and "larger than" in r.json()["error"]


def test_ctrl_c_stops_every_process_cleanly(cluster):
    proc, ep = cluster
    pids = [p["pid"] for p in _admin(ep).get("/stats").json()["per_worker"]]
    assert len(set(pids)) == 2 and proc.pid not in pids
    conns = [_raw_h2(ep["apns"]["h2c_url"]) for _ in range(6)]
    while min(w["connections"] for w in _admin(ep).get("/stats").json()["per_worker"]) == 0:
        assert len(conns) < 30, "the kernel never picked one of the workers"
        conns.append(_raw_h2(ep["apns"]["h2c_url"]))      # idle connections on both workers
    os.killpg(proc.pid, signal.SIGINT)      # as Ctrl-C in a terminal: the hub and every worker get it
    assert proc.wait(20) == 0, proc.stderr.read()
    for sock, conn in conns:                # each got GOAWAY {"reason":"Shutdown"} before the close
        goaway = []
        while not goaway:
            data = sock.recv(65536)
            assert data, "closed without GOAWAY"
            goaway = [e for e in conn.receive_data(data) if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaway[0].additional_data == b'{"reason":"Shutdown"}'
        sock.close()
    deadline = time.time() + 5
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.time() < deadline, f"worker {pid} outlived the hub"
            time.sleep(0.05)
    assert not Path(ep["state_dir"], "endpoints.json").exists()


def _start(state: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pushsim", "serve", "--workers", "2", "--state-dir", str(state),
         "--apns-port", "0", "--apns-h2c-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0",
         "--admin-port", "0", "--devices", "ios=20,android=20", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_events_merge_and_a_dead_worker_stops_the_cluster(tmp_path):
    proc = _start(tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.startswith("pushsim ready:"), proc.stderr.read()
        ep = json.loads(Path(line.split(":", 1)[1].strip()).read_text())
        admin = _admin(ep)
        devs = _devices(admin, "ios", 2)                 # owned by worker 0 and worker 1
        for d in devs:
            admin.post(f"/devices/{d['token']}/state", json=FOREGROUND).raise_for_status()
        assert admin.get("/devices/" + "ab" * 32).status_code == 404
        seen: list[dict[str, Any]] = []
        with httpx.stream("GET", ep["admin"]["url"] + "/events", timeout=10) as stream:
            jwt_token = provider_token(ep)
            with _h2c(ep["apns"]["h2c_url"]) as c:
                assert all(_apns(c, ep, d["token"], jwt_token) == 200 for d in devs)
            ids: list[str] = []
            for raw in stream.iter_lines():
                if raw.startswith("id: "):
                    ids.append(raw[4:])
                if raw.startswith("data: "):
                    seen.append(json.loads(raw[6:]))
                if len(seen) == 2:
                    break
        assert sorted(e["install"] for e in seen) == [0, 1] and {e["outcome"] for e in seen} == {"delivered"}
        # the hub's ids are every worker's last id: coming back after the first event replays the second
        assert len(ids) == 2 and all(len(i.split(".")) == 2 for i in ids), ids
        with httpx.stream("GET", ep["admin"]["url"] + "/events", headers={"Last-Event-ID": ids[0]},
                          timeout=10) as stream:
            again = next(json.loads(raw[6:]) for raw in stream.iter_lines() if raw.startswith("data: "))
        assert again["seq"] == seen[1]["seq"] and again["install"] == seen[1]["install"]
        assert admin.get("/events", headers={"Last-Event-ID": "7"}).status_code == 400
        summary = summary_events(admin, 1)[0][1]      # the hub's own funnel, not one worker's
        assert summary == {k: v for k, v in admin.get("/stats").json().items() if k in summary}
        assert summary["accepted"] == 2
        pids = [p["pid"] for p in admin.get("/stats").json()["per_worker"]]
        os.kill(pids[1], signal.SIGKILL)
        assert proc.wait(20) == 1
        err = proc.stderr.read()
        assert f"worker 1 (pid {pids[1]}) exited unexpectedly: killed by SIGKILL" in err, err
        deadline = time.time() + 5
        while True:
            try:
                os.kill(pids[0], 0)
            except ProcessLookupError:
                break
            assert time.time() < deadline, "worker 0 outlived the hub"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_port_in_use_is_a_clear_start_error(tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start(tmp_path, "--apns-h2c-port", str(port))
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "pushsim ready" not in out
    assert f"APNS cleartext port 127.0.0.1:{port} is already in use; choose another with --apns-h2c-port" in err

