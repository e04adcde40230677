"""Experiment cohorts: which arm each install is in, and what each install saw, for per-arm outcomes.

An experiment (a scenario's `[experiment]` table, or `serve --experiment FILE`) splits the fleet
into weighted arms. The arm of an install is a pure function of (experiment seed, install index) —
a splitmix64 hash mapped onto the cumulative weights — so it is the same in every run, in every
cluster worker and in the hub, with nothing stored or exchanged.

One arm is the holdout; `withhold` says which pushes it goes without: `all` (default) or only
`silent` ones (content-available), which keeps visible pushes flowing so that landing readiness
can be compared. `enforced`: those pushes to its installs are accepted as usual but never reach
the app (dropped, reason `holdout`), so an unchanged sender can be measured. `advertised`: the
sender reads the arms and is expected to skip the holdout; pushes that still reach it are delivered
and counted (`sent_to_holdout`), which the conformance report flags.

`Tally` keeps one counter per install and metric (compact arrays, allocated only when an
experiment is on), because the unit of analysis is the install: per-arm intervals come from the
spread between installs, not between notifications (device_sim/lift.py).
"""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any

from .profile import mix64

MODES = ("enforced", "advertised")
HOLDOUT_REASON = "holdout"
_KEYS = {"arms", "holdout", "mode", "seed", "name", "withhold"}
WITHHOLD = ("all", "silent")
_UNASSIGNED = 255
MAX_ARMS = 16


@dataclass(frozen=True, slots=True)
class Experiment:
    arms: tuple[tuple[str, float], ...]          # (name, weight) in the order given
    holdout: str = "holdout"
    mode: str = "enforced"
    seed: int = 0
    name: str = "experiment"
    withhold: str = "all"          # which pushes the holdout goes without: all, or only silent ones
    _bounds: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, doc: Any, where: str = "[experiment]") -> Experiment:
        """The experiment a TOML table describes; a ValueError naming the bad key otherwise."""
        if not isinstance(doc, dict):
            raise ValueError(f"{where} must be a table")
        unknown = sorted(set(doc) - _KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
        arms_doc = doc.get("arms")
        if not isinstance(arms_doc, dict) or not arms_doc:
            raise ValueError(f"{where} arms: expected a table of arm = weight, e.g. {{ holdout = 0.1, treated = 0.9 }}")
        if len(arms_doc) > MAX_ARMS:
            raise ValueError(f"{where} arms: at most {MAX_ARMS} arms, got {len(arms_doc)}")
        arms = []
        for arm, w in arms_doc.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
                raise ValueError(f"{where} arms.{arm}: weight must be a positive number, got {w!r}")
            arms.append((str(arm), float(w)))
        holdout = doc.get("holdout", "holdout")
        if holdout not in arms_doc:
            raise ValueError(f"{where} holdout: {holdout!r} is not one of the arms ({', '.join(arms_doc)})")
        mode = doc.get("mode", "enforced")
        if mode not in MODES:
            raise ValueError(f"{where} mode: must be one of {', '.join(MODES)}, got {mode!r}")
        withhold = doc.get("withhold", "all")
        if withhold not in WITHHOLD:
            raise ValueError(f"{where} withhold: must be one of {', '.join(WITHHOLD)}, got {withhold!r}")
        seed = doc.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"{where} seed: must be a non-negative integer, got {seed!r}")
        return cls(tuple(arms), str(holdout), str(mode), seed, str(doc.get("name", "experiment")), str(withhold))

    @classmethod
    def from_file(cls, path: str) -> Experiment:
        """`serve --experiment FILE`: a TOML file with an `[experiment]` table (a scenario file
        works), or whose top level is that table."""
        import tomllib
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
        if "experiment" in doc:
            return cls.from_dict(doc["experiment"], f"{path}: [experiment]")
        return cls.from_dict(doc, path)

    def __post_init__(self) -> None:
        total = sum(w for _, w in self.arms)
        acc, bounds = 0.0, []
        for _, w in self.arms:
            acc += w / total
            bounds.append(acc)
        bounds[-1] = 1.0          # rounding must never leave a sliver of installs without an arm
        object.__setattr__(self, "_bounds", tuple(bounds))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.arms)

    @property
    def enforced(self) -> bool:
        return self.mode == "enforced"

    def arm_index(self, install: int) -> int:
        u = (mix64(self.seed, 0x5EED_C0407, install) >> 11) / 9007199254740992.0   # [0, 1)
        for k, bound in enumerate(self._bounds):
            if u < bound:
                return k
        return len(self._bounds) - 1

    def arm_of(self, install: int) -> str:
        return self.arms[self.arm_index(install)][0]

    def describe(self) -> dict[str, object]:
        total = sum(w for _, w in self.arms)
        return {"name": self.name, "mode": self.mode, "holdout": self.holdout, "seed": self.seed,
                "withhold": self.withhold,
                "weights": {a: round(w / total, 6) for a, w in self.arms},
                "arm_weights": [[a, w] for a, w in self.arms]}    # exact, so a reader re-derives the arms

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> Experiment:
        """The experiment `describe()` gave (a journal export's header, a report's input)."""
        return cls.from_dict({"arms": {a: w for a, w in d["arm_weights"]}, "holdout": d["holdout"],
                              "mode": d["mode"], "seed": d["seed"], "name": d["name"],
                              "withhold": d.get("withhold", "all")})


# per-install counters, one array each: 4 bytes per install per metric (uint32 counts; float32
# seconds, ample for one install's sums), so an experiment over a million installs costs 36 MB
COUNTS = ("opens", "fresh_opens", "visible", "ready_visible", "wakes", "fetches", "received")
SUMS = ("staleness_s", "task_s")


class Tally:
    """What each install saw, while an experiment is on; the arm of each install, memoised."""

    def __init__(self, experiment: Experiment, installs: int) -> None:
        self.experiment = experiment
        self.holdout_index = experiment.names.index(experiment.holdout)
        self._arm = bytearray([_UNASSIGNED]) * installs
        self.counts = {k: array("I", bytes(4 * installs)) for k in COUNTS}
        self.sums = {k: array("f", bytes(4 * installs)) for k in SUMS}
        self.drops: list[dict[str, int]] = [{} for _ in experiment.arms]
        self.sent_to_holdout = 0
        # (me, workers): this process tallies the installs with index % workers == me (a cluster
        # worker); (0, 1) = all of them.
        self.shard = (0, 1)

    def cover(self, installs: int) -> None:
        """Make room for the first `installs` installs (the fleet grew: POST /devices)."""
        if installs > len(self._arm):
            self._grow(installs - 1)

    def _grow(self, install: int) -> None:
        # installs registered after start (POST /devices): extend every array to cover them
        extra = install + 1 - len(self._arm)
        self._arm.extend(bytes([_UNASSIGNED]) * extra)
        for a in self.counts.values():
            a.extend(array("I", bytes(4 * extra)))
        for s in self.sums.values():
            s.extend(array("f", bytes(4 * extra)))

    def arm(self, install: int) -> int:
        if install >= len(self._arm):
            self._grow(install)
        k = self._arm[install]
        if k == _UNASSIGNED:
            k = self._arm[install] = self.experiment.arm_index(install)
        return k

    def is_holdout(self, install: int) -> bool:
        return self.arm(install) == self.holdout_index

    def withheld(self, install: int, silent: bool) -> bool:
        """Is this push one the install's arm goes without (the holdout's, of the withheld kind)?"""
        return (silent or self.experiment.withhold == "all") and self.arm(install) == self.holdout_index

    # add / add_seconds run several times per open and per push: the common case is one array
    # update, and an install beyond the arrays (registered after start) is the IndexError path.
    def add(self, key: str, install: int, n: int = 1) -> None:
        try:
            self.counts[key][install] += n
        except IndexError:
            self._grow(install)
            self.counts[key][install] += n

    def add_seconds(self, key: str, install: int, seconds: float) -> None:
        try:
            self.sums[key][install] += seconds
        except IndexError:
            self._grow(install)
            self.sums[key][install] += seconds

    def dropped(self, install: int, reason: str) -> None:
        per = self.drops[self.arm(install)]
        per[reason] = per.get(reason, 0) + 1

    def reset(self) -> None:
        for a in self.counts.values():
            a[:] = array("I", bytes(4 * len(a)))
        for s in self.sums.values():
            s[:] = array("f", bytes(4 * len(s)))
        self.drops = [{} for _ in self.experiment.arms]
        self.sent_to_holdout = 0
