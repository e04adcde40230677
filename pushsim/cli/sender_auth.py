"""Sender-side credentials, the one place a pushsim tool signs in as a sender would: the APNs
provider token (an ES256 JWT from the .p8 auth key) and the FCM OAuth access token (an RS256
JWT-bearer assertion from the service account, exchanged at its `token_uri`).

Used by `pushsim push` and `pushsim run`, the locust users (loadtests/auth.py) and the benchmarks
(benchmarks/workloads.py). The signing itself is the fakes' own client helpers
(fake_apns.testing.make_jwt, fake_fcm.testing.sign_assertion), which their tests also use to make
good and bad tokens; this module adds reading the state dir's files and the token exchange.
"""
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from fake_apns.testing import make_jwt
from fake_fcm.testing import sign_assertion

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class TokenEndpointError(Exception):
    """The OAuth token endpoint did not give an access token."""


def load_apns_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = load_pem_private_key(pem, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("an APNs auth key is an EC P-256 private key")
    return key


def provider_token(key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str, iat: float | None = None) -> str:
    """The APNs `authorization: bearer …` value: header {alg ES256, kid}, claims {iss, iat}."""
    return make_jwt(key, key_id, team_id, int(time.time() if iat is None else iat)).decode()


def apns_provider_token(apns: Mapping[str, Any], iat: float | None = None) -> str:
    """A provider token from endpoints.json's `apns` section (key_file, key_id, team_id)."""
    key = load_apns_key(Path(apns["key_file"]).read_bytes())
    return provider_token(key, apns["key_id"], apns["team_id"], iat)


def fcm_assertion(service_account: Mapping[str, str], now: float | None = None, aud: str | None = None) -> str:
    """The signed JWT a service account presents to `token_uri` (as google-auth makes it)."""
    return sign_assertion(dict(service_account), time.time() if now is None else now,
                          aud=aud or service_account["token_uri"])


def fcm_access_token(endpoints: Mapping[str, Any], timeout: float = 10.0) -> str:
    """An OAuth access token for FCM from the running server's token endpoint (JWT-bearer grant)."""
    fcm = endpoints["fcm"]
    sa = json.loads(Path(fcm["service_account_file"]).read_text())
    form = urllib.parse.urlencode({"grant_type": JWT_BEARER, "assertion": fcm_assertion(sa)}).encode()
    ca = endpoints.get("ca_file")
    context = ssl.create_default_context(cafile=ca) if ca else None
    request = urllib.request.Request(sa["token_uri"], data=form,
                                     headers={"content-type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as r:
            return str(json.load(r)["access_token"])
    except urllib.error.HTTPError as e:
        raise TokenEndpointError(f"token endpoint said {e.code}: {e.read()[:200]!r}") from None
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        raise TokenEndpointError(f"token endpoint {sa['token_uri']}: {getattr(e, 'reason', e)}") from None
