"""The simulated app: background work under the OS window, content versions, user opens.

The optional "make-ready" fetch is a sans-IO effect: the sim emits a `FetchEffect`, an I/O adapter
(pushsim/app_fetch.py) performs the HTTP request and calls `fetch_done`. Under the virtual clock
there is no network and the fetch's duration comes from the task distribution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import orjson

from .device import Device
from .notification import Notification
from .params import DAY
from .profile import BACKGROUND, FOREGROUND

_exp, _log = math.exp, math.log

if TYPE_CHECKING:
    from .sim import DeviceSim


@dataclass(slots=True)
class FetchEffect:
    url: str
    timeout: float
    install: int
    seq: int
    version: int


@dataclass(slots=True)
class _Task:
    dev: Device
    seq: int
    started: float
    window: float | None
    version: int
    ok: bool
    done: bool = False


Fetcher = Callable[[FetchEffect, Callable[[bool], None]], None]


class AppModel:
    def __init__(self, sim: DeviceSim) -> None:
        self.sim = sim
        self.params = sim.params.app
        # one bound method each for every install's timers (not one made per timer)
        self._open_cb = self._open_timer
        self._end_cb = self._end
        self._session_cb = self._session_end

    # content versions ------------------------------------------------------------------------
    def announce(self, d: Device, n: Notification, t: float) -> None:
        """A push tells the install newer content exists: the next version, or the payload's
        explicit `content_version`. Freshness at open = the app made the announced version ready."""
        cur = d.announced
        if b"content_version" in n.payload:
            v = _explicit_version(n.payload, cur)
            if v > cur:
                d.announced = v
                d.announced_at = t
        else:
            v = cur + 1
            d.announced = v
            d.announced_at = t
        n.version = v

    def ready_for(self, d: Device, n: Notification) -> bool:
        """Does the app have the content a visible push announces? With an explicit
        `content_version`, that version; otherwise (each push announces the next) the one before,
        which a silent push sent first would have made ready."""
        if b"content_version" in n.payload:
            return d.version >= n.version
        return d.version >= n.version - 1

    def last_open(self, d: Device) -> float | None:
        """Device time of the install's last open, None if never: each open starts the session timer
        at open + session (read back from it, so no slot per install is spent on this)."""
        timer = d.session_timer
        return None if timer is None else timer[0] - self.params.session

    # background work ---------------------------------------------------------------------------
    def run_task(self, d: Device, n: Notification, t: float, window: float | None) -> None:
        sim, p = self.sim, self.params
        sim.metrics.tasks_started += 1
        tally = sim.cohorts
        if tally is not None:
            tally.add("wakes", d.index)
            if n.version > d.version:          # something new to make ready: one backend fetch
                tally.add("fetches", d.index)
        # `d` is the install's random stream (d.rng is d); the draws are the same two or three in
        # the same order on every path
        sigma = p.task_sigma
        dur = p.task_median * _exp(sigma * d.gauss(0.0, 1.0)) if sigma else p.task_median
        ok = d.random() >= p.failure_rate
        version = n.version
        if sim.fetcher is not None:
            url = p.fetch_url or (_payload_url(n.payload) if b"fetch_url" in n.payload else None)
            if url:
                self._start_fetch(d, n, t, window, version, ok, url)
                return
        # the common path: no allocation beyond one tuple and one timer
        if window is not None and dur > window:
            sim.sched.call_at(t + window, self._end_cb, (d, t, version, False, True))
        else:
            sim.sched.call_at(t + dur, self._end_cb, (d, t, version, ok, False))

    def _start_fetch(self, d: Device, n: Notification, t: float, window: float | None, version: int,
                     ok: bool, url: str) -> None:
        sim, p = self.sim, self.params
        task = _Task(d, n.seq, t, window, version, ok)
        sim.metrics.fetches += 1
        limit = min(p.fetch_timeout, window) if window is not None else p.fetch_timeout
        if window is not None:
            sim.sched.call_at(t + window, self._deadline, task)
        assert sim.fetcher is not None
        sim.fetcher(FetchEffect(url, limit, d.index, n.seq, version),
                    lambda fetched, task=task: self._fetched(task, fetched))

    def _end(self, arg: tuple[Device, float, int, bool, bool]) -> None:
        # _settle(d, started, now, version, ok, killed), inlined: one per background task
        d, started, version, ok, killed = arg
        sim = self.sim
        t = sim.sched.now
        sim.metrics.task_done(t - started, ok and not killed, killed)
        if sim.cohorts is not None:
            sim.cohorts.add_seconds("task_s", d.index, t - started)
        if killed:
            sim.on_overrun(d)
            d.ready = False
        elif ok:
            if version > d.version:
                d.version = version
                d.version_at = t
            d.ready = True
        else:
            d.ready = False

    def _deadline(self, task: _Task) -> None:
        if not task.done:
            self._finish(task, self.sim.sched.now, True)

    def _fetched(self, task: _Task, fetched: bool) -> None:
        if task.done:
            return   # the OS already killed the task; a late response changes nothing
        if not fetched:
            self.sim.metrics.fetch_errors += 1
            task.ok = False
        self.sim.advance()
        self._finish(task, self.sim.sched.now, False)

    def _finish(self, task: _Task, t: float, killed: bool) -> None:
        task.done = True
        self._settle(task.dev, task.started, t, task.version, task.ok, killed)

    def _settle(self, d: Device, started: float, t: float, version: int, ok: bool, killed: bool) -> None:
        self.sim.metrics.task_done(t - started, ok and not killed, killed)
        if self.sim.cohorts is not None:
            self.sim.cohorts.add_seconds("task_s", d.index, t - started)
        if killed:
            self.sim.on_overrun(d)
            d.ready = False
        elif ok:
            if version > d.version:
                d.version, d.version_at = version, t
            d.ready = True
        else:
            d.ready = False

    # user opens ----------------------------------------------------------------------------------
    def schedule_open(self, d: Device, t: float) -> None:
        rate = d.profile.opens_per_day
        if rate > 0:
            # d.rng.expovariate(rate / DAY), inlined (d.rng is d): one per open of every install
            self.sim.sched.call_at(t + -_log(1.0 - d.random()) / (rate / DAY), self._open_cb, d)

    def _open_timer(self, d: Device) -> None:
        t = self.sim.sched.now
        self.open(d, t)
        rate = d.profile.opens_per_day      # schedule_open(d, t), inlined
        if rate > 0:
            self.sim.sched.call_at(t + -_log(1.0 - d.random()) / (rate / DAY), self._open_cb, d)

    def open(self, d: Device, t: float) -> None:
        """The user launches the app: record freshness first, then let the OS hand over held pushes."""
        sim = self.sim
        m = sim.metrics
        m.opens += 1
        content = sim.content
        newest = 0
        if content is not None:        # freshness against what exists now, pushed or not
            newest = content.version_at(t)
            if newest > d.announced and newest > d.version:
                d.announced, d.announced_at = newest, content.published(d.version + 1)
        fresh = d.version >= d.announced
        if fresh:
            m.fresh_opens += 1
        else:
            m.staleness_seconds += t - d.announced_at
        if d.ready:
            m.ready_opens += 1
        tally = sim.cohorts
        if tally is not None:
            tally.add("opens", d.index)
            if fresh:
                tally.add("fresh_opens", d.index)
            else:
                tally.add_seconds("staleness_s", d.index, t - d.announced_at)
        if newest > d.version:         # the app refreshes in the foreground: fresh until the next update
            d.version = newest
        d.state = FOREGROUND
        sched = sim.sched
        timer = d.session_timer
        if timer is not None:
            timer[2] = timer[3] = None                 # Scheduler.cancel, inlined
        d.session_timer = sched.call_at(t + self.params.session, self._session_cb, d)
        sim.on_open(d, t)

    def _session_end(self, d: Device) -> None:
        if d.state == FOREGROUND:
            d.state = BACKGROUND


# Payload → the content_version it declares (None: none usable). A sender repeats one body to many
# installs, so each distinct small body is parsed once; bounded like the dispatcher's payload share.
_DECLARED: dict[bytes, int | None] = {}
_DECLARED_MAX, _DECLARED_MAX_BODY = 4096, 1024


def _explicit_version(payload: bytes, cur: int) -> int:
    memo = len(payload) <= _DECLARED_MAX_BODY
    if memo and payload in _DECLARED:
        v = _DECLARED[payload]
    else:
        v = _declared_version(payload)
        if memo:
            if len(_DECLARED) >= _DECLARED_MAX:
                _DECLARED.clear()
            _DECLARED[payload] = v
    return cur + 1 if v is None else v


def _declared_version(payload: bytes) -> int | None:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    for scope in (doc, doc.get("data") if isinstance(doc, dict) else None,
                  (doc.get("message") or {}).get("data") if isinstance(doc, dict) else None):
        if isinstance(scope, dict) and "content_version" in scope:
            try:
                return int(scope["content_version"])
            except (TypeError, ValueError):
                return None
    return None


def _payload_url(payload: bytes) -> str | None:
    if b"fetch_url" not in payload:
        return None
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    for scope in (doc, doc.get("data") if isinstance(doc, dict) else None,
                  (doc.get("message") or {}).get("data") if isinstance(doc, dict) else None):
        if isinstance(scope, dict) and isinstance(scope.get("fetch_url"), str):
            return scope["fetch_url"]
    return None
