"""The sender's content timeline: when new content is published, independent of any push.

A scenario's `[content]` table (`updates_per_day`, `poisson`) draws the publication times from the
seed. With a timeline, freshness at open compares the app's content with what exists at that
moment — so an install nobody pushes to (a holdout) goes stale as content moves on, which is what
makes a holdout's freshness comparable with a treated arm's. Without one, each push announces the
next version (app.AppModel.announce), as before.
"""
from __future__ import annotations

import bisect
import math
from typing import Any

from .params import DAY
from .profile import mix64

_KEYS = {"updates_per_day", "poisson"}


class ContentTimeline:
    def __init__(self, times: list[float]) -> None:
        self.times = times          # publication time of version k + 1 at index k, ascending

    @classmethod
    def from_dict(cls, doc: Any, seed: int, start: float, end: float) -> ContentTimeline:
        if not isinstance(doc, dict):
            raise ValueError("[content] must be a table")
        unknown = sorted(set(doc) - _KEYS)
        if unknown:
            raise ValueError(f"[content]: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
        rate = doc.get("updates_per_day", 24)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 100_000:
            raise ValueError(f"[content] updates_per_day: must be a number in (0, 100000], got {rate!r}")
        gap = DAY / float(rate)
        times, t, k = [], start, 0
        while True:
            if doc.get("poisson", True):
                u = (mix64(seed, 0xC0_47E47, k) >> 11) / 9007199254740992.0
                t += -math.log(1.0 - u) * gap
            else:
                t += gap
            if t >= end:
                return cls(times)
            times.append(t)
            k += 1

    def version_at(self, t: float) -> int:
        """The newest version published at or before `t` (0 = the content the app shipped with)."""
        return bisect.bisect_right(self.times, t)

    def published(self, version: int) -> float:
        return self.times[version - 1]

    def next_after(self, t: float) -> float | None:
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else None
