"""The OAuth2 token endpoint on the FCM port (`POST /token`), in front of `fake_fcm.oauth`."""
from __future__ import annotations

from fake_fcm.oauth import TokenAuthority
from pushsim.edge.types import Headers, Reply
from pushsim.testbed import Testbed

TOKEN_PATHS = frozenset({b"/token", b"/oauth2/v4/token", b"/o/oauth2/token"})


def own_token_url(headers: Headers, tls: bool) -> str | None:
    """The URL this request reached, as a sender's `token_uri` would name it (a valid JWT `aud`)."""
    scheme, authority = (b"https" if tls else b"http"), None
    for name, value in headers:
        if name == b":authority" or (name == b"host" and authority is None):
            authority = value
        elif name == b":scheme" and value.rstrip(b":") in (b"http", b"https"):
            scheme = value.rstrip(b":")
    if authority is None:
        return None
    return f"{scheme.decode()}://{authority.decode('latin-1')}/token"


class OAuthService:
    def __init__(self, testbed: Testbed, authority: TokenAuthority) -> None:
        self.testbed = testbed
        self.authority = authority

    def handle(self, tls: bool, path: str, headers: Headers, body: bytes) -> Reply:
        now = self.testbed.now()
        result = self.authority.grant(body, now, own_token_url(headers, tls))
        self.testbed.journal.add(now, "oauth", "POST", path, None, result.status, result.error, None)
        return Reply(result.status, result.headers, result.body)
