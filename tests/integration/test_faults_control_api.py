"""The fault and per-install control routes over a real socket (aiohttp test server, real Testbed)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pushsim.config import Config
from pushsim.control import make_app
from pushsim.testbed import Testbed


@pytest.fixture
async def client():
    testbed = Testbed(Config(devices="ios=2,android=2", seed=5))
    app = make_app(SimpleNamespace(testbed=testbed))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        c.testbed = testbed
        yield c


async def test_create_list_delete(client) -> None:
    r = await client.post("/faults", json=[{"action": {"type": "stall"}},
                                           {"id": "slow", "action": {"type": "delay", "fixed_ms": 5}}])
    assert r.status == 201
    ids = [f["id"] for f in (await r.json())["faults"]]
    assert ids == ["f1", "slow"]
    listed = (await (await client.get("/faults")).json())["faults"]
    assert [f["id"] for f in listed] == ["f1", "slow"] and listed[1]["action"]["delay"] == {"fixed_ms": 5.0}
    assert (await client.delete("/faults/slow")).status == 200
    r = await client.delete("/faults/slow")
    assert r.status == 404 and "slow" in (await r.json())["error"]
    assert (await (await client.delete("/faults")).json()) == {"deleted": 1}
    assert client.testbed.faults.list() == []


@pytest.mark.parametrize("body, words", [
    (b"{not json", "not valid JSON"),
    (b'{"action": {"type": "teleport"}}', "action.type"),
    (b'[{"action": {"type": "stall"}}, {"trigger": {"every": 0}, "action": {"type": "stall"}}]', "rule 1: trigger.every"),
    (b"[]", "no rules"),
])
async def test_bad_rules_are_400_with_a_message_and_nothing_added(client, body: bytes, words: str) -> None:
    r = await client.post("/faults", data=body, headers={"content-type": "application/json"})
    assert r.status == 400
    assert words in (await r.json())["error"]
    assert client.testbed.faults.list() == []


async def test_uninstall_via_state(client) -> None:
    tok = client.testbed.fleet.apns_token(0)
    r = await client.post(f"/devices/{tok}/state", json={"uninstall": True})
    assert r.status == 200
    assert (await r.json())["installed"] is False
    assert 0 in client.testbed.fleet.uninstalled


async def test_state_errors(client) -> None:
    tok = client.testbed.fleet.fcm_token(3)
    r = await client.post("/devices/nope/state", json={"uninstall": True})
    assert r.status == 404
    r = await client.post(f"/devices/{tok}/state", json={"standby_bucket": "sometimes"})
    assert r.status == 400 and "standby_bucket" in (await r.json())["error"]
    r = await client.post(f"/devices/{tok}/state", json={"colour": "red"})
    assert r.status == 400 and "unknown field 'colour'" in (await r.json())["error"]
    r = await client.post(f"/devices/{tok}/state", json={"installed": True})
    assert r.status == 400 and "reinstalling" in (await r.json())["error"]
    r = await client.post(f"/devices/{tok}/state", json={"os_version": True})
    assert r.status == 400 and "os_version" in (await r.json())["error"]


class RecordingSim:
    """Stand-in for device_sim's per-install control, recording what the route asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict]] = []

    def set_state(self, index: int, **changes: object) -> None:
        if changes.get("bucket") == "never":
            raise ValueError("cannot move an install back to never")
        self.calls.append((index, changes))

    def open_app(self, index: int) -> None:
        self.calls.append((index, {"open": True}))

    def describe(self, index: int) -> dict:
        return {"app_state": "background"}


async def test_state_changes_reach_device_sim_with_its_names(client) -> None:
    client.testbed.device_sim = rec = RecordingSim()
    tok = client.testbed.fleet.fcm_token(2)
    r = await client.post(f"/devices/{tok}/state", json={"app_state": "force_stopped", "connectivity": "offline",
                                                          "power": "doze", "bucket": "rare", "bar": False})
    assert r.status == 200, await r.text()
    idx, ch = rec.calls[-1]
    assert ch == {"app_state": "force_stopped", "online": False, "doze": True, "bucket": "rare", "bar": False}
    body = await r.json()
    assert body["os"]["app_state"] == "background" and body["applied"] == ch and body["token"] == tok
    # device_sim's own names are accepted as they are
    r = await client.post(f"/devices/{tok}/state", json={"online": True, "low_power": True, "open": True})
    assert r.status == 200 and rec.calls[-1][1] == {"online": True, "low_power": True, "open": True}
    r = await client.post(f"/devices/{tok}/state", json={"standby_bucket": "never"})
    assert r.status == 400 and "never" in (await r.json())["error"]
    assert (await client.post(f"/devices/{tok}/open")).status == 200
    assert rec.calls[-1][1] == {"open": True}
