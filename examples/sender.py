"""A small push sender, the kind of code pushsim exists to test.

One APNs path (HTTP/2, token auth with an ES256 JWT) and one FCM path (HTTP v1, OAuth2 service
account). Both retry what is worth retrying — honouring `Retry-After` in seconds or as an HTTP date,
else backing off exponentially — and drop tokens the service says are dead (APNs 410 / BadDeviceToken,
FCM UNREGISTERED) from the token store.

    sender = Sender.from_endpoints(json.load(open(".pushsim/endpoints.json")), tokens={...})
    sender.send_apns(token, {"aps": {"alert": "hi"}})
    sender.send_fcm(token, {"notification": {"title": "hi"}})
"""
from __future__ import annotations

import json
import ssl
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import httpx
import jwt

APNS_RETRY = {429, 500, 503}
FCM_RETRY = {429, 500, 503}
APNS_DEAD = {"Unregistered", "ExpiredToken", "BadDeviceToken"}
FCM_DEAD = {"UNREGISTERED"}


@dataclass
class Result:
    token: str
    ok: bool
    status: int | None          # None when the last attempt never got an HTTP answer
    reason: str | None
    attempts: int
    removed: bool = False       # the token was dropped from the store


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait, from `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def backoff(attempt: int, base: float = 0.2, cap: float = 5.0) -> float:
    return min(cap, base * 2 ** (attempt - 1))


def apns_reason(resp: httpx.Response) -> str | None:
    try:
        return resp.json().get("reason") if resp.content else None
    except ValueError:
        return None


def fcm_reason(resp: httpx.Response) -> str | None:
    """The FcmError errorCode if there is one, else the canonical status (e.g. UNAVAILABLE)."""
    try:
        err = resp.json().get("error") or {}
    except ValueError:
        return None
    for d in err.get("details") or ():
        if isinstance(d, dict) and d.get("errorCode"):
            return str(d["errorCode"])
    return err.get("status")


class Sender:
    def __init__(self, *, apns_url: str, apns_topic: str, apns_key_pem: bytes, apns_key_id: str,
                 apns_team_id: str, fcm_url: str, fcm_project_id: str, fcm_service_account: dict[str, Any],
                 ca_file: str | bool = True, tokens: set[str] | None = None, max_attempts: int = 4,
                 max_wait: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 timeout: float = 10.0) -> None:
        self.apns_url, self.apns_topic = apns_url.rstrip("/"), apns_topic
        self._apns_key, self._kid, self._team = apns_key_pem, apns_key_id, apns_team_id
        self.fcm_url, self.project = fcm_url.rstrip("/"), fcm_project_id
        self._sa = fcm_service_account
        self.tokens = tokens if tokens is not None else set()
        self.max_attempts, self.max_wait, self.sleep = max_attempts, max_wait, sleep
        verify = ssl.create_default_context(cafile=ca_file) if isinstance(ca_file, str) else ca_file
        self.http = httpx.Client(http2=True, verify=verify, timeout=timeout)
        self._jwt: tuple[str, float] | None = None
        self._access: tuple[str, float] | None = None

    @classmethod
    def from_endpoints(cls, ep: dict[str, Any], **kw: Any) -> "Sender":
        a, f = ep["apns"], ep["fcm"]
        with open(a["key_file"], "rb") as fh:
            key = fh.read()
        with open(f["service_account_file"]) as fh:
            sa = json.load(fh)
        return cls(apns_url=a["url"], apns_topic=a["topic"], apns_key_pem=key, apns_key_id=a["key_id"],
                   apns_team_id=a["team_id"], fcm_url=f["url"], fcm_project_id=f["project_id"],
                   fcm_service_account=sa, ca_file=ep.get("ca_file", True), **kw)

    def close(self) -> None:
        self.http.close()

    # credentials ----------------------------------------------------------------------------
    def _apns_jwt(self) -> str:
        now = time.time()
        if self._jwt is None or now - self._jwt[1] > 30 * 60:   # Apple: refresh every 20–60 min
            tok = jwt.encode({"iss": self._team, "iat": int(now)}, self._apns_key, algorithm="ES256",
                             headers={"kid": self._kid})
            self._jwt = (tok, now)
        return self._jwt[0]

    def _fcm_access_token(self) -> str:
        now = time.time()
        if self._access is None or now > self._access[1]:
            sa = self._sa
            assertion = jwt.encode(
                {"iss": sa["client_email"], "scope": "https://www.googleapis.com/auth/firebase.messaging",
                 "aud": sa["token_uri"], "iat": int(now), "exp": int(now) + 3600},
                sa["private_key"], algorithm="RS256", headers={"kid": sa["private_key_id"]})
            r = self.http.post(sa["token_uri"], data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
            r.raise_for_status()
            body = r.json()
            self._access = (body["access_token"], now + int(body.get("expires_in", 3600)) - 60)
        return self._access[0]

    # sending --------------------------------------------------------------------------------
    def send_apns(self, token: str, payload: dict[str, Any], *, push_type: str = "alert",
                  priority: int = 10) -> Result:
        body = json.dumps(payload).encode()
        apns_id = str(uuid.uuid4())      # same id on every retry: the journal shows one message retried

        def attempt() -> httpx.Response:
            return self.http.post(f"{self.apns_url}/3/device/{token}", content=body, headers={
                "authorization": f"bearer {self._apns_jwt()}", "apns-topic": self.apns_topic,
                "apns-push-type": push_type, "apns-priority": str(priority), "apns-id": apns_id})
        return self._with_retries(token, attempt, apns_reason, APNS_RETRY, APNS_DEAD)

    def send_fcm(self, token: str, message: dict[str, Any]) -> Result:
        url = f"{self.fcm_url}/v1/projects/{self.project}/messages:send"
        body = {"message": {**message, "token": token}}

        def attempt() -> httpx.Response:
            return self.http.post(url, json=body, headers={"authorization": f"Bearer {self._fcm_access_token()}"})
        return self._with_retries(token, attempt, fcm_reason, FCM_RETRY, FCM_DEAD)

    def _with_retries(self, token: str, attempt: Callable[[], httpx.Response],
                      reason_of: Callable[[httpx.Response], str | None], retry: set[int],
                      dead: set[str]) -> Result:
        status: int | None = None
        reason: str | None = None
        for n in range(1, self.max_attempts + 1):
            try:
                resp = attempt()
            except httpx.TransportError as e:      # reset, refused stream, GOAWAY, timeout: safe to retry
                status, reason = None, type(e).__name__
                wait = backoff(n)
            else:
                status = resp.status_code
                if status == 200:
                    return Result(token, True, 200, None, n)
                reason = reason_of(resp)
                if reason in dead:
                    self.tokens.discard(token)
                    return Result(token, False, status, reason, n, removed=True)
                if status not in retry:
                    return Result(token, False, status, reason, n)
                wait = parse_retry_after(resp.headers.get("retry-after"), time.time())
                if wait is None:
                    wait = backoff(n)
                if wait > self.max_wait:            # told to come back later than we care to wait
                    return Result(token, False, status, reason, n)
            if n < self.max_attempts:
                self.sleep(wait)
        return Result(token, False, status, reason, self.max_attempts)
