"""The lean HPACK decoder agrees with `hpack.Decoder`; the response encoder round-trips."""
from __future__ import annotations

import hpack
import pytest
from hpack.exceptions import HPACKDecodingError, InvalidTableSizeError
from hypothesis import given, settings, strategies as st

from pushsim.edge import hpack_fast
from pushsim.edge.hpack_fast import HpackDecoder, OversizedHeaderList, encode_block, encode_int

names = st.sampled_from([b":path", b":method", b"authorization", b"apns-id", b"apns-topic", b"x-a",
                         b"content-type", b"x-long-name-" + b"n" * 130])
values = st.one_of(st.binary(max_size=40), st.binary(min_size=120, max_size=300),
                   st.sampled_from([b"POST", b"/3/device/ab", b"bearer eyJhbGciOi.x.y", b""]))
header_lists = st.lists(st.tuples(names, values), max_size=12)


@settings(max_examples=150, deadline=None)
@given(blocks=st.lists(st.tuples(header_lists, st.booleans(), st.booleans()), min_size=1, max_size=6),
       table_size=st.sampled_from([0, 64, 256, 4096]))
def test_decodes_like_hpack_across_a_connection(blocks, table_size):
    enc = hpack.Encoder()
    enc.header_table_size = table_size          # emits a size update in the next block
    ref, ours = hpack.Decoder(), HpackDecoder()
    for headers, huffman, sensitive in blocks:
        # sensitive=True makes the encoder emit never-indexed literals for every field
        fields = [hpack.NeverIndexedHeaderTuple(n, v) if sensitive else (n, v) for n, v in headers]
        block = enc.encode(fields, huffman=huffman)
        assert ours.decode(block) == [tuple(h) for h in ref.decode(block, raw=True)]


def test_rejects_what_hpack_rejects():
    good = hpack.Encoder().encode([(b":path", b"/a"), (b"x", b"y")])
    for bad in (good[:-1], b"\xff", b"\x80", b"\xbf\xff\xff\xff\xff\xff\xff", b"\x00\x85\xff\xff\xff\xff\xff"):
        with pytest.raises(HPACKDecodingError):
            hpack.Decoder().decode(bad, raw=True)
        with pytest.raises(HPACKDecodingError):
            HpackDecoder().decode(bad)


def test_table_size_update_rules():
    with pytest.raises(InvalidTableSizeError):
        HpackDecoder(max_table_size=4096).decode(b"\x3f\xe2\x1f")    # 4097 > allowed
    with pytest.raises(HPACKDecodingError):
        HpackDecoder().decode(b"\x82\x20")                            # update after a field
    assert HpackDecoder().decode(b"\x20\x82") == [(b":method", b"GET")]


def test_header_list_limit():
    block = hpack.Encoder().encode([(b"x", b"v" * 200)] * 3)
    assert len(HpackDecoder(max_header_list_size=1000).decode(block)) == 3
    with pytest.raises(OversizedHeaderList):
        HpackDecoder(max_header_list_size=600).decode(block)


def test_huffman_memo_returns_same_values_and_is_bounded():
    enc, dec = hpack.Encoder(), HpackDecoder()
    for i in range(5000):
        tok = b"bearer token-%d" % (i % 3)
        assert dec.decode(enc.encode([hpack.NeverIndexedHeaderTuple(b"authorization", tok)], huffman=True)) \
            == [(b"authorization", tok)]
    assert len(dec._memo) <= hpack_fast._HUFFMAN_MEMO_MAX


def test_huffman_memo_is_shared_by_connections():
    # A new connection starts warm: the literals a sender repeats (JWT, device paths) are decoded once.
    enc = hpack.Encoder()
    block = enc.encode([hpack.NeverIndexedHeaderTuple(b"authorization", b"bearer shared-token")], huffman=True)
    first, second = HpackDecoder(), HpackDecoder()
    assert first.decode(block) == second.decode(block) == [(b"authorization", b"bearer shared-token")]
    assert first._memo is second._memo


@given(status=st.integers(100, 599), headers=header_lists)
def test_response_block_round_trips_and_leaves_no_table_state(status, headers):
    block = encode_block(status, [(n, v) for n, v in headers if not n.startswith(b":")])
    dec = hpack.Decoder()
    out = dec.decode(block, raw=True)
    assert out[0] == (b":status", b"%d" % status)
    assert out[1:] == [(n, v) for n, v in headers if not n.startswith(b":")]
    assert len(dec.header_table.dynamic_entries) == 0


def test_status_uses_static_index_when_possible():
    assert encode_block(200, []) == b"\x88"
    assert encode_block(404, []) == b"\x8d"
    assert encode_block(410, []) == b"\x08\x03410"


@given(st.integers(0, 2**32), st.integers(1, 8))
def test_encode_int_round_trips(value, bits):
    raw = encode_int(value, bits)
    assert hpack.hpack.decode_integer(raw, bits) == (value, len(raw))
