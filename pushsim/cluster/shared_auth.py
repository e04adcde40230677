"""OAuth access tokens every worker can verify, without replicating a token table.

A single-process server keeps random tokens in a dict. With N workers a client may get its token
from one worker and send on a connection served by another, so in cluster mode a token carries its
own grant (expiry, account, FCM scope) with an HMAC under a secret the hub makes before forking.
A worker that does not know a token checks the MAC and adopts the grant (TokenAuthority.sealer).
Only the miss path pays.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from typing import Any

from fake_fcm.oauth import AccessToken

PREFIX = "ya29.c."
_HEAD = struct.Struct(">dB8s")      # expires_at, fcm_scope, nonce
_MAC = 16


class SharedTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC]

    def mint(self, grant: AccessToken) -> str:
        payload = _HEAD.pack(grant.expires_at, grant.fcm_scope, os.urandom(8)) + grant.client_email.encode()
        return PREFIX + base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def read(self, token: str) -> AccessToken | None:
        if not token.startswith(PREFIX):
            return None
        body = token[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) < _HEAD.size + _MAC:
            return None
        payload, mac = raw[:-_MAC], raw[-_MAC:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        expires_at, fcm, _ = _HEAD.unpack_from(payload)
        try:
            email = payload[_HEAD.size:].decode()
        except UnicodeDecodeError:
            return None
        return AccessToken(expires_at, email, bool(fcm))


def share_tokens(authority: Any, secret: bytes) -> None:
    """Make `authority` (a fake_fcm TokenAuthority) issue and accept cluster-wide tokens."""
    authority.sealer = SharedTokens(secret)
