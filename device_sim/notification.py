"""The platform-neutral notification the fakes hand to the fleet once a request is accepted."""
from __future__ import annotations

from dataclasses import dataclass, field
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
    extra: dict[str, object] = field(default_factory=dict)
