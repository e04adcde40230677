"""The bench: the one in-memory world the fakes, the fleet and the control API share."""
from __future__ import annotations

import time
from typing import Callable

from device_sim.dispatch import DeliverAtOnce, Dispatcher
from device_sim.fleet import App, Fleet, parse_device_mix
from device_sim.journal import Journal
from device_sim.ledger import Ledger

from .config import Config
from .faults.hook import Faults


class Bench:
    def __init__(self, config: Config, *, schedule: Callable[[Callable[[], None]], object] | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.config = config
        self.now = now                      # protocol (wall) time: JWT iat, apns-expiration, journal
        self._schedule = schedule
        self.fleet = Fleet(seed=config.seed, apps=(App(config.bundle_id, config.bundle_id),),
                           environment=config.environment)
        self.fleet.populate(parse_device_mix(config.devices))
        self.ledger = Ledger()
        self.journal = Journal()
        self.dispatcher = Dispatcher(self.ledger, DeliverAtOnce(self.ledger, now), schedule)
        self.faults = Faults(seed=config.seed, journal=self.journal, ledger=self.ledger, fleet=self.fleet, now=now)

    def reset(self) -> None:
        """Forget traffic (journal, ledger, per-install history) and fault rules; keep the fleet and credentials."""
        self.ledger.reset()
        self.journal.reset()
        self.fleet.uninstalled.clear()
        self.faults.clear()
