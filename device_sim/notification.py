"""The platform-neutral notification the fakes hand to the fleet once a request is accepted.

It also carries its own accounting state (outcome, reason, settle time): the ledger keeps no
separate record object per notification, which halves the objects a retained notification costs
and lets the fleet's policies read a notification's pending reason without a lookup.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Outcome(str, Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DROPPED = "dropped"


@dataclass(slots=True)
class Notification:
    service: str                 # "apns" | "fcm"
    token: str                   # the device token / registration token as sent
    install: int                 # fleet index of the target install
    message_id: str              # apns-id, or the FCM message name
    received_at: float           # wall-clock seconds when the edge accepted it
    push_type: str               # apns-push-type; for FCM "data" or "notification"
    priority: int                # APNs 10/5/1; FCM high=10, normal=5
    payload: bytes               # the body as received (APNs) or the message JSON (FCM)
    expiration: float | None = None   # absolute wall seconds; 0.0 = deliver once or drop; None = service default
    collapse_id: str | None = None    # apns-collapse-id / android collapse_key
    content_available: bool = False   # a silent/background wake-up (aps.content-available / data-only)
    drop_reason: str | None = None    # accepted by the service but bound to be dropped at delivery (e.g. a
                                      # background push sent with priority 10 in "accept, then drop" mode)
    seq: int = -1                     # assigned by the ledger on acceptance, unique per run
    # Set by the fleet (not by senders): the device time it was handled at (what a replay uses) and
    # the content version it announced to the app.
    at: float | None = None
    version: int = 0
    # The ledger's accounting state (see device_sim.ledger): PENDING with the reason it waits,
    # DELIVERED, or DROPPED with the reason; `prev` = seq of the same install's previous one.
    outcome: Outcome = Outcome.PENDING
    reason: str | None = None
    settled_at: float | None = None
    prev: int = -1
    # Set at delivery, for the report (pushsim/report): the reason it was held for before it landed
    # (None = delivered at once), and for a visible push whether the app had the content ready.
    held: str | None = None
    ready: bool | None = None
    _extra: dict[str, object] | None = None

    @property
    def extra(self) -> dict[str, object]:
        """Free-form annotations, created on first use (most notifications never need one)."""
        e = self._extra
        if e is None:
            e = self._extra = {}
        return e

    @property
    def extra_or_none(self) -> dict[str, object] | None:
        """The annotations if any were made, without creating an empty dict."""
        return self._extra

    @property
    def note(self) -> Notification:
        """The ledger's record of a notification is the notification itself (the old `Record.note`)."""
        return self
