"""Waiting on a condition with a deadline, for tests: never a fixed sleep before an assert.

A fixed sleep is either too short on a loaded machine (a flaky failure) or longer than needed
(a slow suite); polling a condition is neither. On timeout the caller's message says what never
happened.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_TIMEOUT = 5.0


def wait_until(cond: Callable[[], object], what: str, timeout: float = DEFAULT_TIMEOUT,
               interval: float = 0.01, sleep: Callable[[float], object] = time.sleep) -> None:
    """`sleep`: gevent.sleep when the condition depends on greenlets of the same hub."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout} s: {what}")
        sleep(interval)


async def until(cond: Callable[[], object], what: str, timeout: float = DEFAULT_TIMEOUT,
                interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout} s: {what}")
        await asyncio.sleep(interval)
