"""iOS delivery rules (reference/apns.md §3 and store-and-forward), as decisions on device state.

APNs side: an offline device gets at most one stored push per app, kept until `apns-expiration`
(0 = one attempt, never stored). Device side: background pushes spend a per-app token budget and a
device-wide 24 h budget; a push that cannot be delivered is held, and only the newest held push
survives; a force-quit app gets no background pushes; a held push is delivered at app launch;
Low Power Mode and Background App Refresh off hold background pushes; the app has 30 s.
"""
from __future__ import annotations

import math

from .device import Device
from .notification import Notification
from .os_host import OsHost
from .params import DAY, IosParams
from .profile import FOREGROUND, NEVER, STOPPED


class IosPolicy:
    def __init__(self, host: OsHost, params: IosParams) -> None:
        self.host = host
        self.params = params

    # APNs store-and-forward --------------------------------------------------------------------
    def arrive(self, d: Device, n: Notification, t: float) -> None:
        host = self.host
        if host.online(d, t):
            self.receive(d, n, t)
            return
        if n.expiration == 0.0:
            host.drop(n, "expired", t)          # one attempt, the device is not there, no storage
            return
        if d.stored is not None:
            host.drop(d.stored, "superseded", t)
        d.stored = n
        host.repend(n, "stored-offline")
        host.expire_at(n, d, host.expiry_time(n, t, self.params.store_max))
        host.ensure_reconnect(d, t)

    def reconnect(self, d: Device, t: float) -> None:
        n, d.stored = d.stored, None
        if n is not None:
            self.host.cancel_expiry(n)
            self.receive(d, n, t)

    def expire(self, d: Device, n: Notification, t: float) -> None:
        if d.stored is n:
            d.stored = None
            self.host.drop(n, "expired", t)

    # the device ------------------------------------------------------------------------------------
    def receive(self, d: Device, n: Notification, t: float) -> None:
        host = self.host
        if n.drop_reason:
            host.drop(n, n.drop_reason, t)
            return
        if d.state == NEVER:
            host.drop(n, "never-launched", t)
            return
        if n.push_type != "background":
            # Alerts and the other push types are handled by the system, outside the background budget.
            host.deliver(n, t)
            if n.push_type == "alert":
                host.metrics.alerts_shown += 1
            return
        if d.state == STOPPED:
            host.drop(n, "force-quit", t)
            return
        if d.state == FOREGROUND:
            host.deliver(n, t)
            host.app.run_task(d, n, t, None)
            return
        if not self.params.throttle:
            self._wake(d, n, t)
            return
        if d.held is not None:
            host.drop(d.held, "coalesced", t)
        d.held = n
        self.try_release(d, t)     # delivers it, or re-pends it with the reason it waits for

    def _wake(self, d: Device, n: Notification, t: float) -> None:
        self.host.deliver(n, t)
        self.host.app.run_task(d, n, t, self.params.background_window)

    def try_release(self, d: Device, t: float) -> None:
        """Deliver the held push if power settings and the budgets allow, else say why it waits."""
        n = d.held
        if n is None:
            return
        host = self.host
        profile = d.profile
        if profile.low_power:
            host.repend(n, "held-low-power")
        elif not profile.bar:
            host.repend(n, "held-background-refresh-off")
        elif self._take(d, t):
            d.held = None
            timer = d.held_timer
            if timer is not None:
                timer[2] = timer[3] = None   # Scheduler.cancel, inlined
            host.deliver(n, t)               # _wake, inlined
            host.app.run_task(d, n, t, self.params.background_window)
        else:
            host.repend(n, "held-budget")
            at = self._next_budget(d, t)
            if math.isinf(at):
                return
            if not (host.sched.active(d.held_timer) and d.held_timer[0] <= at):   # type: ignore[index]
                host.sched.cancel(d.held_timer)
                d.held_timer = host.sched.call_at(at, self._release_timer, d)

    def _release_timer(self, d: Device) -> None:
        d.held_timer = None
        self.try_release(d, self.host.sched.now)

    # budgets ------------------------------------------------------------------------------------------
    def budget_at(self, d: Device, t: float) -> tuple[float, bool]:
        """(tokens, throttled) as `_take` would see them at t, without changing the device: for
        looking at the fleet (device_sim.census)."""
        p = self.params
        tokens = min(p.budget_burst, d.tokens + max(0.0, t - d.tokens_t) * p.budget_per_hour / 3600.0)
        day_used = 0 if t - d.day_start >= DAY - 1e-6 else d.day_used
        return tokens, p.throttle and (tokens < 1.0 - 1e-9 or day_used >= p.daily_budget)

    def _take(self, d: Device, t: float) -> bool:
        # _refill(d, t), inlined: it runs for every throttled background push
        p = self.params
        tokens_t = d.tokens_t
        if t > tokens_t:
            d.tokens = min(p.budget_burst, d.tokens + (t - tokens_t) * p.budget_per_hour / 3600.0)
            d.tokens_t = t
        if t - d.day_start >= DAY - 1e-6:
            d.day_start += DAY * math.floor((t - d.day_start + 1e-6) / DAY)
            d.day_used = 0
        if d.tokens >= 1.0 - 1e-9 and d.day_used < p.daily_budget:   # float refill may land a hair short
            d.tokens -= 1.0
            d.day_used += 1
            return True
        return False

    def _next_budget(self, d: Device, t: float) -> float:
        at = t
        if d.tokens < 1.0:
            rate = self.params.budget_per_hour / 3600.0
            # at least a millisecond later: device times near 1.7e9 s cannot tell smaller steps apart
            at = t + max(0.001, (1.0 - d.tokens) / rate) if rate > 0 else math.inf
        if d.day_used >= self.params.daily_budget:
            at = max(at, d.day_start + DAY)
        return at

    def on_overrun(self, d: Device) -> None:
        d.tokens -= self.params.overrun_penalty    # iOS gives apps that overrun fewer future wakes

    # user actions ---------------------------------------------------------------------------------
    def on_open(self, d: Device, t: float) -> None:
        n, d.held = d.held, None
        if n is not None:
            self.host.sched.cancel(d.held_timer)
            self.host.deliver(n, t)
            self.host.app.run_task(d, n, t, None)

    def on_stop(self, d: Device, t: float) -> None:
        n, d.held = d.held, None
        if n is not None:
            self.host.sched.cancel(d.held_timer)
            self.host.drop(n, "force-quit", t)
