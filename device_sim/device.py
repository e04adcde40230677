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


class Device:
    __slots__ = (
        "index", "ios", "app", "rng", "p", "state", "forced_online",
        # both platforms
        "reconnect_timer", "open_timer", "session_timer", "version", "version_at", "ready",
        "announced", "announced_at", "conn_slot", "conn_up",
        # iOS: one held background push (device side) and one stored push (APNs side)
        "held", "held_timer", "stored", "tokens", "tokens_t", "day_start", "day_used",
        # Android: store while offline, Doze deferral, priority accounting
        "stored_list", "collapse", "deleted_pending", "deferred", "window_timer", "hp_times", "quiet_hp",
    )

    def __init__(self, index: int, ios: bool, app: int, profile: Profile, rng: Stream,
                 now: float, burst: float, day_offset: float) -> None:
        self.index, self.ios, self.app, self.p, self.rng = index, ios, app, profile, rng
        self.state = profile.app_state
        self.forced_online: bool | None = None
        self.reconnect_timer: Timer | None = None
        self.open_timer: Timer | None = None
        self.session_timer: Timer | None = None
        self.version = 0                 # content version the app has made ready
        self.version_at = 0.0
        self.ready = False
        self.announced = 0               # newest content version a push told the install about
        self.announced_at = 0.0
        self.conn_slot = -1              # memo of the last connectivity slot looked up
        self.conn_up = True
        self.held: Notification | None = None
        self.held_timer: Timer | None = None
        self.stored: Notification | None = None
        self.tokens = burst
        self.tokens_t = now
        self.day_start = now - day_offset   # each device's 24 h budget resets at its own hour
        self.day_used = 0
        self.stored_list: list[Notification] = NO_LIST
        self.collapse: dict[str, Notification] = NO_MAP
        self.deleted_pending = False
        self.deferred: list[Notification] = NO_LIST
        self.window_timer: Timer | None = None
        # Sorted timestamps; lists, not deques: an empty deque alone costs ~600 bytes.
        self.hp_times: list[float] | None = None
        self.quiet_hp: list[float] | None = None

    def stored_count(self) -> int:
        return (1 if self.stored is not None else 0) + len(self.stored_list) + len(self.collapse)
