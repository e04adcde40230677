"""The merged views over a partitioned deployment (three `serve --partition K/3` instances, one state
dir, no proxy): every instance answers only for its own installs, a topic message accepted by one
reaches the others through the peers, and `pushsim stats` / `pushsim report` over the three are
the sums, balanced, with the hand-off counters merged too."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from _serve_helpers import ephemeral_config, provider_token
from pushsim.cli import main as cli_main
from pushsim.server import run_in_thread
from tests.waiting import wait_until

N = 3
DEVICES = "ios=6,android=6"          # installs 0-5 iOS, 6-11 Android; partition k owns i % 3 == k


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    state = tmp_path_factory.mktemp("partitions")
    started: list[tuple[Any, Any]] = []
    try:
        for k in range(N):
            started.append(run_in_thread(ephemeral_config(state, devices=DEVICES, partition=f"{k}/{N}")))
        urls = [s.endpoints["admin"]["url"] for s, _ in started]
        for u in urls:
            assert httpx.put(u + "/peer/peers", json={"peers": urls}, timeout=10).status_code == 200
        yield [s for s, _ in started]
    finally:
        for _, stop in started:
            stop()


def _access_token(ep: dict[str, Any]) -> str:
    sa = json.loads(Path(ep["fcm"]["service_account_file"]).read_text())
    now = int(time.time())
    assertion = jwt.encode({"iss": sa["client_email"], "scope": "https://www.googleapis.com/auth/firebase.messaging",
                            "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600},
                           sa["private_key"], algorithm="RS256")
    r = httpx.post(ep["fcm"]["h2c_url"] + "/token", timeout=10,
                   data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
    r.raise_for_status()
    return str(r.json()["access_token"])


def _stats(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/stats", timeout=10).json())


def test_merged_stats_of_partitions_are_the_sums_with_hand_offs(sims: list[Any],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    eps = [s.endpoints for s in sims]
    urls = [ep["admin"]["url"] for ep in eps]
    bearer, access = provider_token(eps[0]), _access_token(eps[0])      # shared credentials
    for i in range(12):                       # online and awake, on its owner: every push settles at once
        fleet = sims[i % N].testbed.fleet
        token = fleet.apns_token(i) if i < 6 else fleet.fcm_token(i)
        r = httpx.post(f"{urls[i % N]}/devices/{token}/state", timeout=10,
                       json={"online": True, "app_state": "foreground", "low_power": False})
        assert r.status_code == 200, r.text
    for k, ep in enumerate(eps):              # every APNs install through every instance: only its owner takes it
        with httpx.Client(http1=False, http2=True, base_url=ep["apns"]["h2c_url"], timeout=10) as c:
            for i in range(6):
                r = c.post(f"/3/device/{sims[i % N].testbed.fleet.apns_token(i)}", content=b'{"aps":{"alert":"hi"}}',
                           headers={"authorization": f"bearer {bearer}", "apns-topic": ep["apns"]["topic"],
                                    "apns-push-type": "alert", "apns-priority": "10"})
                assert r.status_code == (200 if i % N == k else 400), r.text
    fcm = eps[0]["fcm"]
    subscribers = [6, 7, 8, 10]               # installs of all three partitions, subscribed through instance 0
    auth = {"authorization": f"Bearer {access}", "access_token_auth": "true"}
    with httpx.Client(http1=False, http2=True, base_url=fcm["h2c_url"], timeout=10) as c:
        r = c.post("/iid/v1:batchAdd", headers=auth, json={
            "to": "/topics/news", "registration_tokens": [sims[i % N].testbed.fleet.fcm_token(i) for i in subscribers]})
        assert r.status_code == 200 and all(x == {} for x in r.json()["results"]), r.text
        wait_until(lambda: _stats(urls[0])["handoff"]["queued"] == 0, "the subscriptions were handed over")
        r = c.post(f"/v1/projects/{fcm['project_id']}/messages:send", headers={"authorization": f"Bearer {access}"},
                   json={"message": {"topic": "news", "data": {"k": "v"}}})
        assert r.status_code == 200, r.text

    def settled() -> bool:
        parts = [_stats(u) for u in urls]
        return sum(p["accepted"] for p in parts) == 6 + len(subscribers) and \
            all(p["handoff"]["queued"] == 0 and not any(p["pending"].values()) for p in parts)
    try:
        wait_until(settled, "the topic message reached every partition's subscribers and all settled", timeout=10)
    except AssertionError as e:
        raise AssertionError(f"{e}: {[_stats(u) for u in urls]}") from None

    assert cli_main(["stats", *[a for u in urls for a in ("--admin", u)], "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    parts = [_stats(u) for u in urls]
    assert merged["accepted"] == sum(p["accepted"] for p in parts) == 6 + len(subscribers)
    assert merged["delivered"] + sum(merged["dropped"].values()) + sum(merged["pending"].values()) == merged["accepted"]
    assert merged["rejected"] == {"BadDeviceToken": 2 * 6}       # each instance refused the other partitions' 4
    h = merged["handoff"]
    assert h["failed"] == 0 and h["sent"] == sum(p["handoff"]["sent"] for p in parts) >= N - 1
    assert h["received"]["messages"] == sum(p["handoff"]["received"]["messages"] for p in parts) == N - 1
    assert [p["handoff"]["partition"] for p in merged["per_instance"]] == [f"{k}/{N}" for k in range(N)]
    assert cli_main(["stats", "--admin", ",".join(urls)]) == 0
    text = capsys.readouterr().out
    assert "hand-offs to peers: sent" in text and f"{urls[2].removeprefix('http://')} (2/3)" in text

    assert cli_main(["report", "--admin", ",".join(urls), "--format", "json", "--fail-on", "never"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["accepted"] == merged["accepted"] and report["instances"] == \
        [u.removeprefix("http://") for u in urls]
