"""deliveryData's inputs read straight from the ledger agree with the export's, and an unchanged
ledger is answered from the cache (the FCM port computes it on the event loop)."""
from __future__ import annotations

import orjson

from device_sim.notification import Outcome
from pushsim.edge.types import ConnInfo
from pushsim.report.live import fcm_accepted, ledger_version, records_of
from pushsim.report.metrics import delivery_data
from pushsim.report.records import Inputs, load
from pushsim.services.fcm_data import FcmDataApi, PATH_RE
from tests.unit.test_fcm_service import World, info  # noqa: F401  (info: the fixture World needs)

PATH = b"/v1beta1/projects/pushsim-project/androidApps/1:1:android:a/deliveryData"


def _traffic(w: World) -> None:
    online, offline = w.fleet.fcm_token(w.android(0)), w.fleet.fcm_token(w.android(1))
    w.testbed.device_sim.set_state(w.android(0), online=True, app_state="foreground", doze=False)
    w.testbed.device_sim.set_state(w.android(1), online=False, app_state="background")
    for token, label in ((online, "promo"), (online, None), (offline, "promo"), (offline, "news")):
        msg: dict[str, object] = {"token": token, "notification": {"title": "hi"}}
        if label:
            msg["fcm_options"] = {"analytics_label": label}
        assert w.send(msg).status == 200
    w.testbed.dispatcher.flush()


def _get(api: FcmDataApi, w: World) -> dict[str, object]:
    headers = [(b"authorization", f"Bearer {w.token}".encode())]
    m = PATH_RE.fullmatch(PATH)
    assert m is not None
    r = api.handle(m, b"GET", PATH, headers)
    assert r.status == 200, r.body
    return orjson.loads(r.body)


def test_the_ledger_read_agrees_with_the_export(info: dict[str, str]) -> None:  # noqa: F811
    w = World(info)
    _traffic(w)
    world = w.testbed.world
    assert {n.outcome for n in world.ledger.records.values()} >= {Outcome.DELIVERED, Outcome.PENDING}
    direct = fcm_accepted(world)
    exported = [a for a in load(records_of(world)).accepted if a.service == "fcm"]
    assert len(direct) == 4
    assert delivery_data(Inputs(accepted=direct), "app") == delivery_data(Inputs(accepted=exported), "app")
    assert {a.label for a in direct} == {"promo", "news", None}


def test_an_unchanged_ledger_is_answered_from_the_cache(info: dict[str, str]) -> None:  # noqa: F811
    w = World(info)
    api = FcmDataApi(w.testbed, w.authority, ("pushsim-project", "1"))
    _traffic(w)
    world = w.testbed.world
    first = _get(api, w)
    v = ledger_version(world)
    assert _get(api, w) == first and ledger_version(world) == v
    (cached,) = api._cache.values()
    assert cached[0] == v and api._entries("1:1:android:a") is cached[1]     # not computed again
    assert w.send({"token": w.fleet.fcm_token(w.android(2)), "data": {"k": "v"}}).status == 200
    w.testbed.dispatcher.flush()
    assert ledger_version(world) != v
    later = _get(api, w)
    counts = lambda body: sum(int(e["data"]["countMessagesAccepted"]) for e in body["androidDeliveryData"])  # noqa: E731
    assert counts(later) == counts(first) + 1
