"""The OAuth2 JWT-bearer grant Google's token endpoint runs for service accounts, and access tokens.

A sender signs a JWT (RS256, `kid` = the key's `private_key_id`, `iss` = `client_email`) and posts
it form-encoded; it gets an opaque access token that FCM then checks on every send. Many tokens
may be valid at once, each with its own expiry on protocol (wall) time.
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol
from urllib.parse import parse_qs

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import errors
from .errors import FcmFailure

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_SCOPES = frozenset({"https://www.googleapis.com/auth/firebase.messaging",
                        "https://www.googleapis.com/auth/cloud-platform"})
SELF_SIGNED_AUDIENCES = frozenset({"https://fcm.googleapis.com/", "https://fcm.googleapis.com"})
MAX_ASSERTION_LIFETIME = 3600
CLOCK_SKEW = 300          # seconds of leeway on iat/exp, as Google's endpoint allows some
_JSON = [(b"content-type", b"application/json; charset=utf-8"), (b"cache-control", b"no-store")]


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    key_id: str
    public_key: rsa.RSAPublicKey
    project_id: str

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "ServiceAccount":
        """From a service-account JSON document (the private key is read only to derive the public one)."""
        key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("service account key must be RSA")
        return cls(info["client_email"], info["private_key_id"], key.public_key(), info.get("project_id", ""))

    @classmethod
    def from_file(cls, path: str | Path) -> "ServiceAccount":
        return cls.from_info(orjson.loads(Path(path).read_bytes()))


@dataclass(slots=True)
class AccessToken:
    expires_at: float
    client_email: str
    fcm_scope: bool                      # carries a scope that allows messages:send


@dataclass(slots=True)
class GrantResult:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]
    error: str | None                    # the OAuth error code; None when a token was issued


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _oauth_error(error: str, description: str, status: int = 400) -> GrantResult:
    return GrantResult(status, orjson.dumps({"error": error, "error_description": description}), list(_JSON), error)


_BAD_SIGNATURE = ("invalid_grant", "Invalid JWT Signature.")
_BAD_TIME = ("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
             "timeframe. Check your iat and exp values in the JWT claim.")


class TokenSealer(Protocol):
    """Tokens that carry their own grant, so that other processes can verify them (see
    pushsim.cluster.shared_auth)."""
    def mint(self, grant: AccessToken) -> str: ...
    def read(self, token: str) -> AccessToken | None: ...


class TokenAuthority:
    def __init__(self, *, ttl: int | Callable[[], int] = 3599, token_bytes: int = 48,
                 sealer: TokenSealer | None = None) -> None:
        self._ttl = ttl
        self._token_bytes = token_bytes
        self.sealer = sealer        # None: random tokens, known only to this authority
        self.accounts: dict[str, ServiceAccount] = {}      # client_email → account
        self.audiences: set[str] = {GOOGLE_TOKEN_URL}
        self.tokens: dict[str, AccessToken] = {}
        self._by_header: dict[bytes, AccessToken] = {}     # the raw `authorization` value → its grant
        self._issued_since_sweep = 0

    @property
    def ttl(self) -> int:
        return self._ttl() if callable(self._ttl) else self._ttl

    def add_account(self, account: ServiceAccount) -> None:
        self.accounts[account.client_email] = account

    # grant ----------------------------------------------------------------------------------
    def grant(self, body: bytes, now: float, own_url: str | None = None) -> GrantResult:
        """POST /token with a form-encoded body. Never raises."""
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return _oauth_error("invalid_request", "Invalid request body.")
        grant_type = (form.get("grant_type") or [""])[-1]
        if not grant_type:
            return _oauth_error("invalid_request", "Missing required parameter: grant_type")
        if grant_type != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type[:100]}")
        assertion = (form.get("assertion") or [""])[-1]
        if not assertion:
            return _oauth_error("invalid_request", "Missing required parameter: assertion")
        return self._assert(assertion, now, own_url)

    def _assert(self, assertion: str, now: float, own_url: str | None) -> GrantResult:
        parts = assertion.split(".")
        if len(parts) != 3:
            return _oauth_error("invalid_grant", "Invalid JWT: not a three-part compact serialization.")
        try:
            header = orjson.loads(_b64(parts[0]))
            claims = orjson.loads(_b64(parts[1]))
            signature = _b64(parts[2])
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            return _oauth_error(*_BAD_SIGNATURE)
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            return _oauth_error(*_BAD_SIGNATURE)
        account = self.accounts.get(claims.get("iss")) if isinstance(claims.get("iss"), str) else None
        if account is None:
            return _oauth_error("invalid_grant", "Invalid grant: account not found")
        kid = header.get("kid")
        if kid is not None and kid != account.key_id:
            return _oauth_error(*_BAD_SIGNATURE)
        try:
            account.public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"),
                                      padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, UnicodeEncodeError, ValueError):
            return _oauth_error(*_BAD_SIGNATURE)
        aud = claims.get("aud")
        if aud not in self.audiences and (own_url is None or aud != own_url):
            return _oauth_error("invalid_grant", "Invalid JWT: Failed audience check. The right audience is "
                                + GOOGLE_TOKEN_URL)
        iat, exp = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (iat, exp)):
            return _oauth_error(*_BAD_TIME)
        if exp <= iat or exp - iat > MAX_ASSERTION_LIFETIME or exp < now - CLOCK_SKEW or iat > now + CLOCK_SKEW:
            return _oauth_error(*_BAD_TIME)
        scope = claims.get("scope")
        scopes = set(scope.split()) if isinstance(scope, str) else set()
        if not scopes:
            return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        ttl = self.ttl
        token = self.issue(account.client_email, bool(scopes & FCM_SCOPES), now, ttl)
        return GrantResult(200, orjson.dumps({"access_token": token, "expires_in": ttl, "token_type": "Bearer"}),
                           list(_JSON), None)

    def issue(self, client_email: str, fcm_scope: bool, now: float, ttl: int | None = None) -> str:
        """Mint an access token directly (tests and tools that skip the JWT dance)."""
        grant = AccessToken(now + (self.ttl if ttl is None else ttl), client_email, fcm_scope)
        if self.sealer is not None:
            token = self.sealer.mint(grant)
        else:
            token = "ya29.c." + base64.urlsafe_b64encode(os.urandom(self._token_bytes)).rstrip(b"=").decode()
        self.tokens[token] = grant
        self._issued_since_sweep += 1
        if self._issued_since_sweep >= 1024:
            self._sweep(now)
        return token

    def expire_all(self, now: float) -> int:
        """Age every live access token to expiry now (a client still holding one gets ACCESS_TOKEN_EXPIRED)."""
        n = 0
        for grant in self.tokens.values():
            if grant.expires_at > now:
                grant.expires_at, n = now, n + 1
        return n

    def _self_signed(self, jwt: str) -> AccessToken | None:
        """A bearer JWT signed by a service account itself (google-auth's `always_use_jwt_access`)."""
        claims = self._verified_claims(jwt)
        if not isinstance(claims, dict):
            return None
        exp, aud, scope = claims.get("exp"), claims.get("aud"), claims.get("scope")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            return None
        scopes = set(scope.split()) if isinstance(scope, str) else set()
        fcm = bool(scopes & FCM_SCOPES) or aud in SELF_SIGNED_AUDIENCES
        return AccessToken(float(exp), str(claims.get("iss")), fcm)

    def _verified_claims(self, jwt: str) -> dict[str, Any] | None:
        parts = jwt.split(".")
        try:
            header = orjson.loads(_b64(parts[0]))
            claims = orjson.loads(_b64(parts[1]))
            signature = _b64(parts[2])
        except (ValueError, binascii.Error, orjson.JSONDecodeError, IndexError):
            return None
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            return None
        iss = claims.get("iss")
        account = self.accounts.get(iss) if isinstance(iss, str) else None
        if account is None or header.get("kid", account.key_id) != account.key_id:
            return None
        try:
            account.public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"),
                                      padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, UnicodeEncodeError, ValueError):
            return None
        return claims

    def _sweep(self, now: float) -> None:
        # Expired tokens are kept for a while (one hour) so they still answer ACCESS_TOKEN_EXPIRED.
        self._issued_since_sweep = 0
        dead = [t for t, a in self.tokens.items() if a.expires_at < now - 3600]
        for t in dead:
            del self.tokens[t]
        self._by_header.clear()

    # check ----------------------------------------------------------------------------------
    def check(self, authorization: bytes | None, now: float) -> AccessToken | FcmFailure:
        """The `authorization` header of a send → the token's grant, or the 401/403 FCM answers."""
        grant = self._by_header.get(authorization) if authorization else None    # type: ignore[arg-type]
        if grant is not None and now < grant.expires_at and grant.fcm_scope:
            return grant
        if not authorization:
            return errors.missing_credential()
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return errors.missing_credential() if scheme.lower() != b"bearer" else errors.invalid_credential()
        text = token.strip().decode("latin-1")
        grant = self.tokens.get(text)
        if grant is None and self.sealer is not None:
            grant = self.sealer.read(text)      # issued by another process sharing the seal
            if grant is not None:
                self.tokens[text] = grant
        if grant is None and text.count(".") == 2:
            grant = self._self_signed(text)
        if grant is None:
            return errors.invalid_credential()
        if now >= grant.expires_at:
            return errors.access_token_expired()
        if not grant.fcm_scope:
            return errors.insufficient_scopes()
        if len(self._by_header) > 4 * len(self.tokens) + 1024:
            self._by_header.clear()
        self._by_header[authorization] = grant
        return grant
