"""Token-based provider auth (JWT, ES256) and its per-connection rules.

Signature verification costs ~100 µs, so each distinct token string is verified once and the result
(claims, or the reason it is invalid) is cached by the raw header bytes; the per-request path is a
dict lookup plus the time rules. All time comes in as an argument (seconds since the epoch).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

TOKEN_LIFETIME = 3600.0       # iat older than this → ExpiredProviderToken
REFRESH_INTERVAL = 1200.0     # a new token sooner than this on one connection → 429
FUTURE_SKEW = 60.0            # iat this far in the future is tolerated (clock drift)
_CACHE_LIMIT = 50_000          # verified tokens remembered (cleared wholesale when full) ...
_CACHE_BYTES = 16 << 20        # ... or when their bytes reach this
# Real provider tokens are a few hundred bytes (ES256 header + iss/iat + 64-byte signature). A
# longer one is answered InvalidProviderToken without parsing, and only tokens up to
# _CACHE_MAX_TOKEN are remembered, so no client can fill the cache with garbage.
MAX_TOKEN_BYTES = 4096
_CACHE_MAX_TOKEN = 1024
_ECDSA = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True, slots=True)
class Key:
    key_id: str
    team_id: str
    public_key: ec.EllipticCurvePublicKey
    environments: frozenset[str]
    topics: frozenset[str] | None     # None: team-scoped key, any topic of the team


@dataclass(frozen=True, slots=True)
class Claims:
    key: Key
    team_id: str
    iat: float


class KeyStore:
    """The provider keys the fake knows, and the cache of tokens already verified against them."""

    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}
        self._verified: dict[bytes, Claims | str] = {}
        self._verified_bytes = 0

    def add(self, key_id: str, team_id: str, public_key: ec.EllipticCurvePublicKey,
            environments: frozenset[str] = frozenset({"sandbox", "production"}),
            topics: frozenset[str] | None = None) -> None:
        self.keys[key_id] = Key(key_id, team_id, public_key, frozenset(environments),
                                None if topics is None else frozenset(topics))
        self._verified.clear()      # a replaced key may change earlier verdicts
        self._verified_bytes = 0

    def verify(self, token: bytes) -> Claims | str:
        """Claims of a well-formed, correctly signed token, else the rejection reason."""
        hit = self._verified.get(token)
        if hit is None:
            n = len(token)
            if n > MAX_TOKEN_BYTES:
                return "InvalidProviderToken"
            hit = self._verify(token)
            if n <= _CACHE_MAX_TOKEN:
                if len(self._verified) >= _CACHE_LIMIT or self._verified_bytes >= _CACHE_BYTES:
                    self._verified.clear()
                    self._verified_bytes = 0
                self._verified[token] = hit
                self._verified_bytes += n
        return hit

    def _verify(self, token: bytes) -> Claims | str:
        try:
            head_b64, claims_b64, sig_b64 = token.split(b".")
            header = orjson.loads(_b64(head_b64))
            claims = orjson.loads(_b64(claims_b64))
            sig = _b64(sig_b64)
        except (ValueError, orjson.JSONDecodeError):
            return "InvalidProviderToken"
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return "InvalidProviderToken"
        key = self.keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
        iss, iat = claims.get("iss"), claims.get("iat")
        if (header.get("alg") != "ES256" or key is None or len(sig) != 64 or not isinstance(iss, str)
                or isinstance(iat, bool) or not isinstance(iat, (int, float))):
            return "InvalidProviderToken"
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            key.public_key.verify(der, head_b64 + b"." + claims_b64, _ECDSA)
        except InvalidSignature:
            return "InvalidProviderToken"
        if iss != key.team_id:
            return "InvalidProviderToken"
        return Claims(key, iss, float(iat))


def _b64(part: bytes) -> bytes:
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


class TokenState:
    """One connection's token-auth state: bound team and key, current token, refresh wedge."""
    __slots__ = ("team_id", "key_id", "token", "claims", "set_at", "unusable_until", "wedged")

    def __init__(self) -> None:
        self.team_id: str | None = None
        self.key_id: str | None = None
        self.token: bytes | None = None
        self.claims: Claims | None = None
        self.set_at = 0.0
        self.unusable_until = 0.0
        self.wedged = False


def check_token(state: TokenState, keys: KeyStore, authorization: bytes | None, now: float,
                environment: str, *, wedge_on_expired: bool = False) -> Claims | str:
    """Authenticate one request on a token-auth connection: claims, or the rejection reason."""
    if now < state.unusable_until:
        # Apple: after TooManyProviderTokenUpdates the connection is unusable until enough time passed.
        return "TooManyProviderTokenUpdates"
    if state.wedged:
        return "ExpiredProviderToken"
    if authorization is None or authorization[:7].lower() != b"bearer ":
        return "MissingProviderToken"
    token = authorization[7:].strip()
    if token == state.token and state.claims is not None:
        claims = state.claims
    else:
        verdict = keys.verify(token)
        if isinstance(verdict, str):
            return verdict
        claims = verdict
        if environment not in claims.key.environments:
            return "BadEnvironmentKeyInToken"
        # The team and key are bound to the connection at its first authenticated push.
        if state.team_id is not None and claims.team_id != state.team_id:
            return "InvalidProviderToken"
        if state.key_id is not None and claims.key.key_id != state.key_id:
            return "UnrelatedKeyIdInToken"
    if claims.iat > now + FUTURE_SKEW:
        return "InvalidProviderToken"
    if now - claims.iat > TOKEN_LIFETIME:
        if wedge_on_expired:
            state.wedged = True
        return "ExpiredProviderToken"
    if token != state.token:
        if state.token is not None and now - state.set_at < REFRESH_INTERVAL:
            state.unusable_until = state.set_at + REFRESH_INTERVAL
            return "TooManyProviderTokenUpdates"
        state.token, state.claims, state.set_at = token, claims, now
        state.team_id, state.key_id = claims.team_id, claims.key.key_id
    return claims
