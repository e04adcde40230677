"""End to end through `PushSim`: firebase-admin against the served FCM port, checked via the control API."""
from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import firebase_admin
import pytest
from firebase_admin import credentials, messaging

from pushsim import server
from pushsim.config import Config

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    state = tmp_path_factory.mktemp("pushsim")
    cfg = Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0, state_dir=state,
                 devices="ios=4,android=6")
    sim, stop = server.run_in_thread(cfg)
    try:
        yield sim
    finally:
        stop()


def admin(sim: Any, path: str) -> Any:
    with urllib.request.urlopen(sim.endpoints["admin"]["url"] + path, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def app(sim: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fcm = sim.endpoints["fcm"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim.endpoints["ca_file"])   # requests (send, token refresh)
    monkeypatch.setenv("SSL_CERT_FILE", sim.endpoints["ca_file"])        # httpx, read when the app's client is made
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", fcm["url"] + "/v1/projects/{0}/messages:send")
    a = firebase_admin.initialize_app(credentials.Certificate(fcm["service_account_file"]), name=uuid.uuid4().hex)
    messaging._get_messaging_service(a)._fcm_topic_url = f'{fcm["url"]}/v1/projects/{fcm["project_id"]}/registrations'
    yield a
    firebase_admin.delete_app(a)


def test_endpoints_section(sim: Any) -> None:
    fcm = sim.endpoints["fcm"]
    assert fcm["token_uri"] == fcm["url"] + "/token" and fcm["h2c_url"].startswith("http://127.0.0.1:")
    info = json.loads(Path(fcm["service_account_file"]).read_text())
    assert info["token_uri"] == fcm["token_uri"] and info["project_id"] == fcm["project_id"]
    assert os.path.exists(sim.endpoints["ca_file"])


def test_topic_fan_out_seen_through_devices(sim: Any, app: Any) -> None:
    devices = admin(sim, "/devices?limit=100")["devices"]
    fcm_tokens = [d["fcm_token"] if "fcm_token" in d else d["token"] for d in devices]
    chosen = fcm_tokens[1:8:3]
    resp = messaging.subscribe_to_topic(chosen, "e2e", app=app)
    assert resp.success_count == len(chosen)
    name = messaging.send(messaging.Message(topic="e2e", data={"k": "v"}), app=app)
    reached = []
    for tok in fcm_tokens:
        dels = [d for d in admin(sim, f"/devices/{tok}")["deliveries"] if d["id"] == name]
        if dels:
            reached.append(tok)
    assert sorted(reached) == sorted(chosen)
    with pytest.raises(messaging.UnregisteredError):
        messaging.send(messaging.Message(token=sim.testbed.fleet.codec.fcm_token(10**6)), app=app)


def test_send_each_async(sim: Any, app: Any) -> None:
    """The async batch path (httpx, HTTP/2 when ALPN offers it) against the served TLS port."""
    import asyncio

    fleet = sim.testbed.fleet
    msgs = [messaging.Message(data={"n": str(i)}, token=fleet.fcm_token(i)) for i in range(6)]

    async def go() -> Any:
        try:
            return await messaging.send_each_async(msgs, app=app)
        finally:
            await messaging._get_messaging_service(app)._async_client.aclose()

    batch = asyncio.run(go())
    assert batch.success_count == 6
    seen = [e for e in sim.testbed.journal.entries if e.service == "fcm" and e.message_id in
             {r.message_id for r in batch.responses}]
    assert len(seen) == 6
