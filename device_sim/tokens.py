"""Device tokens that carry their own install index.

APNs tokens are 64 lowercase hex characters and FCM registration tokens look like real ones
(`<instance id>:APA91b<url-safe string>`), yet both decode back to the install index with a keyed
MAC. That keeps a million-install fleet free of a token dictionary, and lets any worker process
derive a token's owner without asking anyone.
"""
from __future__ import annotations

import base64
import hashlib
import struct

_INDEX = struct.Struct(">Q")


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
