"""Real FCM clients against the fake over real sockets: firebase-admin, pyfcm, httpx (HTTP/1.1 and HTTP/2).

Only the FCM URL, the service account's token_uri and the trusted CA are changed.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import firebase_admin
import httpx
import pytest
from firebase_admin import credentials, messaging

from fcm_harness import Harness, start
from tests.waiting import until

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def fcm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    h = await start(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", h.ca_file)     # requests: firebase-admin sync, google-auth, pyfcm
    monkeypatch.setenv("SSL_CERT_FILE", h.ca_file)          # httpx: firebase-admin async
    yield h
    await h.stop()


@pytest.fixture
def app(fcm: Harness, monkeypatch: pytest.MonkeyPatch) -> firebase_admin.App:
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", fcm.url + "/v1/projects/{0}/messages:send")
    monkeypatch.setattr(messaging._MessagingService, "IID_URL", fcm.url)
    a = firebase_admin.initialize_app(credentials.Certificate(fcm.sa_file), name=uuid.uuid4().hex)
    # firebase-admin >= 7.6 builds the topic-subscription URL per instance from a hard-coded host.
    messaging._get_messaging_service(a)._fcm_topic_url = f"{fcm.url}/v1/projects/{fcm.project_id}/registrations"
    yield a
    firebase_admin.delete_app(a)


async def in_thread(fn, *args):  # type: ignore[no-untyped-def]
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def installs_reached(fcm: Harness) -> set[int]:
    return {i for i in range(len(fcm.testbed.fleet)) if fcm.testbed.ledger.deliveries(i)}


async def test_firebase_admin_send_data_message(fcm: Harness, app: firebase_admin.App) -> None:
    token = fcm.fcm_token("android")
    name = await in_thread(messaging.send, messaging.Message(data={"k": "v"}, token=token), False, app)
    assert name.startswith(f"projects/{fcm.project_id}/messages/0:")
    install = fcm.testbed.fleet.resolve_fcm(token)
    await until(lambda: fcm.testbed.ledger.deliveries(install), "the message reached its install")
    [d] = fcm.testbed.ledger.deliveries(install)
    assert d["id"] == name and d["push_type"] == "data"
    fcm.testbed.ledger.check()


async def test_firebase_admin_unknown_token_is_unregistered(fcm: Harness, app: firebase_admin.App) -> None:
    stranger = fcm.testbed.fleet.codec.fcm_token(99_999)        # well-formed, never issued to an install
    with pytest.raises(messaging.UnregisteredError):
        await in_thread(messaging.send, messaging.Message(data={"k": "v"}, token=stranger), False, app)
    with pytest.raises(messaging.SenderIdMismatchError):
        await in_thread(messaging.send, messaging.Message(token=fcm.service.foreign_token(0)), False, app)
    with pytest.raises(firebase_admin.exceptions.InvalidArgumentError):
        await in_thread(messaging.send, messaging.Message(token="nonsense"), False, app)


async def test_firebase_admin_expired_token_refreshes(fcm: Harness, app: firebase_admin.App) -> None:
    token = fcm.fcm_token("android")
    await in_thread(messaging.send, messaging.Message(token=token), False, app)
    assert fcm.service.authority.expire_all(fcm.clock()) == 1   # the client still trusts its token
    name = await in_thread(messaging.send, messaging.Message(token=token), False, app)
    assert name.startswith("projects/")
    reasons = [(e.service, e.status, e.reason) for e in fcm.testbed.journal.entries]
    assert reasons[-3:] == [("fcm", 401, "ACCESS_TOKEN_EXPIRED"), ("oauth", 200, None), ("fcm", 200, None)]


async def test_firebase_admin_topics_fan_out(fcm: Harness, app: firebase_admin.App) -> None:
    fleet = fcm.testbed.fleet
    chosen = [0, 4, 6]
    resp = await in_thread(messaging.subscribe_to_topic, [fleet.fcm_token(i) for i in chosen], "news", app)
    assert (resp.success_count, resp.failure_count) == (3, 0)
    await in_thread(messaging.send, messaging.Message(topic="news", notification=messaging.Notification("t")),
                    False, app)
    await until(lambda: installs_reached(fcm) == set(chosen), "the topic message reached its subscribers")
    await in_thread(messaging.unsubscribe_from_topic, [fleet.fcm_token(4)], "news", app)
    await in_thread(messaging.send, messaging.Message(condition="'news' in topics"), False, app)
    await until(lambda: [len(fcm.testbed.ledger.deliveries(i)) for i in chosen] == [2, 1, 2],
                "the condition message reached the remaining subscribers")
    again = await in_thread(messaging.subscribe_to_topic, [fleet.fcm_token(0), "junk"], "news", app)
    assert again.success_count == 1 and again.errors[0].reason == "INVALID_ARGUMENT"   # re-subscribe = 409 = ok


async def test_firebase_admin_legacy_iid_topics(fcm: Harness, app: firebase_admin.App) -> None:
    import warnings

    fleet = fcm.testbed.fleet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resp = await in_thread(messaging.subscribe_to_topic_legacy,
                               [fleet.fcm_token(1), fleet.codec.fcm_token(99_999)], "/topics/sports", app)
    assert (resp.success_count, resp.failure_count) == (1, 1) and resp.errors[0].reason == "NOT_FOUND"
    await in_thread(messaging.send, messaging.Message(topic="sports", data={"a": "b"}), False, app)
    await until(lambda: installs_reached(fcm) == {1}, "the legacy topic message reached its subscriber")


async def test_firebase_admin_send_each_async_over_http2(fcm: Harness, app: firebase_admin.App) -> None:
    tokens = [fcm.fcm_token("android", k) for k in range(5)]
    stranger = fcm.testbed.fleet.codec.fcm_token(99_999)
    msgs = [messaging.Message(data={"n": str(i)}, token=t) for i, t in enumerate(tokens + [stranger])]
    # The SDK refreshes its access token with a blocking call inside the client's event loop, so the
    # client gets a loop of its own (in a thread) while this loop serves.
    async def client_side() -> messaging.BatchResponse:
        try:
            return await messaging.send_each_async(msgs, app=app)
        finally:   # close the HTTP/2 client on its own loop; delete_app's later close is then a no-op
            await messaging._get_messaging_service(app)._async_client.aclose()

    batch = await in_thread(lambda: asyncio.run(client_side()))
    assert batch.success_count == 5 and batch.failure_count == 1
    assert isinstance(batch.responses[-1].exception, messaging.UnregisteredError)
    assert len({r.message_id for r in batch.responses[:5]}) == 5
    assert all(e.status in (200, 404) for e in fcm.testbed.journal.entries if e.service == "fcm")


async def test_pyfcm_send_and_refresh(fcm: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyfcm import FCMNotification
    from pyfcm.errors import FCMNotRegisteredError

    monkeypatch.setattr(FCMNotification, "FCM_END_POINT_BASE", fcm.url + "/v1/projects")
    push = FCMNotification(service_account_file=fcm.sa_file, project_id=fcm.project_id)
    one = concurrent.futures.ThreadPoolExecutor(1)     # pyfcm keeps its session (and token) per thread

    async def in_thread(fn):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(one, fn)
    token = fcm.fcm_token("ios")
    result = await in_thread(lambda: push.notify(fcm_token=token, notification_title="hi",
                                                 apns_config={"headers": {"apns-priority": "5"}}))
    assert result["name"].startswith(f"projects/{fcm.project_id}/messages/")
    with pytest.raises(FCMNotRegisteredError):
        await in_thread(lambda: push.notify(fcm_token=fcm.testbed.fleet.codec.fcm_token(99_999), data_payload={"a": "b"}))
    fcm.service.authority.expire_all(fcm.clock())
    result = await in_thread(lambda: push.notify(fcm_token=token, data_payload={"a": "b"}))
    assert result["name"].startswith("projects/")
    expired = [e for e in fcm.testbed.journal.entries if e.reason == "ACCESS_TOKEN_EXPIRED"]
    assert len(expired) == 1
    await until(lambda: len(fcm.testbed.ledger.records) == 2, "both accepted messages are in the ledger")
    notes = [r.note for r in fcm.testbed.ledger.records.values()]
    assert [(n.push_type, n.priority) for n in notes] == [("alert", 5), ("background", 5)]
    one.shutdown()


async def _token(client: httpx.AsyncClient, fcm: Harness, base: str) -> str:
    from fake_fcm.oauth import JWT_BEARER
    from fake_fcm.testing import sign_assertion

    r = await client.post(f"{base}/token", data={"grant_type": JWT_BEARER,
                                                  "assertion": sign_assertion(fcm.sa_info, fcm.clock())})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.mark.parametrize("http2", [False, True])
async def test_httpx_tls(fcm: Harness, http2: bool) -> None:
    async with httpx.AsyncClient(http2=http2, verify=fcm.ca_file) as client:
        access = await _token(client, fcm, fcm.url)
        auth = {"authorization": f"Bearer {access}"}
        rs = await asyncio.gather(*[client.post(fcm.send_url(), headers=auth,
                                                json={"message": {"token": fcm.fcm_token("android", k % 5)}})
                                    for k in range(120 if http2 else 16)])
        assert {r.status_code for r in rs} == {200}
        assert {r.http_version for r in rs} == {"HTTP/2" if http2 else "HTTP/1.1"}
        bad = await client.post(fcm.send_url(), headers=auth, json={"message": {"token": "x", "data": {"a": 1}}})
        assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        none = await client.post(fcm.send_url(), json={})
        assert none.status_code == 401


@pytest.mark.parametrize("http2", [False, True])
async def test_httpx_cleartext(fcm: Harness, http2: bool) -> None:
    # Cleartext: HTTP/1.1, or HTTP/2 with prior knowledge, told apart by the connection preface.
    async with httpx.AsyncClient(http1=not http2, http2=http2) as client:
        access = await _token(client, fcm, fcm.h2c_url)
        r = await client.post(fcm.send_url(fcm.h2c_url), headers={"authorization": f"Bearer {access}"},
                              json={"message": {"token": fcm.fcm_token()}})
        assert r.status_code == 200 and r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
