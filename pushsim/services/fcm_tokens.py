"""The fleet as FCM's registry of registration tokens, and FcmFailure → edge Reply."""
from __future__ import annotations

from device_sim.fleet import Fleet
from device_sim.tokens import TokenCodec
from fake_fcm.errors import FcmFailure
from fake_fcm.send import unknown_token_code
from pushsim.edge.types import Reply

JSON = (b"content-type", b"application/json; charset=UTF-8")


class TokenResolver:
    """Registration token → install index, or the FCM error code why not. Tokens of another project
    come from `foreign`."""

    CACHE = 1 << 17

    def __init__(self, fleet: Fleet, foreign: TokenCodec) -> None:
        self.fleet, self.foreign = fleet, foreign
        self._known: dict[str, int] = {}    # decoding costs ~50 µs; senders repeat tokens a lot

    def resolve(self, token: str) -> int | str:
        i = self._known.get(token)
        if i is None:
            i = self.fleet.resolve_fcm(token)
            if i is not None:
                if len(self._known) >= self.CACHE:
                    self._known.clear()
                self._known[token] = i
        if i is None:
            if self.foreign.fcm_index(token) is not None:
                return "SENDER_ID_MISMATCH"
            return unknown_token_code(token)
        if i in self.fleet.uninstalled:
            return "UNREGISTERED"
        return i


def reply(f: FcmFailure) -> Reply:
    hdrs = [] if any(k == b"content-type" for k, _ in f.headers) else [JSON]
    return Reply(f.status, hdrs + f.headers, f.body)
