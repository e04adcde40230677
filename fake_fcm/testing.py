"""Helpers for tests and tools: a throwaway service account and JWT-bearer assertions signed by it."""
from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .oauth import GOOGLE_TOKEN_URL

MESSAGING_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def make_service_account(project_id: str = "pushsim-project", token_uri: str = GOOGLE_TOKEN_URL,
                         key_id: str = "0123456789abcdef0123456789abcdef01234567") -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    email = f"firebase-adminsdk-test@{project_id}.iam.gserviceaccount.com"
    return {"type": "service_account", "project_id": project_id, "private_key_id": key_id, "private_key": pem,
            "client_email": email, "client_id": "100000000000000000001", "token_uri": token_uri}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_assertion(info: dict[str, str], now: float, *, aud: str = GOOGLE_TOKEN_URL,
                   scope: str | None = MESSAGING_SCOPE, lifetime: int = 3600,
                   header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None) -> str:
    """An RS256 JWT as google-auth builds it; `header`/`claims` override fields to make bad ones."""
    h: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "kid": info["private_key_id"]}
    h.update(header or {})
    c: dict[str, Any] = {"iss": info["client_email"], "aud": aud, "iat": int(now), "exp": int(now) + lifetime}
    if scope is not None:
        c["scope"] = scope
    c.update(claims or {})
    signing_input = f"{_b64(json.dumps(h).encode())}.{_b64(json.dumps(c).encode())}"
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(sig)}"
