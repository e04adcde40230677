"""FCM HTTP v1 sending for the load users, free of locust: transports, error parsing, token retry."""
from __future__ import annotations

from typing import Any

import httpx
import orjson

from .h2client import H2Client


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


class Transport:
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


class FcmSender:
    """Sends one message with a cached access token; on 401 ACCESS_TOKEN_EXPIRED it refreshes the
    token once and retries, as PyFCM does (any other 401 is the answer)."""

    def __init__(self, transport: Any, auth: Any, project_id: str) -> None:
        self.transport = transport
        self.auth = auth
        self.path = f"/v1/projects/{project_id}/messages:send"
        self.retries = 0

    def send(self, token: str, silent: bool, n: int = 0) -> tuple[int, bytes]:
        body = message(token, silent, n)
        access = self.auth.token()
        status, resp = self.transport.post(self.path, _headers(access), body)
        if status == 401 and fcm_error(status, resp)[1] == "ACCESS_TOKEN_EXPIRED":
            self.retries += 1
            self.auth.invalidate(access)
            status, resp = self.transport.post(self.path, _headers(self.auth.token()), body)
        return status, resp


def _headers(access: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {access}"), ("content-type", "application/json; charset=UTF-8")]
