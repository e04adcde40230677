"""Sender-side credentials (pushsim/cli/sender_auth.py), checked with PyJWT as an independent verifier."""
from __future__ import annotations

import jwt
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from fake_apns.testing import new_key
from fake_fcm.testing import MESSAGING_SCOPE, make_service_account
from pushsim.cli.sender_auth import apns_provider_token, fcm_assertion, load_apns_key, provider_token


def test_provider_token_is_es256_with_kid_iss_and_iat(tmp_path):
    key = new_key()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp_path / "k.p8").write_bytes(pem)
    for tok in (provider_token(load_apns_key(pem), "KEYID12345", "TEAMID1234", 1_700_000_000),
                apns_provider_token({"key_file": str(tmp_path / "k.p8"), "key_id": "KEYID12345",
                                     "team_id": "TEAMID1234"}, 1_700_000_000)):
        assert jwt.get_unverified_header(tok) == {"alg": "ES256", "kid": "KEYID12345"}
        claims = jwt.decode(tok, key.public_key(), algorithms=["ES256"], options={"verify_iat": False})
        assert claims == {"iss": "TEAMID1234", "iat": 1_700_000_000}


def test_fcm_assertion_is_rs256_for_the_token_uri():
    sa = make_service_account(token_uri="https://127.0.0.1:1/token")
    tok = fcm_assertion(sa, now=1_700_000_000)
    public = load_pem_private_key(sa["private_key"].encode(), None).public_key()
    claims = jwt.decode(tok, public, algorithms=["RS256"], audience="https://127.0.0.1:1/token",
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == sa["client_email"] and claims["scope"] == MESSAGING_SCOPE
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(tok)["kid"] == sa["private_key_id"]
