"""What an OS policy (ios.py, android.py) may ask of the simulation that runs it.

The policies decide; the host keeps the books and the timers. Keeping this surface small means a
policy can be driven by a stand-in host in a test, and a new OS rule touches only its policy file.
"""
from __future__ import annotations

from typing import Protocol

from .clock import Scheduler
from .device import Device
from .metrics import Metrics
from .notification import Notification


class TaskRunner(Protocol):
    def run_task(self, d: Device, n: Notification, t: float, window: float | None) -> None:
        """The app's handler runs for `n` from device time `t`; `window` = the OS's time limit (None = none)."""


class OsHost(Protocol):
    sched: Scheduler          # device-time timers: call_at / cancel / active / now
    metrics: Metrics          # counters the policies bump (alerts shown, doze deferrals, ...)
    app: TaskRunner           # the simulated app, woken by a delivered push

    # accounting: every accepted notification ends delivered or dropped, and says why while it waits
    def deliver(self, n: Notification, t: float) -> None: ...
    def drop(self, n: Notification, reason: str, t: float) -> None: ...
    def repend(self, n: Notification, reason: str) -> None: ...

    # store-and-forward: expiry timers and connectivity
    def expiry_time(self, n: Notification, t: float, store_max: float) -> float: ...
    def expire_at(self, n: Notification, d: Device, at: float) -> None: ...
    def cancel_expiry(self, n: Notification) -> None: ...
    def online(self, d: Device, t: float) -> bool: ...
    def ensure_reconnect(self, d: Device, t: float) -> None: ...
