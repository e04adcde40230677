"""Locust user that sends FCM HTTP v1 messages over HTTP/2 (shared connection) or HTTP/1.1."""
from __future__ import annotations

import random
import time
from typing import Any

import httpx
import orjson
from locust import User, constant, task

from . import common
from .auth import FcmAccessTokens
from .h2client import H2Client, H2Error


def fcm_error(status: int, body: bytes) -> tuple[str, str]:
    """(errorCode or canonical status, ErrorInfo reason) from a google.rpc.Status error body."""
    try:
        err = orjson.loads(body)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"HTTP {status}", ""
    code, reason = "", ""
    for detail in err.get("details") or ():
        if not isinstance(detail, dict):
            continue
        code = code or detail.get("errorCode", "")
        reason = reason or detail.get("reason", "")
    return code or str(err.get("status") or f"HTTP {status}"), reason


def message(token: str, silent: bool, n: int) -> bytes:
    if silent:
        msg = {"token": token, "data": {"kind": "sync", "n": str(n)}, "android": {"priority": "normal"}}
    else:
        msg = {"token": token, "notification": {"title": "pushsim", "body": "load test"},
               "android": {"priority": "high"}}
    return orjson.dumps({"message": msg})


class _Transport:
    """`post(path, headers, body) -> (status, body)` over HTTP/2 (H2Client) or HTTP/1.1 (httpx)."""

    def __init__(self, base: str, http: str, ca_file: str | None, timeout: float) -> None:
        self.http = http
        if http == "2":
            self._h2 = H2Client(base, ca_file=ca_file, timeout=timeout)
        else:
            # HTTP/1.1: one connection per concurrent request, kept alive between requests.
            self._h1 = httpx.Client(base_url=base, http1=True, http2=False, verify=ca_file or True,
                                    timeout=timeout, limits=httpx.Limits(max_connections=None,
                                                                         max_keepalive_connections=None))

    def post(self, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, bytes]:
        if self.http == "2":
            r = self._h2.request("POST", path, headers, body)
            return r.status, r.body
        r1 = self._h1.post(path, headers=headers, content=body)
        return r1.status_code, r1.content


class _Shared:
    transport: _Transport | None = None
    auth: FcmAccessTokens | None = None
    path = ""


def _shared(environment: Any) -> type[_Shared]:
    if _Shared.transport is None:
        o = common.options(environment)
        ep = common.endpoints(environment)
        fcm = ep["fcm"]
        base = fcm["h2c_url"] if o.fcm_transport == "h2c" else fcm["url"]
        _Shared.transport = _Transport(base, o.fcm_http, ep.get("ca_file"), o.request_timeout)

        def on_fetch(seconds: float, exc: Exception | None) -> None:
            environment.events.request.fire(request_type="OAUTH", name="token", response_time=seconds * 1000,
                                            response_length=0, exception=exc, context={})
        _Shared.auth = FcmAccessTokens(fcm["service_account_file"], ca_file=ep.get("ca_file"), on_fetch=on_fetch)
        _Shared.path = f"/v1/projects/{o.fcm_project or fcm['project_id']}/messages:send"
    return _Shared


class FcmUser(User):
    """Sends to Android installs from the control API; `--silent-ratio` picks data-only vs notification."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self._shared = _shared(self.environment)
        self._pool = common.token_pool(self.environment, "android")
        self._rng = random.Random()
        self._n = 0

    def _send(self, token: str, silent: bool) -> tuple[int, bytes]:
        access = self._shared.auth.token()
        headers = [("authorization", f"Bearer {access}"), ("content-type", "application/json; charset=UTF-8")]
        self._n += 1
        status, body = self._shared.transport.post(self._shared.path, headers, message(token, silent, self._n))
        if status == 401 and fcm_error(status, body)[1] == "ACCESS_TOKEN_EXPIRED":
            self._shared.auth.invalidate(access)       # refresh once and retry, as PyFCM does
            headers[0] = ("authorization", f"Bearer {self._shared.auth.token()}")
            status, body = self._shared.transport.post(self._shared.path, headers, message(token, silent, self._n))
        return status, body

    @task
    def push(self) -> None:
        o = common.options(self.environment)
        silent = self._rng.random() < o.silent_ratio
        if self._rng.random() < o.bad_token_ratio:
            token = "bogus:" + "%040x" % self._rng.getrandbits(160)
        else:
            token = self._pool.next()
        name = "data" if silent else "notification"
        started = time.perf_counter()
        common.sent_by_platform["android"] += 1
        try:
            status, body = self._send(token, silent)
        except Exception as exc:  # noqa: BLE001 - transport, TLS or OAuth: all count as failed sends
            common.report(self.environment, "FCM", name, started, 0, exc)
            return
        exc = None
        if status != 200:
            code, reason = fcm_error(status, body)
            exc = common.PushRejected(f"{status} {code}" + (f" ({reason})" if reason else ""))
        common.report(self.environment, "FCM", name, started, len(body), exc)
