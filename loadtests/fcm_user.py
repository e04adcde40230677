"""Locust user that sends FCM HTTP v1 messages over HTTP/2 (shared connection) or HTTP/1.1."""
from __future__ import annotations

import random
import time
from typing import Any

from locust import User, constant, task

from . import common
from .auth import FcmAccessTokens
from .fcm_client import FcmSender, H1Transport, H2Transport, fcm_error


class _Shared:
    auth: FcmAccessTokens | None = None
    h2: H2Transport | None = None


def _sender(environment: Any) -> FcmSender:
    """A sender per user: the access token and the HTTP/2 connection are per process, an
    HTTP/1.1 connection is the user's own."""
    o = common.options(environment)
    ep = common.endpoints(environment)
    fcm = ep["fcm"]
    base = fcm["h2c_url"] if o.fcm_transport == "h2c" else fcm["url"]
    if _Shared.auth is None:
        def on_fetch(seconds: float, exc: Exception | None) -> None:
            environment.events.request.fire(request_type="OAUTH", name="token", response_time=seconds * 1000,
                                            response_length=0, exception=exc, context={})
        _Shared.auth = FcmAccessTokens(fcm["service_account_file"], ca_file=ep.get("ca_file"), on_fetch=on_fetch)
    if o.fcm_http == "2":
        if _Shared.h2 is None:
            _Shared.h2 = H2Transport(base, ep.get("ca_file"), o.request_timeout)
        transport: Any = _Shared.h2
    else:
        transport = H1Transport(base, ep.get("ca_file"), o.request_timeout)
    return FcmSender(transport, _Shared.auth, o.fcm_project or fcm["project_id"])


class FcmUser(User):
    """Sends to Android installs from the control API; `--silent-ratio` picks data-only vs notification."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self._shared = _sender(self.environment)
        self._pool = common.token_pool(self.environment, "android")
        self._rng = random.Random()
        self._n = 0

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
            self._n += 1
            status, body = self._shared.send(token, silent, self._n)
        except Exception as exc:  # noqa: BLE001 - transport, TLS or OAuth: all count as failed sends
            common.report(self.environment, "FCM", name, started, 0, exc)
            return
        exc = None
        if status != 200:
            code, reason = fcm_error(status, body)
            exc = common.PushRejected(f"{status} {code}" + (f" ({reason})" if reason else ""))
        common.report(self.environment, "FCM", name, started, len(body), exc)

    def on_stop(self) -> None:
        if isinstance(self._shared.transport, H1Transport):
            self._shared.transport.close()
