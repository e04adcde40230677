"""The JWT-bearer grant and access-token checks, on a fixed clock."""
from __future__ import annotations

from urllib.parse import urlencode

import orjson
import pytest

from fake_fcm.errors import FcmFailure
from fake_fcm.oauth import GOOGLE_TOKEN_URL, JWT_BEARER, AccessToken, ServiceAccount, TokenAuthority
from fake_fcm.testing import make_service_account, sign_assertion

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def info() -> dict[str, str]:
    return make_service_account()


@pytest.fixture
def authority(info: dict[str, str]) -> TokenAuthority:
    a = TokenAuthority(ttl=3599)
    a.add_account(ServiceAccount.from_info(info))
    return a


def form(assertion: str, grant_type: str = JWT_BEARER) -> bytes:
    return urlencode({"grant_type": grant_type, "assertion": assertion}).encode()


def test_grant_returns_a_bearer_token_usable_for_sends(authority: TokenAuthority, info: dict) -> None:
    r = authority.grant(form(sign_assertion(info, NOW)), NOW)
    assert r.status == 200 and r.error is None
    body = orjson.loads(r.body)
    assert body["expires_in"] == 3599 and body["token_type"] == "Bearer"
    grant = authority.check(b"Bearer " + body["access_token"].encode(), NOW + 3598)
    assert isinstance(grant, AccessToken)
    expired = authority.check(b"Bearer " + body["access_token"].encode(), NOW + 3599)
    assert isinstance(expired, FcmFailure) and expired.reason == "ACCESS_TOKEN_EXPIRED"
    detail = orjson.loads(expired.body)["error"]["details"][0]
    assert detail["reason"] == "ACCESS_TOKEN_EXPIRED" and detail["@type"].endswith("google.rpc.ErrorInfo")


def test_many_tokens_valid_at_once(authority: TokenAuthority, info: dict) -> None:
    toks = [orjson.loads(authority.grant(form(sign_assertion(info, NOW)), NOW).body)["access_token"]
            for _ in range(3)]
    assert len(set(toks)) == 3
    assert all(isinstance(authority.check(f"Bearer {t}".encode(), NOW + 10), AccessToken) for t in toks)


def test_own_url_is_an_accepted_audience(authority: TokenAuthority, info: dict) -> None:
    own = "https://127.0.0.1:4433/token"
    assert authority.grant(form(sign_assertion(info, NOW, aud=own)), NOW, own).status == 200
    r = authority.grant(form(sign_assertion(info, NOW, aud=own)), NOW, "https://127.0.0.1:9/token")
    assert (r.status, r.error) == (400, "invalid_grant")
    assert b"Failed audience check" in r.body


def _error(authority: TokenAuthority, body: bytes) -> tuple[int, str, str]:
    r = authority.grant(body, NOW)
    d = orjson.loads(r.body)
    assert set(d) == {"error", "error_description"}
    return r.status, d["error"], d["error_description"]


def test_grant_errors(authority: TokenAuthority, info: dict) -> None:
    other = make_service_account(key_id="ffff")
    other["client_email"] = info["client_email"]          # same account name, wrong key
    cases = {
        b"": (400, "invalid_request"),
        urlencode({"grant_type": JWT_BEARER}).encode(): (400, "invalid_request"),
        form("x", "client_credentials"): (400, "unsupported_grant_type"),
        form("a.b"): (400, "invalid_grant"),
        form("a.b.c"): (400, "invalid_grant"),
        form(sign_assertion(other, NOW, header={"kid": info["private_key_id"]})): (400, "invalid_grant"),
        form(sign_assertion(info, NOW, header={"alg": "HS256"})): (400, "invalid_grant"),
        form(sign_assertion(info, NOW, claims={"iss": "nobody@x"})): (400, "invalid_grant"),
        form(sign_assertion(info, NOW, aud="https://evil.example/token")): (400, "invalid_grant"),
        form(sign_assertion(info, NOW - 7200)): (400, "invalid_grant"),            # long expired
        form(sign_assertion(info, NOW, lifetime=7200)): (400, "invalid_grant"),    # not short-lived
        form(sign_assertion(info, NOW + 3000)): (400, "invalid_grant"),            # issued in the future
        form(sign_assertion(info, NOW, scope=None)): (400, "invalid_scope"),
        form(sign_assertion(info, NOW, claims={"exp": "soon"})): (400, "invalid_grant"),
    }
    for body, expected in cases.items():
        status, code, _ = _error(authority, body)
        assert (status, code) == expected, body[:80]


def test_tampered_signature(authority: TokenAuthority, info: dict) -> None:
    jwt = sign_assertion(info, NOW)
    head, claims, sig = jwt.split(".")
    forged = sign_assertion(info, NOW, claims={"iss": info["client_email"], "scope": "x y"}).split(".")[1]
    assert _error(authority, form(f"{head}.{forged}.{sig}"))[2] == "Invalid JWT Signature."


def test_scope_without_messaging_is_403(authority: TokenAuthority, info: dict) -> None:
    r = authority.grant(form(sign_assertion(info, NOW, scope="https://www.googleapis.com/auth/userinfo.email")), NOW)
    tok = orjson.loads(r.body)["access_token"]
    f = authority.check(f"Bearer {tok}".encode(), NOW)
    assert isinstance(f, FcmFailure) and f.status == 403


@pytest.mark.parametrize("header,reason", [(None, "CREDENTIALS_MISSING"), (b"", "CREDENTIALS_MISSING"),
                                           (b"Bearer nope", "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
                                           (b"key=AAAA", "CREDENTIALS_MISSING")])
def test_check_failures(authority: TokenAuthority, header: bytes | None, reason: str) -> None:
    f = authority.check(header, NOW)
    assert isinstance(f, FcmFailure) and f.status == 401 and f.reason == reason
    if reason == "CREDENTIALS_MISSING":
        assert orjson.loads(f.body)["error"]["message"].startswith(
            "Request is missing required authentication credential.")


def test_google_audience_default(authority: TokenAuthority) -> None:
    assert GOOGLE_TOKEN_URL in authority.audiences


def test_self_signed_jwt_as_bearer(authority: TokenAuthority, info: dict) -> None:
    jwt = sign_assertion(info, NOW, aud="https://fcm.googleapis.com/", scope=None)
    assert isinstance(authority.check(f"Bearer {jwt}".encode(), NOW + 10), AccessToken)
    expired = authority.check(f"Bearer {jwt}".encode(), NOW + 3600)
    assert isinstance(expired, FcmFailure) and expired.reason == "ACCESS_TOKEN_EXPIRED"
    scoped = sign_assertion(info, NOW, aud="x")        # no FCM audience, but the messaging scope
    assert isinstance(authority.check(f"Bearer {scoped}".encode(), NOW), AccessToken)
    other = make_service_account(key_id="ffff")
    other["client_email"] = info["client_email"]
    forged = sign_assertion(other, NOW, aud="https://fcm.googleapis.com/", header={"kid": info["private_key_id"]})
    f = authority.check(f"Bearer {forged}".encode(), NOW)
    assert isinstance(f, FcmFailure) and f.status == 401


def test_own_token_url_from_request_headers() -> None:
    from pushsim.services.oauth import own_token_url

    assert own_token_url([(b":scheme", b"https:"), (b":authority", b"127.0.0.1:4433")], True) == \
        "https://127.0.0.1:4433/token"                       # some SDKs send "https:" as :scheme
    assert own_token_url([(b"host", b"localhost:80")], False) == "http://localhost:80/token"
    assert own_token_url([], True) is None
