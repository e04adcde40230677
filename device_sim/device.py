"""Mutable per-install state, created only when an install first sees traffic (or a state change)."""
from __future__ import annotations

from types import MappingProxyType
from typing import Any

from .clock import Timer
from .notification import Notification
from .profile import Profile, Stream


# Shared empty stand-ins for the per-install containers most installs never fill: a million active
# installs would otherwise carry three empty containers (~170 bytes) each. Policies swap in a real
# list or dict at the first write (`is NO_LIST` / `is NO_MAP`).
NO_LIST: Any = ()
NO_MAP: Any = MappingProxyType({})


class Device(Stream):
    """State both platforms share. Each install is an `IosDevice` or an `AndroidDevice` (see
    `make_device`), which adds slots only for its own platform's state: the other platform's fields
    read as their empty defaults (class attributes) and are never written.

    The install's random stream lives in the device itself (`d.rng is d`): one object less per
    active install. It continues the stream the profile was drawn from."""

    __slots__ = (
        "index", "profile", "state", "forced_online",
        "reconnect_timer", "session_timer", "version", "version_at", "ready",
        "announced", "announced_at", "conn_slot", "conn_up",
    )
    ios: bool
    # iOS: one held background push (device side) and one stored push (APNs side)
    held: Notification | None = None
    held_timer: Timer | None = None
    stored: Notification | None = None
    tokens = 0.0
    tokens_t = 0.0
    day_start = 0.0
    day_used = 0
    # Android: store while offline, Doze deferral, priority accounting
    stored_list: list[Notification] = NO_LIST
    collapse: dict[str, Notification] = NO_MAP
    deleted_pending = False
    deferred: list[Notification] = NO_LIST
    window_timer: Timer | None = None
    hp_times: list[float] | None = None
    quiet_hp: list[float] | None = None

    def __init__(self, index: int, profile: Profile, rng: Stream) -> None:
        self.key, self.n = rng.key, rng.n
        self.index, self.profile = index, profile
        self.state = profile.app_state
        self.forced_online: bool | None = None
        self.reconnect_timer: Timer | None = None
        self.session_timer: Timer | None = None
        self.version = 0                 # content version the app has made ready
        self.version_at = 0.0
        self.ready = False
        self.announced = 0               # newest content version a push told the install about
        self.announced_at = 0.0
        self.conn_slot = -1              # memo of the last connectivity slot looked up
        self.conn_up = True

    @property
    def rng(self) -> Stream:
        return self

    def stored_count(self) -> int:
        return (1 if self.stored is not None else 0) + len(self.stored_list) + len(self.collapse)


class IosDevice(Device):
    __slots__ = ("held", "held_timer", "stored", "tokens", "tokens_t", "day_start", "day_used")
    ios = True

    def __init__(self, index: int, profile: Profile, rng: Stream, now: float, burst: float,
                 day_offset: float) -> None:
        super().__init__(index, profile, rng)
        self.held = None
        self.held_timer = None
        self.stored = None
        self.tokens = burst
        self.tokens_t = now
        self.day_start = now - day_offset   # each device's 24 h budget resets at its own hour
        self.day_used = 0


class AndroidDevice(Device):
    __slots__ = ("stored_list", "collapse", "deleted_pending", "deferred", "window_timer", "hp_times", "quiet_hp")
    ios = False

    def __init__(self, index: int, profile: Profile, rng: Stream) -> None:
        super().__init__(index, profile, rng)
        self.stored_list = NO_LIST
        self.collapse = NO_MAP
        self.deleted_pending = False
        self.deferred = NO_LIST
        self.window_timer = None
        # Sorted timestamps; lists, not deques: an empty deque alone costs ~600 bytes.
        self.hp_times = None
        self.quiet_hp = None


def make_device(index: int, ios: bool, profile: Profile, rng: Stream, now: float, burst: float,
                day_offset: float) -> Device:
    # No app index and no open-timer handle per install: nothing reads them (the fleet knows the
    # app; the open timer is never cancelled), and at a million installs each slot is 8 MB.
    if ios:
        return IosDevice(index, profile, rng, now, burst, day_offset)
    return AndroidDevice(index, profile, rng)
