"""The request workloads: credentials, bodies, paths and headers for APNs and FCM, and nghttpd's docroot.

APNs: a 200-byte background payload POSTed to 1000 (by default) fleet iOS tokens, one ES256 JWT from the
state dir's .p8. FCM: the HTTP v1 send with an OAuth Bearer token from the fake's token endpoint. FCM
carries the device token in the body and h2load sends one body, so every FCM request goes to one
Android fleet install (the per-device quota is switched off for the benchmark).
"""
from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pushsim.cli.sender_auth import apns_provider_token, fcm_access_token

COMPACT = (",", ":")


@dataclass(frozen=True)
class Workload:
    name: str                       # "apns" | "fcm"
    paths: tuple[str, ...]          # request paths, spread over by h2load -i
    body: Path
    headers: tuple[str, ...]

    def uri_file(self, tmp: Path, base_url: str, tag: str) -> Path:
        path = tmp / f"uris-{self.name}-{tag}.txt"
        path.write_text("".join(f"{base_url}{p}\n" for p in self.paths))
        return path


def fleet_tokens(admin_url: str, n: int, platform: str) -> list[str]:
    with urllib.request.urlopen(f"{admin_url}/devices?platform={platform}&limit={n}", timeout=10) as r:
        toks = [d["token"] for d in json.load(r)["devices"]]
    if len(toks) < n:
        raise RuntimeError(f"fleet has {len(toks)} {platform} tokens, wanted {n}")
    return toks


def apns_payload(tmp: Path, size: int = 200) -> Path:
    payload = {"aps": {"content-available": 1}, "data": ""}
    payload["data"] = "z" * (size - len(json.dumps(payload, separators=COMPACT)))
    path = tmp / "apns-payload.json"
    path.write_text(json.dumps(payload, separators=COMPACT))
    return path


def apns(endpoints: dict, tmp: Path, tokens: int) -> Workload:
    a = endpoints["apns"]
    toks = fleet_tokens(endpoints["admin"]["url"], tokens, "ios")
    headers = ("apns-push-type: background", "apns-priority: 5", f"apns-topic: {a['topic']}",
               f"authorization: bearer {apns_provider_token(a)}")
    return Workload("apns", tuple(f"/3/device/{t}" for t in toks), apns_payload(tmp), headers)


def fcm_payload(tmp: Path, token: str, size: int = 200) -> Path:
    """A data message padded towards `size` bytes (an FCM token alone is ~165 bytes, so ~236 is the least)."""
    msg = {"message": {"token": token, "data": {"k": ""}, "android": {"priority": "high"}}}
    pad = size - len(json.dumps(msg, separators=COMPACT))
    msg["message"]["data"]["k"] = "v" * max(pad, 1)
    path = tmp / "fcm-payload.json"
    path.write_text(json.dumps(msg, separators=COMPACT))
    return path


def fcm(endpoints: dict, tmp: Path) -> Workload:
    token = fleet_tokens(endpoints["admin"]["url"], 1, "android")[0]
    path = f"/v1/projects/{endpoints['fcm']['project_id']}/messages:send"
    headers = (f"authorization: Bearer {fcm_access_token(endpoints)}", "content-type: application/json")
    return Workload("fcm", (path,), fcm_payload(tmp, token), headers)


def docroot(tmp: Path, workloads: list[Workload]) -> Path:
    """One empty file per request path, so nghttpd answers 200 to exactly the requests pushsim gets."""
    root = tmp / "docroot"
    for w in workloads:
        for p in w.paths:
            f = root / p.lstrip("/")       # "messages:send": ':' is fine in a file name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.touch()
    return root
