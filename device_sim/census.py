"""What the fleet's installs are doing right now: online or not, app state, Low Power Mode, Doze,
standby bucket, background budget left, per platform.

A census of a million installs on every dashboard poll would stall the event loop, so it reads an
evenly spaced, fixed sample of the installs this process owns (every install when there are few)
and scales the counts up; `sampled` and `exact` say which it was. It only reads: installs that have
seen no traffic are evaluated from their seeded profile without being created, so looking at the
fleet never changes what the fleet does next.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .fleet import Fleet
from .profile import BACKGROUND, BUCKETS, FOREGROUND, NEVER, STOPPED, Profile, unit

if TYPE_CHECKING:
    from .sim import DeviceSim

DEFAULT_SAMPLE = 1024     # ~12 ms per census of a large fleet; a share is then within ±3 points (95%)


@dataclass(slots=True)
class _Untouched:
    """The fields the OS rules read, for an install that has no Device yet (same names)."""
    index: int
    profile: Profile
    state: str


def _owned(fleet: Fleet, shard: tuple[int, int]) -> range:
    """The installs this process owns: its partition's (`serve --partition`), of those the worker's
    shard. A process is either a partition or a worker of one whole fleet, never both (serve refuses)."""
    me, of = shard
    owned = fleet.owned()
    return owned if of == 1 else owned[me::of] if owned.step == 1 else range(me, len(fleet), of)


class FleetCensus:
    """Counts installs per platform and state; remembers the seeded profiles of the sampled installs
    (drawing a profile is most of the cost, and an untouched install's profile never changes)."""

    def __init__(self, sim: DeviceSim) -> None:
        self.sim = sim
        self._profiles: dict[int, Profile] = {}

    def _profile(self, index: int, ios: bool, cap: int) -> Profile:
        p = self._profiles.get(index)
        if p is None:
            if len(self._profiles) >= cap:      # a different sample (shard or size changed): start over
                self._profiles.clear()
            p = self._profiles[index] = self.sim.mix.profile(self.sim.seed, index, ios)
        return p

    def count(self, sample: int = DEFAULT_SAMPLE, shard: tuple[int, int] = (0, 1)) -> dict[str, object]:
        """Estimated install counts per platform and state, from up to `sample` installs of this shard
        (`shard` = (me, of): the installs with index % of == me, as a worker or partition owns them).
        Counts are integers so several processes' censuses add up (pushsim.cluster.merge sums them)."""
        sim = self.sim
        t = sim.sched.now
        owned = _owned(sim.fleet, shard)
        step = max(1, -(-len(owned) // sample)) if sample > 0 else len(owned) or 1
        picked = owned[::step]
        raw = {"ios": _blank(ios=True), "android": _blank(ios=False)}
        budget_left = 0.0
        for index in picked:
            ios = sim.fleet.is_ios(index)
            counts = raw["ios" if ios else "android"]
            d = sim.devices.get(index)
            if d is None:
                p = self._profile(index, ios, 2 * len(picked))
                view: object = _Untouched(index, p, p.app_state)
                online = _connected(sim, index, p.offline, t)
                forced = None
            else:
                view, p = d, d.profile
                online = sim.online(d, t)
                forced = d.forced_online
            counts["installs"] += 1
            counts["online" if online else "offline"] += 1
            if forced is not None:
                counts["connectivity_pinned"] += 1
            counts[_STATE_KEYS.get(getattr(view, "state"), "background")] += 1
            if p.low_power:
                counts["low_power"] += 1
            if ios:
                if not p.bar:
                    counts["background_refresh_off"] += 1
                tokens, throttled = sim.ios.budget_at(d, t) if d is not None else (sim.params.ios.budget_burst, False)
                budget_left += tokens
                if throttled:
                    counts["throttled"] += 1
                if d is not None and d.held is not None:
                    counts["holding_push"] += 1
            else:
                if sim.android.dozing(view, t):   # type: ignore[arg-type]   # reads index, profile, state only
                    counts["dozing"] += 1
                counts["bucket_" + p.bucket] += 1
                if d is not None and d.deferred:
                    counts["deferred_by_doze"] += 1
            if d is not None and d.stored_count():
                counts["stored_for_offline"] += 1
        scale = len(owned) / len(picked) if len(picked) else 0.0
        out: dict[str, object] = {
            "sampled": len(picked),
            "installs": len(owned),
            "exact": step == 1,
            # iOS budget left summed over the estimated iOS installs; divide by ios.installs for the mean
            "ios_budget_tokens": round(budget_left * scale, 1),
        }
        for platform, counts in raw.items():
            out[platform] = {k: round(v * scale) for k, v in counts.items()}
        return out


def census(sim: DeviceSim, sample: int = DEFAULT_SAMPLE, shard: tuple[int, int] = (0, 1)) -> dict[str, object]:
    """One census without a remembered sample (tests, one-off callers)."""
    return FleetCensus(sim).count(sample, shard)


_STATE_KEYS = {FOREGROUND: "foreground", BACKGROUND: "background", STOPPED: "force_quit", NEVER: "never_launched"}


def _blank(ios: bool) -> dict[str, int]:
    keys = ["installs", "online", "offline", "connectivity_pinned", "foreground", "background", "force_quit",
            "never_launched", "low_power", "stored_for_offline"]
    if ios:
        keys += ["background_refresh_off", "throttled", "holding_push"]
    else:
        keys += ["dozing", "deferred_by_doze"] + ["bucket_" + b for b in BUCKETS]
    return dict.fromkeys(keys, 0)


def _connected(sim: DeviceSim, index: int, offline: float, t: float) -> bool:
    # The same draw DeviceSim.online makes for a device with no pinned connectivity.
    if offline <= 0.0:
        return True
    if offline >= 1.0:
        return False
    return unit(sim.seed, index, 4, int(t // sim.params.connectivity_slot)) >= offline

