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


# partitioned tokens (issue 16): a key-free prefix names the owning partition -------------------

from device_sim.tokens import (MAX_PARTITIONS, PartitionedTokenCodec, apns_partition_prefix,  # noqa: E402
                               fcm_partition_prefix, make_codec, token_partition)


@pytest.mark.parametrize("k,apns,fcm", [(0, "0000", "AA"), (1, "0001", "AB"), (63, "003f", "A_"),
                                        (64, "0040", "BA"), (4095, "0fff", "__")])
def test_partition_prefixes(k, apns, fcm):
    assert apns_partition_prefix(k) == apns and fcm_partition_prefix(k) == fcm
    assert token_partition(apns + "0" * 60) == k
    assert token_partition(apns.upper() + "0" * 60) == k
    assert token_partition(fcm + "x" * 20 + ":APA91b" + "y" * 140) == k


@pytest.mark.parametrize("k", [-1, MAX_PARTITIONS])
def test_partition_prefix_out_of_range(k):
    with pytest.raises(ValueError):
        apns_partition_prefix(k)
    with pytest.raises(ValueError):
        fcm_partition_prefix(k)


@pytest.mark.parametrize("token", ["", "abc", "zz" + "0" * 62, "1000" + "0" * 60, "g" * 64,
                                   "short:APA91b" + "y" * 140, "A!" + "x" * 20 + ":APA91b" + "y" * 140,
                                   "A" * 22 + "APA91b" + "y" * 140])
def test_token_partition_unreadable(token):
    assert token_partition(token) is None


def test_partitioned_codec_round_trip_and_prefix():
    c = PartitionedTokenCodec(7, 3)
    for i in (0, 1, 2, 3, 1000, 10**6 + 1):
        a, f = c.apns_token(i), c.fcm_token(i)
        assert APNS_RE.match(a) and FCM_RE.match(f), (a, f)
        assert a.startswith(apns_partition_prefix(i % 3)) and f.startswith(fcm_partition_prefix(i % 3))
        assert c.apns_index(a) == i and c.fcm_index(f) == i
        assert token_partition(a) == token_partition(f) == i % 3


def test_partitioned_tokens_do_not_cross_deployments():
    plain, three, four = make_codec(7), make_codec(7, 3), make_codec(7, 4)
    assert type(plain) is TokenCodec and plain.apns_token(5) == TokenCodec(7).apns_token(5)
    t = three.apns_token(5)
    assert plain.apns_index(t) is None and four.apns_index(t) is None
    assert three.apns_index(plain.apns_token(5)) is None
    assert four.fcm_index(three.fcm_token(5)) is None


def test_partitioned_codec_rejects_bad_counts():
    for n in (1, 0, MAX_PARTITIONS + 1):
        with pytest.raises(ValueError):
            PartitionedTokenCodec(1, n)
