"""A partitioned fleet (serve --partition K/N): the same install numbers and tokens as every other
partition's instance, facts kept only for its own installs, and the serve flags that set it up."""
from __future__ import annotations

import pytest

from device_sim.fleet import ANDROID, IOS, Fleet, parse_partition
from device_sim.tokens import token_partition
from pushsim import cli
from pushsim.config import Config

MIX = {"ios": 7, "android": 5}


def _fleets(n: int) -> list[Fleet]:
    out = []
    for k in range(n):
        f = Fleet(seed=4, partition=(k, n))
        f.populate(MIX)
        out.append(f)
    return out


def test_partitions_split_the_fleet_exactly():
    whole = Fleet(seed=4)
    whole.populate(MIX)
    parts = _fleets(3)
    assert [f.owned_count for f in parts] == [4, 4, 4] and all(len(f) == 12 for f in parts)
    owned = sorted(i for f in parts for i in f.owned())
    assert owned == list(range(12))
    for f in parts:
        for i in f.owned():
            assert f.owns(i) and f.owner(i) == f.part_k
            assert f.platform_of(i) == whole.platform_of(i) and f.app_of(i) == whole.app_of(i)
            assert f.environment_of(i) == whole.environment_of(i)
        assert f.owned_of(IOS) == [i for i in f.owned() if i < 7]
        assert f.owned_of(ANDROID) == [i for i in f.owned() if i >= 7]
        assert f.runs() == whole.runs()         # the replay header describes the whole fleet


def test_each_instance_resolves_only_its_own_tokens():
    parts = _fleets(3)
    for i in range(12):
        owner = parts[i % 3]
        fcm = owner.fcm_token(i)
        assert owner.resolve_fcm(fcm) == i and token_partition(fcm) == i % 3
        if i < 7:
            apns = owner.apns_token(i)
            assert apns is not None and owner.resolve_apns(apns) == i and owner.resolve_apns(apns.upper()) == i
            assert token_partition(apns) == i % 3
        for other in parts:
            if other is not owner:
                assert other.resolve_fcm(fcm) is None and other.resolve(fcm) is None
                assert other.owner_of_token(fcm) == i % 3          # but it can say whose it is
                if i < 7:
                    assert other.resolve_apns(apns) is None and other.owner_of_token(apns) == i % 3
    stranger = parts[0].codec.apns_token(500)       # a valid MAC, yet no install of the fleet has it
    assert parts[0].owner_of_token(stranger) is None
    android_as_apns = parts[1].codec.apns_token(8)  # install 8 is Android: it has no APNs token
    assert parts[0].owner_of_token(android_as_apns) is None


def test_unpartitioned_fleet_is_unchanged():
    f = Fleet(seed=4)
    f.populate(MIX)
    assert f.partition is None and f.owned_count == len(f) == 12 and list(f.owned()) == list(range(12))
    assert f.owner_of_token(f.fcm_token(3)) == 0


def test_add_returns_the_owned_installs_of_the_new_range():
    f = Fleet(seed=0, partition=(2, 3))
    assert list(f.add("ios", 4)) == [2]
    assert list(f.add("android", 5)) == [5, 8] and f.owned_count == 3 and len(f) == 9
    assert [f.platform_of(i) for i in f.owned()] == ["ios", "android", "android"]


@pytest.mark.parametrize("spec,want", [("0/2", (0, 2)), ("2/3", (2, 3)), (" 4095/4096 ", (4095, 4096))])
def test_parse_partition(spec, want):
    assert parse_partition(spec) == want


@pytest.mark.parametrize("spec", ["", "1", "3/3", "0/1", "0/4097", "-1/3", "a/b", "1/3/4"])
def test_parse_partition_errors(spec):
    with pytest.raises(ValueError):
        parse_partition(spec)


def _config(argv: list[str], env: dict[str, str] | None = None) -> Config:
    return cli.config_from_args(cli.build_parser().parse_args(["serve", *argv]), env or {})


def test_partition_flags_and_env():
    c = _config(["--partition", "1/3", "--peers", "http://a:1,http://b:2/,http://c:3"])
    assert c.partition_of() == (1, 3) and c.peer_urls() == ["http://a:1", "http://b:2", "http://c:3"]
    c = _config([], {"PUSHSIM_PARTITION": "0/2", "PUSHSIM_PEERS": "http://a:1,http://b:2"})
    assert c.partition_of() == (0, 2)
    assert _config([]).partition_of() is None


@pytest.mark.parametrize("argv,needle", [
    (["--partition", "3/3"], "--partition"),
    (["--partition", "x"], "--partition"),
    (["--peers", "http://a:1,http://b:2"], "PUSHSIM_PEERS needs"),
    (["--partition", "0/3", "--peers", "http://a:1,http://b:2"], "expected 3 URLs"),
    (["--partition", "0/2", "--peers", "http://a:1,b:2"], "http"),
    (["--partition", "0/2", "--workers", "2"], "one process per partition"),
])
def test_partition_flag_errors(argv, needle):
    with pytest.raises(cli.UsageError, match=needle):
        _config(argv)
