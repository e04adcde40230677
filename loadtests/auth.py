"""Credentials the load users present: APNs provider tokens (ES256 JWT) and FCM OAuth access tokens.

`ProviderTokens` is clock-driven and free of I/O, so its refresh rule is unit-tested directly; it
signs with pushsim's sender-side credentials (pushsim/cli/sender_auth.py), as every pushsim tool does.
`FcmAccessTokens` deliberately uses google-auth instead, the library real Python senders use, so the
load test exercises the token endpoint the way a real sender's OAuth client does.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

from pushsim.cli.sender_auth import load_apns_key, provider_token

# Apple: refresh no more than once every 20 minutes and no less than once every 60 minutes.
MIN_REFRESH_S = 20 * 60
REFRESH_WINDOW_S = (30 * 60, 50 * 60)


@dataclass(slots=True)
class _Issued:
    value: str
    iat: float
    lifetime: float


class ProviderTokens:
    """The APNs `authorization` header for one provider key, shared by a process's connections.

    Each token lives a random 30–50 min (so many load processes do not refresh in lock-step), and a
    forced refresh (after ExpiredProviderToken) is refused while the token is younger than 20 min,
    so no connection ever sees two new tokens within 20 min.
    """

    def __init__(self, key_pem: bytes, key_id: str, team_id: str, *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 window: tuple[float, float] = REFRESH_WINDOW_S) -> None:
        self._key = load_apns_key(key_pem)
        self.key_id = key_id
        self.team_id = team_id
        self._clock = clock
        self._rng = rng or random.Random()
        self._window = window
        self._issued: _Issued | None = None
        self.issued_count = 0
        # ES256 signatures are randomised: two racing issuers would put two different "new" tokens
        # on one connection, and APNs answers TooManyProviderTokenUpdates.
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, key_file: str, key_id: str, team_id: str, **kw) -> "ProviderTokens":
        with open(key_file, "rb") as f:
            return cls(f.read(), key_id, team_id, **kw)

    def _issue(self, now: float) -> _Issued:
        value = provider_token(self._key, self.key_id, self.team_id, now)
        self.issued_count += 1
        self._issued = _Issued(value, now, self._rng.uniform(*self._window))
        return self._issued

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            issued = self._issued
            if issued is None or now - issued.iat >= issued.lifetime:
                issued = self._issue(now)
            return issued.value

    def header(self) -> str:
        return "bearer " + self.token()

    def expire(self) -> bool:
        """Ask for a fresh token on the next request; refused (False) within 20 min of the last."""
        with self._lock:
            issued = self._issued
            if issued is None or self._clock() - issued.iat < MIN_REFRESH_S:
                return False
            issued.lifetime = 0.0
            return True


FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


class FcmAccessTokens:
    """OAuth2 access tokens for the FCM user, cached until near expiry (google-auth's own margin).

    `on_fetch(seconds, error)` is told about every token request, so the locust user can report
    the token endpoint as its own request type.
    """

    def __init__(self, service_account_file: str, *, ca_file: str | None,
                 on_fetch: Callable[[float, Exception | None], None] | None = None) -> None:
        import google.auth.transport.requests
        import requests
        from google.oauth2 import service_account

        self._creds = service_account.Credentials.from_service_account_file(
            service_account_file, scopes=[FCM_SCOPE])
        session = requests.Session()
        if ca_file:
            session.verify = ca_file
            session.trust_env = False      # else REQUESTS_CA_BUNDLE silently replaces our CA
        self._request = google.auth.transport.requests.Request(session=session)
        self._on_fetch = on_fetch
        self.fetches = 0
        import gevent.lock
        self._lock = gevent.lock.Semaphore()

    def _refresh(self) -> None:
        t0 = time.perf_counter()
        try:
            self._creds.refresh(self._request)
        except Exception as exc:
            if self._on_fetch:
                self._on_fetch(time.perf_counter() - t0, exc)
            raise
        self.fetches += 1
        if self._on_fetch:
            self._on_fetch(time.perf_counter() - t0, None)

    def token(self) -> str:
        if not self._creds.valid:
            with self._lock:            # one refresh for all greenlets that found it stale
                if not self._creds.valid:
                    self._refresh()
        return self._creds.token

    def invalidate(self, stale_token: str) -> None:
        """The server said ACCESS_TOKEN_EXPIRED for `stale_token`: refresh unless someone did."""
        with self._lock:
            if self._creds.token == stale_token:
                self._refresh()
