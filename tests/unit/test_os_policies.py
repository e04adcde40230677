"""The iOS and Android policies driven directly through their OsHost interface: no DeviceSim, no
fleet, no ledger, no pushsim. The stand-in host records what a policy asked for."""
from __future__ import annotations

from dataclasses import dataclass, field

from device_sim.clock import Scheduler
from device_sim.android import AndroidPolicy
from device_sim.device import Device, make_device
from device_sim.ios import IosPolicy
from device_sim.metrics import Metrics
from device_sim.notification import Notification
from device_sim.os_host import OsHost
from device_sim.params import DAY, AndroidParams, AppParams, IosParams
from device_sim.profile import BACKGROUND, STOPPED, Profile, Stream

T0 = 1_000_000.0


@dataclass
class RecordingApp:
    runs: list[tuple[int, float | None]] = field(default_factory=list)

    def run_task(self, d: Device, n: Notification, t: float, window: float | None) -> None:
        self.runs.append((n.seq, window))


class StubHost:
    """Books kept as plain lists; connectivity and expiry as simple switches."""

    def __init__(self) -> None:
        self.sched = Scheduler(T0)
        self.metrics = Metrics()
        self.app = RecordingApp()
        self.is_online = True
        self.delivered: list[int] = []
        self.dropped: list[tuple[int, str]] = []
        self.pending: dict[int, str] = {}
        self.expiries: dict[int, float] = {}
        self.reconnects = 0

    def deliver(self, n: Notification, t: float) -> None:
        self.pending.pop(n.seq, None)
        self.delivered.append(n.seq)

    def drop(self, n: Notification, reason: str, t: float) -> None:
        self.pending.pop(n.seq, None)
        self.expiries.pop(n.seq, None)
        self.dropped.append((n.seq, reason))

    def repend(self, n: Notification, reason: str) -> None:
        self.pending[n.seq] = reason

    def expiry_time(self, n: Notification, t: float, store_max: float) -> float:
        return t + store_max if n.expiration is None else min(n.expiration, t + store_max)

    def expire_at(self, n: Notification, d: Device, at: float) -> None:
        self.expiries[n.seq] = at

    def cancel_expiry(self, n: Notification) -> None:
        self.expiries.pop(n.seq, None)

    def online(self, d: Device, t: float) -> bool:
        return self.is_online

    def ensure_reconnect(self, d: Device, t: float) -> None:
        self.reconnects += 1


_FITS: OsHost = StubHost()     # a type checker holds the stand-in to the interface the policies use

def _device(ios: bool, burst: float = 3.0, **profile: object) -> Device:
    p = Profile(os_version=17 if ios else 14, app_state=str(profile.pop("app_state", BACKGROUND)), **profile)  # type: ignore[arg-type]
    return make_device(0, ios, p, Stream(7), T0, burst, 0.0)


def _note(seq: int, push_type: str, priority: int = 5, **kw: object) -> Notification:
    n = Notification("apns", "tok", 0, f"m{seq}", T0, push_type, priority, b"{}", **kw)  # type: ignore[arg-type]
    n.seq = seq
    return n


# iOS ---------------------------------------------------------------------------------------------

def test_ios_background_push_spends_budget_then_is_held_with_a_release_timer() -> None:
    host = StubHost()
    ios = IosPolicy(host, IosParams(budget_burst=1.0, budget_per_hour=3600.0))
    d = _device(True, burst=1.0)
    ios.arrive(d, _note(1, "background"), T0)
    assert host.delivered == [1] and host.app.runs == [(1, 30.0)]      # woken with the 30 s window
    ios.arrive(d, _note(2, "background"), T0)
    assert host.pending == {2: "held-budget"} and host.delivered == [1]
    host.sched.run_until(T0 + 2.0)                                         # one token a second refills
    assert host.delivered == [1, 2] and host.pending == {}


def test_ios_offline_stores_one_push_and_one_attempt_pushes_are_dropped() -> None:
    host = StubHost()
    host.is_online = False
    ios = IosPolicy(host, IosParams())
    d = _device(True)
    ios.arrive(d, _note(1, "alert", 10), T0)
    ios.arrive(d, _note(2, "alert", 10), T0)
    ios.arrive(d, _note(3, "alert", 10, expiration=0.0), T0)
    assert host.dropped == [(1, "superseded"), (3, "expired")]
    assert host.pending == {2: "stored-offline"} and host.expiries == {2: T0 + 30 * DAY}
    host.is_online = True
    ios.reconnect(d, T0 + 5)
    assert host.delivered == [2] and host.expiries == {}
    assert host.metrics.alerts_shown == 1


def test_ios_force_quit_app_gets_no_background_push() -> None:
    host = StubHost()
    ios = IosPolicy(host, IosParams())
    ios.arrive(_device(True, app_state=STOPPED), _note(1, "background"), T0)
    assert host.dropped == [(1, "force-quit")] and host.app.runs == []


def test_ios_low_power_holds_background_pushes() -> None:
    host = StubHost()
    ios = IosPolicy(host, IosParams())
    d = _device(True, low_power=True)
    ios.arrive(d, _note(1, "background"), T0)
    assert host.pending == {1: "held-low-power"}
    d.profile.low_power = False
    ios.try_release(d, T0 + 1)
    assert host.delivered == [1]


# Android -----------------------------------------------------------------------------------------

def test_android_normal_priority_waits_for_the_doze_window_high_priority_does_not() -> None:
    host = StubHost()
    params = AndroidParams(doze_interval=3600.0, doze_window=30.0)
    android = AndroidPolicy(host, params, AppParams(), seed=3)
    d = _device(False, doze=True)
    t = T0
    while not android.dozing(d, t):
        t += 10.0
    host.sched.run_until(t)
    android.arrive(d, _note(1, "data", 5), t)
    android.arrive(d, _note(2, "data", 10), t)
    assert host.delivered == [2] and host.app.runs == [(2, 10.0)]      # onMessageReceived: 10 s
    assert host.pending == {1: "deferred-doze"} and host.metrics.doze_deferred == 1
    host.sched.run_until(android.next_window(d, t))
    assert host.delivered == [2, 1] and host.pending == {}


def test_android_offline_store_overflows_past_max_pending() -> None:
    host = StubHost()
    host.is_online = False
    android = AndroidPolicy(host, AndroidParams(max_pending=3), AppParams(), seed=0)
    d = _device(False)
    for seq in range(1, 5):
        android.arrive(d, _note(seq, "data"), T0)
    assert sorted(host.dropped) == [(s, "too-many-pending") for s in range(1, 5)]
    assert host.metrics.overflows == 1 and host.reconnects == 4
    host.is_online = True
    android.reconnect(d, T0 + 1)
    assert host.metrics.deleted_messages_events == 1                    # onDeletedMessages


def test_android_ttl_zero_is_now_or_never_and_force_stopped_gets_nothing() -> None:
    host = StubHost()
    host.is_online = False
    android = AndroidPolicy(host, AndroidParams(), AppParams(), seed=0)
    android.arrive(_device(False), _note(1, "data", expiration=0.0), T0)
    android.arrive(_device(False, app_state=STOPPED), _note(2, "data"), T0)
    assert host.dropped == [(1, "ttl-zero"), (2, "force-stopped")] and host.delivered == []
