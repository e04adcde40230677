"""The fleet registry: which installs exist, their platform, app and environment, and their tokens.

Per-install facts live in compact arrays indexed by install number (a million installs must fit in
well under a GiB); tokens are derived from the index (see tokens.py), never stored.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass

from .tokens import TokenCodec

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


class Fleet:
    def __init__(self, *, seed: int = 0, apps: tuple[App, ...] = (App(),),
                 environment: str = "sandbox") -> None:
        if environment not in ENVIRONMENTS:
            raise ValueError(f"environment must be one of {ENVIRONMENTS}")
        self.seed = seed
        self.codec = TokenCodec(seed)
        self.apps: list[App] = list(apps)
        self.environment = environment
        self.platform = bytearray()
        self.app = array("H")
        self.env = bytearray()
        self.uninstalled: dict[int, int] = {}   # install → ms timestamp when the token stopped working
        self.fcm_ios: bytearray = bytearray()   # 1 when an iOS install also registered with FCM

    def __len__(self) -> int:
        return len(self.platform)

    # creation -------------------------------------------------------------------------------
    def add(self, platform: str, count: int = 1, *, app: int = 0, environment: str | None = None) -> range:
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}")
        if not 0 <= app < len(self.apps):
            raise ValueError(f"unknown app index {app}")
        env = ENVIRONMENTS.index(environment or self.environment)
        start = len(self.platform)
        self.platform.extend(bytes([PLATFORMS[platform]]) * count)
        self.app.extend([app] * count)
        self.env.extend(bytes([env]) * count)
        self.fcm_ios.extend(bytes([1 if platform == "ios" else 0]) * count)
        return range(start, start + count)

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
        return self.codec.apns_token(index) if self.platform[index] == IOS else None

    def fcm_token(self, index: int) -> str:
        return self.codec.fcm_token(index)

    def resolve_apns(self, token: str) -> int | None:
        """The install an APNs token belongs to, or None for a token this fleet never issued."""
        i = self.codec.apns_index(token.lower()) if len(token) == 64 else None
        if i is None or i >= len(self.platform) or self.platform[i] != IOS:
            return None
        return i

    def resolve_fcm(self, token: str) -> int | None:
        i = self.codec.fcm_index(token)
        if i is None or i >= len(self.platform):
            return None
        return i

    def resolve(self, token: str) -> int | None:
        """The install behind an APNs or an FCM token, or None."""
        i = self.resolve_apns(token)
        return i if i is not None else self.resolve_fcm(token)

    # facts ----------------------------------------------------------------------------------
    def platform_of(self, index: int) -> str:
        return PLATFORM_NAMES[self.platform[index]]

    def app_of(self, index: int) -> App:
        return self.apps[self.app[index]]

    def environment_of(self, index: int) -> str:
        return ENVIRONMENTS[self.env[index]]

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
