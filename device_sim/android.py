"""Android/FCM delivery rules (reference/fcm.md §5), as decisions on device state.

FCM side while offline: up to 100 non-collapsible messages (one more and all are discarded, and
the app gets onDeletedMessages on reconnect), at most 4 collapse keys, TTL expiry, `ttl` 0 =
now or never; stored messages arrive on reconnect in no particular order. Device side: normal
priority waits for a Doze maintenance window; high priority is capped per standby bucket on
Android 12 and below, and demoted when the app's high-priority data messages never show a
notification (7-day window); force-stopped apps get nothing; onMessageReceived has 10 s.
"""
from __future__ import annotations

from bisect import bisect_right

from .device import NO_LIST, NO_MAP, Device
from .notification import Notification
from .os_host import OsHost
from .params import DAY, AndroidParams, AppParams
from .profile import FOREGROUND, NEVER, STOPPED, unit


class AndroidPolicy:
    def __init__(self, host: OsHost, params: AndroidParams, app: AppParams, seed: int) -> None:
        """`app` = the app's settings (how often its data messages show a notification); `seed` places
        each install's Doze windows."""
        self.host = host
        self.params, self.app_params, self.seed = params, app, seed

    # FCM store while offline ----------------------------------------------------------------------
    def arrive(self, d: Device, n: Notification, t: float) -> None:
        host, p = self.host, self.params
        if n.drop_reason:
            host.drop(n, n.drop_reason, t)
            return
        if d.state == STOPPED:
            host.drop(n, "force-stopped", t)
            return
        if d.state == NEVER:
            host.drop(n, "never-launched", t)
            return
        if host.online(d, t):
            self.route(d, n, t)
            return
        if n.expiration == 0.0:
            host.drop(n, "ttl-zero", t)
            return
        host.repend(n, "stored-offline")
        host.expire_at(n, d, host.expiry_time(n, t, p.store_max))
        key = n.collapse_id
        if key is not None:
            if d.collapse is NO_MAP:
                d.collapse = {}
            old = d.collapse.pop(key, None)
            if old is not None:
                host.drop(old, "collapsed", t)
            elif len(d.collapse) >= p.max_collapse_keys:
                # FCM keeps four keys "with no guarantee which"; a seeded pick stands in for it.
                victim = sorted(d.collapse)[d.rng.randrange(len(d.collapse))]
                host.drop(d.collapse.pop(victim), "collapse-key-limit", t)
            d.collapse[key] = n
        else:
            if d.stored_list is NO_LIST:
                d.stored_list = []
            d.stored_list.append(n)
            if len(d.stored_list) > p.max_pending:
                for m in d.stored_list:
                    host.drop(m, "too-many-pending", t)
                d.stored_list = NO_LIST
                d.deleted_pending = True
                host.metrics.overflows += 1
        host.ensure_reconnect(d, t)

    def reconnect(self, d: Device, t: float) -> None:
        if d.deleted_pending:
            d.deleted_pending = False
            self.host.metrics.deleted_messages_events += 1
        msgs = [*d.stored_list, *d.collapse.values()]
        d.stored_list, d.collapse = NO_LIST, NO_MAP
        d.rng.shuffle(msgs)            # FCM does not guarantee order; seeded so replays agree
        for m in msgs:
            self.host.cancel_expiry(m)
            self.route(d, m, t)

    def expire(self, d: Device, n: Notification, t: float) -> None:
        if n.collapse_id is not None and d.collapse.get(n.collapse_id) is n:
            del d.collapse[n.collapse_id]
        elif n in d.stored_list:
            d.stored_list.remove(n)
        elif n in d.deferred:
            d.deferred.remove(n)
        else:
            return
        self.host.drop(n, "ttl-expired", t)

    # the device ---------------------------------------------------------------------------------------
    def route(self, d: Device, n: Notification, t: float) -> None:
        high = n.priority >= 10 and self._stays_high(d, t)
        if not high and self.dozing(d, t):
            if n.expiration == 0.0:
                self.host.drop(n, "ttl-zero", t)
                return
            if d.deferred is NO_LIST:
                d.deferred = []
            d.deferred.append(n)
            self.host.metrics.doze_deferred += 1
            self.host.repend(n, "deferred-doze")
            self.host.expire_at(n, d, self.host.expiry_time(n, t, self.params.store_max))
            if not self.host.sched.active(d.window_timer):
                d.window_timer = self.host.sched.call_at(self.next_window(d, t), self._window, d)
            return
        self._deliver(d, n, t, high)

    def _stays_high(self, d: Device, t: float) -> bool:
        p, m = self.params, self.host.metrics
        q = d.quiet_hp
        if q:
            old = bisect_right(q, t - p.deprioritize_window)
            if old:
                del q[:old]
            if len(q) >= p.deprioritize_after:
                m.deprioritized += 1
                return False
        cap = p.bucket_caps.get(d.profile.bucket)
        if cap is not None and d.profile.os_version <= p.bucket_cap_max_os and not d.profile.charging:
            h = d.hp_times
            if h is None:
                h = d.hp_times = []
            old = bisect_right(h, t - DAY)
            if old:
                del h[:old]
            if len(h) >= cap:
                m.bucket_capped += 1
                return False
        return True

    def _deliver(self, d: Device, n: Notification, t: float, high: bool) -> None:
        host = self.host
        host.deliver(n, t)
        if high and d.hp_times is not None:
            d.hp_times.append(t)
        if n.push_type == "notification" and d.state != FOREGROUND:
            host.metrics.notifications_shown += 1      # the system tray shows it; no app code runs
            return
        if high and n.push_type != "notification":
            shows = self.app_params.data_shows_notification
            if shows > 0.0:
                quiet = d.random() >= shows          # d.rng is d
            else:
                d.skip()                             # a draw in [0, 1) is >= 0: certain, but used up alike
                quiet = True
            if quiet:
                if d.quiet_hp is None:
                    d.quiet_hp = []
                d.quiet_hp.append(t)
        host.app.run_task(d, n, t, self.params.handler_window)

    # Doze -------------------------------------------------------------------------------------------
    def _phase(self, d: Device) -> float:
        return unit(self.seed, d.index, 5) * self.params.doze_interval

    def dozing(self, d: Device, t: float) -> bool:
        if not d.profile.doze or d.profile.charging or d.state == FOREGROUND:
            return False
        return (t + self._phase(d)) % self.params.doze_interval >= self.params.doze_window

    def next_window(self, d: Device, t: float) -> float:
        iv = self.params.doze_interval
        return t + (iv - (t + self._phase(d)) % iv)

    def _window(self, d: Device) -> None:
        d.window_timer = None
        self.flush_deferred(d, self.host.sched.now)

    def flush_deferred(self, d: Device, t: float) -> None:
        timer = d.window_timer
        if timer is not None:
            timer[2] = timer[3] = None       # Scheduler.cancel, inlined: this runs on every open
            d.window_timer = None
        msgs = d.deferred
        if not msgs:
            return
        d.deferred = NO_LIST
        d.rng.shuffle(msgs)
        for m in msgs:
            self.host.cancel_expiry(m)
            self._deliver(d, m, t, False)

    # user actions -----------------------------------------------------------------------------------
    def on_open(self, d: Device, t: float) -> None:
        self.flush_deferred(d, t)     # the screen comes on: the device leaves Doze

    def on_overrun(self, d: Device) -> None:
        pass                          # Android kills the handler; no budget to shrink

    def on_stop(self, d: Device, t: float) -> None:
        for m in d.deferred:
            self.host.cancel_expiry(m)
            self.host.drop(m, "force-stopped", t)
        d.deferred = NO_LIST
        self.host.sched.cancel(d.window_timer)
