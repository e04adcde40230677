"""The fleet registry: which installs exist, their platform, app and environment, and their tokens.

Per-install facts live in compact arrays indexed by install number (a million installs must fit in
well under a GiB); tokens are derived from the index (see tokens.py), never stored.

A partitioned fleet (`serve --partition K/N`) has the same install numbers as the whole fleet but
keeps facts only for the installs it owns, i % N == K: its arrays are indexed by slot i // N, so an
instance's memory and start time are 1/N of the whole. Read facts through the methods (`is_ios`,
`app_of`, ...), or index the arrays by `i // part_n` where a method call costs too much per request.
"""
from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass

from .tokens import MAX_PARTITIONS, make_codec

IOS, ANDROID = 0, 1
PLATFORMS = {"ios": IOS, "android": ANDROID}
PLATFORM_NAMES = {v: k for k, v in PLATFORMS.items()}
ENVIRONMENTS = ("sandbox", "production")


@dataclass(frozen=True, slots=True)
class App:
    """One app, known to iOS by its bundle id and to Android by its package name."""
    bundle_id: str = "com.example.app"
    package: str = "com.example.app"


def parse_device_mix(spec: str | int) -> dict[str, int]:
    """`1000` → the default mix (half iOS, half Android); `ios=10,android=5` → exactly that."""
    text = str(spec).strip()
    if text.isdigit():
        n = int(text)
        return {"ios": n - n // 2, "android": n // 2}
    mix: dict[str, int] = {}
    for part in text.split(","):
        name, sep, count = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in PLATFORMS or not count.strip().isdigit():
            raise ValueError(f"bad device mix {spec!r}: use N or ios=N,android=M")
        mix[name] = mix.get(name, 0) + int(count)
    return mix


def parse_partition(spec: str) -> tuple[int, int]:
    """`K/N` → (K, N): this instance owns installs i with i % N == K."""
    k_text, sep, n_text = spec.strip().partition("/")
    if not sep or not k_text.strip().isdigit() or not n_text.strip().isdigit():
        raise ValueError(f"bad partition {spec!r}: use K/N, e.g. 0/3")
    k, n = int(k_text), int(n_text)
    if not 2 <= n <= MAX_PARTITIONS:
        raise ValueError(f"bad partition {spec!r}: N must be in 2..{MAX_PARTITIONS}")
    if not 0 <= k < n:
        raise ValueError(f"bad partition {spec!r}: K must be in 0..{n - 1}")
    return k, n


class Fleet:
    def __init__(self, *, seed: int = 0, apps: tuple[App, ...] = (App(),),
                 environment: str = "sandbox", partition: tuple[int, int] | None = None) -> None:
        if environment not in ENVIRONMENTS:
            raise ValueError(f"environment must be one of {ENVIRONMENTS}")
        self.seed = seed
        self.partition = partition                  # (K, N), or None: the whole fleet
        self.part_k, self.part_n = partition or (0, 1)
        self.codec = make_codec(seed, self.part_n)
        self.apps: list[App] = list(apps)
        self.environment = environment
        # Facts of owned installs only, by slot (install // N); use the methods below.
        self.platform = bytearray()
        self.app = array("H")
        self.env = bytearray()
        self.uninstalled: dict[int, int] = {}   # install → ms timestamp when the token stopped working
        self.fcm_ios: bytearray = bytearray()   # 1 when an iOS install also registered with FCM
        self.total = 0                          # installs in the whole fleet (every partition)
        # One (start, count, platform, app, env) per `add`: the whole fleet's layout, every partition's,
        # for the replay header and for answering about installs this instance does not own.
        self.segments: list[tuple[int, int, int, int, int]] = []

    def __len__(self) -> int:
        """The whole fleet's size: install numbers run 0..len-1 (see `owned_count`)."""
        return self.total

    @property
    def owned_count(self) -> int:
        return len(self.platform)

    def owns(self, index: int) -> bool:
        return 0 <= index < self.total and index % self.part_n == self.part_k

    def owner(self, index: int) -> int:
        """The partition install `index` belongs to (0 when the fleet is not partitioned)."""
        return index % self.part_n

    def owned(self) -> range:
        """The install numbers this fleet owns, in order."""
        return range(self.part_k, self.total, self.part_n)

    def owned_of(self, code: int) -> list[int]:
        """The owned install numbers of one platform (IOS or ANDROID), in order."""
        n, k = self.part_n, self.part_k
        return [s * n + k for s, c in enumerate(self.platform) if c == code]

    def slot_to_index(self, slot: int) -> int:
        return slot * self.part_n + self.part_k

    # creation -------------------------------------------------------------------------------
    def add(self, platform: str, count: int = 1, *, app: int = 0, environment: str | None = None) -> range:
        """`count` new installs of the whole fleet; returns the install numbers of those this fleet owns."""
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}")
        if not 0 <= app < len(self.apps):
            raise ValueError(f"unknown app index {app}")
        env = ENVIRONMENTS.index(environment or self.environment)
        start, code = self.total, PLATFORMS[platform]
        self.total += count
        self.segments.append((start, count, code, app, env))
        n, k = self.part_n, self.part_k
        first = start + (k - start) % n               # the first owned install number ≥ start
        mine = range(first, self.total, n)
        owned = len(mine)
        self.platform.extend(bytes([code]) * owned)
        self.app.extend(array("H", [app]) * owned)
        self.env.extend(bytes([env]) * owned)
        self.fcm_ios.extend(bytes([1 if platform == "ios" else 0]) * owned)
        return mine

    def populate(self, mix: dict[str, int]) -> None:
        for platform, count in mix.items():
            self.add(platform, count)

    def add_app(self, app: App) -> int:
        self.apps.append(app)
        return len(self.apps) - 1

    def app_index(self, platform: str, name: str) -> int:
        """The app known on `platform` by `name` (bundle id on iOS, package on Android); added if new."""
        names = [a.bundle_id if platform == "ios" else a.package for a in self.apps]
        return names.index(name) if name in names else self.add_app(App(name, name))

    # tokens ---------------------------------------------------------------------------------
    def apns_token(self, index: int) -> str | None:
        return self.codec.apns_token(index) if self.platform_code(index) == IOS else None

    def fcm_token(self, index: int) -> str:
        return self.codec.fcm_token(index)

    def resolve_apns(self, token: str) -> int | None:
        """The install an APNs token belongs to, or None for a token this fleet never issued (or that
        another partition owns)."""
        i = self.codec.apns_index(token.lower()) if len(token) == 64 else None
        if i is None or i >= self.total or i % self.part_n != self.part_k \
                or self.platform[i // self.part_n] != IOS:
            return None
        return i

    def resolve_fcm(self, token: str) -> int | None:
        i = self.codec.fcm_index(token)
        if i is None or i >= self.total or i % self.part_n != self.part_k:
            return None
        return i

    def owner_of_token(self, token: str) -> int | None:
        """The partition whose install issued `token` (checked under the MAC, not just read from
        the prefix), or None for a token of no install of the whole fleet."""
        i = self.codec.apns_index(token.lower()) if len(token) == 64 else self.codec.fcm_index(token)
        if i is None or i >= self.total:
            return None
        if len(token) == 64 and self._segment_of(i)[2] != IOS:
            return None
        return i % self.part_n

    def _segment_of(self, index: int) -> tuple[int, int, int, int, int]:
        segs = self.segments
        j = bisect_right(segs, (index, 1 << 62)) - 1
        return segs[j]

    def resolve(self, token: str) -> int | None:
        """The install behind an APNs or an FCM token, or None."""
        i = self.resolve_apns(token)
        return i if i is not None else self.resolve_fcm(token)

    # facts (of owned installs) ------------------------------------------------------------------
    def platform_code(self, index: int) -> int:
        return self.platform[index // self.part_n]

    def is_ios(self, index: int) -> bool:
        return self.platform[index // self.part_n] == IOS

    def platform_of(self, index: int) -> str:
        return PLATFORM_NAMES[self.platform[index // self.part_n]]

    def app_of(self, index: int) -> App:
        return self.apps[self.app[index // self.part_n]]

    def environment_of(self, index: int) -> str:
        return ENVIRONMENTS[self.env[index // self.part_n]]

    def fcm_registered(self, index: int) -> bool:
        """An Android install, or an iOS install that also registered with FCM."""
        return self.fcm_ios[index // self.part_n] == 1 or self.platform[index // self.part_n] != IOS

    def runs(self) -> dict[str, list[list[int]]]:
        """The whole fleet's platform, app and environment as [value, count] runs (the replay header)."""
        out: dict[str, list[list[int]]] = {"platforms": [], "app_of": [], "env_of": []}
        for _, count, code, app, env in self.segments:
            for key, v in (("platforms", code), ("app_of", app), ("env_of", env)):
                runs = out[key]
                if runs and runs[-1][0] == v:
                    runs[-1][1] += count
                elif count:
                    runs.append([v, count])
        return out

    def uninstall(self, index: int, at_ms: int) -> None:
        self.uninstalled[index] = at_ms

    def describe(self, index: int) -> dict[str, object]:
        platform = self.platform_of(index)
        app = self.app_of(index)
        d: dict[str, object] = {
            "index": index,
            "platform": platform,
            "app": app.bundle_id if platform == "ios" else app.package,
            "environment": self.environment_of(index),
            "installed": index not in self.uninstalled,
            "fcm_token": self.fcm_token(index),
        }
        d["token"] = self.apns_token(index) if platform == "ios" else d["fcm_token"]
        if index in self.uninstalled:
            d["uninstalled_at_ms"] = self.uninstalled[index]
        return d
