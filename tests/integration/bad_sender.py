"""A sender that misbehaves in every way the report's error rules name (tests only).

Each method commits one sin against a running pushsim, over real HTTP/2 connections.
"""
from __future__ import annotations

import json
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import jwt


class BadSender:
    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.ep = endpoints
        a = endpoints["apns"]
        self.topic, self.key = a["topic"], Path(a["key_file"]).read_text()
        self.verify = ssl.create_default_context(cafile=endpoints["ca_file"])
        self.apns = self._client(a["url"])
        self.fcm = self._client(endpoints["fcm"]["url"])
        self.admin = httpx.Client(base_url=endpoints["admin"]["url"], timeout=10)
        self._jwt = self.provider_token()
        self._access: str | None = None

    def _client(self, url: str) -> httpx.Client:
        return httpx.Client(http2=True, verify=self.verify, base_url=url, timeout=10)

    def close(self) -> None:
        for c in (self.apns, self.fcm, self.admin):
            c.close()

    # credentials ---------------------------------------------------------------------------
    def provider_token(self, iat: float | None = None) -> str:
        a = self.ep["apns"]
        return jwt.encode({"iss": a["team_id"], "iat": int(time.time() if iat is None else iat)}, self.key,
                          algorithm="ES256", headers={"kid": a["key_id"]})

    def access_token(self) -> str:
        if self._access is None:
            sa = json.loads(Path(self.ep["fcm"]["service_account_file"]).read_text())
            now = int(time.time())
            assertion = jwt.encode({"iss": sa["client_email"], "aud": sa["token_uri"], "iat": now, "exp": now + 3600,
                                    "scope": "https://www.googleapis.com/auth/firebase.messaging"},
                                   sa["private_key"], algorithm="RS256", headers={"kid": sa["private_key_id"]})
            r = self.fcm.post(sa["token_uri"], data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                                     "assertion": assertion})
            r.raise_for_status()
            self._access = r.json()["access_token"]
        return self._access

    # sending -------------------------------------------------------------------------------
    def apns_send(self, token: str, body: bytes = b'{"aps":{"alert":"hi"}}', *, client: httpx.Client | None = None,
                  jwt_token: str | None = None) -> httpx.Response:
        return (client or self.apns).post(f"/3/device/{token}", content=body, headers={
            "authorization": f"bearer {jwt_token or self._jwt}", "apns-topic": self.topic,
            "apns-push-type": "alert", "apns-priority": "10"})

    def fcm_send(self, token: str, message: dict[str, Any] | None = None) -> httpx.Response:
        msg = {"notification": {"title": "hi"}} if message is None else message
        project = self.ep["fcm"]["project_id"]
        return self.fcm.post(f"/v1/projects/{project}/messages:send", json={"message": {**msg, "token": token}},
                             headers={"authorization": f"Bearer {self.access_token()}"})

    def fault(self, service: str, token: str, reason: str, **action: Any) -> None:
        r = self.admin.post("/faults", json={"scope": {"service": service, "tokens": [token]},
                                             "trigger": {"first": 1},
                                             "action": {"type": "respond", "reason": reason, **action}})
        r.raise_for_status()

    # the sins, one per error rule ------------------------------------------------------------------
    def keep_sending_after_410(self, token: str) -> list[int]:
        self.admin.post(f"/devices/{token}/state", json={"installed": False}).raise_for_status()
        return [self.apns_send(token).status_code for _ in range(3)]

    def keep_sending_after_unregistered(self, token: str) -> list[int]:
        self.admin.post(f"/devices/{token}/state", json={"installed": False}).raise_for_status()
        return [self.fcm_send(token).status_code for _ in range(3)]

    def retry_429_at_once(self, token: str) -> list[int]:
        self.fault("apns", token, "TooManyRequests")
        return [self.apns_send(token).status_code for _ in range(2)]

    def ignore_retry_after(self, token: str) -> list[int]:
        self.fault("fcm", token, "UNAVAILABLE", retry_after=30)
        return [self.fcm_send(token).status_code for _ in range(2)]

    def resend_payload_too_large(self, token: str) -> list[int]:
        big = b'{"aps":{"alert":"' + b"x" * 5000 + b'"}}'
        return [self.apns_send(token, big).status_code for _ in range(2)]

    def resend_invalid_argument(self, token: str) -> list[int]:
        bad = {"android": {"ttl": "forever"}}
        return [self.fcm_send(token, bad).status_code for _ in range(2)]

    def refresh_token_on_every_push(self, token: str) -> list[int]:
        with self._client(self.ep["apns"]["url"]) as c:
            first = self.apns_send(token, client=c, jwt_token=self.provider_token()).status_code
            second = self.apns_send(token, client=c, jwt_token=self.provider_token(time.time() - 10)).status_code
        return [first, second]

    def use_a_stale_token(self, token: str) -> list[int]:
        with self._client(self.ep["apns"]["url"]) as c:
            return [self.apns_send(token, client=c, jwt_token=self.provider_token(time.time() - 7200)).status_code]

    def flood_one_device(self, token: str, n: int = 245) -> list[int]:
        return [self.fcm_send(token, {"data": {"i": str(i)}}).status_code for i in range(n)]
