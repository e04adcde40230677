"""The simulated app's real HTTP fetch ("make-ready"), executing device_sim's FetchEffect.

The only network I/O of the fleet. One shared aiohttp session; each fetch is bounded by the
effect's timeout (at most the OS background window), and its result is reported back to the sim,
which ignores it if the OS already killed the task.
"""
from __future__ import annotations

import asyncio
from typing import Callable

import aiohttp

from device_sim.app import FetchEffect


class AppFetcher:
    def __init__(self, max_parallel: int = 64) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._limit = max_parallel
        self._sem: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, effect: FetchEffect, done: Callable[[bool], None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            done(False)          # no event loop (e.g. a synchronous caller): the fetch cannot happen
            return
        task = loop.create_task(self._fetch(effect, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self, effect: FetchEffect, done: Callable[[bool], None]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._sem = asyncio.Semaphore(self._limit)
        assert self._sem is not None
        ok = False
        try:
            async with self._sem:
                timeout = aiohttp.ClientTimeout(total=effect.timeout)
                headers = {"X-Pushsim-Install": str(effect.install),
                           "X-Pushsim-Content-Version": str(effect.version)}
                async with self._session.get(effect.url, timeout=timeout, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status < 400
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            ok = False
        done(ok)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._session is not None:
            await self._session.close()
