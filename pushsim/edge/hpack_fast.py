"""A lean HPACK (RFC 7541) decoder and a table-free response encoder for the fast HTTP/2 engine.

Why not `hpack.Decoder`: its per-field method calls and pure-Python Huffman decoding dominate the
request cost (perf-notes.md). Clients send the ~190-byte `authorization: bearer <JWT>` value as a
Huffman-coded literal on every request, so Huffman results are memoised by their raw bytes (the
result depends on nothing else). Equivalence with `hpack.Decoder` is checked by property tests.

The encoder never touches a dynamic table: `:status` uses a static index when one exists and every
other field is a literal without indexing, so a peer's decoder state never depends on our replies.
"""
from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError, InvalidTableIndex, InvalidTableSizeError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

Headers = list[tuple[bytes, bytes]]

_STATIC = HeaderTable.STATIC_TABLE
_NSTATIC = len(_STATIC)
_VARINT_MAX_BYTES = 5            # continuation octets beyond the prefix; enough for any uint32
_HUFFMAN_MEMO_MAX = 8192         # distinct literals remembered (cleared wholesale when full)
_HUFFMAN_MEMO_LEN = 1024         # longer literals are decoded every time: the memo stays < ~16 MiB
# One memo for every connection: the result depends only on the raw bytes, and a sender's
# connections share their literals (the JWT, the device paths), so a new connection starts warm
# instead of decoding each of them once more (with 1000 device tokens per connection, that was 13%
# of a benchmark run's requests).
_HUFFMAN_MEMO: dict[bytes, bytes] = {}


class OversizedHeaderList(HPACKDecodingError):
    """The decoded header list exceeds the limit we announced (a connection-level refusal)."""


class HpackDecoder:
    """Decodes header blocks into `[(name, value)]` as raw bytes, keeping the dynamic table."""

    __slots__ = ("_dyn", "_size", "_maxsize", "max_allowed_table_size", "max_header_list_size", "_memo")

    def __init__(self, max_header_list_size: int = 65536, max_table_size: int = 4096) -> None:
        self._dyn: deque[tuple[bytes, bytes]] = deque()
        self._size = 0
        self._maxsize = max_table_size
        self.max_allowed_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        self._memo = _HUFFMAN_MEMO

    def _huffman(self, raw: bytes) -> bytes:
        memo = self._memo
        out = memo.get(raw)
        if out is None:
            out = decode_huffman(raw)      # raises HPACKDecodingError on bad padding / EOS
            if len(raw) <= _HUFFMAN_MEMO_LEN:   # a peer's 1 MB literals must not stay with us
                if len(memo) >= _HUFFMAN_MEMO_MAX:
                    memo.clear()
                memo[raw] = out
        return out

    def _resize(self, size: int) -> None:
        self._maxsize = size
        self._evict()

    def _evict(self) -> None:
        dyn = self._dyn
        while self._size > self._maxsize:
            n, v = dyn.pop()
            self._size -= 32 + len(n) + len(v)

    def _add(self, name: bytes, value: bytes) -> None:
        size = 32 + len(name) + len(value)
        if size > self._maxsize:
            self._dyn.clear()
            self._size = 0
        else:
            self._dyn.appendleft((name, value))
            self._size += size
            self._evict()

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= _NSTATIC:
            return _STATIC[index - 1]
        index -= _NSTATIC + 1
        if 0 <= index < len(self._dyn):
            return self._dyn[index]
        raise InvalidTableIndex(f"Invalid table index {index + _NSTATIC + 1}")

    def decode(self, data: bytes) -> Headers:
        headers: Headers = []
        append = headers.append
        end = len(data)
        i = 0
        total = 0
        limit = self.max_header_list_size
        entry = self._entry
        while i < end:
            b = data[i]
            if b & 0x80:                                   # indexed field
                idx = b & 0x7F
                i += 1
                if idx == 0x7F:
                    idx, i = _varint(data, i, idx)
                if 0 < idx <= _NSTATIC:
                    field = _STATIC[idx - 1]
                else:
                    field = entry(idx)
                append(field)
                total += 32 + len(field[0]) + len(field[1])
                if total > limit:
                    raise OversizedHeaderList(f"header list larger than {limit}")
                continue
            if b & 0x40:                                   # literal with incremental indexing
                mask, index_it = 0x3F, True
            elif b & 0x20:                                 # dynamic table size update
                if headers:
                    raise HPACKDecodingError("Table size update not at the start of the block")
                size = b & 0x1F
                i += 1
                if size == 0x1F:
                    size, i = _varint(data, i, size)
                if size > self.max_allowed_table_size:
                    raise InvalidTableSizeError("Encoder exceeded max allowable table size")
                self._resize(size)
                continue
            else:                                          # without indexing / never indexed
                mask, index_it = 0x0F, False
            idx = b & mask
            i += 1
            if idx:
                if idx == mask:
                    idx, i = _varint(data, i, idx)
                name = entry(idx)[0]
            else:
                name, i = self._string(data, i, end)
            value, i = self._string(data, i, end)
            if index_it:
                self._add(name, value)
            append((name, value))
            total += 32 + len(name) + len(value)
            if total > limit:
                raise OversizedHeaderList(f"header list larger than {limit}")
        if self._maxsize > self.max_allowed_table_size:
            raise InvalidTableSizeError("Encoder did not shrink table size to within the max")
        return headers

    def _string(self, data: bytes, i: int, end: int) -> tuple[bytes, int]:
        if i >= end:
            raise HPACKDecodingError("Truncated header block")
        b = data[i]
        n = b & 0x7F
        i += 1
        if n == 0x7F:
            n, i = _varint(data, i, n)
        j = i + n
        if j > end:
            raise HPACKDecodingError("Truncated header block")
        s = data[i:j]
        if b & 0x80:
            # Huffman codes are at most 30 bits: a string this long decodes past any header list
            # we accept, so refuse it before spending ~0.3 s/MB of pure-Python decoding on it.
            if n * 8 // 30 > self.max_header_list_size:
                raise OversizedHeaderList(f"Huffman string of {n} bytes")
            s = self._huffman(s)
        return s, j


def _varint(data: bytes, i: int, value: int) -> tuple[int, int]:
    """Continue an HPACK integer whose prefix was all ones; `i` points past the prefix octet."""
    shift = 0
    start = i
    try:
        while True:
            b = data[i]
            i += 1
            value += (b & 0x7F) << shift
            if not b & 0x80:
                return value, i
            shift += 7
            if i - start >= _VARINT_MAX_BYTES:
                raise HPACKDecodingError("Variable integer representation is too long")
    except IndexError:
        raise HPACKDecodingError("Unable to decode HPACK integer representation") from None


# ---- encoding (responses) ----------------------------------------------------------------------

_STATUS_INDEXED = {int(v): bytes([0x80 | (i + 1)]) for i, (n, v) in enumerate(_STATIC) if n == b":status"}
_name_prefix: dict[bytes, bytes] = {}


def encode_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """RFC 7541 §5.1 integer with `first` OR-ed into the prefix octet."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes((first | value,))
    out = bytearray((first | top,))
    value -= top
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_status(status: int) -> bytes:
    hit = _STATUS_INDEXED.get(status)
    if hit is not None:
        return hit
    digits = b"%d" % status
    return b"\x08" + encode_int(len(digits), 7) + digits      # literal w/o indexing, name = static 8


def encode_block(status: int, headers: Headers) -> bytes:
    """Encode a response header block without indexing (no encoder state on either side)."""
    parts = [_STATUS_INDEXED.get(status) or encode_status(status)]
    for name, value in headers:
        prefix = _name_prefix.get(name)
        if prefix is None:
            prefix = b"\x00" + encode_int(len(name), 7) + name
            if len(_name_prefix) < 1024:          # names are few; never let odd ones grow this
                _name_prefix[name] = prefix
        n = len(value)
        parts.append(prefix)
        parts.append(bytes((n,)) if n < 127 else encode_int(n, 7))
        parts.append(value)
    return b"".join(parts)
