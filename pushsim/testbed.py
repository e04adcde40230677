"""The testbed: the device world (device_sim.world) composed with pushsim's config and fault rules.

It is what the fake services, the control API and the cluster share. The world's parts are reachable
directly (`testbed.fleet`, `testbed.ledger`, ...) because every service reads them.
"""
from __future__ import annotations

import time
from typing import Callable

from device_sim.cohorts import Experiment
from device_sim.params import SimParams
from device_sim.profile import FleetMix
from device_sim.scenario import sim_settings
from device_sim.world import VIRTUAL_EPOCH, Submitter, World, WorldSettings, build_fleet

from .app_fetch import AppFetcher
from .config import Config
from .faults.hook import Faults

__all__ = ["Testbed", "VIRTUAL_EPOCH", "build_fleet", "world_settings"]


def world_settings(config: Config) -> WorldSettings:
    start = config.extra.get("start")
    return WorldSettings(devices=config.devices, seed=config.seed, clock=config.clock,
                         environment=config.environment, bundle_id=config.bundle_id,
                         start=None if start is None else float(start),
                         partition=config.partition_of())


class Testbed:
    __test__ = False      # not a pytest test class, whatever its name

    def __init__(self, config: Config, *, schedule: Callable[[Callable[[], None]], object] | None = None,
                 now: Callable[[], float] = time.time,
                 settings: tuple[SimParams, FleetMix] | None = None,
                 route: Callable[[World], Submitter] | None = None) -> None:
        self.config = config
        ws = world_settings(config)
        # OS/app rules and fleet distributions: given, or from a scenario file (PUSHSIM_EXTRA-style).
        rules = settings or sim_settings(config.extra.get("scenario"))
        # The fetcher does the apps' real HTTP; the world uses it only when time is real. `route`: see World.
        path = config.extra.get("experiment")
        experiment = Experiment.from_file(path) if path else None      # arms and holdout (serve --experiment)
        self.world = world = World(ws, schedule=schedule, now=now, rules=rules, fetcher=AppFetcher(), route=route,
                                   experiment=experiment)
        self.experiment = experiment
        self.sched, self.clock, self.now = world.sched, world.clock, world.now
        self.fleet, self.ledger, self.journal = world.fleet, world.ledger, world.journal
        self.device_sim, self.dispatcher = world.device_sim, world.dispatcher
        self.reset_hooks = world.reset_hooks
        self.faults = Faults(seed=config.seed, journal=self.journal, ledger=self.ledger, fleet=self.fleet,
                             now=self.now)

    def stats(self) -> dict[str, object]:
        return self.world.stats()

    def reset(self) -> None:
        """Forget traffic (journal, ledger, per-install history) and fault rules; keep the fleet and credentials."""
        self.world.reset()
        self.faults.clear()
