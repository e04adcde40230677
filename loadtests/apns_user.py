"""Locust user that sends APNs pushes over HTTP/2, many users multiplexed per connection."""
from __future__ import annotations

import itertools
import random
import time
import uuid
from typing import Any

import orjson
from locust import User, constant, task

from . import common
from .auth import ProviderTokens
from .h2client import H2Client, H2Error

ALERT = orjson.dumps({"aps": {"alert": {"title": "pushsim", "body": "load test"}, "sound": "default"}})
SILENT = orjson.dumps({"aps": {"content-available": 1}, "kind": "sync"})


class _Shared:
    """Per-process state: connections and the provider token every connection presents."""
    clients: list[H2Client] | None = None
    tokens: ProviderTokens | None = None
    cert = False
    next_client = itertools.count()


def _shared(environment: Any) -> type[_Shared]:
    if _Shared.clients is None:
        o = common.options(environment)
        ep = common.endpoints(environment)
        apns = ep["apns"]
        url = apns["h2c_url"] if o.apns_transport == "h2c" else apns["url"]
        _Shared.tokens = ProviderTokens.from_file(apns["key_file"], apns["key_id"], apns["team_id"])
        cert = (apns["client_cert"], apns["client_key"]) if o.apns_auth == "cert" else None
        if cert and o.apns_transport != "tls":
            raise RuntimeError("--apns-auth cert needs --apns-transport tls (the certificate is a TLS one)")
        _Shared.cert = cert is not None
        _Shared.clients = [H2Client(url, ca_file=ep.get("ca_file"), cert=cert, timeout=o.request_timeout)
                           for _ in range(max(1, o.apns_connections))]
    return _Shared


def random_bad_token(rng: random.Random) -> str:
    """Well-formed (64 hex) but never issued by the fleet."""
    return "%064x" % rng.getrandbits(256)


def apns_reason(status: int, body: bytes) -> str:
    try:
        return str(orjson.loads(body).get("reason", "")) or f"HTTP {status}"
    except (orjson.JSONDecodeError, AttributeError):
        return f"HTTP {status} (no JSON reason)"


class ApnsUser(User):
    """Pushes to iOS installs from the control API; `--silent-ratio` picks background vs alert."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self._shared = _shared(self.environment)
        self._client = self._shared.clients[next(self._shared.next_client) % len(self._shared.clients)]
        o = common.options(self.environment)
        self._topic = o.apns_topic or common.endpoints(self.environment)["apns"]["topic"]
        self._pool = common.token_pool(self.environment, "ios")
        self._rng = random.Random()

    @task
    def push(self) -> None:
        o = common.options(self.environment)
        silent = self._rng.random() < o.silent_ratio
        token = random_bad_token(self._rng) if self._rng.random() < o.bad_token_ratio else self._pool.next()
        headers = [] if self._shared.cert else [("authorization", self._shared.tokens.header())]
        headers += [
            ("apns-topic", self._topic),
            ("apns-push-type", "background" if silent else "alert"),
            ("apns-priority", "5" if silent else "10"),
            ("apns-id", str(uuid.uuid4())),
            ("apns-expiration", "0"),
        ]
        body = SILENT if silent else ALERT
        name = "background" if silent else "alert"
        started = time.perf_counter()
        common.sent_by_platform["ios"] += 1
        try:
            try:
                resp = self._client.request("POST", f"/3/device/{token}", headers, body)
            except H2Error as exc:
                if not exc.retryable:
                    raise
                # Refused by GOAWAY or REFUSED_STREAM: APNs never saw it, so retry once (a fresh
                # connection if the old one is going away), as pushy and node-apn do.
                resp = self._client.request("POST", f"/3/device/{token}", headers, body)
        except H2Error as exc:
            common.report(self.environment, "APNS", name, started, 0, exc)
            return
        if resp.status == 200:
            common.report(self.environment, "APNS", name, started, len(resp.body), None)
            return
        reason = apns_reason(resp.status, resp.body)
        common.report(self.environment, "APNS", name, started, len(resp.body),
                      common.PushRejected(f"{resp.status} {reason}"))
        if reason in ("ExpiredProviderToken", "TooManyProviderTokenUpdates"):
            # Apple's server wedges the connection after these: fresh token (if allowed), new connection.
            self._shared.tokens.expire()
            self._client.close()
