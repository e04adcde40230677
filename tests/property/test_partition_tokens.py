"""For any seed, partition count and index: the clear prefix names index % N, the token decodes to
its index under the MAC, an edited prefix never decodes, and unpartitioned tokens stay as they were."""
from hypothesis import example, given, settings, strategies as st

from device_sim.tokens import (MAX_PARTITIONS, TokenCodec, apns_partition_prefix, fcm_partition_prefix,
                               make_codec, token_partition)

seeds = st.one_of(st.integers(0, 2**32), st.text(max_size=12))
counts = st.integers(2, MAX_PARTITIONS)
indices = st.integers(0, 2**40)


@settings(max_examples=150, deadline=None)
@given(seed=seeds, n=counts, index=indices, other=st.integers(0, MAX_PARTITIONS - 1))
@example(seed=0, n=2, index=0, other=1)
@example(seed=0, n=MAX_PARTITIONS, index=MAX_PARTITIONS - 1, other=0)
def test_prefix_reads_back_and_is_bound_by_the_mac(seed, n, index, other):
    c = make_codec(seed, n)
    k = index % n
    a, f = c.apns_token(index), c.fcm_token(index)
    assert a.startswith(apns_partition_prefix(k)) and f.startswith(fcm_partition_prefix(k))
    assert token_partition(a) == token_partition(f) == k
    assert c.apns_index(a) == index and c.fcm_index(f) == index
    if other != k:
        assert c.apns_index(apns_partition_prefix(other) + a[4:]) is None
        assert c.fcm_index(fcm_partition_prefix(other) + f[2:]) is None


@settings(max_examples=100, deadline=None)
@given(seed=seeds, index=indices)
def test_unpartitioned_tokens_unchanged(seed, index):
    today, plain = TokenCodec(seed), make_codec(seed, 1)
    assert plain.apns_token(index) == today.apns_token(index)
    assert plain.fcm_token(index) == today.fcm_token(index)
    assert plain.apns_index(today.apns_token(index)) == index


@settings(max_examples=60, deadline=None)
@given(adds=st.lists(st.tuples(st.sampled_from(["ios", "android"]), st.integers(0, 40)), min_size=1, max_size=5),
       n=st.integers(2, 7))
@example(adds=[("ios", 0), ("android", 1)], n=2)
def test_partitions_cover_the_fleet_exactly_once(adds, n):
    from device_sim.fleet import Fleet

    whole = Fleet(seed=1)
    parts = [Fleet(seed=1, partition=(k, n)) for k in range(n)]
    for platform, count in adds:
        got = list(whole.add(platform, count))
        owned = [list(p.add(platform, count)) for p in parts]
        assert sorted(i for o in owned for i in o) == got
    assert sorted(i for p in parts for i in p.owned()) == list(range(len(whole)))
    assert sum(p.owned_count for p in parts) == len(whole)
    for p in parts:
        assert len(p) == len(whole) and p.runs() == whole.runs()
        for i in p.owned():
            assert p.platform_of(i) == whole.platform_of(i) and p.fcm_registered(i) == whole.fcm_registered(i)
            assert p.resolve(whole.apns_token(i) or "") is None           # the tokens differ from unpartitioned ones
            token = p.fcm_token(i)
            assert p.resolve_fcm(token) == i and all(q.resolve_fcm(token) is None for q in parts if q is not p)
