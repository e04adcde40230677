"""The bench: the one in-memory world the fakes, the fleet and the control API share."""
from __future__ import annotations

import time
from typing import Callable

from device_sim.clock import Scheduler, parse_clock
from device_sim.dispatch import Dispatcher
from device_sim.fleet import App, Fleet, parse_device_mix
from device_sim.journal import Journal
from device_sim.ledger import Ledger
from device_sim.params import SimParams
from device_sim.profile import FleetMix
from device_sim.scenario import sim_settings
from device_sim.sim import DeviceSim

from .config import Config
from .faults.hook import Faults

VIRTUAL_EPOCH = 1_700_000_000.0   # where virtual time starts unless told otherwise


def build_fleet(config: Config) -> Fleet:
    """The configured fleet. Deterministic: the same config gives the same installs and tokens in
    every process (cluster workers and the hub rely on it)."""
    fleet = Fleet(seed=config.seed, apps=(App(config.bundle_id, config.bundle_id),), environment=config.environment)
    fleet.populate(parse_device_mix(config.devices))
    return fleet


class Bench:
    def __init__(self, config: Config, *, schedule: Callable[[Callable[[], None]], object] | None = None,
                 now: Callable[[], float] = time.time,
                 settings: tuple[SimParams, FleetMix] | None = None) -> None:
        self.config = config
        self.sched = Scheduler()
        self.clock = parse_clock(config.clock, self.sched, now)
        if self.clock.mode == "virtual":
            self.sched.now = float(config.extra.get("start", VIRTUAL_EPOCH))
        else:
            self.sched.now = self.clock.device_now()
        self.now = self.clock.wall          # protocol time: JWT iat, apns-expiration, journal
        self._schedule = schedule
        self.fleet = build_fleet(config)
        self.ledger = Ledger()
        self.journal = Journal()
        # OS/app rules and fleet distributions: given, or from a scenario file (PUSHSIM_EXTRA-style).
        params, mix = settings or sim_settings(config.extra.get("scenario"))
        self.sim = DeviceSim(self.fleet, self.ledger, self.clock, self.sched, params, mix, seed=config.seed)
        if self.clock.mode != "virtual":
            from .app_fetch import AppFetcher   # real HTTP only when time is real
            self.sim.fetcher = AppFetcher()
        self.dispatcher = Dispatcher(self.ledger, self.sim, schedule)
        # Services with traffic state of their own (FCM quotas, topic subscriptions) forget it here too.
        self.reset_hooks: list[Callable[[], None]] = []
        self.faults = Faults(seed=config.seed, journal=self.journal, ledger=self.ledger, fleet=self.fleet,
                             now=self.now)

    def stats(self) -> dict[str, object]:
        """The funnel plus device metrics (receipt rate, background success, durations, freshness)."""
        return self.sim.stats()

    def reset(self) -> None:
        """Forget traffic (journal, ledger, per-install history) and fault rules; keep the fleet and credentials."""
        self.ledger.reset()
        self.journal.reset()
        self.fleet.uninstalled.clear()
        self.sim.reset()
        self.faults.clear()
        for hook in self.reset_hooks:
            hook()
