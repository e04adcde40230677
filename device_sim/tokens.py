"""Device tokens that carry their own install index.

APNs tokens are 64 lowercase hex characters and FCM registration tokens look like real ones
(`<instance id>:APA91b<url-safe string>`), yet both decode back to the install index with a keyed
MAC. That keeps a million-install fleet free of a token dictionary, and lets any worker process
derive a token's owner without asking anyone.

Partitioned fleets (`serve --partition K/N`, see docs/serve.md "Partitions and peers") issue tokens
that also say, in clear, which partition owns them, so a proxy with no secrets can route by prefix:
the first 4 hex characters of an APNs token are K, the first 2 characters of an FCM instance id are K
in the URL-safe base64 alphabet. K is covered by the MAC, so a token whose prefix was edited does
not decode.
"""
from __future__ import annotations

import base64
import hashlib
import struct

_INDEX = struct.Struct(">Q")
_PART = struct.Struct(">H")

MAX_PARTITIONS = 4096          # two base64 characters hold 64 * 64 partition numbers
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64_VALUE = {c: v for v, c in enumerate(_B64)}
_HEX = frozenset("0123456789abcdefABCDEF")


def apns_partition_prefix(k: int) -> str:
    """The 4 hex characters every APNs token of partition `k` starts with."""
    _check_partition(k)
    return f"{k:04x}"


def fcm_partition_prefix(k: int) -> str:
    """The 2 characters every FCM instance id (the part before `:APA91b`) of partition `k` starts with."""
    _check_partition(k)
    return _B64[k // 64] + _B64[k % 64]


def token_partition(token: str) -> int | None:
    """The partition a token's clear prefix names, or None when the token has no readable prefix.

    Needs no key: this is what a proxy routes on. It cannot tell a partitioned token from an
    unpartitioned one (whose prefix is noise), so the owner still checks the MAC.
    """
    if len(token) == 64:
        head = token[:4]
        if not _HEX.issuperset(head):
            return None
        k = int(head, 16)
        return k if k < MAX_PARTITIONS else None
    iid, sep, _ = token.partition(":APA91b")
    if not sep or len(iid) != 22:
        return None
    hi, lo = _B64_VALUE.get(iid[0]), _B64_VALUE.get(iid[1])
    if hi is None or lo is None:
        return None
    return hi * 64 + lo


def _check_partition(k: int) -> None:
    if not 0 <= k < MAX_PARTITIONS:
        raise ValueError(f"partition must be in 0..{MAX_PARTITIONS - 1}, got {k}")


class TokenCodec:
    __slots__ = ("_key",)

    def __init__(self, seed: int | str | bytes) -> None:
        raw = seed if isinstance(seed, bytes) else str(seed).encode()
        self._key = hashlib.blake2b(raw, digest_size=32, person=b"pushsim-tokens").digest()

    def _mac(self, index_bytes: bytes) -> bytes:
        return hashlib.blake2b(index_bytes, key=self._key, digest_size=24).digest()

    def _pad(self, mac: bytes) -> bytes:
        return hashlib.blake2b(mac, key=self._key, digest_size=8, person=b"pad").digest()

    def core(self, index: int) -> bytes:
        """32 bytes: the index hidden under a pad derived from its own MAC, then the MAC."""
        ib = _INDEX.pack(index)
        mac = self._mac(ib)
        hidden = bytes(a ^ b for a, b in zip(ib, self._pad(mac)))
        return hidden + mac

    def decode_core(self, core: bytes) -> int | None:
        if len(core) != 32:
            return None
        hidden, mac = core[:8], core[8:]
        ib = bytes(a ^ b for a, b in zip(hidden, self._pad(mac)))
        if self._mac(ib) != mac:
            return None
        return _INDEX.unpack(ib)[0]

    # APNs ---------------------------------------------------------------------------------
    def apns_token(self, index: int) -> str:
        return self.core(index).hex()

    def apns_index(self, token: str) -> int | None:
        if len(token) != 64:
            return None
        try:
            core = bytes.fromhex(token)
        except ValueError:
            return None
        return self.decode_core(core)

    # FCM ----------------------------------------------------------------------------------
    def fcm_token(self, index: int) -> str:
        core = self.core(index)
        iid = base64.urlsafe_b64encode(hashlib.blake2b(core, digest_size=16).digest())[:22]
        tail = hashlib.blake2b(core, key=self._key, digest_size=64, person=b"fcm-tail").digest()
        body = base64.urlsafe_b64encode(core + tail + tail[:6]).rstrip(b"=")
        return (iid + b":APA91b" + body).decode()

    def fcm_index(self, token: str) -> int | None:
        iid, sep, rest = token.partition(":APA91b")
        if not sep or len(iid) != 22 or len(rest) < 43:
            return None
        try:
            core = base64.urlsafe_b64decode(rest[:43] + "=")
        except (ValueError, base64.binascii.Error):
            return None
        index = self.decode_core(core[:32])
        if index is None or self.fcm_token(index) != token:
            return None
        return index


class PartitionedTokenCodec(TokenCodec):
    """Tokens of a fleet split into `partitions` parts; install i belongs to partition i % partitions.

    Same 32-byte core size, laid out as K (2 bytes, in clear) + hidden index (8) + MAC (22) over
    K and the index. The key also depends on the partition count, so tokens of a deployment with
    another N never decode here. A subclass rather than a flag keeps the unpartitioned hot path
    free of an extra branch.
    """
    __slots__ = ("partitions",)

    def __init__(self, seed: int | str | bytes, partitions: int) -> None:
        if not 2 <= partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be in 2..{MAX_PARTITIONS}, got {partitions}")
        raw = seed if isinstance(seed, bytes) else str(seed).encode()
        super().__init__(raw + b"/partitions=" + str(partitions).encode())
        self.partitions = partitions

    def core(self, index: int) -> bytes:
        ib = _INDEX.pack(index)
        kb = _PART.pack(index % self.partitions)
        mac = hashlib.blake2b(kb + ib, key=self._key, digest_size=22).digest()
        hidden = bytes(a ^ b for a, b in zip(ib, self._pad(mac)))
        return kb + hidden + mac

    def decode_core(self, core: bytes) -> int | None:
        if len(core) != 32:
            return None
        kb, hidden, mac = core[:2], core[2:10], core[10:]
        ib = bytes(a ^ b for a, b in zip(hidden, self._pad(mac)))
        if hashlib.blake2b(kb + ib, key=self._key, digest_size=22).digest() != mac:
            return None
        return _INDEX.unpack(ib)[0]

    def fcm_token(self, index: int) -> str:
        token = super().fcm_token(index)
        # the instance id is a hash of the core: replacing its first two characters keeps it 22 long
        return fcm_partition_prefix(index % self.partitions) + token[2:]


def make_codec(seed: int | str | bytes, partitions: int = 1) -> TokenCodec:
    """The codec of a fleet split into `partitions` parts (1 = not partitioned: today's tokens)."""
    return TokenCodec(seed) if partitions <= 1 else PartitionedTokenCodec(seed, partitions)
