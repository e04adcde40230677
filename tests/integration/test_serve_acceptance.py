"""End-to-end acceptance: real APNs clients (curl, httpx, aioapns) against `pushsim serve`'s fake APNs,
using only what endpoints.json hands them: the CA, the .p8 auth key and the push certificate."""
from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from _serve_helpers import apns_client, ephemeral_config, provider_token, push
from pushsim.server import run_in_thread

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
BODY = b'{"aps":{"alert":"hello"}}'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sim, stop = run_in_thread(ephemeral_config(tmp_path_factory.mktemp("state"), devices="ios=4,android=2"))
    yield sim
    stop()


@pytest.fixture
def ep(server):
    httpx.post(server.endpoints["admin"]["url"] + "/reset", timeout=10).raise_for_status()
    return server.endpoints


def _admin(ep: dict, path: str) -> dict:
    return httpx.get(ep["admin"]["url"] + path, timeout=10).json()


def _ios_token(ep: dict, i: int = 0) -> str:
    return _admin(ep, f"/devices?platform=ios&limit=1&offset={i}")["devices"][0]["token"]


def _curl(ep: dict, token: str, *, headers: dict[str, str], extra: list[str] = (),
          url: str | None = None) -> tuple[int, dict[str, str], bytes, str]:
    cmd = ["curl", "-sS", "--http2", "--cacert", ep["ca_file"], "--max-time", "10", "-o", "-",
           "-w", "\n%{http_code} %{http_version}", "-D", "/dev/stderr", "--data-binary", BODY.decode(), *extra]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"{url or ep['apns']['url']}/3/device/{token}")
    r = subprocess.run(cmd, capture_output=True, timeout=20)
    body, _, tail = r.stdout.rpartition(b"\n")
    status, version = tail.decode().split()
    hdrs = {}
    for line in r.stderr.decode(errors="replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith(" "):
            hdrs[name.strip().lower()] = value.strip()
    return int(status), hdrs, body, version


def _jwt_headers(ep: dict, apns_id: str | None = None) -> dict[str, str]:
    h = {"authorization": f"bearer {provider_token(ep)}", "apns-topic": ep["apns"]["topic"],
         "apns-push-type": "alert", "apns-priority": "10"}
    if apns_id:
        h["apns-id"] = apns_id
    return h


@needs_curl
def test_curl_with_p8_jwt_accepts_echoes_id_and_rejects_bad_token(ep):
    apns_id = str(uuid.uuid4()).upper()
    status, hdrs, body, version = _curl(ep, _ios_token(ep), headers=_jwt_headers(ep, apns_id))
    assert (status, version) == (200, "2") and hdrs["apns-id"] == apns_id and body == b""
    status, hdrs, body, _ = _curl(ep, "0123456789abcdef" * 3 + "xyz", headers=_jwt_headers(ep))
    assert status == 400 and json.loads(body) == {"reason": "BadDeviceToken"}
    stats = _admin(ep, "/stats")
    assert stats["accepted"] == 1 and stats["rejected"] == {"BadDeviceToken": 1}
    assert stats["delivered"] + sum(stats["dropped"].values()) + sum(stats["pending"].values()) == 1


@needs_curl
def test_curl_by_apple_host_name_verifies_against_our_ca(ep):
    port = ep["apns"]["url"].rsplit(":", 1)[1]
    status, _, _, _ = _curl(ep, _ios_token(ep, 1), headers=_jwt_headers(ep),
                            extra=["--resolve", f"api.sandbox.push.apple.com:{port}:127.0.0.1"],
                            url=f"https://api.sandbox.push.apple.com:{port}")
    assert status == 200


@needs_curl
def test_curl_with_push_certificate(ep):
    headers = {"apns-topic": ep["apns"]["topic"], "apns-push-type": "alert"}
    status, hdrs, _, _ = _curl(ep, _ios_token(ep, 2), headers=headers,
                               extra=["--cert", ep["apns"]["client_cert"], "--key", ep["apns"]["client_key"]])
    assert status == 200 and hdrs.get("apns-id")
    assert _admin(ep, "/stats")["accepted"] == 1


def test_httpx_over_h2_and_h2c(ep):
    token, bearer = _ios_token(ep), provider_token(ep)   # one token per connection, as real clients do
    with apns_client(ep) as c:
        r = push(c, ep, token, bearer, apns_id="11111111-2222-4333-8444-555555555555")
        assert (r.status_code, r.http_version) == (200, "HTTP/2")
        assert r.headers["apns-id"] == "11111111-2222-4333-8444-555555555555"
        bad = push(c, ep, "not-a-token", bearer)
        assert bad.status_code == 400 and bad.json()["reason"] == "BadDeviceToken"
    with httpx.Client(http1=False, http2=True, base_url=ep["apns"]["h2c_url"], timeout=10) as c:
        assert push(c, ep, token, bearer).status_code == 200
    assert _admin(ep, "/stats")["accepted"] == 2


def test_jwt_from_an_unknown_key_is_403_invalid_provider_token(ep):
    foreign = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forged = jwt.encode({"iss": ep["apns"]["team_id"], "iat": int(__import__("time").time())}, foreign,
                        algorithm="ES256", headers={"kid": ep["apns"]["key_id"]})
    with apns_client(ep) as c:
        r = push(c, ep, _ios_token(ep), forged)
    assert r.status_code == 403 and r.json()["reason"] == "InvalidProviderToken"
    assert _admin(ep, "/stats")["accepted"] == 0


@pytest.fixture
def aioapns_at(ep, monkeypatch):
    """aioapns has no host option (reference §6): point its protocol classes at the fake."""
    from aioapns import connection

    port = int(ep["apns"]["url"].rsplit(":", 1)[1])
    for cls in (connection.APNsDevelopmentClientProtocol, connection.APNsProductionClientProtocol):
        monkeypatch.setattr(cls, "APNS_SERVER", "127.0.0.1")
    monkeypatch.setattr(connection.APNsTLSClientProtocol, "APNS_PORT", port)
    return ep


async def _aioapns_send(apns, token: str, apns_id: str):
    from aioapns import NotificationRequest, PushType

    req = NotificationRequest(device_token=token, message={"aps": {"alert": "hi"}},
                              notification_id=apns_id, push_type=PushType.ALERT)
    return await apns.send_notification(req)


async def test_aioapns_token_auth(aioapns_at):
    from aioapns import APNs

    ep = aioapns_at
    apns = APNs(key=Path(ep["apns"]["key_file"]).read_text(), key_id=ep["apns"]["key_id"],
                team_id=ep["apns"]["team_id"], topic=ep["apns"]["topic"], use_sandbox=True,
                ssl_context=ssl.create_default_context(cafile=ep["ca_file"]), max_connection_attempts=1)
    ok_id = str(uuid.uuid4())
    try:
        ok = await _aioapns_send(apns, _ios_token(ep), ok_id)
        bad = await _aioapns_send(apns, "ab" * 31, str(uuid.uuid4()))
    finally:
        apns.pool.close()
    assert ok.is_successful and ok.notification_id == ok_id
    assert not bad.is_successful and bad.status == "400" and bad.description == "BadDeviceToken"
    stats = _admin(ep, "/stats")
    assert stats["accepted"] == 1 and stats["rejected"] == {"BadDeviceToken": 1}


async def test_aioapns_certificate_auth(aioapns_at):
    from aioapns import APNs

    ep = aioapns_at
    apns = APNs(client_cert=ep["apns"]["client_bundle"], topic=ep["apns"]["topic"], use_sandbox=True,
                ssl_context=ssl.create_default_context(cafile=ep["ca_file"]), max_connection_attempts=1)
    token = _ios_token(ep, 3)
    try:
        ok = await _aioapns_send(apns, token, str(uuid.uuid4()))
    finally:
        apns.pool.close()
    assert ok.is_successful, (ok.status, ok.description)
    assert [d["outcome"] in ("delivered", "pending") for d in _admin(ep, f"/devices/{token}")["deliveries"]] == [True]


def test_fcm_service_account_from_state_dir_gets_a_token_and_sends(ep):
    """google-auth follows the rewritten token_uri to this run's port; the token then sends to FCM."""
    import requests
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    fcm = ep["fcm"]
    creds = service_account.Credentials.from_service_account_file(
        fcm["service_account_file"], scopes=["https://www.googleapis.com/auth/firebase.messaging"])
    assert creds._token_uri == fcm["token_uri"]
    session = requests.Session()
    session.verify = ep["ca_file"]
    session.trust_env = False   # else REQUESTS_CA_BUNDLE silently overrides `verify`
    creds.refresh(Request(session))
    assert creds.token and creds.valid
    token = _admin(ep, "/devices?platform=android&limit=1")["devices"][0]["token"]
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=ep["ca_file"]), timeout=10) as c:
        r = c.post(f"{fcm['url']}/v1/projects/{fcm['project_id']}/messages:send",
                   headers={"authorization": f"Bearer {creds.token}"},
                   json={"message": {"token": token, "data": {"k": "v"}}})
    assert r.status_code == 200, r.text
    assert r.json()["name"].startswith(f"projects/{fcm['project_id']}/messages/")
    assert _admin(ep, "/stats")["accepted"] == 1
