"""For any deployment size, seed and install: the generated HAProxy maps send the install's APNs and
FCM tokens to the backend of partition index % N, and every backend a rule can name is defined.

`route_apns` / `route_fcm` follow the generated sample expressions step by step
(`path,field(4,/),bytes(0,4),lower,map_str(apns.map,apns_any)`;
`req.body,json_query('$.message.token'),bytes(0,2),map_str(fcm.map)`, then the same on
`$.message.fid`); the integration test runs the real HAProxy on the same text.
"""
from __future__ import annotations

import json
import re

from hypothesis import example, given, settings, strategies as st

from device_sim.tokens import MAX_PARTITIONS, make_codec
from pushsim.scaleout.haproxy import haproxy_config, map_files
from pushsim.scaleout.instances import Instance


def _map(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def route_apns(path: str, apns_map: dict[str, str]) -> str:
    if not path.startswith("/3/device/"):
        return "apns_any"
    fields = path.split("/")
    token = fields[3] if len(fields) > 3 else ""
    return apns_map.get(token[:4].lower(), "apns_any")


def route_fcm(body: str, fcm_map: dict[str, str]) -> str:
    """`message.token`, else `message.fid` (the second rule runs only when the first found no owner)."""
    try:
        msg = json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        return "fcm_any"
    for key in ("token", "fid"):
        token = msg.get(key) if isinstance(msg, dict) else None
        if isinstance(token, str) and token[:2] in fcm_map:
            return fcm_map[token[:2]]
    return "fcm_any"


def _instances(n: int) -> list[Instance]:
    return [Instance("127.0.0.1", 10000 + 3 * k, 10001 + 3 * k, 10002 + 3 * k) for k in range(n)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, MAX_PARTITIONS), seed=st.integers(0, 2**32), index=st.integers(0, 2**40),
       upper=st.booleans(), key=st.sampled_from(["token", "fid"]))
@example(n=2, seed=0, index=0, upper=False, key="token")
@example(n=65, seed=1, index=64, upper=True, key="fid")   # past 64: the FCM prefix's first character moves
@example(n=MAX_PARTITIONS, seed=0, index=MAX_PARTITIONS - 1, upper=False, key="token")
def test_tokens_route_to_their_partition(n: int, seed: int, index: int, upper: bool, key: str) -> None:
    maps = map_files(n)
    apns_map, fcm_map = _map(maps["apns.map"]), _map(maps["fcm.map"])
    codec = make_codec(seed, n)
    k = index % n
    apns = codec.apns_token(index)
    assert route_apns(f"/3/device/{apns.upper() if upper else apns}", apns_map) == f"apns_p{k}"
    token = codec.fcm_token(index)
    target = token if key == "token" else token.split(":", 1)[0]     # an fid is the instance-id part
    body = json.dumps({"message": {"data": {"x": "y"}, key: target}})
    assert route_fcm(body, fcm_map) == f"fcm_p{k}"


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), path=st.text(max_size=80), body=st.text(max_size=80))
@example(n=1, path="/3/device/0000", body='{"message":{"token":"AA"}}')
def test_every_backend_a_rule_can_name_is_defined(n: int, path: str, body: str) -> None:
    text = haproxy_config(_instances(n), "/p")
    defined = set(re.findall(r"^backend (\S+)$", text, re.M))
    maps = map_files(n)
    apns_map, fcm_map = _map(maps["apns.map"]), _map(maps["fcm.map"])
    assert set(apns_map.values()) | set(fcm_map.values()) | {"apns_any", "fcm_any"} <= defined
    assert route_apns(path, apns_map) in defined and route_fcm(body, fcm_map) in defined
    assert len(defined) == 2 * n + 2


@settings(max_examples=300, deadline=None)
@given(spec=st.text(max_size=40) | st.from_regex(r"\[?[0-9a-zA-Z.:-]{1,20}\]?(:\d{1,6}/\d{1,6}/\d{1,6})?",
                                                 fullmatch=True))
@example(spec="host:1/2/3\nbackend evil")
@example(spec="[::1]:1/2/3")
def test_an_instance_spec_is_an_instance_or_a_clear_error(spec: str) -> None:
    """Whatever the text: InstanceSpecError, or an instance whose host and ports cannot change the
    config's structure (one server line per backend, nothing injected)."""
    from pushsim.scaleout.instances import InstanceSpecError, parse_spec

    try:
        inst = parse_spec(spec)
    except InstanceSpecError:
        return
    assert all(1 <= port <= 65535 for port in (inst.apns_h2c, inst.fcm_h2c, inst.admin))
    other = Instance("192.0.2.1", 1, 2, 3)
    if inst.host == other.host:
        return                                 # the same ports on one host: refused, tested in unit tests
    text = haproxy_config([inst, other], "/p")
    servers = [line.split() for line in text.splitlines() if line.lstrip().startswith("server ")]
    assert len(servers) == 8                   # 2 instances x (own backend + round robin) x 2 services
    assert all(len(words) == 14 and words[3:5] == ["proto", "h2"] for words in servers)
    assert not any(c.isspace() or c in "#'\"" for c in inst.host)
