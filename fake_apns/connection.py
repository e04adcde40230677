"""Per-connection APNs state and the SETTINGS_MAX_CONCURRENT_STREAMS rules.

Apple: with token auth a connection gets one stream until a request carries a valid token; the limit
is then raised. Observed (openradar 27870881, pushy#732): after any rejection the server announces 1
and restores the full limit after the next accepted notification (`throttle_on_reject`).
"""
from __future__ import annotations

from .auth import TokenState
from .certs import CertAuth, cert_auth_from_der


class ApnsConnection:
    __slots__ = ("cert_der", "cert", "tokens", "max_streams", "id", "sender", "goaway")

    def __init__(self, cert_der: bytes | None, max_streams: int, conn_id: int = 0) -> None:
        self.cert_der = cert_der
        self.id = conn_id                # numbers the connection in the journal
        # Who sends on it: the certificate's subject, or "team_id/key_id" once a token is bound
        # (APNs binds one team and key per connection, so it never changes after that).
        self.sender: str | None = None
        # Parsed once per connection: every request on it shares the same certificate.
        self.cert: CertAuth | None = cert_auth_from_der(cert_der) if cert_der else None
        self.tokens = TokenState()
        self.max_streams = initial_max_streams(cert_der is not None, max_streams)
        self.goaway: object | None = None   # the journal's record of the GOAWAY we sent on it, if any


def initial_max_streams(has_cert: bool, max_streams: int) -> int:
    return max_streams if has_cert else 1


def next_max_streams(conn: ApnsConnection, *, auth_ok: bool, accepted: bool, limit: int,
                     throttle_on_reject: bool) -> int | None:
    """The new limit to announce after a request, or None when it does not change."""
    new = conn.max_streams
    if auth_ok:
        new = limit
    if throttle_on_reject and not accepted:
        new = 1
    if new == conn.max_streams:
        return None
    conn.max_streams = new
    return new
