"""The device fleet at work: the dispatch core's policy, routing each notification to its install's
OS rules and keeping the ledger's accounting exact.

Installs are created lazily on first traffic; their static profile comes from (seed, index). Each
notification is handled at its own arrival time on the device clock, after every timer due before
it — so the outcome depends only on the seed and the arrival times, which the journal records.
"""
from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Iterable

from .android import AndroidPolicy
from .app import AppModel, Fetcher
from .census import DEFAULT_SAMPLE, FleetCensus
from .clock import Clock, LoopDriver, Scheduler, Timer
from .cohorts import HOLDOUT_REASON, Tally
from .device import Device, make_device
from .fleet import Fleet
from .ios import IosPolicy
from .ledger import Ledger
from .metrics import Metrics
from .notification import Notification
from .params import DAY, SimParams
from .profile import BUCKETS, STOPPED, FleetMix, canonical_state, install_rng, unit


class DeviceSim:
    def __init__(self, fleet: Fleet, ledger: Ledger, clock: Clock, sched: Scheduler,
                 params: SimParams | None = None, mix: FleetMix | None = None, seed: int = 0) -> None:
        self.fleet, self.ledger, self.clock, self.sched = fleet, ledger, clock, sched
        self.params = params or SimParams()
        self.mix = mix or FleetMix()
        self.seed = seed
        self.metrics = Metrics()
        self.app = AppModel(self)
        self.ios = IosPolicy(self, self.params.ios)
        self.android = AndroidPolicy(self, self.params.android, self.params.app, seed)
        self.devices: dict[int, Device] = {}
        self._expiry: dict[int, Timer] = {}
        self.events = 0
        self.fetcher: Fetcher | None = None
        # State changes made from outside (control API, tests), with the ledger position they came
        # at, so a replay applies them at the same point of the traffic.
        self.interventions: list[tuple[float, int, int, dict[str, Any]]] = []
        self.driver: LoopDriver | None = None
        # An experiment's per-install tally (None = no experiment: every hook below is one test).
        self.cohorts: Tally | None = None
        self.cohorts_since = sched.now      # device time the tally started (for per-day rates)
        # The sender's content timeline (device_sim.content), when a scenario has one.
        self.content: Any = None
        # (me, of): this process owns the installs with index % of == me (cluster workers set it).
        self.shard = (0, 1)
        self._census: FleetCensus | None = None

    # the dispatch core's Policy --------------------------------------------------------------------
    def handle(self, batch: list[Notification]) -> None:
        if self.driver is None and self.clock.mode != "virtual":
            self._attach_running_loop()
        sched, clock = self.sched, self.clock
        # The real and virtual clocks map wall time to device time one to one: skip the call.
        to_device = None if type(clock).device is Clock.device else clock.device
        devices, app, ios, android = self.devices, self.app, self.ios, self.android
        for n in batch:
            t = n.received_at if to_device is None else to_device(n.received_at)
            if t > sched.now:
                sched.run_until(t)
            else:
                t = sched.now
            n.at = t                   # the device time it was handled at: what a replay uses
            self.events += 1
            # arrive(n, t), inlined: this loop runs once per accepted notification
            d = devices.get(n.install)
            if d is None:
                d = self.device(n.install, t)
            app.announce(d, n, t)      # the content exists whether or not the push reaches the app
            tally = self.cohorts
            if tally is not None and tally.withheld(n.install, n.content_available):
                if tally.experiment.enforced:
                    self.drop(n, HOLDOUT_REASON, t)
                    continue
                tally.sent_to_holdout += 1
            (ios if d.ios else android).arrive(d, n, t)

    def arrive(self, n: Notification, t: float) -> None:
        # handle() inlines this body; keep the two the same
        d = self.device(n.install, t)
        self.app.announce(d, n, t)      # the content exists whether or not the push reaches the app
        tally = self.cohorts
        if tally is not None and tally.withheld(n.install, n.content_available):
            if tally.experiment.enforced:
                self.drop(n, HOLDOUT_REASON, t)
                return
            tally.sent_to_holdout += 1
        (self.ios if d.ios else self.android).arrive(d, n, t)

    def advance(self, t: float | None = None) -> None:
        """Fire every timer due by device time `t` (default: now on this sim's clock)."""
        self.sched.run_until(self.clock.device_now() if t is None else t)

    def run_until(self, t: float) -> None:
        self.sched.run_until(t)

    def _attach_running_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.attach_loop(loop)

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Real/scaled clock: let the event loop wake the fleet when its next timer is due."""
        if self.driver is not None:
            self.driver.close()
        self.driver = LoopDriver(self.sched, self.clock, self.advance, loop)

    # installs -----------------------------------------------------------------------------------------
    def device(self, index: int, t: float | None = None) -> Device:
        d = self.devices.get(index)
        if d is None:
            now = self.sched.now if t is None else t
            ios = self.fleet.is_ios(index)
            rng = install_rng(self.seed, index)
            d = make_device(index, ios, self.mix.profile(self.seed, index, ios, rng), rng,
                            now, self.params.ios.budget_burst, unit(self.seed, index, 3) * DAY)
            self.devices[index] = d
            self.app.schedule_open(d, now)
        return d

    def online(self, d: Device, t: float) -> bool:
        if d.forced_online is not None:
            return d.forced_online
        off = d.profile.offline
        if off <= 0.0:
            return True
        if off >= 1.0:
            return False
        slot = int(t // self.params.connectivity_slot)
        if slot != d.conn_slot:
            d.conn_slot, d.conn_up = slot, unit(self.seed, d.index, 4, slot) >= off
        return d.conn_up

    def next_online(self, d: Device, t: float) -> float | None:
        if d.forced_online is not None or d.profile.offline >= 1.0:
            return None            # forced offline: only set_state(online=True) brings it back
        slot_len = self.params.connectivity_slot
        slot = int(t // slot_len) + 1
        for _ in range(100_000):
            if unit(self.seed, d.index, 4, slot) >= d.profile.offline:
                return slot * slot_len
            slot += 1
        return None

    def ensure_reconnect(self, d: Device, t: float) -> None:
        if not self.sched.active(d.reconnect_timer):
            at = self.next_online(d, t)
            if at is not None:
                d.reconnect_timer = self.sched.call_at(at, self._reconnect, d)

    def _reconnect(self, d: Device) -> None:
        d.reconnect_timer = None
        t = self.sched.now
        if not self.online(d, t):
            self.ensure_reconnect(d, t)
            return
        (self.ios if d.ios else self.android).reconnect(d, t)

    # accounting -----------------------------------------------------------------------------------------
    def deliver(self, n: Notification, t: float) -> None:
        waited = n.reason
        if waited is not None and waited != "queued":
            n.held = waited
        if not n.content_available:
            d = self.devices.get(n.install)
            if d is not None:
                n.ready = self.app.ready_for(d, n)
            tally = self.cohorts
            if tally is not None:
                tally.add("visible", n.install)
                if n.ready:
                    tally.add("ready_visible", n.install)
        self.ledger.deliver_note(n, t)

    def drop(self, n: Notification, reason: str, t: float) -> None:
        if self._expiry:
            self.cancel_expiry(n)
        if self.cohorts is not None:
            self.cohorts.dropped(n.install, reason)
        self.ledger.drop_note(n, reason, t)

    def repend(self, n: Notification, reason: str) -> None:
        if n.reason != reason:
            self.ledger.repend_note(n, reason)

    def expiry_time(self, n: Notification, t: float, store_max: float) -> float:
        if n.expiration is None:
            return t + store_max
        return min(self.clock.device(n.expiration), t + store_max)

    def expire_at(self, n: Notification, d: Device, at: float) -> None:
        self.cancel_expiry(n)
        self._expiry[n.seq] = self.sched.call_at(at, self._expire, (n, d))

    def cancel_expiry(self, n: Notification) -> None:
        timer = self._expiry.pop(n.seq, None)
        if timer is not None:
            timer[2] = timer[3] = None     # Scheduler.cancel: frees the (notification, device) pair

    def _expire(self, arg: tuple[Notification, Device]) -> None:
        n, d = arg
        self._expiry.pop(n.seq, None)
        (self.ios if d.ios else self.android).expire(d, n, self.sched.now)

    # hooks from the app model -------------------------------------------------------------------------
    def on_overrun(self, d: Device) -> None:
        (self.ios if d.ios else self.android).on_overrun(d)

    def on_open(self, d: Device, t: float) -> None:
        (self.ios if d.ios else self.android).on_open(d, t)

    # control: what tests, scenarios and the control API change ----------------------------------------
    def set_state(self, index: int, **changes: Any) -> Device:
        """Change an install's situation now: app_state, online, low_power, bar, charging, doze,
        bucket, os_version, or open=True (the user launches the app)."""
        if self.clock.mode != "virtual":
            self.advance()
        t = self.sched.now
        self.interventions.append((t, self.ledger.next_seq, index, dict(changes)))
        d = self.device(index, t)
        policy = self.ios if d.ios else self.android
        for key, value in changes.items():
            if key == "app_state":
                d.state = canonical_state(str(value))
                if d.state == STOPPED:
                    policy.on_stop(d, t)
            elif key == "online":
                d.forced_online = None if value is None else bool(value)
            elif key in ("low_power", "bar", "charging", "doze"):
                setattr(d.profile, key, bool(value))
            elif key == "bucket":
                if value not in BUCKETS:
                    raise ValueError(f"unknown standby bucket {value!r}")
                d.profile.bucket = str(value)
            elif key == "os_version":
                d.profile.os_version = int(value)
            elif key != "open":
                raise ValueError(f"unknown device setting {key!r}")
        if changes.get("open"):
            self.app.open(d, t)
        if self.online(d, t) and (d.stored_count() or d.deleted_pending):
            self.sched.cancel(d.reconnect_timer)
            self._reconnect(d)
        if d.ios:
            self.ios.try_release(d, t)
        elif d.deferred and not self.android.dozing(d, t):
            self.android.flush_deferred(d, t)
        return d

    def open_app(self, index: int) -> None:
        self.set_state(index, open=True)

    def describe(self, index: int) -> dict[str, object]:
        """The install's OS-side state, for `/devices/{token}`."""
        self._catch_up()
        d = self.devices.get(index)
        if d is None:
            ios = self.fleet.is_ios(index)
            p = self.mix.profile(self.seed, index, ios)
            return {"app_state": p.app_state, "os_version": p.os_version, "low_power": p.low_power,
                    "background_app_refresh": p.bar, "charging": p.charging, "doze": p.doze,
                    "bucket": p.bucket, "active": False}
        t = self.sched.now
        out: dict[str, object] = {
            "app_state": d.state, "os_version": d.profile.os_version, "online": self.online(d, t),
            "low_power": d.profile.low_power, "background_app_refresh": d.profile.bar, "charging": d.profile.charging,
            "doze": d.profile.doze, "bucket": d.profile.bucket, "active": True, "content_version": d.version,
            "stored": d.stored_count(), "held": d.held.seq if d.held is not None else None,
            "deferred": len(d.deferred),
        }
        if d.ios:
            out["budget_tokens"] = round(d.tokens, 3)
            out["budget_used_24h"] = d.day_used
        return out

    def _catch_up(self) -> None:
        # Real/scaled time without a running loop (a synchronous caller): fire what is due now.
        if self.driver is None and self.clock.mode != "virtual":
            self.advance()

    def experiment_outcomes(self) -> dict[str, object] | None:
        """Per-arm outcomes and lifts (device_sim.lift) since the tally started; None without an experiment."""
        if self.cohorts is None:
            return None
        self._catch_up()
        from .lift import outcomes     # scipy loads only for runs that have an experiment
        return outcomes(self.cohorts, len(self.fleet), (self.sched.now - self.cohorts_since) / DAY)

    def census(self, sample: int = DEFAULT_SAMPLE) -> dict[str, object]:
        """Estimated installs per platform and state now (device_sim.census), for this shard."""
        self._catch_up()
        if self._census is None:
            self._census = FleetCensus(self)
        return self._census.count(sample, self.shard)

    def stats(self) -> dict[str, object]:
        self._catch_up()
        out = self.metrics.as_dict(self.ledger)
        out["events"] = self.events + self.sched.fired
        out["active_installs"] = len(self.devices)
        out["clock"] = self.clock.spec()
        return out

    def reset(self) -> None:
        self.sched.clear()
        self.devices.clear()
        self._expiry.clear()
        self.metrics.reset()
        self.events = 0
        self.interventions.clear()
        if self.cohorts is not None:
            self.cohorts.reset()
        self.cohorts_since = self.sched.now
        if self.driver is not None:
            self.driver.close()
            self.driver = None


def outcome_digest(ledger: Ledger, seqs: Iterable[int] | None = None) -> str:
    """sha256 over every notification's outcome, reason and settle time, in acceptance order."""
    recs = ledger.records
    return digest_of((seq, recs[seq].outcome.value, recs[seq].reason, recs[seq].settled_at)
                     for seq in (recs if seqs is None else seqs))


def digest_of(outcomes: Iterable[tuple[int, str, str | None, float | None]]) -> str:
    """`outcome_digest` over (seq, outcome, reason, settled_at) rows, e.g. copied from the ledger earlier."""
    h = hashlib.sha256()
    for seq, outcome, reason, settled_at in outcomes:
        at = "" if settled_at is None else f"{settled_at:.3f}"
        h.update(f"{seq}|{outcome}|{reason or ''}|{at}\n".encode())
    return h.hexdigest()


def outcome_lines(ledger: Ledger) -> list[str]:
    out = []
    for seq, r in ledger.records.items():
        out.append(f"{seq} {r.outcome.value} {r.reason or ''} {'' if r.settled_at is None else f'{r.settled_at:.3f}'}")
    return out


