"""FCM HTTP v1 sending for the load users, free of locust: transports, error parsing, token retry."""
from __future__ import annotations

from typing import Any

import http.client
import ssl
from urllib.parse import urlsplit

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


class H2Transport:
    """HTTP/2: every greenlet of the process multiplexed on one shared connection."""

    def __init__(self, base: str, ca_file: str | None, timeout: float) -> None:
        self._h2 = H2Client(base, ca_file=ca_file, timeout=timeout)

    def post(self, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, bytes]:
        r = self._h2.request("POST", path, headers, body)
        return r.status, r.body


class H1Transport:
    """HTTP/1.1: one keep-alive connection per user, as a real HTTP/1.1 sender has per worker.

    stdlib http.client rather than a shared httpx pool: under gevent the pool measured 10-20x
    slower with 50 greenlets (94-308 vs 1815-2464 req/s, docs/loadtests.md)."""

    def __init__(self, base: str, ca_file: str | None, timeout: float) -> None:
        parts = urlsplit(base)
        self._host, self._timeout = parts.hostname or "127.0.0.1", timeout
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._ctx: ssl.SSLContext | None = None
        if self._tls:
            self._ctx = ssl.create_default_context(cafile=ca_file)
            self._ctx.set_alpn_protocols(["http/1.1"])
        self._conn: http.client.HTTPConnection | None = None
        self._used = False

    def _connect(self) -> http.client.HTTPConnection:
        if self._tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._ctx)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        self._used = False
        return conn

    def post(self, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = self._connect()
            reused = self._used
            try:
                self._conn.request("POST", path, body=body, headers=dict(headers))
                resp = self._conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 0:
                    continue        # the server closed an idle keep-alive connection: retry fresh
                raise
            except Exception:
                self.close()
                raise
            self._used = True
            if resp.will_close:
                self.close()
            return resp.status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


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
