"""Memoised HPACK Huffman decoding (perf-notes trick 1: +46% on the h2 engine).

Clients mark `authorization` never-indexed, so the same ~200-byte Huffman literal (a JWT or an
OAuth token) arrives on every request and hpack's pure-Python decoder dominates the profile. The
decoded value depends only on the input bytes, so a bounded cache keyed on them is exact.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import hpack.hpack as _hpack_module
from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman as _decode_huffman

CACHE_ENTRIES = 4096
MAX_CACHED_LEN = 1024   # longer literals are rare and would make the cache's memory unbounded in practice
# Huffman codes are at most 30 bits, so a longer input decodes past 64 KiB, more than any header
# list the engines accept: refused before ~0.3 s/MB of pure-Python decoding stalls the loop.
MAX_INPUT_LEN = 65536 * 30 // 8

_cached: Callable[[bytes], bytes] = functools.lru_cache(maxsize=CACHE_ENTRIES)(_decode_huffman)


def decode_huffman(data: bytes | bytearray | memoryview | None) -> bytes:
    """Drop-in for `hpack.huffman_table.decode_huffman`, answering repeats from the cache."""
    if type(data) is bytes and len(data) <= MAX_CACHED_LEN:
        return _cached(data)
    if data is not None and len(data) > MAX_INPUT_LEN:
        raise HPACKDecodingError(f"Huffman string of {len(data)} bytes")
    return _decode_huffman(data)


def install() -> None:
    """Point hpack's Decoder at the memoised decoder (idempotent, process-wide).

    hpack looks `decode_huffman` up as a module global at call time, so rebinding it is the only
    hook that keeps hpack's own literal parsing (and its error handling) untouched.
    """
    _hpack_module.decode_huffman = decode_huffman  # type: ignore[attr-defined]


def cache_info() -> functools._CacheInfo:
    return _cached.cache_info()  # type: ignore[attr-defined]
