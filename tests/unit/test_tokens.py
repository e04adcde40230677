import re

import pytest

from device_sim.fleet import Fleet, parse_device_mix
from device_sim.tokens import TokenCodec

APNS_RE = re.compile(r"^[0-9a-f]{64}$")
FCM_RE = re.compile(r"^[A-Za-z0-9_-]{22}:APA91b[A-Za-z0-9_-]{100,}$")


def test_apns_token_round_trip_and_shape():
    c = TokenCodec(7)
    for i in (0, 1, 999, 10**6, 2**40):
        t = c.apns_token(i)
        assert APNS_RE.match(t)
        assert c.apns_index(t) == i


def test_fcm_token_round_trip_and_shape():
    c = TokenCodec(7)
    for i in (0, 5, 123456):
        t = c.fcm_token(i)
        assert FCM_RE.match(t), t
        assert c.fcm_index(t) == i


def test_tokens_depend_on_seed_and_reject_tampering():
    a, b = TokenCodec(1), TokenCodec(2)
    t = a.apns_token(3)
    assert b.apns_index(t) is None
    flipped = ("0" if t[10] != "0" else "1").join((t[:10], t[11:]))
    assert a.apns_index(flipped) is None
    assert a.fcm_index(a.fcm_token(3)[:-1] + "A") in (None, 3) and a.fcm_index("x:APA91b" + "A" * 150) is None


def test_fleet_resolves_only_its_own_platform():
    f = Fleet(seed=3)
    f.populate({"ios": 2, "android": 2})
    ios_tok = f.apns_token(0)
    assert f.resolve_apns(ios_tok) == 0
    assert f.apns_token(2) is None                       # Android installs have no APNs token
    assert f.resolve_apns(f.codec.apns_token(2)) is None
    assert f.resolve_apns(f.codec.apns_token(99)) is None   # never issued
    assert f.resolve_fcm(f.fcm_token(3)) == 3


@pytest.mark.parametrize("spec,want", [("10", {"ios": 5, "android": 5}), ("3", {"ios": 2, "android": 1}),
                                       ("ios=4,android=1", {"ios": 4, "android": 1}), ("ios=7", {"ios": 7})])
def test_device_mix(spec, want):
    assert parse_device_mix(spec) == want


@pytest.mark.parametrize("spec", ["", "ios", "mac=3", "ios=-1", "ios=x"])
def test_device_mix_errors(spec):
    with pytest.raises(ValueError):
        parse_device_mix(spec)
