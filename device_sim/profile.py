"""Each install's static profile, drawn on demand from (seed, install index) — never stored.

Two installs' draws never depend on each other or on traffic: a million-install fleet costs no
memory until an install receives something, and a replay redraws exactly the same devices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

_M64 = (1 << 64) - 1
_sqrt, _log, _cos, _TWO_PI = math.sqrt, math.log, math.cos, 2.0 * math.pi

# App states. force_quit (iOS) and force_stopped (Android) are the same fact: the user stopped it.
FOREGROUND, BACKGROUND, STOPPED, NEVER = "foreground", "background", "stopped", "never_launched"
_STATE_ALIASES = {"foreground": FOREGROUND, "background": BACKGROUND, "suspended": BACKGROUND,
                  "force_quit": STOPPED, "force_stopped": STOPPED, "stopped": STOPPED,
                  "never_launched": NEVER}
BUCKETS = ("active", "working_set", "frequent", "rare", "restricted", "never")


def mix64(*parts: int) -> int:
    """splitmix64 over the parts: a fast, well-spread key for per-install random streams."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (p & _M64)) & _M64
        x = (x + 0x9E3779B97F4A7C15) & _M64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        x ^= x >> 31
    return x


def unit(*parts: int) -> float:
    """A uniform [0, 1) draw keyed by the parts: Python's (deterministic) tuple hash of ints,
    then one splitmix64 finalizer round — the hot path (connectivity slots, Doze phases)."""
    x = (hash(parts) * 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return (x ^ (x >> 31)) / 18446744073709551616.0


class Stream:
    """A per-install random stream in two machine words: draw k is a hash of (key, k).

    random.Random keeps 2.5 KB of Mersenne Twister state; a million active installs can't afford
    that, and a counter-based stream is also trivially reproducible.
    """
    __slots__ = ("key", "n")

    def __init__(self, key: int) -> None:
        self.key, self.n = key, 0

    # The draws below inline `unit(self.key, n)` (the same arithmetic, bit for bit): they run several
    # times per notification, and the call and its *args tuple cost as much as the hashing.
    def random(self) -> float:
        n = self.n = self.n + 1
        x = (hash((self.key, n)) * 0x9E3779B97F4A7C15) & _M64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        return (x ^ (x >> 31)) / 18446744073709551616.0

    def skip(self) -> None:
        """Use up one draw without computing it (when its outcome is already certain)."""
        self.n += 1

    def gauss(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        key, n = self.key, self.n
        self.n = n + 2
        x = (hash((key, n + 1)) * 0x9E3779B97F4A7C15) & _M64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        u1 = 1.0 - (x ^ (x >> 31)) / 18446744073709551616.0     # (0, 1]: log is finite
        x = (hash((key, n + 2)) * 0x9E3779B97F4A7C15) & _M64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        u2 = (x ^ (x >> 31)) / 18446744073709551616.0
        return mu + sigma * _sqrt(-2.0 * _log(u1)) * _cos(_TWO_PI * u2)

    def expovariate(self, rate: float) -> float:
        return -math.log(1.0 - self.random()) / rate

    def randrange(self, n: int) -> int:
        return min(n - 1, int(self.random() * n))

    def shuffle(self, items: list[Any]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.randrange(i + 1)
            items[i], items[j] = items[j], items[i]


def canonical_state(name: str) -> str:
    try:
        return _STATE_ALIASES[name]
    except KeyError:
        raise ValueError(f"unknown app state {name!r}") from None


@dataclass(slots=True)
class Profile:
    os_version: int
    app_state: str
    low_power: bool = False
    bar: bool = True                 # iOS Background App Refresh
    charging: bool = False
    doze: bool = False               # Android: idle, screen off → Doze outside maintenance windows
    bucket: str = "active"           # Android App Standby bucket
    offline: float = 0.0             # share of connectivity slots the install is offline
    opens_per_day: float = 0.0


def _pick(rng: Stream, dist: dict[str, float]) -> str:
    if len(dist) == 1:
        # One choice: it is the answer whatever the draw (even a draw that rounds up to 1.0 ends on
        # the last key), so only use the draw up.
        rng.n += 1
        return next(iter(dist))
    total = sum(dist.values())
    r = rng.random() * total
    for k, w in dist.items():
        r -= w
        if r < 0:
            return k
    return next(reversed(dist))


@dataclass(slots=True)
class PlatformMix:
    """Distributions for one platform's installs (a scenario's `[profile.ios]` / `[profile.android]`)."""
    os_version: dict[str, float]
    app_state: dict[str, float]
    low_power: float = 0.0
    bar_off: float = 0.0
    charging: float = 0.0
    doze: float = 0.0
    bucket: dict[str, float] = field(default_factory=lambda: {"active": 1.0})
    offline: float = 0.0
    opens_per_day: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: PlatformMix) -> PlatformMix:
        m = PlatformMix(**{f: getattr(base, f) for f in base.__slots__})   # type: ignore[attr-defined]
        for k, v in d.items():
            if k not in m.__slots__:   # type: ignore[attr-defined]
                raise ValueError(f"unknown profile setting {k!r}")
            setattr(m, k, {str(a): float(b) for a, b in v.items()} if isinstance(v, dict) else float(v))
        for s in m.app_state:
            canonical_state(s)
        for b in m.bucket:
            if b not in BUCKETS:
                raise ValueError(f"unknown standby bucket {b!r}")
        return m

    def draw(self, rng: Stream) -> Profile:
        # Always the same number of draws in the same order, so adding a field later at the end
        # leaves earlier fields of every install unchanged.
        # (Positional arguments, in Profile's field order: this runs once per install that sees traffic.)
        random = rng.random
        os_version = int(_pick(rng, self.os_version))
        state = _pick(rng, self.app_state)
        app_state = _STATE_ALIASES.get(state) or canonical_state(state)   # (the call raises for a bad name)
        low_power = random() < self.low_power
        bar = not random() < self.bar_off
        charging = random() < self.charging
        doze = random() < self.doze
        bucket = _pick(rng, self.bucket)
        opens = self.opens_per_day * (0.25 + 1.5 * random()) if self.opens_per_day else 0.0
        return Profile(os_version, app_state, low_power, bar, charging, doze, bucket, self.offline, opens)


# A plausible fleet: most apps in the background, a few stopped, some devices in Low Power Mode
# or Doze, a little offline time. "ideal" scenarios override all of it.
DEFAULT_IOS = PlatformMix(os_version={"16": 0.1, "17": 0.3, "18": 0.6},
                          app_state={"background": 0.9, "foreground": 0.03, "force_quit": 0.07},
                          low_power=0.1, bar_off=0.05, charging=0.2, offline=0.05, opens_per_day=4.0)
DEFAULT_ANDROID = PlatformMix(os_version={"11": 0.1, "12": 0.2, "13": 0.3, "14": 0.4},
                              app_state={"background": 0.92, "foreground": 0.03, "force_stopped": 0.05},
                              charging=0.2, doze=0.4, offline=0.05, opens_per_day=4.0,
                              bucket={"active": 0.2, "working_set": 0.3, "frequent": 0.3, "rare": 0.15,
                                      "restricted": 0.05})


@dataclass(slots=True)
class FleetMix:
    ios: PlatformMix = field(default_factory=lambda: DEFAULT_IOS)
    android: PlatformMix = field(default_factory=lambda: DEFAULT_ANDROID)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FleetMix:
        return cls(PlatformMix.from_dict(d.get("ios", {}), DEFAULT_IOS),
                   PlatformMix.from_dict(d.get("android", {}), DEFAULT_ANDROID))

    def profile(self, seed: int, index: int, ios: bool, rng: Stream | None = None) -> Profile:
        """The install's profile; pass `rng` to keep drawing from the same per-install stream after."""
        return (self.ios if ios else self.android).draw(rng or install_rng(seed, index))


def install_rng(seed: int, index: int) -> Stream:
    """The install's own random stream: its profile first, then its app's draws, in event order."""
    return Stream(mix64(seed, index, 1))


# Real UTC offsets (minutes), weighted roughly by where app users live; an install's is seeded.
UTC_OFFSETS = (-480, -420, -360, -300, -300, -240, -180, 0, 0, 60, 60, 60, 120, 180, 330, 330, 420,
               480, 480, 540, 600)


def utc_offset_minutes(seed: int, index: int) -> int:
    """The install's time zone (for quiet hours in local time): a pure function of (seed, index)."""
    return UTC_OFFSETS[int(unit(seed, index, 11) * len(UTC_OFFSETS))]
