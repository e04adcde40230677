"""Three `serve --partition K/3` instances on loopback (one state dir, ephemeral ports, no proxy):
each install is served by its owner only, credentials work on every instance, and topic messages
and subscriptions cross partitions through the peers' control APIs with exact accounting."""
from __future__ import annotations

import json
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import firebase_admin
import httpx
import jwt
import pytest
from firebase_admin import credentials, messaging

from device_sim.tokens import token_partition
from pushsim.server import run_in_thread
from tests.waiting import wait_until

from _serve_helpers import ephemeral_config, promtool_check, provider_token

pytestmark = pytest.mark.timeout(60)
N = 3
DEVICES = "ios=6,android=6"          # installs 0-5 iOS, 6-11 Android; partition k owns i % 3 == k


class Deployment:
    def __init__(self, state_dir: Path) -> None:
        self.stops: list[Any] = []
        self.sims: list[Any] = []
        for k in range(N):
            sim, stop = run_in_thread(ephemeral_config(state_dir, devices=DEVICES, partition=f"{k}/{N}"))
            self.sims.append(sim)
            self.stops.append(stop)
        self.eps = [s.endpoints for s in self.sims]
        self.admin_urls = [ep["admin"]["url"] for ep in self.eps]
        self.admins = [httpx.Client(base_url=u, timeout=10) for u in self.admin_urls]
        self.set_peers(self.admin_urls)

    def set_peers(self, urls: list[str]) -> None:
        for a in self.admins:
            r = a.put("/peer/peers", json={"peers": urls})
            assert r.status_code == 200, r.text

    def fleet(self, k: int) -> Any:
        return self.sims[k].testbed.fleet

    def fcm_token(self, i: int) -> str:
        return self.fleet(i % N).fcm_token(i)

    def apns_token(self, i: int) -> str:
        tok = self.fleet(i % N).apns_token(i)
        assert tok is not None
        return tok

    def stats(self, k: int) -> dict[str, Any]:
        return dict(self.admins[k].get("/stats").json())

    def deliveries(self, i: int) -> list[dict[str, Any]]:
        token = self.fcm_token(i)
        r = self.admins[i % N].get(f"/devices/{token}")
        assert r.status_code == 200, r.text
        return list(r.json()["deliveries"])

    def close(self) -> None:
        for a in self.admins:
            a.close()
        for stop in self.stops:
            stop()


def balanced(s: dict[str, Any]) -> bool:
    return bool(s["accepted"] == s["delivered"] + sum(s["dropped"].values()) + sum(s["pending"].values()))


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment(tmp_path_factory.mktemp("partitions"))
    yield d
    d.close()


@pytest.fixture(autouse=True)
def clean(dep: Deployment) -> None:
    dep.set_peers(dep.admin_urls)
    for a in dep.admins:
        assert a.post("/reset").status_code == 200


def _oauth(ep: dict[str, Any], base: str) -> str:
    sa = json.loads(Path(ep["fcm"]["service_account_file"]).read_text())
    now = int(time.time())
    assertion = jwt.encode({"iss": sa["client_email"], "scope": "https://www.googleapis.com/auth/firebase.messaging",
                            "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600},
                           sa["private_key"], algorithm="RS256")
    r = httpx.post(base + "/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                          "assertion": assertion}, timeout=10)
    r.raise_for_status()
    return str(r.json()["access_token"])


def _h2c(url: str) -> httpx.Client:
    return httpx.Client(http1=False, http2=True, base_url=url, timeout=10)


def _apns(c: httpx.Client, ep: dict[str, Any], token: str, bearer: str) -> httpx.Response:
    return c.post(f"/3/device/{token}", content=b'{"aps":{"alert":"hi"}}',
                  headers={"authorization": f"bearer {bearer}", "apns-topic": ep["apns"]["topic"],
                           "apns-push-type": "alert", "apns-priority": "10"})


def test_tokens_name_their_partition_and_the_instances_say_so(dep: Deployment) -> None:
    for i in range(12):
        assert token_partition(dep.fcm_token(i)) == i % N
        if i < 6:
            assert token_partition(dep.apns_token(i)) == i % N
    for k, ep in enumerate(dep.eps):
        assert ep["partition"]["k"] == k and ep["partition"]["n"] == N
        assert Path(dep.sims[k].endpoints_file).name == f"endpoints.partition-{k}-of-{N}.json"
        assert json.loads(Path(dep.sims[k].endpoints_file).read_text())["partition"]["spec"] == f"{k}/{N}"
        listing = dep.admins[k].get("/devices", params={"limit": 100}).json()
        assert listing["total"] == 4 and [d["index"] for d in listing["devices"]] == list(range(k, 12, N))
        ios = dep.admins[k].get("/devices", params={"platform": "ios"}).json()
        assert [d["index"] for d in ios["devices"]] == list(range(k, 6, N))
        assert dep.admins[k].get("/health").json()["devices"] == 4
        states = dep.admins[k].get("/stats/fleet").json()["states"]     # the census: owned installs only
        assert (states["ios"]["installs"], states["android"]["installs"]) == (2, 2)
    foreign = dep.apns_token(1)
    r = dep.admins[0].get(f"/devices/{foreign}")
    assert r.status_code == 404 and r.json()["partition"] == 1 and "partition 1/3" in r.json()["error"]
    assert dep.admins[0].get("/devices/" + "ab" * 32).json()["error"] == "unknown device token"
    r = dep.admins[0].post("/devices", json={"platform": "ios", "count": 1})
    assert r.status_code == 409 and "--devices" in r.json()["error"]


def test_each_install_is_served_by_its_owner_only_with_shared_credentials(dep: Deployment) -> None:
    bearer = provider_token(dep.eps[0])                      # one JWT: every instance trusts its key
    access = _oauth(dep.eps[0], dep.eps[0]["fcm"]["h2c_url"])   # issued by instance 0 only
    for k, ep in enumerate(dep.eps):
        with _h2c(ep["apns"]["h2c_url"]) as apns, _h2c(ep["fcm"]["h2c_url"]) as fcm:
            for i in range(12):
                if i < 6:
                    r = _apns(apns, ep, dep.apns_token(i), bearer)
                    if i % N == k:
                        assert r.status_code == 200, r.text
                    else:
                        assert (r.status_code, r.json()["reason"]) == (400, "BadDeviceToken")
                r = fcm.post(f"/v1/projects/{ep['fcm']['project_id']}/messages:send",
                             headers={"authorization": f"Bearer {access}"},
                             json={"message": {"token": dep.fcm_token(i), "data": {"i": str(i)}}})
                if i % N == k:
                    assert r.status_code == 200, r.text
                else:
                    assert r.status_code == 404 and r.json()["error"]["details"][0]["errorCode"] == "UNREGISTERED"
    for k in range(N):
        s = dep.stats(k)
        assert s["accepted"] == 2 + 4 and balanced(s), s      # its 2 iOS + 4 FCM installs, once each
        assert s["rejected"] == {"BadDeviceToken": 4, "UNREGISTERED": 8}


def test_firebase_admin_topic_across_partitions(dep: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = dep.eps[1]                                       # the SDK talks to one instance only
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", entry["ca_file"])
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", entry["fcm"]["url"] + "/v1/projects/{0}/messages:send")
    monkeypatch.setattr(messaging._MessagingService, "IID_URL", entry["fcm"]["url"])
    app = firebase_admin.initialize_app(credentials.Certificate(entry["fcm"]["service_account_file"]),
                                        name=uuid.uuid4().hex)
    try:
        messaging._get_messaging_service(app)._fcm_topic_url = \
            f"{entry['fcm']['url']}/v1/projects/{entry['fcm']['project_id']}/registrations"
        chosen = [0, 2, 4, 7, 8, 9]                           # two installs in each partition
        resp = messaging.subscribe_to_topic([dep.fcm_token(i) for i in chosen], "news", app)
        assert (resp.success_count, resp.failure_count) == (6, 0)
        with warnings.catch_warnings():                      # the IID batch API, split by owner too
            warnings.simplefilter("ignore", DeprecationWarning)
            legacy = messaging.subscribe_to_topic_legacy([dep.fcm_token(i) for i in (1, 5, 11)], "/topics/sports", app)
        assert legacy.success_count == 3
        name = messaging.send(messaging.Message(topic="news", data={"k": "v"}), app=app)
        assert name.startswith("projects/")
        for i in range(12):                                  # exactly the subscribers, each by its owner
            want = 1 if i in chosen else 0
            wait_until(lambda: len(dep.deliveries(i)) >= want, f"install {i} got the topic message")
        assert [len(dep.deliveries(i)) for i in range(12)] == [1 if i in chosen else 0 for i in range(12)]
        assert {d["id"] for i in chosen for d in dep.deliveries(i)} == {name}
        messaging.send(messaging.Message(condition="'sports' in topics || 'news' in topics"), app=app)
        wait_until(lambda: all(len(dep.deliveries(i)) == (2 if i in chosen else 1 if i in (1, 5, 11) else 0)
                               for i in range(12)), "the condition message reached both topics' subscribers")
        # unsubscribing another partition's token through this instance lands on its owner too
        assert messaging.unsubscribe_from_topic([dep.fcm_token(8)], "news", app).success_count == 1
        wait_until(lambda: dep.stats(1)["handoff"]["queued"] == 0, "the unsubscribe was handed over")
        messaging.send(messaging.Message(topic="news"), app=app)
        wait_until(lambda: all(len(dep.deliveries(i)) == 3 for i in chosen if i != 8),
                   "the third message reached the remaining subscribers")
        assert len(dep.deliveries(8)) == 2
        for k in range(N):
            s = dep.stats(k)
            assert balanced(s) and s["handoff"]["failed"] == 0, s
        assert sum(dep.stats(k)["accepted"] for k in range(N)) == 6 + 9 + 5
        assert dep.stats(1)["handoff"]["sent"] >= 3 * (N - 1)     # each message went to both peers
    finally:
        firebase_admin.delete_app(app)


def test_a_peer_that_is_down_is_counted_and_journaled(dep: Deployment) -> None:
    with socket.socket() as s:                # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    dep.set_peers([dep.admin_urls[0], dep.admin_urls[1], dead])
    ep = dep.eps[0]
    access = _oauth(ep, ep["fcm"]["h2c_url"])
    before = dep.stats(0)["handoff"]["failed"]
    with _h2c(ep["fcm"]["h2c_url"]) as fcm:
        r = fcm.post(f"/v1/projects/{ep['fcm']['project_id']}/messages:send",
                     headers={"authorization": f"Bearer {access}"},
                     json={"message": {"topic": "alerts", "data": {"a": "b"}}})
    assert r.status_code == 200                 # accepted: FCM answers once it has the message
    name = r.json()["name"]
    wait_until(lambda: dep.stats(0)["handoff"]["failed"] > before, "the failed hand-off shows in /stats")
    s = dep.stats(0)
    assert s["handoff"]["peers"]["2"]["failed"] >= 1 and s["handoff"]["peers"]["1"]["failed"] == 0
    assert "ClientConnectorError" in s["handoff"]["peers"]["2"]["last_error"] and balanced(s)
    entries = dep.admins[0].get("/journal", params={"limit": 100}).json()["entries"]
    peer = [e for e in entries if e["service"] == "peer"]
    assert [(e["path"], e["reason"], e["message_id"], e["token"]) for e in peer] == \
        [("/peer/topic-message", "PeerUnavailable", name, dead)]
    scrape = dep.admins[0].get("/metrics").text
    failed = float(dep.stats(0)["handoff"]["peers"]["2"]["failed"])
    assert f'pushsim_peer_handoffs_total{{peer="2",result="failed"}} {failed}' in scrape
    promtool_check(scrape)


@pytest.mark.parametrize("path,body,needle", [
    ("/peer/topic-message", {"from": 1, "name": "n", "t": 1.0, "body": "{}"}, "body"),
    ("/peer/topic-message", {"from": 0, "name": "n", "t": 1.0, "body": "{}"}, "own partition"),
    ("/peer/topic-message", {"from": 7, "name": "n", "t": 1.0, "body": "{}"}, "from"),
    ("/peer/topic-message", {"from": 1, "name": "", "t": 1.0, "body": "{}"}, "name"),
    ("/peer/topic-message", {"from": 1, "name": "n", "t": "x", "body": "{}"}, "t:"),
    ("/peer/subscriptions", {"from": 1, "op": "add", "topic": "a b", "tokens": ["x"]}, "topic"),
    ("/peer/subscriptions", {"from": 1, "op": "zap", "topic": "a", "tokens": ["x"]}, "op"),
    ("/peer/subscriptions", {"from": 1, "op": "add", "topic": "a", "tokens": []}, "tokens"),
    ("/peer/subscriptions", {"from": 1, "op": "add", "topic": "a", "tokens": [1]}, "tokens"),
])
def test_peer_routes_refuse_bad_input(dep: Deployment, path: str, body: dict[str, Any], needle: str) -> None:
    r = dep.admins[0].post(path, json=body)
    assert r.status_code == 400 and needle in r.json()["error"], r.text


def test_set_peers_is_checked(dep: Deployment) -> None:
    for bad in ({"peers": ["http://a:1"]}, {"peers": "http://a:1"}, {"peers": ["ftp://a", "http://b", "http://c"]}):
        r = dep.admins[0].put("/peer/peers", json=bad)
        assert r.status_code == 400 and "peers" in r.json()["error"]


def test_subscription_hand_off_results_come_from_the_owner(dep: Deployment) -> None:
    mine, theirs = dep.fcm_token(3), dep.fcm_token(4)          # partition 0 owns 3, partition 1 owns 4
    r = dep.admins[0].post("/peer/subscriptions",
                           json={"from": 1, "op": "add", "topic": "t", "tokens": [mine, theirs, "junk"]})
    assert r.json()["results"] == [None, "NOT_FOUND", "INVALID_ARGUMENT"]
    fcm = dep.sims[0].plans[1].service
    assert fcm.topics.topics_of(3) == {"t"}
