"""The FCM Data API on the fake FCM port, read with Google's own client (google-api-python-client,
static discovery document for fcmdata v1beta1) and the service-account credentials pushsim writes."""
from __future__ import annotations

import datetime as dt
import ssl
from typing import Any, Iterator

import google_auth_httplib2
import httplib2
import httpx
import pytest
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from _serve_helpers import ephemeral_config
from bad_sender import BadSender
from pushsim.pytest_plugin import PushSimClient
from pushsim.server import run_in_thread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sim, stop = run_in_thread(ephemeral_config(tmp_path_factory.mktemp("state"), devices="ios=2,android=6"))
    yield sim
    stop()


def _fcmdata(ep: dict[str, Any], authorized: bool = True) -> Any:
    http = httplib2.Http(ca_certs=ep["ca_file"], timeout=10)
    if authorized:
        creds = service_account.Credentials.from_service_account_file(
            ep["fcm"]["service_account_file"], scopes=["https://www.googleapis.com/auth/cloud-platform"])
        http = google_auth_httplib2.AuthorizedHttp(creds, http=http)
    return build("fcmdata", "v1beta1", http=http, static_discovery=True,
                 client_options={"api_endpoint": ep["fcm"]["url"]})


def test_google_client_reads_the_fleets_outcome_shares(server: Any) -> None:
    ep = server.endpoints
    client = PushSimClient(ep)
    client.reset()
    online, offline = client.tokens("android", limit=2)
    client.set_state(online, online=True, app_state="foreground", doze=False)
    client.set_state(offline, online=False)
    b = BadSender(ep)
    try:
        for token in (online, online, online, offline):
            msg = {"notification": {"title": "hi"}, "fcm_options": {"analytics_label": "promo"}}
            assert b.fcm_send(token, msg).status_code == 200
        assert b.fcm_send(online, {"data": {"k": "v"}}).status_code == 200     # no label
    finally:
        b.close()
    client.wait_for_delivery(online, count=4)

    api = _fcmdata(ep)
    parent = f"projects/{ep['fcm']['project_id']}/androidApps/1:123:android:abc"
    resp = api.projects().androidApps().deliveryData().list(parent=parent).execute()
    entries = resp["androidDeliveryData"]
    by_label = {e.get("analyticsLabel"): e for e in entries}
    assert set(by_label) == {"promo", None}
    promo = by_label["promo"]
    assert promo["appId"] == "1:123:android:abc"
    today = dt.datetime.now(dt.timezone.utc).date()
    assert promo["date"] == {"year": today.year, "month": today.month, "day": today.day}
    data = promo["data"]
    assert data["countMessagesAccepted"] == "4"
    assert data["messageOutcomePercents"]["delivered"] == 75.0
    assert data["messageOutcomePercents"]["pending"] == 25.0
    assert data["deliveryPerformancePercents"]["deliveredNoDelay"] == 100.0
    assert by_label[None]["data"]["countMessagesAccepted"] == "1"

    page = api.projects().androidApps().deliveryData().list(parent=parent, pageSize=1).execute()
    assert len(page["androidDeliveryData"]) == 1 and page["nextPageToken"]
    rest = api.projects().androidApps().deliveryData().list(parent=parent, pageSize=1,
                                                             pageToken=page["nextPageToken"]).execute()
    assert page["androidDeliveryData"] + rest["androidDeliveryData"] == entries and "nextPageToken" not in rest


def test_without_credentials_or_for_another_project_it_refuses(server: Any) -> None:
    ep = server.endpoints
    with pytest.raises(HttpError) as e:
        _fcmdata(ep, authorized=False).projects().androidApps().deliveryData().list(
            parent=f"projects/{ep['fcm']['project_id']}/androidApps/x").execute()
    assert e.value.resp.status == 401
    with pytest.raises(HttpError) as e:
        _fcmdata(ep).projects().androidApps().deliveryData().list(parent="projects/other/androidApps/x").execute()
    assert e.value.resp.status == 403
    r = httpx.post(ep["fcm"]["url"] + f"/v1beta1/projects/{ep['fcm']['project_id']}/androidApps/x/deliveryData",
                   verify=ssl.create_default_context(cafile=ep["ca_file"]))
    assert r.status_code == 405
