"""apns-id parsing and cheap generation of lowercase UUIDs for requests that carry none.

uuid4() + str() costs a few microseconds per request; here each generator draws one random
version-4 prefix and appends a 48-bit counter, which keeps ids unique within a generator, valid
canonical UUIDs, and unpredictable across runs and worker processes.
"""
from __future__ import annotations

import os

_HEX = b"0123456789abcdefABCDEF"


def is_uuid(value: bytes) -> bool:
    """Canonical 8-4-4-4-12 hex form (either case, as Java's UUID.fromString in pushy accepts)."""
    # bytes.translate runs in C: deleting every hex digit must leave exactly the four dashes.
    return (len(value) == 36 and value[8] == value[13] == value[18] == value[23] == 0x2D
            and value.translate(None, _HEX) == b"----")


class IdGenerator:
    __slots__ = ("_prefix", "_n")

    def __init__(self, seed: bytes | None = None) -> None:
        r = (seed or os.urandom(8)).hex()[:16].ljust(16, "0")
        # version nibble 4 and RFC 4122 variant (8..b), like uuid4
        variant = "89ab"[int(r[12], 16) & 3]
        self._prefix = f"{r[0:8]}-{r[8:12]}-4{r[13:16]}-{variant}".encode()
        self._n = int.from_bytes(os.urandom(4), "big") << 8

    def next(self) -> bytes:
        self._n += 1
        return b"%s%03x-%012x" % (self._prefix, (self._n >> 48) & 0xFFF, self._n & 0xFFFFFFFFFFFF)
