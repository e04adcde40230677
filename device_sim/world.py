"""The device world: clock, scheduler, fleet, ledger, journal, OS policies and dispatcher in one object.

Everything the fakes, the control API, scenario runs and replays share about the devices lives here;
it knows nothing of sockets, services or faults (pushsim composes it with those, in pushsim/testbed.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from .clock import Scheduler, parse_clock
from .cohorts import Experiment, Tally
from .dispatch import Dispatcher
from .fleet import App, Fleet, parse_device_mix
from .journal import Journal
from .ledger import Ledger
from .notification import Notification
from .params import SimParams
from .profile import FleetMix
from .sim import DeviceSim, Fetcher

VIRTUAL_EPOCH = 1_700_000_000.0   # where virtual time starts unless told otherwise


class Submitter(Protocol):
    """Where the fakes hand accepted notifications: `submit` records it pending and returns its seq."""
    def submit(self, note: Notification) -> int: ...


@dataclass(frozen=True, slots=True)
class WorldSettings:
    """What a world is built from (pushsim's Config carries these as flags)."""
    devices: str = "1000"                 # N (default mix) or ios=N,android=M
    seed: int = 0
    clock: str = "real"                   # real | scaled:FACTOR | virtual
    environment: str = "sandbox"          # APNs environment of the installs: sandbox | production
    bundle_id: str = "com.example.app"
    start: float | None = None            # virtual clock's first instant (default VIRTUAL_EPOCH)
    partition: tuple[int, int] | None = None   # (K, N): own only installs i % N == K (serve --partition)


def build_fleet(settings: WorldSettings) -> Fleet:
    """The configured fleet. Deterministic: the same settings give the same installs and tokens in
    every process (cluster workers and the hub rely on it)."""
    fleet = Fleet(seed=settings.seed, apps=(App(settings.bundle_id, settings.bundle_id),),
                  environment=settings.environment, partition=settings.partition)
    fleet.populate(parse_device_mix(settings.devices))
    return fleet


class World:
    def __init__(self, settings: WorldSettings, *, schedule: Callable[[Callable[[], None]], object] | None = None,
                 now: Callable[[], float] = time.time,
                 rules: tuple[SimParams, FleetMix] | None = None,
                 fetcher: Fetcher | None = None,
                 route: Callable[[World], Submitter] | None = None,
                 experiment: Experiment | None = None) -> None:
        """`schedule` runs the dispatcher's flush later (e.g. loop.call_soon; None = at once).
        `rules`: OS/app rule settings and fleet distributions (default: the defaults; a scenario
        file's come from device_sim.scenario.sim_settings). `fetcher` performs apps' real HTTP
        fetches (None = none; unused on the virtual clock). `route` builds what accepted
        notifications go through instead of this process's dispatcher (a cluster worker's router,
        which hands the installs it owns to `local_dispatcher`). `experiment`: arms and holdout
        (device_sim.cohorts); None = no experiment."""
        self.settings = settings
        self.sched = Scheduler()
        self.clock = parse_clock(settings.clock, self.sched, now)
        if self.clock.mode == "virtual":
            self.sched.now = VIRTUAL_EPOCH if settings.start is None else float(settings.start)
        else:
            self.sched.now = self.clock.device_now()
        self.now = self.clock.wall          # protocol time: JWT iat, apns-expiration, journal
        self.fleet = build_fleet(settings)
        self.ledger = Ledger()
        self.journal = Journal()
        params, mix = rules or (SimParams(), FleetMix())
        self.device_sim = DeviceSim(self.fleet, self.ledger, self.clock, self.sched, params, mix, seed=settings.seed)
        self.experiment = experiment
        if experiment is not None:
            self.device_sim.cohorts = Tally(experiment, len(self.fleet))
        if self.clock.mode != "virtual":    # virtual time has no real time to wait for a real fetch in
            self.device_sim.fetcher = fetcher
        self.local_dispatcher = Dispatcher(self.ledger, self.device_sim, schedule)   # this process's OS policies
        self.dispatcher: Submitter = self.local_dispatcher if route is None else route(self)
        # Parts with traffic state of their own (FCM quotas, topic subscriptions) forget it here too.
        self.reset_hooks: list[Callable[[], None]] = []

    def stats(self) -> dict[str, object]:
        """The funnel plus device metrics (receipt rate, background success, durations, freshness)."""
        return self.device_sim.stats()

    def reset(self) -> None:
        """Forget traffic (journal, ledger, per-install history); keep the fleet."""
        self.ledger.reset()
        self.journal.reset()
        self.fleet.uninstalled.clear()
        self.device_sim.reset()
        for hook in self.reset_hooks:
            hook()
