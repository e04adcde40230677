"""Bad input on the control API, over real HTTP: a 400 (413 for a huge body) with a JSON message,
never a 500, whatever the body, and the server keeps answering."""
from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _serve_helpers import ephemeral_config
from pushsim.control import ROUTES
from pushsim.control_input import MAX_BODY, MAX_DEPTH, depth
from pushsim.server import run_in_thread

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sim, stop = run_in_thread(ephemeral_config(tmp_path_factory.mktemp("state"), devices="ios=3,android=3"))
    yield sim
    stop()


@pytest.fixture(scope="module")
def admin(server):
    with httpx.Client(base_url=server.endpoints["admin"]["url"], timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def token(admin) -> str:
    return admin.get("/devices", params={"platform": "ios", "limit": 1}).json()["devices"][0]["token"]


def _send(admin: httpx.Client, method: str, path: str, body: bytes | None) -> httpx.Response:
    return admin.request(method, path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("path, body, words", [
    ("/faults", DEEP, "not valid JSON"),
    ("/devices/{token}/state", DEEP, "not valid JSON"),
    ("/faults", DEEP_OBJECT, f"deeper than {MAX_DEPTH}"),
    ("/devices/{token}/state", DEEP_OBJECT, f"deeper than {MAX_DEPTH}"),
    ("/devices/{token}/state", b'{"power": ["x"]}', "power"),
    ("/devices/{token}/state", b'{"connectivity": {"a": 1}}', "connectivity"),
    ("/devices/{token}/state", b'{"app_state": 7}', "app_state"),
    ("/devices/{token}/state", b'{"os_version": 1e300}', "os_version"),
    ("/devices/{token}/state", b'[]', "non-empty JSON object"),
    ("/devices/{token}/state", b'', "empty"),
    ("/devices", b'{"platform": []}', "platform"),
    ("/devices", b'{"count": 99999999999999999999999}', "count"),
    ("/devices", b'{"count": true}', "count"),
    ("/devices", b'{"environment": {}}', "environment"),
    ("/devices", b'{"colour": "red"}', "colour"),
    ("/devices", b'"ios"', "JSON object"),
    ("/faults", b'{"rules": 5}', "rule"),
    ("/faults", b'[{"action": []}]', "action"),
])
def test_bad_bodies_are_400_with_a_message(admin, token, path, body, words) -> None:
    r = _send(admin, "POST", path.format(token=token), body)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


@pytest.mark.parametrize("path, words", [
    ("/devices?offset=" + "9" * 30, "offset must be between"),
    ("/devices?platform=ios&offset=18446744073709551616", "offset must be between"),
    ("/devices?limit=1.5", "limit must be an integer"),
    ("/journal?since=" + "9" * 5000, "since must be between"),
    ("/journal?since=--1", "since must be an integer"),
    ("/journal?format=xml", "format"),
    ("/devices?bogus=1", "unknown query parameter(s) 'bogus'"),
    ("/stats?x=", "unknown query parameter(s) 'x'"),
    ("/events?since=1", "unknown query parameter(s) 'since'"),
])
def test_bad_query_is_400_with_a_message(admin, path, words) -> None:
    r = admin.get(path)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


def test_huge_body_is_413_and_the_server_goes_on(admin) -> None:
    r = _send(admin, "POST", "/faults", b"[" + b"1," * MAX_BODY + b"1]")
    assert r.status_code == 413 and str(MAX_BODY) in r.json()["error"]
    assert admin.get("/health").status_code == 200


def test_too_many_fault_rules_is_400_and_nothing_added(admin) -> None:
    from pushsim.control_faults import MAX_RULES
    admin.delete("/faults")
    r = admin.post("/faults", json=[{"action": {"type": "stall"}}] * (MAX_RULES + 1))
    assert r.status_code == 400 and str(MAX_RULES) in r.json()["error"]
    assert admin.get("/faults").json()["faults"] == []


def test_depth_counts_nesting_without_recursion() -> None:
    assert depth(1) == 0 and depth([]) == 1 and depth({"a": [1, {"b": []}]}) == 4
    nested: list = []
    for _ in range(100_000):        # far past Python's recursion limit
        nested = [nested]
    assert depth(nested) > MAX_DEPTH


POSTS = sorted({r.path for r in ROUTES if r.method == "POST"})
FIELDS = ["platform", "count", "app", "environment", "rules", "action", "trigger", "scope", "id", "type",
          "app_state", "power", "connectivity", "uninstall", "installed", "online", "bucket", "os_version",
          "status", "reason", "every", "first", "probability", "delay", "fixed_ms", "match", "token"]
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=8) | st.sampled_from(["ios", "android", "stall", "error", "offline", "doze",
                                             "background", "rare", "sandbox"])
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), kids, max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(POSTS), body=json_values)
@example(path="/devices/{token}/state", body={"power": ["x"]})
@example(path="/faults", body={"rules": [{"action": {"type": "error", "status": [1]}}]})
def test_any_json_at_any_post_endpoint_is_answered_below_500(admin, token, path, body) -> None:
    if path == "/devices" and isinstance(body, dict) and isinstance(body.get("count"), int):
        body = {**body, "count": 1}   # a valid registration grows the fleet for the rest of the module
    r = _send(admin, "POST", path.format(token=token), json.dumps(body).encode())
    assert r.status_code < 500, (path, body, r.text)
    assert isinstance(r.json(), dict)
    if r.status_code >= 400:
        assert r.json()["error"]
    admin.delete("/faults")   # rules that parse stay out of the next example's way
