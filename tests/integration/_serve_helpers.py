"""Shared bits for the serve/control integration tests: configs on ephemeral ports, APNs requests."""
from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from pushsim.config import Config
from pushsim.control import ROUTES


def ephemeral_config(state_dir: Path, **kw: Any) -> Config:
    values: dict[str, Any] = {"apns_port": 0, "apns_h2c_port": 0, "fcm_port": 0, "fcm_h2c_port": 0,
                              "admin_port": 0, "devices": "ios=5,android=3", **kw}
    return Config(state_dir=state_dir, **values)


def provider_token(endpoints: dict[str, Any], iat: float | None = None) -> str:
    a = endpoints["apns"]
    return jwt.encode({"iss": a["team_id"], "iat": int(iat if iat is not None else time.time())},
                      Path(a["key_file"]).read_text(), algorithm="ES256", headers={"kid": a["key_id"]})


def apns_client(endpoints: dict[str, Any]) -> httpx.Client:
    return httpx.Client(http2=True, verify=ssl.create_default_context(cafile=endpoints["ca_file"]), base_url=endpoints["apns"]["url"], timeout=10)


def push(client: httpx.Client, endpoints: dict[str, Any], token: str, jwt_token: str,
         apns_id: str | None = None) -> httpx.Response:
    headers = {"authorization": f"bearer {jwt_token}", "apns-topic": endpoints["apns"]["topic"],
               "apns-push-type": "alert", "apns-priority": "10"}
    if apns_id:
        headers["apns-id"] = apns_id
    return client.post(f"/3/device/{token}", headers=headers, content=b'{"aps":{"alert":"hello"}}')


def walk_routes(admin: httpx.Client, token: str) -> dict[str, int]:
    """Ask every route of the control-API table once → {"METHOD path": status}. `{token}` is a real
    install's token; `{id}` a fault rule made for the purpose. An unrouted path would be 404/405."""
    seen: dict[str, int] = {}
    for route in ROUTES:
        if "{id}" in route.path:
            assert admin.post("/faults", json={"id": "walk", "action": {"type": "stall"}}).status_code == 201
        path = route.path.format(token=token, id="walk")
        with admin.stream(route.method, path) as r:   # /events: the headers are the answer
            seen[f"{route.method} {route.path}"] = r.status_code
    admin.delete("/faults")
    return seen
