"""Issue 16 on one machine: 3 partitioned instances behind the HAProxy config `pushsim proxy-config`
writes, driven by real clients through the proxy (httpx over h2 and HTTP/1.1, aioapns, firebase-admin).

Asserted: every install is reachable through the proxy (all of them are pushed to); each push is
accepted by exactly the owner of its token (the other instances neither count nor journal it); a
token whose prefix names another partition is answered as an unknown token; topic messages reach
subscribers in every partition; the merged /stats (`pushsim stats` over the three control APIs) is
the sum of the instances and balanced.
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest

from device_sim.tokens import token_partition
from tests.integration._serve_helpers import provider_token
from tests.integration.scaleout_harness import PUSHSIM, Deployment, start
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None,
                                reason="haproxy is not installed (Debian package haproxy; ./run.sh test installs it)")
N = 3
ALERT = b'{"aps":{"alert":"hello"}}'


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = start(tmp_path_factory.mktemp("scaleout"), partitions=N)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def fresh(dep: Deployment) -> Deployment:
    for k in range(N):
        assert dep.admin(k).post("/reset").status_code == 200
    return dep


@pytest.fixture(scope="module")
def tokens(dep: Deployment) -> dict[str, dict[int, list[str]]]:
    """platform ("ios" APNs tokens, "android" FCM tokens) → partition → tokens, from every instance."""
    out: dict[str, dict[int, list[str]]] = {"ios": {}, "android": {}}
    for k in range(N):
        for platform, key in (("ios", "token"), ("android", "fcm_token")):
            for dev in dep.admin(k).get("/devices", params={"platform": platform, "limit": 1000}).json()["devices"]:
                part = out[platform].setdefault(token_partition(dev[key]), [])
                if dev[key] not in part:
                    part.append(dev[key])
    for platform in out:
        assert sorted(out[platform]) == list(range(N)), f"{platform} tokens name every partition"
    return out


def _apns_headers(ep: dict[str, Any], jwt_token: str, apns_id: str) -> dict[str, str]:
    return {"authorization": f"bearer {jwt_token}", "apns-topic": ep["apns"]["topic"], "apns-push-type": "alert",
            "apns-priority": "10", "apns-id": apns_id}


def _journal_tokens(dep: Deployment, k: int, service: str) -> list[str]:
    entries = dep.admin(k).get("/journal", params={"service": service, "limit": 1000}).json()["entries"]
    return [e["token"] for e in entries if e.get("token")]


def _owner_saw(dep: Deployment, k: int, token: str, message_id: str) -> bool:
    r = dep.admin(k).get(f"/devices/{token}")
    return r.status_code == 200 and any(message_id in json.dumps(d) for d in r.json()["deliveries"])


def _delivered_on_owner(dep: Deployment, k: int, token: str, message_id: str) -> bool:
    r = dep.admin(k).get(f"/devices/{token}")
    return r.status_code == 200 and any(message_id in json.dumps(d) and d["outcome"] == "delivered"
                                        for d in r.json()["deliveries"])


def _online(dep: Deployment, k: int, tokens: list[str]) -> None:
    """The default fleet has offline windows: these installs are online now, so a push is delivered."""
    for tok in tokens:
        assert dep.admin(k).post(f"/devices/{tok}/state", json={"online": True, "doze": False}).status_code == 200


def _merged_stats(dep: Deployment) -> dict[str, Any]:
    """`pushsim stats --json` over every instance's control API, checked against the instances' sum
    (read while nothing settled: the instances' /stats are the same just before and just after)."""
    keys = ("accepted", "delivered", "rejected", "dropped", "pending")
    deadline = time.monotonic() + 10
    while True:
        each = [{key: dep.admin(k).get("/stats").json()[key] for key in keys} for k in range(N)]
        r = subprocess.run([PUSHSIM, "stats", "--json", *(a for u in dep.admin_urls for a in ("--admin", u))],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        merged = json.loads(r.stdout)
        if each == [{key: dep.admin(k).get("/stats").json()[key] for key in keys} for k in range(N)]:
            break
        assert time.monotonic() < deadline, "the instances never held still for a merged read"
    assert merged["accepted"] == sum(s["accepted"] for s in each)
    assert merged["delivered"] == sum(s["delivered"] for s in each)
    for key in ("rejected", "dropped", "pending"):
        total: dict[str, int] = {}
        for s in each:
            for reason, n in s[key].items():
                total[reason] = total.get(reason, 0) + n
        assert {r: n for r, n in merged[key].items() if n} == {r: n for r, n in total.items() if n}, key
    for s in [*each, merged]:
        assert s["accepted"] == s["delivered"] + sum(s["dropped"].values()) + sum(s["pending"].values())
    return merged


# APNs ----------------------------------------------------------------------------------------
def test_apns_push_through_the_proxy_is_accepted_by_exactly_its_owner(fresh: Deployment, tokens: dict) -> None:
    dep = fresh
    ep = dep.instances[0]
    jwt_token = provider_token(ep)
    sent: dict[int, list[tuple[str, str]]] = {k: [] for k in range(N)}
    tls = httpx.Client(http2=True, verify=ssl.create_default_context(cafile=dep.ca_file), timeout=10)
    h2c = httpx.Client(http1=False, http2=True, timeout=10)
    for k in range(N):
        _online(dep, k, tokens["ios"][k])
    with tls, h2c:
        for k in range(N):
            for j, tok in enumerate(tokens["ios"][k]):          # every iOS install of the fleet
                client, base = (tls, dep.url("apns")) if j % 2 == 0 else (h2c, dep.url("apns-h2c"))
                apns_id = str(uuid.uuid4())
                r = client.post(f"{base}/3/device/{tok}", headers=_apns_headers(ep, jwt_token, apns_id), content=ALERT)
                assert (r.status_code, r.headers.get("apns-id"), r.http_version) == (200, apns_id, "HTTP/2"), r.text
                sent[k].append((tok, apns_id))
        # a real token of partition 1 whose prefix now names partition 0: routed to 0, which does not know it
        tok1 = tokens["ios"][1][0]
        forged = "0000" + tok1[4:]
        r = h2c.post(f"{dep.url('apns-h2c')}/3/device/{forged}",
                     headers=_apns_headers(ep, jwt_token, str(uuid.uuid4())), content=ALERT)
        assert (r.status_code, r.json()) == (400, {"reason": "BadDeviceToken"})
    for k in range(N):
        stats = dep.admin(k).get("/stats").json()
        assert stats["accepted"] == len(sent[k]), f"instance {k} accepted only its own partition's pushes"
        assert sorted(_journal_tokens(dep, k, "apns")) == sorted(
            [t for t, _ in sent[k]] + ([forged] if k == 0 else []))
        for tok, apns_id in sent[k]:
            wait_until(lambda: _delivered_on_owner(dep, k, tok, apns_id), f"instance {k} delivered push {apns_id}")
    assert dep.admin(0).get("/stats").json()["rejected"] == {"BadDeviceToken": 1}
    assert _merged_stats(dep)["accepted"] == sum(len(t) for t in tokens["ios"].values()) == 30


def test_apns_per_connection_rules_hold_per_sender_connection(fresh: Deployment, tokens: dict) -> None:
    """`http-reuse never`: each sender connection has its own connections to the instances, so the
    20-minute provider-token rule sees that sender alone (docs/scale-out.md "Honest limits")."""
    dep = fresh
    ep = dep.instances[0]
    first, second = provider_token(ep), provider_token(ep, time.time() - 5)
    assert first != second
    url = f"{dep.url('apns-h2c')}/3/device/{tokens['ios'][0][0]}"
    one, other = httpx.Client(http1=False, http2=True, timeout=10), httpx.Client(http1=False, http2=True, timeout=10)
    with one, other:
        assert one.post(url, headers=_apns_headers(ep, first, str(uuid.uuid4())), content=ALERT).status_code == 200
        assert other.post(url, headers=_apns_headers(ep, second, str(uuid.uuid4())), content=ALERT).status_code == 200
        r = one.post(url, headers=_apns_headers(ep, second, str(uuid.uuid4())), content=ALERT)
        assert (r.status_code, r.json()) == (429, {"reason": "TooManyProviderTokenUpdates"})
    # TLS ends at the proxy: a push certificate never reaches an instance
    ctx = ssl.create_default_context(cafile=dep.ca_file)
    ctx.load_cert_chain(ep["apns"]["client_bundle"])
    with httpx.Client(http2=True, verify=ctx, timeout=10) as cert_client:
        r = cert_client.post(f"{dep.url('apns')}/3/device/{tokens['ios'][0][0]}", content=ALERT,
                             headers={"apns-topic": ep["apns"]["topic"], "apns-push-type": "alert"})
        assert (r.status_code, r.json()) == (403, {"reason": "MissingProviderToken"})


def test_connection_faults_stay_between_the_proxy_and_the_instance(fresh: Deployment, tokens: dict) -> None:
    """The documented limits: an instance's GOAWAY reaches the sender as a refused stream on a
    connection that lives on, and the sender sees HAProxy's stream limit, not the instance's swing."""
    dep = fresh
    ep = dep.instances[1]
    tok = tokens["ios"][1][0]
    rule = {"scope": {"service": "apns"}, "trigger": {"first": 1}, "action": {"type": "goaway", "answer": False}}
    assert dep.admin(1).post("/faults", json=rule).status_code == 201
    jwt_token = provider_token(ep)
    url = f"{dep.url('apns-h2c')}/3/device/{tok}"
    with httpx.Client(http1=False, http2=True, timeout=10) as c:
        with pytest.raises(httpx.RemoteProtocolError, match="error_code:7"):     # REFUSED_STREAM
            c.post(url, headers=_apns_headers(ep, jwt_token, str(uuid.uuid4())), content=ALERT)
        r = c.post(url, headers=_apns_headers(ep, jwt_token, str(uuid.uuid4())), content=ALERT)
        assert r.status_code == 200                                              # same sender connection
    assert dep.admin(1).get("/stats").json()["accepted"] == 1
    # an instance starts a token-auth connection at MAX_CONCURRENT_STREAMS 1; the proxy offers its own 1000
    assert _first_settings(dep.ports["apns-h2c"])[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 1000
    assert _first_settings(int(ep["apns"]["h2c_url"].rsplit(":", 1)[1]))[
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 1


def _first_settings(port: int) -> dict[int, int]:
    """The SETTINGS a fresh h2c connection to `port` is offered first."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            assert data, "the server closed before its SETTINGS"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    return {code: c.new_value for code, c in event.changed_settings.items()}
    raise AssertionError(f"no SETTINGS from port {port} within 10 s")


def test_aioapns_through_the_proxy_reaches_every_partition(fresh: Deployment, tokens: dict,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from aioapns import APNs, NotificationRequest, PushType, connection

    dep = fresh
    for cls in (connection.APNsDevelopmentClientProtocol, connection.APNsProductionClientProtocol):
        monkeypatch.setattr(cls, "APNS_SERVER", "127.0.0.1")
    monkeypatch.setattr(connection.APNsTLSClientProtocol, "APNS_PORT", dep.ports["apns"])
    a = dep.instances[0]["apns"]

    async def send_all() -> list[Any]:
        apns = APNs(key=Path(a["key_file"]).read_text(), key_id=a["key_id"], team_id=a["team_id"], topic=a["topic"],
                    use_sandbox=True, ssl_context=ssl.create_default_context(cafile=dep.ca_file),
                    max_connection_attempts=1)
        try:
            return [await apns.send_notification(NotificationRequest(
                        device_token=tokens["ios"][k][1], message={"aps": {"alert": "hi"}},
                        notification_id=str(uuid.uuid4()), push_type=PushType.ALERT)) for k in range(N)]
        finally:
            apns.pool.close()

    results = asyncio.run(asyncio.wait_for(send_all(), 20))
    assert [r.is_successful for r in results] == [True] * N, [(r.status, r.description) for r in results]
    assert [dep.admin(k).get("/stats").json()["accepted"] for k in range(N)] == [1] * N
    _merged_stats(dep)


# FCM -----------------------------------------------------------------------------------------
def _access_token(dep: Deployment, base: str, client: httpx.Client) -> str:
    """The service account's JWT-bearer grant, at the proxy's token URL (any instance answers it)."""
    import jwt as pyjwt

    sa = json.loads(Path(dep.instances[0]["fcm"]["service_account_file"]).read_text())
    now = int(time.time())
    assertion = pyjwt.encode({"iss": sa["client_email"], "aud": f"{base}/token", "iat": now, "exp": now + 3600,
                              "scope": "https://www.googleapis.com/auth/firebase.messaging"},
                             sa["private_key"], algorithm="RS256", headers={"kid": sa["private_key_id"]})
    r = client.post(f"{base}/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                           "assertion": assertion})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_fcm_send_through_the_proxy_is_accepted_by_exactly_its_owner(fresh: Deployment, tokens: dict) -> None:
    dep = fresh
    project = dep.instances[0]["fcm"]["project_id"]
    sent: dict[int, list[tuple[str, str]]] = {k: [] for k in range(N)}
    tls = httpx.Client(http2=True, verify=ssl.create_default_context(cafile=dep.ca_file), timeout=10)
    h1 = httpx.Client(timeout=10)                     # HTTP/1.1 on the cleartext port
    h1_tls = httpx.Client(verify=ssl.create_default_context(cafile=dep.ca_file), timeout=10)   # ALPN http/1.1
    h2c = httpx.Client(http1=False, http2=True, timeout=10)     # h2 prior knowledge on the cleartext port
    for k in range(N):
        _online(dep, k, tokens["android"][k])
    with tls, h1, h1_tls, h2c:
        for client, base in ((tls, dep.url("fcm")), (h1, dep.url("fcm-h2c")), (h1_tls, dep.url("fcm")),
                             (h2c, dep.url("fcm-h2c"))):
            bearer = {"authorization": f"Bearer {_access_token(dep, base, client)}"}
            for k in range(N):
                for tok in tokens["android"][k] if client is tls else tokens["android"][k][:2]:
                    r = client.post(f"{base}/v1/projects/{project}/messages:send", headers=bearer,
                                    json={"message": {"token": tok, "data": {"k": str(k)}}})
                    assert (r.status_code, r.http_version) == (200, "HTTP/1.1" if client in (h1, h1_tls) else
                                                               "HTTP/2"), r.text
                    sent[k].append((tok, r.json()["name"].rsplit("/", 1)[1]))
            assert client.post(f"{base}/v1/projects/{project}/messages:send", headers=bearer,
                               json={"message": {"token": "junk", "data": {}}}).status_code in (400, 404)
    for k in range(N):
        assert dep.admin(k).get("/stats").json()["accepted"] == len(sent[k]) == len(tokens["android"][k]) + 6
        mine = [t for t in _journal_tokens(dep, k, "fcm") if t != "junk"]   # junk: any instance, round robin
        assert sorted(mine) == sorted(t for t, _ in sent[k])
        for tok, mid in sent[k]:
            wait_until(lambda: _delivered_on_owner(dep, k, tok, mid), f"instance {k} delivered FCM message {mid}")
    _merged_stats(dep)


@pytest.fixture
def firebase_app(fresh: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import firebase_admin
    from firebase_admin import credentials, messaging

    base = fresh.url("fcm")
    sa = json.loads(Path(fresh.instances[0]["fcm"]["service_account_file"]).read_text())
    sa["token_uri"] = f"{base}/token"                # the proxy's: whichever instance answers, the seal is shared
    sa_file = tmp_path / "sa.json"
    sa_file.write_text(json.dumps(sa))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fresh.ca_file)
    monkeypatch.setenv("SSL_CERT_FILE", fresh.ca_file)
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", base + "/v1/projects/{0}/messages:send")
    monkeypatch.setattr(messaging._MessagingService, "IID_URL", base)
    app = firebase_admin.initialize_app(credentials.Certificate(str(sa_file)), name=uuid.uuid4().hex)
    project = fresh.instances[0]["fcm"]["project_id"]        # the v1 topic API's base is fixed at init
    messaging._get_messaging_service(app)._fcm_topic_url = f"{base}/v1/projects/{project}/registrations"
    try:
        yield app
    finally:
        firebase_admin.delete_app(app)


def test_firebase_admin_sends_and_topic_messages_reach_every_partition(fresh: Deployment, tokens: dict,
                                                                      firebase_app: Any) -> None:
    from firebase_admin import messaging

    dep = fresh
    direct = [tokens["android"][k][2] for k in range(N)]
    fid = direct[0].split(":", 1)[0]                  # a Firebase installation id: the token's instance-id part
    ids = [messaging.send(messaging.Message(fid=fid, data={"n": "1"}), app=firebase_app).rsplit("/", 1)[1]]
    with warnings.catch_warnings():                   # Message.token: deprecated for `fid`, still sent by many
        warnings.simplefilter("ignore", DeprecationWarning)
        ids += [messaging.send(messaging.Message(token=t, data={"n": "1"}), app=firebase_app).rsplit("/", 1)[1]
                for t in direct[1:]]
    for k, (tok, mid) in enumerate(zip(direct, ids)):
        wait_until(lambda: _owner_saw(dep, k, tok, mid), f"instance {k} holds the firebase-admin message")
    subscribers = [tokens["android"][k][3] for k in range(N)]
    resp = messaging.subscribe_to_topic(subscribers, "scaleout", app=firebase_app)
    assert (resp.success_count, resp.failure_count) == (N, 0)
    topic_id = messaging.send(messaging.Message(topic="scaleout", data={"t": "1"}), app=firebase_app)
    cond_id = messaging.send(messaging.Message(condition="'scaleout' in topics", data={"t": "2"}), app=firebase_app)
    assert topic_id and cond_id

    def reached() -> list[int]:
        return [len(dep.admin(k).get(f"/devices/{subscribers[k]}").json()["deliveries"]) for k in range(N)]

    wait_until(lambda: reached() == [2] * N, "the topic and condition messages reached a subscriber in every partition",
               timeout=10)
    merged = _merged_stats(dep)
    assert merged["accepted"] == N + 2 * N          # N direct sends; two messages to N subscribers
    assert [dep.admin(k).get("/stats").json()["accepted"] for k in range(N)] == [3] * N


def test_every_prometheus_target_answers(dep: Deployment) -> None:
    """The generated scrape config names every instance's /metrics (labelled by partition) and HAProxy's."""
    text = (dep.proxy_dir / "prometheus.yml").read_text()
    targets = re.findall(r'- targets: \["([^"]+)"\](?:\n\s+labels: \{partition: "(\d+)")?', text)
    assert [(t, k) for t, k in targets] == [
        *((f"127.0.0.1:{u.rsplit(':', 1)[1]}", str(k)) for k, u in enumerate(dep.admin_urls)),
        (f"127.0.0.1:{dep.ports['stats']}", "")]
    for target, k in targets:
        body = httpx.get(f"http://{target}/metrics", timeout=10).text
        assert ("pushsim_accepted_total" if k else "haproxy_process_") in body
        if k:
            devices = re.search(r"^pushsim_devices (\S+)$", body, re.M)
            assert devices and float(devices.group(1)) == 20      # 60 installs, a third each


def test_an_instance_that_is_down_gets_the_real_services_unavailable_answer(tmp_path: Path) -> None:
    """No instance listens: HAProxy answers 503 with the body APNs / FCM send when unavailable."""
    from benchmarks.processes import fixed_free_port
    from pushsim.cli import main as pushsim_main
    from pushsim.credentials import ensure_credentials
    from tests.integration.scaleout_harness import _wait_port, stop

    ensure_credentials(tmp_path / "state")
    taken: set[int] = set()
    dead = ",".join(f"127.0.0.1:{fixed_free_port(taken)}/{fixed_free_port(taken)}/{fixed_free_port(taken)}"
                    for _ in range(2))
    ports = {name: fixed_free_port(taken) for name in ("apns", "apns-h2c", "fcm", "fcm-h2c", "stats")}
    assert pushsim_main(["proxy-config", "--partitions", "2", "--instances", dead, "--out", str(tmp_path / "p"),
                         "--state-dir", str(tmp_path / "state"), "--maxconn", "200",
                         *(a for name, p in ports.items() for a in (f"--{name}-port", str(p)))]) == 0
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "p" / "haproxy.cfg")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for port in ports.values():
            _wait_port(port, time.monotonic() + 10, proc, "haproxy")
        with httpx.Client(http1=False, http2=True, timeout=10) as h2c:
            r = h2c.post(f"http://127.0.0.1:{ports['apns-h2c']}/3/device/0001{'ab' * 30}", content=ALERT)
            assert (r.status_code, r.json()) == (503, {"reason": "ServiceUnavailable"})
        r = httpx.post(f"http://127.0.0.1:{ports['fcm-h2c']}/v1/projects/p/messages:send", timeout=10,
                       json={"message": {"token": "AB" + "x" * 20 + ":APA91b" + "y" * 140}})
        assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
        assert r.json()["error"]["details"][0]["errorCode"] == "UNAVAILABLE"
    finally:
        stop(proc, signal.SIGUSR1)


def test_proxy_config_reads_an_instance_from_its_control_api(dep: Deployment) -> None:
    """`--instances http://HOST:ADMIN` asks the running instance for its ports: the same as its endpoints file."""
    from pushsim.cli.proxy_config import resolve

    for k, url in enumerate(dep.admin_urls):
        assert resolve(url) == resolve(f"@{dep.endpoint_files[k]}")
        assert resolve(url).admin == int(url.rsplit(":", 1)[1])
