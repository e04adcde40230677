"""The fakes' own error builders, bound into `ErrorBuilders` (nothing re-implemented here)."""
from __future__ import annotations

from .actions import ErrorBuilders


def default_builders() -> ErrorBuilders:
    raise NotImplementedError("fake_apns / fake_fcm error builders are not available yet")
