"""Token auth under a controllable clock: lifetime, refresh rate, binding, float iat, environments, caching."""
from __future__ import annotations

import orjson
import pytest

from fake_apns.auth import KeyStore
from fake_apns.testing import make_jwt, new_key
from pushsim.services.apns import ApnsService
from test_apns_world import T0, TEAM, World, reason_of


def test_token_is_valid_up_to_exactly_one_hour_after_iat():
    w = World()
    c = w.conn()
    tok = w.jwt(iat=T0)
    w.clock.t = T0 + 3600
    assert w.send(c, auth=tok).status == 200
    w.clock.t = T0 + 3600.001
    reply = w.send(c, auth=tok)
    assert (reply.status, reason_of(reply)) == (403, "ExpiredProviderToken")


def test_fresh_token_after_expiry_is_accepted_unless_the_connection_is_wedged():
    for wedge, expected in ((False, 200), (True, 403)):
        w = World(extra={"apns_wedge_on_expired": str(wedge).lower()})
        w.service = ApnsService(w.testbed, w.keys)
        c = w.conn()
        assert w.send(c, auth=w.jwt(iat=T0)).status == 200
        w.clock.t = T0 + 3700
        assert reason_of(w.send(c, auth=w.jwt(iat=T0))) == "ExpiredProviderToken"
        assert w.send(c, auth=w.jwt(iat=w.clock.t)).status == expected
        assert w.send(w.conn(), auth=w.jwt(iat=w.clock.t)).status == 200   # a new connection always works


def test_new_token_sooner_than_20_minutes_makes_the_connection_unusable_until_then():
    w = World()
    c = w.conn()
    first = w.jwt(iat=T0)
    assert w.send(c, auth=first).status == 200
    w.clock.t = T0 + 1199
    second = w.jwt(iat=w.clock.t)
    reply = w.send(c, auth=second)
    assert (reply.status, reason_of(reply)) == (429, "TooManyProviderTokenUpdates")
    assert reason_of(w.send(c, auth=first)) == "TooManyProviderTokenUpdates"   # even the old token
    assert w.send(w.conn(), auth=second).status == 200                          # other connections are fine
    w.clock.t = T0 + 1200
    assert w.send(c, auth=second).status == 200
    w.clock.t = T0 + 1300
    assert w.send(c, auth=second).status == 200


def test_refresh_every_20_minutes_or_more_is_fine():
    w = World()
    c = w.conn()
    for k in range(5):
        w.clock.t = T0 + k * 1200
        assert w.send(c, auth=w.jwt(iat=w.clock.t)).status == 200


def test_team_and_key_are_bound_by_the_first_push():
    w = World()
    c = w.conn()
    assert w.send(c, auth=w.jwt("k2")).status == 200
    w.clock.t += 1500
    assert reason_of(w.send(c, auth=w.jwt("k1", iat=w.clock.t))) == "UnrelatedKeyIdInToken"
    assert reason_of(w.send(c, auth=w.jwt("k3", iat=w.clock.t))) == "InvalidProviderToken"
    assert w.send(c, auth=w.jwt("k2", iat=w.clock.t)).status == 200
    # a rejected first token binds nothing
    c2 = w.conn()
    assert reason_of(w.send(c2, auth=w.jwt("kenv"))) == "BadEnvironmentKeyInToken"
    assert w.send(c2, auth=w.jwt("k3")).status == 200


def test_float_iat_is_accepted_and_small_future_skew_tolerated():
    w = World()
    assert w.send(w.conn(), auth=w.jwt(iat=T0 - 0.5)).status == 200
    assert w.send(w.conn(), auth=w.jwt(iat=T0 + 30.25)).status == 200
    assert reason_of(w.send(w.conn(), auth=w.jwt(iat=T0 + 61))) == "InvalidProviderToken"
    for bad in ("1700000000", True, None):
        tok = make_jwt(w.pk["k1"], w.kid["k1"], TEAM, bad)  # type: ignore[arg-type]
        assert reason_of(w.send(w.conn(), auth=tok)) == "InvalidProviderToken"


def test_environment_restricted_keys():
    w = World(environment="production")
    key = new_key()
    w.keys.add("PRODONLYAA", TEAM, key.public_key(), environments=frozenset({"production"}))
    assert w.send(w.conn(), auth=make_jwt(key, "PRODONLYAA", TEAM, T0)).status == 200
    assert reason_of(w.send(w.conn(), auth=w.jwt("kenv"))) == "BadEnvironmentKeyInToken"   # sandbox-only key


def test_signature_is_verified_once_per_distinct_token():
    w = World()
    calls: list[bytes] = []
    real = KeyStore._verify

    def counting(self: KeyStore, token: bytes):
        calls.append(token)
        return real(self, token)
    w.keys._verify = counting.__get__(w.keys)  # type: ignore[method-assign]
    tok = w.jwt()
    for _ in range(3):
        c = w.conn()
        for _ in range(20):
            assert w.send(c, auth=tok).status == 200
    bad = make_jwt(w.pk["k2"], w.kid["k1"], TEAM, T0)
    for _ in range(5):
        assert reason_of(w.send(w.conn(), auth=bad)) == "InvalidProviderToken"
    assert calls == [tok, bad]


def test_client_certificate_makes_authorization_irrelevant():
    w = World()
    c = w.cert_conn()
    assert w.send(c, auth=b"garbage").status == 200
    assert w.send(c, headers=w.headers(auth=None)).status == 200


def test_topic_specific_key_allows_its_topics_only():
    w = World()
    key = new_key()
    w.keys.add("TOPICKEYAA", TEAM, key.public_key(), topics=frozenset({"com.example.app"}))
    tok = make_jwt(key, "TOPICKEYAA", TEAM, T0)
    assert w.send(w.conn(), auth=tok).status == 200
    voip = w.send(w.conn(), auth=tok, topic="com.example.app.voip", push_type="voip")
    assert voip.status == 200, orjson.loads(voip.body)
    assert reason_of(w.send(w.conn(), auth=w.jwt("ktopic"))) == "TopicDisallowed"


def test_tokens_built_by_pyjwt_like_real_clients_are_accepted():
    jwt = pytest.importorskip("jwt")       # PyJWT: what aioapns and pyapns_client sign with
    from cryptography.hazmat.primitives import serialization
    w = World()
    pem = w.pk["k1"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    for iat in (int(T0), T0 - 12.345):    # aioapns: int(time.time()); pyapns_client: time.time()
        token = jwt.encode({"iss": TEAM, "iat": iat}, pem, algorithm="ES256", headers={"kid": w.kid["k1"]})
        token = token.encode() if isinstance(token, str) else token
        assert w.send(w.conn(), auth=token).status == 200
    hs = jwt.encode({"iss": TEAM, "iat": int(T0)}, "s" * 32, algorithm="HS256", headers={"kid": w.kid["k1"]})
    assert reason_of(w.send(w.conn(), auth=hs.encode() if isinstance(hs, str) else hs)) == "InvalidProviderToken"
